"""The driver's bookkeeping of a batch: what is left to do, the outcomes as they arrive (journal, failures,
the score table, progress), whatever engine produces them. Only the driver writes these files."""

from __future__ import annotations

import csv
import datetime
import io
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TextIO

from app.archive.sources import ExamItem
from app.archive.table import BOOKKEEPING, SCORES_FILE, part_path, read_part, write_scores
from app.archive.unit import Outcome, already_done, marker_path, read_marker
from inference.errors import MammoError
from inference.files import hide_file_times, write_text_atomic
from inference.spreadsheet_cells import read_text_cell, text_dict_writer, text_writer

FAILURES_FILE = "failures.csv"
FAILURE_COLUMNS = ("exam_id", "location", "reason", "failed_at")
SHARED_IMAGE = ("an image of this exam carries the SOP Instance UID of an image of exam {others} (an archive error: "
                "one UID, two images or one image filed twice): its DICOM results (SR, SEG, Encapsulated PDF, image "
                "copies) {fate}, as a PACS would lay them on the other exam's image (any sent to a PACS already: "
                "delete them there); correct the archive and run again")
# the table is rewritten after every exam while it is small (a few milliseconds), then every 30 s
CONSOLIDATE_ALWAYS_ROWS = 20_000
CONSOLIDATE_EVERY_S = 30.0


@dataclass
class BatchSummary:
    total: int = 0
    done: list[Outcome] = field(default_factory=list)
    skipped: list[Outcome] = field(default_factory=list)
    failed: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    partial: list[Outcome] = field(default_factory=list)  # files written, with a reason (also in failures.csv)
    withdrawn_before: int = 0  # of ``partial``: exams finished before, withdrawn by this run, not analysed by it

    @property
    def analysed(self) -> int:
        """The exams this run analysed (done, or done in part)."""
        return len(self.done) + len(self.partial) - self.withdrawn_before

    @property
    def exams_per_minute(self) -> float:
        return 60.0 * self.analysed / self.seconds if self.seconds > 0 else 0.0


class Progress:
    """Exams done / failed / per minute and the time left, on one terminal line (stderr); where the stream is no
    terminal (a log file, a pipe) a line per tenth of the exams, per minute at most otherwise, and the last one,
    each once: a log cannot redraw a line, and its viewer showed the carriage-returned ones run together."""

    LOG_EVERY_S = 60.0

    def __init__(self, total: int, stream: TextIO | None | Literal["stderr"] = "stderr", every_s: float = 1.0) -> None:
        """``stream``: where the line goes; "stderr" is the process's stderr when the line is written (not the one
        of the moment this module was imported: that one may be closed by then); None: nowhere."""
        self.total, self.stream, self.every_s = total, stream, every_s
        self.started = time.perf_counter()
        self.shown = 0.0
        self._logged: tuple[int, int] | None = None  # (finished, tenth) of the last line written to a log

    def line(self, done: int, failed: int, partial: int = 0) -> str:
        """``done``: exams finished whole; ``partial``: finished with a part missing (a view or a report format)."""
        elapsed = time.perf_counter() - self.started
        finished = done + partial + failed
        rate = 60.0 * finished / elapsed if elapsed > 0 else 0.0
        left = self.total - finished
        eta = f"{left / rate:.1f} min left" if rate > 0 and left else ("finished" if not left else "")
        in_part = f"{partial} only in part, " if partial else ""
        return (f"{finished}/{self.total} exams: {done} done, {in_part}{failed} failed, {rate:.1f}/min, "
                f"{eta}").rstrip(", ")

    def __call__(self, done: int, failed: int, final: bool = False, partial: int = 0) -> None:
        if self.stream is None:
            return
        stream = sys.stderr if self.stream == "stderr" else self.stream
        if stream is None:  # no console (a windowed build): nowhere to write
            return
        now = time.perf_counter()
        isatty = getattr(stream, "isatty", None)
        if not (isatty and isatty()):
            finished = done + failed + partial
            tenth = 10 * finished // self.total if self.total else 10
            if self._logged is not None and finished == self._logged[0]:
                return
            if final or self._logged is None or tenth != self._logged[1] or now - self.shown >= self.LOG_EVERY_S:
                self.shown, self._logged = now, (finished, tenth)
                stream.write(self.line(done, failed, partial) + "\n")
                stream.flush()
            return
        if final or now - self.shown >= self.every_s:
            self.shown = now
            stream.write("\r" + self.line(done, failed, partial).ljust(72) + ("\n" if final else ""))
            stream.flush()


