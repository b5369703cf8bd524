"""Training: the paper's loss, a short deterministic run, checkpoints, resume and the output files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from inference.families.gmic.model import GMICOutput
from inference.families.gmic.training import gmic_loss
from inference.weights import load_model, read_state_dict
from tests.helpers import run_isolated


def test_loss_is_three_bces_plus_the_saliency_regulariser():
    def out(p):
        t = torch.tensor([[p, 1 - p]])
        return t

    o = GMICOutput(saliency_map=torch.full((1, 2, 2, 2), 0.5), y_global=out(0.2), patch_locations=None, patches=None,
                   patch_attention=None, y_local=out(0.4), y_fusion=out(0.3), global_vec=None, h_crops=None, z=None)
    labels = torch.tensor([[0.0, 1.0]])
    expected = sum(-np.log(1 - p) - np.log(1 - p) for p in (0.2, 0.4, 0.3)) + 0.1 * 4.0
    assert float(gmic_loss(o, labels, saliency_lambda=0.1, beta=1.0)) == pytest.approx(expected, rel=1e-5)


def _train_cli(config: dict, folder, tmp_path, **overrides):
    """``python main.py train`` in a child process (a crash in native code fails this test, not the run)."""
    path = tmp_path / f"config_{len(list(tmp_path.glob('config_*.json')))}.json"
    path.write_text(json.dumps({**config, **overrides}))
    done = run_isolated(["main.py", "train", "--config", str(path), "--out", str(folder)])
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.timeout(900)
def test_short_run_is_deterministic_checkpoints_and_resumes(tmp_path):
    config = {"n_train": 3, "n_val": 1, "epochs": 1, "seed": 3, "device": "cpu", "global_width": 4, "local_width": 8,
              "mask_weight": 1.0}
    _train_cli(config, tmp_path / "a", tmp_path)
    model_path = tmp_path / "a" / "model.pt"

    def strict(constant):  # a researcher's test: an AUC of one validation view was written as NaN, no JSON
        raise AssertionError(f"{constant} in model.pt.json")

    meta = json.loads(model_path.with_name("model.pt.json").read_text(), parse_constant=strict)
    assert meta["demo"] is True and meta["config"]["global_width"] == 4 and len(meta["training"]["history"]) == 1
    assert meta["training"]["history"][0]["auc_benign"] is None  # one validation view: no AUC
    loaded = load_model(model_path)
    assert loaded.identity.demo and loaded.model.config.local_width == 8 and loaded.identity.percent_t == 0.02
    _train_cli(config, tmp_path / "b", tmp_path)
    first = read_state_dict(model_path)
    second = read_state_dict(tmp_path / "b" / "model.pt")
    assert all(torch.equal(first[k], second[k]) for k in first)  # same seed, same weights
    # resume: a second epoch continues from the checkpoint instead of starting over
    done = _train_cli(config, tmp_path / "a", tmp_path, epochs=2)
    assert "resumed from epoch 1" in done.stderr
    meta = json.loads(model_path.with_name("model.pt.json").read_text())
    assert meta["family"] == "gmic"  # it had none: beside Mask R-CNN weights it was taken for that model's
    assert [h["epoch"] for h in meta["training"]["history"]] == [1, 2]


@pytest.mark.parametrize("pretend", ["this-cpu", "avx512"])
@pytest.mark.timeout(600)
def test_cpu_training_steps_run_in_the_chosen_memory_format(tmp_path, pretend):
    """Every training step's input and weights are in the format ``training_memory_format`` chose; on a CPU
    with AVX-512 (real or pretended) that is the contiguous format, never channels-last."""
    done = run_isolated(["-m", "tests.inference.families.gmic.train_probe", str(tmp_path / "run"), pretend])
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report["steps"]) == 2
    channels_last = report["chosen"] == "channels_last"
    assert all(s["input_channels_last"] == channels_last and s["weight_channels_last"] == channels_last
               for s in report["steps"])
    from inference.cpu import has_avx512
    from inference.training.device import onednn_may_use_avx512

    if pretend == "avx512" or onednn_may_use_avx512():
        assert report["chosen"] == "contiguous"
    assert has_avx512() or pretend == "avx512" or report["chosen"] == "channels_last"


def test_memory_format_rule(monkeypatch):
    import inference.cpu
    from inference.training.device import training_memory_format

    cpu = torch.device("cpu")
    monkeypatch.setattr(inference.cpu, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "amx_bf16"}))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert training_memory_format(cpu) == torch.contiguous_format
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # oneDNN capped at AVX2 kernels: channels-last is safe
    assert training_memory_format(cpu) == torch.channels_last
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert training_memory_format(cpu) == torch.contiguous_format
    monkeypatch.setattr(inference.cpu, "cpu_flags", lambda: frozenset({"avx2"}))
    assert training_memory_format(cpu) == torch.channels_last
    assert training_memory_format(torch.device("cuda")) == torch.channels_last
    assert training_memory_format(cpu, "contiguous") == torch.contiguous_format
    with pytest.raises(ValueError):
        training_memory_format(cpu, "nhwc")


def test_mask_targets_follow_the_image_through_crop_flip_and_window():
    from inference.families.gmic.training import phantom_samples, prepare_sample

    for sample in phantom_samples(12, 5):
        if not sample.labels.any():
            continue
        x, targets = prepare_sample(sample)
        for c in (0, 1):
            assert bool(targets[c].any()) == bool(sample.labels[c])
        # the lesion pixels are bright in the input, so the targeted cells hold the brightest pixels around
        cells = torch.nn.functional.max_pool2d(x[None], 64)[0, 0]
        hot = targets.amax(dim=0) > 0
        assert cells[hot].max() > cells[~hot].median()


def test_mask_loss_only_when_asked():
    o = GMICOutput(saliency_map=torch.full((1, 2, 2, 2), 0.5), y_global=torch.tensor([[0.5, 0.5]]),
                   patch_locations=None, patches=None, patch_attention=None, y_local=torch.tensor([[0.5, 0.5]]),
                   y_fusion=torch.tensor([[0.5, 0.5]]), global_vec=None, h_crops=None, z=None)
    labels = torch.tensor([[0.0, 1.0]])
    targets = torch.zeros(1, 2, 2, 2)
    plain = gmic_loss(o, labels, 0.0, 1.0)
    assert torch.equal(plain, gmic_loss(o, labels, 0.0, 1.0, targets, 0.0))
    assert float(gmic_loss(o, labels, 0.0, 1.0, targets, 2.0) - plain) == pytest.approx(2 * np.log(2), rel=1e-5)


def test_the_csv_reader_names_the_file_line_and_label_it_cannot_use(tmp_path):
    """Seen hands-on: a CSV without benign / malignant was a KeyError, a label 'nan' or 7 a RuntimeError in
    the loss, 'yes' a ValueError naming neither file nor line."""
    import pytest

    from inference.families.gmic.training import csv_samples
    from tests.helpers import synthetic_view, write_png

    write_png(tmp_path / "a.png", synthetic_view("R-CC", (700, 500)))
    csv_file = tmp_path / "train.csv"
    csv_file.write_text("path,view,benign,malignant\na.png,R-CC,0,1\n")
    (sample,) = csv_samples(csv_file)
    assert sample.labels.tolist() == [0.0, 1.0]
    for body, says in (("path,view,label\na.png,R-CC,1\n", "lacks the column\\(s\\) \\['benign', 'malignant'\\]"),
                       ("path,view,benign,malignant\na.png,R-CC,yes,0\n", "line 2: benign must be 0 or 1, not 'yes'"),
                       ("path,view,benign,malignant\na.png,R-CC,0,nan\n", "line 2: malignant must be 0 or 1"),
                       ("path,view,benign,malignant\na.png,R-CC,7,0\n", "line 2: benign must be 0 or 1, not '7'"),
                       ("path,view,benign,malignant\n", "holds no rows")):
        csv_file.write_text(body)
        with pytest.raises(ValueError, match=says):
            csv_samples(csv_file)
    csv_file.write_bytes(b"path,view,benign,malignant\n\xff\xfe,R-CC,0,1\n")
    with pytest.raises(ValueError, match="train.csv: the CSV is not UTF-8"):
        csv_samples(csv_file)


def test_a_run_that_stops_before_writing_anything_leaves_no_folder(tmp_path, capsys):
    from main import main

    bad = tmp_path / "train.csv"
    bad.write_text("path,view,benign,malignant\n")
    out = tmp_path / "run"
    assert main(["train", "--family", "gmic", "--data", str(bad), "--epochs", "1", "--out", str(out)]) == 2
    assert "holds no rows" in capsys.readouterr().err and not out.exists()
