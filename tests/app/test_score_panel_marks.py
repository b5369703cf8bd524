"""The score panel's table (issue 24): a breast score made from one view says "(MLO only)"; a view whose model
output was not finite shows "no result" and no number."""

from __future__ import annotations

import dataclasses
import math

from inference.pipeline import analyze_exam
from inference.intake.views import View
from tests.helpers import make_stub_model, synthetic_view


def _result(views):
    return analyze_exam({v: synthetic_view(v.value, (600, 400)) for v in views}, make_stub_model(), device="cpu")


def test_panel_marks_a_breast_scored_from_one_view():
    from app.model_table import entry_rows

    result = _result((View.R_MLO, View.L_CC, View.L_MLO))  # the R-CC is missing
    _, rows = entry_rows(result, result.entries[0], details=False)
    names = [row[0] for row in rows]
    assert any(name.endswith("(MLO only)") for name in names)
    assert not any("only" in name for name in names if name.startswith("Left"))


def test_panel_shows_no_number_for_a_view_without_result():
    from app.model_table import entry_rows
    from inference.results.exam_result import breast_results, exam_decisions

    result = _result((View.R_CC, View.R_MLO))
    entry = result.entries[0]
    r_cc = dataclasses.replace(result.views[View.R_CC], entries={}, no_result={entry.id: "not a finite number"})
    views = {**result.views, View.R_CC: r_cc}
    breasts = breast_results(views, result.entries)
    result = dataclasses.replace(result, views=views, breasts=breasts, exam=exam_decisions(breasts, result.entries))
    _, rows = entry_rows(result, entry, details=True)
    row = next(r for r in rows if r[0].startswith("R-CC"))
    assert "no result" in row[0] and set(row[1:]) == {"—"}
    breast = next(r for r in rows if r[0].endswith("(CC only)") or r[0].endswith("(MLO only)"))
    assert breast[0].endswith("(MLO only)") and "nan" not in " ".join(breast).lower()
    assert not any(math.isnan(v) for v in result.exam[entry.id].probabilities.values())
