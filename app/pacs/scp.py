"""Our own Storage SCP: studies pushed to the workstation or to the AI node (``serve``), or sent by C-MOVE.

Who may send is decided at association: the called AE title must be ours and the calling AE title (and the
host, when the allow-list names one) must be on the allow-list, else the association is rejected (A-ASSOCIATE-RJ,
"called / calling AE title not recognised") with a logged line. An empty allow-list lets nobody in.

Only MG images are kept; anything else is answered with a failure status, so that the sender never believes
an instance was stored that was thrown away. Each instance has a size limit and the inbox a quota (0xA700,
"out of resources", when either would be passed). Each file is written atomically under a hashed name in a
folder per study, so nothing in the inbox's names identifies a patient. The server runs on pynetdicom's own
threads; ``stop`` shuts it down and aborts the associations still open.

Every line it logs about a peer names its AE title and host. What could repeat without end is said once and
then counted: an instance that cannot be written (a full or read-only disk) once per association with its
cause, the connections closed for asking for no association at most one line per host (and one summary of
those that ended in silence) per ``NOTE_INTERVAL_S``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import shutil
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset

from app.pacs.contexts import DECODABLE_SYNTAXES, RETRIEVED_CLASSES, VERIFICATION
from inference.errors import MammoError
from inference.files import atomic_path

logger = logging.getLogger(__name__)

# C-STORE statuses (PS3.4 Table B.2-1)
OUT_OF_RESOURCES = 0xA700  # refused: the instance is over the size limit, or the inbox is full
NOT_ACCEPTED = 0xA900  # error: a data set this node does not keep (not an MG image)
CANNOT_UNDERSTAND = 0xC000  # error: the data set cannot be decoded, or lacks what an image needs
DUPLICATE_INSTANCE = 0x0111  # failure (PS3.7 C.4): the SOP Instance UID is held here for another patient
ANOTHER_PATIENT_S_STUDY = 0xC001  # error (cannot understand): the study is held here for another patient
# A-ASSOCIATE-RJ (PS3.8 9.3.4): rejected permanent, by the service user, with the reason
CALLING_NOT_RECOGNISED = (0x01, 0x01, 0x03)
CALLED_NOT_RECOGNISED = (0x01, 0x01, 0x07)
LOCAL_LIMIT_EXCEEDED = (0x02, 0x03, 0x02)  # rejected transient, by the service provider (presentation)
MAX_ASSOCIATIONS = 10  # admitted associations at once; another allowed sender is told to try again later
MAX_CONNECTIONS = 100  # TCP connections at once, those that have not asked for an association yet included
HELLO_TIMEOUT_S = 10.0  # a connection that has asked for no association by then is closed
MAX_SILENT_PER_HOST = 8  # connections of one host that have not asked for an association yet; more are closed
MAX_PEERS_SAID = 20  # the distinct rejected peers kept for the caller's message (a flood adds no more)
NOTE_INTERVAL_S = 60.0  # connections closed for asking for no association: at most one line a host this often
BIND_DEFAULT = "127.0.0.1"  # a LAN address only when the user names one


@dataclass(frozen=True)
class Sender:
    """One entry of the allow-list: a calling AE title, and the host it must come from (empty: any host).
    ``ae_title`` None (never from a user's list) admits any AE title from ``host``: the C-MOVE receiver's
    entry for the PACS it asked, which may send from an AE title of its own."""

    ae_title: str | None
    host: str = ""

    def __post_init__(self) -> None:
        if self.ae_title is None and not self.host:
            raise ValueError("an entry for any AE title must name its host")

    def admits(self, ae_title: str, host: str) -> bool:
        host = host.removeprefix("::ffff:")  # an IPv4 peer on a dual-stack socket
        return (self.ae_title is None or ae_title == self.ae_title) and (not self.host or host == self.host)

    def __str__(self) -> str:
        title = "any AE title" if self.ae_title is None else self.ae_title
        return f"{title}@{self.host}" if self.host else title


def parse_senders(entries: Iterable[str]) -> tuple[Sender, ...]:
    """``AET`` or ``AET@HOST`` entries (also comma-separated) as the allow-list; raises :class:`MammoError`
    naming an entry that is no AE title."""
    senders = []
    for entry in (part.strip() for text in entries for part in str(text).split(",")):
        if not entry:
            continue
        ae_title, _, host = entry.partition("@")
        ae_title, host = ae_title.strip(), host.strip()
        if not ae_title or len(ae_title) > 16 or "\\" in ae_title or (entry.count("@") > 1):
            raise MammoError(f"allowed sender {entry!r}: write AE_TITLE or AE_TITLE@HOST (an AE title has 1 to "
                             "16 characters)")
        if "@" in entry and not host:  # 'MODALITY@' from an unset $HOST: meant for one host, it let in any
            raise MammoError(f"allowed sender {entry!r}: the host after '@' is empty; name it by its IP address, or "
                             "write the AE title alone to let it in from any host")
        if host:
            try:
                host = str(ipaddress.ip_address(host.strip("[]")))
            except ValueError:
                raise MammoError(f"allowed sender {entry!r}: name the host by its IP address (such as "
                                 f"{ae_title}@192.168.1.20); a host name is not looked up, so it would never "
                                 "match") from None
        senders.append(Sender(ae_title, host))
    return tuple(dict.fromkeys(senders))


@dataclass(frozen=True)
class InboxLimits:
    """What one instance and the whole inbox may take on disk (bytes as received)."""

    max_instance_bytes: int = 512 << 20
    quota_bytes: int = 20 << 30


class _Refusal(Exception):
    """An instance the sender is told we did not keep (status and a comment for it)."""

    def __init__(self, status: int, comment: str) -> None:
        super().__init__(comment)
        self.status = status


def study_folder(inbox: Path, study_uid: str) -> Path:
    return inbox / hashlib.sha1(study_uid.encode()).hexdigest()[:20]


def _uid_hash(dataset: Dataset) -> str:
    return hashlib.sha1(str(dataset.SOPInstanceUID).encode()).hexdigest()


def instance_name(dataset: Dataset) -> str:
    """The file name of a received instance: a hash of its SOP Instance UID, in decimal digits, so that the
    intake, which reads a view from a file name when the header has none ("..._CC.dcm"), never reads one from
    ours (a hexadecimal hash holds "cc" or "mlo"-like letters by chance)."""
    return f"{int(_uid_hash(dataset)[:16], 16):020d}.dcm"


def legacy_instance_name(dataset: Dataset) -> str:
    """The hexadecimal name earlier versions gave an instance (replaced by :func:`instance_name` when the
    instance comes again, so that one instance is never kept twice)."""
    return _uid_hash(dataset)[:20] + ".dcm"


def keep_instance(folder: Path, dataset: Dataset) -> Path:
    """One instance into ``folder`` (atomically, under a hash of its SOP Instance UID), readable by this user
    alone, whatever the umask and the folder above: a patient's images (the inbox, the node's studies, the
    retrieve cache) were left 0644 in 0755 folders where the folder given already existed."""
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    with atomic_path(folder / instance_name(dataset)) as temporary:
        dataset.save_as(temporary, enforce_file_format=True)
        os.chmod(temporary, 0o600)
    return folder / instance_name(dataset)


def short_pixel_data(dataset: Dataset) -> str:
    """Why an uncompressed image's pixel data cannot be whole (fewer bytes than its rows, columns, samples,
    bits and frames need: a data set cut short in transfer), or "". Compressed pixel data is checked when
    it is decoded."""
    try:
        if dataset.file_meta.TransferSyntaxUID.is_compressed:
            return ""
        bits = int(dataset.BitsAllocated)
        values = (int(dataset.Rows) * int(dataset.Columns) * int(dataset.get("SamplesPerPixel", 1) or 1)
                  * int(dataset.get("NumberOfFrames", 1) or 1))
        needed = (values * bits + 7) // 8
        present = len(dataset.PixelData)
    except Exception as error:  # noqa: BLE001 - a header pydicom cannot read as numbers
        return f"the image's header cannot be read ({type(error).__name__})"
    return f"pixel data cut short ({present} of {needed} bytes)" if present < needed else ""


def empty_image(dataset: Dataset) -> str:
    """Why an image has no pixels at all (Rows or Columns 0), or "": such an instance is refused when it comes
    (the analysis could only fail on it, after the sender was told it was stored)."""
    try:
        rows, columns = int(dataset.Rows), int(dataset.Columns)
    except Exception as error:  # noqa: BLE001 - a header pydicom cannot read as numbers
        return f"the image's header cannot be read ({type(error).__name__})"
    return f"the image has no pixels (Rows {rows}, Columns {columns})" if rows <= 0 or columns <= 0 else ""


def impossible_pixels(dataset: Dataset) -> str:
    """Why an image's pixels cannot be laid out (PS3.5 8.1.1: Bits Allocated is 1 or a multiple of 8; 64 at
    most for any pixel data, and an image has at least one frame), or "": such an instance is refused when it
    comes, as one without rows or columns is, since the analysis could only fail on it."""
    try:
        bits = int(dataset.BitsAllocated)
        frames = dataset.get("NumberOfFrames")
        frames = None if frames is None or str(frames).strip() == "" else int(frames)
    except Exception as error:  # noqa: BLE001 - a header pydicom cannot read as numbers
        return f"the image's header cannot be read ({type(error).__name__})"
    if not (bits == 1 or (8 <= bits <= 64 and bits % 8 == 0)):
        return f"Bits Allocated {bits}: not 1 or a multiple of 8 up to 64"
    if frames is not None and frames <= 0:
        return f"the image has no pixels (Number of Frames {frames})"
    return ""


def _host(address) -> str:
    return str(address).removeprefix("::ffff:")  # an IPv4 peer on a dual-stack socket


def _peer(assoc) -> str:
    """A peer as every log line names it: "AE title 'MODALITY' at 10.0.0.7" (its host alone before it has
    asked for an association)."""
    host = _host(assoc.requestor.address)
    primitive = assoc.requestor.primitive
    if primitive is None:
        return f"a connection from {host}"
    return f"AE title {str(primitive.calling_ae_title).strip()!r} at {host}"


def _system_cause(error: BaseException) -> str:
    """The system's words for why a write failed ("No space left on device"), found down the exception's causes
    (pydicom raises an OSError of its own, without the errno, from the one of the disk, and the atomic write one
    naming the file from pydicom's, with pydicom's text as its words: the system's are those of the OSError
    that has an errno); else the exception's type alone (its text could quote the data set)."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno is not None and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    return type(error).__name__


