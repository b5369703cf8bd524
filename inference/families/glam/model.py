"""GLAM: weakly-supervised high-resolution segmentation of mammograms (Liu, Shen, Wu, Chłędowski,
Fernandez-Granda, Geras; MIDL 2021).

Global network (GMIC's pre-activation ResNet-22) -> class maps at three scales (184 x 120 native, 92 x 60
and 46 x 30 upsampled by nearest neighbour) -> ``y_global`` (the model's output: the mean over the scales of
each map's top-3 % mean) and ``saliency_global`` (0.2, 0.6, 0.2) -> one 512 x 512 patch where the summed,
min-max normalised global map has the largest 32 x 32 window mean -> the local ResNet-34 at stride 1 on that
patch -> ``local_cam`` (128 x 128 per class) -> the fused full-resolution ``saliency_map``: the local map
(nearest x4, pasted at the patch) and the global map (nearest x16) averaged.

Written from the paper and the conventions of ``shared/reference/glam/README.md`` (no reference code).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from inference.families.nets.crops import check_shapes, crop_upper_left
from inference.families.nets.resnet import GlobalNetwork, LocalNetwork


@dataclass(frozen=True)
class GLAMConfig:
    """The configuration of the published GLAM models (``run_model.py``'s parameters).

    Attributes:
        cam_size: (rows, cols) of the finest class map for a 2944 x 1920 input.
        crop_shape: the patch, in input pixels.
        percent_k: share of a class map's values averaged into the image score (k = 662 of 22 080).
        local_percent_k: the same for the local map's score ``y_local_patch`` (k = 4915 of 16 384).
        scale_weights: weights of cam_3 (46 x 30), cam_2 (92 x 60), cam_1 (184 x 120) in ``saliency_global``.
        num_classes: 2 (benign, malignant).
    """

    cam_size: tuple[int, int] = (184, 120)
    crop_shape: tuple[int, int] = (512, 512)
    percent_k: float = 0.03
    local_percent_k: float = 0.3
    scale_weights: tuple[float, float, float] = (0.2, 0.6, 0.2)
    num_classes: int = 2

    def __post_init__(self) -> None:
        check_shapes(self.cam_size, self.crop_shape)
        if not (0 < self.percent_k <= 1 and 0 < self.local_percent_k <= 1):
            raise ValueError("percent_k and local_percent_k must be in (0, 1]")


@dataclass(frozen=True)
class GLAMOutput:
    """One forward pass over N images (channel 0 benign, 1 malignant everywhere).

    Attributes:
        y_global: (N, C) the model's output.
        saliency_global: (N, C, 184, 120).
        patch_locations: (N, 1, 2) int64 upper-left (row, col) of the patch in the input.
        crop: (N, 1, 512, 512) the patch.
        local_cam: (N, 1, C, 128, 128) the local network's sigmoid map.
        saliency_local: (N, C, H, W) the local map at full resolution, zeros outside the patch.
        saliency_map: (N, C, H, W) the fused map.
        cam_1, cam_2, cam_3: (N, C, 184, 120) the class maps of the 64-, 128- and 256-channel outputs.
        y_per_scale: (3, N, C) each map's top-k mean (``y_global`` is their mean).
        selection_map: (N, 1, 153, 89) the window means the patch is chosen on.
        y_local_patch: (N, C) the top-30 % mean of ``local_cam`` (not an output of the reference).
    """

    y_global: torch.Tensor
    saliency_global: torch.Tensor
    patch_locations: torch.Tensor
    crop: torch.Tensor
    local_cam: torch.Tensor
    saliency_local: torch.Tensor
    saliency_map: torch.Tensor
    cam_1: torch.Tensor
    cam_2: torch.Tensor
    cam_3: torch.Tensor
    y_per_scale: torch.Tensor
    selection_map: torch.Tensor
    y_local_patch: torch.Tensor


def top_k_mean(maps: torch.Tensor, percent: float) -> torch.Tensor:
    """(N, C, h, w) -> (N, C): the mean of the ``int(round(percent * h * w))`` largest values of each map."""
    n, c, h, w = maps.shape
    k = max(1, int(round(percent * h * w)))
    return maps.reshape(n, c, h * w).topk(k, dim=2).values.mean(dim=2)


def select_patch(saliency: torch.Tensor, window: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(selection map (N, 1, h - wr + 1, w - wc + 1), cells (N, 2) int64) of the best window.

    Each class channel is min-max normalised over its map (a constant channel adds zeros), the channels are
    summed, window means are taken at stride 1, and the largest wins (the first in row-major order on exact
    ties). The row of the flat index is its floor division by the map's width.
    """
    n = saliency.shape[0]
    flat = saliency.reshape(n, saliency.shape[1], -1)
    low = flat.min(dim=2).values[:, :, None, None]
    span = flat.max(dim=2).values[:, :, None, None] - low
    span = torch.where(span > 0, span, torch.ones_like(span))
    summed = ((saliency - low) / span).sum(dim=1, keepdim=True)
    selection = F.avg_pool2d(summed, kernel_size=window, stride=1)
    width = selection.shape[-1]
    best = selection.reshape(n, -1).argmax(dim=1)
    rows = torch.div(best, width, rounding_mode="floor")
    return selection, torch.stack([rows, best - width * rows], dim=1)


class GLAM(nn.Module):
    """The GLAM model. ``forward`` stores nothing on ``self``."""

    def __init__(self, config: GLAMConfig = GLAMConfig()) -> None:
        super().__init__()
        self.config = config
        self.global_net = GlobalNetwork(base_width=16)
        classes = config.num_classes
        self.head_1 = nn.Conv2d(64, classes, 1, bias=False)  # on the raw 64-channel stage output (1/16)
        self.head_2 = nn.Conv2d(128, classes, 1, bias=False)  # on the raw 128-channel stage output (1/32)
        self.head_last = nn.Conv2d(256, classes, 1, bias=False)  # on the final BN + ReLU map (1/64)
        # in the published checkpoints but never used by the forward pass; kept so that loading is strict
        self.combine = nn.Conv2d(3 * classes, classes, 1, bias=False)
        self.local_net = LocalNetwork(base_width=64, blocks=(3, 4, 6, 3), strides=(1, 1, 1, 1), pooled=False)
        self.local_head = nn.Conv2d(512, classes, 1, bias=False)

    def global_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (N, 1, H, W) -> (cam_1, cam_2, cam_3), each (N, C, 184, 120) after the sigmoid."""
        stages, final = self.global_net.forward_stages(x)
        fine = stages[2]
        cam_1 = torch.sigmoid(self.head_1(fine))
        size = fine.shape[-2:]
        cam_2 = torch.sigmoid(F.interpolate(self.head_2(stages[3]), size=size, mode="nearest"))
        cam_3 = torch.sigmoid(F.interpolate(self.head_last(final), size=size, mode="nearest"))
        return cam_1, cam_2, cam_3

    def local_forward(self, crop: torch.Tensor) -> torch.Tensor:
        """crop (N, 1, 512, 512) -> local_cam (N, C, 128, 128): the 3-channel repeat of the reference, the
        ResNet-34 at stride 1, the 1x1 head and a sigmoid."""
        n, _, ph, pw = crop.shape
        return torch.sigmoid(self.local_head(self.local_net(crop.expand(n, 3, ph, pw))))

    def window_cells(self, input_shape: tuple[int, int]) -> tuple[int, int]:
        """The patch in cells of the finest map (32 x 32 for the published configuration)."""
        h, w = self.config.cam_size
        return (int(round(self.config.crop_shape[0] * h / input_shape[0])),
                int(round(self.config.crop_shape[1] * w / input_shape[1])))

    def forward(self, x: torch.Tensor) -> GLAMOutput:
        """Run GLAM on x (N, 1, H, W) float32 standardised inputs (2944 x 1920 for the published models)."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected input of shape (N, 1, H, W), got {tuple(x.shape)}")
        config = self.config
        n, _, height, width = x.shape
        cam_1, cam_2, cam_3 = self.global_forward(x)
        y_per_scale = torch.stack([top_k_mean(cam, config.percent_k) for cam in (cam_1, cam_2, cam_3)])
        y_global = y_per_scale.mean(dim=0)
        w3, w2, w1 = config.scale_weights
        saliency_global = w3 * cam_3 + w2 * cam_2 + w1 * cam_1

        selection, cells = select_patch(saliency_global.float(), self.window_cells((height, width)))
        cam_h, cam_w = saliency_global.shape[-2:]
        scale = torch.tensor([height / cam_h, width / cam_w], dtype=torch.float64, device=x.device)
        locations = torch.round(cells.to(torch.float64) * scale).to(torch.int64)  # (16 i, 16 j) published
        crop = crop_upper_left(x[:, 0], locations[:, None], config.crop_shape)  # (N, 1, h, w)

        ph, pw = config.crop_shape
        local_cam = self.local_forward(crop.reshape(n, 1, ph, pw))
        y_local_patch = top_k_mean(local_cam.float(), config.local_percent_k)

        factor = ph // local_cam.shape[-2]
        local_full = F.interpolate(local_cam.float(), scale_factor=factor, mode="nearest")
        saliency_local = x.new_zeros((n, config.num_classes, height, width), dtype=torch.float32)
        for i in range(n):  # the patch lies inside the input for the published sizes; clip in general
            r, c = (int(v) for v in locations[i])
            rh, cw = min(ph, height - r), min(pw, width - c)
            saliency_local[i, :, r: r + rh, c: c + cw] = local_full[i, :, ph - rh:, pw - cw:]
        global_full = F.interpolate(saliency_global.float(), size=(height, width), mode="nearest")
        saliency_map = (saliency_local + global_full) / 2
        return GLAMOutput(
            y_global=y_global, saliency_global=saliency_global, patch_locations=locations[:, None],
            crop=crop, local_cam=local_cam[:, None], saliency_local=saliency_local, saliency_map=saliency_map,
            cam_1=cam_1, cam_2=cam_2, cam_3=cam_3, y_per_scale=y_per_scale, selection_map=selection,
            y_local_patch=y_local_patch)
