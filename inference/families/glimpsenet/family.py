"""GlimpseNet (Liu & Hang, Stanford CS231n) as a model family: three classes — benign without callback,
benign, malignant (CBIS-DDSM's pathologies); P(malignant) decides the exam.

Each view is cropped to the breast (GMIC's Stage-1 crop), mirrored to face right, resized to 512 x 512 and
scaled to [0, 1] for the FCGN, whose sigmoid saliency map is the view's heat layer (of no class, in viridis,
over the crop through the resize). The glimpses (:mod:`inference.families.glimpsenet.glimpses`: threshold, connected regions,
suppression, top K, fallback) are squared in the full-resolution crop, cut, resized to 299 x 299, scaled by
the crop's maximum, normalised (``normalisation`` in the metadata; Inception's own (x − 0.5) / 0.5 by
default) and replicated to three channels for the Inception-v3 classifier; its per-glimpse softmax is
pooled per class (Noisy-AND, top-k mean or log-sum-exp; ``glimpses.pooling``) and renormalised. Regions:
the glimpses, most salient first, scored by their own P(malignant), with their three probabilities.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from inference.families.registry import register
from inference.families.protocol import Commands, Prepared
from inference.results.types import HeatLayer, InputFrame, ModelIdentity, ModelViewOutput, ScoredRegion
from inference.results.types import map_box, scale_affine
from inference.families.common import FastMode, has_keys, load_strict, numerics, runnable
from inference.errors import CheckpointError
from inference.families.glimpsenet.glimpses import Glimpse, GlimpseSettings, glimpse_boxes, mil_pool, square_in_crop
from inference.families.nets.fold import fold_batchnorm
from inference.families.glimpsenet.model import GlimpseNet, GlimpseNetConfig
from inference.families.preprocess import Mapping as CropMapping
from inference.families.preprocess import crop_breast, needs_flip
from inference.intake.views import View

CLASSES = ("benign_without_callback", "benign", "malignant")
GLIMPSE_MEAN = (0.5, 0.5, 0.5)  # Inception-v3's own input scaling: (x - 0.5) / 0.5
GLIMPSE_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class GlimpsePrepared(Prepared):
    """The FCGN input (``input``), and the full-resolution crop the glimpses are cut from."""

    crop: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    crop_to_original: np.ndarray = field(default_factory=lambda: np.eye(3))


def prepare_glimpse_view(image: np.ndarray, view: View, horizontal_flip: bool = False,
                         size: int = 512) -> GlimpsePrepared:
    """Crop, face right, resize to ``size`` x ``size`` and scale to [0, 1] (training and inference both)."""
    image = np.asarray(image, np.float32)
    flipped = needs_flip(view, horizontal_flip)
    crop = crop_breast(image, faces_left=flipped)
    top, bottom, left, right = crop.window_location
    pixels = image[top:bottom, left:right]
    if flipped:
        pixels = pixels[:, ::-1]
    pixels = np.ascontiguousarray(pixels)
    mapping = CropMapping(tuple(image.shape), (top, left), pixels.shape, flipped, (0, 0), pixels.shape)
    crop_to_original = mapping.input_to_original_affine()
    small = fcgn_input(pixels, size)
    frame = InputFrame((size, size), crop_to_original @ scale_affine(pixels.shape[0] / size, pixels.shape[1] / size),
                       tuple(image.shape), {"crop_origin": [top, left], "crop_shape": list(pixels.shape),
                                            "flipped": flipped})
    return GlimpsePrepared(view, small, frame, (), pixels, crop_to_original)


def fcgn_input(crop: np.ndarray, size: int) -> np.ndarray:
    """(size, size) float32: the crop resized (area averaging) and scaled to [0, 1] by its maximum."""
    small = cv2.resize(np.ascontiguousarray(crop, np.float32), (size, size), interpolation=cv2.INTER_AREA)
    high = float(crop.max())
    return (small / high if high > 0 else small).astype(np.float32)


def cut_glimpse(crop: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """(size, size) float32: the square ``box`` of the crop resized, scaled by the crop's maximum."""
    top, left, bottom, right = box
    patch = crop[top:bottom, left:right]
    interpolation = cv2.INTER_AREA if patch.shape[0] > size else cv2.INTER_LINEAR
    patch = cv2.resize(np.ascontiguousarray(patch, np.float32), (size, size), interpolation=interpolation)
    high = float(crop.max())
    return (patch / high if high > 0 else patch).astype(np.float32)


