"""Keep freed memory for reuse instead of handing it back to the OS after every tensor.

glibc serves allocations above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps them on
``free``, so every image-sized intermediate of the model (the first global feature map alone is 90 MB)
is page-faulted in anew, on every layer of every view. Serving them from one heap, and trimming it only
when more than ``keep_bytes`` lie free, removes that cost (``bench/bench_inference.py`` prints both). The
arithmetic is untouched: the oracle tests give the same numbers either way. Call it once, early, before
worker threads start. Other C libraries (musl, macOS, Windows) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_applied = False


def reuse_freed_memory(keep_bytes: int = 1 << 30) -> bool:
    """Ask glibc's malloc to serve large blocks from the heap and keep up to ``keep_bytes`` free for reuse.
    Returns whether the setting is in force (False on other platforms or C libraries). Idempotent."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    keep = min(int(keep_bytes), 2**31 - 1)
    # one arena: a worker thread's own arena cannot hold image-sized blocks and trims them back to the OS
    _applied = all(mallopt(option, value) for option, value in (
        (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, keep)))
    logger.info("malloc keeps freed memory for reuse: %s", _applied)
    return _applied
