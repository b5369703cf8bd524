"""What a report may say (issue 24, items 2 and 8): a model output that is not finite is "no result", never a
probability, in the result, every report, the batch table and the exit status; a breast score made from one
view says so; ``report`` with several formats says each format's outcome, in plain words."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import cv2
import pyarrow.parquet as pq
import pytest
import torch

from app.report.content import ReportInput
from app.report.export import ExportIncomplete, export_report
from inference.families import registry
from inference.intake.exam import load_exam
from inference.pipeline import analyze_exam
from inference.intake.views import Laterality, View
from tests.app.test_fake_family import FakeFamily, TinyNet
from tests.conftest import REFERENCE, require_shared
from tests.helpers import make_stub_model, run_main, synthetic_view
from tests.inference.intake.dicom_factory import make_dataset, write

ROOT = Path(__file__).resolve().parents[2]


class NanFamily(FakeFamily):
    """The test's third family, whose network answers NaN on the views named in ``nan_views`` (as a
    network does on pixels that overflowed): every probability, its map and its region."""

    name = "nan3"
    preprocessing = "nan3-thumbnail"
    nan_views: frozenset[View] = frozenset({View.R_CC})

    def run(self, model, batch, device, mode, identity):
        outputs = super().run(model, batch, device, mode, identity)
        return [dataclasses.replace(out, probabilities=dict.fromkeys(out.probabilities, math.nan))
                if p.view in self.nan_views else out for p, out in zip(batch, outputs, strict=True)]


@pytest.fixture
def nan_family(tmp_path):
    family = registry.register(NanFamily())
    torch.manual_seed(0)
    path = tmp_path / "nan.pt"
    torch.save(TinyNet().state_dict(), path)
    path.with_name("nan.pt.json").write_text(json.dumps(
        {"family": "nan3", "classes": ["normal", "benign", "malignant"], "malignancy": ["malignant"],
         "label": "nan model"}))
    yield family, path
    registry.unregister("nan3")


@pytest.fixture
def three_views(tmp_path):
    """A DICOM exam with R-CC, R-MLO and L-CC (no L-MLO)."""
    folder = tmp_path / "exam"
    folder.mkdir()
    for name, view, lesion in (("a", "R-CC", (600, 500)), ("b", "R-MLO", (700, 450)), ("c", "L-CC", (800, 250))):
        ds = make_dataset(synthetic_view(view, lesion), view)
        write(ds, folder, f"{name}.dcm")
    return folder


def _no_nan_in(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text, path.name


def test_a_nan_output_is_no_result_and_the_breast_and_exam_say_so(nan_family, three_views, tmp_path):
    from inference.results.serialize import read_result, write_result
    from inference.weights import load_model

    _, path = nan_family
    loaded = load_model(path)
    exam = load_exam(three_views)
    result = analyze_exam(exam, [make_stub_model(), loaded], device="cpu")
    nan_id, gmic_id = loaded.identity.label, result.entries[0].id
    r_cc = result.views[View.R_CC]
    assert nan_id not in r_cc.entries and r_cc.result(nan_id) is None
    assert "not a finite number" in r_cc.no_result[nan_id] and gmic_id in r_cc.entries  # GMIC's is kept
    assert any("nan model has no result on R-CC" in n for n in result.provenance.notices)
    right = result.breasts[Laterality.RIGHT].entries[nan_id]
    assert right.views == (View.R_MLO,) and right.one_view_note == "(MLO only)"
    assert right.probabilities == result.views[View.R_MLO].entries[nan_id].probabilities
    decision = result.exam[nan_id]
    assert decision.malignant is not None and math.isfinite(decision.malignant) and decision.malignant < 1.0
    assert result.breasts[Laterality.RIGHT].entries[gmic_id].views == (View.R_CC, View.R_MLO)
    assert result.breasts[Laterality.LEFT].entries[gmic_id].one_view_note == "(CC only)"

    json_path, _ = write_result(result, tmp_path / "result.json")
    _no_nan_in(json_path)
    again = read_result(json_path)
    assert again.views[View.R_CC].no_result == r_cc.no_result
    assert again.breasts[Laterality.RIGHT].entries[nan_id].views == (View.R_MLO,)

    from tests.report.test_report import pdf_text

    paths = export_report(ReportInput(exam, result, entry_id=nan_id), tmp_path / "reports",
                          formats=("pdf", "png", "json", "sr", "seg"))
    report_json = next(p for p in paths if p.name.endswith(".json") and ".maps" not in p.name)
    _no_nan_in(report_json)
    data = json.loads(report_json.read_text())
    assert data["result"]["breasts"]["R"]["models"][nan_id]["views_used"] == ["MLO"]
    assert data["result"]["views"]["R-CC"]["no_result"][nan_id]
    assert any("no result on R-CC" in w for w in data["warnings"])
    text = " ".join(pdf_text(next(p for p in paths if p.suffix == ".pdf")).split())
    assert "R-CC (no result)" in text and "(MLO only)" in text and "nan %" not in text.lower()


def test_only_nan_outputs_give_no_score_at_all(nan_family, three_views):
    from inference.weights import load_model

    family, path = nan_family
    family.nan_views = frozenset(View)
    result = analyze_exam(load_exam(three_views), load_model(path), device="cpu")
    entry = result.entries[0]
    assert all(v.result(entry.id) is None for v in result.views.values())
    assert result.breasts == {} and result.exam[entry.id].malignant is None  # never 1.0


def test_one_reason_on_several_views_is_said_once_naming_the_views(nan_family, three_views):
    from inference.results.exam_result import shown_notices
    from inference.weights import load_model

    family, path = nan_family
    family.nan_views = frozenset({View.R_CC, View.L_CC})
    result = analyze_exam(load_exam(three_views), [make_stub_model(), load_model(path)], device="cpu")
    stored = [n for n in result.provenance.notices if "has no result on" in n]
    assert len(stored) == 2  # stored one per view: the store splits a result by entry with them
    shown = shown_notices(result)
    (said,) = [n for n in shown if "has no result on" in n]
    views = said.split(" has no result on ")[1].split(", which are left out")[0]
    assert sorted(views.split(" and ")) == ["L-CC", "R-CC"] and "not a finite number" in said
    assert [n for n in shown if n != said] == [n for n in result.provenance.notices if n not in stored]


def test_the_analyze_command_says_no_result_and_exits_non_zero(nan_family, three_views, tmp_path, capsys):
    from main import main

    _, path = nan_family
    out = tmp_path / "result.json"
    status = main(["analyze", str(three_views), "--models", str(path), "--device", "cpu", "--json", str(out)])
    captured = capsys.readouterr()
    assert status != 0
    assert "R-CC   NO RESULT" in captured.out and "(MLO only)" in captured.out
    assert "nan model has no result on R-CC" in captured.err
    _no_nan_in(out)


def test_the_batch_records_a_nan_exam_as_partial_with_the_reason(nan_family, three_views, tmp_path):
    from app.archive.run import run_batch
    from app.archive.sources import items_of_exams
    from app.archive.unit import BatchOptions
    from inference.weights import load_model

    _, path = nan_family
    out = tmp_path / "out"
    options = BatchOptions(formats=("json", "pdf"), device="cpu", allow_missing_views=True)
    summary = run_batch(items_of_exams([three_views]), [load_model(path)], out, options)
    assert not summary.done and len(summary.partial) == 1
    assert "no result on R-CC" in summary.partial[0].reason
    failures = (out / "failures.csv").read_text()
    assert "no result on R-CC" in failures and str(three_views) in failures
    table = pq.read_table(out / "scores.parquet").to_pylist()
    values = [row["probability"] for row in table]
    assert all(v is None or math.isfinite(v) for v in values)
    r_cc = [row for row in table if row["view"] == "R-CC"]
    assert r_cc and all(row["probability"] is None and not row["counted"] for row in r_cc)
    exam_rows = [row for row in table if row["level"] == "exam" and row["kind"] == "malignancy"]
    assert exam_rows and exam_rows[0]["probability"] < 1.0


def test_writers_refuse_a_non_finite_value_loudly(three_views, tmp_path):
    """The last guard: a NaN that got past the analysis is a ValueError, never a number in a file."""
    from app.archive.sources import ExamItem
    from app.archive.table import score_rows
    from inference.results.serialize import write_result

    result = analyze_exam(load_exam(three_views), make_stub_model(), device="cpu")
    entry = result.entries[0].id
    breast = result.breasts[Laterality.RIGHT]
    scores = dataclasses.replace(breast.entries[entry], malignant=math.nan)
    bad = dataclasses.replace(result, breasts={**result.breasts, Laterality.RIGHT: dataclasses.replace(
        breast, entries={entry: scores})})
    with pytest.raises(ValueError, match="not a finite number"):
        write_result(bad, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()
    with pytest.raises(ValueError, match="not a finite number"):
        score_rows(ExamItem("x", str(three_views)), bad, 1.0)


def test_a_breast_from_one_view_is_marked(tmp_path):
    """The R-CC missing: the right breast's score is the R-MLO's, and the PDF and JSON say "(MLO only)"."""
    folder = tmp_path / "exam"
    folder.mkdir()
    for name, view, lesion in (("b", "R-MLO", (700, 450)), ("c", "L-CC", (800, 250)), ("d", "L-MLO", (700, 300))):
        write(make_dataset(synthetic_view(view, lesion), view), folder, f"{name}.dcm")
    exam = load_exam(folder)
    result = analyze_exam(exam, make_stub_model(), device="cpu")
    entry = result.entries[0].id
    assert result.breasts[Laterality.RIGHT].entries[entry].one_view_note == "(MLO only)"
    assert result.breasts[Laterality.LEFT].entries[entry].one_view_note == ""
    from tests.report.test_report import pdf_text

    paths = export_report(ReportInput(exam, result), tmp_path / "out", formats=("pdf", "json"))
    text = " ".join(pdf_text(next(p for p in paths if p.suffix == ".pdf")).split())
    assert "Right breast (MLO only)" in text and "mean of its CC and MLO views" in text
    data = json.loads(next(p for p in paths if p.suffix == ".json" and ".maps" not in p.name).read_text())
    breasts = data["result"]["breasts"]
    assert breasts["R"]["models"][entry]["views_used"] == ["MLO"]
    assert breasts["L"]["models"][entry]["views_used"] == ["CC", "MLO"]
    assert data["reads"]["R"]["models"][entry]["views_used"] == ["MLO"]


def test_a_failing_format_is_said_with_the_others_that_were_written(tmp_path):
    (tmp_path / "exam").mkdir()
    cv2.imwrite(str(tmp_path / "exam" / "0_R-CC.png"), synthetic_view("R-CC", (600, 500)))
    exam = load_exam(tmp_path / "exam")
    result = analyze_exam(exam, make_stub_model(), device="cpu")
    with pytest.raises(ExportIncomplete) as caught:
        export_report(ReportInput(exam, result), tmp_path / "out", formats=("pdf", "png", "json", "epdf"))
    message = str(caught.value)
    assert message.startswith("PDF, PNG, JSON written; ePDF failed: the exam is PNG, an Encapsulated PDF needs "
                              "the DICOM study")
    assert "force" not in message and all(p.is_file() for p in caught.value.written)
    assert {p.suffix for p in caught.value.written} == {".pdf", ".png", ".json", ".npz"}


def test_a_source_that_is_no_longer_dicom_is_said_plainly(tmp_path):
    """pydicom's "Use force=True" advice never reaches the user."""
    from app.report.sr import ReportError

    folder = tmp_path / "exam"
    folder.mkdir()
    write(make_dataset(synthetic_view("R-CC", (600, 500)), "R-CC"), folder, "a.dcm")
    exam = load_exam(folder)
    result = analyze_exam(exam, make_stub_model(), device="cpu")
    (folder / "a.dcm").write_bytes(b"replaced by something else")
    for fmt in ("sr", "epdf"):
        with pytest.raises(ReportError) as caught:
            export_report(ReportInput(exam, result), tmp_path / fmt, formats=(fmt,))
        assert "force" not in str(caught.value) and "a.dcm" in str(caught.value)


