"""The sliding-window classifier: tissue mask, window grid and tissue skipping, overlap averaging, the
max-window decision, temperature scaling, training, calibration and evaluation from the command line."""

from __future__ import annotations

import dataclasses
import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from inference.families.sliding_window.family import CLASSES, WindowSettings, prepare_windows
from inference.evaluation.metrics import roc_auc
from inference.intake.phantom import Finding, render_view
from inference.evaluation.temperature import (
    calibrate_logits,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
    softmax,
    unusable_fit,
)
from inference.intake.views import View
from inference.training.labelled_images import AMBIGUOUS, LabelledImage, csv_images, window_labels
from inference.families.sliding_window.windows import average_maps, cut_windows, tissue_mask, window_grid
from inference.weights import read_state_dict
from tests.helpers import make_window_stub, run_isolated, run_main, synthetic_view, write_png

# ------------------------------------------------------------------------------------------------- windows


@pytest.mark.parametrize("view", list(View))
def test_the_otsu_mask_is_the_breast_on_phantoms(view):
    phantom = render_view(view, [Finding("round")], np.random.default_rng(7))
    mask = tissue_mask(phantom.image).full()
    breast = phantom.breast_mask
    assert (mask & breast).sum() / (mask | breast).sum() > 0.97
    assert not mask[phantom.image == 0].mean() > 0.02  # background stays background


def test_the_mask_keeps_the_largest_component_and_fills_its_holes():
    image = np.zeros((800, 600), np.float32)
    rows, cols = np.mgrid[0:800, 0:600]
    image[(rows - 400) ** 2 + (cols - 250) ** 2 < 220**2] = 1000
    image[(rows - 400) ** 2 + (cols - 250) ** 2 < 40**2] = 50  # dark fat inside the breast
    image[20:60, 540:580] = 3000  # a bright marker in the corner
    mask = tissue_mask(image).full()
    assert mask[400, 250] and mask[400, 100]
    assert not mask[40, 560] and not mask[790, 10]


def test_an_empty_image_has_an_empty_mask_and_the_view_says_so():
    prepared = prepare_windows(np.zeros((300, 200), np.uint16), View.L_CC)
    assert not prepared.tissue.cells.any() and "no breast" in prepared.warnings[0]


def test_the_grid_covers_every_cell_and_skips_windows_off_the_breast():
    h, w = 1000, 700
    mask_image = np.zeros((h, w), np.float32)
    mask_image[:, :300] = 1000  # tissue on the left 300 columns only
    mask = tissue_mask(mask_image)
    everything = window_grid(mask, 256, 128, 0.0)
    assert everything.cells == (8, 6) and everything.candidates == len(everything.origins) == 7 * 5
    _, count = average_maps(np.ones((len(everything.origins), 1)), everything)
    assert count.min() >= 1  # every cell, edges included, is covered
    assert count[0, 0] == 1 and count[3, 3] == 4  # corners by one window, the inside by (256 / 128)^2
    kept = window_grid(mask, 256, 128, 0.25)
    padded = np.zeros((h + 256, w + 256), bool)
    padded[:h, :w] = mask.full()
    for (r, c), fraction in zip(kept.origins, kept.tissue, strict=True):
        assert fraction == pytest.approx(padded[r: r + 256, c: c + 256].mean()) and fraction >= 0.25
    assert kept.skipped > 0 and all(c < 300 for _, c in kept.origins)


@pytest.mark.parametrize("overlap, stride", [(0.0, 256), (0.5, 128), (0.75, 64)])
def test_overlap_gives_the_stride(overlap, stride):
    assert WindowSettings(overlap=overlap).stride == stride


@pytest.mark.parametrize("bad", [{"overlap": 0.8}, {"overlap": 0.3}, {"min_tissue": 1.5}, {"temperature": 0.0}])
def test_bad_window_settings_are_refused(bad):
    with pytest.raises(ValueError):
        WindowSettings(**bad)


