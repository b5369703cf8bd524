"""The results of an analysis, as plain frozen dataclasses (no torch): what the UI, reports and the store see.

``inference.pipeline`` produces them; importing this module costs nothing, so the workstation's window can
appear before torch is imported.
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from inference.results.types import HeatLayer, InputFrame, ModelIdentity, ModelViewOutput, ScoredRegion
from inference.intake.views import Laterality, Projection, View

__all__ = ["BreastResult", "BreastScores", "EntryViewResult", "ExamDecision", "ExamResult", "Mode", "ModelEntry",
           "Provenance", "ViewResult", "breast_results", "entry_view", "exam_decisions", "joined_numerics",
           "no_result_notice", "non_finite", "shown_notices", "uncounted_notice", "views_without_result",
           "without_result"]


class Mode(StrEnum):
    """EXACT reproduces the reference numerics (fp32, no TF32); FAST trades ~1e-3 for speed."""

    EXACT = "exact"
    FAST = "fast"


@dataclass(frozen=True)
class ModelEntry:
    """One entry of an analysis: a model or an ensemble (``ModelGroup``), by what it declares."""

    id: str
    label: str
    family: str
    classes: tuple[str, ...]
    malignancy: tuple[str, ...]
    exclusive: bool
    members: tuple[ModelIdentity, ...]

    @property
    def has_malignancy(self) -> bool:
        return bool(self.malignancy)

    @property
    def malignancy_is_a_class(self) -> bool:
        """True when P(malignant) is one class's own probability (GMIC, GLAM): no extra column needed."""
        return len(self.malignancy) == 1

    def malignant(self, probabilities: Mapping[str, float]) -> float | None:
        """P(malignant) by the declared rule, or None for a family that has no malignancy score."""
        if not self.malignancy:
            return None
        return float(min(1.0, sum(probabilities[c] for c in self.malignancy)))


@dataclass(frozen=True)
class EntryViewResult:
    """One entry's answer on one view.

    Attributes:
        probabilities: class -> probability (the mean over an ensemble's members).
        spread: class -> standard deviation over the members (0 for one model).
        layers: heat layers (ensemble means where the members' layers share a grid).
        regions: scored regions (of ``regions_from``'s member for an ensemble).
        extras: named family outputs (means), e.g. GMIC's y_global, y_local.
        members: every member's own output.
        regions_from: the member whose regions are shown ("" for a single model).
        frame: the model input of this view (for the first member).
    """

    probabilities: Mapping[str, float]
    spread: Mapping[str, float]
    layers: tuple[HeatLayer, ...]
    regions: tuple[ScoredRegion, ...]
    extras: Mapping[str, Mapping[str, float]]
    members: tuple[ModelViewOutput, ...]
    regions_from: str
    frame: InputFrame

    def layer(self, class_name: str | None, name: str | None = None) -> HeatLayer | None:
        """The primary layer of a class (or the one called ``name``)."""
        for layer in self.layers:
            if layer.class_name == class_name and (layer.name == name if name else layer.primary):
                return layer
        return None


@dataclass(frozen=True)
class ViewResult:
    """The analysis of one view.

    Attributes:
        view: which view.
        original_shape: (rows, cols) of the image as stored.
        entries: entry id -> that entry's result.
        warnings: non-fatal oddities found while preparing the view.
        counted: False when the view is shown but left out of breast and exam scores (``uncounted_reason``).
        no_result: entry id -> why that entry has no result on this view (its output was not finite, or the model
            refused the view: ``ModelViewOutput.refused``); such an entry is absent from ``entries`` and the view is
            left out of that entry's breast and exam scores.
        source_file: the name (no folder) of the file the view was analysed from; with ``sop_instance_uid`` (empty
            for a PNG) what tells, after the fact, which of an exam's images (a retake, a view kept aside) the
            figures are of. Empty in results stored before these were recorded.
    """

    view: View
    original_shape: tuple[int, int]
    entries: Mapping[str, EntryViewResult]
    warnings: tuple[str, ...] = ()
    counted: bool = True
    uncounted_reason: str = ""
    no_result: Mapping[str, str] = field(default_factory=dict)
    source_file: str = ""
    sop_instance_uid: str = ""

    def result(self, entry_id: str) -> EntryViewResult | None:
        """The entry's result on this view, or None when it has none (see ``no_result``)."""
        return self.entries.get(entry_id)


@dataclass(frozen=True)
class BreastScores:
    """One entry's scores of one breast.

    Attributes:
        views: the views the scores were computed from; one view when the other is missing, unreadable,
            not counted or without a result (every renderer marks that, see ``one_view_note``).
    """

    probabilities: Mapping[str, float]
    malignant: float | None
    views: tuple[View, ...] = ()

    @property
    def one_view_note(self) -> str:
        """"(MLO only)" / "(CC only)" when the scores come from one view, else ""."""
        return f"({self.views[0].projection.value} only)" if len(self.views) == 1 else ""


