"""DICOMweb passwords of the configured nodes: never in the settings file, a log or a command line.

The platform's credential store (the ``keyring`` package, where installed and backed by a real store) keeps
them; without one they go to ``<app folder>/pacs-credentials.json``, readable by the user alone (0600) —
Preferences say which. The environment (``MAMMO_DICOMWEB_USER`` / ``MAMMO_DICOMWEB_PASSWORD`` /
``MAMMO_DICOMWEB_TOKEN``) overrides both.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SERVICE = "mammo-reader-pacs"


def _keyring():
    try:
        import keyring  # noqa: PLC0415
        from keyring.backends import fail  # noqa: PLC0415
    except ImportError:
        return None
    backend = keyring.get_keyring()
    return None if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0 else keyring


def _file() -> Path:
    from app.settings import config_dir  # noqa: PLC0415

    return config_dir() / "pacs-credentials.json"


def where_kept() -> str:
    return "the system credential store" if _keyring() is not None else f"{_file()} (readable only by you)"


def _read_file() -> dict:
    try:
        return json.loads(_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def save_credentials(node: str, username: str, password: str) -> None:
    """``node``: the node's address as ``RemoteNode.describe`` gives it."""
    store = _keyring()
    if store is not None:
        store.set_password(SERVICE, node, json.dumps({"username": username, "password": password}))
        return
    data = _read_file()
    data[node] = {"username": username, "password": password}
    path = _file()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".part")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def load_credentials(node: str) -> tuple[str, str]:
    """(username, password) saved for ``node``, or ("", "")."""
    store = _keyring()
    if store is not None:
        saved = store.get_password(SERVICE, node)
        entry = json.loads(saved) if saved else {}
    else:
        entry = _read_file().get(node, {})
    return str(entry.get("username", "")), str(entry.get("password", ""))
