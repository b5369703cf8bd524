"""A study as data: export and import, and the tidy CSV (MRMCaov / RJafroc) and iMRMC files."""

from __future__ import annotations

import base64
import csv
import math
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from app.reading import birads_problem
from app.study.design import plan_problems, refuse_a_name_alike, sessions_of
from app.study.errors import StudyError
from app.study.store import Store


EXPORT_TABLES = ("studies", "study_readers", "study_cases", "reading_order", "crossover_arms", "study_reads", "reveals",
                 "study_models", "model_scores", "study_marks", "study_scoring", "study_lesions",
                 "study_model_calibrations")
EXPORT_VERSION = 2  # what export_study writes and import_study reads (1 is still read)
BYTES_KEY = "base64"  # a BLOB (a lesion's outline as PNG) in JSON: {"base64": "..."}


def _cell(value: object) -> object:
    return {BYTES_KEY: base64.b64encode(bytes(value)).decode("ascii")} if isinstance(value, (bytes, memoryview)) \
        else value


def _uncell(value: object) -> object:
    return base64.b64decode(value[BYTES_KEY]) if isinstance(value, dict) and set(value) == {BYTES_KEY} else value


def export_study(store: Store, study_id: int) -> dict:
    """The whole study (design, readers, cases with truth, orders, reads, reveals, model scores) as data."""
    out = {"format": "mammo-reader/study", "version": EXPORT_VERSION}
    for table in EXPORT_TABLES:
        cursor = store._connect().execute(f"SELECT * FROM {table} WHERE study_id=?", (study_id,))  # noqa: S608
        columns = [d[0] for d in cursor.description]
        out[table] = [{c: _cell(v) for c, v in zip(columns, row, strict=True)} for row in cursor.fetchall()]
    return out


def check_export(data: object) -> None:
    """Refuse what is not a study export this version can read: another format, a newer version, a table that is
    not a list of rows (the file is input: checked before anything reaches the database)."""
    if not isinstance(data, dict) or data.get("format") != "mammo-reader/study":
        raise StudyError("not a Mammo Reader study export")
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StudyError(f"the export's version {version!r} is not a version number")
    if version > EXPORT_VERSION:
        raise StudyError(f"the export was written by a newer Mammo Reader (version {version}; this one reads up to "
                         f"{EXPORT_VERSION}): update Mammo Reader to import it")
    for table in EXPORT_TABLES:
        rows = data.get(table, [])
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise StudyError(f"the export's {table!r} is not a list of rows")
    if len(data.get("studies", [])) != 1:
        raise StudyError(f"the export holds {len(data.get('studies', []))} studies; an export holds one")


def import_study(store: Store, data: dict, name: str | None = None) -> int:
    """Re-create an exported study (under ``name`` if given); returns the new study id.

    All or nothing: one transaction, rolled back at the first refusal.

    Raises:
        StudyError: not an export this version reads; a row the database refuses, a row of a case that is not in
            the study or of someone who is not one of its readers (each named by table, its number in the file
            counted from 1, and its reader, case, modality and breast); a reading plan that does not give each
            reader each case exactly once per session."""
    check_export(data)
    if data.get("version", 1) < 2:
        data = _from_version_1(data)
    study = dict(data["studies"][0])
    study.pop("study_id", None)
    if name:
        study["name"] = name
    missing = [key for key in ("name", "design", "seed", "washout_days", "created_at") if key not in study]
    if missing:
        raise StudyError(f"the export's study lacks {', '.join(missing)}")

    def numbered(table: str) -> list[tuple[int, dict]]:
        return list(enumerate(data.get(table, []), start=1))  # the row's number in the file, for every message

    def work(db) -> int:
        if db.execute("SELECT 1 FROM studies WHERE name=?", (study["name"],)).fetchone():
            raise StudyError(f"a study called {study['name']!r} is already in this database: import it under "
                             "another name (--name)")
        refuse_a_name_alike(db, study["name"])
        try:
            cursor = db.execute(
                "INSERT INTO studies (name, design, seed, washout_days, created_at) VALUES (?, ?, ?, ?, ?)",
                (study["name"], study["design"], study["seed"], study["washout_days"], study["created_at"]))
        except sqlite3.Error as error:
            raise StudyError(f"the export's study is refused ({error}): the export is damaged or was edited") from error
        new_id = cursor.lastrowid
        for table in ("study_readers", "study_cases", "reading_order", "crossover_arms"):
            _insert_rows(db, new_id, table, numbered(table))
        _check_plan(db, new_id, study["design"], numbered("reading_order"))
        for table in ("study_models", "model_scores", "study_scoring", "study_lesions", "study_model_calibrations"):
            _insert_rows(db, new_id, table, numbered(table))
        # the store's triggers want the order of real life: unaided reads, then the reveal, then aided reads;
        # a crossover's first readings before its second (the order they were committed in). Messages still
        # give each row's number in the file
        reads = sorted(numbered("study_reads"), key=lambda pair: _when(pair[1].get("committed_at")))
        _insert_rows(db, new_id, "study_reads", [pair for pair in reads if pair[1].get("modality") != "aided"])
        _check_whole_reads(db, new_id)  # before the reveals, which would refuse a half unaided read less clearly
        _insert_rows(db, new_id, "reveals", numbered("reveals"))
        _insert_rows(db, new_id, "study_reads", [pair for pair in reads if pair[1].get("modality") == "aided"])
        _check_whole_reads(db, new_id)
        _insert_rows(db, new_id, "study_marks", numbered("study_marks"))
        return new_id

    return store.submit(work).result()