def _uid_name(uid: str) -> str:
    from pydicom.uid import UID  # noqa: PLC0415

    name = UID(str(uid)).name
    return name if name and name != str(uid) else str(uid)


class _ConnectionNotes:
    """The lines about connections and associations that a flood repeats without end: a connection closed for
    asking for no association (per host), an association rejected (per peer and reason). The first of each for
    its key is said at once and the next ones within ``NOTE_INTERVAL_S`` are counted into one line at the
    interval's end; connections that ended in silence (the hello timeout, or the peer hung up first) are counted
    per host into one summary line an interval. A timer says what was counted; it runs only while something is
    counted, and ``close`` says the rest at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> [interval's end (monotonic), events counted, the counted line for a count (the latest given)]
        self._repeats: dict[tuple[str, ...], list] = {}
        self._silent: dict[str, int] = {}  # host -> connections that ended without asking for an association
        self._silent_since = 0.0
        self._timer: threading.Timer | None = None
        self._timer_due = 0.0
        self._closed = False

    def capped(self, host: str, holding: int) -> None:
        self._repeated(("capped", host), (
            f"closed a connection from {host}: it holds {holding} connections that have asked for no association "
            f"(more closed in the next {NOTE_INTERVAL_S:g} s are counted in one line)"),
            lambda count: (f"closed {count} more connection(s) from {host} in the last {NOTE_INTERVAL_S:g} s: it "
                           f"held {holding} connections that had asked for no association"))

    def rejected(self, calling: str, host: str, why: str, reason: tuple) -> None:
        """Keyed by host and the kind of rejection, not the AE title: a stranger that changes its AE title at
        each request is one flood."""
        self._repeated(("rejected", host, *map(str, reason)), (
            f"rejected an association from AE title {calling!r} at {host}: {why} (more of the kind from {host} in "
            f"the next {NOTE_INTERVAL_S:g} s are counted in one line)"),
            lambda count: (f"rejected {count} more association(s) from {host} in the last {NOTE_INTERVAL_S:g} s "
                           f"(the last: AE title {calling!r}: {why})"))

    def _repeated(self, key: tuple[str, ...], first: str, counted: Callable[[int], str]) -> None:
        now = time.monotonic()
        lines = []
        with self._lock:
            state = self._repeats.get(key)
            if state is not None and now < state[0]:
                state[1] += 1
                state[2] = counted
                self._schedule(state[0] - now)
                return
            if state is not None and state[1]:  # its interval ended before the timer said its count
                lines.append(state[2](state[1]))
            self._repeats[key] = [now + NOTE_INTERVAL_S, 0, counted]
        for line in [*lines, first]:
            logger.warning("%s", line)

    def silent(self, host: str) -> None:
        with self._lock:
            if not self._silent:
                self._silent_since = time.monotonic()
                self._schedule(NOTE_INTERVAL_S)
            self._silent[host] = self._silent.get(host, 0) + 1

    def _schedule(self, delay: float) -> None:  # under the lock
        due = time.monotonic() + max(delay, 0.0)
        if self._closed or (self._timer is not None and self._timer_due <= due):
            return
        if self._timer is not None:  # due later than this: the earlier one takes its place
            self._timer.cancel()
        self._timer, self._timer_due = threading.Timer(max(delay, 0.0), self.say), due
        self._timer.daemon = True
        self._timer.start()

    def say(self, everything: bool = False) -> None:
        """Log what was counted and whose interval has ended (``everything``: all of it, now)."""
        now = time.monotonic()
        lines, next_due = [], []
        with self._lock:
            if self._timer is threading.current_thread():  # this timer's turn is over (close may have said all)
                self._timer = None
            for key, (ends, count, counted) in list(self._repeats.items()):
                if now < ends and not everything:
                    next_due.append(ends - now)
                elif count:
                    lines.append(counted(count))
                    self._repeats[key] = [now + NOTE_INTERVAL_S, 0, counted]  # a flood that goes on: one line
                else:
                    del self._repeats[key]
            silent_due = self._silent_since + NOTE_INTERVAL_S - now
            if self._silent and (everything or silent_due <= 0):
                ranked = sorted(self._silent.items(), key=lambda pair: (-pair[1], pair[0]))
                hosts = ", ".join(f"{host} ({count})" for host, count in ranked[:10])
                more = f" and {len(ranked) - 10} other host(s)" if len(ranked) > 10 else ""
                lines.append(f"{sum(self._silent.values())} connection(s) ended without asking for an association "
                             f"in the last {min(now - self._silent_since, NOTE_INTERVAL_S):.0f} s (closed after "
                             f"{HELLO_TIMEOUT_S:g} s of silence, or by their peer): {hosts}{more}")
                self._silent.clear()
            elif self._silent:
                next_due.append(silent_due)
            if next_due and not everything:
                self._schedule(min(next_due))
        for line in lines:
            logger.warning("%s", line)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self.say(everything=True)


def inbox_bytes(inbox: Path) -> int:
    """What the inbox's received instances take (the quota counts these)."""
    return sum(p.stat().st_size for p in Path(inbox).glob("*/*.dcm") if p.is_file()) if Path(inbox).is_dir() else 0


