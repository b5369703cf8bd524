"""The study's reads as analysis records (readers, each model, hybrids), units left out, and telemetry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from app.reading import basis_words, hybrid
from inference.evaluation.calibration import calibrated_probability, recalibration_problem
from app.study.cases import CaseEntry, study_cases
from app.study.store import Store


def breast_truth(case: CaseEntry, breast: str) -> int:
    return int((case.truth_left if breast == "L" else case.truth_right) == "malignant")


def study_models(store: Store, study_id: int) -> list[dict]:
    """The models of a study, in the order they were added: id, label, family, classes, malignancy rule."""
    rows = store.read("SELECT model_id, label, family, classes_json, malignancy_json, model_key FROM study_models "
                      "WHERE study_id=? ORDER BY rowid", (study_id,))
    return [{"id": r[0], "label": r[1], "family": r[2], "classes": json.loads(r[3]), "malignancy": json.loads(r[4]),
             "key": r[5]} for r in rows]


PLAIN_SUFFIX = " (plain mean)"  # the GMIC reader study's hybrid beside the calibrated one: "hybrid (plain mean)"


def _calibration_rows(store: Store, study_id: int) -> dict[str, tuple[str, dict, str | None]]:
    """model id -> (kind, record, problem): each stored calibration with what makes it unusable (None if nothing).
    A record can predate the refusals at model load (a reversing Platt slope saved by an earlier validate) or
    come in an imported study file."""
    out = {}
    for model_id, kind, text in store.read(
            "SELECT model_id, kind, calibration_json FROM study_model_calibrations WHERE study_id=?", (study_id,)):
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            out[model_id] = (kind, {}, f"it is not JSON ({error})")
            continue
        if not isinstance(record, dict):
            out[model_id] = (kind, {}, "it is not a calibration record")
            continue
        method = record.get("method")
        if method in ("platt", "isotonic"):
            problem = recalibration_problem(record)
        elif kind == "site":  # a site's record is applied as it is: one of another method cannot be
            problem = f"its method {method!r} is neither platt nor isotonic"
        else:
            problem = None  # a card's temperature is already in the scores; anything else is not applied
        out[model_id] = (kind, record, problem)
    return out


def stored_calibrations(store: Store, study_id: int) -> dict[str, tuple[str, dict]]:
    """model id -> (kind, record): the usable calibration (``site`` or ``card``) stored with each model's scores;
    a model without one is uncalibrated, one with an unusable one is in :func:`unusable_calibrations`."""
    return {model_id: (kind, record) for model_id, (kind, record, problem) in _calibration_rows(store, study_id).items()
            if problem is None}


def unusable_calibrations(store: Store, study_id: int) -> dict[str, str]:
    """model id -> why the calibration stored with its scores cannot be applied: that model's hybrid is not
    computed (its plain model scores still are), never one on a reversed or broken scale."""
    return {model_id: problem for model_id, (_, _, problem) in _calibration_rows(store, study_id).items()
            if problem is not None}


def _site_card(calibration: tuple[str, dict] | None) -> tuple[dict | None, dict | None]:
    if calibration is None:
        return None, None
    kind, record = calibration
    return (record, None) if kind == "site" else (None, record)


def hybrid_bases(store: Store, study_id: int) -> dict[str, str]:
    """What each hybrid of the study is, by its name in the analysis ("hybrid", "hybrid (plain mean)",
    "hybrid [id]" …): "hybrid: mean of the reader and the model calibrated on <site, date, n> …", "… the
    model output, not calibrated as a probability", or the GMIC reader study's plain mean."""
    models = [m for m in study_models(store, study_id) if m["malignancy"]]
    stored = _calibration_rows(store, study_id)
    calibrations = {model_id: (kind, record) for model_id, (kind, record, problem) in stored.items() if problem is None}
    unusable = {model_id for model_id, (_, _, problem) in stored.items() if problem is not None}
    out = {}
    for model_id, name in model_names(models).items():
        hybrid_name = name.replace("model", "hybrid", 1)
        calibration = calibrations.get(model_id)
        if model_id not in unusable:
            out[hybrid_name] = basis_words(*_site_card(calibration))
        if calibration is not None or model_id in unusable:
            out[hybrid_name + PLAIN_SUFFIX] = basis_words(None, None, plain=True)
    return out


def unusable_calibration_notes(store: Store, study_id: int) -> list[str]:
    """A caution for each model whose stored calibration cannot be applied: which hybrid is missing and why."""
    models = [m for m in study_models(store, study_id) if m["malignancy"]]
    unusable = unusable_calibrations(store, study_id)
    return [f"{name.replace('model', 'hybrid', 1)} not computed: the calibration stored with {name}'s scores in "
            f"this study is unusable ({unusable[model_id]}); {name.replace('model', 'hybrid', 1)}{PLAIN_SUFFIX} "
            "is computed instead" for model_id, name in model_names(models).items() if model_id in unusable]