def _check_whole_reads(db, study_id: int) -> None:
    """Refuse a read with one breast's row: the reader could never complete it (each commit of it is refused
    as replacing a committed read), and the analyses would leave it out without a word."""
    half = db.execute("SELECT reader, case_id, modality, GROUP_CONCAT(breast) FROM study_reads WHERE study_id=? "
                      "GROUP BY reader, case_id, modality HAVING COUNT(DISTINCT breast) <> 2 "
                      "ORDER BY reader, case_id, modality", (study_id,)).fetchall()
    if half:
        reader, case, modality, breasts = half[0]
        more = f" (and {len(half) - 1} more)" if len(half) > 1 else ""
        raise StudyError(f"the export's {modality} read of case {case!r} by reader {reader!r} gives breast(s) "
                         f"{breasts} only{more}: a read gives both breasts; the export is damaged or was edited")


def _when(value: object) -> tuple:
    """A sort key for a commit time: numbers by value (as text, 9.5 sorted after 10.0), anything else after them."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _row_name(table: str, number: int, row: dict) -> str:
    """'the export's study_reads row 3 (…: reader 'A', case 'c00', modality aided, breast L)'."""
    parts = [f"{label} {row[key]!r}" if key in ("reader", "case_id") else f"{label} {row[key]}"
             for key, label in (("reader", "reader"), ("case_id", "case"), ("modality", "modality"),
                                ("breast", "breast")) if key in row]
    return f"the export's {table} row {number} (counted from 1 in the file{': ' if parts else ''}{', '.join(parts)})"


def _value_problem(row: dict) -> str:
    """What is wrong with a row's BI-RADS category or reading time ("" when nothing)."""
    # a cell of another kind (an encoded one) is left to the insert, which says it is damaged
    if isinstance(row.get("birads"), str) and (problem := birads_problem(row["birads"])):
        return problem
    if isinstance(row.get("duration_s"), (str, int, float)):
        try:
            seconds = float(row["duration_s"])
        except (TypeError, ValueError):
            return f"the reading time {row['duration_s']!r} is no number of seconds"
        if not math.isfinite(seconds) or seconds < 0:
            return f"the reading time {row['duration_s']!r} is not a number of seconds of 0 or more"
    for column in ("malignant", "benign"):  # a NaN reached the database as null: "NOT NULL constraint failed"
        value = row.get(column)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or not 0 <= value <= 1):
            return f"the probability {column} {value!r} is not a number in [0, 1]"
    for column, value in row.items():  # the times every row keeps (committed_at …): "yesterday" was imported
        if column.endswith("_at") and (isinstance(value, bool) or not isinstance(value, (int, float))
                                       or not math.isfinite(value) or value < 0):
            return f"{column} {value!r} is no time (seconds since 1970-01-01 UTC, as the export writes it)"
    return ""