def remove_partial_writes(inbox: Path) -> int:
    """Remove what a killed process left half done: the temporary files of writes (``.NAME.dcm.*.part``) and
    studies it was removing (``.removing-*``); returns how many."""
    removed = 0
    for path in Path(inbox).glob("*/.*.part") if Path(inbox).is_dir() else []:
        path.unlink(missing_ok=True)
        removed += 1
    for path in Path(inbox).glob(".removing-*") if Path(inbox).is_dir() else []:
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


class StorageSCP:
    """A C-STORE (and C-ECHO) server.

    ``allowed``: who may associate (an empty allow-list lets nobody in; the short-lived C-MOVE receiver lets in
    only the PACS it asked, by its address, see ``Sender``). By default MG
    images are kept in ``inbox`` (one folder per study, within ``limits``) and ``on_kept(folder, sender)`` is called
    after each (``sender``: "AE title 'MODALITY' at 10.0.0.7"); ``on_instance(dataset)`` replaces that (the C-MOVE
    receiver hands each dataset to a retrieve).
    """

    def __init__(self, ae_title: str, port: int, inbox: Path | None = None, *, host: str = BIND_DEFAULT,
                 allowed: Sequence[Sender] = (), limits: InboxLimits = InboxLimits(),
                 on_instance: Callable[[Dataset], None] | None = None,
                 on_kept: Callable[[Path, str], None] | None = None, timeout: float = 30.0) -> None:
        from pynetdicom import AE, evt  # noqa: PLC0415

        self.ae_title = ae_title.strip()
        if inbox is not None:  # received studies are patient data: readable by the user alone (0700)
            from app.settings import private_folder  # noqa: PLC0415

            private_folder(Path(inbox))
        self.inbox = Path(inbox) if inbox is not None else None
        self.allowed = tuple(allowed)
        self.limits = limits
        self.on_instance = on_instance
        self.on_kept = on_kept
        self.kept = 0
        self.refused = 0  # instances answered with a failure status
        self.accepted = 0  # associations accepted (a C-MOVE that failed with none: the node never reached us)
        self.rejected = 0  # associations rejected
        self.rejected_peers: list[str] = []  # who they came from ("AE title at host"), for the caller's message
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # an instance's write (and its on_kept) against a study's removal
        self._used = 0
        # association -> its data set's bytes so far (-1: aborted)
        self._incoming: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        # association -> {cause: instances it failed to write}: the first said at once, the rest when it closes
        self._write_failures: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._connections = _ConnectionNotes()
        if self.inbox is not None and on_instance is None:
            remove_partial_writes(self.inbox)
            self._used = inbox_bytes(self.inbox)
        ae = AE(ae_title=self.ae_title)
        ae.dimse_timeout = ae.network_timeout = timeout
        # a peer sends its A-ASSOCIATE-RQ as soon as it connects: connections that say nothing go soon, and
        # only admitted associations count against MAX_ASSOCIATIONS (pynetdicom's own limit counts every
        # connection, so that ten silent ones from anybody kept every allowed sender out)
        ae.acse_timeout = min(timeout, HELLO_TIMEOUT_S)
        ae.maximum_associations = MAX_CONNECTIONS
        ae.require_called_aet = True  # checked in _requested too, with a logged line
        ae.add_supported_context(VERIFICATION)
        for sop in RETRIEVED_CLASSES:
            for syntax in DECODABLE_SYNTAXES:
                ae.add_supported_context(sop, syntax)
        self.ae = ae
        self.server = ae.start_server((host, port), block=False, evt_handlers=[
            (evt.EVT_REQUESTED, self._requested), (evt.EVT_C_STORE, self._stored),
            (evt.EVT_PDU_RECV, self._received_pdu), (evt.EVT_ACCEPTED, self._accepted),
            (evt.EVT_CONN_CLOSE, self._closed)])
        # socketserver asks verify_request for each connection it accepts: one host's silent connections are
        # capped, so that a flood of them from one peer cannot hold every slot against the others
        self.server.verify_request = self._admit_connection

    def _admit_connection(self, request, client_address) -> bool:
        host = _host(client_address[0])
        silent = sum(1 for a in self.server.active_associations
                     if a.requestor.primitive is None and not a.is_established and _host(a.requestor.address) == host)
        if silent < MAX_SILENT_PER_HOST:
            return True
        self._connections.capped(host, silent)  # a flood: one line a host an interval, with a count
        return False

    def _closed(self, event) -> None:
        """A connection closed: one that never asked for an association is counted for the summary line; an
        association whose instances could not be written says how many more failed than its first line said."""
        assoc = event.assoc
        if assoc.requestor.primitive is None:
            self._connections.silent(_host(assoc.requestor.address))
            return
        with self._lock:
            failures = self._write_failures.pop(assoc, {})
        for cause, count in failures.items():
            if count > 1:
                logger.warning("%d more instance(s) from %s could not be kept: %s", count - 1, _peer(assoc), cause)

    def _accepted(self, event) -> None:
        """An association that was accepted with none of its presentation contexts (a class or a syntax this
        receiver does not take) can carry nothing: the sender fails on its side, and this line says why here."""
        assoc = event.assoc
        with self._lock:
            self.accepted += 1
        if assoc.accepted_contexts:
            return
        proposed: dict[str, list[str]] = {}
        for context in assoc.rejected_contexts:
            syntaxes = proposed.setdefault(_uid_name(context.abstract_syntax), [])
            syntaxes += [n for n in map(_uid_name, context.transfer_syntax or ()) if n not in syntaxes]
        said = "; ".join(f"{name} ({', '.join(syntaxes)})" if syntaxes else name for name, syntaxes in proposed.items())
        logger.warning("%s proposed only what this node does not take: %s (it takes C-ECHO and the mammography, DX, "
                       "SC, SR (CAD and key objects too), presentation state, SEG and PDF storage classes, uncompressed, "
                       "RLE, JPEG 2000, JPEG-LS, JPEG lossless or HTJ2K lossless)", _peer(assoc),
                       said or "no presentation context")

    def _requested(self, event) -> None:
        """Reject, at association, a request not addressed to us or from a sender not on the allow-list. Fails
        closed: pynetdicom logs an exception raised by this handler and goes on to accept the peer."""
        try:
            self._admit(event.assoc)
        except Exception:  # noqa: BLE001 - whatever went wrong, the peer is not let in
            logger.exception("an association request could not be checked and was rejected")
            event.assoc.acse.send_reject(*CALLING_NOT_RECOGNISED)
            event.assoc.kill()

    def _admit(self, assoc) -> None:
        request = assoc.requestor.primitive
        calling, called = str(request.calling_ae_title).strip(), str(request.called_ae_title).strip()
        host = _host(assoc.requestor.address)
        pinned = sorted({s.host for s in self.allowed if s.ae_title == calling and s.host})
        if called != self.ae_title:
            reason, why = CALLED_NOT_RECOGNISED, f"it was addressed to AE title {called!r}, not ours ({self.ae_title!r})"
        elif not any(s.admits(calling, host) for s in self.allowed):
            # an allowed AE title from another host than its own is said as such: "not on the allow-list" sent
            # the operator looking for a typo in the AE title
            reason, why = CALLING_NOT_RECOGNISED, (
                "no sender is allowed (add one to the allow-list)" if not self.allowed
                else f"AE title {calling!r} is allowed only from {' or '.join(pinned)}, not from {host}" if pinned
                else "not on the allow-list")
        elif sum(a.is_established for a in assoc.ae.active_associations if a is not assoc) >= MAX_ASSOCIATIONS:
            reason, why = LOCAL_LIMIT_EXCEEDED, (f"{MAX_ASSOCIATIONS} associations are open, this node's limit "
                                                 "(an allowed sender; told to try again later)")
        else:
            return
        self._connections.rejected(calling, host, why, reason)  # a flood: one line a host an interval, counted
        with self._lock:
            self.rejected += 1
            peer = f"{calling!r} at {host}"
            if peer not in self.rejected_peers and len(self.rejected_peers) < MAX_PEERS_SAID:
                self.rejected_peers.append(peer)
        assoc.acse.send_reject(*reason)
        assoc.kill()

    def _received_pdu(self, event) -> None:
        """Abort an association whose data set passes the instance limit while it arrives: pynetdicom holds a
        data set in memory until its last fragment, so a check in ``_stored`` comes only after the whole of it
        (a sender of a few gigabytes would have filled the memory first)."""
        if self.on_instance is not None or type(event.pdu).__name__ != "P_DATA_TF":
            return
        assoc = event.assoc
        received = self._incoming.get(assoc, 0)
        if received < 0:  # aborted already: what the sender still had on the way is not counted again
            return
        for item in event.pdu.presentation_data_value_items:
            value = item.presentation_data_value or b"\x00"
            if value[0] & 1:  # a command fragment
                continue
            received += len(value) - 1
            if value[0] & 2:  # the data set's last fragment: _stored checks what it holds
                received = 0
        self._incoming[assoc] = received
        if received > self.limits.max_instance_bytes:
            self._incoming[assoc] = -1
            with self._lock:
                self.refused += 1
            logger.warning("aborted the association of %s: the instance it was sending passed %s, this node's "
                           "limit for one instance, before all of it had come", _peer(assoc),
                           _mb(self.limits.max_instance_bytes))
            assoc.abort(block=False)

    def _stored(self, event):
        try:
            encoded = event.request.DataSet
            size = len(encoded.getbuffer()) if encoded is not None else 0
            if size > self.limits.max_instance_bytes and self.on_instance is None:
                raise _Refusal(OUT_OF_RESOURCES, f"{_mb(size)}: over the limit of "
                                                 f"{_mb(self.limits.max_instance_bytes)} for one instance")
            try:
                dataset = event.dataset
                dataset.file_meta = event.file_meta
            except Exception as error:  # noqa: BLE001 - whatever pydicom raises on a damaged data set
                raise _Refusal(CANNOT_UNDERSTAND, f"the data set cannot be decoded ({type(error).__name__})") from error
            if self.on_instance is not None:
                self.on_instance(dataset)
            else:
                self._keep(dataset, size, _peer(event.assoc))
        except _Refusal as refusal:
            with self._lock:
                self.refused += 1
            logger.warning("refused an instance from %s (status 0x%04X): %s", _peer(event.assoc), refusal.status,
                           refusal)
            return _status(refusal.status, str(refusal))
        except Exception as error:  # noqa: BLE001 - the sender is told; nothing half-written stays (atomic writes)
            with self._lock:
                self.refused += 1
            # a full or read-only disk fails every instance alike: its cause once an association, then counted
            cause = _system_cause(error)
            self._write_failed(event.assoc, cause)
            logger.debug("an instance could not be kept", exc_info=True)
            return _status(OUT_OF_RESOURCES, f"the instance could not be written: {cause}")
        return 0x0000

    def _write_failed(self, assoc, cause: str) -> None:
        with self._lock:
            failures = self._write_failures.setdefault(assoc, {})
            failures[cause] = failures.get(cause, 0) + 1
            first = failures[cause] == 1
        if first:
            where = f" in {self.inbox}" if self.inbox is not None else ""
            logger.warning("could not keep an instance from %s%s: %s (answered 0x%04X; the next ones of this "
                           "association that fail alike are counted when it closes)", _peer(assoc), where, cause,
                           OUT_OF_RESOURCES)

    def _keep(self, dataset: Dataset, size: int, sender: str) -> None:
        modality = str(dataset.get("Modality", "")).strip()
        if modality != "MG":
            raise _Refusal(NOT_ACCEPTED, f"not a mammography image (Modality {modality or 'missing'}): MG only")
        missing = [k for k in ("StudyInstanceUID", "SOPInstanceUID", "Rows", "Columns", "BitsAllocated", "PixelData")
                   if k not in dataset]
        if missing:
            raise _Refusal(CANNOT_UNDERSTAND, f"the MG instance has no {', '.join(missing)}")
        empty = [k for k in ("StudyInstanceUID", "SOPInstanceUID") if not str(dataset.get(k) or "").strip()]
        if empty:  # every study without a UID went into one folder: several patients' images as one study
            raise _Refusal(CANNOT_UNDERSTAND, f"the MG instance's {' and '.join(empty)} is empty")
        short = empty_image(dataset) or impossible_pixels(dataset) or short_pixel_data(dataset)
        if short:
            raise _Refusal(CANNOT_UNDERSTAND, short)
        if self.inbox is None:
            raise _Refusal(OUT_OF_RESOURCES, "this receiver has no inbox")
        folder = study_folder(self.inbox, str(dataset.StudyInstanceUID))
        with self._lock:  # reserve the room first: parallel associations cannot pass the quota together
            if self._used + size > self.limits.quota_bytes:
                raise _Refusal(OUT_OF_RESOURCES, f"the inbox is full (quota {_mb(self.limits.quota_bytes)})")
            self._used += size
        with self._writing:  # never into a folder that remove_study is taking away
            try:
                earlier = [folder / instance_name(dataset), folder / legacy_instance_name(dataset)]
                _refuse_another_patient_s(earlier, dataset)
                _refuse_a_second_patient(folder, earlier, dataset)
                replaced = sum(p.stat().st_size for p in earlier if p.is_file())
                written = keep_instance(folder, dataset).stat().st_size
                earlier[1].unlink(missing_ok=True)
            except BaseException:
                with self._lock:
                    self._used -= size
                raise
            with self._lock:
                self._used += written - size - replaced
                self.kept += 1
            if self.on_kept is not None:
                self.on_kept(folder, sender)

    def remove_study(self, folder: Path, still_finished: Callable[[], bool] = lambda: True) -> int | None:
        """Remove a study's received instances (its folder) and give their room back to the quota; returns
        the bytes freed, or None when ``still_finished()``, asked while no instance is being written, says an
        instance came meanwhile (the study is then kept)."""
        with self._writing:
            if not still_finished() or not Path(folder).is_dir():
                return None
            going = Path(folder).with_name(f".removing-{Path(folder).name}-{threading.get_ident()}")
            Path(folder).rename(going)  # an instance that comes next makes the folder anew
            freed = sum(p.stat().st_size for p in going.glob("*.dcm") if p.is_file())
            with self._lock:
                self._used = max(self._used - freed, 0)
        shutil.rmtree(going, ignore_errors=True)
        return freed

    def stop(self) -> None:
        """Stop listening and abort the associations still open (their instances in flight are not kept). One
        we rejected is left to close by itself (the peer closes on our A-ASSOCIATE-RJ, else the ARTIM timer
        ends it): pynetdicom's ``AE.shutdown`` aborted it too, an invalid event in the state it waits in, raised
        in its thread ("Invalid event 'Evt15' for the current state 'Sta13'", seen in CI)."""
        for assoc in self.ae.active_associations:
            # one still waiting for its request is left too: an abort is as invalid there (Evt15 in Sta2); the
            # hello timeout closes it
            if not assoc.is_rejected and assoc.requestor.primitive is not None:
                assoc.abort()
        self.server.shutdown()
        self._connections.close()


