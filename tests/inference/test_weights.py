"""Checkpoint loading: the published layout, safety, identification and ensembles."""

from __future__ import annotations

import json
import pickle
import subprocess
from pathlib import Path

import pytest
import torch

from inference import weights
from inference.families.gmic.family import remap_published_keys
from inference.families.gmic.model import GMIC
from inference.weights import (
    CheckpointError,
    git_blob_sha1,
    load_gmic_checkpoint,
    load_model,
    load_models,
)
from tests.conftest import REFERENCE, require_shared


@pytest.fixture(scope="module")
def published_state():
    """The seeded weights in the published layout, plus the unused extra key the real files carry."""
    require_shared()
    state = torch.load(REFERENCE / "seeded_state_dict.pt", weights_only=True)
    state["shared_rep_filter.weight"] = torch.zeros(1)
    return state


def save(tmp_path: Path, state, name="model.p") -> Path:
    path = tmp_path / name
    torch.save(state, path)
    return path


def test_manifest_keys_are_exactly_the_published_layout(published_state):
    manifest = json.loads((REFERENCE / "state_dict_manifest.json").read_text())
    keys = [e["key"] for e in manifest["entries"]]
    assert set(keys) | {"shared_rep_filter.weight"} == set(published_state)
    remapped = remap_published_keys(published_state)
    assert set(remapped) == set(GMIC().state_dict())


def test_remapping_is_pure(published_state):
    copy = dict(published_state)
    remap_published_keys(published_state)
    assert copy.keys() == published_state.keys()


def test_loads_published_layout_with_extra_key(tmp_path, published_state):
    with pytest.warns(UserWarning, match="percent_t = 0.02"):
        model = load_gmic_checkpoint(save(tmp_path, published_state))
    assert model.config.percent_t == 0.02 and not model.training


def test_missing_key_is_named(tmp_path, published_state):
    state = dict(published_state)
    del state["mil_attn_U.weight"]
    with pytest.raises(CheckpointError, match="lacks the weight .mil_attn_U.weight."):
        load_gmic_checkpoint(save(tmp_path, state), percent_t=0.02)


