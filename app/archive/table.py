"""The batch's one table of results, ``DIR/scores.parquet``: a row per exam, view, model and class, plus
breast and exam rows, each with the model's identity, the mode, the device and the time.

Each exam's rows are written as a small Parquet part of their own, atomically, by whichever process wrote
the exam's files (results never travel back through the cluster); the driver gathers them into
``scores.parquet`` atomically, during the run and at its end, so a partial run's table is always readable.
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from app.analysis import entry_numerics
from inference.files import atomic_path

if TYPE_CHECKING:
    from app.archive.sources import ExamItem
    from inference.results.exam_result import ExamResult

SCHEMA = pa.schema([
    ("exam_id", pa.string()),
    ("location", pa.string()),
    ("level", pa.string()),  # view | breast | exam
    ("view", pa.string()),  # L-CC … on view rows, else ""
    ("breast", pa.string()),  # L | R on view and breast rows; on exam rows the breast that decides, or ""
    ("model_id", pa.string()),
    ("model_label", pa.string()),
    ("family", pa.string()),
    ("model_key", pa.string()),  # the members' identity keys (file hash based), '+'-joined for an ensemble
    ("model_sha256", pa.string()),  # the members' SHA-256, '+'-joined: the hash the screen and reports show the start of
    ("kind", pa.string()),  # class: a class probability | malignancy: P(malignant) by the model's rule
    ("class", pa.string()),  # the class; on malignancy rows the rule's classes, '+'-joined
    ("probability", pa.float64()),  # null where the model gives none
    ("counted", pa.bool_()),  # view rows: whether the view counts in the breast and exam scores
    # breast rows: the views the breast's score was taken over, '+'-joined ("L-CC" alone: CC only); exam rows: the
    # deciding breast's; view rows: the view (a one-view breast looked like a two-view one in the table)
    ("views_used", pa.string()),
    ("mode", pa.string()),
    ("numerics", pa.string()),
    ("device", pa.string()),
    ("seconds", pa.float64()),  # the models' time for the whole exam
    ("analysed_at", pa.string()),  # UTC, ISO 8601; empty in a de-identified run
    # the exam's facts from its DICOM headers (app/archive/facts.py), null where unknown; de-identified with it
    ("density", pa.string()),  # a-d
    ("manufacturer", pa.string()),
    ("age", pa.float64()),  # whole years at the study; over 89 written as 90 in a de-identified batch
    ("study_date", pa.string()),  # ISO 8601; shifted by the patient's offset in a de-identified batch
])

SCORES_FILE = "scores.parquet"
BOOKKEEPING = ".batch"  # markers, table parts and the journal, inside the output folder


def part_path(out: Path, item: ExamItem) -> Path:
    return out / BOOKKEEPING / "parts" / f"{item.key}.parquet"


def score_rows(item: ExamItem, result: ExamResult, seconds: float, facts: dict | None = None,
               deidentified: bool = False) -> list[dict]:
    """The table's rows of one analysed exam; ``facts`` (``app.archive.facts.exam_facts``) on every row.
    ``deidentified``: no time of analysis (empty). A true time beside the shifted study date gave the patient's
    offset away, and one moved by the offset gave it to anyone who knew roughly when the batch ran."""
    provenance = result.provenance
    common = {"exam_id": item.exam_id, "location": item.location, "mode": provenance.mode.value,
              "device": provenance.device, "seconds": float(seconds),
              "analysed_at": None if deidentified else datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              **{name: (facts or {}).get(name) for name in ("density", "manufacturer", "age", "study_date")}}
    rows = []
    for entry in result.entries:
        model = {"model_id": entry.id, "model_label": entry.label, "family": entry.family,
                 "model_key": "+".join(m.key for m in entry.members),
                 "model_sha256": "+".join(m.sha256 for m in entry.members), "numerics": entry_numerics(result, entry)}
        rule = "+".join(entry.malignancy)

        def add(level: str, view: str, breast: str, probabilities, malignant, counted: bool,
                model=model, rule=rule, class_breasts=None, views_used: str = "", breast_views=None) -> None:
            place = {**common, **model, "level": level, "view": view, "breast": breast, "counted": counted,
                     "views_used": views_used or view}
            for name, value in probabilities.items():
                own = (class_breasts or {}).get(name, breast)  # an exam class row: its own breast's views
                where = {**place, "breast": own, "views_used": (breast_views or {}).get(own, place["views_used"])}
                rows.append({**where, "kind": "class", "class": name, "probability": _finite(value, place, name)})
            if rule:
                rows.append({**place, "kind": "malignancy", "class": rule,
                             "probability": None if malignant is None else _finite(malignant, place, rule)})

        for view, view_result in result.views.items():
            scores = view_result.result(entry.id)
            if scores is None:  # no result (not finite, or refused): null, never a number, and not counted
                add("view", view.value, view.laterality.value, dict.fromkeys(entry.classes), None, False)
                continue
            malignant = entry.malignant(scores.probabilities)  # the one rule (clipped to 1), as every screen shows it
            add("view", view.value, view.laterality.value, scores.probabilities, malignant, view_result.counted)
        views_of = {side.value: "+".join(v.value for v in b.entries[entry.id].views)  # each breast's, once
                    for side, b in result.breasts.items() if entry.id in b.entries}
        for laterality, breast in result.breasts.items():
            scores = breast.entries.get(entry.id)
            if scores is not None:
                add("breast", "", laterality.value, scores.probabilities, scores.malignant, True,
                    views_used=views_of[laterality.value])
        decision = result.exam.get(entry.id)
        if decision is not None:
            deciding = decision.breast.value if decision.breast is not None else ""
            add("exam", "", deciding, decision.probabilities, decision.malignant, True,
                class_breasts=_class_breasts(result, entry.id, decision.probabilities, deciding),
                views_used=views_of.get(deciding, ""), breast_views=views_of)
    return rows


def _class_breasts(result: ExamResult, entry_id: str, probabilities, deciding: str) -> dict[str, str]:
    """Each exam-level class's breast: the one whose probability it is. For independent classes the exam's is
    each class's maximum over the breasts, which may be the other breast's than the malignancy's (a row said
    breast R beside the left breast's benign probability); the deciding breast where both give it."""
    out = {}
    for name, value in probabilities.items():
        givers = [side.value for side, breast in sorted(result.breasts.items(), key=lambda item: item[0].value)
                  if (scores := breast.entries.get(entry_id)) is not None and scores.probabilities.get(name) == value]
        out[name] = deciding if deciding in givers or not givers else givers[0]
    return out


