"""The fast mode against the exact mode of one family on the oracle inputs (tests/inference/test_pipeline.py):
the largest deviations, with the arithmetic the fast mode chose on this machine."""

from __future__ import annotations

import glob

import numpy as np
import torch

from inference.families.common import fast_mode_numerics, numerics, runnable
from inference.weights import load_model


def worst_fast_deviation(reference: str, family: str, count: int = 99) -> dict:
    """``{"probability", "saliency", "same_patches", "inputs", "numerics"}`` over the first ``count`` oracle
    inputs (GMIC's golden exam-0 and enlarged views) of ``family`` (``gmic`` or ``glam``)."""
    if family == "gmic":
        from inference.families.gmic.family import GMICFamily as Family

        model = load_model(f"{reference}/gmic/seeded_state_dict.pt", percent_t=0.02).model
        probability, saliency, locations = "y_fusion", "saliency_map", "patch_locations"
    else:
        from inference.families.glam.family import GLAMFamily as Family

        model = load_model(f"{reference}/glam/seeded_state_dict.pt").model
        probability, saliency, locations = "y_global", "saliency_map", "patch_locations"
    device = torch.device("cpu")
    exact, fast = (runnable(model, device, mode, Family.fast) for mode in ("exact", "fast"))
    worst = {"probability": 0.0, "saliency": 0.0, "same_patches": True, "inputs": 0,
             "numerics": fast_mode_numerics(device)}
    for path in sorted(glob.glob(f"{reference}/gmic/golden_*.npz"))[:count]:
        x = torch.from_numpy(np.load(path)["input"])[None, None].contiguous(memory_format=torch.channels_last)
        outputs = []
        for mode, module in (("exact", exact), ("fast", fast)):
            with numerics(device, mode):
                outputs.append(module(x))
        a, b = outputs
        worst["probability"] = max(worst["probability"],
                                   float((getattr(a, probability) - getattr(b, probability).float()).abs().max()))
        worst["saliency"] = max(worst["saliency"],
                                float((getattr(a, saliency) - getattr(b, saliency).float()).abs().max()))
        worst["same_patches"] &= bool(torch.equal(getattr(a, locations), getattr(b, locations)))
        worst["inputs"] += 1
    return worst
