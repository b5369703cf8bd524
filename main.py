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


def _store(args: argparse.Namespace):
    from app.settings import config_dir
    from app.study.store import Store

    return Store(Path(args.db) if args.db else config_dir() / "mammo_reader.sqlite")


def _study_id(store, name: str) -> int:
    from app.study.study import StudyError

    rows = store.read("SELECT study_id FROM studies WHERE name=?", (name,))
    if not rows:
        raise StudyError(f"no study named {name!r}")
    return rows[0][0]


def run_study(args: argparse.Namespace) -> int:
    from app.study.study import (
        StudyError,
        compute_model_scores,
        create_study,
        export_study,
        import_study,
        read_case_list,
    )

    store = _store(args)
    try:
        if args.study_command == "create":
            readers = [r.strip() for r in args.readers.split(",") if r.strip()]
            study_id = create_study(store, args.name, args.design, readers, read_case_list(args.cases),
                                    seed=args.seed, washout_days=args.washout_days)
            print(f"created study {args.name!r} (id {study_id}) with {len(readers)} readers")
        elif args.study_command == "scores":
            from inference.weights import load_models

            bar = _ProgressBar()
            count = compute_model_scores(store, _study_id(store, args.name), load_models(args.models),
                                         device=args.device, progress=bar)
            bar.close()
            print(f"model scores computed for {count} case(s)")
        elif args.study_command == "results":
            from app.study.results import study_results, write_results

            results = study_results(store, _study_id(store, args.name), args.level, args.method)
            print(f"AUCs ({args.level} level, DeLong 95 % CI):")
            for row in results.aucs:
                print(f"  {row.reader:<10} {row.modality:<22} {row.auc:.3f}  ({row.ci_low:.3f} – {row.ci_high:.3f})")
            for name, r in results.comparisons.items():
                print(f"ORH {name} ({r.method}): difference {r.difference:+.4f}  F {r.F:.3f}  ddf {r.ddf:.2f}  "
                      f"p {r.p:.4f}  95 % CI {r.ci[0]:+.4f} – {r.ci[1]:+.4f}")
            for key, value in results.telemetry_summary().items():
                print(f"telemetry: {key}: {value}")
            if args.out:
                for path in write_results(results, args.out):
                    print(f"wrote {path}")
            if args.window or args.screenshot:
                from app.gui import run_study_results

                return run_study_results(results, args.screenshot)
        elif args.study_command == "status":
            from app.study.study import reader_progress

            for row in reader_progress(store, _study_id(store, args.name)):
                session = f" session {row['session']} of {row['sessions']}:" if row["sessions"] > 1 else ""
                state = ""
                if row["done"] < row["total"] and not row["open"]:
                    opens = row["opens_at"]
                    state = ("  (opens after session 1)" if opens is None else
                             f"  (opens {time.strftime('%Y-%m-%d %H:%M', time.localtime(opens))}, after the washout)")
                print(f"{row['reader']}:{session} {row['done']} of {row['total']} read{state}")
        elif args.study_command == "export":
            Path(args.out).write_text(json.dumps(export_study(store, _study_id(store, args.name)), indent=1))
            print(f"wrote {args.out}")
        elif args.study_command == "import":
            data = json.loads(Path(args.file).read_text())
            study_id = import_study(store, data, name=args.name)
            print(f"imported as study id {study_id}")
        elif args.study_command == "read":
            from app.gui import run_study_reading

            return run_study_reading(store, _study_id(store, args.name), args.reader)
    except StudyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        store.close()
    return 0


