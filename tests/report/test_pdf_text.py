"""The PDF's text as written: a Cyrillic patient name printed as black boxes (Helvetica holds Latin-1 only), a
reader's comment with "<b" failed the whole export (reportlab read it as markup), and its line breaks were lost."""

from __future__ import annotations

import numpy as np
import pytest

from app.report.fonts import CJK_FONT, HANGUL_FONT, pdf_text
from tests.helpers import synthetic_view
from tests.inference.intake.dicom_factory import make_dataset, write


def test_plain_text_becomes_markup_that_says_it():
    assert pdf_text("a < b & c\nnext") == "a &lt; b &amp; c<br/>next"
    assert pdf_text("山田 김") == f'<font name="{CJK_FONT}">山田</font> <font name="{HANGUL_FONT}">김</font>'
    assert pdf_text("Иванов") == "Иванов"  # DejaVu Sans has it


@pytest.fixture
def cyrillic_exam(tmp_path):
    from inference.exam import load_exam

    (tmp_path / "exam").mkdir()

    for view in ("L-CC", "R-CC"):
        dataset = make_dataset(synthetic_view(view, (700, 300)), view, PatientName="Иванов^Пётр",
                               SpecificCharacterSet="ISO_IR 192")
        write(dataset, tmp_path / "exam", f"{view}.dcm")
    return load_exam(tmp_path / "exam")


def test_a_name_beyond_latin_1_and_a_comment_with_markup_are_printed_as_they_are(tmp_path, cyrillic_exam):
    from pypdf import PdfReader

    from app.report.content import ReportContent, ReportInput
    from app.report.pdf import write_pdf

    comments = "mass <b 12 mm & stable\nsecond line: 山田 コメント"
    path = write_pdf(ReportContent(ReportInput(cyrillic_exam, None, comments=comments)), tmp_path / "r.pdf")
    text = "\n".join(page.extract_text() for page in PdfReader(path).pages)
    assert "Иванов Пётр" in text
    assert "mass <b 12 mm & stable\nsecond line: 山田 コメント" in text  # two lines, as typed
    fonts = {str(font.get("/BaseFont")) for page in PdfReader(path).pages
             for font in page["/Resources"]["/Font"].values()}
    assert any("DejaVuSans" in name for name in fonts), fonts  # embedded (a subset), not the viewer's
    assert "■" not in text  # what Helvetica's encoding made of each letter it does not hold


def test_the_png_caption_draws_cyrillic_letters_not_boxes():
    from app.report.figures import captioned

    image = np.zeros((200, 900, 3), np.uint8)
    cyrillic = captioned(image, ["Пётр"])[:-200]
    boxes = captioned(image, ["\uffff\uffff\uffff\uffff"])[:-200]  # no font has it: the missing-glyph box
    assert not np.array_equal(cyrillic, boxes)


@pytest.mark.parametrize("name", ["山田 太郎", "김민준"])
def test_the_png_caption_draws_chinese_japanese_and_korean_in_a_system_font_beside_latin(name):
    """An exam folder named in Japanese was captioned in boxes on the exported PNG: DejaVu has no CJK glyphs (and
    Debian's CJK fallback font has no Latin: the whole line in it boxed the Latin instead)."""
    from app.report.figures import captioned
    from app.figure_text import CaptionFonts

    fonts = CaptionFonts(20)
    runs = fonts.runs(f"{name} 2026 · R-CC")
    if len(runs) == 1:  # tests/run.sh installs one for Han and kana (fonts-droid-fallback)
        pytest.skip(f"no font on this computer draws {name[0]!r}")
    assert [piece for piece, _font in runs] == [name.split(" ")[0], " ", name.split(" ")[1], " 2026 · R-CC"] if (
        " " in name) else [name, " 2026 · R-CC"]
    assert runs[0][1] is not runs[-1][1] and runs[-1][1] is fonts.runs("R-CC")[0][1]  # Latin stays in DejaVu

    def band(text: str) -> np.ndarray:
        return captioned(np.zeros((200, 900, 3), np.uint8), [text])[:-200]

    boxes = "".join(c if c == " " else "\uffff" for c in name)  # the missing-glyph box, a letter each
    assert not np.array_equal(band(f"{name} 2026"), band(f"{boxes} 2026"))


def test_a_validation_table_cell_in_chinese_japanese_or_korean_is_a_paragraph_in_the_cid_fonts():
    """A table's plain cell is drawn in DejaVu alone, which showed a subgroup named in Japanese as boxes."""
    from reportlab.platypus import Paragraph

    from app.validation.report import _table

    cells = _table([["subgroup", "n"], ["装置 A", "5"], ["기기 B", "6"], ["device C", "7"]])._cellvalues
    assert isinstance(cells[1][0], Paragraph) and f'<font name="{CJK_FONT}">装置</font>' in cells[1][0].text
    assert isinstance(cells[2][0], Paragraph) and f'<font name="{HANGUL_FONT}">기기</font>' in cells[2][0].text
    assert cells[3][0] == "device C" and cells[1][1] == "5"  # Latin text fits its column: a plain cell
