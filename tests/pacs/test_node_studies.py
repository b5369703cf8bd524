"""The AI node's bookkeeping without a network: a study is analysed again when its instances change after
its analysis (a view that came late, an instance sent again with a corrected patient), never when the same
instances come again; a failure's reason loses the patient's identifiers."""

from __future__ import annotations

import json

import pytest
from pydicom import dcmread

from app.pacs.node import AiNode, NodeOptions, instances_digest, without_identifiers
from app.pacs.scp import keep_instance, study_folder
from app.archive.unit import BatchOptions
from inference.weights import load_model_groups
from tests.conftest import ROOT
from tests.inference.intake.dicom_factory import make_dataset, sample_pixels

STUDY = "1.2.826.0.1.3680043.8.498.4242"


@pytest.fixture(scope="module")
def groups():
    return load_model_groups([str(ROOT / "resources" / "demo" / "model.pt")])


def _node(tmp_path, groups, allow_missing: bool = False) -> AiNode:
    batch = BatchOptions(formats=("json",), device="cpu", allow_missing_views=allow_missing)
    return AiNode(NodeOptions(ae_title="AINODE", port=0, out=tmp_path, allowed=(), batch=batch), groups)


def _views(views=("L-CC", "L-MLO", "R-CC", "R-MLO"), **attributes):
    return [make_dataset(sample_pixels(v, shrink=8), v, StudyInstanceUID=STUDY, **attributes) for v in views]


def _result(tmp_path) -> str:
    """The text of the study's result JSON."""
    (path,) = (tmp_path / "results" / study_folder(tmp_path, STUDY).name).glob("*.json")
    return path.read_text(encoding="utf-8")


def test_a_view_that_comes_after_the_analysis_is_analysed_with_the_others(tmp_path, groups, capsys):
    node = _node(tmp_path, groups, allow_missing=True)
    folder = study_folder(tmp_path, STUDY)
    *first, late = _views()
    for dataset in first:
        keep_instance(folder, dataset)
    node._take(folder)
    assert "analysed study" in capsys.readouterr().out
    keep_instance(folder, late)
    node._take(folder)
    out = capsys.readouterr().out
    assert "added or replaced since its analysis: analysing it again" in out and "analysed study" in out
    assert "R-MLO" in _result(tmp_path) and "missing views" not in _result(tmp_path)


def test_a_corrected_patient_is_analysed_again_and_the_same_instances_sent_again_are_not(tmp_path, groups, capsys):
    node = _node(tmp_path, groups)
    folder = study_folder(tmp_path, STUDY)
    views = _views(PatientID="PID-WRONG")
    for dataset in views:
        keep_instance(folder, dataset)
    node._take(folder)
    digest = instances_digest(folder)
    for dataset in views:  # the same instances again (by another sender: the file meta differs)
        dataset.file_meta.SourceApplicationEntityTitle = "OTHERMODALITY"
        keep_instance(folder, dataset)
    assert instances_digest(folder) == digest
    node._take(folder)
    assert "already analysed (not analysed again)" in capsys.readouterr().out
    for dataset in views:  # corrected: the same SOP instances, another patient
        dataset.PatientID = "PID-RIGHT"
        keep_instance(folder, dataset)
    node._take(folder)
    assert "analysing it again" in capsys.readouterr().out
    assert all(dcmread(p).PatientID == "PID-RIGHT" for p in folder.glob("*.dcm"))
    assert "PID-RIGHT" in _result(tmp_path) and "PID-WRONG" not in _result(tmp_path)


