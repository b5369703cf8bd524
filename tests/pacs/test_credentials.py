"""Secrets and files: DICOMweb passwords only in a real credential store (a plain 0600 file only when the user
agreed), a warning for credentials over plain http, and the app folder and the inbox readable by the user alone
whatever the umask. No server: a fake keyring backend stands for the system store."""

from __future__ import annotations

import json
import logging
import os
import stat

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null

from app.pacs import credentials
from app.pacs.credentials import (
    CredentialStoreError,
    credentials_file,
    load_credentials,
    save_credentials,
    system_store,
    where_kept,
)
from app.pacs.nodes import RemoteNode, parse_address, parse_study
from app.settings import config_dir
from inference.errors import MammoError

WEB = "dicomweb+https://pacs.example:8443/dicom-web"


class FakeStore(KeyringBackend):
    """A system credential store in memory."""

    priority = 5

    def __init__(self) -> None:
        super().__init__()
        self.kept: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.kept.get((service, username))

    def set_password(self, service, username, password):
        self.kept[(service, username)] = password

    def delete_password(self, service, username):
        self.kept.pop((service, username), None)


class PlaintextKeyring(FakeStore):
    """Stands for keyrings.alt.file.PlaintextKeyring (not installed): a file beside the settings."""

    priority = 0.5
    file_path = "/somewhere/keyring_pass.cfg"


PlaintextKeyring.__module__ = "keyrings.alt.file"


class EmptyChainer(chainer.ChainerBackend):
    backends = []


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMMO_READER_HOME", str(tmp_path / "home"))
    for name in ("MAMMO_DICOMWEB_USER", "MAMMO_DICOMWEB_PASSWORD", "MAMMO_DICOMWEB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    before = keyring.get_keyring()
    yield tmp_path / "home"
    keyring.set_keyring(before)


def test_a_real_store_keeps_the_password_and_no_file_is_written():
    store = FakeStore()
    keyring.set_keyring(store)
    assert system_store() is store and "system credential store" in where_kept()
    assert "system credential store" in save_credentials(WEB, "ann", "hunter2")
    assert json.loads(store.kept[(credentials.SERVICE, WEB)]) == {"username": "ann", "password": "hunter2"}
    assert load_credentials(WEB) == ("ann", "hunter2")
    assert not credentials_file().exists()
    node, _ = parse_address(WEB)
    assert (node.username, node.password) == ("ann", "hunter2")


@pytest.mark.parametrize("backend", [PlaintextKeyring(), fail.Keyring(), null.Keyring(), EmptyChainer()],
                         ids=["keyrings.alt plaintext", "fail", "null", "chainer with none"])
def test_file_and_fail_backends_are_no_store_and_a_file_needs_the_users_agreement(backend):
    keyring.set_keyring(backend)
    assert system_store() is None
    assert where_kept().startswith("nowhere")
    with pytest.raises(CredentialStoreError, match="not saved"):
        save_credentials(WEB, "ann", "hunter2")
    assert not credentials_file().exists() and not getattr(backend, "kept", {})
    kept = save_credentials(WEB, "ann", "hunter2", file_agreed=True)
    assert str(credentials_file()) in kept and "plain file" in kept
    assert stat.S_IMODE(credentials_file().stat().st_mode) == 0o600
    assert not getattr(backend, "kept", {})  # nothing went to the file backend
    assert load_credentials(WEB) == ("ann", "hunter2")



def test_a_damaged_plain_file_is_named_and_never_written_over():
    """A deployer's test: one trailing comma in the file, and its password was taken as none (the node said
    "authentication failed (HTTP 401)"); saving another node's password then replaced the file with that one
    entry, and every other node's was lost."""
    keyring.set_keyring(null.Keyring())
    save_credentials(WEB, "ann", "hunter2", file_agreed=True)
    damaged = credentials_file().read_text().rstrip("}") + ', "other": {"username": "bo", "password": "x"},}'
    credentials_file().write_text(damaged)
    with pytest.raises(CredentialStoreError, match="the saved DICOMweb credentials are damaged") as caught:
        load_credentials(WEB)
    assert str(credentials_file()) in str(caught.value)
    with pytest.raises(MammoError, match="pacs-credentials.json: the saved DICOMweb credentials are damaged"):
        parse_address(WEB)  # the node is not used with no password
    with pytest.raises(CredentialStoreError, match="damaged"):
        save_credentials("dicomweb+https://third:443/dicom-web", "cy", "cypw", file_agreed=True)
    assert credentials_file().read_text() == damaged  # nothing written over it
    credentials_file().write_text('["not", "ours"]')
    with pytest.raises(CredentialStoreError, match="not what this program writes"):
        load_credentials(WEB)

def test_a_chainer_is_looked_through_to_its_real_store_past_a_plaintext_one(monkeypatch):
    real, plain = FakeStore(), PlaintextKeyring()
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [plain, real])
    keyring.set_keyring(chainer.ChainerBackend())
    assert system_store() is real
    save_credentials(WEB, "ann", "hunter2")
    assert real.kept and not plain.kept


