"""Reading sessions: one reader working through their order, with the plan (modalities, the crossover's
washout) and the coordinator's progress view. Session 2 of a crossover opens when the reader has finished
session 1 and ``washout_days`` have passed since their last session-1 read; the store's triggers also refuse a
second-session reading before then, and any read of a modality the design does not have. An aided or concurrent
read, and the sequential design's reveal, need the case's stored AI result (what the reading screen shows)."""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass

from app.reading import birads_problem
from app.study.cases import study_cases
from app.study.design import Design, reader_as_stored, sessions_of, study_info
from app.study.errors import StudyError
from app.study.store import ReaderMark, Store, shown_result_exists


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
        info = study_info(store, study_id)
        reader = reader_as_stored(reader, info["readers"])  # whichever Unicode form was typed
        self.reader = reader
        if reader not in info["readers"]:
            raise StudyError(f"{reader!r} is not a reader of study {info['name']!r} (its readers: "
                             f"{', '.join(info['readers'])})")
        self.study_name: str = info["name"]
        self.design: Design = info["design"]
        self.washout_days: int = info["washout_days"]
        self._cases = study_cases(store, study_id)
        self.order = [r[0] for r in store.read(
            "SELECT case_id FROM reading_order WHERE study_id=? AND reader=? ORDER BY position", (study_id, reader))]
        self.sessions = sessions_of(self.design)
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
        return self._committed(case_id, "malignant")

    def birads(self, case_id: str) -> dict[str, dict[str, str]]:
        """The BI-RADS categories of a case's committed reads: {modality: {breast: category ("" none)}}."""
        return self._committed(case_id, "birads")

    def marks(self, case_id: str) -> dict[str, list]:
        """The marks of a case's committed reads: {modality: [ReaderMark, …]} in the order they were made."""
        from app.study.store import ReaderMark  # noqa: PLC0415

        out: dict[str, list] = {}
        for modality, view, row, col, label, confidence in self.store.read(
            "SELECT modality, view, row, col, label, confidence FROM study_marks WHERE study_id=? AND reader=? "
            "AND case_id=? ORDER BY modality, mark_id", (self.study_id, self.reader, case_id)):
            out.setdefault(modality, []).append(ReaderMark(view, row, col, label, confidence))
        return out

    def _committed(self, case_id: str, column: str) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for modality, breast, value in self.store.read(
            f"SELECT modality, breast, {column} FROM study_reads WHERE study_id=? AND reader=? AND case_id=?",
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

    def started_positions(self) -> list[bool]:
        """Per position: a reading begun and not finished (sequential: the unaided read committed, the aided one
        not yet), from one query."""
        begun = set(self.store.read("SELECT DISTINCT case_id, modality FROM study_reads WHERE study_id=? AND reader=?",
                                    (self.study_id, self.reader)))
        done = self.done_positions()
        out = []
        for position, case_id in enumerate(self.order):
            modalities = {self.modality_at(position)} | ({"unaided"} if self.design == Design.SEQUENTIAL else set())
            out.append(not done[position] and any((case_id, m) in begun for m in modalities))
        return out

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

    def commit(self, case_id: str, modality: str, malignant: dict[str, float], birads: dict[str, str] | None = None,
               marks: Sequence[ReaderMark] = ()):
        """Commit one read (both breasts at once, with the reader's marks); returns a future that completes
        when it is durable. Like the read, committed marks are final (store triggers). The future fails with
        ``sqlite3.IntegrityError`` for a read the design does not allow (its modality or its order), and with
        :class:`StudyError` for an aided or concurrent read of a case without a stored AI result."""
        if set(malignant) != {"L", "R"}:
            raise StudyError("give a probability of malignancy for both breasts")
        if any(not 0.0 <= v <= 1.0 for v in malignant.values()):
            raise StudyError("probabilities must be between 0 and 1 (0 to 100 %)")
        birads = {breast: _category(breast, value) for breast, value in (birads or {}).items()}
        started = self._shown_at.get((case_id, modality), time.monotonic())
        duration = time.monotonic() - started
        now = time.time()

        def work(db) -> None:
            self._require_case(db, case_id)
            for breast in ("L", "R"):  # the store's triggers refuse what the design does not allow, saying why
                db.execute(
                    "INSERT INTO study_reads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (self.study_id, self.reader, case_id, modality, breast, float(malignant[breast]),
                     birads.get(breast, ""), duration, now),
                )
            if modality != "unaided":  # a read made with the AI shown (rolled back when there was none to show)
                self._require_ai_result(db, case_id)
            for number, mark in enumerate(marks, start=1):
                db.execute("INSERT INTO study_marks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (self.study_id, self.reader, case_id, modality, number, mark.view, mark.row, mark.col,
                            mark.label, int(mark.confidence)))

        return self.store.submit(work)

    def reveal(self, case_id: str):
        """Show the AI for this case (sequential design); the unaided read becomes final. Returns a future,
        which fails with :class:`StudyError` when the case has no stored AI result to show (nothing is
        recorded then: the unaided read stays open)."""

        def work(db) -> None:
            self._require_case(db, case_id)
            already = db.execute("SELECT 1 FROM reveals WHERE study_id=? AND reader=? AND case_id=?",
                                 (self.study_id, self.reader, case_id)).fetchone()
            db.execute("INSERT OR IGNORE INTO reveals VALUES (?, ?, ?, ?)",
                       (self.study_id, self.reader, case_id, time.time()))  # the triggers say what is out of order
            if already is None:  # a reveal given again keeps its first time (and needs no new check)
                self._require_ai_result(db, case_id)

        return self.store.submit(work)

    def _require_case(self, db, case_id: str) -> None:
        """A case the study has (a mistyped one failed as "FOREIGN KEY constraint failed", or as a reveal "before
        the unaided read": a coordinator's test)."""
        if db.execute("SELECT 1 FROM study_cases WHERE study_id=? AND case_id=?", (self.study_id, case_id)).fetchone():
            return
        raise StudyError(f"case {case_id!r} is not in study {self.study_name!r}; nothing was recorded")

    def _require_ai_result(self, db, case_id: str) -> None:
        """Refuse to show the AI (or record a read made with it) for a case without the first model's stored
        result, the one the reading screen shows: it would record an aided read with no AI shown. Checked here,
        on the reading's write path, not by a trigger: a result is this machine's (an imported study carries
        reveals and aided reads made elsewhere, and the scores, not the results)."""
        if not _has_ai_result(db, self.study_id, case_id):
            raise StudyError(
                "this case has no stored AI result to show, so an aided read would be recorded with no AI shown; "
                "nothing was recorded. The study coordinator computes the AI results on this machine first: "
                f"python main.py study scores {shlex.quote(self.study_name)} --models …")


