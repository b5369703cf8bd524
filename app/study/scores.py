"""The models' scores of a study's cases: computed once per (case, model), resumable, through the one results
path (``app.analysis``), stored per model identity so that readers are compared with each model."""

from __future__ import annotations

import json
from collections.abc import Callable

from app.analysis import analyse_or_restore
from app.study.cases import study_cases
from app.study.errors import StudyError
from app.study.store import Store, shown_result_exists, write_model_score
from inference.errors import MammoError
from inference.pipeline import Cancelled, as_groups


def _register_models(store: Store, study_id: int, groups) -> None:
    known = {row[0]: row[1] for row in store.read(
        "SELECT model_id, model_key FROM study_models WHERE study_id=?", (study_id,))}
    for group in groups:
        if group.id in known and known[group.id] not in (group.key, ""):
            raise StudyError(f"the study already has scores of another model called {group.id!r}; give this model "
                             "another file or folder name")

    def work(db) -> None:
        for group in groups:
            identity = group.identity
            db.execute("INSERT OR IGNORE INTO study_models VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (study_id, group.id, group.label, identity.family, json.dumps(list(identity.classes)),
                        json.dumps(list(identity.malignancy)), group.key))
            if group.id not in known:  # the calibration stays the one the study's first scores were given with
                _record_calibration(db, study_id, group)

    store.submit(work).result()


def group_calibration(group) -> tuple[str, dict] | None:
    """(kind, record) of the calibration the hybrid puts ``group``'s P(malignant) on the reader's scale with:
    ``site`` (the site's recalibration, read at model load) or ``card`` (the model card's); None when
    uncalibrated. An ensemble has none: its members' calibrations describe each member, not the mean."""
    from inference.evaluation.calibration import hybrid_calibration  # noqa: PLC0415

    if len(group.members) != 1:
        return None
    identity = group.identity
    site, card = identity.site_calibration, identity.calibration
    kind, _ = hybrid_calibration(site, card)
    if kind == "none":
        return None
    return kind, dict(site if kind == "site" else card)


def _record_calibration(db, study_id: int, group) -> None:
    import time  # noqa: PLC0415

    calibration = group_calibration(group)
    if calibration is not None:
        db.execute("INSERT OR IGNORE INTO study_model_calibrations VALUES (?, ?, ?, ?, ?)",
                   (study_id, group.id, calibration[0], json.dumps(calibration[1], allow_nan=False), time.time()))


def compute_model_scores(
    store: Store,
    study_id: int,
    models: object,
    *,
    device: str | None = None,
    mode: str = "exact",
    progress: Callable[[str, int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> int:
    """Analyse every case that a model has no score for yet; returns how many cases were analysed.

    ``models``: model groups (``inference.weights.load_model_groups``) or loaded models, each its own entry.
    A breast without images gets no score (NULL, with the reason), never a confident 0. A case whose exam
    cannot be opened is passed over (no row: a later run tries it again) and the others are analysed; then
    :class:`StudyError` names every such case with its reason.
    """
    from inference.intake.exam import load_exam  # noqa: PLC0415

    progress = progress or (lambda *a: None)
    cancel = cancel or (lambda: False)
    groups = as_groups(models)
    _register_models(store, study_id, groups)
    # a score counts as done with its stored result (what the reading screen shows): scores from a batch's
    # table or an imported study have none, and their cases are analysed here
    done = {(r[0], r[1]) for r in store.read(
        "SELECT DISTINCT s.case_id, s.model_id FROM model_scores s JOIN analysis_results r "
        "ON r.result_key = s.result_key WHERE s.study_id=?", (study_id,))}
    todo = [c for c in study_cases(store, study_id).values()
            if any((c.case_id, g.id) not in done for g in groups)]
    unopened: list[str] = []
    differing: list[str] = []  # shown scores this analysis does not reproduce: kept as shown, and said
    for index, case in enumerate(todo):
        if cancel():
            raise Cancelled()
        progress(f"model scores: analysing case {index + 1} of {len(todo)}", index, len(todo))  # index: done
        try:
            exam = load_exam(case.exam_path)
        except MammoError as error:  # this case's exam: the others are still analysed
            unopened.append(f"case {case.case_id}: {error}")
            continue
        missing = [g for g in groups if (case.case_id, g.id) not in done]
        analysis = analyse_or_restore(exam, missing, store=store, device=device, mode=mode, cancel=cancel)
        result = analysis.result

        def work(db, case_id=case.case_id, result=result, keys=analysis.keys, entries=tuple(missing)) -> None:
            for group in entries:
                key = keys[group.id]  # the group's own stored part: what the reading screen restores
                for breast in ("L", "R"):
                    scores = result.breasts[breast].entries.get(group.id) if breast in result.breasts else None
                    if scores is None:  # no image of this breast, or no result on its views: no score, never a default
                        reasons = [f"{v.value}: {r.no_result[group.id]}" for v, r in result.views.items()
                                   if v.laterality.value == breast and group.id in r.no_result]
                        values = (None, None, f"no result on this breast ({'; '.join(reasons)})"
                                  if reasons else "no images of this breast")
                    else:  # allow_nan=False: a NaN is refused loudly, never stored as a score
                        values = (scores.malignant, json.dumps(dict(scores.probabilities), allow_nan=False), "")
                    if not write_model_score(db, study_id, case_id, breast, group.id, *values[:2], key, values[2]):
                        differing.append(f"case {case_id} ({breast}, {group.id})")

        store.submit(work).result()
    progress("model scores", len(todo), len(todo))
    problems = []
    if unopened:
        problems.append(f"{len(unopened)} case(s) could not be opened and have no score (run again once they can): "
                        + "; ".join(unopened))
    if differing:  # the readers were shown other numbers: the study's statistics keep those
        problems.append(f"{len(differing)} score(s) that readers were shown differ from this analysis by more than "
                        "rounding and are kept as shown for the statistics (another mode, or other weights under the "
                        "model's name?): check the model before more readers read these cases with the AI: "
                        + "; ".join(differing[:10]) + (" …" if len(differing) > 10 else ""))
    if problems:
        raise StudyError(f"model scores computed for {len(todo) - len(unopened)} case(s); " + "; ".join(problems))
    return len(todo)


def stored_result_key(store: Store, study_id: int, case_id: str) -> str | None:
    """The result key of the case's first model (the one a reading screen shows)."""
    rows = store.read("SELECT s.result_key FROM model_scores s JOIN study_models m ON m.study_id = s.study_id "
                      "AND m.model_id = s.model_id WHERE s.study_id=? AND s.case_id=? ORDER BY m.rowid LIMIT 1",
                      (study_id, case_id))
    return rows[0][0] if rows else None


def cases_without_result(store: Store, study_id: int) -> list[str]:
    """The cases whose first model (the one a reading screen shows) has no stored result: no scores yet, scores
    taken from a batch's table, or a study imported from another machine (an export carries scores, not
    results). An aided reading of such a case would be recorded as aided with no AI shown."""
    rows = store.read(f"SELECT c.case_id FROM study_cases c WHERE c.study_id=? AND NOT "
                      f"{shown_result_exists('c.study_id', 'c.case_id')} ORDER BY c.rowid", (study_id,))
    return [row[0] for row in rows]
