"""One exam's report in the chosen formats: PDF, PNG (four views + each view), JSON (+ its maps), DICOM SR, the
maps as DICOM Segmentations, and the PDF as a DICOM Encapsulated PDF (epdf). The content (windowed images, maps on the original grid, figures) is
computed once and every writer renders it; each file is written atomically."""

from __future__ import annotations

import glob
import logging
import re
import time
from pathlib import Path

import numpy as np

from app import __version__
from app.report.content import ReportContent, ReportInput
from inference.errors import MammoError, os_error_beneath, plain_text
from inference.files import atomic_path, hide_file_times
from inference.intake.views import View

logger = logging.getLogger(__name__)

FORMATS = ("pdf", "png", "json", "sr", "seg", "epdf")
# the files a report writes, after its name (this module's writers, seg.py, deidentify.py, the JSON's maps file)
REPORT_FILE = re.compile(r"(?P<name>.+?)(\.pdf|_pdf\.dcm|\.json|\.maps\.npz|_sr\.dcm|_four_views\.png"
                         r"|_[LR]-(CC|MLO)(\.png|_image\.dcm|_.*seg\.dcm))")


def report_file_names(name: str) -> list[str]:
    """The names REPORT_FILE gives an export called ``name`` (the SEGs' aside: named by model, each also beside a
    PDF, JSON or SR of the same export), to look up without listing the folder."""
    return [name + end for end in (".pdf", "_pdf.dcm", ".json", ".maps.npz", "_sr.dcm", "_four_views.png",
                                   *(f"_{view.value}{kind}" for view in View for kind in (".png", "_image.dcm")))]


FORMAT_NAMES = {"pdf": "PDF", "png": "PNG", "json": "JSON", "sr": "SR", "seg": "SEG", "epdf": "ePDF",
                "images": "de-identified source images"}
DICOM_FORMATS = ("sr", "seg", "epdf")
FORMATS_ORDER = ("pdf", "epdf", "png", "json", "sr", "seg")  # as written: the PDF first, the ePDF reuses it


class ExportIncomplete(MammoError):
    """Some of the formats asked for could not be written: each format's outcome, e.g. "PDF, PNG, JSON
    written; ePDF failed: …". ``written``: the files that were; ``failures``: format -> the reason."""

    def __init__(self, written: list[Path], done: list[str], failures: dict[str, str]) -> None:
        self.written, self.done, self.failures = written, done, failures
        parts = [f"{', '.join(FORMAT_NAMES[f] for f in done)} written"] if done else []
        parts += [f"{FORMAT_NAMES[f]} failed: {reason}" for f, reason in failures.items()]
        super().__init__("; ".join(parts))


def failure_text(error: BaseException) -> str:
    """A format's failure in plain words, naming the file (by its name: the folder can identify a patient)."""
    if isinstance(error, MammoError):
        return f"{error.message} ({error.path.name})" if error.path is not None else error.message
    beneath = os_error_beneath(error) or (error if isinstance(error, OSError) else None)
    if beneath is not None:
        name = f" ({Path(beneath.filename).name})" if beneath.filename else ""
        words = beneath.strerror or (plain_text(beneath.args[0]) if len(beneath.args) == 1 else plain_text(beneath))
        return f"{words}{name}"
    return plain_text(error)


