"""The AI node's bookkeeping without a network: a study is analysed again when its instances change after
its analysis (a view that came late, an instance sent again with a corrected patient), never when the same
instances come again; a failure's reason loses the patient's identifiers."""

from __future__ import annotations

import errno
import json
import os

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
    with pytest.raises(ExamError, match=r"the view \(CC or MLO\) of the image is not recorded"):
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



def test_a_study_that_failed_for_its_content_goes_after_keep_hours_too(tmp_path, groups, capsys):
    """A deployer's doubt, confirmed: a failed study has no marker, so its images (identifiers and all) were
    never removed; a study received and not taken yet stays."""
    import os
    import time

    node = _node(tmp_path, groups)
    failed = study_folder(tmp_path, STUDY)
    for dataset in _views()[:3]:  # a view short: failed for its content
        keep_instance(failed, dataset)
    waiting = study_folder(tmp_path, "1.2.3.99")
    keep_instance(waiting, _views(("L-CC",))[0])
    node._take(failed)
    assert "FAILED study" in capsys.readouterr().out
    assert node.remove_finished() == []  # just failed: the modality may still send the missing view
    ago = time.time() - 25 * 3600
    for path in [*failed.glob("*.dcm"), *waiting.glob("*.dcm")]:
        os.utime(path, (ago, ago))
    node._unfinished[failed] = ago + 60
    assert node.remove_finished() == [failed]
    assert not failed.exists() and waiting.exists()
    assert "it failed or was analysed in part, last tried 25.0 h ago" in capsys.readouterr().out
    # from a review: analysed once (its marker there), then another patient's image came and the study failed
    for dataset in _views():
        keep_instance(failed, dataset)
    node._take(failed)
    assert "analysed study" in capsys.readouterr().out
    stray = keep_instance(failed, _views(("L-CC",), PatientID="SOMEONE-ELSE", SOPInstanceUID="1.2.3.4.77")[0])
    node._take(failed)
    assert "the images belong to 2 different patients" in capsys.readouterr().out
    assert failed in node._unfinished
    stray.unlink()  # the operator takes the stray out, as the line says: the study is the one analysed again
    node._take(failed)
    assert "already analysed" in capsys.readouterr().out and failed not in node._unfinished
    keep_instance(failed, _views(("L-CC",), PatientID="SOMEONE-ELSE", SOPInstanceUID="1.2.3.4.77")[0])
    node._take(failed)
    assert failed in node._unfinished
    for path in failed.glob("*.dcm"):
        os.utime(path, (ago, ago))
    node._unfinished[failed] = ago + 60
    assert node.remove_finished() == [failed]  # the older marker kept both patients' images for ever

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



