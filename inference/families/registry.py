"""The registry of model families.

Adding a family is adding a folder ``inference/families/<name>/`` whose ``family`` module registers a class that
follows :class:`inference.families.protocol.ModelFamily`, and its name and folder in ``BUILT_IN``; tests register families of their
own with :func:`register` and drop them with :func:`unregister`. Facts about published weights (hashes,
thresholds, licences) are data in ``published.json``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.families.protocol import ModelFamily

if TYPE_CHECKING:
    import torch

# family name -> its folder in inference.families, in the order they are asked to recognise a file
BUILT_IN = {"gmic": "gmic", "glam": "glam", "sliding-window": "sliding_window", "attention-cnn": "attention_cnn",
            "glimpsenet": "glimpsenet", "maskrcnn": "maskrcnn"}
# how messages and labels write each family ("MASKRCNN" was its name in capitals)
SPOKEN = {"gmic": "GMIC", "glam": "GLAM", "sliding-window": "sliding-window", "attention-cnn": "attention CNN",
          "glimpsenet": "GlimpseNet", "maskrcnn": "Mask R-CNN"}
_FAMILIES: dict[str, ModelFamily] = {}
_loaded_built_in = False


def spoken_name(family: str) -> str:
    """A family's name as text says it (a family a test registers: its own name)."""
    return SPOKEN.get(family, family)


def register(family: ModelFamily) -> ModelFamily:
    """Make ``family`` known under ``family.name`` (replacing one of that name)."""
    _FAMILIES[family.name] = family
    return family


def unregister(name: str) -> None:
    _FAMILIES.pop(name, None)


def families() -> dict[str, ModelFamily]:
    """Every known family, built-in ones first."""
    global _loaded_built_in
    if not _loaded_built_in:
        for module in BUILT_IN.values():
            importlib.import_module(f"inference.families.{module}.family")
        _loaded_built_in = True
    return dict(_FAMILIES)


def get(name: str) -> ModelFamily:
    known = families()
    if name not in known:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(known)}")
    return known[name]


def family_for(state: Mapping[str, torch.Tensor], declared: str | None = None) -> ModelFamily | None:
    """The family a checkpoint declares in its metadata, else the first whose layout it has."""
    if declared:
        return get(declared)
    for family in families().values():
        if family.recognises(state):
            return family
    return None


@lru_cache(maxsize=1)
def _published() -> tuple[dict[str, Any], ...]:
    path = Path(__file__).with_name("published.json")
    return tuple(json.loads(path.read_text(encoding="utf-8"))["checkpoints"])


def published_checkpoint(git_blob_sha1: str) -> dict[str, Any] | None:
    """The published checkpoint with this content hash (name, family, settings, licence), or None."""
    return next((dict(entry) for entry in _published() if entry["git_blob_sha1"] == git_blob_sha1), None)


def published_checkpoints(family: str | None = None) -> list[dict[str, Any]]:
    return [dict(entry) for entry in _published() if family is None or entry["family"] == family]
