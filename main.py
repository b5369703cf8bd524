"""Mammo Reader: the one entry point.

``python main.py`` opens the workstation; subcommands run headless work:
``python main.py analyze EXAM --models PATH [--device auto|cpu|cuda] [--mode exact|fast] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

logger = logging.getLogger("mammo_reader")


class _ProgressBar:
    """A one-line progress bar on stderr."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.start = time.perf_counter()

    def __call__(self, stage: str, done: int, total: int) -> None:
        width = 24
        filled = int(width * done / total) if total else width
        elapsed = time.perf_counter() - self.start
        line = f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {stage[:48]:<48} {elapsed:6.1f}s"
        self.stream.write(line)
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _format_probabilities(values) -> str:
    return f"benign {values[0]:.4f}   malignant {values[1]:.4f}"


def run_analyze(args: argparse.Namespace) -> int:
    from inference.exam import load_exam
    from inference.pipeline import Cancelled, analyze_exam
    from inference.serialize import exam_result_to_dict
    from inference.weights import load_models

    exam = load_exam(args.exam)
    for warning in exam.warnings:
        print(f"note: {warning}", file=sys.stderr)
    for view, image in exam.views.items():
        for warning in image.warnings:
            print(f"note: {view.value}: {warning}", file=sys.stderr)
    models = load_models(args.models, percent_t=args.percent_t)
    bar = _ProgressBar()
    try:
        result = analyze_exam(exam, models, device=args.device, progress=bar, mode=args.mode)
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
        Path(args.json).write_text(json.dumps(exam_result_to_dict(result), indent=1), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mammo-reader",
        description="Mammo Reader. Without a subcommand: open the workstation (on EXAM when given).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command")
    analyze = sub.add_parser("analyze", help="analyse one exam headless and print the probabilities")
    analyze.add_argument("exam", help="exam folder (DICOM or PNGs named like 0_L-CC.png), file list manifest")
    analyze.add_argument("--models", required=True, help="a GMIC checkpoint file or a folder of checkpoints")
    analyze.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    analyze.add_argument("--mode", default="exact", choices=["exact", "fast"])
    analyze.add_argument("--percent-t", type=float, default=None, help="pooling threshold for unknown checkpoints")
    analyze.add_argument("--json", help="write the full result as JSON to this file")
    analyze.set_defaults(handler=run_analyze)
    return parser


def build_gui_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mammo-reader",
        description="Open the Mammo Reader workstation (on EXAM when given). Subcommands: "
        + ", ".join(SUBCOMMANDS) + " (see 'main.py analyze -h').",
    )
    parser.add_argument("exam", nargs="?", help="exam folder, file list manifest, or image file")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--models", help="checkpoint file or folder (overrides Preferences)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="overrides Preferences")
    parser.add_argument("--screenshot", help="render the window to this PNG after the analysis, then exit")
    return parser


SUBCOMMANDS = ("analyze",)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    positionals = [a for a in argv if not a.startswith("-")]
    if positionals and positionals[0] in SUBCOMMANDS:
        parser = build_parser()
    else:
        parser = build_gui_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    from inference.errors import MammoError

    if getattr(args, "command", None) is None:
        from app.gui import run_gui

        overrides = {"device": args.device} if args.device else None
        try:
            return run_gui(args.exam, models=args.models, screenshot=args.screenshot, settings_overrides=overrides)
        except MammoError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2

    try:
        return args.handler(args)
    except MammoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