def _private_sequence(creator: str, group: int, value: str = "x", length: str = "defined"):
    """Builds on a data set: a private sequence of ``creator`` holding an item with a private element, a standard
    one and a nested private sequence (``length``: how pydicom writes the outer one)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    def build(dataset) -> None:
        inner = Dataset()
        inner.add_new((group << 16) | 0x1002, "US", 7)
        item = Dataset()
        item.add_new((group << 16) | 0x1001, "LO", value)
        item.ReferencedSOPInstanceUID = "1.2.3.4"
        item.add_new((group << 16) | 0x1003, "SQ", Sequence([inner, Dataset()]))
        sequence = Sequence([item])
        sequence.is_undefined_length = length == "undefined"
        dataset.private_block(group, creator, create=True).add_new(0x10, "SQ", sequence)
    return build


def _empty_private_sequence(dataset) -> None:
    from pydicom.sequence import Sequence

    dataset.private_block(0x0029, "ACME 1.0", create=True).add_new(0x10, "SQ", Sequence([]))


def _private_bytes_like_an_item(dataset) -> None:
    """A private OB value that begins as an item would (tag, then a length past its end): no sequence."""
    dataset.private_block(0x0029, "ACME 1.0", create=True).add_new(0x12, "OB", b"\xfe\xff\x00\xe0\x10\x00\x00\x00abcd")


@pytest.mark.parametrize("build", [
    _private_sequence("ACME 1.0", 0x0029),  # a creator pydicom does not know: UN in implicit VR
    _private_sequence("GEMS_ACQU_01", 0x0019),  # one it knows, with an element its dictionary lacks
    _private_sequence("ACME 1.0", 0x0029, length="undefined"),
    _empty_private_sequence,
    _private_bytes_like_an_item,
], ids=["unknown-creator", "known-creator", "undefined-length", "empty", "bytes-like-an-item"])
def test_a_private_sequence_has_the_same_digest_in_explicit_and_implicit_vr(tmp_path, build):
    """Implicit VR reads a private sequence of defined length as UN bytes, explicit VR as a sequence: the same
    study sent again in the other syntax was analysed and sent a second time. A change within it still counts."""
    from app.pacs.node import instance_digest

    def digests(dataset) -> list[str]:
        found = []
        for implicit in (False, True):
            folder = tmp_path / f"{len(list(tmp_path.iterdir()))}"
            found.append(instance_digest(keep_instance(folder, _as_received(dataset, implicit=implicit))))
        return found

    (dataset,) = _views(("L-CC",))
    build(dataset)
    explicit, implicit = digests(dataset)
    assert explicit == implicit
    (plain,) = _views(("L-CC",), SOPInstanceUID=dataset.SOPInstanceUID, SeriesInstanceUID=dataset.SeriesInstanceUID)
    assert digests(plain)[0] != explicit  # the private element counts


@pytest.mark.parametrize("creator,group", [("ACME 1.0", 0x0029), ("GEMS_ACQU_01", 0x0019)])
def test_a_change_within_a_private_sequence_changes_the_digest(tmp_path, creator, group):
    from app.pacs.node import instance_digest

    (dataset,) = _views(("L-CC",))
    _private_sequence(creator, group, value="first")(dataset)
    (changed,) = _views(("L-CC",), SOPInstanceUID=dataset.SOPInstanceUID, SeriesInstanceUID=dataset.SeriesInstanceUID)
    _private_sequence(creator, group, value="other")(changed)
    for implicit in (False, True):
        one = instance_digest(keep_instance(tmp_path / "a", _as_received(dataset, implicit=implicit)))
        other = instance_digest(keep_instance(tmp_path / "b", _as_received(changed, implicit=implicit)))
        assert one != other


def test_an_instance_that_cannot_be_read_at_all_has_a_digest(tmp_path):
    """A file pydicom cannot parse was digested by its bytes, and one that could not be read either raised the
    OSError out of the node's loop."""
    from app.pacs.node import instance_digest

    (tmp_path / "folder.dcm").mkdir()  # read as a file: IsADirectoryError, by pydicom and by the bytes' reading
    unreadable, gone = instance_digest(tmp_path / "folder.dcm"), instance_digest(tmp_path / "gone.dcm")
    assert len(unreadable) == len(gone) == 40 and unreadable != gone


def _legacy_marker(tmp_path, folder, kind: str) -> None:
    """The study's marker as an earlier version wrote it: no digest, or the digest of the encoded bytes."""
    from app.pacs.node import legacy_instances_digest

    marker_file = next((tmp_path / "results" / ".batch" / "done").glob("*.json"))
    marker = json.loads(marker_file.read_text())
    options = {k: v for k, v in marker["options"].items() if k not in ("instances", "names", "instance_digests")}
    marker["options"] = options if kind == "no-digest" else {**options, "instances": legacy_instances_digest(folder)}
    marker_file.write_text(json.dumps(marker))


@pytest.mark.parametrize("kind", ["no-digest", "encoded-bytes"])
def test_an_earlier_marker_of_a_complete_study_is_taken_up_whatever_allow_missing_views(tmp_path, groups, capsys,
                                                                                         kind):
    """``--allow-missing-views`` changes nothing for a complete study (``already_done`` says so), but the marker
    of an earlier version was compared strictly: the study was analysed and sent again at the upgrade."""
    folder = study_folder(tmp_path, STUDY)
    for dataset in _views():
        keep_instance(folder, dataset)
    _node(tmp_path, groups)._take(folder)
    _legacy_marker(tmp_path, folder, kind)
    capsys.readouterr()
    _node(tmp_path, groups, allow_missing=True)._take(folder)
    out = capsys.readouterr().out
    assert "already analysed (not analysed again)" in out and "analysed study" not in out
    marker = json.loads(next((tmp_path / "results" / ".batch" / "done").glob("*.json")).read_text())
    assert marker["options"]["instances"] == instances_digest(folder)


