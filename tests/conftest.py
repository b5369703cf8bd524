"""Shared fixtures. The reference oracles live in ../shared beside the checkout (CI has it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MAMMO_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference" / "gmic"
DATA = SHARED / "data"

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# the allocator settings the app runs with (main.py), so that the oracle tests check the numbers under them
from inference.memory import reuse_freed_memory  # noqa: E402

reuse_freed_memory()


def require_shared() -> None:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference oracles not found at {REFERENCE}")


@pytest.fixture(scope="session")
def seeded_model():
    """The reference's seeded weights loaded through the production loader (percent_t 0.02)."""
    require_shared()
    from inference.weights import load_model

    return load_model(REFERENCE / "seeded_state_dict.pt", percent_t=0.02)
