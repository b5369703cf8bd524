"""The models' scores of a study's cases: computed once per (case, model), resumable, through the one results
path (``app.analysis``), stored per model identity so that readers are compared with each model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from app.analysis import analyse_or_restore
from app.study.cases import study_cases
from app.study.errors import StudyError
from app.study.store import Store
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

    store.submit(work).result()


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
    A breast without images gets no score (NULL, with the reason), never a confident 0.
    """
    from inference.exam import load_exam  # noqa: PLC0415

    progress = progress or (lambda *a: None)
    cancel = cancel or (lambda: False)
    groups = as_groups(models)
    _register_models(store, study_id, groups)
    done = {(r[0], r[1]) for r in store.read(
        "SELECT DISTINCT case_id, model_id FROM model_scores WHERE study_id=?", (study_id,))}
    todo = [c for c in study_cases(store, study_id).values()
            if any((c.case_id, g.id) not in done for g in groups)]
    for index, case in enumerate(todo):
        if cancel():
            raise Cancelled()
        progress(f"model scores: case {index + 1} of {len(todo)}", index, len(todo))
        exam = load_exam(case.exam_path)
        missing = [g for g in groups if (case.case_id, g.id) not in done]
        analysis = analyse_or_restore(exam, missing, store=store, device=device, mode=mode, cancel=cancel)
        result = analysis.result

        def work(db, case_id=case.case_id, result=result, key=analysis.key, entries=tuple(missing)) -> None:
            for group in entries:
                for breast in ("L", "R"):
                    scores = result.breasts[breast].entries.get(group.id) if breast in result.breasts else None
                    if scores is None:  # no image of this breast, or no finite output: no score, never a default
                        failed = any(v.laterality.value == breast and group.id in r.no_result
                                     for v, r in result.views.items())
                        values = (None, None, "no result on this breast (the model's output was not finite)"
                                  if failed else "no images of this breast")
                    else:  # allow_nan=False: a NaN is refused loudly, never stored as a score
                        values = (scores.malignant, json.dumps(dict(scores.probabilities), allow_nan=False), "")
                    db.execute("INSERT OR REPLACE INTO model_scores VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               (study_id, case_id, breast, group.id, values[0], values[1], key, values[2]))

        store.submit(work).result()
    progress("model scores", len(todo), len(todo))
    return len(todo)


def stored_result_key(store: Store, study_id: int, case_id: str) -> str | None:
    """The result key of the case's first model (the one a reading screen shows)."""
    rows = store.read("SELECT s.result_key FROM model_scores s JOIN study_models m ON m.study_id = s.study_id "
                      "AND m.model_id = s.model_id WHERE s.study_id=? AND s.case_id=? ORDER BY m.rowid LIMIT 1",
                      (study_id, case_id))
    return rows[0][0] if rows else None



def import_batch_scores(store: Store, study_id: int, table_path: str | Path) -> tuple[int, int]:
    """The models' scores of a study's cases from a batch's ``scores.parquet`` (``python main.py batch``):
    its breast rows, matched on case ID = exam ID, with the same exam. Where the batch wrote the JSON
    result too, that result is stored, so that aided reading shows the model's maps.

    Returns (cases given scores, cases the table has no rows for).
    """
    import hashlib  # noqa: PLC0415

    from app.archive.sources import ExamItem  # noqa: PLC0415
    from app.archive.table import read_scores  # noqa: PLC0415
    from app.archive.unit import marker_path  # noqa: PLC0415
    from inference.serialize import maps_from_bytes, maps_to_bytes  # noqa: PLC0415

    table_path = Path(table_path)
    try:
        rows = read_scores(table_path).to_pylist()
    except (OSError, ValueError) as error:
        raise StudyError(f"{table_path}: the batch's score table cannot be read ({error})") from error
    cases = study_cases(store, study_id)
    by_exam: dict[str, list[dict]] = {}
    for row in rows:
        by_exam.setdefault(row["exam_id"], []).append(row)
    models: dict[str, dict] = {}
    imported = []
    for case_id, case in cases.items():
        exam_rows = by_exam.get(case_id)
        if not exam_rows:
            continue
        location = exam_rows[0]["location"]
        if Path(location).resolve() != Path(case.exam_path).resolve():
            raise StudyError(f"{table_path}: case {case_id!r} is {case.exam_path} in the case list, but the batch "
                             f"analysed {location} under that ID")
        for row in exam_rows:
            model = models.setdefault(row["model_id"], {"label": row["model_label"], "family": row["family"],
                                                        "classes": [], "malignancy": [], "key": row["model_key"]})
            if row["kind"] == "class" and row["class"] not in model["classes"]:
                model["classes"].append(row["class"])
            elif row["kind"] == "malignancy" and not model["malignancy"]:
                model["malignancy"] = row["class"].split("+")
        imported.append((case_id, location, exam_rows))
    _register_imported_models(store, study_id, models)

    def stored_result(location: str) -> str:
        """The batch's JSON result of the exam, stored for the reading screen; its key ("" without one)."""
        marker = marker_path(table_path.parent, ExamItem("", location))
        try:
            files = json.loads(marker.read_text(encoding="utf-8"))["files"]
            document_path = next(Path(f) for f in files if f.endswith(".json"))
            document = json.loads(document_path.read_text(encoding="utf-8"))
            data = dict(document["result"])
            maps = maps_from_bytes((document_path.parent / data.pop("maps_file")).read_bytes())
        except (OSError, ValueError, KeyError, StopIteration, TypeError):
            return ""
        key = hashlib.sha256(f"batch#{location}#{document_path.stat().st_mtime_ns}".encode()).hexdigest()
        store.save_result(key, json.dumps(data), maps_to_bytes(maps)).result()
        return key

    def work(db, entries) -> None:
        for case_id, key, exam_rows in entries:
            for model_id in models:
                for breast in ("L", "R"):
                    mine = [r for r in exam_rows if r["model_id"] == model_id and r["level"] == "breast"
                            and r["breast"] == breast]
                    if not mine:
                        values = (None, None, "no images of this breast")
                    else:
                        probabilities = {r["class"]: r["probability"] for r in mine if r["kind"] == "class"}
                        rule = [r["probability"] for r in mine if r["kind"] == "malignancy"]
                        values = (rule[0] if rule else None, json.dumps(probabilities), "")
                    db.execute("INSERT OR REPLACE INTO model_scores VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               (study_id, case_id, breast, model_id, values[0], values[1], key, values[2]))

    entries = [(case_id, stored_result(location), exam_rows) for case_id, location, exam_rows in imported]
    store.submit(lambda db: work(db, entries)).result()
    return len(imported), len(cases) - len(imported)


def _register_imported_models(store: Store, study_id: int, models: dict[str, dict]) -> None:
    def work(db) -> None:
        for model_id, model in models.items():
            db.execute("INSERT OR IGNORE INTO study_models VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (study_id, model_id, model["label"], model["family"], json.dumps(model["classes"]),
                        json.dumps(model["malignancy"]), model["key"]))

    store.submit(work).result()
