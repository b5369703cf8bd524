"""DIMSE with pynetdicom: C-ECHO, C-FIND (Study Root), C-GET (no inbound port needed) and C-STORE.

Every association and message has a timeout, and so has every read of the socket (pynetdicom reads a PDU
with no timeout: a peer that stops in the middle of one would hold the retrieve for ever). An association
is released only after a normal end; after an error, a cancel, Ctrl+C or a peer that stopped answering it is
aborted (a release waits on a peer that may be dead or still sending). One presentation context per transfer
syntax: with several syntaxes in one context the node picks one (Orthanc: uncompressed) and a file in
another cannot be sent. C-GET asks for the SCP role of each storage class, as the standard requires for the
sub-operations. pynetdicom's own log is kept at warnings: at info and debug it would print identifiers.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

from app.pacs.contexts import DECODABLE_SYNTAXES, RETRIEVED_CLASSES, VERIFICATION
from app.pacs.nodes import NothingMoved, PacsError, RemoteNode
from inference.errors import Cancelled
from app.pacs.query import INSTANCE_FIELDS, VIEWS_FOR_AT_MOST, StudyQuery, StudyRecord

if TYPE_CHECKING:
    from app.pacs.scp import StorageSCP



class _NoTraceback(logging.Filter):
    """pynetdicom logs a connection lost in the middle of a PDU with its traceback; our own message says it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = record.exc_text = None
        return True


logging.getLogger("pynetdicom.dul").addFilter(_NoTraceback())

FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve - FIND
GET = "1.2.840.10008.5.1.4.1.2.2.3"  # Study Root Query/Retrieve - GET
MOVE = "1.2.840.10008.5.1.4.1.2.2.2"  # Study Root Query/Retrieve - MOVE


