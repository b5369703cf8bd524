"""GlimpseNet benchmark: one view through the published-size networks, stage by stage.

    python bench/bench_glimpsenet.py [--runs 3] [--device auto|cpu|cuda] [--glimpses 6]

A 4000 x 3000 phantom view: the crop and 512 x 512 resize, the FCGN (width 16, the 1 x 1 x 4096 context
layer), glimpse extraction and cutting on a saliency map with ``--glimpses`` blobs, and Inception-v3 on
that many 299 x 299 glimpses — medians in seconds with the CPU flags (or the GPU), exact and fast mode,
with the fast mode's largest deviation from the exact glimpse probabilities. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import median_time  # noqa: E402
from inference.families.common import fast_mode_numerics, numerics, runnable  # noqa: E402
from inference.families.glimpsenet.family import (  # noqa: E402
    GLIMPSE_MEAN,
    GLIMPSE_STD,
    GlimpseNetFamily,
    glimpse_input,
    prepare_glimpse_view,
    view_glimpses,
)
from inference.cpu import cpu_flags_text  # noqa: E402
from inference.families.glimpsenet.glimpses import GlimpseSettings  # noqa: E402
from inference.memory import reuse_freed_memory  # noqa: E402
from inference.families.glimpsenet.model import GlimpseNet, GlimpseNetConfig  # noqa: E402
from inference.intake.phantom import Finding, render_view  # noqa: E402
from inference.pipeline import choose_device  # noqa: E402
from inference.intake.views import View  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--glimpses", type=int, default=6)
    args = parser.parse_args()
    reuse_freed_memory()
    device, _ = choose_device(args.device)
    where = torch.cuda.get_device_name() if device.type == "cuda" else cpu_flags_text()
    print(f"GlimpseNet (FCGN width 16, context 4096; Inception-v3), one 4000 x 3000 phantom R-MLO, {where}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {args.runs}")
    image = render_view(View.R_MLO, [Finding("spiculated")], np.random.default_rng(0), shape=(4000, 3000)).image
    prepare = median_time(lambda: prepare_glimpse_view(image, View.R_MLO), args.runs)
    prepared = prepare_glimpse_view(image, View.R_MLO)
    print(f"crop, face right, 512 x 512: {prepare:.3f} s (crop {prepared.crop.shape[0]} x {prepared.crop.shape[1]})")
    saliency = np.zeros((512, 512), np.float32)
    for k in range(args.glimpses):  # blobs far apart: one glimpse each
        r, c = 40 + 80 * k, 60 + 60 * (k % 4)
        saliency[r - 6: r + 6, c - 6: c + 6] = 0.9 - 0.05 * k
    settings = GlimpseSettings(top_k=args.glimpses)
    cut = median_time(lambda: view_glimpses(prepared, saliency, settings), args.runs)
    glimpses, boxes = view_glimpses(prepared, saliency, settings)
    print(f"glimpse extraction and cutting ({len(boxes)} glimpses): {cut * 1000:.1f} ms")
    torch.manual_seed(0)
    model = GlimpseNet(GlimpseNetConfig())
    family = GlimpseNetFamily()
    x = torch.from_numpy(prepared.input)[None, None].to(device)
    g = glimpse_input(glimpses, GLIMPSE_MEAN, GLIMPSE_STD).to(device)
    exact = None
    for mode in ("exact", "fast"):
        module = runnable(model, device, mode, family.fast)
        with numerics(device, mode):
            fcgn = median_time(lambda: module.fcgn(x.contiguous(memory_format=torch.channels_last)), args.runs)
            classify = median_time(lambda: module.classifier(g.contiguous(memory_format=torch.channels_last)),
                                   args.runs)
            p = torch.softmax(module.classifier(g.contiguous(memory_format=torch.channels_last)).float(), 1).cpu()
        if exact is None:
            exact = p
        deviation = "" if mode == "exact" else (
            f"   max |p - p_exact| {float((p - exact).abs().max()):.2e} ({fast_mode_numerics(device)})")
        print(f"{mode:>5}: FCGN {fcgn:.3f} s, Inception-v3 on {len(boxes)} glimpses {classify:.3f} s, view total "
              f"{prepare + fcgn + cut + classify:.3f} s{deviation}")


if __name__ == "__main__":
    main()