def workstation_receiver(settings, inbox: Path) -> StorageSCP:
    """The workstation's inbox as Preferences set it (``AppSettings.scp_*``): the same receiver as the AI
    node's, with the same allow-list (empty: nobody is let in) and limits. Raises :class:`MammoError` for an
    allow-list entry that is no AE title, ``OSError`` when the address or port cannot be listened on."""
    limits = InboxLimits(max_instance_bytes=int(settings.scp_max_instance_mb * (1 << 20)),
                         quota_bytes=int(settings.scp_quota_gb * (1 << 30)))
    return StorageSCP(settings.ae_title, settings.scp_port, inbox, host=settings.scp_bind or BIND_DEFAULT,
                      allowed=parse_senders(settings.scp_allowed), limits=limits)


def _refuse_another_patient_s(held: list[Path], dataset: Dataset) -> None:
    """An instance sent again replaces the one held (a corrected header, a resend), but never with another
    patient's: another patient's image under a SOP Instance UID held here overwrote the first patient's image,
    whose study then failed as "images of 2 different patients". The held one stays and the sender is told."""
    new = str(dataset.get("PatientID") or "").strip()
    for path in held:
        if not path.is_file():
            continue
        try:
            old = str(dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"]).get("PatientID")
                      or "").strip()
        except Exception:  # noqa: BLE001 - a held file that cannot be read is replaced, as before
            continue
        if old != new:
            raise _Refusal(DUPLICATE_INSTANCE, "SOP Instance UID held here for another patient: not replaced")


