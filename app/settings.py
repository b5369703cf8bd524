"""User preferences (no Qt): model folder, device, mode, auto-run, blind reading, the PACS; stored as JSON."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def private_folder(path: Path) -> Path:
    """``path``, created readable by the user alone (0700) whatever the umask when it does not exist yet: it
    holds received studies, the retrieve cache, the store and maybe credentials. A folder that exists is left
    as its owner set it."""
    path = Path(path)
    if not path.is_dir():
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)  # makedirs' mode is filtered by the umask
    return path


def config_dir() -> Path:
    """Per-user folder for settings and the local store (``MAMMO_READER_HOME`` overrides it); created 0700."""
    override = os.environ.get("MAMMO_READER_HOME")
    base = os.environ.get("XDG_CONFIG_HOME") or (Path.home() / ".config")
    folder = Path(override) if override else Path(base) / "mammo-reader"
    try:
        return private_folder(folder)
    except OSError:  # a read-only home: what writes there says so, naming the file
        return folder


def store_path() -> Path:
    """The workstation's store (reads, marks, results, studies by default): one file in :func:`config_dir`."""
    return config_dir() / "mammo_reader.sqlite"


# the numbers' ranges, the same in Preferences' boxes and in the settings file (a port of 0 or 70000, a negative
# prefetch or quota is refused there: it is no setting)
RANGES = {"scp_port": (1, 65535), "prefetch_exams": (0, 6), "scp_max_instance_mb": (1, 1 << 16),
          "scp_quota_gb": (1, 1 << 16)}


def _setting(name: str, default: Any, value: Any) -> Any:
    """``value`` as the setting ``name`` whose default is ``default`` (None when it is of another kind). JSON
    gives lists where the settings hold tuples (frozen, hashable): the named nodes' [name, address] pairs, the
    allowed senders' words."""
    if isinstance(default, bool):
        return value if isinstance(value, bool) else None
    if isinstance(default, (int, float)):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        if isinstance(default, int) and not isinstance(value, int):
            return None
        try:
            number = float(value)  # a 400-digit integer overflows here (math.isfinite raised)
        except OverflowError:
            return None
        low, high = RANGES.get(name, (-math.inf, math.inf))
        if not (math.isfinite(number) and low <= number <= high):
            return None
        return value if isinstance(default, int) else number
    if isinstance(default, str):
        return value if isinstance(value, str) else None
    if not isinstance(value, list):
        return None
    if name == "pacs_nodes":
        pairs = [entry for entry in value if isinstance(entry, list) and len(entry) == 2
                 and all(isinstance(part, str) for part in entry)]
        return tuple(tuple(pair) for pair in pairs) if len(pairs) == len(value) else None
    return tuple(value) if all(isinstance(entry, str) for entry in value) else None


@dataclass(frozen=True)
class AppSettings:
    """Preferences.

    ``model_path``: checkpoint files or folders, several separated by ``os.pathsep`` ("" = the built-in demo
    model). The reading defaults are those of second reading with an AI: the reader commits an estimate
    before the model is shown (``blind_first``), and the maps appear on demand (``show_overlays`` False:
    H shows them), so that the AI's marks do not steer where the reader looks first (automation bias).
    """

    model_path: str = ""
    device: str = "auto"
    mode: str = "exact"
    auto_run: bool = True
    blind_first: bool = True
    show_overlays: bool = False
    reader_name: str = ""
    # the PACS: dimse://CALLED_AET@HOST:PORT or dicomweb+http(s)://HOST:PORT/PREFIX; no credentials here
    # (DICOMweb's come from MAMMO_DICOMWEB_USER / MAMMO_DICOMWEB_PASSWORD or MAMMO_DICOMWEB_TOKEN)
    pacs_node: str = ""
    ae_title: str = "MAMMOREADER"
    # the named nodes of Preferences: [name, address] pairs (the PACS dialog offers them)
    pacs_nodes: tuple = ()
    # our Storage SCP (off by default): studies pushed to the workstation land in <config>/inbox
    scp_enabled: bool = False
    # the user agreed to keep DICOMweb passwords in a plain 0600 file where no system credential store exists
    credentials_file: bool = False
    scp_port: int = 11112
    # who may send to our Storage SCP (AE_TITLE or AE_TITLE@HOST; empty: nobody is let in), where it listens
    # (this machine only unless a LAN address is named), and what it may keep
    scp_allowed: tuple = ()
    scp_bind: str = "127.0.0.1"
    scp_max_instance_mb: int = 512
    scp_quota_gb: float = 20.0
    # worklist reading: how many of the next exams are loaded and analysed in the background (each held in
    # memory as its pixels and maps, about 60-250 MB an exam: 0 turns prefetch off)
    prefetch_exams: int = 2
    # one window/level for the whole exam: a drag or a preset on one view applies to all four
    link_window: bool = True
    # the hanging-protocol steps Space walks through: a JSON file of steps (app.hanging_steps); "" = the default
    # screening sequence (priors comparison, four views, CC pair, MLO pair, magnified)
    hanging_steps: str = ""
    # the folder the last export went to, offered by the next export ("" = ~/mammo-reader-reports)
    export_folder: str = ""

    @classmethod
    def load(cls, folder: Path | None = None) -> AppSettings:
        """The settings file's preferences; a setting of the wrong kind is left at its default and said (a file
        of the wrong shape, ``[1, 2]`` or ``{"pacs_nodes": 5}``, stopped every command and the workstation with a
        traceback: a deployer's test), as is a file that cannot be read."""
        path = (folder or config_dir()) / "settings.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            logger.warning("settings file %s unreadable (%s); using defaults", path, type(error).__name__)
            return cls()
        if not isinstance(data, dict):
            logger.warning("settings file %s holds %s, not the preferences' names and values; using defaults", path,
                           type(data).__name__)
            return cls()
        values, refused = {}, []
        for field in dataclasses.fields(cls):
            if field.name in data:
                value = _setting(field.name, field.default, data[field.name])
                if value is None:
                    refused.append(field.name)
                else:
                    values[field.name] = value
        if refused:
            logger.warning("settings file %s: %s of the wrong kind or out of range; left at the default", path,
                           ", ".join(refused))
        return cls(**values)

    def save(self, folder: Path | None = None) -> None:
        """Write atomically (a full disk leaves the previous settings intact)."""
        from inference.files import write_text_atomic  # noqa: PLC0415

        write_text_atomic((folder or config_dir()) / "settings.json", json.dumps(dataclasses.asdict(self), indent=1))
