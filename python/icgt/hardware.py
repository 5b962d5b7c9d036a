"""What this machine computes with: the CPU's model and widest vector capability, and torch's threads.

Timings mean little without them: on one 2-core machine bfloat16 ran 2-4x faster than float32 (AVX-512
BF16), on another 170x slower per matrix product (AVX2 only). Every timing icgt prints or records names
them (run.json's ``hardware``, the benchmarks' first line).

Example:
    >>> from icgt.hardware import cpu_capability
    >>> cpu_capability({"avx2", "fma", "avx512f", "avx512_bf16"}), cpu_capability({"avx", "avx2", "fma"})
    ('AVX-512 BF16', 'AVX2')
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

#: From the widest down: a capability and the /proc/cpuinfo flags that make it.
CAPABILITIES = (
    ("AMX", {"amx_tile", "amx_bf16"}),
    ("AVX-512 BF16", {"avx512f", "avx512_bf16"}),
    ("AVX-512", {"avx512f"}),
    ("AVX2", {"avx2", "fma"}),
    ("AVX", {"avx"}),
)


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (empty where /proc/cpuinfo is not there)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_capability(flags: set[str] | None = None) -> str:
    """The widest vector capability among CAPABILITIES that the flags (default: this CPU's) hold, else
    "baseline". The example is the module's."""
    flags = cpu_flags() if flags is None else flags
    return next((name for name, needed in CAPABILITIES if needed <= flags), "baseline")


def cpu_model() -> str:
    """The CPU's model name ("AMD EPYC", "Intel(R) Xeon(R) Platinum 8488C", ...), or the platform's
    processor string where Linux does not say."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(threads: int | None = None) -> dict[str, object]:
    """The machine as run.json records it: CPU model, capability, torch's threads, cores.

    >>> sorted(icgt.hardware.describe())
    ['capability', 'cores', 'cpu', 'threads']
    """
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    return {"cpu": cpu_model(), "capability": cpu_capability(), "threads": threads, "cores": os.cpu_count()}


def describe_line(machine: dict[str, object] | None = None) -> str:
    """One line naming a machine as describe() records it (default: this one), for timings.

    >>> describe_line({"cpu": "AMD EPYC", "capability": "AVX2", "threads": 2, "cores": 2})
    'AMD EPYC (AVX2), 2 threads'
    """
    machine = machine or describe()
    return f"{machine['cpu']} ({machine['capability']}), {machine['threads']} thread{'s' * (machine['threads'] != 1)}"
