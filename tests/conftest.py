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


def train_tiny(tmp_path_factory, family: str, options: dict) -> Path:
    """``python main.py train --family FAMILY`` with ``options`` in a child process: the model.pt path."""
    import json

    from tests.helpers import run_isolated

    folder = tmp_path_factory.mktemp(f"tiny_{family}")
    config = folder / "config.json"
    config.write_text(json.dumps(options))
    done = run_isolated(["main.py", "train", "--family", family, "--config", str(config), "--out",
                         str(folder / "run")])
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / "run" / "model.pt"


TINY_WINDOW_TRAINING = {"n_train": 16, "n_val": 8, "epochs": 1, "windows_per_epoch": 64, "batch_size": 16,
                        "width": 4, "stages": 2, "seed": 5, "device": "cpu", "label": "tiny window classifier"}


@pytest.fixture(scope="session")
def tiny_window_model(tmp_path_factory):
    """A sliding-window classifier trained for a few steps by ``python main.py train --family sliding-window``
    in a child process (once per run): its model.pt path. Tests copy it before changing its metadata."""
    return train_tiny(tmp_path_factory, "sliding-window", TINY_WINDOW_TRAINING)


TINY_ATTENTION_TRAINING = {"n_phantoms": 16, "epochs": 2, "balance_to": 32, "batch_size": 8, "width": 8,
                           "freeze_encoder": False, "seed": 4, "device": "cpu", "label": "tiny attention CNN"}


@pytest.fixture(scope="session")
def tiny_attention_model(tmp_path_factory):
    """An attention CNN trained for two short epochs by ``python main.py train --family attention-cnn`` in a
    child process (once per run): its model.pt path."""
    return train_tiny(tmp_path_factory, "attention-cnn", TINY_ATTENTION_TRAINING)


TINY_GLIMPSE_TRAINING = {"n_phantoms": 12, "fcgn_epochs": 2, "epochs": 2, "batch_size": 4, "fcgn_width": 4,
                         "context": 32, "classifier_width": 0.125, "glimpse_size": 107, "top_k": 3, "seed": 2,
                         "device": "cpu", "label": "tiny GlimpseNet"}


@pytest.fixture(scope="session")
def tiny_glimpse_model(tmp_path_factory):
    """A GlimpseNet trained for two short epochs per stage by ``python main.py train --family glimpsenet`` in
    a child process (once per run): its model.pt path."""
    return train_tiny(tmp_path_factory, "glimpsenet", TINY_GLIMPSE_TRAINING)


@pytest.fixture
def store(tmp_path):
    """The one study store of a test (a fresh SQLite file), closed after the test."""
    from app.study.store import Store

    s = Store(tmp_path / "study.sqlite")
    yield s
    s.close()
