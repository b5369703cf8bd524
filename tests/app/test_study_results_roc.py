"""The results screen draws the model's ROC curve on every unit a reader's records hold, as its AUC is computed
(it drew only the first reader's: none at all while that reader had read only cases of one truth)."""

from __future__ import annotations

import random

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel

from app.study.analysis import roc_points
from app.study.cases import CaseEntry
from app.study.design import Design, create_study
from app.study.results import study_results
from app.study.sessions import ReadingSession
from app.study.roc_curves import FPR_GRID
from app.ui.study.results import StudyResultsWindow
from tests.helpers import insert_model_scores
from tests.study.ai_results import store_ai_results


def test_the_model_curve_is_drawn_on_every_reader_s_units(qtbot, store):
    entries = [CaseEntry(f"c{i:02d}", f"/exams/{i}", "malignant" if i < 8 else "normal", "normal")
               for i in range(24)]
    study = create_study(store, "Breast screening reader study, site North, 2026 (interim)", Design.UNAIDED,
                         ["A", "B"], entries, seed=1)
    rnd = random.Random(0)
    scores = {(c.case_id, b): rnd.random() for c in entries for b in "LR"}
    insert_model_scores(store, study, scores)
    for reader, read in (("A", entries[8:14]), ("B", entries)):  # A so far only normal cases, B all
        session = ReadingSession(store, study, reader)
        for case in read:
            session.commit(case.case_id, "unaided", {"L": rnd.random(), "R": rnd.random()}).result()
    window = StudyResultsWindow(study_results(store, study))
    qtbot.addWidget(window)
    (key,) = [k for k in window.curves if k.startswith("model")]  # "model (vs unaided)"
    truth = [int(case < "c08" and breast == "L") for case, breast in sorted(scores)]
    fpr, tpr, _ = roc_points([scores[k] for k in sorted(scores)], np.array(truth))
    _, drawn = window.curves[key].getData()
    np.testing.assert_allclose(drawn[1:], np.interp(FPR_GRID, fpr, tpr))
    # at 1280 px a long study name in the plot's title made the plot wider than its pane, which cut off the right
    # of the axes and the legend: the name is atop the side panel, and the plot fits its pane
    window.resize(1280, 800)
    window.show()
    qtbot.waitUntil(lambda: window.plot.width() < 640)
    plot_item = window.plot.getPlotItem()
    qtbot.waitUntil(lambda: plot_item.sceneBoundingRect().width() <= window.plot.viewport().width() + 1)
    assert "site North" in window.findChild(QLabel, "resultsHeading").text()


def test_curves_that_coincide_still_both_show(qtbot, store):
    """Seen: aided reads that changed nothing drew the aided curve exactly under the unaided one, which hid it;
    each curve now has hollow markers of its own shape at its own places, and the legend shows them."""
    entries = [CaseEntry(f"c{i:02d}", f"/exams/{i}", "malignant" if i < 8 else "normal", "normal") for i in range(24)]
    study = create_study(store, "same", Design.SEQUENTIAL, ["A", "B"], entries, seed=1)
    rnd = random.Random(0)
    store_ai_results(store, study)
    for reader in ("A", "B"):
        session = ReadingSession(store, study, reader)
        for case in entries:
            read = {"L": rnd.random(), "R": rnd.random()}
            session.commit(case.case_id, "unaided", read).result()
            session.reveal(case.case_id).result()
            session.commit(case.case_id, "aided", read).result()  # the AI changed nothing
    window = StudyResultsWindow(study_results(store, study))
    qtbot.addWidget(window)
    np.testing.assert_array_equal(window.curves["aided"].getData()[1], window.curves["unaided"].getData()[1])
    markers = [item for item in window.plot.getPlotItem().listDataItems() if item.opts["symbol"] is not None]
    assert len(markers) == len(window.curves) >= 3
    assert len({item.opts["symbol"] for item in markers}) == len(markers)
    assert len({float(item.getData()[0][0]) for item in markers}) == len(markers)  # each at its own places
    legend = window.plot.getPlotItem().legend
    samples = [sample for sample, _ in legend.items if sample.item.opts["symbol"] is not None]
    assert len(samples) == len(markers)
    # each legend marker in its curve's colour and hollow, as on the curve (they were pyqtgraph's default filled
    # grey-blue shape: two models' entries could not be told apart)
    by_symbol = {item.opts["symbol"]: item for item in markers}
    for sample in samples:
        scatter, drawn = sample.item.scatter.opts, by_symbol[sample.item.opts["symbol"]]
        assert pg.mkPen(scatter["pen"]).color() == pg.mkPen(drawn.opts["symbolPen"]).color()
        assert pg.mkBrush(scatter["brush"]).color().alpha() == 0
    # a click on a legend entry hides its curve and markers, and a second shows them again (found in review:
    # the entry had become a copy, and the click hid nothing)
    first = samples[0]
    shown = [item for item in window.plot.getPlotItem().listDataItems() if item.isVisible()]
    first.item.setVisible(False)  # what pyqtgraph's ItemSample does on a click
    hidden = [item for item in shown if not item.isVisible()]
    assert len(hidden) == 2 and any(item is window.curves[k] for k in window.curves for item in hidden)
    first.item.setVisible(True)
    assert all(item.isVisible() for item in shown)


