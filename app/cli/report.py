"""``python main.py report EXAM… --out DIR``: annotated reports for one exam or a list of them."""

from __future__ import annotations

import argparse
import sys

from app.cli.batch import formats_of, print_summary
from app.cli.common import model_sources, print_device_notice


def run(args: argparse.Namespace) -> int:
    from app.archive.ledger import Progress  # noqa: PLC0415
    from app.archive.run import run_batch  # noqa: PLC0415
    from app.archive.sources import items_of_exams  # noqa: PLC0415
    from app.archive.unit import BatchOptions  # noqa: PLC0415

    formats = formats_of(args.format)
    if formats is None:
        return 2
    sources = list(args.exams)
    if args.cases:  # the batch's case list: case_id and exam (a study's truth columns are not needed)
        from app.archive.sources import read_batch_source  # noqa: PLC0415

        sources += [item.location for item in read_batch_source(args.cases)]
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
    from app.archive.ledger import earlier_exams  # noqa: PLC0415
    from app.archive.sources import ExamItem  # noqa: PLC0415

    # reports written into DIR before keep their exam IDs and their rows in the table; a new exam that shares
    # a folder name with one of them gets an ID (and file names) of its own, never theirs
    earlier = earlier_exams(args.out)  # (de-identified runs' exams are known by their pseudonyms)
    items = items_of_exams(sources, earlier if not args.deidentify else None)
    named = {item.location for item in items}
    keep = [ExamItem(exam_id, location) for location, exam_id in earlier.items() if location not in named]
    # report: every file in DIR, and an exam that lacks a view is reported with what it has
    options = BatchOptions(formats=tuple(formats), deidentify=args.deidentify, plain_hybrid=args.plain_hybrid,
                           page_size=args.page_size,
                           reader=args.reader or "", mode=args.mode or "exact", device=args.device or "auto",
                           folder_per_exam=False, allow_missing_views=True,
                           ae_title=args.ae_title or "MAMMOREADER")
    print_device_notice(args.device)
    store = _workstation_store() if args.reader else None  # the reader's committed reads, and the results
    try:
        # with a reader's read, every exam is reported again: a read committed or amended since the last run is
        # not in its marker (the results are restored from the store, not computed again)
        summary = run_batch(items, model_sources(args), args.out, options, force=args.force or store is not None,
                            progress=Progress(len(items)), percent_t=args.percent_t, keep=keep, store=store)
    finally:
        if store is not None:
            store.close()
    print_summary(summary, "reported", given=items if args.deidentify else None)
    from app.archive.send import send_results  # noqa: PLC0415

    unsent = send_results(destination, summary, args.out, deidentified=args.deidentify) if args.send else 0
    return 1 if summary.failed or summary.partial or unsent else 0


def _workstation_store():
    """The workstation's store when there is one (its reads and results); None on a machine without one."""
    from app.settings import store_path  # noqa: PLC0415
    from app.study.store import Store  # noqa: PLC0415

    path = store_path()
    return Store(path) if path.is_file() else None
