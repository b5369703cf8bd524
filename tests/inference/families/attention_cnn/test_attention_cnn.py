"""The attention CNN on the seven MIAS classes: encoder and attention shapes, the pooling formula by hand, the
VGG16 key remap, the MIAS table and folder, the split and the balancing, a short deterministic training run,
load -> analyse -> report, the map registered through the resize, and the classification report."""

from __future__ import annotations

import json
from collections import Counter

import cv2
import numpy as np
import pytest
import torch

from inference.families.attention_cnn.mias import CLASSES, CODES, balanced_resample, lesion_mask, load_mias, parse_info, stratified_split
from inference.families.attention_cnn.model import (
    AttentionCNN,
    AttentionCNNConfig,
    ConvAttention,
    attention_pool,
    remap_torchvision_vgg16,
    vgg16_features,
)
from inference.intake.views import View
from inference.weights import read_state_dict
from tests.helpers import (
    make_attention_stub,
    report_one_view,
    run_main,
    synthetic_view,
    train_stopped_and_resumed,
)

LESION = (700, 500)
INFO = """\
MIAS database: Info.txt (as distributed)
1st column: MIAS database reference number.
2nd column: Character of background tissue: F Fatty, G Fatty-glandular, D Dense-glandular
3rd column: Class of abnormality present: CALC, CIRC, SPIC, MISC, ARCH, ASYM, NORM
4th column: Severity of abnormality: B Benign, M Malignant
5th,6th columns: x,y image-coordinates of centre of abnormality.
7th column: Approximate radius (in pixels) of a circle enclosing the abnormality.

mdb001 G CIRC B 535 425 197
mdb002 G CIRC B 522 280 69
mdb003 D NORM
mdb005 F CIRC B 477 133 30
mdb005 F CIRC B 500 168 26
mdb059 F CIRC B *NOTE 3*
mdb209 G CALC M 647 503 87
mdb271 F SPIC M 784 270 68 \t
"""


# ------------------------------------------------------------------------------------------------- the network


class Payload:
    """A Python object in a checkpoint: loading it would run pickled code, so the loader must refuse it."""


@pytest.mark.parametrize("attention", ["conv", "gru"])
def test_encoder_and_attention_shapes(attention):
    torch.manual_seed(0)
    model = AttentionCNN(AttentionCNNConfig(width=8, attention=attention)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 224))
        features = model.encoder(torch.randn(1, 3, 224, 224))
    assert features.shape == (1, 64, 7, 7)  # 8 x width: 512 at VGG16's width 64
    assert out.logits.shape == (2, 7) and out.attention.shape == (2, 1, 7, 7) and out.pooled.shape == (2, 64)
    if attention == "conv":
        assert ((out.attention > 0) & (out.attention < 1)).all()
    else:  # the mean of soft attention weights over the 49 positions
        assert torch.allclose(out.attention.sum(dim=(1, 2, 3)), torch.ones(2), atol=1e-5)


def test_vgg16_layout_and_the_published_attention_widths():
    features = vgg16_features(64)
    convs = [i for i, m in enumerate(features) if isinstance(m, torch.nn.Conv2d)]
    assert convs == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # torchvision's vgg16().features indices
    assert [features[i].out_channels for i in convs] == [64, 64, 128, 128, 256, 256, 256] + [512] * 6
    assert len(features) == 31 and isinstance(features[30], torch.nn.MaxPool2d)
    layers = [m for m in ConvAttention(512).layers if isinstance(m, torch.nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size) for m in layers] == [(512, 64, (1, 1)), (64, 16, (1, 1)),
                                                                                 (16, 1, (1, 1))]
    assert isinstance(ConvAttention(512).layers[-1], torch.nn.Sigmoid)


def test_attention_pooling_by_hand():
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 10.0], [0.0, 0.0]]]])  # (1, 2, 2, 2)
    attention = torch.tensor([[[[1.0, 0.5], [0.0, 0.5]]]])
    # GAP(A ⊙ F) / GAP(A): channel 0 (1 + 1 + 0 + 2) / 4 / (2 / 4) = 2; channel 1 (0 + 5 + 0 + 0) / 4 / (2 / 4) = 2.5
    assert torch.allclose(attention_pool(features, attention), torch.tensor([[2.0, 2.5]]))
    # a uniform map is plain global average pooling
    assert torch.allclose(attention_pool(features, torch.full((1, 1, 2, 2), 0.3)), features.mean(dim=(2, 3)))


