"""Attention CNN benchmark: one view (and four, batched) through the VGG16-size network.

    python bench/bench_attention.py [--runs 5] [--device auto|cpu|cuda] [--width 64] [--attention conv|gru]

Prints the resize and normalisation of a 4000 x 3000 phantom view, then per mode the median seconds of the
family's whole ``run`` (input, network, softmax, map) for one view and for a batch of the four views, with
the CPU flags (or the GPU), and the fast mode's largest deviation from the exact mode's probabilities.
Timing is printed, never asserted.
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
from inference.families.attention_cnn.family import IMAGENET_MEAN, IMAGENET_STD, AttentionCNNFamily, model_input  # noqa: E402
from inference.families.common import fast_mode_numerics  # noqa: E402
from inference.cpu import cpu_flags_text  # noqa: E402
from inference.memory import reuse_freed_memory  # noqa: E402
from inference.families.attention_cnn.mias import CLASSES  # noqa: E402
from inference.families.attention_cnn.model import AttentionCNN, AttentionCNNConfig  # noqa: E402
from inference.intake.phantom import Finding, render_view  # noqa: E402
from inference.pipeline import choose_device  # noqa: E402
from inference.intake.views import View  # noqa: E402
from inference.weights import ModelIdentity  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--width", type=int, default=64, help="64 is VGG16")
    parser.add_argument("--attention", default="conv", choices=["conv", "gru"])
    args = parser.parse_args()
    reuse_freed_memory()
    device, _ = choose_device(args.device)
    where = torch.cuda.get_device_name() if device.type == "cuda" else cpu_flags_text()
    print(f"attention CNN ({args.attention}, width {args.width}), 4000 x 3000 phantom views, {where}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {args.runs}")
    images = {view: render_view(view, [Finding("spiculated")] if view == View.L_MLO else [],
                                np.random.default_rng(k), shape=(4000, 3000)).image for k, view in enumerate(View)}
    resize = median_time(lambda: model_input(images[View.L_MLO], 224), args.runs)
    print(f"resize + normalisation of one view: {resize * 1000:.1f} ms")
    torch.manual_seed(0)
    config = AttentionCNNConfig(width=args.width, attention=args.attention)
    model = AttentionCNN(config).eval()
    family = AttentionCNNFamily()
    settings = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "input_size": 224, "region_threshold": None}
    identity = ModelIdentity(path="<bench>", git_blob_sha1="bench", sha256="bench", published_name=None,
                             percent_t=None, label="bench", family=family.name, classes=CLASSES, malignancy=(),
                             exclusive=True, settings=settings)
    prepared = [family.prepare(images[view], view, False) for view in View]
    exact = None
    for mode in ("exact", "fast"):
        for count in (1, 4):
            batch = prepared[:count]
            with torch.inference_mode():
                outputs = family.run(model, batch, device, mode, identity)
                seconds = median_time(lambda: family.run(model, batch, device, mode, identity), args.runs)
            p = np.array([[o.probabilities[c] for c in CLASSES] for o in outputs])
            if mode == "exact" and count == 4:
                exact = p
            deviation = ""
            if mode == "fast" and count == 4 and exact is not None:
                deviation = f"   max |p - p_exact| {np.abs(p - exact).max():.2e} ({fast_mode_numerics(device)})"
            print(f"{mode:>5}  {count} view{'s' if count > 1 else ' '}: {seconds:.3f} s "
                  f"({seconds / count:.3f} s per view){deviation}")


if __name__ == "__main__":
    main()