def _ae(node: RemoteNode):
    from pynetdicom import AE  # noqa: PLC0415

    ae = AE(ae_title=node.calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = node.timeout
    return ae


def _associate(node: RemoteNode, ae, refused: str = "the node refused what we asked for", **kwargs):
    """An association with ``node``; ``refused``: what it means when the node accepts none of our
    presentation contexts (pynetdicom then aborts)."""
    import socket  # noqa: PLC0415
    import time  # noqa: PLC0415

    try:  # first the plain TCP connection, to tell "nothing there" from "no answer" from "refused"
        socket.create_connection((node.host, node.port), timeout=node.timeout).close()
    except TimeoutError as error:
        raise PacsError(node, f"no answer within {node.timeout:g} s (is the host right?)") from error
    except OSError as error:
        raise PacsError(node, f"cannot reach it ({error.strerror or error}); is the PACS running, and the host "
                              "and port right?") from error
    from pynetdicom import evt  # noqa: PLC0415

    handlers = [*kwargs.pop("evt_handlers", []), (evt.EVT_CONN_OPEN, _bound_socket, [node.timeout])]
    asked = time.monotonic()
    assoc = ae.associate(node.host, node.port, ae_title=node.called_aet, evt_handlers=handlers, **kwargs)
    if assoc.is_established:
        return assoc
    # A node that closes the connection at once after our request has refused it, whether or not pynetdicom
    # read its A-ASSOCIATE-RJ before seeing the connection close (a race seen on a loaded machine)
    closed_at_once = assoc.acceptor.primitive is None and time.monotonic() - asked < min(node.timeout / 2, 5.0)
    if assoc.is_rejected:
        raise PacsError(node, rejection_reason(node, assoc.acceptor.primitive))
    if closed_at_once and not _answers_http(node):
        raise PacsError(node, f"the association was rejected (is {node.called_aet!r} its AE title, and does it "
                              f"know ours, {node.calling_aet!r}?)")
    if assoc.acceptor.primitive is None:  # the node said nothing at all (or something that is not DICOM)
        if _answers_http(node):
            raise PacsError(node, "this port answers HTTP, not DICOM (a web or DICOMweb port: give the PACS's "
                                  "DICOM port, or write the address as dicomweb+http://…)")
        raise PacsError(node, f"no answer to our association request within {node.timeout:g} s")
    raise PacsError(node, refused)


def rejection_reason(node: RemoteNode, answer) -> str:
    """What the node's A-ASSOCIATE-RJ says (PS3.8 9.3.4: result, source, diagnostic), in words."""
    result, source, diagnostic = (getattr(answer, name, None) for name in ("result", "result_source", "diagnostic"))
    if result == 0x02:  # transient: the same request may succeed later
        why = {(0x03, 0x02): "too many associations are open on it", (0x03, 0x01): "it is congested"}.get(
            (source, diagnostic), "a transient refusal")
        return f"the node is busy ({why}): try again later"
    if source == 0x01 and diagnostic == 0x03:
        return f"the node does not know our AE title {node.calling_aet!r} (add it to the node's known AEs)"
    if source == 0x01 and diagnostic == 0x07:
        return f"{node.called_aet!r} is not the node's AE title (check the address's AE title)"
    return (f"the association was rejected (is {node.called_aet!r} its AE title, and does it know ours, "
            f"{node.calling_aet!r}?)")


def _bound_socket(event, timeout: float) -> None:
    """Every blocking read and write of the association's socket ends after ``timeout`` s (pynetdicom clears
    the timeout once connected; a read in the middle of a PDU then waits for ever on a silent peer, and so
    does an abort, which waits for that read)."""
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        sock.settimeout(timeout)


def _answers_http(node: RemoteNode) -> bool:
    """Whether the port answers an HTTP request (asked after it did not answer our association request)."""
    import socket  # noqa: PLC0415

    try:
        with socket.create_connection((node.host, node.port), timeout=min(node.timeout, 2.0)) as sock:
            sock.sendall(f"HEAD / HTTP/1.0\r\nHost: {node.host}\r\n\r\n".encode())
            answer = b""
            while len(answer) < 5:
                chunk = sock.recv(5 - len(answer))
                if not chunk:
                    break
                answer += chunk
            return answer == b"HTTP/"
    except OSError:
        return False


def _abort(assoc) -> None:
    """A-ABORT (bounded: the socket has a timeout), and wake whoever waits for the next DIMSE message (pynetdicom
    would let it wait out its DIMSE timeout)."""
    if not assoc.is_released and not assoc.is_aborted:
        # after our A-ABORT pynetdicom waits for the peer to close the connection (up to the timeout; a peer
        # still sending, or a slow link full of its data, takes that long): half a second, then we hang up
        hang_up = threading.Timer(0.5, _hang_up, [assoc])
        hang_up.start()
        try:
            assoc.abort()
        finally:
            hang_up.cancel()
    assoc.dimse.msg_queue.put((None, None))


def _hang_up(assoc) -> None:
    import socket  # noqa: PLC0415

    sock = getattr(assoc.dul.socket, "socket", None)
    try:
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Ended:
    """Ends an association the right way: released after a normal end; aborted after an error, a cancel or
    Ctrl+C. A thread asks ``cancel`` every 0.1 s, so that a cancel ends a retrieve at once, not at the next
    message of a slow node."""

    def __init__(self, assoc, cancel: Callable[[], bool] = lambda: False) -> None:
        self.assoc, self.cancel, self.cancelled = assoc, cancel, False
        self._done = threading.Event()
        self._watch = threading.Thread(target=self._watch_cancel, name="pacs-cancel", daemon=True)
        self._watch.start()

    def _watch_cancel(self) -> None:
        while not self._done.wait(0.1):
            if self.cancel():
                self.cancelled = True
                _abort(self.assoc)
                return

    def __enter__(self):
        return self.assoc

    def __exit__(self, kind, error, traceback) -> bool:
        self._done.set()
        if kind is None and not self.cancelled:
            if self.assoc.is_established:
                self.assoc.release()
        else:
            _abort(self.assoc)
        self._watch.join()
        if self.cancelled and (kind is None or issubclass(kind, PacsError)):
            raise Cancelled() from error
        return False


def _failed(node: RemoteNode, what: str, status, since: float | None = None, first: bool = False) -> PacsError:
    """What a failed or missing answer means. ``since``: when the last answer (or the request) was;
    ``first``: nothing at all had come for this request."""
    code = getattr(status, "Status", None)
    if code is None:
        silent = None if since is None else time.monotonic() - since
        if silent is not None and silent < 0.8 * node.timeout and first:
            # the peer hung up at once on a request it had accepted the association for: Orthanc does this
            # to an AE title not in its DicomModalities (C-FIND, C-GET, C-MOVE)
            return PacsError(node, f"the PACS refused {what} for our AE title {node.calling_aet!r}: register it "
                                   "on the PACS (Orthanc: DicomModalities)")
        if silent is not None and silent < 0.8 * node.timeout:
            return PacsError(node, f"{what}: the node closed the connection in the middle of the answer")
        return PacsError(node, f"{what}: the node stopped answering (nothing for {node.timeout:g} s); the "
                               "association was aborted")
    return _status_error(node, f"{what} failed with status 0x{int(code):04X}", int(code))


def _status_error(node: RemoteNode, message: str, code: int) -> PacsError:
    """A :class:`PacsError` for a failure the node answered (``status``: its code), not a lost connection."""
    error = PacsError(node, message)
    error.status = code
    return error


def echo(node: RemoteNode) -> None:
    """C-ECHO; raises :class:`PacsError` with the reason when the node cannot be used."""
    ae = _ae(node)
    ae.add_requested_context(VERIFICATION)
    with _Ended(_associate(node, ae)) as assoc:
        asked = time.monotonic()
        status = assoc.send_c_echo()
        if not status or status.Status != 0x0000:
            raise _failed(node, "C-ECHO", status, asked, first=True)


def find_studies(node: RemoteNode, query: StudyQuery) -> list[StudyRecord]:
    """C-FIND at study level, Study Root; MG studies only unless ``query.modality`` is empty."""
    ae = _ae(node)
    ae.add_requested_context(FIND)
    with _Ended(_associate(node, ae)) as assoc:
        kept = query.keep(_find(assoc, node, query.dataset()))
        kept = [_with_views(assoc, r) if i < VIEWS_FOR_AT_MOST else r for i, r in enumerate(kept)]
    return kept


def _find(assoc, node: RemoteNode, identifier: Dataset) -> list[StudyRecord]:
    """The answers of a study-level C-FIND on the open association."""
    found: list[StudyRecord] = []
    last, first = time.monotonic(), True
    for status, answer in assoc.send_c_find(identifier, FIND):
        if not status:
            raise _failed(node, "C-FIND", status, last, first)
        last, first = time.monotonic(), False
        if status.Status in (0xFF00, 0xFF01) and answer is not None:
            found.append(StudyRecord.from_dataset(answer))
        elif status.Status not in (0x0000, 0xFF00, 0xFF01):
            raise _failed(node, "C-FIND", status)
    return found


def study_listed(node: RemoteNode, study_uid: str) -> bool:
    """Whether the node, asked by us (our calling AE title), lists the study: a study-level C-FIND. A node
    that refuses us raises :class:`PacsError` with its reason."""
    ae = _ae(node)
    ae.add_requested_context(FIND)
    with _Ended(_associate(node, ae)) as assoc:
        return any(r.study_uid == study_uid for r in _find(assoc, node, _level("STUDY", study_uid)))


def study_images(node: RemoteNode, study_uid: str) -> frozenset[str] | None:
    """The SOP Instance UIDs of the study's MG images as the node lists them to us (a study-level C-FIND,
    then one at image level), or None when it does not list the study; an instance whose modality the node
    does not give counts as MG. The empty set when the node will not answer at image level. A node that
    refuses us raises :class:`PacsError` with its reason."""
    ae = _ae(node)
    ae.add_requested_context(FIND)
    with _Ended(_associate(node, ae)) as assoc:
        if not any(r.study_uid == study_uid for r in _find(assoc, node, _level("STUDY", study_uid))):
            return None
        query = _level("IMAGE", study_uid)
        query.Modality = ""
        found = set()
        for status, answer in assoc.send_c_find(query, FIND):
            if not status or status.Status not in (0x0000, 0xFF00, 0xFF01):
                return frozenset()
            if answer is not None and status.Status in (0xFF00, 0xFF01):
                if str(answer.get("Modality", "") or "MG") == "MG" and answer.get("SOPInstanceUID"):
                    found.add(str(answer.SOPInstanceUID))
        return frozenset(found)


def _with_views(assoc, record: StudyRecord) -> StudyRecord:
    """The record with its views, from a C-FIND at image level (left as it is if the node will not say)."""
    query = Dataset()
    query.QueryRetrieveLevel, query.StudyInstanceUID = "IMAGE", record.study_uid
    query.SeriesInstanceUID = ""
    for keyword in INSTANCE_FIELDS:
        setattr(query, keyword, "")
    instances = []
    for status, identifier in assoc.send_c_find(query, FIND):
        if not status or status.Status not in (0x0000, 0xFF00, 0xFF01):
            return record
        if identifier is not None and status.Status in (0xFF00, 0xFF01):
            instances.append(identifier)
    return record.with_views(instances)


def get_study(node: RemoteNode, study_uid: str, on_instance: Callable[[Dataset], None],
              cancel: Callable[[], bool] = lambda: False) -> tuple[int, int]:
    """C-GET of a whole study; ``on_instance`` gets each dataset as it arrives (with its file meta).
    Returns (completed, failed) sub-operations."""
    from pynetdicom import build_role, evt  # noqa: PLC0415

    ae = _ae(node)
    ae.add_requested_context(GET)
    ae.add_requested_context(FIND)  # to list the instances when the study-level C-GET cannot be used
    roles = []
    for sop in RETRIEVED_CLASSES:
        for syntax in DECODABLE_SYNTAXES:
            ae.add_requested_context(sop, syntax)
        roles.append(build_role(sop, scp_role=True))
    problems: list[str] = []
    received = 0

    def stored(event) -> int:
        nonlocal received
        received += 1
        try:
            dataset = event.dataset
            dataset.file_meta = event.file_meta
            on_instance(dataset)
        except Exception as error:  # noqa: BLE001 - the PACS is told, the study fails below with the reason
            problems.append(f"{type(error).__name__}: {error}")
            return 0xA700  # out of resources: could not keep the instance
        return 0x0000

    try:
        completed, failed = _get_study(node, ae, roles, stored, study_uid, cancel)
    except PacsError as error:
        # Orthanc answers 0xC000 when the study goes while it is being sent: only a C-FIND tells that apart
        if received and getattr(error, "status", None) is not None and not _still_listed(node, study_uid):
            raise PacsError(node, f"C-GET of study {study_uid}: the study was removed from the PACS during the "
                                  "retrieve") from None
        raise
    if problems:
        raise PacsError(node, f"retrieved instances could not be kept: {problems[0]}")
    return completed, failed


def _still_listed(node: RemoteNode, study_uid: str) -> bool:
    """After a failed retrieve: whether the node still lists the study (True when it cannot say)."""
    try:
        return study_listed(node, study_uid)
    except PacsError:
        return True


def _get_study(node: RemoteNode, ae, roles, stored, study_uid: str, cancel: Callable[[], bool]) -> tuple[int, int]:
    from pynetdicom import evt  # noqa: PLC0415

    assoc = _associate(node, ae, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, stored)])
    with _Ended(assoc, cancel):
        try:
            completed, failed = _get(assoc, node, _level("STUDY", study_uid), cancel)
        except _SubOperationsFailed:
            # some nodes (Orthanc) end the whole C-GET at the first instance they cannot send us (one in a
            # transfer syntax we do not decode and they cannot convert): then instance by instance
            completed = failed = 0
            for series_uid, sop_uid in _instances(assoc, study_uid):
                try:
                    done, bad = _get(assoc, node, _level("IMAGE", study_uid, series_uid, sop_uid), cancel)
                except _SubOperationsFailed:
                    done, bad = 0, 1
                completed, failed = completed + done, failed + bad
            if completed == 0:
                raise _status_error(node, f"C-GET of study {study_uid}: the node could send none of its {failed} "
                                          "instance(s) in a transfer syntax this workstation decodes", 0) from None
    return completed, failed


