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