def _in_study(db, sql: str, study_id: int, value: object) -> bool:
    """Whether ``value`` is one of the study's readers or cases (compared by the database, as the insert would)."""
    try:
        return db.execute(sql, (study_id, value)).fetchone() is not None
    except (sqlite3.Error, ValueError, TypeError, OverflowError):
        return True  # a value that is no value at all: the insert itself refuses it, saying why


def _insert_rows(db, study_id: int, table: str, rows: Sequence[tuple[int, dict]]) -> None:
    """Insert an export's rows into ``table`` for ``study_id``; the first refused row raises StudyError with its
    number in the file."""
    known = {column[1] for column in db.execute(f"PRAGMA table_info({table})")}  # noqa: S608 - our names
    for number, row in rows:
        where = _row_name(table, number, row)
        unknown = sorted(set(row) - known)
        if unknown:  # a column name from the file never reaches the SQL unless it is the table's own
            raise StudyError(f"{where} has unknown columns: {', '.join(unknown)}")
        if isinstance(row.get("reader"), str):  # readers are kept in one Unicode form, as at creation
            row = {**row, "reader": unicodedata.normalize("NFC", row["reader"])}
        problem = _value_problem(row)
        if problem:  # what the reading screen never writes: an edited export
            raise StudyError(f"{where}: {problem}")
        # said before the database's triggers answer with what they check first (seen: a read of case 'zz99' was
        # refused with "an aided read needs the AI to have been shown first")
        if table != "study_cases" and "case_id" in row and not _in_study(
                db, "SELECT 1 FROM study_cases WHERE study_id=? AND case_id=?", study_id, row["case_id"]):
            raise StudyError(f"{where}: case {row['case_id']!r} is not in the study")
        if table != "study_readers" and "reader" in row and not _in_study(
                db, "SELECT 1 FROM study_readers WHERE study_id=? AND reader=?", study_id, row["reader"]):
            raise StudyError(f"{where}: {row['reader']!r} is not a reader of the study")
        try:
            values = {**{k: _uncell(v) for k, v in row.items()}, "study_id": study_id}
            columns, marks = ", ".join(values), ", ".join("?" for _ in values)
            db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(values.values()))  # noqa: S608
        except (sqlite3.Error, ValueError, TypeError) as error:  # the file's content (a cell that is no
            # value, base64 that is not), not the database, is at fault
            raise StudyError(f"{where} is refused ({error}): the export is damaged or was edited") from error


def _check_plan(db, study_id: int, design: str, order_rows: Sequence[tuple[int, dict]]) -> None:
    """Refuse a reading plan (orders, crossover arms) that is not one ``create_study`` makes: a case listed twice
    counted as a reading more ("A: 13 of 13 read" on a 12-case study). ``order_rows``: the file's reading_order
    rows with their numbers, to name those that list a case too often."""
    readers = [r for (r,) in db.execute("SELECT reader FROM study_readers WHERE study_id=? ORDER BY reader",
                                        (study_id,))]
    cases = [c for (c,) in db.execute("SELECT case_id FROM study_cases WHERE study_id=?", (study_id,))]
    orders: dict[str, list[str]] = {}
    for reader, case_id in db.execute("SELECT reader, case_id FROM reading_order WHERE study_id=? "
                                      "ORDER BY reader, position", (study_id,)):
        orders.setdefault(reader, []).append(case_id)
    arms: dict[str, dict[str, str]] = {}
    for reader, case_id, first in db.execute("SELECT reader, case_id, first_modality FROM crossover_arms "
                                             "WHERE study_id=?", (study_id,)):
        arms.setdefault(reader, {})[case_id] = first
    problems = plan_problems(design, readers, cases, orders, arms)
    if problems:
        listed: dict[tuple, list[int]] = {}
        for number, row in order_rows:
            listed.setdefault((str(row.get("reader")), str(row.get("case_id"))), []).append(number)
        problems += [f"rows {', '.join(map(str, numbers))} of reading_order (counted from 1 in the file) list case "
                     f"{case!r} for reader {reader!r}" for (reader, case), numbers in listed.items()
                     if len(numbers) > sessions_of(design)]
        tables = "reading_order, crossover_arms" if sessions_of(design) == 2 else "reading_order"
        raise StudyError(f"the export's reading plan ({tables}) does not give each reader each case exactly once "
                         f"per session: {'; '.join(problems)}. The export is damaged or was edited")


