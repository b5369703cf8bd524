"""PACS addresses on the command line: ``dimse://CALLED_AET@HOST:PORT[/STUDY_UID][?move=OUR_PORT]`` (C-GET,
or C-MOVE to our own Storage SCP on OUR_PORT, listening on 127.0.0.1 unless ``?move=OUR_ADDRESS:OUR_PORT``
names a LAN address; it lets in the node's host only, or the hosts of ``&from=HOST,…`` where another machine of
the PACS sends the images) and
``dicomweb+http(s)://HOST:PORT/PREFIX[/studies/STUDY_UID]``. Credentials never travel in an address."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from inference.errors import MammoError

SCHEMES = ("dimse://", "dicomweb+http://", "dicomweb+https://")
DEFAULT_AE_TITLE = "MAMMOREADER"
TIMEOUT_S = 30.0  # every association, every DIMSE message, every HTTP request (MAMMO_PACS_TIMEOUT overrides)


class PacsError(MammoError):
    """A PACS that is down, refuses us, finds nothing or rejects what we send; names the node (never a
    password, never a patient identifier)."""

    def __init__(self, node: RemoteNode | str, message: str) -> None:
        self.node = node
        super().__init__(f"{node if isinstance(node, str) else node.describe()}: {message}")


class NothingMoved(PacsError):
    """A C-MOVE that failed without delivering an image: the study missing, or the node unable to reach our
    receiver (its entry for our AE title names another host or port): the retrieve, which knows whether the node
    lists the study's images, says which."""

    def __init__(self, node: RemoteNode, message: str, status: int) -> None:
        super().__init__(node, message)
        self.status = status


@dataclass(frozen=True)
class RemoteNode:
    """A DICOM node: DIMSE (AE title, host, port) or DICOMweb (a base URL).

    Attributes:
        calling_aet: our own AE title (``--ae-title``).
        username, password, token: DICOMweb basic or bearer authentication (from the environment).
    """

    protocol: str  # dimse | dicomweb
    host: str
    port: int
    called_aet: str = ""
    base_url: str = ""
    calling_aet: str = DEFAULT_AE_TITLE
    username: str = ""
    password: str = ""
    token: str = ""
    timeout: float = TIMEOUT_S
    move_port: int = 0  # DIMSE: retrieve by C-MOVE to our Storage SCP on this port (0: C-GET)
    move_host: str = "127.0.0.1"  # the address that Storage SCP listens on (a LAN address only when named)
    move_from: tuple[str, ...] = ()  # who may send the moved images (default: the node's own host)

    def describe(self) -> str:
        """The node in words, for every message and log line: no credentials."""
        if self.protocol == "dimse":
            return f"dimse://{self.called_aet}@{self.host}:{self.port}"  # how it is retrieved is no part of it
        return f"dicomweb+{self.base_url}"

    def __repr__(self) -> str:  # a node in a traceback or a log shows no password
        return f"RemoteNode({self.describe()!r})"


@dataclass(frozen=True)
class StudyAddress:
    node: RemoteNode
    study_uid: str

    def describe(self) -> str:
        return f"{self.node.describe()}/studies/{self.study_uid}" if self.node.protocol == "dicomweb" else \
            f"{self.node.describe()}/{self.study_uid}"


def is_pacs_address(text: object) -> bool:
    return isinstance(text, str) and text.startswith(SCHEMES)


_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def _credentials() -> dict:
    return {"username": os.environ.get("MAMMO_DICOMWEB_USER", ""),
            "password": os.environ.get("MAMMO_DICOMWEB_PASSWORD", ""),
            "token": os.environ.get("MAMMO_DICOMWEB_TOKEN", "")}


def default_timeout() -> float:
    """Seconds a node may stay silent before the step is given up: ``MAMMO_PACS_TIMEOUT``, else 30."""
    try:
        value = float(os.environ.get("MAMMO_PACS_TIMEOUT", "") or TIMEOUT_S)
    except ValueError:
        raise MammoError(f"MAMMO_PACS_TIMEOUT={os.environ['MAMMO_PACS_TIMEOUT']!r}: give seconds, e.g. 30") from None
    if not 0 < value <= 3600:
        raise MammoError(f"MAMMO_PACS_TIMEOUT={value:g}: give between 0 and 3600 seconds")
    return value


