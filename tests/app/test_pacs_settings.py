"""Named PACS nodes in Preferences and their DICOMweb passwords, kept out of the settings file."""

from __future__ import annotations

import json
import logging
import stat

import pytest

from app.pacs.credentials import load_credentials, save_credentials, where_kept
from app.pacs.nodes import parse_address
from app.settings import AppSettings

WEB = "dicomweb+https://pacs.example:8443/dicom-web"


@pytest.fixture
def no_credential_store():
    """keyring's fail backend: this computer has no system credential store."""
    import keyring
    from keyring.backends import fail

    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(before)


def test_a_saved_password_is_kept_apart_readable_only_by_the_user_and_used(isolated_home, monkeypatch,
                                                                           no_credential_store):
    monkeypatch.delenv("MAMMO_DICOMWEB_USER", raising=False)
    monkeypatch.delenv("MAMMO_DICOMWEB_PASSWORD", raising=False)
    save_credentials(WEB, "ann", "hunter2", file_agreed=True)
    assert load_credentials(WEB) == ("ann", "hunter2")
    kept = isolated_home / "pacs-credentials.json"
    assert str(kept) in where_kept(file_agreed=True) and stat.S_IMODE(kept.stat().st_mode) == 0o600
    node, _ = parse_address(WEB)
    assert (node.username, node.password) == ("ann", "hunter2") and "hunter2" not in repr(node)
    monkeypatch.setenv("MAMMO_DICOMWEB_USER", "bob")
    monkeypatch.setenv("MAMMO_DICOMWEB_PASSWORD", "from-env")
    node, _ = parse_address(WEB)
    assert (node.username, node.password) == ("bob", "from-env")  # the environment overrides


def test_named_nodes_round_trip_through_preferences_and_the_settings_file(qtbot, isolated_home):
    from app.ui.pacs.dialog import PacsDialog
    from app.ui.workstation.preferences import PreferencesDialog

    settings = AppSettings(pacs_nodes=(("archive", "dimse://ARCH@pacs:104"), ("web", WEB)))
    dialog = PreferencesDialog(settings)
    qtbot.addWidget(dialog)
    assert dialog.named_nodes() == settings.pacs_nodes
    dialog.add_node("new", "dimse://NEW@host:11112")
    chosen = dialog.settings()
    assert chosen.pacs_nodes[-1] == ("new", "dimse://NEW@host:11112") and chosen.pacs_node == "dimse://ARCH@pacs:104"
    chosen.save()
    text = (isolated_home / "settings.json").read_text()
    assert "hunter2" not in text and "password" not in text
    assert AppSettings.load().pacs_nodes == chosen.pacs_nodes
    assert json.loads(text)["pacs_nodes"][1] == ["web", WEB]
    pacs = PacsDialog(chosen.pacs_node, chosen.ae_title, named=chosen.pacs_nodes)
    qtbot.addWidget(pacs)
    pacs.node_choice.setCurrentIndex(1)
    pacs.node_choice.activated.emit(1)
    assert pacs.node_edit.text() == WEB


def test_without_a_credential_store_preferences_ask_before_a_plain_file_and_say_where_it_is(
        qtbot, isolated_home, monkeypatch, no_credential_store):
    from PySide6.QtWidgets import QInputDialog

    from app.ui.workstation.preferences import PreferencesDialog

    answers = iter([("ann", True), ("hunter2", True), ("ann", True), ("hunter2", True)])
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: next(answers))
    asked = []
    dialog = PreferencesDialog(AppSettings(pacs_nodes=(("web", WEB),)))
    qtbot.addWidget(dialog)
    assert "nowhere" in dialog.test_result.text()
    monkeypatch.setattr(dialog, "agree_to_plain_file", lambda path: asked.append(path) or False)
    dialog.nodes.selectRow(0)
    dialog.set_password()
    kept = isolated_home / "pacs-credentials.json"
    assert asked == [kept] and not kept.exists() and "not saved" in dialog.test_result.text()
    assert dialog.settings().credentials_file is False
    monkeypatch.setattr(dialog, "agree_to_plain_file", lambda path: asked.append(path) or True)
    dialog.set_password()
    assert kept.exists() and str(kept) in dialog.test_result.text() and "plain file" in dialog.test_result.text()
    assert dialog.settings().credentials_file is True
    assert load_credentials(WEB) == ("ann", "hunter2")



def test_a_damaged_credentials_file_is_what_preferences_say(qtbot, isolated_home, monkeypatch, no_credential_store):
    """From a review: the node's address could not be read (its saved password is in the damaged file), and
    Password… then said "a password is for a DICOMweb node (DIMSE uses AE titles)" of a DICOMweb node."""
    from PySide6.QtWidgets import QInputDialog

    from app.ui.workstation.preferences import PreferencesDialog

    monkeypatch.delenv("MAMMO_DICOMWEB_USER", raising=False)
    monkeypatch.delenv("MAMMO_DICOMWEB_PASSWORD", raising=False)
    save_credentials(WEB, "ann", "hunter2", file_agreed=True)
    kept = isolated_home / "pacs-credentials.json"
    kept.write_text(kept.read_text() + ",")  # one trailing comma
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: ("ann", True))
    dialog = PreferencesDialog(AppSettings(pacs_nodes=(("web", WEB),), credentials_file=True))
    qtbot.addWidget(dialog)
    dialog.nodes.selectRow(0)
    dialog.set_password()
    said = dialog.test_result.text()
    assert "pacs-credentials.json: the saved DICOMweb credentials are damaged" in said and "DIMSE" not in said

def test_credentials_over_plain_http_reach_the_status_line(qtbot, monkeypatch):
    from app.pacs import credentials
    from app.pacs.nodes import RemoteNode
    from app.ui.log_notices import StatusLogNotices

    monkeypatch.setattr(credentials, "_warned", set())
    notices = StatusLogNotices("app.pacs.credentials", credentials.PLAIN_HTTP_FLAG)
    notices.attach()
    try:
        node = RemoteNode("dicomweb", "pacs", 80, base_url="http://pacs/dicom-web", username="ann", password="pw")
        with qtbot.waitSignal(notices.line) as shown:
            credentials.warn_if_plain_http(node)
        assert "sent unencrypted over http://" in shown.args[0]
        logging.getLogger("app.pacs.credentials").warning("an unflagged line")  # not for the status bar
    finally:
        notices.detach()


def test_preferences_open_at_a_size_where_every_note_and_field_is_whole(qtbot):
    """Seen hands-on: the dialog opened at its minimum size (Qt's default caps a window at two thirds of the
    screen), the password note lost lines behind the buttons and the bind address showed ".0.1"."""
    from PySide6.QtWidgets import QLabel

    from app.ui.workstation.preferences import PreferencesDialog

    dialog = PreferencesDialog(AppSettings())
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    wrapped = [label for label in dialog.findChildren(QLabel) if label.wordWrap() and label.isVisible()]
    assert dialog.test_result in wrapped and dialog.scp_note in wrapped
    for label in wrapped:
        assert label.height() >= label.heightForWidth(label.width()), label.text()[:60]
    bind = dialog.scp_bind
    assert bind.width() >= bind.fontMetrics().horizontalAdvance(bind.text())
    assert " kept in nowhere" not in dialog.test_result.text()