def test_the_head_is_the_papers():
    head = AttentionCNN(AttentionCNNConfig(width=8)).head
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Dropout", "Linear", "ELU", "Dropout", "Linear"]
    assert head[0].p == 0.5 and head[3].p == 0.25 and head[1].out_features == 128 and head[4].out_features == 7


def test_a_torchvision_vgg16_state_dict_maps_onto_the_encoder():
    torch.manual_seed(1)
    reference = vgg16_features(64)
    torchvision_state = {f"features.{k}": v for k, v in reference.state_dict().items()}
    torchvision_state.update({"classifier.0.weight": torch.zeros(4096, 25088), "classifier.0.bias": torch.zeros(4096),
                              "classifier.6.weight": torch.zeros(1000, 4096)})
    mapped = remap_torchvision_vgg16(torchvision_state)
    assert set(mapped) == {f"encoder.{k}" for k in reference.state_dict()}  # the ImageNet classifier is dropped
    assert "encoder.28.weight" in mapped and "encoder.30.weight" not in mapped
    model = AttentionCNN(AttentionCNNConfig(width=64))
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    assert not unexpected and all(not k.startswith("encoder.") for k in missing)
    assert torch.equal(model.encoder[28].weight, reference[28].weight)


def test_encoder_weights_are_read_safely_and_must_fit(tmp_path):
    from inference.families.attention_cnn.training import load_encoder_weights

    torch.manual_seed(2)
    reference = vgg16_features(64)
    good = tmp_path / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in reference.state_dict().items()}, good)
    model = AttentionCNN(AttentionCNNConfig(width=64))
    load_encoder_weights(model, str(good))
    assert torch.equal(model.encoder[0].weight, reference[0].weight)
    with pytest.raises(ValueError, match="width 64"):
        load_encoder_weights(AttentionCNN(AttentionCNNConfig(width=8)), str(good))
    unsafe = tmp_path / "pickled.pth"
    torch.save({"features.0.weight": torch.zeros(1), "note": Payload()}, unsafe)
    from inference.errors import CheckpointError

    with pytest.raises(CheckpointError, match="refused"):
        load_encoder_weights(model, str(unsafe))


# ------------------------------------------------------------------------------------------------- MIAS data


def test_the_info_table_is_read_with_its_bottom_left_origin(tmp_path):
    info = tmp_path / "Info.txt"
    info.write_text(INFO)
    rows = parse_info(info)
    assert [r.reference for r in rows] == ["mdb001", "mdb002", "mdb003", "mdb005", "mdb005", "mdb059", "mdb209",
                                           "mdb271"]
    first = rows[0]
    assert (first.tissue, first.code, first.severity, first.radius) == ("G", "CIRC", "B", 197)
    assert first.centre == (1024 - 425, 535)  # (row from the top, column)
    assert first.class_name == "circumscribed_mass"
    normal = rows[2]
    assert (normal.code, normal.severity, normal.centre, normal.radius) == ("NORM", None, None, None)
    assert rows[5].centre is None and rows[5].severity == "B"  # "*NOTE 3*": no coordinates
    assert rows[-1].code == "SPIC" and rows[-1].severity == "M" and rows[-1].centre == (1024 - 270, 784)
    assert [CLASSES[CODES.index(c)] for c in ("ARCH", "MISC")] == ["architectural_distortion", "ill_defined_mass"]


def test_a_bad_row_names_the_file_and_line(tmp_path):
    info = tmp_path / "Info.txt"
    info.write_text("header\nmdb001 G CIRC B 535 425 197\nmdb002 G XYZW B 1 2 3\n")
    with pytest.raises(ValueError, match=r"Info\.txt, line 3: not a MIAS row"):
        parse_info(info)
    info.write_text("mdb001 G SPIC\n")
    with pytest.raises(ValueError, match="line 1: mdb001 is SPIC but has no severity"):
        parse_info(info)
    info.write_text("no rows at all\n")
    with pytest.raises(ValueError, match="no MIAS rows"):
        parse_info(info)


