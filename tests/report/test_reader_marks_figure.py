"""The reader's own marks in the report's figures: the PDF listed them in a table only, and its figure (and the
PNG views) showed the model's regions without the reader's findings beside them (a radiologist's review)."""

from __future__ import annotations

import dataclasses

import numpy as np

from app.colours import MARK, bgr
from app.study.store import ReaderMark
from inference.intake.views import View
from tests.helpers import synthetic_view
from tests.inference.intake.dicom_factory import make_dataset, write


def _content(tmp_path, marks):
    from app.report.content import ReportContent, ReportInput
    from inference.intake.exam import load_exam

    (tmp_path / "exam").mkdir(exist_ok=True)
    for view in ("L-CC", "R-CC"):
        write(make_dataset(synthetic_view(view, (700, 300)), view), tmp_path / "exam", f"{view}.dcm")
    exam = load_exam(tmp_path / "exam")
    mirrored = dataclasses.replace(exam.views[View.R_CC], horizontal_flip=True)  # stored mirrored
    exam = dataclasses.replace(exam, views={**exam.views, View.R_CC: mirrored})
    return ReportContent(ReportInput(exam, None, marks=tuple(marks)))


def _mark_pixels(figure: np.ndarray, row: int, col: int, reach: int = 12) -> int:
    near = figure[max(0, row - reach):row + reach + 1, max(0, col - reach):col + reach + 1].astype(int)
    return int((np.abs(near - np.array(bgr(MARK))).sum(axis=-1) < 40).sum())


def test_each_mark_is_drawn_where_the_reader_put_it_and_named_as_in_the_table(tmp_path):
    from app.report.figures import mark_names, view_figure

    marks = [ReaderMark("L-CC", 800.0, 250.0, "mass", 4), ReaderMark("R-CC", 600.0, 500.0, "calcifications", 3)]
    content = _content(tmp_path, marks)
    plain = _content(tmp_path, [])
    assert mark_names(content) == ["M1", "M2"]
    left, left_plain = view_figure(content, View.L_CC), view_figure(plain, View.L_CC)
    assert _mark_pixels(left, 800, 250) > 10 and _mark_pixels(left_plain, 800, 250) == 0
    right = view_figure(content, View.R_CC)
    width = right.shape[1]
    # the stored-mirrored view hangs mirrored back, its mark with it
    assert _mark_pixels(right, 600, width - 500) > 10 and _mark_pixels(right, 600, 500) == 0
    assert _mark_pixels(left, 600, left.shape[1] - 500) == 0  # each mark on its own view only
    half = view_figure(content, View.L_CC, scale=0.5)
    assert _mark_pixels(half, 400, 125, reach=8) > 5


def test_the_pdf_names_the_marks_of_its_figure(tmp_path):
    from pypdf import PdfReader

    from app.report.export import export_report

    content = _content(tmp_path, [ReaderMark("L-CC", 800.0, 250.0, "mass", 4)])
    (pdf,) = export_report(content.report, tmp_path / "out", ["pdf"], "A4")
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "Cyan crosses: the reader's own marks" in text and "M1" in text and "mass" in text


def test_a_section_title_stays_on_the_page_of_its_text(tmp_path):
    """A radiologist's test: "Reader's comments" stood alone at the foot of page 2, its text on page 3."""
    import dataclasses

    from pypdf import PdfReader

    from app.report.content import ReportContent, ReportInput
    from app.report.pdf import write_pdf

    base = _content(tmp_path, [ReaderMark("L-CC", 800.0, 250.0, "mass", 4)])
    split = 0
    for notes in range(0, 60, 2):  # push the comments down the pages, past every place a page ends
        exam = dataclasses.replace(base.exam, warnings=tuple(f"intake note {i}" for i in range(notes)))
        content = ReportContent(ReportInput(exam, None, marks=base.report.marks, comments="WORDS OF THE READER"))
        write_pdf(content, tmp_path / "r.pdf")
        pages = [page.extract_text() for page in PdfReader(tmp_path / "r.pdf").pages]
        (title,) = [i for i, text in enumerate(pages) if "Reader's comments" in text]
        assert "WORDS OF THE READER" in pages[title], notes
        split += len(pages) > 1
    assert split  # the notes did reach another page