def test_the_reader_average_curve_leaves_out_a_reader_part_way(qtbot, store):
    """A reader with one case read pulled the 'unaided (reader average)' curve to a shape no reader has."""
    entries = [CaseEntry(f"c{i:02d}", f"/exams/{i}", "malignant" if i < 8 else "normal", "normal")
               for i in range(24)]
    study = create_study(store, "partway", Design.UNAIDED, ["A", "B", "C"], entries, seed=1)
    rnd = random.Random(1)
    for reader, read in (("A", entries), ("B", entries), ("C", [entries[0], entries[12]])):
        session = ReadingSession(store, study, reader)
        for case in read:
            session.commit(case.case_id, "unaided", {"L": rnd.random(), "R": rnd.random()}).result()
    results = study_results(store, study)
    window = StudyResultsWindow(results)
    qtbot.addWidget(window)
    records = [r for r in results.records if r["modality"] == "unaided"]
    expected = []
    for reader in ("A", "B"):
        rows = sorted((r for r in records if r["reader"] == reader), key=lambda r: r["case"])
        fpr, tpr, _ = roc_points([r["score"] for r in rows], np.array([r["truth"] for r in rows]))
        expected.append(np.interp(FPR_GRID, fpr, tpr))
    _, drawn = window.curves["unaided"].getData()
    np.testing.assert_allclose(drawn[1:], np.mean(expected, axis=0))
    legend = window.plot.getPlotItem().legend
    assert any(label.text == "unaided (reader average) — 1 reader(s) part-way not in it" for _, label in legend.items)


def test_a_bilateral_cancer_as_the_only_one_is_said_not_taken_for_a_zero_variance(store):
    """Found in review: with every cancer breast one woman's, the CIs were missing with the reason 'one score
    for all … DeLong's variance is 0', and the jackknife comparison lost the readers' means."""
    entries = [CaseEntry(f"c{i:02d}", f"/exams/{i}", "malignant" if i == 0 else "normal",
                         "malignant" if i == 0 else "normal") for i in range(8)]
    study = create_study(store, "bilateral", Design.UNAIDED, ["A", "B"], entries, seed=1)
    rnd = random.Random(2)
    for reader in ("A", "B"):
        session = ReadingSession(store, study, reader)
        for case in entries:
            session.commit(case.case_id, "unaided", {"L": rnd.random(), "R": rnd.random()}).result()
    results = study_results(store, study)
    assert any("every positive (or every negative) breast behind them is one case's" in c for c in results.cautions)
    assert not any("DeLong's variance is 0" in c for c in results.cautions)


def test_a_comparison_with_a_tied_model_is_shown_with_its_caution(qtbot, store):
    """A model whose scores are all one value has no case variance: its comparison's small p rests on the readers'
    arm alone, and the screen says so beside the notes (as the command line does under the line)."""
    from PySide6.QtWidgets import QLabel  # noqa: PLC0415

    entries = [CaseEntry(f"c{i:02d}", f"/exams/{i}", "malignant" if i < 8 else "normal", "normal") for i in range(24)]
    study = create_study(store, "tied", Design.UNAIDED, ["A", "B"], entries, seed=1)
    insert_model_scores(store, study, {(c.case_id, b): 0.5 for c in entries for b in "LR"})
    rnd = random.Random(1)
    for reader in ("A", "B"):
        session = ReadingSession(store, study, reader)
        for case in entries:
            session.commit(case.case_id, "unaided", {"L": rnd.random(), "R": rnd.random()}).result()
    window = StudyResultsWindow(study_results(store, study))
    qtbot.addWidget(window)
    note = window.findChild(QLabel, "exclusionNote")
    assert note is not None and "has no case variance (tied or fully separated scores)" in note.text()