def test_top_windows_pass_over_the_neighbours_of_a_better_one():
    from inference.families.sliding_window.windows import top_windows

    origins = np.array([[0, 0], [0, 128], [0, 256], [128, 128], [512, 512]])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1])
    assert top_windows(scores, 3).tolist() == [0, 1, 2]  # plain ranking
    # [0, 128] shares half of window 0 and is passed over; [128, 128] shares a quarter with 0 and with 2: kept
    assert top_windows(scores, 4, origins, 256).tolist() == [0, 2, 3, 4]
    assert top_windows(scores, 4, origins, 256, max_overlap=0.2).tolist() == [0, 2, 4]


def test_cut_windows_fill_past_the_edge():
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    (window,) = cut_windows(image, np.array([[2, 2]]), 3, fill=-1)
    assert window.tolist() == [[10, 11, -1], [-1, -1, -1], [-1, -1, -1]]


def test_a_constant_classifier_gives_a_constant_map_edges_included():
    stub = make_window_stub()
    constant = dataclasses.replace(stub, model=ConstantClassifier(stub.model.config))
    from inference.pipeline import analyze_exam

    image = synthetic_view("L-CC", (700, 300), shape=(1500, 900))
    result = analyze_exam({View.L_CC: image}, constant, device="cpu")
    entry = result.views[View.L_CC].entries[result.entries[0].id]
    expected = softmax(np.array([[0.3, -0.2, 0.1, 0.5]]))[0]
    for k, name in enumerate(CLASSES):
        layer = next(layer for layer in entry.layers if layer.class_name == name and layer.name == "window average")
        covered = layer.values[layer.values > 0]
        assert covered.size > 20 and np.allclose(covered, expected[k], atol=1e-6)
        assert entry.probabilities[name] == pytest.approx(expected[k], abs=1e-6)
    # the edge cells of the breast are as bright as the inside (a count map divides)
    layer = entry.layer("malignant")
    assert np.allclose(layer.values[:, 0][layer.values[:, 0] > 0], expected[3], atol=1e-6)


class ConstantClassifier(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config

    def forward(self, x):
        return torch.tensor([[0.3, -0.2, 0.1, 0.5]], dtype=x.dtype).expand(x.shape[0], 4)


def test_the_view_is_flagged_by_its_most_suspicious_window():
    from inference.families.sliding_window.family import read_view
    from inference.pipeline import analyze_exam

    stub = make_window_stub(top=3)
    lesion = (700, 300)
    image = synthetic_view("L-CC", lesion, shape=(1500, 900))
    result = analyze_exam({View.L_CC: image}, stub, device="cpu")
    entry = result.views[View.L_CC].entries[result.entries[0].id]
    read = read_view(stub.model, prepare_windows(image, View.L_CC), torch.device("cpu"), "exact",
                     WindowSettings(**stub.identity.settings), 32)
    windows = softmax(read.logits)
    for k, name in enumerate(CLASSES):
        assert entry.probabilities[name] == pytest.approx(windows[:, k].max())
    assert result.exam[result.entries[0].id].malignant == pytest.approx(windows[:, 3].max())
    scores = [region.score for region in entry.regions]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True) and scores[0] == pytest.approx(windows[:, 3].max())
    top, left, bottom, right = entry.regions[0].box_original
    assert top <= lesion[0] < bottom and left <= lesion[1] < right and bottom - top == 256
    assert entry.regions[0].kind == "window probability" and set(entry.regions[0].probabilities) == set(CLASSES)
    assert entry.regions[0].pixels.shape == (256, 256)
    for i, a in enumerate(entry.regions):  # distinct places: no region shares over a quarter of another's area
        for b in entry.regions[i + 1:]:
            rows = max(0.0, min(a.box_original[2], b.box_original[2]) - max(a.box_original[0], b.box_original[0]))
            cols = max(0.0, min(a.box_original[3], b.box_original[3]) - max(a.box_original[1], b.box_original[1]))
            assert rows * cols <= 0.25 * 256 * 256
    tissue = next(layer for layer in entry.layers if layer.name == "tissue mask")
    assert tissue.class_name is None and not tissue.primary and not tissue.smooth
    assert entry.frame.record["windows"] == len(read.logits) and entry.frame.record["stride"] == 128
    # the malignant map peaks over the lesion, in the stored image's frame
    values = entry.layer("malignant").in_original(image.shape)
    r, c = np.unravel_index(np.argmax(values), values.shape)
    assert abs(r - lesion[0]) < 256 and abs(c - lesion[1]) < 256
    assert entry.layer("no_tumour") is None  # the background class is a layer to choose, not a main map


