"""Study designs, reading orders and crossover arms, and creating a study.

Designs: ``unaided`` (readers alone), ``sequential`` (the unaided read is committed and locked, then the AI
is shown and an aided read recorded; the store's triggers make the first answer final), ``concurrent``
(the AI is shown from the start), and ``crossover``: two sessions separated by a washout; every case is
read once unaided and once with the AI shown from the start (concurrent), half of each reader's cases in
each order, so that neither modality always has the advantage of a second look.
"""

from __future__ import annotations

import hashlib
import time
import unicodedata
from collections.abc import Sequence
from enum import StrEnum

import numpy as np

from app.study.cases import CaseEntry
from app.study.errors import StudyError
from app.study.store import Store


DEFAULT_WASHOUT_DAYS = 28  # a crossover's washout when none is given (CLI and the New study dialog)


class Design(StrEnum):
    UNAIDED = "unaided"
    SEQUENTIAL = "sequential"
    CONCURRENT = "concurrent"
    CROSSOVER = "crossover"


def _reader_rng(seed: int, reader: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{reader}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def reading_order(cases: Sequence[CaseEntry], reader: str, seed: int, session: int = 1) -> list[str]:
    """A reader's case order: training cases first, then the study cases shuffled with positives spread
    evenly (each stratum shuffled, then interleaved in proportion, each case at a random place within its
    share of the order, so that positives sit at no fixed positions a reader could learn). Reproducible from
    (seed, reader, session); the second session of a crossover study has its own order."""
    rng = _reader_rng(seed, reader if session == 1 else f"{reader}:session {session}")
    training = [c.case_id for c in cases if c.training]
    positives = [c.case_id for c in cases if not c.training and c.positive]
    negatives = [c.case_id for c in cases if not c.training and not c.positive]
    rng.shuffle(training)
    rng.shuffle(positives)
    rng.shuffle(negatives)
    # each stratum spread evenly over the order: item i of k sits somewhere in [i / k, (i + 1) / k) (at the
    # middle of it, the positives came at the same positions for every reader and seed: 2, 4, 6, 9, …)
    keyed = [((i + rng.random()) / len(positives), 1, c) for i, c in enumerate(positives)]
    keyed += [((j + rng.random()) / len(negatives), 0, c) for j, c in enumerate(negatives)]
    order = [c for _, _, c in sorted(keyed)]
    return training + order


def crossover_arms(cases: Sequence[CaseEntry], reader: str, seed: int) -> dict[str, str]:
    """Which modality each case is read in first (crossover design): within each stratum (training,
    positives, negatives) a shuffled half is read unaided first and the other half with the AI first. A stratum's
    odd case goes to the arm the previous odd one did not take (the first at random): each stratum drawn on its
    own gave one reader 5 study cases AI-first and 3 unaided-first of 3 cancers and 5 others (a coordinator's
    finding); now each reader's study cases split within one."""
    rng = _reader_rng(seed, f"{reader}:arms")
    arms: dict[str, str] = {}
    extra = int(rng.integers(2))  # the arm that takes the next odd one out
    for stratum in ([c for c in cases if c.training], [c for c in cases if not c.training and c.positive],
                    [c for c in cases if not c.training and not c.positive]):
        ids = [c.case_id for c in stratum]
        rng.shuffle(ids)
        for i, case_id in enumerate(ids):
            arms[case_id] = ("unaided", "concurrent")[(i + extra) % 2]
        if len(ids) % 2:
            extra = 1 - extra
    return arms


SHORT_WASHOUT_DAYS = 14


def design_note(design: Design | str, readers: Sequence[str], washout_days: int) -> str:
    """What a study of this design will not measure well, said when it is made ("" when nothing): a crossover's
    washout too short for readers to forget a case, one reader (the ORH comparisons need two). A coordinator's
    review: a 0-day washout and a one-reader study were taken without a word."""
    notes = []
    if Design(design) == Design.CROSSOVER and washout_days < SHORT_WASHOUT_DAYS:
        notes.append(f"a washout of {washout_days} day{'' if washout_days == 1 else 's'} between a reader's two "
                     "sessions: readers may remember a case from its first reading (reader studies commonly wait four "
                     "weeks or more)")
    if len(readers) < 2:
        notes.append("one reader: the ORH comparisons of the modalities need two readers or more; each reader's AUCs "
                     "are given")
    return "; ".join(notes)


def sessions_of(design: Design | str) -> int:
    """How many times each reader reads each case: twice in a crossover (once per session), else once."""
    return 2 if Design(design) == Design.CROSSOVER else 1


def plan_problems(design: Design | str, readers: Sequence[str], cases: Sequence[str],
                  orders: dict[str, list[str]], arms: dict[str, dict[str, str]]) -> list[str]:
    """What is wrong with a study's reading plan (empty: nothing), as ``create_study`` makes it: every reader has
    an order that gives each case exactly once per session (``orders``: reader -> case ids by position; a
    crossover's session 2 follows session 1), and a crossover gives each reader's every case its first modality
    (``arms``: reader -> {case id: first modality}), another design none. ``ReadingSession`` relies on it: a case
    listed twice counted as a reading more ("13 of 13 read" on a 12-case study)."""
    sessions = sessions_of(design)
    wanted = sorted(cases)
    problems = []
    for reader in readers:
        order = orders.get(reader, [])
        if not order:
            problems.append(f"reader {reader!r} has no reading order")
            continue
        if len(order) != sessions * len(wanted):
            problems.append(f"reader {reader!r} has {len(order)} reading(s) in the order for the study's "
                            f"{len(wanted)} case(s)" + (" in 2 sessions" if sessions == 2 else ""))
        length = max(1, len(order) // sessions)
        for session in range(sessions):
            listed = order[session * length: (session + 1) * length]
            where = f" in session {session + 1}" if sessions == 2 else ""
            twice = sorted({case for case in listed if listed.count(case) > 1})
            absent = sorted(set(wanted) - set(listed))
            if twice:
                problems.append(f"reader {reader!r} has case(s) {', '.join(map(repr, twice))} more than once{where}")
            if absent:
                problems.append(f"reader {reader!r} lacks case(s) {', '.join(map(repr, absent[:5]))}"
                                f"{' …' if len(absent) > 5 else ''}{where}")
        planned = arms.get(reader, {})
        if sessions == 2:
            absent = sorted(set(wanted) - set(planned))
            if absent:
                problems.append(f"reader {reader!r} has no crossover arm (first modality) for case(s) "
                                f"{', '.join(map(repr, absent[:5]))}{' …' if len(absent) > 5 else ''}")
        elif planned:
            problems.append(f"reader {reader!r} has crossover arms, which a {Design(design)} study has not")
    return problems


JOINERS = frozenset({"\u200c", "\u200d"})  # zero-width non-joiner and joiner: letters' shapes in Persian, Indic scripts


def reader_as_stored(name: str, readers: Sequence[str]) -> str:
    """``name`` as the study stores it: the same name in another Unicode form ('Chloé' typed with a combining
    accent, or stored so by an earlier version or an import) is the same reader, and so is one that differs only in
    capitals ('anna' for 'Anna': a study refuses two readers named so, so it names one; a coordinator's test);
    ``name`` itself when none is."""
    if name in readers:
        return name
    wanted = unicodedata.normalize("NFC", name)
    same = next((stored for stored in readers if unicodedata.normalize("NFC", stored) == wanted), None)
    if same is not None:
        return same
    folded = unicodedata.normalize("NFKC", name).casefold()
    alike = [stored for stored in readers if unicodedata.normalize("NFKC", stored).casefold() == folded]
    return alike[0] if len(alike) == 1 else name


def refuse_a_name_alike(db, name: str) -> None:
    """Refuse a study name that differs from one in the database only in capitals ("Pilot" beside "pilot": two
    studies every list shows alike, as reader names that differ so are refused)."""
    for (held,) in db.execute("SELECT name FROM studies").fetchall():
        if held != name and unicodedata.normalize("NFKC", held).casefold() == unicodedata.normalize("NFKC", name).casefold():
            raise StudyError(f"a study named {held!r} exists, and {name!r} differs from it only in capitals or "
                             "letter width: give another name")


def create_study(
    store: Store,
    name: str,
    design: Design | str,
    readers: Sequence[str],
    cases: Sequence[CaseEntry],
    seed: int = 0,
    washout_days: int = 0,
    lesions: Sequence | None = None,
    scoring=None,
) -> int:
    """Create a study with its readers, cases and every reader's order; returns the study id.

    ``washout_days`` applies to the crossover design (the days between a reader's two sessions).
    ``lesions`` (``app.study.lesions.StudyLesion``, already checked) and ``scoring`` (a ``ScoringRule``; the
    default rule when lesions are given without one) make a localisation study, stored in the same
    transaction."""
    try:
        design = Design(design)
    except ValueError as error:
        raise StudyError(f"unknown design {design!r}; choose one of {', '.join(Design)}") from error
    if not name.strip():
        raise StudyError("give the study a name")
    if name != name.strip() or any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        # 'pilot ' beside 'pilot', or a line break in a name every list and file shows (a no-break space within
        # a name, as spreadsheets and French typography write, is a space)
        raise StudyError(f"the study name {name!r} has spaces at its ends or control characters (a tab, a line "
                         "break): give it without them")
    if not readers or not all(reader.strip() for reader in readers):
        raise StudyError("give at least one reader, each with a name (an empty one was given)" if readers
                         else "give at least one reader")
    for reader in readers:  # a Persian name's zero-width (non-)joiner is part of it; any other invisible
        # character (a zero-width space, a byte-order mark, a right-to-left override) made look-alike or empty names
        hidden = [c for c in reader if unicodedata.category(c) in ("Cc", "Zl", "Zp")
                  or (unicodedata.category(c) == "Cf" and c not in JOINERS)]
        if reader != reader.strip() or ";" in reader or hidden or not reader.strip("".join(JOINERS) + " "):
            raise StudyError(f"the reader name {reader!r} has spaces at its ends, a ';', a tab, a line break or an "
                             "invisible character: give each reader without them, the readers separated by commas")
    # one form of each name: 'Chloé' typed as é or as e and a combining accent is one reader, not two who look
    # alike in every list (a name is found in its composed form, whichever form a keyboard gives)
    readers = [unicodedata.normalize("NFC", reader) for reader in readers]
    twice = sorted({reader for reader in readers if readers.count(reader) > 1})
    if twice:
        raise StudyError(f"each reader is named once; given twice: {', '.join(twice)}")
    def folded(reader: str) -> str:  # "anna" and "Anna", "Ａnna" (a full-width Ａ) and "Anna": one reader
        return unicodedata.normalize("NFKC", reader).casefold()

    keys = [folded(reader) for reader in readers]
    alike = sorted({reader for reader in readers if keys.count(folded(reader)) > 1})
    if alike:
        raise StudyError(f"each reader is named once; these differ only in capitals or in the width of their "
                         f"letters: {', '.join(alike)}")
    if not cases:
        raise StudyError("the study has no case")
    if washout_days < 0:
        raise StudyError("the washout cannot be negative")
    if washout_days and design != Design.CROSSOVER:
        raise StudyError(f"a washout separates the two sessions of the crossover design; the {design} design "
                         "reads each case in one sitting")

    def work(db) -> int:
        refuse_a_name_alike(db, name)
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
        if lesions is not None:
            from app.study.lesions import insert_lesions  # noqa: PLC0415  (lesions imports this module's users)
            from app.study.localisation import ScoringRule  # noqa: PLC0415

            insert_lesions(db, study_id, lesions, scoring or ScoringRule())
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
