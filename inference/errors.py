"""Typed exceptions a user can cause. Their messages are meant to be shown to a radiologist as they are."""

from __future__ import annotations

from pathlib import Path

from inference.intake.views import View


class MammoError(Exception):
    """Base class of every error caused by input (files, checkpoints, options), never by a bug.

    Args:
        message: what went wrong, in plain words.
        path: the file or folder concerned, if any; it is named in ``str(error)``.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.message = message
        self.path = Path(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class PreprocessError(MammoError):
    """An image that cannot be prepared for the model (for example: no breast tissue found)."""


class ExamError(MammoError):
    """An exam or image that cannot be used, with the file concerned and the reason in plain words."""


class UnreadablePixelsError(ExamError):
    """An image whose header says which view it is but whose pixels cannot be used (truncated, not finite,
    all one value ...): the exam shows that slot as unreadable with this reason instead of as missing.

    Args:
        view: the screening slot the header (or the file name) gives, or None for an image kept aside.
    """

    def __init__(self, message: str, path: str | Path | None = None, view: View | None = None) -> None:
        super().__init__(message, path)
        self.view = view


class CheckpointError(MammoError):
    """A checkpoint that cannot be used: unreadable, unsafe, or not a state dict of a known model family."""


class Cancelled(Exception):  # noqa: N818 - an outcome, not an error
    """The user cancelled long work; a normal outcome, not an error (and not a MammoError)."""


def error_chain(error: BaseException | None, longest: int = 20):
    """The exception and those it was raised from or while handling (``__cause__``, else ``__context__`` unless
    ``raise … from None`` put it aside)."""
    for _ in range(longest):
        if error is None:
            return
        yield error
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)


def os_error_beneath(error: BaseException) -> OSError | None:
    """The operating system's error an exception was raised from (itself, or down its chain), with its errno:
    pydicom re-raises a write's "No space left on device" as an OSError of its own whose text is a traceback and
    whose errno is None (a deployer's log held 20 lines of it for one full disk)."""
    return next((e for e in error_chain(error) if isinstance(e, OSError) and e.errno is not None), None)


def plain_text(error: BaseException | str) -> str:
    """An exception's text (or a text) without a traceback some library put into it, on one line."""
    text = str(error).split("Traceback (most recent call last)")[0]
    return " ".join(text.split())
