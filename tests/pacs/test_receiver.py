"""The receiver the workstation's inbox and the AI node share, on loopback without a PACS: Preferences'
defaults let nobody in; an allowed sender is; it listens on 127.0.0.1 unless told otherwise (the C-MOVE
receiver too); no Storage SCP in app/ binds every interface."""

from __future__ import annotations

import re
import socket
from dataclasses import replace
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.dsutils import encode

from app.pacs.nodes import parse_address
from app.pacs.scp import parse_senders, workstation_receiver
from app.settings import AppSettings
from inference.errors import MammoError
from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _pacs_receiver(tmp_path, **settings):
    """(settings, the running receiver): AE title WORKSTATION on a free port of 127.0.0.1, letting in PACS."""
    chosen = AppSettings(ae_title="WORKSTATION", scp_port=_free_port(), scp_allowed=("PACS",), **settings)
    return chosen, workstation_receiver(chosen, tmp_path / "inbox")


def _echo(port: int, calling: str, called: str = "WORKSTATION"):
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if assoc.is_established:
        assoc.release()
        return "accepted"
    return assoc.acceptor.primitive.diagnostic if assoc.is_rejected else "no answer"


@pytest.mark.parametrize(("allowed", "calling", "called", "expected"), [
    ((), "PACS", "WORKSTATION", 3),  # the default: nobody is let in
    (("PACS",), "PACS", "WORKSTATION", "accepted"),
    (("PACS@127.0.0.1",), "PACS", "WORKSTATION", "accepted"),
    (("PACS@10.9.8.7",), "PACS", "WORKSTATION", 3),  # the right AE title from the wrong host
    (("PACS",), "OTHER", "WORKSTATION", 3),
    (("PACS",), "PACS", "SOMEONEELSE", 7),  # addressed to another AE title
])
def test_the_inbox_lets_in_only_the_allowed_senders(tmp_path, allowed, calling, called, expected):
    settings = AppSettings(ae_title="WORKSTATION", scp_port=_free_port(), scp_allowed=allowed)
    receiver = workstation_receiver(settings, tmp_path / "inbox")
    try:
        assert receiver.server.server_address[0] == "127.0.0.1"  # this machine only, by default
        assert _echo(settings.scp_port, calling, called) == expected
        assert receiver.rejected == (0 if expected == "accepted" else 1)
    finally:
        receiver.stop()


def test_stopping_leaves_a_rejected_association_to_close_and_aborts_the_others(tmp_path, monkeypatch):
    """An abort of an association we rejected (waiting for the peer to close), or of a connection that has not
    asked for one yet, is an invalid event in pynetdicom's state machine, raised in its thread; the open ones
    are aborted, and the port is let go."""
    from types import SimpleNamespace

    from pynetdicom import AE as ApplicationEntity

    settings = AppSettings(ae_title="WORKSTATION", scp_port=_free_port(), scp_allowed=())
    receiver = workstation_receiver(settings, tmp_path / "inbox")
    aborted = []
    asked, silent = SimpleNamespace(primitive=object()), SimpleNamespace(primitive=None)
    associations = [SimpleNamespace(is_rejected=True, requestor=asked, abort=lambda: aborted.append("rejected")),
                    SimpleNamespace(is_rejected=False, requestor=asked, abort=lambda: aborted.append("open")),
                    SimpleNamespace(is_rejected=False, requestor=silent, abort=lambda: aborted.append("silent"))]
    monkeypatch.setattr(ApplicationEntity, "active_associations", property(lambda ae: associations))
    receiver.stop()
    assert aborted == ["open"]
    with socket.socket() as probe:  # the listening socket is closed: the port can be bound again
        probe.bind(("127.0.0.1", settings.scp_port))


def test_allow_list_entries_are_checked():
    assert [str(s) for s in parse_senders(["A", "B@10.0.0.1, C"])] == ["A", "B@10.0.0.1", "C"]
    with pytest.raises(MammoError, match="AE title has 1 to 16"):
        parse_senders(["MUCHTOOLONGAETITLE1"])
    # a host name was compared as text with the peer's IP address, so it never matched (and a name can be
    # made to point elsewhere): only addresses are taken
    with pytest.raises(MammoError, match="'LOCAL@localhost': name the host by its IP address"):
        parse_senders(["LOCAL@localhost"])
    assert [str(s) for s in parse_senders(["V6@[0:0::1]"])] == ["V6@::1"]
    for empty in ("MODALITY@", "MODALITY@ "):  # from an unset $HOST: it let the AE title in from any host
        with pytest.raises(MammoError, match="the host after '@' is empty"):
            parse_senders([empty])


