"""Inference benchmark: medians of preprocessing, the forward pass split by part, and a 4-view exam.

    python bench/bench_inference.py [--runs 5] [--device auto|cpu|cuda] [--shared ../shared]

Prints medians (after one warm-up) and the agreement of the fast mode with the exact mode on every oracle
input. Timing is reported, never asserted.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import median_time  # noqa: E402
from inference.intake.exam import load_exam  # noqa: E402
from inference.memory import reuse_freed_memory  # noqa: E402
from inference.families.gmic.model import crop_upper_left, retrieve_rois, top_t_pooling  # noqa: E402
from inference.families.common import numerics, runnable  # noqa: E402
from inference.families.gmic.family import GMICFamily  # noqa: E402
from inference.pipeline import analyze_exam, choose_device  # noqa: E402
from inference.results.exam_result import Mode  # noqa: E402
from inference.families.preprocess import crop_breast, needs_flip, optimal_center, prepare_view  # noqa: E402
from inference.intake.views import View  # noqa: E402
from inference.weights import load_model  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc as it is (the app keeps freed memory for reuse)")
    args = parser.parse_args()
    reused = False if args.default_malloc else reuse_freed_memory()
    shared = Path(args.shared)
    device, _ = choose_device(args.device)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}, "
          f"malloc keeps freed memory: {reused}")

    print("\npreprocessing per image (median of runs):")
    images = {}
    for path in sorted(glob.glob(str(shared / "data/gmic-exam0/0_?-*.png"))) + sorted(
        glob.glob(str(shared / "data/large/*.png"))
    ) + [str(shared / "data/bcc-sample/1_L_CC.png")]:
        name = Path(path).stem
        if "benign" in name:
            continue
        view = View.parse(name.split("_", 1)[1].split("_x")[0]) if "exam0_" in name else (
            View.parse(name[2:]) if name[0].isdigit() else View.parse(name))
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        images[name] = (image, view)
        flip = needs_flip(view, False)
        stage1 = median_time(lambda: crop_breast(image, faces_left=flip), args.runs)
        crop = crop_breast(image, faces_left=flip)
        t, b, l, r = crop.window_location
        cropped = image[t:b, l:r]
        flipped = np.ascontiguousarray(cropped[:, ::-1]) if flip else cropped
        stage2 = median_time(lambda: optimal_center(flipped, view.projection, crop), args.runs)
        total = median_time(lambda: prepare_view(image, view), args.runs)
        print(f"  {name:<22} {image.shape[0]:>5}x{image.shape[1]:<5} stage1 {stage1*1e3:6.1f} ms  "
              f"stage2 {stage2*1e3:6.1f} ms  prepare_view total {total*1e3:6.1f} ms")

    loaded = load_model(shared / "reference/gmic/seeded_state_dict.pt", percent_t=0.02)
    goldens = sorted(glob.glob(str(shared / "reference/gmic/golden_*.npz")))
    inputs = {Path(g).stem: np.load(g)["input"] for g in goldens}
    for mode in (Mode.EXACT, Mode.FAST):
        model = runnable(loaded.model, device, mode.value, GMICFamily.fast)
        x = torch.from_numpy(inputs["golden_exam0_L-CC"])[None, None].to(device).contiguous(
            memory_format=torch.channels_last)
        start = time.perf_counter()
        with numerics(device, mode.value):
            model(x)
        sync(device)
        first = time.perf_counter() - start

        def part_global():
            with numerics(device, mode.value):
                out = model.global_forward(x)
            sync(device)
            return out

        h_g, saliency = part_global()

        def part_roi():
            with numerics(device, mode.value):
                cells = retrieve_rois(saliency.float(), 6, (4, 4))
                locations = model.cells_to_pixels(cells, (2944, 1920))
                top_t_pooling(saliency, 0.02)
                out = crop_upper_left(x[:, 0], locations, (256, 256))
            sync(device)
            return out

        patches = part_roi()

        def part_local():
            with numerics(device, mode.value):
                model.local_forward(patches)
            sync(device)

        def full():
            with numerics(device, mode.value):
                model(x)
            sync(device)

        print(f"\nforward per image, {mode.value} mode (first call {first:.2f} s incl. any compilation):")
        g, r, lo, f = (median_time(fn, args.runs) for fn in (part_global, part_roi, part_local, full))
        print(f"  global {g:.3f} s   ROI+crop {r:.4f} s   local+attention {lo:.3f} s   full forward {f:.3f} s")

    exam = load_exam(shared / "data/gmic-exam0")
    for mode in (Mode.EXACT, Mode.FAST):
        run = lambda: analyze_exam(exam, loaded, device=device, mode=mode)  # noqa: E731
        print(f"\n4-view exam end to end ({mode.value}): {median_time(run, max(2, args.runs // 2)):.2f} s")

    print("\nfast vs exact on every oracle input (max |delta| of y_fusion, saliency; patch locations equal):")
    exact_model = runnable(loaded.model, device, Mode.EXACT.value, GMICFamily.fast)
    fast_model = runnable(loaded.model, device, Mode.FAST.value, GMICFamily.fast)
    worst = 0.0
    for name, array in inputs.items():
        x = torch.from_numpy(array)[None, None].to(device).contiguous(memory_format=torch.channels_last)
        with numerics(device, "exact"):
            a = exact_model(x)
        with numerics(device, "fast"):
            b = fast_model(x)
        dy = (a.y_fusion.float() - b.y_fusion.float()).abs().max().item()
        ds = (a.saliency_map.float() - b.saliency_map.float()).abs().max().item()
        same = torch.equal(a.patch_locations, b.patch_locations)
        worst = max(worst, dy)
        print(f"  {name:<36} y_fusion {dy:.2e}  saliency {ds:.2e}  locations equal {same}")
    print(f"  worst y_fusion deviation {worst:.2e} (limit 1e-2)")


if __name__ == "__main__":
    main()
