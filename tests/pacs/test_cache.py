"""The retrieve cache without a network: private folders of retrieves count against the limit, those of a
process that is gone are removed, and the node's timeout comes from ``MAMMO_PACS_TIMEOUT``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from app.pacs.nodes import parse_address
from app.pacs.retrieve import COMPLETE, evict, remove_stale_partials
from inference.errors import MammoError


def _study(root, name: str, size: int, mtime: float):
    folder = root / name
    folder.mkdir()
    (folder / "a.dcm").write_bytes(b"\0" * size)
    (folder / COMPLETE).write_text(json.dumps({"instances": 1}))
    os.utime(folder / COMPLETE, (mtime, mtime))
    return folder


def test_a_retrieve_in_progress_counts_against_the_limit(tmp_path):
    old = _study(tmp_path, "old", 1000, 1_000)
    new = _study(tmp_path, "new", 1000, 2_000)
    partial = tmp_path / f".abc.partial-{os.getpid()}"  # ours: alive
    partial.mkdir()
    (partial / "b.dcm").write_bytes(b"\0" * 3000)
    evict(tmp_path, 4500, keep=new)
    assert not old.exists() and new.exists() and partial.exists()


def test_private_folders_of_a_process_that_is_gone_are_removed(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale, ours = tmp_path / f".abc.partial-{gone.pid}", tmp_path / f".def.partial-{os.getpid()}"
    for folder in (stale, ours):
        folder.mkdir()
        (folder / "a.dcm").write_bytes(b"\0")
    assert remove_stale_partials(tmp_path) == 1
    assert not stale.exists() and ours.exists()


def test_the_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MAMMO_PACS_TIMEOUT", "2.5")
    assert parse_address("dimse://ORTHANC@pacs:4242")[0].timeout == 2.5
    assert parse_address("dicomweb+https://pacs/dicom-web")[0].timeout == 2.5
    monkeypatch.setenv("MAMMO_PACS_TIMEOUT", "soon")
    with pytest.raises(MammoError, match="MAMMO_PACS_TIMEOUT"):
        parse_address("dimse://ORTHANC@pacs:4242")