@dataclass(frozen=True)
class BreastResult:
    """Breast level: per entry the per-class mean of the breast's counted CC and MLO views."""

    laterality: Laterality
    views: tuple[View, ...]
    entries: Mapping[str, BreastScores]


@dataclass(frozen=True)
class ExamDecision:
    """Exam level for one entry.

    Attributes:
        malignant: the maximum over breasts of P(malignant), or None (no malignancy rule, or no breast).
        breast: the breast that decides.
        probabilities: for independent (sigmoid) classes the per-class maximum over breasts; for exclusive
            (softmax) classes the deciding breast's own probabilities (a per-class maximum would mix
            breasts, and a "normal" class maximum says nothing).
    """

    malignant: float | None
    breast: Laterality | None
    probabilities: Mapping[str, float]


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
    numerics: str = "fp32"


@dataclass(frozen=True)
class ExamResult:
    """Everything the analysis of one exam produced. Coordinates are in the original image frames.

    Attributes:
        entries: the analysed models and ensembles, in the order given.
        views: per-view results.
        breasts: per-breast results (breasts with at least one counted view).
        exam: entry id -> the exam-level decision.
        provenance: models, device, mode, versions, notices (e.g. a fallback to the CPU).
    """

    entries: tuple[ModelEntry, ...]
    views: dict[View, ViewResult]
    breasts: dict[Laterality, BreastResult]
    exam: dict[str, ExamDecision]
    provenance: Provenance

    def one_breast_note(self, entry_id: str) -> str:
        """"(left breast only)" / "(right breast only)" when the entry's exam score comes from one breast, the
        other not imaged, not counted or without a result (an exam score read as both breasts' would mislead:
        a reviewer's one-view exam was reported "Exam < 0.1 %"), else ""."""
        scored = [side for side, breast in self.breasts.items() if entry_id in breast.entries]
        if len(scored) != 1:
            return ""
        return f"({'left' if scored[0] == Laterality.LEFT else 'right'} breast only)"

    def entry(self, entry_id: str | None = None) -> ModelEntry:
        """The entry called ``entry_id`` (default: the first)."""
        if entry_id is None:
            return self.entries[0]
        return next(e for e in self.entries if e.id == entry_id)


# ------------------------------------------------------------------------------------------------- gathering


