"""The batch table's P(malignant) of a view is the one rule every screen and report uses (no Qt, no torch)."""

from __future__ import annotations

from app.archive.sources import ExamItem
from app.archive.table import score_rows
from inference.results.exam_result import (
    breast_results,
    EntryViewResult,
    exam_decisions,
    ExamResult,
    Mode,
    ModelEntry,
    Provenance,
    ViewResult,
)
from inference.intake.views import View


def test_view_malignancy_of_independent_classes_is_clipped_as_everywhere_else():
    # two independent (sigmoid) classes named by the rule: their sum is 1.3, a probability is at most 1
    entry = ModelEntry("m", "two-class detector", "stub", ("mass", "calcification"), ("mass", "calcification"),
                       False, ())
    probabilities = {"mass": 0.7, "calcification": 0.6}
    answer = EntryViewResult(probabilities, dict.fromkeys(probabilities, 0.0), (), (), {}, (), "", None)
    views = {view: ViewResult(view, (10, 10), {"m": answer}) for view in (View.L_CC, View.L_MLO)}
    breasts = breast_results(views, (entry,))
    result = ExamResult((entry,), views, breasts, exam_decisions(breasts, (entry,)),
                        Provenance((), "cpu", Mode.EXACT, "test", 1))
    rows = [r for r in score_rows(ExamItem("e1", "/exams/e1"), result, 0.0) if r["kind"] == "malignancy"]
    assert {r["level"] for r in rows} == {"view", "breast", "exam"}
    assert all(r["probability"] == entry.malignant(probabilities) == 1.0 for r in rows)
