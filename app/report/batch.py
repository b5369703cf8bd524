"""Reports for many exams, headless: progress, resume (finished exams are skipped), a clear summary line
for each exam that failed, and the next exam loading while the current one is analysed."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from app.report.content import ReportInput
from app.report.export import export_report
from inference.errors import MammoError
from inference.exam import load_exam
from inference.files import write_text_atomic
from inference.pipeline import analyze_exam, as_groups


@dataclass
class BatchSummary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exams_per_minute(self) -> float:
        return 60.0 * len(self.done) / self.seconds if self.seconds > 0 else 0.0


def _marker(out: Path, source: str) -> Path:
    return out / ".done" / hashlib.sha1(str(Path(source).resolve()).encode()).hexdigest()


def _options(formats: Sequence[str], deidentify: bool, page_size: str, reader: str, groups, mode: str) -> dict:
    """What a finished exam's reports were made with: a rerun skips the exam only when it asks for the same."""
    return {"formats": sorted(formats), "deidentify": bool(deidentify), "page_size": page_size, "reader": reader,
            "models": [f"{g.id}={g.key}" for g in groups], "mode": mode}


def _already_done(marker: Path, options: dict) -> bool:
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("options") != options:
        return False
    return all(Path(path).is_file() for path in record.get("files", []))


def run_batch(
    sources: Sequence[str | Path],
    models,
    out: str | Path,
    *,
    formats: Sequence[str] = ("pdf", "png", "json"),
    deidentify: bool = False,
    device: str | None = None,
    page_size: str = "A4",
    reader: str = "",
    progress: Callable[[str, int, int], None] | None = None,
    force: bool = False,
    mode: str = "exact",
) -> BatchSummary:
    """Report every exam in ``sources``; an exam is skipped when its reports exist from a run with the same
    options (formats, de-identification, page size, reader, models), unless ``force``."""
    out = Path(out)
    (out / ".done").mkdir(parents=True, exist_ok=True)
    progress = progress or (lambda *a: None)
    summary = BatchSummary()
    started = time.perf_counter()
    groups = as_groups(models)
    options = _options(formats, deidentify, page_size, reader, groups, mode)
    todo = []
    for source in sources:
        if not force and _already_done(_marker(out, str(source)), options):
            summary.skipped.append(str(source))
        else:
            todo.append(str(source))

    def load(source: str):
        exam = load_exam(source)
        return exam.deidentify() if deidentify else exam

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        pending = pool.submit(load, todo[0]) if todo else None
        for index, source in enumerate(todo):
            progress(f"{Path(source).name}", index, len(todo))
            future, pending = pending, (pool.submit(load, todo[index + 1]) if index + 1 < len(todo) else None)
            try:
                exam = future.result()
                result = analyze_exam(exam, groups, device=device, mode=mode)
                written = export_report(ReportInput(exam, result, reader=reader, deidentify=deidentify), out, formats,
                                        page_size)
            except MammoError as error:
                summary.failed.append((source, str(error)))
                continue
            except Exception as error:  # noqa: BLE001 - one exam's failure (a full disk, a codec) ends only that exam
                summary.failed.append((source, f"{type(error).__name__}: {error}"))
                continue
            record = {"options": options, "files": [str(p) for p in written]}
            write_text_atomic(_marker(out, source), json.dumps(record))
            summary.done.append(source)
    progress("done", len(todo), len(todo))
    summary.seconds = time.perf_counter() - started
    return summary
