"""inference/ never imports Qt or app/ (STYLE.md rule 1)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_inference_imports_no_qt_and_no_app():
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "inference").rglob("*.py")
        if p.name != "__init__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'pyqtgraph', 'app')]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env={"PATH": ""})
    assert run.returncode == 0, run.stdout + run.stderr


def test_no_source_file_mentions_qt_imports():
    forbidden = re.compile(r"^\s*(from|import)\s+(PySide6|PyQt\d|pyqtgraph|app)\b", re.MULTILINE)
    for path in (ROOT / "inference").rglob("*.py"):
        assert not forbidden.search(path.read_text()), path