def _mean(dicts: Sequence[Mapping[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    keys = list(dicts[0])
    values = np.array([[d[k] for k in keys] for d in dicts], dtype=np.float64)
    return dict(zip(keys, values.mean(axis=0).tolist(), strict=True)), dict(zip(keys, values.std(axis=0).tolist(),
                                                                             strict=True))


def _ensemble_layers(members: Sequence[ModelViewOutput]) -> tuple[HeatLayer, ...]:
    """Each layer of the first member, averaged over the members that give it on the same grid; a layer some
    member gives differently is the first member's own, named so."""
    first, out = members[0], []
    for layer in first.layers:
        same = [next((l for l in m.layers if l.name == layer.name and l.class_name == layer.class_name
                      and l.values.shape == layer.values.shape and np.allclose(l.to_original, layer.to_original)),
                     None) for m in members]
        if all(s is not None for s in same):
            values = np.mean([s.values for s in same], axis=0).astype(np.float32)
            out.append(dataclasses.replace(layer, values=values))
        else:
            out.append(dataclasses.replace(layer, name=f"{layer.name} (first model only)"))
    return tuple(out)


def entry_view(outputs: Sequence[ModelViewOutput], first_label: str) -> EntryViewResult:
    """One entry's view result from its members' outputs (``first_label``: the first member's name)."""
    probabilities, spread = _mean([o.probabilities for o in outputs])
    extras = {name: _mean([o.extras[name] for o in outputs])[0] for name in outputs[0].extras
              if all(name in o.extras for o in outputs)}
    several = len(outputs) > 1
    source = first_label if several else ""
    # replace() keeps every field (instance masks too) and only names the member
    regions = tuple(dataclasses.replace(r, source=source) for r in outputs[0].regions) if several \
        else outputs[0].regions
    return EntryViewResult(probabilities, spread, _ensemble_layers(outputs) if several else outputs[0].layers,
                           regions, extras, tuple(outputs), source, outputs[0].frame)


def joined_numerics(values: Iterable[str]) -> str:
    """The arithmetic of several models or parts as one name: ``fp32``, ``bf16``, or ``bf16, fp32`` when both
    ran (one spelling, whatever the order of the models)."""
    return ", ".join(sorted({part for value in values for part in value.split(", ") if part}))


def no_result_notice(label: str, view: View, reason: str) -> str:
    """The provenance notice of an entry without a result on a view (one wording wherever a result is built)."""
    return (f"{label} has no result on {view.value}, which is left out of its breast and exam scores: "
            f"{reason}")


def _views_said(views: Sequence[View]) -> str:
    names = [view.value for view in views]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def without_result(result: ExamResult) -> list[tuple[str, tuple[View, ...], str]]:
    """(entry label, views, reason) of each entry without a result on views, one per entry and reason: a model
    that refuses a whole exam is said once, naming its views."""
    groups: dict[tuple[str, str], list[View]] = {}
    for entry in result.entries:
        for view, view_result in result.views.items():
            reason = view_result.no_result.get(entry.id)
            if reason is not None:
                groups.setdefault((entry.label, reason), []).append(view)
    return [(label, tuple(views), reason) for (label, reason), views in groups.items()]


def views_without_result(result: ExamResult) -> list[str]:
    """One line per entry and reason without a result ("<model> has no result on L-CC and R-CC: <why>"): what
    ``analyze`` prints and the batch records as an exam's partial result."""
    return [f"{label} has no result on {_views_said(views)}: {reason}"
            for label, views, reason in without_result(result)]


def shown_notices(result: ExamResult) -> list[str]:
    """The provenance notices as a person reads them: an entry without a result on several views for one
    reason is said once, naming the views (a model that refuses a whole exam filled the panel with the same
    paragraph four times). The stored notices stay one per view (the store splits a result by entry with them).
    Then each view's own warnings from its preparation (they were kept in the result and shown nowhere)."""
    grouped = {no_result_notice(label, view, reason): (label, views, reason)
               for label, views, reason in without_result(result) for view in views}
    shown, said = [], set()
    for notice in result.provenance.notices:
        group = grouped.get(notice)
        if group is None:
            shown.append(notice)
        elif group not in said:
            said.add(group)
            label, views, reason = group
            shown.append(notice if len(views) == 1 else f"{label} has no result on {_views_said(views)}, which are "
                         f"left out of their breast and exam scores: {reason}")
    for view, view_result in result.views.items():  # what the preparation found (part of a breast not analysed, …)
        shown += [f"{view.value}: {warning}" for warning in view_result.warnings]
    return shown


def uncounted_notice(view: View, reason: str) -> str:
    """The provenance notice of a view that is analysed but not counted (a possible laterality error)."""
    return f"{view.value} is not counted in the breast and exam scores: {reason}"


def non_finite(output: ModelViewOutput) -> str:
    """What of a model's output on a view is not a finite number ("" when all is): such an output is no
    result, never a probability (min/max/sum would turn a NaN into a confident 0 or 1)."""
    problems = [f"probability of {name}" for name, value in output.probabilities.items() if not np.isfinite(value)]
    problems += [f"{group} {name}" for group, values in output.extras.items() for name, value in values.items()
                 if not np.isfinite(value)]
    problems += [f"region {r.rank} score" for r in output.regions
                 if not np.isfinite(r.score) or not all(np.isfinite(v) for v in (r.probabilities or {}).values())]
    problems += [f"map {layer.name}" for layer in output.layers if not np.isfinite(layer.values).all()]
    return ", ".join(problems)


def breast_results(views: Mapping[View, ViewResult], entries: Sequence[ModelEntry]) -> dict[Laterality, BreastResult]:
    """Per breast with counted views and per entry: the per-class mean of its CC and MLO probabilities, over
    the views where the entry has a result (an entry with none on a breast has no scores there)."""
    breasts = {}
    for side in Laterality:
        present = [views[v] for v in (View.of(side, Projection.CC), View.of(side, Projection.MLO))
                   if v in views and views[v].counted]
        scores = {}
        for entry in entries:
            used = [r for r in present if entry.id in r.entries]
            if not used:
                continue
            mean, _ = _mean([r.entries[entry.id].probabilities for r in used])
            scores[entry.id] = BreastScores(mean, entry.malignant(mean), tuple(r.view for r in used))
        if scores:
            breasts[side] = BreastResult(side, tuple(r.view for r in present), scores)
    return breasts


def exam_decisions(breasts: Mapping[Laterality, BreastResult], entries: Sequence[ModelEntry]) -> dict[str, ExamDecision]:
    decisions = {}
    for entry in entries:
        scored = [(b.entries[entry.id], side) for side, b in breasts.items() if entry.id in b.entries]
        if not scored:
            decisions[entry.id] = ExamDecision(None, None, {})
            continue
        if entry.has_malignancy:
            best, side = max(scored, key=lambda item: item[0].malignant)
        else:
            best, side = scored[0][0], None
        if entry.exclusive:
            probabilities = dict(best.probabilities)
        else:
            probabilities = {c: max(s.probabilities[c] for s, _ in scored) for c in entry.classes}
        decisions[entry.id] = ExamDecision(best.malignant if entry.has_malignancy else None, side, probabilities)
    return decisions
