"""``roc_LEVEL.png`` beside the results files (a coordinator's finding: the screen drew the ROC curves and no file
kept them for the paper): the curves the screen draws, in the screen's colours, each with its own marker."""

from __future__ import annotations

import cv2
import numpy as np

from app.study.curve_figure import titled
from app.study.design import Design, create_study
from app.study.results import study_results, write_results
from app.study.roc_curves import curve_colour, roc_curves
from tests.study.test_recall import earlier_run
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
    assert image is not None and image.shape[0] >= 660 and image.shape[1] > 700  # the legend beside the plot
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
    earlier_run(tmp_path, results, "roc_breast.png")
    assert "roc_breast.png" not in {path.name for path in write_results(results, tmp_path)}
    assert not (tmp_path / "roc_breast.png").exists()


def test_names_in_any_script_are_drawn_and_long_ones_wrap_beside_the_plot():
    """OpenCV's own fonts drew "Étude" as "?tude" (and dropped it from the title to avoid that); a long model name
    ran off the picture, and 17 names inside the plot hid the curves."""
    from app.study.curve_figure import LEGEND_MAX, _wrapped, curve_png
    from app.figure_text import CaptionFonts
    from app.study.froc import Curve

    assert titled("ROC", "Étude Zürich 2026", "exam level") == "ROC (Étude Zürich 2026, exam level)"
    assert titled("FROC", "", "readers pooled") == "FROC (readers pooled)"
    fonts = CaptionFonts(14)
    long = "model [transpara-v1.7.2-site-calibrated-2026-01-15-build-4471-with-a-very-long-suffix] (vs unaided)"
    lines = _wrapped(long, fonts)
    assert len(lines) >= 2 and "".join(lines).replace(" ", "") == long.replace(" ", "")
    assert all(fonts.length(line) <= LEGEND_MAX for line in lines)
    line = Curve(np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.8, 1.0]))
    curves = {f"{long} {n}": line for n in range(17)}
    image = cv2.imdecode(np.frombuffer(curve_png(curves, titled("ROC", "Étude", "breast level"), "x", "y",
                                                 x_max=1.0), np.uint8), cv2.IMREAD_COLOR)
    plot = image[46:602, 78:634]  # inside the axes' frame: curves, markers and grid only, no legend's text
    assert not (plot < 60).all(axis=2).any()  # black is text and the frame alone


def test_each_model_and_its_hybrids_have_colours_of_their_own():
    """A coordinator's finding: two and three models were one red, their hybrids one green, told apart by their
    markers only."""
    from app.study.roc_curves import curve_dashed

    records = []
    for unit in range(12):
        truth = int(unit < 4)
        for modality, score in (("unaided", 0.3 + 0.5 * truth - 0.01 * unit), ("model [a] (vs unaided)", unit / 12),
                                ("model [b] (vs unaided)", 1 - unit / 12), ("hybrid [a] (unaided)", unit / 11),
                                ("hybrid [b] (unaided)", 0.5), ("hybrid [a] (plain mean) (unaided)", unit / 13),
                                ("hybrid [a] (aided)", unit / 14)):
            records.append({"reader": "A", "modality": modality, "case": f"u{unit:02d}", "truth": truth,
                            "score": score})
        for name in ("c", "d", "e"):  # five models, each with a calibrated hybrid and the plain mean beside it
            for modality in (f"model [{name}] (vs unaided)", f"hybrid [{name}] (unaided)",
                             f"hybrid [{name}] (plain mean) (unaided)"):
                records.append({"reader": "A", "modality": modality, "case": f"u{unit:02d}", "truth": truth,
                                "score": (unit * 7 % 12) / 12})
    curves = {c.modality: c for c in roc_curves(records)}
    colours = {name: curve_colour(c) for name, c in curves.items()}
    assert len(set(colours.values())) == len(colours) == 16
    assert [name for name, c in curves.items() if curve_dashed(c)] == ["hybrid [a] (aided)"]