def test_unexpected_key_is_named(tmp_path, published_state):
    state = dict(published_state)
    state["extra_head.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match="extra_head.weight"):
        load_gmic_checkpoint(save(tmp_path, state), percent_t=0.02)


def test_wrong_shape_is_named(tmp_path, published_state):
    state = dict(published_state)
    state["fusion_dnn.weight"] = torch.zeros(2, 700)
    with pytest.raises(CheckpointError, match=r"the weight .fusion_dnn.weight. has shape \(2, 700\)"):
        load_gmic_checkpoint(save(tmp_path, state), percent_t=0.02)


class _RunsCode:
    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_that_would_run_code_is_refused_not_run(tmp_path):
    marker = tmp_path / "pwned"
    payload = _RunsCode()
    payload.marker = str(marker)
    path = tmp_path / "evil.p"
    with path.open("wb") as handle:
        pickle.dump({"ds_net.first_conv.weight": payload}, handle)
    with pytest.raises(CheckpointError, match="refused for safety"):
        load_gmic_checkpoint(path, percent_t=0.02)
    assert not marker.exists()


def test_a_training_checkpoint_with_its_settings_is_refused_with_the_way_to_load_its_weights(tmp_path):
    """A researcher's finding: torchvision's reference scripts keep an argparse.Namespace under "args"; refused
    (rightly), it said nothing of how to use the weights."""
    import argparse

    from inference.weights import load_model

    path = tmp_path / "checkpoint.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "epoch": 3, "args": argparse.Namespace(lr=0.02)}, path)
    with pytest.raises(CheckpointError, match=r"argparse\.Namespace.*refused for safety.*"
                                              r"torch\.save\(checkpoint\['model'\], 'weights\.pt'\)"):
        load_model(path)


def test_torch_saved_object_is_refused(tmp_path):
    path = tmp_path / "object.pt"
    torch.save({"model": GMIC()}, path)  # a whole module, not a state dict
    with pytest.raises(CheckpointError):
        load_gmic_checkpoint(path, percent_t=0.02)
    assert (tmp_path / "object.pt").exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", bytes(range(256)) * 10])
def test_garbage_files_are_refused(tmp_path, content):
    path = tmp_path / "garbage.p"
    path.write_bytes(content)
    with pytest.raises(CheckpointError):
        load_gmic_checkpoint(path, percent_t=0.02)


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_gmic_checkpoint(tmp_path / "nope.p")
    with pytest.raises(CheckpointError, match="sample_model_1.p"):
        load_models(tmp_path)


def test_git_blob_sha1_matches_git(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"hello\x00world" * 1000)
    expected = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()
    assert git_blob_sha1(path) == expected


def pretend_published(monkeypatch, entries):
    """Add published-checkpoint entries (as the data file holds them) for files made in the test."""
    from inference.families import registry

    known = registry._published()
    monkeypatch.setattr(registry, "_published", lambda: known + tuple(entries))


def test_published_checkpoint_is_recognised_by_content(tmp_path, published_state, monkeypatch):
    path = save(tmp_path, published_state, "renamed_anything.pt")
    pretend_published(monkeypatch, [{"family": "gmic", "name": "sample_model_4.p", "git_blob_sha1": git_blob_sha1(path),
                                     "settings": {"percent_t": 0.05}, "licence": "test"}])
    loaded = load_model(path, percent_t=0.5)  # the published threshold wins over the caller's
    assert loaded.identity.published_name == "sample_model_4.p" and loaded.identity.family == "gmic"
    assert loaded.model.config.percent_t == 0.05 and loaded.identity.licence == "test"


def test_published_hashes_and_thresholds_are_the_papers_as_data():
    table = {c["name"]: (c["git_blob_sha1"], c["settings"]["percent_t"]) for c in weights.published_checkpoints("gmic")}
    assert table["sample_model_1.p"] == ("04e473379a8313daa426c38e69bad392fc0be769", 0.02)
    assert table["sample_model_5.p"] == ("ec942dd65a99aaa3fce8cf00bcd10bdb0ee40e2c", 0.1)
    assert [c["settings"]["percent_t"] for c in weights.published_checkpoints("gmic")] == [0.02, 0.03, 0.03, 0.05, 0.1]
    glam = {c["name"]: c["git_blob_sha1"] for c in weights.published_checkpoints("glam")}
    assert glam == {"model_sep.ckpt": "853dbe9b9deb452ea681031fd598092be1aba9e7",
                    "model_joint.ckpt": "d8b6e1333a7b8bfded7aa5d0e7990115f2264093"}


def test_seeded_gmic_loads_as_the_gmic_family():
    require_shared()
    loaded = load_model(REFERENCE / "seeded_state_dict.pt", percent_t=0.02)
    assert loaded.identity.family == "gmic" and loaded.identity.classes == ("benign", "malignant")
    assert loaded.identity.malignancy == ("malignant",) and isinstance(loaded.model, torch.nn.Module)


@pytest.mark.parametrize("content, says", [(b"\x13\x37" * 999, "not a PyTorch checkpoint"), (b"", "empty"),
                                           (b"PK\x03\x04 broken zip", "damaged or incomplete"),
                                           (b"hello world\n", "not a PyTorch checkpoint")])  # KeyError inside torch
def test_corrupt_files_are_described_without_torchs_advice(tmp_path, content, says):
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    text = str(caught.value)
    assert says in text and "weights_only" not in text and "Python objects" not in text
    assert caught.value.__cause__ is None  # torch's message (and its advice) is not chained either


def test_caller_threshold_for_unknown_checkpoint(tmp_path, published_state):
    assert load_gmic_checkpoint(save(tmp_path, published_state), percent_t=0.1).config.percent_t == 0.1


def test_half_precision_and_wrapped_state_dicts_load(tmp_path, published_state):
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in published_state.items()}
    model = load_gmic_checkpoint(save(tmp_path, {"state_dict": half}), percent_t=0.02)
    assert model.fusion.weight.dtype == torch.float32


