"""Exam analysis: prepare each view, run every model, gather per-view, per-breast and exam results.

``analyze_exam`` is long work written as a plain function with ``progress(stage, done, total)`` and
``cancel() -> bool`` callbacks; the app wraps it in its one generic worker. Everything it returns is a frozen
dataclass of numpy arrays with coordinates in a named frame, so no caller touches a torch module.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import torch
import torch._dynamo.exc

from inference.models.fold import fold_batchnorm
from inference.models.gmic import GMIC, GMICOutput
from inference.preprocess import Mapping as FrameMapping
from inference.preprocess import PreparedView, prepare_view
from inference.views import Laterality, Projection, View
from inference.weights import LoadedModel, ModelIdentity

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
CancelCallback = Callable[[], bool]
CLASS_NAMES = ("benign", "malignant")


class Mode(StrEnum):
    """EXACT reproduces the reference numerics (fp32, no TF32); FAST trades ~1e-3 for speed."""

    EXACT = "exact"
    FAST = "fast"


class Cancelled(Exception):
    """The user cancelled; a normal outcome, not an error."""


@dataclass(frozen=True)
class Patch:
    """One retrieved region of interest.

    Attributes:
        rank: 1-based order of retrieval (1 = most salient).
        box_input: (top, left, bottom, right) in the model-input frame; bottom/right exclusive.
        box_original: the same box in the original image frame (float pixel edges; may extend past the
            image where the window was zero padded).
        attention: gated-attention weight (the K weights of a view sum to 1).
        pixels: (h, w) float32 patch as the model saw it (standardised, breast facing right).
    """

    rank: int
    box_input: tuple[int, int, int, int]
    box_original: tuple[float, float, float, float]
    attention: float
    pixels: np.ndarray


@dataclass(frozen=True)
class ModelViewResult:
    """One model's output on one view.

    Attributes:
        model: which checkpoint.
        y_fusion, y_global, y_local: (2,) probabilities (benign, malignant).
        saliency: (2, h, w) float32 class maps in the model-input frame.
        patches: the K patches.
    """

    model: ModelIdentity
    y_fusion: np.ndarray
    y_global: np.ndarray
    y_local: np.ndarray
    saliency: np.ndarray
    patches: tuple[Patch, ...]


@dataclass(frozen=True)
class ViewResult:
    """The analysis of one view; ensemble values are means over the models.

    Attributes:
        view: which view.
        probabilities: (2,) y_fusion (benign, malignant), mean over models: the model's answer.
        y_global, y_local: (2,) ensemble means of the auxiliary outputs.
        spread: (2,) standard deviation of y_fusion over models (0 for one model).
        saliency: (2, h, w) ensemble-mean class maps in the model-input frame; draw them through ``mapping``.
        mapping: model-input frame <-> original image frame of this view.
        per_model: each model's own output (patches differ between models).
        warnings: non-fatal oddities found while preparing the view.
    """

    view: View
    probabilities: np.ndarray
    y_global: np.ndarray
    y_local: np.ndarray
    spread: np.ndarray
    saliency: np.ndarray
    mapping: FrameMapping
    per_model: tuple[ModelViewResult, ...]
    warnings: tuple[str, ...] = ()

    @property
    def patches(self) -> tuple[Patch, ...]:
        """The patches of the first model (the one shown by default)."""
        return self.per_model[0].patches

    def saliency_in_original(self, class_index: int) -> np.ndarray:
        """Class map resampled onto the original image grid (NaN outside the model window)."""
        return self.mapping.map_to_original(self.saliency[class_index])


@dataclass(frozen=True)
class BreastResult:
    """Breast-level probabilities: the mean of the breast's CC and MLO view probabilities (GMIC paper)."""

    laterality: Laterality
    probabilities: np.ndarray
    views: tuple[View, ...]


@dataclass(frozen=True)
class Provenance:
    """What produced a result, for reports and reproducibility."""

    models: tuple[ModelIdentity, ...]
    device: str
    mode: Mode
    torch_version: str
    threads: int
    python: str = field(default_factory=platform.python_version)
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExamResult:
    """Everything the analysis of one exam produced. Coordinates the UI uses are in original frames.

    Attributes:
        views: per-view results.
        breasts: per-breast results (only breasts with at least one view).
        probabilities: (2,) exam level: the maximum over breasts.
        provenance: models, device, mode, versions, notices (e.g. a fallback to the CPU).
    """

    views: dict[View, ViewResult]
    breasts: dict[Laterality, BreastResult]
    probabilities: np.ndarray
    provenance: Provenance


