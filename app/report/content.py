"""What a report says, computed once per export and shared by every format (PDF, PNG, JSON, SR, SEG): header
fields, the windowed images, each drawn map on the original grid, figures, thumbnails, scores and reads.
Writers only render it."""

from __future__ import annotations

import dataclasses
import datetime
import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

from app import __version__
from app.dates import dicom_date
from app.reading import AI_SHOWN, AMENDED_AFTER_AI, amendment_text, percent
from app.study.blinding import exam_identifiers, scrub
from app.study.store import BreastRead, ReaderMark
from inference.files import file_stem
from inference.results.types import HeatLayer
from inference.intake.exam import Exam
from inference.results.exam_result import EntryViewResult, ExamResult, ModelEntry, shown_notices
from inference.intake.views import View

DISCLAIMER = (
    "Decision support only — not a diagnosis. The model's probabilities and maps are an aid to the reading "
    "radiologist, who makes every clinical decision."
)
DRAFT_NOTE = ("The reader's estimate in this report is a draft: it was not committed when the report was made, "
              "and may still change.")
DEMO_WARNING = "DEMO MODEL — trained on synthetic phantoms only — NOT FOR CLINICAL USE."
HANGING_ORDER = (View.R_CC, View.L_CC, View.R_MLO, View.L_MLO)


@dataclass(frozen=True)
class ReportInput:
    """Everything a report is made from.

    ``entry_id``: whose maps and regions the figures draw (default: the first model). ``model_withheld``: why
    the result is left out (blind reading: nothing of the model before the reader's commit).
    """

    exam: Exam
    result: ExamResult | None
    reads: dict[str, BreastRead] = field(default_factory=dict)
    reader: str = ""
    comments: str = ""
    deidentify: bool = False
    read_at: datetime.datetime = field(default_factory=lambda: datetime.datetime.now().replace(microsecond=0))
    entry_id: str | None = None
    marks: tuple[ReaderMark, ...] = ()
    model_withheld: str = ""
    plain_hybrid: bool = False  # the GMIC reader study's plain mean instead of the calibrated hybrid
    file_name: str = ""  # the report files' name when the caller chose it (unique in a shared folder), else the label


SHOWN_CHARACTERS = 324  # the longest a DICOM person name may be (three groups of five components, 64 a group)


def shown_value(text: str) -> str:
    """A header's value as the report shows it: cut, with "…", past the longest a DICOM value may be (a
    20 000-character patient name made the PDF's header table taller than a page, and the whole export failed)."""
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS - 1] + "…"


COMMENTS_LEFT_OUT = "left out of this de-identified report: free text may name the patient"


def is_draft(read: BreastRead | None) -> bool:
    """A read exported before the commit that says something (a probability, a BI-RADS, a recommendation …)."""
    return read is not None and not read.committed and read.says_something()


def reader_text(read: BreastRead | None) -> str:
    """The reader's probability of malignancy as every report shows it: the first read (the one the hybrid uses),
    with its amendment beside it ("before AI 80 % → after AI 30 %"; "first read (AI shown) …" when the model was
    on screen for it)."""
    if read is None:
        return percent(None)
    if is_draft(read):  # the form as it was, exported before the commit
        return f"{percent(read.malignant)} (draft, not committed)"
    if read.ai_shown and read.amendment is None:
        return f"{percent(read.malignant)} ({AI_SHOWN})"
    return amendment_text(read) or percent(read.malignant)


def amendment_data(read: BreastRead | None, shift: datetime.timedelta = datetime.timedelta(0)) -> dict | None:
    """The amendment after AI of a committed read, for the JSON report (None: not amended), with the earlier
    amendments (oldest first) under "earlier"; their times moved by ``shift`` (a de-identified report's date
    offset, as its "Read on")."""
    after = read.amendment if read is not None else None
    if after is None:
        return None

    def answer(amended: BreastRead) -> dict:
        at = ((datetime.datetime.fromtimestamp(amended.recorded_at) + shift).isoformat(timespec="seconds")
              if amended.recorded_at else None)
        return {"amended_at": at, "malignant": amended.malignant, "benign": amended.benign, "birads": amended.birads,
                "density": amended.density, "recommendation": amended.recommendation}

    return {"kind": AMENDED_AFTER_AI, **answer(after), "text": amendment_text(read),
            "earlier": [answer(a) for a in read.earlier_amendments]}