def export_report(report: ReportInput, out: str | Path, formats=("pdf", "png", "json"), page_size: str = "A4") -> list[Path]:
    """Write every format asked for; each is tried even when another fails (an input's fault, a full disk).
    An unexpected error removes what the export had written and is raised.

    Raises:
        ExportIncomplete: when a format failed and several were asked for (it says each one's outcome and
            holds the files written).
        MammoError, OSError: the one format asked for could not be written.
    """
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown report formats {sorted(unknown)}; use {', '.join(FORMATS)}")
    if report.deidentify:  # every format shows the images (the PDF's and PNG's figures too), not the DICOM alone
        from app.report.deidentify import DeidentificationError, burned_in_problem  # noqa: PLC0415

        for view, image in report.exam.views.items():
            problem = image.sop_instance_uid and burned_in_problem(str(image.study.get("burned_in", "")),
                                                                   str(image.study.get("sop_class_uid", "")))
            if problem:  # a PNG has no header to say: taken as it is
                raise DeidentificationError(f"{view.value}: the image {problem}; the exam cannot be exported "
                                            "de-identified")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    content = ReportContent(report)
    written: list[Path] = []
    done: list[str] = []
    failures: dict[str, str] = {}
    errors: list[BaseException] = []
    started = time.time()
    try:
        for fmt in FORMATS_ORDER:  # the PDF before the ePDF, which reuses it
            if fmt not in formats:
                continue
            try:  # a format that cannot be made (an input's fault, a full disk) does not stop the others
                written += _WRITERS[fmt](content, out, page_size, "pdf" in done)
            except (MammoError, OSError) as error:
                failures[fmt] = failure_text(error)
                errors.append(error)
            else:
                done.append(fmt)
        if report.deidentify and set(done) & set(DICOM_FORMATS):
            # the SR's and SEG's references resolve within a de-identified export: its images, same UID mapping
            from app.report.deidentify import write_deidentified_images  # noqa: PLC0415

            try:
                written += write_deidentified_images(content, out)
            except (MammoError, OSError) as error:
                failures["images"] = failure_text(error)
                errors.append(error)
            else:
                done.append("images")
        remove_superseded(out, content, written, done)
    except BaseException:  # a bug, an interrupt: the export fails whole, with no file of it left to pass for one
        for path in _written_since(out, content.file_name, started):  # also what a writer wrote before it failed
            path.unlink(missing_ok=True)
        raise
    if report.deidentify:  # the true time a file was written, beside its shifted dates, gave the offset away
        hide_file_times(written)  # (not the folder: it may be the reader's own; a batch's run hides its own)
    done = [fmt for fmt in done if fmt != "images"]  # said as "written" by format, the images with the DICOM
    if failures and len(formats) == 1 and "images" not in failures:
        raise errors[0]
    if failures:
        raise ExportIncomplete(written, done, failures)
    return written


_FORMAT_OF_ENDING = {".pdf": "pdf", "_pdf.dcm": "epdf", ".json": "json", ".maps.npz": "json", "_sr.dcm": "sr"}


def _format_of(ending: str) -> str:
    """The format of a report file, from what follows the report's name in it (see ``REPORT_FILE``)."""
    if ending.endswith("seg.dcm"):
        return "seg"
    if ending.endswith("_image.dcm"):
        return "images"
    return _FORMAT_OF_ENDING.get(ending, "png")


def earlier_export_of(path: Path, content: ReportContent) -> bool:
    """Whether ``path`` is a file of an earlier export of this report, by what the file says of itself: a SEG of
    this exam's study (its UID as is or as de-identified) whose Manufacturer is Mammo Reader, a de-identified copy
    of this study's image, a PNG whose Software is Mammo Reader and whose title names this exam, the maps of such
    a JSON. A file of the same name that the user put there is not one, nor another exam's report or the app's
    own phantom images renamed (re-tests: a re-export deleted both)."""
    try:
        if path.name.endswith(".maps.npz"):  # named by its JSON, which says whose it is
            return earlier_export_of(path.with_name(path.name.removesuffix(".maps.npz") + ".json"), content)
        if path.suffix == ".dcm":
            import pydicom  # noqa: PLC0415

            from app.report.deidentify import METHOD_TEXT, deidentified_uid  # noqa: PLC0415

            header = pydicom.dcmread(path, stop_before_pixels=True)
            studies = {str(image.study.get("study_uid", "")) for image in content.exam.views.values()} - {""}
            studies |= {deidentified_uid(uid) for uid in studies}
            if str(header.get("StudyInstanceUID", "")) not in studies:
                return False
            if path.name.endswith("_image.dcm"):  # a de-identified copy keeps the modality's Manufacturer
                return METHOD_TEXT[0] in [str(v) for v in (header.get("DeidentificationMethod") or [])]
            return (str(header.get("Manufacturer", "")) == "Mammo Reader"
                    and str(header.get("SOPClassUID", "")) == pydicom.uid.SegmentationStorage)
        if path.suffix == ".png":
            from PIL import Image  # noqa: PLC0415

            with Image.open(path) as picture:
                text = getattr(picture, "text", {})
                return (str(text.get("Software", "")).startswith("Mammo Reader")
                        and str(text.get("Title", "")).startswith(f"{content.label} "))
        if path.suffix == ".json":
            import json  # noqa: PLC0415

            data = json.loads(path.read_text(encoding="utf-8"))
            return data.get("schema") == "mammo-reader/report" and data.get("exam") == content.label
    except Exception:  # noqa: BLE001 - unreadable, not ours, or not what its name says: never removed
        return False
    return False  # the PDF, the SR and the ePDF have one name each: written again, never left behind


