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


REQUIRE_SHARED = os.environ.get("MAMMO_REQUIRE_SHARED", "") not in ("", "0")
REQUIRED_FOLDERS = (REFERENCE, SHARED / "reference" / "glam", SHARED / "reference" / "mrmc", DATA)


def require_shared(path: Path = REFERENCE) -> None:
    """Skip a test whose shared data is absent, or fail it when ``MAMMO_REQUIRE_SHARED=1`` (as in CI), so that
    a missing ``../shared`` can never turn the fidelity layer into silent skips."""
    if path.exists():
        return
    if REQUIRE_SHARED:
        pytest.fail(f"shared test data not found at {path} (MAMMO_REQUIRE_SHARED=1 requires it)")
    pytest.skip(f"shared test data not found at {path}")


def pytest_sessionstart(session) -> None:
    missing = [str(p) for p in REQUIRED_FOLDERS if not p.is_dir()]
    if REQUIRE_SHARED and missing:
        pytest.exit(f"MAMMO_REQUIRE_SHARED=1 but the shared oracles are missing: {', '.join(missing)}", returncode=3)


@pytest.fixture(scope="session")
def seeded_model():
    """The reference's seeded weights loaded through the production loader (percent_t 0.02)."""
    require_shared()
    from inference.weights import load_model

    return load_model(REFERENCE / "seeded_state_dict.pt", percent_t=0.02)
