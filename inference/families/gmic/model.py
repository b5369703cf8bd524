"""GMIC: Globally-Aware Multiple Instance Classifier (Shen et al., Medical Image Analysis 2021).

Global network -> per-class sigmoid saliency maps -> top-t% aggregation (y_global) -> greedy retrieval of
K regions of interest on the saliency maps -> crops at full resolution -> local network -> gated-attention
MIL (y_local) -> fusion of the global and local representations (y_fusion, the output).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from inference.families.nets.crops import check_shapes, crop_upper_left
from inference.families.nets.resnet import GlobalNetwork, LocalNetwork

MAX_PATCHES = 64  # K: ten times the published 6; beyond it the crops' memory grows past any workstation's


@dataclass(frozen=True)
class GMICConfig:
    """Hyper-parameters of a GMIC model; the defaults are those of the published checkpoints.

    Attributes:
        cam_size: (rows, cols) of the saliency map for a 2944 x 1920 input.
        K: number of retrieved patches per image.
        crop_shape: patch size (rows, cols) in input pixels.
        post_processing_dim: channels of the global feature map h_g.
        num_classes: 2 (benign, malignant).
        percent_t: fraction of saliency values averaged into y_global (checkpoint specific).
        local_width: base width of the local ResNet-18 (64 published; smaller for the demo model).
        global_width: base width of the global network (16 published).
    """

    cam_size: tuple[int, int] = (46, 30)
    K: int = 6
    crop_shape: tuple[int, int] = (256, 256)
    post_processing_dim: int = 256
    num_classes: int = 2
    percent_t: float = 0.02
    local_width: int = 64
    global_width: int = 16

    def __post_init__(self) -> None:
        check_shapes(self.cam_size, self.crop_shape)
        if not 0.0 < self.percent_t <= 1.0:
            raise ValueError(f"percent_t must be in (0, 1], got {self.percent_t}")
        if not isinstance(self.K, int) or isinstance(self.K, bool) or not 1 <= self.K <= MAX_PATCHES:
            # 6.5 failed deep in the forward with a traceback; a million asked for 262 GB
            raise ValueError(f"K (the patches retrieved) must be a whole number from 1 to {MAX_PATCHES}, got {self.K!r}")
        if self.global_width * 16 != self.post_processing_dim:
            raise ValueError("post_processing_dim must be 16 x global_width (five doubling stages)")


@dataclass(frozen=True)
class GMICOutput:
    """What one forward pass computes; N images per batch.

    Attributes:
        saliency_map: (N, C, h, w) sigmoid class maps; channel 0 benign, 1 malignant.
        y_global: (N, C) top-t% aggregation of ``saliency_map``.
        patch_locations: (N, K, 2) int64 upper-left (row, col) of each patch in the input frame.
        patches: (N, K, crop_h, crop_w) the crops taken from the input.
        patch_attention: (N, K) gated-attention weights (softmax over patches).
        y_local: (N, C) local-network prediction.
        y_fusion: (N, C) the model output.
        global_vec: (N, post_processing_dim) spatial max of h_g.
        h_crops: (N, K, F) per-patch local features.
        z: (N, F) attention-weighted patch representation.
    """

    saliency_map: torch.Tensor
    y_global: torch.Tensor
    patch_locations: torch.Tensor
    patches: torch.Tensor
    patch_attention: torch.Tensor
    y_local: torch.Tensor
    y_fusion: torch.Tensor
    global_vec: torch.Tensor
    h_crops: torch.Tensor
    z: torch.Tensor


class GatedAttention(nn.Module):
    """Gated attention MIL pooling (Ilse et al., 2018): a = softmax_k(w^T (sigmoid(U h_k) * tanh(V h_k)))."""

    def __init__(self, features: int, hidden: int = 128) -> None:
        super().__init__()
        self.U = nn.Linear(features, hidden, bias=False)
        self.V = nn.Linear(features, hidden, bias=False)
        self.w = nn.Linear(hidden, 1, bias=False)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h (N, K, F) -> (attention (N, K), z (N, F))."""
        gate = torch.sigmoid(self.U(h)) * torch.tanh(self.V(h))
        attention = torch.softmax(self.w(gate).squeeze(-1), dim=1)
        z = torch.bmm(attention.unsqueeze(1), h).squeeze(1)
        return attention, z


def top_t_pooling(saliency: torch.Tensor, percent_t: float) -> torch.Tensor:
    """Mean of the top ``percent_t`` of each class map: (N, C, h, w) -> (N, C)."""
    n, c, h, w = saliency.shape
    k = max(1, int(round(h * w * percent_t)))
    return saliency.reshape(n, c, h * w).topk(k, dim=2).values.mean(dim=2)


