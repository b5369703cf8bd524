"""The annotated PDF report (reportlab): vector text, 200-dpi figures, A4 or Letter, a few MB."""

from __future__ import annotations

import io
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.doctemplate import LayoutError

from app.colours import class_colour
from app.reading import breast_models, hybrid_basis, named_hybrid_basis, percent
from app.report.content import COMMENTS_LEFT_OUT, DEMO_WARNING, DISCLAIMER, ReportContent, is_draft, reader_text
from app.model_table import BREAST_RULE, entry_rows, model_percent
from app.report.figures import encode_png
from app.report.fonts import BOLD, REGULAR, pdf_text, register_pdf_fonts
from inference.errors import MammoError
from inference.files import atomic_path
from inference.intake.views import Laterality
from inference.results.types import rank_order

PAGE_SIZES = {"A4": A4, "Letter": LETTER}
BREASTS = ((Laterality.RIGHT, "Right breast"), (Laterality.LEFT, "Left breast"))  # as on screen: right first


def _hex(colour: tuple[int, int, int]) -> str:
    return "#" + "".join(f"{v:02x}" for v in colour)


def _image(png: bytes, width_cm: float, aspect: float) -> Image:
    return Image(io.BytesIO(png), width=width_cm * cm, height=width_cm * aspect * cm)


