"""The outcomes a site joins to its scores: one truth per breast (cancer 0/1) with the optional facts that
define subgroups and drift (density, manufacturer, age, study date).

Two sources are read:

* the site's CSV: ``exam_id``, ``breast`` (L/R), ``cancer`` (0/1), optional ``density`` (a-d or 1-4),
  ``manufacturer``, ``age``, ``study_date`` (ISO 8601 or DICOM's YYYYMMDD); separated by ',' or, when the
  header has no ',', by ';' (a European spreadsheet's CSV) or a tab;
* CBIS-DDSM's description CSVs (``mass_case_description_*.csv``, ``calc_case_description_*.csv``): one row per
  abnormality with ``patient_id``, ``left or right breast``, ``image view``, ``pathology`` (MALIGNANT, BENIGN,
  BENIGN_WITHOUT_CALLBACK) and ``breast density`` (``breast_density`` in the mass files). One exam per
  patient (exam ID = ``patient_id``); a breast is a cancer when any of its abnormalities is MALIGNANT. Only the
  breasts the dataset describes have an outcome: the other breast of a patient is not known to be normal.
"""

from __future__ import annotations

import csv
import datetime
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from app.text_lists import numbered_rows
from app.validation.errors import ValidationInputError

DENSITIES = ("a", "b", "c", "d")
CBIS_PATHOLOGIES = {"MALIGNANT": 1, "BENIGN": 0, "BENIGN_WITHOUT_CALLBACK": 0}
CBIS_SIDES = {"LEFT": "L", "RIGHT": "R"}


@dataclass(frozen=True)
class BreastOutcome:
    """The truth of one breast of one exam and the facts that place it in subgroups."""

    exam_id: str
    breast: str  # L | R
    cancer: int  # 0 | 1
    density: str = ""  # a-d, "" when unknown
    manufacturer: str = ""
    age: float | None = None
    study_date: datetime.date | None = None
    source: str = ""  # the file it came from

    @property
    def key(self) -> tuple[str, str]:
        return (self.exam_id, self.breast)


def _density(value: str, path: Path, line: int) -> str:
    text = value.strip().lower()
    if not text:
        return ""
    if text in DENSITIES:
        return text
    if text in ("1", "2", "3", "4", "1.0", "2.0", "3.0", "4.0"):
        return DENSITIES[int(float(text)) - 1]
    raise ValidationInputError(f"line {line}: breast density {value!r} is neither a-d nor 1-4", path)


def _date(value: str, path: Path, line: int) -> datetime.date | None:
    text = value.strip()
    if not text:
        return None
    for form in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.datetime.strptime(text[:10] if form == "%Y-%m-%d" else text, form).date()
        except ValueError:
            continue
    raise ValidationInputError(f"line {line}: study date {value!r} is neither YYYY-MM-DD nor YYYYMMDD", path)


def _age(value: str, path: Path, line: int) -> float | None:
    text = value.strip().upper().rstrip("Y")  # DICOM's age string: 052Y
    if not text:
        return None
    try:
        age = float(text)
    except ValueError:
        age = float("nan")
    if not 0.0 <= age < 150.0:  # NaN and inf too
        raise ValidationInputError(f"line {line}: age {value!r} is not a number of years (0 to 149)", path)
    return age


def separator(header: str) -> str:
    """The header line's field separator: ',' or, as European spreadsheets save a CSV, ';' (or a tab)."""
    if "," in header:
        return ","
    return next((sep for sep in (";", "\t") if sep in header), ",")


def _rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header's columns and each row with its line in the file."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = handle.readline()
            if not header.strip():
                raise ValidationInputError("the file is empty (it needs a header line: exam_id,breast,cancer)", path)
            handle.seek(0)
            reader = csv.DictReader(handle, delimiter=separator(header))
            rows = numbered_rows(reader)
            return [name.strip() for name in reader.fieldnames or []], rows
    except UnicodeDecodeError as error:  # a spreadsheet's "CSV" in its own code page (Windows-1252, Latin-1)
        raise ValidationInputError(f"the outcomes file is not UTF-8 text ({_undecodable(path)}): save it as "
                                   "\"CSV UTF-8\" (or in UTF-8 from any editor) and run again", path) from error
    except (OSError, csv.Error) as error:
        raise ValidationInputError(f"the outcomes file could not be read ({error})", path) from error