def test_a_mias_folder_loads_with_lesion_masks_where_the_table_puts_them(tmp_path):
    (tmp_path / "Info.txt").write_text(INFO)
    for reference in ("mdb001", "mdb002", "mdb003", "mdb005", "mdb059", "mdb209", "mdb271"):
        cv2.imwrite(str(tmp_path / f"{reference}.pgm"), np.full((1024, 1024), 40, np.uint8))
    images = load_mias(tmp_path)
    assert len(images) == 7
    by_name = {image.labelled.source.split("/")[-1]: image for image in images}
    two = by_name["mdb005.pgm"]
    assert two.labelled.label == "circumscribed_mass" and two.severity == "B" and two.tissue == "F"
    mask = two.labelled.lesion
    assert mask[1024 - 133, 477] and mask[1024 - 168, 500] and not mask[133, 477]  # both circles, bottom-left origin
    assert by_name["mdb003.pgm"].labelled.lesion is None and by_name["mdb003.pgm"].severity == ""
    assert by_name["mdb059.pgm"].labelled.lesion is None
    assert lesion_mask(parse_info(tmp_path / "Info.txt")[:1]).sum() == pytest.approx(np.pi * 197**2, rel=0.01)
    (tmp_path / "mdb271.pgm").unlink()
    with pytest.raises(ValueError, match=r"mdb271\.pgm: missing or not a readable PGM"):
        load_mias(tmp_path)


def test_the_split_is_stratified_as_the_papers_247_83():
    counts = {"normal": 207, "circumscribed_mass": 25, "calcification": 30, "spiculated_mass": 19,
              "ill_defined_mass": 15, "architectural_distortion": 19, "asymmetry": 15}  # 330 rows
    labels = [name for name, n in counts.items() for _ in range(n)]
    train, test = stratified_split(labels, 0.25, seed=0)
    assert (len(train), len(test)) == (247, 83) and not set(train) & set(test)
    held_out = Counter(labels[i] for i in test)
    for name, n in counts.items():
        assert abs(held_out[name] - n / 4) <= 1
    assert stratified_split(labels, 0.25, seed=0) == (train, test)


def test_balancing_resamples_every_class_and_severity_group_equally():
    groups = ["normal/-"] * 150 + ["calcification/B"] * 20 + ["calcification/M"] * 8 + ["spiculated_mass/M"] * 5
    picked = balanced_resample(groups, 1300, seed=3)
    counts = Counter(groups[i] for i in picked)
    assert len(picked) == 1300 and set(counts.values()) == {325}
    assert balanced_resample(groups, 1300, seed=3) == picked and balanced_resample(groups, 1300, seed=4) != picked


def test_the_csv_source_reads_severity_and_names_bad_rows(tmp_path):
    from inference.families.attention_cnn.data import class_samples

    cv2.imwrite(str(tmp_path / "a.png"), synthetic_view("R-CC", LESION, shape=(400, 300)))
    (tmp_path / "data.csv").write_text("path,view,label,severity\na.png,R-CC,spiculated_mass,M\n")
    samples, _ = class_samples(str(tmp_path / "data.csv"))
    assert samples[0].group == "spiculated_mass/M"
    (tmp_path / "data.csv").write_text("path,view,label,severity\na.png,R-CC,spiculated_mass,X\n")
    with pytest.raises(ValueError, match="row 2: severity must be B, M or empty"):
        class_samples(str(tmp_path / "data.csv"))
    (tmp_path / "data.csv").write_text("path,view,label\na.png,R-CC,SPIC\n")
    with pytest.raises(ValueError, match="row 2: unknown label 'SPIC'"):
        class_samples(str(tmp_path / "data.csv"))


# ------------------------------------------------------------------------------------------------- the report


def test_the_classification_report_is_scikit_learns():
    from sklearn.metrics import classification_report as sklearn_report

    from inference.evaluation.classification_report import classification_report, confusion_picture

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 7, 83)
    predicted = np.where(rng.random(83) < 0.4, truth, rng.integers(0, 7, 83))
    report = classification_report(truth, predicted, CLASSES)
    expected = sklearn_report(truth, predicted, target_names=list(CLASSES), output_dict=True, zero_division=0)
    for name in CLASSES:
        assert report.rows[name]["precision"] == pytest.approx(expected[name]["precision"])
        assert report.rows[name]["recall"] == pytest.approx(expected[name]["recall"])
        assert report.rows[name]["f1"] == pytest.approx(expected[name]["f1-score"])
        assert report.rows[name]["support"] == expected[name]["support"]
    for average in ("macro", "weighted"):
        assert report.rows[f"{average} avg"]["f1"] == pytest.approx(expected[f"{average} avg"]["f1-score"])
    # single-label: micro precision = recall = F1 = accuracy
    assert report.rows["micro avg"]["f1"] == pytest.approx(expected["accuracy"]) == pytest.approx(report.accuracy)
    assert report.confusion.sum() == 83 and np.trace(report.confusion) == int((truth == predicted).sum())
    text = report.text()
    assert "architectural_distortion" in text and "weighted avg" in text and "support" in text
    picture = confusion_picture(report)
    assert picture.ndim == 3 and picture.shape[0] > 7 * 64 and picture.dtype == np.uint8
    # a never-predicted class has precision 0, not an error
    one = classification_report([0, 1, 1], [1, 1, 1], CLASSES)
    assert one.rows["architectural_distortion"]["precision"] == 0.0 and one.classes == CLASSES[:2]


