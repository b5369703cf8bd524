"""The CNN encoder with attention on the seven MIAS classes (Krishnakumar et al. 2021) as a model family.

Each view is resized to 224 x 224 (the whole stored image: this family resizes, and its frame's affine
carries the resize back), scaled to [0, 1] by its maximum, replicated to three channels and normalised by
the ImageNet mean and standard deviation (``normalisation`` in the metadata). The network
(:mod:`inference.families.attention_cnn.model`) gives seven exclusive class probabilities and one attention map
(7 x 7), drawn in the viridis colour map over the breast, relative to its maximum (which the view's record
keeps).

MIAS classes are findings, not a malignancy score: the family declares no malignancy rule unless its
metadata does (``"malignancy": ["spiculated_mass", …]``), and without one it stays out of the exam decision
and the hybrid. Regions: none, unless the metadata sets ``regions.threshold``: the connected parts of the
attention map at or above it (relative to the map's maximum) become "attention region" boxes scored by
their peak.

Checkpoints: the project's own (``train --family attention-cnn``), recognised by their layout
(``encoder.0.weight`` … ``attention.*``, ``head.*``) or by ``family`` in the metadata.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from typing import Any

import cv2
import numpy as np
import torch

from inference.families.registry import register
from inference.families.protocol import Commands, Prepared
from inference.results.types import (HeatLayer, InputFrame, ModelIdentity, ModelViewOutput, ScoredRegion,
                                     scale_affine)
from inference.families.common import FastMode, has_keys, load_strict, numerics, runnable
from inference.errors import CheckpointError
from inference.families.attention_cnn.mias import CLASSES
from inference.families.attention_cnn.model import AttentionCNN, AttentionCNNConfig
from inference.families.nets.fold import fold_batchnorm
from inference.intake.views import View

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def model_input(image: np.ndarray, size: int = 224, mean: Sequence[float] = IMAGENET_MEAN,
                std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """(3, size, size) float32: the whole image resized (area averaging), scaled to [0, 1] by its maximum,
    grey replicated to three channels, normalised per channel. Training and inference both call this."""
    image = np.asarray(image, np.float32)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    high = float(resized.max())
    scaled = resized / high if high > 0 else resized
    mean = np.asarray(mean, np.float32)[:, None, None]
    std = np.asarray(std, np.float32)[:, None, None]
    return np.ascontiguousarray((scaled[None] - mean) / std, dtype=np.float32)


def _config(meta: Mapping[str, Any], state: Mapping[str, torch.Tensor], path: str) -> AttentionCNNConfig:
    values: dict[str, Any] = {}
    if "encoder.0.weight" in state:
        values["width"] = int(state["encoder.0.weight"].shape[0])
    if "head.4.weight" in state:
        values["num_classes"] = int(state["head.4.weight"].shape[0])
    if "head.1.weight" in state:
        values["head_hidden"] = int(state["head.1.weight"].shape[0])
    if any(k.startswith("attention.cell.") for k in state):
        values["attention"] = "gru"
        values["gru_hidden"] = int(state["attention.cell.weight_hh"].shape[1])
    known = {f.name for f in fields(AttentionCNNConfig)}
    values.update({k: v for k, v in meta.get("config", {}).items() if k in known})
    if "dropout" in values:
        values["dropout"] = tuple(values["dropout"])
    try:
        return AttentionCNNConfig(**values)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the model's metadata holds an invalid configuration ({error})", path) from error


def attention_regions(attention: np.ndarray, threshold: float) -> list[tuple[tuple[int, int, int, int], float]]:
    """((top, left, bottom, right) in map cells, peak) of each connected part of ``attention`` at or above
    ``threshold`` times its maximum, best first."""
    high = float(attention.max())
    if high <= 0:
        return []
    binary = (attention >= threshold * high).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    regions = []
    for index in range(1, count):
        x, y, w, h = (int(v) for v in stats[index, :4])
        regions.append(((y, x, y + h, x + w), float(attention[labels == index].max())))
    return sorted(regions, key=lambda item: -item[1])


class AttentionCNNFamily:
    name = "attention-cnn"
    preprocessing = "resize-224"
    commands = Commands(train_config="inference.families.attention_cnn.training:AttentionTrainConfig",
                        train="inference.families.attention_cnn.training:train_attention",
                        train_options={"encoder_weights": "encoder_weights"}, evaluation="classes",
                        evaluation_data="inference.families.attention_cnn.evaluation")
    fast = FastMode(fold_batchnorm)

    def recognises(self, state: Mapping[str, torch.Tensor]) -> bool:
        return has_keys(state, ("encoder.0.", "feature_bn.", "attention.", "head."))

    def build(self, state: Mapping[str, torch.Tensor], meta: Mapping[str, Any], path: str,
              options: Mapping[str, Any]) -> tuple[torch.nn.Module, dict[str, Any]]:
        config = _config(meta, state, path)
        model = load_strict(AttentionCNN(config), state, path, self.name)
        classes = tuple(meta.get("classes", CLASSES))
        if len(classes) != config.num_classes:
            raise CheckpointError(f"the metadata names {len(classes)} classes, the model has {config.num_classes}",
                                  path)
        normalisation = meta.get("normalisation", {})
        mean = [float(v) for v in normalisation.get("mean", IMAGENET_MEAN)]
        std = [float(v) for v in normalisation.get("std", IMAGENET_STD)]
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise CheckpointError("the metadata's normalisation needs three means and three positive deviations", path)
        threshold = (meta.get("regions") or {}).get("threshold")
        if threshold is not None and not 0 < float(threshold) <= 1:
            raise CheckpointError(f"the attention region threshold must be in (0, 1], not {threshold}", path)
        settings = {"mean": mean, "std": std, "input_size": config.input_size,
                    "region_threshold": None if threshold is None else float(threshold)}
        return model, {"classes": classes, "malignancy": tuple(meta.get("malignancy", ()) or ()), "exclusive": True,
                       "percent_t": None, "settings": settings}

    def prepare(self, model_image: np.ndarray, view: View, horizontal_flip: bool) -> Prepared:
        # the network sees the stored image as it is, resized; normalised in ``run`` by the model's own values
        image = np.asarray(model_image, np.float32)
        shape = tuple(int(s) for s in image.shape)
        frame = InputFrame(shape, np.eye(3), shape, {"resized_from": list(shape)})
        return Prepared(view, image, frame)

    def run(self, model: torch.nn.Module, batch: Sequence[Prepared], device: torch.device, mode: str,
            identity: ModelIdentity) -> list[ModelViewOutput]:
        settings = identity.settings
        size = int(settings["input_size"])
        module = runnable(model, device, mode, self.fast)
        x = torch.from_numpy(np.stack([model_input(p.input, size, settings["mean"], settings["std"]) for p in batch]))
        x = x.to(device).contiguous(memory_format=torch.channels_last)
        with numerics(device, mode):
            out = module(x)
        probabilities = torch.softmax(out.logits.float(), dim=1).cpu().numpy()
        attention = out.attention.float().cpu().numpy()[:, 0]
        return [self._output(probabilities[i], attention[i], prepared, identity, size)
                for i, prepared in enumerate(batch)]

    @staticmethod
    def _output(probabilities: np.ndarray, attention: np.ndarray, prepared: Prepared, identity: ModelIdentity,
                size: int) -> ModelViewOutput:
        rows, cols = prepared.frame.original_shape
        # the 224 x 224 input covers the whole image: one map cell is (rows / 7) x (cols / 7) stored pixels
        affine = scale_affine(rows / attention.shape[0], cols / attention.shape[1])
        # shown relative to its maximum (the GRU's weights sum to 1 over 49 cells; the maximum is in the record)
        shown = attention / attention.max() if attention.max() > 0 else attention
        layer = HeatLayer("attention", None, shown.astype(np.float32), affine, primary=True, smooth=True,
                          colormap="viridis")
        regions = []
        threshold = identity.settings.get("region_threshold")
        if threshold is not None:
            for rank, (box, peak) in enumerate(attention_regions(attention, threshold), start=1):
                top, left, bottom, right = box
                box_original = (top * affine[0, 0], left * affine[1, 1], bottom * affine[0, 0], right * affine[1, 1])
                regions.append(ScoredRegion(rank=rank, box_original=box_original, score=peak / float(attention.max()),
                                            kind="attention region"))
        named = {name: float(p) for name, p in zip(identity.classes, probabilities, strict=True)}
        frame = InputFrame((size, size), scale_affine(rows / size, cols / size), (rows, cols),
                           {**prepared.frame.record, "map_maximum": float(attention.max())})
        return ModelViewOutput(probabilities=named, layers=(layer,), regions=tuple(regions), extras={}, frame=frame)


def metadata(config: AttentionCNNConfig, **fields_: Any) -> dict[str, Any]:
    """A model.pt.json for an attention-CNN checkpoint (training writes it)."""
    return {"family": "attention-cnn", "classes": list(CLASSES), "config": asdict(config),
            "normalisation": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}, **fields_}


register(AttentionCNNFamily())
