"""``python main.py serve``, the DICOM AI node, against real DICOM peers in a loopback-only network namespace:
who is let in (calling and called AE title, host), what is kept (MG only, within the size limit and the
quota), a four-view study analysed after the quiet period and its SR, SEG and ePDF stored on Orthanc (after
Orthanc, down at first, comes up: the node tries again by itself), SIGTERM, and a restart that analyses
nothing twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.archive.conftest import loopback_only
from tests.conftest import ROOT

PROBE = Path(__file__).with_name("serve_probe.py")


@pytest.fixture(scope="module")
def seen() -> dict:
    done = subprocess.run(loopback_only([sys.executable, str(PROBE)]), cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_strangers_and_a_wrong_called_ae_title_are_rejected_at_association(seen):
    # A-ASSOCIATE-RJ: rejected permanent (1), by the service user (1), calling (3) / called (7) AE not recognised
    assert seen["stranger"] == {"established": False, "rejected": True, "result": 1, "source": 1, "diagnostic": 3}
    assert seen["wrong_called"]["rejected"] and seen["wrong_called"]["diagnostic"] == 7
    assert seen["pinned_elsewhere"]["rejected"] and seen["pinned_elsewhere"]["diagnostic"] == 3  # AET@other host
    assert seen["allowed"] == {"established": True, "rejected": False, "echo": 0}
    log = seen["stderr1"]
    assert "rejected an association from AE title 'STRANGER' at 127.0.0.1: not on the allow-list" in log
    assert "addressed to AE title 'NOTTHENODE', not ours ('AINODE')" in log


def test_what_is_not_kept_is_never_answered_with_success(seen):
    assert seen["not_mg"]["status"] == 0xA900 and "not a mammography image" in seen["not_mg"]["comment"]
    # 5 MB against a limit of 4: cut off while it arrives (the association aborted), never held whole in memory
    assert seen["too_big"] == {"status": None, "comment": "aborted"}
    assert "aborted the association of AE title" in seen["stderr1"]
    assert not seen["not_mg_kept"] and not seen["too_big_kept"]
    assert [s["status"] for s in seen["full"]] == [0xA700] and "full" in seen["full"][0]["comment"]
    assert [s["status"] for s in seen["study"]] == [0, 0, 0, 0] and seen["study_files"] == 4


def test_a_study_is_analysed_once_quiet_and_its_results_reach_the_node_when_it_comes_up(seen):
    out = seen["stdout1"]
    assert out.count("analysed study ") == 1 and "NOT SENT" in out
    assert out.index("NOT SENT") < out.index("sent ", out.index("NOT SENT") + 8)  # retried by itself
    assert {"_sr.dcm", "_pdf.dcm", ".pdf", ".json"} <= {n[n.index("_") if "_" in n else n.index("."):]
                                                         for n in seen["result_files"]}
    assert sum(n.endswith("_seg.dcm") for n in seen["result_files"]) == 4
    assert seen["modalities"] == ["DOC", "SEG", "SEG", "SEG", "SEG", "SR"]


def test_sigterm_stops_it_cleanly(seen):
    for stop in (seen["stop"], seen["stop2"]):
        assert stop["rc"] == 0 and stop["seconds"] < 10
    assert seen["stdout1"].rstrip().endswith("stopped")


def test_a_restarted_node_analyses_and_sends_nothing_twice(seen):
    out = seen["stdout2"]
    assert "already analysed (not analysed again)" in out and "analysed study" not in out and "sent " not in out
    assert seen["unchanged"]  # marker and report files not rewritten
    assert seen["modalities_after_restart"] == seen["modalities"]


def test_no_patient_identifier_in_the_node_s_names_or_output(seen):
    text = json.dumps([seen["inbox_names"][:5], seen["stdout1"], seen["stderr1"], seen["stdout2"]])
    assert "Testpatient" not in text and "PID-0042-SECRET" not in text
