"""Mask R-CNN benchmark: one view (exam 0's R-CC, 2144 x 801) in exact and fast mode, on the reference model
(ResNet-18 layout, one block per stage, 64-channel FPN) and on a ResNet-50-FPN of torchvision's default size
(random weights, 256-channel FPN, 1024-wide box head), with the family's mammography sizes (min 1024 / max 2048).

    python bench/bench_maskrcnn.py [--runs 3] [--device auto|cpu|cuda] [--shared ../shared]

Medians after one warm-up, with the CPU flags (or the GPU), and the fast mode's largest score deviation from the
exact mode; for the ResNet-50-FPN also the fast mode of a model whose metadata declares ``fast_autocast`` (bf16
where the device has it). Timing is printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import median_time  # noqa: E402
from inference.families.common import mode_numerics, model_fast_mode, numerics, runnable  # noqa: E402
from inference.cpu import cpu_flags_text  # noqa: E402
from inference.families.maskrcnn.family import MaskRCNNFamily  # noqa: E402
from inference.families.maskrcnn.model import MaskRCNN, MaskRCNNConfig  # noqa: E402
from inference.memory import reuse_freed_memory  # noqa: E402
from inference.pipeline import choose_device  # noqa: E402
from inference.weights import load_model  # noqa: E402


def _where(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {cpu_flags_text()}, {torch.get_num_threads()} threads"


def _time(model: torch.nn.Module, x: torch.Tensor, device: torch.device, runs: int,
          declared: bool = False) -> None:
    """Exact and fast mode; with ``declared``, also the fast mode of a model whose metadata declares
    ``fast_autocast`` (bf16 where the device has it)."""
    family = MaskRCNNFamily()
    results = {}
    variants = [("exact", "exact", {}), ("fast", "fast", {})]
    if declared:
        variants.append(("fast, fast_autocast", "fast", {"fast_autocast": True}))
    for label, mode, declaration in variants:
        module = runnable(model, device, mode, family.fast)
        fast = model_fast_mode(family, declaration)

        def once(module=module, mode=mode, fast=fast) -> object:
            with numerics(device, mode, fast):
                out = module.detect([x])[0]
            if device.type == "cuda":
                torch.cuda.synchronize()
            return out

        seconds = median_time(once, runs)
        results[label] = once()
        arithmetic = mode_numerics(device, mode, fast)
        print(f"  {label:20s} {seconds:7.2f} s/view  ({len(results[label].scores)} detections, {arithmetic})")
    for label in list(results)[1:]:
        _compare(results["exact"], results[label], label)


def _compare(exact, fast, label: str) -> None:
    pairs, unmatched = _paired(exact, fast)
    score = max((abs(float(exact.scores[i] - fast.scores[j])) for i, j in pairs), default=0.0)
    box = max((float((exact.boxes[i] - fast.boxes[j]).abs().max()) for i, j in pairs), default=0.0)
    print(f"  {label} vs exact: {len(fast.scores)} vs {len(exact.scores)} detections; {len(pairs)} paired (same class, "
          f"IoU >= 0.5), {unmatched} exact one(s) without a partner; paired max |score| {score:.2e}, "
          f"max |box| {box:.2e} px")


def _paired(exact, fast) -> tuple[list[tuple[int, int]], int]:
    """Each exact detection with the fast one of its class that overlaps it most (IoU >= 0.5), greedily by
    the exact score: detections are paired by what they are, not by rank (near-tied scores swap ranks)."""
    def area(b: torch.Tensor) -> torch.Tensor:
        return (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)

    a, b = exact.boxes.float(), fast.boxes.float()
    if not len(a) or not len(b):
        return [], len(a)
    low = torch.maximum(a[:, None, :2], b[None, :, :2])
    high = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (high - low).clamp(min=0).prod(-1)
    iou = inter / (area(a)[:, None] + area(b)[None, :] - inter).clamp(min=1e-9)
    iou[exact.labels[:, None] != fast.labels[None, :]] = 0
    taken, pairs = set(), []
    for i in torch.argsort(exact.scores, descending=True).tolist():
        order = [j for j in torch.argsort(iou[i], descending=True).tolist() if j not in taken and iou[i, j] >= 0.5]
        if order:
            taken.add(order[0])
            pairs.append((i, order[0]))
    return pairs, len(a) - len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    args = parser.parse_args()
    reuse_freed_memory()
    shared = Path(args.shared)
    device, _ = choose_device(args.device)
    png = cv2.imread(str(shared / "data" / "gmic-exam0" / "0_R-CC.png"), cv2.IMREAD_UNCHANGED)
    x = torch.from_numpy(png.astype(np.float32) / np.float32(4095))[None].expand(3, -1, -1).contiguous().to(device)
    print(f"Mask R-CNN, one view {png.shape[0]} x {png.shape[1]}, on {_where(device)}, median of {args.runs}")

    print("reference model (ResNet-18 layout, 1 block per stage, FPN 64):")
    _time(load_model(shared / "reference" / "maskrcnn" / "seeded_state_dict.pt").model, x, device, args.runs)

    torch.manual_seed(0)
    resnet50 = MaskRCNN(MaskRCNNConfig()).eval()  # torchvision's default sizes, random weights
    print("ResNet-50-FPN (torchvision's default size, random weights):")
    _time(resnet50, x, device, args.runs, declared=True)


if __name__ == "__main__":
    main()
