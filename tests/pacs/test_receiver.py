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
