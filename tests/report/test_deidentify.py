"""De-identified exports by DICOM PS3.15's Basic Profile: the report command (every format) and the batch, of an
exam whose files carry free text with a name, an age of 100 and an accession, in a folder named after the
patient. Every output file's bytes are searched (inside compressed PDF streams, PNG text chunks, zip members and
Parquet string columns too) for anything of the original: none may be found; the DICOM written references only
the de-identified images written beside it, and dciodvfy finds no error in it."""

from __future__ import annotations

import datetime
import json
import io
import subprocess
import zipfile
import zlib
from pathlib import Path

import pydicom
import pytest

from app.report.deidentify import Deidentifier, capped_age, site_key
from tests.conftest import REFERENCE, require_shared
from tests.helpers import dciodvfy, run_main, synthetic_view
from tests.inference.intake.dicom_factory import PATIENT_ID, PATIENT_NAME, STUDY_UID, make_dataset, write

FOLDER = "Smith_Sally_19140522"
ACCESSION = "ACC-778899"
STUDY_DATE, BIRTH_DATE, ACQUIRED = "20260101", "19140522", "20251231"
FREE_TEXT = "Screening for Sally Smith"
METHOD = {"113100", "113107", "113108"}  # Basic Profile, Modified Dates, Patient Characteristics (CID 7050)
LESIONS = {"R-CC": (600, 500), "L-CC": (800, 250), "R-MLO": (700, 450), "L-MLO": (500, 300)}


# full length: a short UID under pydicom's root would be the start of about one generated UID in a hundred, and a
# fresh UID of the de-identified copy would then "contain" it
FRAME_UID = "1.2.826.0.1.3680043.8.498.77000000000000000000000000000000000077"  # 64 characters, the most a UID has


@pytest.fixture(scope="module")
def named_exam(tmp_path_factory):
    """(the batch folder, the exam folder ``Smith_Sally_19140522``, every original string to look for)."""
    root = tmp_path_factory.mktemp("exams")
    folder = root / FOLDER
    folder.mkdir()
    originals = {FOLDER, "Smith", "Sally", ACCESSION, STUDY_DATE, BIRTH_DATE, ACQUIRED, STUDY_UID, PATIENT_ID,
                 PATIENT_NAME, PATIENT_NAME.split("^")[0], "100Y", str(folder)}
    for number, (view, lesion) in enumerate(LESIONS.items()):
        ds = make_dataset(synthetic_view(view, lesion), view, StudyDescription=FREE_TEXT,
                          SeriesDescription=f"{view} Smith", ImageComments="Sally Smith, left breast scar",
                          PatientAge="100Y", PatientSex="F", AccessionNumber=ACCESSION, PatientBirthDate=BIRTH_DATE,
                          StudyDate=STUDY_DATE, AcquisitionDate=ACQUIRED, FrameOfReferenceUID=FRAME_UID,
                          BurnedInAnnotation="NO")
        write(ds, folder, f"{number}.dcm")
        originals |= {ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID}
    return root, folder, originals


def _cli(args: list[str], home: Path) -> subprocess.CompletedProcess:
    require_shared()
    return run_main([*args, "--models", str(REFERENCE / "seeded_state_dict.pt"), "--percent-t", "0.02", "--device",
                     "cpu", "--deidentify"], env={"MAMMO_READER_HOME": str(home)})


