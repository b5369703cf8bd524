"""One exam's report in the chosen formats: PDF, PNG (four views + each view), JSON, DICOM SR, and the saliency
maps as DICOM Segmentations."""

from __future__ import annotations

from pathlib import Path

import cv2

from app.report.content import ReportInput, exam_label
from app.report.figures import four_view_figure, view_figure

FORMATS = ("pdf", "png", "json", "sr", "seg")


def export_report(report: ReportInput, out: str | Path, formats=("pdf", "png", "json"), page_size: str = "A4") -> list[Path]:
    from app.report.json_report import write_json  # noqa: PLC0415
    from app.report.pdf import write_pdf  # noqa: PLC0415

    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown report formats {sorted(unknown)}; use {', '.join(FORMATS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = exam_label(report)
    written = []
    if "pdf" in formats:
        written.append(write_pdf(report, out / f"{stem}.pdf", page_size))
    if "png" in formats:
        figure = four_view_figure(report.exam, report.result, tile_height=1200)
        path = out / f"{stem}_four_views.png"
        _write_png(path, figure)
        written.append(path)
        for view, image in report.exam.views.items():
            view_result = report.result.views.get(view) if report.result else None
            path = out / f"{stem}_{view.value}.png"
            _write_png(path, view_figure(image, view_result, scale=1.0))
            written.append(path)
    if "json" in formats:
        written.append(write_json(report, out / f"{stem}.json"))
    if "sr" in formats:
        from app.report.sr import write_sr  # noqa: PLC0415

        written.append(write_sr(report, out / f"{stem}_sr.dcm"))
    if "seg" in formats:
        from app.report.seg import write_saliency_segs  # noqa: PLC0415

        written += write_saliency_segs(report, out)
    return written


def _write_png(path: Path, image) -> None:
    """cv2.imwrite reports failure (a full disk, a read-only folder) only by returning False."""
    if not cv2.imwrite(str(path), image):
        raise OSError(f"{path}: the PNG could not be written (is the disk full or the folder read-only?)")
