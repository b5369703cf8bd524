"""The validation of one or more models on the site's outcomes: joins the score table to the outcomes,
counts what cannot be used (and lists it), and computes everything ``metrics.json`` holds.

``metrics.json`` is ``{<model id>: {"label", "breast": {"auc", "auc_ci", "n_positive", "n_negative", …},
"exam": {…}, "operating_points": […], "calibration": {…}, "subgroups": […], "drift": […], "unused": {…}}, …,
"comparisons": [{"a", "b", "level", "difference", "ci", "p", …}], "accounting": {…}, "run": {…}}``.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.validation import calibration as calib
from app.validation.errors import ValidationInputError
from app.validation.metrics import (
    Target,
    at_threshold,
    auc_with_ci,
    paired_comparison,
    threshold_ci,
    threshold_for,
)
from app.validation.outcomes import BreastOutcome
from app.validation.scores import ModelScores, ScoreTable
from app.validation.subgroups import Unit, drift, subgroups
from inference.files import distinct_file_stem

RESERVED = ("comparisons", "accounting", "run")
LEVELS = ("breast", "exam")


@dataclass(frozen=True)
class Options:
    targets: tuple[Target, ...] = (Target("spec", 0.9),)
    checkpoints: Mapping[str, Path] = field(default_factory=dict)  # model id -> its checkpoint
    compare: tuple[tuple[str, str], ...] = ()
    site: str = "site"
    bins: int = 10
    calibration_folder: Path | None = None  # where a calibration goes for a model without a checkpoint
    save_calibration: bool = True


@dataclass
class Validation:
    metrics: dict
    arrays: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]  # model -> level -> (scores, truth)
    recalibrated: dict[str, np.ndarray]  # model -> recalibrated breast scores (for the diagram)


def _known_breasts(outcomes: Sequence[BreastOutcome]) -> dict[str, set[str]]:
    known: dict[str, set[str]] = {}
    for outcome in outcomes:
        known.setdefault(outcome.exam_id, set()).add(outcome.breast)
    return known


def breasts_without_outcome(table: ScoreTable, outcomes: Sequence[BreastOutcome]) -> dict[str, list[str]]:
    """Per exam whose exam-level truth is unknown, its breasts in the score table that the outcomes leave out
    (CBIS-DDSM's undescribed breast, a site CSV with one row per exam): its known breasts are cancer-free, so
    the breast without an outcome decides. An exam with a known cancer is a cancer exam whatever the other."""
    positive = {o.exam_id for o in outcomes if o.cancer}
    missing = {}
    for exam, known in _known_breasts(outcomes).items():
        left_out = sorted(table.breasts.get(exam, frozenset()) - known)
        if left_out and exam not in positive:
            missing[exam] = left_out
    return missing


def _exam_outcomes(outcomes: Sequence[BreastOutcome], table: ScoreTable) -> dict[str, int]:
    """Each exam's truth: a cancer in any breast. An exam whose known breasts are cancer-free and with a breast
    of the table that has no outcome has none: that breast is not known to be cancer-free (as an unscored breast
    gives no exam score)."""
    partial = breasts_without_outcome(table, outcomes)
    exams: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.exam_id not in partial:
            exams[outcome.exam_id] = max(exams.get(outcome.exam_id, 0), outcome.cancer)
    return exams


def exam_scores(model: ModelScores, outcomes: Sequence[BreastOutcome], table: ScoreTable,
                ) -> tuple[dict[str, float], list[str]]:
    """The model's exam-level units: each analysed exam with an exam-level outcome and its exam score; and the
    exams left out for want of one. An exam with a breast the model did not score has no exam score: the other
    breast's is no score for a cancer in the unseen one. The model's own measures and every comparison take
    their exams from here (a comparison once counted such an exam by its scored breast)."""
    exams = _exam_outcomes(outcomes, table)
    unscored = {o.exam_id for o in outcomes if o.exam_id in table.exams and model.breast.get(o.key) is None}
    exam_ids = sorted(e for e in exams if e in table.exams)
    without = [e for e in exam_ids if model.exam.get(e) is None or e in unscored]
    left_out = set(without)
    return {e: float(model.exam[e]) for e in exam_ids if e not in left_out}, without


def accounting(table: ScoreTable, outcomes: Sequence[BreastOutcome]) -> dict:
    """What the run could not use, by kind, each with its list."""
    with_outcome = {o.exam_id for o in outcomes}
    return {
        "exams_without_exam_outcome": [{"exam_id": e, "breasts": sides} for e, sides in
                                       sorted(breasts_without_outcome(table, outcomes).items())],
        "exams_in_table": len(table.exams),
        "breasts_with_outcome": len(outcomes),
        "exams_without_outcome": sorted(table.exams - with_outcome),
        # failures.csv also names an exam analysed only in part (a refused view, its DICOM not written): its
        # scores are in the table and used when it has an outcome, so it is no failed exam (one without an
        # outcome is among exams_without_outcome, and was said to be used)
        "failed_exams": [{"exam_id": e, "reason": r, "has_outcome": e in with_outcome}
                         for e, r in sorted(table.failed.items()) if e not in table.exams],
        "partial_exams": [{"exam_id": e, "reason": r} for e, r in sorted(table.failed.items())
                          if e in table.exams and e in with_outcome],
        "outcome_exams_not_analysed": sorted(with_outcome - table.exams - set(table.failed)),
        "models_not_validated": [{"model_id": m, "reason": r} for m, r in sorted(table.unscorable.items())],
    }


def _declared_points(checkpoint: Path | None) -> tuple[list[dict], str]:
    if checkpoint is None:
        return [], "no checkpoint given for this model: its declared operating points are unknown"
    from inference.weights import read_metadata  # noqa: PLC0415

    points = (read_metadata(checkpoint).get("calibration") or {}).get("operating_points") or []
    return list(points), "" if points else "the model's metadata declares no operating point"


def _operating_points(level: str, scores: np.ndarray, truth: np.ndarray, declared: list[dict],
                      targets: Sequence[Target]) -> list[dict]:
    rows = []
    if not len(truth):
        return rows
    # a site whose outcomes are all negative (before its first cancer) still has a specificity and a recall
    # rate at each threshold, the numbers it goes live on; a target of the kind that is absent is left out
    needs = {"spec": (truth == 0).any(), "sens": (truth == 1).any(), "threshold": True}
    for point in declared:
        rows.append({"name": point.get("name", f"threshold {point['threshold']:g}"), "source": "declared",
                     "level": level, "target": None, "threshold_ci": None,
                     **at_threshold(scores, truth, float(point["threshold"]))})
    for target in (t for t in targets if needs[t.kind]):
        threshold = threshold_for(scores, truth, target)
        rows.append({"name": target.name, "source": "requested", "level": level,
                     "target": {"kind": target.kind, "value": target.value},
                     "threshold_ci": threshold_ci(scores, truth, target), **at_threshold(scores, truth, threshold)})
    return rows


def _calibration_path(model: ModelScores, options: Options, checkpoint: Path | None) -> Path | None:
    if checkpoint is not None:
        return calib.calibration_path(checkpoint)
    if options.calibration_folder is not None:  # the ID is the table's: never a path out of the folder
        # (a table's model ID "../../deployed/model.pt" wrote a calibration beside a deployed checkpoint)
        return options.calibration_folder / f"{distinct_file_stem(model.model_id, 'model')}{calib.SUFFIX}"
    return None


def _kept_note(record: dict, path: Path | None) -> str:
    losses = record["cv_log_loss"]
    if record.get("not_chosen"):  # Platt left out for its slope: said, not "neither beats"
        note = (f"no recalibration kept: isotonic ({losses['isotonic']:.4f}) does not beat the model's own "
                f"probabilities ({losses['uncalibrated']:.4f}) in held-out log loss, and {record['not_chosen']} is "
                "never kept, so the model's own calibration is kept and no calibration file was written")
    else:
        note = (f"no recalibration kept: neither Platt ({losses['platt']:.4f}) nor isotonic "
                f"({losses['isotonic']:.4f}) beats the model's own probabilities ({losses['uncalibrated']:.4f}) in "
                "held-out log loss, so the model's own calibration is kept and no calibration file was written")
    return note + _earlier_calibration_note(path)


def _earlier_calibration_note(path: Path | None) -> str:
    """"; the earlier site calibration (version …) stays as it was and the workstation still uses it …" where a
    calibration saved before is at ``path`` (a run that saves none must say that the old one is still in use)."""
    if path is None or not path.is_file():
        return ""
    try:
        earlier = calib.read_site_calibration(path) or {}
    except ValidationInputError as refused:  # damaged or reversing: the workstation refuses it, not uses it
        return f"; the earlier site calibration at {path} is refused by the workstation ({refused.message})"
    said = f"version {earlier['version']} of {earlier.get('date', '?')}, " if "version" in earlier else ""
    return (f"; the earlier site calibration ({said}{path}) stays as it was and the workstation still uses it: "
            "delete that file for the model's own probabilities")


def _save(path: Path, record: dict, model: ModelScores, options: Options, checkpoint: Path | None) -> dict:
    """Save the calibration at ``path``. When its folder cannot be written (a read-only model folder), the same
    next version goes to the output folder, to be copied beside the model, and ``save_error`` says so: the
    report is written either way."""
    def save(write_to: Path | None = None) -> dict:
        saved = calib.save_site_calibration(path, record, options.site, model.model_id, model.model_key, "breast",
                                            write_to=write_to)
        return {"file": str(write_to or path), "version": saved["version"], "site": saved["site"],
                "date": saved["date"]}

    try:
        return save()
    except OSError as error:
        problem = (f"the site calibration could not be saved beside the model: the folder {path.parent} cannot be "
                   f"written ({error.strerror or error})")
    fallback = None
    if options.calibration_folder is not None and checkpoint is not None:
        fallback = options.calibration_folder / path.name
    if fallback is None:
        return {"save_error": f"{problem}; make the folder writable and run validate again"}
    try:
        saved = save(fallback)
    except OSError as error:
        return {"save_error": f"{problem}, nor the folder {fallback.parent} ({error.strerror or error}); make "
                              f"{path.parent} writable and run validate again"}
    return {**saved, "save_error": f"{problem}. It was written to {fallback} instead: copy it into {path.parent} "
                                   "(or make that folder writable and run validate again); until then the "
                                   "workstation does not use it"}


def _calibration(model: ModelScores, scores: np.ndarray, truth: np.ndarray, options: Options,
                 checkpoint: Path | None) -> tuple[dict, np.ndarray | None]:
    bins = calib.reliability(scores, truth, options.bins)
    out = {"level": "breast", "bins": options.bins, "ece": bins.ece, "reliability": bins.as_dict(),
           "recalibration": None, "note": ""}
    from inference.evaluation.metrics import roc_auc  # noqa: PLC0415

    below_chance = roc_auc(scores, truth)
    if below_chance < 0.5:  # the model ranks cancers below non-cancers here: no rescaling of the hybrid
        out["note"] = (f"no recalibration: the model's AUC here is {below_chance:.3f}, below chance (are the "
                       "outcomes coded 1 = cancer?)" + _earlier_calibration_note(
                           _calibration_path(model, options, checkpoint) if options.save_calibration else None))
        return out, None
    try:
        record = calib.recalibrate(scores, truth, options.bins)
    except ValidationInputError as error:
        out["note"] = f"no recalibration: {error.message}"
        return out, None
    path = _calibration_path(model, options, checkpoint) if options.save_calibration else None
    if record["method"] == calib.NONE:  # worse than none: an earlier saved version stays as it is
        out.update(recalibration=record, note=_kept_note(record, path))
        return out, None
    after = calib.apply(record, scores)
    out["recalibration"] = {**record, "reliability_after": calib.reliability(after, truth, options.bins).as_dict()}
    n_positive, n_negative = record["n_positive"], record["n"] - record["n_positive"]
    if path is not None and min(n_positive, n_negative) < calib.MIN_SAVED:
        out["note"] = (f"the {record['method']} recalibration is shown, not saved: fitted on {n_positive} cancers and "
                       f"{n_negative} non-cancers, and one that rescales the workstation's hybrid needs at least "
                       f"{calib.MIN_SAVED} of each" + _earlier_calibration_note(path))
        return out, after
    share = n_positive / record["n"]
    screening = _screening_calibration(path) if share > ENRICHED else ""
    if path is not None and screening:
        out["note"] = (f"the {record['method']} recalibration is shown, not saved: fitted on a set with "
                       f"{100 * share:.1f} % cancers, it would replace the site calibration fitted on a screening-like "
                       f"set ({screening}), and its probabilities would be those of a cancer-enriched set, far above a "
                       "screening exam's risk; that calibration stays in use")
        return out, after
    if share > ENRICHED:  # saved (nothing screening-like to keep), and said what its probabilities are
        out["note"] = (f"fitted on a set with {100 * share:.1f} % cancers (screening finds under 1 %): its probabilities "
                       "are those of such a set and run above a screening exam's risk; calibrate on consecutive "
                       "screening exams for a screening service's hybrid" + (
                           "; do not copy it over a calibration fitted on screening exams beside the model (give the "
                           "checkpoint with --models ID=CHECKPOINT, and validate keeps that one)"
                           if checkpoint is None and path is not None else ""))
    if path is not None:
        out["recalibration"].update(_save(path, record, model, options, checkpoint))
        if checkpoint is None and "save_error" not in out["recalibration"]:
            out["note"] = "; ".join(filter(None, (out["note"], (
                "no checkpoint given: the calibration was written to the output folder; copy it beside the model "
                "as <checkpoint>" + calib.SUFFIX))))
    return out, after


def _screening_calibration(path: Path | None) -> str:
    """"version 2 of 2026-03-01, 0.8 % cancers" where the site calibration saved at ``path`` was fitted on a
    screening-like set (cancers at most ``ENRICHED``), else "" (none, one of an enriched set, or unreadable)."""
    if path is None or not path.is_file():
        return ""
    try:
        earlier = calib.read_site_calibration(path) or {}
    except ValidationInputError:
        return ""
    n, positive = earlier.get("n"), earlier.get("n_positive")
    if not isinstance(n, int) or not isinstance(positive, int) or n <= 0 or positive / n > ENRICHED:
        return ""
    return f"version {earlier.get('version', '?')} of {earlier.get('date', '?')}, {100 * positive / n:.1f} % cancers"


def validate_model(model: ModelScores, outcomes: Sequence[BreastOutcome], options: Options,
                   table: ScoreTable) -> tuple[dict, dict, np.ndarray | None]:
    checkpoint = options.checkpoints.get(model.model_id)
    table_exams = table.exams
    units, without_score = [], []
    for outcome in outcomes:
        if outcome.exam_id not in table_exams:
            continue  # not analysed or failed: counted once, in the accounting
        score = model.breast.get(outcome.key)
        if score is None:
            without_score.append(f"{outcome.exam_id} {outcome.breast}")
            continue
        units.append(Unit(outcome, float(score), model.one_view(outcome.key)))
    exams = _exam_outcomes(outcomes, table)
    scored_exams, exams_without_score = exam_scores(model, outcomes, table)
    exam_ids = sorted(scored_exams)
    arrays = {
        "breast": (np.array([u.score for u in units], float), np.array([u.outcome.cancer for u in units], int)),
        "exam": (np.array([scored_exams[e] for e in exam_ids], float), np.array([exams[e] for e in exam_ids], int)),
    }
    declared, declared_note = _declared_points(checkpoint)
    result: dict = {"label": model.label, "model_key": model.model_key,
                    "checkpoint": str(checkpoint) if checkpoint else None}
    for level in LEVELS:
        scores, truth = arrays[level]
        result[level] = {**auc_with_ci(scores, truth), "n": len(scores)}
    result["operating_points"] = [p for level in LEVELS for p in _operating_points(level, *arrays[level], declared,
                                                                                      options.targets)]
    one_kind = [f"at the {level} level every unit is {'a cancer' if arrays[level][1].all() else 'a non-cancer'}"
                for level in LEVELS if len(arrays[level][1]) and len(set(arrays[level][1].tolist())) == 1]
    result["operating_points_note"] = "; ".join([declared_note] * bool(declared_note) + [
        f"{', and '.join(one_kind)}: the measures of the other kind (and the targets on them) cannot be given"]
        * bool(one_kind) + [ONLY_CANCERS] * bool(len(arrays["breast"][1]) and arrays["breast"][1].all()))
    result["ppv_note"] = ppv_note(result)
    scores, truth = arrays["breast"]
    recalibrated = None
    if (truth == 1).any() and (truth == 0).any():
        result["calibration"], recalibrated = _calibration(model, scores, truth, options, checkpoint)
    else:
        result["calibration"] = {"note": "no calibration: the scored breasts are not of both kinds"}
    primary = next((p for p in result["operating_points"]
                    if p["level"] == "breast" and p["source"] == "requested"), None)
    point = (primary["name"], primary["threshold"]) if primary else None
    result["subgroups"] = subgroups(units, point)
    result["drift"] = drift(units, point)
    known = {o.key for o in outcomes}
    with_outcome = {o.exam_id for o in outcomes}
    without_outcome = [f"{exam} {side}" for exam, side in sorted(model.breast)
                       if exam in with_outcome and (exam, side) not in known]  # e.g. CBIS-DDSM's undescribed breast
    result["unused"] = {"breasts_without_score": without_score, "exams_without_score": exams_without_score,
                        "breasts_without_outcome": without_outcome,
                        "one_view_breasts": sum(u.one_view for u in units)}
    return result, arrays, recalibrated


ONLY_CANCERS = ("the outcomes give only cancers: an AUC, a specificity and a calibration need the breasts without "
                "cancer too; list the screened breasts without cancer with cancer 0")
ENRICHED = 0.02  # a share of cancers above which a set is no screening population (screening finds < 1 %)


def ppv_note(result: dict) -> str:
    """PPV and the recall rate measured on a set enriched with cancers (a case-control set, CBIS-DDSM) are not
    what a screening service will see: said with the set's share of cancers, or "" for a screening-like set."""
    shares = {level: result[level]["n_positive"] / result[level]["n"] for level in LEVELS if result[level]["n"]}
    if not shares or max(shares.values()) <= ENRICHED:
        return ""
    here = " and ".join(f"{100 * share:.1f} % of the {level}s" for level, share in shares.items())
    return (f"PPV and the recall rate depend on how many cancers the set holds: {here} here, against under 1 % of "
            "screening exams. At the same sensitivity and specificity a screening population has a far lower PPV, "
            "and a recall rate close to 1 - specificity.")


NEAR_ID_SAMPLE = 500  # IDs of each side compared pairwise for the hint


def _pseudonyms_hint(exams: frozenset[str]) -> str:
    """Where every exam ID of the table is a de-identified batch's pseudonym (``anon-…``): how to join them."""
    if exams and all(e.startswith("anon-") for e in exams):
        return ("; the score table is a de-identified batch's (its exam IDs are pseudonyms): give --batch-source "
                "with the folder or case list the batch ran on, on the computer that ran it")
    return ""


def _near_ids(ours: set[str], theirs: set[str]) -> str:
    """A hint when the outcomes' exam IDs are the table's written another way: other capitals, or one inside the
    other (a folder name holding the patient's ID); IDs are compared exactly, and a guess is no join."""
    folded = {t.casefold(): t for t in theirs}
    same_but_case = sorted(o for o in ours if o.casefold() in folded)
    if same_but_case:
        o = same_but_case[0]
        verb = "differs" if len(same_but_case) == 1 else "differ"
        return (f"; {len(same_but_case)} of them {verb} from the table's only in capitals (e.g. {o} and "
                f"{folded[o.casefold()]}): exam IDs are compared exactly, write them as the batch did")
    # one inside the other: pairwise, so on a sample of each side (a refusal of 50 000 IDs took minutes)
    sample_ours, sample_theirs = sorted(ours)[:NEAR_ID_SAMPLE], sorted(theirs)[:NEAR_ID_SAMPLE]
    inside = {}
    for o in sample_ours:
        match = next((t for t in sample_theirs if o and t and (o in t or t in o)), None)
        if match is not None:
            inside[o] = match
    if inside:
        o, t = next(iter(inside.items()))
        checked = f" of the first {len(sample_ours)}" if len(ours) > len(sample_ours) else " of them"
        return (f"; {len(inside)}{checked} {'lies' if len(inside) == 1 else 'lie'} inside one of the table's or the "
                f"other way round (e.g. {o} and {t}): exam IDs are compared whole")
    return ""


def validate(table: ScoreTable, outcomes: Sequence[BreastOutcome], options: Options,
             models: Sequence[str] | None = None) -> Validation:
    """Every measure for ``models`` (default: every model of the table that gives a P(malignant))."""
    chosen = list(models) if models else sorted(table.models)
    if not chosen:
        why = "; ".join(f"{m}: {reason}" for m, reason in sorted(table.unscorable.items()))
        raise ValidationInputError("the score table holds no model's P(malignant)" + (f" ({why})" if why else
                                                                                      ": it has no scores"))
    for model_id in [*chosen, *(m for pair in options.compare for m in pair)]:
        if model_id not in table.models:
            why = table.unscorable.get(model_id, "it is not in the score table")
            known = ", ".join(sorted(table.models)) or "none"
            raise ValidationInputError(f"model {model_id!r} cannot be validated: {why} (models with scores: {known})")
        if model_id in RESERVED:
            raise ValidationInputError(f"a model called {model_id!r} clashes with a section of metrics.json")
    for a, b in options.compare:
        if a == b:
            raise ValidationInputError(f"--compare {a} {b}: a model compared with itself differs by nothing; name two "
                                       "models")
    for model_id in options.checkpoints:
        if model_id not in chosen:
            raise ValidationInputError(f"a checkpoint was given for {model_id!r}, which is not validated")
    with_outcome = {o.exam_id for o in outcomes}
    if not with_outcome & table.exams:  # nothing joins: an empty analysis would read as a result
        ours, theirs = sorted(with_outcome)[:3], sorted(table.exams)[:3]
        raise ValidationInputError(f"no exam of the outcomes ({len(with_outcome)}, e.g. {', '.join(ours) or 'none'}) "
                                   f"is in the score table ({len(table.exams)}, e.g. {', '.join(theirs) or 'none'}): "
                                   "the outcomes' exam_id must be the batch's exam ID" + _near_ids(with_outcome,
                                                                                                  table.exams)
                                   + _pseudonyms_hint(table.exams))
    metrics: dict = {}
    arrays: dict = {}
    recalibrated: dict = {}
    for model_id in chosen:
        metrics[model_id], arrays[model_id], after = validate_model(table.models[model_id], outcomes, options,
                                                                     table)
        if after is not None:
            recalibrated[model_id] = after
    metrics["comparisons"] = [comparison(table, outcomes, a, b, level) for a, b in options.compare for level in LEVELS]
    metrics["accounting"] = accounting(table, outcomes)
    missing = set(metrics["accounting"]["outcome_exams_not_analysed"])
    if missing:  # a quarter of a cohort dropped for capitals or lost leading zeros is said, as when none joins
        hint = _near_ids(missing, set(table.exams) - with_outcome)
        if hint:
            metrics["accounting"]["not_analysed_hint"] = (f"{len(missing)} exam(s) of the outcomes are not in the "
                                                          f"score table{hint}")
    metrics["run"] = {"date": datetime.date.today().isoformat(), "site": options.site,
                      "operating_points": [t.name for t in options.targets], "models": chosen}
    return Validation(metrics, arrays, recalibrated)


def comparison(table: ScoreTable, outcomes: Sequence[BreastOutcome], a: str, b: str, level: str) -> dict:
    """The paired DeLong test of models ``a`` and ``b`` on the units both scored (difference = a - b)."""
    first, second = table.models[a], table.models[b]
    if level == "breast":
        truth_of = {o.key: o.cancer for o in outcomes}
        scores_a, scores_b = first.breast, second.breast
    else:
        truth_of = _exam_outcomes(outcomes, table)
        scores_a, scores_b = exam_scores(first, outcomes, table)[0], exam_scores(second, outcomes, table)[0]
    keys = sorted(k for k in truth_of if scores_a.get(k) is not None and scores_b.get(k) is not None)
    one_only = sum(1 for k in truth_of if (scores_a.get(k) is None) != (scores_b.get(k) is None))
    result = paired_comparison(np.array([scores_a[k] for k in keys], float),
                               np.array([scores_b[k] for k in keys], float),
                               np.array([truth_of[k] for k in keys], int), (a, b))
    return {**result, "level": level, "n": len(keys), "scored_by_one_only": one_only}
