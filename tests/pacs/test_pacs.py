"""Mammo Reader against a real PACS (Orthanc, from Debian, in a loopback-only network namespace): store a
four-view exam with C-STORE, find it (C-FIND, QIDO-RS), retrieve it by C-GET and WADO-RS, analyse it and
report it from the command line, send the SR and SEG back (C-STORE, STOW-RS) and find them on the server;
and each fault: the PACS down, a wrong AE title, a node that never answers, no match, wrong credentials, a
study with only some views, a study that is not MG, a send that is rejected, a send to a node that is down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.archive.conftest import loopback_only
from tests.conftest import ROOT
from tests.pacs.orthanc import AET, DICOM_PORT, HTTP_PORT, MOVE_PORT

PROBE = Path(__file__).with_name("orthanc_probe.py")


@pytest.fixture(scope="module")
def seen(tmp_path_factory) -> dict:
    shot = tmp_path_factory.mktemp("pacs") / "workstation.png"
    done = subprocess.run(loopback_only([sys.executable, str(PROBE)]), cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PACS_SCREENSHOT": str(shot)})
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps({k: result[k] for k in ("orthanc_ready_s", "retrieve_dimse_large", "retrieve_dicomweb_large",
                                              "timing_bytes")}))
    return result


def test_find_by_patient_accession_and_dates_mg_only(seen):
    for found in (seen["find_dimse"], seen["find_web"]):
        assert [r["study_uid"] for r in found] == [seen["study_uid"]]
        record = found[0]
        assert record["patient_id"] == seen["patient_id"] and record["accession"] == seen["accession"]
        assert record["date"] == "20260115" and "MG" in record["modalities"] and record["instances"] == 5
        assert record["views"] == ["R-CC", "L-CC", "R-MLO", "L-MLO"]  # the SC in the study is no view
    assert seen["find_accession"] == [seen["study_uid"]]
    assert set(seen["find_dates"]) == {seen["study_uid"], seen["partial_uid"]}  # not the 2025 CT study
    assert seen["find_none"] == []
    assert seen["find_mg_only"] == [] and seen["find_any"] == [seen["not_mg_uid"]]
    assert seen["find_partial_views"] == ["R-CC", "L-CC", "L-MLO"]
    assert seen["find_kanji"] == ["PID-JP"]  # the name as typed, not "??*", which matched every patient


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_a_worklist_from_a_pacs_query_lists_the_mg_studies_of_the_dates(seen, protocol):
    """``open --worklist NODE --dates FROM-TO``: the node's MG studies of the range (not the CT study), each as a
    study address the workstation retrieves; today's query on this PACS finds none and says so."""
    items = seen[f"worklist_{protocol}"]
    assert {uid for _id, _location, uid in items} == {seen["study_uid"], seen["partial_uid"]}
    base = f"dimse://{AET}@127.0.0.1:{DICOM_PORT}" if protocol == "dimse" else \
        f"dicomweb+http://127.0.0.1:{HTTP_PORT}/dicom-web/studies"
    assert all(location == f"{base}/{uid}" for _id, location, uid in items)
    assert seen["accession"] in [exam_id for exam_id, _location, _uid in items]
    assert "no MG study dated" in seen["worklist_today"]


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_retrieve_gives_the_four_views_and_notes_the_other_series(seen, protocol):
    retrieved = seen[f"retrieve_{protocol}"]
    assert retrieved["views"] == ["L-CC", "L-MLO", "R-CC", "R-MLO"] and retrieved["instances"] == 4
    assert retrieved["notes"] == ["ignored 1 OT instance(s) of the study (only MG images are read)"]
    assert seen[f"retrieve_{protocol}_large"]["views"] == ["L-CC", "L-MLO", "R-CC", "R-MLO"]
    assert seen["cached"] is True
    beside = seen["retrieve_beside"]  # a presentation state and a CAD SR: left out, not "could not be retrieved"
    assert beside["instances"] == 4 and beside["notes"] == [
        "ignored 1 PR instance(s) of the study (only MG images are read)",
        "ignored 1 SR instance(s) of the study (only MG images are read)"], beside


