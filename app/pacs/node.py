"""The DICOM AI node (``python main.py serve``): receive studies, analyse each once, send the results back.

Studies arrive on our Storage SCP (only from the allow-list, only MG, within the limits; see ``scp``) into
hashed folders under ``DIR``. A study that has had no new instance for ``quiet_s`` seconds is analysed by the
batch's unit (``app/archive/unit.py``) into ``DIR/results/<study folder>/``: its marker file makes the analysis
happen once, also across a killed and restarted node (a study that was received but not analysed when the node
stopped is analysed after the restart). With a destination, the SR, SEG and Encapsulated PDF are stored there;
a destination that is down is tried again every ``retry_s`` seconds (and at the next start).

Nothing here prints or logs a patient identifier: studies are named by their folder (a hash of the UID).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.archive.sources import ExamItem
from app.archive.unit import BatchOptions, Outcome, already_done, process
from app.pacs.nodes import RemoteNode
from app.pacs.scp import BIND_DEFAULT, InboxLimits, Sender, StorageSCP

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
    batch: BatchOptions = field(default_factory=lambda: BatchOptions(formats=("json", "pdf", "sr", "seg", "epdf")))


def _say(text: str) -> None:
    print(text, flush=True)


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
        self.scp: StorageSCP | None = None

    def _received(self, folder: Path) -> None:
        with self._lock:
            self._pending[folder] = time.monotonic()

    def studies(self) -> list[Path]:
        """The study folders under DIR (those holding at least one received instance)."""
        root = Path(self.options.out)
        return sorted(p for p in root.iterdir() if p.is_dir() and p.name != RESULTS and any(p.glob("*.dcm")))

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
            while not stop.wait(tick_s):
                for folder in self._due():
                    if stop.is_set():
                        break
                    self._take(folder)
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
        self.busy = True
        try:
            if already_done(self.results, item, self.record):  # earlier, or before a restart: never again
                retrying = folder in self._unsent
                if self.options.send is not None:  # what could not be sent then (what was sent is not again)
                    self._send(folder, Outcome(item.exam_id, item.location, "skipped"))
                if not retrying:
                    _say(f"study {folder.name}: already analysed (not analysed again)")
                return
            outcome = process(item, self.groups, self.results, self.options.batch, self.record)
            if outcome.status == "failed":
                _say(f"FAILED study {folder.name}: {outcome.reason} (a new instance of the study tries again)")
                return
            reason = f" ({outcome.reason})" if outcome.reason else ""
            _say(f"analysed study {folder.name}: {len(outcome.files)} file(s) in {self.results / folder.name}"
                 f"{reason}")
            if self.options.send is not None and outcome.status == "done":  # a partial study has no marker yet
                self._send(folder, outcome)
        finally:
            self.busy = False

    def _send(self, folder: Path, outcome: Outcome) -> None:
        from app.archive.ledger import BatchSummary  # noqa: PLC0415
        from app.archive.send import send_results  # noqa: PLC0415

        unsent = send_results(self.options.send, BatchSummary(total=1, done=[outcome]), str(self.results))
        with self._lock:
            if unsent:
                self._unsent[folder] = time.monotonic() + self.options.retry_s
            else:
                self._unsent.pop(folder, None)
