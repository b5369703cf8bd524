"""Memory of the workstation with GLAM's 2944 x 1920 two-class maps shown (exam 0, four views, seeded weights).

    python bench/bench_overlay_memory.py [--shared ../shared]

Prints the process's resident memory before the analysis and once every view is drawn, the bytes of the
drawn textures, and what one RGBA copy per class at full resolution would have needed. Offscreen.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    args = parser.parse_args()
    from PySide6.QtWidgets import QApplication

    from app.settings import AppSettings
    from app.ui.workstation.main_window import MainWindow
    from inference.memory import reuse_freed_memory
    from inference.weights import load_model

    reuse_freed_memory()
    app = QApplication([])
    shared = Path(args.shared)
    window = MainWindow(AppSettings(blind_first=False, show_overlays=True), None)
    window.resize(1600, 1000)
    window.show()
    window.use_models([load_model(shared / "reference/glam/seeded_state_dict.pt")])
    done = {"shown": False, "analysed": False}
    window.examShown.connect(lambda: done.__setitem__("shown", True))
    window.analysisFinished.connect(lambda: done.__setitem__("analysed", True))
    window.open_exam(shared / "data/gmic-exam0")
    while not done["shown"]:
        app.processEvents()
    before = rss_mb()
    while not done["analysed"]:
        app.processEvents()
    for _ in range(20):
        app.processEvents()
    after = rss_mb()
    textures = sum(t.nbytes for t in window.overlays.textures.values())
    fused = [layer for v in window.result.views.values() for e in v.entries.values() for layer in e.layers
             if layer.name == "fused"]
    rgba = sum(layer.values.size * 4 for layer in fused)
    held = sum(layer.values.nbytes for v in window.result.views.values() for e in v.entries.values() for layer in e.layers)
    print(f"resident memory: {before:.0f} MB with the exam shown, {after:.0f} MB with GLAM's maps drawn "
          f"(+{after - before:.0f} MB, the model and its work memory included)")
    print(f"drawn textures: {textures / 2**20:.1f} MB for {len(window.overlays.textures)} layers "
          f"(8-bit, at most 2048 px a side); one RGBA copy per class at full resolution would be "
          f"{rgba / 2**20:.0f} MB; the result's maps themselves (float32): {held / 2**20:.0f} MB")
    window.close()


if __name__ == "__main__":
    main()
