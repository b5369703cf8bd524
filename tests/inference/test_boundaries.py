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


def test_a_moved_or_confirmed_view_keeps_what_was_computed_from_its_pixels():
    """A reader's move or confirmation relabels an image: its breast and auto window (worked out in the
    intake's worker) are not computed again on the GUI thread."""
    import numpy as np

    from inference.intake.exam import Exam
    from inference.intake.image import ViewImage
    from inference.intake.views import View

    pixels = np.zeros((60, 40), np.float32)
    pixels[10:50, 20:] = 100.0  # a breast facing left, at the right edge: a left breast filed as R-CC
    image = ViewImage(View.R_CC, pixels, pixels.copy(), False, __import__("pathlib").Path("x.png"))
    breast, window = image.breast(), image.auto_window()
    exam = Exam({View.R_CC: image}, laterality_conflicts=(View.R_CC,))
    for changed in (exam.confirm_orientation(View.R_CC), exam.move_view(View.R_CC, View.L_CC)):
        (moved,) = changed.views.values()
        assert moved is not image and moved.breast() is breast and moved.auto_window() is window