def test_analyse_report_and_send_back_from_the_command_line(seen):
    analyze = seen["cli_analyze"]
    assert analyze["rc"] == 0 and "P(malignant)" in analyze["stdout"] and "4 view(s) retrieved" in analyze["stderr"]
    assert "note: ignored 1 OT instance(s)" in analyze["stdout"]  # an intake note: with the results
    for run, destination, count in (("cli_report_dimse", "dimse://ORTHANC@127.0.0.1:4242", 6),  # SR, 4 SEG, PDF
                                    ("cli_report_web", "dicomweb+http://127.0.0.1:8042/dicom-web", 5)):  # SR, 4 SEG
        assert seen[run]["rc"] == 0, seen[run]
        assert f"sent {seen['study_uid']}: {count} file(s) to {destination}" in seen[run]["stdout"]
    # on the server, in the exam's study: 2 x (SR + 4 SEG), the retried SR and the Encapsulated PDF
    series = seen["series_after_send"]
    assert series.count("SR") == 3 and series.count("SEG") == 8 and series.count("DOC") == 1
    assert {"MG", "SR", "SEG", "DOC"} <= set(seen["find_after_send"][0]["modalities"])


def test_no_identifier_or_password_reaches_the_logs(seen):
    for run in ("cli_analyze", "cli_report_dimse", "cli_report_web", "cli_bad_auth"):
        for stream in ("stderr", "stdout"):
            text = seen[run][stream]
            assert "Phantom^Demo" not in text and "Phantom Demo" not in text and seen["patient_id"] not in text
            assert "s3cret-for-tests" not in text


def test_faults_name_the_node_and_the_problem(seen):
    # Orthanc's A-ASSOCIATE-RJ names the called AE title; on a loaded machine pynetdicom may see the connection
    # closed before it reads the rejection (app/pacs/dimse.py says so then, naming the AE title still): either
    # way the line names the node and the AE title to check (seen once in CI: the second form)
    assert seen["wrong_aet"].startswith((
        "dimse://NOTORTHANC@127.0.0.1:4242: 'NOTORTHANC' is not the node's AE title",
        "dimse://NOTORTHANC@127.0.0.1:4242: the association was rejected (is 'NOTORTHANC' its AE title")), \
        seen["wrong_aet"]
    assert seen["down"].startswith("dimse://ORTHANC@127.0.0.1:4299: cannot reach it")
    assert "no answer to our association request within 1 s" in seen["timeout"] and seen["timeout_s"] < 10
    assert seen["web_down"].startswith("dicomweb+http://127.0.0.1:8099/dicom-web: QIDO-RS: cannot reach it")
    assert seen["steps"]["step3"] < 5, "a refused DICOMweb connection was retried for long"
    assert "authentication failed (HTTP 401)" in seen["web_auth"]
    assert seen["cli_bad_auth"]["rc"] == 2 and "authentication failed (HTTP 401)" in seen["cli_bad_auth"]["stderr"]
    assert "holds no MG image (only CT): not a mammography study" in seen["not_mg"]
    assert seen["cli_not_mg"]["rc"] == 2 and "not a mammography study" in seen["cli_not_mg"]["stderr"]
    assert "no such study" in seen["no_study"]
    assert "refused: the node accepts none of what we send" in seen["send_rejected"]


def test_a_partial_study_opens_with_the_missing_view_said(seen):
    assert seen["partial_warnings"] == ["missing views: R-MLO"]
    batch = seen["cli_batch_partial"]
    assert batch["rc"] == 1 and "missing views: R-MLO" in batch["stdout"]


def test_a_cached_study_is_retrieved_again_when_the_pacs_holds_other_images_of_it(seen):
    arrived = seen["partial_arrived"]
    assert arrived["dimse"]["views"] == ["L-CC", "L-MLO", "R-CC", "R-MLO"] and not arrived["dimse"]["cached"]
    assert "the study changed on the node since it was cached (1 image(s) added): retrieved again" in \
        arrived["dimse"]["notes"]
    assert arrived["dimse_again"]["cached"] and arrived["dimse_again"]["views"] == arrived["dimse"]["views"]
    removed = arrived["dicomweb_removed"]
    assert arrived["dicomweb"]["views"] == ["L-CC", "L-MLO", "R-CC", "R-MLO"]
    assert not removed["cached"] and removed["views"] == ["L-CC", "L-MLO", "R-CC"]
    assert "(1 image(s) gone)" in removed["notes"][0]
    # the SR, SEG and PDF sent back to the study are no MG image: its cached copy stays good on both protocols
    assert seen["cached_after_send"] == {"dimse": True, "dicomweb": True}


