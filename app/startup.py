"""Start-up milestones, logged so that ``bench/bench_startup.py`` can time the workstation from launch (no Qt)."""

from __future__ import annotations

import gc
import logging
import time

logger = logging.getLogger("mammo_reader.startup")


def milestone(name: str) -> None:
    """Log ``name`` with the wall-clock time (``-v`` shows it: "startup: <name> at <epoch seconds>")."""
    logger.info("startup: %s at %.3f", name, time.time())


def freeze_long_lived(what: str) -> None:
    """Leave every object alive now out of later garbage collections (``gc.freeze``); logged as a milestone.

    The workstation calls it once its window is up and once its models are loaded. A full collection holds
    every thread, the GUI's included, for as long as it walks the heap: about 0.07 s with the window alone and
    0.14 s with the demo model loaded (2-core EPYC), each time one falls due in a session. What start-up made
    lives as long as the process, so walking it again finds nothing. Not for test processes, which make and
    drop windows by the hundred: what is frozen is never collected."""
    gc.freeze()
    milestone(f"{what} frozen")
