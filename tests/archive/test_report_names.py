"""Report files' names in a folder shared by every exam (``claim_label``): each exam a name of its own, the names
in use by a folder written before claims were kept taken from its markers once, not for every exam."""

from __future__ import annotations

import json
import types

from app.archive import unit
from app.archive.table import BOOKKEEPING


def _legacy_marker(out, key: str, location: str, files: list[str]) -> None:
    done = out / BOOKKEEPING / "done"
    done.mkdir(parents=True, exist_ok=True)
    for name in files:
        (out / name).write_text("written")
    (done / f"{key}.json").write_text(json.dumps({"location": location, "files": [str(out / f) for f in files]}))


def test_names_in_use_before_claims_are_kept_and_only_those(tmp_path):
    out = tmp_path / "out"
    _legacy_marker(out, "k1", "/exams/ab", ["A_B.pdf", "A_B_sr.dcm", "A_B_L-CC_gmic_saliency_seg.dcm"])
    _legacy_marker(out, "k2", "/exams/x", ["X.json", "X.maps.npz"])
    assert unit.claim_label(out, "A", "/exams/a") == "A"  # A_B's files are not A's
    assert unit.claim_label(out, "A_B", "/exams/other") == "A_B-2"
    assert unit.claim_label(out, "A_B", "/exams/ab") == "A_B"  # the exam that wrote them keeps its name
    assert unit.claim_label(out, "X", "/exams/y") == "X-2"
    assert unit.claim_label(out, "X", "/exams/y") == "X-2"  # again: the same claim
    assert not list((out / BOOKKEEPING).glob("*.tmp"))


def test_markers_are_read_once_per_folder_not_once_per_exam(tmp_path, monkeypatch):
    out = tmp_path / "out"
    for i in range(20):
        _legacy_marker(out, f"k{i}", f"/exams/{i}", [f"E{i}.pdf"])
    reads = []
    monkeypatch.setattr(unit, "json", types.SimpleNamespace(loads=lambda text: reads.append(1) or json.loads(text)))
    names = [unit.claim_label(out, f"N{i}", f"/exams/new{i}") for i in range(50)]
    assert names == [f"N{i}" for i in range(50)] and len(reads) == 20


def test_writers_in_threads_making_the_claims_folder_together_each_get_a_name(tmp_path):
    """Two exports at once into a new folder raced on one temporary folder per process (one removed the
    other's, or a claim was written into a folder that had gone)."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    for attempt in range(40):
        out = tmp_path / f"out{attempt}"
        for i in range(5):
            _legacy_marker(out, f"k{i}", f"/exams/old{i}", [f"E{i}.pdf"])
        with ThreadPoolExecutor(4) as pool:
            names = list(pool.map(lambda i, o=out: unit.claim_label(o, "N", f"/exams/{i}"), range(4)))
        assert sorted(names) == ["N", "N-2", "N-3", "N-4"]
        assert not list((out / BOOKKEEPING).glob("*.tmp"))


def test_report_files_of_a_name_no_claim_made_are_never_written_over(tmp_path):
    """A reviewer's own ACC777.pdf in the report folder was replaced by exam ACC777's report: a name whose report
    files are there without a claim of ours is not given to any exam."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "ACC777.pdf").write_text("the user's own")
    assert unit.claim_label(out, "ACC777", "/exams/a") == "ACC777-2"
    assert unit.claim_label(out, "ACC777", "/exams/a") == "ACC777-2"  # a rerun: the same name
    assert unit.claim_label(out, "ACC", "/exams/b") == "ACC"  # ACC777's files are not ACC's
    assert (out / "ACC777.pdf").read_text() == "the user's own"