def _patient_key(dataset: Dataset) -> tuple[str, str]:
    """Who an image is of, as the intake tells patients apart: the Patient ID (else the name), with its issuer."""
    patient = str(dataset.get("PatientID") or "").strip() or str(dataset.get("PatientName") or "").strip()
    return patient, str(dataset.get("IssuerOfPatientID") or "").strip()


def _refuse_a_second_patient(folder: Path, same_instance: list[Path], dataset: Dataset) -> None:
    """A study's images are one patient's: an image of another patient sent under a study held here was kept
    (answered success) and the study then failed, stuck, as "images of 2 different patients" until an operator
    removed it; the sender never knew. It is refused now, the study kept as it was (one held image's header is
    read: the study's images were all checked alike)."""
    held = next((p for p in sorted(folder.glob("*.dcm")) if p not in same_instance), None) if folder.is_dir() else None
    if held is None:
        return
    try:
        header = dcmread(held, stop_before_pixels=True,
                         specific_tags=["PatientID", "PatientName", "IssuerOfPatientID"])
    except Exception:  # noqa: BLE001 - a held file that cannot be read: the intake names it when the study is read
        return
    held_patient, new_patient = _patient_key(header), _patient_key(dataset)
    if held_patient[0] and new_patient[0] and held_patient != new_patient:  # an image naming no one is no conflict
        logger.warning("an image of another patient under the study held in %s: refused, the study kept", folder)
        raise _Refusal(ANOTHER_PATIENT_S_STUDY, "study held here for another patient: image not kept")


