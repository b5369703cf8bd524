"""What counts as a number in a file the user gives (JSON metadata, options, expected values)."""

from __future__ import annotations

import math
from typing import Any


def finite_number(value: Any) -> bool:
    """An int or float that is finite; never a bool (JSON's true is no 1) nor a string."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
