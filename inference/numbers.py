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


def df_text(value: float) -> str:
    """Degrees of freedom on screen: "∞" where they are infinite (a test whose error term has no reader part), a
    vast number in three digits ("2.1e+21": a reader-by-modality term just above zero), else two decimals."""
    if value == math.inf:
        return "∞"
    return f"{value:.3g}" if abs(value) >= 1e6 else f"{value:.2f}"


VAST_DDF = 1000.0  # a random-reader test's ddf past this rests on (almost) no reader variance
VAST_DDF_CAUTION = ("every reader's {measure} differs between the modalities by (nearly) the same amount, so the "
                    "readers add (almost) no variance to the difference: the ddf are {ddf} (as RJafroc gives them) "
                    "and the test is as liberal as it can be; read it with the readers' own differences")


def df_cell(value: float) -> float | str:
    """Degrees of freedom in a CSV: "Inf" where infinite (R's spelling; pandas reads it too), "" where there are
    none, else the number."""
    if value == math.inf:
        return "Inf"
    return value if math.isfinite(value) else ""


def threshold_text(value: float, decimals: int = 3) -> str:
    """A threshold with its significant digits, wherever one is shown: a model's scores can all lie below 0.001,
    and "0.000" configured as the threshold recalls every exam (a deployment engineer's finding); one just below
    1 keeps the digits that tell it from 1 ("0.999982": "1.000" configured recalls no one). Else ``decimals``."""
    if 1 - 10 ** -decimals < value < 1:
        return f"{value:.{math.ceil(-math.log10(1 - value)) + 1}f}".rstrip("0")
    if abs(value) >= 0.1 or value == 0:
        return f"{value:.{decimals}f}"
    mantissa, _, exponent = f"{value:.3g}".partition("e")
    if not exponent:
        return mantissa
    # "8.34×10⁻⁵": one word, which a table cell does not wrap at the exponent's hyphen ("8.34e-" / "05")
    return f"{mantissa}×10{str(int(exponent)).translate(SUPERSCRIPTS)}"


SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