def remove_superseded(out: Path, content: ReportContent, written: list[Path], done: list[str]) -> list[Path]:
    """Remove an earlier export's files of this report (same name, same folder) in a format this export wrote
    that it did not write again: another model's SEGs, the PNG of a view the exam no longer has, the JSON's maps
    beside no JSON. They lay beside the new files as if of this export (a folder sent to the PACS sent both
    models' segmentations). Files of formats not written now stay, and so does any file that is no earlier
    export of this report (:func:`earlier_export_of`). Returns what was removed."""
    file_name = content.file_name
    names = {path.name for path in written}
    candidates = [out / name for name in report_file_names(file_name)]
    if "seg" in done:  # named by model: listed (only then; a report run's one folder may hold thousands)
        candidates += out.glob(f"{glob.escape(file_name)}_*seg.dcm")
    removed = []
    for path in candidates:
        match = REPORT_FILE.fullmatch(path.name)
        if (path.name in names or not match or match["name"] != file_name
                or _format_of(path.name[len(file_name):]) not in done or not path.is_file()
                or not earlier_export_of(path, content)):
            continue
        try:
            path.unlink(missing_ok=True)
        except OSError as error:  # held open by a viewer, another user's: it stays, and the new export with it
            logger.warning("an earlier export's %s could not be removed: %s", path.name, error.strerror or error)
            continue
        removed.append(path)
    return removed


def _written_since(out: Path, file_name: str, started: float) -> list[Path]:
    """The files in ``out`` that this export names its files (``<name>.pdf``, ``<name>_sr.dcm`` …: another
    exam's ``<name>_followup.pdf`` is not one) and written since ``started``; read only when an export fails (a
    report run's one folder may hold thousands)."""
    out_files = []
    for path in out.iterdir():
        match = REPORT_FILE.fullmatch(path.name)
        try:
            if match and match["name"] == file_name and path.stat().st_mtime >= started - 1:
                out_files.append(path)
        except OSError:
            continue
    return out_files


def _pdf(content: ReportContent, out: Path, page_size: str, pdf_written: bool) -> list[Path]:
    from app.report.pdf import write_pdf  # noqa: PLC0415

    return [write_pdf(content, out / f"{content.file_name}.pdf", page_size)]


def _epdf(content: ReportContent, out: Path, page_size: str, pdf_written: bool) -> list[Path]:
    """The PDF as a DICOM Encapsulated PDF (the PDF file itself only when asked for and written)."""
    from app.report.encapsulated_pdf import write_encapsulated_pdf  # noqa: PLC0415
    from app.report.pdf import write_pdf  # noqa: PLC0415

    if pdf_written:
        data = (out / f"{content.file_name}.pdf").read_bytes()
    else:
        import tempfile  # noqa: PLC0415

        with tempfile.TemporaryDirectory() as folder:
            data = write_pdf(content, Path(folder) / "report.pdf", page_size).read_bytes()
    return [write_encapsulated_pdf(content, data, out / f"{content.file_name}_pdf.dcm")]


VIEW_NAMES = frozenset(view.value for view in View)


