"""Mask R-CNN family against torchvision's own outputs (shared/reference/maskrcnn), checkpoints, the pipeline and the
fast mode. Tolerances are the reference README's (tighter where the arithmetic is the same)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import DATA, SHARED, require_shared

MASKRCNN = SHARED / "reference" / "maskrcnn"
SEEDED = MASKRCNN / "seeded_state_dict.pt"
VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")


def _image(view: str) -> np.ndarray:
    import cv2

    return cv2.imread(str(DATA / "gmic-exam0" / f"0_{view}.png"), cv2.IMREAD_UNCHANGED)


def _input(view: str) -> torch.Tensor:
    """The reference's input: float32(png) / float32(4095), grey replicated to (3, H, W)."""
    x = torch.from_numpy(_image(view).astype(np.float32) / np.float32(4095))
    return x[None].expand(3, -1, -1).contiguous()


def _golden(view: str) -> dict[str, np.ndarray]:
    with np.load(MASKRCNN / f"golden_exam0_{view}.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def loaded():
    require_shared(MASKRCNN)
    from inference.weights import load_model

    return load_model(SEEDED)


@pytest.fixture(scope="module")
def traced(loaded):
    """Every view's detections with the intermediate values, computed once."""
    out = {}
    with torch.inference_mode():
        for view in VIEWS:
            out[view] = loaded.model.detect([_input(view)], trace=True)[0]
    return out


# ------------------------------------------------------------------------------------------------- oracles


@pytest.mark.parametrize("view", VIEWS)
def test_input_matches_the_reference_fingerprint(view):
    require_shared(MASKRCNN)
    golden = _golden(view)
    x = _input(view)[0].numpy()
    np.testing.assert_array_equal(x[golden["input_sample_rows"], golden["input_sample_cols"]], golden["input_samples"])


@pytest.mark.parametrize("view", VIEWS)
def test_transform_and_fpn_levels(traced, view):
    golden, trace = _golden(view), traced[view].trace
    assert trace["scale_factor"] == pytest.approx(float(golden["scale_factor"]), abs=1e-15)
    assert tuple(trace["transformed_size"]) == tuple(golden["transformed_size"])
    assert tuple(trace["padded_size"]) == tuple(golden["padded_size"])
    assert [str(n) for n in golden["fpn_names"]] == list(trace["fpn"])
    for i, name in enumerate(golden["fpn_names"]):
        level = trace["fpn"][str(name)].double()
        assert (1, *level.shape) == tuple(golden["fpn_shapes"][i])
        assert level.mean().item() == pytest.approx(golden["fpn_mean"][i], rel=1e-5)
        assert level.std().item() == pytest.approx(golden["fpn_std"][i], rel=1e-5)


@pytest.mark.parametrize("view", VIEWS)
def test_rpn_proposals_in_reference_order(traced, view):
    """Ties among bit-identical objectness broken as torchvision's topk and non-stable sort do."""
    golden, trace = _golden(view), traced[view].trace
    proposals = trace["proposals"].numpy()
    assert proposals.shape == golden["proposals"].shape
    np.testing.assert_allclose(proposals, golden["proposals"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(trace["proposal_scores"].numpy(), golden["proposal_scores"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("view", VIEWS)
def test_box_head_outputs(traced, view):
    golden, trace = _golden(view), traced[view].trace
    np.testing.assert_allclose(trace["class_logits"].numpy(), golden["class_logits"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(trace["box_regression"].numpy(), golden["box_regression"], rtol=0, atol=1e-4)
    assert trace["box_roi_pool"].double().mean().item() == pytest.approx(float(golden["box_roi_pool_mean"]), rel=1e-5)
    features = trace["box_features"].double()
    assert features.mean().item() == pytest.approx(float(golden["box_features_mean"]), rel=1e-5)
    assert features.std().item() == pytest.approx(float(golden["box_features_std"]), rel=1e-5)


@pytest.mark.parametrize("view", VIEWS)
def test_detections_and_mask_probabilities(traced, view):
    golden, found = _golden(view), traced[view]
    np.testing.assert_array_equal(found.labels.numpy(), golden["labels"])  # count and labels exact, in order
    box_tolerance = 0.02 * max(1.0, 1.0 / float(golden["scale_factor"]))
    np.testing.assert_allclose(found.boxes.numpy(), golden["boxes"], rtol=0, atol=box_tolerance)
    np.testing.assert_allclose(found.scores.numpy(), golden["scores"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(found.mask_probs.numpy(), golden["mask_probs"], rtol=0, atol=1e-3)


@pytest.mark.parametrize("view", VIEWS)
def test_full_resolution_masks(traced, view):
    from inference.families.maskrcnn.ops import paste_crops

    golden, found = _golden(view), traced[view]
    rows, cols = (int(s) for s in golden["image_size"])
    crops = paste_crops(found.mask_probs, found.boxes, (rows, cols))
    for i, (values, top, left) in enumerate(crops):
        expected = np.unpackbits(golden["mask_bits"][i], count=rows * cols).reshape(rows, cols).astype(bool)
        mine = np.zeros((rows, cols), bool)
        mine[top:top + values.shape[0], left:left + values.shape[1]] = values > 0.5
        assert int((mine != expected).sum()) <= 10 + 0.01 * int(golden["mask_pixels"][i])
        assert float(values.astype(np.float64).sum()) == pytest.approx(float(golden["mask_prob_sum"][i]), rel=5e-3)


def test_torchvision_eval_contract(loaded, traced):
    """model([x]) -> [{"boxes", "labels", "scores", "masks" (N, 1, H, W) probabilities}], boxes in input pixels."""
    golden = _golden("R-CC")
    with torch.inference_mode():
        (answer,) = loaded.model([_input("R-CC")])
    rows, cols = (int(s) for s in golden["image_size"])
    assert set(answer) == {"boxes", "labels", "scores", "masks"}
    assert tuple(answer["masks"].shape) == (len(golden["labels"]), 1, rows, cols)
    np.testing.assert_array_equal(answer["labels"].numpy(), golden["labels"])
    np.testing.assert_allclose(answer["boxes"].numpy(), traced["R-CC"].boxes.numpy(), rtol=0, atol=0)
    masks = answer["masks"].numpy()
    assert masks.min() >= 0 and masks.max() <= 1
    for i in range(len(masks)):
        expected = np.unpackbits(golden["mask_bits"][i], count=rows * cols).reshape(rows, cols).astype(bool)
        assert int(((masks[i, 0] > 0.5) != expected).sum()) <= 10 + 0.01 * int(golden["mask_pixels"][i])


# ------------------------------------------------------------------------------------------------- RoIAlign / NMS


def test_roi_align_matches_a_per_sample_reading_of_the_definition():
    """The vectorised op against a literal loop over bins and samples (unaligned, 2 x 2 samples per bin)."""
    from inference.families.maskrcnn.ops import roi_align

    torch.manual_seed(0)
    features = torch.randn(2, 3, 9, 11)
    rois = torch.tensor([[0, 1.3, 2.2, 30.1, 20.7], [1, -6.0, -3.0, 5.0, 4.0], [0, 40.0, 30.0, 46.0, 38.0],
                         [1, 10.0, 10.0, 10.5, 10.2]])
    scale, out_size = 0.25, 3
    got = roi_align(features, rois, out_size, scale)

    def sample(f, y, x):
        h, w = f.shape[-2:]
        if y < -1.0 or y > h or x < -1.0 or x > w:
            return torch.zeros(f.shape[0])
        y, x = max(y, 0.0), max(x, 0.0)
        y0, x0 = int(y), int(x)
        y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
        if y0 >= h - 1:
            y0 = y1 = h - 1
            y = float(y0)
        if x0 >= w - 1:
            x0 = x1 = w - 1
            x = float(x0)
        ly, lx = y - y0, x - x0
        return ((1 - ly) * (1 - lx) * f[:, y0, x0] + (1 - ly) * lx * f[:, y0, x1] + ly * (1 - lx) * f[:, y1, x0]
                + ly * lx * f[:, y1, x1])

    for k, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        f = features[int(b)]
        x1, y1, x2, y2 = x1 * scale, y1 * scale, x2 * scale, y2 * scale
        bw, bh = max(x2 - x1, 1.0) / out_size, max(y2 - y1, 1.0) / out_size
        for ph in range(out_size):
            for pw in range(out_size):
                acc = torch.zeros(f.shape[0])
                for iy in range(2):
                    for ix in range(2):
                        acc += sample(f, y1 + ph * bh + (iy + 0.5) * bh / 2, x1 + pw * bw + (ix + 0.5) * bw / 2)
                torch.testing.assert_close(got[k, :, ph, pw], acc / 4, rtol=1e-5, atol=1e-6)


def test_roi_align_is_the_same_on_channels_last_maps_and_carries_gradients():
    """The fast mode's channels-last maps give the same bits as contiguous ones; training back-propagates
    through the gathers (checked against finite differences in float64)."""
    from inference.families.maskrcnn.ops import roi_align

    torch.manual_seed(1)
    features = torch.randn(2, 5, 13, 17)
    rois = torch.tensor([[0, 3.0, 2.0, 50.0, 40.0], [1, -8.0, 10.0, 20.0, 60.0], [1, 60.0, 45.0, 70.0, 52.0]])
    plain = roi_align(features, rois, 7, 0.25)
    assert torch.equal(roi_align(features.to(memory_format=torch.channels_last), rois, 7, 0.25), plain)
    small = torch.randn(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    boxes = torch.tensor([[0, 1.5, 2.0, 20.0, 17.0], [0, 9.0, 3.0, 27.0, 30.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: roi_align(f, boxes, 3, 0.25), (small,))


def test_nms_suppresses_strictly_above_the_threshold():
    from inference.families.maskrcnn.ops import nms

    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30]])  # IoU(0, 1) = 0.5 exactly
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [0, 1, 2]
    assert nms(boxes, scores, 0.49).tolist() == [0, 2]


# ------------------------------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def seeded_state():
    require_shared(MASKRCNN)
    return torch.load(SEEDED, map_location="cpu", weights_only=True)


def _load(tmp_path, content, name="model.pt"):
    from inference.weights import load_model

    path = tmp_path / name
    torch.save(content, path)
    return load_model(path)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0)


def test_seeded_file_is_recognised_as_maskrcnn(loaded):
    identity = loaded.identity
    assert identity.family == "maskrcnn"
    assert identity.classes == ("benign mass", "malignant mass")
    assert identity.malignancy == ("malignant mass",)
    assert loaded.model.config.layers == (1, 1, 1, 1) and loaded.model.config.block == "basic"
    assert (loaded.model.config.min_size, loaded.model.config.max_size) == (1024, 2048)


def test_wrapped_reordered_float32_checkpoint_loads(tmp_path, loaded, seeded_state):
    keys = list(seeded_state)[::-1]
    wrapped = {"epoch": 12, "optimizer": {"lr": 0.002}, "model": {k: seeded_state[k].float() for k in keys}}
    _same_weights(_load(tmp_path, wrapped).model, loaded.model)


def test_num_batches_tracked_is_ignored(tmp_path, loaded, seeded_state):
    state = dict(seeded_state)
    state["backbone.body.bn1.num_batches_tracked"] = torch.tensor(7)
    state["backbone.body.layer2.0.downsample.1.num_batches_tracked"] = torch.tensor(7)
    _same_weights(_load(tmp_path, state).model, loaded.model)


def test_legacy_mask_head_names_are_mapped(tmp_path, loaded, seeded_state):
    state = {}
    for key, value in seeded_state.items():
        for i in range(4):
            key = key.replace(f"roi_heads.mask_head.{i}.0.", f"roi_heads.mask_head.mask_fcn{i + 1}.")
        state[key] = value
    assert "roi_heads.mask_head.mask_fcn3.weight" in state
    _same_weights(_load(tmp_path, state).model, loaded.model)


def test_a_mask_head_weight_under_both_names_is_refused(tmp_path, seeded_state):
    """A checkpoint with the legacy mask_fcn names beside the current ones loaded, the legacy copy winning."""
    from inference.errors import CheckpointError

    state = dict(seeded_state)
    state["roi_heads.mask_head.mask_fcn2.weight"] = torch.zeros_like(state["roi_heads.mask_head.1.0.weight"])
    with pytest.raises(CheckpointError, match=r"gives the weight 'roi_heads\.mask_head\.1\.0\.weight' twice, as "
                                              r"'roi_heads\.mask_head\.1\.0\.weight' and as "
                                              r"'roi_heads\.mask_head\.mask_fcn2\.weight'"):
        _load(tmp_path, state)


def test_missing_weight_is_named(tmp_path, seeded_state):
    from inference.errors import CheckpointError

    state = dict(seeded_state)
    del state["roi_heads.box_head.fc7.bias"]
    with pytest.raises(CheckpointError, match=r"roi_heads\.box_head\.fc7\.bias"):
        _load(tmp_path, state)
    state = dict(seeded_state)
    del state["backbone.body.conv1.weight"]  # the stem's: it was "the layout of none of the known families"
    with pytest.raises(CheckpointError, match=r"lacks the weight 'backbone\.body\.conv1\.weight'"):
        _load(tmp_path, state)
    from inference.families.maskrcnn.checkpoint import recognises

    # a torchvision detector on another backbone (MobileNet's numbered body) is no ResNet-FPN Mask R-CNN
    mobile = {"backbone.body.0.0.weight": 0, "backbone.fpn.inner_blocks.0.0.weight": 0,
              "rpn.head.cls_logits.weight": 0, "roi_heads.box_predictor.cls_score.weight": 0}
    assert not recognises(mobile) and recognises({**mobile, "backbone.body.layer1.0.conv1.weight": 0})


def test_misshaped_weight_is_named(tmp_path, seeded_state):
    from inference.errors import CheckpointError

    state = dict(seeded_state)
    state["rpn.head.bbox_pred.weight"] = torch.zeros(8, 64, 1, 1, dtype=torch.float16)
    with pytest.raises(CheckpointError, match=r"rpn\.head\.bbox_pred\.weight"):
        _load(tmp_path, state)


def test_metadata_sidecar_declares_classes_sizes_thresholds_and_rule(tmp_path, seeded_state):
    import json

    from inference.errors import CheckpointError
    from inference.families.maskrcnn.family import PROBABILITY_RULE, metadata

    meta = metadata(("background", "benign", "malignant"), min_size=800, max_size=1333, score_threshold=0.3,
                    label="seeded detector")
    assert metadata()["classes"] == ["background", "benign mass", "malignant mass"]
    (tmp_path / "model.pt.json").write_text(json.dumps(meta))
    loaded = _load(tmp_path, seeded_state)
    assert loaded.identity.classes == ("benign", "malignant") and loaded.identity.malignancy == ("malignant",)
    assert loaded.identity.label == "seeded detector"
    config = loaded.model.config
    assert (config.min_size, config.max_size, config.box_score_threshold) == (800, 1333, 0.3)
    assert loaded.identity.settings["probability_rule"] == PROBABILITY_RULE
    assert loaded.identity.display is None  # no display threshold declared: the screen's top-3-and-best rule
    (tmp_path / "model.pt.json").write_text(json.dumps(metadata(display_threshold=0.4)))
    assert _load(tmp_path, seeded_state).identity.display == {"region_operating_point": 0.4}  # drawn from it
    (tmp_path / "model.pt.json").write_text(json.dumps({**meta, "classes": ["background", "mass"]}))
    with pytest.raises(CheckpointError, match="names 2 classes"):
        _load(tmp_path, seeded_state)
    # thresholds that are no thresholds (a researcher's test: a score of 2 kept no detection without a word,
    # -1 detections dropped the last one, text and NaN failed with tracebacks)
    for section, name, value, says in (
            ("thresholds", "box_score_threshold", 2.0, r"box_score_threshold must be a number in \[0, 1\), not 2.0"),
            ("thresholds", "box_score_threshold", "high", "box_score_threshold must be a number"),
            ("thresholds", "box_nms", 1.5, r"box_nms must be a number in \(0, 1\], not 1.5"),
            ("thresholds", "detections_per_image", -1, "detections_per_image must be a whole number of at least 1"),
            ("thresholds", "display_threshold", "x", "display_threshold must be a score from 0 to 1"),
            ("input", "max_value", "abc", "input maximum must be a positive number")):
        bad = json.loads(json.dumps(meta))
        bad.setdefault(section, {})[name] = value
        (tmp_path / "model.pt.json").write_text(json.dumps(bad))
        with pytest.raises(CheckpointError, match=says):
            _load(tmp_path, seeded_state)
    (tmp_path / "model.pt.json").write_text(json.dumps(meta).replace('"box_score_threshold": 0.3',
                                                                     '"box_score_threshold": NaN'))
    with pytest.raises(CheckpointError, match="box_score_threshold must be a number"):
        _load(tmp_path, seeded_state)


def test_a_model_whose_metadata_declares_fast_autocast_runs_bf16_in_the_fast_mode(tmp_path, seeded_state,
                                                                                 monkeypatch):
    """Its owner checked bf16 on their data: the fast mode autocasts where the device has bf16 (forced here), and
    its record, the result and the model's arithmetic say so; the exact mode and undeclared models stay fp32."""
    import json

    import inference.cpu
    from inference.errors import CheckpointError
    from inference.families.maskrcnn.family import metadata
    from inference.families.registry import get
    from inference.intake.views import View
    from inference.pipeline import model_numerics

    monkeypatch.setattr(inference.cpu, "has_bf16_arithmetic", lambda: True)
    (tmp_path / "model.pt.json").write_text(json.dumps(metadata(fast_autocast=True)))
    declared = _load(tmp_path, seeded_state)
    assert declared.identity.settings["fast_autocast"] is True
    assert model_numerics(declared.identity, "cpu", "fast") == "bf16"
    assert model_numerics(declared.identity, "cpu", "exact") == "fp32"
    (tmp_path / "model.pt.json").write_text(json.dumps(metadata()))
    plain = _load(tmp_path, seeded_state)
    assert "fast_autocast" not in plain.identity.settings and model_numerics(plain.identity, "cpu", "fast") == "fp32"

    family = get("maskrcnn")
    autocast_seen = []
    detect = type(declared.model).detect

    def watched(self, *args, **kwargs):
        autocast_seen.append(torch.is_autocast_enabled("cpu"))
        return detect(self, *args, **kwargs)

    monkeypatch.setattr(type(declared.model), "detect", watched)
    prepared = family.prepare(_image("R-CC").astype(np.float32), View.R_CC, False)
    for loaded, mode, expected in ((declared, "fast", "bf16"), (declared, "exact", "fp32"), (plain, "fast", "fp32")):
        (out,) = family.run(loaded.model, [prepared], torch.device("cpu"), mode, loaded.identity)
        assert out.frame.record["numerics"] == expected
        assert autocast_seen.pop() == (expected == "bf16")

    (tmp_path / "model.pt.json").write_text(json.dumps(metadata(fast_autocast="yes")))
    with pytest.raises(CheckpointError, match="fast_autocast must be true or false"):
        _load(tmp_path, seeded_state)


def test_a_view_beyond_the_declared_input_maximum_has_no_result_not_detections(tmp_path, loaded, seeded_state):
    """A 16-bit scan (CBIS-DDSM's are) read by a model that declares 12-bit input (the default 4095): divided by
    4095 the network would see values up to 16 where it reads [0, 1] (the seeded model called such views 100 %
    of both classes). That view has no result, with the reason in the notices; the others are read; a model
    declaring 65535 reads it."""
    import json

    from inference.families.maskrcnn.family import metadata
    from inference.families.registry import get
    from inference.intake.views import View
    from inference.pipeline import analyze_exam

    views = {View(v): _image(v) for v in ("L-CC", "R-CC", "L-MLO", "R-MLO")}
    views[View.R_CC] = views[View.R_CC].astype(np.uint16) * np.uint16(16)  # 12 bits stretched to 16
    result = analyze_exam(views, [loaded], device="cpu")
    (entry,) = result.entries
    reason = result.views[View.R_CC].no_result[entry.id]
    assert "pixel values use 16 bits, above the input maximum the model declares (4095" in reason
    assert any(n.startswith(f"{entry.label} has no result on R-CC") for n in result.provenance.notices)
    assert result.views[View.R_MLO].result(entry.id).regions  # the other views are read
    assert result.breasts[View.R_CC.laterality].entries[entry.id].views == (View.R_MLO,)
    # two views of other maxima, one reason: said once, naming both (four paragraphs said it view by view)
    from inference.results.exam_result import shown_notices, views_without_result

    views[View.L_CC] = views[View.L_CC].astype(np.uint16) * np.uint16(15)
    both = analyze_exam(views, [loaded], device="cpu")
    (line,) = views_without_result(both)
    assert line.startswith(f"{entry.label} has no result on L-CC and R-CC: ") and "pixel values use 16 bits" in line
    assert sum("has no result on" in n for n in shown_notices(both)) == 1

    # an 8-bit copy of a view (the 12 bits shifted down to 8), under the same 12-bit model: read at a sixteenth
    # of its brightness, as no breast the model learnt from: no result, said why
    views[View.L_CC] = (_image("L-CC") >> 4).astype(np.uint8)
    dark = analyze_exam(views, [loaded], device="cpu")
    reason = dark.views[View.L_CC].no_result[entry.id]
    assert "pixel values use 8 bits, a sixteenth or less of the input maximum the model declares (4095" in reason
    assert "a model for such images declares 255" in reason
    assert dark.views[View.L_MLO].result(entry.id) is not None

    (tmp_path / "model.pt.json").write_text(json.dumps(metadata(max_value=65535)))
    sixteen = _load(tmp_path, seeded_state)
    family = get("maskrcnn")
    prepared = family.prepare(views[View.R_CC].astype(np.float32), View.R_CC, False)
    (out,) = family.run(sixteen.model, [prepared], torch.device("cpu"), "exact", sixteen.identity)
    assert not out.refused and out.regions
    twelve = family.prepare(views[View.L_MLO].astype(np.float32), View.L_MLO, False)  # a 12-bit view, 16-bit model
    (out,) = family.run(sixteen.model, [twelve], torch.device("cpu"), "exact", sixteen.identity)
    assert "use 12 bits, a sixteenth or less of the input maximum the model declares (65535" in out.refused


@pytest.mark.parametrize(("block", "layers"), [("basic", (2, 2, 2, 2)), ("basic", (3, 4, 6, 3)),
                                               ("bottleneck", (3, 4, 6, 3)), ("bottleneck", (3, 4, 23, 3))])
def test_resnet_depth_is_read_from_the_keys(tmp_path, block, layers):
    """ResNet-18/34/50/101 FPN layouts (narrow, to stay small) load through load_model and run."""
    from inference.families.maskrcnn.model import MaskRCNN, MaskRCNNConfig

    config = MaskRCNNConfig(block=block, layers=layers, stem_width=8, fpn_channels=16, representation=32,
                            mask_layers=(16, 16, 16, 16), mask_dim=16, min_size=64, max_size=96)
    torch.manual_seed(1)
    source = MaskRCNN(config).eval()
    meta = {"family": "maskrcnn", "transform": {"min_size": 64, "max_size": 96}}
    (tmp_path / "model.pt.json").write_text(__import__("json").dumps(meta))
    loaded = _load(tmp_path, source.state_dict())
    assert loaded.model.config == config
    _same_weights(loaded.model, source)
    with torch.inference_mode():
        (answer,) = loaded.model([torch.rand(3, 80, 50)])
    assert answer["masks"].shape[1:] == (1, 80, 50)


# ------------------------------------------------------------------------------------------------- family


@pytest.fixture(scope="module")
def exam0_result(loaded):
    require_shared(MASKRCNN)
    from inference.intake.exam import load_exam
    from inference.pipeline import analyze_exam

    return analyze_exam(load_exam(DATA / "gmic-exam0"), loaded, device="cpu")


def test_analyze_exam_gives_detections_with_instance_masks(exam0_result):
    from inference.families.maskrcnn.family import PROBABILITY_RULE
    from inference.intake.exam import load_exam
    from inference.intake.image import breast_mask, tissue_fraction
    from inference.results.types import map_points
    from inference.intake.views import View

    exam, outside = load_exam(DATA / "gmic-exam0"), []

    for view in View:
        golden = _golden(view.value)
        (entry,) = exam0_result.views[view].entries.values()
        regions = entry.regions
        assert [r.kind for r in regions] == [("benign mass", "malignant mass")[label - 1] + " detection"
                                             for label in golden["labels"]]
        for region, box, score in zip(regions, golden["boxes"], golden["scores"], strict=True):
            x1, y1, x2, y2 = box
            np.testing.assert_allclose(region.box_original, (y1, x1, y2, x2), atol=0.05)
            assert region.score == pytest.approx(float(score), abs=1e-4)
            corner = map_points(region.mask.to_original, np.array([0.0, 0.0]))
            assert 0 <= corner[0] <= y1 + 1 and 0 <= corner[1] <= x1 + 1
        # the view's probability: the best detection of each class lying mostly over the breast (the seeded
        # weights also detect the letters and markers burnt into the background: never a probability)
        breast = breast_mask(exam.views[view].model_image)
        over = np.array([tissue_fraction((y1, x1, y2, x2), breast) >= 0.5 for x1, y1, x2, y2 in golden["boxes"]])
        for index, name in enumerate(("benign mass", "malignant mass"), start=1):
            chosen = golden["scores"][(golden["labels"] == index) & over]
            expected = float(chosen.max()) if len(chosen) else 0.0
            assert entry.probabilities[name] == pytest.approx(expected, abs=1e-4)
        outside.extend(float(score) for score, inside in zip(golden["scores"], over, strict=True) if not inside)
        assert entry.frame.record["probability_rule"] == PROBABILITY_RULE
    assert max(outside) > 0.9  # R-MLO's 0.96 "benign mass" on a marker: among the regions, in no probability


def test_instance_mask_bits_on_the_stored_grid(exam0_result):
    from inference.intake.views import View

    golden = _golden("R-CC")
    rows, cols = (int(s) for s in golden["image_size"])
    (entry,) = exam0_result.views[View("R-CC")].entries.values()
    for i, region in enumerate(entry.regions):
        expected = np.unpackbits(golden["mask_bits"][i], count=rows * cols).reshape(rows, cols).astype(bool)
        mine = np.zeros((rows, cols), bool)
        top, left = int(region.mask.to_original[0, 2]), int(region.mask.to_original[1, 2])
        bits = region.mask.binary()
        mine[top:top + bits.shape[0], left:left + bits.shape[1]] = bits
        assert int((mine != expected).sum()) <= 10 + 0.01 * int(golden["mask_pixels"][i])


def test_an_ensemble_keeps_its_first_members_instance_masks(loaded):
    from inference.pipeline import analyze_exam
    from inference.intake.views import View

    result = analyze_exam({View("R-CC"): _image("R-CC").astype(np.float32)}, [[loaded, loaded]], device="cpu")
    (entry,) = result.views[View("R-CC")].entries.values()
    assert entry.regions and all(r.mask is not None and r.source for r in entry.regions)


def test_result_with_masks_serialises_and_old_files_still_read(exam0_result, tmp_path):
    """Schema 2.1 keeps every instance mask (values, affine, threshold) in the maps file; a 2.0 file (no
    ``mask``) still reads, its regions without masks."""
    import json

    from inference.results.serialize import maps_path, read_result, result_from_data, result_to_data, write_result

    path, _ = write_result(exam0_result, tmp_path / "result.json")
    data = json.loads(path.read_text())
    assert data["schema_version"] == "2.1"
    again = read_result(path)
    for view, result in exam0_result.views.items():
        (before,) = result.entries.values()
        (after,) = again.views[view].entries.values()
        assert [r.box_original for r in after.regions] == [tuple(round(v, 3) for v in r.box_original)
                                                           for r in before.regions]
        assert before.regions and all(r.mask is not None for r in after.regions)
        for old, new in zip(before.regions, after.regions, strict=True):
            np.testing.assert_array_equal(new.mask.values, old.mask.values)
            np.testing.assert_array_equal(new.mask.to_original, old.mask.to_original)
            assert new.mask.threshold == old.mask.threshold
            np.testing.assert_array_equal(new.mask.binary(), old.mask.binary())
    assert maps_path(path).stat().st_size < 20_000_000  # crops, not a full image per detection
    for view in data["views"].values():  # the one model's member shares its entry's masks: each stored once
        (entry,) = view["models"].values()
        assert [r["mask"]["map"] for r in entry["members"][0]["regions"]] == [r["mask"]["map"] for r in entry["regions"]]
    # a 2.0 file: the same JSON with neither the version nor the masks of 2.1
    old, maps = result_to_data(exam0_result)
    old["schema_version"] = "2.0"
    for view in old["views"].values():
        for entry in view["models"].values():
            for region in entry["regions"] + [x for m in entry["members"] for x in m["regions"]]:
                del region["mask"]
    maps = {k: v for k, v in maps.items() if "/mask/" not in k}
    restored = result_from_data(old, maps)
    for view, result in restored.views.items():
        (entry,) = result.entries.values()
        assert entry.regions and all(r.mask is None for r in entry.regions)
        assert [r.score for r in entry.regions] == [r.score for r in
                                                    next(iter(exam0_result.views[view].entries.values())).regions]


# ------------------------------------------------------------------------------------------------- fast mode


def _iou(a, b) -> float:
    rows = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    cols = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = rows * cols
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("view", ["R-CC", "R-MLO"])
def test_fast_mode_keeps_the_detections_where_bf16_is_available(loaded, monkeypatch, view):
    """The fast path with bf16 forced on (as on a CPU with AVX-512-BF16/AMX): scores within 0.01 of the
    reference, and every reference detection clear of the 0.05 threshold by more than that found again with
    its label. (bf16 autocast itself fails this by up to 0.1, so the family keeps float32; see family.py.)"""
    import inference.cpu
    from inference.families.registry import get
    from inference.families.common import fast_mode_numerics, numerics, runnable
    from inference.families.maskrcnn.model import FrozenBatchNorm2d
    from inference.intake.views import View

    monkeypatch.setattr(inference.cpu, "has_bf16_arithmetic", lambda: True)
    assert fast_mode_numerics(torch.device("cpu")) == "bf16"
    family = get("maskrcnn")
    assert fast_mode_numerics(torch.device("cpu"), family.fast) == "fp32"  # what the result and its key say
    with numerics(torch.device("cpu"), "fast", family.fast):
        assert not torch.is_autocast_enabled("cpu")
    fast_module = runnable(loaded.model, torch.device("cpu"), "fast", family.fast)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in fast_module.modules())  # the folded fast copy
    golden = _golden(view)
    prepared = family.prepare(_image(view).astype(np.float32), View(view), False)
    (fast,) = family.run(loaded.model, [prepared], torch.device("cpu"), "fast", loaded.identity)
    names = ("benign mass", "malignant mass")
    for box, label, score in zip(golden["boxes"], golden["labels"], golden["scores"], strict=True):
        if score <= 0.05 + 0.01:
            continue
        x1, y1, x2, y2 = box
        matches = [r for r in fast.regions
                   if r.kind == f"{names[label - 1]} detection" and _iou(r.box_original, (y1, x1, y2, x2)) > 0.9]
        assert matches, f"reference detection {box} ({names[label - 1]}, {score:.3f}) lost in fast mode"
        assert min(abs(r.score - float(score)) for r in matches) <= 0.01
    assert all(abs(r.score - max(golden["scores"])) <= 0.01 or r.rank > 1 for r in fast.regions)


@pytest.mark.parametrize(("key", "stage"), [("roi_heads.box_predictor.cls_score.weight", "the box head's class scores"),
                                            ("backbone.body.conv1.weight", "the FPN features")])
def test_a_network_whose_values_overflow_has_no_result_never_nothing_found(tmp_path, key, stage):
    """A researcher's findings: class scores overflowing to inf (finite weights × 3e38) were read as "nothing
    found" (every score NaN passed no threshold: "<0.05", probability 0 on screen and in the FROC rates), and a
    backbone overflowing left no proposal and crashed on a reshape. The view is no result, naming the stage;
    evaluate stops at the image."""
    import argparse
    import json
    from types import SimpleNamespace

    from app.cli import evaluate
    from inference.errors import MammoError
    from inference.families.maskrcnn.model import MaskRCNN, MaskRCNNConfig
    from inference.families.registry import get
    from inference.intake.views import View
    from inference.pipeline import analyze_exam
    from tests.helpers import synthetic_view

    config = MaskRCNNConfig(block="basic", layers=(2, 2, 2, 2), stem_width=8, fpn_channels=16, representation=32,
                            mask_layers=(16, 16, 16, 16), mask_dim=16, min_size=64, max_size=96)
    torch.manual_seed(1)
    state = MaskRCNN(config).eval().state_dict()
    state[key] = torch.full_like(state[key], 3e38)  # every weight finite: the checkpoint loads
    (tmp_path / "model.pt.json").write_text(json.dumps({"family": "maskrcnn",
                                                        "transform": {"min_size": 64, "max_size": 96}}))
    loaded = _load(tmp_path, state)
    image = synthetic_view("L-CC", (120, 80), shape=(200, 120)).astype(np.float32)
    family = get("maskrcnn")
    with torch.inference_mode():
        (out,) = family.run(loaded.model, [family.prepare(image, View.L_CC, False)], torch.device("cpu"), "exact",
                            loaded.identity)
    assert all(np.isnan(p) for p in out.probabilities.values()) and not out.regions
    assert stage in out.frame.record["not_finite"]
    with torch.inference_mode(), pytest.raises(FloatingPointError, match="not finite"):  # torchvision's contract
        loaded.model([torch.from_numpy(image / 4095)[None].expand(3, -1, -1)])  # never an empty "nothing found"
    result = analyze_exam({View.L_CC: image}, [loaded], device="cpu")
    (entry,) = result.entries
    reason = result.views[View.L_CC].no_result[entry.id]
    assert "is not a finite number" in reason and f"not finite inside the network: {stage}" in reason
    assert entry.id not in result.exam or not result.exam[entry.id].probabilities
    args = argparse.Namespace(split="all", model=str(tmp_path / "model.pt"), data="phantom", phantoms=2,
                              device="cpu", lesion_hit="centre", min_iou=None, out=str(tmp_path / "out"))
    with pytest.raises(MammoError, match=rf"the model's output is not a finite number .*{stage}"):
        evaluate._detections(args, SimpleNamespace(identity=loaded.identity, model=loaded.model))
    assert not (tmp_path / "out").exists()
