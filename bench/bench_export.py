"""Export benchmark: seconds per report format, and for all formats in one export, on the demo exam.

    python bench/bench_export.py [--runs 3] [--models resources/demo/model.pt]

Each format alone, then all five together (the content — windowed images, maps on the original grid,
figures — is computed once per export and shared by the writers). Medians after one warm-up; printed with
the CPU, never asserted. Uses only the API that every version of the project has had (analyze_exam,
ReportInput, export_report), so the same script measures an older checkout too.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.demo import ensure_demo_exam  # noqa: E402
from app.report.content import ReportInput  # noqa: E402
from app.report.export import export_report  # noqa: E402
from inference.intake.exam import load_exam  # noqa: E402
from inference.pipeline import analyze_exam  # noqa: E402
from inference.weights import load_model  # noqa: E402

FORMATS = ("pdf", "png", "json", "sr", "seg")


def cpu() -> str:
    try:
        from inference.cpu import cpu_flags_text  # noqa: PLC0415

        return cpu_flags_text()
    except ImportError:  # an older checkout
        import os  # noqa: PLC0415

        return f"{os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", default=str(ROOT / "resources/demo/model.pt"))
    args = parser.parse_args()
    exam = load_exam(ensure_demo_exam(Path(tempfile.mkdtemp()) / "demo"))
    result = analyze_exam(exam, load_model(args.models), device="cpu")
    report = ReportInput(exam, result, reader="bench")
    print(f"export of the demo exam (4 views), CPU: {cpu()}; medians of {args.runs} after one warm-up")
    for formats in [(f,) for f in FORMATS] + [FORMATS]:
        times = []
        for run in range(args.runs + 1):
            out = Path(tempfile.mkdtemp())
            started = time.perf_counter()
            export_report(report, out, formats=formats)
            if run:
                times.append(time.perf_counter() - started)
            shutil.rmtree(out)
        print(f"  {'+'.join(formats):<22} {statistics.median(times):6.2f} s")


if __name__ == "__main__":
    main()