def test_the_temperature_divides_the_logits():
    from inference.pipeline import analyze_exam

    image = synthetic_view("R-CC", (600, 500), shape=(1400, 800))
    plain = analyze_exam({View.R_CC: image}, make_window_stub(), device="cpu")
    warm = analyze_exam({View.R_CC: image}, make_window_stub(temperature=2.0), device="cpu")
    a = plain.views[View.R_CC].entries[plain.entries[0].id].regions[0]
    b = warm.views[View.R_CC].entries[warm.entries[0].id].regions[0]
    logits = np.log([a.probabilities[c] for c in CLASSES])
    assert [b.probabilities[c] for c in CLASSES] == pytest.approx(softmax(logits[None], 2.0)[0].tolist(), abs=1e-9)


# ------------------------------------------------------------------------------------------------- calibration


def _miscalibrated(temperature: float, n: int = 4000, seed: int = 0):
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0, 1.5, (n, 4))
    labels = np.array([rng.choice(4, p=p) for p in softmax(true_logits)])
    return true_logits * temperature, labels  # logits that are `temperature` times too confident


def test_temperature_scaling_recovers_a_known_miscalibration():
    logits, labels = _miscalibrated(3.0)
    fit = calibrate_logits(logits, labels, bins=15)
    assert fit.temperature == pytest.approx(3.0, rel=0.1)
    assert fit.ece_after < 0.5 * fit.ece_before and fit.nll_after < fit.nll_before
    assert (softmax(logits).argmax(1) == softmax(logits, fit.temperature).argmax(1)).all()
    assert fit_temperature(*_miscalibrated(1.0)) == pytest.approx(1.0, abs=0.1)  # calibrated stays


def test_ece_by_hand():
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 0])
    # bins of width 0.5: confidences 0.9, 0.8 in (0.5, 1] (accuracy 0.5), 0.7, 0.55 also there: all four
    bins = reliability_bins(probabilities, labels, bins=2)
    assert bins.count.tolist() == [0, 4]
    confidence = np.mean([0.9, 0.8, 0.7, 0.55])
    assert expected_calibration_error(probabilities, labels, bins=2) == pytest.approx(abs(0.5 - confidence))