def node(base_url: str, **auth) -> RemoteNode:
    return RemoteNode("dicomweb", "pacs.example", 80, base_url=base_url, **auth)


def test_credentials_over_plain_http_warn_once_per_node(caplog, monkeypatch):
    from app.pacs.dicomweb import _client

    monkeypatch.setattr(credentials, "_warned", set())
    caplog.set_level(logging.WARNING, logger="app.pacs.credentials")
    plain = node("http://pacs.example/dicom-web", username="ann", password="hunter2")
    _client(plain)
    _client(plain)
    _client(node("https://pacs.example/dicom-web", username="ann", password="hunter2"))
    _client(node("http://pacs.example/open"))  # no credentials: nothing to leak
    _client(node("http://other.example/dicom-web", token="eyJ.token.sig"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("dicomweb+http://pacs.example/dicom-web: the DICOMweb password is sent unencrypted")
    assert "token" in lines[1] and "other.example" in lines[1]
    assert all("hunter2" not in line and "eyJ" not in line for line in lines)
    assert all(getattr(r, credentials.PLAIN_HTTP_FLAG) for r in caplog.records)


@pytest.fixture
def open_umask():
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_the_app_folder_is_made_readable_by_the_user_alone_whatever_the_umask(home, open_umask):
    assert not home.exists()
    assert config_dir() == home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    (home / "probe").mkdir()  # the umask itself is still open: only our folder was tightened
    assert stat.S_IMODE((home / "probe").stat().st_mode) == 0o777


def test_the_inbox_of_the_storage_scp_is_made_readable_by_the_user_alone(home, open_umask):
    from app.pacs.scp import StorageSCP

    inbox = home / "inbox"
    scp = StorageSCP("MAMMOREADER", 0, inbox, host="127.0.0.1")
    try:
        assert stat.S_IMODE(inbox.stat().st_mode) == 0o700
    finally:
        scp.stop()


def test_the_retrieve_cache_is_made_readable_by_the_user_alone_wherever_it_is(home, tmp_path, open_umask,
                                                                           monkeypatch):
    from types import SimpleNamespace

    from app.pacs import retrieve
    from tests.inference.intake.dicom_factory import STUDY_UID, make_dataset, sample_pixels

    cache = tmp_path / "elsewhere" / "cache"
    monkeypatch.setenv("MAMMO_PACS_CACHE", str(cache))

    def get_study(node, study_uid, on_instance, cancel):
        on_instance(make_dataset(sample_pixels("L-CC", shrink=16), "L-CC"))
        return 1, 0

    monkeypatch.setattr(retrieve, "_protocol", lambda node: SimpleNamespace(
        get_study=get_study, study_images=lambda node, uid: frozenset()))
    study = retrieve.retrieve_study(parse_study(f"dimse://PACS@127.0.0.1:4242/{STUDY_UID}"))
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700 and study.folder.parent == cache