def _undecodable(path: Path) -> str:
    """"byte 0xf4 on line 3" where the file first stops being UTF-8."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        return f"byte 0x{raw[error.start]:02x} on line {line}"
    return "it could not be decoded"


def is_cbis_ddsm(columns: Iterable[str]) -> bool:
    names = {c.strip().lower() for c in columns}
    return {"patient_id", "left or right breast", "pathology"} <= names


def read_site_csv(path: Path) -> list[BreastOutcome]:
    """The site's outcomes CSV (``exam_id``, ``breast``, ``cancer`` and the optional columns)."""
    columns, rows = _rows(path)
    missing = {"exam_id", "breast", "cancer"} - {c.lower() for c in columns}  # Exam_ID as a spreadsheet wrote it
    if missing:
        has = ", ".join(c for c in columns if c) or "none"
        raise ValidationInputError(f"the outcomes file lacks the column(s) {', '.join(sorted(missing))} (it needs "
                                   f"exam_id, breast and cancer; its header has: {has})", path)
    out, problems = [], []
    first: dict[tuple[str, str], tuple[int, BreastOutcome]] = {}  # breast -> (its first line, its outcome there)
    for line, row in rows:
        try:
            outcome = _site_row(line, {k.strip().lower(): (v or "") for k, v in row.items() if k is not None}, path)
        except ValidationInputError as error:
            problems.append(error.message)
            continue
        earlier_line, earlier = first.setdefault(outcome.key, (line, outcome))
        if earlier.cancer != outcome.cancer:  # said with the file's other problems, not after they are fixed
            problems.append(f"line {line}: exam {outcome.exam_id} breast {outcome.breast} is cancer {outcome.cancer} "
                            f"here and {earlier.cancer} on line {earlier_line}")
        elif (differ := _differences(earlier, outcome)):  # which row is this breast's cannot be told
            problems.append(f"line {line}: exam {outcome.exam_id} breast {outcome.breast} is given again (first on "
                            f"line {earlier_line}) with another {differ}; give each breast once")
        out.append(outcome)
    _refuse_if_any(problems, path)
    return out


def _differences(first: BreastOutcome, again: BreastOutcome) -> str:
    """"study_date (2019-01-01, not 2026-04-26)" … for the facts two rows of one breast give differently."""
    named = []
    for name in ("density", "manufacturer", "age", "study_date"):
        a, b = getattr(first, name), getattr(again, name)
        if a != b:
            shown = [("(none)" if v in (None, "") else str(v)) for v in (b, a)]
            named.append(f"{name} ({shown[0]}, not {shown[1]})")
    return ", ".join(named)


def _site_row(line: int, row: dict[str, str], path: Path) -> BreastOutcome:
    if not row["exam_id"].strip():
        raise ValidationInputError(f"line {line}: exam_id is empty", path)
    # L or R, or the word (any capitals); its first letter alone took "Lymph node" for the left breast
    side = row["breast"].strip().upper()
    breast = CBIS_SIDES.get(side, side)
    if breast not in ("L", "R"):
        raise ValidationInputError(f"line {line}: breast {row['breast']!r} is neither L nor R (nor left or right)",
                                   path)
    cancer = row["cancer"].strip()
    cancer = {"0.0": "0", "1.0": "1"}.get(cancer, cancer)  # a table editor's export of whole numbers
    if not cancer:
        raise ValidationInputError(f"line {line}: cancer is empty: give 0 or 1, or leave out a breast whose outcome "
                                   "is not known", path)
    if cancer not in ("0", "1"):
        raise ValidationInputError(f"line {line}: cancer {row['cancer']!r} is neither 0 nor 1", path)
    return BreastOutcome(
        exam_id=row["exam_id"].strip(), breast=breast, cancer=int(cancer),
        density=_density(row.get("density", ""), path, line), manufacturer=row.get("manufacturer", "").strip(),
        age=_age(row.get("age", ""), path, line), study_date=_date(row.get("study_date", ""), path, line),
        source=path.name)


SHOWN_PROBLEMS = 10


def _refuse_if_any(problems: list[str], path: Path) -> None:
    """Every problem of the file in one message (the first ten named), so that one round of corrections fixes
    the file, not one line a run."""
    if not problems:
        return
    if len(problems) == 1:
        raise ValidationInputError(problems[0], path)
    shown = "; ".join(problems[:SHOWN_PROBLEMS])
    more = f"; and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    raise ValidationInputError(f"{len(problems)} problems: {shown}{more}", path)


def read_cbis_ddsm_csv(path: Path) -> list[BreastOutcome]:
    """One CBIS-DDSM description CSV, one outcome per (patient, breast) it describes."""
    columns, rows = _rows(path)
    lowered = {c.lower(): c for c in columns}
    density_column = lowered.get("breast density") or lowered.get("breast_density")
    by_breast: dict[tuple[str, str], BreastOutcome] = {}
    problems = []
    for line, raw in rows:
        row = {k.strip().lower(): (v or "") for k, v in raw.items() if k is not None}
        try:
            outcome = _cbis_row(line, row, density_column, path)
        except ValidationInputError as error:
            problems.append(error.message)
            continue
        by_breast[outcome.key] = _merge(by_breast.get(outcome.key), outcome)
    _refuse_if_any(problems, path)
    return list(by_breast.values())


