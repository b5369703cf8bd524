"""The allocator setting the app runs with keeps the arithmetic exactly as it was."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from inference.memory import reuse_freed_memory
from tests.conftest import REFERENCE, require_shared

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys, torch
sys.path.insert(0, {root!r})
from inference.memory import reuse_freed_memory
from inference.weights import load_model
if sys.argv[1] == "reuse":
    assert reuse_freed_memory()
model = load_model({weights!r}, percent_t=0.02).model.eval().to(memory_format=torch.channels_last)
image = torch.randn(1, 1, 2944, 1920, generator=torch.Generator().manual_seed(5))
with torch.inference_mode():
    out = model(image.contiguous(memory_format=torch.channels_last))
torch.save({{"saliency": out.saliency_map, "y_fusion": out.y_fusion}}, sys.argv[2])
"""


def test_reuse_is_in_force_on_linux_and_idempotent():
    if sys.platform.startswith("linux"):
        assert reuse_freed_memory() and reuse_freed_memory()


def test_model_outputs_are_bit_identical_with_and_without_it(tmp_path):
    require_shared()
    script = SCRIPT.format(root=str(ROOT), weights=str(REFERENCE / "seeded_state_dict.pt"))
    outputs = {}
    for mode in ("default", "reuse"):
        path = tmp_path / f"{mode}.pt"
        done = subprocess.run([sys.executable, "-c", script, mode, str(path)], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        outputs[mode] = torch.load(path, weights_only=True)
    for key in ("saliency", "y_fusion"):
        assert torch.equal(outputs["default"][key], outputs["reuse"][key]), key