def retrieve_rois(
    saliency: torch.Tensor, K: int, window: tuple[int, int]
) -> torch.Tensor:
    """Greedy region retrieval on the saliency maps, entirely on the saliency map's device.

    Each class map is min-max normalised, the classes are summed, and K times the window of ``window``
    cells with the largest mean is taken (first in row-major order on exact ties) and its cells are zeroed.

    Args:
        saliency: (N, C, h, w).
        K: number of windows.
        window: (rows, cols) of the window in map cells.

    Returns:
        (N, K, 2) int64 upper-left cell indices (row, col).
    """
    n, _, h, w = saliency.shape
    flat = saliency.reshape(n, saliency.shape[1], -1)
    low = flat.min(dim=2).values[:, :, None, None]
    high = flat.max(dim=2).values[:, :, None, None]
    span = high - low
    span = torch.where(span > 0, span, torch.ones_like(span))  # a constant map contributes zeros
    current = ((saliency - low) / span).sum(dim=1, keepdim=True)
    rows = torch.arange(h, device=saliency.device)
    cols = torch.arange(w, device=saliency.device)
    out_w = w - window[1] + 1
    picks = []
    for _ in range(K):
        means = F.avg_pool2d(current, kernel_size=window, stride=1)
        best = means.reshape(n, -1).argmax(dim=1)
        r, c = best // out_w, best % out_w
        picks.append(torch.stack([r, c], dim=1))
        in_rows = (rows[None, :] >= r[:, None]) & (rows[None, :] < r[:, None] + window[0])
        in_cols = (cols[None, :] >= c[:, None]) & (cols[None, :] < c[:, None] + window[1])
        chosen = in_rows[:, :, None] & in_cols[:, None, :]
        current = current * (~chosen).unsqueeze(1).to(current.dtype)
    return torch.stack(picks, dim=1)


class GMIC(nn.Module):
    """The GMIC model. ``forward`` stores nothing on ``self`` and is safe to call from several threads."""

    def __init__(self, config: GMICConfig = GMICConfig()) -> None:
        super().__init__()
        self.config = config
        self.global_net = GlobalNetwork(base_width=config.global_width)
        self.saliency_head = nn.Conv2d(config.post_processing_dim, config.num_classes, 1, bias=False)
        self.local_net = LocalNetwork(base_width=config.local_width)
        features = self.local_net.out_features
        self.attention = GatedAttention(features)
        self.local_classifier = nn.Linear(features, config.num_classes, bias=False)
        self.fusion = nn.Linear(config.post_processing_dim + features, config.num_classes)

    def roi_window_cells(self, input_shape: tuple[int, int]) -> tuple[int, int]:
        """Patch size in saliency-map cells (4 x 4 for the published configuration)."""
        h, w = self.config.cam_size
        return (
            int(round(self.config.crop_shape[0] * h / input_shape[0])),
            int(round(self.config.crop_shape[1] * w / input_shape[1])),
        )

    def global_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, 1, H, W) -> (h_g, saliency_map)."""
        h_g = self.global_net(x)
        return h_g, torch.sigmoid(self.saliency_head(h_g))

    def cells_to_pixels(self, cells: torch.Tensor, input_shape: tuple[int, int]) -> torch.Tensor:
        """Saliency-cell indices (..., 2) -> upper-left pixel (row, col) in the input frame, int64."""
        # (i / h) * H in float64, rounded half to even, as the reference converts positions. Python scalars,
        # not tensors made from them: no host-to-device copy inside the forward (a CUDA graph captures it)
        (cam_h, cam_w), (height, width) = self.config.cam_size, input_shape
        cells = cells.to(torch.float64)
        rows = torch.round(cells[..., 0] / float(cam_h) * float(height))
        cols = torch.round(cells[..., 1] / float(cam_w) * float(width))
        return torch.stack([rows, cols], dim=-1).to(torch.int64)

    def local_forward(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """patches (N, K, h, w) -> (h_crops (N, K, F), attention (N, K), z (N, F))."""
        n, k, ph, pw = patches.shape
        flat = patches.reshape(n * k, 1, ph, pw).expand(n * k, 3, ph, pw)
        h_crops = self.local_net(flat).reshape(n, k, -1)
        attention, z = self.attention(h_crops)
        return h_crops, attention, z

    def forward(self, x: torch.Tensor) -> GMICOutput:
        """Run GMIC on x (N, 1, H, W) float32 standardised inputs (H, W = 2944, 1920 for the published model)."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected input of shape (N, 1, H, W), got {tuple(x.shape)}")
        input_shape = (int(x.shape[2]), int(x.shape[3]))
        h_g, saliency = self.global_forward(x)
        y_global = top_t_pooling(saliency, self.config.percent_t)
        cells = retrieve_rois(saliency.float(), self.config.K, self.roi_window_cells(input_shape))
        locations = self.cells_to_pixels(cells, input_shape)
        patches = crop_upper_left(x[:, 0], locations, self.config.crop_shape)
        h_crops, attention, z = self.local_forward(patches)
        y_local = torch.sigmoid(self.local_classifier(z))
        global_vec = h_g.amax(dim=(2, 3))
        y_fusion = torch.sigmoid(self.fusion(torch.cat([global_vec, z], dim=1)))
        return GMICOutput(
            saliency_map=saliency,
            y_global=y_global,
            patch_locations=locations,
            patches=patches,
            patch_attention=attention,
            y_local=y_local,
            y_fusion=y_fusion,
            global_vec=global_vec,
            h_crops=h_crops,
            z=z,
        )
