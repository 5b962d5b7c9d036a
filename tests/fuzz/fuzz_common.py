"""What every harness shares: the property an input must satisfy, scratch files, and the atheris main.

The property: an input either works, or raises one of the exception types that the target documents
for bad input, with a one-line message. Anything else is a finding: an exception type outside that
list (IndexError, KeyError, struct.error, AttributeError, ZeroDivisionError, OverflowError, ...), an
internal parser's error leaking through a documented type (UnicodeDecodeError and json's
JSONDecodeError are ValueErrors, numpy's AxisError and LinAlgError too), a message of several lines
or none, a hang (libFuzzer's -timeout) or a crash (the process dies; atheris keeps the input).

A harness is importable without atheris: ``test_one_input(data)`` is what the fuzzer calls, and
tests/python/test_fuzz_corpus.py replays every seed through it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_DIR = FUZZ_DIR / "corpus"
REPO = FUZZ_DIR.parent.parent
sys.path.insert(0, str(REPO / "tests" / "python"))  # toy_bundle


class Finding(AssertionError):
    """An input that broke the property; the message says how, the cause is the original exception."""


def _leaky_types() -> tuple[type, ...]:
    """Subclasses of documented types that only an internal parser raises: findings all the same."""
    import numpy as np

    return (UnicodeError, json.JSONDecodeError, LookupError, np.linalg.LinAlgError, RecursionError,
            NotImplementedError, MemoryError)


def check(error: BaseException, allowed: Sequence[type]) -> None:
    """Raise Finding unless ``error`` is an allowed type (not a leaky subclass) with a one-line message."""
    if not isinstance(error, tuple(allowed)) or isinstance(error, _leaky_types()):
        raise Finding(f"{type(error).__module__}.{type(error).__qualname__} escaped: {error}") from error
    message = str(error)
    if not message.strip() or "\n" in message or "\r" in message:
        raise Finding(f"{type(error).__name__} without a one-line message: {message!r}") from error


def expect(target: Callable[[], object], allowed: Sequence[type]) -> bool:
    """Run ``target``; True when it worked, False when it refused the input properly, else Finding."""
    try:
        target()
    except Finding:
        raise
    except BaseException as error:  # noqa: BLE001 - KeyboardInterrupt and SystemExit are findings too
        if isinstance(error, KeyboardInterrupt):
            raise
        try:
            check(error, allowed)
        except Finding as finding:
            if not _triage(finding):
                raise
        return False
    return True


_SEEN: set[tuple[str, str]] = set()


def _triage(finding: Finding) -> bool:
    """With $ICGT_FUZZ_TRIAGE set to a folder: note the finding there once per kind and place, keep
    fuzzing (True). For looking for several findings in one run; a normal run stops at the first."""
    folder = os.environ.get("ICGT_FUZZ_TRIAGE")
    if not folder:
        return False
    import hashlib
    import traceback

    cause = finding.__cause__
    frames = traceback.extract_tb(cause.__traceback__) if cause is not None else []
    place = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
    key = (type(cause).__name__, place)
    if key not in _SEEN:
        _SEEN.add(key)
        data = _CURRENT_INPUT[0]
        name = hashlib.sha1(data).hexdigest()
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"finding-{name}").write_bytes(data)
        with open(Path(folder) / "findings.txt", "a") as log:
            log.write(f"{name} {key[0]} at {place}: {finding}\n")
            log.write("".join(traceback.format_exception(cause, limit=-6)) + "\n")
    return True


_CURRENT_INPUT: list[bytes] = [b""]


def remember(data: bytes) -> None:
    """Called by each harness with its input, so that a triaged finding can keep it."""
    _CURRENT_INPUT[0] = data


_SCRATCH: Path | None = None


def scratch_file(name: str, data: bytes) -> Path:
    """``data`` written to ``name`` in a per-process scratch folder (in memory where /dev/shm exists)."""
    global _SCRATCH
    if _SCRATCH is None:
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        _SCRATCH = Path(tempfile.mkdtemp(prefix="icgt-fuzz-", dir=base))
    path = _SCRATCH / name
    path.write_bytes(data)
    return path


def main(test_one_input: Callable[[bytes], None], instrument: Sequence[str], load: Callable[[], None]) -> None:
    """Fuzz ``test_one_input`` with atheris; libFuzzer's flags and corpus folders come from sys.argv.

    ``load`` imports the targets: it runs with atheris instrumenting the modules named in
    ``instrument`` (for coverage feedback), after torch and numpy are imported uninstrumented.
    """
    import atheris
    import numpy  # noqa: F401
    import torch  # noqa: F401

    with atheris.instrument_imports(include=list(instrument)):
        load()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