def test_a_failed_send_keeps_the_files_and_a_rerun_sends_them(seen):
    failed = seen["cli_send_down"]
    assert failed["rc"] == 1 and "NOT SENT" in failed["stdout"] and "cannot reach it" in failed["stdout"]
    assert seen["out3_files"] == ["DEMO07001_sr.dcm"]
    again = seen["cli_resend"]
    assert again["rc"] == 0 and "1 already done (skipped)" in again["stdout"]
    assert f"sent {seen['study_uid']}: 1 file(s)" in again["stdout"]


def test_the_workstation_opens_a_study_from_the_pacs(seen):
    """``open dimse://…``: retrieved by the workstation's worker (not before the window), shown and analysed."""
    import cv2

    opened = seen["cli_open"]
    assert opened["rc"] == 0, opened["stderr"][-2000:]
    image = cv2.imread(seen["screenshot"])
    assert image is not None and image.shape[0] > 600 and image.shape[1] > 1000


def test_c_move_to_our_own_scp_and_an_unregistered_destination(seen):
    moved = seen["retrieve_move_large"]
    assert moved["instances"] == 4 and moved["views"] == ["L-CC", "L-MLO", "R-CC", "R-MLO"]
    assert "does not know our AE title 'NOTREGISTERED'" in seen["move_unknown_aet"] or \
        "C-MOVE" in seen["move_unknown_aet"], seen["move_unknown_aet"]
    # the study is there (the node lists its images): not "no such study?" but where the delivery went wrong
    assert (f"the node lists 4 MG image(s) of it but delivered none to our receiver (AE title 'MAMMOREADER', port "
            f"{MOVE_PORT + 7}): check that its entry for 'MAMMOREADER' names this computer and port {MOVE_PORT + 7}"
            ) in seen["move_undeliverable"], seen["move_undeliverable"]


def test_studies_pushed_to_the_storage_scp_land_in_the_inbox(seen):
    assert seen["push_status"] == 200
    by_uid = {s["study_uid"]: s for s in seen["inbox"]}
    assert by_uid[seen["partial_uid"]]["views"] == ["L-CC", "L-MLO", "R-CC"]  # our C-STORE of the 3-view study
    assert by_uid[seen["study_uid"]]["views"] == ["L-CC", "L-MLO", "R-CC", "R-MLO"]  # pushed by Orthanc
    assert seen["inbox_refused"] == 1 and seen["push_sc_status"] != 200  # the study's Secondary Capture: refused
    assert "the node does not know our AE title" in seen["inbox_stranger"]  # a calling AE title not allowed
    assert all(seen["patient_id"] not in name and "Phantom" not in name for name in seen["inbox_names"])


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_the_prior_is_found_on_the_pacs(seen, protocol):
    """Same patient ID, an earlier date, MG: the 2024 study; the current one and other patients are not."""
    assert [p[:2] for p in seen[f"priors_{protocol}"]] == [["20240115", seen["prior_uid"]]]


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_an_instance_in_a_syntax_we_cannot_decode_is_left_out_with_a_note(seen, protocol):
    """MPEG-2 in an MG study: Orthanc cannot convert it; the four views come, and the retrieve says one did not
    (C-GET: Orthanc ends the study-level request at it, so instance by instance; WADO-RS: it is left out
    silently, so the instances are counted)."""
    retrieved = seen[f"undecodable_{protocol}"]
    assert retrieved["instances"] == 4
    assert any(note.startswith("1 instance(s) could not be retrieved") for note in retrieved["notes"])


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_a_cancelled_retrieve_leaves_nothing_that_looks_retrieved(seen, protocol):
    left = seen[f"cancel_{protocol}"]
    assert left != "not cancelled"
    assert not any(".partial-" in name for name in left)  # the private folder went with the cancel


def test_dicomweb_over_https_with_a_trusted_certificate_and_an_untrusted_one_refused(seen):
    """Through a TLS front on loopback (Orthanc 1.10's own https segfaults in civetweb here)."""
    https = seen["https"]
    assert https["uid"] in https["found"] and https["views"] == ["L-CC", "L-MLO", "R-CC", "R-MLO"]
    assert https["untrusted"].startswith("dicomweb+https://127.0.0.1:8443/dicom-web: WADO-RS")
    assert "certificate is not trusted" in https["untrusted"]
