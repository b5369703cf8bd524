"""Run by tests/inference/test_pipeline.py in a child process (TorchInductor compiles native code): the fast
mode against the exact mode on every GMIC oracle input; prints one JSON line of the largest deviations."""

from __future__ import annotations

import glob
import json
import sys

import numpy as np
import torch

from inference.memory import reuse_freed_memory
from inference.backends.common import fast_mode_numerics, numerics, runnable
from inference.backends.gmic import GMICFamily
from inference.weights import load_model


def main() -> None:
    reference = sys.argv[1]
    reuse_freed_memory()
    model = load_model(f"{reference}/seeded_state_dict.pt", percent_t=0.02).model
    device = torch.device("cpu")
    exact, fast = (runnable(model, device, mode, GMICFamily.fast) for mode in ("exact", "fast"))
    worst = {"y_fusion": 0.0, "saliency": 0.0, "same_patches": True, "inputs": 0,
             "numerics": fast_mode_numerics(device)}
    for path in sorted(glob.glob(f"{reference}/golden_*.npz")):
        x = torch.from_numpy(np.load(path)["input"])[None, None].contiguous(memory_format=torch.channels_last)
        outputs = []
        for mode, module in (("exact", exact), ("fast", fast)):
            with numerics(device, mode):
                outputs.append(module(x))
        a, b = outputs
        worst["y_fusion"] = max(worst["y_fusion"], float((a.y_fusion - b.y_fusion.float()).abs().max()))
        worst["saliency"] = max(worst["saliency"], float((a.saliency_map - b.saliency_map.float()).abs().max()))
        worst["same_patches"] &= bool(torch.equal(a.patch_locations, b.patch_locations))
        worst["inputs"] += 1
    print(json.dumps(worst))


if __name__ == "__main__":
    main()
