"""``python main.py report EXAM… --out DIR``: annotated reports for one exam or a batch."""

from __future__ import annotations

import argparse
import sys

from app.cli.common import ProgressBar, model_sources


def run(args: argparse.Namespace) -> int:
    from app.report.batch import run_batch  # noqa: PLC0415
    from app.report.export import FORMATS  # noqa: PLC0415
    from inference.weights import load_model_groups  # noqa: PLC0415

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        print(f"error: unknown format(s) {', '.join(bad) or '(none given)'}; choose from {', '.join(FORMATS)}",
              file=sys.stderr)
        return 2
    sources = list(args.exams)
    if args.cases:
        from app.study.cases import read_case_list  # noqa: PLC0415

        sources += [case.exam_path for case in read_case_list(args.cases)]
    if not sources:
        print("error: give at least one exam or --cases CSV", file=sys.stderr)
        return 2
    models = load_model_groups(model_sources(args), percent_t=args.percent_t)
    bar = ProgressBar()
    summary = run_batch(sources, models, args.out, formats=formats, deidentify=args.deidentify,
                        device=args.device or "auto", page_size=args.page_size, reader=args.reader or "",
                        progress=bar, force=args.force, mode=args.mode or "exact")
    bar.close()
    print(f"{len(summary.done)} exam(s) reported, {len(summary.skipped)} already done (skipped), "
          f"{len(summary.failed)} failed; {summary.exams_per_minute:.1f} exams/minute")
    for source, reason in summary.failed:
        print(f"FAILED {source}: {reason}")
    return 1 if summary.failed else 0
