"""The reader-study error type (under the one root of user-facing errors)."""

from __future__ import annotations

from inference.errors import MammoError


class StudyError(MammoError, ValueError):
    """A study that cannot be created or read as asked (bad case list, unknown reader ...)."""
