"""The PDFs' fonts: DejaVu Sans (``resources/fonts``) for the text, where the PDF's built-in Helvetica and
reportlab's Vera hold Latin-1 only (a Cyrillic patient name printed as black boxes); Chinese, Japanese and Korean
text in the paragraphs in Adobe's CID fonts, which the PDF reader supplies (Acrobat's Asian font pack,
poppler-data; not embedded: a CJK font would be tens of MB; DejaVu has no CJK glyphs). The PNG figures' text:
:mod:`app.figure_text`."""

from __future__ import annotations

import functools
import re
from xml.sax.saxutils import escape

from app.figure_text import font_file

REGULAR, BOLD = "ReportSans", "ReportSans-Bold"
CJK_FONT, HANGUL_FONT = "HeiseiKakuGo-W5", "HYGothic-Medium"  # Han and kana; Hangul
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]+")
_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]+")


@functools.cache
def register_pdf_fonts() -> None:
    """Register the report's fonts with reportlab once: the DejaVu family (bold for <b>) and the CJK CID fonts."""
    from reportlab.lib.fonts import addMapping  # noqa: PLC0415
    from reportlab.pdfbase import pdfmetrics  # noqa: PLC0415
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont  # noqa: PLC0415
    from reportlab.pdfbase.ttfonts import TTFont  # noqa: PLC0415

    pdfmetrics.registerFont(TTFont(REGULAR, str(font_file())))
    pdfmetrics.registerFont(TTFont(BOLD, str(font_file(bold=True))))
    for bold, italic, name in ((0, 0, REGULAR), (1, 0, BOLD), (0, 1, REGULAR), (1, 1, BOLD)):
        addMapping(REGULAR, bold, italic, name)
    for name in (CJK_FONT, HANGUL_FONT):
        pdfmetrics.registerFont(UnicodeCIDFont(name))


def in_cid_fonts(text: str) -> bool:
    """Whether ``text`` holds Chinese, Japanese or Korean, which only a paragraph (:func:`pdf_text`) prints:
    a table's plain cell is drawn in one font, DejaVu, and showed them as boxes."""
    return bool(_CJK.search(text) or _HANGUL.search(text))


def pdf_text(text: str) -> str:
    """Plain text as a reportlab paragraph's markup: escaped (a comment with "<b" failed the whole PDF), its line
    breaks kept, a number's " %" unbroken (a narrow column wrapped "30" and "%" apart), its Chinese, Japanese and
    Korean runs in the CID fonts."""
    marked = escape(str(text)).replace("\r\n", "\n").replace("\n", "<br/>").replace(" %", "\u00a0%")
    marked = _CJK.sub(lambda run: f'<font name="{CJK_FONT}">{run.group()}</font>', marked)
    return _HANGUL.sub(lambda run: f'<font name="{HANGUL_FONT}">{run.group()}</font>', marked)