def _truth(case: CaseEntry, breast: str) -> str:
    return case.truth_left if breast == "L" else case.truth_right


def model_names(models: list[dict]) -> dict[str, str]:
    """How each model is called in the analysis: "model" when the study has one, else "model [id]"."""
    return {m["id"]: "model" if len(models) == 1 else f"model [{m['id']}]" for m in models}


def _model_scores(store: Store, study_id: int) -> dict[tuple[str, str, str], float | None]:
    return {(m, c, b): v for m, c, b, v in store.read(
        "SELECT model_id, case_id, breast, malignant FROM model_scores WHERE study_id=?", (study_id,))}


def analysis_records(store: Store, study_id: int, level: str = "breast") -> list[dict]:
    """Tidy rows (reader, modality, case, truth, score) of every committed non-training read, plus each
    model with a malignancy score (same score for every reader; modality ``model (vs unaided)``, or
    ``model [id] (vs unaided)`` when the study has several) and its hybrid with the readers (the mean of each
    read and the model on the reader's scale: ``hybrid (unaided)`` / ``hybrid [id] (unaided)``). A model whose
    scores were stored with a calibration has a calibrated hybrid and, beside it, the GMIC reader study's plain
    mean (``hybrid (plain mean) (unaided)``); an uncalibrated model's hybrid is the plain mean already
    (:func:`hybrid_bases` says which).

    ``level``: ``breast`` (the GMIC paper's unit: one case per breast) or ``exam`` (max over breasts). A unit
    without a model score (a breast without images, a case not scored yet; at exam level, either breast) is left
    out of that model's and its hybrid's rows: the other breast's score is no score for a cancer unseen.
    """
    cases = study_cases(store, study_id)
    models = [m for m in study_models(store, study_id) if m["malignancy"]]
    names = model_names(models)
    scores = _model_scores(store, study_id)
    stored = _calibration_rows(store, study_id)
    calibrations = {model_id: _site_card((kind, record)) for model_id, (kind, record, problem) in stored.items()
                    if problem is None}
    unusable = {model_id for model_id, (_, _, problem) in stored.items() if problem is not None}  # their calibrated
    # hybrid is not computed; the plain mean is
    reads = store.read(
        "SELECT reader, case_id, modality, breast, malignant FROM study_reads WHERE study_id=?", (study_id,))
    by_key: dict[tuple, dict[str, float]] = {}
    for reader, case_id, modality, breast, value in reads:
        if cases[case_id].training:
            continue
        by_key.setdefault((reader, modality, case_id), {})[breast] = value
    rows = []
    for (reader, modality, case_id), values in sorted(by_key.items()):
        if len(values) != 2:
            continue
        case = cases[case_id]
        for model in [None, *models]:
            present = [b for b in ("L", "R") if _truth(case, b) != "none"]  # "none": the breast is not there
            if level == "breast":  # an absent breast is no unit (it was counted as a normal one)
                units = [(f"{case_id}:{b}", breast_truth(case, b), values[b],
                          scores.get((model["id"], case_id, b)) if model else None) for b in present]
            else:  # the exam's scores: the maximum over its breasts that are there (the model's: none when one has none)
                present = present or ["L", "R"]
                scored = [scores.get((model["id"], case_id, b)) for b in present] if model else [None]
                units = [(case_id, max(breast_truth(case, "L"), breast_truth(case, "R")), max(values[b] for b in present),
                          None if None in scored else max(scored))]
            # a breast-level unit's case is its cluster: a woman's two breasts are read (and scored) together
            cluster = {"cluster": case_id} if level == "breast" else {}
            for unit, truth, score, model_score in units:
                if model is None:
                    rows.append({"reader": reader, "modality": modality, "case": unit, "truth": truth, "score": score,
                                 **cluster})
                elif model_score is not None:
                    name = names[model["id"]]
                    hybrid_name = name.replace("model", "hybrid", 1)
                    calibration = calibrations.get(model["id"])
                    if model["id"] not in unusable:
                        on_scale = (model_score if calibration is None
                                    else calibrated_probability(model_score, *calibration))
                        rows.append({"reader": reader, "modality": f"{hybrid_name} ({modality})", "case": unit,
                                     "truth": truth, "score": hybrid(score, on_scale), **cluster})
                    if calibration is not None or model["id"] in unusable:  # the GMIC reader study's hybrid
                        rows.append({"reader": reader, "modality": f"{hybrid_name}{PLAIN_SUFFIX} ({modality})",
                                     "case": unit, "truth": truth, "score": hybrid(score, model_score), **cluster})
                    rows.append({"reader": reader, "modality": f"{name} (vs {modality})", "case": unit, "truth": truth,
                                 "score": model_score, **cluster})
    return rows


