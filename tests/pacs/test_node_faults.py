"""What a hands-on test of the AI node found badly served, against real DICOM peers in a loopback-only network
namespace with small tmpfs mounts for a full or read-only disk (``node_faults_probe.py``): the same study in
another transfer syntax, lines that name no host, an allowed AE title from another host, an image without
pixels answered with success, a full or read-only inbox said per instance with no cause, a CT-only association
said nowhere, connection floods said once a connection (or not at all), a read-only --out accepted at start,
a killed node's temporary result files kept for ever, a study whose results did not fit on the disk never
analysed again (then analysed again every --retry-s while the disk was still full), an image whose pixels
cannot be laid out answered with success, and a second node on the same DIR removing the first's half-written
results."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.archive.conftest import loopback_only
from tests.conftest import ROOT

PROBE = Path(__file__).with_name("node_faults_probe.py")


def _probe(part: str, tmp_path: Path) -> dict:
    command = loopback_only(["unshare", "-m", "--propagation", "private", sys.executable, str(PROBE), part])
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=400,
                          env={**os.environ, "MAMMO_READER_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def scp_seen(tmp_path_factory) -> dict:
    return _probe("scp", tmp_path_factory.mktemp("scp"))


@pytest.fixture(scope="module")
def node_seen(tmp_path_factory) -> dict:
    return _probe("node", tmp_path_factory.mktemp("node"))


def test_the_same_study_in_implicit_vr_has_the_digest_it_has_in_explicit_vr(scp_seen):
    """Resent in Implicit VR Little Endian, an analysed study was analysed and sent a second time: the digest
    hashed the encoded bytes."""
    assert scp_seen["explicit_answers"] == scp_seen["implicit_answers"] == [[0, ""], [0, ""]]
    assert scp_seen["explicit_legacy"] != scp_seen["implicit_legacy"]  # the files differ: the old digest did too
    assert scp_seen["explicit_digest"] == scp_seen["implicit_digest"]
    assert scp_seen["explicit_digest"].startswith("v2:")


def test_an_allowed_ae_title_from_another_host_is_said_as_such(scp_seen):
    assert (scp_seen["pinned_elsewhere"], scp_seen["pinned_home"]) == (3, "accepted")
    assert ("rejected an association from AE title 'PINNED' at 127.0.0.1: AE title 'PINNED' is allowed only from "
            "127.0.0.2, not from 127.0.0.1") in scp_seen["log_peers"]


def test_an_image_without_pixels_is_refused_when_it_comes(scp_seen):
    """Rows 0 was answered with success and the study then failed its analysis; the sender never knew."""
    (rows, rows_said), (columns, columns_said) = scp_seen["empty"]
    assert rows == columns == 0xC000 and scp_seen["empty_kept"] == 0
    assert re.fullmatch(r"the image has no pixels \(Rows 0, Columns [1-9]\d*\)", rows_said)
    assert re.fullmatch(r"the image has no pixels \(Rows [1-9]\d*, Columns 0\)", columns_said)


def test_an_image_whose_pixels_cannot_be_laid_out_is_refused_when_it_comes(scp_seen):
    """Bits Allocated 0 and Number of Frames 0 passed the checks, were answered with success, and the study
    then failed in the intake: the sender never knew."""
    assert scp_seen["impossible"] == [[0xC000, "Bits Allocated 0: not 1 or a multiple of 8 up to 64"],
                                      [0xC000, "the image has no pixels (Number of Frames 0)"]]
    assert scp_seen["empty_kept"] == 0
    assert ("refused an instance from AE title 'PACS' at 127.0.0.1 (status 0xC000): Bits Allocated 0: not 1 or a "
            "multiple of 8 up to 64") in scp_seen["log_peers"]


def test_instance_lines_name_the_ae_title_and_the_host_and_the_limit_plainly(scp_seen):
    assert scp_seen["senders"] == ["AE title 'PACS' at 127.0.0.1"]  # the node's "(sent by …)"
    log = scp_seen["log_peers"]
    assert ("refused an instance from AE title 'PACS' at 127.0.0.1 (status 0xA900): not a mammography image "
            "(Modality CT)") in log
    assert ("refused an instance from AE title 'PACS' at 127.0.0.1 (status 0xC000): the image has no pixels "
            "(Rows 0, Columns ") in log
    assert scp_seen["too_big"] == [[None, "aborted"]]
    assert ("aborted the association of AE title 'PACS' at 127.0.0.1: the instance it was sending passed 0.2 MB, "
            "this node's limit for one instance, before all of it had come") in log


def test_an_association_that_proposes_only_what_the_node_does_not_take_is_logged(scp_seen):
    assert scp_seen["ct_only"]["accepted"] == 0
    lines = [line for line in scp_seen["log_peers"].splitlines() if "proposed only" in line]
    assert len(lines) == 1
    assert "AE title 'PACS' at 127.0.0.1 proposed only what this node does not take: CT Image Storage (" in lines[0]


@pytest.mark.parametrize(("disk", "cause"), [("full", "No space left on device"),
                                             ("readonly", "Read-only file system")])
def test_a_full_or_read_only_inbox_is_said_with_its_cause_once_an_association(scp_seen, disk, cause):
    """Every instance got 0xA700 with only "a received instance could not be kept", once per instance."""
    assert scp_seen[f"{disk}_answers"] == [[0xA700, f"the instance could not be written: {cause}"]] * 3
    log = scp_seen[f"{disk}_log"]
    assert log.count("could not keep an instance") == 1
    assert f"could not keep an instance from AE title 'PACS' at 127.0.0.1 in " in log and f": {cause} (" in log
    assert f"2 more instance(s) from AE title 'PACS' at 127.0.0.1 could not be kept: {cause}" in log


def test_a_connection_flood_is_said_once_a_host_an_interval_with_counts(scp_seen):
    """One host's flood logged one identical line per closed connection; many hosts' silent connections were
    closed with no line at all."""
    at_once, later = scp_seen["flood_at_once"], scp_seen["flood_later"]
    assert at_once.count("closed a connection from 127.0.0.1: it holds 3 connections") == 1
    assert later.count("closed a connection from 127.0.0.1") == 1
    assert later.count("closed 5 more connection(s) from 127.0.0.1 in the last 2 s") == 1
    (summary,) = [line for line in later.splitlines() if "ended without asking for an association" in line]
    for host in ("127.0.0.10 (2)", "127.0.0.11 (2)", "127.0.0.12 (2)", "127.0.0.13 (2)", "127.0.0.1 (3)"):
        assert host in summary
    assert summary.split("WARNING app.pacs.scp: ")[1].startswith("11 connection(s) ended")
    assert scp_seen["threads"] == []  # the timer that says the counts is gone with the receiver


def test_an_association_flood_from_an_unknown_peer_is_said_once_an_interval_with_a_count(scp_seen):
    """A peer not on the allow-list, asking again and again, wrote one log line per rejected association (and
    grew the list of rejected peers without end)."""
    first = ("rejected an association from AE title 'STRANGER' at 127.0.0.1: not on the allow-list (more of the kind "
             "from 127.0.0.1 in the next 2 s are counted in one line)")
    at_once = scp_seen["rejections_at_once"]
    assert at_once.count("rejected an association") == 1 and first in at_once
    later = scp_seen["rejections_later"]
    assert later.count("rejected an association") == 1
    assert later.count("rejected 7 more association(s) from 127.0.0.1 in the last 2 s (the last: AE title "
                       "'STRANGER8': not on the allow-list)") == 1
    assert scp_seen["rejections_counted"] == [8, ["'STRANGER' at 127.0.0.1", "'STRANGER8' at 127.0.0.1"]]


@pytest.mark.parametrize(("disk", "cause"), [("readonly", "Read-only file system"),
                                             ("full", "No space left on device")])
def test_serve_refuses_a_dir_it_cannot_write_in_at_start(node_seen, disk, cause):
    """On a read-only --out the node started and answered every instance 0xA700."""
    seen = node_seen[f"serve_{disk}"]
    assert seen["rc"] == 1 and "listening as" not in seen["stdout"]
    assert ": the node cannot write in this folder, where it keeps the studies it receives and their results " \
           f"({cause})" in seen["stderr"]


def test_a_killed_node_s_temporary_result_files_go_at_start_up(node_seen):
    assert node_seen["stale_left"] == [] and node_seen["stale_kept"]
    assert "removed 2 unfinished file(s) that a stopped node left in " in node_seen["stale_said"]


def test_a_second_node_on_the_same_dir_is_refused_before_it_touches_anything(node_seen):
    """A second ``serve`` on the DIR of a running one removed its half-written results at start (as a killed
    node's), before it failed to listen; the first one's write then failed as the study's fault."""
    out = node_seen["shared_dir"]
    refusal = (f"{out}: another AI node is running on this folder: it keeps its received studies and results here; "
               "stop it first, or give this one another --out")
    assert node_seen["second_node"] == refusal
    second = node_seen["second_serve"]
    assert second["rc"] == 1 and second["stdout"] == "" and second["stderr"].strip() == f"error: {refusal}"
    assert len(node_seen["second_left"]) == 1 and node_seen["second_left"][0].startswith(".report.json.")
    assert node_seen["first_wrote"] == "{}"
    assert node_seen["third_node"] == "started"  # the first node let DIR go when it stopped


def test_a_study_whose_results_did_not_fit_on_the_disk_is_analysed_again_when_they_do(node_seen):
    """Every instance had been answered with success, so no modality sends the study again: it waited for a
    restart. A study that failed for its content is not tried again by itself. While the results folder still
    takes no file the models are not run again, and the wait doubles."""
    study, bad = node_seen["retry_folders"]
    said = node_seen["retry_said"]
    assert node_seen["retry_due_at_once"] == [] and node_seen["retry_due"] == [study]
    assert said.count(f"FAILED study {study}: ") == 1  # the second failure alike is not said again
    assert "No space left on device" in said
    assert ("a fault of this machine, not of the study: analysed again in 0.5 s, then after twice the wait each "
            "time it still fails, up to every 8 s, until its results can be written") in said
    assert node_seen["retry_wait"] == 1.0 and node_seen["retry_due_early"] == []
    assert node_seen["retry_analysed"] == [study, bad, study]  # not while the disk was still full
    assert f"analysed study {study}: " in said and "(written this time)" in said
    assert f"FAILED study {bad}: " in said and "missing views" in said
    assert node_seen["retry_due_after"] == []
    assert {".json", ".pdf"} <= set(node_seen["retry_results"])


def test_serve_s_help_says_every_option_and_that_the_node_listens_as_its_ae_title():
    from app.cli.parser import build_parser

    parser = build_parser()
    serve = parser._subparsers._group_actions[0].choices["serve"]  # noqa: SLF001
    helps = {option: action.help for action in serve._actions for option in action.option_strings}  # noqa: SLF001
    assert all(helps.values()), [option for option, text in helps.items() if not text]
    assert "pooling threshold" in helps["--percent-t"] and "PDF" in helps["--page-size"]
    assert "listens as" in helps["--ae-title"]
    analyze = parser._subparsers._group_actions[0].choices["analyze"]  # noqa: SLF001
    (ae_title,) = [a for a in analyze._actions if "--ae-title" in a.option_strings]  # noqa: SLF001
    assert "listens" not in ae_title.help  # the other commands' --ae-title is only the calling one
    assert parser.parse_args(["serve", "--port", "1", "--out", "x", "--ae-title", "NODE"]).ae_title == "NODE"
    assert parser.parse_args(["--ae-title", "FIRST", "serve", "--port", "1", "--out", "x"]).ae_title == "FIRST"
