"""One exam of a batch, whatever runs it: decode and prepare, run the models, write the files.

The three steps are separate so that an engine may run them in different processes (the Ray engine decodes
on CPU workers and runs the models in actors that hold them); :func:`process` runs them one after another.

Idempotence: an exam's report files, its rows of the score table and, last, its *marker* are each written
atomically. The marker records what the files were made with (formats, de-identification, models, mode …);
an exam whose marker matches the options of a run and whose files all exist is skipped. A crash therefore
loses at most the exams in flight, and a rerun finishes them.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from app.archive.sources import ExamItem
from app.archive.table import BOOKKEEPING, part_path, score_rows, write_part
from inference.errors import MammoError, error_chain, os_error_beneath, plain_text
from inference.files import distinct_file_stem, hide_file_times, write_text_atomic

if TYPE_CHECKING:
    from inference.intake.exam import Exam
    from inference.pipeline import PreparedExam
    from inference.results.exam_result import ExamResult


@dataclass(frozen=True)
class BatchOptions:
    """What every exam of a batch is made with.

    Attributes:
        formats: report formats (``app.report.export.FORMATS``).
        folder_per_exam: the files of each exam in ``DIR/<exam_id>/`` (the batch) or all in ``DIR`` (``report``).
        allow_missing_views: analyse exams that lack a view (else they are recorded as failed).
        plain_hybrid: the reports' hybrid is the GMIC reader study's plain mean of reader and model, not the
            mean with the model on its calibrated scale.
    """

    formats: tuple[str, ...] = ("json",)
    deidentify: bool = False
    page_size: str = "A4"
    reader: str = ""
    mode: str = "exact"
    device: str = "auto"
    folder_per_exam: bool = True
    allow_missing_views: bool = False
    ae_title: str = "MAMMOREADER"  # our calling AE title, for exams on a PACS
    plain_hybrid: bool = False

    def record(self, model_keys: list[str]) -> dict:
        """What a finished exam's marker holds: a rerun skips it only when it asks for the same."""
        return {"formats": sorted(self.formats), "deidentify": self.deidentify, "page_size": self.page_size,
                "reader": self.reader, "models": list(model_keys), "mode": self.mode,
                "allow_missing_views": self.allow_missing_views,
                **({"plain_hybrid": True} if self.plain_hybrid else {})}  # earlier markers stay valid


@dataclass(frozen=True)
class Outcome:
    """What became of one exam: ``done``, ``partial`` (files written, but a format failed or a view has no
    result; with the reason), ``skipped`` (finished by an earlier run) or ``failed`` (with the reason).
    ``seconds``: the models' time for the exam (0 when skipped or failed before). ``machine_fault``: it failed
    for a fault of the machine, not of the exam (:func:`machine_fault`, from the exception itself): the AI node
    analyses such an exam again by itself."""

    exam_id: str
    location: str
    status: str
    reason: str = ""
    files: tuple[str, ...] = ()
    seconds: float = 0.0
    machine_fault: bool = False
    images: tuple[str, ...] = ()  # its views' SOP Instance UIDs, keyed digests (:func:`image_keys`)

    def as_row(self) -> dict:
        return asdict(self)


DICOM_RESULTS = frozenset({"sr", "seg", "epdf"})  # the formats that refer to the exam's images by their UIDs
IMAGE_KEY_SALT = b"mammo-reader image"


def image_keys(exam: Exam | None, options: BatchOptions) -> tuple[str, ...]:
    """The SOP Instance UIDs of the exam's views as digests, by which the driver tells an image two exams of a
    batch carry (an archive error), and which the marker keeps; only where the batch writes DICOM results, which
    refer to the images by UID. A de-identified batch keys them with this site's de-identification key (its
    output must not let a UID be confirmed; its workers hold the key for the pseudonyms already); otherwise a fixed
    salt, so that no batch depends on the key."""
    if exam is None or not DICOM_RESULTS & set(options.formats):
        return ()
    uids = sorted({image.sop_instance_uid for image in exam.views.values() if image.sop_instance_uid})
    if not uids:
        return ()
    if options.deidentify:
        from app.report.deidentify import site_key  # noqa: PLC0415

        key = site_key()
    else:
        key = IMAGE_KEY_SALT
    return tuple(hmac.new(key, f"image\0{uid}".encode(), hashlib.sha256).hexdigest()[:32] for uid in uids)


