"""The DICOM AI node (``python main.py serve``): receive studies, analyse each once, send the results back.

Studies arrive on our Storage SCP (only from the allow-list, only MG, within the limits; see ``scp``) into
hashed folders under ``DIR``. A study that has had no new instance for ``quiet_s`` seconds is analysed by the
batch's unit (``app/archive/unit.py``) into ``DIR/results/<study folder>/``: its marker file makes the analysis
happen once, also across a killed and restarted node (a study that was received but not analysed when the node
stopped is analysed after the restart). With a destination, the SR, SEG and Encapsulated PDF are stored there;
a destination that is down is tried again every ``retry_s`` seconds (and at the next start).

A study whose instances change after its analysis (a view that came late, an instance sent again with a corrected
patient) is analysed again: the marker records a digest of the instances it was made from, of their data sets as
decoded (the same study sent again in another transfer syntax is the same study), and one of each instance.

A study whose results could not be written for a fault of this machine (a full or read-only disk, no memory left:
told by the unit's ``Outcome.machine_fault``) is analysed again after ``retry_s`` seconds, then after twice the wait
each time it still fails (the models run only once a probe file can be written in the results folder): every
instance was answered with success, so no sender sends it again. A study that failed for its content waits for an
instance of it to come. An error the node did not expect ends only that study's turn (it is tried again the same
way), never the service. The node holds a lock on DIR while it runs: a second node on DIR is refused.

Nothing here prints or logs a patient identifier: studies are named by their folder (a hash of the UID), and a
failure's reason loses the identifiers of the study's headers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.archive.sources import ExamItem
from app.folders import folder_write_error, hold_folder
from app.archive.unit import MACHINE_ERRNOS, BatchOptions, Outcome, already_done, marker_path, process
from app.pacs.nodes import RemoteNode
from app.pacs.scp import BIND_DEFAULT, InboxLimits, Sender, StorageSCP
from inference.errors import MammoError
from inference.files import write_text_atomic

logger = logging.getLogger(__name__)

RESULTS = "results"  # DIR/results/<study folder>/: the reports, beside the received studies
CANNOT_WRITE = "the node cannot write in this folder, where it keeps the studies it receives and their results"
LOCK_NAME = ".node.lock"  # DIR's lock, held by the node that uses DIR for as long as it runs
REWRITE_BACKOFF = 16  # a study waiting for the machine: tried again after retry_s, then twice as long, up to 16x
MACHINE_FAULT = "a fault of this machine"


class NodeStopping(BaseException):
    """Raised by the stop signal while a study is analysed or sent: the unit's writes are atomic and its marker
    comes last, so the study is analysed again after a restart."""


@dataclass(frozen=True)
class NodeOptions:
    """How the node listens, whom it lets in, where it keeps studies and results.

    Attributes:
        quiet_s: a study is complete when no instance has come for this long.
        retry_s: how often a destination that was down is tried again.
        keep_s: how long a study's received instances are kept after its analysis (and sending), so that a
            view that comes late is analysed with the others; then they go (the quota would fill up), the
            results stay.
    """

    ae_title: str
    port: int
    out: Path
    allowed: tuple[Sender, ...]
    bind: str = BIND_DEFAULT
    limits: InboxLimits = InboxLimits()
    quiet_s: float = 30.0
    retry_s: float = 60.0
    send: RemoteNode | None = None
    keep_s: float = 24 * 3600.0
    batch: BatchOptions = field(default_factory=lambda: BatchOptions(formats=("json", "pdf", "sr", "seg", "epdf")))


def _say(text: str) -> None:
    print(text, flush=True)


def _frames(error: BaseException | None = None) -> str:
    """Where ``error`` (else the one being handled) was raised: the traceback's frames, without its message (it
    may quote a header)."""
    error = error if error is not None else sys.exc_info()[1]
    return "".join(traceback.format_tb(error.__traceback__)) if error is not None else ""


DIGEST_VERSION = "v2"  # the prefix of instances_digest; a marker's digest without it is legacy_instances_digest's


def instance_digest(path: Path) -> str:
    """A digest of one received instance's data set as decoded, not as encoded: each element's tag and value as
    little endian holds it (explicit and implicit VR little endian, and deflated, give the same bytes; only the
    elements' headers differ), sequences item by item, pixel data by its bytes. Left out: the file meta (it
    names the sender and the transfer syntax), group lengths and trailing padding. A file pydicom cannot parse is
    digested by its bytes."""
    from pydicom import dcmread  # noqa: PLC0415

    digest = hashlib.sha1()
    try:
        _digest_elements(digest, dcmread(path))
    except Exception:  # noqa: BLE001 - a damaged file: the intake says what is wrong with it
        digest = hashlib.sha1(b"bytes")
        try:
            digest.update(Path(path).read_bytes())
        except OSError as error:  # unreadable (a failing disk, gone meanwhile): unlike any file's digest
            return hashlib.sha1(f"unreadable {error.errno}".encode()).hexdigest()
    return digest.hexdigest()


ITEM_TAG = b"\xfe\xff\x00\xe0"  # (FFFE,E000), little endian: the start of a sequence's first item


def _hidden_sequence(element):
    """The items of a sequence that the encoding hid as bytes, or None: implicit VR names no VR, so a private
    sequence (whose creator, or whose element, the dictionary does not know) is read as UN bytes, where explicit
    VR reads the same element as SQ; a value of such an element (or of one sent as UN) that starts with an item
    tag and reads whole as an implicit VR little endian sequence (PS3.5 6.2.2: UN is implicit VR inside) is
    that sequence."""
    from pydicom.filebase import DicomBytesIO  # noqa: PLC0415
    from pydicom.filereader import read_sequence  # noqa: PLC0415

    value = element.value
    if element.VR not in (None, "UN") or not isinstance(value, bytes) or not _items_fit(value):
        return None
    buffer = DicomBytesIO(value)
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    try:
        items = read_sequence(buffer, True, True, len(value), "iso8859")
    except Exception:  # noqa: BLE001 - bytes that only began like a sequence: digested as bytes
        return None
    return items if buffer.tell() == len(value) else None


def _items_fit(value: bytes) -> bool:
    """Whether ``value`` is laid out as a sequence's items: each an item tag and a length, the elements inside
    an item of defined length (a tag, a length, the value) filling it exactly, the items filling ``value``
    exactly (an item or element of undefined length is left to pydicom's reading)."""
    undefined = 0xFFFFFFFF
    at = 0
    while at < len(value):
        if value[at:at + 4] != ITEM_TAG or at + 8 > len(value):
            return False
        length = int.from_bytes(value[at + 4:at + 8], "little")
        if length == undefined:
            return True
        end, at = at + 8 + length, at + 8
        if end > len(value):
            return False
        while at < end:
            if at + 8 > end:
                return False
            element_length = int.from_bytes(value[at + 4:at + 8], "little")
            if element_length == undefined:
                return True
            at += 8 + element_length
        if at != end:
            return False
    return len(value) > 0


def _implicit_vr(dataset, tag) -> str | None:
    """The VR an implicit VR reading gives ``tag`` in ``dataset`` (the dictionary's, private ones by their
    creator in ``dataset``), or None when it cannot be told."""
    from pydicom.dataelem import RawDataElement, convert_raw_data_element  # noqa: PLC0415

    try:
        return convert_raw_data_element(RawDataElement(tag, None, 0, b"", 0, True, True), ds=dataset).VR
    except Exception:  # noqa: BLE001
        return None


def _digest_elements(digest, dataset) -> None:
    from pydicom.dataelem import RawDataElement  # noqa: PLC0415
    from pydicom.filebase import DicomBytesIO  # noqa: PLC0415
    from pydicom.filewriter import write_data_element  # noqa: PLC0415

    for tag in sorted(dataset.keys()):
        if tag.group == 0x0002 or tag.element == 0x0000 or tag == 0xFFFCFFFC:  # meta, group length, padding
            continue
        element = dataset.get_item(tag)  # as read: the value's bytes, not yet decoded
        digest.update(struct.pack("<HH", tag.group, tag.element))
        items = _hidden_sequence(element) if isinstance(element, RawDataElement) else None
        if items is None:
            # implicit VR gives no VR, and UN may hide a sequence: decoded, the dictionary's VR
            vr = dataset[tag].VR if element.VR in (None, "UN", "SQ") else element.VR
            if vr == "SQ":
                items = dataset[tag].value or []
                if not items and _implicit_vr(dataset, tag) not in ("SQ", None):
                    # an empty private sequence: implicit VR reads it as an empty value, so it is digested as one
                    digest.update(bytes(8))
                    continue
        if items is not None:
            digest.update(b"SQ" + len(items).to_bytes(4, "little"))
            for item in items:
                _digest_elements(digest, item)
                digest.update(b"\xfe\xff\x0d\xe0")  # the item's end, so that items cannot trade elements
            continue
        if isinstance(element, RawDataElement):
            value = element.value or b""
        else:  # decoded already: encoded again as implicit VR little endian, less its 8-byte header
            buffer = DicomBytesIO()
            buffer.is_little_endian, buffer.is_implicit_VR = True, True
            write_data_element(buffer, element)
            value = buffer.getvalue()[8:]
        digest.update(len(value).to_bytes(8, "little"))
        digest.update(value)


def instance_digests(folder: Path) -> dict[str, str]:
    """Each received instance's :func:`instance_digest`, by file name."""
    return {path.name: instance_digest(path) for path in sorted(Path(folder).glob("*.dcm"))}


def instances_digest(folder: Path, digests: dict[str, str] | None = None) -> str:
    """A digest of the study's received instances (their names and :func:`instance_digest`; ``digests``: those,
    computed already), prefixed with :data:`DIGEST_VERSION`: the same study sent again, by another modality or
    in another transfer syntax, is the same."""
    digest = hashlib.sha1()
    for name, each in sorted((instance_digests(folder) if digests is None else digests).items()):
        digest.update(name.encode())
        digest.update(each.encode())
    return f"{DIGEST_VERSION}:{digest.hexdigest()}"


def legacy_instances_digest(folder: Path) -> str:
    """The digest markers held before :data:`DIGEST_VERSION` (the data sets' encoded bytes, so the same study
    in another transfer syntax differed): read, to take up such a marker without analysing its study again."""
    digest = hashlib.sha1()
    for path in sorted(Path(folder).glob("*.dcm")):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            head = handle.read(144)
            # Part 10: 128-byte preamble, "DICM", then (0002,0000) UL, the length of the rest of group 2
            if len(head) == 144 and head[128:136] == b"DICM\x02\x00\x00\x00":
                handle.seek(144 + int.from_bytes(head[140:144], "little"))
            else:
                handle.seek(0)
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


# the OSErrors of this machine, not of a study (app/archive/unit.py): its results are written again once the
# disk has room (or is writable again)
MACHINE_ERRORS = tuple(sorted(MACHINE_ERRNOS))
# the words of those errors, the system's own ("No space left on device"), for a failure whose exception the unit
# no longer holds: the report writer keeps each format's failure as words only, the CPU allocator of torch raises
# a RuntimeError that says "Cannot allocate memory"
_MACHINE_WORDS = ("the disk is full", *(os.strerror(code) for code in MACHINE_ERRORS))


def machine_failure(reason: str) -> bool:
    """Whether a study's failure (``Outcome.reason``) reads as a fault of this machine (a full or read-only disk, a
    folder it may not write, no file handles left) rather than of the study (a missing view, a bad image): for
    the failures that :attr:`Outcome.machine_fault` cannot tell (see ``_MACHINE_WORDS``)."""
    return any(words in reason for words in _MACHINE_WORDS)


def machine_outcome(outcome: Outcome) -> bool:
    """Whether the study failed (or was written in part) for a fault of this machine: the unit's flag, set from the
    exception (an errno, no memory left), else the system's words in the reason."""
    return outcome.status in ("failed", "partial") and (outcome.machine_fault or machine_failure(outcome.reason))


def writable_problem(folder: Path) -> str:
    """Why nothing can be written in ``folder`` ("" when it can): a probe of 64 kB, flushed to the disk
    (``app.folders.folder_write_error``), so that a full disk says so."""
    error = folder_write_error(folder, 64 << 10)
    return "" if error is None else (error.strerror or str(error))


def check_out_folder(out: Path) -> None:
    """Make the node's folder (readable by the user alone: it holds patient data) and its results folder where
    missing, and raise :class:`MammoError` saying why when the node cannot write in either: on a read-only or
    full disk every instance was answered 0xA700 while the node seemed to run."""
    from app.settings import private_folder  # noqa: PLC0415

    for folder in (Path(out), Path(out) / RESULTS):
        try:
            private_folder(folder)
            if folder != Path(out):  # the node's own: the user's alone, where --out was given open (reports name
                os.chmod(folder, 0o700)  # the patient; they were 0644 in 0755 folders)
            problem = writable_problem(folder)
        except OSError as error:  # the folder cannot be made
            problem = error.strerror or str(error)
        if problem:
            raise MammoError(f"{CANNOT_WRITE} ({problem})", folder)


def hold_out_folder(out: Path):
    """The lock of the node's folder ``out`` (made where missing, private), to be held for as long as the node
    runs: a second node on the same folder removed the first's half-written results at its start (their
    temporary files look like a killed node's) and would analyse its studies beside it. Taken before anything is
    probed or cleaned up in ``out``; raises :class:`MammoError` naming the folder when another node holds it,
    or when it cannot be written in."""
    return hold_folder(Path(out), LOCK_NAME, "another AI node is running on this folder: it keeps its received "
                       "studies and results here; stop it first, or give this one another --out", CANNOT_WRITE,
                       private=True)


def remove_unfinished_results(results: Path) -> int:
    """Remove what a killed node left half written in its results folder: the temporary files of atomic writes
    (``.NAME.*.part``: a report, a marker, a probe); returns how many. Nothing else writes there."""
    removed = 0
    for path in Path(results).rglob(".*.part") if Path(results).is_dir() else []:
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def study_identifiers(folder: Path) -> set[str]:
    """What the headers of the study's instances hold that could identify the patient or the study."""
    from inference.intake.identifiers import header_identifiers  # noqa: PLC0415

    return header_identifiers(sorted(Path(folder).glob("*.dcm")))


def without_identifiers(text: str, folder: Path) -> str:
    from app.study.blinding import remove_identifiers  # noqa: PLC0415

    return remove_identifiers(text, study_identifiers(folder))


class AiNode:
    """Runs on the calling thread until ``stop`` is set; the Storage SCP runs on pynetdicom's threads."""

    def __init__(self, options: NodeOptions, groups: Sequence, folder_lock=None) -> None:
        """``folder_lock``: :func:`hold_out_folder`'s lock of ``options.out``, when the caller took it already
        (``serve`` takes it before the models load); else ``start`` takes it. ``run`` releases it."""
        self.options = options
        self.folder_lock = folder_lock
        self.groups = list(groups)
        self.results = Path(options.out) / RESULTS
        self.record = options.batch.record([f"{g.id}={g.key}" for g in self.groups])
        self.busy = False  # analysing or sending: a stop signal then abandons that work (see NodeStopping)
        self._lock = threading.Lock()
        self._pending: dict[Path, float] = {}  # study folder -> when its last instance came (monotonic)
        self._unsent: dict[Path, float] = {}  # study folder -> when to try the destination again
        self._send_failures: dict[str, str] = {}  # study -> the send failure last printed (printed once)
        self._confirmed: dict[Path, float] = {}  # study folder -> when its instances were last found analysed
        # study folder -> when it last failed for its content or was analysed in part (it has no marker): its
        # images, identifiers and all, go keep_s after that and its last instance, as an analysed study's do
        self._unfinished: dict[Path, float] = {}
        self._senders: dict[Path, set[str]] = {}  # study folder -> who sent its instances ("AE title 'X' at HOST")
        self._rewrite: dict[Path, float] = {}  # study folder -> when to analyse it again (its results were not written)
        self._rewrite_said: dict[Path, tuple[str, str]] = {}  # study folder -> (fault, reason) last printed for it
        self._rewrite_wait: dict[Path, float] = {}  # study folder -> the wait before its next try (doubles)
        self.scp: StorageSCP | None = None

    def _received(self, folder: Path, sender: str) -> None:
        with self._lock:
            self._pending[folder] = time.monotonic()
            self._senders.setdefault(folder, set()).add(sender)

    def _from(self, folder: Path) -> str:
        """The study's senders since this node started, as " (sent by AE title 'X' at HOST, …)", so that an operator
        knows which modality to look at; "" when none is known (received before a restart)."""
        with self._lock:
            senders = sorted(self._senders.get(folder, ()))
        return f" (sent by {', '.join(senders)})" if senders else ""

    def studies(self) -> list[Path]:
        """The study folders under DIR (those holding at least one received instance)."""
        root = Path(self.options.out)
        return sorted(p for p in root.iterdir()
                      if p.is_dir() and p.name != RESULTS and not p.name.startswith(".") and any(p.glob("*.dcm")))

    def start(self) -> None:
        """Hold DIR's lock (:func:`hold_out_folder`: a second node on DIR is refused before it touches anything),
        listen, and take up the studies an earlier run left (each analysed after the quiet period unless its
        marker says it was; unsent results are sent again)."""
        if self.folder_lock is None:
            self.folder_lock = hold_out_folder(Path(self.options.out))
        try:
            check_out_folder(Path(self.options.out))
            for probe in Path(self.options.out).glob(".write-probe-*.part"):  # of a node killed while it checked
                probe.unlink(missing_ok=True)
            unfinished = remove_unfinished_results(self.results)
            if unfinished:
                _say(f"removed {unfinished} unfinished file(s) that a stopped node left in {self.results}")
            now = time.monotonic()
            with self._lock:
                for folder in self.studies():
                    self._pending[folder] = now
            o = self.options
            self.scp = StorageSCP(o.ae_title, o.port, o.out, host=o.bind, allowed=o.allowed, limits=o.limits,
                                  on_kept=self._received)
        except BaseException:  # not started (the port is taken, DIR became unwritable): DIR is free again
            self.release()
            raise
        allowed = ", ".join(str(s) for s in o.allowed) or "nobody"
        _say(f"listening as {o.ae_title} on {o.bind}:{o.port}; allowed senders: {allowed}; "
             f"{len(self._pending)} stud(ies) already in {o.out}")

    def run(self, stop: threading.Event, tick_s: float = 0.2) -> None:
        """Until ``stop`` is set: analyse each study once it is quiet, retry unsent results; then stop
        listening (open associations are aborted)."""
        if self.scp is None:
            self.start()
        try:
            swept = time.monotonic()
            while not stop.wait(tick_s):
                for folder in self._due():
                    if stop.is_set():
                        break
                    try:
                        self._take(folder)
                    except Exception as error:  # noqa: BLE001 - one study's failure never ends the service
                        self._take_failed(folder, error)
                if time.monotonic() - swept >= min(60.0, self.options.keep_s):
                    swept = time.monotonic()
                    try:
                        self.remove_finished()
                    except Exception:  # noqa: BLE001 - tried again at the next sweep
                        logger.warning("the received images of analysed studies could not be removed (tried again "
                                       "in a minute):\n%s", _frames())
        finally:
            self.busy = False
            if self.scp is not None:
                self.scp.stop()
            self.release()

    def release(self) -> None:
        """Let DIR go (another node may use it then)."""
        lock, self.folder_lock = self.folder_lock, None
        if lock is not None:
            lock.release()

    def _take_failed(self, folder: Path, error: Exception) -> None:
        """What ``_take`` did not expect (a disk that fails while the study's bookkeeping is read, a bug): said
        with the study and its senders, the traceback's frames logged (not its values: they may hold the
        patient's), and the study taken again later (after ``retry_s``, then less often)."""
        self.busy = False
        try:
            reason = without_identifiers(f"{type(error).__name__}: {error}", folder)
        except Exception:  # noqa: BLE001 - its headers cannot be read either: the type alone names nothing
            reason = type(error).__name__
        logger.error("study %s%s: %s\n%s", folder.name, self._from(folder), reason, _frames(error))
        self._rewrite_later(folder, f"could not be analysed ({reason})", fault="an error of this node")

    def _due(self) -> list[Path]:
        now = time.monotonic()
        with self._lock:
            quiet = [f for f, last in self._pending.items() if now - last >= self.options.quiet_s]
            for folder in quiet:
                del self._pending[folder]
            # a study whose instances are still coming waits for the quiet period, whatever else it waits for
            retry = [f for f, when in self._unsent.items() if now >= when and f not in quiet and f not in self._pending]
            rewrite = [f for f, when in self._rewrite.items()
                       if now >= when and f not in quiet and f not in retry and f not in self._pending]
        return sorted(quiet) + sorted(retry) + sorted(rewrite)

    def _take(self, folder: Path) -> None:
        item = ExamItem(folder.name, str(folder))
        names = sorted(p.name for p in folder.glob("*.dcm"))
        each = instance_digests(folder)
        record = {**self.record, "instances": instances_digest(folder, each), "names": names, "instance_digests": each}
        earlier, taken_up = self._earlier_marker(item, record, folder)
        with self._lock:
            rewriting = self._rewrite.pop(folder, None) is not None
        self.busy = True
        try:
            # earlier, or before a restart: never again (nor when an earlier version's marker of these very
            # instances could not be brought up to date: a read-only disk; it is tried again the next time)
            # the record's digest of the instances' contents decides, not the files' times (rewritten by a resend)
            if already_done(self.results, item, record, same_files=False) or (
                    taken_up is not None and already_done(self.results, item, taken_up, same_files=False)):
                self._confirmed[folder] = time.time()  # its instances, written again, are still the analysed ones
                self._rewrite_wait.pop(folder, None)
                self._rewrite_said.pop(folder, None)
                retrying = folder in self._unsent
                if self.options.send is not None:  # what could not be sent then (what was sent is not again)
                    self._send(folder, Outcome(item.exam_id, item.location, "skipped"))
                self._unfinished.pop(folder, None)  # its last images are those analysed: not a failed study
                if not retrying:
                    _say(f"study {folder.name}: already analysed (not analysed again)")
                return
            if earlier is not None:
                if not set(earlier.get("names", ())) <= set(names):
                    # the analysed images were removed (--keep-hours): a late instance alone is no study, and its
                    # analysis would replace the whole study's results and send them
                    self._confirmed[folder] = time.time()
                    _say(f"study {folder.name}{self._from(folder)}: {self._late(earlier, each)}")
                    return
                if not rewriting:
                    _say(f"study {folder.name}: an instance was added or replaced since its analysis: analysing it "
                         "again (its new results, if it is analysed, supersede those sent before)")
            if rewriting:  # the models run again only once the results folder takes a file again
                problem = self._results_problem()
                if problem:
                    self._rewrite_later(folder, problem, quiet=True)
                    return
            outcome = process(item, self.groups, self.results, self.options.batch, record)
            if machine_outcome(outcome):
                self._rewrite_later(folder, without_identifiers(outcome.reason, folder))
                return
            self._rewrite_wait.pop(folder, None)
            fault = self._rewrite_said.pop(folder, None)
            after = "" if fault is None else " (written this time)" if fault[0] == MACHINE_FAULT else " (this time)"
            if outcome.status == "done":
                self._unfinished.pop(folder, None)
            else:
                self._unfinished[folder] = time.time()
            if outcome.status == "failed":
                # the operator's way out of a study that cannot be analysed as it is (another patient's image in
                # it fails every resend the same way): its images' folder
                _say(f"FAILED study {folder.name}{self._from(folder)}: {without_identifiers(outcome.reason, folder)} "
                     "(analysed again when an instance of it comes or the node starts again; its images are in "
                     f"{folder}: remove a stray image there, or the folder to drop the study)")
                return
            reason = f" ({without_identifiers(outcome.reason, folder)})" if outcome.reason else ""
            _say(f"analysed study {folder.name}: {len(outcome.files)} file(s) in {self.results / folder.name}"
                 f"{reason}{after}")
            if self.options.send is not None and outcome.status == "done":  # a partial study has no marker yet
                self._send(folder, outcome)
        finally:
            self.busy = False

    def _results_problem(self) -> str:
        """Why nothing can be written in the results folder now ("" when it can): :func:`writable_problem`."""
        try:
            self.results.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            return error.strerror or str(error)
        return writable_problem(self.results)

    def _late(self, earlier: dict, each: dict[str, str]) -> str:
        """What the node does with instances that came after the analysed study's images were removed, in words:
        one the study had, unchanged, is a duplicate; a new or changed one is not analysed alone."""
        analysed = earlier.get("instance_digests") or {}
        same = [name for name, digest in each.items() if analysed.get(name) == digest]
        other = len(each) - len(same)
        if not other:
            return (f"{len(same)} instance(s) came again after its images were removed, the same as analysed: "
                    "ignored as duplicates (its results stand)")
        counts = f"{other} of them new or changed" if same else "new or changed"
        return (f"{len(each)} instance(s) came after its images were removed ({counts}): not analysed alone, since "
                "its results stand for the whole study; to have them analysed, send the whole study again with them "
                "(the study sent again unchanged is not analysed again)")

    def _rewrite_later(self, folder: Path, reason: str, fault: str = "", quiet: bool = False) -> None:
        """The study's results could not be written for a fault of this machine (or ``fault``: another reason it
        could not be analysed): analysed again after ``retry_s``, and while it still fails after twice the wait
        before, up to :data:`REWRITE_BACKOFF` times ``retry_s`` (no sender will send it again: each instance was
        answered with success). Said once, and again when the reason changes (never when ``quiet``: the results
        folder still takes no file, which the line said already)."""
        fault = fault or MACHINE_FAULT
        retry_s = self.options.retry_s
        with self._lock:
            wait = self._rewrite_wait.get(folder)
            wait = retry_s if wait is None else min(wait * 2, REWRITE_BACKOFF * retry_s)
            self._rewrite_wait[folder] = wait
            self._rewrite[folder] = time.monotonic() + wait
        said = self._rewrite_said.get(folder)
        if quiet and said is not None:
            logger.debug("study %s: %s still takes no file (%s): tried again in %g s", folder.name, self.results,
                         reason, wait)
            return
        if said != (fault, reason):
            self._rewrite_said[folder] = (fault, reason)
            until = "its results can be written" if fault == MACHINE_FAULT else "it can be"
            _say(f"FAILED study {folder.name}{self._from(folder)}: {reason} ({fault}, not of the study: analysed "
                 f"again in {wait:g} s, then after twice the wait each time it still fails, up to every "
                 f"{REWRITE_BACKOFF * retry_s:g} s, until {until}; said again only if the reason changes)")

    def _earlier_marker(self, item: ExamItem, record: dict, folder: Path) -> tuple[dict | None, dict | None]:
        """The options of the study's marker when it was made with the node's present models and options (from
        these or other instances), else None; and the options the marker holds when it is an earlier version's
        of these very instances (else None). A marker of an earlier version is taken up, not analysed again
        (else every study of the inbox was analysed and sent again at the upgrade): one that recorded no instances
        is taken as made from the present ones, one whose digest is :func:`legacy_instances_digest`'s as made
        from them when that digest of the present instances matches; either is brought up to date where it can
        be (on a read-only or full disk it stays as it is, and is tried again the next time). A complete study's
        marker is compared as :func:`already_done` compares it: ``--allow-missing-views`` changes nothing there."""
        path = marker_path(self.results, item)
        try:
            marker = json.loads(path.read_text(encoding="utf-8"))
            options = dict(marker["options"])
        except (OSError, ValueError, KeyError, TypeError):
            return None, None
        if marker.get("complete"):  # all four views
            options["allow_missing_views"] = self.record.get("allow_missing_views")
        if {k: v for k, v in options.items() if k not in ("instances", "names", "instance_digests")} != self.record:
            return None, None
        instances = str(options.get("instances", ""))
        try:
            legacy = "instances" not in options or (not instances.startswith(f"{DIGEST_VERSION}:")
                                                    and instances == legacy_instances_digest(folder))
        except OSError:  # an instance cannot be read: not the instances analysed, as far as can be told
            return None, None
        if not legacy:
            return options, None
        try:
            write_text_atomic(path, json.dumps({**marker, "options": record}))
        except OSError as error:
            logger.info("study %s: its marker of an earlier version could not be brought up to date (%s): tried "
                        "again the next time", folder.name, error.strerror or type(error).__name__)
        return record, dict(marker["options"])

    def remove_finished(self) -> list[Path]:
        """Remove the received instances of each study analysed (its marker newer than every instance) and sent
        at least ``keep_s`` ago, and not waiting for anything, and of each study that failed for its content or
        was analysed in part ``keep_s`` after it was last tried and its last instance came (they stayed for
        ever, identifiers and all); returns their folders."""
        now, removed = time.time(), []
        with self._lock:
            busy = set(self._pending) | set(self._unsent) | set(self._rewrite)
        for folder in self.studies():
            marker = marker_path(self.results, ExamItem(folder.name, str(folder)))
            try:
                newest = max(p.stat().st_mtime for p in folder.glob("*.dcm"))
                if folder in self._unfinished:  # its last try failed (or was partial): a marker there is older
                    analysed = max(self._unfinished[folder], newest)  # (another patient's image came since)
                else:
                    analysed = max(marker.stat().st_mtime, self._confirmed.get(folder, 0.0))
            except (OSError, ValueError):  # no instance; no marker: not taken yet, waiting for its analysis
                continue
            if folder in busy or newest > analysed or now - analysed < self.options.keep_s:
                continue
            def still_finished(folder=folder) -> bool:  # asked while no instance is being written
                with self._lock:
                    return folder not in self._pending and folder not in self._unsent

            if self.scp is not None:
                freed = self.scp.remove_study(folder, still_finished)
                if freed is None:  # an instance came meanwhile: analysed with the others first
                    continue
            else:
                freed = 0
                shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
            self._confirmed.pop(folder, None)
            unfinished = self._unfinished.pop(folder, None) is not None
            with self._lock:
                self._senders.pop(folder, None)
            kept = (f"it failed or was analysed in part, last tried {(now - analysed) / 3600:.1f} h ago, and no "
                    "instance of it came since" if unfinished else f"analysed {(now - analysed) / 3600:.1f} h ago, "
                    f"results kept in {self.results / folder.name}")
            _say(f"study {folder.name}: its received images were removed ({freed / (1 << 20):.1f} MB; {kept})")
        return removed

    def _send(self, folder: Path, outcome: Outcome) -> None:
        from app.archive.ledger import BatchSummary  # noqa: PLC0415
        from app.archive.send import send_results  # noqa: PLC0415

        unsent = send_results(self.options.send, BatchSummary(total=1, done=[outcome]), str(self.results),
                              retry=f"tried again every {self.options.retry_s:g} s; said again only if the reason "
                              "changes", said=self._send_failures)
        with self._lock:
            if unsent:
                self._unsent[folder] = time.monotonic() + self.options.retry_s
            else:
                self._unsent.pop(folder, None)
