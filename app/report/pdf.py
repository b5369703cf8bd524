"""The annotated PDF report (reportlab): vector text, 200-dpi figures, A4 or Letter, a few MB."""

from __future__ import annotations

import io
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from app.report.content import DEMO_WARNING, DISCLAIMER, ReportInput, exam_label, header_fields, hybrid, is_demo, warnings
from app.report.figures import encode_png, four_view_figure, patch_thumbnails
from inference.views import Laterality, View

PAGE_SIZES = {"A4": A4, "Letter": LETTER}


def _percent(value) -> str:
    return "—" if value is None else f"{100 * float(value):.1f} %"


def _image(png: bytes, width_cm: float, aspect: float) -> Image:
    return Image(io.BytesIO(png), width=width_cm * cm, height=width_cm * aspect * cm)


def _table(rows, widths=None, header=True) -> Table:
    table = Table(rows, colWidths=widths, hAlign="LEFT")
    style = [("FONT", (0, 0), (-1, -1), "Helvetica", 8.5), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
             ("GRID", (0, 0), (-1, -1), 0.25, colors.grey), ("TOPPADDING", (0, 0), (-1, -1), 2),
             ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
    if header:
        style += [("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8.5), ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6e6ee"))]
    table.setStyle(TableStyle(style))
    return table


def write_pdf(report: ReportInput, path: str | Path, page_size: str = "A4") -> Path:
    path = Path(path)
    styles = getSampleStyleSheet()
    small = ParagraphStyle("small", parent=styles["BodyText"], fontSize=8, leading=10)
    warn = ParagraphStyle("warn", parent=styles["BodyText"], fontSize=9, leading=11, textColor=colors.HexColor("#8a1010"))
    pagesize = PAGE_SIZES[page_size]
    title = "Mammo Reader report" + (" (de-identified)" if report.deidentify else f" — {exam_label(report)}")
    doc = SimpleDocTemplate(
        str(path), pagesize=pagesize, leftMargin=1.5 * cm, rightMargin=1.5 * cm, topMargin=1.3 * cm,
        bottomMargin=1.3 * cm, title=title, author="Mammo Reader", subject="AI decision-support report",
        creator="Mammo Reader", keywords="mammography, GMIC, decision support",
    )
    width_cm = (pagesize[0] - 3 * cm) / cm
    story = [Paragraph("Mammography AI reading report", styles["Title"])]
    if is_demo(report):
        story.append(Paragraph(f"<b>{DEMO_WARNING}</b>", warn))
    story.append(Paragraph(f"<b>{DISCLAIMER}</b>", warn))
    story.append(Spacer(1, 0.2 * cm))
    story.append(_table([[k, v] for k, v in header_fields(report)], [3.2 * cm, (width_cm - 3.2) * cm], header=False))
    story.append(Spacer(1, 0.3 * cm))

    figure = four_view_figure(report.exam, report.result, tile_height=760)  # about 200 dpi at print size
    aspect = figure.shape[0] / figure.shape[1]
    fig_width = min(width_cm, 13.0 / aspect)  # at most 13 cm tall: header, figure and scores on page one
    story.append(_image(encode_png(figure), fig_width, aspect))
    story.append(Paragraph("Saliency: green benign, red malignant (opacity = probability, 0 to 1); yellow boxes: the "
                           "retrieved patches, numbered by retrieval order.", small))
    result = report.result
    if result is not None:
        rows = [["", "benign", "malignant", "spread (malignant)"]]
        for view in View:
            if view in result.views:
                r = result.views[view]
                rows.append([view.value, _percent(r.probabilities[0]), _percent(r.probabilities[1]),
                             _percent(r.spread[1]) if len(result.provenance.models) > 1 else "—"])
        for side in (Laterality.RIGHT, Laterality.LEFT):
            if side in result.breasts:
                b = result.breasts[side]
                rows.append([f"{'Right' if side == Laterality.RIGHT else 'Left'} breast (mean of CC, MLO)",
                             _percent(b.probabilities[0]), _percent(b.probabilities[1]), ""])
        rows.append(["Exam (maximum over breasts)", _percent(result.probabilities[0]), _percent(result.probabilities[1]), ""])
        story += [Spacer(1, 0.3 * cm), Paragraph("Model probabilities", styles["Heading3"]), _table(rows)]

    rows = [["Probability of malignancy", "reader", "model", "hybrid (mean)", "BI-RADS"]]
    for side, name in (("R", "Right breast"), ("L", "Left breast")):
        read = report.reads.get(side)
        model = None
        if result is not None and Laterality(side) in result.breasts:
            model = float(result.breasts[Laterality(side)].probabilities[1])
        reader = read.malignant if read else None
        rows.append([name, _percent(reader), _percent(model), _percent(hybrid(reader, model)), (read.birads if read else "") or "—"])
    story += [Spacer(1, 0.3 * cm), Paragraph("Reader, model and hybrid", styles["Heading3"]), _table(rows)]

    if result is not None:
        story += [Spacer(1, 0.3 * cm), Paragraph("Retrieved patches (attention weights)", styles["Heading3"])]
        for view in View:
            if view not in result.views or view not in report.exam.views:
                continue
            thumbs = patch_thumbnails(report.exam.views[view], result.views[view])
            cells = [[_image(encode_png(t), 2.3, 1.0) for _, _, t in thumbs],
                     [f"#{rank}  {attention:.3f}" for rank, attention, _ in thumbs]]
            story.append(Paragraph(view.value, small))
            story.append(_table(cells, header=False))
    notes = warnings(report)
    if notes:
        story += [Spacer(1, 0.3 * cm), Paragraph("Intake and analysis notes", styles["Heading3"])]
        story += [Paragraph(f"• {n}", small) for n in notes]
    if report.comments:
        story += [Spacer(1, 0.3 * cm), Paragraph("Reader's comments", styles["Heading3"]), Paragraph(report.comments, small)]
    doc.build(story)
    return path
