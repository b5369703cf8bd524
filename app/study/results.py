"""A study's results for the coordinator: AUCs with CIs, ORH comparisons, operating points, telemetry."""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from app.study.analysis import (
    NotEstimable,
    ORHResult,
    delong,
    orh,
    roc_points,
    single_modality,
    zero_variance_reason,
)
from app.study.recall import RecallRow, recall_note, recall_rows
from app.study.store import Store
from app.study.errors import StudyError
from app.study.exchange import write_imrmc, write_tidy_csv
from app.study.records import (
    PLAIN_SUFFIX,
    analysis_records,
    hybrid_bases,
    model_exclusions,
    stored_calibrations,
    study_models,
    telemetry,
    unusable_calibration_notes,
)
from app.study.records import model_names as names_of
from app.study.design import reader_as_stored
from app.study.sessions import reader_progress
from inference.files import write_bytes_atomic
from inference.numbers import VAST_DDF, VAST_DDF_CAUTION, df_cell, df_text, finite_number, p_text
from inference.spreadsheet_cells import text_dict_writer, text_writer


READER_MEAN = "reader mean"  # the reader of a reader-averaged row (its CI: ORH, random readers and cases)


@dataclass(frozen=True)
class AucRow:
    reader: str  # a reader's name, "(model)", or READER_MEAN
    modality: str
    auc: float
    ci_low: float
    ci_high: float
    n_positive: int
    n_negative: int


@dataclass(frozen=True)
class OperatingPoint:
    name: str
    threshold: float
    sensitivity: float
    specificity: float


@dataclass(frozen=True)
class UnestimableComparison:
    """A comparison "first vs second" that the data cannot test (one reader, one kind of truth, no variance):
    the reader-mean AUCs when they exist, and why."""

    first: str
    second: str
    method: str
    reason: str
    reader_mean: dict[str, float]

    @property
    def difference(self) -> float | None:
        if self.first in self.reader_mean and self.second in self.reader_mean:
            return self.reader_mean[self.first] - self.reader_mean[self.second]
        return None


Comparison = ORHResult | UnestimableComparison


def comparison_means(result: Comparison) -> str:
    """``"aided 0.912, unaided 0.870: aided − unaided = +0.0420"``: every number with its name."""
    first, second = result.first, result.second
    if result.difference is None:
        return f"{first} − {second}: no AUCs"
    return (f"{first} {result.reader_mean[first]:.3f}, {second} {result.reader_mean[second]:.3f}: "
            f"{first} − {second} = {result.difference:+.4f}")


def comparison_test(result: Comparison) -> str:
    """The random-reader random-case test, or ``"not estimable: <why>"``."""
    if isinstance(result, UnestimableComparison):
        return f"not estimable: {result.reason}"
    return (f"F {result.F:.3f}  ddf {df_text(result.ddf)}  p {p_text(result.p)}  "
            f"95 % CI {result.ci[0]:+.4f} – {result.ci[1]:+.4f};  p (fixed readers) "
            f"{_variant_p(result.fixed_readers)}, p (fixed cases) {_variant_p(result.fixed_cases)}")


def comparison_caution(result: Comparison) -> str:
    """What to keep in mind beside a comparison's test ("" when nothing): an arm whose AUCs have no case
    variance (every score tied, or every unit separated) leaves the test resting on the other arm alone, however
    small its p (a coordinator's review: "p 0.0082" beside a model listed "0.500, no CI", 2 cancers, 4 others)."""
    if isinstance(result, UnestimableComparison):
        return ""
    cautions = []
    flat = [str(name) for name, estimate in result.single.items() if not estimate.se > 0]
    if flat:
        cautions.append(f"{' and '.join(flat)} {'has' if len(flat) == 1 else 'have'} no case variance (tied or fully "
                        "separated scores): the test rests on the other arm alone; read it with the AUCs' intervals")
    if result.ci[0] < -1 or result.ci[1] > 1:  # a coordinator's finding: "95 % CI −1.2013 – −0.3115", unexplained
        cautions.append("its interval passes ±1, past what a difference of AUCs can be: the normal approximation "
                        "does not hold with so few units; the interval is as the ORH analysis gives it, not clipped")
    if result.ddf >= VAST_DDF:  # a review: the most liberal form of the test, on an MS(T×R) of (about) 0
        cautions.append(VAST_DDF_CAUTION.format(measure="AUC", ddf=df_text(result.ddf)))
    return "; ".join(cautions)


def _variant_p(test) -> str:
    """A generalisation's p-value (fixed readers, or fixed cases), or why it has none."""
    return p_text(test.p) if test.estimable else f"not estimable ({test.reason})"