# ------------------------------------------------------------------------------------------------- in the pipeline


def test_the_map_is_registered_on_the_breast_through_the_resize():
    from inference.pipeline import analyze_exam

    stub = make_attention_stub(region_threshold=0.9)
    image = synthetic_view("R-CC", LESION, shape=(1600, 900))
    result = analyze_exam({View.R_CC: image}, stub, device="cpu")
    entry = result.entries[0].id
    view = result.views[View.R_CC].entries[entry]
    layer = view.layers[0]
    assert (layer.name, layer.class_name, layer.colormap, layer.primary) == ("attention", None, "viridis", True)
    assert layer.values.shape == (7, 7) and layer.values.max() == pytest.approx(1.0)
    i, j = np.unravel_index(np.argmax(layer.values), layer.values.shape)
    centre = layer.to_original @ np.array([i + 0.5, j + 0.5, 1.0])  # map cell -> stored pixel (row, col)
    assert abs(centre[0] - LESION[0]) <= 1600 / 7 / 2 + 1 and abs(centre[1] - LESION[1]) <= 900 / 7 / 2 + 1
    assert view.frame.input_shape == (224, 224) and view.frame.original_shape == (1600, 900)
    assert np.allclose(view.frame.to_original @ [224, 224, 1], [1600, 900, 1])
    top, left, bottom, right = view.regions[0].box_original
    assert view.regions[0].kind == "attention region"
    assert top <= LESION[0] < bottom and left <= LESION[1] < right
    assert list(view.probabilities) == list(CLASSES) and sum(view.probabilities.values()) == pytest.approx(1.0)
    # MIAS classes are findings: no malignancy rule, so no exam decision from this family
    decision = result.exam[entry]
    assert not result.entries[0].has_malignancy and decision.malignant is None and decision.breast is None


def test_a_declared_malignancy_rule_gives_the_exam_decision():
    from inference.pipeline import analyze_exam

    stub = make_attention_stub(malignancy=("spiculated_mass",))
    result = analyze_exam({View.R_CC: synthetic_view("R-CC", LESION, shape=(1600, 900))}, stub, device="cpu")
    entry = result.entries[0].id
    assert result.entries[0].has_malignancy
    p_spiculated = result.views[View.R_CC].entries[entry].probabilities["spiculated_mass"]
    assert result.exam[entry].malignant == pytest.approx(p_spiculated)


def test_without_a_threshold_there_are_no_regions():
    from inference.pipeline import analyze_exam

    result = analyze_exam({View.R_CC: synthetic_view("R-CC", LESION, shape=(1600, 900))},
                          make_attention_stub(region_threshold=None), device="cpu")
    assert result.views[View.R_CC].entries[result.entries[0].id].regions == ()


def test_short_training_is_deterministic_and_resumes(tiny_attention_model, tmp_path):
    from tests.conftest import TINY_ATTENTION_TRAINING

    meta = json.loads(tiny_attention_model.with_name("model.pt.json").read_text())
    assert meta["family"] == "attention-cnn" and meta["classes"] == list(CLASSES) and "malignancy" not in meta
    assert meta["normalisation"]["mean"] == [0.485, 0.456, 0.406]
    assert meta["evaluation"]["images"] == 4 and "macro avg" in meta["evaluation"]["rows"]
    assert [h["epoch"] for h in meta["training"]["history"]] == [1, 2]
    final = read_state_dict(tiny_attention_model)
    assert all(v.dtype == torch.float16 for v in final.values() if v.is_floating_point())
    # one epoch, then a resumed second: the same weights as the uninterrupted run
    stderr, resumed = train_stopped_and_resumed("attention-cnn", TINY_ATTENTION_TRAINING, tmp_path)
    assert "resumed from epoch 1" in stderr
    assert all(torch.equal(resumed[k], final[k]) for k in final)


