"""What counts as a number in a file the user gives (JSON metadata, options, expected values)."""

from __future__ import annotations

import math
from typing import Any


def finite_number(value: Any) -> bool:
    """An int or float that is finite; never a bool (JSON's true is no 1) nor a string."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def auc_text(value: float) -> str:
    """An AUC for a log line: "n/a (one class only)" where it is NaN (a validation set without one of the
    classes), never a bare "nan"."""
    return f"{value:.3f}" if math.isfinite(value) else "n/a (one class only)"


def p_text(value: float | None) -> str:
    """A p-value as reports give it: four decimals, "< 0.0001" below (a printed 0.0000 reads as impossible), "—"
    for none."""
    if value is None or not math.isfinite(value):
        return "—"
    return "< 0.0001" if value < 0.0001 else f"{value:.4f}"
