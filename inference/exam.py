"""The public name of exam intake (``load_exam``), kept for scripts and outside checks; the code lives in
:mod:`inference.intake.exam`."""

from inference.intake.exam import *  # noqa: F403
from inference.intake.exam import load_exam

__all__ = ["load_exam"]
