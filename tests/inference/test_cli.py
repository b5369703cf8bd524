"""python main.py analyze: output, JSON, and the messages for bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import DATA, REFERENCE, require_shared

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_analyze_prints_views_breasts_and_writes_json(tmp_path):
    require_shared()
    out = tmp_path / "result.json"
    done = run("analyze", str(DATA / "gmic-exam0"), "--models", str(REFERENCE / "seeded_state_dict.pt"),
               "--percent-t", "0.02", "--device", "cpu", "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "L-CC   benign 0.0998   malignant 0.0202" in done.stdout
    assert "left " in done.stdout and "right" in done.stdout
    assert "4/4" in done.stderr  # the progress bar
    data = json.loads(out.read_text())
    assert data["schema_version"] == "1.0"
    assert abs(data["views"]["L-CC"]["probabilities"]["malignant"] - 0.020225868) < 1e-4


def test_bad_checkpoint_message(tmp_path):
    require_shared()
    bad = tmp_path / "bad.p"
    bad.write_bytes(b"\x00garbage")
    done = run("analyze", str(DATA / "gmic-exam0"), "--models", str(bad))
    assert done.returncode == 2
    assert "bad.p" in done.stderr and "error:" in done.stderr and "Traceback" not in done.stderr


def test_unreadable_file_and_missing_views(tmp_path):
    require_shared()
    exam = tmp_path / "exam"
    exam.mkdir()
    shutil.copy(DATA / "gmic-exam0" / "0_L-CC.png", exam / "0_L-CC.png")
    (exam / "0_R-CC.png").write_bytes(b"\x89PNG broken")
    done = run("analyze", str(exam), "--models", str(REFERENCE / "seeded_state_dict.pt"), "--percent-t", "0.02")
    assert done.returncode == 2 and "0_R-CC.png" in done.stderr and "Traceback" not in done.stderr
    (exam / "0_R-CC.png").unlink()
    done = run("analyze", str(exam), "--models", str(REFERENCE / "seeded_state_dict.pt"), "--percent-t", "0.02")
    assert done.returncode == 0
    assert "missing views: R-CC, L-MLO, R-MLO" in done.stderr
