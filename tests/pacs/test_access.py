"""The PACS boundary against Orthanc in a loopback-only namespace (``access_probe.py``): the cache asks the node
every time, every network step ends within its bound (a C-GET that stalls, a DICOMweb server that never
answers, Ctrl+C in a slow C-GET) and leaves no private folder, and the messages say what happened (an AE title
the PACS refuses, the wrong port, a study removed during its retrieve). Every step runs with
``MAMMO_PACS_TIMEOUT=2``; the bounds asserted are that timeout (twice where a read and then an abort can each
wait for it) plus a margin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.archive.conftest import loopback_only
from tests.conftest import ROOT

PROBE = Path(__file__).with_name("access_probe.py")
MARGIN_S = 3.0


@pytest.fixture(scope="module")
def seen() -> dict:
    done = subprocess.run(loopback_only([sys.executable, str(PROBE)]), cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_right_identities_retrieve(seen):
    assert seen["right_dimse"]["error"] == "ok" and seen["right_web"]["error"] == "ok"


def test_a_cached_study_is_refused_to_an_ae_title_the_pacs_does_not_know(seen):
    run = seen["cli_unregistered_aet"]
    assert run["rc"] == 2, run
    assert ("the PACS refused C-GET for our AE title 'NOTREGISTERED': register it on the PACS (Orthanc: "
            "DicomModalities)") in run["stderr"]


def test_a_cached_study_is_refused_to_a_wrong_password_no_credentials_and_a_wrong_token(seen):
    run = seen["cli_wrong_password"]
    assert run["rc"] == 2 and "authentication failed (HTTP 401)" in run["stderr"], run
    assert "P(malignant)" not in run["stdout"]
    for key in ("no_credentials", "wrong_token"):
        assert "authentication failed (HTTP 401)" in seen[key]["error"], seen[key]


def test_a_cached_study_the_node_no_longer_lists_is_not_served(seen):
    first, again = seen["removed_then_cached"]
    assert first["error"] == "ok"
    assert f"study {seen['removed_uid']} is not on the node" in again["error"]
    assert "the copy in the cache is not used" in again["error"]


def test_a_stalled_c_get_ends_within_its_bound_and_leaves_no_private_folder(seen):
    bound = 2 * seen["timeout_s"] + MARGIN_S
    stall = seen["stall_api"]
    assert stall["stalled"], "the proxy never stopped forwarding: the test proved nothing"
    assert "C-GET: the node stopped answering (nothing for 2 s); the association was aborted" in stall["error"]
    assert stall["s"] < bound
    run = seen["stall_cli"]
    assert run["rc"] == 2 and "the node stopped answering" in run["stderr"], run
    assert "Traceback" not in run["stderr"]
    assert seen["stall_partials"] == []


def test_a_dicomweb_server_that_never_answers_ends_within_the_timeout(seen):
    silent = seen["web_silent"]
    assert "no answer within 2 s" in silent["error"], silent
    assert silent["s"] < seen["timeout_s"] + MARGIN_S  # dicomweb-client's retries made 30 s into 196 s


def test_ctrl_c_ends_a_slow_c_get_at_once(seen):
    interrupted = seen["sigint"]
    assert interrupted["forwarded"] >= 60_000, "the retrieve was not under way when interrupted"
    assert interrupted["rc"] == 130, interrupted["stderr"]
    assert interrupted["s"] < 2 + MARGIN_S  # 2 s, plus the interpreter's exit
    assert interrupted["partials"] == []


def test_the_wrong_port_says_so(seen):
    assert "this port answers HTTP, not DICOM" in seen["dimse_to_http_port"]["error"]
    assert "this port does not speak HTTP" in seen["web_to_dicom_port"]["error"]
    assert seen["dimse_to_http_port"]["s"] < seen["timeout_s"] + MARGIN_S
    assert seen["web_to_dicom_port"]["s"] < seen["timeout_s"] + MARGIN_S


def test_c_get_refused_for_our_ae_title_says_to_register_it(seen):
    assert seen["get_unregistered"]["error"].endswith(
        "the PACS refused C-GET for our AE title 'NOTREGISTERED': register it on the PACS (Orthanc: DicomModalities)")


def test_a_study_removed_during_its_retrieve_is_said(seen):
    assert seen["vanished"]["error"].endswith("the study was removed from the PACS during the retrieve")
    assert seen["vanished_partials"] == []


def test_a_stale_private_folder_is_removed_at_start_and_a_live_one_kept(seen):
    gone, living = seen["stale_pids"]["gone"], seen["stale_pids"]["living"]
    assert sorted(seen["stale_before"]) == sorted(f".0123456789abcdef0123.partial-{pid}" for pid in (gone, living))
    assert seen["stale_retrieve"]["error"] == "ok"
    assert seen["stale_after"] == [f".0123456789abcdef0123.partial-{living}"]