@pytest.mark.parametrize("kind", ["no-digest", "encoded-bytes"])
def test_an_earlier_marker_that_cannot_be_brought_up_to_date_still_counts(tmp_path, groups, capsys, monkeypatch,
                                                                          kind):
    """On a read-only (or full) disk the rewrite of an earlier version's marker raised out of the node's loop and
    ended the service; now the study counts as analysed all the same, and the rewrite is tried the next time."""
    import app.pacs.node as node_module

    folder = study_folder(tmp_path, STUDY)
    for dataset in _views():
        keep_instance(folder, dataset)
    _node(tmp_path, groups)._take(folder)
    _legacy_marker(tmp_path, folder, kind)
    marker_file = next((tmp_path / "results" / ".batch" / "done").glob("*.json"))
    before = marker_file.read_text()

    def read_only(path, text):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(node_module, "write_text_atomic", read_only)
    monkeypatch.setattr(node_module, "process", lambda *a, **k: pytest.fail("analysed again"))
    capsys.readouterr()
    node = _node(tmp_path, groups)
    node._take(folder)
    assert "already analysed (not analysed again)" in capsys.readouterr().out
    assert marker_file.read_text() == before and folder not in node._rewrite
    monkeypatch.undo()
    node._take(folder)  # writable again: brought up to date
    assert json.loads(marker_file.read_text())["options"]["instances"] == instances_digest(folder)


class _NoReceiver:
    def stop(self) -> None:
        pass


def test_a_study_that_raises_in_the_node_s_loop_is_said_and_tried_again_and_the_service_goes_on(tmp_path, groups,
                                                                                                capsys, caplog):
    """An OSError out of one study's bookkeeping (a rewrite on a read-only disk) ended ``run`` and the service
    with a traceback."""
    import threading

    node = _node(tmp_path, groups)
    node.options = NodeOptions(ae_title="AINODE", port=0, out=tmp_path, allowed=(), quiet_s=0.0, retry_s=30,
                               batch=node.options.batch)
    broken, fine = tmp_path / "1-broken", tmp_path / "2-fine"  # taken in this order
    for folder in (broken, fine):
        keep_instance(folder, _views(("L-CC",))[0])
        node._received(folder, "AE title 'MODALITY' at 10.0.0.7")
    taken, stop = [], threading.Event()

    def take(folder):
        taken.append(folder)
        if folder == broken:
            raise OSError(30, "Read-only file system")
        stop.set()

    node._take = take
    node.scp = _NoReceiver()
    node.run(stop, tick_s=0.01)
    assert taken == [broken, fine]  # the loop went on to the next study
    out = capsys.readouterr().out
    assert (f"FAILED study {broken.name} (sent by AE title 'MODALITY' at 10.0.0.7): could not be analysed (OSError: "
            "[Errno 30] Read-only file system) (an error of this node, not of the study: analysed again in 30 s") in out
    assert f"study {broken.name} (sent by AE title 'MODALITY' at 10.0.0.7): OSError" in caplog.text
    assert broken in node._rewrite and fine not in node._rewrite


def test_a_study_still_arriving_is_not_analysed_for_a_retry_or_a_resend(tmp_path):
    """A study waiting for its results to be written again (or sent again) was analysed while its instances were
    still coming, and again once they had all come."""
    import time

    node = AiNode(NodeOptions(ae_title="AINODE", port=0, out=tmp_path, allowed=(), quiet_s=0.3), [])
    rewrite, resend = tmp_path / "1", tmp_path / "2"
    now = time.monotonic()
    node._rewrite[rewrite] = node._unsent[resend] = now - 1  # both due
    node._pending[rewrite] = node._pending[resend] = now  # an instance of each came just now
    assert node._due() == []
    time.sleep(0.35)
    assert node._due() == [rewrite, resend]  # once quiet: taken once each, as quiet studies


@pytest.mark.parametrize("error", [
    MemoryError("Unable to allocate 3.1 GiB for an array"),
    "cuda-oom",
    *(OSError(code, os.strerror(code), "results/x/report.json")
      for code in (errno.ESTALE, errno.ENOTCONN, errno.ETIMEDOUT, errno.EHOSTDOWN, errno.EFBIG, errno.ENOSPC)),
], ids=["MemoryError", "CUDA", "ESTALE", "ENOTCONN", "ETIMEDOUT", "EHOSTDOWN", "EFBIG", "ENOSPC"])
def test_a_fault_of_the_machine_is_told_by_its_type_not_its_words(tmp_path, groups, capsys, monkeypatch, error):
    """Out of memory, a network file system gone away, a file too large: each was taken for the study's fault by
    its words, and the study waited for ever for an instance that never came."""
    import torch

    import app.analysis

    if error == "cuda-oom":  # made here: the parameters are made before torch is
        error = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr(app.analysis, "analyse_or_restore", fails)
    node, folder = _node_taking_a_study(tmp_path, groups)
    assert "a fault of this machine, not of the study" in capsys.readouterr().out
    assert folder in node._rewrite


