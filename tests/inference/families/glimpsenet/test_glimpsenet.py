"""GlimpseNet: the FCGN and Inception-v3 shapes, the MIL pooling formulas by hand, glimpse extraction on maps
with known blobs (threshold, growth, suppression, top K, fallback), the Inception-v3 key remap, a short
deterministic training run with resume and cross-validation, load -> analyse -> report, registration."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from inference.families.glimpsenet.family import CLASSES
from inference.families.glimpsenet.glimpses import GlimpseSettings, glimpse_boxes, iou, mil_pool, square_in_crop
from inference.families.glimpsenet.model import FCGN, GlimpseNetConfig
from inference.families.nets.inception import InceptionV3, remap_torchvision_inception_v3
from inference.intake.views import View
from inference.weights import read_state_dict
from tests.helpers import (
    make_glimpse_stub,
    report_one_view,
    run_isolated,
    synthetic_view,
    train_stopped_and_resumed,
)

LESION = (700, 300)  # (row, col) in a stored R-CC (the breast is on the right, chest wall at the right edge)


# ------------------------------------------------------------------------------------------------- networks


def test_fcgn_shapes_and_its_8x8_bottleneck():
    torch.manual_seed(0)
    config = GlimpseNetConfig(fcgn_width=4, context=16)
    fcgn = FCGN(config).eval()
    x = torch.rand(2, 1, 512, 512)
    with torch.no_grad():
        out = fcgn(x)
        bottleneck = x
        for stage in fcgn.encoder:
            bottleneck = stage(bottleneck)
    assert out.shape == (2, 1, 512, 512) and ((out > 0) & (out < 1)).all()
    assert bottleneck.shape == (2, 64, 8, 8)  # 16 w: 8 x 8 x 256 at the default width 16
    assert fcgn.context[0].kernel_size == (8, 8) and fcgn.context[0].out_channels == 16
    assert GlimpseNetConfig().context == 4096 and GlimpseNetConfig().stages[-1] == 256
    with pytest.raises(ValueError, match="multiple of 64"):
        GlimpseNetConfig(input_size=500)


def test_inception_v3_shapes_and_published_layout():
    model = InceptionV3(3, width=1.0).eval()
    state = model.state_dict()
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_5b.branch_pool.conv.weight"].shape == (32, 192, 1, 1)
    assert state["Mixed_6e.branch7x7dbl_5.conv.weight"].shape == (192, 192, 1, 7)
    assert state["Mixed_7a.branch7x7x3_4.conv.weight"].shape == (192, 192, 3, 3)
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    assert state["fc.weight"].shape == (3, 2048) and "Conv2d_1a_3x3.conv.bias" not in state
    assert model.Mixed_5b.branch1x1.bn.eps == 0.001
    # torchvision's 27.16 M less the auxiliary classifier (3.33 M) and the 1000-class fc (2.05 M), plus fc(3)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(21.79e6, rel=0.002)
    small = InceptionV3(3, width=0.125).eval()
    with torch.no_grad():
        assert small(torch.randn(2, 3, 299, 299)).shape == (2, 3)
        assert small(torch.randn(1, 3, 75, 75)).shape == (1, 3)
    with pytest.raises(ValueError, match="s >= 75"):
        small(torch.randn(1, 3, 64, 64))


def test_a_torchvision_inception_v3_state_dict_maps_onto_the_classifier():
    torch.manual_seed(3)
    published = InceptionV3(1000, width=1.0).state_dict()  # the torchvision names; plus its auxiliary head
    published.update({"AuxLogits.conv0.conv.weight": torch.zeros(128, 768, 1, 1),
                      "AuxLogits.fc.weight": torch.zeros(1000, 768), "AuxLogits.fc.bias": torch.zeros(1000)})
    mapped = remap_torchvision_inception_v3(published)
    assert not any(k.startswith(("AuxLogits.", "fc.")) for k in mapped)
    model = InceptionV3(3)
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    assert not unexpected and sorted(missing) == ["fc.bias", "fc.weight"]
    assert torch.equal(model.Mixed_6b.branch7x7_2.conv.weight, published["Mixed_6b.branch7x7_2.conv.weight"])
    summed = remap_torchvision_inception_v3(published, grey="sum")
    assert summed["Conv2d_1a_3x3.conv.weight"].shape == (32, 1, 3, 3)
    assert torch.allclose(summed["Conv2d_1a_3x3.conv.weight"], published["Conv2d_1a_3x3.conv.weight"].sum(1, True))
    with pytest.raises(ValueError):
        remap_torchvision_inception_v3(published, grey="mean")


# ------------------------------------------------------------------------------------------------- MIL pooling

P = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8], [0.5, 0.4, 0.1]])


def _renormalised(values):
    values = np.asarray(values, float)
    return values / values.sum()


def test_noisy_and_by_hand():
    a, b = 10.0, 0.2
    sigmoid = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    means = [(0.8 + 0.2 + 0.1 + 0.5) / 4, (0.1 + 0.2 + 0.1 + 0.4) / 4, (0.1 + 0.6 + 0.8 + 0.1) / 4]
    raw = [(sigmoid(a * (m - b)) - sigmoid(-a * b)) / (sigmoid(a * (1 - b)) - sigmoid(-a * b)) for m in means]
    pooled = mil_pool(P, GlimpseSettings(pooling="noisy_and"))
    assert np.allclose(pooled.numpy(), _renormalised(raw), atol=1e-6)


def test_top_k_mean_by_hand():
    # K = 4, 30 %: ceil(1.2) = 2 largest per class
    raw = [(0.8 + 0.5) / 2, (0.4 + 0.2) / 2, (0.8 + 0.6) / 2]
    assert np.allclose(mil_pool(P, GlimpseSettings(pooling="top_k")).numpy(), _renormalised(raw), atol=1e-6)
    # one glimpse: pooling returns its own probabilities
    assert np.allclose(mil_pool(P[:1], GlimpseSettings(pooling="top_k")).numpy(), P[0].numpy(), atol=1e-6)


def test_log_sum_exp_by_hand():
    r = 5.0
    raw = [math.log(sum(math.exp(r * v) for v in column) / 4) / r for column in P.T.tolist()]
    pooled = mil_pool(P, GlimpseSettings(pooling="lse"))
    assert np.allclose(pooled.numpy(), _renormalised(raw), atol=1e-6)
    # LSE lies between the mean and the maximum, per class
    assert all(P[:, c].mean() - 1e-6 <= raw[c] <= P[:, c].max() + 1e-6 for c in range(3))
    assert float(pooled.sum()) == pytest.approx(1.0)


def test_pooling_is_differentiable():
    p = P.clone().requires_grad_(True)
    mil_pool(p, GlimpseSettings(pooling="lse"))[2].backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()


# ------------------------------------------------------------------------------------------------- glimpses


def _blob(shape, centre, radius, peak):
    rr, cc = np.mgrid[0: shape[0], 0: shape[1]]
    return np.where((rr - centre[0]) ** 2 + (cc - centre[1]) ** 2 <= radius**2, peak, 0.0).astype(np.float32)


def test_glimpses_from_known_blobs_best_first_and_grown_to_the_minimum():
    saliency = _blob((512, 512), (100, 100), 5, 0.7) + _blob((512, 512), (400, 300), 30, 0.95)
    glimpses = glimpse_boxes(saliency, GlimpseSettings(threshold=0.5, min_box=32))
    assert [round(g.score, 2) for g in glimpses] == [0.95, 0.7]
    big, small = glimpses[0].box, glimpses[1].box
    assert big == (370, 270, 431, 331)  # the blob's own box: 61 pixels across
    assert small[2] - small[0] == 32 and small[3] - small[1] == 32  # grown about its centre to min_box
    assert small[0] <= 100 < small[2] and small[1] <= 100 < small[3]
    assert not any(g.fallback for g in glimpses)


def test_suppression_top_k_and_the_edges():
    saliency = _blob((512, 512), (100, 100), 3, 0.9) + _blob((512, 512), (100, 112), 3, 0.8)
    saliency += _blob((512, 512), (3, 508), 2, 0.7)  # at the corner: the grown box stays inside
    saliency += _blob((512, 512), (300, 300), 3, 0.6)
    settings = GlimpseSettings(threshold=0.5, min_box=40, nms_iou=0.3)
    glimpses = glimpse_boxes(saliency, settings)
    assert [round(g.score, 1) for g in glimpses] == [0.9, 0.7, 0.6]  # 0.8 overlaps 0.9 by more than 0.3
    assert iou(glimpse_boxes(saliency, GlimpseSettings(threshold=0.5, min_box=40, nms_iou=0.99))[1].box,
               glimpses[0].box) > 0.3
    corner = glimpses[1].box
    assert corner[0] == 0 and corner[3] == 512 and corner[2] - corner[0] == 40
    assert len(glimpse_boxes(saliency, GlimpseSettings(threshold=0.5, min_box=40, top_k=2))) == 2


def test_nothing_above_the_threshold_falls_back_to_the_most_salient_window():
    saliency = _blob((512, 512), (200, 250), 4, 0.3) + 0.01
    glimpses = glimpse_boxes(saliency, GlimpseSettings(threshold=0.5, fallback_box=64))
    assert len(glimpses) == 1 and glimpses[0].fallback
    top, left, bottom, right = glimpses[0].box
    assert (bottom - top, right - left) == (64, 64) and top <= 200 < bottom and left <= 250 < right
    assert glimpses[0].score == pytest.approx(0.31)


def test_boxes_are_squared_in_the_full_resolution_crop():
    # a 512-map box of 32 x 32 over a 2000 x 1000 crop is 125 x 62.5 crop pixels: squared to 125
    box = square_in_crop((100, 100, 132, 132), (2000 / 512, 1000 / 512), (2000, 1000))
    assert box[2] - box[0] == box[3] - box[1] == 125
    assert square_in_crop((0, 480, 512, 512), (2000 / 512, 1000 / 512), (2000, 1000))[3] == 1000  # kept inside


def test_bad_glimpse_settings_are_refused():
    for bad in ({"threshold": 1.5}, {"top_k": 0}, {"glimpse_size": 64}, {"pooling": "max"}, {"nms_iou": 1.0}):
        with pytest.raises(ValueError):
            GlimpseSettings(**bad)


# ------------------------------------------------------------------------------------------------- pipeline


def test_the_saliency_and_glimpses_are_registered_on_a_mirrored_view():
    from inference.pipeline import analyze_exam

    image = synthetic_view("R-CC", LESION, shape=(1600, 900))
    result = analyze_exam({View.R_CC: image}, make_glimpse_stub(), device="cpu")
    entry = result.entries[0].id
    view = result.views[View.R_CC].entries[entry]
    layer = view.layers[0]
    assert (layer.name, layer.class_name, layer.colormap) == ("saliency", None, "viridis")
    on_image = layer.in_original((1600, 900))
    peak = np.unravel_index(np.nanargmax(on_image), on_image.shape)
    assert abs(peak[0] - LESION[0]) < 15 and abs(peak[1] - LESION[1]) < 15
    first = view.regions[0]
    assert first.kind == "glimpse" and set(first.probabilities) == set(CLASSES)
    top, left, bottom, right = first.box_original
    assert top <= LESION[0] < bottom and left <= LESION[1] < right and bottom - top == pytest.approx(right - left)
    assert first.score == pytest.approx(first.probabilities["malignant"])
    assert first.pixels.shape == (107, 107) and first.pixels.max() == pytest.approx(1.0)  # the lesion, scaled
    assert view.frame.record["flipped"] and view.frame.record["glimpses"] == 1
    expected = torch.softmax(torch.tensor([0.0, 0.5, 2.0]), 0).numpy()  # one glimpse: pooling keeps it
    assert [view.probabilities[c] for c in CLASSES] == pytest.approx(expected.tolist(), abs=1e-6)
    assert result.exam[entry].malignant == pytest.approx(expected[2], abs=1e-6)


def test_short_training_is_deterministic_resumes_and_cross_validates(tiny_glimpse_model, tmp_path):
    from tests.conftest import TINY_GLIMPSE_TRAINING

    meta = json.loads(tiny_glimpse_model.with_name("model.pt.json").read_text())
    assert meta["family"] == "glimpsenet" and meta["classes"] == list(CLASSES) and meta["malignancy"] == ["malignant"]
    assert [(h["stage"], h["epoch"]) for h in meta["training"]["history"]] == [
        ("fcgn", 1), ("fcgn", 2), ("classifier", 1), ("classifier", 2)]
    assert meta["glimpses"]["pooling"] == "lse" and meta["evaluation"]["images"] == 3
    final = read_state_dict(tiny_glimpse_model)
    assert all(v.dtype == torch.float16 for v in final.values() if v.is_floating_point())
    # stopped after the first classifier epoch, then resumed: the uninterrupted run's weights
    stderr, resumed = train_stopped_and_resumed("glimpsenet", TINY_GLIMPSE_TRAINING, tmp_path)
    assert "resumed after FCGN epoch 2 and classifier epoch 1" in stderr
    assert all(torch.equal(resumed[k], final[k]) for k in final)
    # cross-validation: one model per fold, accuracy per fold and the mean
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**TINY_GLIMPSE_TRAINING, "fcgn_epochs": 1, "epochs": 1}))
    folds = run_isolated(["main.py", "train", "--family", "glimpsenet", "--config", str(config), "--out",
                          str(tmp_path / "cv"), "--folds", "2"])
    assert folds.returncode == 0, folds.stderr[-2000:]
    summary = json.loads((tmp_path / "cv" / "folds.json").read_text())
    assert [f["fold"] for f in summary["folds"]] == [1, 2] and sum(f["test_images"] for f in summary["folds"]) == 12
    assert summary["mean_accuracy"] == pytest.approx(np.mean([f["accuracy"] for f in summary["folds"]]))
    assert "2-fold cross-validation: accuracy" in folds.stderr
    assert (tmp_path / "cv" / "fold_2" / "model.pt").is_file()


def test_the_training_csv_names_bad_rows(tmp_path):
    import cv2

    from inference.families.glimpsenet.training import glimpse_csv

    cv2.imwrite(str(tmp_path / "0_R-CC.png"), synthetic_view("R-CC", LESION, shape=(400, 300)))
    (tmp_path / "d.csv").write_text("path,view,benign,malignant\n0_R-CC.png,R-CC,0,0\n")
    with pytest.raises(ValueError, match=r"d\.csv, row 2: neither benign nor malignant; give a label column"):
        glimpse_csv(tmp_path / "d.csv")
    (tmp_path / "d.csv").write_text("path,view,benign,malignant,pathology\n0_R-CC.png,R-CC,0,0,BENIGN_WITHOUT_CALLBACK\n")
    assert glimpse_csv(tmp_path / "d.csv")[0].label == "benign_without_callback"
    (tmp_path / "d.csv").write_text("path,view,benign,malignant,mask\n0_R-CC.png,R-CC,0,1,missing.png\n")
    with pytest.raises(ValueError, match="row 2: the mask .*missing.png could not be read"):
        glimpse_csv(tmp_path / "d.csv")


def test_the_trained_model_loads_analyses_evaluates_and_reports(tiny_glimpse_model, tmp_path):
    import highdicom as hd

    from inference.results.serialize import read_result, write_result
    from inference.weights import load_model
    from tests.helpers import dciodvfy
    from tests.report.test_report import pdf_text

    loaded = load_model(tiny_glimpse_model)
    assert loaded.identity.family == "glimpsenet" and loaded.identity.malignancy == ("malignant",)
    _, result, paths = report_one_view(loaded, tmp_path, synthetic_view("R-CC", LESION, shape=(1600, 900)))
    entry = result.entries[0].id
    view = result.views[View.R_CC].entries[entry]
    assert sum(view.probabilities.values()) == pytest.approx(1.0, abs=1e-5) and view.regions
    seg = next(p for p in paths if p.name.endswith("_saliency_seg.dcm"))
    assert dciodvfy(seg) == []
    assert [s.SegmentLabel for s in hd.seg.segread(seg).SegmentSequence] == ["saliency map"]
    sr = next(p for p in paths if p.name.endswith("_sr.dcm"))
    assert dciodvfy(sr) == []
    groups = hd.sr.MeasurementReport.from_sequence([hd.sr.srread(sr)]).get_planar_roi_measurement_groups()
    assert "Region score: glimpse" in {m.name.meaning for g in groups for m in g.get_measurements()}
    text = " ".join(pdf_text(next(p for p in paths if p.suffix == ".pdf")).split())
    assert "glimpse" in text and "benign without callback" in text
    json_path, _ = write_result(result, tmp_path / "result.json")
    again = read_result(json_path).views[View.R_CC].entries[entry]
    assert again.regions[0].probabilities == pytest.approx(view.regions[0].probabilities)
    assert again.regions[0].kind == "glimpse"
    done = run_isolated(["main.py", "evaluate", "--model", str(tiny_glimpse_model), "--data", "phantom",
                         "--phantoms", "6", "--out", str(tmp_path / "eval")])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "accuracy" in done.stdout and "weighted avg" in done.stdout
    assert (tmp_path / "eval" / "confusion_matrix.png").is_file()
    assert (tmp_path / "eval" / "confusion_matrix.csv").read_text().startswith("truth \\ prediction,")


def test_imagenet_weights_initialise_the_classifier_safely(tmp_path):
    from inference.errors import CheckpointError
    from inference.families.glimpsenet.model import GlimpseNet
    from inference.families.glimpsenet.training import load_classifier_weights

    torch.manual_seed(4)
    published = InceptionV3(1000, width=1.0).state_dict()
    good = tmp_path / "inception_v3.pth"
    torch.save(published, good)
    model = GlimpseNet(GlimpseNetConfig(fcgn_width=4, context=8))
    fc_before = model.classifier.fc.weight.clone()
    load_classifier_weights(model, str(good))
    assert torch.equal(model.classifier.Mixed_7c.branch1x1.conv.weight, published["Mixed_7c.branch1x1.conv.weight"])
    assert torch.equal(model.classifier.fc.weight, fc_before)  # the three glimpse classes are trained
    with pytest.raises(ValueError, match="classifier_width 1.0"):
        load_classifier_weights(GlimpseNet(GlimpseNetConfig(fcgn_width=4, context=8, classifier_width=0.5)), str(good))
    unsafe = tmp_path / "pickled.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(1), "note": Payload()}, unsafe)
    with pytest.raises(CheckpointError, match="refused"):
        load_classifier_weights(model, str(unsafe))


class Payload:
    """A Python object in a checkpoint: loading it would run pickled code, so the loader must refuse it."""


def test_a_split_too_small_for_every_class_names_the_options():
    """A researcher's test: n_phantoms 10 stopped with scikit-learn's "The test_size = 2 should be greater or
    equal to the number of classes = 3", naming neither option."""
    from inference.families.glimpsenet.training import split

    train, val = split([0, 1, 2] * 5, 0.2, 0)
    assert len(val) == 3 and sorted({i % 3 for i in val}) == [0, 1, 2] and len(train) == 12
    with pytest.raises(ValueError, match=r"^10 image\(s\) of 3 classes cannot be split by val_fraction 0.2 .*"
                                         r"\(2 held out\): give more images \(n_phantoms"):
        split([0, 1, 2] * 3 + [0], 0.2, 0)
