"""The workstation's reads in the store (no Qt): the first committed read is final, a change after the model
was shown is a separate time-stamped amendment, a schema 5 store migrates; and the rule that asks before
committing a read whose parts disagree."""

from __future__ import annotations

import sqlite3

import pytest

from app.reading import amendment_text, read_disagreements
from app.study.store import MIGRATIONS, SCHEMA_VERSION, BreastRead, CommittedReadError, Store, _statements



FIRST = BreastRead("R", 0.80, birads="4C", committed=True, recommendation="biopsy")
AFTER = BreastRead("R", 0.30, birads="4C", committed=True, recommendation="biopsy")


def test_a_committed_read_is_never_overwritten(store):
    store.save_reads("exam", "A", [FIRST, BreastRead("L", None, committed=True)]).result()
    with pytest.raises(CommittedReadError, match="right breast is final"):
        store.save_reads("exam", "A", [AFTER]).result()
    with pytest.raises(CommittedReadError):  # a draft save does not get round it either
        store.save_reads("exam", "A", [BreastRead("R", 0.30)]).result()
    store.save_reads("exam", "A", [FIRST]).result()  # committing the same answer again changes nothing
    with pytest.raises(sqlite3.IntegrityError, match="cannot be changed"):  # nor does SQL written by hand
        store.submit(lambda db: db.execute("UPDATE exam_reads SET malignant = 0.3")).result()
    with pytest.raises(sqlite3.IntegrityError, match="cannot be deleted"):
        store.submit(lambda db: db.execute("DELETE FROM exam_reads")).result()
    with pytest.raises(sqlite3.IntegrityError, match="cannot be changed"):  # INSERT OR REPLACE fires no DELETE trigger
        store.submit(lambda db: db.execute("INSERT OR REPLACE INTO exam_reads (exam_key, reader, breast, malignant, "
                                           "committed, updated_at) VALUES ('exam', 'A', 'R', 0.9, 1, 0)")).result()
    assert store.load_reads("exam", "A")["R"].malignant == pytest.approx(0.80)


def test_a_draft_stays_editable_until_it_is_committed(store):
    store.save_reads("exam", "A", [BreastRead("R", 0.10)]).result()
    store.save_reads("exam", "A", [BreastRead("R", 0.20)]).result()
    draft = store.load_reads("exam", "A")["R"]
    assert draft.malignant == pytest.approx(0.20) and not draft.committed and draft.recorded_at is None
    with pytest.raises(CommittedReadError, match="no committed read to amend"):
        store.amend_reads("exam", "A", [AFTER]).result()
    assert store.load_amendments("exam", "A") == []


def test_a_change_after_the_model_is_an_amendment_beside_the_first_read(store):
    store.save_reads("exam", "A", [FIRST]).result()
    stored = store.amend_reads("exam", "A", [AFTER]).result()
    assert [a.malignant for a in stored] == [pytest.approx(0.30)] and stored[0].recorded_at is not None
    assert store.amend_reads("exam", "A", [AFTER]).result() == []  # the same answer again: no new row
    later = store.amend_reads("exam", "A", [BreastRead("R", 0.40, birads="4B", committed=True)]).result()

    read = store.load_reads("exam", "A")["R"]  # what a reopened exam shows
    assert read.committed and read.malignant == pytest.approx(0.80) and read.birads == "4C"
    assert read.amendment.malignant == pytest.approx(0.40) and read.amendment.recorded_at == later[0].recorded_at
    assert [a.malignant for a in read.earlier_amendments] == [pytest.approx(0.30)]  # none hidden behind the latest
    assert read.earlier_amendments[0].recorded_at == stored[0].recorded_at
    history = store.load_amendments("exam", "A")
    assert [a.malignant for a in history] == [pytest.approx(0.30), pytest.approx(0.40)]
    assert history[0].recorded_at < history[1].recorded_at
    assert store.read("SELECT DISTINCT kind FROM exam_read_amendments") == [("amended after AI",)]
    with pytest.raises(sqlite3.IntegrityError, match="cannot be changed"):
        store.submit(lambda db: db.execute("UPDATE exam_read_amendments SET malignant = 0.8")).result()
    with pytest.raises(sqlite3.IntegrityError, match="needs a committed first read"):
        store.submit(lambda db: db.execute(
            "INSERT INTO exam_read_amendments (exam_key, reader, breast, amended_at) VALUES ('x', 'A', 'R', 1)")).result()
    with pytest.raises(sqlite3.IntegrityError, match="amendment cannot be replaced"):
        store.submit(lambda db: db.execute(
            "INSERT OR REPLACE INTO exam_read_amendments (exam_key, reader, breast, amended_at, malignant) "
            "VALUES ('exam', 'A', 'R', ?, 0.9)", (later[0].recorded_at,))).result()
    assert [a.malignant for a in store.load_amendments("exam", "A")] == [pytest.approx(0.30), pytest.approx(0.40)]


