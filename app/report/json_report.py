"""The JSON report: everything in the ExamResult plus the reads (schema ``mammo-reader/report`` 1.0)."""

from __future__ import annotations

import json
from pathlib import Path

from app.report.content import DISCLAIMER, ReportInput, exam_label, header_fields, hybrid, warnings
from inference.serialize import exam_result_to_dict
from inference.views import Laterality

SCHEMA_VERSION = "1.0"


def report_dict(report: ReportInput) -> dict:
    result = report.result
    reads = {}
    for side in ("R", "L"):
        read = report.reads.get(side)
        model = float(result.breasts[Laterality(side)].probabilities[1]) if result and Laterality(side) in result.breasts else None
        reader = read.malignant if read else None
        reads[side] = {"reader_malignant": reader, "reader_benign": read.benign if read else None,
                       "birads": read.birads if read else "", "model_malignant": model, "hybrid_malignant": hybrid(reader, model)}
    data = {
        "schema": "mammo-reader/report",
        "schema_version": SCHEMA_VERSION,
        "disclaimer": DISCLAIMER,
        "deidentified": report.deidentify,
        "exam": exam_label(report),
        "header": dict(header_fields(report)),
        "reads": reads,
        "comments": report.comments,
        "warnings": warnings(report),
        "result": exam_result_to_dict(result) if result is not None else None,
    }
    if report.deidentify and data["result"] is not None:
        for model in data["result"]["provenance"]["models"]:
            model["path"] = Path(model["path"]).name  # folder names can carry identifiers
    return data


def write_json(report: ReportInput, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(report_dict(report), indent=1), encoding="utf-8")
    return path