def test_training_refuses_bad_options(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"malignancy": ["cancer"]}))
    done = run_main(["train", "--family", "attention-cnn", "--config", str(config)])
    assert done.returncode != 0 and "malignancy names unknown classes ['cancer']" in done.stderr
    assert "Traceback" not in done.stderr
    done = run_main(["train", "--family", "attention-cnn", "--data", str(tmp_path / "none.csv"),
                     "--out", str(tmp_path / "out")])
    assert done.returncode != 0 and "none.csv: the data file does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_trained_model_loads_analyses_and_reports(tiny_attention_model, tmp_path):
    import highdicom as hd

    from inference.results.serialize import read_result, write_result
    from inference.weights import load_model
    from tests.helpers import dciodvfy
    from tests.report.test_report import pdf_text

    loaded = load_model(tiny_attention_model)
    assert loaded.identity.family == "attention-cnn" and loaded.identity.classes == CLASSES
    assert loaded.identity.malignancy == () and loaded.identity.exclusive
    _, result, paths = report_one_view(loaded, tmp_path, synthetic_view("R-CC", LESION, shape=(1600, 900)))
    entry = result.entries[0].id
    view = result.views[View.R_CC].entries[entry]
    assert sum(view.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    seg = next(p for p in paths if p.name.endswith("_saliency_seg.dcm"))
    assert dciodvfy(seg) == []
    assert [s.SegmentLabel for s in hd.seg.segread(seg).SegmentSequence] == ["attention map"]
    sr = next(p for p in paths if p.name.endswith("_sr.dcm"))
    assert dciodvfy(sr) == []
    text = " ".join(pdf_text(next(p for p in paths if p.suffix == ".pdf")).split())
    assert "architectural distortion" in text and "findings only, no malignancy score" in text
    assert "viridis" in text
    json_path, _ = write_result(result, tmp_path / "result.json")
    again = read_result(json_path).views[View.R_CC].entries[entry]
    assert again.layers[0].colormap == "viridis" and again.layers[0].class_name is None
    assert np.allclose(again.layers[0].values, view.layers[0].values)
    assert again.probabilities == pytest.approx(view.probabilities)


def test_evaluate_writes_the_classification_report_and_the_confusion_matrix(tiny_attention_model, tmp_path):
    done = run_main(["evaluate", "--model", str(tiny_attention_model), "--data", "phantom",
                     "--phantoms", "12", "--out", str(tmp_path / "eval")])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "precision" in done.stdout and "macro avg" in done.stdout and "weighted avg" in done.stdout
    report = (tmp_path / "eval" / "classification_report.csv").read_text().splitlines()
    assert report[0] == "class,precision,recall,f1,support"
    assert sum(int(line.split(",")[-1]) for line in report[1:] if not line.split(",")[0].endswith(("avg", "accuracy"))) == 12
    picture = cv2.imread(str(tmp_path / "eval" / "confusion_matrix.png"))
    assert picture is not None and picture.shape[0] > 200
    assert len((tmp_path / "eval" / "per_image.csv").read_text().splitlines()) == 13
    held_out = run_main(["evaluate", "--model", str(tiny_attention_model), "--data", "phantom",
                         "--split", "test"])
    assert held_out.returncode == 0 and "the held-out part (4 images) of 16 phantom views (seed 4)" in held_out.stdout


def test_a_long_confusion_matrix_title_is_wrapped_inside_the_picture():
    """The title was cut at the picture's edge ('…: 20 phantom v')."""
    from inference.evaluation.classification_report import classification_report, confusion_picture
    from inference.evaluation.text_lines import FONT, wrap

    report = classification_report([0, 1, 2, 0], [0, 1, 1, 0], ["normal", "benign", "malignant"])
    title = "Mammo Reader demo attention CNN on MIAS classes (synthetic phantoms) on 20 phantom views, test split"
    short, long = confusion_picture(report, "t"), confusion_picture(report, title)
    assert long.shape[1] == short.shape[1] and long.shape[0] > short.shape[0]  # taller, never wider
    lines = wrap(title, short.shape[1] - 16, 0.55)
    assert " ".join(lines) == title and all(cv2.getTextSize(l, FONT, 0.55, 1)[0][0] <= short.shape[1] - 16
                                            for l in lines)


def test_evaluate_reads_the_images_in_the_mode_asked_for(tiny_attention_model, monkeypatch):
    """evaluate --mode fast measured the exact mode without a word (it always read in exact)."""
    from inference.families.registry import get  # noqa: PLC0415

    family = get("attention-cnn")
    modes = []
    real = family.run

    def recorded(model, prepared, device, mode, *args, **kwargs):
        modes.append(str(mode))
        return real(model, prepared, device, mode, *args, **kwargs)

    monkeypatch.setattr(family, "run", recorded)
    done = run_main(["evaluate", "--model", str(tiny_attention_model), "--data", "phantom", "--phantoms", "2",
                     "--mode", "fast"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert modes and set(modes) == {"fast"}, modes