def run_train(args: argparse.Namespace) -> int:
    from inference.train import TrainConfig, train

    overrides = {"out": args.out, "device": args.device, "epochs": args.epochs, "seed": args.seed, "data": args.data}
    if args.config:
        config = TrainConfig.from_json(args.config, **overrides)
    else:
        config = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    train(config)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from app.report.batch import run_batch
    from app.report.export import FORMATS
    from inference.weights import load_models

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        print(f"error: unknown format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    sources = list(args.exams)
    if args.cases:
        from app.study.study import read_case_list

        sources += [case.exam_path for case in read_case_list(args.cases)]
    if not sources:
        print("error: give at least one exam or --cases CSV", file=sys.stderr)
        return 2
    model_path = args.models
    if model_path is None:
        from app.demo import demo_model_path

        model_path = demo_model_path()
        if model_path is None:
            print("error: no model: give --models", file=sys.stderr)
            return 2
    bar = _ProgressBar()
    summary = run_batch(sources, load_models(model_path, percent_t=args.percent_t), args.out, formats=formats,
                        deidentify=args.deidentify, device=args.device, page_size=args.page_size,
                        reader=args.reader or "", progress=bar)
    bar.close()
    print(f"{len(summary.done)} exam(s) reported, {len(summary.skipped)} already done (skipped), "
          f"{len(summary.failed)} failed; {summary.exams_per_minute:.1f} exams/minute")
    for source, reason in summary.failed:
        print(f"FAILED {source}: {reason}")
    return 1 if summary.failed else 0


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

    study = sub.add_parser("study", help="reader studies: create, scores, read, status, results, export, import")
    study.add_argument("--db", help="study database (default: the app's local store)")
    study_sub = study.add_subparsers(dest="study_command", required=True)
    create = study_sub.add_parser("create", help="create a study from a case list CSV")
    create.add_argument("name")
    create.add_argument("--cases", required=True, help="CSV: case_id, exam, truth_left, truth_right[, notes, training]")
    create.add_argument("--readers", required=True, help="comma-separated reader names")
    create.add_argument("--design", default="sequential", choices=["unaided", "sequential", "concurrent", "crossover"],
                        help="crossover: two sessions, each case read once unaided and once with the AI")
    create.add_argument("--seed", type=int, default=0)
    create.add_argument("--washout-days", type=int, default=0,
                        help="crossover: days between a reader's last session-1 reading and session 2")
    scores = study_sub.add_parser("scores", help="compute the model's scores for every case (resumable)")
    scores.add_argument("name")
    scores.add_argument("--models", required=True)
    scores.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    read = study_sub.add_parser("read", help="open the reading screen for a reader")
    read.add_argument("name")
    read.add_argument("--reader", required=True)
    results = study_sub.add_parser("results", help="AUCs, ORH comparisons, telemetry; optional CSV export")
    results.add_argument("name")
    results.add_argument("--level", default="breast", choices=["breast", "exam"])
    results.add_argument("--method", default="jackknife", choices=["jackknife", "delong"])
    results.add_argument("--out", help="folder for CSV, iMRMC and JSON files")
    results.add_argument("--window", action="store_true", help="open the results screen (ROC curves, tables)")
    results.add_argument("--screenshot", metavar="PNG", help="render the results screen to a PNG and exit")
    status = study_sub.add_parser("status", help="each reader's progress (and when a crossover's session 2 opens)")
    status.add_argument("name")
    export = study_sub.add_parser("export", help="the whole study as JSON")
    export.add_argument("name")
    export.add_argument("out")
    import_ = study_sub.add_parser("import", help="import a study exported as JSON")
    import_.add_argument("file")
    import_.add_argument("--name", help="a new name (default: the exported one)")
    study.set_defaults(handler=run_study)

    report = sub.add_parser("report", help="annotated reports (PDF, PNG, JSON, DICOM SR and SEG) for one or many exams")
    report.add_argument("exams", nargs="*", help="exam folders or files")
    report.add_argument("--cases", help="a case list CSV (case_id, exam, ...) for a batch")
    report.add_argument("--out", required=True, help="output folder")
    report.add_argument("--format", default="pdf,png,json", help="comma-separated: pdf, png, json, sr, seg (saliency maps)")
    report.add_argument("--deidentify", action="store_true", help="no patient identifiers in any output")
    report.add_argument("--models", help="checkpoint or folder (default: the demo model)")
    report.add_argument("--percent-t", type=float, default=None)
    report.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    report.add_argument("--page-size", default="A4", choices=["A4", "Letter"])
    report.add_argument("--reader", help="reader name for the header")
    report.set_defaults(handler=run_report)

    train = sub.add_parser("train", help="train GMIC (phantoms or a CSV of images); torchrun for several GPUs")
    train.add_argument("--config", help="JSON with TrainConfig fields (see inference/train.py)")
    train.add_argument("--out", help="output folder (checkpoints, model.pt, model.pt.json)")
    train.add_argument("--data", help="'phantom' or a CSV of path, view, benign, malignant")
    train.add_argument("--epochs", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--device", choices=["auto", "cpu", "cuda"])
    train.set_defaults(handler=run_train)
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


SUBCOMMANDS = ("analyze", "study", "train", "report")


def main(argv: list[str] | None = None) -> int:
    from inference.memory import reuse_freed_memory

    reuse_freed_memory()  # before any worker thread: image-sized tensors stop being page-faulted in anew
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