def read_failure_rows(folder: Path) -> list[dict[str, str]]:
    """The rows of a batch output's ``failures.csv`` (exam_id, location, reason, failed_at); none without the
    file. Raises OSError, UnicodeDecodeError or csv.Error for one that cannot be read (each caller says so its
    own way)."""
    path = Path(folder) / FAILURES_FILE
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [{key: read_text_cell(value) if isinstance(value, str) else value for key, value in row.items()}
                for row in csv.DictReader(handle)]
    return [row for row in rows if row.get("exam_id")]


class Ledger:
    """Records each outcome: the journal line, the failures file, the exam's rows in the score table."""

    def __init__(self, out: Path, items: Sequence[ExamItem], record: dict, *, force: bool = False,
                 progress: Progress | None = None, keep: Sequence[ExamItem] = ()) -> None:
        """``keep``: exams an earlier run finished in ``out`` that this run does not name, whose rows stay in
        the table when they were made with this run's models and options (``report`` into a folder that holds
        earlier reports)."""
        self.out = Path(out)
        self.deidentified = bool(record.get("deidentify"))
        foreign = [name for name in (SCORES_FILE, FAILURES_FILE) if (self.out / name).exists()]
        if foreign and not (self.out / BOOKKEEPING).is_dir():  # never overwrite files some other tool made
            raise MammoError(f"holds {' and '.join(foreign)} that no batch or report run made here (there is no "
                             f"{BOOKKEEPING} folder): choose another folder, or move them away", self.out)
        (self.out / BOOKKEEPING).mkdir(parents=True, exist_ok=True)
        self.summary = BatchSummary(total=len(items))
        self.started = time.perf_counter()
        self.progress = progress
        self.tables: dict[str, object] = {}  # exam ID -> its rows (a few dozen per exam), read once
        self.rows = 0  # of all those tables: kept as they come, not summed again after every exam
        self.failures = self._earlier_failures({i.exam_id for i in items})
        self.todo: list[ExamItem] = []
        self.by_id = {i.exam_id: i for i in items}
        # the shared-image check (see _shared_images): each image's keyed UID (unit.image_keys) -> the exams holding
        # it; each exam withdrawn -> (the exams it shares an image with, what became of its files, its own reason)
        self.image_holders: dict[str, list[str]] = {}
        self.withdrawn: dict[str, tuple[list[str], str, str]] = {}
        self.finished_by_id = dict(self.by_id)  # with the kept exams of an earlier run (report into a folder)
        shared: dict[str, set[str]] = {}
        for item in items:
            # its rows stay in the table until a forced run replaces them; rows that cannot be read (a damaged
            # or lost part) make it an exam to do again, not a done one with no rows
            marker = read_marker(self.out, item)  # read once: a million-exam archive's rerun reads each
            done_before = already_done(self.out, item, record, marker=marker) and self._keep_rows(item)
            if done_before and not force:
                self.summary.skipped.append(Outcome(item.exam_id, item.location, "skipped"))
                self.failures.pop(item.exam_id, None)
                self._hold_images(item, marker, shared)
            else:
                self.todo.append(item)
        if progress is not None:  # this run's exams: those an earlier run finished were counted as never done
            progress.total = len(self.todo)
        for item in keep:  # only rows made as this run makes them (the same models and options): one table
            marker = read_marker(self.out, item) if item.exam_id not in self.by_id else {}
            if marker and already_done(self.out, item, record, marker=marker):
                self._keep_rows(item)
                self.finished_by_id[item.exam_id] = item
                self._hold_images(item, marker, shared)
        self.journal = (self.out / BOOKKEEPING / "journal.csv").open("a", encoding="utf-8", newline="")
        for exam_id in sorted(shared):  # exams finished before that share an image: withdrawn now, each once
            self._withdraw_finished(exam_id, sorted(shared[exam_id]))
        if shared:
            self._write_failures()
        self.consolidated = time.perf_counter()
        self._consolidate()

    def _keep_rows(self, item: ExamItem) -> bool:
        """The exam's rows into the table; False when its part cannot be read."""
        table = read_part(part_path(self.out, item))
        if table is not None:
            previous = self.tables.get(item.exam_id)
            self.rows += table.num_rows - (previous.num_rows if previous is not None else 0)
            self.tables[item.exam_id] = table
        return table is not None

    def _earlier_failures(self, ids: set[str]) -> dict[str, dict]:
        """Failures of an earlier run that this run has not yet retried stay in the file until it does."""
        try:
            return {row["exam_id"]: row for row in read_failure_rows(self.out) if row.get("exam_id") in ids}
        except (OSError, UnicodeDecodeError, csv.Error):
            return {}

    def _own_images(self, exam_id: str, images) -> list[str]:
        """Record the exam's images; returns the other exams that hold one of them, in the order first seen."""
        others = []
        for key in images:
            holders = self.image_holders.setdefault(str(key), [])
            others += [held for held in holders if held != exam_id and held not in others]
            if exam_id not in holders:
                holders.append(exam_id)
        return others

    def _hold_images(self, item: ExamItem, marker: dict, shared: dict[str, set[str]]) -> None:
        """An exam finished before: its marker's images recorded, and each pair sharing one noted in ``shared``."""
        for other in self._own_images(item.exam_id, marker.get("images") or ()):
            shared.setdefault(item.exam_id, set()).add(other)
            shared.setdefault(other, set()).add(item.exam_id)

    def _shared_reason(self, exam_id: str) -> str:
        others, fate, own = self.withdrawn[exam_id]
        said = SHARED_IMAGE.format(others=", ".join(others), fate=fate)
        return f"{said}; {own}" if own else said

    def _withdraw(self, outcome: Outcome, others: list[str], files) -> Outcome:
        """The exam as partial, its DICOM results deleted and its marker removed (a rerun tries it again): it
        shares an image's UID with ``others``. ``files``: what it wrote."""
        kept, removed, problems = [], 0, []
        for name in files:
            path = Path(name)
            if path.suffix.lower() != ".dcm" or not path.resolve().is_relative_to(self.out.resolve()):
                kept.append(str(name))
                continue
            try:
                path.unlink(missing_ok=True)
                removed += 1
            except OSError as error:
                kept.append(str(name))
                problems.append(f"{path.name}: {error.strerror or error}")
        try:
            marker_path(self.out, self.finished_by_id[outcome.exam_id]).unlink(missing_ok=True)
        except OSError as error:
            problems.append(f"its record of being done: {error.strerror or error}")
        fate = "were withdrawn" if removed and not problems else "are withheld"
        if problems:
            fate += f" (remove by hand what could not be: {'; '.join(problems)})"
        self.withdrawn[outcome.exam_id] = (list(others), fate, outcome.reason)
        return Outcome(outcome.exam_id, outcome.location, "partial", self._shared_reason(outcome.exam_id),
                       tuple(kept), outcome.seconds, images=outcome.images)

    def _withdraw_finished(self, exam_id: str, others: list[str]) -> None:
        """An exam already recorded (done, skipped or partial: this run's or an earlier one's, or kept beside this
        run's), withdrawn for sharing an image with ``others``; one withdrawn already names them too."""
        earlier = next(((kind, o) for kind in ("done", "skipped", "partial")
                        for o in getattr(self.summary, kind) if o.exam_id == exam_id), None)
        if exam_id in self.withdrawn:
            named, fate, own = self.withdrawn[exam_id]
            self.withdrawn[exam_id] = ([*named, *(o for o in others if o not in named)], fate, own)
            if earlier is not None:
                self.summary.partial[self.summary.partial.index(earlier[1])] = replace(
                    earlier[1], reason=self._shared_reason(exam_id))
            self.failures[exam_id]["reason"] = self._shared_reason(exam_id)
            return
        if earlier is None and exam_id not in self.finished_by_id:
            return
        item = self.finished_by_id[exam_id]
        kind, found = earlier or (None, Outcome(exam_id, item.location, "skipped"))  # None: a kept exam
        # a skipped (or kept) exam's files are those its marker names
        files = found.files or tuple(read_marker(self.out, item).get("files") or ())
        withdrawn = self._withdraw(found, others, files)
        if kind is not None:
            getattr(self.summary, kind).remove(found)
        self.summary.partial.append(withdrawn)
        if kind not in ("done", "partial"):  # finished before: one of this run's outcomes now, not analysed by it
            self.summary.withdrawn_before += 1
            if self.progress is not None:
                self.progress.total += 1  # ("2/1 exams" otherwise)
        self._journal(withdrawn)
        self.failures[exam_id] = {"exam_id": exam_id, "location": found.location, "reason": withdrawn.reason,
                                  "failed_at": self._now()}

    def _shared_images(self, outcome: Outcome) -> Outcome:
        """Two exams of the batch with one image (by SOP Instance UID): a DICOM result refers to its images by
        UID, and a PACS would show one exam's findings on the other's image, perhaps another patient's. Neither
        can be told the true owner: both exams' DICOM results are withdrawn (the earlier one's too, done in this
        run or an earlier one) and both stay in failures.csv until the archive is corrected; their scores and
        other files stay."""
        others = self._own_images(outcome.exam_id, outcome.images)
        if not others:
            return outcome
        for other in others:
            self._withdraw_finished(other, [outcome.exam_id])
        return self._withdraw(outcome, others, outcome.files)

    def _now(self) -> str:
        # de-identified, an exam's journal line and failure have no time: the true time beside its pseudonym and
        # shifted study date (a nightly batch of the day's exams) gave the patient's date offset away
        return "" if self.deidentified else datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")

    def _journal(self, outcome: Outcome) -> None:
        text_writer(self.journal).writerow((self._now(), outcome.exam_id, outcome.status, f"{outcome.seconds:.3f}",
                                            outcome.reason))
        self.journal.flush()

    def add(self, outcome: Outcome) -> None:
        if outcome.status in ("done", "partial") and outcome.images:
            outcome = self._shared_images(outcome)
        now = self._now()
        self._journal(outcome)
        if outcome.status == "done":
            self.summary.done.append(outcome)
            self._keep_rows(self.by_id[outcome.exam_id])
            if self.failures.pop(outcome.exam_id, None) is not None:
                self._write_failures()
        else:
            if outcome.status == "partial":  # its files and rows are written; the reason goes to failures.csv
                self.summary.partial.append(outcome)
                self._keep_rows(self.by_id[outcome.exam_id])
            else:
                self.summary.failed.append(outcome)
            self.failures[outcome.exam_id] = {"exam_id": outcome.exam_id, "location": outcome.location,
                                              "reason": outcome.reason, "failed_at": now}
            self._write_failures()
        if self.rows <= CONSOLIDATE_ALWAYS_ROWS or time.perf_counter() - self.consolidated >= CONSOLIDATE_EVERY_S:
            self._consolidate()
        self._hide_times()
        if self.progress is not None:
            self.progress(len(self.summary.done), len(self.summary.failed), partial=len(self.summary.partial))

    def _hide_times(self) -> None:
        """De-identified, the run's shared files and folders carry one time (the last exam's true time of writing
        beside its shifted dates gave its patient's date offset away)."""
        if self.deidentified:
            hide_file_times([self.out / SCORES_FILE, self.out / FAILURES_FILE, self.out / BOOKKEEPING,
                             self.out / BOOKKEEPING / "journal.csv", self.out])

    def _write_failures(self) -> None:
        text = io.StringIO()
        writer = text_dict_writer(text, FAILURE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.failures.values())
        write_text_atomic(self.out / FAILURES_FILE, text.getvalue())

    def _consolidate(self) -> Path:
        self.consolidated = time.perf_counter()
        return write_scores(self.out, list(self.tables.values()))

    def close(self) -> BatchSummary:
        """The final table and failures file (also after Ctrl+C: a partial run stays usable). Each is tried though
        another fails, the failures first (a few lines where a full disk may still hold them): a full disk stopped
        the batch at the table and left no failures.csv (a deployer's test); the first error is raised after."""
        errors = []
        for step in (self.journal.close, self._write_failures, self._consolidate, self._hide_times):
            try:
                step()
            except OSError as error:
                errors.append(error)
        if errors:
            raise errors[0]
        self.summary.seconds = time.perf_counter() - self.started
        if self.progress is not None:
            self.progress(len(self.summary.done), len(self.summary.failed), final=True,
                          partial=len(self.summary.partial))
        return self.summary

    @property
    def scores_path(self) -> Path:
        return self.out / SCORES_FILE


def earlier_exams(out: Path) -> dict[str, str]:
    """Location -> exam ID of every exam an earlier run finished in ``out`` (from its markers)."""
    found = {}
    for marker in sorted((Path(out) / BOOKKEEPING / "done").glob("*.json")):
        try:
            record = json.loads(marker.read_text(encoding="utf-8"))
            found[str(record["location"])] = str(record["exam_id"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a damaged marker: that exam is simply not kept
    return found
