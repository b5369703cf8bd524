"""The score panel's table (issue 24): a breast score made from one view says "(MLO only)"; a view whose model
output was not finite shows "no result" and no number."""

from __future__ import annotations

import contextlib
import dataclasses
import io
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
    assert names[-1] == "Exam"  # both breasts scored


def test_an_exam_score_from_one_breast_says_so():
    """A reviewer's exam of one L-CC was reported "Exam < 0.1 %", as if both breasts had been read: the exam row
    (every table: the workstation's, the PDF's, the PNG's) and the command line name the one breast."""
    from app.cli.analyze import print_result  # noqa: PLC0415
    from app.model_table import entry_rows  # noqa: PLC0415

    result = _result((View.L_CC, View.L_MLO))
    assert result.one_breast_note(result.entries[0].id) == "(left breast only)"
    _, rows = entry_rows(result, result.entries[0], details=False)
    assert rows[-1][0] == "Exam (left breast only)"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        print_result(result)
    assert "(left breast only: the right breast has no score)" in printed.getvalue()


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


def test_blind_reading_hides_nothing_when_no_view_has_a_result(qtbot):
    """Every view without a result (refused, not finite): blind reading says there is no model answer, and the
    comparison shows no number, instead of "hidden" for an answer that never comes."""
    from app.ui.workstation.score_panel import HIDDEN_TEXT, ScorePanelWidget
    from inference.results.exam_result import breast_results, exam_decisions

    result = _result((View.R_CC, View.R_MLO))
    entry = result.entries[0]
    panel = ScorePanelWidget()
    qtbot.addWidget(panel)
    panel.set_model_hidden(True)
    panel.set_result(result)
    assert panel.hidden_label.text() == HIDDEN_TEXT and panel.compare.item(0, 2).text() == "hidden"

    views = {view: dataclasses.replace(r, entries={}, no_result={entry.id: "values beyond the declared maximum"})
             for view, r in result.views.items()}
    breasts = breast_results(views, result.entries)
    empty = dataclasses.replace(result, views=views, breasts=breasts, exam=exam_decisions(breasts, result.entries))
    panel.set_result(empty)
    assert panel.nothing_to_hide() is not None and not panel.model_box.isVisible()
    assert panel.hidden_label.text().startswith("No model result for this exam: no model has a result on any view")
    assert panel.compare.item(0, 2).text() == "—" and panel.compare.item(0, 3).text() == "—"


def test_the_model_table_has_room_and_no_more(qtbot):
    """The tables' scroll area is as tall as its tables (up to a cap): it kept 240 px for a 7-row table, so that
    the reader | model | hybrid table fell below the fold; sized before Qt had shown the new tables, it was 2 px."""
    from app.ui.workstation.score_panel import ScorePanelWidget

    panel = ScorePanelWidget()
    qtbot.addWidget(panel)
    panel.resize(420, 900)
    panel.show()
    panel.set_result(_result((View.R_CC, View.R_MLO)))
    table = panel.model_table
    assert table is not None
    assert table.height() + 2 * panel.tables_scroll.frameWidth() <= panel.tables_scroll.minimumHeight() < 240
    assert panel.tables_scroll.maximumHeight() == panel.tables_scroll.minimumHeight()


def test_an_operating_point_is_said_of_breasts_and_the_exam_not_of_views():
    """A deployer's audit: "above the 90 % specificity threshold" stood beside every view, a view not counted
    among them, though the threshold was set on breasts; only "uncalibrated", true of every row, stays there."""
    from app.model_table import entry_rows

    result = _result((View.R_CC, View.R_MLO, View.L_CC, View.L_MLO))
    entry = result.entries[0]
    calibration = {"method": "none", "operating_points": [{"name": "90 % specificity", "threshold": 0.0}]}
    members = tuple(dataclasses.replace(m, calibration=calibration) for m in entry.members)
    _, rows = entry_rows(result, dataclasses.replace(entry, members=members))
    meaning = {row[0]: row[-1] for row in rows}
    assert all(meaning[view.value] == "" for view in View)
    assert meaning["Right breast"].startswith("above the 90 % specificity threshold")
    assert meaning["Exam"].startswith("above the 90 % specificity threshold")
    _, rows = entry_rows(result, entry)  # the stub is uncalibrated: every row says so
    assert {row[-1] for row in rows} == {"uncalibrated"}