def glimpse_input(glimpses: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(K, size, size) glimpses in [0, 1] -> (K, 3, size, size) normalised classifier input."""
    x = torch.from_numpy(np.ascontiguousarray(glimpses, np.float32))[:, None].expand(-1, 3, -1, -1)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def view_glimpses(prepared: GlimpsePrepared, saliency: np.ndarray,
                  settings: GlimpseSettings) -> tuple[np.ndarray, list[tuple[Glimpse, tuple[int, int, int, int]]]]:
    """((K, s, s) glimpses cut from the crop, [(glimpse on the map, its square box in the crop)]) of one view
    (training and inference both)."""
    scale = (prepared.crop.shape[0] / saliency.shape[0], prepared.crop.shape[1] / saliency.shape[1])
    boxes = [(g, square_in_crop(g.box, scale, prepared.crop.shape)) for g in glimpse_boxes(saliency, settings)]
    cut = np.stack([cut_glimpse(prepared.crop, crop_box, settings.glimpse_size) for _, crop_box in boxes])
    return cut, boxes


def _config(meta: Mapping[str, Any], state: Mapping[str, torch.Tensor], path: str) -> GlimpseNetConfig:
    values: dict[str, Any] = {}
    if "fcgn.encoder.0.0.0.weight" in state:
        values["fcgn_width"] = int(state["fcgn.encoder.0.0.0.weight"].shape[0])
    if "fcgn.context.0.weight" in state:
        values["context"] = int(state["fcgn.context.0.weight"].shape[0])
    if "classifier.fc.weight" in state:
        values["num_classes"] = int(state["classifier.fc.weight"].shape[0])
    known = {f.name for f in dataclasses.fields(GlimpseNetConfig)}
    values.update({k: v for k, v in meta.get("config", {}).items() if k in known})
    try:
        return GlimpseNetConfig(**values)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the model's metadata holds an invalid configuration ({error})", path) from error


class GlimpseNetFamily:
    name = "glimpsenet"
    preprocessing = "glimpsenet-crop-512"
    commands = Commands(train_config="inference.families.glimpsenet.training:GlimpseTrainConfig",
                        train="inference.families.glimpsenet.training:train_glimpsenet",
                        train_options={"folds": "folds", "encoder_weights": "classifier_weights"},
                        evaluation="classes", evaluation_data="inference.families.glimpsenet.evaluation")
    fast = FastMode(fold_batchnorm)

    def recognises(self, state: Mapping[str, torch.Tensor]) -> bool:
        return has_keys(state, ("fcgn.encoder.", "fcgn.context.", "classifier.Mixed_5b."))

    def build(self, state: Mapping[str, torch.Tensor], meta: Mapping[str, Any], path: str,
              options: Mapping[str, Any]) -> tuple[torch.nn.Module, dict[str, Any]]:
        config = _config(meta, state, path)
        model = load_strict(GlimpseNet(config), state, path, self.name)
        classes = tuple(meta.get("classes", CLASSES))
        if len(classes) != config.num_classes:
            raise CheckpointError(f"the metadata names {len(classes)} classes, the model has {config.num_classes}",
                                  path)
        known = {f.name for f in dataclasses.fields(GlimpseSettings)}
        try:
            settings = GlimpseSettings(**{k: v for k, v in (meta.get("glimpses") or {}).items() if k in known})
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"the model's glimpse settings are invalid ({error})", path) from error
        normalisation = meta.get("normalisation", {})
        mean = [float(v) for v in normalisation.get("mean", GLIMPSE_MEAN)]
        std = [float(v) for v in normalisation.get("std", GLIMPSE_STD)]
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise CheckpointError("the metadata's normalisation needs three means and three positive deviations", path)
        default_rule = ("malignant",) if "malignant" in classes else ()
        return model, {"classes": classes, "malignancy": tuple(meta.get("malignancy", default_rule) or ()),
                       "exclusive": True, "percent_t": None,
                       "settings": {**dataclasses.asdict(settings), "mean": mean, "std": std,
                                    "input_size": config.input_size}}

    def prepare(self, model_image: np.ndarray, view: View, horizontal_flip: bool) -> Prepared:
        return prepare_glimpse_view(model_image, view, horizontal_flip)

    def run(self, model: torch.nn.Module, batch: Sequence[Prepared], device: torch.device, mode: str,
            identity: ModelIdentity) -> list[ModelViewOutput]:
        known = {f.name for f in dataclasses.fields(GlimpseSettings)}
        settings = GlimpseSettings(**{k: v for k, v in identity.settings.items() if k in known})
        module = runnable(model, device, mode, self.fast)
        for prepared in batch:
            if not isinstance(prepared, GlimpsePrepared):
                raise TypeError("the glimpsenet family reads views prepared by its own preprocessing")
        size = int(identity.settings["input_size"])
        # views are prepared at 512 (the published size); a model with another input size resizes the crop
        inputs = [p.input if p.input.shape == (size, size) else fcgn_input(p.crop, size) for p in batch]
        x = torch.from_numpy(np.stack(inputs))[:, None].to(device)
        with numerics(device, mode):
            saliency = module.fcgn(x.contiguous(memory_format=torch.channels_last)).float().cpu().numpy()[:, 0]
            views = [view_glimpses(p, saliency[i], settings) for i, p in enumerate(batch)]
            glimpses = np.concatenate([g for g, _ in views])
            x = glimpse_input(glimpses, identity.settings["mean"], identity.settings["std"]).to(device)
            logits = module.classifier(x.contiguous(memory_format=torch.channels_last)).float()
            probabilities = torch.softmax(logits, dim=1).cpu()
        outputs, start = [], 0
        for i, (prepared, (cut, boxes)) in enumerate(zip(batch, views, strict=True)):
            p = probabilities[start: start + len(cut)]
            start += len(cut)
            outputs.append(self._output(prepared, saliency[i], cut, boxes, p, identity, settings))
        return outputs

    @staticmethod
    def _output(prepared: GlimpsePrepared, saliency: np.ndarray, cut: np.ndarray, boxes, probabilities: torch.Tensor,
                identity: ModelIdentity, settings: GlimpseSettings) -> ModelViewOutput:
        classes = identity.classes
        pooled = mil_pool(probabilities, settings).numpy()
        layer = HeatLayer("saliency", None, saliency.astype(np.float32), prepared.frame.layer_affine(saliency.shape),
                          primary=True, smooth=True, colormap="viridis")
        malignant = classes.index("malignant") if "malignant" in classes else int(np.argmax(pooled))
        in_input = scale_affine(prepared.input.shape[0] / prepared.crop.shape[0],
                                prepared.input.shape[1] / prepared.crop.shape[1])
        regions = []
        for rank, ((glimpse, crop_box), pixels, p) in enumerate(zip(boxes, cut, probabilities.numpy(), strict=True),
                                                               start=1):
            regions.append(ScoredRegion(
                rank=rank, box_original=map_box(prepared.crop_to_original, crop_box), score=float(p[malignant]),
                kind="glimpse", probabilities={c: float(v) for c, v in zip(classes, p, strict=True)},
                box_input=map_box(in_input, crop_box), size=(settings.glimpse_size, settings.glimpse_size),
                pixels=pixels))
        record = {**prepared.frame.record, "glimpses": len(boxes), "fallback": bool(boxes[0][0].fallback),
                  "pooling": settings.pooling}
        frame = dataclasses.replace(prepared.frame, record=record)
        glimpse_max = {c: float(v) for c, v in zip(classes, probabilities.numpy().max(axis=0), strict=True)}
        return ModelViewOutput(probabilities={c: float(v) for c, v in zip(classes, pooled, strict=True)},
                               layers=(layer,), regions=tuple(regions), extras={"glimpse maximum": glimpse_max},
                               frame=frame)


def metadata(config: GlimpseNetConfig, settings: GlimpseSettings, **fields_: Any) -> dict[str, Any]:
    """A model.pt.json for a GlimpseNet checkpoint (training writes it)."""
    return {"family": "glimpsenet", "classes": list(CLASSES), "malignancy": ["malignant"],
            "config": dataclasses.asdict(config), "glimpses": dataclasses.asdict(settings),
            "normalisation": {"mean": list(GLIMPSE_MEAN), "std": list(GLIMPSE_STD)}, **fields_}


register(GlimpseNetFamily())