def test_the_reliability_diagram_is_a_png_with_two_panels(tmp_path):
    from inference.evaluation.reliability_diagram import write_reliability_diagram

    fit = calibrate_logits(*_miscalibrated(2.0, 800), bins=10)
    path = write_reliability_diagram(fit, tmp_path / "diagram.png", "test data")
    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] > 1.8 * image.shape[0] * 0.8
    left, right = image[:, : image.shape[1] // 2], image[:, image.shape[1] // 2:]
    assert (left != 255).any() and (right != 255).any() and not np.array_equal(left, right)


def test_roc_auc_matches_the_pairwise_definition():
    rng = np.random.default_rng(3)
    scores, truth = rng.integers(0, 6, 400).astype(float), rng.integers(0, 2, 400)
    d = scores[truth == 1][:, None] - scores[truth == 0][None, :]
    assert roc_auc(scores, truth) == pytest.approx(((d > 0) + 0.5 * (d == 0)).mean())
    assert np.isnan(roc_auc(scores, np.ones(400)))


# ------------------------------------------------------------------------------------------------- labels


def test_window_labels_follow_the_lesion_mask():
    lesion = np.zeros((600, 600), bool)
    lesion[300:340, 300:340] = True
    image = LabelledImage(np.zeros((600, 600), np.uint16), View.L_CC, "benign", lesion, "test")
    origins = np.array([[200, 200], [0, 0], [325, 325], [100, 100]])
    labels = window_labels(image, origins, 256, CLASSES)
    # whole lesion; none of it; a 14 % sliver (ambiguous); the whole lesion again (100 + 256 > 340)
    assert labels.tolist() == [2, 0, AMBIGUOUS, 2]
    normal = dataclasses.replace(image, label="no_tumour", lesion=None)
    assert window_labels(normal, origins, 256, CLASSES).tolist() == [0, 0, 0, 0]
    unmasked = dataclasses.replace(image, lesion=None)
    assert (window_labels(unmasked, origins, 256, CLASSES) == AMBIGUOUS).all()


def test_a_csv_of_images_and_masks_is_read_and_its_errors_name_the_row(tmp_path):
    image = synthetic_view("L-CC", (500, 300), shape=(1000, 600))
    cv2.imwrite(str(tmp_path / "a.png"), image)
    mask = np.zeros(image.shape, np.uint8)
    mask[470:530, 270:330] = 255
    cv2.imwrite(str(tmp_path / "a_mask.png"), mask)
    (tmp_path / "data.csv").write_text("path,view,label,mask\na.png,L-CC,malignant,a_mask.png\na.png,L-CC,no_tumour,\n")
    images = csv_images(tmp_path / "data.csv", CLASSES)
    assert [i.label for i in images] == ["malignant", "no_tumour"] and images[0].lesion.sum() == 3600
    (tmp_path / "bad.csv").write_text("path,view,label\na.png,L-CC,cancer\n")
    with pytest.raises(ValueError, match=r"bad.csv, row 2: unknown label 'cancer'"):
        csv_images(tmp_path / "bad.csv", CLASSES)
    cv2.imwrite(str(tmp_path / "small_mask.png"), mask[:500])
    (tmp_path / "size.csv").write_text("path,view,label,mask\na.png,L-CC,benign,small_mask.png\n")
    with pytest.raises(ValueError, match=r"size.csv, row 2: the mask is 600 x 500 pixels"):
        csv_images(tmp_path / "size.csv", CLASSES)


# ------------------------------------------------------------------------------------------------- training


def test_window_training_memory_format():
    from inference.families.gmic.training import training_memory_format
    from inference.families.sliding_window.training import window_training_memory_format

    cpu = torch.device("cpu")
    assert window_training_memory_format(cpu, 4) == torch.contiguous_format  # crashes in channels-last (AVX2)
    assert window_training_memory_format(cpu, 16) == training_memory_format(cpu)
    assert window_training_memory_format(cpu, 4, "channels_last") == torch.channels_last  # asked for


@pytest.mark.timeout(600)
def test_a_short_training_run_is_deterministic_resumes_and_is_calibrated(tiny_window_model, tmp_path):
    from inference.weights import load_model
    from tests.conftest import TINY_WINDOW_TRAINING

    meta = json.loads(tiny_window_model.with_name("model.pt.json").read_text())
    assert meta["family"] == "sliding-window" and meta["classes"] == list(CLASSES)
    calibration = meta["calibration"]
    assert calibration["method"] == "temperature" and calibration["temperature"] > 0
    assert len(calibration["reliability"]["after"]["count"]) == 15 and "held-out phantom" in calibration["data"]
    assert {"image_auc_malignant", "window_accuracy", "ece_before", "ece_after"} <= set(meta["evaluation"])
    loaded = load_model(tiny_window_model)
    assert loaded.identity.family == "sliding-window" and loaded.identity.settings["temperature"] == pytest.approx(
        calibration["temperature"])
    assert loaded.model.config.width == 4 and loaded.identity.classes == CLASSES
    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY_WINDOW_TRAINING))
    again = run_isolated(["main.py", "train", "--family", "sliding-window", "--config", str(config), "--out",
                          str(tmp_path / "b")])
    assert again.returncode == 0, again.stderr[-3000:]
    first = read_state_dict(tiny_window_model)
    second = read_state_dict(tmp_path / "b" / "model.pt")
    assert all(torch.equal(first[k], second[k]) for k in first)  # same seed, same weights
    config.write_text(json.dumps({**TINY_WINDOW_TRAINING, "epochs": 2}))
    resumed = run_isolated(["main.py", "train", "--family", "sliding-window", "--config", str(config), "--out",
                            str(tmp_path / "b")])
    assert resumed.returncode == 0 and "resumed from epoch 1" in resumed.stderr
    history = json.loads((tmp_path / "b" / "model.pt.json").read_text())["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def test_calibrate_stores_the_temperature_and_writes_the_diagram(tiny_window_model, tmp_path):
    model = tmp_path / "model.pt"
    shutil.copy(tiny_window_model, model)
    sidecar = tmp_path / "model.pt.json"
    meta = json.loads(tiny_window_model.with_name("model.pt.json").read_text())
    meta["calibration"]["operating_points"] = [{"name": "old", "threshold": 0.5}]
    meta["evaluation"] = {"data": "held-out views", "ece": 0.1}  # the training's, at its temperature
    sidecar.write_text(json.dumps(meta))
    done = run_main(["calibrate", "--model", str(model), "--data", "phantom", "--phantoms", "8",
                     "--bins", "10", "--device", "cpu"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "before" in done.stdout and "after" in done.stdout and "operating point(s)" in done.stderr
    stored = json.loads(sidecar.read_text())["calibration"]
    assert stored["data"] == "8 phantom views (seed 50000)" and stored["reliability"]["bins"] == 10
    assert "operating_points" not in stored and stored["diagram"] == "model.pt.reliability.png"
    assert cv2.imread(str(tmp_path / "model.pt.reliability.png")) is not None
    temperature = float(done.stdout.split("T = ")[1].split()[0])
    assert stored["temperature"] == pytest.approx(temperature, abs=1e-4)
    # a researcher's test: the training's evaluation stood as if current, measured at the old temperature
    evaluation = json.loads(sidecar.read_text())["evaluation"]
    assert evaluation["ece"] == 0.1 and evaluation["note"].startswith("measured before this calibration")
    before, diagram = sidecar.read_text(), (tmp_path / "model.pt.reliability.png").read_bytes()
    dry = run_main(["calibrate", "--model", str(model), "--data", "phantom", "--phantoms", "6",
                    "--dry-run", "--device", "auto"])  # as analyze takes it ("device string 'auto'" crashed it)
    assert dry.returncode == 0 and sidecar.read_text() == before
    # the diagram the metadata names is the stored calibration's; the dry run's goes beside it
    assert (tmp_path / "model.pt.reliability.png").read_bytes() == diagram
    assert cv2.imread(str(tmp_path / "model.pt.reliability.dry-run.png")) is not None


def test_a_temperature_that_makes_every_output_the_same_is_never_stored(tiny_window_model, tmp_path, monkeypatch):
    """A reviewer calibrated the phantom-trained demo classifier on four real views: the fit ran off to
    T = 3.6e8, was stored, and the model then gave every class of every image 25 %. Such a fit is refused with
    what it means (nothing written); a model stored with such a temperature is refused at load, and calibrate
    reads it at T = 1 to fit it anew."""
    from inference.errors import CheckpointError  # noqa: PLC0415
    from inference.weights import load_model  # noqa: PLC0415
    import inference.families.sliding_window.evaluation as evaluation  # noqa: PLC0415

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 400)
    guess = calibrate_logits(rng.normal(0, 3, (400, 4)), labels)  # confident, and no better than a guess
    assert guess.temperature > 1e3 and "no better than a uniform guess" in unusable_fit(guess, 4)
    perfect = calibrate_logits(np.eye(4)[labels] * 0.5 + rng.normal(0, 0.05, (400, 4)), labels)  # all right
    assert perfect.temperature < 0.05 and "every output 0 or 1" in unusable_fit(perfect, 4)
    assert unusable_fit(calibrate_logits(*_miscalibrated(3.0)), 4) == ""
    model, sidecar = tmp_path / "model.pt", tmp_path / "model.pt.json"
    shutil.copy(tiny_window_model, model)
    shutil.copy(tiny_window_model.with_name("model.pt.json"), sidecar)
    before = sidecar.read_text()
    monkeypatch.setattr(evaluation, "fit_on_readings", lambda readings, bins: guess)
    refused = run_main(["calibrate", "--model", str(model), "--data", "phantom", "--phantoms", "2",
                        "--device", "cpu"])
    assert refused.returncode == 2 and "no better than a uniform guess" in refused.stderr
    assert "Nothing was written" in refused.stderr and "Traceback" not in refused.stderr
    assert sidecar.read_text() == before and not (tmp_path / "model.pt.reliability.png").exists()
    monkeypatch.undo()
    meta = json.loads(before)
    meta["calibration"]["temperature"] = 3.6e8  # stored so by an earlier version
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="every class equally likely"):
        load_model(model)
    again = run_main(["calibrate", "--model", str(model), "--data", "phantom", "--phantoms", "4", "--device", "cpu"])
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(sidecar.read_text())["calibration"]["temperature"] < 1e3 and load_model(model)


def test_a_training_whose_temperature_fit_runs_off_keeps_no_model(tmp_path, monkeypatch):
    """The same refusal at the end of a training: no model.pt that would read every image the same; the
    training checkpoint stays to train on."""
    import inference.families.sliding_window.training as training  # noqa: PLC0415
    from inference.training.resume import TRAINED_MODEL, TRAINING_CHECKPOINT  # noqa: PLC0415
    from tests.conftest import TINY_WINDOW_TRAINING  # noqa: PLC0415

    monkeypatch.setattr(training, "unusable_fit", lambda fit, classes: "the fit drove the temperature to 4.2e+09")
    config = training.WindowTrainConfig(**{**TINY_WINDOW_TRAINING, "n_train": 8, "n_val": 4}, out=str(tmp_path))
    with pytest.raises(ValueError, match=r"4.2e\+09 \(on .*\); the training checkpoint stays in .*: train on"):
        training.train_windows(config, progress=lambda text: None)
    assert not (tmp_path / TRAINED_MODEL).exists() and (tmp_path / TRAINING_CHECKPOINT).is_file()


def test_calibrate_refuses_other_families_and_bad_data(tiny_window_model, tmp_path):
    from app.demo import demo_model_path

    gmic = run_main(["calibrate", "--model", str(demo_model_path()), "--data", "phantom"])
    assert gmic.returncode != 0 and "window classifiers" in gmic.stderr and "gmic" in gmic.stderr
    folder = run_main(["calibrate", "--model", str(tiny_window_model), "--data", "phantom", "--diagram",
                       str(tmp_path)])  # a reviewer's: "error: …: Is a directory", status 1, after reading the data
    assert folder.returncode == 2 and f"{tmp_path}: this is a folder: --diagram takes the PNG file" in folder.stderr
    missing = run_main(["calibrate", "--model", str(tiny_window_model), "--data",
                        str(tmp_path / "nowhere.csv")])
    assert missing.returncode != 0 and "nowhere.csv" in missing.stderr and "Traceback" not in missing.stderr


def test_a_validation_split_of_normal_images_only_is_refused_before_training(tmp_path):
    """The last 20 % of a CSV held no_tumour images only: every epoch ran, then the temperature fit failed
    ("the data gives 89 windows of 1 class") and left a model.pt without its metadata (a researcher's test)."""
    from inference.families.sliding_window.training import WindowTrainConfig, train_windows

    image = synthetic_view("L-CC", (500, 300), shape=(1000, 600))
    cv2.imwrite(str(tmp_path / "a.png"), image)
    mask = np.zeros(image.shape, np.uint8)
    mask[470:530, 270:330] = 255
    cv2.imwrite(str(tmp_path / "a_mask.png"), mask)
    rows = ["a.png,L-CC,malignant,a_mask.png"] * 4 + ["a.png,L-CC,no_tumour,"]
    (tmp_path / "data.csv").write_text("path,view,label,mask\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"the last 20 % of .*data.csv holds no_tumour images only: the temperature "
                                         r"fitted on it after training needs windows of two classes or more; give "
                                         r"--val-data"):
        train_windows(WindowTrainConfig(data=str(tmp_path / "data.csv"), out=str(out), device="cpu"),
                      progress=lambda text: None)
    assert not (out / "model.pt").exists() and not (out / "checkpoint.pt").exists()


def test_evaluate_prints_the_table_and_writes_csv(tiny_window_model, tmp_path):
    done = run_main(["evaluate", "--model", str(tiny_window_model), "--data", "phantom",
                     "--phantoms", "8", "--out", str(tmp_path / "eval"), "--device", "cpu"])
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("image_auc_malignant", "window_auc_malignant", "window_accuracy", "ece_before", "ece_after"):
        assert name in done.stdout
    rows = dict(line.split(",", 1) for line in (tmp_path / "eval" / "metrics.csv").read_text().splitlines()[1:])
    assert int(rows["images"]) == 8 and float(rows["window_accuracy"]) <= 1.0
    per_image = (tmp_path / "eval" / "per_image.csv").read_text().splitlines()
    assert len(per_image) == 9 and per_image[0].startswith("image,label,windows,p_no_tumour")
    assert (tmp_path / "eval" / "roc.png").read_bytes().startswith(b"\x89PNG")  # the ROC curves, drawn
    # 8 phantom images: each image AUC is from fewer than ten of a class, said (it was printed bare)
    assert "note: image_auc_malignant is from " in done.stdout and "too few to say" in done.stdout


def test_the_window_classifier_s_roc_figure_has_the_lesion_classes_as_its_metrics(tiny_window_model, tmp_path,
                                                                                monkeypatch, capsys):
    """roc.png drew a "no tumour vs rest" curve from each image's highest window probability of no tumour, a
    figure of nothing metrics.csv measures (it has no image AUC of no tumour)."""
    import app.cli.evaluate as evaluate  # noqa: PLC0415
    from main import main  # noqa: PLC0415

    drawn = []
    monkeypatch.setattr(evaluate, "roc_png", lambda curves: drawn.append(curves) or b"png")
    assert main(["evaluate", "--model", str(tiny_window_model), "--data", "phantom", "--phantoms", "4", "--out",
                 str(tmp_path / "eval"), "--device", "cpu"]) == 0
    (curves,) = drawn
    assert [c[0].split(" vs rest")[0] for c in curves] == [name for name in CLASSES if name != "no_tumour"]
    rows = dict(line.split(",", 1) for line in (tmp_path / "eval" / "metrics.csv").read_text().splitlines()[1:])
    assert {f"image_auc_{name}" for name in CLASSES[1:]} <= set(rows) and "image_auc_no_tumour" not in rows
    capsys.readouterr()


def test_training_windows_without_a_class_are_warned_of():
    """Training images without a malignant lesion (or whose masks were lost) trained a model that never saw
    one, and said nothing: the run's log names the classes no window has."""
    from inference.families.sliding_window.training import WindowTrainConfig, missing_classes_warning, window_pool
    from inference.training.labelled_images import phantom_images

    config = WindowTrainConfig()
    benign_only = window_pool(phantom_images(3, seed=2, shape=(320, 200), kinds=("round", None)), config)
    assert missing_classes_warning(benign_only) == (
        "warning: no training window is benign_without_callback or malignant: the model cannot learn to tell them (do "
        "such images have lesion masks, and does a window hold at least half of each lesion?)")
    every = window_pool(phantom_images(8, seed=2, shape=(320, 200)), config)
    assert set(every.by_class) == set(range(len(CLASSES))) and missing_classes_warning(every) == ""


def test_reading_labelled_images_uses_the_models_current_weights():
    """Validation during training reads the model as it is now, never a copy cached at an earlier epoch."""
    from inference.families.sliding_window.model import PatchClassifier, PatchClassifierConfig
    from inference.training.labelled_images import phantom_images
    from inference.families.sliding_window.evaluation import read_images

    torch.manual_seed(0)
    model = PatchClassifier(PatchClassifierConfig(width=4, stages=2)).train()
    images = phantom_images(2, seed=1)
    first = read_images(model, WindowSettings(), CLASSES, images)
    assert model.training  # left as it was
    with torch.no_grad():
        model.classifier.bias += torch.tensor([0.0, 0.0, 0.0, 1.0])
    second = read_images(model, WindowSettings(), CLASSES, images)
    assert np.allclose(second[0].logits[:, 3] - first[0].logits[:, 3], 1.0, atol=1e-5)


def test_the_shipped_demo_window_model_flags_the_demo_exams_malignant_breast():
    from app.demo import demo_window_model_path
    from inference.intake.phantom import demo_exam
    from inference.pipeline import analyze_exam
    from inference.weights import load_model

    loaded = load_model(demo_window_model_path())
    assert loaded.identity.demo and loaded.identity.family == "sliding-window"
    assert loaded.identity.calibration["method"] == "temperature" and "seed 50000" in loaded.identity.calibration["data"]
    exam = demo_exam()
    result = analyze_exam({v: p.image for v, p in exam.views.items()}, loaded, device="cpu")
    decision = result.exam[result.entries[0].id]
    breasts = {side.value: b.entries[result.entries[0].id].malignant for side, b in result.breasts.items()}
    assert decision.breast.value == "R" and breasts["R"] > breasts["L"] + 0.3  # the spiculated mass is right


def test_the_shared_csv_reader_names_the_file_and_row(tmp_path):
    """A non-UTF-8 CSV and a bad view were said without the file or row."""
    from inference.training.labelled_images import csv_images

    write_png(tmp_path / "a.png", synthetic_view("R-CC", (700, 500)))
    data = tmp_path / "data.csv"
    data.write_text("path,view,label\na.png,X-YY,malignant\n")
    with pytest.raises(ValueError, match=r"data.csv, row 2: unknown view 'X-YY'"):
        csv_images(data, ("normal", "benign", "malignant"))
    data.write_bytes(b"path,view,label\n\xff.png,R-CC,malignant\n")
    with pytest.raises(ValueError, match=r"data.csv: the CSV is not UTF-8"):
        csv_images(data, ("normal", "benign", "malignant"))


def test_evaluate_reads_the_images_in_the_mode_asked_for(tiny_window_model, tmp_path, monkeypatch):
    """evaluate --mode fast measured the exact mode without a word (it always read in exact)."""
    import inference.families.sliding_window.evaluation as evaluation  # noqa: PLC0415

    modes = []
    real = evaluation.read_view

    def recorded(model, prepared, device, mode, *args, **kwargs):
        modes.append(str(mode))
        return real(model, prepared, device, mode, *args, **kwargs)

    monkeypatch.setattr(evaluation, "read_view", recorded)
    for mode in ("fast", "exact"):
        done = run_main(["evaluate", "--model", str(tiny_window_model), "--data", "phantom", "--phantoms", "2",
                         "--mode", mode])
        assert done.returncode == 0, done.stderr[-2000:]
        assert set(modes) == {mode}, modes
        modes.clear()
