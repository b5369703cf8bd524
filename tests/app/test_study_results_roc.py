"""The results screen draws the model's ROC curve on every unit a reader's records hold, as its AUC is computed
(it drew only the first reader's: none at all while that reader had read only cases of one truth)."""

from __future__ import annotations

import random

import numpy as np

from app.study.analysis import roc_points
from app.study.cases import CaseEntry
from app.study.design import Design, create_study
from app.study.results import study_results
from app.study.sessions import ReadingSession
from app.ui.study.results import FPR_GRID, StudyResultsWindow
from tests.helpers import insert_model_scores


def test_the_model_curve_is_drawn_on_every_reader_s_units(qtbot, store):
    entries = [CaseEntry(f"c{i:02d}", f"/exams/{i}", "malignant" if i < 8 else "normal", "normal")
               for i in range(24)]
    study = create_study(store, "interim", Design.UNAIDED, ["A", "B"], entries, seed=1)
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
