"""Exam analysis: prepare each view once per preprocessing, run every model, gather per-view, per-breast and
exam results for every model group.

``analyze_exam`` is long work written as a plain function with ``progress(stage, done, total)`` and
``cancel() -> bool`` callbacks; the app wraps it in its one generic worker. Everything it returns is a frozen
dataclass of numpy arrays and plain values (see ``inference.families.protocol``), so no caller touches a torch
module, and nothing in it assumes a family: classes, layers and regions are whatever the models declared.

Several groups (``--models A B``) are analysed side by side; an ensemble (a folder) is the mean of its
members' probabilities and, where every member gives the same layer on the same grid, of their maps. An
ensemble's regions are those of its first member, and say so (``regions_from``).

Breasts: per class, the mean of the breast's CC and MLO probabilities (the GMIC paper). The exam decision
follows each model's declared malignancy rule: P(malignant) of a breast is the sum of the probabilities of
the classes the rule names, the exam's is the maximum over breasts. Views with an unresolved possible
laterality error (``Exam.laterality_conflicts``) are analysed and shown but not counted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from inference.families import registry
from inference.families.protocol import Prepared
from inference.finite_guard import not_finite_reason, run_guarded
from inference.results.types import ModelIdentity, ModelViewOutput
from inference.families.common import fast_mode_numerics, mode_numerics, model_fast_mode, numerics
from inference.devices import choose_device
from inference.errors import Cancelled
from inference.results.exam_result import (
    breast_results,
    entry_view,
    exam_decisions,
    ExamResult,
    joined_numerics,
    Mode,
    ModelEntry,
    no_result_notice,
    Provenance,
    uncounted_notice,
    ViewResult,
)
from inference.intake.views import View
from inference.weights import LoadedModel, ModelGroup, group_label

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
CancelCallback = Callable[[], bool]

__all__ = ["Cancelled", "PreparedExam", "analyze_exam", "as_groups", "choose_device", "fast_mode_numerics",
           "model_families", "model_numerics",
           "numerics", "prepare_exam", "run_prepared"]


def model_numerics(identity: ModelIdentity, device: str | torch.device | None, mode: Mode | str) -> str:
    """The arithmetic a model runs with in ``mode`` on ``device``: fp32 in the exact mode; in the fast mode
    bf16 where the device has it, unless the model's fast mode keeps float32 (Mask R-CNN's, unless its
    metadata declares ``fast_autocast``: ``model_fast_mode``)."""
    fast = model_fast_mode(registry.get(identity.family), identity.settings)
    return mode_numerics(choose_device(device)[0], Mode(mode).value, fast)


def warm_models(groups: Sequence[ModelGroup], device: str | torch.device | None, mode: str) -> None:
    """Make each model's copy for ``device`` and ``mode`` now (eval, channels-last; folded and converted in
    the fast mode: ``runnable``), so that the first analysis only runs them. Idempotent: the copies are
    cached per model, device and mode."""
    from inference.families.common import runnable  # noqa: PLC0415

    chosen, _notes = choose_device(device)
    for group in groups:
        for member in group.members:
            family = registry.get(member.identity.family)
            runnable(member.model, chosen, str(mode), getattr(family, "fast", None))


# ------------------------------------------------------------------------------------------------- inputs


def as_groups(models: object) -> list[ModelGroup]:
    """Normalise what callers pass: a LoadedModel, a ModelGroup, or a sequence of them; a nested sequence of
    LoadedModels is an ensemble. Each bare LoadedModel is its own entry."""
    if isinstance(models, (LoadedModel, ModelGroup)):
        models = [models]
    if not isinstance(models, Sequence) or not models:
        raise ValueError("at least one model is needed")
    taken: set[str] = set()
    groups = []
    for item in models:
        if isinstance(item, ModelGroup):
            group = item
        elif isinstance(item, LoadedModel):
            group = ModelGroup(item.identity.label, (item,), item.identity.label)
        elif isinstance(item, Sequence) and item and all(isinstance(m, LoadedModel) for m in item):
            group = ModelGroup(f"ensemble-{len(groups) + 1}", tuple(item), group_label(item))
        else:
            raise ValueError(f"not a model: {type(item).__name__}")
        unique, number = group.id, 2
        while unique in taken:
            unique, number = f"{group.id}-{number}", number + 1
        taken.add(unique)
        groups.append(group if unique == group.id else ModelGroup(unique, group.members, group.label))
    return groups


def _views_of(views: object, horizontal_flip: bool | None) -> tuple[dict[View, np.ndarray], dict[View, bool], dict[View, str]]:
    """Images, per-view "stored mirrored" flags and uncounted views from an ``Exam`` (anything with
    ``model_images()``) or a mapping of view -> 2-D array (all sharing ``horizontal_flip``, default False)."""
    if hasattr(views, "model_images"):
        images = views.model_images()
        flips = views.horizontal_flips()
        if horizontal_flip is not None:
            flips = {v: horizontal_flip for v in images}
        uncounted = {v: views.laterality_message(v) for v in getattr(views, "laterality_conflicts", ())}
        return images, flips, uncounted
    if not isinstance(views, Mapping) or not views:
        raise ValueError("views must be an Exam or a non-empty mapping of View to image array")
    images = {View.parse(key): np.asarray(image) for key, image in views.items()}
    return images, {v: bool(horizontal_flip) for v in images}, {}


def entry_of(group: ModelGroup) -> ModelEntry:
    identity = group.identity
    return ModelEntry(group.id, group.label, identity.family, identity.classes, identity.malignancy,
                      identity.exclusive, tuple(m.identity for m in group.members))


# ------------------------------------------------------------------------------------------------- running


def _prepare_all(families: Sequence[str], images: dict[View, np.ndarray], flips: dict[View, bool],
                 progress: ProgressCallback) -> dict[str, dict[View, Prepared]]:
    """Every view prepared once per preprocessing the families need (GMIC and GLAM share theirs)."""
    kinds: dict[str, object] = {}
    for name in families:
        family = registry.get(name)
        kinds.setdefault(family.preprocessing, family)
    order = [v for v in View if v in images]
    jobs = [(kind, view) for kind in kinds for view in order]
    progress("preprocess", 0, len(jobs))
    prepared: dict[str, dict[View, Prepared]] = {kind: {} for kind in kinds}
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        futures = {job: pool.submit(kinds[job[0]].prepare, images[job[1]], job[1], flips[job[1]]) for job in jobs}
        for done, job in enumerate(jobs, start=1):
            prepared[job[0]][job[1]] = futures[job].result()
            progress(f"preprocess {job[1].value}", done, len(jobs))
    return prepared


def _run_models(groups: list[ModelGroup], prepared: dict[str, dict[View, Prepared]], device: torch.device, mode: Mode,
                batch_size: int, progress: ProgressCallback, cancel: CancelCallback) -> dict[str, dict[View, list]]:
    outputs: dict[str, dict[View, list[ModelViewOutput]]] = {}
    work = []
    for group in groups:
        family = registry.get(group.identity.family)
        views = list(prepared[family.preprocessing].values())
        batches = [views[i: i + batch_size] for i in range(0, len(views), batch_size)]
        work += [(group, member, family, batch) for member in group.members for batch in batches]
        outputs[group.id] = {p.view: [] for p in views}
    for done, (group, member, family, batch) in enumerate(work):
        if cancel():
            raise Cancelled()
        names = ", ".join(p.view.value for p in batch)
        progress(f"model {member.identity.label}: {names}", done, len(work))
        ran = run_guarded(family, member.model, batch, device, mode.value, member.identity)
        for p, out in zip(batch, ran, strict=True):
            outputs[group.id][p.view].append(out)
    progress("models", len(work), len(work))
    return outputs


def _no_result(group: ModelGroup, outputs: Sequence[ModelViewOutput]) -> str:
    """Why ``group`` has no result on a view ("" when it has one): a member refused the view (an input it does
    not read), or its output is not finite (a NaN probability would otherwise become a confident 1.0 through
    the breast and exam rules)."""
    for member, output in zip(group.members, outputs, strict=True):
        who = f" {member.identity.label}" if len(group.members) > 1 else ""
        if output.refused:
            return f"the model{who} did not read it: {output.refused}"
        problem = not_finite_reason(output)
        if problem:
            return f"the model's output{' of' + who if who else ''} is not a finite number ({problem})"
    return ""


@dataclass(frozen=True)
class PreparedExam:
    """An exam's views ready for the networks: what :func:`prepare_exam` hands to :func:`run_prepared`.

    It holds no model and no torch state, so the two halves may run in different processes (the archive
    batch decodes and prepares on CPU workers and runs the models in actors that hold them).

    Attributes:
        prepared: preprocessing key -> view -> the prepared view.
        original_shapes: view -> (rows, cols) of the image as stored.
        uncounted: views analysed but not counted, with the reason (possible laterality errors).
        sources: view -> (file name, SOP Instance UID) of the image analysed (an ``Exam``'s; empty for arrays).
    """

    prepared: dict[str, dict[View, Prepared]]
    original_shapes: dict[View, tuple[int, int]]
    uncounted: dict[View, str]
    sources: dict[View, tuple[str, str]] = field(default_factory=dict)


def model_families(models: object) -> tuple[str, ...]:
    """The family names of ``models`` (anything :func:`as_groups` takes), each once, in order."""
    return tuple(dict.fromkeys(g.identity.family for g in as_groups(models)))


def prepare_exam(
    views: object,
    families: Sequence[str],
    *,
    progress: ProgressCallback | None = None,
    horizontal_flip: bool | None = None,
) -> PreparedExam:
    """Prepare every view once per preprocessing that ``families`` (family names, see
    :func:`model_families`) need; no network runs here, and no model is needed."""
    images, flips, uncounted = _views_of(views, horizontal_flip)
    prepared = _prepare_all(families, images, flips, progress or (lambda stage, done, total: None))
    shapes = {v: (int(images[v].shape[0]), int(images[v].shape[1])) for v in View if v in images}
    loaded = getattr(views, "views", None) if hasattr(views, "model_images") else None
    sources = {v: (Path(image.source).name, image.sop_instance_uid) for v, image in loaded.items()
               if v in images} if isinstance(loaded, Mapping) else {}
    return PreparedExam(prepared, shapes, uncounted, sources)


def analyze_exam(
    views: object,
    models: object,
    *,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
    mode: Mode | str = Mode.EXACT,
    horizontal_flip: bool | None = None,
    batch_size: int | None = None,
) -> ExamResult:
    """Analyse an exam with one or several models and ensembles.

    Args:
        views: an ``Exam`` or a mapping ``{View: (H, W) array as stored}``.
        models: a ``LoadedModel``, a ``ModelGroup`` (an ensemble), or a sequence of them (side by side; a
            nested sequence of LoadedModels is an ensemble). See ``inference.weights.load_model_groups``.
        device: ``auto`` (default), ``cpu`` or ``cuda``; CUDA falls back to the CPU when absent or out of
            memory, with a notice in ``provenance.notices``.
        progress: called as ``progress(stage, done, total)``.
        cancel: polled between stages; when it returns True, :class:`Cancelled` is raised.
        mode: ``exact`` (reference numerics) or ``fast``.
        horizontal_flip: the exam's "stored mirrored" flag; defaults to the exam's own, else False.
        batch_size: views per forward pass (default 1 on the CPU, where batching is no faster, 4 on CUDA).
    """
    cancel = cancel or (lambda: False)
    if cancel():
        raise Cancelled()
    if hasattr(views, "check_analyzable"):  # what is wrong with the exam is said before what is with the models
        views.check_analyzable()
    prepared = prepare_exam(views, model_families(models), progress=progress, horizontal_flip=horizontal_flip)
    return run_prepared(prepared, models, device=device, progress=progress, cancel=cancel, mode=mode,
                        batch_size=batch_size)


def run_prepared(
    exam: PreparedExam,
    models: object,
    *,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
    mode: Mode | str = Mode.EXACT,
    batch_size: int | None = None,
) -> ExamResult:
    """Run the models on a :class:`PreparedExam` and gather the per-view, per-breast and exam results
    (the arguments as in :func:`analyze_exam`; ``models`` must be those the exam was prepared for)."""
    progress = progress or (lambda stage, done, total: None)
    cancel = cancel or (lambda: False)
    groups = as_groups(models)
    mode = Mode(mode)
    device, notices = choose_device(device)
    prepared, uncounted = exam.prepared, exam.uncounted
    size = batch_size or (4 if device.type == "cuda" else 1)
    try:
        outputs = _run_models(groups, prepared, device, mode, size, progress, cancel)
    except torch.cuda.OutOfMemoryError:
        if device.type != "cuda":
            raise
        logger.warning("GPU out of memory; falling back to the CPU")
        torch.cuda.empty_cache()
        device = torch.device("cpu")
        notices += ("the GPU ran out of memory; the analysis ran on the CPU instead",)
        outputs = _run_models(groups, prepared, device, mode, 1, progress, cancel)

    entries = tuple(entry_of(g) for g in groups)
    view_results = {}
    for view, shape in exam.original_shapes.items():
        warnings = tuple(dict.fromkeys(w for kind in prepared.values() for w in kind[view].warnings))
        missing = {g.id: reason for g in groups if (reason := _no_result(g, outputs[g.id][view]))}
        view_results[view] = ViewResult(
            view=view, original_shape=shape,
            entries={g.id: entry_view(outputs[g.id][view], g.members[0].identity.label) for g in groups
                     if g.id not in missing},
            warnings=warnings, counted=view not in uncounted, uncounted_reason=uncounted.get(view, ""),
            no_result=missing, source_file=exam.sources.get(view, ("", ""))[0],
            sop_instance_uid=exam.sources.get(view, ("", ""))[1])
        for group in groups:
            if group.id in missing:
                logger.warning("%s: no result on %s (%s)", group.label, view.value, missing[group.id])
                notices += (no_result_notice(group.label, view, missing[group.id]),)
    notices += tuple(uncounted_notice(view, reason) for view, reason in uncounted.items())
    breasts = breast_results(view_results, entries)
    provenance = Provenance(
        models=tuple(m.identity for g in groups for m in g.members), device=str(device), mode=mode,
        torch_version=torch.__version__, threads=torch.get_num_threads(), notices=notices,
        numerics=joined_numerics(model_numerics(m.identity, device, mode) for g in groups for m in g.members))
    return ExamResult(entries, view_results, breasts, exam_decisions(breasts, entries), provenance)
