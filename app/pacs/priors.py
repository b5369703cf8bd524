"""The patient's earlier MG studies for an open exam: same Patient ID and issuer, an earlier study date,
most recent first; from the PACS (C-FIND / QIDO-RS) and from local folders (the exam's sibling folders,
the retrieve cache, the inbox). A de-identified exam has no priors: nothing ties it to a patient."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread

from app.pacs.nodes import RemoteNode, StudyAddress
from app.pacs.query import StudyQuery
from inference.intake.exam import Exam


@dataclass(frozen=True)
class PriorStudy:
    """An earlier study; ``location`` is a folder, or a :class:`StudyAddress` to retrieve."""

    date: str
    study_uid: str
    accession: str
    where: str  # "local" or the node
    location: Path | StudyAddress


@dataclass(frozen=True)
class PatientKey:
    patient_id: str
    issuer: str
    study_uid: str
    date: str

    def matches(self, patient_id: str, issuer: str) -> bool:
        """Same patient: the same ID, and the same issuer where both say one."""
        return patient_id == self.patient_id and (not issuer or not self.issuer or issuer == self.issuer)

    def earlier(self, date: str, study_uid: str) -> bool:
        return bool(date) and date < self.date and study_uid != self.study_uid


def patient_key(exam: Exam) -> PatientKey | None:
    first = next(iter(exam.views.values()), None)
    if first is None or not exam.patient.patient_id or not exam.study_date:
        return None
    return PatientKey(exam.patient.patient_id, str(first.study.get("issuer", "")),
                      str(first.study.get("study_uid", "")), exam.study_date)


def _day_before(date: str) -> str:
    day = datetime.date(int(date[:4]), int(date[4:6]), int(date[6:8])) - datetime.timedelta(days=1)
    return day.strftime("%Y%m%d")


def local_priors(key: PatientKey, roots: Sequence[Path], current: Path | None = None) -> list[PriorStudy]:
    """Study folders one level below ``roots`` (one header read per folder)."""
    found = []
    for root in roots:
        if not Path(root).is_dir():
            continue
        for folder in sorted(p for p in Path(root).iterdir() if p.is_dir() and p != current):
            header = next((h for h in (_header(f) for f in sorted(folder.iterdir())[:20] if f.is_file()) if h), None)
            if header is None or str(header.get("Modality", "")) != "MG":
                continue
            if key.matches(str(header.get("PatientID", "")), str(header.get("IssuerOfPatientID", ""))) and \
                    key.earlier(str(header.get("StudyDate", "")), str(header.get("StudyInstanceUID", ""))):
                found.append(PriorStudy(str(header.StudyDate), str(header.get("StudyInstanceUID", "")),
                                        str(header.get("AccessionNumber", "")), "local", folder))
    return found


def _header(path: Path):
    try:
        return dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - not a DICOM file, or a damaged one: not a prior
        return None


def pacs_priors(key: PatientKey, node: RemoteNode) -> list[PriorStudy]:
    from app.pacs.retrieve import find_studies  # noqa: PLC0415

    query = StudyQuery(patient_id=key.patient_id, date_to=_day_before(key.date), modality="MG")
    return [PriorStudy(r.date, r.study_uid, r.accession, node.describe(), StudyAddress(node, r.study_uid))
            for r in find_studies(node, query) if key.matches(r.patient_id, r.issuer) and key.earlier(r.date, r.study_uid)]


def find_priors(exam: Exam, *, node: RemoteNode | None = None, roots: Sequence[Path] = ()) -> list[PriorStudy]:
    """Local first (no retrieve needed), then the PACS; one entry per study, most recent first."""
    key = patient_key(exam)
    if key is None:
        return []
    current = exam.source if exam.source is not None and exam.source.is_dir() else None
    studies: dict[str, PriorStudy] = {}
    for prior in local_priors(key, roots, current) + (pacs_priors(key, node) if node is not None else []):
        studies.setdefault(prior.study_uid or str(prior.location), prior)
    return sorted(studies.values(), key=lambda p: p.date, reverse=True)
