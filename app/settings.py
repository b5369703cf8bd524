"""User preferences (no Qt): model folder, device, mode, auto-run, blind reading; stored as JSON."""

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
    """Preferences. ``model_path`` is a checkpoint file or a folder of them ("" = none configured)."""

    model_path: str = ""
    device: str = "auto"
    mode: str = "exact"
    auto_run: bool = True
    blind_first: bool = False
    reader_name: str = ""

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
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, folder: Path | None = None) -> None:
        folder = folder or config_dir()
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "settings.json.tmp"
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=1), encoding="utf-8")
        tmp.replace(folder / "settings.json")