def _check_uid(text: str, uid: str) -> str:
    if not _UID.match(uid) or len(uid) > 64:
        raise MammoError(f"{text}: {uid!r} is not a Study Instance UID (digits and dots, at most 64)")
    return uid


def parse_address(text: str, calling_aet: str = DEFAULT_AE_TITLE) -> tuple[RemoteNode, str | None]:
    """The node of ``text`` and the study UID it names (None for a bare node, as ``--send`` takes)."""
    if not is_pacs_address(text):
        raise MammoError(f"{text}: not a PACS address; use dimse://AET@HOST:PORT[/STUDY_UID] or "
                         "dicomweb+http(s)://HOST:PORT/PREFIX[/studies/STUDY_UID]")
    if len(calling_aet) > 16 or not calling_aet.strip():
        raise MammoError(f"--ae-title {calling_aet!r}: an AE title has 1 to 16 characters")
    if text.startswith("dimse://"):
        match = re.match(r"^dimse://([^@/]{1,16})@([^:/]+):(\d+)(?:/([^/?]*))?/?(?:\?move=(?:([^:/?]+):)?(\d+)"
                         r"(?:&from=([^&]+))?)?$", text)
        if not match:
            called = re.match(r"^dimse://([^@/]*)@", text)
            if called and not 1 <= len(called.group(1).strip()) <= 16:
                raise MammoError(f"{text}: the called AE title {called.group(1)!r} has {len(called.group(1))} "
                                 "characters; an AE title has 1 to 16")
            raise MammoError(f"{text}: write dimse://CALLED_AET@HOST:PORT[/STUDY_UID][?move=[OUR_ADDRESS:]OUR_PORT"
                             "[&from=SENDER_HOST,…]]")
        aet, host, port, uid, move_host, move, senders = match.groups()
        if not 1 <= int(port) <= 65535 or (move and not 1 <= int(move) <= 65535):
            raise MammoError(f"{text}: {port if not 1 <= int(port) <= 65535 else move} is not a port number (1 to "
                             "65535)")
        node = RemoteNode("dimse", host, int(port), called_aet=aet, calling_aet=calling_aet,
                          move_port=int(move) if move else 0, move_host=move_host or "127.0.0.1",
                          move_from=tuple(h for h in (senders or "").split(",") if h), timeout=default_timeout())
        return node, (_check_uid(text, uid) if uid else None)
    parts = urlsplit(text[len("dicomweb+"):])
    if parts.username or parts.password:
        raise MammoError("a DICOMweb address carries no credentials (they would show in logs and the process "
                         "list); set MAMMO_DICOMWEB_USER and MAMMO_DICOMWEB_PASSWORD (or MAMMO_DICOMWEB_TOKEN)")
    if not parts.hostname:
        raise MammoError(f"{text}: write dicomweb+http(s)://HOST:PORT/PREFIX[/studies/STUDY_UID]")
    path, uid = parts.path.rstrip("/"), None
    match = re.match(r"^(.*)/studies/([^/]+)$", path)
    if match:
        path, uid = match.group(1), _check_uid(text, match.group(2))
    base = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{path}"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    credentials = _credentials()
    if not credentials["username"] and not credentials["token"]:  # else those saved for this node, if any
        from app.pacs.credentials import load_credentials  # noqa: PLC0415

        credentials["username"], credentials["password"] = load_credentials(f"dicomweb+{base}")
    return RemoteNode("dicomweb", parts.hostname, port, base_url=base, calling_aet=calling_aet,
                      timeout=default_timeout(), **credentials), uid


def parse_study(text: str, calling_aet: str = DEFAULT_AE_TITLE) -> StudyAddress:
    node, uid = parse_address(text, calling_aet)
    if uid is None:
        raise MammoError(f"{text}: the address names no study (…/STUDY_UID for DIMSE, …/studies/STUDY_UID "
                         "for DICOMweb)")
    return StudyAddress(node, uid)


def node_of(address: str, ae_title: str) -> RemoteNode:
    """The node an address names (a study address is refused: a node is wanted here)."""
    node, study = parse_address(address.strip(), ae_title.strip() or "MAMMOREADER")
    if study is not None:
        raise MammoError(f"{address}: give the node, without a study")
    return node
