"""DIMSE with pynetdicom: C-ECHO, C-FIND (Study Root), C-GET (no inbound port needed) and C-STORE.

Every association and message has a timeout. One presentation context per transfer syntax: with several
syntaxes in one context the node picks one (Orthanc: uncompressed) and a file in another cannot be sent.
C-GET asks for the SCP role of each storage class, as the standard requires for the sub-operations.
pynetdicom's own log is kept at warnings: at info and debug it would print identifiers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

from app.pacs.nodes import PacsError, RemoteNode
from inference.errors import Cancelled
from app.pacs.query import INSTANCE_FIELDS, VIEWS_FOR_AT_MOST, StudyQuery, StudyRecord

logging.getLogger("pynetdicom").setLevel(logging.WARNING)

# what the intake decodes (pydicom with pylibjpeg, GDCM, pyjpegls): each offered in its own context
DECODABLE_SYNTAXES = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
)
# the classes a mammography study holds: the images, and what other systems add to it (kept or noted)
RETRIEVED_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography X-Ray Image - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.2.1",  # - For Processing
    "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image - For Presentation
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
)
VERIFICATION = "1.2.840.10008.1.1"
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

    try:  # first the plain TCP connection, to tell "nothing there" from "no answer" from "refused"
        socket.create_connection((node.host, node.port), timeout=node.timeout).close()
    except TimeoutError as error:
        raise PacsError(node, f"no answer within {node.timeout:g} s (is the host right?)") from error
    except OSError as error:
        raise PacsError(node, f"cannot reach it ({error.strerror or error}); is the PACS running, and the host "
                              "and port right?") from error
    assoc = ae.associate(node.host, node.port, ae_title=node.called_aet, **kwargs)
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        raise PacsError(node, f"the association was rejected (is {node.called_aet!r} its AE title, and does it "
                              f"know ours, {node.calling_aet!r}?)")
    if assoc.acceptor.primitive is None:  # the node said nothing at all
        raise PacsError(node, f"no answer to our association request within {node.timeout:g} s")
    raise PacsError(node, refused)


def _failed(node: RemoteNode, what: str, status) -> PacsError:
    code = getattr(status, "Status", None)
    if code is None:
        return PacsError(node, f"{what}: no answer (the connection was lost or timed out)")
    return PacsError(node, f"{what} failed with status 0x{int(code):04X}")


def echo(node: RemoteNode) -> None:
    """C-ECHO; raises :class:`PacsError` with the reason when the node cannot be used."""
    ae = _ae(node)
    ae.add_requested_context(VERIFICATION)
    assoc = _associate(node, ae)
    try:
        status = assoc.send_c_echo()
        if not status or status.Status != 0x0000:
            raise _failed(node, "C-ECHO", status)
    finally:
        assoc.release()


def find_studies(node: RemoteNode, query: StudyQuery) -> list[StudyRecord]:
    """C-FIND at study level, Study Root; MG studies only unless ``query.modality`` is empty."""
    ae = _ae(node)
    ae.add_requested_context(FIND)
    assoc = _associate(node, ae)
    found = []
    try:
        for status, identifier in assoc.send_c_find(query.dataset(), FIND):
            if not status:
                raise _failed(node, "C-FIND", status)
            if status.Status in (0xFF00, 0xFF01) and identifier is not None:
                found.append(StudyRecord.from_dataset(identifier))
            elif status.Status not in (0x0000, 0xFF00, 0xFF01):
                raise _failed(node, "C-FIND", status)
        kept = query.keep(found)
        kept = [_with_views(assoc, r) if i < VIEWS_FOR_AT_MOST else r for i, r in enumerate(kept)]
    finally:
        assoc.release()
    return kept


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

    def stored(event) -> int:
        try:
            dataset = event.dataset
            dataset.file_meta = event.file_meta
            on_instance(dataset)
        except Exception as error:  # noqa: BLE001 - the PACS is told, the study fails below with the reason
            problems.append(f"{type(error).__name__}: {error}")
            return 0xA700  # out of resources: could not keep the instance
        return 0x0000

    assoc = _associate(node, ae, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, stored)])
    try:
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
                raise PacsError(node, f"C-GET of study {study_uid}: the node could send none of its {failed} "
                                      "instance(s) in a transfer syntax this workstation decodes") from None
    finally:
        if assoc.is_established:
            assoc.release()
    if problems:
        raise PacsError(node, f"retrieved instances could not be kept: {problems[0]}")
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
    for status, _identifier in responses:
        if cancel():
            assoc.abort()
            raise Cancelled()
        if not status:
            raise _failed(node, what, status)
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
            raise PacsError(node, f"C-GET of study {query.StudyInstanceUID} failed (status 0x{code:04X}): no such "
                                  f"study, or the node will not send it to {node.calling_aet!r}")

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
    try:
        for path, dataset in datasets:
            try:
                status = assoc.send_c_store(dataset)
            except ValueError as error:  # no accepted context for this class and syntax
                raise PacsError(node, f"{path.name}: refused, the node accepts no {UID(dataset.SOPClassUID).name} "
                                      f"in {UID(dataset.file_meta.TransferSyntaxUID).name}") from error
            if not status or status.Status not in (0x0000, 0xB000, 0xB007, 0xB006):
                raise _failed(node, f"C-STORE of {path.name}", status)
    finally:
        if assoc.is_established:
            assoc.release()


def move_study(node: RemoteNode, study_uid: str, on_instance: Callable[[Dataset], None],
               cancel: Callable[[], bool] = lambda: False) -> tuple[int, int]:
    """C-MOVE of a whole study to our own Storage SCP (``node.move_port``, AE title ``node.calling_aet``),
    which must be registered on the node (Orthanc: ``DicomModalities``). Returns (completed, failed)."""
    from app.pacs.scp import StorageSCP  # noqa: PLC0415

    receiver = StorageSCP(node.calling_aet, node.move_port, on_instance=on_instance, timeout=node.timeout)
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
            if completed == 0:
                raise PacsError(node, f"C-MOVE of study {study_uid} failed (status 0x{code:04X}): no such study?")

        try:
            completed, failed = _follow(assoc.send_c_move(query, node.calling_aet, MOVE), assoc, node, "C-MOVE",
                                        cancel, failure)
        finally:
            if assoc.is_established:
                assoc.release()
    finally:
        receiver.stop()
    return completed, failed