class _SubOperationsFailed(Exception):
    """A C-GET that failed after sub-operations failed (not a refusal of the whole request)."""


def _level(level: str, study_uid: str, series_uid: str = "", sop_uid: str = "") -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel, query.StudyInstanceUID = level, study_uid
    if level == "IMAGE":
        query.SeriesInstanceUID, query.SOPInstanceUID = series_uid, sop_uid
    return query


def _is_failure(code: int) -> bool:
    """A retrieve's final failure (0xA7xx–0xAFxx refused or out of resources, 0xCxxx unable to process);
    0xBxxx are warnings, 0xFF00 pending."""
    return 0xA700 <= code <= 0xAFFF or 0xC000 <= code <= 0xCFFF


def _follow(responses, assoc, node: RemoteNode, what: str, cancel: Callable[[], bool],
            on_failure: Callable[[int, int, int], None]) -> tuple[int, int]:
    """The (completed, failed) sub-operations of a C-GET or C-MOVE's answers; Cancel aborts it;
    ``on_failure(status, completed, failed)`` raises what a failure status means for this request."""
    completed = failed = 0
    last, first = time.monotonic(), True
    for status, _identifier in responses:
        if cancel():
            _abort(assoc)
            raise Cancelled()
        if not status:
            raise _failed(node, what, status, last, first and completed + failed == 0)
        last, first = time.monotonic(), False
        completed = int(getattr(status, "NumberOfCompletedSuboperations", completed) or completed)
        failed = int(getattr(status, "NumberOfFailedSuboperations", failed) or failed)
        if _is_failure(int(status.Status)):
            on_failure(int(status.Status), completed, failed)
            raise _failed(node, what, status)
    return completed, failed