def test_the_c_move_receiver_listens_on_loopback_unless_an_address_is_named():
    node, _ = parse_address("dimse://ORTHANC@pacs.example:4242/1.2.3?move=4243")
    assert (node.move_host, node.move_port) == ("127.0.0.1", 4243)
    node, _ = parse_address("dimse://ORTHANC@pacs.example:4242/1.2.3?move=10.0.0.2:4243")
    assert (node.move_host, node.move_port) == ("10.0.0.2", 4243)


def test_no_storage_scp_binds_every_interface():
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "app" / "pacs").rglob("*.py"))
    assert not re.search(r'host\s*=\s*""|host: str = "",|start_server\(\s*\(\s*""', sources)


def _echo_from(port: int, source: str, calling: str = "ORTHANC", called: str = "MAMMOREADER"):
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", port, ae_title=called, bind_address=(source, 0))
    if assoc.is_established:
        assoc.release()
        return "accepted"
    return assoc.acceptor.primitive.diagnostic if assoc.is_rejected else "no answer"


@pytest.mark.parametrize(("pacs_host", "source", "calling", "expected"), [
    ("127.0.0.1", "127.0.0.1", "ORTHANC", "accepted"),
    ("127.0.0.1", "127.0.0.1", "ORTHANC_MOVE", "accepted"),  # the PACS may send from an AE title of its own
    ("localhost", "127.0.0.1", "ORTHANC", "accepted"),  # a name: the addresses it resolves to
    ("127.0.0.2", "127.0.0.1", "ORTHANC", 3),  # another peer, during our C-MOVE: not let in
    ("127.0.0.2", "127.0.0.2", "ORTHANC", "accepted"),
    ("10.9.8.7&from=127.0.0.3", "127.0.0.3", "STORESCU", "accepted"),  # another machine of the PACS, named
    ("10.9.8.7&from=127.0.0.3", "127.0.0.1", "STORESCU", 3),
])
def test_the_c_move_receiver_lets_in_only_the_pacs_it_asked(pacs_host, source, calling, expected):
    from app.pacs.dimse import move_receiver  # noqa: PLC0415

    port = _free_port()
    host, _, senders = pacs_host.partition("&")
    node, _ = parse_address(f"dimse://ORTHANC@{host}:4242/1.2.3?move={port}" + (f"&{senders}" if senders else ""),
                            calling_aet="MAMMOREADER")
    receiver = move_receiver(node, lambda dataset: None)
    try:
        assert _echo_from(port, source, calling) == expected
        assert receiver.rejected == (0 if expected == "accepted" else 1)
        assert receiver.rejected_peers == ([] if expected == "accepted" else [f"{calling!r} at {source}"])
    finally:
        receiver.stop()


def test_an_allow_list_entry_for_any_ae_title_must_name_its_host():
    from app.pacs.scp import Sender  # noqa: PLC0415

    with pytest.raises(ValueError, match="host"):
        Sender(None)
    assert Sender(None, "10.0.0.1").admits("WHOEVER", "10.0.0.1")
    assert Sender(None, "10.0.0.1").admits("WHOEVER", "::ffff:10.0.0.1")  # an IPv4 peer on a dual-stack socket
    assert not Sender(None, "10.0.0.1").admits("WHOEVER", "10.0.0.2")


@pytest.mark.parametrize(("this_machine", "expected"), [(True, "accepted"), (False, 3)])
def test_a_pacs_on_this_machine_named_by_its_network_address_reaches_the_loopback_receiver(
        monkeypatch, this_machine, expected):
    """The receiver listens on loopback, so a PACS on this machine connects from 127.0.0.1 whatever address it
    was named by (its LAN address, or a host name that resolves to 127.0.1.1); a PACS elsewhere is not thereby
    let in from loopback."""
    from app.pacs import dimse  # noqa: PLC0415

    monkeypatch.setattr(dimse, "_is_this_machine", lambda address: this_machine and address == "198.51.100.7")
    port = _free_port()
    node, _ = parse_address(f"dimse://ORTHANC@198.51.100.7:4242/1.2.3?move={port}", calling_aet="MAMMOREADER")
    receiver = dimse.move_receiver(node, lambda dataset: None)
    try:
        assert _echo_from(port, "127.0.0.1") == expected
    finally:
        receiver.stop()
    monkeypatch.setattr(dimse, "_own_host_name_addresses", lambda: {"127.0.1.1"})
    node, _ = parse_address(f"dimse://ORTHANC@127.0.1.1:4242/1.2.3?move={port}", calling_aet="MAMMOREADER")
    assert "127.0.0.1" in dimse.move_senders(node)


