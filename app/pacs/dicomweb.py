"""DICOMweb with dicomweb-client: QIDO-RS, WADO-RS and STOW-RS, over http or https, with basic or bearer
authentication and a timeout on every request. WADO-RS asks for the transfer syntaxes the intake decodes
(dicomweb-client would otherwise accept any, and a node may answer with one we cannot read)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset

from app.pacs.nodes import PacsError, RemoteNode
from inference.errors import Cancelled
from app.pacs.query import INSTANCE_FIELDS, VIEWS_FOR_AT_MOST, StudyQuery, StudyRecord

# in order of preference: the node transcodes to the first it can
ACCEPTED = (("application/dicom", "1.2.840.10008.1.2.1"),)


def _client(node: RemoteNode):
    import requests  # noqa: PLC0415
    from dicomweb_client.api import DICOMwebClient  # noqa: PLC0415

    session = requests.Session()
    # images gain nothing from gzip, and Orthanc 1.10 dies compressing a multipart WADO-RS answer
    session.headers["Accept-Encoding"] = "identity"
    from app.pacs.credentials import warn_if_plain_http  # noqa: PLC0415

    warn_if_plain_http(node)  # once per node: basic auth or a token over http:// is readable on the wire
    if node.token:
        session.headers["Authorization"] = f"Bearer {node.token}"
    elif node.username:
        session.auth = (node.username, node.password)
    client = DICOMwebClient(node.base_url, session=session, timeout=node.timeout)
    # dicomweb-client retries every failed request 5 times with growing waits (a silent server: 30 s became
    # 196 s); one try each, so that the node's timeout is what a step takes at most
    client.set_http_retry_params(retry=False)
    return client


def _failure(node: RemoteNode, what: str, error: Exception) -> PacsError:
    import requests  # noqa: PLC0415

    response = getattr(error, "response", None)
    code = getattr(response, "status_code", None)
    if code in (401, 403):
        return PacsError(node, f"{what}: authentication failed (HTTP {code}); check MAMMO_DICOMWEB_USER and "
                               "MAMMO_DICOMWEB_PASSWORD (or MAMMO_DICOMWEB_TOKEN)")
    if code == 404:
        return PacsError(node, f"{what}: not found (HTTP 404)")
    if code is not None:
        return PacsError(node, f"{what}: the server answered HTTP {code}")
    if isinstance(error, requests.exceptions.SSLError):  # before ConnectionError, of which it is a kind
        return PacsError(node, f"{what}: the server's certificate is not trusted or does not match the host "
                               "(give its CA certificate in REQUESTS_CA_BUNDLE, or check the address)")
    if isinstance(error, requests.Timeout):
        return PacsError(node, f"{what}: no answer within {node.timeout:g} s")
    if isinstance(error, requests.ConnectionError):
        if _no_http_answer(error):  # the TCP connection was made (checked first), the answer was not HTTP
            return PacsError(node, f"{what}: this port does not speak HTTP (a DICOM port? write the address as "
                                   "dimse://AET@HOST:PORT, or give the web server's port)")
        return PacsError(node, f"{what}: cannot reach it; is the server running?")
    return PacsError(node, f"{what}: {type(error).__name__}: {error}")


def _no_http_answer(error: Exception) -> bool:
    """Whether the connection ended before an HTTP status line came (urllib3: 'Connection aborted', with a
    reset, a hang-up or a line that is not HTTP as its cause)."""
    text = str(error)
    return "Connection aborted" in text or "BadStatusLine" in text


def _guarded(node: RemoteNode, what: str, call: Callable):
    import socket  # noqa: PLC0415

    import requests  # noqa: PLC0415

    try:  # a refused connection is said at once (the HTTP client would retry it for half a minute)
        socket.create_connection((node.host, node.port), timeout=node.timeout).close()
    except OSError as error:
        raise PacsError(node, f"{what}: cannot reach it ({getattr(error, 'strerror', None) or error}); is the "
                              "server running, and the host and port right?") from error
    try:
        return call()
    except (requests.RequestException, OSError, ValueError) as error:
        raise _failure(node, what, error) from error


def echo(node: RemoteNode) -> None:
    """A QIDO-RS search for one study: the server answers and lets us in."""
    _guarded(node, "QIDO-RS", lambda: _client(node).search_for_studies(limit=1))


def study_listed(node: RemoteNode, study_uid: str) -> bool:
    """Whether the node, asked with this call's credentials, lists the study (QIDO-RS); a refusal (401, 403)
    raises :class:`PacsError`."""
    found = _guarded(node, "QIDO-RS", lambda: _client(node).search_for_studies(
        search_filters={"StudyInstanceUID": study_uid}, limit=1))
    return any(Dataset.from_json(item).get("StudyInstanceUID", "") == study_uid for item in found)


def study_images(node: RemoteNode, study_uid: str) -> frozenset[str] | None:
    """The SOP Instance UIDs of the study's MG images as the node lists them with this call's credentials
    (QIDO-RS), or None when it does not list the study; an instance whose modality the node does not give
    counts as MG. A refusal (401, 403) raises :class:`PacsError`."""
    if not study_listed(node, study_uid):
        return None
    found = _guarded(node, "QIDO-RS", lambda: _client(node).search_for_instances(
        study_instance_uid=study_uid, fields=["SOPInstanceUID", "Modality"], get_remaining=True))
    images = (Dataset.from_json(item) for item in found)
    return frozenset(str(ds.SOPInstanceUID) for ds in images
                     if str(ds.get("Modality", "") or "MG") == "MG" and ds.get("SOPInstanceUID"))


def find_studies(node: RemoteNode, query: StudyQuery) -> list[StudyRecord]:
    found = _guarded(node, "QIDO-RS", lambda: _client(node).search_for_studies(
        search_filters=query.qido_filters(), fields=["ModalitiesInStudy", "NumberOfStudyRelatedInstances",
                                                    "IssuerOfPatientID", "StudyDescription"]))
    kept = query.keep([StudyRecord.from_json(item) for item in found])
    client = _client(node)

    def views(record: StudyRecord) -> StudyRecord:
        instances = _guarded(node, "QIDO-RS", lambda: client.search_for_instances(
            study_instance_uid=record.study_uid, fields=list(INSTANCE_FIELDS)))
        return record.with_views([Dataset.from_json(item) for item in instances])

    return [views(r) if i < VIEWS_FOR_AT_MOST else r for i, r in enumerate(kept)]


def get_study(node: RemoteNode, study_uid: str, on_instance: Callable[[Dataset], None],
              cancel: Callable[[], bool] = lambda: False) -> tuple[int, int]:
    """WADO-RS of a whole study, instance by instance as the multipart answer streams in."""
    client = _client(node)
    count = 0

    def run() -> None:
        nonlocal count
        for dataset in client.iter_study(study_uid, media_types=ACCEPTED):
            if cancel():
                raise Cancelled()
            on_instance(dataset)
            count += 1

    _guarded(node, f"WADO-RS of study {study_uid}", run)
    # a server may leave out, without a word, an instance it cannot send in the syntax asked for: count them
    listed = _guarded(node, "QIDO-RS", lambda: client.search_for_instances(
        study_instance_uid=study_uid, fields=["SOPInstanceUID"], get_remaining=True))
    return count, max(0, len(listed) - count)


def store_files(node: RemoteNode, paths: Sequence[Path]) -> None:
    """STOW-RS of ``paths``; raises :class:`PacsError` when the server rejects any of them."""
    datasets = [dcmread(p) for p in paths]
    answer = _guarded(node, "STOW-RS", lambda: _client(node).store_instances(datasets))
    failed = answer.get("FailedSOPSequence", []) if answer is not None else []
    if failed:
        reason = failed[0].get("FailureReason", "")
        raise PacsError(node, f"STOW-RS: {len(failed)} of {len(paths)} instance(s) rejected"
                              + (f" (failure reason {reason})" if reason != "" else ""))
