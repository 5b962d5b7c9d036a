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


#: Settings that limit the kernels torch, oneDNN and MKL choose below what the CPU offers (how an AVX2-only
#: machine is imitated on a wider one, docs/performance.md).
KERNEL_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def kernel_limits() -> dict[str, str]:
    """The KERNEL_LIMITS set in this process's environment, by name."""
    return {name: os.environ[name] for name in KERNEL_LIMITS if os.environ.get(name)}


def describe(threads: int | None = None) -> dict[str, object]:
    """The machine as run.json records it: CPU model, capability, torch's threads, cores, and the kernel
    limits in effect (kernel_limits; empty where none is set).

    >>> sorted(icgt.hardware.describe())
    ['capability', 'cores', 'cpu', 'kernel_limits', 'threads']
    """
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    return {"cpu": cpu_model(), "capability": cpu_capability(), "threads": threads, "cores": os.cpu_count(),
            "kernel_limits": kernel_limits()}


def describe_line(machine: dict[str, object] | None = None) -> str:
    """One line naming a machine as describe() records it (default: this one), for timings.

    >>> describe_line({"cpu": "AMD EPYC", "capability": "AVX2", "threads": 2, "cores": 2})
    'AMD EPYC (AVX2), 2 threads'
    >>> describe_line({"cpu": "Intel Xeon", "capability": "AMX", "threads": 2, "cores": 2,
    ...                "kernel_limits": {"ATEN_CPU_CAPABILITY": "avx2"}})
    'Intel Xeon (AMX; kernels limited by ATEN_CPU_CAPABILITY=avx2), 2 threads'
    """
    machine = machine or describe()
    limits = ", ".join(f"{name}={value}" for name, value in machine.get("kernel_limits", {}).items())
    capability = f"{machine['capability']}; kernels limited by {limits}" if limits else machine["capability"]
    return f"{machine['cpu']} ({capability}), {machine['threads']} thread{'s' * (machine['threads'] != 1)}"
