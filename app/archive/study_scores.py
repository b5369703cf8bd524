"""``study create --scores``: a study's model scores from a batch's table, and the batch's results stored
where the workstation and the study's reading screen look them up (``app.analysis``: one part per model).

It lives with the batch, not the study, so that the study never imports the batch (nor, through it, the
reports): the package graph runs archive -> study, never back.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.analysis import store_parts
from app.archive.sources import ExamItem
from app.archive.table import SCORES_FILE, read_scores
from app.archive.unit import marker_path
from app.study.cases import CaseEntry, study_cases
from app.study.errors import StudyError
from app.study.store import Store, write_model_score
from inference.errors import MammoError

logger = logging.getLogger(__name__)


NEEDED = ("exam_id", "location", "level", "breast", "model_id", "model_label", "family", "model_key", "kind",
          "class", "probability")


@dataclass(frozen=True)
class BatchScores:
    """A batch table's rows for a study's cases, checked (see :func:`read_batch_scores`)."""

    table_path: Path
    models: dict[str, dict]  # model id -> label, family, classes, malignancy classes, key
    cases: list[tuple[str, str, str, list[dict]]]  # (case id, exam path, the batch's location, its rows)
    missing: int  # cases the table has no rows for
    foreign: tuple[str, ...]  # exam IDs of the table that are no case of the study


def read_batch_scores(table_path: str | Path, cases: Mapping[str, CaseEntry]) -> BatchScores:
    """The rows of a batch's ``scores.parquet`` (``python main.py batch``) for a study's cases, matched on case
    ID = exam ID with the same exam, checked before anything is stored: the columns the study reads, every
    breast row's probability a number in [0, 1] (the batch writes one there always: a null is a NaN a table
    editor stored), and no breast given two different probabilities by one model.

    Raises:
        StudyError: naming the table and, for a bad row, its exam, breast, model and value.
    """
    table_path = Path(table_path)
    if table_path.is_dir():  # the batch's folder named: its table
        table_path = table_path / SCORES_FILE
    try:
        table = read_scores(table_path)
    except (OSError, ValueError) as error:
        raise StudyError(f"{table_path}: the batch's score table cannot be read ({error})") from error
    lacking = [c for c in NEEDED if c not in table.column_names]
    if lacking:
        raise StudyError(f"{table_path}: this is not a batch's score table: it lacks the column(s) "
                         f"{', '.join(lacking)}")
    by_exam: dict[str, list[dict]] = {}
    for row in table.select(list(NEEDED)).to_pylist():
        by_exam.setdefault(row["exam_id"], []).append(row)
    models: dict[str, dict] = {}
    chosen = []
    for case_id, case in cases.items():
        exam_rows = by_exam.get(case_id)
        if not exam_rows:
            continue
        location = exam_rows[0]["location"] or ""
        if not location or Path(location).resolve() != Path(case.exam_path).resolve():
            raise StudyError(f"{table_path}: case {case_id!r} is {case.exam_path} in the case list, but the batch "
                             f"analysed {location or 'no location'} under that ID")
        _check_breast_rows(table_path, case_id, exam_rows)
        for row in exam_rows:
            model = models.setdefault(row["model_id"], {"label": row["model_label"], "family": row["family"],
                                                        "classes": [], "malignancy": [], "key": row["model_key"]})
            if row["kind"] == "class" and row["class"] not in model["classes"]:
                model["classes"].append(row["class"])
            elif row["kind"] == "malignancy" and not model["malignancy"]:
                model["malignancy"] = row["class"].split("+")
        chosen.append((case_id, case.exam_path, location, exam_rows))
    foreign = tuple(sorted(e for e in by_exam if e not in cases))
    return BatchScores(table_path, models, chosen, len(cases) - len(chosen), foreign)


def _check_breast_rows(table_path: Path, case_id: str, rows: list[dict]) -> None:
    given: dict[tuple, float] = {}
    for row in rows:
        if row["level"] != "breast":
            continue
        p = row["probability"]
        where = f"case {case_id} {row['breast']}, model {row['model_id']}, {row['kind']} {row['class']}"
        if p is None or not math.isfinite(p) or not 0.0 <= p <= 1.0:
            shown = "NaN (stored as null)" if p is None else repr(p)
            raise StudyError(f"{table_path}: {where}: the probability {shown} is not a number in [0, 1]; the "
                             "table is damaged (analyse that exam again)")
        key = (row["breast"], row["model_id"], row["kind"], row["class"])
        if key in given and given[key] != p:  # two runs' rows for one exam: which is right cannot be told
            raise StudyError(f"{table_path}: {where}: the table gives two different probabilities ({given[key]} "
                             f"and {p})")
        given[key] = p


def import_batch_scores(store: Store, study_id: int, table_path: str | Path) -> tuple[int, int]:
    """The models' scores of a study's cases from a batch's table (:func:`read_batch_scores`), stored.
    Returns (cases given scores, cases the table has no rows for)."""
    scores = read_batch_scores(table_path, study_cases(store, study_id))
    store_batch_scores(store, study_id, scores)
    return len(scores.cases), scores.missing


def store_batch_scores(store: Store, study_id: int, scores: BatchScores) -> None:
    """Stores checked scores: each breast's malignancy and class probabilities per model, and where the batch
    wrote the JSON result too, each model's part of it under the key the workstation and the reading screen
    look up (so aided reading shows the model's maps, and nothing is analysed again)."""
    models = scores.models
    _register_imported_models(store, study_id, models)

    def work(db, entries) -> None:
        for case_id, keys, exam_rows in entries:
            for model_id in models:
                for breast in ("L", "R"):
                    mine = [r for r in exam_rows if r["model_id"] == model_id and r["level"] == "breast"
                            and r["breast"] == breast]
                    if not mine:  # the batch's view rows of it, if any, have no result (failures.csv says why)
                        viewed = any(r["model_id"] == model_id and r["level"] == "view" and r["breast"] == breast
                                     for r in exam_rows)
                        values = (None, None, "no result on this breast (the batch's failures.csv says why)"
                                  if viewed else "no images of this breast")
                    else:
                        probabilities = {r["class"]: r["probability"] for r in mine if r["kind"] == "class"}
                        rule = [r["probability"] for r in mine if r["kind"] == "malignancy"]
                        values = (rule[0] if rule else None, json.dumps(probabilities), "")
                    if not write_model_score(db, study_id, case_id, breast, model_id, values[0], values[1],
                                             keys.get(model_id, ""), values[2]):  # stored at creation, before any
                        raise StudyError(f"case {case_id}: the table's score of model {model_id} differs from the "
                                         "one its readers were shown")

    entries = [(case_id, _store_batch_result(store, scores.table_path.parent, exam_path, location), exam_rows)
               for case_id, exam_path, location, exam_rows in scores.cases]
    store.submit(lambda db: work(db, entries)).result()


def _store_batch_result(store: Store, out: Path, exam_path, location: str) -> dict[str, str]:
    """Each model's part of the batch's JSON result of the exam, stored under the keys the workstation looks
    up for the exam as the study opens it; model id -> key ({} when the batch wrote no JSON result, or it
    does not fit the exam)."""
    from inference.intake.exam import load_exam  # noqa: PLC0415
    from inference.results.serialize import maps_from_bytes, result_from_data  # noqa: PLC0415

    marker = marker_path(out, ExamItem("", location))
    try:
        files = json.loads(marker.read_text(encoding="utf-8"))["files"]
        document_path = next(Path(f) for f in files if f.endswith(".json"))
        document = json.loads(document_path.read_text(encoding="utf-8"))
        data = dict(document["result"])
        maps = maps_from_bytes((document_path.parent / data.pop("maps_file")).read_bytes())
        result = result_from_data(data, maps)
    except (OSError, ValueError, KeyError, StopIteration, TypeError):
        return {}
    try:
        exam = load_exam(exam_path)
    except (MammoError, OSError) as error:
        logger.warning("a batch result is not stored: its exam cannot be read (%s)", type(error).__name__)
        return {}
    shapes = {view: image.pixels.shape for view, image in exam.views.items()}
    if shapes != {view: tuple(r.original_shape) for view, r in result.views.items()}:
        return {}  # not the images the study shows: the reading screen would draw on the wrong pixels
    return store_parts(store, exam, result)


def _register_imported_models(store: Store, study_id: int, models: dict[str, dict]) -> None:
    def work(db) -> None:
        for model_id, model in models.items():
            db.execute("INSERT OR IGNORE INTO study_models VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (study_id, model_id, model["label"], model["family"], json.dumps(model["classes"]),
                        json.dumps(model["malignancy"]), model["key"]))

    store.submit(work).result()
