"""The typed error of site validation: input a user gave (a CSV, a table, an option) that cannot be used."""

from __future__ import annotations

from inference.errors import MammoError


class ValidationInputError(MammoError):
    """An outcomes file, score table or option that validation cannot use; the message says why."""