def read_marker(out: Path, item: ExamItem) -> dict:
    """The exam's marker ({} when there is none or it cannot be read)."""
    try:
        marker = json.loads(marker_path(out, item).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


@dataclass
class Decoded:
    """An exam decoded and prepared for the networks, or the reason it could not be."""

    item: ExamItem
    exam: Exam | None = None
    prepared: PreparedExam | None = None
    failure: str = ""
    facts: dict = field(default_factory=dict)  # for the table (de-identified there when the batch is)
    machine_fault: bool = False  # the failure is the machine's (see machine_fault)


@dataclass
class Analysed:
    item: ExamItem
    exam: Exam | None = None
    result: ExamResult | None = None
    seconds: float = 0.0
    failure: str = ""
    extra: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)
    reads: dict = field(default_factory=dict)  # the named reader's committed reads of the exam (workstation store)
    marks: tuple = ()
    machine_fault: bool = False  # the failure is the machine's (see machine_fault)


def failure_reason(error: BaseException) -> str:
    """A failure in words for ``failures.csv``: input errors as they are, resources named."""
    import torch  # noqa: PLC0415 - torch is loaded wherever an exam is analysed

    if isinstance(error, MammoError):
        return str(error)
    if isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)):
        return f"out of memory ({type(error).__name__}: {error})".replace(" ()", "")
    beneath = os_error_beneath(error)
    if beneath is not None and beneath.errno == errno.ENOSPC:
        return f"the disk is full{f' ({beneath.filename})' if beneath.filename else ''}"
    return f"{type(error).__name__}: {plain_text(error)}"


# the errors of the machine, not of an exam: a full or read-only disk, a quota, a file past the file system's
# size limit, a folder it may not write, an input/output error, no file handles or memory left, a network file
# system gone away or not answering (getattr: not every platform has every code)
MACHINE_ERRNOS = frozenset(getattr(errno, name) for name in (
    "ENOSPC", "EDQUOT", "EROFS", "EFBIG", "EIO", "EACCES", "EPERM", "EMFILE", "ENFILE", "ENOMEM", "ESTALE",
    "ENOTCONN", "ETIMEDOUT", "EHOSTDOWN", "EHOSTUNREACH", "ENETDOWN", "ENETUNREACH", "ENOLINK", "EREMOTEIO")
    if hasattr(errno, name))


def machine_fault(error: BaseException) -> bool:
    """Whether ``error`` is a fault of the machine rather than of the exam: no memory left (``MemoryError``,
    torch's out of memory, on the GPU or not), or an ``OSError`` whose errno is in :data:`MACHINE_ERRNOS` —
    the error itself or one it was raised from (pydicom and the report writers raise their own from the
    disk's)."""
    import torch  # noqa: PLC0415 - torch is loaded wherever an exam is analysed

    out_of_memory = (MemoryError, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError))
    for seen in error_chain(error):
        if isinstance(seen, out_of_memory) or (isinstance(seen, OSError) and seen.errno in MACHINE_ERRNOS):
            return True
    return False


def marker_path(out: Path, item: ExamItem) -> Path:
    return out / BOOKKEEPING / "done" / f"{item.key}.json"


def exam_folder(out: Path, item: ExamItem, options: BatchOptions) -> Path:
    if not options.folder_per_exam:
        return out
    return out / distinct_file_stem(item.exam_id, item.key[:12])


def claim_label(out: Path, label: str, location: str) -> str:
    """The name of an exam's report files in ``out`` when every exam's files share that folder: ``label``, or
    ``label-2``, ``label-3`` … when an earlier exam (another location) holds it, so that two exams with the same
    accession or folder name never overwrite each other's report. Claims are files (created exclusively, so
    parallel writers cannot take one name twice) in the bookkeeping folder."""
    claims = _claims_folder(out)
    number = 1
    while True:
        name = label if number == 1 else f"{label}-{number}"
        claim = claims / name
        try:
            with claim.open("x", encoding="utf-8") as handle:
                # files of that name that no claim of ours made (a reviewer's own ACC777.pdf was written over)
                handle.write(FOREIGN_FILES if _report_files_named(out, name) else location)
            if claim.read_text(encoding="utf-8") == location:
                return name
        except FileExistsError:
            try:
                if claim.read_text(encoding="utf-8") == location:
                    return name
            except OSError:
                pass
        number += 1


