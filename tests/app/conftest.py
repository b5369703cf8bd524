"""GUI test fixtures: offscreen Qt, an isolated settings/store folder, a model stub, no dangling threads."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from tests.helpers import BrightSpotGMIC, make_stub_model, synthetic_view, write_png  # noqa: E402, F401


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMMO_READER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(autouse=True)
def no_dangling_threads(qtbot):
    yield
    from app.ui.worker import running_workers

    qtbot.waitUntil(lambda: running_workers() == 0, timeout=60_000)
    assert running_workers() == 0


def close_windows_then(store) -> None:
    """Close every window (their closeEvent flushes pending saves) before the store they write to."""
    from PySide6.QtWidgets import QApplication

    for widget in QApplication.topLevelWidgets():
        widget.close()
    store.close()


@pytest.fixture(scope="session")
def stub_model():
    return make_stub_model()
