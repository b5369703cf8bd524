"""Patches cut from a batch of images at given corners (GMIC's and GLAM's retrieval of regions)."""

from __future__ import annotations

import torch


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
