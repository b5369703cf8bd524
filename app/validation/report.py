"""The validation report (PDF, reportlab) for a clinical AI committee: what was validated on which data,
the ROC curves with DeLong CIs, the operating points with Wilson CIs, calibration before and after the site
recalibration, subgroups, drift, paired comparisons, and what could not be used."""

from __future__ import annotations

import io
import re
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import Image, KeepTogether, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from app.study.analysis import zero_variance_reason
from app.validation.calibration import FOLDS, NONE
from app.validation.metrics import FEWER_THAN_TWO
from app.validation.figures import drift_figure, forest_figure, png, reliability_figure, roc_figure
from app.validation.run import RESERVED, Validation
from app.validation.tables import unused_rows
from app.report import fonts
from app.report.fonts import in_cid_fonts, pdf_text, register_pdf_fonts
from inference.files import atomic_path, write_bytes_atomic
from inference.numbers import p_text, threshold_text

LISTED = 40  # unused items listed in the PDF; all of them are in unused.csv
MARGIN = 1.6 * cm
FRAME_WIDTH = A4[0] - 2 * MARGIN - 12  # the text's width (the frame pads 6 pt a side); wider runs off the page
FONT, BOLD, SIZE, PAD = fonts.REGULAR, fonts.BOLD, 8, 4  # DejaVu Sans: a site's or a model's name as written
CELL = ParagraphStyle("cell", fontName=FONT, fontSize=SIZE, leading=SIZE + 1.5)
HEAD = ParagraphStyle("head", parent=CELL, fontName=BOLD)


def _figure(image, width_cm: float) -> Image:
    height, width = image.shape[:2]
    return Image(io.BytesIO(png(image)), width=width_cm * cm, height=width_cm * height / width * cm)


def _fit(natural: list[float], total: float, floors: list[float] | None = None) -> list[float]:
    """Column widths summing to at most ``total``: a column narrower than its fair share keeps its width, the
    wider ones share what is left equally (their text wraps); where the page has room, none is narrower than
    its ``floors`` (its longest word: "(0.000111–0.563)" was cut inside the interval)."""
    if sum(natural) <= total:
        return list(natural)
    widths, left = list(natural), total
    order = sorted(range(len(natural)), key=natural.__getitem__)
    for done, index in enumerate(order):
        widths[index] = min(natural[index], left / (len(order) - done))
        left -= widths[index]
    floors = [min(f, n) for f, n in zip(floors or [0.0] * len(natural), natural, strict=True)]
    if sum(floors) > total:
        return widths
    short = sum(max(f - w, 0.0) for f, w in zip(floors, widths, strict=True))
    slack = [max(w - f, 0.0) for f, w in zip(floors, widths, strict=True)]
    if short <= 0 or sum(slack) <= 0:
        return widths
    return [max(w, f) - (s / sum(slack)) * short for w, f, s in zip(widths, floors, slack, strict=True)]


def _table(rows: list[list]) -> Table:
    """A table that fits the page's width: when its text is wider, the widest columns wrap."""
    register_pdf_fonts()  # measured in them
    natural = [max(stringWidth(str(row[i]), BOLD if r == 0 else FONT, SIZE) for r, row in enumerate(rows)) + 2 * PAD
               for i in range(len(rows[0]))]
    longest = [max(stringWidth(word, BOLD if r == 0 else FONT, SIZE) for r, row in enumerate(rows)
                   for word in str(row[i]).split() or [""]) + 2 * PAD for i in range(len(rows[0]))]
    widths = _fit(natural, FRAME_WIDTH, longest)
    cells = [[Paragraph(pdf_text(str(c)), HEAD if r == 0 else CELL)
              if widths[i] < natural[i] or in_cid_fonts(str(c)) else c
              for i, c in enumerate(row)] for r, row in enumerate(rows)]
    table = Table(cells, colWidths=widths, hAlign="LEFT", repeatRows=1)
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), FONT, SIZE), ("FONT", (0, 0), (-1, 0), BOLD, SIZE),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey), ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6e6ee")),
        ("LEFTPADDING", (0, 0), (-1, -1), PAD), ("RIGHTPADDING", (0, 0), (-1, -1), PAD),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5)]))
    return table


