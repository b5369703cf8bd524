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

    from tests.helpers import run_isolated

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"n_train": 4, "phantom_size": [256, 160], "min_size": 256, "max_size": 256,
                                  "device": "cpu", "rpn_batch": 64, "roi_batch": 64, "epochs": 1}))
    trained = run_isolated(["main.py", "train", "--family", "maskrcnn", "--config", str(config), "--out",
                            str(tmp_path / "run")])
    assert trained.returncode == 0, trained.stderr[-3000:]
    out = tmp_path / "evaluation"
    done = run_isolated(["main.py", "evaluate", "--model", str(tmp_path / "run" / "model.pt"), "--data", "phantom",
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
    assert len(list(csv.DictReader((out / "per_image.csv").open()))) == 4
    assert cv2.imread(str(out / "froc.png")).shape == (600, 620, 3)


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
            return [SimpleNamespace(regions=regions_for(batch[0].input), refused="")]

    monkeypatch.setattr(registry, "get", lambda name: Detector())
    identity = SimpleNamespace(family="maskrcnn", classes=("benign mass", "malignant mass"),
                               malignancy=("malignant mass",), label="a detector")
    args = argparse.Namespace(split="all", model=str(tmp_path / "model.pt"), data="phantom", phantoms=3,
                              device="cpu", lesion_hit="centre", min_iou=0.1, out=str(tmp_path / "out"))
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
                              device="cpu", lesion_hit="centre", min_iou=0.1, out=str(tmp_path / "out"))
    with pytest.raises(MammoError, match="did not read this image: its pixel values reach 65535"):
        evaluate._detections(args, SimpleNamespace(identity=identity, model=None))
    assert not (tmp_path / "out").exists()


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
