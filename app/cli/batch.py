"""``python main.py batch SOURCE --out DIR``: a whole archive through the models, locally or on Ray."""

from __future__ import annotations

import argparse
import sys

from app.cli.common import model_sources, print_device_notice


def formats_of(text: str) -> list[str] | None:
    """The ``--format`` list, or None (with the message printed) when it names an unknown format."""
    from app.report.export import FORMATS  # noqa: PLC0415

    formats = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        print(f"error: unknown format(s) {', '.join(bad) or '(none given)'}; choose from {', '.join(FORMATS)}",
              file=sys.stderr)
        return None
    return formats


def print_summary(summary, verb: str = "done", given=None) -> None:
    """The run's counts, then each exam done in part or failed. ``given``: the exams as given to a de-identified
    run, whose outcomes name them by pseudonym only (a folder's name may name the patient): the line also says
    which of the exams given it was, by its place in their order, so that the operator can find it."""
    origin = {}
    if given and (summary.failed or summary.partial):  # the pseudonyms made again only for a line that names one
        from app.archive.sources import deidentified_items  # noqa: PLC0415

        anonymous = deidentified_items(list(given))
        origin = {anon.exam_id: f"exam {number} of the {len(anonymous)} given"
                  for number, anon in enumerate(anonymous, start=1)}

    def where(outcome) -> str:
        return outcome.location + (f"; {origin[outcome.exam_id]}" if outcome.exam_id in origin else "")

    partial = summary.partial
    in_part = len(partial) - summary.withdrawn_before
    withdrawn = (f"{summary.withdrawn_before} done before and withdrawn (an image shared with another exam), "
                 if summary.withdrawn_before else "")
    print(f"{summary.analysed} exam(s) {verb}{f' ({in_part} only in part)' if in_part else ''}, {withdrawn}"
          f"{len(summary.skipped)} already done (skipped), "
          f"{len(summary.failed)} failed; {summary.exams_per_minute:.1f} exams/minute")
    for outcome in partial:
        print(f"IN PART {outcome.exam_id} ({where(outcome)}): {outcome.reason}")
    for outcome in summary.failed:
        print(f"FAILED {outcome.exam_id} ({where(outcome)}): {outcome.reason}")


def run(args: argparse.Namespace) -> int:
    from app.archive.ledger import Progress  # noqa: PLC0415
    from app.archive.run import run_batch  # noqa: PLC0415
    from app.archive.sources import read_batch_source  # noqa: PLC0415
    from app.archive.unit import BatchOptions  # noqa: PLC0415

    formats = formats_of(args.format)
    if formats is None:
        return 2
    items = read_batch_source(args.source)
    if args.engine == "local":  # Ray's actors choose on their own machines
        print_device_notice(args.device)
    options = BatchOptions(formats=tuple(formats), deidentify=args.deidentify, plain_hybrid=args.plain_hybrid,
                           page_size=args.page_size,
                           mode=args.mode or "exact", device=args.device or "auto",
                           allow_missing_views=args.allow_missing_views, ae_title=args.ae_title or "MAMMOREADER")
    ray_options = {"address": args.address, "workers": args.workers, "gpus_per_worker": args.gpus_per_worker}
    summary = run_batch(items, model_sources(args), args.out, options, engine=args.engine, force=args.force,
                        progress=Progress(len(items)), percent_t=args.percent_t, ray_options=ray_options)
    print_summary(summary, given=items if args.deidentify else None)
    print(f"table: {args.out}/scores.parquet; failures: {args.out}/failures.csv")
    return 1 if summary.failed or summary.partial else 0