def _num(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _ci(pair, number=None) -> str:
    if not pair:
        return "—"
    number = number or (lambda value: f"{value:.3f}")
    return f"{number(pair[0])} to {number(pair[1])}" if min(pair) < 0 else f"{number(pair[0])}–{number(pair[1])}"


def _auc_ci(entry: dict) -> str:
    """The AUC's interval, or why there is none where DeLong's variance is 0."""
    if not entry.get("auc_ci_note"):
        return _ci(entry["auc_ci"])
    if min(entry["n_positive"], entry["n_negative"]) < 2:
        return f"none: {FEWER_THAN_TWO}"
    return f"none: {zero_variance_reason(entry['auc'], brief=True)}"


def _pct(entry) -> str:
    if not entry or entry["value"] is None:
        return "—"
    low, high = entry["ci"]
    return f"{100 * entry['value']:.1f} % ({100 * low:.1f}–{100 * high:.1f})"


def _subgroup_points(rows: list[dict], small: ParagraphStyle) -> list:
    """Each subgroup's sensitivity and specificity at the first requested operating point (a threshold set on the
    whole cohort): what a service asks of dense breasts or one device, beside the AUCs of the forest plot."""
    measured = [s for s in rows if s.get("operating_point")]
    if not measured:
        return []
    first = measured[0]
    table = [["subgroup", "breasts", "cancers", "sensitivity", "specificity"]]
    table += [[f"{s['variable']}: {s['value']}", str(s["n"]), str(s["n_positive"]), _pct(s["sensitivity"]),
               _pct(s["specificity"])] for s in measured]
    return [Paragraph(pdf_text(f"At the operating point {first['operating_point']} (threshold "
                               f"{threshold_text(first['threshold'])}, set on the whole cohort):"), small),
            Spacer(1, 0.1 * cm), _table(table)]  # the sentence touched the table's top border


def _recalibration_text(cal: dict, rec: dict) -> str:
    losses = rec["cv_log_loss"]
    text = (f"Recalibration chosen by {FOLDS}-fold cross-validated log loss: Platt {losses['platt']:.4f}, "
            f"isotonic {losses['isotonic']:.4f} (uncalibrated {losses['uncalibrated']:.4f})"
            + (f", not {pdf_text(rec['not_chosen'])}" if rec.get("not_chosen") else "") + " → ")
    if rec["method"] == NONE:
        return text + f"<b>none</b>; ECE {cal['ece']:.4f} on {rec['n']} breasts ({rec['n_positive']} cancers)."
    return (text + f"<b>{rec['method']}</b>; ECE {cal['ece']:.4f} → {rec['ece_after']:.4f} on {rec['n']} breasts "
            f"({rec['n_positive']} cancers)."
            + (f" Saved as version {rec['version']} in {pdf_text(rec['file'])}." if rec.get("file") else ""))


def write_report(validation: Validation, path: Path, description: str, figures: Path | None = None) -> list[Path]:
    """The PDF at ``path``; with ``figures``, each figure also as a PNG there. Returns the files written."""
    metrics = validation.metrics
    written: list[Path] = []

    def figure(image, width_cm: float, name: str) -> Image:
        if figures is not None:
            safe = re.sub(r"[^\w.-]", "_", name)
            written.append(write_bytes_atomic(figures / f"{safe}.png", png(image)))
        return _figure(image, width_cm)

    register_pdf_fonts()
    styles = getSampleStyleSheet()
    for style in styles.byName.values():  # DejaVu Sans for every text: Helvetica holds Latin-1 only
        if isinstance(style, ParagraphStyle):
            style.fontName = BOLD if "Bold" in style.fontName else FONT
    body, heading, small = styles["BodyText"], styles["Heading2"], styles["Italic"]
    models = [(m, v) for m, v in metrics.items() if m not in RESERVED]
    account = metrics["accounting"]
    story = [Paragraph("Site validation of AI models", styles["Title"]),
             Paragraph(pdf_text(f"Site: {metrics['run']['site']} · run {metrics['run']['date']} · {description}"), body),
             Paragraph("Decision support only. Thresholds chosen on these data are measured on the same data: "
                       "the sensitivity and specificity at such a threshold are optimistic until confirmed on later "
                       "exams. AUC intervals: DeLong 95 %; proportions: Wilson 95 %; thresholds: bootstrap 95 %.",
                       small), Spacer(1, 6)]
    rows = [["model", "level", "cancers", "non-cancers", "AUC", "95 % CI"]]
    for model_id, v in models:
        for level in ("breast", "exam"):
            rows.append([f"{v['label']} [{model_id}]", level, v[level]["n_positive"], v[level]["n_negative"],
                         _num(v[level]["auc"]), _auc_ci(v[level])])
    story += [Paragraph("Discrimination", heading), _table(rows), Spacer(1, 6)]
    curves = [(f"{v['label']} {level}: AUC {_num(v[level]['auc'])} ({_auc_ci(v[level])})",
               *validation.arrays[m][level]) for m, v in models for level in ("breast", "exam")]
    story.append(figure(roc_figure(curves), 12, "roc"))
    story += [Paragraph("What was not used", heading), Paragraph(pdf_text(
        f"{account['exams_in_table']} exams in the score table; {account['breasts_with_outcome']} breasts with an "
        f"outcome. Exams without an outcome: {len(account['exams_without_outcome'])}; exams without an exam-level "
        f"outcome (a breast of theirs has none): {len(account.get('exams_without_exam_outcome', []))}; failed exams: "
        f"{len(account['failed_exams'])}; exams analysed only in part (used): "
        f"{len(account.get('partial_exams', []))}; exams with an outcome that were not analysed: "
        f"{len(account['outcome_exams_not_analysed'])}"
        + (f"; exams of the outcomes not in the de-identified batch's source (counted only): "
           f"{account['outcome_exams_outside_batch']}" if "outcome_exams_outside_batch" in account else "")
        + "; models not validated: "
        f"{len(account['models_not_validated'])}. "
        + " ".join(f"{v['label']}: {len(v['unused']['breasts_without_score'])} breast(s) without a score, "
                   f"{v['unused']['one_view_breasts']} scored from one view." for _, v in models)), body)]
    unused = unused_rows(metrics)
    if unused:
        story.append(_table([["what", "model", "exam", "breast", "reason"]]
                            + [[str(c) for c in row] for row in unused[:LISTED]]))  # long reasons wrap
        if len(unused) > LISTED:
            story.append(Paragraph(f"… and {len(unused) - LISTED} more: all are in unused.csv", small))
    for model_id, v in models:
        story += [PageBreak(), Paragraph(pdf_text(f"{v['label']} [{model_id}]"), styles["Heading1"])]
        if v["operating_points_note"]:
            story.append(Paragraph(pdf_text(v["operating_points_note"]), small))
        rows = [["level", "point", "threshold (95 % CI)", "sensitivity", "specificity", "recall rate", "PPV"]]
        for p in v["operating_points"]:
            rows.append([p["level"], f"{p['name']} ({p['source']})",
                         threshold_text(p["threshold"])
                         + (f" ({_ci(p['threshold_ci'], threshold_text)})" if p["threshold_ci"] else ""),
                         _pct(p["sensitivity"]), _pct(p["specificity"]), _pct(p["recall_rate"]), _pct(p["ppv"])])
        story += [Paragraph("Operating points", heading), _table(rows)]
        if v.get("ppv_note"):
            story.append(Paragraph(pdf_text(v["ppv_note"]), small))
        cal = v["calibration"]
        story.append(Paragraph("Calibration (breast level)", heading))
        if "ece" in cal:
            scores, truth = validation.arrays[model_id]["breast"]
            rec = cal.get("recalibration")
            after = validation.recalibrated.get(model_id)
            story.append(figure(reliability_figure(scores, truth, after, cal["bins"], cal["ece"],
                                                    rec["ece_after"] if rec else None, rec["method"] if rec else None),
                                16 if after is not None else 8.5, f"reliability_{model_id}"))  # cm: 8 a panel
            if rec:
                story.append(Paragraph(_recalibration_text(cal, rec), body))
        for note in (cal.get("note"), (cal.get("recalibration") or {}).get("save_error")):
            if note:
                story.append(Paragraph(pdf_text(note), small))
        story += [KeepTogether([Paragraph("Subgroups (breast level)", heading),  # no heading alone at a page's foot
                                figure(forest_figure(v["subgroups"], f"{v['label']}: AUC by subgroup"), 16,
                                       f"subgroups_{model_id}")])]
        story += _subgroup_points(v["subgroups"], small)
        story += [
                  KeepTogether([Paragraph("Drift by month of study date (breast level)", heading),
                                figure(drift_figure(v["drift"], f"{v['label']}: AUC and scores by month"), 16,
                                       f"drift_{model_id}")])]
    if metrics["comparisons"]:
        rows = [["A", "B", "level", "n", "AUC A", "AUC B", "A − B", "95 % CI", "p"]]
        for c in metrics["comparisons"]:
            rows.append([c["a"], c["b"], c["level"], c["n"], _num(c["auc_a"]), _num(c["auc_b"]),
                         _num(c["difference"]), _ci(c["ci"]), p_text(c["p"])])
        story += [PageBreak(), Paragraph("Paired comparisons (DeLong)", heading), _table(rows),
                  Paragraph("Both models on the same units (those both scored); the difference is A minus B.", small)]
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:  # closed on a failed write (pdf.py)
        SimpleDocTemplate(handle, pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN,
                          topMargin=1.4 * cm, bottomMargin=1.4 * cm, title="Site validation").build(story)
    return [path, *written]
