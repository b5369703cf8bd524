"""The workstation's PACS dialog against Orthanc, with pytest-qt, inside a loopback-only network namespace
(the test itself is tests/pacs/namespace_gui.py; this runs it there)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.archive.conftest import loopback_only
from tests.conftest import ROOT


def test_the_pacs_dialog_searches_and_opens_a_study_by_keyboard(tmp_path):
    inner = Path(__file__).with_name("namespace_gui.py")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PACS_DIALOG_SCREENSHOT": str(tmp_path / "dialog.png")}
    done = subprocess.run(loopback_only([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                         str(inner)]), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout
    assert (tmp_path / "dialog.png").is_file() and (tmp_path / "window.png").is_file()