@dataclass(frozen=True)
class StudyResults:
    level: str
    records: list[dict]
    aucs: list[AucRow]
    comparisons: dict[str, Comparison]  # "A vs B": every difference is A − B
    model_points: list[OperatingPoint]
    telemetry: list[dict]
    excluded: list[tuple[str, str]] = ()  # units without a model score (left out of model and hybrid analyses)
    cautions: tuple[str, ...] = ()  # an unfinished or too small study: what the numbers cannot say
    localisation: object | None = None  # a study with lesions: its FROC / wAFROC curves (LocalisationCurves)
    hybrids: dict[str, str] = field(default_factory=dict)  # each hybrid's name -> its basis in words
    study: str = ""  # the study's name, for the screen's and the figures' titles
    method: str = "jackknife"  # the ORH covariance estimate (jackknife or DeLong)
    # each reading modality's reader mean with its own single-modality ORH interval, computed with the results
    # (off the GUI thread); ``reader_averages`` uses it for a modality no comparison holds
    own_averages: dict[str, AucRow] = field(default_factory=dict)
    recalls: list[RecallRow] = field(default_factory=list)  # the readers' BI-RADS decisions (none: no category)
    created: str = ""  # when the study was created (UTC, ISO 8601): with the name, which study this is

    def identity(self) -> str:
        """The study as the notes file names it: two databases may each hold a study of one name (a folder of the
        first one's results kept its exam-level files beside the second one's)."""
        return f"{self.study} (created {self.created})" if self.created else self.study

    def notes(self) -> list[str]:
        """Everything the coordinator must know before reading the numbers (each hybrid's basis among them)."""
        bases = [f"{name}: {basis.removeprefix('hybrid: ')}" for name, basis in self.hybrids.items()]
        return list(self.cautions) + ([self.exclusion_note()] if self.excluded else []) + bases

    def comparison_cautions(self) -> list[str]:
        """Each comparison's caution (:func:`comparison_caution`), named by the comparison; the screens say each
        under its comparison's line, the files in the notes and in ``orh_<level>.csv``."""
        return [f"{name}: {caution}" for name, r in self.comparisons.items() if (caution := comparison_caution(r))]

    def exclusion_note(self) -> str:
        """One line for the coordinator, e.g. "2 breast units left out of the model and hybrid analyses ..."."""
        if not self.excluded:
            return ""
        reasons: dict[str, list[str]] = {}
        for unit, reason in self.excluded:
            reasons.setdefault(reason, []).append(unit)
        unit_name = "breast unit" if self.level == "breast" else "exam"
        parts = [f"{reason}: {', '.join(units[:6])}{' …' if len(units) > 6 else ''}" for reason, units in reasons.items()]
        if len(reasons) > 1:  # each reason's own count
            parts = [f"{len(units)} ({part})" for part, units in zip(parts, reasons.values())]
        count = len(self.excluded)
        return (f"{count} {unit_name}{'s' if count != 1 else ''} left out of the model and hybrid analyses: "
                + "; ".join(parts))

    def reader_averages(self) -> list[AucRow]:
        """Each reading modality's AUC averaged over the readers, with its 95 % CI from the ORH random-reader
        random-case analysis (the figures a study reports first), taken from the first comparison holding it
        and clipped to [0, 1] as the readers' DeLong intervals are (the ORH analysis itself, like RJafroc, does
        not clip); the models' rows are their own (in ``aucs``)."""
        rows: dict[str, AucRow] = {}
        for comparison in self.comparisons.values():
            single = getattr(comparison, "single", {})  # none where the comparison is not estimable: no CI
            for modality, mean in comparison.reader_mean.items():
                if modality in rows or str(modality).startswith("model"):
                    continue
                low, high = single[modality].ci if modality in single else (float("nan"), float("nan"))
                if low == high:  # no variance (every reader's AUC 1.0): no CI, as each reader's row says
                    low = high = float("nan")
                ci = (max(0.0, low), min(1.0, high)) if low == low else (low, high)  # clipped, as DeLong's are
                # the units the comparison's AUC was computed on (both of its modalities scored them)
                pair = (comparison.first, comparison.second)
                common = _common_cases([r for r in self.records if r["modality"] in pair], pair)
                units = {r["case"]: r["truth"] for r in common if r["modality"] == modality}
                positives = sum(1 for truth in units.values() if truth == 1)
                rows[modality] = AucRow(READER_MEAN, modality, mean, *ci, positives, len(units) - positives)
        for modality, row in self.own_averages.items():  # held by no comparison (an unaided-only study had none)
            rows.setdefault(modality, row)
        return list(rows.values())

    def recall_notes(self) -> list[str]:
        """The BI-RADS recall table's rule and what it left out (none without the table)."""
        return [recall_note(self.recalls, self.level)] if self.recalls else []

    def telemetry_summary(self) -> dict[str, int]:
        moves = self.telemetry
        return {
            "aided reads (per breast)": len(moves),
            "changed after seeing the AI": sum(m["changed"] for m in moves),
            "moved toward the AI": sum(m["toward_ai"] for m in moves),
            "correct -> incorrect where the AI was wrong": sum(m["flip_to_incorrect_ai_wrong"] for m in moves),
            "incorrect -> correct": sum(m["flip_to_correct"] for m in moves),
        }


