"""The batch table (``scores.parquet``, see ``app/archive/table.py``) read as one P(malignant) per breast and
per exam for each model, with what the validation must count rather than drop: breasts the model did not score,
breasts scored from one view, models without a malignancy rule, and the batch's failed exams
(``failures.csv`` beside the table); and each exam's facts from its DICOM headers (density, manufacturer,
age, study date: the table's columns where the batch wrote them), which fill the outcomes that lack them."""

from __future__ import annotations

import csv
import datetime
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa

from app.archive.ledger import FAILURES_FILE, read_failure_rows
from app.archive.table import read_scores
from app.validation.errors import ValidationInputError
from app.validation.outcomes import DENSITIES, BreastOutcome

NEEDED = ("exam_id", "level", "view", "breast", "model_id", "model_label", "kind", "probability", "counted")
FACTS = ("density", "manufacturer", "age", "study_date")


@dataclass
class ModelScores:
    """One model's malignancy scores: breast ``(exam_id, L|R) -> P`` (absent where the model gave none), exam
    ``exam_id -> P`` (None where it scored no breast), and the number of counted views behind each breast
    score."""

    model_id: str
    label: str
    model_key: str = ""
    breast: dict[tuple[str, str], float | None] = field(default_factory=dict)
    exam: dict[str, float | None] = field(default_factory=dict)
    views: dict[tuple[str, str], int] = field(default_factory=dict)

    def one_view(self, key: tuple[str, str]) -> bool:
        return self.views.get(key, 0) == 1


@dataclass(frozen=True)
class ScoreTable:
    models: dict[str, ModelScores]
    unscorable: dict[str, str]  # model id -> why it cannot be validated (no malignancy rule)
    failed: dict[str, str]  # exam id -> the batch's reason
    exams: frozenset[str]  # every exam with a row in the table
    facts: dict[str, dict] = field(default_factory=dict)  # exam id -> its header facts (only those known)
    breasts: dict[str, frozenset[str]] = field(default_factory=dict)  # exam id -> its breasts with a row (L, R)


def read_failures(folder: Path) -> dict[str, str]:
    try:
        return {row["exam_id"]: row.get("reason") or "" for row in read_failure_rows(folder)}
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValidationInputError(f"the batch's list of failed exams could not be read ({error})",
                                   folder / FAILURES_FILE) from error


def read_score_table(path: str | Path) -> ScoreTable:
    """Malignancy scores per model from a batch's ``scores.parquet`` (and its ``failures.csv``)."""
    path = Path(path)
    if path.is_dir() and (path / "scores.parquet").is_file():  # the batch's folder named: its table
        path = path / "scores.parquet"
    elif path.is_dir():
        raise ValidationInputError("a folder with no scores.parquet: give a batch's DIR/scores.parquet", path)
    elif not path.exists():
        raise ValidationInputError("no such file: give a batch's DIR/scores.parquet", path)
    try:
        table = read_scores(path)
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise ValidationInputError(f"the score table could not be read ({error})", path) from error
    missing = [c for c in NEEDED if c not in table.column_names]
    if missing:
        raise ValidationInputError(f"this is not a batch score table: it lacks {', '.join(missing)}", path)
    models: dict[str, ModelScores] = {}
    has_rule: dict[str, bool] = defaultdict(bool)
    exams = set()
    breasts: dict[str, set[str]] = defaultdict(set)
    optional = [c for c in ("model_key", "mode") if c in table.column_names]
    columns = table.select(list(NEEDED) + optional).to_pylist()
    kinds: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))  # model -> key/mode -> values
    for row in columns:
        exams.add(row["exam_id"])
        for name in optional:
            if row.get(name):
                kinds[row["model_id"]][name].add(row[name])
        model = models.setdefault(row["model_id"], ModelScores(row["model_id"], row["model_label"] or row["model_id"],
                                                                row.get("model_key") or ""))
        if row["level"] in ("view", "breast") and row["breast"]:
            breasts[row["exam_id"]].add(row["breast"])
        if row["kind"] != "malignancy":
            continue
        has_rule[row["model_id"]] = True
        level, p = row["level"], row["probability"]
        if (p is not None and not 0.0 <= p <= 1.0) or (p is None and _never_null(row)):
            _refuse_probability(row, path)
        if level in ("breast", "exam"):
            scores, key = (model.breast, (row["exam_id"], row["breast"])) if level == "breast" else (model.exam,
                                                                                                   row["exam_id"])
            if key in scores and scores[key] != p:  # two runs' rows for one exam: which is right cannot be told
                where = f"exam {row['exam_id']}" + (f" {row['breast']}" if level == "breast" else "")
                raise ValidationInputError(f"{where}, {level} level, model {row['model_id']}: the table gives two "
                                           f"different probabilities ({scores[key]} and {p})", path)
            scores[key] = p
        elif level == "view" and row["counted"] and p is not None:
            key = (row["exam_id"], row["breast"])
            model.views[key] = model.views.get(key, 0) + 1
    _refuse_pooled(kinds, path)
    unscorable = {m: "the model gives no P(malignant) (its metadata names no malignancy classes)"
                  for m in models if not has_rule[m]}
    for model in models.values():
        _check_exam_nulls(model, path)
    return ScoreTable({m: s for m, s in models.items() if m not in unscorable}, unscorable,
                      read_failures(path.parent), frozenset(exams), _facts(table),
                      {e: frozenset(sides) for e, sides in breasts.items()})


