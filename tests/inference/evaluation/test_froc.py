"""The FROC maths on a case worked out by hand (three 10 x 10 images, two lesions, five detections)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference.evaluation.froc import Detection, HitRule, ImageTruth, froc


def _square(top, left, bottom, right) -> np.ndarray:
    mask = np.zeros((10, 10), bool)
    mask[top:bottom, left:right] = True
    return mask


L1, L2 = _square(2, 2, 5, 5), _square(6, 0, 9, 3)
TRUTHS = [ImageTruth((L1,), True), ImageTruth((L2,), False), ImageTruth((), False)]
DETECTIONS = [
    [Detection((2, 2, 5, 5), 0.9, "malignant mass", mask=L1),  # finds L1
     Detection((6, 6, 9, 9), 0.6, "benign mass"),  # false positive
     Detection((2, 2, 4, 4), 0.3, "benign mass")],  # finds L1 again: neither found nor false (IoU 4/9)
    [Detection((0, 6, 2, 8), 0.8, "malignant mass"),  # false positive
     Detection((6, 0, 9, 3), 0.4, "benign mass")],  # finds L2
    [],
]


def test_froc_by_box_centre_worked_by_hand():
    result = froc(DETECTIONS, TRUTHS, ("malignant mass",))
    # lesions found at 0.9 (L1) and 0.4 (L2); false positives at 0.8 and 0.6, over 3 images
    assert result.thresholds.tolist() == [0.9, 0.8, 0.6, 0.4]
    assert result.sensitivity.tolist() == [0.5, 0.5, 0.5, 1.0]
    np.testing.assert_allclose(result.fp_per_image, [0, 1 / 3, 2 / 3, 2 / 3])
    assert result.at_rates == {0.25: 0.5, 0.5: 0.5, 1.0: 1.0, 2.0: 1.0, 4.0: 1.0}
    assert result.cpm == pytest.approx(0.8)
    # highest malignant score per image: 0.9 (malignant), 0.8 and 0 (not): every malignant image ranks first
    assert result.image_auc == 1.0
    assert (result.lesions, result.images) == (2, 3)
    assert "centre" in result.rule


def test_froc_by_overlap_counts_a_detection_below_the_iou_as_false():
    loose = froc(DETECTIONS, TRUTHS, ("malignant mass",), HitRule.IOU, 0.1)
    assert loose.thresholds.tolist() == [0.9, 0.8, 0.6, 0.4]  # the 0.3 box overlaps L1 by 4/9
    strict = froc(DETECTIONS, TRUTHS, ("malignant mass",), HitRule.IOU, 0.5)
    assert strict.thresholds.tolist() == [0.9, 0.8, 0.6, 0.4, 0.3]
    assert strict.sensitivity.tolist() == [0.5, 0.5, 0.5, 1.0, 1.0]
    np.testing.assert_allclose(strict.fp_per_image, [0, 1 / 3, 2 / 3, 2 / 3, 1.0])
    assert "IoU >= 0.5" in strict.rule


def test_no_malignant_image_gives_no_auc_and_mismatched_input_is_refused():
    result = froc(DETECTIONS, [ImageTruth(t.lesions, False) for t in TRUTHS], ("malignant mass",))
    assert math.isnan(result.image_auc)
    with pytest.raises(ValueError):
        froc(DETECTIONS[:2], TRUTHS, ("malignant mass",))


def test_evaluate_command_writes_the_froc_of_a_detector(tmp_path):
    """A small Mask R-CNN trained on phantoms, evaluated through ``main.py evaluate``: tables and figure."""
    import csv
    import json

    import cv2

    from tests.helpers import run_isolated, run_main

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"n_train": 4, "phantom_size": [256, 160], "min_size": 256, "max_size": 256,
                                  "device": "cpu", "rpn_batch": 64, "roi_batch": 64, "epochs": 1}))
    trained = run_isolated(["main.py", "train", "--family", "maskrcnn", "--config", str(config), "--out",
                            str(tmp_path / "run")])
    assert trained.returncode == 0, trained.stderr[-3000:]
    out = tmp_path / "evaluation"
    done = run_main(["evaluate", "--model", str(tmp_path / "run" / "model.pt"), "--data", "phantom",
                     "--phantoms", "4", "--lesion-hit", "iou", "--min-iou", "0.1", "--out", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "IoU >= 0.1" in done.stdout and "cpm" in done.stdout
    summary = dict(csv.reader((out / "froc_summary.csv").open()))
    assert set(summary) >= {"sensitivity_at_0.25_fp", "sensitivity_at_4_fp", "cpm", "image_auc_malignant",
                            "hit_rule"}
    rates = [float(summary[f"sensitivity_at_{r}_fp"]) for r in ("0.25", "0.5", "1", "2", "4")]
    assert rates == sorted(rates) and float(summary["cpm"]) == pytest.approx(sum(rates) / 5, abs=1e-4)
    rows = list(csv.DictReader((out / "froc.csv").open()))
    assert [float(r["fp_per_image"]) for r in rows] == sorted(float(r["fp_per_image"]) for r in rows)
    # a researcher's findings: thresholds rounded to 6 decimals printed distinct ones alike; the "too few to say"
    # note was on the terminal only
    assert len({r["threshold"] for r in rows}) == len(rows)
    assert "too few to say" in summary["note"] and "too few to say" in done.stdout
    assert len(list(csv.DictReader((out / "per_image.csv").open()))) == 4
    assert cv2.imread(str(out / "froc.png")).shape == (616, 620, 3)


def test_evaluate_counts_only_the_detections_over_the_breast(tmp_path, monkeypatch):
    """As the view's probability and the screen: a detection on a marker (in the air beside the breast) is no
    detection of the evaluation either; its image-level score measured another number than the one shown."""
    import argparse
    import csv
    from types import SimpleNamespace

    import numpy as np

    import inference.families.registry as registry
    from app.cli import evaluate
    from inference.results.types import ScoredRegion

    def regions_for(image: np.ndarray) -> tuple:
        rows, cols = np.nonzero(image > 0)
        row, col = float(np.median(rows)), float(np.median(cols))  # well inside the breast
        inside = (row - 10, col - 10, row + 10, col + 10)
        air = (0.0, float(image.shape[1] - 12), 10.0, float(image.shape[1] - 2))  # a corner beside the breast
        return tuple(ScoredRegion(rank=i, box_original=box, score=score, kind="malignant mass detection",
                                  probabilities={"malignant mass": score})
                     for i, (box, score) in enumerate(((air, 0.9), (inside, 0.3)), start=1))

    class Detector:  # what the family hands back: one detection on the breast, one in the air
        def prepare(self, image, view, flip):
            return SimpleNamespace(input=image)

        def run(self, model, batch, device, mode, identity):
            return [SimpleNamespace(regions=regions_for(batch[0].input), refused="", probabilities={}, extras={},
                                    layers=(), frame=SimpleNamespace(record={}))]

    monkeypatch.setattr(registry, "get", lambda name: Detector())
    identity = SimpleNamespace(family="maskrcnn", classes=("benign mass", "malignant mass"),
                               malignancy=("malignant mass",), label="a detector")
    args = argparse.Namespace(split="all", model=str(tmp_path / "model.pt"), data="phantom", phantoms=3,
                              device="cpu", lesion_hit="centre", min_iou=None, out=str(tmp_path / "out"))
    assert evaluate._detections(args, SimpleNamespace(identity=identity, model=None)) == 0
    rows = list(csv.DictReader((tmp_path / "out" / "per_image.csv").open()))
    assert [int(r["detections"]) for r in rows] == [1, 1, 1]
    assert {float(r["highest_malignant_score"]) for r in rows} == {0.3}


def test_evaluate_stops_at_an_image_the_model_does_not_read(tmp_path, monkeypatch):
    """A refused image (pixel values beyond the model's declared input maximum) is an error naming it, never an
    image where nothing was found."""
    import argparse
    from types import SimpleNamespace

    import inference.families.registry as registry
    from app.cli import evaluate
    from inference.errors import MammoError

    class Refusing:
        def prepare(self, image, view, flip):
            return SimpleNamespace(input=image)

        def run(self, model, batch, device, mode, identity):
            return [SimpleNamespace(regions=(), refused="its pixel values reach 65535, above the input maximum")]

    monkeypatch.setattr(registry, "get", lambda name: Refusing())
    identity = SimpleNamespace(family="maskrcnn", classes=("benign mass", "malignant mass"),
                               malignancy=("malignant mass",), label="a detector")
    args = argparse.Namespace(split="all", model=str(tmp_path / "model.pt"), data="phantom", phantoms=2,
                              device="cpu", lesion_hit="centre", min_iou=None, out=str(tmp_path / "out"))
    with pytest.raises(MammoError, match="did not read this image: its pixel values reach 65535"):
        evaluate._detections(args, SimpleNamespace(identity=identity, model=None))
    assert not (tmp_path / "out").exists()
    data = _csv(tmp_path, ["b.png,R-CC,normal,"])  # a CSV's image: named with the CSV's line, as row errors are
    with pytest.raises(MammoError, match=rf"^{data}, row 2: {tmp_path / 'b.png'}: the model did not read this image"):
        evaluate._detections(_args(tmp_path, str(data)), SimpleNamespace(identity=identity, model=None))


def test_class_evaluation_stops_at_an_image_the_model_does_not_read(monkeypatch):
    """The class families' evaluation: a refused image is an error naming it, never a row of NaN probabilities."""
    from types import SimpleNamespace

    import numpy as np

    import inference.families.registry as registry
    from inference.evaluation.classes import class_probabilities
    from inference.families.protocol import Commands
    from inference.intake.views import View
    from inference.training.labelled_images import LabelledImage

    class Refusing:
        commands = Commands(evaluation="classes")

        def prepare(self, image, view, flip):
            return SimpleNamespace(input=image)

        def run(self, model, batch, device, mode, identity):
            return [SimpleNamespace(probabilities={"a": float("nan")}, refused="its pixel values reach 65535")]

    monkeypatch.setattr(registry, "get", lambda name: Refusing())
    loaded = SimpleNamespace(identity=SimpleNamespace(family="x", classes=("a",)), model=None)
    image = LabelledImage(np.zeros((8, 8), np.float32), View.L_CC, "a", None, "scan.dcm")
    with pytest.raises(ValueError, match="scan.dcm: the model did not read this image: its pixel values"):
        class_probabilities(loaded, [image])

    class Overflowing(Refusing):  # read, but its output no number: never a row of an AUC either
        def run(self, model, batch, device, mode, identity):
            return [SimpleNamespace(probabilities={"a": float("nan")}, refused="", extras={}, regions=(), layers=(),
                                    frame=SimpleNamespace(record={}))]

    monkeypatch.setattr(registry, "get", lambda name: Overflowing())
    with pytest.raises(ValueError, match=r"scan.dcm: the model's output is not a finite number \(probability of a\)"):
        class_probabilities(loaded, [image])


def test_without_lesions_the_sensitivities_are_not_available():
    """Normal images only: "0.0000" at 1/4 FP over zero lesions (and n/a beside it) read as a measured 0."""
    normals = [ImageTruth((), False), ImageTruth((), False)]
    found = [[Detection((0, 0, 2, 2), 0.9, "malignant mass")] * 3, []]  # 1.5 FP per image at once
    result = froc(found, normals, ("malignant mass",))
    assert result.lesions == 0 and all(math.isnan(v) for v in result.at_rates.values()) and math.isnan(result.cpm)
    with_lesion = froc(found, [ImageTruth((L1,), True), ImageTruth((), False)], ("malignant mass",))
    assert with_lesion.at_rates[0.25] == 0.0  # a lesion not found within the rate: a real 0


def test_the_drawn_curve_ends_at_the_axis_with_the_sensitivity_reached_there():
    from inference.evaluation.froc import curve_within

    fp, sens = np.array([0.5, 4.0, 6.0, 16.0]), np.array([1 / 3, 2 / 3, 2 / 3, 1.0])
    drawn_fp, drawn_sens = curve_within(fp, sens, 8.0)
    assert drawn_fp.tolist() == [0.5, 4.0, 6.0, 8.0] and drawn_sens.tolist() == [1 / 3, 2 / 3, 2 / 3, 2 / 3]
    assert [a.tolist() for a in curve_within(fp[:3], sens[:3], 8.0)] == [fp[:3].tolist(), sens[:3].tolist()]
    assert [a.tolist() for a in curve_within(np.array([0.5, 8.0, 9.0]), np.array([0.2, 0.4, 0.6]), 8.0)] == [
        [0.5, 8.0], [0.2, 0.4]]  # a point on the edge itself: nothing added
    assert [len(a) for a in curve_within(np.array([9.0]), np.array([0.5]), 8.0)] == [0, 0]
    assert [len(a) for a in curve_within(fp, np.full(4, np.nan), 8.0)] == [0, 0]  # no lesions: no curve


def _stub_detector(monkeypatch, score: float = 0.3):
    """The family hands back one detection on the breast of each image (the centre of its tissue)."""
    from types import SimpleNamespace

    import inference.families.registry as registry
    from inference.results.types import ScoredRegion

    def regions_for(image: np.ndarray) -> tuple:
        rows, cols = np.nonzero(image > 0)
        row, col = float(np.median(rows)), float(np.median(cols))
        return (ScoredRegion(rank=1, box_original=(row - 10, col - 10, row + 10, col + 10), score=score,
                             kind="malignant mass detection", probabilities={"malignant mass": score}),)

    calls = []  # (device, mode) of each run

    class Detector:
        def prepare(self, image, view, flip):
            return SimpleNamespace(input=image)

        def run(self, model, batch, device, mode, identity):
            calls.append((device, mode))
            return [SimpleNamespace(regions=regions_for(batch[0].input), refused="", probabilities={}, extras={},
                                    layers=(), frame=SimpleNamespace(record={}))]

    monkeypatch.setattr(registry, "get", lambda name: Detector())
    identity = SimpleNamespace(family="maskrcnn", classes=("benign mass", "malignant mass"),
                               malignancy=("malignant mass",), label="a detector", settings={"max_value": 4095.0})
    return SimpleNamespace(identity=identity, model=None, calls=calls)


def _args(tmp_path, data="phantom", **values):
    import argparse

    return argparse.Namespace(**{"split": "all", "model": str(tmp_path / "model.pt"), "data": data, "phantoms": 2,
                                 "device": "cpu", "lesion_hit": "centre", "min_iou": None,
                                 "out": str(tmp_path / "out"), **values})


def _csv(tmp_path, rows: list[str]):
    """Two small synthetic views (a bright lesion each) and a CSV of ``rows`` (path, view, label, mask)."""
    from tests.helpers import synthetic_view, write_png

    for name, view in (("a.png", "L-CC"), ("b.png", "R-CC")):
        write_png(tmp_path / name, synthetic_view(view, (200, 100 if view == "L-CC" else 140), shape=(400, 240)))
    mask = np.zeros((400, 240), np.uint8)
    mask[190:210, 90:110] = 255
    write_png(tmp_path / "a_mask.png", mask)
    write_png(tmp_path / "blank.png", np.zeros((400, 240), np.uint8))
    path = tmp_path / "test.csv"
    path.write_text("\n".join(["path,view,label,mask", *rows]) + "\n")
    return path


def test_evaluate_refuses_lesion_rows_without_their_mask_naming_them(tmp_path, monkeypatch):
    """Seen hands-on: a malignant row with no mask (or a blank one) was left without lesions, its detections
    counted as false positives, while train refused the same CSV."""
    from app.cli import evaluate
    from inference.errors import MammoError

    loaded = _stub_detector(monkeypatch)
    data = _csv(tmp_path, ["a.png,L-CC,malignant,a_mask.png", "b.png,R-CC,malignant,", "a.png,L-CC,benign,blank.png",
                           "b.png,R-CC,normal,"])
    with pytest.raises(MammoError, match=rf"^{data}, rows 3, 4: a benign or malignant image needs its lesion mask to "
                                         "evaluate a detector"):
        evaluate._detections(_args(tmp_path, str(data)), loaded)
    assert not (tmp_path / "out").exists()


def test_an_image_listed_once_per_lesion_is_evaluated_once_with_all_its_lesions(tmp_path, monkeypatch):
    """CBIS-DDSM lists an image once per ROI: evaluated row by row, the image counted twice, once as a cancer
    and once not (AUC 0.5), and the detection of one lesion was a false positive of the other row (a
    researcher's hands-on test)."""
    import csv

    from app.cli import evaluate
    from tests.helpers import write_png

    loaded = _stub_detector(monkeypatch)
    data = _csv(tmp_path, ["a.png,L-CC,malignant,a_mask.png", "b.png,R-CC,normal,", "a.png,L-CC,benign,far.png"])
    far = np.zeros((400, 240), np.uint8)
    far[20:40, 20:40] = 255
    write_png(tmp_path / "far.png", far)
    assert evaluate._detections(_args(tmp_path, str(data)), loaded) == 0
    summary = dict(csv.reader((tmp_path / "out" / "froc_summary.csv").open()))
    assert (summary["images"], summary["lesions"]) == ("2", "2")
    rows = list(csv.DictReader((tmp_path / "out" / "per_image.csv").open()))
    assert [(r["image"].rsplit("/", 1)[-1], r["label"], r["lesions"]) for r in rows] == [
        ("a.png", "benign+malignant", "2"), ("b.png", "normal", "0")]
    # one detection on each image, both scored 0.3: a cancer image and a normal one tie
    assert summary["image_auc_malignant"] == "0.5000"


def test_evaluate_without_lesions_says_n_a_and_draws_no_curve(tmp_path, monkeypatch, capsys):
    import csv

    import app.validation.figures as figures
    from app.cli import evaluate
    from app.validation.figures import froc_steps

    drawn = []
    monkeypatch.setattr(figures, "froc_figure", lambda fp, sens, *rest: drawn.append((fp, sens)) or np.zeros(
        (8, 8, 3), np.uint8))
    loaded = _stub_detector(monkeypatch)
    data = _csv(tmp_path, ["a.png,L-CC,normal,", "b.png,R-CC,normal,"])
    assert evaluate._detections(_args(tmp_path, str(data)), loaded) == 0
    printed = capsys.readouterr()
    assert "sensitivity_at_0.25_fp  n/a" in printed.out and "cpm                     n/a" in printed.out
    summary = dict(csv.reader((tmp_path / "out" / "froc_summary.csv").open()))
    assert {summary[f"sensitivity_at_{r}_fp"] for r in ("0.25", "0.5", "1", "2", "4")} == {"n/a"}
    assert summary["cpm"] == "n/a" and summary["lesions"] == "0"
    assert {row["sensitivity"] for row in csv.DictReader((tmp_path / "out" / "froc.csv").open())} == {"n/a"}
    ((fp, sens),) = drawn
    assert froc_steps(fp, sens) == ([], [])  # no lesions: no line
    # progress into a log (stderr is no terminal here): whole lines, never "1/22/2" run together by "\r"
    assert "\r" not in printed.err and printed.err.splitlines()[-1].startswith("2/2")


def test_the_froc_figure_draws_the_curve_cut_at_its_axis():
    """Points beyond the axis's 8 FP per image were drawn on its edge: the curve seemed to reach 1.0 at 8 FP while
    froc.csv said 0.667 there (1.0 only at 16)."""
    from app.validation.figures import froc_figure, froc_steps

    xs, ys = froc_steps(np.array([0.5, 4.0, 6.0, 16.0]), np.array([1 / 3, 2 / 3, 2 / 3, 1.0]))
    assert xs[-1] == 3.0 and max(xs) == 3.0  # log2(8): the axis's end
    assert ys[-1] == pytest.approx(2 / 3) and max(ys) == pytest.approx(2 / 3)
    assert froc_figure(np.array([0.5, 16.0]), np.array([0.5, 1.0]), "t").shape == (616, 620, 3)


def test_min_iou_with_the_centre_rule_is_refused(tmp_path, monkeypatch):
    """``--min-iou 0.7`` with the default ``--lesion-hit centre`` was silently ignored."""
    from app.cli import evaluate
    from inference.errors import MammoError

    for given in (0.7, 0.1):  # 0.1, the value used when it is not given, was not noticed when given
        with pytest.raises(MammoError, match=f"--min-iou {given:g} is the overlap of --lesion-hit iou; with "
                                             "--lesion-hit centre"):
            evaluate._detections(_args(tmp_path, min_iou=given), _stub_detector(monkeypatch))


def test_the_evaluations_files_are_written_all_or_none(tmp_path, monkeypatch):
    """A froc.png that was a folder left the new CSVs beside the old ones: a set mixing two runs."""
    import os

    from app.cli import evaluate
    from inference.errors import MammoError

    out = tmp_path / "out"
    out.mkdir()
    old = {"froc.csv": "old curve", "froc_summary.csv": "old summary"}
    for name, text in old.items():
        (out / name).write_text(text)
    (out / "froc.png").mkdir()
    new = {"froc.csv": "new curve", "froc_summary.csv": "new summary", "per_image.csv": "new", "froc.png": b"png"}
    with pytest.raises(MammoError, match=rf"^{out / 'froc.png'}: a folder is where the evaluation's froc.png goes"):
        evaluate._write(new, out)
    assert {p.name: p.read_text() for p in out.iterdir() if p.is_file()} == old
    (out / "froc.png").rmdir()
    real_replace = os.replace

    def failing(source, target):  # the third file's move fails (a full disk, a file made read-only meanwhile)
        if os.fspath(target) == str(out / "per_image.csv"):
            raise PermissionError(13, "Permission denied")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(MammoError, match=r"per_image.csv: the evaluation's per_image.csv could not be written "
                                         r"\(Permission denied\); none"):
        evaluate._write(new, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(old)  # the old set, no temporary folder left
    assert {name: (out / name).read_text() for name in old} == old
    (out / "froc.png").write_bytes(b"old png")
    old["froc.png"] = "old png"

    pressed = []

    def interrupted(source, target):  # Ctrl+C between setting an old file aside and moving the new one in
        if os.fspath(target) == str(out / "froc.png") and not pressed:
            pressed.append(True)
            raise KeyboardInterrupt
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate._write(new, out)
    assert {p.name: p.read_text() for p in out.iterdir()} == old  # the old set whole, froc.png among it
    monkeypatch.setattr(os, "replace", real_replace)
    evaluate._write(new, out)
    assert (out / "froc.csv").read_text() == "new curve" and (out / "froc.png").read_bytes() == b"png"
    assert sorted(p.name for p in out.iterdir()) == sorted(new)


def test_the_detector_options_are_refused_for_a_model_not_measured_by_lesions(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import inference.weights as weights
    from app.cli import evaluate
    from inference.errors import MammoError

    monkeypatch.setattr(weights, "load_model", lambda path: SimpleNamespace(identity=SimpleNamespace(
        family="sliding-window")))
    for option in ({"lesion_hit": "iou"}, {"min_iou": 0.5}):
        with pytest.raises(MammoError, match="--lesion-hit and --min-iou are for detectors"):
            evaluate.run(_args(tmp_path, **option))


@pytest.mark.parametrize("command", ["evaluate", "calibrate"])
def test_phantoms_with_a_csv_is_refused_not_ignored(tmp_path, capsys, command):
    """``--phantoms 3`` beside a CSV ran on the CSV's images without a word (a researcher's hands-on test)."""
    from main import main

    status = main([command, "--model", str(tmp_path / "none.pt"), "--data", str(tmp_path / "test.csv"),
                   "--phantoms", "3"])
    assert status == 2
    assert f"--phantoms 3 is for --data phantom; with --data {tmp_path / 'test.csv'}" in capsys.readouterr().err


def test_evaluate_resolves_the_device_as_analyze_and_runs_the_mode_asked_for(tmp_path, monkeypatch, capsys):
    """Seen hands-on: --device auto crashed (device string 'auto'), --device cuda without a GPU crashed (Torch not
    compiled with CUDA) where analyze runs on the CPU with a notice, and --mode fast was run as exact."""
    import torch

    from app.cli import evaluate

    loaded = _stub_detector(monkeypatch)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert evaluate._detections(_args(tmp_path, device="auto", mode="fast", out=None), loaded) == 0
    assert {call for call in loaded.calls} == {(torch.device("cpu"), "fast")}
    assert "notice" not in capsys.readouterr().out
    loaded.calls.clear()
    assert evaluate._detections(_args(tmp_path, device="cuda", out=None), loaded) == 0
    assert {call for call in loaded.calls} == {(torch.device("cpu"), "exact")}
    assert "notice: CUDA was requested but no usable GPU was found; running on the CPU" in capsys.readouterr().out


def test_an_image_spelt_two_ways_in_the_csv_has_the_labels_of_all_its_rows(tmp_path, monkeypatch):
    """per_image.csv gave a.png the label of its first spelling's rows only ("benign" for an image with a
    malignant lesion written as ../folder/a.png): the lesions were merged by the resolved path, the labels not."""
    import csv

    from app.cli import evaluate
    from tests.helpers import write_png

    loaded = _stub_detector(monkeypatch)
    far = np.zeros((400, 240), np.uint8)
    far[20:40, 20:40] = 255
    data = _csv(tmp_path, ["a.png,L-CC,benign,a_mask.png", f"../{tmp_path.name}/a.png,L-CC,malignant,far.png",
                           "b.png,R-CC,normal,"])
    write_png(tmp_path / "far.png", far)
    assert evaluate._detections(_args(tmp_path, str(data)), loaded) == 0
    rows = list(csv.DictReader((tmp_path / "out" / "per_image.csv").open()))
    assert [(r["image"].rsplit("/", 1)[-1], r["label"], r["lesions"]) for r in rows] == [
        ("a.png", "benign+malignant", "2"), ("b.png", "normal", "0")]


def test_an_image_level_auc_from_a_few_images_says_so(tmp_path, monkeypatch, capsys):
    """An AUC of one cancer against one other image was printed bare, where the window classifiers' evaluation
    says it is too few to say."""
    from app.cli import evaluate

    loaded = _stub_detector(monkeypatch)
    data = _csv(tmp_path, ["a.png,L-CC,malignant,a_mask.png", "b.png,R-CC,normal,"])
    assert evaluate._detections(_args(tmp_path, str(data), out=None), loaded) == 0
    assert ("note: image_auc_malignant is from 1 malignant and 1 other image(s): too few to say"
            in capsys.readouterr().out)


def test_evaluate_says_the_intake_notes_of_an_8_bit_image_once(tmp_path, monkeypatch, capsys):
    """The intake's "8-bit image" note was dropped, and nothing said that the detector reads such an image
    divided by its 12-bit maximum."""
    from app.cli import evaluate
    from tests.helpers import synthetic_view, write_png

    loaded = _stub_detector(monkeypatch)
    data = _csv(tmp_path, ["a.png,L-CC,malignant,a_mask.png", "c.png,R-CC,normal,", "c.png,R-CC,normal,"])
    write_png(tmp_path / "c.png", (synthetic_view("R-CC", (200, 140), shape=(400, 240)) // 16).astype(np.uint8))
    assert evaluate._detections(_args(tmp_path, str(data), out=None), loaded) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]
    assert [line for line in notes if "8-bit" in line] == [
        f"note: {tmp_path / 'c.png'}: 8-bit image: only 256 grey levels (mammograms are usually 12 to 16 bit)"]
    assert f"note: {tmp_path / 'c.png'}: the detector reads its grey levels 0 to 255 against its input maximum " \
           "4095, as if they were 1/16.0588 as bright (an analysis refuses such a view)" in notes