def _get(assoc, node: RemoteNode, query: Dataset, cancel: Callable[[], bool]) -> tuple[int, int]:
    def failure(code: int, completed: int, failed: int) -> None:
        if failed:
            raise _SubOperationsFailed()
        if completed == 0:
            raise _status_error(node, f"C-GET of study {query.StudyInstanceUID} failed (status 0x{code:04X}): no "
                                      f"such study, or the node will not send it to {node.calling_aet!r}", code)

    return _follow(assoc.send_c_get(query, GET), assoc, node, "C-GET", cancel, failure)


def _instances(assoc, study_uid: str) -> list[tuple[str, str]]:
    """(series UID, SOP Instance UID) of every instance of the study, by an image-level C-FIND on the open
    association (it was negotiated with the FIND context too)."""
    query = _level("IMAGE", study_uid)
    found = []
    for status, identifier in assoc.send_c_find(query, FIND):
        if status and status.Status in (0xFF00, 0xFF01) and identifier is not None:
            found.append((str(identifier.SeriesInstanceUID), str(identifier.SOPInstanceUID)))
    return found


def store_files(node: RemoteNode, paths: Sequence[Path]) -> None:
    """C-STORE of ``paths``, each in a context of its own class and transfer syntax; raises
    :class:`PacsError` naming the first file the node rejects."""
    datasets = [(Path(p), dcmread(p)) for p in paths]
    ae = _ae(node)
    for pair in dict.fromkeys((str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID)) for _, d in datasets):
        ae.add_requested_context(*pair)
    classes = ", ".join(sorted({UID(d.SOPClassUID).name for _, d in datasets}))
    assoc = _associate(node, ae, refused=f"refused: the node accepts none of what we send ({classes})")
    with _Ended(assoc):
        for index, (path, dataset) in enumerate(datasets):
            asked = time.monotonic()
            try:
                status = assoc.send_c_store(dataset)
            except ValueError as error:  # no accepted context for this class and syntax
                raise PacsError(node, f"{path.name}: refused, the node accepts no {UID(dataset.SOPClassUID).name} "
                                      f"in {UID(dataset.file_meta.TransferSyntaxUID).name}") from error
            if not status or status.Status not in (0x0000, 0xB000, 0xB007, 0xB006):
                raise _failed(node, f"C-STORE of {path.name}", status, asked, first=index == 0)