def test_folder_gives_an_ensemble_in_published_order(tmp_path, published_state, monkeypatch):
    paths = []
    for i in (2, 1):
        state = dict(published_state)
        state["fusion_dnn.bias"] = torch.full((2,), float(i))  # different content, different hash
        paths.append(save(tmp_path, state, f"file_{i}.p"))
    pretend_published(monkeypatch, [{"family": "gmic", "name": f"sample_model_{i}.p", "git_blob_sha1": git_blob_sha1(p),
                                     "settings": {"percent_t": 0.02 + 0.01 * (i - 1)}, "licence": ""}
                                    for i, p in zip((2, 1), paths, strict=True)])
    models = load_models(tmp_path)
    assert [m.identity.published_name for m in models] == ["sample_model_1.p", "sample_model_2.p"]
    assert [m.model.config.percent_t for m in models] == [0.02, 0.03]
    (group,) = weights.load_model_groups([tmp_path])
    assert group.id == tmp_path.name and len(group.members) == 2 and "ensemble" in group.label


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_a_checkpoint_with_a_weight_that_is_no_finite_number_is_refused_by_name(tmp_path, bad):
    """An inf weight gave P(malignant) 1.0 on screen and in the study's scores; it is refused at load."""
    from inference.weights import read_state_dict  # noqa: PLC0415

    state = {"features.0.weight": torch.zeros(4, 3), "fusion.weight": torch.full((2, 4), bad),
             "features.0.num_batches_tracked": torch.tensor(3)}
    path = tmp_path / "damaged.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="damaged.pt: the weight 'fusion.weight' holds values that are not finite"):
        read_state_dict(path)



@pytest.mark.parametrize("name, tensor, says", [
    ("fusion.weight", torch.ones(2, 4, dtype=torch.int64), r"'fusion.weight' holds whole numbers \(int64\)"),
    ("features.0.bn.running_var", torch.tensor([1.0, -1.0]), "'features.0.bn.running_var' holds negative variances"),
])
def test_a_weight_of_whole_numbers_or_a_negative_variance_is_refused_by_name(tmp_path, name, tensor, says):
    """A researcher's test: an int64 weight was cast to float and gave other probabilities without a word; a
    negative running_var loaded, and Mask R-CNN's analysis then failed with a traceback."""
    from inference.weights import read_state_dict  # noqa: PLC0415

    path = tmp_path / "damaged.pt"
    torch.save({"features.0.weight": torch.zeros(4, 3), name: tensor,
                "features.0.bn.num_batches_tracked": torch.tensor(3)}, path)
    with pytest.raises(CheckpointError, match=f"damaged.pt: the weight {says}.*the checkpoint is damaged"):
        read_state_dict(path)


@pytest.mark.parametrize("field, value, says", [
    ("malignancy", "malignant", "'malignancy' must be a list of class names"),
    ("classes", "benign,malignant", "'classes' must be a list of class names"),
    ("demo", "no", "'demo' must be true or false"),
    ("family", 3, "'family' must be text"),
])
def test_a_metadata_field_of_the_wrong_kind_is_named(tmp_path, field, value, says):
    """A researcher's test: "malignancy": "malignant mass" named each of its letters a class, and "demo": "no"
    put the demo banner on a model."""
    from inference.weights import read_metadata  # noqa: PLC0415

    (tmp_path / "model.pt.json").write_text(json.dumps({field: value}))
    with pytest.raises(CheckpointError, match=f"model.pt.json: the model's metadata: {says}"):
        read_metadata(tmp_path / "model.pt")

def test_a_pickle_that_makes_torch_raise_index_error_is_refused_as_a_file_not_a_crash(tmp_path):
    path = tmp_path / "tuple.pt"
    path.write_bytes(b"\x80\x02\x85.")  # torch.load raised IndexError (a traceback in every command)
    with pytest.raises(CheckpointError, match="tuple.pt: .*only weight files"):
        load_model(path)


DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"


def _with_sidecar(tmp_path, source: Path, change) -> Path:
    import shutil

    model = tmp_path / "model.pt"
    shutil.copy(source, model)
    meta = json.loads(source.with_name(source.name + ".json").read_text())
    text = change(meta)
    sidecar = model.with_name("model.pt.json")
    if isinstance(text, bytes):
        sidecar.write_bytes(text)
    else:
        sidecar.write_text(json.dumps(meta))
    return model