def _png(content: ReportContent, out: Path, page_size: str, pdf_written: bool) -> list[Path]:
    model = content.entry.label if content.entry is not None else "no model result shown"

    def text(what: str) -> dict[str, str]:  # the figure says what it is, not only its file name
        return {"Title": f"{content.label} {what}", "Software": f"Mammo Reader {__version__}",
                "Description": f"{model}; {content.regions_rule()}"}

    from app.report.content import DEMO_WARNING  # noqa: PLC0415
    from app.report.figures import captioned  # noqa: PLC0415
    from inference.results.exam_result import shown_notices  # noqa: PLC0415

    notices = shown_notices(content.result) if content.result is not None else []
    # a possible laterality error travels with the figure as it does with the PDF (the four views said nothing)
    laterality = {view.value: content.exam.laterality_message(view) for view in content.exam.laterality_conflicts}
    # which of several images took a view's slot (a retake): the PDF said it, the figure of that view did not
    from inference.intake.exam import CHOICE_NOTE  # noqa: PLC0415

    chosen = {view.value: note for note in content.exam.warnings if CHOICE_NOTE.match(note)
              for view in View if f" for {view.value}: " in note}
    if content.report.deidentify:
        laterality = {view: content.scrub(text) for view, text in laterality.items()}
        chosen = {view: content.scrub(text) for view, text in chosen.items()}
    regions = f"{model} · {content.regions_rule()}" if content.entry is not None else model

    def shown(image, what: str):  # a view's own notices too (a part of its breast not analysed, …)
        whole = what == "four views"
        own = [text for view, text in laterality.items() if whole or view == what]
        own += [text for view, text in chosen.items() if whole or view == what]
        own += [n for n in notices if (n.split(": ", 1)[0] in VIEW_NAMES if whole else n.startswith(f"{what}: "))]
        return captioned(image, [f"{content.label} · {what}", regions, *own,
                                 "Decision support only: not a diagnosis."],
                         DEMO_WARNING if content.is_demo() else "")

    path = out / f"{content.file_name}_four_views.png"
    write_png(path, shown(content.figure(1200), "four views"), text("four views"))
    written = [path]
    for view in content.views():
        path = out / f"{content.file_name}_{view.value}.png"
        write_png(path, shown(content.view_figure(view), view.value), text(view.value))
        written.append(path)
    return written


def _json(content: ReportContent, out: Path, page_size: str, pdf_written: bool) -> list[Path]:
    from app.report.json_report import write_json  # noqa: PLC0415

    return write_json(content, out / f"{content.file_name}.json")


def _sr(content: ReportContent, out: Path, page_size: str, pdf_written: bool) -> list[Path]:
    from app.report.sr import write_sr  # noqa: PLC0415

    return [write_sr(content, out / f"{content.file_name}_sr.dcm")]


def _seg(content: ReportContent, out: Path, page_size: str, pdf_written: bool) -> list[Path]:
    """Each model's segmentations (named with its id when several were analysed): with two models, a detector's
    detections were left out when the figures drew the other model (a deployment engineer's report)."""
    from app.report.seg import write_saliency_segs  # noqa: PLC0415

    if content.result is None or content.entry is None:
        return write_saliency_segs(content, out)  # which says why there is nothing to write
    written = []
    for entry in content.result.entries:
        if entry.id == content.entry.id:
            written += write_saliency_segs(content, out)
        elif any(view.result(entry.id) is not None for view in content.result.views.values()):
            written += write_saliency_segs(content.for_entry(entry.id), out)
    return written


_WRITERS = {"pdf": _pdf, "epdf": _epdf, "png": _png, "json": _json, "sr": _sr, "seg": _seg}


def write_png(path: Path, image, text: dict[str, str] | None = None) -> None:
    """The BGR ``image`` as a PNG with ``text`` chunks (Pillow's PngInfo: the exam, the software, the model);
    the file appears whole or not at all."""
    from PIL import Image  # noqa: PLC0415
    from PIL.PngImagePlugin import PngInfo  # noqa: PLC0415

    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value)  # UTF-8: a label may hold any character
    picture = Image.fromarray(np.ascontiguousarray(image[..., ::-1]) if image.ndim == 3 else image)
    with atomic_path(path) as temporary:
        try:
            picture.save(temporary, format="PNG", pnginfo=info)
        except (OSError, ValueError) as error:
            raise OSError(f"{path}: the PNG could not be written ({error})") from error