def _node_taking_a_study(tmp_path, groups):
    """A node that has received the four views of STUDY and taken the study (its analysis as monkeypatched)."""
    node = _node(tmp_path, groups)
    folder = study_folder(tmp_path, STUDY)
    for dataset in _views():
        keep_instance(folder, dataset)
    node._take(folder)
    return node, folder


def test_a_content_failure_is_not_a_fault_of_the_machine(tmp_path, groups, capsys, monkeypatch):
    import app.analysis

    monkeypatch.setattr(app.analysis, "analyse_or_restore", lambda *a, **k: (_ for _ in ()).throw(ValueError("odd")))
    node, folder = _node_taking_a_study(tmp_path, groups)
    # and where its images are: another patient's image in a study failed every resend alike, and the operator
    # had no way out (a deployer's test)
    said = capsys.readouterr().out
    assert ("(analysed again when an instance of it comes or the node starts again; its images are in "
            f"{folder}: remove a stray image") in said
    assert folder not in node._rewrite


def test_while_the_results_folder_takes_no_file_the_models_are_not_run_again_and_the_wait_doubles(
        tmp_path, groups, capsys, monkeypatch):
    """A study whose results could not be written was analysed again, models and all, every --retry-s for as long
    as the disk stayed full."""
    import app.pacs.node as node_module
    from app.archive.unit import Outcome

    node = _node(tmp_path, groups)
    node.options = NodeOptions(ae_title="AINODE", port=0, out=tmp_path, allowed=(), retry_s=2,
                               batch=node.options.batch)
    folder = study_folder(tmp_path, STUDY)
    for dataset in _views():
        keep_instance(folder, dataset)
    runs = []

    def full(item, *args, **kwargs):  # the models ran, the results did not fit
        runs.append(item)
        return Outcome(item.exam_id, item.location, "failed", "the disk is full", machine_fault=True)

    monkeypatch.setattr(node_module, "process", full)
    monkeypatch.setattr(node_module.AiNode, "_results_problem", lambda self: "No space left on device")
    node._take(folder)
    assert len(runs) == 1 and node._rewrite_wait[folder] == 2
    waits = []
    for _ in range(6):
        node._rewrite[folder] = 0.0  # due
        node._take(folder)
        waits.append(node._rewrite_wait[folder])
    assert waits == [4, 8, 16, 32, 32, 32]  # doubled, up to 16 times --retry-s
    assert len(runs) == 1  # the models not run again while the folder takes no file
    assert capsys.readouterr().out.count("FAILED study") == 1
    monkeypatch.undo()  # the disk has room again
    node._rewrite[folder] = 0.0
    node._take(folder)
    assert "(written this time)" in capsys.readouterr().out
    assert folder not in node._rewrite and folder not in node._rewrite_wait


def test_a_study_analysed_again_sends_the_next_version_naming_the_report_it_replaces(tmp_path, groups, capsys):
    """A study analysed again sent a second SR like the first: on the PACS two AI results, nothing saying which
    is current."""
    batch = BatchOptions(formats=("sr",), device="cpu")
    node = AiNode(NodeOptions(ae_title="AINODE", port=0, out=tmp_path, allowed=(), batch=batch), groups)
    folder = study_folder(tmp_path, STUDY)
    views = _views()
    for dataset in views:
        keep_instance(folder, dataset)
    node._take(folder)
    (path,) = (tmp_path / "results" / folder.name).glob("*_sr.dcm")
    first = dcmread(path)
    views[0].WindowCenter = 2100  # sent again with a corrected attribute
    keep_instance(folder, views[0])
    node._take(folder)
    assert "analysing it again" in capsys.readouterr().out
    second = dcmread(path)
    assert second.SOPInstanceUID != first.SOPInstanceUID
    assert second.SeriesDescription == f"{first.SeriesDescription} v2"
    (earlier,) = second.PredecessorDocumentsSequence
    assert earlier.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID
