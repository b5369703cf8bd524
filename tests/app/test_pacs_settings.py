"""Named PACS nodes in Preferences and their DICOMweb passwords, kept out of the settings file."""

from __future__ import annotations

import json
import stat

from app.pacs.credentials import load_credentials, save_credentials, where_kept
from app.pacs.nodes import parse_address
from app.settings import AppSettings

WEB = "dicomweb+https://pacs.example:8443/dicom-web"


def test_a_saved_password_is_kept_apart_readable_only_by_the_user_and_used(isolated_home, monkeypatch):
    monkeypatch.delenv("MAMMO_DICOMWEB_USER", raising=False)
    monkeypatch.delenv("MAMMO_DICOMWEB_PASSWORD", raising=False)
    save_credentials(WEB, "ann", "hunter2")
    assert load_credentials(WEB) == ("ann", "hunter2")
    kept = isolated_home / "pacs-credentials.json"
    assert str(kept) in where_kept() and stat.S_IMODE(kept.stat().st_mode) == 0o600
    node, _ = parse_address(WEB)
    assert (node.username, node.password) == ("ann", "hunter2") and "hunter2" not in repr(node)
    monkeypatch.setenv("MAMMO_DICOMWEB_USER", "bob")
    monkeypatch.setenv("MAMMO_DICOMWEB_PASSWORD", "from-env")
    node, _ = parse_address(WEB)
    assert (node.username, node.password) == ("bob", "from-env")  # the environment overrides


def test_named_nodes_round_trip_through_preferences_and_the_settings_file(qtbot, isolated_home):
    from app.ui.pacs_dialog import PacsDialog
    from app.ui.preferences import PreferencesDialog

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