def _cbis_row(line: int, row: dict[str, str], density_column: str | None, path: Path) -> BreastOutcome:
    if not row["patient_id"].strip():
        raise ValidationInputError(f"line {line}: patient_id is empty", path)
    side = CBIS_SIDES.get(row["left or right breast"].strip().upper())
    if side is None:
        raise ValidationInputError(f"line {line}: 'left or right breast' is {row['left or right breast']!r}, "
                                   "not LEFT or RIGHT", path)
    pathology = row["pathology"].strip().upper()
    if pathology not in CBIS_PATHOLOGIES:
        raise ValidationInputError(f"line {line}: pathology {row['pathology']!r} is none of "
                                   f"{', '.join(CBIS_PATHOLOGIES)}", path)
    density = _density(row.get(density_column.lower(), ""), path, line) if density_column else ""
    return BreastOutcome(row["patient_id"].strip(), side, CBIS_PATHOLOGIES[pathology], density, source=path.name)


def _merge(old: BreastOutcome | None, new: BreastOutcome) -> BreastOutcome:
    """Two descriptions of one breast (several abnormalities, mass and calc files): a cancer if either says
    so; the facts the first gave are kept, missing ones filled from the second."""
    if old is None:
        return new
    return replace(old, cancer=max(old.cancer, new.cancer), density=old.density or new.density,
                   manufacturer=old.manufacturer or new.manufacturer,
                   age=old.age if old.age is not None else new.age,
                   study_date=old.study_date or new.study_date,
                   source=old.source if new.source in old.source.split("+") else f"{old.source}+{new.source}")


def _files(source: Path) -> list[Path]:
    if source.is_dir():
        found = sorted(p for p in source.iterdir() if p.suffix.lower() == ".csv")
        if not found:
            raise ValidationInputError("no CSV file in this folder", source)
        return found
    if not source.is_file():
        raise ValidationInputError("no such outcomes file", source)
    return [source]


def read_outcomes(sources: Iterable[str | Path]) -> list[BreastOutcome]:
    """Every breast outcome of ``sources`` (site CSVs, CBIS-DDSM description CSVs, or folders of them).

    A breast described twice by CBIS-DDSM files is merged (a cancer if any says so); a breast given twice
    by the site's CSVs with different truths is refused, naming it."""
    sources = list(sources)
    merged: dict[tuple[str, str], BreastOutcome] = {}
    for source in sources:
        for path in _files(Path(source)):
            columns, _ = _rows(path)
            cbis = is_cbis_ddsm(columns)
            for outcome in (read_cbis_ddsm_csv(path) if cbis else read_site_csv(path)):
                old = merged.get(outcome.key)
                if old is not None and not cbis and old.cancer != outcome.cancer:
                    raise ValidationInputError(f"exam {outcome.exam_id} breast {outcome.breast} is cancer "
                                               f"{outcome.cancer} here and {old.cancer} in {old.source}", path)
                if old is not None and not cbis and (differ := _differences(old, outcome)):
                    raise ValidationInputError(f"exam {outcome.exam_id} breast {outcome.breast} is given here with "
                                               f"another {differ} than in {old.source}; give each breast once", path)
                merged[outcome.key] = _merge(old, outcome)
    if not merged:
        raise ValidationInputError("the outcomes hold no breast", Path(sources[0]) if sources else None)
    return sorted(merged.values(), key=lambda o: o.key)


def with_batch_pseudonyms(outcomes: list[BreastOutcome], source: str | Path) -> tuple[list[BreastOutcome], int, int]:
    """The outcomes of a de-identified batch's exams under the pseudonyms its table holds, how many exams were
    matched, and how many exams of the outcomes are not in the batch's source: ``source`` is the archive the
    batch ran on, read again here, and each exam's batch ID gets the keyed pseudonym the batch gave it on this
    computer (``app.archive.sources.deidentified_items``). No file links the two: the link is made again from
    the source and the site key whenever it is needed. An outcome of an exam outside the source is left out
    and only counted: under its own ID it would put the site's true exam ID into a de-identified validation's
    files."""
    from app.archive.sources import deidentified_items, read_batch_source  # noqa: PLC0415

    items = read_batch_source(source)
    pseudonyms = {item.exam_id: anon.exam_id for item, anon in zip(items, deidentified_items(items), strict=True)}
    linked = [replace(o, exam_id=pseudonyms[o.exam_id]) for o in outcomes if o.exam_id in pseudonyms]
    outside = {o.exam_id for o in outcomes} - set(pseudonyms)
    return linked, len({o.exam_id for o in linked}), len(outside)
