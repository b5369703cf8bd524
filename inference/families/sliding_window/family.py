"""The sliding-window patch classifier ("Second Look", Thatte et al.) as a model family.

Each view is read at native resolution: a tissue mask (Otsu, largest component) picks the windows that lie on
the breast; every 256 x 256 window (stride from the model's metadata: 0-75 % overlap) goes through a
four-class residual CNN (:mod:`inference.families.sliding_window.model`) whose logits are divided by the model's
calibration temperature before the softmax. The view's probability of a class is its maximum over the
windows ("one positive window flags the image"), so the four do not add up to 1 and are treated as
independent scores; the per-class heat layers average the overlapping windows (a count map divides, so the
edges are not darkened); the most suspicious windows are the regions ("window probability"), each sharing at
most a quarter of its area with a higher-ranked one, so that they are distinct places.

Metadata (``model.pt.json``): ``family: "sliding-window"``, ``classes``, ``config`` (window, width, stages,
blocks_per_stage), ``windows`` (``overlap`` 0-0.75, ``min_tissue``, ``top``) and ``calibration``
(``method: "temperature"``, ``temperature`` …; see ``python main.py calibrate``). Without a config the layout
is read off the weights.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from inference.families.registry import register
from inference.families.protocol import Commands, Prepared
from inference.results.types import (HeatLayer, InputFrame, ModelIdentity, ModelViewOutput, ScoredRegion,
                                     scale_affine)
from inference.families.common import FastMode, load_strict, numerics, runnable
from inference.errors import CheckpointError
from inference.families.nets.fold import fold_batchnorm
from inference.families.sliding_window.model import PatchClassifier, PatchClassifierConfig
from inference.evaluation.temperature import softmax, temperature_problem
from inference.finite_guard import not_finite_output
from inference.intake.views import View
from inference.training.labelled_images import background_class
from inference.families.sliding_window.windows import (
    TissueMask,
    WindowGrid,
    average_maps,
    cut_windows,
    mask_downsample,
    tissue_mask,
    top_windows,
    window_grid,
)

CLASSES = ("no_tumour", "benign_without_callback", "benign", "malignant")
BACKGROUND = ("no_tumour", "normal")
DEFAULT_OVERLAP = 0.5
DEFAULT_MIN_TISSUE = 0.25
DEFAULT_TOP = 5
MASK_CELL = 8  # pixels per tissue-mask cell (a divisor of the stride is used when 8 is not one)


@dataclass(frozen=True)
class WindowSettings:
    """How a view is cut into windows and read (part of the model's identity: it changes the numbers)."""

    window: int = 256
    overlap: float = DEFAULT_OVERLAP
    min_tissue: float = DEFAULT_MIN_TISSUE
    top: int = DEFAULT_TOP
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.overlap <= 0.75:
            raise ValueError(f"the window overlap must be between 0 and 0.75, not {self.overlap}")
        if self.window % self.stride:
            raise ValueError(f"an overlap of {self.overlap:g} does not give a stride that divides the "
                             f"{self.window}-pixel window")
        if not 0.0 <= self.min_tissue <= 1.0:
            raise ValueError(f"the minimum tissue fraction must be between 0 and 1, not {self.min_tissue}")
        if self.temperature <= 0 or not np.isfinite(self.temperature):
            raise ValueError(f"the calibration temperature must be positive, not {self.temperature}")
        if problem := temperature_problem(self.temperature):
            raise ValueError(f"{problem}; calibrate the model again (python main.py calibrate)")
        if self.top < 1:
            raise ValueError("at least one top window must be shown")

    @property
    def stride(self) -> int:
        return max(1, round(self.window * (1.0 - self.overlap)))


# ------------------------------------------------------------------------------------------------- input


@dataclass(frozen=True)
class WindowPrepared(Prepared):
    """A view standardised over its breast, with the breast's tissue mask."""

    tissue: TissueMask | None = None
    background: float = 0.0  # the standardised value of an empty pixel (fills windows past the image)


def standardise(image: np.ndarray, mask: TissueMask) -> tuple[np.ndarray, float, float]:
    """(image standardised by the mean and standard deviation of its breast pixels, mean, std). Training and
    inference both call this: the windows a model learnt from and the ones it reads are scaled alike."""
    image = np.asarray(image, np.float32)
    pixels = image[mask.full()] if mask.cells.any() else image.ravel()
    mean = float(pixels.mean()) if pixels.size else 0.0
    std = float(pixels.std()) if pixels.size else 1.0
    std = std if std > 1e-6 else 1.0
    return (image - mean) / std, mean, std


def prepare_windows(model_image: np.ndarray, view: View | None) -> WindowPrepared:
    """The standardised image, its tissue mask and a frame that is the stored image itself."""
    image = np.asarray(model_image, np.float32)
    name = view.value if view is not None else "the image"
    if image.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D image, got shape {image.shape}")
    mask = tissue_mask(image, MASK_CELL)
    warnings = () if mask.cells.any() else (
        f"{name}: the tissue mask found no breast; every window of the view is read",)
    standardised, mean, std = standardise(image, mask)
    shape = tuple(int(s) for s in image.shape)
    record = {"tissue_fraction": round(mask.fraction, 4), "standardisation": {"mean": mean, "std": std}}
    frame = InputFrame(shape, np.eye(3), shape, record)
    return WindowPrepared(view, standardised, frame, warnings, mask, (0.0 - mean) / std)


# ------------------------------------------------------------------------------------------------- model


def _config_from(meta: Mapping[str, Any], state: Mapping[str, torch.Tensor], path: str) -> PatchClassifierConfig:
    """The classifier's layout: the metadata's ``config``, the rest read off the weights."""
    values: dict[str, Any] = {}
    if "stem.0.weight" in state:
        values["width"] = int(state["stem.0.weight"].shape[0])
    stages = {int(m.group(1)) for k in state if (m := re.match(r"stages\.(\d+)\.", k))}
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"stages\.0\.(\d+)\.", k))}
    if stages:
        values["stages"] = max(stages) + 1
    if blocks:
        values["blocks_per_stage"] = max(blocks) + 1
    if "classifier.weight" in state:
        values["num_classes"] = int(state["classifier.weight"].shape[0])
    known = {f.name for f in dataclasses.fields(PatchClassifierConfig)}
    values.update({k: v for k, v in meta.get("config", {}).items() if k in known})
    try:
        return PatchClassifierConfig(**values)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the model's metadata holds an invalid configuration ({error})", path) from error


