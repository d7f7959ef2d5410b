"""What a bench ran on, printed first by every speed bench: CPUs differ between machines (bfloat16 runs many times
slower without avx512_bf16), and figures compare only within one run on one machine."""
from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

WARMUP = 3  # untimed runs first: oneDNN builds its kernels for a shape on the first call
MS = 1000.0
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")  # the ones that decide vector and bf16 speed


def _cpuinfo(field: str) -> str:
    """The first value of `field` in /proc/cpuinfo ("" off Linux)."""
    info = Path("/proc/cpuinfo")
    for line in (info.read_text() if info.exists() else "").splitlines():
        if line.startswith(field):
            return line.split(":", 1)[1].strip()
    return ""


def cpu_flags() -> str:
    """e.g. "avx2=yes avx512f=yes avx512_bf16=yes amx_bf16=no amx_tile=no"."""
    flags = set(_cpuinfo("flags").split())
    return " ".join(f"{flag}={'yes' if flag in flags else 'no'}" for flag in CPU_FLAGS)


def describe() -> str:
    """One line: the CPU, its flags, the cores, Python and the load the run started under."""
    model = _cpuinfo("model name") or platform.processor() or platform.machine()
    return (f"CPU: {model}; {cpu_flags()}; {os.cpu_count()} cores; Python {platform.python_version()}; "
            f"1-minute load average {os.getloadavg()[0]:.1f} at start (other jobs share the cores)")


def cpu_ms_per_item(work: Callable[[], object], items: int, repeats: int) -> float:
    """This process's CPU milliseconds per item of `work` (one call handles `items` items), the fastest of `repeats`
    after WARMUP untimed calls. CPU time, so time spent waiting for a core that other processes share does not count."""
    for _ in range(WARMUP):
        work()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        work()
        times.append((time.process_time() - start) / items)
    return min(times) * MS