def test_report_command_says_each_format_outcome(tmp_path):
    require_shared()
    exam = tmp_path / "png_exam"
    exam.mkdir()
    cv2.imwrite(str(exam / "0_R-CC.png"), synthetic_view("R-CC", (600, 500)))
    done = run_main(["report", str(exam), "--out", str(tmp_path / "out"), "--models",
                     str(REFERENCE / "seeded_state_dict.pt"), "--percent-t", "0.02", "--format", "pdf,png,json,epdf",
                     "--device", "cpu"])
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "1 exam(s) reported (1 only in part)" in done.stdout and "0 reported" not in done.stdout
    assert ("PDF, PNG, JSON written; ePDF failed: the exam is PNG, an Encapsulated PDF needs the DICOM study"
            in done.stdout)
    assert "force=True" not in output and "InvalidDicomError" not in output
    assert list((tmp_path / "out").glob("*.pdf")) and list((tmp_path / "out").glob("*.json"))
    assert "the exam is PNG" in (tmp_path / "out" / "failures.csv").read_text()


def test_a_format_failed_by_a_full_disk_inside_pydicom_is_one_line_naming_the_file():
    """A deployer's test: pydicom re-raises a write's "No space left on device" as an OSError of its own whose text
    is a traceback (errno None); the AI node's log carried 20 lines of it for one full disk. The format's failure
    and the batch's failure reason say the disk's own words, on one line."""
    import errno

    from app.archive.unit import failure_reason
    from app.report.export import failure_text
    from pydicom.tag import Tag, tag_in_exception

    try:
        with tag_in_exception(Tag(0x0042, 0x0011)):
            raise OSError(errno.ENOSPC, "No space left on device", "/results/0123/ACC_pdf.dcm")
    except OSError as error:
        wrapped = error
    assert wrapped.errno is None and "Traceback" in str(wrapped)  # pydicom's, as it raises it
    assert failure_text(wrapped) == "No space left on device (ACC_pdf.dcm)"
    assert failure_reason(wrapped) == "the disk is full (/results/0123/ACC_pdf.dcm)"
    plain = ValueError("With tag (0042,0011) got exception: bad value\nTraceback (most recent call last):\n  File x")
    assert failure_text(plain) == "With tag (0042,0011) got exception: bad value"
    assert failure_reason(plain) == "ValueError: With tag (0042,0011) got exception: bad value"


def test_a_pdf_whose_write_fails_leaves_no_file_open(tmp_path, monkeypatch):
    """A deployer's re-test on a full disk: reportlab opened the PDF itself and left it open when its write failed;
    the kept error's traceback held it, so the deleted partial file kept its space and not even failures.csv could
    be written after. The report's file is opened (and closed) by the writer."""
    import errno
    import os

    from reportlab.pdfbase import pdfdoc

    from tests.helpers import write_png

    (tmp_path / "exam").mkdir()
    write_png(tmp_path / "exam" / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    exam = load_exam(tmp_path / "exam")
    result = analyze_exam(exam, make_stub_model(), device="cpu")

    def full(self, canvas):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pdfdoc.PDFDocument, "GetPDFData", full)
    out = tmp_path / "out"
    with pytest.raises((ExportIncomplete, OSError)) as raised:
        export_report(ReportInput(exam, result), out, formats=("pdf", "json"))
    assert raised.value is not None  # the error, and its traceback, still held
    opened = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
              if os.path.exists(f"/proc/self/fd/{fd}")]
    assert not [name for name in opened if str(out) in name], opened
