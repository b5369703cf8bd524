"""What a report says, shared by every format: header fields, scores, reads, warnings (no rendering)."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass, field

from app import __version__
from app.study.store import BreastRead
from inference.exam import Exam
from inference.pipeline import ExamResult

DISCLAIMER = (
    "Decision support only — not a diagnosis. The model's probabilities and maps are an aid to the reading "
    "radiologist, who makes every clinical decision."
)
DEMO_WARNING = "DEMO MODEL — trained on synthetic phantoms only — NOT FOR CLINICAL USE."


@dataclass(frozen=True)
class ReportInput:
    """Everything a report is made from."""

    exam: Exam
    result: ExamResult | None
    reads: dict[str, BreastRead] = field(default_factory=dict)
    reader: str = ""
    comments: str = ""
    deidentify: bool = False
    read_at: datetime.datetime = field(default_factory=lambda: datetime.datetime.now().replace(microsecond=0))


def exam_label(report: ReportInput) -> str:
    """The exam's id, or in de-identified reports a hash of its images' UIDs (no identifier)."""
    if not report.deidentify and report.exam.exam_id:
        return report.exam.exam_id
    parts = sorted(img.sop_instance_uid or img.source.name for img in report.exam.views.values())
    return "anon-" + hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


def header_fields(report: ReportInput) -> list[tuple[str, str]]:
    exam = report.exam
    fields = [("Exam", exam_label(report))]
    if exam.study_date:
        fields.append(("Study date", exam.study_date[:4] if report.deidentify else exam.study_date))
    if not report.deidentify:
        if exam.patient.name:
            fields.append(("Patient", exam.patient.name.replace("^", " ")))
        if exam.patient.patient_id:
            fields.append(("Patient ID", exam.patient.patient_id))
    fields.append(("Reader", report.reader or "—"))
    fields.append(("Read on", report.read_at.strftime("%Y-%m-%d %H:%M")))
    fields.append(("Software", f"Mammo Reader {__version__}"))
    if report.result is not None:
        p = report.result.provenance
        names = ", ".join(m.published_name or f"{m.label} [{(m.sha256 or m.git_blob_sha1)[:12]}]" for m in p.models)
        fields.append(("Model", names))
        fields.append(("Ensemble", f"{len(p.models)} model(s), {p.device}, {p.mode.value} mode, torch {p.torch_version}"))
    else:
        fields.append(("Model", "no analysis"))
    return fields


def is_demo(report: ReportInput) -> bool:
    return report.result is not None and any(m.demo for m in report.result.provenance.models)


def warnings(report: ReportInput) -> list[str]:
    out = list(report.exam.warnings)
    for view, image in report.exam.views.items():
        out += [f"{view.value}: {w}" for w in image.warnings]
    if report.result is not None:
        out += list(report.result.provenance.notices)
    return out


def hybrid(reader: float | None, model: float | None) -> float | None:
    return None if reader is None or model is None else (reader + model) / 2