def _finite(value: float | None, place: dict, name: str) -> float | None:
    """The value as a float; a NaN or infinity is refused loudly (the analysis makes such an output "no
    result", so one here is a bug, and a table must never hold it as a score)."""
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{place['exam_id']} {place['level']} {place['view'] or place['breast']} {name}: "
                         f"{number} is not a finite number; refusing to write it to the score table")
    return number


def write_part(out: Path, item: ExamItem, rows: list[dict]) -> Path:
    """One exam's rows as a Parquet part (atomically; a rerun of the exam replaces it)."""
    path = part_path(out, item)
    with atomic_path(path) as temporary:
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), temporary)
    return path


def read_part(part: Path) -> pa.Table | None:
    """One exam's rows, or None when the part cannot be read (missing or damaged: the exam is redone)."""
    try:
        return pq.read_table(part, schema=SCHEMA)
    except (OSError, pa.ArrowInvalid):
        return None


def write_scores(out: Path, tables: list[pa.Table]) -> Path:
    """``out/scores.parquet`` from the finished exams' rows, atomically."""
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    path = out / SCORES_FILE
    with atomic_path(path) as temporary:
        pq.write_table(table, temporary)
    return path


def read_scores(path: str | Path) -> pa.Table:
    """A score table with its columns in the types a batch writes them (an integer column read as numbers);
    a column that cannot be (probabilities stored as text by an editor) raises ValueError naming it."""
    table = pq.read_table(path)
    for index, name in enumerate(table.column_names):
        if name not in SCHEMA.names or table.schema.field(name).type == SCHEMA.field(name).type:
            continue
        wanted = SCHEMA.field(name).type
        try:
            column = table.column(index).cast(wanted)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise ValueError(f"its column '{name}' holds {table.schema.field(name).type} values, not {wanted}: the "
                             "table was changed after the batch wrote it") from error
        table = table.set_column(index, SCHEMA.field(name), column)
    return table
