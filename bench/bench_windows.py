"""Sliding-window classifier benchmark: windows per second on a 4000 x 3000 phantom view at 50 % overlap.

    python bench/bench_windows.py [--runs 3] [--device auto|cpu|cuda] [--width 16] [--overlap 0.5]

Prints the preparation (tissue mask, standardisation), the window count, and per mode and batch size the
median seconds of the whole view and the windows per second, with the CPU flags (or the GPU). The fast
mode's largest deviation from the exact mode's window probabilities is printed beside it. Timing is
printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import median_time  # noqa: E402
from inference.families.common import fast_mode_numerics, runnable  # noqa: E402
from inference.families.sliding_window.family import (  # noqa: E402
    SlidingWindowFamily,
    WindowSettings,
    prepare_windows,
    read_view,
    window_batch_size,
)
from inference.cpu import cpu_flags_text  # noqa: E402
from inference.memory import reuse_freed_memory  # noqa: E402
from inference.families.sliding_window.model import PatchClassifier, PatchClassifierConfig  # noqa: E402
from inference.intake.phantom import Finding, render_view  # noqa: E402
from inference.pipeline import choose_device  # noqa: E402
from inference.evaluation.temperature import softmax  # noqa: E402
from inference.intake.views import View  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--min-tissue", type=float, default=0.25, help="0 reads every window of the view")
    parser.add_argument("--batches", default="16,32,64,128")
    args = parser.parse_args()
    reuse_freed_memory()
    device, _ = choose_device(args.device)
    where = torch.cuda.get_device_name() if device.type == "cuda" else cpu_flags_text()
    print(f"sliding window, 4000 x 3000 phantom L-MLO, {where}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; medians of {args.runs}")
    started = time.perf_counter()
    image = render_view(View.L_MLO, [Finding("spiculated")], np.random.default_rng(0), shape=(4000, 3000)).image
    print(f"phantom rendered in {time.perf_counter() - started:.1f} s")
    prepare = median_time(lambda: prepare_windows(image, View.L_MLO), args.runs)
    prepared = prepare_windows(image, View.L_MLO)
    print(f"prepare (tissue mask, standardisation): {prepare:.3f} s; breast {prepared.tissue.fraction:.0%} of the view")
    torch.manual_seed(0)
    model = PatchClassifier(PatchClassifierConfig(width=args.width)).eval()
    settings = WindowSettings(overlap=args.overlap, min_tissue=args.min_tissue)
    default = window_batch_size(device, settings.window, args.width)
    exact_probabilities = None
    for mode in ("exact", "fast"):
        module = runnable(model, device, mode, SlidingWindowFamily.fast)
        for batch in sorted({int(b) for b in args.batches.split(",")} | {default}):
            read = read_view(module, prepared, device, mode, settings, batch)  # warm-up
            windows = len(read.grid.origins)
            seconds = median_time(lambda: read_view(module, prepared, device, mode, settings, batch), args.runs)
            probabilities = softmax(read.logits)
            if mode == "exact" and exact_probabilities is None:
                exact_probabilities = probabilities
            deviation = "" if mode == "exact" else (
                f"   max |p - p_exact| {np.abs(probabilities - exact_probabilities).max():.2e} "
                f"({fast_mode_numerics(device)})")
            marker = " (default)" if batch == default else ""
            print(f"{mode:<6} batch {batch:>4}{marker:<10} {windows} windows ({read.grid.skipped} skipped) "
                  f"{seconds:7.3f} s   {windows / seconds:7.1f} windows/s{deviation}")


if __name__ == "__main__":
    main()
