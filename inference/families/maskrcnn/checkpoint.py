"""torchvision's Mask R-CNN checkpoint layout: recognising it, remapping its older names, and reading the network's
layout (ResNet depth, widths, classes) off the weights' names and shapes.

Pure functions of the state dict; the family loads strictly after them, so a missing or mis-shaped weight is a
:class:`~inference.errors.CheckpointError` that names it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch

from inference.errors import CheckpointError
from inference.families.maskrcnn.model import MaskRCNNConfig

#: weights every torchvision Mask R-CNN has (a checkpoint with all of them is this family's)
SIGNATURE = ("backbone.body.conv1.weight", "backbone.fpn.inner_blocks.0.0.weight", "rpn.head.cls_logits.weight",
             "roi_heads.box_predictor.cls_score.weight", "roi_heads.mask_predictor.mask_fcn_logits.weight")

_LEGACY_MASK = re.compile(r"^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$")


def recognises(state: Mapping[str, torch.Tensor]) -> bool:
    """Most of the signature: a checkpoint with one of its weights lost is this family's, and its loading names
    the weight (it was "the layout of none of the known model families", also for the stem's conv1). A ResNet's
    stem or first stage is there too: a torchvision detector on another backbone (MobileNet) is no ResNet-FPN
    Mask R-CNN, and was told it lacked a ResNet stage."""
    resnet = "backbone.body.conv1.weight" in state or any(key.startswith("backbone.body.layer1.") for key in state)
    return resnet and sum(key in state for key in SIGNATURE) >= len(SIGNATURE) - 2


def remap(state: Mapping[str, torch.Tensor], path: str | None = None) -> dict[str, torch.Tensor]:
    """The checkpoint's weights under this module tree's names: older torchvision's
    ``roi_heads.mask_head.mask_fcn{1..4}`` become ``roi_heads.mask_head.{0..3}.0``; ``num_batches_tracked``
    (left by plain batch norms; frozen ones have none) is dropped. A new dict; ``state`` is not changed.

    Raises:
        CheckpointError: a weight given under both names (which one the network was trained with cannot be
            told: the later one had silently won).
    """
    out: dict[str, torch.Tensor] = {}
    named: dict[str, str] = {}
    for key, value in state.items():
        if key.endswith(".num_batches_tracked"):
            continue
        legacy = _LEGACY_MASK.match(key)
        name = f"roi_heads.mask_head.{int(legacy.group(1)) - 1}.0.{legacy.group(2)}" if legacy else key
        if name in out:
            raise CheckpointError(f"the checkpoint gives the weight '{name}' twice, as '{named[name]}' and as "
                                  f"'{key}' (torchvision's older and newer names of one weight): keep one", path)
        out[name], named[name] = value, key
    return out


def _shape(state: Mapping[str, torch.Tensor], key: str, path: str) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointError(f"the checkpoint lacks the weight '{key}'", path)
    return tuple(state[key].shape)


def config_from(state: Mapping[str, torch.Tensor], meta: Mapping[str, Any], path: str) -> MaskRCNNConfig:
    """The layout read off a remapped state dict, with the metadata's settings (``transform.min_size`` …)."""
    blocks = []
    for stage in range(1, 5):
        found = {int(m.group(1)) for key in state
                 if (m := re.match(rf"^backbone\.body\.layer{stage}\.(\d+)\.", key))}
        if not found:
            raise CheckpointError(f"the checkpoint lacks the weights of ResNet stage 'backbone.body.layer{stage}'",
                                  path)
        blocks.append(max(found) + 1)
    block = "bottleneck" if "backbone.body.layer1.0.conv3.weight" in state else "basic"
    stem = _shape(state, "backbone.body.conv1.weight", path)[0]
    fpn = _shape(state, "backbone.fpn.inner_blocks.0.0.weight", path)[0]
    classes = _shape(state, "roi_heads.box_predictor.cls_score.weight", path)[0]
    representation = _shape(state, "roi_heads.box_head.fc6.weight", path)[0]
    mask_layers = []
    while f"roi_heads.mask_head.{len(mask_layers)}.0.weight" in state:
        mask_layers.append(int(state[f"roi_heads.mask_head.{len(mask_layers)}.0.weight"].shape[0]))
    if not mask_layers:
        raise CheckpointError("the checkpoint lacks the weight 'roi_heads.mask_head.0.0.weight'", path)
    mask_dim = _shape(state, "roi_heads.mask_predictor.conv5_mask.weight", path)[1]
    config = MaskRCNNConfig(block=block, layers=tuple(blocks), stem_width=stem, fpn_channels=fpn,
                            num_classes=classes, representation=representation, mask_layers=tuple(mask_layers),
                            mask_dim=mask_dim)
    settings: dict[str, Any] = {}
    for section in ("transform", "thresholds"):
        values = meta.get(section) or {}
        if not isinstance(values, Mapping):
            raise CheckpointError(f"the metadata's '{section}' must be an object", path)
        settings.update(values)
    known = {"min_size", "max_size", "image_mean", "image_std", "box_score_threshold", "box_nms",
             "detections_per_image", "rpn_nms", "rpn_pre_nms_top_n", "rpn_post_nms_top_n"}
    unknown = sorted(set(settings) - known - {"display_threshold"})
    if unknown:
        raise CheckpointError(f"the metadata holds unknown Mask R-CNN settings: {unknown}", path)
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in settings.items() if k in known}
    try:
        return replace(config, **values)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the model's metadata holds invalid Mask R-CNN settings ({error})", path) from error
