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