def _category(breast: str, value: str) -> str:
    """A BI-RADS assessment category as the store keeps it ("4a" is 4A), or "" for none; anything else is refused
    (the write path took "7" and "X", which the results then left out of the recall table without a word, and the
    study's own export could not be imported again: a coordinator's test)."""
    category = str(value).strip().upper()
    if category == "NONE":  # as the message offers it (a coordinator's re-test)
        category = ""
    if problem := birads_problem(category):
        raise StudyError(f"breast {breast}: {problem}; nothing was recorded")
    return category


def _has_ai_result(db, study_id: int, case_id: str) -> bool:
    """The case's first model (the one the reading screen shows) has a stored result."""
    return bool(db.execute(f"SELECT {shown_result_exists('?', '?')}", (study_id, case_id, study_id))
                .fetchone()[0])


def reader_progress(store: Store, study_id: int, now: float | None = None) -> list[dict]:
    """For the coordinator: per reader and session, readings done of the total, and (crossover) when
    session 2 opens."""
    rows = []
    for reader in study_info(store, study_id)["readers"]:
        session = ReadingSession(store, study_id, reader)
        ends = session.washout_ends_at()
        done = session.done_positions()
        started = session.started_positions()
        for number in range(1, session.sessions + 1):
            positions = range((number - 1) * session.session_length, number * session.session_length)
            rows.append({
                "reader": reader, "session": number, "sessions": session.sessions,
                "done": sum(done[p] for p in positions), "total": len(positions),
                "started": sum(started[p] for p in positions),
                "open": session.is_open(positions[0], now), "opens_at": ends if number == 2 else None,
            })
    return rows