def exam_label(report: ReportInput) -> str:
    """The name of the report files: the accession number (or the exam folder's name), or in de-identified
    reports a short hash of the images' UIDs ("anon-…", no identifier). Never a 64-character UID."""
    exam = report.exam
    if not report.deidentify:
        name = exam.accession or (exam.source.name if exam.source is not None and exam.source.is_dir() else "")
        if name and file_stem(name):
            return file_stem(name)
    from app.report.deidentify import pseudonym, site_key  # noqa: PLC0415

    parts = sorted(img.sop_instance_uid or img.source.name for img in exam.views.values())
    return pseudonym(site_key(), "exam", "|".join(parts))  # keyed: nobody can recompute it from the UIDs


class ReportContent:
    """One export's content. Images and maps are computed on first use and kept for the other formats."""

    def __init__(self, report: ReportInput) -> None:
        self.report = report
        self.exam = report.exam
        self.result = report.result
        # the exam as the report names it (header, JSON); de-identified, the pseudonym its caller gave (a batch's
        # exam ID: its table, folder and files say one name), else one of the images' UIDs
        self.label = report.file_name if report.deidentify and report.file_name else exam_label(report)
        self.file_name = report.file_name or self.label  # what its files are called
        self.entry: ModelEntry | None = self._drawn_entry()
        # the reader's free text may name the patient, a record number or a date ("Mrs … MRN … born 1945"): as
        # the standard's de-identification profile removes comments, a de-identified report leaves it out, and says so
        self.comments = "" if report.deidentify else report.comments.strip()
        self.comments_left_out = report.deidentify and bool(report.comments.strip())

    def for_entry(self, entry_id: str) -> ReportContent:
        """The same report drawing another model's maps and regions (its own images and maps, computed anew)."""
        return ReportContent(dataclasses.replace(self.report, entry_id=entry_id))

    def _drawn_entry(self) -> ModelEntry | None:
        """Whose maps and regions the figures draw: the one asked for; by default the first model with a result
        on some view (the first listed may have none: the figure was left empty while another had maps)."""
        if self.result is None:
            return None
        if self.report.entry_id is not None:
            return self.result.entry(self.report.entry_id)
        return next((entry for entry in self.result.entries
                     if any(view.result(entry.id) is not None for view in self.result.views.values())),
                    self.result.entry())

    @functools.cached_property
    def report_time(self) -> datetime.datetime:
        """When the report was read, as every file of it says ("Read on", the DICOM content and creation dates);
        de-identified, moved by the patient's date offset as every date of the export is: the true date beside
        the shifted study date gave the offset away, and with it every shifted date of the patient."""
        if not self.report.deidentify:
            return self.report.read_at
        from app.report.deidentify import Deidentifier, exam_patient_key  # noqa: PLC0415

        return self.report.read_at + Deidentifier().date_offset(exam_patient_key(self.exam))

    # ------------------------------------------------------------------------------------------ text

    def header_fields(self) -> list[tuple[str, str]]:
        report, exam = self.report, self.exam
        fields = [("Exam", self.label)]
        if not report.deidentify:  # de-identified: the DICOM files carry the shifted dates
            if exam.study_date:  # as every other date of the report (DICOM's 20260115 read as 2026-01-15)
                fields.append(("Study date", dicom_date(exam.study_date)))
            if exam.accession:
                fields.append(("Accession", shown_value(exam.accession)))
            if exam.patient.name:
                fields.append(("Patient", shown_value(exam.patient.name.replace("^", " "))))
            if exam.patient.patient_id:
                fields.append(("Patient ID", shown_value(exam.patient.patient_id)))
        fields.append(("Reader", shown_value(report.reader) or "—"))
        # when the reader committed the read (the first read's commit; it was the export's time, and a report
        # exported again later named a time when nothing was read: a radiologist's test), and when the report
        # was made; without a committed read, the report's time alone (a deployer's audit: "Read on" beside "—")
        committed = [read for read in report.reads.values() if read is not None and read.committed]
        times = [read.recorded_at for read in committed if read.recorded_at is not None]
        if times:
            shift = self.report_time - report.read_at  # a de-identified report's date offset, as every date's
            read_on = datetime.datetime.fromtimestamp(min(times)).replace(microsecond=0) + shift
            fields.append(("Read on", read_on.strftime("%Y-%m-%d %H:%M")))
            # the latest change after AI, when there was one: the PDF named the amended estimate with no time,
            # and a reader's change days later read as the same sitting's
            amended = [read.amendment.recorded_at for read in committed
                       if read.amendment is not None and read.amendment.recorded_at is not None]
            if amended:
                amended_on = datetime.datetime.fromtimestamp(max(amended)).replace(microsecond=0) + shift
                fields.append(("Amended on", amended_on.strftime("%Y-%m-%d %H:%M")))
        elif not committed and any(read is not None and read.says_something() for read in report.reads.values()):
            fields.append(("Read on", "not committed (a draft)"))
        fields.append(("Reported on", self.report_time.strftime("%Y-%m-%d %H:%M")))
        fields.append(("Software", f"Mammo Reader {__version__}"))
        if self.result is not None:
            p = self.result.provenance
            short = self.short_labels
            for number, entry in enumerate(self.result.entries, start=1):
                names = [m.published_name or f"{m.label} [{m.weights_id}]" for m in entry.members]
                # "Model 2", not the entry id ("Model seeded_state_dict-2" ran into its value); its short name,
                # what the tables call it, opens the value
                name = "Model" if len(self.result.entries) == 1 else f"Model {number}"
                called = f"{short[entry.id]} = " if len(self.result.entries) > 1 else ""
                if len(entry.members) == 1 and names[0].startswith(entry.label):  # one model: its name once
                    value = f"{names[0][:len(entry.label)]} ({entry.family}){names[0][len(entry.label):]}"
                else:
                    value = f"{entry.label} ({entry.family}): {', '.join(names)}"
                fields.append((name, f"{called}{value}"))
            fields.append(("Analysis", f"{p.device}, {p.mode.value} mode ({p.numerics}), torch {p.torch_version}"))
        else:
            fields.append(("Model", report.model_withheld or "no analysis"))
        return fields

    @functools.cached_property
    def short_labels(self) -> dict[str, str]:
        """entry id -> the name the report's tables give each model (as the workstation's: family, then hash)."""
        from app.model_comparison import short_labels  # noqa: PLC0415

        entries = self.result.entries if self.result is not None else ()
        return short_labels([(entry.id, entry.members) for entry in entries])

    def is_demo(self) -> bool:
        return self.result is not None and any(m.demo for m in self.result.provenance.models)

    def notes(self) -> list[str]:
        out = [self.exam.laterality_message(v) for v in self.exam.laterality_conflicts]
        out += list(self.exam.warnings)
        for view, image in self.exam.views.items():
            out += [f"{view.value}: {w}" for w in image.warnings]
        if self.result is not None:
            out += shown_notices(self.result)
        if self.report.model_withheld:
            out.append(f"The model's result is not in this report: {self.report.model_withheld}.")
        if any(is_draft(read) for read in self.report.reads.values()):
            out.append(DRAFT_NOTE)
        return [self.scrub(note) for note in out] if self.report.deidentify else out

    def scrub(self, text: str) -> str:
        """``text`` without the exam's identifiers, as the blinded study screen removes them (a de-identified
        report's notes named the patient: CBIS-DDSM's per-file IDs, "Mass-Test_P_00820_LEFT_CC")."""
        return scrub(text, self.identifiers)

    @functools.cached_property
    def identifiers(self) -> set[str]:
        """Every string of the exam that could identify the patient, the study or its date (each image's own
        patient ID among them)."""
        return exam_identifiers(self.exam)

    def views(self) -> list[View]:
        return [v for v in HANGING_ORDER if v in self.exam.views]

    def entry_view(self, view: View) -> EntryViewResult | None:
        if self.result is None or self.entry is None or view not in self.result.views:
            return None
        return self.result.views[view].result(self.entry.id)  # None: no result (not finite, or refused)

    def shown_regions(self, view: View) -> list:
        """The drawn entry's regions on ``view`` that the export shows: the screen's rule (``app.cad_marks``)."""
        from app.cad_marks import shown_regions  # noqa: PLC0415

        entry_result = self.entry_view(view)
        if entry_result is None:
            return []
        return shown_regions(entry_result.regions, self.entry.members, self.exam.views.get(view))[0]

    def regions_rule(self) -> str:
        """The line that says which regions are shown (the model's operating point, or the top ones)."""
        from app.cad_marks import region_operating_point, regions_rule_text  # noqa: PLC0415

        return regions_rule_text(region_operating_point(self.entry.members) if self.entry is not None else None)

    # ------------------------------------------------------------------------------------------ pixels

    @functools.cache  # noqa: B019 - one content object per export: the cache lives as long as it does
    def display(self, view: View) -> np.ndarray:
        """The view windowed for display, uint8, stored orientation."""
        return np.round(np.clip(self.exam.views[view].display_image(), 0, 1) * 255).astype(np.uint8)

    @functools.cache  # noqa: B019
    def layer_map(self, view: View, class_name: str | None) -> np.ndarray | None:
        """The drawn entry's primary map of a class (None: its primary map of no class, such as an attention
        map) on the original grid, uint8 (0-255), 0 outside it."""
        entry_result = self.entry_view(view)
        layer = entry_result.layer(class_name) if entry_result is not None else None
        if layer is None:
            return None
        values = layer.in_original(self.exam.views[view].pixels.shape, fill=0.0)
        return np.round(np.clip(values, 0, 1) * 255).astype(np.uint8)

    def drawn_layers(self, view: View) -> list[HeatLayer]:
        """The maps a figure draws and a segmentation stores: each class's primary map in class order, then
        the primary map that belongs to no class (an attention map), if any."""
        entry_result = self.entry_view(view)
        if entry_result is None:
            return []
        keys = [*self.entry.classes, None]
        return [layer for key in keys if (layer := entry_result.layer(key)) is not None]

    @functools.cache  # noqa: B019
    def figure(self, tile_height: int) -> np.ndarray:
        from app.report.figures import four_view_figure  # noqa: PLC0415

        return four_view_figure(self, tile_height=tile_height)

    @functools.cache  # noqa: B019
    def view_figure(self, view: View, scale: float = 1.0) -> np.ndarray:
        from app.report.figures import view_figure  # noqa: PLC0415

        return view_figure(self, view, scale=scale)

    @functools.cache  # noqa: B019
    def thumbnails(self, view: View, size: int = 160) -> list[tuple[int, str, np.ndarray]]:
        """(rank, caption, uint8 thumbnail) of each region of the drawn entry, cut from the displayed image and
        turned the way the view hangs."""
        entry_result = self.entry_view(view)
        if entry_result is None:
            return []
        grey = self.display(view)
        image = self.exam.views[view]
        out = []
        for region in self.shown_regions(view):
            top, left, bottom, right = (int(round(v)) for v in region.box_original)
            crop = np.zeros((max(bottom - top, 1), max(right - left, 1)), np.uint8)
            t0, l0 = max(top, 0), max(left, 0)
            b0, r0 = min(bottom, grey.shape[0]), min(right, grey.shape[1])
            if b0 > t0 and r0 > l0:
                crop[t0 - top: b0 - top, l0 - left: r0 - left] = grey[t0:b0, l0:r0]
            if image.horizontal_flip:
                crop = crop[:, ::-1]
            out.append((region.rank, region.caption(),
                        cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA)))
        return out
