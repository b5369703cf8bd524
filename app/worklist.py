"""A reading worklist (no Qt): the exams of a batch, each one's state and the reader's time on it.

Sources are what a screening batch comes as: a folder tree (one exam per folder), a case CSV or exam list
(as the batch reads them), a batch output folder (its ``scores.parquet`` names the exams it analysed), the
Storage SCP's inbox (``inbox``), one PACS study address, or a PACS query: a node's address without a study
gives its MG studies of a day or a date range (today's by default), oldest first. States (unread / in progress / read / flagged) and
the reading time per exam are kept in the store, per reader, keyed by the exam's location, so that a batch
left half read opens where it was. A read exam keeps the digest of its files as they were read: when they are not
the same files any more (a folder refilled with another patient's exam, a retaken view), it is listed "changed
since read" and Next unread comes to it. A batch output lists the exams the batch could not analyse too, each
with the reason (they are read without the AI).
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from app.study.store import ensure_worklist_table
from inference.errors import MammoError

logger = logging.getLogger(__name__)

INBOX = "inbox"  # ``open --worklist inbox``: what our Storage SCP received


class ReadState(StrEnum):
    UNREAD = "unread"
    IN_PROGRESS = "in progress"
    READ = "read"
    FLAGGED = "flagged"


@dataclass(frozen=True)
class WorklistItem:
    """One exam of the worklist: its name in the list and where it is read from (a folder, a file or a PACS
    study address; ``files`` when the exam is not one folder: a CBIS-DDSM patient's view folders, whose
    ``location`` is then ``<dataset folder>#<patient>``)."""

    exam_id: str
    location: str
    files: tuple[str, ...] = ()
    note: str = ""  # what the reader should know before opening it (a batch that could not analyse it: why)


@dataclass
class WorklistEntry:
    """An exam of the list with this reader's state and reading time; ``problem`` says why it could not be
    opened on the last try (kept for this session only: a later try may open it)."""

    item: WorklistItem
    state: ReadState = ReadState.UNREAD
    reading_seconds: float = 0.0
    problem: str = ""
    changed: bool = False  # read once, but its files are not those read (files_digest): in progress again
    pending_change: bool = False  # the reader's change after the commit is kept, not recorded (say so in the list)
    digest: str | None = None  # its files' digest when the list was read (off the GUI thread); None: not known


def read_worklist_source(source: str | Path, dates: str = "today", ae_title: str = "") -> list[WorklistItem]:
    """The exams of ``source`` in reading order. Raises ``MammoError`` naming the source when it holds none.

    ``dates`` (a PACS query only): ``today``, ``YYYYMMDD``, or ``FROM-TO`` (either side may be left open);
    ``ae_title``: our calling AE title for the query (the default one when empty)."""
    text = str(source)
    from app.pacs.nodes import is_pacs_address  # noqa: PLC0415

    if is_pacs_address(text):
        from app.pacs.nodes import DEFAULT_AE_TITLE, parse_address  # noqa: PLC0415

        node, study = parse_address(text, ae_title or DEFAULT_AE_TITLE)
        if study is None:
            return _pacs_query(text, node, dates)
    if text == INBOX:
        from app.pacs.scp import received_studies  # noqa: PLC0415
        from app.settings import config_dir  # noqa: PLC0415

        inbox = config_dir() / "inbox"  # where the workstation's Storage SCP keeps what it receives
        studies = received_studies(inbox)
        if not studies:
            raise MammoError("the inbox holds no received study", inbox)
        return [WorklistItem(s.accession or s.folder.name, str(s.folder)) for s in studies]
    path = Path(source)
    if path.is_dir() and (path / "scores.parquet").is_file():
        return _batch_output(path / "scores.parquet")
    from app.archive.sources import read_batch_source  # noqa: PLC0415

    return [WorklistItem(item.exam_id, item.path, item.files) for item in read_batch_source(source)]


def query_dates(text: str, today: datetime.date | None = None) -> tuple[str, str]:
    """(first, last) YYYYMMDD of ``today``, ``YYYYMMDD`` or ``FROM-TO`` ("" for an open side)."""
    text = text.strip().lower()
    if text in ("", "today"):
        day = (today or datetime.date.today()).strftime("%Y%m%d")
        return day, day
    match = re.fullmatch(r"(\d{8})?(-)?(\d{8})?", text)
    if not match or not (match.group(1) or match.group(3)) or (match.group(3) and not match.group(2)):
        raise MammoError(f"--dates {text!r}: write today, YYYYMMDD, or FROM-TO (YYYYMMDD-YYYYMMDD, a side may be open)")
    first, last = match.group(1) or "", match.group(3) or ""
    if not match.group(2):
        last = first
    for day in filter(None, (first, last)):
        try:
            datetime.datetime.strptime(day, "%Y%m%d")
        except ValueError:
            raise MammoError(f"--dates {text!r}: {day} is not a date") from None
    if first and last and first > last:
        raise MammoError(f"--dates {text!r}: the range ends before it starts")
    return first, last


def study_location(address: str, study_uid: str) -> str:
    """The study address of ``study_uid`` on the node ``address`` names (its retrieve options kept)."""
    base, _, options = address.partition("?")
    base = base.rstrip("/")
    located = f"{base}/studies/{study_uid}" if base.startswith("dicomweb") else f"{base}/{study_uid}"
    return located + (f"?{options}" if options else "")


def _pacs_query(address: str, node, dates: str) -> list[WorklistItem]:
    """The node's MG studies of the dates, oldest first (a screening batch is read in the order it came)."""
    from app.pacs.query import StudyQuery  # noqa: PLC0415
    from app.pacs.retrieve import find_studies  # noqa: PLC0415

    first, last = query_dates(dates)
    query = StudyQuery(date_from=first, date_to=last, modality="MG")
    records = sorted(query.keep(find_studies(node, query)), key=lambda r: (r.date, r.accession, r.study_uid))
    if not records:
        raise MammoError(f"{node.describe()}: no MG study dated {query.date_range or 'at all'}")
    return [WorklistItem(r.accession or r.study_uid, study_location(address, r.study_uid)) for r in records]


def _natural(text: str) -> list:
    """exam2 before exam10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _batch_failures(table: Path) -> dict[str, tuple[str, str]]:
    """location -> (exam ID, reason) of the exams the batch's ``failures.csv`` (beside its table) names."""
    import csv  # noqa: PLC0415

    from app.archive.ledger import FAILURES_FILE, read_failure_rows  # noqa: PLC0415

    try:
        rows = read_failure_rows(table.parent)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise MammoError(f"the batch's failures cannot be read ({error})", table.parent / FAILURES_FILE) from error
    return {str(row["location"]): (str(row["exam_id"]), str(row.get("reason") or "")) for row in rows
            if row.get("location")}


def _batch_output(table: Path) -> list[WorklistItem]:
    """The exams of a batch in the order of their IDs (exam2 before exam10; the same order on every day of a
    batch that grows): those it analysed, and those it could not, with the reason as their note (a failed
    exam is still a woman's screening exam to read, without the AI)."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    try:
        rows = pq.read_table(table, columns=["exam_id", "location"]).to_pylist()
    except (OSError, ValueError) as error:
        raise MammoError(f"the batch's result table cannot be read ({error})", table) from error
    from app.pacs.nodes import is_pacs_address  # noqa: PLC0415

    seen: dict[str, WorklistItem] = {}
    datasets: dict[str, dict[str, tuple[str, ...]]] = {}  # a CBIS-DDSM folder's patients: their files

    def files_of(location: str) -> tuple[str, ...]:
        """A CBIS-DDSM patient's files (``<dataset folder>#<patient>``): it opens only through them."""
        dataset, hash_sign, _patient = location.rpartition("#")
        if not (hash_sign and Path(dataset).is_dir()):
            return ()
        if dataset not in datasets:
            from app.archive.sources import read_batch_source  # noqa: PLC0415

            datasets[dataset] = {item.location: item.files for item in read_batch_source(dataset)}
        return datasets[dataset].get(location, ())

    for row in rows:
        location = str(row["location"])
        if location not in seen:
            seen[location] = WorklistItem(str(row["exam_id"]), location, files_of(location))
    for location, (exam_id, reason) in _batch_failures(table).items():
        if location in seen:  # analysed in part: in the table and in failures.csv
            listed = seen[location]
            seen[location] = WorklistItem(listed.exam_id, location, listed.files,
                                          f"the batch analysed it in part ({reason})")
        else:
            seen[location] = WorklistItem(exam_id, location, files_of(location),
                                          f"the batch could not analyse it ({reason}): read it without the AI result")
    if not seen:
        raise MammoError("the batch's result table names no exam", table)
    if not any(is_pacs_address(loc) or Path(loc.rpartition("#")[0] or loc).is_absolute() for loc in seen):
        raise MammoError("the batch was de-identified: its table names each exam by its label, not where it is "
                         "read from; open the batch's source (the folder or case list it ran on) as the worklist",
                         table)
    return sorted(seen.values(), key=lambda item: (_natural(item.exam_id), item.location))


def batch_models(table: Path) -> tuple[tuple[str, str, str], ...]:
    """The models a batch analysed its exams with, as (ID, label, key), from its table."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    try:
        rows = pq.read_table(table, columns=["model_id", "model_label", "model_key"]).to_pylist()
    except (OSError, ValueError, KeyError):  # an older table without the key: nothing to compare with
        return ()
    return tuple(sorted({(str(r["model_id"]), str(r["model_label"] or r["model_id"]), str(r["model_key"] or ""))
                         for r in rows}))


def models_differ_note(worklist: Worklist, result) -> str:
    """What the reader must know when the exam on screen was analysed with none of the models the batch's triage
    was computed with (its scores and the batch's differ); "" when one of them is on screen, or for a list that
    is no batch output."""
    if not worklist.batch_models or result is None:
        return ""
    shown = {"+".join(member.key for member in entry.members): entry.label for entry in result.entries}
    if {key for _, _, key in worklist.batch_models} & set(shown):
        return ""
    batch = ", ".join(label for _, label, _ in worklist.batch_models)
    here = ", ".join(shown.values()) or "none"
    return (f"⚠ This batch was analysed with {batch}; the exam on screen with {here}: its scores are not the "
            "batch's. To read with the batch's model, choose it in Preferences.")


def ensure_table(store) -> None:
    """Create the worklist's table when the store lacks it (idempotent)."""
    store.submit(ensure_worklist_table).result()


def load_states(store, reader: str, items: list[WorklistItem]) -> dict[str, tuple[ReadState, float]]:
    """(state, reading seconds) of each listed exam this reader has a row for."""
    if store is None or not items:
        return {}
    wanted = {item.location for item in items}
    rows = store.read("SELECT location, state, reading_seconds FROM worklist_states WHERE reader=?", (reader,))
    return {loc: (ReadState(state), float(seconds)) for loc, state, seconds in rows if loc in wanted}


def read_digests(store, reader: str, items: list[WorklistItem]) -> dict[str, str]:
    """location -> the digest of the files each listed exam had when this reader's read of it was recorded."""
    if store is None or not items:
        return {}
    wanted = {item.location for item in items}
    rows = store.read("SELECT location, files FROM worklist_states WHERE reader=? AND files IS NOT NULL", (reader,))
    return {loc: files for loc, files in rows if loc in wanted}


def files_digest(item: WorklistItem) -> str | None:
    """A digest of the exam's files as they are now: their names, sizes and modification times (not inodes or
    change times, which a copy, a restore or a network share changes for the same images). None when it cannot
    be told — a study on a PACS, a folder or file that cannot be read (a share offline): not known is never
    "changed". Reads the file system: call it off the GUI thread."""
    from app.pacs.nodes import is_pacs_address  # noqa: PLC0415

    if is_pacs_address(item.location):
        return None
    fingerprint = source_fingerprint(list(item.files) if item.files else Path(item.location))
    if fingerprint is None or len(fingerprint) == 2 and fingerprint[1] == "unreadable" \
            or any(len(entry) < 5 for entry in fingerprint):  # (path, -1): a file that could not be read
        return None
    kept = [(Path(path).name, size, mtime) for path, size, mtime, _ctime, _inode in fingerprint]
    return hashlib.sha256(repr(kept).encode()).hexdigest()


def save_state(store, reader: str, location: str, state: ReadState, add_seconds: float = 0.0, *,
               digest: str | None = None, committed: bool = False, reopen: bool = False) -> Future:
    """Set an exam's state and add reading time to it, on the store's writer thread. A read exam is never made
    unread or in progress again (another window of the same reader, opened before it was read, only adds time),
    unless ``reopen``: its files are not those read. ``committed``: a read was committed on the files whose digest
    is ``digest`` (None: not known), kept with the state; other saves keep the one stored."""
    now = time.time()
    read, going_back = str(ReadState.READ), (str(ReadState.UNREAD), str(ReadState.IN_PROGRESS))

    def work(db) -> None:
        db.execute(
            "INSERT INTO worklist_states (location, reader, state, reading_seconds, updated_at, files) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(location, reader) DO UPDATE SET "
            "state=CASE WHEN state=? AND excluded.state IN (?, ?) AND NOT ? THEN state ELSE excluded.state END, "
            "reading_seconds=reading_seconds + excluded.reading_seconds, updated_at=excluded.updated_at, "
            "files=CASE WHEN ? THEN excluded.files ELSE files END",
            (location, reader, str(state), max(add_seconds, 0.0), now, digest if committed else None, read,
             *going_back, int(reopen), int(committed)))

    return store.submit(work)


@dataclass
class Worklist:
    """The exams of a batch with their states, the one being read, and the reader's clock on it.

    Moving is pure bookkeeping: :meth:`move_to` closes the current exam's reading time (and makes it read when
    the reader committed it), opens the next one's clock and marks it in progress; the caller opens the exam.
    Writes go to the store (when there is one) through ``save``.
    """

    entries: list[WorklistEntry]
    reader: str = "reader"
    store: object = None
    clock: Callable[[], float] = time.monotonic
    current: int = -1
    # a batch output's models as (ID, label, key): what its triage was computed with (batch_models)
    batch_models: tuple[tuple[str, str, str], ...] = ()
    _started: float | None = field(default=None, repr=False)
    _state_before: ReadState | None = field(default=None, repr=False)  # the current exam's, before this visit

    @classmethod
    def open(cls, source: str | Path, store=None, reader: str = "reader",
             clock: Callable[[], float] = time.monotonic, dates: str = "today", ae_title: str = "") -> Worklist:
        """Read the source and what the store holds for it (runs off the GUI thread); ``dates`` and
        ``ae_title``: a PACS query's (:func:`read_worklist_source`)."""
        worklist = cls.of_items(read_worklist_source(source, dates, ae_title), store, reader, clock)
        path = Path(str(source))
        if path.is_dir() and (path / "scores.parquet").is_file():
            worklist.batch_models = batch_models(path / "scores.parquet")
        return worklist

    @classmethod
    def of_items(cls, items: list[WorklistItem], store=None, reader: str = "reader",
                 clock: Callable[[], float] = time.monotonic) -> Worklist:
        """These exams with ``reader``'s states and times from the store (runs off the GUI thread)."""
        if store is not None:
            ensure_table(store)
        states = load_states(store, reader, items)
        entries = [WorklistEntry(item, *states.get(item.location, (ReadState.UNREAD, 0.0))) for item in items]
        digests = read_digests(store, reader, items)
        pending = store.pending_change_locations(reader) if store is not None else {}
        worklist = cls(entries, reader, store, clock)
        for entry in entries:  # read on other files than these (another patient's exam in the folder, a retake)
            entry.digest = files_digest(entry.item)
            made_on = pending.get(entry.item.location, set())  # a change kept on these files (not known: said)
            entry.pending_change = bool(made_on) and (entry.digest is None or None in made_on
                                                      or entry.digest in made_on)
            kept = digests.get(entry.item.location)
            if entry.state in (ReadState.READ, ReadState.IN_PROGRESS) and None not in (kept, entry.digest) \
                    and entry.digest != kept:  # in progress: reopened so before, and not read again since
                entry.changed = True
                if entry.state == ReadState.READ:
                    entry.state = ReadState.IN_PROGRESS
                    worklist._save(entry, 0.0, reopen=True)
        return worklist

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def item(self) -> WorklistItem | None:
        return self.entries[self.current].item if 0 <= self.current < len(self.entries) else None

    def next_index(self, unread_only: bool = False, after: int | None = None) -> int | None:
        """The exam after the current one, or after ``after`` (with ``unread_only``, the next not yet read,
        wrapping round)."""
        count, base = len(self.entries), self.current if after is None else after
        if not unread_only:
            return base + 1 if base + 1 < count else None
        for step in range(1, count + 1):
            index = (base + step) % count
            entry = self.entries[index]  # a change kept unrecorded is work left on it, as an exam not yet read
            if index != base and (entry.state in (ReadState.UNREAD, ReadState.IN_PROGRESS) or entry.pending_change):
                return index
        return None

    def previous_index(self, before: int | None = None) -> int | None:
        """The exam before the current one, or before ``before``."""
        base = self.current if before is None else before
        return base - 1 if base > 0 else None

    def upcoming(self, count: int) -> list[int]:
        """The next ``count`` exams after the current one not yet read: what prefetch loads."""
        out = []
        for index in range(self.current + 1, len(self.entries)):
            if len(out) >= count:
                break
            if self.entries[index].state != ReadState.READ:
                out.append(index)
        return out

    def leave(self, committed: bool, worked_on: bool = True) -> None:
        """Stop the clock on the current exam; it is read once the reader committed a read of it. An exam unread
        before this visit and left with nothing done on it (``worked_on`` false: no value in the form, no mark)
        was only looked through: unread again, its time kept."""
        if not 0 <= self.current < len(self.entries):
            return
        entry = self.entries[self.current]
        seconds = self.clock() - self._started if self._started is not None else 0.0
        self._started = None
        entry.reading_seconds += seconds
        if committed and entry.state != ReadState.FLAGGED:
            entry.state, entry.changed = ReadState.READ, False
        elif not committed and not worked_on and entry.state == ReadState.IN_PROGRESS \
                and self._state_before == ReadState.UNREAD:
            entry.state = ReadState.UNREAD
        # the read was made on the files as the list found them (a file that came since makes it "changed" at the
        # next reading of the list: the safe side)
        self._save(entry, seconds, digest=entry.digest, committed=committed)

    def to_read_again(self) -> bool:
        """The current exam, listed read, has no committed read of its images now (one changed since, and the
        read had marks on it: kept with the images it was made on): in progress again, so that Next unread comes
        to it. True when its state changed."""
        if not 0 <= self.current < len(self.entries) or self.entries[self.current].state != ReadState.READ:
            return False
        entry = self.entries[self.current]
        entry.state = ReadState.IN_PROGRESS
        self._save(entry, 0.0, reopen=True)  # kept so in the store too: the list reopened later says the same
        return True

    def move_to(self, index: int, committed: bool = False, worked_on: bool = True) -> WorklistItem:
        """Leave the current exam (``committed``, ``worked_on``: as :meth:`leave`) and start on ``index``."""
        if not 0 <= index < len(self.entries):
            raise IndexError(f"the worklist has {len(self.entries)} exams; there is no exam {index + 1}")
        self.leave(committed, worked_on)
        if index != self.current:  # the same exam again (opened once more) keeps the state it had before
            self._state_before = self.entries[index].state
        self.current = index
        entry = self.entries[index]
        entry.problem = ""
        if entry.state == ReadState.UNREAD:
            entry.state = ReadState.IN_PROGRESS
        self.start_clock()
        self._save(entry, 0.0)
        return entry.item

    def could_not_open(self, reason: str) -> None:
        """The current exam could not be opened: the time spent on it is no reading time, and an exam that was
        unread before this visit is unread again (not "in progress"); the reason stays beside it in the list."""
        if not 0 <= self.current < len(self.entries):
            return
        entry = self.entries[self.current]
        self._started = None
        entry.problem = reason
        if entry.state == ReadState.IN_PROGRESS and self._state_before == ReadState.UNREAD:
            entry.state = ReadState.UNREAD
            self._save(entry, 0.0)

    def step_out(self, committed: bool, worked_on: bool = True) -> None:
        """The reader opened an exam from elsewhere (File ▸ Open …): the current exam is left (as :meth:`leave`)
        and none is current until the reader comes back to the list."""
        self.leave(committed, worked_on)
        self.current = -1

    def seconds_on(self, index: int) -> float:
        """The reading time of exam ``index`` so far: the exam being read counts the running clock too."""
        entry = self.entries[index]
        running = self.clock() - self._started if index == self.current and self._started is not None else 0.0
        return entry.reading_seconds + running

    def bank_time(self) -> None:
        """Add the current exam's running time to the store now, the clock going on: a crash lost what had run
        since the exam was opened (a radiologist's 1:00 was 0:38 after a kill)."""
        if not 0 <= self.current < len(self.entries) or self._started is None:
            return
        now = self.clock()
        seconds, self._started = now - self._started, now
        entry = self.entries[self.current]
        entry.reading_seconds += seconds
        self._save(entry, seconds)

    def start_clock(self) -> None:
        """(Re)start timing the current exam: it counts from now."""
        self._started = self.clock()

    def toggle_flag(self, index: int | None = None) -> ReadState:
        """Flag an exam for review (or take the flag off: it is then in progress)."""
        index = self.current if index is None else index
        entry = self.entries[index]
        entry.state = ReadState.IN_PROGRESS if entry.state == ReadState.FLAGGED else ReadState.FLAGGED
        self._save(entry, 0.0)
        return entry.state

    def counts(self) -> dict[ReadState, int]:
        out = {state: 0 for state in ReadState}
        for entry in self.entries:
            out[entry.state] += 1
        return out

    def _save(self, entry: WorklistEntry, seconds: float, reopen: bool = False, digest: str | None = None,
              committed: bool = False) -> None:
        if self.store is None or getattr(self.store, "closed", False):
            return
        save_state(self.store, self.reader, entry.item.location, entry.state, seconds, reopen=reopen, digest=digest,
                   committed=committed)


def source_fingerprint(source: object) -> tuple | None:
    """The state of an exam's files now: (path, size, modification and change times, inode) of each entry of its
    folder, of the files named, or of a manifest and the files it lists; None for a study on the PACS (not
    checked: an opening takes the study's copy in the retrieve cache too). An exam loaded ahead whose files
    changed since (a study still arriving, a folder refilled with another patient's images) is loaded again,
    never shown as it was. Runs off the GUI thread."""
    from inference.intake.exam import exam_files  # noqa: PLC0415

    if isinstance(source, (list, tuple)):
        paths = [Path(p) for p in source]
    elif isinstance(source, Path):
        try:
            if source.is_dir():
                paths = sorted(p for p in source.iterdir() if not p.name.startswith("."))
            else:  # a manifest with the images it lists, or an image
                paths = [source, *(p for p in exam_files(source) if p != source)]
        except OSError:
            return (str(source), "unreadable")
    else:
        return None
    state = []
    for path in paths:
        try:
            stat = path.stat()
            state.append((str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino))
        except OSError:
            state.append((str(path), -1))
    return tuple(state)