@pytest.mark.parametrize("source, change, says", [
    ("model.pt", lambda m: b"\xff\xfe{not utf-8", "could not be read"),
    ("model.pt", lambda m: m.update(config="hello"), "'config' must be a JSON object"),
    ("model.pt", lambda m: m["config"].update(cam_size=[0, 0]), "cam_size must be two positive whole numbers"),
    ("model.pt", lambda m: m["config"].update(cam_size=5), "invalid configuration"),
    ("model.pt", lambda m: m["config"].update(crop_shape=[100000, 100000]), "does not fit the 2944 x 1920 input"),
    ("model.pt", lambda m: m.update(label=["a"]), "'label' must be text"),
    ("sliding_window/model.pt", lambda m: m["calibration"].update(temperature="hot"), "window settings are invalid"),
    ("sliding_window/model.pt", lambda m: m["calibration"].update(temperature=None), "window settings are invalid"),
    ("sliding_window/model.pt", lambda m: m.update(calibration="nope"), "'calibration' must be a JSON object"),
    ("model.pt", lambda m: m.update(calibration={"method": "platt", "parameters": {"a": "x", "b": 0}}),
     "its calibration is damaged \\(platt's a must be finite numbers\\)"),
    # a security review's cards: a threshold of -1 called an exam scored < 0.1 % "above the 90 % specificity
    # threshold"; NaN failed every report after the analysis; text or a non-list failed with a TypeError; two
    # classes of one name hid the benign output; K = 6.5 or a million failed deep in the forward; T = 1e-300
    # made every output 0 or 1
    ("model.pt", lambda m: m["calibration"]["operating_points"][0].update(threshold=-1),
     "operating point '90 % specificity': the threshold must be a number from 0 to 1, not -1"),
    ("model.pt", lambda m: m["calibration"]["operating_points"][0].update(threshold=float("nan")), "not NaN"),
    ("model.pt", lambda m: m["calibration"]["operating_points"][0].update(threshold="0.4"), 'not "0.4"'),
    ("model.pt", lambda m: m["calibration"]["operating_points"][0].update(specificity=9), "its specificity must be"),
    ("model.pt", lambda m: m["calibration"]["operating_points"].append({"threshold": 0.5}),
     'operating point 2 must be an object with a "name"'),
    ("model.pt", lambda m: m["calibration"].update(operating_points="x"), "'operating_points' must be a list"),
    ("model.pt", lambda m: m.update(classes=["malignant", "malignant"]), "the class 'malignant' is named twice"),
    ("model.pt", lambda m: m["config"].update(K=6.5), "K \\(the patches retrieved\\) must be a whole number from 1 to 64"),
    ("model.pt", lambda m: m["config"].update(K=1_000_000), "got 1000000"),
    ("sliding_window/model.pt", lambda m: m["calibration"].update(temperature=1e-300), "makes every output 0 or 1"),
], ids=["not utf-8", "config text", "cam size 0", "cam size number", "crop too big", "label list",
        "temperature text", "temperature null", "calibration text", "card platt text", "threshold -1",
        "threshold nan", "threshold text", "specificity 9", "point without name", "points text", "class twice",
        "K 6.5", "K a million", "temperature 1e-300"])
def test_a_bad_metadata_file_is_a_checkpoint_error_naming_it(tmp_path, source, change, says):
    """Seen in a hands-on tour: each of these ended in a Python traceback (or at the forward pass)."""
    model = _with_sidecar(tmp_path, DEMO / source, change)
    with pytest.raises(weights.CheckpointError, match=says) as caught:
        weights.load_model(model)
    assert "model.pt" in str(caught.value)


def test_a_null_label_is_the_file_name_and_a_null_section_is_as_if_absent(tmp_path):
    model = _with_sidecar(tmp_path, DEMO / "model.pt", lambda m: m.update(label=None))
    assert weights.load_model(model).identity.label == "model.pt"
    window = _with_sidecar(tmp_path, DEMO / "sliding_window" / "model.pt",
                           lambda m: m.update(config=None, windows=None, calibration=None))
    assert weights.load_model(window).identity.family == "sliding-window"  # was an AttributeError / TypeError


