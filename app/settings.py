"""User preferences (no Qt): model folder, device, mode, auto-run, blind reading, the PACS; stored as JSON."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


def config_dir() -> Path:
    """Per-user folder for settings and the local store (``MAMMO_READER_HOME`` overrides it)."""
    override = os.environ.get("MAMMO_READER_HOME")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CONFIG_HOME") or (Path.home() / ".config")
    return Path(base) / "mammo-reader"


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
    scp_port: int = 11112

    @classmethod
    def load(cls, folder: Path | None = None) -> AppSettings:
        path = (folder or config_dir()) / "settings.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, json.JSONDecodeError) as error:
            logger.warning("settings file unreadable (%s); using defaults", type(error).__name__)
            return cls()
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "pacs_nodes" in values:  # JSON gives lists; the settings are frozen (hashable) values
            values["pacs_nodes"] = tuple(tuple(pair) for pair in values["pacs_nodes"] if len(pair) == 2)
        return cls(**values)

    def save(self, folder: Path | None = None) -> None:
        """Write atomically (a full disk leaves the previous settings intact)."""
        from inference.files import write_text_atomic  # noqa: PLC0415

        write_text_atomic((folder or config_dir()) / "settings.json", json.dumps(dataclasses.asdict(self), indent=1))
