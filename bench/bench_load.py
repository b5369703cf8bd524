"""Intake benchmark: time-to-pixels per view and per exam for the real DICOMs and the PNGs.

    python bench/bench_load.py [--runs 5] [--shared ../shared]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import median_time  # noqa: E402
from inference.intake.exam import ExamError, load_exam, load_view  # noqa: E402




def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    args = parser.parse_args()
    data = Path(args.shared) / "data"
    print("time to pixels per file (median):")
    for path in sorted((data / "dicom").glob("*.dcm")) + sorted((data / "gmic-exam0").glob("0_?-*.png")):
        if "benign" in path.name:
            continue
        try:
            load_view(path)
        except ExamError as error:
            print(f"  {path.name:<48} refused: {error.message}")
            continue
        print(f"  {path.name:<48} {median_time(lambda p=path: load_view(p), args.runs) * 1e3:8.1f} ms")
    exam_dir = data / "gmic-exam0"
    serial = median_time(lambda: load_exam(exam_dir, workers=1), args.runs)
    parallel = median_time(lambda: load_exam(exam_dir), args.runs)
    print(f"\n4-view PNG exam: {serial:.3f} s one worker, {parallel:.3f} s in parallel ({serial / parallel:.2f}x)")
    # the two CBIS-DDSM samples are two patients' views: each is an exam of its own (the intake refuses them as one)
    for dicom in (data / "dicom" / "cbis-ddsm_P00173_LEFT_CC_rle.dcm", data / "dicom" / "cbis-ddsm_P00820_RIGHT_MLO_rle.dcm"):
        seconds = median_time(lambda d=dicom: load_exam([d], workers=1), args.runs)
        print(f"1-view CBIS-DDSM RLE exam {dicom.name}: {seconds:.3f} s")


if __name__ == "__main__":
    main()
