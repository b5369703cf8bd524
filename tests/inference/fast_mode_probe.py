"""Run by the tests in a child process (the bf16 switch below is process-wide): the fast mode against the exact
mode of one family on its oracle inputs; prints one JSON line of the largest deviations.

    python -m tests.inference.fast_mode_probe SHARED_REFERENCE_DIR gmic|glam [COUNT [bf16]]
"""

from __future__ import annotations

import glob
import json
import sys

import numpy as np
import torch

from inference.families.common import fast_mode_numerics, numerics, runnable
from inference.memory import reuse_freed_memory
from inference.weights import load_model


def main() -> None:
    reference, family = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 99
    if len(sys.argv) > 4 and sys.argv[4] == "bf16":  # the arithmetic of AMX / AVX-512-BF16 CPUs, emulated here
        import inference.cpu

        inference.cpu.has_bf16_arithmetic = lambda: True
    reuse_freed_memory()
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
        worst["probability"] = max(worst["probability"], float((getattr(a, probability) - getattr(b, probability).float()).abs().max()))
        worst["saliency"] = max(worst["saliency"], float((getattr(a, saliency) - getattr(b, saliency).float()).abs().max()))
        worst["same_patches"] &= bool(torch.equal(getattr(a, locations), getattr(b, locations)))
        worst["inputs"] += 1
    print(json.dumps(worst))


if __name__ == "__main__":
    main()
