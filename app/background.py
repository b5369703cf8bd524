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


@contextlib.contextmanager
def yielding_to_the_window() -> Iterator[None]:
    """Inside: this thread at a lower priority, torch on all cores but one (its thread count restored after)."""
    lower_this_thread()
    import torch  # noqa: PLC0415 - the analysis imports it anyway

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(before, (os.cpu_count() or 2) - 1)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
