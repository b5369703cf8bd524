"""Reader studies on the store: design, reading order, sessions, model scores, exports, telemetry.

Designs: ``unaided`` (readers alone), ``sequential`` (the unaided read is committed and locked, then the AI
is shown and an aided read recorded; the store's triggers make the first answer final), ``concurrent``
(the AI is shown from the start), and ``crossover``: two sessions separated by a washout; every case is
read once unaided and once with the AI shown from the start (concurrent), half of each reader's cases in
each order, so that neither modality always has the advantage of a second look. Session 2 opens when the
reader has finished session 1 and ``washout_days`` have passed since their last session-1 read; the store
also refuses, per case, a second reading before the washout. Ground truth is stored per breast and never
reaches a reading screen.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from app.study.store import Store
from inference.errors import MammoError

TRUTHS = ("malignant", "benign", "normal", "none")


class Design(StrEnum):
    UNAIDED = "unaided"
    SEQUENTIAL = "sequential"
    CONCURRENT = "concurrent"
    CROSSOVER = "crossover"


class StudyError(MammoError, ValueError):
    """A study that cannot be created or read as asked (bad case list, unknown reader ...)."""


@dataclass(frozen=True)
class CaseEntry:
    """One case of a study: an exam and its ground truth per breast (never shown to readers)."""

    case_id: str
    exam_path: str
    truth_left: str
    truth_right: str
    notes: str = ""
    training: bool = False

    @property
    def positive(self) -> bool:
        return "malignant" in (self.truth_left, self.truth_right)


def read_case_list(path: str | Path, *, check_exams: bool = False) -> list[CaseEntry]:
    """CSV with columns ``case_id, exam, truth_left, truth_right`` and optional ``notes``, ``training``.

    Relative exam paths are taken relative to the CSV's folder. With ``check_exams`` (creating a study), every
    exam must exist: a study is never created with a case that no reader could open.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise StudyError(f"{path}: the case list cannot be read ({error})") from error
    cases, seen = [], set()
    for number, row in enumerate(rows, start=2):
        try:
            case_id = row["case_id"].strip()
            exam = row["exam"].strip()
            left, right = row["truth_left"].strip().lower(), row["truth_right"].strip().lower()
        except (KeyError, AttributeError) as error:
            raise StudyError(f"{path}: line {number} lacks case_id, exam, truth_left or truth_right") from error
        if left not in TRUTHS or right not in TRUTHS:
            raise StudyError(f"{path}: line {number}: truth must be one of {', '.join(TRUTHS)}")
        if case_id in seen:
            raise StudyError(f"{path}: line {number}: case {case_id!r} appears twice")
        seen.add(case_id)
        exam_path = Path(exam) if Path(exam).is_absolute() else (path.parent / exam)
        training = str(row.get("training", "") or "").strip().lower() in ("1", "yes", "true", "y")
        cases.append(CaseEntry(case_id, str(exam_path), left, right, (row.get("notes") or "").strip(), training))
    if not cases:
        raise StudyError(f"{path}: the case list is empty")
    if check_exams:
        missing = [c for c in cases if not Path(c.exam_path).exists()]
        if missing:
            names = ", ".join(f"{c.case_id} ({c.exam_path})" for c in missing[:5])
            raise StudyError(f"{path}: {len(missing)} exam(s) of the case list do not exist: {names}"
                             + (" …" if len(missing) > 5 else ""))
    return cases


