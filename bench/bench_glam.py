"""GLAM benchmark: global network, patch selection, local ResNet-34 and fusion, per mode, on exam 0's L-CC.

    python bench/bench_glam.py [--runs 3] [--device auto|cpu|cuda] [--shared ../shared]

Medians after one warm-up, with the CPU flags (or the GPU); the fast mode's deviation from the exact mode is
printed beside its times. Timing is printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import median_time  # noqa: E402
from inference.families.common import fast_mode_numerics, numerics, runnable  # noqa: E402
from inference.families.glam.family import GLAMFamily  # noqa: E402
from inference.cpu import cpu_flags_text  # noqa: E402
from inference.memory import reuse_freed_memory  # noqa: E402
from inference.families.glam.model import select_patch, top_k_mean  # noqa: E402
from inference.pipeline import choose_device  # noqa: E402
from inference.weights import load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    args = parser.parse_args()
    reuse_freed_memory()
    shared = Path(args.shared)
    device, _ = choose_device(args.device)
    where = torch.cuda.get_device_name() if device.type == "cuda" else cpu_flags_text()
    print(f"GLAM, exam 0 L-CC, {where}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"medians of {args.runs}")
    model = load_model(shared / "reference/glam/seeded_state_dict.pt").model
    x = torch.from_numpy(np.load(shared / "reference/gmic/golden_exam0_L-CC.npz")["input"])[None, None]
    x = x.to(device).contiguous(memory_format=torch.channels_last)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    results = {}
    for mode in ("exact", "fast"):
        module = runnable(model, device, mode, GLAMFamily.fast)
        with numerics(device, mode):
            module(x)  # warm-up (and compilation in the fast mode)
            out = module(x)
            cams = module.global_forward(x)
            saliency = 0.2 * cams[2] + 0.6 * cams[1] + 0.2 * cams[0]
            crop = x[:, :, :512, :512].contiguous(memory_format=torch.channels_last)
            local = module.local_forward(crop)

            def part_global():
                module.global_forward(x)
                sync()

            def part_patch():
                select_patch(saliency.float(), (32, 32))
                top_k_mean(saliency, 0.03)
                sync()

            def part_local():
                module.local_forward(crop)
                sync()

            def part_fusion():
                full = F.interpolate(local.float(), scale_factor=4, mode="nearest")
                (F.interpolate(saliency.float(), size=(2944, 1920), mode="nearest")[:, :, :512, :512] + full) / 2
                sync()

            def full():
                module(x)
                sync()

            times = [median_time(fn, args.runs) for fn in (part_global, part_patch, part_local, part_fusion, full)]
        results[mode] = out
        arithmetic = f", {fast_mode_numerics(device)}" if mode == "fast" else ""
        print(f"  {mode}{arithmetic}: global {times[0]:.3f} s  patch {times[1]:.4f} s  local {times[2]:.3f} s  "
              f"fusion {times[3]:.3f} s  full forward {times[4]:.3f} s")
    a, b = results["exact"], results["fast"]
    print(f"  fast vs exact: |dy_global| {float((a.y_global - b.y_global.float()).abs().max()):.2e}  "
          f"|dsaliency_map| {float((a.saliency_map - b.saliency_map.float()).abs().max()):.2e}  "
          f"same patch {bool(torch.equal(a.patch_locations, b.patch_locations))}")


if __name__ == "__main__":
    main()
