"""Start-up milestones, logged so that ``bench/bench_startup.py`` can time the workstation from launch (no Qt)."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("mammo_reader.startup")


def milestone(name: str) -> None:
    """Log ``name`` with the wall-clock time (``-v`` shows it: "startup: <name> at <epoch seconds>")."""
    logger.info("startup: %s at %.3f", name, time.time())
