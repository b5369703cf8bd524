"""The JSON report: the whole ExamResult (schema 2.1, maps and instance masks in a sibling .npz) plus the reads and marks
(schema ``mammo-reader/report`` 2.1)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from app.reading import breast_models, hybrid_basis
from app.report.content import COMMENTS_LEFT_OUT, DISCLAIMER, ReportContent, amendment_data
from app.report.deidentify import deidentified_uid
from inference.files import atomic_path
from inference.results.serialize import maps_path, maps_to_bytes, result_to_data

HYBRID_NOT_INDEPENDENT = ("the first read was made with the AI shown (blind reading off): the hybrid is not of two "
                          "independent opinions")
SCHEMA_VERSION = "2.5"  # 2.1: each mark says whether it was made after AI (after_ai); 2.2: each read whether it
# was made with the AI shown (read_with_ai_shown: blind reading off; null where not known); 2.3: the header's time
# is "Reported on" where no reader's read is in the report ("Read on" where one is), and each view of the result
# names its source image; 2.4: "Read on" is the first read's commit (a draft: "not committed (a draft)"), "Reported
# on" beside it always; 2.5: "Amended on", the latest change after AI, where a read was amended


def report_dict(content: ReportContent) -> tuple[dict, dict]:
    """(the report as JSON-ready data, the result's maps)."""
    report, result = content.report, content.result
    reads = {}
    for side in ("R", "L"):
        read = report.reads.get(side)
        reader = read.malignant if read else None
        models = {}
        for part in breast_models(result, side, reader, report.plain_hybrid, every_entry=True):
            models[part.entry.id] = {"model_malignant": part.model, "hybrid_malignant": part.hybrid,
                                     "hybrid_basis": hybrid_basis(part.entry, report.plain_hybrid),
                                     "views_used": [v.projection.value for v in part.views]}
        reads[side] = {"reader_malignant": reader, "reader_benign": read.benign if read else None,
                       "committed": read.committed if read else None,  # False: a draft exported before the commit
                       "read_with_ai_shown": read.ai_shown if read else None,
                       "hybrid_note": (HYBRID_NOT_INDEPENDENT if read is not None and read.ai_shown
                                       and read.malignant is not None else ""),
                       "birads": read.birads if read else "", "density": read.density if read else "",
                       "recommendation": read.recommendation if read else "", "models": models,
                       # the reader_* values are the first read (before AI unless read_with_ai_shown);
                       # de-identified, its time moves as "Read on"
                       "amended_after_ai": amendment_data(read, content.report_time - report.read_at)}
    data, maps = result_to_data(result) if result is not None else (None, {})
    if report.deidentify and data is not None:
        for section in [data["provenance"]["models"]] + [entry["members"] for entry in data["models"]]:
            for model in section:
                model["path"] = Path(model["path"]).name  # folder names can carry identifiers
        data["provenance"]["notices"] = [content.scrub(note) for note in data["provenance"]["notices"]]
        for view in data["views"].values():  # notes that name the view's file (a laterality conflict, …)
            view["source"] = {"file": "", "sop_instance_uid": deidentified_uid(view["source"]["sop_instance_uid"])}
            view["warnings"] = [content.scrub(note) for note in view["warnings"]]
            view["uncounted_reason"] = content.scrub(view["uncounted_reason"])
            view["no_result"] = {entry: content.scrub(reason) for entry, reason in view["no_result"].items()}
    document = {
        "schema": "mammo-reader/report",
        "schema_version": SCHEMA_VERSION,
        "disclaimer": DISCLAIMER,
        "deidentified": report.deidentify,
        "exam": content.label,
        "header": dict(content.header_fields()),
        "reads": reads,
        "marks": [dataclasses.asdict(m) for m in report.marks],
        "comments": content.comments or (COMMENTS_LEFT_OUT if content.comments_left_out else ""),
        "warnings": content.notes(),
        "result": data,
        "model_withheld": report.model_withheld,
    }
    return document, maps


def write_json(content: ReportContent, path: str | Path) -> list[Path]:
    path = Path(path)
    document, maps = report_dict(content)
    written = []
    if document["result"] is not None:
        binary = maps_path(path)
        document["result"]["maps_file"] = binary.name
        with atomic_path(binary) as temporary:
            temporary.write_bytes(maps_to_bytes(maps))
        written.append(binary)
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(document, indent=1, allow_nan=False), encoding="utf-8")
    return [path, *written]
