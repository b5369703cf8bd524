"""PACS addresses on the command line, without a server."""

from __future__ import annotations

import pytest

from app.pacs.nodes import RemoteNode, parse_address, parse_study
from inference.errors import MammoError

UID = "1.2.826.0.1.3680043.8.498.1"


def test_dimse_study_and_node():
    address = parse_study(f"dimse://PACS_AE@pacs.example:11112/{UID}", calling_aet="READING1")
    assert (address.node.protocol, address.node.called_aet, address.node.host, address.node.port) == (
        "dimse", "PACS_AE", "pacs.example", 11112)
    assert address.node.calling_aet == "READING1" and address.study_uid == UID
    node, study = parse_address("dimse://PACS_AE@pacs.example:11112")
    assert study is None and node.describe() == "dimse://PACS_AE@pacs.example:11112"


def test_dicomweb_study_with_credentials_from_the_environment(monkeypatch):
    monkeypatch.setenv("MAMMO_DICOMWEB_USER", "ann")
    monkeypatch.setenv("MAMMO_DICOMWEB_PASSWORD", "hunter2")
    address = parse_study(f"dicomweb+https://pacs.example:8443/dicom-web/studies/{UID}")
    node = address.node
    assert node.base_url == "https://pacs.example:8443/dicom-web" and address.study_uid == UID
    assert (node.username, node.password) == ("ann", "hunter2")
    assert "hunter2" not in repr(node) and "hunter2" not in node.describe() and "hunter2" not in str([node])


@pytest.mark.parametrize("text, message", [
    ("dicomweb+http://ann:pw@pacs:80/dicom-web", "carries no credentials"),
    ("dimse://PACS@host/1.2.3", "write dimse://"),
    ("dimse://PACS@host:104/not-a-uid", "is not a Study Instance UID"),
    ("dimse://THIS_AE_TITLE_IS_TOO_LONG@host:104", "the called AE title 'THIS_AE_TITLE_IS_TOO_LONG' has 25 "
                                                   "characters; an AE title has 1 to 16"),
    ("dimse://PACS@host:70000", "70000 is not a port number"),
    ("dimse://PACS@host:104/1.2.3?move=0", "0 is not a port number"),
])
def test_bad_addresses_say_what_to_write(text, message):
    with pytest.raises(MammoError, match=message):
        parse_address(text)


def test_a_study_is_required_where_an_exam_is_expected():
    with pytest.raises(MammoError, match="names no study"):
        parse_study("dimse://PACS@host:104")
    with pytest.raises(MammoError, match="AE title has 1 to 16"):
        parse_address("dimse://PACS@host:104", calling_aet="X" * 17)


def test_a_node_never_shows_its_password():
    node = RemoteNode("dicomweb", "h", 80, base_url="http://h/dicom-web", password="secret", username="u")
    assert "secret" not in repr(node) and "secret" not in node.describe()


def test_the_cache_keeps_under_its_limit_oldest_retrieve_out_first(tmp_path):
    import os

    from app.pacs.retrieve import COMPLETE, evict

    studies = []
    for number in range(4):
        folder = tmp_path / f"study{number}"
        folder.mkdir()
        (folder / "a.dcm").write_bytes(b"x" * 1000)
        (folder / COMPLETE).write_text("{}")
        os.utime(folder / COMPLETE, (1000 + number, 1000 + number))  # study0 retrieved first
        studies.append(folder)
    (tmp_path / ".study9.partial-1").mkdir()  # a retrieve under way is never touched
    evict(tmp_path, limit=2100, keep=studies[0])
    assert [s.exists() for s in studies] == [True, False, False, True]  # study0 is the one being opened
    evict(tmp_path, limit=1100, keep=studies[3])
    assert [s.exists() for s in studies] == [False, False, False, True]
    assert (tmp_path / ".study9.partial-1").exists()


def test_a_bearer_token_from_the_environment_goes_in_the_authorization_header(monkeypatch):
    from app.pacs.dicomweb import _client

    monkeypatch.setenv("MAMMO_DICOMWEB_TOKEN", "eyJ.token.sig")
    monkeypatch.delenv("MAMMO_DICOMWEB_USER", raising=False)
    node, _ = parse_address("dicomweb+https://pacs.example/dicom-web")
    assert node.token == "eyJ.token.sig" and "eyJ" not in repr(node)
    session = _client(node)._session
    assert session.headers["Authorization"] == "Bearer eyJ.token.sig" and session.auth is None