def test_a_failure_s_reason_names_no_patient(tmp_path, groups, capsys):
    node = _node(tmp_path, groups)
    folder = study_folder(tmp_path, STUDY)
    for index, dataset in enumerate(_views(PatientName="DOE^JANE", AccessionNumber="ACC777")):
        if index == 2:
            dataset.PatientID, dataset.PatientName = "PID-OTHER", "ROE^RICHARD"
        keep_instance(folder, dataset)
        node._received(folder, "MODALITY7")
    node._pending.clear()
    node._take(folder)
    out = capsys.readouterr().out
    assert f"FAILED study {folder.name} (sent by MODALITY7): " in out and "different patients" in out
    for identifier in ("PID-OTHER", "ROE", "RICHARD", "DOE", "JANE", "ACC777", STUDY, "19600101"):
        assert identifier not in out
    assert without_identifiers("patient 1960-01-01 DOE", folder) == "patient … …"


def test_a_received_image_without_its_view_is_never_given_one_by_its_file_name(tmp_path):
    """Received files are named by a hash of their UID; a hexadecimal one held "cc" by chance, and an R-MLO
    image without ViewPosition was read as R-CC from it."""
    from inference.errors import ExamError
    from inference.exam import load_exam

    folder = study_folder(tmp_path, STUDY)
    unnamed = make_dataset(sample_pixels("R-MLO", shrink=8), "R-MLO", projection="", StudyInstanceUID=STUDY)
    unnamed.SOPInstanceUID = unnamed.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.1996"  # sha1 09ff…dce91cc70
    path = keep_instance(folder, unnamed)
    assert path.stem.isdigit()
    with pytest.raises(ExamError, match=r"the view \(CC/MLO\) of the image is not recorded"):
        load_exam(folder)


def test_a_destination_that_stays_down_is_said_once_with_how_the_node_retries(tmp_path, groups, capsys):
    """The same NOT SENT line, with "run the command again to retry", came at every retry, for ever."""
    import socket

    from app.archive.unit import Outcome
    from app.pacs.nodes import parse_address

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    batch = BatchOptions(formats=("json", "sr"), device="cpu")
    node = AiNode(NodeOptions(ae_title="AINODE", port=0, out=tmp_path, allowed=(), batch=batch, retry_s=5,
                              send=parse_address(f"dimse://DOWN@127.0.0.1:{port}")[0]), groups)
    folder = study_folder(tmp_path, STUDY)
    for dataset in _views():
        keep_instance(folder, dataset)
    node._take(folder)
    for _ in range(2):
        node._send(folder, Outcome(folder.name, str(folder), "skipped"))
    out = capsys.readouterr().out
    assert out.count("NOT SENT") == 1 and "tried again every 5 s" in out and "run the command" not in out
    assert folder in node._unsent


def test_received_images_go_keep_s_after_the_analysis_and_their_room_comes_back(tmp_path, groups, capsys):
    """The inbox was never emptied: the quota filled after some hundred studies and the node refused more."""
    import os
    import time

    from app.pacs.scp import InboxLimits, StorageSCP

    batch = BatchOptions(formats=("json",), device="cpu")
    node = AiNode(NodeOptions(ae_title="AINODE", port=0, out=tmp_path, allowed=(), batch=batch, keep_s=3600),
                  groups)
    folder = study_folder(tmp_path, STUDY)
    for dataset in _views():
        keep_instance(folder, dataset)
    waiting = study_folder(tmp_path, "1.2.3.99")  # received, not analysed yet
    keep_instance(waiting, _views(("L-CC",))[0])
    node.scp = StorageSCP("AINODE", 0, tmp_path, limits=InboxLimits(quota_bytes=1 << 30))
    try:
        used = node.scp._used
        node._take(folder)
        assert node.remove_finished() == []  # analysed just now: kept for late views
        marker = next((tmp_path / "results" / ".batch" / "done").glob("*.json"))
        hours_ago = time.time() - 2 * 3600
        os.utime(marker, (hours_ago, hours_ago))
        for path in folder.glob("*.dcm"):
            os.utime(path, (hours_ago - 60, hours_ago - 60))
        assert node.remove_finished() == [folder]
        assert not folder.exists() and waiting.exists() and node.scp._used < used
        assert any((tmp_path / "results" / folder.name).glob("*.json"))  # the results stay
        assert "its received images were removed" in capsys.readouterr().out
    finally:
        node.scp.stop()