def test_this_machine_s_addresses_are_found_without_sending_anything():
    from app.pacs.dimse import _is_this_machine  # noqa: PLC0415

    assert _is_this_machine("127.0.0.1")
    assert not _is_this_machine("198.51.100.7")  # TEST-NET-2: no machine's own


@pytest.mark.parametrize(("completed", "failed", "received", "fails"), [
    (4, 0, 4, False),  # every image came: another peer knocking meanwhile is only logged
    (4, 0, 3, True),  # the node counts an image we never took
    (3, 1, 3, True),
])
def test_a_rejected_peer_fails_a_move_only_when_images_are_missing(monkeypatch, completed, failed, received, fails):
    from types import SimpleNamespace  # noqa: PLC0415

    from pydicom.dataset import Dataset  # noqa: PLC0415

    from app.pacs import dimse  # noqa: PLC0415
    from app.pacs.nodes import PacsError  # noqa: PLC0415

    port = _free_port()
    node, _ = parse_address(f"dimse://ORTHANC@127.0.0.1:4242/1.2.3?move={port}", calling_aet="MAMMOREADER")
    real, receivers = dimse.move_receiver, []

    def capture(node, on_instance):
        receivers.append(real(node, on_instance))
        return receivers[-1]

    monkeypatch.setattr(dimse, "move_receiver", capture)

    def follow(*args, **kwargs):
        assert _echo_from(port, "127.0.0.9", calling="SCANNER") == 3  # a peer that is not the PACS
        for _ in range(received):
            receivers[0].on_instance(Dataset())
        return completed, failed

    monkeypatch.setattr(dimse, "_associate", lambda *a, **k: SimpleNamespace(
        is_established=False, send_c_move=lambda *a: iter(())))
    monkeypatch.setattr(dimse, "_follow", follow)
    kept = []
    if fails:
        with pytest.raises(PacsError, match=r"rejected the sender 'SCANNER' at 127\.0\.0\.9"):
            dimse.move_study(node, "1.2.3", kept.append)
    else:
        assert dimse.move_study(node, "1.2.3", kept.append) == (completed, failed)
    assert len(kept) == received


def test_silent_connections_keep_no_allowed_sender_out_and_are_closed(tmp_path, monkeypatch):
    """Connections that never ask for an association (anybody can open them) used to count against the
    association limit: ten kept every allowed sender out for 30 s. They count no more, and go after
    HELLO_TIMEOUT_S."""
    from app.pacs import scp

    monkeypatch.setattr(scp, "HELLO_TIMEOUT_S", 1.0)
    monkeypatch.setattr(scp, "MAX_SILENT_PER_HOST", 100)  # the silent peer and the sender share 127.0.0.1 here
    settings, receiver = _pacs_receiver(tmp_path)
    silent = [socket.create_connection(("127.0.0.1", settings.scp_port)) for _ in range(scp.MAX_ASSOCIATIONS + 5)]
    try:
        assert _echo(settings.scp_port, "PACS") == "accepted"
        for connection in silent:  # closed by the node: the read ends (b"") or the peer resets it
            connection.settimeout(5)
            try:
                assert connection.recv(1) == b""
            except ConnectionResetError:
                pass
    finally:
        for connection in silent:
            connection.close()
        receiver.stop()


def test_past_the_association_limit_an_allowed_sender_is_told_to_try_again_later(tmp_path, monkeypatch, caplog):
    from app.pacs import scp

    monkeypatch.setattr(scp, "MAX_ASSOCIATIONS", 2)
    settings, receiver = _pacs_receiver(tmp_path)
    open_ones = []
    try:
        for _ in range(2):
            ae = AE(ae_title="PACS")
            ae.add_requested_context("1.2.840.10008.1.1")
            open_ones.append(ae.associate("127.0.0.1", settings.scp_port, ae_title="WORKSTATION"))
            assert open_ones[-1].is_established
        ae = AE(ae_title="PACS")
        ae.add_requested_context("1.2.840.10008.1.1")
        refused = ae.associate("127.0.0.1", settings.scp_port, ae_title="WORKSTATION")
        answer = refused.acceptor.primitive
        assert refused.is_rejected and (answer.result, answer.result_source, answer.diagnostic) == (2, 3, 2)
        assert "2 associations are open" in caplog.text and "'PACS' at 127.0.0.1" in caplog.text
        open_ones.pop().release()
        assert _echo(settings.scp_port, "PACS") == "accepted"
    finally:
        for assoc in open_ones:
            assoc.release()
        receiver.stop()


