"""DICOMweb passwords of the configured nodes: never in the settings file, a log or a command line.

The platform's credential store (the ``keyring`` package backed by a real store: the macOS Keychain, the
Windows Credential Locker, the Secret Service or KWallet) keeps them. keyring's file backends (keyrings.alt's
plaintext or "encrypted" files, which sit beside the settings) and its fail / null backends are no store:
without a real one a password goes to ``<app folder>/pacs-credentials.json`` (0600) only when the user agreed
to it (``AppSettings.credentials_file``, asked by Preferences, which say where the file is). The environment
(``MAMMO_DICOMWEB_USER`` / ``MAMMO_DICOMWEB_PASSWORD`` / ``MAMMO_DICOMWEB_TOKEN``) overrides both.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from inference.errors import MammoError

SERVICE = "mammo-reader-pacs"
logger = logging.getLogger(__name__)

# keyring backends that are files or nothing at all: a password there is no safer than our own 0600 file
_REFUSED_MODULES = ("keyrings.alt", "keyring.backends.fail", "keyring.backends.null")


class CredentialStoreError(MammoError):
    """No system credential store, and the user has not agreed to a plain file."""


def _is_real(backend: object) -> bool:
    module = type(backend).__module__ or ""
    if any(module == name or module.startswith(name + ".") for name in _REFUSED_MODULES):
        return False
    if hasattr(backend, "file_path"):  # any other file-backed keyring
        return False
    try:
        return float(getattr(backend, "priority", 0)) > 0
    except Exception:  # noqa: BLE001 - a backend whose priority cannot be computed is not available
        return False


def system_store():
    """The keyring backend that keeps passwords, or None when only files (or nothing) are available.

    A chainer is looked through: its first real backend is used directly, so a password never falls through
    to a plaintext backend chained behind it."""
    try:
        import keyring  # noqa: PLC0415
        from keyring.backends.chainer import ChainerBackend  # noqa: PLC0415
    except ImportError:
        return None
    backend = keyring.get_keyring()
    if isinstance(backend, ChainerBackend):
        return next((b for b in backend.backends if _is_real(b)), None)
    return backend if _is_real(backend) else None


def credentials_file() -> Path:
    """Where the plain file would be (used only with the user's agreement)."""
    from app.settings import config_dir  # noqa: PLC0415

    return config_dir() / "pacs-credentials.json"


def where_kept(file_agreed: bool = False) -> str:
    store = system_store()
    if store is not None:
        return f"the system credential store ({type(store).__name__})"
    if file_agreed:
        return f"{credentials_file()} (a plain file readable only by you)"
    return "nowhere: this computer has no system credential store (Password… offers a plain file readable only by you)"


def _read_file() -> dict:
    """The plain file's entries ({} when there is none). A file that cannot be read is said, naming it: taken
    as empty, its passwords failed as "authentication failed (HTTP 401)", and a password saved then replaced
    the file and lost every other node's entry."""
    path = credentials_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        why = getattr(error, "strerror", None) or error
        raise CredentialStoreError(f"the saved DICOMweb credentials cannot be read ({why})", path) from error
    try:
        data = json.loads(text)
    except ValueError as error:
        raise CredentialStoreError(f"the saved DICOMweb credentials are damaged ({error}): mend the file, or remove "
                                   "it and save the passwords again (Preferences → Password…)", path) from error
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise CredentialStoreError("the saved DICOMweb credentials are not what this program writes (an object of "
                                   "nodes, each with its username and password): mend or remove the file", path)
    return data


def save_credentials(node: str, username: str, password: str, *, file_agreed: bool = False) -> str:
    """Keep the credentials of ``node`` (its address as ``RemoteNode.describe`` gives it); returns where.

    Raises:
        CredentialStoreError: no system store and ``file_agreed`` is False, or the plain file cannot be read
            (nothing is written then).
    """
    store = system_store()
    if store is not None:
        store.set_password(SERVICE, node, json.dumps({"username": username, "password": password}))
        return where_kept()
    if not file_agreed:
        raise CredentialStoreError(f"{node}: the password was not saved: this computer has no system credential "
                                   "store, and a plain file was not agreed to")
    data = _read_file()
    data[node] = {"username": username, "password": password}
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".part")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    return where_kept(file_agreed=True)


def load_credentials(node: str) -> tuple[str, str]:
    """(username, password) saved for ``node``, or ("", ""): the system store first, then the plain file (which
    exists only where the user agreed to it)."""
    store = system_store()
    entry: object = {}
    if store is not None:
        saved = store.get_password(SERVICE, node)
        try:
            entry = json.loads(saved) if saved else {}
        except ValueError:
            entry = {}
    if not entry:
        entry = _read_file().get(node, {})
    if not isinstance(entry, dict):
        return "", ""
    return str(entry.get("username", "")), str(entry.get("password", ""))


_warned: set[str] = set()
_warned_lock = threading.Lock()
PLAIN_HTTP_FLAG = "plain_http_credentials"  # set on the log record, for the workstation's status line


def warn_if_plain_http(node) -> bool:
    """Log once per node (per process) that its credentials travel unencrypted; True when it warned now.

    ``node``: a ``RemoteNode``. Basic authentication sends the password base64-encoded with every request,
    and a bearer token as it is: over ``http://`` anyone on the path reads them."""
    if not node.base_url.startswith("http://") or not (node.username or node.token):
        return False
    key = node.describe()
    with _warned_lock:
        if key in _warned:
            return False
        _warned.add(key)
    what = "token" if node.token else "password"
    logger.warning("%s: the DICOMweb %s is sent unencrypted over http://; use https:// for this node", key, what,
                   extra={PLAIN_HTTP_FLAG: True})
    return True
