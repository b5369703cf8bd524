"""``roc_LEVEL.png`` beside the results files (a coordinator's finding: the screen drew the ROC curves and no file
kept them for the paper): the curves the screen draws, in the screen's colours, each with its own marker."""

from __future__ import annotations

import cv2
import numpy as np

from app.study.curve_figure import titled
from app.study.design import Design, create_study
from app.study.results import study_results, write_results
from app.study.roc_curves import curve_colour, roc_curves
from tests.study.test_study import cases, read_unaided, sequential_study_read


def _has_colour(image: np.ndarray, rgb: tuple[int, int, int]) -> bool:
    return bool((image == np.array(rgb[::-1], np.uint8)).all(axis=2).any())


def test_the_figure_holds_every_curve_the_screen_draws(store, tmp_path):
    study = sequential_study_read(store, "pilot")
    results = study_results(store, study)
    curves = roc_curves(results.records)
    assert {c.kind for c in curves} == {"readers", "model", "hybrid"}
    assert {"unaided", "aided"} <= {c.modality for c in curves}
    written = {path.name for path in write_results(results, tmp_path)}
    assert "roc_breast.png" in written
    image = cv2.imread(str(tmp_path / "roc_breast.png"))
    assert image is not None and image.shape[:2] == (660, 650)
    for curve in curves:
        assert _has_colour(image, curve_colour(curve)), curve.name
    # the average is of the readers' own curves, each from (0, 0) to (1, 1)
    unaided = next(c for c in curves if c.modality == "unaided")
    assert len(unaided.readers) == 3 and unaided.fpr[0] == unaided.tpr[0] == 0 and unaided.tpr[-1] == 1


def test_no_curve_no_figure_and_an_earlier_one_goes(store, tmp_path):
    study = create_study(store, "normal only", Design.UNAIDED, ["A", "B"], cases(12, 0), seed=1)
    read_unaided(store, study, ("A", "B"), lambda _reader, index, _position: 0.1 + 0.02 * index)
    results = study_results(store, study)
    assert roc_curves(results.records) == []
    (tmp_path / "notes_breast.txt").write_text("study: normal only\nlevel: breast\n")
    (tmp_path / "roc_breast.png").write_bytes(b"an earlier run's")
    assert "roc_breast.png" not in {path.name for path in write_results(results, tmp_path)}
    assert not (tmp_path / "roc_breast.png").exists()


def test_a_name_opencv_cannot_draw_is_left_out_of_the_title():
    assert titled("ROC", "pilot 2026", "exam level") == "ROC (pilot 2026, exam level)"
    assert titled("ROC", "Étude pilote", "exam level") == "ROC (exam level)"  # drawn as "?tude" before
    assert titled("FROC", "", "readers pooled") == "FROC (readers pooled)"