FOREIGN_FILES = "(files of this name that Mammo Reader did not write)"  # a claim no exam is given


def _report_files_named(out: Path, name: str) -> bool:
    """Whether ``out`` holds a report file called ``name``, looked up by name (listing a folder of many exams'
    reports for every new exam was quadratic)."""
    from app.report.export import report_file_names  # noqa: PLC0415

    return any((out / file).is_file() for file in report_file_names(name))


def _claims_folder(out: Path) -> Path:
    """The claims folder; made once per output folder, holding a claim for each name that the markers of a
    run written before claims were kept show in use (so those files are never written over either)."""
    claims = out / BOOKKEEPING / "labels"
    if claims.is_dir():
        return claims
    claims.parent.mkdir(parents=True, exist_ok=True)
    made = Path(tempfile.mkdtemp(prefix="labels.", suffix=".tmp", dir=claims.parent))  # one per writer, threads too
    (made / ".made").touch()  # never empty: a racing writer's folder cannot replace this one
    for marker in (out / BOOKKEEPING / "done").glob("*.json"):
        try:
            record = json.loads(marker.read_text(encoding="utf-8"))
            location, files = str(record["location"]), [Path(f) for f in record.get("files", [])]
        except (OSError, ValueError, KeyError, AttributeError, TypeError):
            continue
        for file in files:
            from app.report.export import REPORT_FILE  # noqa: PLC0415

            match = REPORT_FILE.fullmatch(file.name)
            if match and (out / file.name).is_file() and not (made / match["name"]).exists():
                (made / match["name"]).write_text(location, encoding="utf-8")
    try:
        made.rename(claims)
    except OSError:  # another writer made it first
        shutil.rmtree(made, ignore_errors=True)
    return claims


def source_state(item: ExamItem) -> str:
    """A digest of the exam's image files as they are now (their names within the exam, sizes and modification
    times; a manifest with the files it lists); "" for a study on a PACS. A finished exam whose files changed
    since (a late image, a retake, a file replaced or removed) is analysed again: a rerun kept the scores of
    the images that were there before, and said it had skipped the exam as done."""
    from app.pacs.nodes import is_pacs_address  # noqa: PLC0415
    from inference.intake.exam import exam_files  # noqa: PLC0415

    if not item.files and is_pacs_address(item.path):
        return ""
    base = Path(item.path)
    paths = [Path(p) for p in item.files] if item.files else exam_files(base)
    if base.is_file():
        paths = [base, *(p for p in paths if p != base)]
    state = []
    for path in sorted(paths):
        try:
            stat = path.stat()
            name = str(path.relative_to(base)) if base.is_dir() and path.is_relative_to(base) else str(path)
            state.append(f"{name}|{stat.st_size}|{stat.st_mtime_ns}")
        except OSError:
            state.append(f"{path}|gone")
    return hashlib.sha256("\n".join(state).encode()).hexdigest()


def already_done(out: Path, item: ExamItem, record: dict, *, same_files: bool = True,
                 marker: dict | None = None) -> bool:
    """Whether an earlier run finished ``item`` with the same options, from the same files (:func:`source_state`;
    a marker of an earlier version, without it, is taken as it is; not with ``same_files`` False: the AI node's
    record holds a digest of its instances' contents, which a study sent again rewrites), and all its output
    files still exist. ``marker``: the exam's marker, where the caller has read it already."""
    marker = read_marker(out, item) if marker is None else marker
    if not marker:
        return False
    options = marker.get("options")
    if marker.get("complete") and isinstance(options, dict):  # all four views: --allow-missing-views changes nothing
        options = {**options, "allow_missing_views": record.get("allow_missing_views")}
    if options != record:
        return False
    if same_files and marker.get("source") is not None and marker["source"] != source_state(item):
        return False
    # the rows in this folder's own part (a marker copied with its folder names the old folder's part)
    return all(Path(p).is_file() for p in marker.get("files", [])) and part_path(out, item).is_file()


