"""What this CPU can do: the vector and matrix extensions that decide which oneDNN kernels run.

Speed figures are quoted with these flags, and the paths whose safety or speed depends on them (the
training memory format, bf16 in the fast mode) choose from them, never from assumptions.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

# /proc/cpuinfo flag -> the name printed beside speed figures, in the order they are listed
_NAMED_FLAGS = (
    ("avx2", "AVX2"),
    ("avx512f", "AVX-512"),
    ("avx512_bf16", "AVX-512-BF16"),
    ("amx_bf16", "AMX-BF16"),
    ("amx_tile", "AMX-TILE"),
)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (empty where /proc/cpuinfo is not available)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def has_avx512() -> bool:
    return "avx512f" in cpu_flags()


def has_bf16_arithmetic() -> bool:
    """True where bf16 matrix arithmetic is native (AMX or AVX-512-BF16), so that bf16 can be faster than
    fp32; without it oneDNN emulates bf16 and it is several times slower."""
    flags = cpu_flags()
    return "amx_bf16" in flags or "avx512_bf16" in flags


def cpu_flags_text() -> str:
    """A short description for benchmark output, e.g. ``x86_64, 2 cores, AVX2 (no AVX-512/AMX)``."""
    import os  # noqa: PLC0415

    flags = cpu_flags()
    named = [name for flag, name in _NAMED_FLAGS if flag in flags]
    if not named:
        named = ["no AVX2"] if flags else ["flags unknown"]
    elif not has_avx512():
        named.append("(no AVX-512/AMX)")
    return f"{platform.machine()}, {os.cpu_count()} cores, {' '.join(named)}"