def choose_device(requested: str | torch.device | None = None) -> tuple[torch.device, tuple[str, ...]]:
    """Resolve ``auto``/None/``cpu``/``cuda``: CUDA when present, else the CPU with a notice."""
    if requested is None or str(requested) == "auto":
        return (torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")), ()
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu"), ("CUDA was requested but no usable GPU was found; running on the CPU",)
    return device, ()


def fast_mode_numerics(device: torch.device) -> str:
    """The arithmetic of the fast mode on ``device``: ``bf16`` (autocast) on CUDA, ``fp32`` on the CPU."""
    return "bf16" if device.type == "cuda" else "fp32"


@contextlib.contextmanager
def numerics(device: torch.device, mode: Mode) -> Iterator[None]:
    """Inference mode, and on CUDA: TF32 off in exact mode, bf16 autocast in fast mode."""
    if device.type != "cuda":
        with torch.inference_mode():
            yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    exact = mode == Mode.EXACT
    torch.backends.cuda.matmul.allow_tf32 = not exact
    torch.backends.cudnn.allow_tf32 = not exact
    try:
        with torch.inference_mode(), (
            torch.autocast("cuda", dtype=torch.bfloat16) if not exact else contextlib.nullcontext()
        ):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


_FAST_MODELS: weakref.WeakKeyDictionary[GMIC, tuple[str, GMIC]] = weakref.WeakKeyDictionary()


def _compile(model: GMIC) -> GMIC:
    """Compile the two networks (the heavy part) with TorchInductor when it works here; else leave eager."""
    try:
        model.global_net = torch.compile(model.global_net, dynamic=False)
        model.local_net = torch.compile(model.local_net, dynamic=False)
    except (RuntimeError, ImportError) as error:  # no compiler tool chain, unsupported platform
        logger.info("torch.compile unavailable (%s); the fast mode runs eagerly", error)
    return model


def runnable_model(model: GMIC, device: torch.device, mode: Mode) -> GMIC:
    """The module to call for ``mode`` on ``device``: the model itself (exact), or a cached folded and
    compiled copy (fast). Channels-last memory format either way (faster on both the CPU and CUDA)."""
    model = model.to(device=device, memory_format=torch.channels_last).eval()
    if mode == Mode.EXACT:
        return model
    cached = _FAST_MODELS.get(model)
    if cached is None or cached[0] != str(device):
        fast = fold_batchnorm(model).to(device=device, memory_format=torch.channels_last)
        cached = (str(device), _compile(fast))
        _FAST_MODELS[model] = cached
    return cached[1]


def _forward(model: GMIC, x: torch.Tensor, device: torch.device, mode: Mode) -> GMICOutput:
    with numerics(device, mode):
        try:
            return model(x)
        except torch._dynamo.exc.BackendCompilerFailed as error:  # e.g. no C++ compiler on this machine
            logger.info("compiled fast path failed (%s); running eagerly", type(error).__name__)
            model.global_net = getattr(model.global_net, "_orig_mod", model.global_net)
            model.local_net = getattr(model.local_net, "_orig_mod", model.local_net)
            return model(x)


def _as_loaded(models: Sequence[LoadedModel | GMIC] | LoadedModel | GMIC) -> list[LoadedModel]:
    if isinstance(models, (LoadedModel, GMIC)):
        models = [models]
    loaded = []
    for index, model in enumerate(models):
        if isinstance(model, GMIC):
            identity = ModelIdentity(
                path="<in memory>", git_blob_sha1="", sha256="", published_name=None,
                percent_t=model.config.percent_t, label=f"model {index + 1}",
            )
            model = LoadedModel(model=model, identity=identity)
        loaded.append(model)
    if not loaded:
        raise ValueError("at least one model is needed")
    return loaded


def _views_of(views: object, horizontal_flip: bool | None) -> tuple[dict[View, np.ndarray], dict[View, bool]]:
    """Images and per-view "stored mirrored" flags from an ``Exam`` (anything with ``model_images()``) or a
    mapping of view -> 2-D array (all views sharing ``horizontal_flip``, default False)."""
    if hasattr(views, "model_images"):
        images = views.model_images()
        flips = views.horizontal_flips()
        if horizontal_flip is not None:
            flips = {v: horizontal_flip for v in images}
        return images, flips
    if not isinstance(views, Mapping) or not views:
        raise ValueError("views must be an Exam or a non-empty mapping of View to image array")
    images = {View.parse(key): np.asarray(image) for key, image in views.items()}
    return images, {v: bool(horizontal_flip) for v in images}


def _to_view_result(
    prepared: PreparedView, outputs: list[tuple[ModelIdentity, GMICOutput, int]]
) -> ViewResult:
    per_model = []
    for identity, out, i in outputs:
        crop_h, crop_w = out.patches.shape[-2:]
        patches = []
        for k in range(out.patch_locations.shape[1]):
            r, c = (int(v) for v in out.patch_locations[i, k])
            box = (r, c, r + int(crop_h), c + int(crop_w))
            patches.append(
                Patch(
                    rank=k + 1,
                    box_input=box,
                    box_original=prepared.mapping.box_to_original(box),
                    attention=float(out.patch_attention[i, k]),
                    pixels=out.patches[i, k].float().cpu().numpy(),
                )
            )
        per_model.append(
            ModelViewResult(
                model=identity,
                y_fusion=out.y_fusion[i].float().cpu().numpy(),
                y_global=out.y_global[i].float().cpu().numpy(),
                y_local=out.y_local[i].float().cpu().numpy(),
                saliency=out.saliency_map[i].float().cpu().numpy(),
                patches=tuple(patches),
            )
        )
    fusion = np.stack([m.y_fusion for m in per_model])
    return ViewResult(
        view=prepared.view,
        probabilities=fusion.mean(axis=0),
        y_global=np.stack([m.y_global for m in per_model]).mean(axis=0),
        y_local=np.stack([m.y_local for m in per_model]).mean(axis=0),
        spread=fusion.std(axis=0),
        saliency=np.stack([m.saliency for m in per_model]).mean(axis=0),
        mapping=prepared.mapping,
        per_model=tuple(per_model),
        warnings=prepared.warnings,
    )


def breast_results(views: Mapping[View, ViewResult]) -> dict[Laterality, BreastResult]:
    """Mean of the CC and MLO probabilities of each breast that has views."""
    breasts = {}
    for side in Laterality:
        present = [views[v] for v in (View.of(side, Projection.CC), View.of(side, Projection.MLO)) if v in views]
        if present:
            breasts[side] = BreastResult(
                laterality=side,
                probabilities=np.mean([r.probabilities for r in present], axis=0),
                views=tuple(r.view for r in present),
            )
    return breasts


def _run_models(
    models: list[LoadedModel],
    prepared: list[PreparedView],
    device: torch.device,
    mode: Mode,
    batch_size: int,
    progress: ProgressCallback,
    cancel: CancelCallback,
) -> dict[View, list[tuple[ModelIdentity, GMICOutput, int]]]:
    outputs: dict[View, list[tuple[ModelIdentity, GMICOutput, int]]] = {p.view: [] for p in prepared}
    batches = [prepared[i : i + batch_size] for i in range(0, len(prepared), batch_size)]
    total = len(models) * len(batches)
    done = 0
    for loaded in models:
        model = runnable_model(loaded.model, device, mode)
        for batch in batches:
            if cancel():
                raise Cancelled()
            names = ", ".join(p.view.value for p in batch)
            progress(f"model {loaded.identity.label}: {names}", done, total)
            x = torch.from_numpy(np.stack([p.input for p in batch]))[:, None]
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            out = _forward(model, x, device, mode)
            for i, p in enumerate(batch):
                outputs[p.view].append((loaded.identity, out, i))
            done += 1
    progress("models", total, total)
    return outputs


def analyze_exam(
    views: object,
    models: Sequence[LoadedModel | GMIC] | LoadedModel | GMIC,
    *,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
    mode: Mode | str = Mode.EXACT,
    horizontal_flip: bool | None = None,
    batch_size: int | None = None,
) -> ExamResult:
    """Analyse an exam with one model or an ensemble.

    Args:
        views: an ``Exam`` or a mapping ``{View: (H, W) array as stored}``.
        models: loaded checkpoints (see ``inference.weights.load_models``) or bare ``GMIC`` modules.
        device: ``auto`` (default), ``cpu`` or ``cuda``; CUDA falls back to the CPU when absent or out of
            memory, with a notice in ``provenance.notices``.
        progress: called as ``progress(stage, done, total)``.
        cancel: polled between stages; when it returns True, :class:`Cancelled` is raised.
        mode: ``exact`` (reference numerics) or ``fast``.
        horizontal_flip: the exam's "stored mirrored" flag; defaults to the exam's own, else False.
        batch_size: views per forward pass (default 1 on the CPU, where batching is no faster, 4 on CUDA).

    Returns:
        The :class:`ExamResult`.
    """
    progress = progress or (lambda stage, done, total: None)
    cancel = cancel or (lambda: False)
    images, flips = _views_of(views, horizontal_flip)
    loaded = _as_loaded(models)
    mode = Mode(mode)
    device, notices = choose_device(device)
    order = [v for v in View if v in images]

    if cancel():
        raise Cancelled()
    progress("preprocess", 0, len(order))
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        futures = {v: pool.submit(prepare_view, images[v], v, flips[v]) for v in order}
        prepared = []
        for i, v in enumerate(order):
            prepared.append(futures[v].result())
            progress(f"preprocess {v.value}", i + 1, len(order))

    size = batch_size or (4 if device.type == "cuda" else 1)
    try:
        outputs = _run_models(loaded, prepared, device, mode, size, progress, cancel)
    except torch.cuda.OutOfMemoryError:
        if device.type != "cuda":
            raise
        logger.warning("GPU out of memory; falling back to the CPU")
        torch.cuda.empty_cache()
        device = torch.device("cpu")
        notices += ("the GPU ran out of memory; the analysis ran on the CPU instead",)
        outputs = _run_models(loaded, prepared, device, mode, 1, progress, cancel)

    view_results = {p.view: _to_view_result(p, outputs[p.view]) for p in prepared}
    breasts = breast_results(view_results)
    exam_probabilities = np.max([b.probabilities for b in breasts.values()], axis=0)
    provenance = Provenance(
        models=tuple(m.identity for m in loaded),
        device=str(device),
        mode=mode,
        torch_version=torch.__version__,
        threads=torch.get_num_threads(),
        notices=notices,
    )
    return ExamResult(views=view_results, breasts=breasts, probabilities=exam_probabilities, provenance=provenance)