def test_a_late_instance_after_the_images_went_is_not_analysed_alone(tmp_path, groups, capsys):
    """With the images removed (--keep-hours), a late view landed alone in a fresh folder: analysed as a study of
    one view (--allow-missing-views), it replaced the whole study's results and would have been sent."""
    import os
    import time

    node = _node(tmp_path, groups, allow_missing=True)
    folder = study_folder(tmp_path, STUDY)
    *first, late = _views()
    for dataset in first:
        keep_instance(folder, dataset)
    node._take(folder)
    result = _result(tmp_path)
    hours_ago = time.time() - 25 * 3600
    os.utime(next((tmp_path / "results" / ".batch" / "done").glob("*.json")), (hours_ago, hours_ago))
    for path in folder.glob("*.dcm"):
        os.utime(path, (hours_ago - 60, hours_ago - 60))
    assert node.remove_finished() == [folder]
    keep_instance(folder, late)
    capsys.readouterr()
    node._take(folder)
    out = capsys.readouterr().out
    assert "1 instance(s) came after its images were removed (new or changed): not analysed alone" in out
    assert "send the whole study again with them" in out and "analysed study" not in out
    assert _result(tmp_path) == result
    for dataset in first:  # the whole study again, with the late view: analysed anew, as the line said
        keep_instance(folder, dataset)
    node._take(folder)
    out = capsys.readouterr().out
    assert "analysing it again" in out and "analysed study" in out
    assert "R-MLO" in _result(tmp_path)


def _age(tmp_path, folder, hours: float = 25) -> None:
    """The study analysed and its images received ``hours`` ago."""
    import os
    import time

    ago = time.time() - hours * 3600
    os.utime(next((tmp_path / "results" / ".batch" / "done").glob("*.json")), (ago, ago))
    for path in folder.glob("*.dcm"):
        os.utime(path, (ago - 60, ago - 60))


def test_an_instance_the_study_had_that_comes_again_after_its_images_went_is_a_duplicate(tmp_path, groups, capsys):
    """The node said "send the whole study again to analyse it anew" of an instance sent again unchanged, and the
    whole study sent again was then "already analysed": the advice did not hold."""
    node = _node(tmp_path, groups)
    folder = study_folder(tmp_path, STUDY)
    views = _views()
    for dataset in views:
        keep_instance(folder, dataset)
    node._take(folder)
    result = _result(tmp_path)
    _age(tmp_path, folder)
    assert node.remove_finished() == [folder]
    keep_instance(folder, views[1])
    capsys.readouterr()
    node._take(folder)
    out = capsys.readouterr().out
    assert "1 instance(s) came again after its images were removed, the same as analysed: ignored as duplicates" in out
    assert "send the whole study" not in out and _result(tmp_path) == result
    for dataset in views:  # the whole study again, unchanged: not analysed again (the line said nothing else)
        keep_instance(folder, dataset)
    node._take(folder)
    assert "already analysed (not analysed again)" in capsys.readouterr().out
    views[1].PatientID = "PID-CORRECTED"  # changed: one instance alone is not analysed, the whole study is
    node._confirmed.clear()  # found analysed just now: its images would stay keep_s more
    _age(tmp_path, folder)
    assert node.remove_finished() == [folder]
    keep_instance(folder, views[1])
    node._take(folder)
    assert "(new or changed): not analysed alone" in capsys.readouterr().out


def _as_received(dataset, implicit: bool):
    """``dataset`` as the receiver gets it in a transfer syntax: encoded, then decoded by pynetdicom."""
    import copy
    import io

    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom.dsutils import decode, encode

    received = decode(io.BytesIO(encode(dataset, implicit, True)), implicit, True)
    received.file_meta = copy.deepcopy(dataset.file_meta)
    received.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    received.Modality, received.Rows, received.PixelData  # noqa: B018 - read, as the receiver's checks do
    return received


