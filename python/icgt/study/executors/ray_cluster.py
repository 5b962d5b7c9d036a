"""Joining a Ray cluster from a sweep's driver: the cluster's address (an argument, $ICGT_RAY_ADDRESS or
$RAY_ADDRESS; none: a private instance on 127.0.0.1), its parts, and a clear error at once where
nothing answers (Ray itself retries for minutes).
"""

from __future__ import annotations

import os
import socket
import sys


def ray_address_parts(address: str) -> tuple[str | None, int | None]:
    """The host and port of a Ray cluster's address ("host:port" or "ray://host:port"); None for a part
    that is missing or not valid (a port that is no number, or out of range).

    >>> ray_address_parts("ray://head.cluster:10001"), ray_address_parts("10.0.0.1:port")
    (('head.cluster', 10001), ('10.0.0.1', None))
    """
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"ray-gcs://{address}")
    try:
        return parts.hostname or None, parts.port
    except ValueError:
        return parts.hostname or None, None


def import_ray(address: str | None = None):
    """The ray module, or MissingExtraError naming the extra that installs it.

    A private instance (no address) listens on 127.0.0.1 only, and a cluster at a loopback address
    is joined as a node of 127.0.0.1: Ray takes the loopback address as this node's when
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER is 0 as it is first imported (else it takes the machine's
    outward address, and a driver of a cluster bound to 127.0.0.1 would wait for ever for its node).
    """
    from ...extras import require

    target = _cluster_address(address)
    if "ray" not in sys.modules and (target in (None, "local") or _is_loopback(target)):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    return require("ray", "running a sweep on Ray (--executor ray)")


def _is_loopback(address: str) -> bool:
    return address != "auto" and ray_address_parts(address)[0] in ("127.0.0.1", "localhost", "::1")


def _cluster_address(address: str | None) -> str | None:
    """The cluster to join: ``address``, else $ICGT_RAY_ADDRESS, else $RAY_ADDRESS; None: a private instance."""
    return address or os.environ.get("ICGT_RAY_ADDRESS") or os.environ.get("RAY_ADDRESS") or None


def connect(ray, address: str | None) -> bool:
    """Connects this process to the cluster at ``address`` (see _cluster_address); returns whether it
    started a private Ray instance (which the caller shuts down). Already connected: uses that
    connection. An address that answers nothing is a ConnectionError of one line, at once."""
    import logging

    if ray.is_initialized():
        return False
    address = _cluster_address(address)
    if address is None or address == "local":
        ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False,
                 logging_level=logging.WARNING)
        return True
    if address != "auto":
        _check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING)
    except ConnectionError as error:
        raise ConnectionError(f"cannot join the Ray cluster at {address!r}: {' '.join(str(error).split())}") from None
    return False


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """ConnectionError unless something listens at address's host and port (Ray itself retries for minutes)."""
    host, port = ray_address_parts(address)
    if not host or port is None:
        raise ValueError(f"Ray address {address!r} is not 'auto', 'host:port' or 'ray://host:port'")
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConnectionError(f"no Ray cluster answers at {address} ({reason}); start one with 'ray start --head' "
                              "or give another --address") from None
