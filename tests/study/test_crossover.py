"""The crossover design: two sessions, a washout between them, half of the cases read with the AI first."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter

import pytest

from app.study.results import study_results
from app.study.store import MIGRATIONS, SCHEMA_VERSION, Store, _statements
from app.study.cases import CaseEntry
from app.study.design import Design, create_study, crossover_arms
from app.study.errors import StudyError
from app.study.exchange import export_study, import_study
from app.study.sessions import DAY_S, ReadingSession
from tests.study.ai_results import store_ai_results
from tests.study.test_study import cases



def insert_read(store: Store, study: int, reader: str, case_id: str, modality: str, values: dict, at: float) -> None:
    """A committed read with a chosen commit time: how a test lets weeks pass. (The first reading of a
    case may carry any time; the washout trigger measures the second reading against the store's clock.)"""

    def work(db) -> None:
        for breast in ("L", "R"):
            db.execute("INSERT INTO study_reads VALUES (?, ?, ?, ?, ?, ?, '', 30.0, ?)",
                       (study, reader, case_id, modality, breast, values[breast], at))

    store.submit(work).result()


def read_session_one(store, study, reader, at: float) -> ReadingSession:
    session = ReadingSession(store, study, reader)
    for position in range(session.session_length):
        case = session.case_at(position)
        assert case.session == 1 and case.sessions == 2
        number = int(case.case_id[1:])
        score = 0.2 + 0.05 * (number % 5) + (0.15 if number < 6 else 0.0)  # overlapping classes
        insert_read(store, study, reader, case.case_id, case.modality, {"L": score, "R": 0.1}, at)
    return session


def test_arms_are_balanced_within_strata_and_reproducible():
    entries = cases(21, positives=7) + [CaseEntry("t1", "/t", "normal", "normal", training=True),
                                        CaseEntry("t2", "/t", "normal", "normal", training=True)]
    arms = crossover_arms(entries, "A", 5)
    assert arms == crossover_arms(entries, "A", 5) and arms != crossover_arms(entries, "B", 5)
    for stratum in (["t1", "t2"], [c.case_id for c in entries[:7]], [c.case_id for c in entries[7:21]]):
        counts = Counter(arms[c] for c in stratum)
        assert abs(counts["unaided"] - counts["concurrent"]) <= 1


def test_each_reader_s_study_cases_split_within_one_when_two_strata_are_odd():
    """A coordinator's finding: 3 cancers and 5 others gave one reader 5 cases AI-first and 3 unaided-first (each
    stratum's odd case drawn to an arm on its own); the second odd case goes to the other arm."""
    entries = cases(8, positives=3)
    for seed in range(20):
        for reader in ("Carol", "Dan", "A"):
            arms = crossover_arms(entries, reader, seed)
            counts = Counter(arms.values())
            assert counts["unaided"] == counts["concurrent"] == 4, (seed, reader, counts)
            positives = Counter(arms[c.case_id] for c in entries[:3])
            assert sorted(positives.values()) == [1, 2]


def test_each_case_is_read_once_per_session_in_each_modality(store):
    study = create_study(store, "x", Design.CROSSOVER, ["A", "B"], cases(12, 4), seed=3, washout_days=28)
    session = ReadingSession(store, study, "A")
    first, second = session.order[:12], session.order[12:]
    assert sorted(first) == sorted(second) == sorted(c.case_id for c in cases(12, 4))
    assert first != second  # the second session has its own order
    for position in range(12):
        case_id = session.order[position]
        again = 12 + second.index(case_id)
        assert {session.modality_at(position), session.modality_at(again)} == {"unaided", "concurrent"}
    assert Counter(session.modality_at(p) for p in range(12)) == {"unaided": 6, "concurrent": 6}


def test_session_two_waits_for_session_one_and_the_washout(store):
    study = create_study(store, "x", Design.CROSSOVER, ["A"], cases(6, 2), seed=1, washout_days=28)
    store_ai_results(store, study)
    session = ReadingSession(store, study, "A")
    assert not session.is_open(6) and session.washout_ends_at() is None
    # the first reading must follow the plan
    case = session.case_at(0)
    other = "concurrent" if case.modality == "unaided" else "unaided"
    with pytest.raises(sqlite3.IntegrityError, match="other modality first"):
        session.commit(case.case_id, other, {"L": 0.1, "R": 0.1}).result()
    for position in range(6):
        case = session.case_at(position)
        session.commit(case.case_id, case.modality, {"L": 0.3, "R": 0.1}).result()
    assert session.next_position() == 6 and session.case_at(6).session == 2
    ends = session.washout_ends_at()
    assert ends == pytest.approx(time.time() + 28 * DAY_S, abs=60)
    assert not session.is_open(6) and session.is_open(6, now=ends)
    # the store itself refuses a second reading of a case inside the washout, whatever the caller claims
    second = session.case_at(6)
    with pytest.raises(sqlite3.IntegrityError, match="washout"):
        session.commit(second.case_id, second.modality, {"L": 0.9, "R": 0.1}).result()
    assert session.next_position() == 6


def test_after_the_washout_session_two_is_read_and_analysed(store):
    study = create_study(store, "x", Design.CROSSOVER, ["A", "B"], cases(12, 6), seed=2, washout_days=28)
    store_ai_results(store, study)
    month_ago = time.time() - 30 * DAY_S
    for reader in ("A", "B"):
        session = read_session_one(store, study, reader, month_ago)
        assert session.is_open(12) and session.washout_ends_at() == pytest.approx(month_ago + 28 * DAY_S)
        for position in range(12, 24):
            case = session.case_at(position)
            assert case.position == position - 12 and case.total == 12
            number = int(case.case_id[1:])
            score = 0.1 + 0.07 * (number % 4) + (0.3 if number < 6 else 0.0) + (0.01 if reader == "B" else 0.0)
            session.commit(case.case_id, case.modality, {"L": score, "R": 0.1}).result()
        assert session.next_position() is None
    results = study_results(store, study)
    assert "concurrent vs unaided" in results.comparisons
    assert {r.modality for r in results.aucs} >= {"unaided", "concurrent"}
    assert results.telemetry == []  # independent readings: no "changed after seeing the AI" to report

    exported = export_study(store, study)
    assert len(exported["crossover_arms"]) == 24
    copy = import_study(store, exported, name="x (copy)")
    key = lambda r: (r["reader"], r["case_id"], r["modality"], r["breast"])  # noqa: E731
    assert sorted(export_study(store, copy)["study_reads"], key=key) == sorted(
        ({**r, "study_id": copy} for r in exported["study_reads"]), key=key)
    again = ReadingSession(store, copy, "A")
    assert again.order == ReadingSession(store, study, "A").order and again.next_position() is None


def test_washout_is_refused_for_single_sitting_designs(store):
    with pytest.raises(StudyError, match="crossover"):
        create_study(store, "s", Design.SEQUENTIAL, ["A"], cases(4, 1), washout_days=14)
    with pytest.raises(StudyError, match="negative"):
        create_study(store, "s", Design.CROSSOVER, ["A"], cases(4, 1), washout_days=-1)
    with pytest.raises(StudyError, match="unknown design"):
        create_study(store, "s", "crossed", ["A"], cases(4, 1))


def test_a_schema_2_store_migrates_with_its_studies_and_locks_intact(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for version in (1, 2):
        for statement in _statements(MIGRATIONS[version]):
            db.execute(statement)
    db.execute("PRAGMA user_version=2")
    db.execute("INSERT INTO studies VALUES (1, 'old', 'sequential', 4, 0, 0)")
    db.execute("INSERT INTO study_readers VALUES (1, 'A')")
    db.execute("INSERT INTO study_cases VALUES (1, 'c1', '/e', 'malignant', 'normal', '', 0)")
    db.execute("INSERT INTO reading_order VALUES (1, 'A', 0, 'c1')")
    for breast in ("L", "R"):
        db.execute(f"INSERT INTO study_reads VALUES (1, 'A', 'c1', 'unaided', '{breast}', 0.4, '', 3, 1)")
    db.close()

    store = Store(path)
    try:
        assert store.read("PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert store.read("SELECT name, design FROM studies") == [("old", "sequential")]
        assert store.read("PRAGMA foreign_key_check") == []
        session = ReadingSession(store, 1, "A")
        assert session.reads("c1") == {"unaided": {"L": 0.4, "R": 0.4}}
        store_ai_results(store, 1)  # study scores, run after the upgrade
        with pytest.raises(sqlite3.IntegrityError, match="cannot be changed"):
            store.submit(lambda db: db.execute("UPDATE study_reads SET malignant = 0.9")).result()
        session.reveal("c1").result()
        with pytest.raises(sqlite3.IntegrityError, match="locked"):
            session.commit("c1", "unaided", {"L": 0.1, "R": 0.1}).result()
        create_study(store, "new", Design.CROSSOVER, ["A"], cases(4, 1), washout_days=7)
    finally:
        store.close()