def test_the_pacs_dialog_opens_a_study_only_from_the_server_that_listed_it(qtbot):
    """Seen hands-on: after a failed search of another server, the first server's studies stayed listed and
    opening one asked the new server for that study UID. No network here: the records are given."""
    from app.pacs.query import StudyRecord
    from app.ui.pacs.dialog import PacsDialog

    dialog = PacsDialog("dimse://NODEA@127.0.0.1:11112", "MAMMOREADER")
    qtbot.addWidget(dialog)
    node_a = dialog._node()
    dialog.show_records([StudyRecord("1.2.3.4", "P123", patient_name="Doe^Jane")], node_a)
    chosen = []
    dialog.studyChosen.connect(chosen.append)
    dialog.open_selected()
    assert chosen and chosen[0].node == node_a and chosen[0].study_uid == "1.2.3.4"
    dialog.show_records([StudyRecord("1.2.3.4", "P123", patient_name="Doe^Jane")], node_a)
    dialog.node_edit.setText("dimse://NODEB@127.0.0.1:5555")  # another server: the list is not its
    assert dialog.table.rowCount() == 0 and dialog.records == []
    dialog.open_selected()
    assert len(chosen) == 1
    dialog.node_edit.setText("")
    dialog.search()
    assert dialog.status.text().startswith("No PACS given")
    # a search's answer that arrives after the server was changed is dropped, not listed under the new address
    answers = []
    dialog._run = lambda task, *args, on_result: answers.append(on_result)  # noqa: SLF001 - no network here
    dialog.node_edit.setText("dimse://NODEA@127.0.0.1:11112")
    dialog.search()
    dialog.node_edit.setText("dimse://NODEB@127.0.0.1:5555")
    answers[-1]([StudyRecord("1.2.3.4", "P123")])
    assert dialog.table.rowCount() == 0 and dialog.records_node is None
    dialog.search()  # the answer of the server searched: listed, with the address it came from
    answers[-1]([StudyRecord("5.6.7.8", "P456")])
    assert dialog.records_address == ("dimse://NODEB@127.0.0.1:5555", "MAMMOREADER")
    assert "on " in dialog.status.text() and "5555" in dialog.status.text()
    dialog.ae_edit.setText("OTHER")  # our AE title edited after the search: the listing's stays with it
    dialog.open_selected()
    assert chosen[-1].study_uid == "5.6.7.8" and chosen[-1].node.port == 5555
    del dialog._run  # noqa: SLF001
    dialog.node_edit.setText("dimse://NODEA@127.0.0.1:11112")
    dialog.use_dates.setChecked(True)
    dialog.date_from.setDate(dialog.date_to.date().addDays(3))
    dialog.search()
    assert "'from' date is after the 'to' date" in dialog.status.text() and dialog.worker is None


@pytest.mark.parametrize(("text", "said"), [
    ("[1, 2]", "holds list, not the preferences' names and values"),
    ('{"pacs_nodes": 5, "model_path": 5, "scp_quota_gb": "big", "blind_first": 0, "scp_allowed": ["A", 3]}',
     "model_path, blind_first, pacs_nodes, scp_allowed, scp_quota_gb of the wrong kind or out of range; left at the "
     "default"),
    ('{"scp_port": 70000, "prefetch_exams": -1, "scp_quota_gb": 1' + "0" * 400 + '}',  # a review's
     "scp_port, scp_quota_gb, prefetch_exams of the wrong kind or out of range; left at the default"),
    ("{bad json", "unreadable (JSONDecodeError); using defaults"),
])
def test_a_settings_file_of_the_wrong_shape_leaves_the_defaults_and_names_itself(isolated_home, caplog, text, said):
    """A deployer's test: valid JSON of the wrong shape stopped every command and the workstation with a traceback
    ('list' object has no attribute 'items'); an unreadable file's warning named no file. Each setting of the wrong
    kind is left at its default (nobody let in, blind reading on) and said with the file; the rest are kept."""
    isolated_home.mkdir(parents=True)
    path = isolated_home / "settings.json"
    path.write_text(text.replace("}", ', "reader_name": "Dr Kept"}') if text.startswith('{"') else text)
    with caplog.at_level(logging.WARNING, logger="app.settings"):
        settings = AppSettings.load()
    assert f"settings file {path}" in caplog.text and said in caplog.text
    defaults = AppSettings()
    assert (settings.model_path, settings.blind_first, settings.pacs_nodes, settings.scp_allowed,
            settings.scp_quota_gb) == (defaults.model_path, True, (), (), defaults.scp_quota_gb)
    assert settings.reader_name == ("Dr Kept" if text.startswith('{"') else "")
    # a command that reads the configured models takes the built-in one (it stopped with the traceback)
    import argparse

    from app.cli.common import model_sources
    from app.demo import demo_model_path

    assert model_sources(argparse.Namespace(models=None)) == [str(demo_model_path())]