def settings_from(meta: Mapping[str, Any], config: PatchClassifierConfig, overrides: Mapping[str, Any],
                  path: str) -> WindowSettings:
    windows = {**meta.get("windows", {}), **{k: v for k, v in overrides.items() if v is not None}}
    calibration = meta.get("calibration") or {}
    try:
        temperature = float(calibration.get("temperature", 1.0)) if calibration.get("method") == "temperature" else 1.0
        if overrides.get("temperature") is not None:  # calibrate reads the model as it is before any temperature
            temperature = float(overrides["temperature"])
        return WindowSettings(window=config.window, overlap=float(windows.get("overlap", DEFAULT_OVERLAP)),
                              min_tissue=float(windows.get("min_tissue", DEFAULT_MIN_TISSUE)),
                              top=int(windows.get("top", DEFAULT_TOP)), temperature=temperature)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the model's window settings are invalid ({error})", path) from error


def window_batch_size(device: torch.device, window: int, width: int) -> int:
    """Windows per forward pass: 32 on the CPU (larger batches are no faster there); on CUDA as many as a
    third of the free memory holds (the stem's activations dominate), between 32 and 1024."""
    if device.type != "cuda":
        return 32
    free, _ = torch.cuda.mem_get_info(device)
    per_window = 4 * window * window * width * 3  # bytes: a few stem-sized fp32 activations per window
    return int(np.clip(free // 3 // per_window, 32, 1024))


def window_logits(module: torch.nn.Module, image: np.ndarray, origins: np.ndarray, window: int, fill: float,
                  device: torch.device, batch_size: int) -> np.ndarray:
    """(M, K) float32 logits of the windows of a standardised ``image`` at ``origins``, cut one batch at a
    time (700 windows of 256 x 256 would hold 180 MB at once); the caller sets the numerics."""
    out = []
    for start in range(0, len(origins), batch_size):
        windows = cut_windows(image, origins[start: start + batch_size], window, fill)
        x = torch.from_numpy(windows)[:, None].to(device).contiguous(memory_format=torch.channels_last)
        out.append(module(x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, module.config.num_classes), np.float32)


@dataclass(frozen=True)
class WindowRead:
    """What the classifier made of one view's windows (before the temperature)."""

    grid: WindowGrid
    mask: TissueMask
    logits: np.ndarray  # (M, K)
    fallback: bool  # True when no window reached the tissue fraction and every window was read


def read_view(module: torch.nn.Module, prepared: WindowPrepared, device: torch.device, mode: str,
              settings: WindowSettings, batch_size: int) -> WindowRead:
    """The tissue windows of a prepared view through the classifier (inference, evaluation, calibration)."""
    mask = prepared.tissue
    cell = mask_downsample(settings.stride, MASK_CELL)
    if mask is None or mask.downsample != cell:
        mask = tissue_mask(prepared.input, cell)
    grid = window_grid(mask, settings.window, settings.stride, settings.min_tissue)
    fallback = len(grid.origins) == 0
    if fallback:  # no breast found: read every window rather than nothing
        grid = window_grid(mask, settings.window, settings.stride, 0.0)
    with numerics(device, mode):
        logits = window_logits(module, prepared.input, grid.origins, settings.window, prepared.background, device,
                               batch_size)
    return WindowRead(grid, mask, logits, fallback)


class SlidingWindowFamily:
    name = "sliding-window"
    preprocessing = "native-windows"  # tissue mask and standardisation at native resolution
    commands = Commands(train_config="inference.families.sliding_window.training:WindowTrainConfig",
                        train="inference.families.sliding_window.training:train_windows",
                        train_options={"val_data": "val_data"}, evaluation="windows", temperature_calibration=True)
    fast = FastMode(fold_batchnorm)

    def recognises(self, state: Mapping[str, torch.Tensor]) -> bool:
        stem = state.get("stem.0.weight")
        return stem is not None and stem.ndim == 4 and stem.shape[1] == 1 and "classifier.weight" in state and any(
            k.startswith("stages.") for k in state)

    def build(self, state: Mapping[str, torch.Tensor], meta: Mapping[str, Any], path: str,
              options: Mapping[str, Any]) -> tuple[torch.nn.Module, dict[str, Any]]:
        config = _config_from(meta, state, path)
        model = load_strict(PatchClassifier(config), state, path, self.name)
        classes = tuple(meta.get("classes", CLASSES))
        if len(classes) != config.num_classes:
            raise CheckpointError(f"the metadata names {len(classes)} classes, the model has {config.num_classes}",
                                  path)
        settings = settings_from(meta, config, options.get("overrides") or {}, path)
        malignancy = tuple(meta.get("malignancy", ("malignant",) if "malignant" in classes else ()) or ())
        return model, {"classes": classes, "malignancy": malignancy, "exclusive": False, "percent_t": None,
                       "settings": dataclasses.asdict(settings)}

    def prepare(self, model_image: np.ndarray, view: View, horizontal_flip: bool) -> Prepared:
        # windows are read where they lie: no flip, no crop, the input frame is the stored image
        return prepare_windows(model_image, view)

    def run(self, model: torch.nn.Module, batch: Sequence[Prepared], device: torch.device, mode: str,
            identity: ModelIdentity) -> list[ModelViewOutput]:
        settings = WindowSettings(**identity.settings)
        module = runnable(model, device, mode, self.fast)
        size = window_batch_size(device, settings.window, module.config.width)
        outputs = []
        for prepared in batch:
            if not isinstance(prepared, WindowPrepared) or prepared.tissue is None:
                raise TypeError("the sliding-window family reads views prepared by its own preprocessing")
            outputs.append(self._view(module, prepared, device, mode, identity, settings, size))
        return outputs

    def _view(self, module: torch.nn.Module, prepared: WindowPrepared, device: torch.device, mode: str,
              identity: ModelIdentity, settings: WindowSettings, batch_size: int) -> ModelViewOutput:
        classes = identity.classes
        read = read_view(module, prepared, device, mode, settings, batch_size)
        grid, mask, logits, fallback = read.grid, read.mask, read.logits, read.fallback
        if not np.isfinite(logits).all():  # the softmax (numpy's, outside the torch guard) made -inf a sure 0
            return not_finite_output(prepared.frame, classes, "a window's logits")
        probabilities = softmax(logits, settings.temperature)
        maps, count = average_maps(probabilities, grid)
        image = probabilities.max(axis=0)
        named = {name: float(v) for name, v in zip(classes, image, strict=True)}
        affine = scale_affine(grid.stride, grid.stride)
        # the background class's map (high all over the breast) is a layer to choose, not a main map
        layers = [HeatLayer("window average", name, maps[k], affine, primary=name not in BACKGROUND)
                  for k, name in enumerate(classes)]
        d = mask.downsample
        layers.append(HeatLayer("tissue mask", None, mask.cells.astype(np.float32), scale_affine(d, d),
                                primary=False, smooth=False))
        malignant = [classes.index(c) for c in identity.malignancy]
        suspicion = probabilities[:, malignant].sum(axis=1) if malignant else \
            1.0 - probabilities[:, background_class(classes)]
        top = top_windows(suspicion, settings.top, grid.origins, settings.window)
        pixels = cut_windows(prepared.input, grid.origins[top], settings.window, prepared.background)
        regions = []
        for rank, (index, window) in enumerate(zip(top, pixels, strict=True), start=1):
            r, c = (int(v) for v in grid.origins[index])
            box = (float(r), float(c), float(r + settings.window), float(c + settings.window))
            regions.append(ScoredRegion(
                rank=rank, box_original=box, score=float(min(1.0, suspicion[index])), kind="window probability",
                probabilities={name: float(p) for name, p in zip(classes, probabilities[index], strict=True)},
                box_input=box, size=(settings.window, settings.window), pixels=window))
        record = {**prepared.frame.record, "window": grid.window, "stride": grid.stride,
                  "min_tissue": settings.min_tissue, "windows": int(len(grid.origins)), "skipped": grid.skipped,
                  "covered_cells": int((count > 0).sum()), "tissue_fallback": fallback,
                  "temperature": settings.temperature}
        frame = dataclasses.replace(prepared.frame, record=record)
        mean = probabilities.mean(axis=0) if len(probabilities) else np.zeros(len(classes))
        extras = {"window_mean": {name: float(v) for name, v in zip(classes, mean, strict=True)}}
        return ModelViewOutput(probabilities=named, layers=tuple(layers), regions=tuple(regions), extras=extras,
                               frame=frame)


register(SlidingWindowFamily())