def _pdf_texts(data: bytes) -> list[bytes]:
    """A PDF's decompressed streams, its extracted text and its metadata."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    out = [" ".join(str(v) for v in (reader.metadata or {}).values()).encode()]
    out += [page.extract_text().encode() for page in reader.pages]
    for number in range(1, int(reader.trailer["/Size"])):
        try:
            obj = reader.get_object(number)
        except Exception:  # noqa: BLE001 - a number that names no object
            continue
        if hasattr(obj, "get_data"):
            try:
                out.append(obj.get_data())
            except Exception:  # noqa: BLE001 - an image stream pypdf does not decode: its raw bytes are read
                pass
    return out


def _png_texts(data: bytes) -> list[bytes]:
    """The text chunks of a PNG (tEXt, and zTXt / iTXt decompressed)."""
    out, at = [], 8
    while at + 8 <= len(data):
        length, kind = int.from_bytes(data[at:at + 4], "big"), data[at + 4:at + 8]
        body = data[at + 8:at + 8 + length]
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            out.append(body)
            if kind == b"zTXt":
                out.append(zlib.decompress(body[body.index(b"\0") + 2:]))
            elif kind == b"iTXt" and body[body.index(b"\0") + 1] == 1:
                rest = body[body.index(b"\0") + 3:]
                rest = rest[rest.index(b"\0") + 1:]
                out.append(zlib.decompress(rest[rest.index(b"\0") + 1:]))
        at += 12 + length
    return out


def _contents(path: Path) -> list[bytes]:
    """Everything of ``path`` a reader could see: its bytes, and what compression or encoding hides."""
    data = path.read_bytes()
    out = [data]
    if path.suffix == ".pdf":
        out += _pdf_texts(data)
    elif path.suffix == ".png":
        out += _png_texts(data)
    elif path.suffix == ".npz" or zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            out += [name.encode() for name in archive.namelist()] + [archive.read(n) for n in archive.namelist()]
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        for column in table.columns:
            if str(column.type) in ("string", "large_string"):
                out.append("\n".join(str(v) for v in column.to_pylist()).encode())
    elif path.suffix == ".dcm":
        ds = pydicom.dcmread(path)
        if "EncapsulatedDocument" in ds:
            out += _pdf_texts(bytes(ds.EncapsulatedDocument)[: ds.EncapsulatedDocumentLength])
    return out


def assert_nothing_original(out: Path, originals: set[str]) -> list[Path]:
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files
    for path in files:
        name = str(path.relative_to(out))
        for original in originals:
            assert original not in name, (name, original)
        for content in _contents(path):
            for original in originals:
                for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
                    assert original.encode(encoding) not in content, (name, original, encoding)
    return files


def check_dicom(files: list[Path], folder: Path, key: bytes) -> None:
    """The de-identified images stand in for the sources; SR, SEG and ePDF reference only them; every file
    declares the profile and options; the dates moved by the patient's one offset; dciodvfy is clean."""
    images = {p: pydicom.dcmread(p) for p in files if p.name.endswith("_image.dcm")}
    assert len(images) == 4
    sops = {ds.SOPInstanceUID for ds in images.values()}
    studies = {ds.StudyInstanceUID for ds in images.values()}
    assert len(studies) == 1
    offset = Deidentifier(key).date_offset(PATIENT_ID)
    shifted = (datetime.date(2026, 1, 1) + offset).strftime("%Y%m%d")
    originals = {p.name: pydicom.dcmread(p) for p in folder.glob("*.dcm")}
    for path, ds in images.items():
        assert ds.PatientAge == "090Y" and ds.PatientSex == "F" and ds.StudyDate == shifted
        assert ds.PatientBirthDate == "" and ds.AccessionNumber == ""
        for keyword in ("StudyDescription", "SeriesDescription", "ImageComments"):
            assert keyword not in ds
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        source = next(s for s in originals.values() if Deidentifier(key).uid(s.SOPInstanceUID) == ds.SOPInstanceUID)
        assert ds.pixel_array.tobytes() == source.pixel_array.tobytes()
        # the test files are not complete MG objects: the copy may have the source's errors, never new ones
        original_errors = {e.split(" - ")[-1] for e in dciodvfy(next(folder.glob("*.dcm")))}
        assert {e.split(" - ")[-1] for e in dciodvfy(path)} <= original_errors, path.name
    dicoms = [p for p in files if p.suffix == ".dcm"]
    for path in dicoms:
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES" and ds.StudyInstanceUID in studies, path.name
        assert {item.CodeValue for item in ds.DeidentificationMethodCodeSequence} == METHOD, path.name
        assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
        if not path.name.endswith("_image.dcm"):
            assert dciodvfy(path) == [], path.name
            assert ds.StudyDate == shifted, path.name
    sr = pydicom.dcmread(next(p for p in dicoms if p.name.endswith("_sr.dcm")))
    evidence = {sop.ReferencedSOPInstanceUID for study in sr.CurrentRequestedProcedureEvidenceSequence
                for series in study.ReferencedSeriesSequence for sop in series.ReferencedSOPSequence}
    assert evidence == sops
    referenced = {e.value for e in sr.iterall() if e.keyword == "ReferencedSOPInstanceUID"}
    assert referenced <= sops | {sr.SOPInstanceUID} and referenced & sops
    segs = [pydicom.dcmread(p) for p in dicoms if p.name.endswith("_seg.dcm")]
    assert len(segs) == 4
    for seg in segs:
        refs = {i.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
        assert refs and refs <= sops
        image = next(ds for ds in images.values() if ds.SOPInstanceUID in refs)
        assert seg.FrameOfReferenceUID == image.FrameOfReferenceUID


def test_age_over_89_is_written_as_90():
    assert [capped_age(a) for a in ("100Y", "089Y", "090Y", "095M", "999M", "040W", "bad")] == \
        ["090Y", "089Y", "090Y", "095M", "999M", "040W", None]


def test_the_same_original_gets_the_same_replacement_and_keys_differ(tmp_path):
    key = site_key(tmp_path)
    assert site_key(tmp_path) == key and (tmp_path / "deidentify.key").stat().st_mode & 0o777 == 0o600
    one, other = Deidentifier(key), Deidentifier(site_key(tmp_path / "other"))
    assert one.uid(STUDY_UID) == Deidentifier(key).uid(STUDY_UID) != other.uid(STUDY_UID)
    assert pydicom.uid.UID(one.uid(STUDY_UID)).is_valid and len(one.uid(STUDY_UID)) <= 64
    assert one.date_offset("A") == one.date_offset("A") and one.date_offset("A").days <= -365


def test_report_command_deidentified_in_every_format_leaks_nothing(named_exam, tmp_path):
    root, folder, originals = named_exam
    out, home = tmp_path / "out", tmp_path / "home"
    done = _cli(["report", str(folder), "--out", str(out), "--format", "pdf,png,json,sr,seg,epdf"], home)
    assert done.returncode == 0, done.stdout + done.stderr
    files = assert_nothing_original(out, originals)
    assert {p.suffix for p in files} >= {".pdf", ".png", ".json", ".dcm", ".npz"}
    check_dicom(files, folder, site_key(home))
    assert_no_true_file_times(out)


def assert_no_true_file_times(out: Path) -> None:
    """Every file and folder of a de-identified output carries the one de-identified time: the true time a file
    was written, beside the shifted dates inside it, gave the patient's date offset away (a privacy review)."""
    from inference.files import DEIDENTIFIED_FILE_TIME

    for path in [out, *out.rglob("*")]:
        if path.name.endswith(".lock"):
            continue  # the run's lock, released and left empty: no exam's
        assert path.stat().st_mtime == DEIDENTIFIED_FILE_TIME, path


def test_batch_deidentified_leaks_nothing_in_its_table_journal_markers_or_folders(named_exam, tmp_path):
    root, folder, originals = named_exam
    out, home = tmp_path / "out", tmp_path / "home"
    done = _cli(["batch", str(root), "--out", str(out), "--format", "json,sr,seg"], home)
    assert done.returncode == 0, done.stdout + done.stderr
    for text in (done.stdout, done.stderr):
        assert FOLDER not in text
    files = assert_nothing_original(out, originals)
    names = {p.relative_to(out).parts[0] for p in files}
    assert {"scores.parquet", ".batch"} <= names and any(n.startswith("anon-") for n in names)
    # one pseudonym for the exam in its folder, its files, its report and the table (two different ones before)
    import json as _json

    import pyarrow.parquet as pq

    (exam_id,) = set(pq.read_table(out / "scores.parquet").column("exam_id").to_pylist())
    report = next((out / exam_id).glob("*.json"))
    assert report.name == f"{exam_id}.json" and _json.loads(report.read_text())["exam"] == exam_id
    assert (out / ".batch" / "journal.csv").is_file() and list((out / ".batch" / "done").glob("*.json"))
    # no true time beside the pseudonym and the shifted study date: together they gave the date offset away
    assert all(line.split(",")[0] == "" for line in (out / ".batch" / "journal.csv").read_text().splitlines())
    assert_no_true_file_times(out)
    check_dicom(files, folder, site_key(home))
    again = _cli(["batch", str(root), "--out", str(out), "--format", "json,sr,seg"], home)
    assert "1 already done (skipped)" in again.stdout  # the label is stable: a rerun resumes


def test_a_cbis_style_exam_deidentified_has_one_pseudonymous_patient_and_no_id_in_its_notes(tmp_path):
    """CBIS-DDSM gives each view's file its own PatientID ("Mass-Test_P_00820_LEFT_CC"): the intake takes them
    as one patient, but the de-identified copies got four pseudonyms and four date shifts, and the report's
    notes ("such as Mass-Test_P_00820_LEFT_CC") named the patient."""
    from app.report.content import ReportInput
    from app.report.export import export_report
    from inference.intake.exam import load_exam
    from inference.pipeline import analyze_exam
    from tests.helpers import make_stub_model

    folder = tmp_path / "exam"
    folder.mkdir()
    for number, (view, lesion) in enumerate(LESIONS.items()):
        side, projection = {"R": "RIGHT", "L": "LEFT"}[view[0]], view.split("-")[1]
        ds = make_dataset(synthetic_view(view, lesion), view, PatientID=f"Mass-Test_P_00820_{side}_{projection}",
                          BurnedInAnnotation="NO")
        write(ds, folder, f"{number}.dcm")
    exam = load_exam(folder)
    assert exam.patient.patient_id == "P_00820" and any("P_00820" in w for w in exam.warnings)
    result = analyze_exam(exam, make_stub_model(), device="cpu")
    out = tmp_path / "out"
    files = export_report(ReportInput(exam, result, deidentify=True), out, ["pdf", "json", "sr"], "A4")
    assert_nothing_original(out, {"P_00820", "Mass-Test", str(folder)})
    images = [pydicom.dcmread(p) for p in files if p.name.endswith("_image.dcm")]
    assert len(images) == 4 and len({ds.PatientID for ds in images}) == 1
    assert len({ds.StudyDate for ds in images}) == 1  # one date shift: the patient's
    sr = pydicom.dcmread(next(p for p in files if p.suffix == ".dcm" and not p.name.endswith("_image.dcm")))
    assert sr.PatientID == images[0].PatientID
    # the same through the report command (the batch's unit) and an exam stripped of its patient: the command
    # stripped the exam before the report, which then took each file's own ID (four pseudonyms) and kept the note
    stripped = exam.deidentify()
    assert not any("P_00820" in note for note in (*stripped.warnings, *(w for i in stripped.views.values()
                                                                         for w in i.warnings)))
    home, by_command = tmp_path / "home", tmp_path / "by_command"
    done = _cli(["report", str(folder), "--out", str(by_command), "--format", "json,sr,seg"], home)
    assert done.returncode == 0, done.stdout + done.stderr
    files = assert_nothing_original(by_command, {"P_00820", "Mass-Test", str(folder)})
    written = [pydicom.dcmread(p) for p in files if p.suffix == ".dcm"]
    assert len(written) >= 9 and len({ds.PatientID for ds in written}) == 1  # images, SEGs and the SR
    assert len({ds.StudyDate for ds in written if ds.Modality == "MG"}) == 1
    assert written[0].PatientID == Deidentifier(site_key(home)).patient("P_00820")


@pytest.mark.parametrize("sex, weight, kept_sex, kept_weight", [
    ("female Testperson", b"heav", "", None), ("W", b"NaN ", "", None), (" f", b"61.5", "F", 61.5)])
def test_the_retained_characteristics_keep_only_valid_values(tmp_path, sex, weight, kept_sex, kept_weight):
    """Seen by a privacy reviewer: PatientSex "female Testperson" was copied into the de-identified image and
    the export then failed ("'female Testperson' is not a valid PatientSexValues"), its other files left behind;
    a sex of "W" failed every de-identified export of the exam."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of the invalid values it reads: what this test is about
        ds = make_dataset(synthetic_view("L-CC", (800, 250)), "L-CC", PatientSex=sex, PatientWeight="61.5")
        write(ds, tmp_path, "a.dcm")
        raw = (tmp_path / "a.dcm").read_bytes()  # a weight as a file may hold it: pydicom writes numbers only
        (tmp_path / "a.dcm").write_bytes(raw.replace(b"61.5", weight, 1))
        clean = Deidentifier(site_key(tmp_path)).dataset(pydicom.dcmread(tmp_path / "a.dcm"))
    assert clean.PatientSex == kept_sex
    assert (float(clean.PatientWeight) if "PatientWeight" in clean else None) == kept_weight
    assert "Testperson" not in str(clean)


def test_a_structured_report_of_an_exam_whose_sex_is_no_dicom_value_is_written(tmp_path):
    """A sex of "W" (not M, F or O) or a birth date "17.03.51" failed the SR and SEG of the exam, identified or
    not ("Unable to convert '17.03.51' to 'DA' object" quoted the date in failures.csv)."""
    import warnings

    from app.report.content import ReportInput
    from app.report.export import export_report
    from inference.intake.exam import load_exam
    from inference.pipeline import analyze_exam
    from tests.helpers import make_stub_model

    folder = tmp_path / "exam"
    folder.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, view, lesion in (("a.dcm", "R-CC", (600, 500)), ("b.dcm", "L-CC", (800, 250))):
            ds = make_dataset(synthetic_view(view, lesion), view, PatientSex="W", PatientBirthDate="19510317")
            ds.StudyInstanceUID = STUDY_UID
            write(ds, folder, name)
            raw = (folder / name).read_bytes()  # a birth date as some modalities write it
            (folder / name).write_bytes(raw.replace(b"19510317", b"17.03.51"))
        exam = load_exam(folder)
        result = analyze_exam(exam, make_stub_model(), device="cpu")
        for deidentify in (False, True):
            paths = export_report(ReportInput(exam.deidentify() if deidentify else exam, result, deidentify=deidentify),
                                  tmp_path / str(deidentify), formats=("sr", "seg"))
            sr = pydicom.dcmread(next(p for p in paths if p.name.endswith("_sr.dcm")))
            assert sr.PatientSex == "" and sr.PatientBirthDate == ""


def test_a_deidentified_report_s_own_dates_move_with_the_patient_s_dates(named_exam, tmp_path, monkeypatch):
    """Seen by a privacy reviewer: the study date was shifted, but "Read on" and the SR's, SEG's and ePDF's content
    and creation dates were today's: a report is made near its exam, so the two gave the patient's offset away,
    and with it every shifted date of that patient's exports."""
    from pypdf import PdfReader

    from app.report.content import ReportInput
    from app.report.export import export_report
    from inference.intake.exam import load_exam
    from inference.pipeline import analyze_exam
    from tests.helpers import make_stub_model

    _root, folder, _originals = named_exam
    monkeypatch.setenv("MAMMO_READER_HOME", str(tmp_path / "home"))
    exam = load_exam(folder)
    result = analyze_exam(exam, make_stub_model(), device="cpu")
    read_at = datetime.datetime(2020, 1, 2, 10, 30)  # far from today: a date of now() shows as one
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("the reader's own file")  # the reader's own folder (review)
    paths = export_report(ReportInput(exam, result, deidentify=True, read_at=read_at), tmp_path / "out",
                          formats=("pdf", "sr", "seg", "epdf"))
    from inference.files import DEIDENTIFIED_FILE_TIME

    assert all(p.stat().st_mtime == DEIDENTIFIED_FILE_TIME for p in paths)
    assert (tmp_path / "out").stat().st_mtime != DEIDENTIFIED_FILE_TIME  # the folder is the reader's: left
    moved = read_at + Deidentifier(site_key(tmp_path / "home")).date_offset(PATIENT_ID)
    for path in (p for p in paths if p.suffix == ".dcm" and not p.name.endswith("_image.dcm")):
        ds = pydicom.dcmread(path)
        for keyword in ("ContentDate", "InstanceCreationDate", "SeriesDate"):
            assert ds.get(keyword) in (None, moved.strftime("%Y%m%d")), (path.name, keyword)
        assert ds.get("AcquisitionDateTime") in (None, moved.strftime("%Y%m%d%H%M%S"))
        written = " ".join(str(e.value) for e in ds.iterall() if e.VR in ("DA", "DT"))
        assert "20200102" not in written and datetime.date.today().strftime("%Y%m%d") not in written, path.name
    pdf = next(p for p in paths if p.suffix == ".pdf")
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    # no reader's read: the report's time, said as such
    assert f"Reported on {moved:%Y-%m-%d %H:%M}" in " ".join(text.split()) and "2020-01-02" not in text
    assert str(datetime.date.today().year) not in str(PdfReader(pdf).metadata.get("/CreationDate"))


def test_a_deidentified_json_s_amendment_time_moves_with_read_on(tmp_path, monkeypatch):
    """Found in review: "Read on" was shifted, the amendment's time beside it was not; their difference was the
    patient's date offset."""
    import dataclasses
    import time

    from app.report.content import ReportContent, ReportInput
    from app.report.json_report import report_dict
    from app.study.store import BreastRead
    from inference.intake.exam import load_exam

    monkeypatch.setenv("MAMMO_READER_HOME", str(tmp_path / "home"))
    (tmp_path / "exam").mkdir()
    for view, lesion in (("L-CC", (800, 250)), ("R-CC", (600, 500))):
        ds = make_dataset(synthetic_view(view, lesion), view)
        ds.StudyInstanceUID = STUDY_UID
        write(ds, tmp_path / "exam", f"{view}.dcm")
    exam = load_exam(tmp_path / "exam")
    now = time.time()
    first = dataclasses.replace(BreastRead("R", 0.8, committed=True, recorded_at=now - 60),
                                amendment=BreastRead("R", 0.3, committed=True, recorded_at=now))
    read_at = datetime.datetime.fromtimestamp(now).replace(microsecond=0)
    for deidentify in (False, True):
        document, _ = report_dict(ReportContent(ReportInput(exam, None, {"R": first}, deidentify=deidentify,
                                                            read_at=read_at)))
        read_on = datetime.datetime.strptime(document["header"]["Read on"], "%Y-%m-%d %H:%M")
        amended = datetime.datetime.fromisoformat(document["reads"]["R"]["amended_after_ai"]["amended_at"])
        assert abs(amended - read_on) < datetime.timedelta(minutes=2)
        assert (read_on.date() == read_at.date()) != deidentify


def test_the_reader_s_comments_are_left_out_of_a_de_identified_report_and_that_is_said(tmp_path, monkeypatch):
    """A security review typed "Mrs Zebulon Quixote MRN77889911 born 1945-03-17" into the export's comments with
    De-identify ticked: the PDF's text and the JSON held it, verbatim."""
    from pypdf import PdfReader

    from app.report.content import COMMENTS_LEFT_OUT, ReportInput
    from app.report.export import export_report
    from inference.intake.exam import load_exam

    monkeypatch.setenv("MAMMO_READER_HOME", str(tmp_path / "home"))
    (tmp_path / "exam").mkdir()
    write(make_dataset(synthetic_view("L-CC", (800, 250)), "L-CC"), tmp_path / "exam", "l.dcm")
    exam = load_exam(tmp_path / "exam")
    comment = "Mrs Zebulon Quixote MRN77889911 born 1945-03-17"
    for deidentify in (True, False):
        out = tmp_path / f"out-{deidentify}"
        written = export_report(ReportInput(exam, None, comments=comment, deidentify=deidentify), out,
                                formats=("pdf", "json"))
        pdf = next(p for p in written if p.suffix == ".pdf")
        text = " ".join(" ".join(page.extract_text().split()) for page in PdfReader(pdf).pages)
        document = json.loads(next(p for p in written if p.suffix == ".json").read_text())
        if deidentify:
            assert "Quixote" not in text and "MRN77889911" not in text and COMMENTS_LEFT_OUT in text
            assert document["comments"] == COMMENTS_LEFT_OUT
            assert all(b"Quixote" not in p.read_bytes() for p in written)
        else:
            assert comment in text and document["comments"] == comment


def test_the_export_dialog_closes_the_comments_while_de_identify_is_ticked(qtbot):
    from app.ui.workstation.export_dialog import ExportDialog

    dialog = ExportDialog("/tmp", has_dicom=False)
    qtbot.addWidget(dialog)
    dialog.comments.setPlainText("kept for an identified export")
    dialog.deidentify.setChecked(True)
    assert not dialog.comments.isEnabled() and "left out of a de-identified report" in dialog.comments.toolTip()
    dialog.deidentify.setChecked(False)
    assert dialog.comments.isEnabled() and dialog.comments.toPlainText() == "kept for an identified export"


def test_text_the_profile_table_does_not_list_is_removed_and_the_file_meta_keeps_no_sender(tmp_path):
    """The Basic Profile's table keeps what it does not name: a birth date in another calendar, an HL7 instance
    identifier, procedure-step comments and a device ID passed into the de-identified images, SR and SEG, and the
    file meta kept the sender's AE title. What an image needs (coded views, the make, window names) stays."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = make_dataset(synthetic_view("L-CC", (600, 300)), "L-CC", Manufacturer="ACME",
                      PatientBirthDateInAlternativeCalendar="1371-10-02 ALTBDZ", HL7InstanceIdentifier="HL7Z^PIDZ",
                      CommentsOnTheScheduledProcedureStep="CSPSZ anxious", DeviceID="DEVIDZ4411",
                      WindowCenter=2000, WindowWidth=4000, WindowCenterWidthExplanation="STANDARD")
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "123", "99LOCAL", "note"
    item.TextValue = "ZYXWVU seen in clinic"  # text in a sequence the table does not list either
    ds.ContentSequence = Sequence([item])
    ds.file_meta.SourceApplicationEntityTitle = "SRCAEZ"
    # identifiers the table lists, inside sequences (it acts on the top level only), and other carriers
    equipment = Dataset()
    equipment.InstitutionName, equipment.OperatorsName = "CEQINSTZ Hospital", "CEQOPZ^Jo"
    request = Dataset()
    request.AccessionNumber, request.RequestedProcedureID = "ACCNESTZ", "RPIDZ"
    ds.ContributingEquipmentSequence, ds.ReferencedRequestSequence = Sequence([equipment]), Sequence([request])
    region = Dataset()
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = "76752008", "SCT", "Breast"
    region.PatientName = "ANATPNZ^Jo"  # a name inside a sequence an image needs
    ds.AnatomicRegionSequence = Sequence([region])
    ds.ViewCodeSequence[0].PatientName = "VIEWPNZ^Jo"
    ds.PatientBirthTime, ds.ICCProfile = "031245", b"ICCZ profile of Jo"
    ds.add_new(0x60000022, "LO", "OVLZ Jo's overlay")  # Overlay Description
    ds.add_new(0x00109999, "UN", b"UNPUBZ Jo")
    clean = Deidentifier(b"k" * 32).dataset(ds)
    path = tmp_path / "clean.dcm"
    clean.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    for needle in (b"ALTBDZ", b"HL7Z", b"CSPSZ", b"DEVIDZ", b"SRCAEZ", b"ZYXWVU", b"CEQINSTZ", b"CEQOPZ", b"ACCNESTZ",
                   b"RPIDZ", b"ANATPNZ", b"VIEWPNZ", b"031245", b"ICCZ", b"OVLZ", b"UNPUBZ"):
        assert needle not in data, needle
    assert clean.Manufacturer == "ACME" and clean.WindowCenterWidthExplanation == "STANDARD"
    assert clean.ViewCodeSequence[0].CodeMeaning == "cranio-caudal"  # coded: kept
    assert clean.AnatomicRegionSequence[0].CodeMeaning == "Breast"
    assert clean.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID


def test_a_valid_mammogram_stays_valid_de_identified(tmp_path):
    """The Position Reference Indicator (Type 2, text the table does not list) was removed, not emptied, and the
    Performed Protocol Code Sequence (optional, one item or more) emptied, not removed: dciodvfy found errors in
    the de-identified copy of an image that had none."""
    from pydicom.dataset import Dataset  # noqa: PLC0415
    from pydicom.sequence import Sequence  # noqa: PLC0415

    from inference.intake.phantom import demo_exam, write_dicom_exam  # noqa: PLC0415

    source = pydicom.dcmread(write_dicom_exam(demo_exam(), tmp_path / "source")[0])
    source.PositionReferenceIndicator = "BREAST"
    protocol = Dataset()
    protocol.CodeValue, protocol.CodingSchemeDesignator, protocol.CodeMeaning = "P1", "99LOCAL", "Screening 4 views"
    source.PerformedProtocolCodeSequence = Sequence([protocol])
    source.save_as(tmp_path / "source.dcm", enforce_file_format=True)
    assert dciodvfy(tmp_path / "source.dcm") == []
    clean = Deidentifier(b"k" * 32).dataset(source)
    clean.save_as(tmp_path / "clean.dcm", enforce_file_format=True)
    assert dciodvfy(tmp_path / "clean.dcm") == []
    assert clean.PositionReferenceIndicator == "" and "PerformedProtocolCodeSequence" not in clean


def test_an_image_with_burned_in_annotation_stops_the_whole_de_identified_export(tmp_path):
    """Only the DICOM writers refused it: the PDF and PNG showed the name written in the pixels."""
    from app.report.content import ReportInput
    from app.report.deidentify import DeidentificationError
    from app.report.export import export_report
    from inference.intake.exam import load_exam

    folder = tmp_path / "exam"
    folder.mkdir()
    for view, lesion in LESIONS.items():
        write(make_dataset(synthetic_view(view, lesion), view, BurnedInAnnotation="YES" if view == "L-MLO" else "NO"),
              folder, f"{view}.dcm")
    exam = load_exam(folder)
    with pytest.raises(DeidentificationError, match="L-MLO: the image has burned-in annotation"):
        export_report(ReportInput(exam, None, deidentify=True), tmp_path / "out", formats=("pdf", "png", "json"))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    assert export_report(ReportInput(exam, None), tmp_path / "named", formats=("json",))  # not de-identified: as is
    # unsaid in a mammogram (required there) or said otherwise than NO is no NO; a Secondary Capture need not say
    for value, says in ((None, "does not say whether it has burned-in annotation"), (["NO", "YES"], "has burned-in"),
                        ("MAYBE", "gives BurnedInAnnotation as 'MAYBE', not NO")):
        ds = make_dataset(synthetic_view("L-MLO", LESIONS["L-MLO"]), "L-MLO")
        if value is None:
            del ds.BurnedInAnnotation
        else:
            ds.BurnedInAnnotation = value
        write(ds, folder, "L-MLO.dcm")
        with pytest.raises(DeidentificationError, match=says):
            export_report(ReportInput(load_exam(folder), None, deidentify=True), tmp_path / "out", formats=("json",))
    from app.report.deidentify import SECONDARY_CAPTURE, burned_in_problem

    assert burned_in_problem("", SECONDARY_CAPTURE) == "" and burned_in_problem("NO", "1.2.840.10008.5.1.4.1.1.1.2") == ""


def test_without_highdicom_s_tables_de_identification_says_so_and_keeps_its_old_handling(monkeypatch, caplog):
    """highdicom's tables of the standard are a private module: should a release move them, the copies keep the
    earlier handling (no Type 2 attribute known) and the log says so, once per SOP class."""
    import builtins  # noqa: PLC0415

    from app.report import deidentify  # noqa: PLC0415

    real_import = builtins.__import__

    def no_tables(name, *args, **kwargs):
        if name == "highdicom._standard_utils":
            raise ImportError("moved")
        return real_import(name, *args, **kwargs)

    deidentify.iod_type2.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_tables)
    try:
        assert deidentify.iod_type2("1.2.840.10008.5.1.4.1.1.1.2") is None
    finally:
        monkeypatch.setattr(builtins, "__import__", real_import)
        deidentify.iod_type2.cache_clear()
    assert "highdicom's tables of the standard could not be read (ImportError)" in caplog.text
    assert "PositionReferenceIndicator" in deidentify.iod_type2("1.2.840.10008.5.1.4.1.1.1.2")


def test_a_de_identified_run_s_failure_says_on_the_terminal_which_exam_given_it_was(tmp_path):
    """A de-identified report of several exams said "FAILED anon-3aa… (anon-3aa…): R-CC: the image has burned-in
    annotation": nothing the operator could trace to the folder to fix. The line says which of the exams given it
    was, by its place (never by its folder: its name may name the patient)."""
    folders = []
    for name, burned in (("exam-one", "NO"), ("exam-two", "YES")):
        folder = tmp_path / name
        folder.mkdir()
        study = pydicom.uid.generate_uid()
        for view in ("R-CC", "L-CC"):
            write(make_dataset(synthetic_view(view, LESIONS[view]), view, BurnedInAnnotation=burned,
                               StudyInstanceUID=study, PatientID=f"PID-{name}"), folder, f"{view}.dcm")
        folders.append(folder)
    done = run_main(["report", *map(str, folders), "--deidentify", "--format", "json", "--out", str(tmp_path / "out")])
    assert done.returncode == 1, done.stdout + done.stderr
    (failed,) = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
    assert "; exam 2 of the 2 given): " in failed and "burned-in annotation" in failed, failed
    assert "exam-two" not in done.stdout  # a folder's name may name the patient
    assert failed.split()[1].startswith("anon-")
    written = "".join(p.read_text(errors="replace") for p in (tmp_path / "out").rglob("*") if p.is_file()
                      and p.suffix in (".csv", ".json"))
    assert str(folders[1]) not in written and "exam-two" not in written