def _unscored_reason(exam_path: str) -> str:
    """Why a case has no stored score: its exam is not where the study says (``study scores`` could not open
    it, and "run study scores" sent the coordinator to run it again), or the scores were not computed yet."""
    local = "://" not in exam_path
    if local and not Path(exam_path).exists():
        return f"the exam is not at {exam_path} (study scores could not open it)"
    return "no score computed yet (run study scores)"


def model_exclusions(store: Store, study_id: int, level: str = "breast") -> list[tuple[str, str]]:
    """Units (``case:breast``, or cases at exam level) that a model has no score for, with the reason; they are
    left out of that model's and its hybrid's analyses (a breast without images is no confident normal; an exam
    is left out when a breast that is there, truth not "none", has no score). A case without a stored score at all (``study scores`` not
    run or stopped, a batch table without it) is listed too. A model without a malignancy rule is left out as
    a whole."""
    models = study_models(store, study_id)
    scored_models = [m["id"] for m in models if m["malignancy"]]
    suffix = (lambda model_id: f" ({model_id})") if len(scored_models) > 1 else (lambda model_id: "")
    out = [(f"model {m['label']}", "its classes declare no malignancy score (findings only)")
           for m in models if not m["malignancy"]]
    stored = {(m, c, b): (v, reason) for m, c, b, v, reason in store.read(
        "SELECT model_id, case_id, breast, malignant, missing_reason FROM model_scores WHERE study_id=?",
        (study_id,))}
    every_case = study_cases(store, study_id)
    cases = [case_id for case_id, case in every_case.items() if not case.training]
    for model_id in scored_models:
        for case_id in sorted(cases):
            missing = {}
            for breast in ("L", "R"):
                value, reason = stored.get((model_id, case_id, breast), (None, None))
                if reason is None:  # no row: why (the disk is looked at only here)
                    reason = _unscored_reason(every_case[case_id].exam_path)
                if value is None:
                    missing[breast] = reason or "no score"
            if level == "breast":  # a breast that is not there is no unit, so none is left out
                out += [(f"{case_id}:{breast}", reason + suffix(model_id)) for breast, reason in missing.items()
                        if _truth(every_case[case_id], breast) != "none"]
                continue
            if len(missing) < 2:  # a breast that is not there (truth "none") does not take the exam out
                missing = {b: r for b, r in missing.items() if _truth(every_case[case_id], b) != "none"}
            if missing:
                out.append((case_id, "; ".join(f"{'left' if b == 'L' else 'right'} breast: {r}" for b, r in missing.items())
                            + suffix(model_id)))
    return out


def telemetry(store: Store, study_id: int, threshold: float = 0.5) -> list[dict]:
    """Per aided read (sequential design) of a case that is not for training: how the reader moved after seeing
    the AI.

    ``toward_ai``: the score moved in the AI's direction; ``flip_to_incorrect_ai_wrong``: the unaided
    decision (score >= threshold means "malignant") was right, the aided one wrong, and the AI was wrong.
    Shown to the coordinator only.
    """
    cases = study_cases(store, study_id)
    shown = next((m for m in study_models(store, study_id) if m["malignancy"]), None)  # the model readers see
    model = {(c, b): v for (m, c, b), v in _model_scores(store, study_id).items() if shown and m == shown["id"]}
    values: dict[tuple, dict[str, float]] = {}
    durations: dict[tuple, float] = {}
    for reader, case_id, modality, breast, value, duration in store.read(
        "SELECT reader, case_id, modality, breast, malignant, duration_s FROM study_reads WHERE study_id=?", (study_id,)):
        values.setdefault((reader, case_id, breast), {})[modality] = value
        durations[(reader, case_id, modality)] = duration
    out = []
    for (reader, case_id, breast), by_modality in sorted(values.items()):
        if ("unaided" not in by_modality or "aided" not in by_modality or _truth(cases[case_id], breast) == "none"
                or cases[case_id].training):  # a practice case is in no analysis (it was counted here)
            continue
        before, after = by_modality["unaided"], by_modality["aided"]
        ai = model.get((case_id, breast))
        truth = breast_truth(cases[case_id], breast)
        change = after - before
        toward = ai is not None and change != 0 and np.sign(change) == np.sign(ai - before)
        correct = lambda score: (score >= threshold) == bool(truth)  # noqa: E731
        out.append({
            "reader": reader, "case": case_id, "breast": breast, "unaided": before, "aided": after, "ai": ai,
            "change": change, "changed": change != 0, "toward_ai": bool(toward),
            "flip_to_incorrect_ai_wrong": bool(ai is not None and correct(before) and not correct(after) and not correct(ai)),
            "flip_to_correct": bool(not correct(before) and correct(after)),
            # the line between a correct and an incorrect decision, said in the file (a coordinator's finding:
            # the flips rested on a threshold neither the screen nor telemetry.csv named)
            "decision_threshold": threshold,
            "unaided_seconds": durations.get((reader, case_id, "unaided")),
            "aided_seconds": durations.get((reader, case_id, "aided")),
        })
    return out