def test_the_same_study_sent_again_in_implicit_vr_is_not_analysed_again(tmp_path, groups, capsys):
    """Resent in Implicit VR Little Endian instead of Explicit, an analysed study was analysed and its results sent
    a second time: the digest hashed the encoded bytes."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    node = _node(tmp_path, groups)
    folder = study_folder(tmp_path, STUDY)
    views = _views()
    for dataset in views:  # a sequence and a private element: their encoding differs most between the syntaxes
        dataset.private_block(0x0029, "ACME", create=True).add_new(0x11, "LO", "acme")
        dataset.ReferencedImageSequence = Sequence([Dataset()])
        dataset.ReferencedImageSequence[0].ReferencedSOPInstanceUID = "1.2.3.4"
        keep_instance(folder, _as_received(dataset, implicit=False))
    node._take(folder)
    files = {p.name: p.read_bytes() for p in folder.glob("*.dcm")}
    for dataset in views:
        keep_instance(folder, _as_received(dataset, implicit=True))
    assert {p.name: p.read_bytes() for p in folder.glob("*.dcm")} != files  # other bytes, the same study
    capsys.readouterr()
    node._take(folder)
    out = capsys.readouterr().out
    assert "already analysed (not analysed again)" in out and "analysed study" not in out
    views[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID = "1.2.3.5"  # a real change, within a sequence
    keep_instance(folder, _as_received(views[0], implicit=True))
    node._take(folder)
    assert "analysing it again" in capsys.readouterr().out


@pytest.mark.parametrize("changed", [False, True])
def test_a_marker_with_the_digest_of_the_encoded_bytes_is_taken_up_not_analysed_again(tmp_path, groups, capsys,
                                                                                       changed):
    """Markers written before the digest became independent of the transfer syntax: without their reading,
    every study of the inbox would be analysed and sent again at the upgrade."""
    from app.pacs.node import legacy_instances_digest

    node = _node(tmp_path, groups)
    folder = study_folder(tmp_path, STUDY)
    views = _views()
    for dataset in views:
        keep_instance(folder, dataset)
    node._take(folder)
    marker_file = next((tmp_path / "results" / ".batch" / "done").glob("*.json"))
    marker = json.loads(marker_file.read_text())
    options = {k: v for k, v in marker["options"].items() if k != "instance_digests"}
    marker["options"] = {**options, "instances": legacy_instances_digest(folder)}
    marker_file.write_text(json.dumps(marker))
    if changed:  # made from other instances than those there now: analysed again
        for dataset in views:
            dataset.PatientID = "PID-CORRECTED"
            keep_instance(folder, dataset)
    capsys.readouterr()
    node._take(folder)
    out = capsys.readouterr().out
    if changed:
        assert "analysing it again" in out
    else:
        assert "already analysed (not analysed again)" in out and "analysed study" not in out
    options = json.loads(marker_file.read_text())["options"]
    assert options["instances"] == instances_digest(folder) and options["instances"].startswith("v2:")
    assert set(options["instance_digests"]) == {p.name for p in folder.glob("*.dcm")}


def test_a_marker_of_an_earlier_version_is_taken_up_not_analysed_again(tmp_path, groups, capsys):
    """Markers written before the node recorded its instances: every study of the inbox was analysed and sent
    again at the upgrade, each said "an instance was added or replaced"."""
    node = _node(tmp_path, groups)
    folder = study_folder(tmp_path, STUDY)
    for dataset in _views():
        keep_instance(folder, dataset)
    node._take(folder)
    marker_file = next((tmp_path / "results" / ".batch" / "done").glob("*.json"))
    marker = json.loads(marker_file.read_text())
    marker["options"] = {k: v for k, v in marker["options"].items() if k not in ("instances", "names")}
    marker_file.write_text(json.dumps(marker))
    capsys.readouterr()
    node._take(folder)
    assert "already analysed (not analysed again)" in capsys.readouterr().out
    assert "instances" in json.loads(marker_file.read_text())["options"]

