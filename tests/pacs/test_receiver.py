"""The receiver the workstation's inbox and the AI node share, on loopback without a PACS: Preferences'
defaults let nobody in; an allowed sender is; it listens on 127.0.0.1 unless told otherwise (the C-MOVE
receiver too); no Storage SCP in app/ binds every interface."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from pynetdicom import AE

from app.pacs.nodes import parse_address
from app.pacs.scp import parse_senders, workstation_receiver
from app.settings import AppSettings
from inference.errors import MammoError
from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
    """An abort of an association we rejected (waiting for the peer to close) is an invalid event in
    pynetdicom's state machine, raised in its thread; the open ones are aborted, and the port is let go."""
    from types import SimpleNamespace

    from pynetdicom import AE as ApplicationEntity

    settings = AppSettings(ae_title="WORKSTATION", scp_port=_free_port(), scp_allowed=())
    receiver = workstation_receiver(settings, tmp_path / "inbox")
    aborted = []
    associations = [SimpleNamespace(is_rejected=True, abort=lambda: aborted.append("rejected")),
                    SimpleNamespace(is_rejected=False, abort=lambda: aborted.append("open"))]
    monkeypatch.setattr(ApplicationEntity, "active_associations", property(lambda ae: associations))
    receiver.stop()
    assert aborted == ["open"]
    with socket.socket() as probe:  # the listening socket is closed: the port can be bound again
        probe.bind(("127.0.0.1", settings.scp_port))


def test_allow_list_entries_are_checked():
    assert [str(s) for s in parse_senders(["A", "B@10.0.0.1, C"])] == ["A", "B@10.0.0.1", "C"]
    with pytest.raises(MammoError, match="AE title has 1 to 16"):
        parse_senders(["MUCHTOOLONGAETITLE1"])


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