def open_exam(location: str, ae_title: str, retrieved: list[Path] | None = None) -> Exam:
    """The exam at ``location``, or of the PACS study there (retrieved into the local cache; the retrieve's
    notes join the intake notes; its files are added to ``retrieved``, so that a failure's reason can be
    cleared of what their headers hold)."""
    from app.pacs.nodes import is_pacs_address, parse_study  # noqa: PLC0415
    from inference.intake.exam import load_exam  # noqa: PLC0415

    if not is_pacs_address(location):
        return load_exam(location)
    from app.pacs.retrieve import retrieve_study  # noqa: PLC0415

    study = retrieve_study(parse_study(location, ae_title))
    if retrieved is not None:
        retrieved.extend(sorted(Path(study.folder).glob("*.dcm")))
    exam = load_exam(study.folder)
    return replace(exam, warnings=exam.warnings + tuple(study.notes))


def decode(item: ExamItem, families: tuple[str, ...], options: BatchOptions) -> Decoded:
    """Load the exam (every check of the file intake), de-identify it when asked, prepare its views."""
    from app.archive.facts import exam_facts  # noqa: PLC0415
    from inference.intake.exam import CHOICE_NOTE, load_exam  # noqa: PLC0415
    from inference.pipeline import prepare_exam  # noqa: PLC0415
    from inference.intake.views import View  # noqa: PLC0415

    retrieved: list[Path] = []
    try:
        source = source_state(item)  # before the files are read: a change while they are is seen at the next run
        exam = load_exam(list(item.files)) if item.files else open_exam(item.path, options.ae_title, retrieved)
        missing = [v.value for v in View if v not in exam.views]
        if missing and not options.allow_missing_views:
            refused = "".join(f"; {name} could not be loaded: {reason}" for name, reason in exam.refused)
            # an image of the missing view may have taken another slot (its header naming the other side)
            chosen = "".join(f"; {note}" for note in exam.warnings if CHOICE_NOTE.match(note))
            raise MammoError(f"{item.location}: missing views: {', '.join(missing)}{refused}{chosen} (give "
                             "--allow-missing-views to analyse incomplete exams)")
        # the exam stays whole: a de-identified report takes the patient's one pseudonym and date shift from its
        # ID (an exam stripped here gave CBIS-DDSM's four views four pseudonymous patients and four studies)
        facts = {**exam_facts(exam, options.deidentify), "source_state": source}
        return Decoded(item, exam, prepare_exam(exam, families), facts=facts)
    except Exception as error:  # noqa: BLE001 - one exam's failure ends only that exam
        return Decoded(item, failure=item.redacted(failure_reason(error), retrieved),
                       machine_fault=machine_fault(error))


def analyse(decoded: Decoded, groups, options: BatchOptions, store=None) -> Analysed:
    """Run the models on a decoded exam through the one results path (``app.analysis``): with a ``store``
    (``app.study.store.Store``), each model's part the workstation or a study computed is restored and the
    others are stored; without one every model runs. A failure of decoding passes through."""
    from app.analysis import analyse_or_restore  # noqa: PLC0415

    if decoded.failure:
        return Analysed(decoded.item, failure=decoded.failure, machine_fault=decoded.machine_fault)
    started = time.perf_counter()
    try:
        result = analyse_or_restore(decoded.exam, groups, store=store, device=options.device, mode=options.mode,
                                    prepared=decoded.prepared).result
    except Exception as error:  # noqa: BLE001
        return Analysed(decoded.item, failure=decoded.item.redacted(failure_reason(error), image_files(decoded.exam)),
                        machine_fault=machine_fault(error))
    seconds = time.perf_counter() - started
    reads, marks, note = committed_read(store, decoded.exam, options.reader) if store is not None else ({}, (), "")
    exam = replace(decoded.exam, warnings=(*decoded.exam.warnings, note)) if note else decoded.exam
    return Analysed(decoded.item, exam, result, seconds, facts=decoded.facts, reads=reads, marks=marks)