def _table(rows, widths=None, header=True) -> Table:
    # a table split by the page repeats its header row: a model's rows began page 2 under no column names
    table = Table(rows, colWidths=widths, hAlign="LEFT", repeatRows=1 if header else 0)
    style = [("FONT", (0, 0), (-1, -1), REGULAR, 8.5), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
             ("GRID", (0, 0), (-1, -1), 0.25, colors.grey), ("TOPPADDING", (0, 0), (-1, -1), 2),
             ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
    if header:
        style += [("FONT", (0, 0), (-1, 0), BOLD, 8.5), ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6e6ee"))]
    table.setStyle(TableStyle(style))
    return table


def _model_tables(content: ReportContent, styles, heading: Paragraph) -> list:
    """Each model's table, the screen's own (``app.model_table``), in the report's view order; ``heading`` on
    the page of the first (keepWithNext does not hold it to a KeepTogether: it stood alone at page 1's foot)."""
    result = content.result
    story = []
    above = [heading]
    for entry in result.entries:
        headers, rows = entry_rows(result, entry, views=[v for v in content.views() if v in result.views])
        title = f"{entry.label} ({entry.family}{', ' + str(len(entry.members)) + ' models' if len(entry.members) > 1 else ''})"
        if not entry.has_malignancy:
            title += " — findings only, no malignancy score"
        # the title, the column names and the rows on one page (page 1 ended with a table's header row alone)
        story += [KeepTogether([*above, Paragraph(pdf_text(title), styles["Heading4"]),
                                _table([[h.replace("\n", " ") for h in headers], *rows])])]
        above = []
    if story:
        story.append(Paragraph(BREAST_RULE, styles["Normal"]))
    return story or above


def _reader_table(content: ReportContent, width_cm: float, cell: ParagraphStyle) -> Table:
    result = content.result
    entries = [e for e in (result.entries if result else ()) if e.has_malignancy]
    short = content.short_labels
    header = ["Probability of malignancy", "reader"]
    for entry in entries:
        name = short[entry.id] if len(entries) > 1 else "model"
        header += [name, "hybrid" if len(entries) == 1 else f"hybrid ({name})"]
    # header cells wrap and the columns share the page: two models' "hybrid (…)" ran off its right edge; a
    # name wraps at its own hyphen, never inside a word ("sliding-windo / w")
    heading = ParagraphStyle("heading cell", parent=cell, embeddedHyphenation=1)
    texts = [header]
    for side, name in BREASTS:
        read = content.report.reads.get(side.value)
        reader = read.malignant if read else None  # the first read; an amendment is shown beside it
        row = [name, reader_text(read)]
        for part in breast_models(result, side.value, reader, content.report.plain_hybrid):
            row += [f"{model_percent(part.model, part.entry)} {part.one_view_note}".rstrip(), percent(part.hybrid)]
        texts.append(row)
    if len(entries) > 1:  # a column a model and a hybrid cut words ("Probabilit / y", "spot compr / ession") and
        # squeezed the reader's read into a column 2 cm wide: the breasts become the columns, the reader and each
        # model and hybrid the rows
        texts = [list(column) for column in zip(*texts, strict=True)]
        first = 5.2
        widths = [first] + [(width_cm - first) / (len(texts[0]) - 1)] * (len(texts[0]) - 1)
        rows = [[Paragraph(f"<b>{pdf_text(text)}</b>", heading) for text in texts[0]]]
        rows += [[Paragraph(f"<b>{pdf_text(row[0])}</b>", heading)] + [Paragraph(pdf_text(t), cell) for t in row[1:]]
                 for row in texts[1:]]
        return _table(rows, [w * cm for w in widths])
    rows = [[Paragraph(f"<b>{pdf_text(text)}</b>", heading) for text in header]]
    rows += [[Paragraph(pdf_text(text), cell) for text in row] for row in texts[1:]]  # wrapped in their columns
    return _table(rows, [w * cm for w in _column_widths(texts, width_cm, cell.fontSize)])


def _column_widths(texts: list[list[str]], width_cm: float, size: float) -> list[float]:
    """Columns (cm) that share ``width_cm`` evenly, each at least as wide as its longest word (the header's in
    bold) where the page has room: an even share cut "(sliding-window)" inside the word."""
    padding = 14  # points: the cell's padding on both sides, and a little
    needs = [max(stringWidth(word, BOLD if r == 0 else REGULAR, size) + padding
                 for r, row in enumerate(texts) for word in row[c].split()) / cm
             for c in range(len(texts[0]))]
    even = width_cm / len(needs)
    if sum(needs) > width_cm or all(n <= even for n in needs):
        return [even] * len(needs)
    spare = width_cm - sum(needs)  # what the longest words leave, shared evenly
    return [n + spare / len(needs) for n in needs]


def _hybrid_basis(content: ReportContent) -> str:
    """What each hybrid column is (calibrated on which data, or uncalibrated), one line per model."""
    result = content.result
    entries = [e for e in (result.entries if result else ()) if e.has_malignancy]
    short = content.short_labels
    basis = [hybrid_basis(entry, content.report.plain_hybrid) for entry in entries]
    if len(entries) == 1:
        return pdf_text(basis[0])
    return "<br/>".join(pdf_text(named_hybrid_basis(short[entry.id], text))
                        for entry, text in zip(entries, basis, strict=True))


def _assessment(content: ReportContent):
    """The reader's BI-RADS assessment, density and recommendation, when given: the first read's, with what an
    amendment after AI changed beside it ("4A → 4C after AI"; the table gave 4A alone under a reader line that
    said 4C)."""
    rows = [["", "BI-RADS assessment", "density", "recommendation"]]
    for side, name in BREASTS:
        read = content.report.reads.get(side.value)
        latest = read.amendment if read is not None and read.amendment is not None else read
        if read and any((read.birads, read.density, read.recommendation, latest.birads, latest.density,
                         latest.recommendation)):
            after = "amended" if read.ai_shown else "after AI"

            def cell(first: str, last: str) -> str:
                return first or "—" if first == last else f"{first or '—'} → {last or '—'} {after}"

            rows.append([name + (" (draft)" if is_draft(read) else ""), *(
                Paragraph(pdf_text(text), _CELL) for text in (cell(read.birads, latest.birads),
                                                              cell(read.density, latest.density),
                                                              cell(read.recommendation, latest.recommendation)))])
    # columns of fixed widths, the texts wrapped in them: an amendment's "→ … after AI" widened the table past the page
    return _table(rows, widths=[2.6 * cm, 4.2 * cm, 3.4 * cm, 6.6 * cm]) if len(rows) > 1 else None


def _height_left(flowables: list, pagesize: tuple[float, float], width_cm: float) -> float:
    """The height (points) page one's frame has left below ``flowables`` (the margins of ``write_pdf``;
    negative: they pass page one)."""
    frame = pagesize[1] - 2 * 1.3 * cm - 12  # the margins and the frame's padding
    used = 0.0
    for flowable in flowables:
        used += flowable.wrap(width_cm * cm, frame)[1] + flowable.getSpaceBefore() + flowable.getSpaceAfter()
    return frame - used


_CELL = ParagraphStyle("assessment cell", fontName=REGULAR, fontSize=8.5, leading=10)


def write_pdf(content: ReportContent, path: str | Path, page_size: str = "A4") -> Path:
    path = Path(path)
    register_pdf_fonts()
    styles = getSampleStyleSheet()
    for style in styles.byName.values():  # DejaVu Sans for every text: Helvetica holds Latin-1 only
        if isinstance(style, ParagraphStyle):
            style.fontName = BOLD if "Bold" in style.fontName else REGULAR
    styles["Heading3"].keepWithNext = 1  # a section's title on the page of its content ("Reader's comments" was
    # left alone at the foot of a page, its text on the next; a radiologist's test)
    small = ParagraphStyle("small", parent=styles["BodyText"], fontSize=8, leading=10)
    warn = ParagraphStyle("warn", parent=styles["BodyText"], fontSize=9, leading=11, textColor=colors.HexColor("#8a1010"))
    pagesize = PAGE_SIZES[page_size]
    title = "Mammo Reader report" + (" (de-identified)" if content.report.deidentify else f" — {content.label}")
    width_cm = (pagesize[0] - 3 * cm) / cm
    story = [Paragraph("Mammography AI reading report", styles["Title"])]
    if content.is_demo():
        story.append(Paragraph(f"<b>{DEMO_WARNING}</b>", warn))
    story.append(Paragraph(f"<b>{DISCLAIMER}</b>", warn))
    story.append(Spacer(1, 0.2 * cm))
    cell = ParagraphStyle("cell", parent=styles["Normal"], fontSize=8.5, leading=10)
    story.append(_table([[k, Paragraph(pdf_text(v), cell)] for k, v in content.header_fields()],
                        [3.2 * cm, (width_cm - 3.2) * cm], header=False))  # long values wrap inside the page
    story.append(Spacer(1, 0.3 * cm))

    figure = content.figure(760)  # about 200 dpi at print size
    aspect = figure.shape[0] / figure.shape[1]
    figure_block = []  # the figure with its legend, on page one (the legend was cut mid-sentence at its foot, and
    # "Cyan crosses" stood alone atop page 2)
    entry = content.entry
    if entry is not None:
        drawn = next((layers for view in content.exam.views if (layers := content.drawn_layers(view))), [])
        items = []
        for layer in drawn:
            if layer.colormap:
                items.append(pdf_text(f"{layer.name} in the {layer.colormap} colour map (dark blue = 0 to yellow = 1)"))
            else:
                c = layer.class_name
                items.append(f"<font color='{_hex(class_colour(c, entry.classes))}'>■</font> {pdf_text(c.replace('_', ' '))}")
        kinds = sorted({r.kind for v in content.result.views.values() if (e := v.result(entry.id)) is not None
                        for r in e.regions})
        orders = "; ".join(f"{kind}: {rank_order(kind)}" for kind in kinds) or "by score"
        maps = (f"Maps of {pdf_text(entry.label)}: {', '.join(items)} (opacity = value, 0 to 1)" if items
                else f"{pdf_text(entry.label)} gives no maps")  # a detector: it said "Maps of …: none"
        figure_block.append(Paragraph(f"{maps}; yellow boxes: its scored regions, numbered by rank "
                                      f"({pdf_text(orders)}; {pdf_text(content.regions_rule())}).", small))
    if content.report.marks:
        figure_block.append(Paragraph("Cyan crosses: the reader's own marks (M1, M2, … as in the table of marks).",
                                      small))
    # at most 13 cm tall, and less where a long header and legend leave less of page one (kept together at 13
    # cm, Letter's page one held the header alone)
    room = _height_left(story + figure_block, pagesize, width_cm) - 0.8 * cm
    fig_height = min(13.0 * cm, room) if room >= 6.0 * cm else 13.0 * cm  # less room: a page of its own
    fig_width = min(width_cm, fig_height / cm / aspect)
    story.append(KeepTogether([_image(encode_png(figure), fig_width, aspect), *figure_block]))
    result = content.result
    if result is not None:
        story += [Spacer(1, 0.2 * cm)]
        story += _model_tables(content, styles, Paragraph("Model probabilities", styles["Heading3"]))
    # the heading, the table and what its hybrids are on one page (a hybrid's basis ran onto the next)
    hybrids = [Paragraph("Reader, model and hybrid", styles["Heading3"]), _reader_table(content, width_cm, cell)]
    if _hybrid_basis(content):
        hybrids.append(Paragraph(_hybrid_basis(content), styles["Normal"]))
    shown = [name for side, name in BREASTS if (read := content.report.reads.get(side.value)) is not None
             and read.ai_shown and read.malignant is not None]
    if shown:  # blind reading off: the reader's probability is no opinion formed without the model
        hybrids.append(Paragraph(pdf_text(f"{' and '.join(shown)}: the reader's first read was made with the AI "
                                          "shown (blind reading off): the hybrid is not of two independent opinions."),
                                 styles["Normal"]))
    story += [Spacer(1, 0.3 * cm), KeepTogether(hybrids)]
    assessment = _assessment(content)
    if assessment is not None:
        story += [Spacer(1, 0.3 * cm), Paragraph("Reader's assessment", styles["Heading3"]), assessment]
    if content.report.marks:
        from app.report.figures import mark_names  # noqa: PLC0415

        rows = [["mark", "view", "finding", "confidence", "position (row, col)", "made"]]
        rows += [[name, m.view, m.label, f"{m.confidence} / 5", f"{m.row:.0f}, {m.col:.0f}",
                  "after AI" if m.after_ai else "before AI"]
                 for name, m in zip(mark_names(content), content.report.marks, strict=True)]
        story += [Spacer(1, 0.3 * cm), Paragraph("Reader's marks", styles["Heading3"]), _table(rows)]
    if entry is not None:
        story.append(Spacer(1, 0.3 * cm))
        heading = [Paragraph(f"Regions of {pdf_text(entry.label)}", styles["Heading3"])]  # with the first view's
        shown = 0  # regions: it stood alone at a page's foot
        for view in content.views():
            thumbs = content.thumbnails(view)
            if not thumbs:
                continue
            cells = [[_image(encode_png(t), 2.3, 1.0) for _, _, t in thumbs],
                     [Paragraph(pdf_text(caption), small) for _, caption, _ in thumbs]]
            # the view's name with its regions (L-MLO's stood alone at a page's foot, its crops on the next)
            story.append(KeepTogether([*heading, Paragraph(view.value, small), _table(cells, header=False)]))
            heading = []
            shown += 1
        if not shown:  # a heading over nothing reads as if something failed to print
            story.append(KeepTogether([*heading, Paragraph("none shown (no region on any view with a result; the "
                                                           "notes say which views have none)", small)]))
    notes = content.notes()
    if notes:
        story += [Spacer(1, 0.3 * cm), Paragraph("Intake and analysis notes", styles["Heading3"])]
        story += [Paragraph(f"• {pdf_text(n)}", small) for n in notes]
    if content.comments or content.comments_left_out:
        story += [Spacer(1, 0.3 * cm), Paragraph("Reader's comments", styles["Heading3"]),
                  Paragraph(pdf_text(content.comments or COMMENTS_LEFT_OUT), small)]
    # the file opened here, closed whatever happens: reportlab's own open stayed open after a failed write (a full
    # disk), held by the kept error's traceback, and the deleted partial PDF kept its space, so that not even
    # failures.csv could be written after it (a deployer's re-test)
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        doc = SimpleDocTemplate(
            handle, pagesize=pagesize, leftMargin=1.5 * cm, rightMargin=1.5 * cm, topMargin=1.3 * cm,
            bottomMargin=1.3 * cm, title=title, author="Mammo Reader", subject="AI decision-support report",
            creator="Mammo Reader", keywords="mammography, decision support",
            invariant=content.report.deidentify or None,  # de-identified: no true creation date in its metadata
        )
        try:
            doc.build(story)
        except LayoutError as error:  # a flowable taller than a page: this format fails, said; the others go on
            # (reportlab's message quotes the table's text, the patient's name among it: not repeated)
            raise MammoError("the PDF could not be laid out: a part of it is taller than a page", path) from error
    return path
