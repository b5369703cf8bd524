"""Reports without Qt: PDF, PNG, JSON, DICOM SR; de-identification scanned byte by byte; the batch command."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from app.report.content import DISCLAIMER, ReportContent, ReportInput
from app.report.deidentify import Deidentifier
from app.report.export import ExportIncomplete, export_report
from app.study.store import BreastRead
from inference.intake.exam import load_exam
from inference.intake.views import View
from inference.pipeline import analyze_exam
from tests.conftest import REFERENCE, require_shared
from tests.helpers import dciodvfy, make_stub_model, run_main, synthetic_view
from tests.inference.intake.dicom_factory import PATIENT_ID, PATIENT_NAME, make_dataset, write

ROOT = Path(__file__).resolve().parents[2]
IDENTIFIERS = [PATIENT_NAME, PATIENT_NAME.replace("^", " "), "Testpatient", PATIENT_ID, "19600101", "ACC123"]


@pytest.fixture(scope="module")
def dicom_exam(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exam")
    right = make_dataset(synthetic_view("R-CC", (600, 500)), "R-CC")
    left = make_dataset(synthetic_view("L-CC", (800, 250)), "L-CC")
    left.StudyInstanceUID = right.StudyInstanceUID  # one exam, one study
    write(right, folder, "a.dcm")
    write(left, folder, "b.dcm")
    return folder


@pytest.fixture(scope="module")
def analysed(dicom_exam):
    exam = load_exam(dicom_exam)
    return exam, analyze_exam(exam, make_stub_model(), device="cpu")


def pdf_text(path: Path) -> str:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    return "\n".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))


def test_pdf_is_readable_and_says_what_it_must(analysed, tmp_path):
    exam, result = analysed
    reads = {"R": BreastRead("R", 0.6, birads="4B"), "L": BreastRead("L", 0.05)}
    paths = export_report(ReportInput(exam, result, reads, reader="Dr Reader", comments="Check the right breast."),
                          tmp_path, formats=("pdf",))
    pdf = paths[0]
    assert pdf.stat().st_size < 6_000_000
    text = " ".join(pdf_text(pdf).split())
    assert "Decision support only" in text and "Dr Reader" in text and "ACC123" in text
    assert "hybrid" in text and "Check the right breast." in text and "R-CC" in text
    entry = result.entries[0].id
    hybrid = (0.6 + result.breasts["R"].entries[entry].malignant) / 2
    assert f"{100 * hybrid:.1f} %" in text
    assert "4B" in text and "Reader's assessment" in text
    assert text.index("Right breast") < text.index("Left breast")  # right before left, as on screen
    # what a GMIC region's number follows ("#1 attention 0.243" above "#5 attention 0.322" read as an error)
    assert "numbered by rank (attention: the order the model retrieved its regions, the most salient first" in text
    import pypdfium2 as pdfium

    page = pdfium.PdfDocument(str(pdf))[0]
    assert abs(page.get_width() - 595.3) < 1  # A4 in points
    image = page.render(scale=1.5).to_numpy()
    assert image.std() > 20  # a real page was drawn
    letter = export_report(ReportInput(exam, result), tmp_path / "letter", formats=("pdf",), page_size="Letter")[0]
    assert abs(pdfium.PdfDocument(str(letter))[0].get_width() - 612) < 1


def test_png_figures(analysed, tmp_path):
    exam, result = analysed
    paths = export_report(ReportInput(exam, result), tmp_path, formats=("png",))
    names = [p.name for p in paths]
    assert any(n.endswith("_four_views.png") for n in names) and any(n.endswith("_R-CC.png") for n in names)
    single = cv2.imread(str(next(p for p in paths if p.name.endswith("_R-CC.png"))))
    rows, cols = exam.views["R-CC"].pixels.shape
    band = single.shape[0] - rows
    assert single.shape[1] == cols and 0 < band < rows // 5  # full resolution, under a caption band
    assert (single[2, :, 2] < 100).mean() > 0.5  # the caption band grey, no red demo warning (not the demo)
    from PIL import Image

    with Image.open(next(p for p in paths if p.name.endswith("_R-CC.png"))) as png:  # says what it is inside
        label = next(p for p in paths if p.name.endswith("_R-CC.png")).name.removesuffix("_R-CC.png")
        assert png.text["Title"] == f"{label} R-CC" and png.text["Software"].startswith("Mammo Reader ")
        assert result.entries[0].label in png.text["Description"]
    color = cv2.imread(str(next(p for p in paths if p.name.endswith("_four_views.png"))), cv2.IMREAD_UNCHANGED)
    from app.colours import REGION, bgr

    assert color.ndim == 3 and (np.abs(color.reshape(-1, 3).astype(int) - bgr(REGION)).sum(axis=1) < 40).any()


def test_an_exported_view_png_carries_that_view_s_notices(analysed, tmp_path, monkeypatch):
    """A tall R-MLO's PNG showed its map stopping at a line with nothing saying a third of the breast was not
    analysed (a radiologist's re-test): the view's own notices are in its caption and the four views', another
    view's are not."""
    import app.report.figures as figures  # noqa: PLC0415
    from inference.results import exam_result  # noqa: PLC0415

    exam, result = analysed
    monkeypatch.setattr(exam_result, "shown_notices", lambda r: ["R-CC: 19 % of the breast lies outside the window"])
    captions = []
    real = figures.captioned
    monkeypatch.setattr(figures, "captioned", lambda image, lines, warning="": captions.append(lines) or real(
        image, lines, warning))
    export_report(ReportInput(exam, result), tmp_path, formats=("png",))
    by_view = {lines[0].split(" · ")[-1]: lines for lines in captions}
    assert "R-CC: 19 % of the breast lies outside the window" in by_view["R-CC"]
    assert "R-CC: 19 % of the breast lies outside the window" in by_view["four views"]  # it shows R-CC too
    assert not any("outside the window" in line for line in by_view["L-CC"])


def test_an_exported_png_of_the_demo_model_says_so_on_the_picture(analysed, tmp_path, monkeypatch):
    """The PNGs carried no demo banner and no identification on the picture (only inside the file's text)."""
    from app.report.content import ReportContent  # noqa: PLC0415

    exam, result = analysed
    monkeypatch.setattr(ReportContent, "is_demo", lambda self: True)
    paths = export_report(ReportInput(exam, result), tmp_path, formats=("png",))
    for path in paths:
        picture = cv2.imread(str(path))
        top = picture[2, :, :].astype(int)  # the first caption line: the warning, white text on red
        assert ((top[:, 2] > 120) & (top[:, 1] < 60)).mean() > 0.5, path.name


def test_json_report_holds_the_result_and_reads(analysed, tmp_path):
    exam, result = analysed
    path = export_report(ReportInput(exam, result, {"R": BreastRead("R", 0.4)}), tmp_path, formats=("json",))[0]
    data = json.loads(path.read_text())
    assert data["schema"] == "mammo-reader/report" and data["schema_version"] == "2.5"
    model = data["reads"]["R"]["models"][result.entries[0].id]
    assert model["hybrid_malignant"] == pytest.approx((0.4 + model["model_malignant"]) / 2)
    assert set(data["result"]["views"]) == {"R-CC", "L-CC"} and data["disclaimer"] == DISCLAIMER
    assert (path.parent / data["result"]["maps_file"]).is_file()


def test_structured_report_reads_back_and_references_the_images(analysed, tmp_path):
    import highdicom as hd

    exam, result = analysed
    path = export_report(ReportInput(exam, result), tmp_path, formats=("sr",))[0]
    sr = hd.sr.srread(path)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"
    evidence = {sop.ReferencedSOPInstanceUID for study in sr.CurrentRequestedProcedureEvidenceSequence
                for series in study.ReferencedSeriesSequence for sop in series.ReferencedSOPSequence}
    assert evidence == {img.sop_instance_uid for img in exam.views.values()}
    report = hd.sr.MeasurementReport.from_sequence([sr])
    groups = report.get_planar_roi_measurement_groups()
    # the regions the screen and the PDF show (3 of 6 a view by the stub's rule), not every retrieved patch (a
    # PACS drew six "lesions" where the workstation showed three), each an image region, not a lesion
    content = ReportContent(ReportInput(exam, result))
    assert len(groups) == sum(len(content.shown_regions(view)) for view in exam.views) == 6
    assert all(group.finding_type.meaning == "Image Region" for group in groups)
    # the model named as the PDF names it (hash, mode), in every group
    for group in [*groups, *report.get_image_measurement_groups()]:
        algorithm = [(item.name.meaning, item.value) for item in group[0].ContentSequence
                     if item.name.meaning.startswith("Algorithm")]
        assert ("Algorithm Name", result.entries[0].label) in algorithm
        assert ("Algorithm Version", f"sha256 {result.entries[0].members[0].sha256[:12]}") in algorithm
        assert ("Algorithm Parameters", f"family {result.entries[0].family}") in algorithm
    uids = {img.sop_instance_uid: img for img in exam.views.values()}
    for group in groups:
        region = group.roi
        source_uid = region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        rows, cols = uids[source_uid].pixels.shape
        points = np.asarray(region.value).reshape(-1, 2)
        assert points[:, 0].min() >= 0 and points[:, 0].max() <= cols and points[:, 1].max() <= rows
        names = {m.name.meaning for m in group.get_measurements()}
        # the region's own score alone: with the view's probabilities beside it, a viewer showed a patch of
        # attention 0.12 as "Probability of malignancy 0.91" (a site lead's finding)
        assert names == {"Attention weight of the region"}
    # the view's probabilities in a group of their own, naming the view and referencing its image
    view_groups = [g for g in report.get_image_measurement_groups()
                   if g.tracking_identifier.endswith(" view")]
    assert len(view_groups) == len(exam.views)
    for group in view_groups:
        view = View(group.tracking_identifier.split()[-2])
        referenced = [item.referenced_sop_instance_uid for item in group.source_images]
        assert referenced == [exam.views[view].sop_instance_uid]
        malignant = next(m.value for m in group.get_measurements() if m.name.meaning == "Probability of malignancy")
        assert float(malignant) == pytest.approx(result.views[view].result(result.entries[0].id).probabilities[
            "malignant"], abs=1e-6)


@pytest.mark.parametrize("deidentify", [False, True], ids=["identified", "deidentified"])
def test_structured_report_passes_dciodvfy(analysed, tmp_path, deidentify):
    exam, result = analysed
    path = export_report(ReportInput(exam, result, deidentify=deidentify), tmp_path, formats=("sr",))[0]
    assert dciodvfy(path) == []
    sr = pydicom.dcmread(path)
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99MAMMOREADER"
    if deidentify:
        assert sr.PatientIdentityRemoved == "YES" and sr.DeidentificationMethod


@pytest.mark.parametrize("deidentify", [False, True], ids=["identified", "deidentified"])
def test_encapsulated_pdf_holds_the_report_in_the_exam_study_and_validates(analysed, tmp_path, deidentify):
    exam, result = analysed
    paths = export_report(ReportInput(exam, result, deidentify=deidentify), tmp_path, formats=("pdf", "epdf"))
    pdf_path = next(p for p in paths if p.suffix == ".pdf")
    dcm_path = next(p for p in paths if p.name.endswith("_pdf.dcm"))
    assert dciodvfy(dcm_path) == []
    ds = pydicom.dcmread(dcm_path)
    pdf = pdf_path.read_bytes()
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf" and ds.Modality == "DOC"
    assert bytes(ds.EncapsulatedDocument)[: ds.EncapsulatedDocumentLength] == pdf
    source = pydicom.dcmread(next(iter(exam.views.values())).source, stop_before_pixels=True)
    # beside the images on the PACS (de-identified: beside the export's de-identified images)
    study = Deidentifier().uid(source.StudyInstanceUID) if deidentify else source.StudyInstanceUID
    assert ds.StudyInstanceUID == study
    if deidentify:
        assert ds.PatientIdentityRemoved == "YES" and PATIENT_ID not in str(ds.PatientID)
        assert PATIENT_NAME not in str(ds.PatientName)
    else:
        assert ds.PatientID == PATIENT_ID
    # without "pdf" the PDF is made for the DICOM file only
    only = export_report(ReportInput(exam, result), tmp_path / "only", formats=("epdf",))
    assert [p.name.endswith("_pdf.dcm") for p in only] == [True] and not list((tmp_path / "only").glob("*.pdf"))


@pytest.mark.parametrize("charset, name, written", [
    ("ISO_IR 192", "Müller-Lüdenscheidt^Zoë", "ISO_IR 192"),
    ("ISO_IR 100", "Ångström^Çelik", "ISO_IR 100"),
    ("ISO 2022 IR 13\\ISO 2022 IR 87", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎", ["ISO 2022 IR 13", "ISO 2022 IR 87"]),
    ("\\ISO 2022 IR 87", "Yamada^Tarou=山田^太郎", ["ISO 2022 IR 6", "ISO 2022 IR 87"]),
    ("", "Müller^Zoë", "ISO_IR 100")])
def test_dicom_exports_keep_the_patient_s_name_in_its_character_set(tmp_path, charset, name, written):
    """The Encapsulated PDF copied the names without their character set: "Müller" went out in Latin-1
    undeclared (dciodvfy: invalid character) and a Japanese name as "????" on the PACS. And highdicom refused
    "\\ISO 2022 IR 87" (the default repertoire first, as Japanese modalities write it): no SR, no SEG. A source
    that declares no set but holds Latin-1 bytes (read as Latin-1, as shown) had them copied undeclared into the
    SR, SEG and PDF (dciodvfy: invalid character): they are declared ISO_IR 100, as they were read."""
    folder = tmp_path / "exam"
    folder.mkdir()
    study = pydicom.uid.generate_uid()
    for view, lesion, file in (("R-CC", (600, 500), "a.dcm"), ("L-CC", (800, 250), "b.dcm")):
        ds = make_dataset(synthetic_view(view, lesion), view)
        ds.SpecificCharacterSet, ds.PatientName, ds.StudyInstanceUID = charset, name, study
        if not charset:  # undeclared: the name's Latin-1 bytes as a modality wrote them
            del ds.SpecificCharacterSet
            ds.PatientName = name.encode("latin-1")
        write(ds, folder, file)
    exam = load_exam(folder)
    result = analyze_exam(exam, make_stub_model(), device="cpu")
    import warnings  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydicom's "using replacement characters" would fail here
        paths = export_report(ReportInput(exam, result), tmp_path / "out", formats=("sr", "seg", "epdf"))
    assert {p.name.rsplit("_", 1)[-1] for p in paths} >= {"sr.dcm", "pdf.dcm"}
    for path in (p for p in paths if p.suffix == ".dcm"):
        header = pydicom.dcmread(path, stop_before_pixels=True)
        assert header.SpecificCharacterSet == written and str(header.PatientName) == name, path.name
    assert dciodvfy(next(p for p in paths if p.name.endswith("_pdf.dcm"))) == []
    if not charset:
        assert all(dciodvfy(p) == [] for p in paths if p.suffix == ".dcm")


@pytest.mark.parametrize("deidentify", [False, True], ids=["identified", "deidentified"])
def test_saliency_segmentations_read_back_on_the_source_grid_and_validate(analysed, tmp_path, deidentify):
    import highdicom as hd

    from app.report.content import ReportContent
    from app.report.seg import map_stack

    exam, result = analysed
    report = ReportInput(exam, result, deidentify=deidentify)
    content = ReportContent(report)
    paths = export_report(report, tmp_path, formats=("seg",))
    images = [p for p in paths if p.name.endswith("_image.dcm")]  # de-identified: the images it references
    assert len(images) == (2 if deidentify else 0)
    paths = [p for p in paths if p not in images]
    assert len(paths) == len(result.views) == 2
    for path in paths:
        assert dciodvfy(path) == [], path.name
        seg = hd.seg.segread(path)
        view = next(v for v in exam.views if f"_{v.value}_" in path.name)
        source_uid = exam.views[view].sop_instance_uid
        if deidentify:  # the SEG references the export's de-identified image
            source_uid = Deidentifier().uid(source_uid)
        assert [s.segment_label for s in seg.SegmentSequence] == ["benign map", "malignant map"]
        # the weights as every output names them (it said the software's version)
        algorithm = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
        assert algorithm.AlgorithmVersion == result.entries[0].members[0].weights_id
        maps = seg.get_pixels_by_source_instance([source_uid], segment_numbers=[1, 2])[0]
        classes, expected = map_stack(content, view)
        assert classes == ["benign", "malignant"]
        assert maps.shape == expected.shape == exam.views[view].pixels.shape + (2,)
        assert np.abs(maps - expected).max() <= 0.5 / 255 + 1e-6  # 8-bit fractions, rounded
        assert expected[..., 1].max() > 0.1  # the stub's hot spot is there to be found
        if deidentify:
            assert seg.PatientIdentityRemoved == "YES" and PATIENT_ID not in str(seg.PatientID)


def test_dicom_exports_quote_no_patient_name_in_warnings(tmp_path):
    import warnings

    name = "Mass-Test_P_00173_LEFT_CC"  # a one-component name, as CBIS-DDSM stores it: highdicom quotes those
    ds = make_dataset(synthetic_view("R-CC", (600, 500)), "R-CC")
    ds.PatientName = name
    (tmp_path / "exam").mkdir()
    write(ds, tmp_path / "exam", "a.dcm")
    exam = load_exam(tmp_path / "exam")
    result = analyze_exam(exam, make_stub_model(), device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_report(ReportInput(exam, result), tmp_path / "out", formats=("sr", "seg"))
    assert not [w for w in caught if name in str(w.message)]


def test_dicom_exports_of_a_png_exam_are_refused_with_a_reason(tmp_path):
    from app.report.sr import ReportError

    (tmp_path / "exam").mkdir()
    cv2.imwrite(str(tmp_path / "exam" / "0_R-CC.png"), synthetic_view("R-CC", (600, 500)))
    exam = load_exam(tmp_path / "exam")
    result = analyze_exam(exam, make_stub_model(), device="cpu")
    for fmt in ("sr", "seg"):
        with pytest.raises(ReportError, match="DICOM source images"):
            export_report(ReportInput(exam, result), tmp_path / fmt, formats=(fmt,))


def test_deidentified_export_has_no_identifier_in_any_byte(analysed, tmp_path):
    exam, result = analysed
    clean = exam.deidentify()
    paths = export_report(ReportInput(clean, result, reader="Dr Reader", deidentify=True), tmp_path,
                          formats=("pdf", "png", "json", "sr", "seg"))
    assert len(paths) >= 7
    for path in paths:
        raw = path.read_bytes()
        for identifier in IDENTIFIERS:
            assert identifier.encode() not in raw, (path.name, identifier)
            assert identifier.encode("utf-16-be") not in raw, (path.name, identifier)
        assert "ACC123" not in path.name and "Testpatient" not in path.name
    pdf = next(p for p in paths if p.suffix == ".pdf")
    text = pdf_text(pdf)
    from pypdf import PdfReader

    metadata = " ".join(str(v) for v in (PdfReader(str(pdf)).metadata or {}).values())
    for identifier in IDENTIFIERS:
        assert identifier not in text and identifier not in metadata
    sr = pydicom.dcmread(next(p for p in paths if p.name.endswith("_sr.dcm")))
    values = " ".join(str(e.value) for e in sr.iterall() if e.VR in ("PN", "LO", "SH", "DA", "LT", "ST", "UT"))
    for identifier in IDENTIFIERS:
        assert identifier not in values
    # and without de-identification the name is there: the scan above can see it
    named = export_report(ReportInput(exam, result), tmp_path / "named", formats=("pdf",))[0]
    assert "Testpatient" in pdf_text(named)


def test_batch_command_continues_past_a_bad_exam_and_resumes(dicom_exam, tmp_path):
    bad = tmp_path / "bad_exam"
    bad.mkdir()
    (bad / "x.dcm").write_bytes(b"not dicom")
    out = tmp_path / "out"
    weights = REFERENCE / "seeded_state_dict.pt"
    require_shared()
    args = ["report", str(dicom_exam), str(bad), "--out", str(out), "--models",
            str(weights), "--percent-t", "0.02", "--format", "json,png", "--deidentify", "--device", "cpu"]
    done = run_main(args)
    assert done.returncode == 1
    assert "1 exam(s) reported" in done.stdout and "1 failed" in done.stdout and "FAILED" in done.stdout
    assert "exams/minute" in done.stdout
    # de-identified: the failed exam is named by its label, never by its folder (which may name the patient)
    assert "bad_exam" not in done.stdout and "FAILED anon-" in done.stdout
    again = run_main(args)
    assert "1 already done (skipped)" in again.stdout


def _report_many(exams, model, out, **options):
    """``report EXAM…`` as the command runs it: every file in DIR, incomplete exams reported."""
    from app.archive.run import run_batch
    from app.archive.sources import items_of_exams
    from app.archive.unit import BatchOptions

    force = options.pop("force", False)
    batch_options = BatchOptions(device="cpu", folder_per_exam=False, allow_missing_views=True, **options)
    return run_batch(items_of_exams(exams), [model], out, batch_options, force=force)


def test_batch_records_a_full_disk_for_one_exam_and_goes_on(dicom_exam, tmp_path, monkeypatch):
    import errno

    from app.report import export

    calls = []
    real = export.export_report

    def export_filling_the_disk(report, out, formats, page_size):
        calls.append(report.exam)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(out))
        return real(report, out, formats, page_size)

    monkeypatch.setattr(export, "export_report", export_filling_the_disk)
    other = tmp_path / "other"
    shutil.copytree(dicom_exam, other)
    summary = _report_many([dicom_exam, other], make_stub_model(), tmp_path / "out")
    assert len(summary.failed) == 1 and "the disk is full" in summary.failed[0].reason
    assert [o.location for o in summary.done] == [str(other)] and len(calls) == 2
    failures = (tmp_path / "out" / "failures.csv").read_text()
    assert "the disk is full" in failures and dicom_exam.name in failures


def test_batch_skips_only_what_was_asked_before_and_force_writes_again(dicom_exam, tmp_path):
    model = make_stub_model()
    out = tmp_path / "out"
    first = _report_many([dicom_exam, dicom_exam], model, out, formats=("json",))
    assert [o.location for o in first.done] == [str(dicom_exam)]  # named twice, reported once
    assert [o.location for o in _report_many([dicom_exam], model, out, formats=("json",)).skipped] == [str(dicom_exam)]
    # a de-identified PDF was not asked for before: it is made, not skipped
    other = _report_many([dicom_exam], model, out, formats=("pdf",), deidentify=True)
    assert len(other.done) == 1 and list(out.glob("anon-*.pdf"))
    forced = _report_many([dicom_exam], model, out, formats=("pdf",), deidentify=True, force=True)
    assert len(forced.done) == 1 and not forced.skipped


def test_report_files_are_named_from_the_accession_not_a_uid(analysed, tmp_path):
    exam, result = analysed
    paths = export_report(ReportInput(exam, result), tmp_path, formats=("json",))
    assert paths[0].name == "ACC123.json"
    assert all(len(p.stem) < 40 for p in paths)


def test_an_over_long_name_is_cut_and_a_pdf_that_cannot_be_laid_out_fails_alone(analysed, tmp_path, monkeypatch):
    """A security review's header: a patient name of 20 000 characters made the PDF's header table taller than a
    page; reportlab's LayoutError passed for a bug, and the export removed every format's files."""
    import dataclasses  # noqa: PLC0415

    from app.report import pdf  # noqa: PLC0415

    exam, result = analysed
    long = dataclasses.replace(exam, patient=dataclasses.replace(exam.patient, name="Müller^" + "Zoë" * 7000))
    written = export_report(ReportInput(long, result), tmp_path / "a", formats=("pdf", "json"))
    header = dict(json.loads(next(p for p in written if p.suffix == ".json").read_text())["header"])
    assert len(header["Patient"]) == 324 and header["Patient"].endswith("…")
    # a PDF that still cannot be laid out fails as a format, naming no header text; the JSON is written
    from reportlab.platypus.doctemplate import LayoutError  # noqa: PLC0415

    def too_tall(self, story):
        raise LayoutError("Flowable <Table … 'Müller Zoë…'> too large on page 2")

    monkeypatch.setattr(pdf.SimpleDocTemplate, "build", too_tall)
    with pytest.raises(ExportIncomplete) as raised:
        export_report(ReportInput(long, result), tmp_path / "b", formats=("pdf", "json"))
    assert "PDF failed: the PDF could not be laid out: a part of it is taller than a page" in str(raised.value)
    assert "Müller" not in str(raised.value) and [p.suffix for p in raised.value.written] == [".json", ".npz"]


@pytest.mark.parametrize("accession, name", [("CON", "_CON"), ("lpt1.x", "_lpt1.x"), ("A\x00/../../x", "A_.._.._x"),
                                             ("...", None), ("..", None), (".hidden", "hidden")])
def test_an_accession_is_never_a_path_a_hidden_file_or_a_windows_device(analysed, tmp_path, accession, name):
    """A security review's accessions: "CON" gave CON.pdf (the console on Windows), "..." a hidden "....pdf"."""
    import dataclasses  # noqa: PLC0415

    exam, result = analysed
    exam = dataclasses.replace(exam, accession=accession)
    written = export_report(ReportInput(exam, result), tmp_path / "out", formats=("json",))
    assert {p.parent for p in written} == {tmp_path / "out"}
    stem = next(p for p in written if p.suffix == ".json").stem
    assert stem == name if name else stem.startswith("anon-")  # nothing left of it: the exam's pseudonym


def _png_exam(folder: Path, lesion: tuple[int, int]) -> Path:
    from tests.helpers import write_png  # noqa: PLC0415

    folder.mkdir(parents=True)
    for view in ("L-CC", "R-CC", "L-MLO", "R-MLO"):
        write_png(folder / f"0_{view}.png", synthetic_view(view, lesion, shape=(700, 400)))
    return folder


def test_two_exams_with_one_folder_name_never_overwrite_each_other_s_report(tmp_path):
    """In one run and across runs into the same DIR: each exam keeps its files and its rows in the table."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    first, second = _png_exam(tmp_path / "a" / "exam", (300, 200)), _png_exam(tmp_path / "b" / "exam", (450, 150))
    out = tmp_path / "out"
    args = ["report", "--out", str(out), "--models", str(ROOT / "resources" / "demo" / "model.pt"), "--format", "json",
            "--device", "cpu"]
    done = run_main([*args[:1], str(first), *args[1:]])
    assert done.returncode == 0, done.stderr
    written = json.loads((out / "exam.json").read_text())
    done = run_main([*args[:1], str(second), *args[1:]])
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "exam.json").read_text()) == written  # the first exam's report is untouched
    assert (out / "exam-2.json").is_file()
    assert json.loads((out / "exam-2.json").read_text())["exam"] == "exam"  # the file name is no identity
    table = pq.read_table(out / "scores.parquet").to_pylist()
    assert {(r["exam_id"], r["location"]) for r in table} == {("exam", str(first)), ("exam-2", str(second))}
    # both again in one run: each its own name, nothing written over the other
    done = run_main([*args[:1], str(second), str(first), *args[1:], "--force"])
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.glob("*.json")) == ["exam-2.json", "exam.json"]
    assert json.loads((out / "exam.json").read_text())["exam"] == written["exam"]


def test_a_folder_written_before_name_claims_still_keeps_each_exam_s_files(tmp_path):
    """Markers of an earlier run name its files: a new exam with the same name gets its own name."""
    import shutil as sh  # noqa: PLC0415

    first, second = _png_exam(tmp_path / "a" / "exam", (300, 200)), _png_exam(tmp_path / "b" / "exam", (450, 150))
    out = tmp_path / "out"
    args = ["report", "--out", str(out), "--models", str(ROOT / "resources" / "demo" / "model.pt"), "--format", "json",
            "--device", "cpu"]
    assert run_main([*args[:1], str(first), *args[1:]]).returncode == 0
    written = (out / "exam.json").read_bytes()
    sh.rmtree(out / ".batch" / "labels")  # as a folder written before claims were kept
    assert run_main([*args[:1], str(second), *args[1:]]).returncode == 0
    assert (out / "exam.json").read_bytes() == written and (out / "exam-2.json").is_file()


def test_a_later_report_with_other_models_does_not_mix_them_in_one_table(tmp_path):
    import pyarrow.parquet as pq  # noqa: PLC0415

    first, second = _png_exam(tmp_path / "a" / "exam", (300, 200)), _png_exam(tmp_path / "c" / "other", (450, 150))
    out = tmp_path / "out"
    demo = ROOT / "resources" / "demo"
    for exam, model in ((first, demo / "model.pt"), (second, demo / "sliding_window" / "model.pt")):
        done = run_main(["report", str(exam), "--out", str(out), "--models", str(model), "--format", "json",
                         "--device", "cpu"])
        assert done.returncode == 0, done.stderr
    table = pq.read_table(out / "scores.parquet").to_pylist()
    assert {r["location"] for r in table} == {str(second)} and len({r["model_key"] for r in table}) == 1
    # the hash the screen and the reports show the start of (model_key is another hash, for the cache)
    sha256 = hashlib.sha256((demo / "sliding_window" / "model.pt").read_bytes()).hexdigest()
    assert {r["model_sha256"] for r in table} == {sha256}


def test_a_report_of_two_models_draws_the_one_with_results_and_fits_the_page(analysed, tmp_path):
    """Seen in a review of the outputs: the figure was left empty because the first model had no result on any
    view; "Model seeded_state_dict-2" ran into its value; the reader | model | hybrid table's "hybrid (…)"
    columns ran off the page; the study date was printed as DICOM's 20260115."""
    import dataclasses

    import pypdfium2 as pdfium

    from app.report.content import ReportContent
    from app.report.pdf import _reader_table
    from inference.pipeline import analyze_exam as analyse
    from inference.results.exam_result import breast_results, exam_decisions
    from reportlab.lib.styles import getSampleStyleSheet

    exam, _ = analysed
    stub = make_stub_model()
    other = dataclasses.replace(stub, identity=dataclasses.replace(stub.identity, sha256="feedbeef" * 8,
                                                                    path="/m/other.pt"))
    result = analyse(exam, [stub, other], device="cpu")
    first = result.entries[0]
    views = {v: dataclasses.replace(r, entries={k: e for k, e in r.entries.items() if k != first.id},
                                    no_result={first.id: "values beyond the declared maximum"})
             for v, r in result.views.items()}
    breasts = breast_results(views, result.entries)
    result = dataclasses.replace(result, views=views, breasts=breasts, exam=exam_decisions(breasts, result.entries))
    content = ReportContent(ReportInput(exam, result))
    assert content.entry.id == result.entries[1].id  # drawn: the one with results
    fields = dict(content.header_fields())
    assert {"Model 1", "Model 2"} <= set(fields) and fields["Model 2"].startswith("gmic · feedbeef = ")
    if exam.study_date:
        assert "-" in fields["Study date"]
    width = 18.0
    table = _reader_table(content, width, getSampleStyleSheet()["Normal"])
    assert abs(sum(table._colWidths) / 28.3465 - width) < 0.01  # noqa: SLF001 - the columns share the page
    pdf = export_report(ReportInput(exam, result), tmp_path, formats=("pdf",))[0]
    text = " ".join(pdf_text(pdf).split())
    assert "hybrid (gmic · feedbeef)" in text or "hybrid (gmic ·" in text
    page = pdfium.PdfDocument(str(pdf))[0]
    assert page.get_width() < 600


def test_report_command_with_a_reader_carries_that_reader_s_committed_read(dicom_exam, tmp_path):
    """'report EXAM --reader NAME' printed "Reader —" in every cell for an exam the reader had read and
    committed in the workstation (its export showed the read): the command never looked at the store."""
    from app.analysis import claimed_exam_key
    from app.study.store import Store

    require_shared()
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    store = Store(home / "mammo_reader.sqlite")
    key = claimed_exam_key(store, load_exam(dicom_exam))
    store.save_reads(key, "dr A", [BreastRead("R", 0.7, birads="4A", committed=True),
                                   BreastRead("L", 0.1, birads="1", committed=True)]).result()
    store.save_reads(key, "dr B", [BreastRead("R", 0.3, birads="2")]).result()  # a draft: no read to report
    store.close()
    env = {"MAMMO_READER_HOME": str(home)}
    for reader, out in (("dr A", tmp_path / "a"), ("dr B", tmp_path / "b")):
        done = run_main(["report", str(dicom_exam), "--out", str(out), "--models",
                         str(REFERENCE / "seeded_state_dict.pt"), "--percent-t", "0.02", "--format", "json",
                         "--reader", reader, "--device", "cpu"], env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    read = json.loads(next((tmp_path / "a").glob("*.json")).read_text())
    assert read["header"]["Reader"] == "dr A"
    assert (read["reads"]["R"]["reader_malignant"], read["reads"]["R"]["birads"]) == (0.7, "4A")
    assert read["reads"]["L"]["reader_malignant"] == 0.1 and read["reads"]["R"]["models"]
    draft = json.loads(next((tmp_path / "b").glob("*.json")).read_text())
    assert draft["reads"]["R"]["reader_malignant"] is None
    # dr B commits later: the report made again has it (the first run's marker held it as done)
    store = Store(home / "mammo_reader.sqlite")
    store.save_reads(key, "dr B", [BreastRead("R", 0.3, birads="2", committed=True)]).result()
    store.close()
    done = run_main(["report", str(dicom_exam), "--out", str(tmp_path / "b"), "--models",
                     str(REFERENCE / "seeded_state_dict.pt"), "--percent-t", "0.02", "--format", "json",
                     "--reader", "dr B", "--device", "cpu"], env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    again = json.loads(next((tmp_path / "b").glob("*.json")).read_text())
    assert again["reads"]["R"]["reader_malignant"] == 0.3


def test_a_deidentified_json_report_names_no_file_in_its_views_notes(analysed, tmp_path):
    """Seen by a privacy reviewer: a de-identified JSON said "POSSIBLE LATERALITY ERROR: Testperson_PID987654_L-CC.dcm
    is labelled L-CC …" in the view's uncounted_reason (the PDF, SR and SEG had it scrubbed)."""
    import dataclasses
    import json

    from inference.intake.views import View

    exam, result = analysed
    said = f"POSSIBLE LATERALITY ERROR: b.dcm of {PATIENT_ID} is labelled L-CC"
    views = dict(result.views)
    views[View.L_CC] = dataclasses.replace(views[View.L_CC], counted=False, uncounted_reason=said,
                                           warnings=(said,), no_result={"other": said})
    result = dataclasses.replace(result, views=views)
    paths = export_report(ReportInput(exam, result, deidentify=True), tmp_path, formats=("json",))
    text = next(p for p in paths if p.suffix == ".json").read_text()
    view = json.loads(text)["result"]["views"]["L-CC"]
    assert view["uncounted_reason"].startswith("POSSIBLE LATERALITY ERROR: … of … is labelled L-CC")
    assert "b.dcm" not in text and PATIENT_ID not in text


def test_an_export_that_fails_unexpectedly_leaves_no_file_of_it(analysed, tmp_path, monkeypatch):
    """Seen by a privacy reviewer: an exam recorded FAILED (a ValueError from the SR) kept its PDF, PNGs and JSON,
    which then passed for its report."""
    from app.report import export

    def broken(*_args):
        raise ValueError("a bug")

    monkeypatch.setitem(export._WRITERS, "sr", broken)
    exam, result = analysed
    with pytest.raises(ValueError, match="a bug"):
        export_report(ReportInput(exam, result), tmp_path, formats=("pdf", "png", "json", "sr"))
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_fails_inside_a_writer_leaves_none_of_that_writer_s_files(analysed, tmp_path, monkeypatch):
    """Found in review: the JSON writer wrote its maps file, then failed on the document: the maps file stayed."""
    import json

    def broken(*_args, **_kwargs):
        raise ValueError("not JSON")

    exam, result = analysed
    (tmp_path / "other_exam.pdf").write_bytes(b"another exam's report")
    # another exam whose name begins with this one's, written a moment before (found in review: deleted too)
    (tmp_path / "ACC123_followup.pdf").write_bytes(b"another exam's report")
    monkeypatch.setattr(json, "dumps", broken)
    with pytest.raises(ValueError, match="not JSON"):
        export_report(ReportInput(exam, result), tmp_path, formats=("pdf", "json"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ACC123_followup.pdf", "other_exam.pdf"]


def test_a_report_made_before_the_commit_calls_the_reader_s_estimate_a_draft(analysed, tmp_path):
    """Seen by a radiologist: exported before the commit, the PDF and the JSON gave 70 % as the reader's estimate
    with nothing saying it was a draft that could still change."""
    import dataclasses
    import json

    exam, result = analysed
    draft = {"R": BreastRead("R", 0.7, committed=False), "L": BreastRead("L", 0.05, committed=False)}
    paths = export_report(ReportInput(exam, None, draft), tmp_path / "draft", formats=("pdf", "json"))
    text = " ".join(pdf_text(next(p for p in paths if p.suffix == ".pdf")).split())
    assert "70.0 % (draft, not committed)" in text and "is a draft" in text
    document = json.loads(next(p for p in paths if p.suffix == ".json").read_text())
    assert document["reads"]["R"]["committed"] is False and any("is a draft" in w for w in document["warnings"])
    # a draft that gives only a BI-RADS and a recommendation is a draft too (found in review)
    only = {"R": BreastRead("R", None, birads="5", recommendation="biopsy", committed=False)}
    paths = export_report(ReportInput(exam, None, only), tmp_path / "only", formats=("pdf",))
    text = " ".join(pdf_text(paths[0]).split())
    assert "Right breast (draft)" in text and "is a draft" in text
    committed = {side: dataclasses.replace(read, committed=True) for side, read in draft.items()}
    paths = export_report(ReportInput(exam, None, committed), tmp_path / "committed", formats=("pdf", "json"))
    text = " ".join(pdf_text(next(p for p in paths if p.suffix == ".pdf")).split())
    assert "70.0 %" in text and "draft" not in text


def test_the_png_captions_carry_a_possible_laterality_error_and_no_regions_rule_without_a_result(tmp_path,
                                                                                                 monkeypatch):
    """An exported four-view PNG of an exam with a possible laterality error said nothing of it (only the PDF and
    JSON did), and without a model result its caption spoke of an operating point (a radiologist's test)."""
    from app.report import figures
    from inference.exam import load_exam
    from tests.helpers import synthetic_view, write_png

    folder = tmp_path / "exam"
    folder.mkdir()
    write_png(folder / "0_R-CC.png", synthetic_view("L-CC", (700, 300)))  # a left breast labelled right
    write_png(folder / "0_L-CC.png", synthetic_view("L-CC", (600, 300)))
    exam = load_exam(folder)
    assert exam.laterality_conflicts
    captions = {}
    real = figures.captioned

    def recorded(image, lines, warning=""):
        captions[lines[0].rsplit(" · ", 1)[-1]] = lines
        return real(image, lines, warning)

    monkeypatch.setattr(figures, "captioned", recorded)
    export_report(ReportInput(exam, None), tmp_path / "out", formats=("png",))
    message = exam.laterality_message(exam.laterality_conflicts[0])
    assert message in captions["four views"] and message in captions["R-CC"]
    assert message not in captions["L-CC"]
    assert captions["four views"][1] == "no model result shown"
    # a retake: the figure of its view says which image it shows, as the PDF did (a deployer's audit)
    write_png(folder / "0_L-CC_retake.png", synthetic_view("L-CC", (610, 300)))
    exam = load_exam(folder)
    (choice,) = [note for note in exam.warnings if note.startswith("2 images for L-CC: used ")]
    captions.clear()
    export_report(ReportInput(exam, None), tmp_path / "again", formats=("png",))
    assert choice in captions["L-CC"] and choice in captions["four views"] and choice not in captions["R-CC"]


@pytest.mark.parametrize("deidentify", [False, True], ids=["identified", "deidentified"])
def test_a_result_exported_again_is_the_next_version_and_the_report_names_the_one_it_replaces(analysed, tmp_path,
                                                                                             deidentify):
    """A study the AI node analysed again sent a second SR, PDF and SEGs with the same descriptions: on the PACS
    two AI results, nothing saying which is current (only the content time). Now the SR names the one it replaces
    (Predecessor Documents), every series says its version, and the PDF's series has its own number."""
    exam, result = analysed
    versions = []
    for _ in range(3):
        paths = export_report(ReportInput(exam, result, deidentify=deidentify), tmp_path / "out",
                              formats=("sr", "seg", "epdf"))
        versions.append({p.name: pydicom.dcmread(p, stop_before_pixels=True) for p in paths
                         if p.suffix == ".dcm" and not p.name.endswith("_image.dcm")})
    assert versions[0].keys() == versions[1].keys() == versions[2].keys()  # the same files, replaced
    for name, first in versions[0].items():
        assert not first.SeriesDescription.endswith((" v1", " v2", " v3")), name
        assert versions[1][name].SeriesDescription == f"{first.SeriesDescription} v2"
        assert versions[2][name].SeriesDescription == f"{first.SeriesDescription} v3"
    sr = [{v.SeriesNumber for v in version.values() if v.Modality == "SR"} for version in versions]
    pdf = [{v.SeriesNumber for v in version.values() if v.Modality == "DOC"} for version in versions]
    assert sr[0] == {9901} and pdf[0] == {9904}
    reports = [next(v for v in version.values() if v.Modality == "SR") for version in versions]
    assert "PredecessorDocumentsSequence" not in reports[0]
    for earlier, later in zip(reports, reports[1:]):
        (study,) = later.PredecessorDocumentsSequence
        (series,) = study.ReferencedSeriesSequence
        (instance,) = series.ReferencedSOPSequence
        assert (study.StudyInstanceUID, series.SeriesInstanceUID, instance.ReferencedSOPInstanceUID) == (
            earlier.StudyInstanceUID, earlier.SeriesInstanceUID, earlier.SOPInstanceUID)
    assert dciodvfy(tmp_path / "out" / next(n for n, v in versions[2].items() if v.Modality == "SR")) == []
    if deidentify:
        return
    # another study's result at the path is no earlier version of this one
    other = tmp_path / "other"
    other.mkdir()
    foreign = versions[2][next(n for n, v in versions[2].items() if v.Modality == "SR")]
    foreign.StudyInstanceUID = pydicom.uid.generate_uid()
    name = next(n for n, v in versions[2].items() if v.Modality == "SR")
    foreign.save_as(other / name)
    paths = export_report(ReportInput(exam, result), other, formats=("sr",))
    fresh = pydicom.dcmread(next(p for p in paths if p.name == name))
    assert not fresh.SeriesDescription.endswith(" v4") and "PredecessorDocumentsSequence" not in fresh


def test_the_header_names_one_model_once(analysed):
    """The PDF's and JSON's Model line read "Mammo Reader demo GMIC (synthetic phantoms) (gmic): Mammo Reader demo
    GMIC (synthetic phantoms) [62f34fbae577]": the one model's name twice."""
    from app.report.content import ReportContent

    exam, result = analysed
    (value,) = [v for name, v in ReportContent(ReportInput(exam, result)).header_fields() if name == "Model"]
    (entry,) = result.entries
    (member,) = entry.members
    assert value.count(entry.label) == 1 and f"({entry.family})" in value, value
    assert (member.sha256 or member.git_blob_sha1)[:12] in value or member.published_name in value, value


def test_a_json_report_names_each_view_s_image_and_de_identified_only_its_mapped_uid(analysed, tmp_path):
    """Each view says which image it was analysed from (file name and SOP Instance UID); de-identified, no file
    name and the UID its de-identified images and DICOM results carry."""
    import json

    from app.report.deidentify import Deidentifier

    exam, result = analysed
    plain = export_report(ReportInput(exam, result), tmp_path / "plain", formats=("json",))
    views = json.loads(next(p for p in plain if p.suffix == ".json").read_text())["result"]["views"]
    for view, image in exam.views.items():
        assert image.sop_instance_uid
        assert views[view.value]["source"] == {"file": image.source.name, "sop_instance_uid": image.sop_instance_uid}
    hidden = export_report(ReportInput(exam, result, deidentify=True), tmp_path / "hidden", formats=("json",))
    text = next(p for p in hidden if p.suffix == ".json").read_text()
    views = json.loads(text)["result"]["views"]
    for view, image in exam.views.items():
        assert views[view.value]["source"] == {"file": "", "sop_instance_uid": Deidentifier().uid(image.sop_instance_uid)}
        assert image.sop_instance_uid not in text and image.source.name not in text


def test_an_export_replaces_the_exam_s_earlier_files_of_the_formats_it_writes_and_leaves_the_rest(analysed, tmp_path):
    """Re-exported with other models, an exam's folder kept the earlier export's segmentations beside the new ones
    (a folder sent to the PACS sent both); a view's PNG the exam no longer has stayed as if of this export."""
    import dataclasses

    exam, result = analysed
    name = ReportContent(ReportInput(exam, result)).file_name
    # an earlier export with two models side by side: each model's SEGs named by its id
    two = dataclasses.replace(result, entries=(result.entries[0], dataclasses.replace(result.entries[0], id="other")),
                              views={v: dataclasses.replace(r, entries={**r.entries, "other": r.entries[result.entries[0].id]})
                                     for v, r in result.views.items()})
    earlier = [p.name for p in export_report(ReportInput(exam, two), tmp_path, formats=("seg",))]
    stale = [file for file in earlier if "_other_" in file]
    assert stale
    # the user's own files, named as a report's would be (a re-test: a re-export deleted one of them), and files of
    # formats not written now
    users = [f"{name}_L-CC_mine_saliency_seg.dcm", f"{name}_L-MLO.png"]
    kept = [f"{name}.json", f"{name}.maps.npz", f"{name}_L-CC_image.dcm", f"{name}_followup.pdf", "other.pdf",
            f"{name}_L-CC_notes.txt", *users]
    for file in kept:
        (tmp_path / file).write_bytes(b"earlier")
    # Mammo Reader's files of another exam renamed under this report's names (a second re-test deleted them)
    other = pydicom.dcmread(tmp_path / stale[0])
    other.StudyInstanceUID = pydicom.uid.generate_uid()
    other.save_as(tmp_path / f"{name}_R-CC_another_exam_saliency_seg.dcm")
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_itxt("Software", "Mammo Reader 0.1.0")
    info.add_itxt("Title", "ANOTHER-EXAM L-MLO")
    Image.new("L", (4, 4)).save(tmp_path / f"{name}_R-MLO.png", pnginfo=info)
    kept += [f"{name}_R-CC_another_exam_saliency_seg.dcm", f"{name}_R-MLO.png"]
    before = {file: (tmp_path / file).read_bytes() for file in kept}
    written = export_report(ReportInput(exam, result), tmp_path, formats=("png", "seg"))
    assert written and all(path.read_bytes() != b"earlier" for path in written)
    assert not any((tmp_path / file).exists() for file in stale)
    assert all((tmp_path / file).read_bytes() == before[file] for file in kept)
    # the JSON written again: the user's file of its name is replaced as before (same name), not left behind
    export_report(ReportInput(exam, result), tmp_path, formats=("json",))
    assert (tmp_path / f"{name}.maps.npz").read_bytes() != b"earlier"


def test_the_structured_report_leaves_out_a_view_not_counted_and_says_a_one_view_breast(analysed, tmp_path):
    """A deployer's audit: every output said R-MLO was a possible laterality error, not counted, and the SR still
    listed its regions as findings on the right breast; a breast scored from its CC alone did not say so."""
    import dataclasses

    import highdicom as hd

    from inference.intake.views import View

    exam, result = analysed
    views = dict(result.views)
    views[View.L_CC] = dataclasses.replace(views[View.L_CC], counted=False, uncounted_reason="possible laterality error")
    from inference.results.exam_result import breast_results, exam_decisions

    breasts = breast_results(views, result.entries)  # as the analysis makes them: the view left out of its breast
    uncounted = dataclasses.replace(result, views=views, breasts=breasts, exam=exam_decisions(breasts, result.entries))
    path = export_report(ReportInput(exam, uncounted), tmp_path, formats=("sr",))[0]
    report = hd.sr.MeasurementReport.from_sequence([hd.sr.srread(path)])
    sources = {group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
               for group in report.get_planar_roi_measurement_groups()}
    assert sources == {exam.views[View.R_CC].sop_instance_uid}
    breasts = [str(group.tracking_identifier) for group in report.get_image_measurement_groups()
               if "breast" in str(group.tracking_identifier)]
    assert breasts and all(name.endswith("breast (CC only)") for name in breasts)


def test_the_structured_report_says_a_demo_model_s_warning_whole(analysed, tmp_path):
    """A deployer's re-test: the SR's demo warning read "DEMO MODEL ? trained on synthetic phantoms only ? NOT FOR
    CLINICAL USE." (no character set declared: the dashes were not ASCII)."""
    import dataclasses

    exam, result = analysed
    entry = result.entries[0]
    members = tuple(dataclasses.replace(m, demo=True) for m in entry.members)
    demo = dataclasses.replace(result, entries=(dataclasses.replace(entry, members=members),),
                               provenance=dataclasses.replace(result.provenance, models=members))
    path = export_report(ReportInput(exam, demo), tmp_path, formats=("sr",))[0]
    texts = [str(e.value) for e in pydicom.dcmread(path).iterall() if e.keyword == "TextValue"]
    warnings = [t for t in texts if "NOT FOR CLINICAL USE" in t]
    assert warnings and not any("?" in t for t in warnings), warnings
    assert dciodvfy(path) == []


def test_a_seg_names_an_ensemble_s_weights_within_what_its_field_holds():
    """A deployer's re-test: a four-model ensemble's SEG AlgorithmVersion was cut mid-hash at 64 characters
    ("…, sha256 88a81515bb0d, s"), and its name read "GMIC GMIC ensemble of 4"."""
    from types import SimpleNamespace

    from app.report.seg import _algorithm_name, _weights_version

    members = [SimpleNamespace(weights_id=f"sha256 {i}{'0' * 11}") for i in range(4)]
    ensemble = SimpleNamespace(family="gmic", label="GMIC ensemble of 4 (ens)", members=members)
    assert _weights_version(ensemble) == "sha256 000000000000 + 3 more (ensemble)"
    assert _algorithm_name(ensemble) == "GMIC ensemble of 4 (ens)"
    long = SimpleNamespace(family="gmic", label="GMIC ensemble of 4 (ensemble_of_the_site_retrained_models_from_t2)",
                           members=members)
    assert len(_algorithm_name(long)) == 64 and _algorithm_name(long).endswith("...")  # cut, and said to be
    pair = SimpleNamespace(family="gmic", label="seeded", members=members[:2])
    assert _weights_version(pair) == "sha256 000000000000, sha256 100000000000"
    assert _algorithm_name(pair) == "GMIC seeded"


def test_a_seg_writes_a_model_s_name_in_any_script_whole(analysed, tmp_path):
    """A code review: the SR declared UTF-8 where its source declares no set, the SEG did not, and a model named
    outside ASCII went into its algorithm name as "?"."""
    import dataclasses

    exam, result = analysed
    entry = dataclasses.replace(result.entries[0], label="Modèle μ (Zürich)")
    paths = export_report(ReportInput(exam, dataclasses.replace(result, entries=(entry,))), tmp_path, formats=("seg",))
    seg = pydicom.dcmread(paths[0])
    assert seg.SpecificCharacterSet == "ISO_IR 192"
    name = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmName
    assert name == "GMIC Modèle μ (Zürich)" or name.endswith("Modèle μ (Zürich)")
    assert dciodvfy(paths[0]) == []


def test_pdf_tables_keep_their_titles_and_column_names_and_cut_no_word(dicom_exam, tmp_path):
    """A site lead's findings: page 1 ended with "Model probabilities" and a model's title and column names, its
    rows on page 2 under no names; a view's name stood alone at a page's foot, its regions on the next; a column
    name was cut inside its word ("sliding-windo" / "w")."""
    import pypdfium2 as pdfium

    from tests.helpers import make_window_stub

    exam = load_exam(dicom_exam)
    window = make_window_stub()
    window = dataclasses.replace(window, identity=dataclasses.replace(window.identity, label="sliding-window"))
    result = analyze_exam(exam, [make_stub_model(), window], device="cpu")
    pdf = export_report(ReportInput(exam, result), tmp_path, formats=("pdf",))[0]
    document = pdfium.PdfDocument(str(pdf))
    pages = [document[i].get_textpage().get_text_range().replace("\r\n", "\n") for i in range(len(document))]
    assert len(pages) >= 2
    for label in ("bright-spot stub", "sliding-window"):  # each model's title with its column names and rows
        table = re.compile(rf"{re.escape(label)} \([a-z-]+\)\n[^\n]*meaning\n(.*\n)*Exam ")
        assert sum(bool(table.search(p)) for p in pages) == 1
    assert any("Model probabilities" in p and "bright-spot stub (" in p for p in pages)
    for page in pages:  # a view's name is on the page of its regions
        for view in ("R-CC", "L-CC", "R-MLO", "L-MLO"):
            if f"\n{view}\n" in page and "attention" in page:
                assert "#" in page[page.index(f"\n{view}\n"):]
    text = "".join(pages)
    assert "sliding-window" in text.replace("-\n", "-") and "windo\nw" not in text and "slidin\ng" not in text


def test_pdf_columns_fit_their_longest_word_and_headings_keep_with_what_they_head(analysed, tmp_path, monkeypatch):
    """The layout rules behind the page checks above, which one fixture's page breaks cannot all exercise: a
    column is as wide as its longest word where the page has room; "Regions of …" and each view's name go with
    that view's regions, the figure with its legend, the hybrid table with its heading (a review's findings)."""
    from reportlab.lib.units import cm
    from reportlab.pdfbase.pdfmetrics import stringWidth
    from reportlab.platypus import KeepTogether, Paragraph, Table

    from app.report import pdf
    from app.report.fonts import BOLD, register_pdf_fonts

    register_pdf_fonts()
    widths = pdf._column_widths([["Probability of malignancy", "reader", "model", "hybrid (sliding-window)"],
                                 ["Right breast", "—", "45.0 %", "50.0 %"]], 12.0, 8.5)
    assert widths[3] * cm >= stringWidth("(sliding-window)", BOLD, 8.5) + 14 and sum(widths) == pytest.approx(12.0)
    exam, result = analysed
    built = []
    monkeypatch.setattr(pdf.SimpleDocTemplate, "build", lambda self, story: built.extend(story))
    export_report(ReportInput(exam, result), tmp_path, formats=("pdf",))

    def texts(flowable) -> list[str]:
        if isinstance(flowable, KeepTogether):
            return [t for part in flowable._content for t in texts(part)]  # noqa: SLF001
        return [flowable.text] if isinstance(flowable, Paragraph) else ["<table>"] if isinstance(flowable, Table) \
            else []

    groups = [texts(f) for f in built if isinstance(f, KeepTogether)]
    regions = next(g for g in groups if any(t.startswith("Regions of") for t in g))
    assert regions[0].startswith("Regions of") and regions[1] in ("R-CC", "L-CC") and regions[2] == "<table>"
    for view in ("R-CC", "L-CC"):
        assert any(g[-2:] == [view, "<table>"] for g in groups)
    assert any(g[0] == "Reader, model and hybrid" and g[1] == "<table>" for g in groups)
    assert any(any(t.startswith("Maps of") for t in g) for g in groups)  # the figure's legend with the figure


def test_no_dicom_result_for_an_exam_whose_two_views_carry_one_uid(tmp_path):
    """A site lead's test: R-CC.dcm carried L-CC's SOP Instance UID (other pixels); the SR's view groups and both
    SEGs referenced that one UID, and a PACS would lay the right breast's findings on the left image."""
    folder = tmp_path / "exam"
    folder.mkdir()
    right = make_dataset(synthetic_view("R-CC", (600, 500)), "R-CC")
    left = make_dataset(synthetic_view("L-CC", (800, 250)), "L-CC")
    left.StudyInstanceUID, right.SOPInstanceUID = right.StudyInstanceUID, left.SOPInstanceUID
    write(right, folder, "a.dcm")
    write(left, folder, "b.dcm")
    exam = load_exam(folder)
    assert set(exam.views) == {View.R_CC, View.L_CC}
    assert any("share the SOP Instance UID" in w for w in exam.warnings)
    result = analyze_exam(exam, make_stub_model(), device="cpu")
    with pytest.raises(ExportIncomplete) as raised:
        export_report(ReportInput(exam, result), tmp_path / "out", formats=("json", "sr", "seg"))
    said = str(raised.value)
    assert "carry one SOP Instance UID" in said and "would lay both views' findings on one image" in said
    written = raised.value.written
    assert [p.suffix for p in written] == [".json", ".npz"] and not list((tmp_path / "out").rglob("*.dcm"))


def test_read_on_is_when_the_read_was_committed_and_reported_on_when_the_report_was_made(analysed, tmp_path):
    """A radiologist's test: a report exported again at 18:02 said "Read on 2026-12-07 18:02", a time when nothing
    was read (the first read was committed at 17:57)."""
    import datetime
    import time

    exam, result = analysed
    committed = time.time() - 3 * 3600
    reads = {"R": BreastRead("R", 0.6, committed=True, recorded_at=committed)}
    made = datetime.datetime.now().replace(microsecond=0)
    paths = export_report(ReportInput(exam, result, reads, read_at=made), tmp_path, formats=("json", "pdf"))
    header = json.loads(next(p for p in paths if p.suffix == ".json").read_text())["header"]
    assert header["Read on"] == datetime.datetime.fromtimestamp(committed).strftime("%Y-%m-%d %H:%M")
    assert header["Reported on"] == made.strftime("%Y-%m-%d %H:%M")
    text = " ".join(pdf_text(next(p for p in paths if p.suffix == ".pdf")).split())
    assert f"Read on {header['Read on']}" in text and f"Reported on {header['Reported on']}" in text
    assert "Amended on" not in header and "Amended on" not in text
    # amended after AI, twice (the second a day later): the latest change's time beside the first read's
    earlier = BreastRead("R", 0.5, committed=True, recorded_at=committed + 600)
    latest = BreastRead("R", 0.3, committed=True, recorded_at=committed + 86400)
    reads = {"R": dataclasses.replace(reads["R"], amendment=latest, earlier_amendments=(earlier,)),
             "L": BreastRead("L", 0.1, committed=True, recorded_at=committed + 60)}
    paths = export_report(ReportInput(exam, result, reads, read_at=made), tmp_path / "amended",
                          formats=("json", "pdf"))
    header = json.loads(next(p for p in paths if p.suffix == ".json").read_text())["header"]
    assert header["Read on"] == datetime.datetime.fromtimestamp(committed).strftime("%Y-%m-%d %H:%M")
    assert header["Amended on"] == datetime.datetime.fromtimestamp(committed + 86400).strftime("%Y-%m-%d %H:%M")
    text = " ".join(pdf_text(next(p for p in paths if p.suffix == ".pdf")).split())
    assert f"Amended on {header['Amended on']}" in text
    draft = {"R": BreastRead("R", 0.6)}
    header = report_json_header = json.loads(export_report(ReportInput(exam, result, draft), tmp_path / "draft",
                                                           formats=("json",))[0].read_text())["header"]
    assert report_json_header["Read on"] == "not committed (a draft)" and "Reported on" in header
