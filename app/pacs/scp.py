"""Our own Storage SCP: studies pushed to the workstation (or sent by C-MOVE) land in an inbox.

Only MG images are kept (other instances are acknowledged and ignored, as a retrieve ignores them); each
file is written atomically under a hashed name in a folder per study, so nothing in the inbox's names
identifies a patient. The server runs on pynetdicom's own threads; ``stop`` shuts it down.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset

from app.pacs.dimse import DECODABLE_SYNTAXES, RETRIEVED_CLASSES, VERIFICATION
from inference.files import atomic_path

logging.getLogger("pynetdicom").setLevel(logging.WARNING)


def study_folder(inbox: Path, study_uid: str) -> Path:
    return inbox / hashlib.sha1(study_uid.encode()).hexdigest()[:20]


def keep_instance(folder: Path, dataset: Dataset) -> Path:
    """One instance into ``folder`` (atomically, under a hash of its SOP Instance UID)."""
    name = hashlib.sha1(str(dataset.SOPInstanceUID).encode()).hexdigest()[:20] + ".dcm"
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / name) as temporary:
        dataset.save_as(temporary, enforce_file_format=True)
    return folder / name


class StorageSCP:
    """A C-STORE (and C-ECHO) server. ``on_instance(dataset)`` receives each dataset; by default MG images
    are kept in ``inbox`` (one folder per study)."""

    def __init__(self, ae_title: str, port: int, inbox: Path | None = None, *, host: str = "",
                 on_instance: Callable[[Dataset], None] | None = None, timeout: float = 30.0) -> None:
        from pynetdicom import AE, evt  # noqa: PLC0415

        self.inbox = Path(inbox) if inbox is not None else None
        self.on_instance = on_instance or self._keep
        self.ignored = 0
        ae = AE(ae_title=ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
        ae.add_supported_context(VERIFICATION)
        for sop in RETRIEVED_CLASSES:
            for syntax in DECODABLE_SYNTAXES:
                ae.add_supported_context(sop, syntax)
        self.ae = ae
        self.server = ae.start_server((host, port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._stored)])

    def _keep(self, dataset: Dataset) -> None:
        if str(dataset.get("Modality", "")) != "MG":
            self.ignored += 1
            return
        keep_instance(study_folder(self.inbox, str(dataset.StudyInstanceUID)), dataset)

    def _stored(self, event) -> int:
        try:
            dataset = event.dataset
            dataset.file_meta = event.file_meta
            self.on_instance(dataset)
        except Exception:  # noqa: BLE001 - the sender is told; nothing half-written stays (atomic writes)
            logging.getLogger(__name__).warning("a received instance could not be kept")
            return 0xA700
        return 0x0000

    def stop(self) -> None:
        self.server.shutdown()


@dataclass(frozen=True)
class InboxStudy:
    folder: Path
    study_uid: str
    patient_name: str
    patient_id: str
    date: str
    accession: str
    images: int


def received_studies(inbox: Path) -> list[InboxStudy]:
    """The studies in the inbox, newest study date first (one header read per study)."""
    studies = []
    for folder in sorted(p for p in Path(inbox).iterdir() if p.is_dir()) if Path(inbox).is_dir() else []:
        files = sorted(folder.glob("*.dcm"))
        if not files:
            continue
        try:
            header = dcmread(files[0], stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - a damaged file: the intake says which when the study is opened
            continue
        studies.append(InboxStudy(folder, str(header.get("StudyInstanceUID", "")), str(header.get("PatientName", "")),
                                  str(header.get("PatientID", "")), str(header.get("StudyDate", "")),
                                  str(header.get("AccessionNumber", "")), len(files)))
    return sorted(studies, key=lambda s: s.date, reverse=True)
