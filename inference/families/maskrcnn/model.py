"""Mask R-CNN (He et al. 2017) with a ResNet-FPN backbone, in eval mode, with torchvision's module names so its
checkpoints load as they are.

Stages: the transform (normalise, resize so the short side reaches ``min_size`` unless the long side would
pass ``max_size``, pad to a multiple of 32), a ResNet with frozen batch norms (Basic or Bottleneck blocks),
the FPN (levels 2–5 plus a max-pooled level 6), the RPN (three anchors per position and level, top 1000 per
level, NMS 0.7, best 1000 kept), RoIAlign over the FPN levels (7 x 7 for the boxes, 14 x 14 for the masks),
the two-layer box head, per-class box refinement, score threshold and class-wise NMS, the four-convolution
mask head and a 28 x 28 mask per detection, pasted back onto the input image.

``model([x])`` follows torchvision's eval contract: ``x`` is a (3, H, W) float tensor in [0, 1]; the answer is
``[{"boxes", "labels", "scores", "masks"}]`` with boxes (x1, y1, x2, y2) in input pixels and masks (N, 1, H, W)
probabilities. :meth:`MaskRCNN.detect` gives the same without the full-image masks (28 x 28 masks and boxes),
and, on request, the intermediate values the reference oracles record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from inference.families.maskrcnn import ops

# ------------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class MaskRCNNConfig:
    """The layout and the eval settings (torchvision's defaults except the mammography image sizes).

    Attributes:
        block: "basic" (ResNet-18/34) or "bottleneck" (ResNet-50/101).
        layers: blocks per ResNet stage.
        stem_width: channels after the stem (64).
        fpn_channels: channels of every FPN level.
        num_classes: including the background (class 0).
        representation: width of the box head's two fully connected layers.
        mask_layers: widths of the mask head's convolutions.
        min_size, max_size: the transform's target sizes.
    """

    block: str = "bottleneck"
    layers: tuple[int, ...] = (3, 4, 6, 3)
    stem_width: int = 64
    fpn_channels: int = 256
    num_classes: int = 3
    representation: int = 1024
    mask_layers: tuple[int, ...] = (256, 256, 256, 256)
    mask_dim: int = 256
    anchor_sizes: tuple[float, ...] = (32, 64, 128, 256, 512)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    min_size: int = 1024
    max_size: int = 2048
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    size_divisible: int = 32
    rpn_pre_nms_top_n: int = 1000
    rpn_post_nms_top_n: int = 1000
    rpn_nms: float = 0.7
    rpn_score_threshold: float = 0.0
    rpn_min_size: float = 1e-3
    box_score_threshold: float = 0.05
    box_nms: float = 0.5
    detections_per_image: int = 100
    box_min_size: float = 1e-2

    def __post_init__(self) -> None:
        if self.block not in ("basic", "bottleneck"):
            raise ValueError(f"block must be 'basic' or 'bottleneck', not {self.block!r}")
        if len(self.layers) != 4 or min(self.layers) < 1:
            raise ValueError(f"a ResNet-FPN needs four stages of at least one block, not {self.layers}")
        if self.num_classes < 2:
            raise ValueError("a detector needs the background and at least one class")
        if not 0 < self.min_size <= self.max_size:
            raise ValueError(f"min_size {self.min_size} and max_size {self.max_size} do not make sense")
        # the thresholds a sidecar may set: a score of 2 kept no detection, an NMS of 1.5 kept overlapping ones,
        # -1 detections per image dropped the last one, and text or NaN failed half-way or in the JSON
        for name, low, high, low_open in (("box_score_threshold", 0.0, 1.0, False), ("box_nms", 0.0, 1.0, True),
                                          ("rpn_nms", 0.0, 1.0, True), ("rpn_score_threshold", 0.0, 1.0, False)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    (low < value if low_open else low <= value) and value < high or (name.endswith("nms")
                                                                                    and value == high)):
                span = f"{'(' if low_open else '['}{low:g}, {high:g}{']' if name.endswith('nms') else ')'}"
                raise ValueError(f"{name} must be a number in {span}, not {value!r}")
        for name in ("detections_per_image", "rpn_pre_nms_top_n", "rpn_post_nms_top_n"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")

    @property
    def expansion(self) -> int:
        return 1 if self.block == "basic" else 4


# ------------------------------------------------------------------------------------------------- backbone


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine: ``y = x * scale + shift`` (detectors train with batches
    too small to estimate statistics, so they keep the classification network's)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)


class _Downsample(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__(_conv(cin, cout, 1, stride), FrozenBatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3 x 3 convolutions and a shortcut (He et al. 2016)."""

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, width, 3, stride), FrozenBatchNorm2d(width)
        self.conv2, self.bn2 = _conv(width, width, 3), FrozenBatchNorm2d(width)
        self.downsample = _Downsample(cin, width, stride) if stride != 1 or cin != width else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1 x 1, 3 x 3 (strided), 1 x 1 with four times the width out, and a shortcut."""

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.conv1, self.bn1 = _conv(cin, width, 1), FrozenBatchNorm2d(width)
        self.conv2, self.bn2 = _conv(width, width, 3, stride), FrozenBatchNorm2d(width)
        self.conv3, self.bn3 = _conv(width, cout, 1), FrozenBatchNorm2d(cout)
        self.downsample = _Downsample(cin, cout, stride) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNetBody(nn.Module):
    """The ResNet trunk without its classifier; returns the outputs of the four stages (strides 4–32)."""

    def __init__(self, config: MaskRCNNConfig) -> None:
        super().__init__()
        block = BasicBlock if config.block == "basic" else Bottleneck
        width = config.stem_width
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(width)
        cin = width
        stages = []
        for index, count in enumerate(config.layers):
            stage_width = width * 2 ** index
            blocks = []
            for b in range(count):
                blocks.append(block(cin, stage_width, 2 if (b == 0 and index > 0) else 1))
                cin = stage_width * config.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), kernel_size=3, stride=2, padding=1)
        outs = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            outs.append(x)
        return outs


class FeaturePyramid(nn.Module):
    """FPN (Lin et al. 2017): 1 x 1 laterals, nearest-neighbour top-down sums, 3 x 3 output convolutions, and a
    stride-2 subsampling of the coarsest output as the extra level."""

    def __init__(self, in_channels: Sequence[int], channels: int) -> None:
        super().__init__()
        self.inner_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(c, channels, 1)) for c in in_channels)
        self.layer_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1))
                                          for _ in in_channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        last = self.inner_blocks[-1](features[-1])
        outs = [self.layer_blocks[-1](last)]
        for index in range(len(features) - 2, -1, -1):
            lateral = self.inner_blocks[index](features[index])
            last = lateral + F.interpolate(last, size=lateral.shape[-2:], mode="nearest")
            outs.insert(0, self.layer_blocks[index](last))
        outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2, padding=0))
        return outs


class Backbone(nn.Module):
    def __init__(self, config: MaskRCNNConfig) -> None:
        super().__init__()
        self.body = ResNetBody(config)
        widths = [config.stem_width * 2 ** i * config.expansion for i in range(4)]
        self.fpn = FeaturePyramid(widths, config.fpn_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.fpn(self.body(x))


# ------------------------------------------------------------------------------------------------- heads


class RPNHead(nn.Module):
    """A shared 3 x 3 convolution, then per anchor an objectness logit and four box deltas."""

    def __init__(self, channels: int, anchors: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()))
        self.cls_logits = nn.Conv2d(channels, anchors, 1)
        self.bbox_pred = nn.Conv2d(channels, anchors * 4, 1)

    def forward(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, deltas = [], []
        for feature in features:
            t = self.conv(feature)
            logits.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return logits, deltas


class RPN(nn.Module):
    def __init__(self, config: MaskRCNNConfig) -> None:
        super().__init__()
        self.head = RPNHead(config.fpn_channels, len(config.aspect_ratios))


class BoxHead(nn.Module):
    def __init__(self, cin: int, width: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(cin, width)
        self.fc7 = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc7(F.relu(self.fc6(x.flatten(start_dim=1)))))


class BoxPredictor(nn.Module):
    def __init__(self, width: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(width, num_classes)
        self.bbox_pred = nn.Linear(width, num_classes * 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.flatten(1)
        return self.cls_score(x), self.bbox_pred(x)


class MaskPredictor(nn.Module):
    def __init__(self, cin: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.conv5_mask = nn.ConvTranspose2d(cin, width, 2, stride=2)
        self.mask_fcn_logits = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask_fcn_logits(F.relu(self.conv5_mask(x)))


class RoIHeads(nn.Module):
    def __init__(self, config: MaskRCNNConfig) -> None:
        super().__init__()
        self.box_head = BoxHead(config.fpn_channels * 7 * 7, config.representation)
        self.box_predictor = BoxPredictor(config.representation, config.num_classes)
        convs, cin = [], config.fpn_channels
        for width in config.mask_layers:
            convs.append(nn.Sequential(nn.Conv2d(cin, width, 3, padding=1), nn.ReLU()))
            cin = width
        self.mask_head = nn.Sequential(*convs)
        self.mask_predictor = MaskPredictor(cin, config.mask_dim, config.num_classes)


# ------------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Detections:
    """One image's detections.

    Attributes:
        boxes: (N, 4) float32 x1, y1, x2, y2 in input-image pixels, best score first.
        labels: (N,) int64 class indices (never 0, the background).
        scores: (N,) float32 class probabilities.
        mask_probs: (N, 1, 28, 28) float32 mask probabilities of each detection's class, over its box.
        image_size: (rows, cols) of the input image.
        trace: intermediate values (only when asked for): sizes, FPN levels, proposals, box-head outputs.
        non_finite: the stages whose values on this image were not finite numbers ("" when none): then the
            detections are no result (a NaN score passes no threshold, and "nothing found" would be said).
    """

    boxes: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor
    mask_probs: torch.Tensor
    image_size: tuple[int, int]
    trace: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    non_finite: str = ""


class MaskRCNN(nn.Module):
    """Mask R-CNN, eval mode only (see the module docstring)."""

    def __init__(self, config: MaskRCNNConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = Backbone(config)
        self.rpn = RPN(config)
        self.roi_heads = RoIHeads(config)

    # -- transform

    def resize_scale(self, size: tuple[int, int]) -> float:
        """The resize factor of an image of (rows, cols), in float64 as the reference computes it."""
        return min(self.config.min_size / float(min(size)), self.config.max_size / float(max(size)))

    def _transform(self, images: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[tuple[int, int]], list[float]]:
        cfg = self.config
        resized, scales = [], []
        for image in images:
            if image.dim() != 3 or image.shape[0] != 3:
                raise ValueError(f"expected a (3, H, W) image, got shape {tuple(image.shape)}")
            mean = torch.as_tensor(cfg.image_mean, dtype=image.dtype, device=image.device)
            std = torch.as_tensor(cfg.image_std, dtype=image.dtype, device=image.device)
            normalised = (image - mean[:, None, None]) / std[:, None, None]
            scale = self.resize_scale(tuple(image.shape[-2:]))
            resized.append(F.interpolate(normalised[None], scale_factor=scale, mode="bilinear",
                                         recompute_scale_factor=True, align_corners=False)[0])
            scales.append(scale)
        sizes = [tuple(int(s) for s in r.shape[-2:]) for r in resized]
        div = cfg.size_divisible
        rows = int(math.ceil(max(s[0] for s in sizes) / div) * div)
        cols = int(math.ceil(max(s[1] for s in sizes) / div) * div)
        batch = resized[0].new_zeros((len(resized), 3, rows, cols))
        for i, r in enumerate(resized):
            batch[i, :, :r.shape[1], :r.shape[2]].copy_(r)
        return batch, sizes, scales

    # -- RPN

    def _anchors(self, features: list[torch.Tensor], padded: tuple[int, int]) -> list[torch.Tensor]:
        out = []
        for size, feature in zip(self.config.anchor_sizes, features, strict=True):
            grid = tuple(int(s) for s in feature.shape[-2:])
            stride = (padded[0] // grid[0], padded[1] // grid[1])
            templates = ops.anchor_templates(size, self.config.aspect_ratios)
            out.append(ops.grid_anchors(templates, grid, stride).to(feature.device))
        return out

    def _proposals(self, features: list[torch.Tensor], padded: tuple[int, int],
                   sizes: list[tuple[int, int]]) -> list[tuple[torch.Tensor, torch.Tensor, bool]]:
        """Per image: the proposals, their objectness, and whether the RPN's outputs were all finite."""
        cfg = self.config
        logits, deltas = self.rpn.head(features)
        anchors = self._anchors(features, padded)
        n = logits[0].shape[0]
        a = len(cfg.aspect_ratios)
        # (N, A·C, H, W) -> (N, H·W·A, C): position-major, as the anchors
        flat_logits = [l.float().view(n, a, 1, *l.shape[-2:]).permute(0, 3, 4, 1, 2).reshape(n, -1) for l in logits]
        flat_deltas = [d.float().view(n, a, 4, *d.shape[-2:]).permute(0, 3, 4, 1, 2).reshape(n, -1, 4)
                       for d in deltas]
        counts = [t.shape[1] for t in flat_logits]
        objectness = torch.cat(flat_logits, dim=1)
        all_deltas = torch.cat(flat_deltas, dim=1)
        finite = (torch.isfinite(objectness).all(1) & torch.isfinite(all_deltas).flatten(1).all(1)).tolist()
        all_anchors = torch.cat(anchors, dim=0)
        boxes = ops.decode_boxes(all_deltas.reshape(-1, 4), all_anchors.repeat(n, 1),
                                 (1.0, 1.0, 1.0, 1.0)).view(n, -1, 4)
        levels = torch.cat([torch.full((c,), i, dtype=torch.int64, device=objectness.device)
                            for i, c in enumerate(counts)])
        picks, offset = [], 0
        for part in objectness.split(counts, dim=1):
            _, top = part.topk(min(cfg.rpn_pre_nms_top_n, part.shape[1]), dim=1)
            picks.append(top + offset)
            offset += part.shape[1]
        top = torch.cat(picks, dim=1)
        result = []
        for i in range(n):
            b = ops.clip_boxes(boxes[i, top[i]], sizes[i])
            s = torch.sigmoid(objectness[i, top[i]])
            lv = levels[top[i]]
            keep = ops.keep_large(b, cfg.rpn_min_size)
            b, s, lv = b[keep], s[keep], lv[keep]
            keep = torch.where(s >= cfg.rpn_score_threshold)[0]
            b, s, lv = b[keep], s[keep], lv[keep]
            keep = ops.batched_nms(b.cpu(), s.cpu(), lv.cpu(), cfg.rpn_nms)[:cfg.rpn_post_nms_top_n].to(b.device)
            result.append((b[keep], s[keep], bool(finite[i])))
        return result

    # -- RoI heads

    def _pool(self, features: list[torch.Tensor], boxes: list[torch.Tensor], sizes: list[tuple[int, int]],
              output: int) -> torch.Tensor:
        levels = features[:4]
        biggest = (max(s[0] for s in sizes), max(s[1] for s in sizes))
        scales = [ops.level_scale(f.shape[-2:], biggest) for f in levels]
        k_min, k_max = int(-math.log2(scales[0])), int(-math.log2(scales[-1]))
        rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], dim=1) for i, b in enumerate(boxes)])
        which = ops.roi_levels(torch.cat(boxes), k_min, k_max)
        out = levels[0].new_zeros((len(rois), levels[0].shape[1], output, output), dtype=torch.float32)
        for index, (feature, scale) in enumerate(zip(levels, scales, strict=True)):
            members = torch.where(which == index)[0]
            if len(members):
                out[members] = ops.roi_align(feature.float(), rois[members].float(), output, scale)
        return out

    def _detections(self, class_logits: torch.Tensor, box_regression: torch.Tensor, proposals: torch.Tensor,
                    size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.config
        classes = class_logits.shape[-1]
        # no proposal (an RPN whose every box was dropped): no detection, never a reshape of nothing
        boxes = ops.decode_boxes(box_regression, proposals, (10.0, 10.0, 5.0, 5.0)).reshape(
            len(proposals), classes, 4)
        scores = F.softmax(class_logits, -1)
        boxes = ops.clip_boxes(boxes, size)
        labels = torch.arange(classes, device=scores.device).view(1, -1).expand_as(scores)
        boxes, scores, labels = boxes[:, 1:].reshape(-1, 4), scores[:, 1:].reshape(-1), labels[:, 1:].reshape(-1)
        keep = torch.where(scores > cfg.box_score_threshold)[0]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = ops.keep_large(boxes, cfg.box_min_size)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = ops.batched_nms(boxes.cpu(), scores.cpu(), labels.cpu(), cfg.box_nms)[:cfg.detections_per_image]
        keep = keep.to(boxes.device)
        return boxes[keep], scores[keep], labels[keep]

    def detect(self, images: Sequence[torch.Tensor], trace: bool = False) -> list[Detections]:
        """Detections and 28 x 28 masks for each (3, H, W) image in [0, 1]; boxes in input pixels."""
        batch, sizes, scales = self._transform(images)
        features = self.backbone(batch)
        padded = tuple(int(s) for s in batch.shape[-2:])
        problems: list[list[str]] = [[] for _ in images]  # per image, the stages whose values were not finite
        finite_features = torch.stack([torch.isfinite(f).flatten(1).all(1) for f in features]).all(0).tolist()
        proposals = self._proposals(features, padded, sizes)
        for i, (ok_features, (_, _, ok_rpn)) in enumerate(zip(finite_features, proposals, strict=True)):
            problems[i] += [] if ok_features else ["the FPN features"]
            problems[i] += [] if ok_rpn else ["the RPN's objectness or box deltas"]
        proposal_boxes = [p[0] for p in proposals]
        pooled = self._pool(features, proposal_boxes, sizes, 7)
        box_features = self.roi_heads.box_head(pooled)
        class_logits, box_regression = self.roi_heads.box_predictor(box_features)
        class_logits, box_regression = class_logits.float(), box_regression.float()
        counts = [len(p) for p in proposal_boxes]
        results = []
        for i, (logits, regression) in enumerate(zip(class_logits.split(counts), box_regression.split(counts),
                                                      strict=True)):
            if not (torch.isfinite(logits).all() and torch.isfinite(regression).all()):
                problems[i].append("the box head's class scores or box deltas")
            results.append(self._detections(logits, regression, proposal_boxes[i], sizes[i]))
        det_boxes = [r[0] for r in results]
        if sum(len(b) for b in det_boxes):
            mask_pooled = self._pool(features, det_boxes, sizes, 14)
            mask_logits = self.roi_heads.mask_predictor(self.roi_heads.mask_head(mask_pooled)).float()
            labels = torch.cat([r[2] for r in results])
            mask_probs = mask_logits.sigmoid()[torch.arange(len(labels), device=labels.device), labels][:, None]
            finite_masks = torch.isfinite(mask_logits).flatten(1).all(1)
            for i, ok in enumerate(finite_masks.split([len(b) for b in det_boxes])):
                if not bool(ok.all()):
                    problems[i].append("the mask head's logits")
        else:
            mask_probs = features[0].new_zeros((0, 1, 28, 28), dtype=torch.float32)
        out = []
        for i, (image, (boxes, scores, labels), masks) in enumerate(
                zip(images, results, mask_probs.split([len(b) for b in det_boxes]), strict=True)):
            original = tuple(int(s) for s in image.shape[-2:])
            ratio_h = torch.tensor(original[0], dtype=torch.float32) / torch.tensor(sizes[i][0], dtype=torch.float32)
            ratio_w = torch.tensor(original[1], dtype=torch.float32) / torch.tensor(sizes[i][1], dtype=torch.float32)
            ratio_h, ratio_w = ratio_h.to(boxes.device), ratio_w.to(boxes.device)
            x1, y1, x2, y2 = boxes.unbind(1)
            scaled = torch.stack((x1 * ratio_w, y1 * ratio_h, x2 * ratio_w, y2 * ratio_h), dim=1)
            record: dict[str, Any] = {}
            if trace:
                first = sum(counts[:i])
                record = {
                    "scale_factor": scales[i], "transformed_size": sizes[i], "padded_size": padded,
                    "fpn": {name: f[i] for name, f in zip(("0", "1", "2", "3", "pool"), features, strict=True)},
                    "proposals": proposal_boxes[i], "proposal_scores": proposals[i][1],
                    "class_logits": class_logits[first:first + counts[i]],
                    "box_regression": box_regression[first:first + counts[i]],
                    "box_roi_pool": pooled[first:first + counts[i]],
                    "box_features": box_features[first:first + counts[i]],
                }
            out.append(Detections(scaled, labels, scores, masks, original, record, ", ".join(problems[i])))
        return out

    def forward(self, images: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """torchvision's eval contract: per image boxes, labels, scores and (N, 1, H, W) mask probabilities."""
        answers = []
        for d in self.detect(images):
            if d.non_finite:  # an empty answer would read as "nothing found"
                raise FloatingPointError(f"the network's values are not finite numbers ({d.non_finite})")
            masks = ops.paste_masks(d.mask_probs.cpu(), d.boxes.cpu(), d.image_size).to(d.boxes.device)
            answers.append({"boxes": d.boxes, "labels": d.labels, "scores": d.scores, "masks": masks})
        return answers


# ------------------------------------------------------------------------------------------------- fast mode


def _folded(conv: nn.Conv2d, norm: FrozenBatchNorm2d) -> nn.Conv2d:
    scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                       padding=conv.padding, bias=True)
    with torch.no_grad():
        folded.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        folded.bias.copy_(norm.bias - norm.running_mean * scale)
    return folded


def fold_frozen_batchnorm(model: MaskRCNN) -> MaskRCNN:
    """A copy whose frozen batch norms are folded into the convolutions before them (the fast mode: one pass
    less over every backbone map; rounding differs from the exact mode by about 1e-6 relative)."""
    import copy  # noqa: PLC0415

    fast = copy.deepcopy(model)
    for module in list(fast.modules()):
        if isinstance(module, _Downsample):
            module[0], module[1] = _folded(module[0], module[1]), nn.Identity()
        for index in (1, 2, 3):
            conv, norm = getattr(module, f"conv{index}", None), getattr(module, f"bn{index}", None)
            if isinstance(conv, nn.Conv2d) and isinstance(norm, FrozenBatchNorm2d):
                setattr(module, f"conv{index}", _folded(conv, norm))
                setattr(module, f"bn{index}", nn.Identity())
    return fast.eval()