def _reader_rng(seed: int, reader: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{reader}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def reading_order(cases: Sequence[CaseEntry], reader: str, seed: int, session: int = 1) -> list[str]:
    """A reader's case order: training cases first, then the study cases shuffled with positives spread
    evenly (each stratum shuffled, then interleaved in proportion). Reproducible from (seed, reader,
    session); the second session of a crossover study has its own order."""
    rng = _reader_rng(seed, reader if session == 1 else f"{reader}:session {session}")
    training = [c.case_id for c in cases if c.training]
    positives = [c.case_id for c in cases if not c.training and c.positive]
    negatives = [c.case_id for c in cases if not c.training and not c.positive]
    rng.shuffle(training)
    rng.shuffle(positives)
    rng.shuffle(negatives)
    # each stratum spread evenly over the order: item i of k sits at (i + 0.5) / k
    keyed = [((i + 0.5) / len(positives), 1, c) for i, c in enumerate(positives)]
    keyed += [((j + 0.5) / len(negatives), 0, c) for j, c in enumerate(negatives)]
    order = [c for _, _, c in sorted(keyed)]
    return training + order


def crossover_arms(cases: Sequence[CaseEntry], reader: str, seed: int) -> dict[str, str]:
    """Which modality each case is read in first (crossover design): within each stratum (training,
    positives, negatives) a shuffled half is read unaided first and the other half with the AI first."""
    rng = _reader_rng(seed, f"{reader}:arms")
    arms: dict[str, str] = {}
    for stratum in ([c for c in cases if c.training], [c for c in cases if not c.training and c.positive],
                    [c for c in cases if not c.training and not c.positive]):
        ids = [c.case_id for c in stratum]
        rng.shuffle(ids)
        start = int(rng.integers(2))  # which arm takes the odd one out
        for i, case_id in enumerate(ids):
            arms[case_id] = ("unaided", "concurrent")[(i + start) % 2]
    return arms


def create_study(
    store: Store,
    name: str,
    design: Design | str,
    readers: Sequence[str],
    cases: Sequence[CaseEntry],
    seed: int = 0,
    washout_days: int = 0,
) -> int:
    """Create a study with its readers, cases and every reader's order; returns the study id.

    ``washout_days`` applies to the crossover design (the days between a reader's two sessions)."""
    try:
        design = Design(design)
    except ValueError as error:
        raise StudyError(f"unknown design {design!r}; choose one of {', '.join(Design)}") from error
    if not name.strip():
        raise StudyError("give the study a name")
    if not readers or len(set(readers)) != len(readers):
        raise StudyError("give at least one reader, each named once")
    if not cases:
        raise StudyError("the study has no case")
    if washout_days < 0:
        raise StudyError("the washout cannot be negative")
    if washout_days and design != Design.CROSSOVER:
        raise StudyError(f"a washout separates the two sessions of the crossover design; the {design} design "
                         "reads each case in one sitting")

    def work(db) -> int:
        cursor = db.execute(
            "INSERT INTO studies (name, design, seed, washout_days, created_at) VALUES (?, ?, ?, ?, ?)",
            (name, design.value, int(seed), int(washout_days), time.time()),
        )
        study_id = cursor.lastrowid
        for case in cases:
            db.execute(
                "INSERT INTO study_cases VALUES (?, ?, ?, ?, ?, ?, ?)",
                (study_id, case.case_id, case.exam_path, case.truth_left, case.truth_right, case.notes, int(case.training)),
            )
        for reader in readers:
            db.execute("INSERT INTO study_readers VALUES (?, ?)", (study_id, reader))
            order = reading_order(cases, reader, seed)
            if design == Design.CROSSOVER:  # session 2 follows session 1 in the same table
                order += reading_order(cases, reader, seed, session=2)
                for case_id, first in crossover_arms(cases, reader, seed).items():
                    db.execute("INSERT INTO crossover_arms VALUES (?, ?, ?, ?)", (study_id, reader, case_id, first))
            for position, case_id in enumerate(order):
                db.execute("INSERT INTO reading_order VALUES (?, ?, ?, ?)", (study_id, reader, position, case_id))
        return study_id

    try:
        return store.submit(work).result()
    except Exception as error:
        if "UNIQUE" in str(error):
            raise StudyError(f"a study named {name!r} already exists") from error
        raise


def study_info(store: Store, study_id: int) -> dict:
    rows = store.read("SELECT name, design, seed, washout_days FROM studies WHERE study_id=?", (study_id,))
    if not rows:
        raise StudyError(f"no study with id {study_id}")
    name, design, seed, washout = rows[0]
    readers = [r[0] for r in store.read("SELECT reader FROM study_readers WHERE study_id=? ORDER BY reader", (study_id,))]
    return {"study_id": study_id, "name": name, "design": Design(design), "seed": seed, "washout_days": washout,
            "readers": readers}


def list_studies(store: Store) -> list[dict]:
    """Every study in the store: id, name, design, readers (newest first)."""
    rows = store.read("SELECT study_id FROM studies ORDER BY created_at DESC, study_id DESC")
    return [study_info(store, row[0]) for row in rows]


def study_cases(store: Store, study_id: int) -> dict[str, CaseEntry]:
    rows = store.read(
        "SELECT case_id, exam_path, truth_left, truth_right, notes, training FROM study_cases WHERE study_id=?",
        (study_id,),
    )
    return {r[0]: CaseEntry(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows}


# --------------------------------------------------------------------------------------------------------
# reading sessions


@dataclass(frozen=True)
class CaseForReader:
    """What a reading screen may know about a case: no truth, no identifiers, no notes.

    ``position``/``total`` count within the reader's current session (one session but for crossover)."""

    case_id: str
    exam_path: str
    position: int
    total: int
    training: bool
    modality: str
    session: int = 1
    sessions: int = 1


DAY_S = 86400.0


class ReadingSession:
    """One reader working through their order. Every commit is one transaction (both breasts), durable
    when the returned future completes; a killed session resumes at the first case not finished.

    The order has one entry per reading: a crossover study lists every case twice (session 1, then
    session 2), so positions, not case ids, identify a reading."""

    def __init__(self, store: Store, study_id: int, reader: str) -> None:
        self.store = store
        self.study_id = study_id
        self.reader = reader
        info = study_info(store, study_id)
        if reader not in info["readers"]:
            raise StudyError(f"{reader!r} is not a reader of study {info['name']!r}")
        self.design: Design = info["design"]
        self.washout_days: int = info["washout_days"]
        self._cases = study_cases(store, study_id)
        self.order = [r[0] for r in store.read(
            "SELECT case_id FROM reading_order WHERE study_id=? AND reader=? ORDER BY position", (study_id, reader))]
        self.sessions = 2 if self.design == Design.CROSSOVER else 1
        self.session_length = len(self.order) // self.sessions
        self._first = dict(store.read(
            "SELECT case_id, first_modality FROM crossover_arms WHERE study_id=? AND reader=?", (study_id, reader)))
        self._shown_at: dict[tuple[str, str], float] = {}

    # -- the plan ----------------------------------------------------------------------------------------

    def session_of(self, position: int) -> int:
        return 1 + position // self.session_length

    def modality_at(self, position: int) -> str:
        """The modality of the reading at ``position`` that completes it (``aided`` in the sequential
        design, whose unaided read comes first on the same screen)."""
        if self.design == Design.CROSSOVER:
            first = self._first[self.order[position]]
            second = "concurrent" if first == "unaided" else "unaided"
            return first if self.session_of(position) == 1 else second
        return {Design.UNAIDED: "unaided", Design.SEQUENTIAL: "aided", Design.CONCURRENT: "concurrent"}[self.design]

    def reads(self, case_id: str) -> dict[str, dict[str, float]]:
        """Committed reads of a case: {modality: {breast: probability}}."""
        out: dict[str, dict[str, float]] = {}
        for modality, breast, value in self.store.read(
            "SELECT modality, breast, malignant FROM study_reads WHERE study_id=? AND reader=? AND case_id=?",
            (self.study_id, self.reader, case_id),
        ):
            out.setdefault(modality, {})[breast] = value
        return out

    def is_done(self, position: int) -> bool:
        return len(self.reads(self.order[position]).get(self.modality_at(position), {})) == 2

    def done_positions(self) -> list[bool]:
        """``is_done`` for every position, from one query (the coordinator's views call it on big studies)."""
        complete = {(case_id, modality) for case_id, modality in self.store.read(
            "SELECT case_id, modality FROM study_reads WHERE study_id=? AND reader=? GROUP BY case_id, modality "
            "HAVING COUNT(*) = 2", (self.study_id, self.reader))}
        return [(case_id, self.modality_at(p)) in complete for p, case_id in enumerate(self.order)]

    def is_revealed(self, case_id: str) -> bool:
        if self.design == Design.CONCURRENT:
            return True
        return bool(self.store.read(
            "SELECT 1 FROM reveals WHERE study_id=? AND reader=? AND case_id=?", (self.study_id, self.reader, case_id)))

    def next_position(self) -> int | None:
        """The position to resume at: the first reading not committed (None: all done)."""
        return next((position for position, done in enumerate(self.done_positions()) if not done), None)

    def washout_ends_at(self) -> float | None:
        """When session 2 opens (Unix time): ``washout_days`` after the reader's last session-1 read.
        None while session 1 is unfinished, and for single-session designs."""
        if self.sessions == 1 or not all(self.done_positions()[: self.session_length]):
            return None
        last = self.store.read(
            "SELECT MAX(r.committed_at) FROM study_reads r JOIN crossover_arms a ON a.study_id = r.study_id "
            "AND a.reader = r.reader AND a.case_id = r.case_id AND a.first_modality = r.modality "
            "WHERE r.study_id=? AND r.reader=?", (self.study_id, self.reader))[0][0]
        return last + DAY_S * self.washout_days

    def is_open(self, position: int, now: float | None = None) -> bool:
        """May the reader see this reading now? Session 2 waits for session 1 and the washout."""
        if self.session_of(position) == 1:
            return True
        ends = self.washout_ends_at()
        return ends is not None and (time.time() if now is None else now) >= ends

    def case_at(self, position: int) -> CaseForReader:
        case = self._cases[self.order[position]]
        session = self.session_of(position)
        return CaseForReader(case.case_id, case.exam_path, position - (session - 1) * self.session_length,
                             self.session_length, case.training, self.modality_at(position), session, self.sessions)

    def shown(self, case_id: str, modality: str) -> None:
        """Record when the case was displayed for ``modality`` (the read's time starts here)."""
        self._shown_at.setdefault((case_id, modality), time.monotonic())

    def commit(self, case_id: str, modality: str, malignant: dict[str, float], birads: dict[str, str] | None = None):
        """Commit one read (both breasts at once); returns a future that completes when it is durable."""
        if set(malignant) != {"L", "R"}:
            raise StudyError("give a probability of malignancy for both breasts")
        if any(not 0.0 <= v <= 1.0 for v in malignant.values()):
            raise StudyError("probabilities must be between 0 and 1 (0 to 100 %)")
        started = self._shown_at.get((case_id, modality), time.monotonic())
        duration = time.monotonic() - started
        now = time.time()
        birads = birads or {}

        def work(db) -> None:
            for breast in ("L", "R"):
                db.execute(
                    "INSERT INTO study_reads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (self.study_id, self.reader, case_id, modality, breast, float(malignant[breast]),
                     birads.get(breast, ""), duration, now),
                )

        return self.store.submit(work)

    def reveal(self, case_id: str):
        """Show the AI for this case (sequential design); the unaided read becomes final. Returns a future."""
        return self.store.submit(lambda db: db.execute(
            "INSERT OR IGNORE INTO reveals VALUES (?, ?, ?, ?)", (self.study_id, self.reader, case_id, time.time())))


def reader_progress(store: Store, study_id: int, now: float | None = None) -> list[dict]:
    """For the coordinator: per reader and session, readings done of the total, and (crossover) when
    session 2 opens."""
    rows = []
    for reader in study_info(store, study_id)["readers"]:
        session = ReadingSession(store, study_id, reader)
        ends = session.washout_ends_at()
        done = session.done_positions()
        for number in range(1, session.sessions + 1):
            positions = range((number - 1) * session.session_length, number * session.session_length)
            rows.append({
                "reader": reader, "session": number, "sessions": session.sessions,
                "done": sum(done[p] for p in positions), "total": len(positions),
                "open": session.is_open(positions[0], now), "opens_at": ends if number == 2 else None,
            })
    return rows


# --------------------------------------------------------------------------------------------------------
# model scores (computed once, resumable, cached by image UIDs + model hashes)


def model_cache_key(exam, identities: Iterable) -> str:
    parts = sorted(img.sop_instance_uid or hashlib.sha1(img.pixels.tobytes()).hexdigest() for img in exam.views.values())
    models = sorted(i.git_blob_sha1 or i.sha256 for i in identities)
    return hashlib.sha256(("|".join(parts) + "#" + "|".join(models)).encode()).hexdigest()


def compute_model_scores(
    store: Store,
    study_id: int,
    models: list,
    *,
    device: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> int:
    """Analyse every case that has no stored model score yet; returns how many were computed."""
    from inference.exam import load_exam  # noqa: PLC0415
    from inference.pipeline import Cancelled, analyze_exam  # noqa: PLC0415
    from inference.serialize import exam_result_to_dict  # noqa: PLC0415

    progress = progress or (lambda *a: None)
    cancel = cancel or (lambda: False)
    done_cases = {r[0] for r in store.read("SELECT DISTINCT case_id FROM model_scores WHERE study_id=?", (study_id,))}
    todo = [c for c in study_cases(store, study_id).values() if c.case_id not in done_cases]
    for index, case in enumerate(todo):
        if cancel():
            raise Cancelled()
        progress(f"model scores: case {index + 1} of {len(todo)}", index, len(todo))
        exam = load_exam(case.exam_path)
        key = model_cache_key(exam, [m.identity for m in models])
        cached = store.read("SELECT result_json FROM model_cache WHERE cache_key=?", (key,))
        if cached:
            record = json.loads(cached[0][0])
        else:
            record = exam_result_to_dict(analyze_exam(exam, models, device=device, cancel=cancel))
        breasts = record["breasts"]

        def work(db, case_id=case.case_id, record=record, key=key, breasts=breasts) -> None:
            db.execute("INSERT OR REPLACE INTO model_cache VALUES (?, ?, ?)", (key, json.dumps(record), time.time()))
            for breast in ("L", "R"):
                probs = breasts.get(breast, {}).get("probabilities")
                if probs is None:  # no image of this breast: no score, never a confident normal
                    values = (None, None, "no images of this breast")
                else:
                    values = (probs["malignant"], probs["benign"], "")
                db.execute("INSERT OR REPLACE INTO model_scores (study_id, case_id, breast, malignant, benign, "
                           "cache_key, missing_reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (study_id, case_id, breast, values[0], values[1], key, values[2]))

        store.submit(work).result()
    progress("model scores", len(todo), len(todo))
    return len(todo)


# --------------------------------------------------------------------------------------------------------
# records for the analysis, telemetry, export / import


def breast_truth(case: CaseEntry, breast: str) -> int:
    return int((case.truth_left if breast == "L" else case.truth_right) == "malignant")


def analysis_records(store: Store, study_id: int, level: str = "breast") -> list[dict]:
    """Tidy rows (reader, modality, case, truth, score) of every committed non-training read, plus the
    model (same score for every reader) and the hybrid (mean of each read and the model).

    ``level``: ``breast`` (the GMIC paper's unit: one case per breast) or ``exam`` (max over breasts).
    """
    cases = study_cases(store, study_id)
    model = {(c, b): m for c, b, m in store.read(
        "SELECT case_id, breast, malignant FROM model_scores WHERE study_id=?", (study_id,))}
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
        if level == "breast":
            units = [(f"{case_id}:{b}", breast_truth(case, b), values[b], model.get((case_id, b))) for b in ("L", "R")]
        else:  # the exam's model score: the maximum over the breasts that have one
            scored = [model[(case_id, b)] for b in ("L", "R") if model.get((case_id, b)) is not None]
            units = [(case_id, max(breast_truth(case, "L"), breast_truth(case, "R")), max(values.values()),
                      max(scored) if scored else None)]
        for unit, truth, score, model_score in units:
            rows.append({"reader": reader, "modality": modality, "case": unit, "truth": truth, "score": score})
            if model_score is not None:
                rows.append({"reader": reader, "modality": f"hybrid ({modality})", "case": unit, "truth": truth,
                             "score": (score + model_score) / 2})
                rows.append({"reader": reader, "modality": f"model (vs {modality})", "case": unit, "truth": truth,
                             "score": model_score})
    return rows


def model_exclusions(store: Store, study_id: int, level: str = "breast") -> list[tuple[str, str]]:
    """Units (``case:breast``, or cases at exam level) that have no model score, with the reason; they are
    left out of the model's and the hybrid's analyses (a breast without images is no confident normal)."""
    rows = store.read(
        "SELECT s.case_id, s.breast, s.missing_reason FROM model_scores s JOIN study_cases c "
        "ON c.study_id = s.study_id AND c.case_id = s.case_id WHERE s.study_id=? AND s.malignant IS NULL "
        "AND c.training = 0 ORDER BY s.case_id, s.breast", (study_id,))
    if level == "breast":
        return [(f"{case_id}:{breast}", reason) for case_id, breast, reason in rows]
    missing: dict[str, list[str]] = {}
    for case_id, breast, _ in rows:
        missing.setdefault(case_id, []).append(breast)
    return [(case_id, "no images of either breast") for case_id, breasts in missing.items() if len(breasts) == 2]


def telemetry(store: Store, study_id: int, threshold: float = 0.5) -> list[dict]:
    """Per aided read (sequential design): how the reader moved after seeing the AI.

    ``toward_ai``: the score moved in the AI's direction; ``flip_to_incorrect_ai_wrong``: the unaided
    decision (score >= threshold means "malignant") was right, the aided one wrong, and the AI was wrong.
    Shown to the coordinator only.
    """
    cases = study_cases(store, study_id)
    model = {(c, b): m for c, b, m in store.read(
        "SELECT case_id, breast, malignant FROM model_scores WHERE study_id=?", (study_id,))}
    values: dict[tuple, dict[str, float]] = {}
    durations: dict[tuple, float] = {}
    for reader, case_id, modality, breast, value, duration in store.read(
        "SELECT reader, case_id, modality, breast, malignant, duration_s FROM study_reads WHERE study_id=?", (study_id,)):
        values.setdefault((reader, case_id, breast), {})[modality] = value
        durations[(reader, case_id, modality)] = duration
    out = []
    for (reader, case_id, breast), by_modality in sorted(values.items()):
        if "unaided" not in by_modality or "aided" not in by_modality:
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
            "unaided_seconds": durations.get((reader, case_id, "unaided")),
            "aided_seconds": durations.get((reader, case_id, "aided")),
        })
    return out


EXPORT_TABLES = ("studies", "study_readers", "study_cases", "reading_order", "crossover_arms", "study_reads", "reveals",
                 "model_scores")


def export_study(store: Store, study_id: int) -> dict:
    """The whole study (design, readers, cases with truth, orders, reads, reveals, model scores) as data."""
    out = {"format": "mammo-reader/study", "version": 1}
    for table in EXPORT_TABLES:
        cursor = store._connect().execute(f"SELECT * FROM {table} WHERE study_id=?", (study_id,))  # noqa: S608
        columns = [d[0] for d in cursor.description]
        out[table] = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return out


def import_study(store: Store, data: dict, name: str | None = None) -> int:
    """Re-create an exported study (under ``name`` if given); returns the new study id."""
    if data.get("format") != "mammo-reader/study":
        raise StudyError("not a Mammo Reader study export")
    study = dict(data["studies"][0])
    study.pop("study_id")
    if name:
        study["name"] = name

    def work(db) -> int:
        cursor = db.execute(
            "INSERT INTO studies (name, design, seed, washout_days, created_at) VALUES (?, ?, ?, ?, ?)",
            (study["name"], study["design"], study["seed"], study["washout_days"], study["created_at"]))
        new_id = cursor.lastrowid
        reads = sorted(data.get("study_reads", []), key=lambda r: r["committed_at"])
        # the store's triggers want the order of real life: unaided reads, then the reveal, then aided reads;
        # a crossover's first readings before its second (the order they were committed in)
        tables = ("study_readers", "study_cases", "reading_order", "crossover_arms", "model_scores")
        batches = [(t, data.get(t, [])) for t in tables]
        batches += [("study_reads", [r for r in reads if r["modality"] != "aided"]), ("reveals", data.get("reveals", [])),
                    ("study_reads", [r for r in reads if r["modality"] == "aided"])]
        for table, rows in batches:
            for row in rows:
                row = {**row, "study_id": new_id}
                columns = ", ".join(row)
                marks = ", ".join("?" for _ in row)
                db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(row.values()))  # noqa: S608
        return new_id

    return store.submit(work).result()


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


def write_imrmc(rows: Sequence[dict], path: str | Path, description: str = "Mammo Reader export") -> None:
    """iMRMC input format: truth rows (reader -1, modality 0) then one row per score."""
    cases = {}
    for row in rows:
        cases.setdefault(row["case"], row["truth"])
    lines = [description, "", "BEGIN DATA:"]
    lines += [f"-1,{_imrmc_id(case)},0,{truth}" for case, truth in cases.items()]
    lines += [f"{_imrmc_id(r['reader'])},{_imrmc_id(r['case'])},{_imrmc_id(r['modality'])},{r['score']}" for r in rows]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

