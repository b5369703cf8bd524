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


def test_an_exam_class_row_names_the_breast_its_probability_is_of():
    """Independent classes: the exam's benign is the maximum over the breasts, here the left's, while the right
    decides the malignancy; the benign row said breast R beside the left breast's probability."""
    entry = ModelEntry("m", "benign and malignant", "stub", ("benign", "malignant"), ("malignant",), False, ())

    def answer(benign, malignant):
        probabilities = {"benign": benign, "malignant": malignant}
        return EntryViewResult(probabilities, dict.fromkeys(probabilities, 0.0), (), (), {}, (), "", None)

    given = {View.L_CC: answer(0.4, 0.2), View.L_MLO: answer(0.4, 0.2), View.R_CC: answer(0.1, 0.6),
             View.R_MLO: answer(0.1, 0.6)}
    views = {view: ViewResult(view, (10, 10), {"m": a}) for view, a in given.items()}
    breasts = breast_results(views, (entry,))
    result = ExamResult((entry,), views, breasts, exam_decisions(breasts, (entry,)),
                        Provenance((), "cpu", Mode.EXACT, "test", 1))
    exam = {(r["kind"], r["class"]): (r["breast"], r["probability"])
            for r in score_rows(ExamItem("e1", "/exams/e1"), result, 0.0) if r["level"] == "exam"}
    assert exam[("malignancy", "malignant")][0] == exam[("class", "malignant")][0] == "R"
    assert exam[("class", "benign")][0] == "L"


def test_a_breast_row_names_the_views_its_score_was_taken_over():
    """A deployer's audit: a left breast scored from its CC alone looked in the table like a two-view breast."""
    entry = ModelEntry("m", "benign and malignant", "stub", ("benign", "malignant"), ("malignant",), False, ())
    def answer(benign, malignant):
        probabilities = {"benign": benign, "malignant": malignant}
        return EntryViewResult(probabilities, dict.fromkeys(probabilities, 0.0), (), (), {}, (), "", None)

    given = {View.L_CC: answer(0.4, 0.2), View.R_CC: answer(0.1, 0.6), View.R_MLO: answer(0.1, 0.6)}
    views = {view: ViewResult(view, (10, 10), {"m": a}) for view, a in given.items()}
    breasts = breast_results(views, (entry,))
    result = ExamResult((entry,), views, breasts, exam_decisions(breasts, (entry,)),
                        Provenance((), "cpu", Mode.EXACT, "test", 1))
    rows = score_rows(ExamItem("e1", "/exams/e1"), result, 0.0)
    used = {(r["level"], r["view"] or r["breast"]): r["views_used"] for r in rows if r["kind"] == "malignancy"}
    assert used[("breast", "L")] == "L-CC" and used[("breast", "R")] == "R-CC+R-MLO"
    assert used[("view", "L-CC")] == "L-CC"
    deciding = next(r["breast"] for r in rows if r["level"] == "exam" and r["kind"] == "malignancy")
    assert used[("exam", deciding)] == used[("breast", deciding)]
    # an exam class row of the other breast (independent classes: each class's maximum over the breasts) names
    # that breast's views, not the deciding breast's (a deployer's re-test)
    exam = {(r["kind"], r["class"]): (r["breast"], r["views_used"]) for r in rows if r["level"] == "exam"}
    assert exam[("class", "benign")] == ("L", "L-CC") and exam[("class", "malignant")] == ("R", "R-CC+R-MLO")
