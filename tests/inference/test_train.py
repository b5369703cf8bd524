"""Training: the paper's loss, a short deterministic run, checkpoints, resume and the output files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from inference.models.gmic import GMICOutput
from inference.train import TrainConfig, gmic_loss, train
from inference.weights import load_model


def test_loss_is_three_bces_plus_the_saliency_regulariser():
    def out(p):
        t = torch.tensor([[p, 1 - p]])
        return t

    o = GMICOutput(saliency_map=torch.full((1, 2, 2, 2), 0.5), y_global=out(0.2), patch_locations=None, patches=None,
                   patch_attention=None, y_local=out(0.4), y_fusion=out(0.3), global_vec=None, h_crops=None, z=None)
    labels = torch.tensor([[0.0, 1.0]])
    expected = sum(-np.log(1 - p) - np.log(1 - p) for p in (0.2, 0.4, 0.3)) + 0.1 * 4.0
    assert float(gmic_loss(o, labels, saliency_lambda=0.1, beta=1.0)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.timeout(600)
def test_short_run_is_deterministic_checkpoints_and_resumes(tmp_path):
    config = TrainConfig(out=str(tmp_path / "a"), n_train=3, n_val=4, epochs=1, seed=3, device="cpu",
                         global_width=4, local_width=8, mask_weight=1.0)
    model_path = train(config, progress=lambda text: None)
    meta = json.loads(model_path.with_name("model.pt.json").read_text())
    assert meta["demo"] is True and meta["config"]["global_width"] == 4 and len(meta["training"]["history"]) == 1
    loaded = load_model(model_path)
    assert loaded.identity.demo and loaded.model.config.local_width == 8 and loaded.identity.percent_t == 0.02
    again = train(TrainConfig(**{**config.__dict__, "out": str(tmp_path / "b")}), progress=lambda text: None)
    first = torch.load(model_path, weights_only=True)
    second = torch.load(again, weights_only=True)
    assert all(torch.equal(first[k], second[k]) for k in first)  # same seed, same weights
    # resume: a second epoch continues from the checkpoint instead of starting over
    lines = []
    train(TrainConfig(**{**config.__dict__, "epochs": 2}), progress=lines.append)
    assert any("resumed from epoch 1" in line for line in lines)
    history = json.loads(model_path.with_name("model.pt.json").read_text())["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def test_mask_targets_follow_the_image_through_crop_flip_and_window():
    from inference.train import phantom_samples, prepare_sample

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
