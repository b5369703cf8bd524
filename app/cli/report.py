"""``python main.py report EXAM… --out DIR``: annotated reports for one exam or a list of them."""

from __future__ import annotations

import argparse
import sys

from app.cli.batch import formats_of, print_summary
from app.cli.common import model_sources


def run(args: argparse.Namespace) -> int:
    from app.archive.ledger import Progress  # noqa: PLC0415
    from app.archive.run import run_batch  # noqa: PLC0415
    from app.archive.sources import items_of_exams  # noqa: PLC0415
    from app.archive.unit import BatchOptions  # noqa: PLC0415

    formats = formats_of(args.format)
    if formats is None:
        return 2
    sources = list(args.exams)
    if args.cases:
        from app.study.cases import read_case_list  # noqa: PLC0415

        sources += [case.exam_path for case in read_case_list(args.cases)]
    if not sources:
        print("error: give at least one exam or --cases CSV", file=sys.stderr)
        return 2
    if args.send and not {"sr", "seg", "epdf"} & set(formats):
        print("error: --send stores the SR, SEG and Encapsulated PDF; add sr, seg and/or epdf to --format",
              file=sys.stderr)
        return 2
    if args.send:
        from app.pacs.nodes import DEFAULT_AE_TITLE, parse_address  # noqa: PLC0415

        destination, study = parse_address(args.send, args.ae_title or DEFAULT_AE_TITLE)
        if study is not None:
            print(f"error: --send takes a node, not a study: {args.send}", file=sys.stderr)
            return 2
    items = items_of_exams(sources)
    # report: every file in DIR, and an exam that lacks a view is reported with what it has
    options = BatchOptions(formats=tuple(formats), deidentify=args.deidentify, plain_hybrid=args.plain_hybrid,
                           page_size=args.page_size,
                           reader=args.reader or "", mode=args.mode or "exact", device=args.device or "auto",
                           folder_per_exam=False, allow_missing_views=True,
                           ae_title=args.ae_title or "MAMMOREADER")
    summary = run_batch(items, model_sources(args), args.out, options, force=args.force,
                        progress=Progress(len(items)), percent_t=args.percent_t)
    print_summary(summary, "reported")
    unsent = send_results(destination, summary, args.out) if args.send else 0
    return 1 if summary.failed or summary.partial or unsent else 0


def send_results(destination, summary, out: str) -> int:
    """Store each reported exam's SR, SEG and Encapsulated PDF to ``destination`` (those of earlier runs too, unless sent
    there already); one line per exam; returns how many exams could not be sent (their files stay)."""
    import hashlib  # noqa: PLC0415
    import json  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from app.archive.sources import ExamItem  # noqa: PLC0415
    from app.archive.table import BOOKKEEPING  # noqa: PLC0415
    from app.archive.unit import marker_path  # noqa: PLC0415
    from app.pacs.nodes import PacsError  # noqa: PLC0415
    from app.pacs.retrieve import send_files  # noqa: PLC0415
    from inference.files import write_text_atomic  # noqa: PLC0415

    sent_folder = Path(out) / BOOKKEEPING / "sent" / hashlib.sha1(destination.describe().encode()).hexdigest()[:16]
    unsent = 0
    for outcome in [*summary.done, *summary.skipped]:
        item = ExamItem(outcome.exam_id, outcome.location)
        marker = json.loads(marker_path(Path(out), item).read_text(encoding="utf-8"))
        files = [Path(f) for f in marker["files"] if f.endswith(("_sr.dcm", "_seg.dcm", "_pdf.dcm"))]
        record = sent_folder / f"{item.key}.json"
        if record.is_file() and json.loads(record.read_text(encoding="utf-8")) == marker["files"]:
            continue
        try:
            send_files(destination, files)
        except (PacsError, OSError) as error:
            unsent += 1
            print(f"NOT SENT {outcome.exam_id}: {error} (the files are kept; run the command again to retry)")
            continue
        write_text_atomic(record, json.dumps(marker["files"]))
        print(f"sent {outcome.exam_id}: {len(files)} file(s) to {destination.describe()}")
    return unsent