def _mb(size: int) -> str:
    return f"{size / (1 << 20):.1f} MB" if size >= 100 << 10 else f"{size / (1 << 10):.0f} kB"


def _status(code: int, comment: str) -> Dataset:
    status = Dataset()
    status.Status = code
    if len(comment) > 64:  # LO: 64 characters at most; cut at a word (the log has the whole reason)
        comment = comment[:61].rsplit(" ", 1)[0] + "..."
    status.ErrorComment = comment
    return status


@dataclass(frozen=True)
class InboxStudy:
    folder: Path
    study_uid: str
    patient_name: str
    patient_id: str
    date: str
    accession: str
    images: int


def received_studies(inbox: Path) -> list[InboxStudy]:
    """The studies in the inbox, newest study date first (one header read per study)."""
    studies = []
    for folder in sorted(p for p in Path(inbox).iterdir() if p.is_dir()) if Path(inbox).is_dir() else []:
        files = sorted(folder.glob("*.dcm"))
        if not files:
            continue
        try:
            header = dcmread(files[0], stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - a damaged file: the intake says which when the study is opened
            continue
        studies.append(InboxStudy(folder, str(header.get("StudyInstanceUID", "")), str(header.get("PatientName", "")),
                                  str(header.get("PatientID", "")), str(header.get("StudyDate", "")),
                                  str(header.get("AccessionNumber", "")), len(files)))
    return sorted(studies, key=lambda s: s.date, reverse=True)
