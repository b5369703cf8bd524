"""``python main.py analyze EXAM``: analyse one exam headless, print the probabilities, optionally write JSON."""

from __future__ import annotations

import argparse
import json
import sys

from app.cli.common import ProgressBar, exam_argument, model_sources


def _format_probabilities(values) -> str:
    return f"benign {values[0]:.4f}   malignant {values[1]:.4f}"


def run(args: argparse.Namespace) -> int:
    from inference.exam import load_exam  # noqa: PLC0415
    from inference.files import write_text_atomic  # noqa: PLC0415
    from inference.pipeline import Cancelled, analyze_exam  # noqa: PLC0415
    from inference.serialize import exam_result_to_dict  # noqa: PLC0415
    from inference.weights import load_models  # noqa: PLC0415

    exam = load_exam(exam_argument(args.exam))
    for warning in exam.warnings:
        print(f"note: {warning}", file=sys.stderr)
    for view, image in exam.views.items():
        for warning in image.warnings:
            print(f"note: {view.value}: {warning}", file=sys.stderr)
    models = [m for source in model_sources(args) for m in load_models(source, percent_t=args.percent_t)]
    bar = ProgressBar()
    try:
        result = analyze_exam(exam, models, device=args.device or "auto", progress=bar, mode=args.mode or "exact")
    except Cancelled:
        bar.close()
        print("cancelled", file=sys.stderr)
        return 130
    bar.close()
    provenance = result.provenance
    labels = ", ".join(m.label for m in provenance.models)
    print(f"models: {labels}  device: {provenance.device}  mode: {provenance.mode.value}")
    for notice in provenance.notices:
        print(f"notice: {notice}")
    print("views:")
    for view, view_result in result.views.items():
        spread = ""
        if len(view_result.per_model) > 1:
            spread = f"   (spread ±{view_result.spread[1]:.4f})"
        print(f"  {view.value:<6} {_format_probabilities(view_result.probabilities)}{spread}")
    print("breasts:")
    for side, breast in result.breasts.items():
        name = "left " if side.value == "L" else "right"
        print(f"  {name}  {_format_probabilities(breast.probabilities)}")
    print(f"exam:    {_format_probabilities(result.probabilities)}")
    if args.json:
        write_text_atomic(args.json, json.dumps(exam_result_to_dict(result), indent=1))
        print(f"wrote {args.json}")
    return 0