def committed_read(store, exam: Exam, reader: str) -> tuple[dict, tuple, str]:
    """The reader's committed read of ``exam`` in the workstation's store (each breast's first read with its
    amendment after AI) and marks, for the report, under the key the workstation shows it under, with the note
    of a read made on another set of the study's images: ({}, (), "") when the reader has committed none. Drafts
    are no read to report."""
    from app.analysis import reader_read_key  # noqa: PLC0415

    if not reader:
        return {}, (), ""
    key, earlier = reader_read_key(store, exam, reader)
    reads = {breast: read for breast, read in store.load_reads(key, reader).items() if read.committed}
    if not reads:
        return {}, (), ""
    return reads, tuple(store.load_marks(key, reader)), earlier.note() if earlier is not None else ""


def write(analysed: Analysed, out: Path, options: BatchOptions, record: dict) -> Outcome:
    """The exam's report files, then its rows of the score table, then its marker (each atomically)."""
    from app.report.content import ReportInput, exam_label  # noqa: PLC0415
    from app.report.export import ExportIncomplete, export_report  # noqa: PLC0415
    from inference.intake.views import View  # noqa: PLC0415

    item = analysed.item
    if analysed.failure:
        return Outcome(item.exam_id, item.location, "failed", analysed.failure, machine_fault=analysed.machine_fault)
    from inference.results.exam_result import views_without_result  # noqa: PLC0415

    problems = views_without_result(analysed.result)  # an exam recorded as partial, with these in failures.csv
    # an exam analysed without a view (--allow-missing-views) beside a file that could not be read, which may be
    # that view: said in failures.csv, and tried again at the next run (a complete exam's refused files, an SR or
    # a thumbnail beside four views, stay notes)
    if len(analysed.exam.views) < len(View):
        problems += [f"{name} could not be loaded: {reason}" for name, reason in analysed.exam.refused]
    try:
        images = image_keys(analysed.exam, options)
        report = ReportInput(analysed.exam, analysed.result, analysed.reads, reader=options.reader,
                             deidentify=options.deidentify, plain_hybrid=options.plain_hybrid, marks=analysed.marks)
        if options.deidentify:  # the files, the report's "exam" and the table say one pseudonym: the item's
            report = replace(report, file_name=item.exam_id)
        elif not options.folder_per_exam:  # every exam's files in one folder: a name of its own, never another's
            report = replace(report, file_name=claim_label(out, exam_label(report), item.location))
        try:
            files = export_report(report, exam_folder(out, item, options), options.formats, options.page_size)
        except ExportIncomplete as incomplete:
            if not incomplete.written:
                raise
            files = incomplete.written
            problems.insert(0, str(incomplete))
        part = write_part(out, item, score_rows(item, analysed.result, analysed.seconds, analysed.facts,
                                                  deidentified=options.deidentify))
        if not problems:  # no marker for a partial exam: a rerun tries it again, and it stays in failures.csv
            marker = {"exam_id": item.exam_id, "location": item.location, "options": record,
                      "files": [str(p) for p in files], "scores": str(part), "images": list(images),
                      "complete": len(analysed.exam.views) == len(View),
                      **({"source": analysed.facts["source_state"]} if "source_state" in analysed.facts else {})}
            write_text_atomic(marker_path(out, item), json.dumps(marker))
        if options.deidentify:  # the exam's folder and bookkeeping too: their times named when it was analysed
            hide_file_times([exam_folder(out, item, options), part, part.parent, marker_path(out, item),
                             marker_path(out, item).parent])
    except Exception as error:  # noqa: BLE001 - a full disk, a codec: this exam fails, the batch goes on
        return Outcome(item.exam_id, item.location, "failed",
                       item.redacted(failure_reason(error), image_files(analysed.exam)),
                       machine_fault=machine_fault(error))
    return Outcome(item.exam_id, item.location, "partial" if problems else "done",
                   item.redacted("; ".join(problems), image_files(analysed.exam)),
                   files=tuple(str(p) for p in files), seconds=analysed.seconds, images=images)


def image_files(exam: Exam | None) -> list[Path]:
    """The files an exam's images were read from (a PACS study's in the cache)."""
    if exam is None:
        return []
    return [Path(image.source) for image in [*exam.views.values(), *exam.aside] if image.source is not None]


def process(item: ExamItem, groups, out: Path, options: BatchOptions, record: dict, store=None) -> Outcome:
    """The whole unit in this process (``store``: as in :func:`analyse`)."""
    from inference.pipeline import model_families  # noqa: PLC0415

    return write(analyse(decode(item, model_families(groups), options), groups, options, store), out, options,
                 record)
