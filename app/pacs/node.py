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

A study whose results could not be written for a fault of this machine (a full or read-only disk) is analysed again
every ``retry_s`` seconds until they can: every instance was answered with success, so no sender sends it again. A
study that failed for its content waits for an instance of it to come.

Nothing here prints or logs a patient identifier: studies are named by their folder (a hash of the UID), and a
failure's reason loses the identifiers of the study's headers.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.archive.sources import ExamItem
from app.archive.unit import BatchOptions, Outcome, already_done, marker_path, process
from app.pacs.nodes import RemoteNode
from app.pacs.scp import BIND_DEFAULT, InboxLimits, Sender, StorageSCP
from inference.errors import MammoError
from inference.files import write_text_atomic

logger = logging.getLogger(__name__)

RESULTS = "results"  # DIR/results/<study folder>/: the reports, beside the received studies


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
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def _digest_elements(digest, dataset) -> None:
    from pydicom.dataelem import RawDataElement  # noqa: PLC0415
    from pydicom.filebase import DicomBytesIO  # noqa: PLC0415
    from pydicom.filewriter import write_data_element  # noqa: PLC0415

    for tag in sorted(dataset.keys()):
        if tag.group == 0x0002 or tag.element == 0x0000 or tag == 0xFFFCFFFC:  # meta, group length, padding
            continue
        element = dataset.get_item(tag)  # as read: the value's bytes, not yet decoded
        # implicit VR gives no VR, and UN may hide a sequence: decoded, the dictionary's VR
        vr = dataset[tag].VR if element.VR in (None, "UN", "SQ") else element.VR
        digest.update(struct.pack("<HH", tag.group, tag.element))
        if vr == "SQ":
            items = dataset[tag].value or []
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


# the OSErrors of this machine, not of a study: its results are written again once the disk has room (or is
# writable again); the unit gives a failure as words, the system's own for the error ("No space left on device")
MACHINE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM, errno.EMFILE,
                  errno.ENFILE, errno.ENOMEM)
_MACHINE_WORDS = ("the disk is full", *(os.strerror(code) for code in MACHINE_ERRORS))


def machine_failure(reason: str) -> bool:
    """Whether a study's failure (``Outcome.reason``) is a fault of this machine (a full or read-only disk, a
    folder it may not write, no file handles left) rather than of the study (a missing view, a bad image)."""
    return any(words in reason for words in _MACHINE_WORDS)


def writable_problem(folder: Path) -> str:
    """Why nothing can be written in the folder ``folder`` ("" when it can): a probe file of 64 kB is written,
    flushed to the disk (so that a full one says so) and removed."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-", suffix=".part") as probe:
            probe.write(bytes(64 << 10))
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        return error.strerror or str(error)
    return ""


def check_out_folder(out: Path) -> None:
    """Make the node's folder (readable by the user alone: it holds patient data) and its results folder where
    missing, and raise :class:`MammoError` saying why when the node cannot write in either: on a read-only or
    full disk every instance was answered 0xA700 while the node seemed to run."""
    from app.settings import private_folder  # noqa: PLC0415

    for folder in (Path(out), Path(out) / RESULTS):
        try:
            private_folder(folder) if folder == Path(out) else folder.mkdir(exist_ok=True)
            problem = writable_problem(folder)
        except OSError as error:  # the folder cannot be made
            problem = error.strerror or str(error)
        if problem:
            raise MammoError(f"cannot write in {folder} ({problem}): the node keeps the studies it receives and "
                             "their results there")


def remove_unfinished_results(results: Path) -> int:
    """Remove what a killed node left half written in its results folder: the temporary files of atomic writes
    (``.NAME.*.part``: a report, a marker, a probe); returns how many. Nothing else writes there."""
    removed = 0
    for path in Path(results).rglob(".*.part") if Path(results).is_dir() else []:
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


IDENTIFYING = ("PatientID", "PatientName", "OtherPatientIDs", "IssuerOfPatientID", "PatientBirthDate",
               "AccessionNumber", "StudyID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
               "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "InstitutionName",
               "ReferringPhysicianName")


def study_identifiers(folder: Path) -> set[str]:
    """What the headers of the study's instances hold that could identify the patient or the study."""
    from pydicom import dcmread  # noqa: PLC0415
    from pydicom.multival import MultiValue  # noqa: PLC0415

    from app.dates import dicom_date  # noqa: PLC0415

    found: set[str] = set()
    for path in Path(folder).glob("*.dcm"):
        try:
            header = dcmread(path, stop_before_pixels=True, specific_tags=list(IDENTIFYING))
        except Exception:  # noqa: BLE001 - a damaged file holds nothing to hide that can be read
            continue
        for keyword in IDENTIFYING:
            value = header.get(keyword)
            values = value if isinstance(value, (list, tuple, MultiValue)) else [value]
            for item in values:
                text = str(item or "").strip()
                found |= {text, *text.replace("^", " ").split()}
                if len(text) == 8 and text.isdigit():
                    found.add(dicom_date(text))
    return {text for text in found if text}


