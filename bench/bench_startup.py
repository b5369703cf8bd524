"""Start-up benchmark: ``--help``, ``analyze``, and the workstation from launch to the window, to the demo
exam's first pixels and to the finished analysis (read from the milestones the app logs with -v).

    python bench/bench_startup.py [--runs 5] [--shared ../shared]

Medians over runs in fresh processes (the demo exam is written once beforehand, as after a first start);
printed with the CPU, never asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(args: list[str], env: dict) -> tuple[float, float, str]:
    started = time.time()
    done = subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=600)
    return started, time.time(), done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = parser.parse_args()
    from inference.cpu import cpu_flags_text

    home = tempfile.mkdtemp()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "MAMMO_READER_HOME": home}
    shot = str(Path(home) / "shot.png")
    timed(["--screenshot", shot], env)  # writes the demo exam once, as a first start does
    print(f"start-up, CPU: {cpu_flags_text()}; medians of {args.runs} fresh processes")
    helps = [end - start for start, end, _ in (timed(["--help"], env) for _ in range(args.runs))]
    print(f"  python main.py --help: {statistics.median(helps):.2f} s")
    exam = str(Path(args.shared) / "data/gmic-exam0")
    weights = str(Path(args.shared) / "reference/gmic/seeded_state_dict.pt")
    analyses = []
    for _ in range(args.runs):
        start, end, _ = timed(["analyze", exam, "--models", weights, "--percent-t", "0.02", "--device", "cpu"], env)
        analyses.append(end - start)
    print(f"  python main.py analyze (exam 0, seeded GMIC, CPU): {statistics.median(analyses):.2f} s")
    milestones: dict[str, list[float]] = {}
    for _ in range(args.runs):
        start, _, output = timed(["-v", "--screenshot", shot], env)
        for name, when in re.findall(r"startup: ([a-z ]+) at ([0-9.]+)", output):
            milestones.setdefault(name, []).append(float(when) - start)
    shown = statistics.median(milestones.get("window shown", [float("nan")]))
    print(f"  workstation on the demo exam (offscreen): window {shown:.2f} s after launch")
    for name in ("exam shown", "analysis finished"):
        values = milestones.get(name)
        if values:
            print(f"    {name}: {statistics.median(values):.2f} s after launch "
                  f"({statistics.median(values) - shown:.2f} s after the window)")


if __name__ == "__main__":
    main()