def studies_like(store: Store, data: dict) -> list[str]:
    """The names of the studies in ``store`` that this export was made from or imported as already (the same
    creation time, design and seed): an import under a new name would be a second copy of the same reads."""
    try:
        check_export(data)  # what import_study refuses, naming the part, is no study to compare
    except StudyError:
        return []
    study = (data.get("studies") or [{}])[0]
    keys = ("created_at", "design", "seed")
    if not isinstance(study, dict) or not all(isinstance(study.get(key), (str, int, float)) for key in keys):
        return []
    rows = store.read("SELECT name FROM studies WHERE created_at=? AND design=? AND seed=? ORDER BY study_id",
                      (study["created_at"], study["design"], study["seed"]))
    return [row[0] for row in rows]


def _from_version_1(data: dict) -> dict:
    """Version 1 exports had one model's scores without its identity: they become the scores of a model
    called 'model' (as the store's migration 5 does)."""
    import json  # noqa: PLC0415

    scores = []
    for row in data.get("model_scores", []):
        known = row.get("malignant") is not None
        scores.append({"case_id": row["case_id"], "breast": row["breast"], "model_id": "model",
                       "malignant": row.get("malignant"),
                       "probabilities_json": json.dumps({"benign": row.get("benign"), "malignant": row["malignant"]})
                       if known else None, "result_key": row.get("cache_key", ""),
                       "missing_reason": row.get("missing_reason", "") or ("" if known else "no images of this breast")})
    models = [{"model_id": "model", "label": "model", "family": "gmic", "classes_json": '["benign", "malignant"]',
               "malignancy_json": '["malignant"]', "model_key": ""}] if scores else []
    return {**data, "model_scores": scores, "study_models": models}


def write_tidy_csv(rows: Iterable[dict], path: str | Path) -> None:
    """reader, modality, case, truth, score (MRMCaov / RJafroc-style input); at breast level also ``cluster``,
    the case a breast is of (its sampling unit: a re-analysis taking breasts as independent gets narrower CIs
    than this app's)."""
    rows = list(rows)
    clustered = bool(rows) and all("cluster" in row for row in rows)
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        # plain csv: R's input, not a spreadsheet's; an apostrophe before "-c1" made another case than the case
        # list's, the truth's and the iMRMC file's (a code review)
        writer = csv.DictWriter(handle, fieldnames=["reader", "modality", "case", "truth", "score",
                                                    *(["cluster"] if clustered else [])])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in writer.fieldnames})


def _imrmc_id(text: object) -> str:
    """iMRMC identifiers may not hold spaces or commas."""
    return re.sub(r"\W+", "_", str(text)).strip("_")


def _imrmc_ids(values) -> dict:
    """One iMRMC identifier per distinct value: two names that differ only in what an identifier cannot hold
    ("Dr. A" and "Dr A", "c-1" and "c_1") became one reader or case; the later one takes "_2", "_3" …"""
    ids: dict = {}
    taken: set[str] = set()
    for value in dict.fromkeys(values):
        base = _imrmc_id(value) or "id"
        name, number = base, 1
        while name in taken:
            number += 1
            name = f"{base}_{number}"
        ids[value] = name
        taken.add(name)
    return ids


def write_imrmc(rows: Sequence[dict], path: str | Path, description: str = "Mammo Reader export") -> None:
    """iMRMC input format: truth rows (reader -1, modality 0) then one row per score."""
    cases = {}
    for row in rows:
        cases.setdefault(row["case"], row["truth"])
    readers, case_ids = _imrmc_ids(r["reader"] for r in rows), _imrmc_ids(cases)
    modalities = _imrmc_ids(r["modality"] for r in rows)
    lines = [description, "", "BEGIN DATA:"]
    lines += [f"-1,{case_ids[case]},0,{truth}" for case, truth in cases.items()]
    lines += [f"{readers[r['reader']]},{case_ids[r['case']]},{modalities[r['modality']]},{r['score']}" for r in rows]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
