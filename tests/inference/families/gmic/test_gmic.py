"""The GMIC model against the golden outputs of the reference, and its building blocks."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.families.gmic.model import GMIC, GMICConfig, crop_upper_left, retrieve_rois, top_t_pooling
from tests.conftest import REFERENCE, REQUIRE_SHARED, require_shared
from tests.inference.oracle_tolerances import GMIC_LOOSE as LOOSE, GMIC_TOLERANCES as TOLERANCES, LOOSE_ABSOLUTE, \
    LOOSE_RELATIVE, FAST_BF16_PROBABILITY


def golden_files():
    files = sorted(glob.glob(str(REFERENCE / "golden_*.npz")))
    if not files and REQUIRE_SHARED:
        raise RuntimeError(f"no golden files in {REFERENCE} (MAMMO_REQUIRE_SHARED=1 requires them)")
    return files


def test_all_seven_golden_files_present():
    require_shared()
    assert len(golden_files()) == 7


@pytest.mark.parametrize("path", golden_files(), ids=lambda p: p.rsplit("/", 1)[-1])
def test_forward_matches_golden(seeded_model, path):
    golden = np.load(path)
    x = torch.from_numpy(golden["input"])[None, None]
    with torch.inference_mode():
        out = seeded_model.model(x)
    assert np.array_equal(out.patch_locations.numpy(), golden["patch_locations"].astype(np.int64))
    for attr, (key, tolerance) in TOLERANCES.items():
        deviation = np.abs(getattr(out, attr).numpy() - golden[key]).max()
        assert deviation <= tolerance, (attr, deviation)
    for attr, key in LOOSE.items():
        ours, theirs = getattr(out, attr).numpy(), golden[key]
        close = np.abs(ours - theirs) <= np.maximum(LOOSE_ABSOLUTE, LOOSE_RELATIVE * np.abs(theirs))
        assert close.all(), attr


def test_batch_gives_the_same_results_as_one_at_a_time(seeded_model):
    require_shared()
    inputs = [np.load(p)["input"] for p in golden_files()[:2]]
    model = seeded_model.model
    with torch.inference_mode():
        batch = model(torch.from_numpy(np.stack(inputs))[:, None])
        for i, single_input in enumerate(inputs):
            single = model(torch.from_numpy(single_input)[None, None])
            assert torch.equal(batch.patch_locations[i], single.patch_locations[0])
            assert torch.allclose(batch.y_fusion[i], single.y_fusion[0], atol=1e-5)
            assert torch.allclose(batch.saliency_map[i], single.saliency_map[0], atol=1e-5)


def test_forward_stores_nothing_on_the_module(seeded_model):
    require_shared()
    model = seeded_model.model
    before = {name: dict(m.__dict__) for name, m in model.named_modules()}
    x = torch.from_numpy(np.load(golden_files()[0])["input"])[None, None]
    with torch.inference_mode():
        model(x)
    after = {name: dict(m.__dict__) for name, m in model.named_modules()}
    assert before.keys() == after.keys()
    for name in before:
        assert before[name].keys() == after[name].keys(), name


@pytest.mark.parametrize("percent_t", [0.02, 0.1])
def test_bf16_fast_mode_stays_within_bound_of_exact_on_every_exam0_view(monkeypatch, percent_t):
    """The fast mode as it runs on CUDA and on CPUs with AMX / AVX-512-BF16 (folded, bf16 autocast; forced
    here) on the four exam-0 oracle inputs in one batch. With the whole global network under autocast, h_g
    moved y_fusion by 0.012 (L-MLO) and the retrieved patches moved on every view; the fast mode keeps the
    global network's residual stream in float32 (its stem and first stage wholly), so y_fusion stays within
    0.01 of exact (3.9e-3 measured) and every retrieved patch is one exact retrieves, except where the
    reference's greedy step won by less than bf16 resolves (L-CC's sixth: 1.5e-4 in golden_meta.json)."""
    require_shared()
    import inference.cpu
    from inference.families.common import fast_mode_numerics, numerics, runnable
    from inference.families.gmic.family import GMICFamily
    from inference.weights import load_model

    monkeypatch.setattr(inference.cpu, "has_bf16_arithmetic", lambda: True)
    device = torch.device("cpu")
    assert fast_mode_numerics(device) == "bf16"
    model = load_model(REFERENCE / "seeded_state_dict.pt", percent_t=percent_t).model
    paths = [p for p in golden_files() if "golden_exam0_" in p]
    assert len(paths) == 4
    x = torch.from_numpy(np.stack([np.load(p)["input"] for p in paths]))[:, None].contiguous(
        memory_format=torch.channels_last)
    eager = GMICFamily.fast  # the shipped fast preparation (folded, run eagerly)
    with numerics(device, "exact"):
        exact = runnable(model, device, "exact", GMICFamily.fast)(x)
    fast = eager.build(model).to(memory_format=torch.channels_last)
    with numerics(device, "fast"):
        out = fast(x)
    assert out.h_crops.dtype == torch.bfloat16  # the local network still runs in bf16: still the fast path
    # the probabilities come from float32 heads: in bf16 each was one of bf16's steps (a benign 0.9996 written 1.0)
    for output in (out.y_fusion, out.y_local, out.y_global, out.patch_attention):
        assert output.dtype == torch.float32 and (output != output.bfloat16().float()).any()
    deviation = (out.y_fusion.float() - exact.y_fusion).abs().amax(dim=1)
    assert (deviation <= FAST_BF16_PROBABILITY).all(), dict(zip(paths, deviation.tolist()))
    cases = json.loads((REFERENCE / "golden_meta.json").read_text())["cases"]
    for index, path in enumerate(paths):
        gaps = cases[Path(path).stem]["roi_greedy_step_gaps"]
        retrieved = {tuple(cell) for cell in exact.patch_locations[index].tolist()}
        moved = [step for step, cell in enumerate(out.patch_locations[index].tolist()) if tuple(cell) not in retrieved]
        assert all(gaps[step] < 2**-8 for step in moved), (path, moved, gaps)


def test_top_t_pooling_is_the_mean_of_the_largest_values():
    saliency = torch.arange(1380, dtype=torch.float32).reshape(1, 1, 46, 30).repeat(1, 2, 1, 1) / 1380
    pooled = top_t_pooling(saliency, 0.02)
    expected = torch.arange(1380 - 28, 1380, dtype=torch.float32).mean() / 1380
    assert torch.allclose(pooled, expected.expand(1, 2))


def test_roi_retrieval_picks_first_on_ties_and_zeroes_chosen_cells():
    saliency = torch.zeros(1, 2, 46, 30)
    saliency[0, 0, 10:14, 5:9] = 1.0   # benign peak
    saliency[0, 1, 30:34, 20:24] = 1.0  # malignant peak, equal after normalisation
    cells = retrieve_rois(saliency, K=3, window=(4, 4))
    assert cells[0, 0].tolist() == [10, 5]  # first in row-major order wins the tie
    assert cells[0, 1].tolist() == [30, 20]
    assert cells[0, 2].tolist() == [0, 0]  # everything left is zero: first window


def test_roi_retrieval_handles_a_constant_map():
    cells = retrieve_rois(torch.full((2, 2, 46, 30), 0.5), K=6, window=(4, 4))
    assert cells.shape == (2, 6, 2)


def test_crop_past_the_edge_fills_top_left_with_the_minimum():
    image = torch.arange(100, dtype=torch.float32).reshape(1, 10, 10)
    patch = crop_upper_left(image, torch.tensor([[[8, 7]]]), (4, 4))[0, 0]
    # rows 8, 9 and columns 7, 8, 9 exist: they go to the bottom-right; the rest is the image minimum (0)
    assert torch.equal(patch[2:, 1:], image[0, 8:10, 7:10])
    assert torch.all(patch[:2, :] == 0) and torch.all(patch[:, :1] == 0)


def test_config_validates_its_values():
    with pytest.raises(ValueError, match="percent_t"):
        GMICConfig(percent_t=0)
    with pytest.raises(ValueError, match="K"):
        GMICConfig(K=0)


def test_bad_input_shape_is_a_value_error():
    model = GMIC().eval()
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model(torch.zeros(1, 2944, 1920))