def reader_scores(records: list[dict], modality: str, reader: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One modality's scores and truths, of one reader or (reader None) of all."""
    rows = [r for r in records if r["modality"] == modality and (reader is None or r["reader"] == reader)]
    return np.array([r["score"] for r in rows], float), np.array([r["truth"] for r in rows], int)


def unit_clusters(records: list[dict], modality: str, reader: str | None = None) -> list | None:
    """The cluster (the case of a breast-level unit) of each of :func:`reader_scores`' units, in its order (of
    :func:`model_units`' for a model); None when the records are units of their own (exam level)."""
    if modality.startswith("model"):
        units = {r["case"]: r.get("cluster") for r in records
                 if r["modality"].startswith("model") and model_name(r["modality"]) == model_name(modality)}
        clusters = [units[case] for case in sorted(units)]
    else:
        clusters = [r.get("cluster") for r in records
                    if r["modality"] == modality and (reader is None or r["reader"] == reader)]
    return None if any(c is None for c in clusters) else clusters


def model_units(records: list[dict], name: str) -> tuple[np.ndarray, np.ndarray]:
    """A model's scores and truths, once per unit that any reader's records hold (a model's score does not
    depend on who read the case: the first reader's cases alone would leave out what only others read)."""
    units = {r["case"]: (r["score"], r["truth"]) for r in records
             if r["modality"].startswith("model") and model_name(r["modality"]) == name}
    ordered = [units[case] for case in sorted(units)]
    return np.array([s for s, _ in ordered], float), np.array([t for _, t in ordered], int)


def model_name(modality: str) -> str:
    """``model`` or ``model [id]`` from a record modality such as ``model [glam] (vs unaided)``."""
    return modality.split(" (vs ", 1)[0]


def model_operating_points(scores: np.ndarray, truth: np.ndarray) -> list[OperatingPoint]:
    """Sensitivity and specificity of the model at 0.5 and at the Youden-optimal threshold, where one threshold
    separates better than chance (a model at AUC 0.23 was given an "optimum" calling everyone: Youden index 0)."""
    fpr, tpr, thresholds = roc_points(scores, truth)
    youden = np.where(np.isfinite(thresholds), tpr - fpr, -np.inf)  # the "nobody is called" point has no threshold
    best = int(np.argmax(youden))
    points = [("threshold 0.5", 0.5)]
    if youden[best] > 0:
        points.append(("Youden optimum", float(min(thresholds[best], 1.0))))
    return points_at(scores, truth, points)


def declared_points(store: Store, study_id: int) -> dict[str, list[tuple[str, float]]]:
    """Each model's operating points as its card declares them (name, threshold), by its name in the analysis."""
    models = [m for m in study_models(store, study_id) if m["malignancy"]]
    calibrations = stored_calibrations(store, study_id)
    out: dict[str, list[tuple[str, float]]] = {}
    for model_id, name in names_of(models).items():
        kind, record = calibrations.get(model_id, ("", {}))
        for point in (record.get("operating_points") or []) if kind == "card" else []:
            threshold = point.get("threshold") if isinstance(point, dict) else None
            if finite_number(threshold):
                out.setdefault(name, []).append((f"declared: {point.get('name') or 'operating point'}",
                                                 float(threshold)))
    return out


def points_at(scores: np.ndarray, truth: np.ndarray, thresholds: list[tuple[str, float]]) -> list[OperatingPoint]:
    """Sensitivity and specificity on this study's units at given (name, threshold)s: how the operating point a
    model's card declares (measured elsewhere) does here."""
    out = []
    for name, threshold in thresholds:
        decided = scores >= threshold
        sensitivity = float(decided[truth == 1].mean()) if (truth == 1).any() else float("nan")
        specificity = float((~decided[truth == 0]).mean()) if (truth == 0).any() else float("nan")
        out.append(OperatingPoint(name, threshold, sensitivity, specificity))
    return out


def study_results(store: Store, study_id: int, level: str = "breast", method: str = "jackknife",
                  readers: Sequence[str] | None = None) -> StudyResults:
    """The study's results; ``readers`` (default: all) limits them to those readers, e.g. interim results without
    a reader who is part-way (the ORH comparisons need every reader to have read every case)."""
    records = analysis_records(store, study_id, level)
    left_out: list[str] = []
    chosen = None if readers is None else set(readers)
    if readers is not None:
        if not chosen:
            raise StudyError("name at least one reader")
        known = {row["reader"] for row in reader_progress(store, study_id)}
        readers = [reader_as_stored(name, sorted(known)) for name in readers]  # whichever Unicode form was typed
        chosen = set(readers)
        unknown = [name for name in readers if name not in known]
        if unknown:
            raise StudyError(f"no reader {', '.join(map(repr, unknown))} in this study (its readers: "
                             f"{', '.join(sorted(known))})")
        left_out = sorted(known - set(readers))
        records = [r for r in records if r["reader"] in chosen]
    if not records:
        raise StudyError("no committed reads yet: the results need at least one finished reading")
    modalities = sorted({r["modality"] for r in records})
    readers = sorted({r["reader"] for r in records})
    model_names = sorted({model_name(m) for m in modalities if m.startswith("model")})
    aucs = []
    one_class = []  # (who, modality, positives, negatives): read, but no AUC yet
    one_case: set[tuple[str, str]] = set()  # (reader, modality): no variance, one case holding a class's breasts
    models_seen: set[str] = set()
    for modality in modalities:
        is_model = modality.startswith("model")
        if is_model and model_name(modality) in models_seen:
            continue  # a model's scores are the same beside every reader and modality: one row (or note) per model
        if is_model:
            models_seen.add(model_name(modality))
        for reader in [None] if is_model else readers:
            scores, truth = model_units(records, model_name(modality)) if is_model else reader_scores(records, modality, reader)
            if scores.size and 0 < truth.sum() < truth.size:
                # a woman's two breasts are no two women's: the variance of clustered units (Obuchowski 1997)
                e = delong(scores, truth, unit_clusters(records, modality, reader))
                # wholly separated classes: DeLong's variance is 0 and its interval a point, no CI
                low, high = e.ci if e.variance > 0 else (float("nan"), float("nan"))
                if not np.isfinite(e.variance):  # every diseased (or non-diseased) breast in one case
                    one_case.add((reader or "", model_name(modality) if is_model else modality))
                aucs.append(AucRow("(model)" if is_model else reader, model_name(modality) if is_model else modality,
                                   e.auc, low, high, int(truth.sum()), int((truth == 0).sum())))
            elif scores.size:
                one_class.append(("the model" if is_model else f"reader {reader}",
                                  model_name(modality) if is_model else modality, int(truth.sum()),
                                  int((truth == 0).sum())))
    comparisons: dict[str, ORHResult] = {}
    pairs: list[tuple[str, str]] = []
    base = "unaided" if "unaided" in modalities else ("concurrent" if "concurrent" in modalities else None)
    if base is not None and len(readers) >= 2:
        pairs = []
        for aided in ("aided", "concurrent"):  # sequential; crossover (AI-concurrent vs unaided readings)
            if aided in modalities and base == "unaided":
                pairs.append((aided, "unaided"))
        # readers compared with each model, and each model's hybrid (and plain mean): the unaided reads' first,
        # then the aided reads' (a hybrid of aided reads is drawn; its comparison is the aided readers')
        read = [base] + [m for m in ("aided", "concurrent") if m != base and m in modalities]
        for modality in read:
            for name in model_names:
                hybrid_name = name.replace('model', 'hybrid', 1)
                pairs.append((f"{name} (vs {modality})", modality))
                for hybrid_modality in (f"{hybrid_name} ({modality})", f"{hybrid_name}{PLAIN_SUFFIX} ({modality})"):
                    if hybrid_modality in modalities:  # not computed (an unusable calibration): no comparison due
                        pairs.append((hybrid_modality, modality))
        for first, second in pairs:
            rows = _common_cases([r for r in records if r["modality"] in (first, second)], (first, second))
            try:
                comparisons[f"{first} vs {second}"] = orh(rows, method, compare=(first, second))
            except NotEstimable as reason:
                comparisons[f"{first} vs {second}"] = UnestimableComparison(first, second, method, reason.reason,
                                                                            reason.reader_mean)
            except ValueError:
                continue  # not fully crossed yet (a reader has not finished)
    points = []
    declared = declared_points(store, study_id)
    for name in model_names:
        scores, truth = model_units(records, name)
        if 0 < truth.sum() < truth.size:
            for point in [*model_operating_points(scores, truth), *points_at(scores, truth, declared.get(name, []))]:
                label = point.name if len(model_names) == 1 else f"{name}: {point.name}"
                points.append(OperatingPoint(label, point.threshold, point.sensitivity, point.specificity))
    expected = len(pairs) if base is not None and len(readers) >= 2 else 0
    cautions = _cautions(store, study_id, aucs, readers, comparisons, expected, one_class, chosen, one_case, level)
    if left_out:
        cautions = (f"readers left out on request: {', '.join(left_out)}",) + cautions
    cautions += tuple(unusable_calibration_notes(store, study_id))
    from app.study.froc_results import localisation_curves  # noqa: PLC0415  (it imports this module)

    try:
        curves = localisation_curves(store, study_id, chosen)
    except (StudyError, NotEstimable) as reason:  # the ROC results stand; the curves say why they are missing
        curves = None
        cautions += (f"FROC / wAFROC curves not drawn: {reason}",)
    moves = [m for m in telemetry(store, study_id) if chosen is None or m["reader"] in chosen]
    name = store.read("SELECT name, created_at FROM studies WHERE study_id=?", (study_id,))
    held = {modality for comparison in comparisons.values() for modality in comparison.reader_mean}
    own = {modality: row for modality in dict.fromkeys(r["modality"] for r in records)
           if modality not in held and not str(modality).startswith("model")
           and (row := own_average(records, modality, method)) is not None}
    return StudyResults(level, records, aucs, comparisons, points, moves,
                        model_exclusions(store, study_id, level), cautions, curves, hybrid_bases(store, study_id),
                        name[0][0] if name else "", method, own, recall_rows(store, study_id, level, chosen),
                        _utc(name[0][1]) if name else "")


def _utc(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="milliseconds")


def own_average(records: list[dict], modality: str, method: str) -> AucRow | None:
    """The modality's reader mean with its own ORH interval (None for one reader, for reads not fully crossed
    (a reader part-way), or units of one kind only; "no CI" where the interval cannot be estimated)."""
    records = [r for r in records if r["modality"] == modality]
    if len({r["reader"] for r in records}) < 2:  # one reader's AUC is in its own row
        return None
    units = {r["case"]: r["truth"] for r in records}
    positives = sum(1 for truth in units.values() if truth == 1)
    try:
        estimate = single_modality(records, method)
        low, high = estimate.ci if estimate.ci[0] != estimate.ci[1] else (float("nan"), float("nan"))
        mean = estimate.auc
    except NotEstimable as reason:
        if not reason.reader_mean:  # units of one kind: no AUC at all (a study of normal cases only)
            return None
        mean, low, high = next(iter(reason.reader_mean.values())), float("nan"), float("nan")
    except ValueError:
        return None
    ci = (max(0.0, low), min(1.0, high)) if low == low else (low, high)
    return AucRow(READER_MEAN, modality, mean, *ci, positives, len(units) - positives)


MIN_UNITS = 10  # per class: below this an AUC's confidence interval is too wide to mean much


def _cautions(store: Store, study_id: int, aucs: list[AucRow], readers: list[str], comparisons: dict,
              expected: int, one_class: list[tuple[str, str, int, int]] = (),
              chosen: set[str] | None = None, one_case: set[tuple[str, str]] = frozenset(),
              level: str = "breast") -> tuple[str, ...]:
    out = []
    if one_class:  # said, or an empty table reads as a fault
        parts = [f"{who} {modality} ({positives} positive{'s' if positives != 1 else ''}, {negatives} "
                 f"negative{'s' if negatives != 1 else ''})" for who, modality, positives, negatives in one_class]
        from app.study.cases import study_cases  # noqa: PLC0415

        kinds = {case.positive for case in study_cases(store, study_id).values() if not case.training}
        # no cancer in any case: never a positive unit, not "not yet"; a cancer in every case: never a negative exam
        never = "positive" if kinds == {False} else "negative" if kinds == {True} and level == "exam" else ""
        out.append(("no AUC for " if never else "no AUC yet for ") + "; ".join(parts[:6])
                   + (" …" if len(parts) > 6 else "") + ": an AUC needs at least one positive and one negative unit "
                   + (f"read, and the study's cases hold no {never} one" if never else "read"))
    progress = [row for row in reader_progress(store, study_id) if chosen is None or row["reader"] in chosen]
    unfinished = [f"{row['reader']} {row['done']} of {row['total']}" + (f" (session {row['session']})"
                                                                       if row["sessions"] > 1 else "")
                  for row in progress if row["done"] < row["total"]]
    if unfinished:
        # each modality's AUC is over what has been read in it so far (a crossover's arms, the model's over every
        # case read): side by side they rest on different cases (a coordinator's finding)
        out.append("the study is not finished (readings done: " + ", ".join(unfinished) + "); results are interim, "
                   "and each AUC is over the units read in its modality so far, so AUCs side by side may rest on "
                   "different cases (see n)")
    small = [row for row in aucs if min(row.n_positive, row.n_negative) < MIN_UNITS]
    if small:
        fewest = min(min(row.n_positive, row.n_negative) for row in small)
        out.append(f"too small for firm conclusions: as few as {fewest} unit(s) of a class behind an AUC "
                   f"(at least {MIN_UNITS} positives and {MIN_UNITS} negatives are needed for a usable interval)")
    no_ci = [row for row in aucs if np.isnan(row.ci_low)]
    if any(min(row.n_positive, row.n_negative) < 2 for row in no_ci):
        out.append("some AUCs have no confidence interval: DeLong's variance needs at least two positive and two "
                   "negative units")
    def in_one_case(row: AucRow) -> bool:
        return ("" if row.reader == "(model)" else row.reader, row.modality) in one_case

    if any(in_one_case(row) and min(row.n_positive, row.n_negative) >= 2 for row in no_ci):
        out.append("some AUCs have no confidence interval: every positive (or every negative) breast behind them is "
                   "one case's, and a woman's two breasts count as one sampling unit")
    for reason in sorted({zero_variance_reason(row.auc) for row in no_ci if min(row.n_positive, row.n_negative) >= 2
                          and row.reader != READER_MEAN and not in_one_case(row)}):
        out.append(f"some AUCs have no confidence interval: {reason}, and DeLong's variance is 0 there")
    read_nothing = [name for name in dict.fromkeys(row["reader"] for row in progress) if name not in readers]
    if read_nothing:  # named: "need at least two readers" in a study of two read as a fault
        out.append(f"left out until they have read: {', '.join(read_nothing)} (no read yet)")
    if len(readers) < 2:
        out.append("the multi-reader (ORH) comparisons need at least two readers with reads")
    elif len(comparisons) < expected:
        out.append(f"{expected - len(comparisons)} of {expected} ORH comparisons are not computed yet: every reader "
                   "must have read every case in both modalities")
    return tuple(out)


def _common_cases(rows: list[dict], modalities: tuple[str, str]) -> list[dict]:
    """The rows of the units that both modalities scored (the model has no score for a breast without
    images, so its comparison with the readers runs on the units it scored)."""
    cases = [{r["case"] for r in rows if r["modality"] == m} for m in modalities]
    common = cases[0] & cases[1]
    return [r for r in rows if r["case"] in common]


def roc_png_written(results: StudyResults, path: Path) -> bool:
    """``roc_LEVEL.png``: the curves the results screen draws (none: no curve to draw, no file)."""
    from app.study.roc_curves import roc_png  # noqa: PLC0415  (it imports this module)

    figure = roc_png(results.records, results.level, results.study)
    if figure is None:
        return False
    write_bytes_atomic(path, figure)
    return True


RECALL_MEASURES = ("recall_rate", "sensitivity", "specificity", "ppv")


def write_recalls(rows: list[RecallRow], path: Path) -> None:
    """The readers' BI-RADS decisions, one row per reader and modality: counts, the four proportions and their
    Wilson 95 % intervals (empty cells where a proportion has no units, or for the pooled row's intervals)."""
    counts = [*RecallRow.__dataclass_fields__, "true_negatives"]
    measures = [f"{m}{part}" for m in RECALL_MEASURES for part in ("", "_ci_low", "_ci_high")]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = text_dict_writer(handle, fieldnames=[*counts, *measures])
        writer.writeheader()
        for row in rows:
            intervals = row.intervals()
            values = {}
            for m in RECALL_MEASURES:
                values[m] = getattr(row, m)
                values[f"{m}_ci_low"], values[f"{m}_ci_high"] = intervals[m]
            writer.writerow(_cells({**asdict(row), "true_negatives": row.negatives - row.false_positives, **values}))


def _cells(row: dict) -> dict:
    """A CSV row with an empty cell for a number that is not there (never "nan")."""
    return {key: "" if isinstance(value, float) and not np.isfinite(value) else value for key, value in row.items()}


def result_files(level: str) -> tuple[str, ...]:
    """The names ``write_results`` may write at ``level`` (the study's telemetry and hybrid bases at either)."""
    return (f"aucs_{level}.csv", f"reader_averages_{level}.csv", f"orh_{level}.csv", f"roc_{level}.png",
            f"recalls_{level}.csv", "telemetry.csv",
            f"reads_{level}.csv", f"reads_{level}.imrmc", f"excluded_units_{level}.csv", "hybrids.json",
            f"operating_points_{level}.json", f"notes_{level}.txt")


NOTES_HEAD = "study: "  # the notes file's first line names the study its run was of (StudyResults.identity)
MANIFEST = ".mammo_results.json"  # per level: the study a results run was of, and each file it wrote with its digest


class ResultFiles(list):
    """The files a results run wrote (a list of paths); ``removed``: an earlier run's it took away; ``left``: files
    named as results files that it neither wrote nor removed (a user's own, one changed since its run wrote it, or
    one of an earlier version, which recorded nothing): said, as they may read as this run's; ``kept_aside``: such
    files of a name the run wrote, kept as ``name.yours``."""

    removed: list[Path]
    left: list[Path]
    kept_aside: list[Path]

    def __init__(self, written: Sequence[Path] = (), removed: Sequence[Path] = (), left: Sequence[Path] = (),
                 kept_aside: Sequence[Path] = ()) -> None:
        super().__init__(written)
        self.removed, self.left, self.kept_aside = list(removed), list(left), list(kept_aside)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _manifest(folder: Path) -> dict[str, dict]:
    """The folder's record of earlier results runs ({} when there is none or it cannot be read)."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {level: run for level, run in data.items() if level in ("breast", "exam") and isinstance(run, dict)
            and isinstance(run.get("files"), dict)} if isinstance(data, dict) else {}


def _unchanged(folder: Path, manifest: dict[str, dict]) -> dict[str, set[str]]:
    """Per level of the manifest, the files its run recorded writing that are still as it wrote them (each file
    read once)."""
    digests = {name: _digest(folder / name) for run in manifest.values() for name in run["files"]}
    return {level: {name for name, digest in run["files"].items() if digests[name] == digest}
            for level, run in manifest.items()}


def _stale_results(manifest: dict[str, dict], unchanged: dict[str, set[str]], results: StudyResults) -> set[str]:
    """The files earlier results runs wrote that this run's may replace: another study's (either level), and this
    study's at this level. Only a file a run recorded writing, still as it wrote it (``unchanged``): a user's own
    aucs_exam.csv (or one changed since) was deleted by the name alone when another study's results came (a
    coordinator's test)."""
    stale = set()
    for level, run in manifest.items():
        if run.get("study") == results.identity() and level != results.level:
            continue  # the study's other level stays beside this one
        stale |= {name for name in unchanged[level] if name in result_files(level)}
    return stale


def write_results(results: StudyResults, folder: str | Path) -> ResultFiles:
    """CSV/JSON files for archiving and for other tools (RJafroc/MRMCaov tidy CSV, iMRMC input), with the notes
    (interim, too few units, what was left out) in ``notes_<level>.txt``: a CSV shared on its own kept its AUCs and
    lost their cautions. An earlier run's file this run does not write again is removed (it would read as this
    run's), and said in ``removed``: only one a run recorded in the folder's manifest, unchanged since."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(folder)
    unchanged = _unchanged(folder, manifest)
    stale = _stale_results(manifest, unchanged, results)  # what an earlier run left, looked at before this run writes
    # a file named as this run's that no results run recorded writing (the user's own, or an earlier version's) is
    # set aside before the run and put back if the run writes none in its place: a user's aucs_exam.csv in a fresh
    # folder was overwritten without a word (a coordinator's re-test)
    recorded = set().union(*unchanged.values())  # as a run wrote it: one edited since is the user's now
    aside = {name: _aside_name(folder / name) for name in result_files(results.level)
             if name not in recorded and (folder / name).is_file()}
    for name, target in aside.items():
        (folder / name).rename(target)
    try:
        written = _write_files(results, folder)
    finally:
        for name, target in aside.items():
            if not (folder / name).exists():
                target.rename(folder / name)
    kept_aside = [target for name, target in aside.items() if target.exists()]
    removed = [folder / name for name in sorted(stale - {path.name for path in written})]
    for path in removed:
        path.unlink(missing_ok=True)  # an earlier run's: it would read as this run's
    # this run's files; the study's other level's, where its run was of this study; another study's are gone
    kept = {level: run for level, run in manifest.items()
            if level != results.level and run.get("study") == results.identity()}
    kept[results.level] = {"study": results.identity(), "files": {p.name: _digest(p) for p in written}}
    write_bytes_atomic(folder / MANIFEST, json.dumps(kept, indent=1).encode())
    ours = {name for run in kept.values() for name in run["files"]}
    left = [folder / name for name in sorted(set(result_files("breast")) | set(result_files("exam")))
            if name not in ours and (folder / name).is_file()]
    return ResultFiles(written, removed, left, kept_aside)


def _aside_name(path: Path) -> Path:
    """``name.yours`` (or ``name.yours-2`` …) beside ``path``: where a user's file of a results file's name is kept."""
    target, number = path.with_name(f"{path.name}.yours"), 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.yours-{number}")
    return target


def _write_files(results: StudyResults, folder: Path) -> list[Path]:
    """The results run's files in ``folder`` (see :func:`write_results`)."""
    written = [folder / f"notes_{results.level}.txt"]
    written[0].write_text(f"{NOTES_HEAD}{results.identity()}\nlevel: {results.level}\n"
                          + ("".join(f"{note}\n" for note in [*results.notes(), *results.comparison_cautions(),
                                                                *results.recall_notes()])
                             or "no notes\n"), encoding="utf-8")
    path = folder / f"aucs_{results.level}.csv"
    # how each interval was made, as reader_averages' ci_method says it (a coordinator's finding: the screen said
    # DeLong, the file nothing, and breast-level files had no word of the clustering by woman)
    method = ("DeLong, clustered by woman (Obuchowski 1997), 95 %, clipped to [0, 1]" if results.level == "breast"
              else "DeLong, 95 %, clipped to [0, 1]")
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = text_dict_writer(handle, fieldnames=[*AucRow.__dataclass_fields__, "ci_method"])
        writer.writeheader()
        writer.writerows(_cells({**asdict(row), "ci_method": method if row.ci_low == row.ci_low else "no CI"})
                         for row in results.aucs)
    written.append(path)
    path = folder / f"reader_averages_{results.level}.csv"
    averages = results.reader_averages()
    if averages:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = text_dict_writer(handle, fieldnames=[*AucRow.__dataclass_fields__, "ci_method"])
            writer.writeheader()
            method = results.method
            writer.writerows(_cells({**asdict(row), "ci_method": f"ORH RRRC ({method})" if row.ci_low == row.ci_low
                                     else "no CI"}) for row in averages)
        written.append(path)
    path = folder / f"orh_{results.level}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = text_writer(handle)
        writer.writerow(["comparison", "first", "second", "method", "mean_first", "mean_second",
                         "difference_first_minus_second", "F", "ddf", "p", "ci_low", "ci_high", "var", "cov1", "cov2",
                         "cov3", "var_r", "var_tr", "not_estimable", "p_fixed_readers", "p_fixed_cases", "caution"])
        for name, r in results.comparisons.items():
            means = [r.reader_mean.get(r.first, ""), r.reader_mean.get(r.second, "")]
            named = [name, r.first, r.second, r.method, *means]
            if isinstance(r, UnestimableComparison):  # empty cells, never NaN or inf
                difference = "" if r.difference is None else r.difference
                writer.writerow([*named, difference, *[""] * 11, r.reason, "", "", ""])
            else:  # the other two generalisations' p, as the results window shows them (empty: not estimable)
                variants = ["" if not t.estimable else t.p for t in (r.fixed_readers, r.fixed_cases)]
                writer.writerow([*named, r.difference, r.F, df_cell(r.ddf), r.p, r.ci[0], r.ci[1], r.var, r.cov1,
                                 r.cov2, r.cov3, r.var_r, r.var_tr, "", *variants, comparison_caution(r)])
    written.append(path)
    path = folder / f"roc_{results.level}.png"
    if roc_png_written(results, path):
        written.append(path)
    path = folder / f"recalls_{results.level}.csv"
    if results.recalls:
        write_recalls(results.recalls, path)
        written.append(path)
    path = folder / "telemetry.csv"
    if results.telemetry:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = text_dict_writer(handle, fieldnames=list(results.telemetry[0]))
            writer.writeheader()
            writer.writerows(results.telemetry)
        written.append(path)
    path = folder / f"reads_{results.level}.csv"
    write_tidy_csv(results.records, path)
    written.append(path)
    path = folder / f"reads_{results.level}.imrmc"
    write_imrmc(results.records, path)
    written.append(path)
    path = folder / f"excluded_units_{results.level}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = text_writer(handle)
        writer.writerow(["unit", "reason"])
        writer.writerows(results.excluded)
    written.append(path)
    path = folder / "hybrids.json"  # what each hybrid modality is: calibrated (on what) or the plain mean
    path.write_text(json.dumps(results.hybrids, indent=1), encoding="utf-8")
    written.append(path)
    path = folder / f"operating_points_{results.level}.json"
    path.write_text(json.dumps([asdict(p) for p in results.model_points], indent=1), encoding="utf-8")
    written.append(path)
    return written
