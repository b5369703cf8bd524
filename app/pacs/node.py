"""The DICOM AI node (``python main.py serve``): receive studies, analyse each once, send the results back.

Studies arrive on our Storage SCP (only from the allow-list, only MG, within the limits; see ``scp``) into
hashed folders under ``DIR``. A study that has had no new instance for ``quiet_s`` seconds is analysed by the
batch's unit (``app/archive/unit.py``) into ``DIR/results/<study folder>/``: its marker file makes the analysis
happen once, also across a killed and restarted node (a study that was received but not analysed when the node
stopped is analysed after the restart). With a destination, the SR, SEG and Encapsulated PDF are stored there;
a destination that is down is tried again every ``retry_s`` seconds (and at the next start).

A study whose instances change after its analysis (a view that came late, an instance sent again with a corrected
patient) is analysed again: the marker records a digest of the instances it was made from.

Nothing here prints or logs a patient identifier: studies are named by their folder (a hash of the UID), and a
failure's reason loses the identifiers of the study's headers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.archive.sources import ExamItem
from app.archive.unit import BatchOptions, Outcome, already_done, marker_path, process
from app.pacs.nodes import RemoteNode
from app.pacs.scp import BIND_DEFAULT, InboxLimits, Sender, StorageSCP
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


def instances_digest(folder: Path) -> str:
    """A digest of the study's received instances: their names and their data sets (the file meta, which
    names the sending AE title, left out: the same study sent again by another modality is the same)."""
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
        self._senders: dict[Path, set[str]] = {}  # study folder -> the calling AE titles its instances came from
        self.scp: StorageSCP | None = None

    def _received(self, folder: Path, sender: str) -> None:
        with self._lock:
            self._pending[folder] = time.monotonic()
            self._senders.setdefault(folder, set()).add(sender)

    def _from(self, folder: Path) -> str:
        """The study's senders since this node started, as " (sent by AET, …)", so that an operator knows which
        modality to look at; "" when none is known (received before a restart)."""
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
        from app.settings import private_folder  # noqa: PLC0415

        private_folder(Path(self.options.out))
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
        return sorted(quiet) + sorted(retry)

    def _take(self, folder: Path) -> None:
        item = ExamItem(folder.name, str(folder))
        names = sorted(p.name for p in folder.glob("*.dcm"))
        record = {**self.record, "instances": instances_digest(folder), "names": names}
        earlier = self._earlier_marker(item, record)
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
                    _say(f"study {folder.name}{self._from(folder)}: {len(names)} instance(s) came after its images "
                         "were removed; not analysed (its results stand; send the whole study again to analyse it "
                         "anew)")
                    return
                _say(f"study {folder.name}: an instance was added or replaced since its analysis: analysing it "
                     "again (results sent before are superseded by the new ones)")
            outcome = process(item, self.groups, self.results, self.options.batch, record)
            if outcome.status == "failed":
                _say(f"FAILED study {folder.name}{self._from(folder)}: {without_identifiers(outcome.reason, folder)} "
                     "(analysed again when an instance of it comes)")
                return
            reason = f" ({without_identifiers(outcome.reason, folder)})" if outcome.reason else ""
            _say(f"analysed study {folder.name}: {len(outcome.files)} file(s) in {self.results / folder.name}"
                 f"{reason}")
            if self.options.send is not None and outcome.status == "done":  # a partial study has no marker yet
                self._send(folder, outcome)
        finally:
            self.busy = False

    def _earlier_marker(self, item: ExamItem, record: dict) -> dict | None:
        """The options of the study's marker when it was made with the node's present models and options (from
        these or other instances), else None. A marker of an earlier version, which recorded no instances, is
        taken as made from the present ones and brought up to date (else every study of the inbox was
        analysed and sent again at the upgrade)."""
        path = marker_path(self.results, item)
        try:
            marker = json.loads(path.read_text(encoding="utf-8"))
            options = dict(marker["options"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if {k: v for k, v in options.items() if k not in ("instances", "names")} != self.record:
            return None
        if "instances" not in options:
            write_text_atomic(path, json.dumps({**marker, "options": record}))
            return record
        return options

    def remove_finished(self) -> list[Path]:
        """Remove the received instances of each study analysed (its marker newer than every instance) and sent
        at least ``keep_s`` ago, and not waiting for anything; returns their folders."""
        now, removed = time.time(), []
        with self._lock:
            busy = set(self._pending) | set(self._unsent)
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