def _refuse_pooled(kinds: dict[str, dict[str, set[str]]], path: Path) -> None:
    """One model ID whose rows come from two checkpoints (shards of different runs concatenated, a model
    changed between runs), or from the exact and the fast arithmetic, is not one model's validation: refused,
    naming what was found (its site calibration would be fitted on another model's scores in part)."""
    for model_id, found in sorted(kinds.items()):
        keys, modes = sorted(found.get("model_key", ())), sorted(found.get("mode", ()))
        if len(keys) > 1:
            raise ValidationInputError(
                f"model {model_id}: the table holds the scores of {len(keys)} different checkpoints under this ID "
                f"(model keys {', '.join(keys)}): tables of different models were joined, or the model changed "
                "between runs; validate each model's table on its own, or analyse the exams again with one model",
                path)
        if len(modes) > 1:
            raise ValidationInputError(
                f"model {model_id}: the table holds scores of both the {' and the '.join(modes)} mode under this ID "
                "(batches run with different --mode were joined): validate one mode's scores (analyse the exams "
                "again in one mode)", path)


def _never_null(row: dict) -> bool:
    """True where the batch always writes a number (``app/archive/table.py``): it marks a model's "no
    P(malignant)" as null only on an uncounted view and on an exam with no scored breast (a breast it did not
    score has no row). A null elsewhere is a NaN that a table editor (pandas) stored as null."""
    return row["level"] == "breast" or (row["level"] == "view" and bool(row["counted"]))


def _refuse_probability(row: dict, path: Path) -> None:
    """A probability that is not a number in [0, 1] (NaN, inf, 1.5, or a null where the batch writes a number)
    is no rank and no "not called": the table is damaged."""
    level, p = row["level"], row["probability"]
    where = f"exam {row['exam_id']}" + (f" {row['breast']}" if row["breast"] and level != "exam" else "")
    where += f", {level} level"
    shown = "NaN (stored as null)" if p is None else str(p)
    raise ValidationInputError(f"{where}, model {row['model_id']}: the probability {shown} is not a number "
                               "in [0, 1]; the table is damaged (analyse that exam again)", path)


def _check_exam_nulls(model: ModelScores, path: Path) -> None:
    """An exam's null P(malignant) means no breast was scored; with a scored breast it is a damaged NaN."""
    scored = {exam for (exam, _), p in model.breast.items() if p is not None}
    for exam, p in sorted(model.exam.items()):
        if p is None and exam in scored:
            _refuse_probability({"exam_id": exam, "level": "exam", "breast": "", "model_id": model.model_id,
                                 "probability": None}, path)


def _facts(table: pa.Table) -> dict[str, dict]:
    """Per exam, the header facts the table holds (older tables have no such columns: none)."""
    present = [name for name in FACTS if name in table.column_names]
    facts: dict[str, dict] = {}
    if not present:
        return facts
    for row in table.select(["exam_id", *present]).to_pylist():
        known = facts.setdefault(row["exam_id"], {})
        for name in present:
            if row[name] is not None and row[name] != "" and name not in known:
                known[name] = row[name]
    return facts


def with_table_facts(outcomes: Sequence[BreastOutcome], table: ScoreTable,
                     take_dates: bool = True) -> list[BreastOutcome]:
    """The outcomes with the facts they lack (density, manufacturer, age, study date) taken from the batch
    table's DICOM headers; a fact the outcomes give is kept as given. ``take_dates`` false: a de-identified
    batch's study dates are shifted by each patient's own offset, so months of them mean nothing (drift takes
    the outcomes' dates alone)."""
    out = []
    for outcome in outcomes:
        facts = table.facts.get(outcome.exam_id, {})
        density = str(facts.get("density") or "").strip().lower()
        date = None
        if take_dates and facts.get("study_date"):
            try:
                date = datetime.date.fromisoformat(str(facts["study_date"])[:10])
            except ValueError:
                date = None
        out.append(replace(
            outcome, density=outcome.density or (density if density in DENSITIES else ""),
            manufacturer=outcome.manufacturer or str(facts.get("manufacturer") or ""),
            age=outcome.age if outcome.age is not None else facts.get("age"),
            study_date=outcome.study_date or date))
    return out