def test_a_schema_5_store_migrates_and_its_committed_reads_become_final(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for version in range(1, 6):
        for statement in _statements(MIGRATIONS[version]):
            db.execute(statement)
    db.execute("PRAGMA user_version=5")
    db.execute("INSERT INTO exam_reads VALUES ('exam', 'A', 'R', 0.8, NULL, '4C', 1, 100.0, 'b', 'biopsy')")
    db.execute("INSERT INTO exam_reads VALUES ('exam', 'A', 'L', 0.1, NULL, '', 0, 100.0, '', '')")
    db.close()

    store = Store(path)
    try:
        assert store.read("PRAGMA user_version") == [(SCHEMA_VERSION,)]
        reads = store.load_reads("exam", "A")
        assert reads["R"] == BreastRead("R", 0.8, None, "4C", True, "b", "biopsy", recorded_at=100.0)
        with pytest.raises(CommittedReadError):
            store.save_reads("exam", "A", [BreastRead("R", 0.3, committed=True)]).result()
        store.save_reads("exam", "A", [BreastRead("L", 0.2)]).result()  # the old draft is still a draft
        store.amend_reads("exam", "A", [BreastRead("R", 0.3, None, "4C", True, "b", "biopsy")]).result()
        reads = store.load_reads("exam", "A")
        assert reads["R"].malignant == 0.8 and reads["R"].amendment.malignant == 0.3
        assert reads["L"].malignant == 0.2
    finally:
        store.close()


def test_the_amendment_is_said_beside_the_first_read():
    first = BreastRead("R", 0.80, birads="4C", committed=True, recommendation="biopsy",
                       amendment=BreastRead("R", 0.30, birads="4C", committed=True, recommendation="biopsy"))
    assert amendment_text(first) == "before AI 80 % → after AI 30 %"
    changed = BreastRead("R", 0.80, birads="4C", committed=True,
                         amendment=BreastRead("R", 0.30, birads="4A", committed=True))
    assert amendment_text(changed) == "before AI 80 %, BI-RADS 4C → after AI 30 %, BI-RADS 4A"
    assert amendment_text(FIRST) == ""


@pytest.mark.parametrize(("malignant", "birads", "recommendation", "flagged"), [
    (0.30, "4C", "biopsy", True),  # the case seen: 30 % with 4C and a biopsy
    (0.80, "4C", "biopsy", False),
    (0.90, "1", "", True),
    (0.50, "2", "", True),  # BI-RADS 1-2 (and 3, 4A: at most 10 %) with 50 % or more
    (0.49, "2", "", False),
    (0.40, "5", "", True),  # BI-RADS 5 below 50 %
    (0.55, "4C", "biopsy", False),
    (0.30, "4B", "biopsy", False),
    (0.99, "4B", "", True),
    (0.01, "", "biopsy", True),  # a biopsy below the 2 % of BI-RADS 3
    (0.01, "2", "routine screening", False),
    (0.70, "", "routine screening", True),
    (None, "2", "biopsy", True),  # a biopsy for a benign finding
    (None, "5", "routine screening", True),
    (None, "", "", False),
    (0.30, "0", "additional imaging", False),
    (0.30, "4", "biopsy", False),  # 4 undivided (the subdivisions are optional): more than 2 %, less than 95 %
    (0.01, "4", "", True),
    (0.97, "4", "", True),
    (0.30, "4", "routine screening", True),
])
def test_a_read_whose_parts_disagree_is_named(malignant, birads, recommendation, flagged):
    assert bool(read_disagreements(malignant, birads, recommendation)) == flagged


def test_a_change_kept_before_schema_18_keeps_its_values_and_gets_no_location(tmp_path):
    """Migration 18 gives the kept change the place its exam was read from; one kept before stays as it was."""
    import sqlite3

    path = tmp_path / "s.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    db.executescript("DROP TABLE exam_read_pending_changes;" + MIGRATIONS[17] + "INSERT INTO exam_read_pending_changes "
                     "(exam_key, reader, breast, malignant, saved_at) VALUES ('k', 'dr a', 'R', 0.3, 1.0);"
                     "PRAGMA user_version=17;")
    db.close()
    store = Store(path)
    assert store.load_pending_change("k", "dr a")["R"].malignant == 0.3
    assert store.pending_change_locations("dr a") == {}
    store.save_pending_change("k", "dr a", [BreastRead("R", 0.4)], "/exams/one", "digest").result()
    assert store.pending_change_locations("dr a") == {"/exams/one": {"digest"}}
    store.close()
