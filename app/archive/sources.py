"""What a batch runs over: a case list CSV, a folder of exam folders, a text file with one exam per line, or
the CBIS-DDSM dataset as TCIA lays it out (one folder per image, grouped here into one exam per patient)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.pacs.nodes import SCHEMES as PACS_SCHEMES
from app.text_lists import header_problem, numbered_rows, read_list_text
from inference.errors import MammoError
from inference.intake.identifiers import GENERIC_NAMES


@dataclass(frozen=True)
class ExamItem:
    """One exam of a batch.

    Attributes:
        exam_id: the case ID of a case list, else the exam folder's name (unique within the batch).
        location: the exam's folder, manifest or file, absolute; in a de-identified batch its label, as
            ``exam_id`` (see :func:`deidentified_items`).
        opens: in a de-identified batch, where the exam is read from (never written to any output).
        files: the exam's image files when they are not one folder (a CBIS-DDSM patient's view folders);
            then ``location`` is ``<dataset folder>#<patient>``, unique per exam.
    """

    exam_id: str
    location: str
    opens: str = ""
    files: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        """Where the exam is read from."""
        return self.opens or self.location

    def redacted(self, text: str, retrieved: Sequence[Path] = ()) -> str:
        """``text`` (a failure's reason) in a de-identified batch: the exam's real folder, which may name the
        patient, replaced by its label; then every file name, path, date and UID, and whatever the files'
        headers hold that could identify the patient or the study (a two-patient refusal named both patient
        IDs, a refused view its file, "Testperson_PID987654_R-CC.dcm"), removed as the blinded study screen
        removes them. ``retrieved``: the files of a PACS study as retrieved into the cache (its address names
        no file)."""
        if not self.opens or not text:
            return text
        originals = [self.opens, self.opens.rstrip("/").rsplit("/", 1)[-1]]
        for file in self.files:  # longest first: a whole path before the folder names inside it
            originals[:0] = [file, *(part for part in Path(file).parts if CBIS_DDSM_FOLDER.match(part))]
        for original in originals:  # bounded by what is not a letter or digit: a folder "port" is no part of
            if original:  # "report", while "MRN123_L_CC.dcm" named after the folder "MRN123" loses it
                text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(original)}(?![A-Za-z0-9])", lambda _m: self.exam_id, text)
        from app.study.blinding import scrub  # noqa: PLC0415 - a failure's text only
        from inference.intake.exam import exam_files  # noqa: PLC0415
        from inference.intake.identifiers import header_identifiers  # noqa: PLC0415 - pydicom

        files = ([Path(f) for f in self.files] if self.files else [*retrieved] if self.opens.startswith(PACS_SCHEMES)
                 else exam_files(self.opens))
        named = files if self.files or self.opens.startswith(PACS_SCHEMES) else [*files, Path(self.opens)]
        return scrub(text, header_identifiers(files) | file_words(named))  # a manifest's own name too

    @property
    def key(self) -> str:
        """A stable name for the exam's bookkeeping files (the same exam gets the same key in every run)."""
        return hashlib.sha1(self.location.encode("utf-8")).hexdigest()


def file_words(files: list[Path]) -> set[str]:
    """The files' names and stems, which may name the patient ("Testperson_PID987654_R-CC.dcm"); a short number
    or a generic word ("image") is left: it names no one, and "the image" must stay. (A name that only names a view,
    "R-CC" or "L-CC.dcm", the scrub itself leaves: ``names_a_view_only``.)"""
    return {word for path in files for word in (path.name, path.stem)
            if not (word.isdigit() and len(word) < 5) and word.lower() not in GENERIC_NAMES}


def _located(entry: str, base: Path) -> str:
    """An absolute path, or a PACS study address as it is (checked here, retrieved when the exam is decoded)."""
    if entry.startswith(PACS_SCHEMES):
        from app.pacs.nodes import parse_study  # noqa: PLC0415

        parse_study(entry)
        return entry
    path = Path(entry)
    return str((path if path.is_absolute() else base / path).resolve())


def _name_of(location: str) -> str:
    """An exam's default ID: its folder's name, or the study UID of a PACS address."""
    return location.rstrip("/").rsplit("/", 1)[-1] if location.startswith(PACS_SCHEMES) else Path(location).name


def _unique(items: list[ExamItem], source: Path) -> list[ExamItem]:
    seen: dict[str, str] = {}
    for item in items:
        if item.exam_id in seen:
            raise MammoError(f"exam ID {item.exam_id!r} is given twice ({seen[item.exam_id]} and {item.location}); "
                             "the result table needs one ID per exam", source)
        seen[item.exam_id] = item.location
    if not items:
        raise MammoError("no exam in it", source)
    return items


def _from_csv(path: Path) -> list[ExamItem]:
    try:
        reader = csv.DictReader(io.StringIO(read_list_text(path), newline=""))
        rows = numbered_rows(reader)
    except (OSError, csv.Error) as error:
        raise MammoError(f"the case list cannot be read ({error})", path) from error
    if rows and (problem := header_problem([(c or "").lower() for c in reader.fieldnames or []], ("exam",))):
        raise MammoError(f"{problem}; a case list's columns are case_id, exam[, ...]", path)
    items = []
    for number, row in rows:
        row = {key.strip().lower(): value for key, value in row.items() if key is not None}  # "Case_ID,Exam" too
        exam = (row.get("exam") or "").strip()
        if not exam:
            raise MammoError(f"line {number} has no 'exam' (the columns are case_id, exam[, ...])", path)
        location = _located(exam, path.parent)
        case_id = (row.get("case_id") or "").strip() or _name_of(location)
        items.append(ExamItem(case_id, location))
    return items


# TCIA's CBIS-DDSM: one folder per image, "<Mass|Calc>-<Training|Test>_P_<5 digits>_<LEFT|RIGHT>_<CC|MLO>", the
# DICOM a few dated series folders below (".../1-1.dcm"); the ROI mask and cropped-lesion series of the same
# image are in a folder named like it with the abnormality number appended ("..._LEFT_CC_1"): not views.
CBIS_DDSM_FOLDER = re.compile(r"^(?:Mass|Calc)-(?:Training|Test)_(P_\d{5})_(?:LEFT|RIGHT)_(?:CC|MLO)(_\d+)?$")


def _dicom_files(folder: Path) -> list[str]:
    """The DICOM files below ``folder`` (any depth, by suffix or the DICM preamble), sorted."""
    found = []
    for path in sorted(folder.rglob("*")):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() in (".dcm", ".dicom"):
            found.append(str(path.resolve()))
            continue
        try:
            with path.open("rb") as handle:
                head = handle.read(132)
        except OSError:
            continue
        if head[128:132] == b"DICM":
            found.append(str(path.resolve()))
    return found


def _from_cbis_ddsm(folder: Path, subfolders: list[Path]) -> list[ExamItem]:
    """One exam per CBIS-DDSM patient (exam ID ``P_00001``, as the dataset's description CSVs name it), made
    of the full-mammogram DICOMs of every view folder of that patient (Mass and Calc, Training and Test);
    the ROI mask and crop folders are skipped."""
    odd = [p.name for p in subfolders if not CBIS_DDSM_FOLDER.match(p.name)]
    if odd:
        raise MammoError("the folder mixes CBIS-DDSM image folders with other folders "
                         f"({', '.join(odd[:5])}{' …' if len(odd) > 5 else ''}); give the dataset's folder alone",
                         folder)
    patients: dict[str, list[str]] = {}
    for sub in subfolders:
        match = CBIS_DDSM_FOLDER.match(sub.name)
        if match.group(2):  # "..._1": an abnormality's ROI mask and crop, not a view
            continue
        files = _dicom_files(sub)
        if not files:
            raise MammoError("the CBIS-DDSM image folder holds no DICOM file (is the download complete?)", sub)
        patients.setdefault(match.group(1), []).extend(files)
    if not patients:
        raise MammoError("the CBIS-DDSM folder holds only ROI mask folders, no full mammogram", folder)
    root = str(folder.resolve())
    return [ExamItem(patient, f"{root}#{patient}", files=tuple(files)) for patient, files in sorted(patients.items())]


def output_problem(items: Sequence[ExamItem], out: Path, folder_per_exam: bool = True) -> str:
    """Why ``out`` cannot hold a batch's results ("" when it can): it is an exam's folder or lies in one (the
    results would be read as part of that exam), or, with a result folder per exam, it is the folder the exam
    folders lie in (each result folder would be read as another exam on the next run: a reviewer's
    de-identified reruns counted the same patient again each time)."""
    target = out.resolve()
    seen: set[Path] = set()  # an archive's files share folders: each folder is looked at once
    for item in items:
        for path in [Path(name) for name in item.files] or [Path(item.path)]:
            if "://" in str(path):
                continue
            is_folder = not item.files and path.is_dir()
            folder = path if is_folder else path.parent
            if folder in seen:
                continue
            seen.add(folder)
            folder = folder.resolve()
            if target == folder or target.is_relative_to(folder):
                return f"it is, or lies in, the folder of exam {item.exam_id} ({folder}): the results would be read " \
                       "as part of that exam"
            if folder_per_exam and is_folder and target == folder.parent:
                return "it is the folder the exams are read from: each exam's result folder would be read as " \
                       "another exam on the next run"
    return ""


def _in_reading_order(name: str) -> tuple:
    """Numbers as numbers (exam2 before exam10), the name itself last to keep the order total."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)), name


def _holds_batch_output(folder: Path) -> bool:
    """A batch's own output folder inside the archive (its .batch bookkeeping) is no exam: every rerun failed
    it. A folder that cannot be looked into is taken for an exam: its failure is said in its row (it stopped the
    whole batch, nothing analysed)."""
    try:
        return (folder / ".batch").is_dir()
    except OSError:
        return False


def _from_folder(folder: Path) -> list[ExamItem]:
    exams = sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                    and not _holds_batch_output(p)), key=lambda p: _in_reading_order(p.name))
    if any(CBIS_DDSM_FOLDER.match(p.name) for p in exams):
        return _from_cbis_ddsm(folder, exams)
    if not exams:
        raise MammoError("the folder holds no exam folder (a batch folder holds one folder per exam; "
                         "for one exam use 'report')", folder)
    return [ExamItem(p.name, str(p.resolve())) for p in exams]


def _from_list(path: Path) -> list[ExamItem]:
    try:
        lines = read_list_text(path).splitlines()
    except OSError as error:
        raise MammoError(f"the exam list cannot be read ({error})", path) from error
    entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [ExamItem(_name_of(location), location) for location in (_located(e, path.parent) for e in entries)]


def read_batch_source(source: str | Path) -> list[ExamItem]:
    """The exams of ``source``: a case list CSV (``case_id, exam`` and any other columns), a folder whose
    sub-folders are the exams (or TCIA's CBIS-DDSM folder: one exam per patient), a text file with one exam
    (folder, manifest, file or PACS study address) per line (``#`` comments), or one PACS study address. Relative paths are taken relative to the list's folder."""
    path = Path(source)
    if str(source).startswith(PACS_SCHEMES):
        return [ExamItem(_name_of(str(source)), _located(str(source), Path.cwd()))]
    if path.is_dir():
        items = _from_folder(path)
    elif path.is_file() and path.suffix.lower() == ".csv":
        items = _from_csv(path)
    elif path.is_file():
        items = _from_list(path)
    else:
        raise MammoError("no such case list, exam list or folder", path)
    return _unique(items, path)


def deidentified_items(items: list[ExamItem]) -> list[ExamItem]:
    """The items of a de-identified batch: each exam named by a keyed hash of its location ("anon-…"), which
    is what the outputs hold (folder names, ``scores.parquet``, the journal, ``failures.csv``, the markers),
    the same in every run on this computer so that a rerun resumes; the real location is only read from."""
    from app.report.deidentify import pseudonym, site_key  # noqa: PLC0415

    key = site_key()
    out = []
    for item in items:
        label = pseudonym(key, "batch-exam", item.path)
        out.append(dataclasses.replace(item, exam_id=label, location=label, opens=item.path))
    return out


def items_of_exams(exams: list[str | Path], earlier: Mapping[str, str] | None = None) -> list[ExamItem]:
    """Exams named one by one (``report EXAM…``): each once, IDs made unique by a suffix where two exam
    folders share a name. ``earlier``: location -> exam ID of the exams an earlier run reported into the same
    folder; such an exam keeps its ID, and a new one never takes another's."""
    earlier = dict(earlier or {})
    items, seen, taken = [], set(), set(earlier.values())
    for exam in exams:
        location = _located(str(exam), Path.cwd())
        if location in seen:
            continue
        seen.add(location)
        if location in earlier:
            items.append(ExamItem(earlier[location], location))
            continue
        name, number = _name_of(location), 2
        unique = name
        while unique in taken:
            unique, number = f"{name}-{number}", number + 1
        taken.add(unique)
        items.append(ExamItem(unique, location))
    return items
