"""A study search and its answers, the same for DIMSE (C-FIND) and DICOMweb (QIDO-RS)."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

INSTANCE_FIELDS = ("SOPInstanceUID", "Modality", "ImageLaterality", "ViewPosition")
VIEWS_FOR_AT_MOST = 50  # studies whose views are asked for (one more query each)
RETURNED = ("StudyInstanceUID", "PatientID", "IssuerOfPatientID", "PatientName", "StudyDate", "AccessionNumber",
            "ModalitiesInStudy", "NumberOfStudyRelatedInstances", "StudyDescription")


@dataclass(frozen=True)
class StudyQuery:
    """What to look for; empty fields match anything. Dates are YYYYMMDD (an open range when one is empty).
    ``modality``: "MG" by default; "" for every study."""

    patient_id: str = ""
    patient_name: str = ""
    accession: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = "MG"
    study_uid: str = ""

    @property
    def date_range(self) -> str:
        if not self.date_from and not self.date_to:
            return ""
        return self.date_from if self.date_from == self.date_to else f"{self.date_from}-{self.date_to}"

    def dataset(self) -> Dataset:
        """The C-FIND identifier at study level."""
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        for keyword in RETURNED:
            setattr(query, keyword, "")
        query.PatientID, query.PatientName, query.AccessionNumber = self.patient_id, self.patient_name, self.accession
        query.StudyDate, query.ModalitiesInStudy, query.StudyInstanceUID = self.date_range, self.modality, self.study_uid
        if not all(value.isascii() for value in (self.patient_id, self.patient_name, self.accession)):
            # declared, so the node reads it: undeclared, pydicom writes "?" for what it cannot encode, and "?" is
            # DICOM's wildcard ("山田*" went out as "??*" and matched every patient of the node)
            query.SpecificCharacterSet = "ISO_IR 192"
        return query

    def qido_filters(self) -> dict[str, str]:
        pairs = {"PatientID": self.patient_id, "PatientName": self.patient_name, "AccessionNumber": self.accession,
                 "StudyDate": self.date_range, "ModalitiesInStudy": self.modality,
                 "StudyInstanceUID": self.study_uid}
        return {key: value for key, value in pairs.items() if value}

    def keep(self, records: list[StudyRecord]) -> list[StudyRecord]:
        """The answers that are what was asked (not every node matches on Modalities in Study), newest first."""
        if self.modality:
            records = [r for r in records if not r.modalities or self.modality in r.modalities]
        return sorted(records, key=lambda r: r.date, reverse=True)


@dataclass(frozen=True)
class StudyRecord:
    study_uid: str
    patient_id: str = ""
    issuer: str = ""
    patient_name: str = ""
    date: str = ""
    accession: str = ""
    modalities: tuple[str, ...] = ()
    instances: int | None = None
    description: str = ""
    views: tuple[str, ...] = ()  # the screening views present (L-CC …), where the node was asked

    def with_views(self, instances: list[Dataset]) -> StudyRecord:
        """This record with the views its MG instances show (laterality + view position)."""
        from dataclasses import replace  # noqa: PLC0415

        found = set()
        for ds in instances:
            if str(ds.get("Modality", "MG") or "MG") != "MG":
                continue
            side = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "") or "")
            position = str(ds.get("ViewPosition", "") or "")
            if side in ("L", "R") and position in ("CC", "MLO"):
                found.add(f"{side}-{position}")
        order = ("R-CC", "L-CC", "R-MLO", "L-MLO")
        return replace(self, views=tuple(v for v in order if v in found))

    @classmethod
    def from_dataset(cls, ds: Dataset) -> StudyRecord:
        modalities = ds.get("ModalitiesInStudy", "") or ()
        modalities = (modalities,) if isinstance(modalities, str) else tuple(str(m) for m in modalities)
        count = ds.get("NumberOfStudyRelatedInstances", None)
        return cls(str(ds.get("StudyInstanceUID", "")), str(ds.get("PatientID", "")),
                   str(ds.get("IssuerOfPatientID", "")), str(ds.get("PatientName", "")), str(ds.get("StudyDate", "")),
                   str(ds.get("AccessionNumber", "")), tuple(m for m in modalities if m),
                   int(count) if count not in (None, "") else None, str(ds.get("StudyDescription", "")))

    @classmethod
    def from_json(cls, data: dict) -> StudyRecord:
        """A QIDO-RS answer (DICOM JSON)."""
        return cls.from_dataset(Dataset.from_json(data))
