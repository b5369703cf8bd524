"""Patches cut from a batch of images at given corners (GMIC's and GLAM's retrieval of regions)."""

from __future__ import annotations

import torch


INPUT_SHAPE = (2944, 1920)  # GMIC's and GLAM's input, rows x cols


def check_shapes(cam_size: tuple[int, ...], crop_shape: tuple[int, ...]) -> None:
    """A configuration's map and patch sizes: two positive whole numbers each, the patch inside the input.

    Raises:
        ValueError: saying which (a map of 0 x 0 cells or a patch larger than the input failed only at the
            forward pass, in torch's words)."""
    for name, value in (("cam_size", tuple(cam_size)), ("crop_shape", tuple(crop_shape))):
        if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
            raise ValueError(f"{name} must be two positive whole numbers, got {list(value)}")
    if crop_shape[0] > INPUT_SHAPE[0] or crop_shape[1] > INPUT_SHAPE[1]:
        raise ValueError(f"crop_shape {list(crop_shape)} does not fit the {INPUT_SHAPE[0]} x {INPUT_SHAPE[1]} input")


def crop_upper_left(images: torch.Tensor, corners: torch.Tensor, crop_shape: tuple[int, int]) -> torch.Tensor:
    """Cut (crop_h, crop_w) patches at upper-left ``corners`` from (N, H, W) ``images``.

    A window that runs past the bottom/right edge keeps the part inside the image in the bottom-right of
    the patch and fills the rest with the minimum of that image (the reference's behaviour).

    Returns (N, K, crop_h, crop_w).
    """
    n, height, width = images.shape
    ch, cw = crop_shape
    r0, c0 = corners[..., 0], corners[..., 1]  # (N, K)
    shift_r = (r0 + ch - height).clamp(min=0)
    shift_c = (c0 + cw - width).clamp(min=0)
    offs_r = torch.arange(ch, device=images.device)
    offs_c = torch.arange(cw, device=images.device)
    idx_r = (r0 - shift_r)[..., None] + offs_r  # (N, K, ch)
    idx_c = (c0 - shift_c)[..., None] + offs_c
    valid_r = offs_r >= shift_r[..., None]
    valid_c = offs_c >= shift_c[..., None]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    patches = images[batch, idx_r.clamp(0, height - 1)[..., :, None], idx_c.clamp(0, width - 1)[..., None, :]]
    valid = valid_r[..., :, None] & valid_c[..., None, :]
    minimum = images.reshape(n, -1).min(dim=1).values[:, None, None, None]
    return torch.where(valid, patches, minimum)
