"""One exam's report in the chosen formats: PDF, PNG (four views + each view), JSON (+ its maps), DICOM SR, the
maps as DICOM Segmentations, and the PDF as a DICOM Encapsulated PDF (epdf). The content (windowed images, maps on the original grid, figures) is
computed once and every writer renders it; each file is written atomically."""

from __future__ import annotations

from pathlib import Path

import cv2

from app.report.content import ReportContent, ReportInput
from inference.files import atomic_path

FORMATS = ("pdf", "png", "json", "sr", "seg", "epdf")


def export_report(report: ReportInput, out: str | Path, formats=("pdf", "png", "json"), page_size: str = "A4") -> list[Path]:
    from app.report.json_report import write_json  # noqa: PLC0415
    from app.report.pdf import write_pdf  # noqa: PLC0415

    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown report formats {sorted(unknown)}; use {', '.join(FORMATS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    content = ReportContent(report)
    stem = content.label
    written = []
    if "pdf" in formats:
        written.append(write_pdf(content, out / f"{stem}.pdf", page_size))
    if "epdf" in formats:  # the PDF as a DICOM Encapsulated PDF (the PDF file itself only when asked for)
        from app.report.encapsulated_pdf import write_encapsulated_pdf  # noqa: PLC0415

        pdf = (out / f"{stem}.pdf") if "pdf" in formats else None
        if pdf is None:
            import tempfile  # noqa: PLC0415

            with tempfile.TemporaryDirectory() as folder:
                data = write_pdf(content, Path(folder) / "report.pdf", page_size).read_bytes()
        else:
            data = pdf.read_bytes()
        written.append(write_encapsulated_pdf(content, data, out / f"{stem}_pdf.dcm"))
    if "png" in formats:
        path = out / f"{stem}_four_views.png"
        write_png(path, content.figure(1200))
        written.append(path)
        for view in content.views():
            path = out / f"{stem}_{view.value}.png"
            write_png(path, content.view_figure(view))
            written.append(path)
    if "json" in formats:
        written += write_json(content, out / f"{stem}.json")
    if "sr" in formats:
        from app.report.sr import write_sr  # noqa: PLC0415

        written.append(write_sr(content, out / f"{stem}_sr.dcm"))
    if "seg" in formats:
        from app.report.seg import write_saliency_segs  # noqa: PLC0415

        written += write_saliency_segs(content, out)
    return written


def write_png(path: Path, image) -> None:
    """cv2.imwrite reports failure only by returning False; the file appears whole or not at all."""
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{path}: the PNG could not be encoded")
    with atomic_path(path) as temporary:
        temporary.write_bytes(data.tobytes())