def _store(port: int, dataset, calling: str = "PACS"):
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="WORKSTATION")
    try:
        status = assoc.send_c_store(dataset)
        if "Status" not in status:  # no answer (the association was aborted, or timed out)
            return None, "no answer"
        return int(status.Status), str(status.get("ErrorComment", ""))
    finally:
        assoc.release()


def test_an_image_cut_short_is_refused_and_every_comment_is_whole_words_within_64_characters(tmp_path):
    """A data set cut short in transfer was answered with Success and failed only when it was analysed, and the
    sender never sent it again."""
    from tests.inference.intake.dicom_factory import make_dataset, sample_pixels

    settings, receiver = _pacs_receiver(tmp_path, scp_max_instance_mb=0.1)
    try:
        whole = make_dataset(sample_pixels("L-CC", shrink=16), "L-CC")
        cut = make_dataset(sample_pixels("L-CC", shrink=16), "L-CC")
        cut.PixelData = cut.PixelData[: len(cut.PixelData) // 2]
        not_mg = make_dataset(sample_pixels("L-CC", shrink=16), "L-CC", Modality="CT", PatientComments="x")
        answers = [_store(settings.scp_port, d) for d in (whole, cut, not_mg)]
        syntax = whole.file_meta.TransferSyntaxUID  # a limit the data set passes in its last fragment only
        size = len(encode(whole, syntax.is_implicit_VR, syntax.is_little_endian))
        receiver.limits = replace(receiver.limits, max_instance_bytes=size - 1)
        answers.append(_store(settings.scp_port, whole))
    finally:
        receiver.stop()
    assert [code for code, _ in answers] == [0x0000, 0xC000, 0xA900, 0xA700]
    assert answers[1][1].startswith("pixel data cut short (")
    for _, comment in answers:
        assert len(comment) <= 64 and comment.isascii()
        assert not comment or comment.endswith((")", "...", "only", "instance")), comment
    assert len(list((tmp_path / "inbox").glob("*/*.dcm"))) == 1


def test_an_empty_uid_or_another_patient_s_image_under_a_held_uid_is_refused(tmp_path):
    """Instances without a Study Instance UID went into one folder (two patients' images as one study), and
    another patient's image sent under a SOP Instance UID held here overwrote the first patient's image. A
    resend of the same patient's instance (a corrected header) still replaces it."""
    from pydicom import dcmread

    from tests.inference.intake.dicom_factory import make_dataset, sample_pixels

    settings, receiver = _pacs_receiver(tmp_path)
    try:
        first = make_dataset(sample_pixels("L-CC", shrink=16), "L-CC")
        corrected = make_dataset(sample_pixels("L-CC", shrink=16), "L-CC", ImageComments="corrected")
        other = make_dataset(sample_pixels("L-CC", shrink=16), "L-CC", PatientID="PID-OTHER")
        for ds in (corrected, other):
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = first.SOPInstanceUID
            ds.StudyInstanceUID = first.StudyInstanceUID
        no_study = make_dataset(sample_pixels("R-CC", shrink=16), "R-CC", StudyInstanceUID="")
        no_instance = make_dataset(sample_pixels("R-CC", shrink=16), "R-CC")
        no_instance.SOPInstanceUID = ""
        answers = [_store(settings.scp_port, d) for d in (first, corrected, other, no_study)]
        with pytest.raises(Exception, match="the MG instance's SOPInstanceUID is empty"):  # pynetdicom sends none
            receiver._keep(no_instance, 1000, "test")  # noqa: SLF001
    finally:
        receiver.stop()
    assert [code for code, _ in answers] == [0x0000, 0x0000, 0x0111, 0xC000]
    assert answers[2][1] == "SOP Instance UID held here for another patient: not replaced"
    assert answers[3][1] == "the MG instance's StudyInstanceUID is empty"
    (kept,) = (tmp_path / "inbox").glob("*/*.dcm")
    held = dcmread(kept)
    assert held.PatientID == first.PatientID and held.ImageComments == "corrected"


def test_another_patient_s_image_under_a_study_held_here_is_refused_and_the_study_kept(tmp_path):
    """Another patient's image sent under a study held here (a new SOP Instance UID) was answered Success, written
    into the study, and the study then failed as "images of 2 different patients" until an operator removed it;
    the sender never knew. Refused now; an image of the same patient (another view) and one naming no patient
    are kept."""
    from pydicom import dcmread

    from tests.inference.intake.dicom_factory import make_dataset, sample_pixels

    settings, receiver = _pacs_receiver(tmp_path)
    try:
        first = make_dataset(sample_pixels("L-CC", shrink=16), "L-CC")
        same = make_dataset(sample_pixels("R-CC", shrink=16), "R-CC")
        other = make_dataset(sample_pixels("L-MLO", shrink=16), "L-MLO", PatientID="PID-OTHER")
        other_issuer = make_dataset(sample_pixels("L-MLO", shrink=16), "L-MLO", IssuerOfPatientID="OTHER-SITE")
        for ds in (same, other, other_issuer):
            ds.StudyInstanceUID = first.StudyInstanceUID
        answers = [_store(settings.scp_port, d) for d in (first, same, other, other_issuer)]
    finally:
        receiver.stop()
    assert [code for code, _ in answers] == [0x0000, 0x0000, 0xC001, 0xC001]
    assert answers[2][1] == "study held here for another patient: image not kept"
    kept = sorted(dcmread(p).SOPInstanceUID for p in (tmp_path / "inbox").glob("*/*.dcm"))
    assert kept == sorted([first.SOPInstanceUID, same.SOPInstanceUID])


def test_an_instance_over_the_limit_is_cut_off_while_it_arrives(tmp_path, caplog):
    """pynetdicom holds a data set in memory until its last fragment: an instance over the limit was refused only
    after all of it had arrived (a sender of gigabytes filled the memory first). The association is aborted when
    the limit is passed; the sender's next association is served."""
    from tests.inference.intake.dicom_factory import make_dataset, sample_pixels

    settings, receiver = _pacs_receiver(tmp_path, scp_max_instance_mb=0.05)
    try:
        big = make_dataset(sample_pixels("L-CC", shrink=2), "L-CC")  # sent in PDUs of 16 kB
        assert len(big.PixelData) > 10 * receiver.limits.max_instance_bytes
        with caplog.at_level("WARNING", logger="app.pacs.scp"):
            answer = _store(settings.scp_port, big)
        small = make_dataset(sample_pixels("L-CC", shrink=16), "L-CC")
        after = _store(settings.scp_port, small)
    finally:
        receiver.stop()
    assert answer == (None, "no answer")
    assert caplog.text.count("aborted the association of AE title 'PACS' at 127.0.0.1: the instance it was sending "
                             "passed 51 kB, this node's limit for one instance, before all of it had come") == 1
    assert "refused an instance" not in caplog.text  # never decoded: the whole of it never arrived
    assert receiver.refused == 1 and after[0] == 0x0000
    assert len(list((tmp_path / "inbox").glob("*/*.dcm"))) == 1


@pytest.mark.parametrize(("calling", "called", "limit", "said"), [
    ("PACS", "WORKSTATION", 0, "the node is busy (too many associations are open on it): try again later"),
    ("STRANGER", "WORKSTATION", 10, "the node does not know our AE title 'STRANGER'"),
    ("PACS", "ELSEWHERE", 10, "'ELSEWHERE' is not the node's AE title"),
])
def test_a_rejection_is_said_by_its_reason(tmp_path, monkeypatch, calling, called, limit, said):
    """A busy node was reported as an AE-title problem."""
    from app.pacs import dimse, scp
    from app.pacs.nodes import PacsError

    monkeypatch.setattr(scp, "MAX_ASSOCIATIONS", limit)
    settings, receiver = _pacs_receiver(tmp_path)
    try:
        node = parse_address(f"dimse://{called}@127.0.0.1:{settings.scp_port}", calling)[0]
        with pytest.raises(PacsError) as raised:
            dimse.echo(node)
    finally:
        receiver.stop()
    assert said in str(raised.value)


def test_pynetdicom_never_formats_the_identifiers_of_queries_and_answers():
    """Under -v pynetdicom's INFO lines printed every C-FIND identifier (patient name, ID, birth date)."""
    import logging

    from pynetdicom import _config

    import app.pacs.contexts  # noqa: F401 - what every DIMSE module imports

    assert _config.LOG_REQUEST_IDENTIFIERS is False and _config.LOG_RESPONSE_IDENTIFIERS is False
    assert logging.getLogger("pynetdicom").getEffectiveLevel() >= logging.WARNING


def test_one_host_s_silent_connections_beyond_the_cap_are_closed_at_once(tmp_path, monkeypatch, caplog):
    """pynetdicom's own limit (100 connections) still counts silent ones: one peer renewing 101 of them kept
    every modality out. One host may hold MAX_SILENT_PER_HOST; the next are closed as they come."""
    import time

    from app.pacs import scp

    monkeypatch.setattr(scp, "MAX_SILENT_PER_HOST", 3)
    settings, receiver = _pacs_receiver(tmp_path)
    silent = []
    try:
        for _ in range(3):
            silent.append(socket.create_connection(("127.0.0.1", settings.scp_port)))
            time.sleep(0.1)  # accepted and its association thread started
        extra = socket.create_connection(("127.0.0.1", settings.scp_port))
        extra.settimeout(5)
        started = time.monotonic()
        try:
            assert extra.recv(1) == b""
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < 3  # at once, not after the 10 s for a silent connection
        assert "holds 3 connections that have asked for no association" in caplog.text
        extra.close()
    finally:
        for connection in silent:
            connection.close()
        receiver.stop()


def test_an_association_that_cannot_be_checked_is_rejected(tmp_path, monkeypatch):
    """pynetdicom logs an exception of the EVT_REQUESTED handler and accepts the peer: the check fails closed."""
    from app.pacs.scp import StorageSCP

    def broken(self, assoc):
        raise RuntimeError("a bug in the check")

    monkeypatch.setattr(StorageSCP, "_admit", broken)
    settings, receiver = _pacs_receiver(tmp_path)
    try:
        assert _echo(settings.scp_port, "PACS") == 3
    finally:
        receiver.stop()


def test_an_instance_received_again_replaces_its_copy_under_the_earlier_hexadecimal_name(tmp_path):
    """Earlier versions named a received file by a hexadecimal hash; the instance sent again was kept a second
    time beside it (and the older copy won the view's slot)."""
    from app.pacs.scp import inbox_bytes, instance_name, legacy_instance_name, study_folder
    from tests.inference.intake.dicom_factory import make_dataset, sample_pixels

    dataset = make_dataset(sample_pixels("L-CC", shrink=16), "L-CC")
    folder = study_folder(tmp_path / "inbox", str(dataset.StudyInstanceUID))
    folder.mkdir(parents=True)
    dataset.save_as(folder / legacy_instance_name(dataset), enforce_file_format=True)
    settings, receiver = _pacs_receiver(tmp_path)
    try:
        used = receiver._used  # noqa: SLF001
        assert _store(settings.scp_port, dataset)[0] == 0
        assert [p.name for p in folder.glob("*.dcm")] == [instance_name(dataset)]
        assert receiver._used == inbox_bytes(tmp_path / "inbox") < used + 100  # noqa: SLF001 - counted once
    finally:
        receiver.stop()


def test_a_kept_instance_is_the_user_s_alone_in_a_folder_given_open(tmp_path):
    """Where the folder given already existed (0755), the patient's images were written 0644 in 0755 folders."""
    import os
    import stat

    from app.pacs.scp import keep_instance
    from tests.inference.intake.dicom_factory import make_dataset, sample_pixels

    given = tmp_path / "out"
    given.mkdir(mode=0o755)
    old = os.umask(0o022)
    try:
        path = keep_instance(given / "study", make_dataset(sample_pixels("L-CC"), "L-CC"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_the_node_s_results_are_the_user_s_alone_in_an_out_folder_given_open(tmp_path):
    """Its reports (PDF, JSON, SR with the patient's name) were 0644 in 0755 folders under an --out made before."""
    import os
    import stat

    from app.pacs.node import RESULTS, check_out_folder

    out = tmp_path / "out"
    out.mkdir(mode=0o755)
    (out / RESULTS).mkdir(mode=0o755)  # an earlier run's, made open
    old = os.umask(0o022)
    try:
        check_out_folder(out)
    finally:
        os.umask(old)
    assert stat.S_IMODE((out / RESULTS).stat().st_mode) == 0o700
