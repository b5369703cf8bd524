"""The GPU check (bench/gpu_check.py) dry-run on the CPU, so that the script the GPU minutes depend on cannot rot:
every part reports a result, or says why it cannot run here; none fails."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import run_isolated

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_check.py"
ALLOWED = {"ok", "not available", "skipped"}


def load_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    done = run_isolated([str(SCRIPT), "--device", "cpu", "--quick", "--budget-s", "1500", "--out", str(out)],
                        timeout=1800)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    report = json.loads((out / "gpu_check.json").read_text(encoding="utf-8"))
    return report, (out / "gpu_check.md").read_text(encoding="utf-8"), done.stdout


@pytest.mark.timeout(600)
def test_every_part_reports_and_none_fails_on_the_cpu(dry_run):
    report, table, _ = dry_run
    check = load_check()
    assert list(report["parts"]) == list(check.PARTS)
    for name, entry in report["parts"].items():
        assert entry["status"] in ALLOWED, (name, entry.get("error"), entry.get("traceback", "")[-2000:])
        assert entry["seconds"] >= 0
        if entry["status"] == "ok":
            rows = entry["result"].get("rows", [])
            assert not [row for row in rows if "error" in row], (name, rows)
        else:
            assert entry["reason"], name
        assert f"| {name} | {entry['status']} |" in table


@pytest.mark.timeout(600)
def test_the_dry_run_measures_what_the_gpu_run_will(dry_run):
    report, _, stdout = dry_run
    parts = report["parts"]
    assert parts["env"]["result"]["info"]["PySide6_imported"] is False
    families = {row["family"]: row for row in parts["families"]["result"]["rows"]}
    for name in ("gmic", "sliding-window", "attention-cnn", "glimpsenet"):
        row = families[name]
        assert row["exact_within"] and row["exact_d_probability"] == 0.0, row  # the CPU against itself
        assert row["exact_1view_ms"] > 0 and row["fast_1view_ms"] > 0
    variants = [row for row in parts["ensemble"]["result"]["rows"] if "ms" in row]
    assert len(variants) >= 6 and all(row["d_y_fusion_vs_exact"] < 0.05 for row in variants)
    trained = [row for row in parts["training"]["result"]["rows"] if "ms_per_step" in row]
    assert {row["family"] for row in trained} >= {"gmic", "glam", "sliding-window", "attention-cnn", "glimpsenet"}
    assert all(row["loss_finite"] for row in trained)
    assert "== compile: skipped" in stdout


@pytest.mark.timeout(600)
def test_a_family_not_in_this_checkout_is_said_not_available(dry_run):
    from inference.families import registry

    report, _, _ = dry_run
    if any(name.replace("-", "").replace("_", "") == "maskrcnn" for name in registry.families()):
        pytest.skip("the maskrcnn family exists: the check runs it")
    rows = report["parts"]["families"]["result"]["rows"]
    assert {"family": "maskrcnn", "not_available": "the maskrcnn family is not in this checkout"} in rows


@pytest.mark.timeout(600)
def test_the_gmic_oracle_runs_where_the_shared_reference_is(dry_run):
    from tests.conftest import REFERENCE, require_shared

    require_shared(REFERENCE)
    rows = [row for row in dry_run[0]["parts"]["oracles"]["result"]["rows"] if row.get("family") == "gmic"]
    assert rows and all(row["within"] for row in rows if row.get("mode") == "exact"), rows


def test_the_byte_planes_give_the_weights_back_bit_for_bit(tmp_path):
    """What carries the GMIC oracle to the GPU machine: lossless for every dtype and shape a state dict has."""
    check = load_check()
    generator = torch.Generator().manual_seed(3)
    state = {"conv.weight": torch.randn(8, 1, 3, 3, generator=generator),
             "half": torch.randn(5, generator=generator).half(),
             "bn.num_batches_tracked": torch.tensor(4),
             "empty": torch.zeros(0, 3),
             "scalar": torch.tensor(1.5)}
    check.write_planes(state, tmp_path / "w.npz")
    back = check.read_planes(tmp_path / "w.npz")
    assert list(back) == list(state)
    for key, tensor in state.items():
        assert back[key].dtype == tensor.dtype and back[key].shape == tensor.shape
        assert torch.equal(back[key], tensor), key
    assert np.load(tmp_path / "w.npz")["t0"].dtype == np.uint8  # stored as bytes, not as floats


def test_the_fast_variants_are_prepared_as_the_family_ships_them():
    """The ensemble, graph and compile variants build their fast modules with the family's own fast-mode
    preparation (GMIC: the global network's residual stream and the saliency head in float32), not a bare fold of their own: the H200
    run measured a bf16 global network that GMIC no longer ships (y_fusion 0.020 off exact)."""
    from inference.families import registry
    from inference.families.gmic.model import GMIC

    check = load_check()
    model = GMIC(check.gmic_config(quick=True, tiny_input=True)).eval()
    shipped = registry.get("gmic").fast.fold(model)
    module = check.device_module(model, torch.device("cpu"), "fast", "gmic")
    assert [type(m) for m in module.modules()] == [type(m) for m in shipped.modules()]
    x = torch.randn(1, 1, *check.QUICK_INPUT).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert module(x).saliency_map.dtype == torch.float32  # the float32 parts of the shipped fast mode
    exact = check.device_module(model, torch.device("cpu"), "exact", "gmic")
    assert [type(m) for m in exact.modules()] == [type(m) for m in model.modules()]


@pytest.fixture(scope="module")
def maskrcnn_run(tmp_path_factory):
    """The Mask R-CNN rows alone (``--families maskrcnn``): the whole dry run's per-part budgets can be spent
    before the last family on a loaded machine."""
    out = tmp_path_factory.mktemp("gpu_check_maskrcnn")
    done = run_isolated([str(SCRIPT), "--device", "cpu", "--quick", "--budget-s", "1500",
                         "--parts", "oracles,families,training", "--families", "maskrcnn", "--out", str(out)],
                        timeout=1800)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return json.loads((out / "gpu_check.json").read_text(encoding="utf-8"))["parts"]


@pytest.mark.timeout(600)
def test_maskrcnn_has_a_builder_an_oracle_and_a_training_step(maskrcnn_run):
    """Was "not available: the check has no builder for this family …" and "no training batch" on the H200."""
    from tests.conftest import SHARED

    for name in ("oracles", "families", "training"):
        assert maskrcnn_run[name]["status"] == "ok", (name, maskrcnn_run[name])
    (row,) = maskrcnn_run["families"]["result"]["rows"]
    assert row["family"] == "maskrcnn" and "not_available" not in row, row
    assert row["exact_within"] and row["exact_d_probability"] == 0.0 and row["fast_1view_ms"] > 0, row
    assert row["fast_numerics"] == "fp32" and row["fast_autocast_1view_ms"] > 0, row  # and a declared model's
    (trained,) = maskrcnn_run["training"]["result"]["rows"]
    assert trained["ms_per_step"] > 0 and trained["loss_finite"], trained  # its five losses, one optimiser step
    oracle = maskrcnn_run["oracles"]["result"]["rows"]
    assert {row["family"] for row in oracle} == {"maskrcnn"}
    if not (SHARED / "reference" / "maskrcnn" / "seeded_state_dict.pt").is_file():
        pytest.skip("no shared Mask R-CNN reference here")
    keys = {row["key"].split(" (")[0]: row for row in oracle}
    for key in ("labels", "boxes", "scores", "mask_probs", "transformed_size, padded_size"):
        assert keys[key]["within"] is True, keys[key]  # exact mode on the CPU, the README's tolerances
    assert sum(row["key"].startswith("fpn ") and row["within"] for row in oracle) == 10


def test_the_prepare_script_takes_one_family_a_call(tmp_path):
    """``--set maskrcnn`` carries the detector's weights, goldens and the PNGs it reads, under the limit."""
    from tests.conftest import SHARED, require_shared

    require_shared(SHARED / "reference" / "maskrcnn")
    check = load_check()
    dest = tmp_path / "carried"
    check.prepare_shared(SHARED / "reference", dest, ["maskrcnn"], ["R-CC"])
    names = sorted(p.name for p in (dest / "maskrcnn").iterdir())
    assert names == ["0_R-CC.png", "golden_exam0_R-CC.npz", check.PLANES_NAME]
    assert not (dest / "gmic").exists()
    assert check.exam0_png(dest, "R-CC") == dest / "maskrcnn" / "0_R-CC.png"
    script = (ROOT / "bench" / "gpu_check_prepare.sh").read_text(encoding="utf-8")
    assert "--set gmic" in script and "--set glam" in script and "--set maskrcnn" in script

