"""Work done ahead of the reader (prefetching the next exams) yields the CPU to the window.

Qt's thread priorities do nothing under Linux's normal scheduler, and torch's intra-op threads are not Qt's
anyway. So the prefetch thread lowers its own scheduling priority (nice; a thread may lower its priority,
never raise it back, so this is done in the worker's own short-lived thread) and runs torch on one core fewer
than the machine has, which leaves a core to the GUI thread's painting: on a 2-core machine the window's
renders took 22-65 ms each instead of 7 ms while the next exam was analysed beside it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

NICE = 10


def lower_this_thread() -> bool:
    """Lower the calling thread's scheduling priority (Linux: per-thread nice). False where not possible."""
    if not hasattr(os, "setpriority"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + NICE, 19))
    except OSError:
        return False
    return True


_FULL_THREADS: int | None = None  # torch's intra-op threads before any prefetch lowered them
_LOCK = threading.Lock()
_YIELDING = threading.local()


def _full_threads(torch) -> int:
    global _FULL_THREADS
    with _LOCK:
        if _FULL_THREADS is None:
            _FULL_THREADS = torch.get_num_threads()
        return _FULL_THREADS


@contextlib.contextmanager
def yielding_to_the_window() -> Iterator[None]:
    """Inside: this thread at a lower priority, torch on all cores but one (its thread count restored after)."""
    lower_this_thread()
    import torch  # noqa: PLC0415 - the analysis imports it anyway

    full = _full_threads(torch)
    torch.get_num_threads()  # this thread's own count set up first (its first parallel op would reset it)
    torch.set_num_threads(max(1, min(full, (os.cpu_count() or 2) - 1)))
    _YIELDING.active = True
    try:
        yield
    finally:
        _YIELDING.active = False
        torch.set_num_threads(full)


def at_full_speed() -> None:
    """Torch on all its threads in the calling thread: the first call of the window's own torch work (its
    analysis, the prior's, the warm-up). torch's thread count is the process's, and a thread takes it at its
    first parallel operation and keeps it: a foreground thread started while a prefetch had lowered it would
    otherwise run on one core fewer for its whole life. A no-op inside ``yielding_to_the_window`` (the prefetch
    runs the same analysis function)."""
    if getattr(_YIELDING, "active", False):
        return
    import torch  # noqa: PLC0415

    full = _full_threads(torch)
    torch.get_num_threads()  # this thread's own count set up first (its first parallel op would reset it)
    torch.set_num_threads(full)