def node_addresses(node: RemoteNode) -> list[str]:
    """The IP addresses that may send a C-MOVE's images: those ``node.host`` names (a name may resolve to
    several), or those of ``node.move_from`` when the address names the senders; raises :class:`PacsError`
    when a host names none."""
    addresses = []
    for host in node.move_from or (node.host,):
        try:
            found = socket.getaddrinfo(host, node.port, proto=socket.IPPROTO_TCP)
        except OSError as error:
            raise PacsError(node, f"the host {host!r} cannot be resolved ({error})") from error
        addresses += [str(info[4][0]) for info in found]
    return list(dict.fromkeys(addresses))


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:  # a name
        return False


def _is_this_machine(address: str) -> bool:
    """Whether ``address`` is one of this machine's own: one a socket can be bound to (nothing is sent)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


def _own_host_name_addresses() -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None, proto=socket.IPPROTO_TCP)}
    except OSError:
        return set()


def move_senders(node: RemoteNode) -> list[str]:
    """The addresses the C-MOVE receiver lets in: the node's (``node_addresses``); and, when the receiver
    listens on loopback and the node is this machine named by a network address or by this machine's own name,
    127.0.0.1 and ::1 too: a PACS on this machine reaches a loopback receiver from those, whatever it was named by."""
    addresses = node_addresses(node)
    if _is_loopback(node.move_host) and not node.move_from:
        own_name = _own_host_name_addresses()
        if any(a in own_name or (not _is_loopback(a) and _is_this_machine(a)) for a in addresses):
            addresses += [a for a in ("127.0.0.1", "::1") if a not in addresses]
    return addresses


def move_receiver(node: RemoteNode, on_instance: Callable[[Dataset], None]) -> StorageSCP:
    """The Storage SCP a C-MOVE sends to: on loopback unless the address names ours (?move=HOST:PORT),
    addressed to our AE title, and only from the node's own address (whatever AE title it sends from;
    ``move_senders``), so that no other peer can slip an image into the study. The caller stops it."""
    from app.pacs.scp import Sender, StorageSCP  # noqa: PLC0415

    return StorageSCP(node.calling_aet, node.move_port, host=node.move_host,
                      allowed=[Sender(None, address) for address in move_senders(node)],
                      on_instance=on_instance, timeout=node.timeout)


def move_study(node: RemoteNode, study_uid: str, on_instance: Callable[[Dataset], None],
               cancel: Callable[[], bool] = lambda: False) -> tuple[int, int]:
    """C-MOVE of a whole study to our own Storage SCP (``node.move_port``, AE title ``node.calling_aet``),
    which must be registered on the node (Orthanc: ``DicomModalities``). Returns (completed, failed)."""
    received = 0
    counting = threading.Lock()  # the receiver may take parallel associations

    def receive(dataset: Dataset) -> None:
        nonlocal received
        on_instance(dataset)
        with counting:
            received += 1

    receiver = move_receiver(node, receive)

    def refused_senders() -> None:
        """The images came from an address the node's host does not name: say who, and how to let them in."""
        if receiver.rejected_peers:
            senders = ", ".join(dict.fromkeys(receiver.rejected_peers))
            allowed = ", ".join(sender.host for sender in receiver.allowed)
            raise PacsError(node, f"C-MOVE: our receiver lets in only {allowed} and rejected the sender {senders}; "
                                  "if that machine is part of this PACS, name it in the address (…?move=PORT&from=HOST)")

    try:
        ae = _ae(node)
        ae.add_requested_context(MOVE)
        assoc = _associate(node, ae)
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = study_uid
        def failure(code: int, completed: int, failed: int) -> None:  # noqa: ARG001
            if code == 0xA801:
                raise PacsError(node, f"C-MOVE: the node does not know our AE title {node.calling_aet!r} as a "
                                      "destination (register it, with our host and port, on the PACS)")
            refused_senders()
            if completed == 0 and receiver.accepted:  # it reached us: not a question of its entry for us
                why = (f"{receiver.refused} refused here; the log says why" if receiver.refused else
                       "it sent none of them: the node's log says why (an image it cannot send in a transfer syntax "
                       "it proposed?)")
                raise PacsError(node, f"C-MOVE of study {study_uid} failed (status 0x{code:04X}): the node reached "
                                      f"our receiver but none of its images was kept ({why})")
            if completed == 0:
                raise NothingMoved(node, f"C-MOVE of study {study_uid} failed (status 0x{code:04X}) and delivered "
                                         "nothing: no such study?", code)

        with _Ended(assoc, cancel):
            completed, failed = _follow(assoc.send_c_move(query, node.calling_aet, MOVE), assoc, node, "C-MOVE",
                                        cancel, failure)
        if failed or received < completed:  # a move that "succeeded" without the images we rejected is incomplete;
            refused_senders()  # a rejection beside a complete move (another peer knocking) is only logged
    finally:
        receiver.stop()
    return completed, failed
