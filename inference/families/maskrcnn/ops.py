"""The box arithmetic of Mask R-CNN in plain torch: anchors, the box coder, clipping, greedy NMS, RoIAlign and
the mask paste.

Written from He et al. 2017 (Mask R-CNN), Ren et al. 2015 (Faster R-CNN) and Lin et al. 2017 (FPN), with the
conventions of torchvision's detection models (``shared/reference/maskrcnn/README.md``) so that its
checkpoints give its numbers: boxes are (x1, y1, x2, y2) in pixels, areas ``(x2 - x1) * (y2 - y1)`` with no
+1, NMS suppresses at IoU strictly above the threshold, RoIAlign is the unaligned variant (no half-pixel
shift, RoIs at least one cell wide) with a fixed 2 x 2 sampling grid per bin.

Where several boxes score exactly the same (mammograms' black background), the order comes from the torch
calls ``topk`` and the default (non-stable) ``sort``; these functions call them the way the reference does,
so ties break the same way on the same torch build.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: dw / dh are clamped here so that exp() cannot overflow (a box at most 1000/16 times its anchor)
BOX_CLIP = math.log(1000.0 / 16)


# ------------------------------------------------------------------------------------------------- anchors


def anchor_templates(size: float, aspect_ratios: Sequence[float]) -> torch.Tensor:
    """(A, 4) float32 anchors centred on 0 for one size: ratio r = h / w, area size²; rounded to whole
    pixels (checkpoints were trained with rounded templates)."""
    scales = torch.as_tensor([size], dtype=torch.float32)
    ratios = torch.as_tensor(list(aspect_ratios), dtype=torch.float32)
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).view(-1)
    hs = (h_ratios[:, None] * scales[None, :]).view(-1)
    return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()


def grid_anchors(templates: torch.Tensor, grid: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """(h·w·A, 4) anchors of one level, position-major (row, col, anchor) — the order the heads' outputs are
    flattened in."""
    shifts_x = torch.arange(0, grid[1], dtype=torch.int32) * torch.tensor(stride[1], dtype=torch.int64)
    shifts_y = torch.arange(0, grid[0], dtype=torch.int32) * torch.tensor(stride[0], dtype=torch.int64)
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
    shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
    return (shifts.view(-1, 1, 4) + templates.view(1, -1, 4)).reshape(-1, 4)


# ------------------------------------------------------------------------------------------------- boxes


def decode_boxes(deltas: torch.Tensor, boxes: torch.Tensor, weights: tuple[float, float, float, float]) -> torch.Tensor:
    """Apply (K, 4·C) regression deltas to (K, 4) reference boxes: (K, 4·C) boxes (Faster R-CNN's
    parameterisation: centre shifts in box widths, log size ratios, each divided by its weight)."""
    boxes = boxes.to(deltas.dtype)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx = deltas[:, 0::4] / wx
    dy = deltas[:, 1::4] / wy
    dw = torch.clamp(deltas[:, 2::4] / ww, max=BOX_CLIP)
    dh = torch.clamp(deltas[:, 3::4] / wh, max=BOX_CLIP)
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    pred_w = torch.exp(dw) * widths[:, None]
    pred_h = torch.exp(dh) * heights[:, None]
    half_h = torch.tensor(0.5, dtype=pred_ctr_y.dtype) * pred_h
    half_w = torch.tensor(0.5, dtype=pred_ctr_x.dtype) * pred_w
    out = torch.stack((pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h), dim=2)
    return out.flatten(1)


def clip_boxes(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Boxes (…, 4) clipped to an image of (rows, cols)."""
    height, width = size
    xs = boxes[..., 0::2].clamp(min=0, max=width)
    ys = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((xs, ys), dim=boxes.dim()).reshape(boxes.shape)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def keep_large(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """Indices of boxes at least ``min_size`` wide and high."""
    ws, hs = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return torch.where((ws >= min_size) & (hs >= min_size))[0]


# ------------------------------------------------------------------------------------------------- NMS


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: indices kept, best first. A box is dropped when its IoU with a kept,
    better box is strictly above ``threshold``. Visits boxes in the order of the default descending
    ``torch.sort`` (which decides ties); the pairwise IoUs are computed at once in the boxes' dtype."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64)
    order = scores.sort(0, descending=True)[1]
    b = boxes[order]
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    w = (torch.minimum(x2[:, None], x2[None, :]) - torch.maximum(x1[:, None], x1[None, :])).clamp(min=0)
    h = (torch.minimum(y2[:, None], y2[None, :]) - torch.maximum(y1[:, None], y1[None, :])).clamp(min=0)
    inter = w * h
    over = (inter / ((areas[:, None] + areas[None, :]) - inter) > threshold).numpy()
    n = len(order)
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    for i in range(n):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed[i + 1:] |= over[i, i + 1:]
    return order[torch.as_tensor(keep, dtype=torch.int64)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float) -> torch.Tensor:
    """NMS within each group (level or class), best first. Up to 1000 boxes the groups are kept apart by
    shifting each group's boxes past the others (one NMS call); above, one NMS per group, the kept boxes
    then ordered by the default descending sort (the reference's two paths; their rounding and tie order
    differ, so both are kept)."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64)
    if boxes.numel() > 4000:
        keep_mask = torch.zeros_like(scores, dtype=torch.bool)
        for group in torch.unique(groups):
            members = torch.where(groups == group)[0]
            keep_mask[members[nms(boxes[members], scores[members], threshold)]] = True
        kept = torch.where(keep_mask)[0]
        return kept[scores[kept].sort(descending=True)[1]]
    offsets = groups.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes))
    return nms(boxes + offsets[:, None], scores, threshold)


# ------------------------------------------------------------------------------------------------- RoIAlign


def _axis_samples(start: torch.Tensor, length: torch.Tensor, bins: int, grid: int, limit: int):
    """Sample positions along one axis for every RoI: (low index, high index, low weight, high weight, valid),
    each (K, bins·grid) in bin-major order."""
    bin_size = length / bins
    b = torch.arange(bins, dtype=start.dtype, device=start.device)
    g = torch.arange(grid, dtype=start.dtype, device=start.device) + 0.5
    pos = (start[:, None, None] + b[None, :, None] * bin_size[:, None, None]) + \
        (g[None, None, :] * bin_size[:, None, None]) / grid
    pos = pos.reshape(len(start), bins * grid)
    valid = (pos >= -1.0) & (pos <= limit)
    pos = pos.clamp(min=0)
    low = pos.to(torch.int64)
    at_edge = low >= limit - 1
    low = torch.where(at_edge, torch.full_like(low, limit - 1), low)
    high = torch.where(at_edge, low, low + 1)
    pos = torch.where(at_edge, low.to(pos.dtype), pos)
    frac = pos - low.to(pos.dtype)
    return low, high, 1 - frac, frac, valid


def roi_align(features: torch.Tensor, rois: torch.Tensor, output: int, spatial_scale: float, sampling: int = 2,
              chunk: int = 256) -> torch.Tensor:
    """RoIAlign (He et al. 2017), unaligned variant, as batched gathers.

    Args:
        features: (N, C, H, W) one pyramid level.
        rois: (K, 5) float, (batch index, x1, y1, x2, y2) in input-image pixels.
        output: bins per side.
        spatial_scale: feature cells per input pixel.
        sampling: sample points per bin and axis.
    Returns:
        (K, C, output, output): each bin the mean of its bilinear samples; samples more than one cell
        outside the map count as 0.
    """
    n, c, height, width = features.shape
    k = rois.shape[0]
    out = features.new_zeros((k, c, output, output))
    if k == 0:
        return out
    # (N·H·W, C): one row of channels per cell, so each corner's gather copies whole rows (a view for the
    # channels-last maps of the fast mode, one copy otherwise); one gather per corner serves every RoI
    flat = features.permute(0, 2, 3, 1).reshape(n * height * width, c)
    for first in range(0, k, chunk):
        r = rois[first:first + chunk]
        base = r[:, 0].to(torch.int64) * (height * width)
        x1, y1 = r[:, 1] * spatial_scale, r[:, 2] * spatial_scale
        x2, y2 = r[:, 3] * spatial_scale, r[:, 4] * spatial_scale
        roi_w = torch.clamp(x2 - x1, min=1.0)
        roi_h = torch.clamp(y2 - y1, min=1.0)
        ylo, yhi, hy, ly, yvalid = _axis_samples(y1, roi_h, output, sampling, height)
        xlo, xhi, hx, lx, xvalid = _axis_samples(x1, roi_w, output, sampling, width)
        valid = (yvalid[:, :, None] & xvalid[:, None, :]).to(features.dtype)  # (k, Sy, Sx)

        def corner(rows: torch.Tensor, cols: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor) -> torch.Tensor:
            """The corner's value times its bilinear weight at every sample: (k, Sy, Sx, C)."""
            index = base[:, None, None] + rows[:, :, None] * width + cols[:, None, :]
            values = flat.index_select(0, index.reshape(-1)).reshape(*index.shape, c)
            return values.mul_((wy[:, :, None] * wx[:, None, :] * valid)[..., None])

        # the kernel's order: w1·v1 + w2·v2 + w3·v3 + w4·v4 per sample
        samples = corner(ylo, xlo, hy, hx).add_(corner(ylo, xhi, hy, lx))
        samples.add_(corner(yhi, xlo, ly, hx)).add_(corner(yhi, xhi, ly, lx))
        # (k, bins·grid, bins·grid, C) -> sum the grid samples of each bin in row-major order, then average
        s = samples.reshape(len(r), output, sampling, output, sampling, c)
        total = torch.zeros_like(s[:, :, 0, :, 0])
        for iy in range(sampling):
            for ix in range(sampling):
                total = total + s[:, :, iy, :, ix]
        out[first:first + chunk] = (total / max(sampling * sampling, 1)).permute(0, 3, 1, 2)
    return out


def roi_levels(boxes: torch.Tensor, k_min: int, k_max: int, canonical_size: float = 224.0,
               canonical_level: int = 4) -> torch.Tensor:
    """FPN's level for each box (Lin et al. 2017, eq. 1): ⌊4 + log2(√area / 224)⌋ clamped, minus ``k_min``."""
    s = torch.sqrt(box_area(boxes))
    levels = torch.floor(canonical_level + torch.log2(s / canonical_size) + torch.tensor(1e-6, dtype=s.dtype))
    return torch.clamp(levels, min=k_min, max=k_max).to(torch.int64) - k_min


def level_scale(feature_shape: Sequence[int], image_shape: Sequence[int]) -> float:
    """The power of two nearest to a level's size over the (largest) image's size."""
    approx = float(feature_shape[0]) / float(image_shape[0])
    return 2 ** float(torch.tensor(approx).log2().round())


# ------------------------------------------------------------------------------------------------- masks


def expanded_boxes(boxes: torch.Tensor, mask_size: int, padding: int = 1) -> torch.Tensor:
    """Boxes grown about their centres by (M + 2·padding) / M (the padded mask's extent), as int64."""
    scale = (mask_size + 2 * padding) / mask_size
    w_half = (boxes[:, 2] - boxes[:, 0]) * 0.5
    h_half = (boxes[:, 3] - boxes[:, 1]) * 0.5
    x_c = (boxes[:, 2] + boxes[:, 0]) * 0.5
    y_c = (boxes[:, 3] + boxes[:, 1]) * 0.5
    w_half = w_half * scale
    h_half = h_half * scale
    grown = torch.stack((x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half), dim=1)
    return grown.to(torch.int64)


def paste_crops(masks: torch.Tensor, boxes: torch.Tensor, image_shape: tuple[int, int],
                padding: int = 1) -> list[tuple[np.ndarray, int, int]]:
    """Each (M, M) mask probability map resized onto its box in the image, cropped to the image.

    Args:
        masks: (N, 1, M, M) probabilities.
        boxes: (N, 4) x1, y1, x2, y2 in image pixels.
        image_shape: (rows, cols) of the image.
    Returns:
        per mask (values (h, w) float32, top row, left column): the pasted probabilities where they lie on
        the image; the rest of the image is 0.
    """
    rows, cols = image_shape
    m = masks.shape[-1]
    padded = F.pad(masks, (padding,) * 4)
    grown = expanded_boxes(boxes, m, padding).tolist()
    crops = []
    for mask, (bx0, by0, bx1, by1) in zip(padded, grown, strict=True):
        w = max(int(bx1 - bx0 + 1), 1)
        h = max(int(by1 - by0 + 1), 1)
        resized = F.interpolate(mask[None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        x0, x1 = max(bx0, 0), min(bx1 + 1, cols)
        y0, y1 = max(by0, 0), min(by1 + 1, rows)
        if x1 <= x0 or y1 <= y0:
            crops.append((np.zeros((0, 0), np.float32), max(y0, 0), max(x0, 0)))
            continue
        crops.append((resized[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0].float().numpy(), y0, x0))
    return crops


def paste_masks(masks: torch.Tensor, boxes: torch.Tensor, image_shape: tuple[int, int]) -> torch.Tensor:
    """(N, 1, rows, cols) full-image mask probabilities (zero outside each box)."""
    rows, cols = image_shape
    out = torch.zeros((len(masks), 1, rows, cols), dtype=torch.float32)
    for i, (values, top, left) in enumerate(paste_crops(masks, boxes, image_shape)):
        out[i, 0, top:top + values.shape[0], left:left + values.shape[1]] = torch.from_numpy(values)
    return out