def test_a_missing_or_misshaped_weight_is_named_as_the_file_names_it_and_a_foreign_sidecar_is_said(tmp_path):
    """A researcher's test: a GMIC file without 'fusion_dnn.weight' was said to lack 'fusion.weight' (this
    program's name), a GLAM one 'global_net.stages.0.0.bn2.running_var'; a Mask R-CNN file without one of its
    telltale weights had "the layout of none of the known model families"; GMIC weights beside GLAM's metadata
    lacked "352" weights instead of being called what they are."""
    require_shared()
    shared = REFERENCE.parent
    cases = (
        ("gmic", lambda s: s.pop("fusion_dnn.weight"), r"lacks the weight 'fusion_dnn.weight' \(1 missing\)"),
        ("gmic", lambda s: s.__setitem__("fusion_dnn.weight", torch.zeros(2, 7)),
         r"the weight 'fusion_dnn.weight' has shape \(2, 7\), expected \(2, 768\)"),
        ("glam", lambda s: s.pop("global_network.downsampling_branch.layer_list.0.0.bn2.running_var"),
         "lacks the weight 'global_network.downsampling_branch.layer_list.0.0.bn2.running_var'"),
        ("maskrcnn", lambda s: s.pop("roi_heads.box_predictor.cls_score.weight"),
         "lacks the weight 'roi_heads.box_predictor.cls_score.weight'"),
    )
    for family, damage, says in cases:
        state = torch.load(shared / family / "seeded_state_dict.pt", weights_only=True)
        damage(state)
        path = tmp_path / f"{family}.pt"
        torch.save(state, path)
        with pytest.raises(CheckpointError, match=says):
            load_model(path, percent_t=0.02)
    import shutil

    shutil.copy(shared / "gmic" / "seeded_state_dict.pt", tmp_path / "model.pt")
    (tmp_path / "model.pt.json").write_text(json.dumps({"family": "glam"}))
    with pytest.raises(CheckpointError, match=r"model.pt.json: the metadata says the model is GLAM, but its weights "
                                              "have the layout of GMIC: the metadata file belongs to another model"):
        load_model(tmp_path / "model.pt", percent_t=0.02)


def test_a_model_trained_here_copied_without_its_metadata_file_is_refused_by_name(tiny_window_model, tmp_path):
    """A trained sliding-window model without its model.pt.json ran on the family's defaults (256-px windows for
    a 128-px model, no temperature, no label, no demo banner) without a word."""
    import shutil  # noqa: PLC0415

    from inference.weights import read_state_dict  # noqa: PLC0415

    alone = tmp_path / "copied.pt"
    shutil.copy(tiny_window_model, alone)
    with pytest.raises(CheckpointError, match=r"copied.pt: the model's metadata file copied.pt.json is missing: it "
                                              r"holds the settings the model was trained with"):
        load_model(alone)
    shutil.copy(tiny_window_model.with_name(tiny_window_model.name + ".json"), tmp_path / "copied.pt.json")
    assert load_model(alone).identity.family == "sliding-window"  # with it, as trained
    stored = torch.load(tiny_window_model, weights_only=True)  # the weights under "model", as torchvision's
    assert set(stored) == {"model", "mammo_reader"} and set(stored["model"]) == set(read_state_dict(alone))


def test_a_train_run_s_folder_gives_its_model_and_its_training_checkpoint_is_no_model(tmp_path, published_state):
    """A train run's --out given to --models was an ensemble of two: model.pt and checkpoint.pt, the latter read
    with the default settings (other numbers); checkpoint.pt named alone loaded quietly the same way."""
    from inference.training.resume import FORMAT, TRAINED_MODEL, TRAINING_CHECKPOINT

    run = tmp_path / "run"
    run.mkdir()
    save(run, published_state, TRAINED_MODEL)
    save(run, {"format": FORMAT, "model": published_state, "progress": "{}"}, TRAINING_CHECKPOINT)
    assert weights.find_checkpoints(run) == [run / TRAINED_MODEL]
    (group,) = weights.load_model_groups([run])
    assert len(group.members) == 1 and group.members[0].identity.path.endswith(TRAINED_MODEL)
    with pytest.raises(CheckpointError, match="checkpoint.pt: this is a training run's checkpoint .*load the "
                                              "model.pt that the run wrote beside it"):
        load_model(run / TRAINING_CHECKPOINT)
    (run / TRAINED_MODEL).unlink()  # a run still training (or stopped): no model yet
    with pytest.raises(CheckpointError, match="the run has not written its model.pt yet"):
        load_model(run / TRAINING_CHECKPOINT)
    save(run, published_state, TRAINING_CHECKPOINT)  # a folder of someone's own files named so: each is a model
    assert weights.find_checkpoints(run) == [run / TRAINING_CHECKPOINT]
