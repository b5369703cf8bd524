"""Sending a batch's results: each reported exam's SR, SEG and Encapsulated PDF to one node, under the one
sending rule (``app.pacs.send``: the same bytes never twice to the same node, failed sends kept for the next
run). Used by ``report --send`` and the AI node."""

from __future__ import annotations

import json
from pathlib import Path

from app.pacs.nodes import PacsError
from app.pacs.send import node_folder, send_once
from inference.files import hide_file_times


def send_results(destination, summary, out: str, retry: str = "run the command again to retry",
                 said: dict[str, str] | None = None, deidentified: bool = False) -> int:
    """Store each reported exam's SR, SEG and Encapsulated PDF to ``destination`` (those of earlier runs too, unless
    these very files were sent there already); one line per exam; returns how many exams could not be sent (their
    files stay). ``retry``: how the user gets them sent; ``said``: the failure last printed per exam, kept by a
    caller that tries again by itself (the AI node), so that a failure is printed once, not at every try;
    ``deidentified``: the send records carry the de-identified output's one file time."""
    from app.archive.sources import ExamItem  # noqa: PLC0415
    from app.archive.table import BOOKKEEPING  # noqa: PLC0415
    from app.archive.unit import marker_path  # noqa: PLC0415

    records = node_folder(Path(out) / BOOKKEEPING, destination)
    unsent = 0
    for outcome in [*summary.done, *summary.skipped]:
        item = ExamItem(outcome.exam_id, outcome.location)
        marker = json.loads(marker_path(Path(out), item).read_text(encoding="utf-8"))
        files = [Path(f) for f in marker["files"] if f.endswith(("_sr.dcm", "_seg.dcm", "_pdf.dcm"))]
        try:
            sent = send_once(destination, files, records / f"{item.key}.json")
        except (PacsError, OSError) as error:
            unsent += 1
            line = f"NOT SENT {outcome.exam_id}: {error} (the files are kept; {retry})"
            if said is None or said.get(outcome.exam_id) != line:
                print(line, flush=True)
            if said is not None:
                said[outcome.exam_id] = line
            continue
        if said is not None:
            said.pop(outcome.exam_id, None)
        if sent:
            print(f"sent {outcome.exam_id}: {len(files)} file(s) to {destination.describe()}")
            if deidentified:  # the record's true time named when the exam's results were made
                # every folder up to the bookkeeping one: creating 'sent' dated '.batch' with the run's true time
                hide_file_times([records / f"{item.key}.json", *_folders_between(records, Path(out) / BOOKKEEPING)])
    return unsent


def _folders_between(folder: Path, top: Path) -> list[Path]:
    """``folder`` and each folder above it up to ``top`` (included)."""
    folders = [folder]
    while folders[-1] != top and folders[-1].parent != folders[-1]:
        folders.append(folders[-1].parent)
    return folders