def without_identifiers(text: str, folder: Path) -> str:
    from app.study.blinding import remove_identifiers  # noqa: PLC0415

    return remove_identifiers(text, study_identifiers(folder))


class AiNode:
    """Runs on the calling thread until ``stop`` is set; the Storage SCP runs on pynetdicom's threads."""

    def __init__(self, options: NodeOptions, groups: Sequence) -> None:
        self.options = options
        self.groups = list(groups)
        self.results = Path(options.out) / RESULTS
        self.record = options.batch.record([f"{g.id}={g.key}" for g in self.groups])
        self.busy = False  # analysing or sending: a stop signal then abandons that work (see NodeStopping)
        self._lock = threading.Lock()
        self._pending: dict[Path, float] = {}  # study folder -> when its last instance came (monotonic)
        self._unsent: dict[Path, float] = {}  # study folder -> when to try the destination again
        self._send_failures: dict[str, str] = {}  # study -> the send failure last printed (printed once)
        self._confirmed: dict[Path, float] = {}  # study folder -> when its instances were last found analysed
        self._senders: dict[Path, set[str]] = {}  # study folder -> who sent its instances ("AE title 'X' at HOST")
        self._rewrite: dict[Path, float] = {}  # study folder -> when to analyse it again (its results were not written)
        self._rewrite_said: dict[Path, str] = {}  # study folder -> the machine's fault last printed for it
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
        """Listen, and take up the studies an earlier run left (each analysed after the quiet period unless
        its marker says it was; unsent results are sent again)."""
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
                    self._take(folder)
                if time.monotonic() - swept >= min(60.0, self.options.keep_s):
                    swept = time.monotonic()
                    self.remove_finished()
        finally:
            self.busy = False
            if self.scp is not None:
                self.scp.stop()

    def _due(self) -> list[Path]:
        now = time.monotonic()
        with self._lock:
            quiet = [f for f, last in self._pending.items() if now - last >= self.options.quiet_s]
            for folder in quiet:
                del self._pending[folder]
            retry = [f for f, when in self._unsent.items() if now >= when and f not in quiet]
            rewrite = [f for f, when in self._rewrite.items() if now >= when and f not in quiet and f not in retry]
        return sorted(quiet) + sorted(retry) + sorted(rewrite)

    def _take(self, folder: Path) -> None:
        item = ExamItem(folder.name, str(folder))
        names = sorted(p.name for p in folder.glob("*.dcm"))
        each = instance_digests(folder)
        record = {**self.record, "instances": instances_digest(folder, each), "names": names, "instance_digests": each}
        earlier = self._earlier_marker(item, record, folder)
        with self._lock:
            rewriting = self._rewrite.pop(folder, None) is not None
        self.busy = True
        try:
            if already_done(self.results, item, record):  # earlier, or before a restart: never again
                self._confirmed[folder] = time.time()  # its instances, written again, are still the analysed ones
                retrying = folder in self._unsent
                if self.options.send is not None:  # what could not be sent then (what was sent is not again)
                    self._send(folder, Outcome(item.exam_id, item.location, "skipped"))
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
                         "again (results sent before are superseded by the new ones)")
            outcome = process(item, self.groups, self.results, self.options.batch, record)
            if outcome.status in ("failed", "partial") and machine_failure(outcome.reason):
                self._rewrite_later(folder, without_identifiers(outcome.reason, folder))
                return
            after = " (written this time)" if self._rewrite_said.pop(folder, None) is not None else ""
            if outcome.status == "failed":
                _say(f"FAILED study {folder.name}{self._from(folder)}: {without_identifiers(outcome.reason, folder)} "
                     "(analysed again when an instance of it comes)")
                return
            reason = f" ({without_identifiers(outcome.reason, folder)})" if outcome.reason else ""
            _say(f"analysed study {folder.name}: {len(outcome.files)} file(s) in {self.results / folder.name}"
                 f"{reason}{after}")
            if self.options.send is not None and outcome.status == "done":  # a partial study has no marker yet
                self._send(folder, outcome)
        finally:
            self.busy = False

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

    def _rewrite_later(self, folder: Path, reason: str) -> None:
        """The study's results could not be written for a fault of this machine: analysed again every ``retry_s``
        (no sender will send it again: each instance was answered with success). Said once, and again when the
        reason changes."""
        with self._lock:
            self._rewrite[folder] = time.monotonic() + self.options.retry_s
        if self._rewrite_said.get(folder) != reason:
            self._rewrite_said[folder] = reason
            _say(f"FAILED study {folder.name}{self._from(folder)}: {reason} (a fault of this machine, not of the "
                 f"study: analysed again every {self.options.retry_s:g} s until its results can be written; said "
                 "again only if the reason changes)")

    def _earlier_marker(self, item: ExamItem, record: dict, folder: Path) -> dict | None:
        """The options of the study's marker when it was made with the node's present models and options (from
        these or other instances), else None. A marker of an earlier version is taken up, not analysed again
        (else every study of the inbox was analysed and sent again at the upgrade): one that recorded no instances
        is taken as made from the present ones, one whose digest is :func:`legacy_instances_digest`'s as made
        from them when that digest of the present instances matches; either is brought up to date."""
        path = marker_path(self.results, item)
        try:
            marker = json.loads(path.read_text(encoding="utf-8"))
            options = dict(marker["options"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if {k: v for k, v in options.items() if k not in ("instances", "names", "instance_digests")} != self.record:
            return None
        instances = str(options.get("instances", ""))
        legacy = "instances" not in options or (not instances.startswith(f"{DIGEST_VERSION}:")
                                                and instances == legacy_instances_digest(folder))
        if legacy:
            write_text_atomic(path, json.dumps({**marker, "options": record}))
            return record
        return options

    def remove_finished(self) -> list[Path]:
        """Remove the received instances of each study analysed (its marker newer than every instance) and sent
        at least ``keep_s`` ago, and not waiting for anything; returns their folders."""
        now, removed = time.time(), []
        with self._lock:
            busy = set(self._pending) | set(self._unsent) | set(self._rewrite)
        for folder in self.studies():
            marker = marker_path(self.results, ExamItem(folder.name, str(folder)))
            try:
                analysed = max(marker.stat().st_mtime, self._confirmed.get(folder, 0.0))
                newest = max(p.stat().st_mtime for p in folder.glob("*.dcm"))
            except (OSError, ValueError):
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
            with self._lock:
                self._senders.pop(folder, None)
            _say(f"study {folder.name}: its received images were removed ({freed / (1 << 20):.1f} MB; analysed "
                 f"{(now - analysed) / 3600:.1f} h ago, results kept in {self.results / folder.name})")
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
