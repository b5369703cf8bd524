"""The one sending rule (app/pacs/send.py): these bytes once per node; changed bytes again; a failed send kept."""

from __future__ import annotations

import json

import pytest

from app.pacs.nodes import PacsError, RemoteNode
from app.pacs.send import node_folder, send_once


class Calls(list):
    failing: set


@pytest.fixture
def sent(monkeypatch):
    calls = Calls()
    failing: set[int] = set()  # ports of nodes that refuse

    def fake_send(node, paths):
        if node.port in failing:
            raise PacsError(node, "the node refused the association")
        calls.append([p.read_bytes() for p in paths])

    calls.failing = failing  # type: ignore[attr-defined]

    monkeypatch.setattr("app.pacs.retrieve.send_files", fake_send)
    return calls


def node(port: int = 11112) -> RemoteNode:
    from app.pacs.nodes import parse_address

    return parse_address(f"dimse://PACS@127.0.0.1:{port}", "MAMMOREADER")[0]


def test_the_same_bytes_go_once_per_node_and_changed_bytes_again(tmp_path, sent):
    sr = tmp_path / "exam_sr.dcm"
    sr.write_bytes(b"first")
    record = node_folder(tmp_path / "records", node()) / "exam.json"
    assert send_once(node(), [sr], record) and len(sent) == 1
    assert not send_once(node(), [sr], record) and len(sent) == 1  # already there: not sent twice
    other = node_folder(tmp_path / "records", node(11113)) / "exam.json"
    assert send_once(node(11113), [sr], other) and len(sent) == 2  # another node gets them too
    sr.write_bytes(b"amended")  # a re-export whose content changed
    assert send_once(node(), [sr], record) and sent[-1] == [b"amended"]
    assert json.loads(record.read_text())["sha256"] and "PACS@127.0.0.1:11112" in json.loads(record.read_text())["node"]


def test_a_failed_send_leaves_no_record_so_the_next_try_sends(tmp_path, sent):
    sr = tmp_path / "exam_sr.dcm"
    sr.write_bytes(b"result")
    sent.failing.add(11112)
    record = tmp_path / "records" / "exam.json"
    with pytest.raises(PacsError):
        send_once(node(), [sr], record)
    assert not record.exists() and sent == []
    sent.failing.clear()
    assert send_once(node(), [sr], record) and len(sent) == 1


def test_a_deidentified_runs_send_records_carry_the_one_file_time(tmp_path, sent):
    """The record of a send is written when the exam's results went out, near the exam's true date: in a
    de-identified run it, its folder, the node's folder and the bookkeeping folder (dated by 'sent' made in it:
    the true run date gave the offset away) get the one de-identified file time."""
    from types import SimpleNamespace

    from app.archive.send import send_results
    from app.archive.sources import ExamItem
    from app.archive.table import BOOKKEEPING
    from app.archive.unit import marker_path
    from inference.files import DEIDENTIFIED_FILE_TIME

    def run(out, deidentified):
        item = ExamItem("anon-1", "anon-1")
        sr = out / "anon-1_sr.dcm"
        sr.parent.mkdir(parents=True)
        sr.write_bytes(b"result")
        marker = marker_path(out, item)
        marker.parent.mkdir(parents=True)
        marker.write_text(json.dumps({"files": [str(sr)]}))
        summary = SimpleNamespace(done=[SimpleNamespace(exam_id="anon-1", location="anon-1")], skipped=[])
        assert send_results(node(), summary, str(out), deidentified=deidentified) == 0
        records = node_folder(out / BOOKKEEPING, node())
        return [records / f"{item.key}.json", records, records.parent, out / BOOKKEEPING]  # '.batch' too

    plain = run(tmp_path / "plain", False)
    safe = run(tmp_path / "safe", True)
    assert len(sent) == 2 and all(p.exists() for p in plain + safe)
    assert all(p.stat().st_mtime == DEIDENTIFIED_FILE_TIME for p in safe)
    assert all(p.stat().st_mtime != DEIDENTIFIED_FILE_TIME for p in plain)
