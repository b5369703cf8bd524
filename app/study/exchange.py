"""A study as data: export and import, and the tidy CSV (MRMCaov / RJafroc) and iMRMC files."""

from __future__ import annotations

import base64
import csv
import re
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

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

    Raises:
        StudyError: not an export this version reads, or rows the database refuses (named by table and row)."""
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

    def work(db) -> int:
        if db.execute("SELECT 1 FROM studies WHERE name=?", (study["name"],)).fetchone():
            raise StudyError(f"a study called {study['name']!r} is already in this database: import it under "
                             "another name (--name)")
        try:
            cursor = db.execute(
                "INSERT INTO studies (name, design, seed, washout_days, created_at) VALUES (?, ?, ?, ?, ?)",
                (study["name"], study["design"], study["seed"], study["washout_days"], study["created_at"]))
        except sqlite3.Error as error:
            raise StudyError(f"the export's study is refused ({error}): the export is damaged or was edited") from error
        new_id = cursor.lastrowid
        reads = sorted(data.get("study_reads", []), key=lambda r: str(r.get("committed_at") or ""))
        # the store's triggers want the order of real life: unaided reads, then the reveal, then aided reads;
        # a crossover's first readings before its second (the order they were committed in)
        tables = ("study_readers", "study_cases", "reading_order", "crossover_arms", "study_models", "model_scores",
                  "study_scoring", "study_lesions", "study_model_calibrations")
        batches = [(t, data.get(t, [])) for t in tables]
        batches += [("study_reads", [r for r in reads if r.get("modality") != "aided"]), ("reveals", data.get("reveals", [])),
                    ("study_reads", [r for r in reads if r.get("modality") == "aided"]), ("study_marks", data.get("study_marks", []))]
        for table, rows in batches:
            known = {column[1] for column in db.execute(f"PRAGMA table_info({table})")}  # noqa: S608 - our names
            for number, row in enumerate(rows, start=1):
                unknown = sorted(set(row) - known)
                if unknown:  # a column name from the file never reaches the SQL unless it is the table's own
                    raise StudyError(f"the export's {table} row {number} has unknown columns: {', '.join(unknown)}")
                try:
                    values = {**{k: _uncell(v) for k, v in row.items()}, "study_id": new_id}
                    columns, marks = ", ".join(values), ", ".join("?" for _ in values)
                    db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(values.values()))  # noqa: S608
                except (sqlite3.Error, ValueError, TypeError) as error:  # the file's content (a cell that is no
                    # value, base64 that is not), not the database, is at fault
                    raise StudyError(f"the export's {table} row {number} is refused ({error}): the export is "
                                     "damaged or was edited") from error
        return new_id

    return store.submit(work).result()


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
    """reader, modality, case, truth, score (MRMCaov / RJafroc-style input)."""
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["reader", "modality", "case", "truth", "score"])
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
