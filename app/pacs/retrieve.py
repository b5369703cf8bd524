"""A study from a PACS into the local cache, then the usual intake; results back to a node.

The study is written into a private folder and renamed into place only when the retrieve has ended, so a
cancelled or failed retrieve never looks like a complete study. Instances that are not MG (other series of
the study, our own earlier SR and SEG) are ignored with a note, and so is an instance of another study (never
kept with this one: it could be another patient's). The cache has a size limit
(``MAMMO_PACS_CACHE_GB``, default 20): the least recently retrieved studies go first; private folders
left by a retrieve that was killed are removed at the next one and count against the limit meanwhile.

The cache never lets a study past the node's access control: it is kept per identity (our calling AE title,
the DICOMweb user or token), and a cached study is served only after the node, asked with this call's
identity, has listed it (a study-level C-FIND or QIDO-RS); a node that refuses us is the answer. Nor is a
cached study served when the node's list of its MG images (an image-level query, taken before the retrieve and
at each opening) has changed (an image that arrived after the retrieve, a retake, an image moved to another
patient's study): it is retrieved again. A node that lists no image at image level cannot be checked: its copy is
served as before, with a note.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from app.pacs.nodes import NothingMoved, PacsError, RemoteNode, StudyAddress
from app.pacs.scp import instance_name
from inference.files import atomic_path

COMPLETE = ".retrieved.json"


@dataclass
class RetrievedStudy:
    folder: Path
    instances: int = 0
    notes: list[str] = field(default_factory=list)
    cached: bool = False


def cache_root() -> Path:
    from app.settings import config_dir  # noqa: PLC0415

    return Path(os.environ.get("MAMMO_PACS_CACHE") or config_dir() / "pacs-cache")


def cache_limit_bytes() -> int:
    try:
        return int(float(os.environ.get("MAMMO_PACS_CACHE_GB", "20")) * (1 << 30))
    except ValueError:
        return 20 << 30


def _protocol(node: RemoteNode):
    if node.protocol == "dimse":
        from app.pacs import dimse  # noqa: PLC0415

        return dimse
    from app.pacs import dicomweb  # noqa: PLC0415

    return dicomweb


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _partials(root: Path) -> list[tuple[Path, int]]:
    """The private folders of retrieves (``.<study>.partial-<PID>``) with their PIDs."""
    found = []
    for path in root.glob(".*.partial-*"):
        pid = path.name.rpartition(".partial-")[2]
        if path.is_dir() and pid.isdigit():
            found.append((path, int(pid)))
    return found


def remove_stale_partials(root: Path) -> int:
    """Remove the private folders of retrieves whose process is gone (killed, crashed); returns how many."""
    removed = 0
    for path, pid in _partials(root):
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def evict(root: Path, limit: int, keep: Path) -> None:
    """Remove the least recently retrieved studies until the cache (retrieves in progress included) is under
    ``limit`` bytes."""
    studies = sorted((p for p in root.iterdir() if (p / COMPLETE).is_file()), key=lambda p: (p / COMPLETE).stat().st_mtime)
    total = sum(_folder_size(p) for p in studies) + sum(_folder_size(p) for p, _ in _partials(root))
    for study in studies:
        if total <= limit:
            break
        if study == keep:
            continue
        total -= _folder_size(study)
        shutil.rmtree(study, ignore_errors=True)


def _identity(node: RemoteNode) -> str:
    """Who this call is to the node (no secret): the calling AE title, or the DICOMweb user / a bearer token."""
    if node.protocol == "dimse":
        return f"AE title {node.calling_aet}"
    if node.token:
        return "bearer token " + hashlib.sha256(node.token.encode()).hexdigest()[:12]
    return f"user {node.username}" if node.username else "no credentials"


UNCHECKED = ("the node does not list the study's images at image level: the copy in the cache could not be "
             "checked against it")


def _changed(cached: list[str] | None, listed: frozenset[str]) -> list[str]:
    """A note when the node's list of the study's MG images is not the one taken when the cached copy was
    retrieved (empty when it is; both lists are the node's own, so an image it lists but could not send, or one
    whose modality it does not give, is in both)."""
    if cached is None:  # cached by an earlier version, which kept no list
        return ["the study was retrieved again (the cached copy could not be checked against the node)"]
    if set(cached) == listed:
        return []
    added, gone = len(listed - set(cached)), len(set(cached) - listed)
    what = ", ".join(part for part in (f"{added} image(s) added" if added else "",
                                       f"{gone} image(s) gone" if gone else "") if part)
    return [f"the study changed on the node since it was cached ({what}): retrieved again"]


def retrieve_study(address: StudyAddress, *, progress: Callable[[str, int, int], None] | None = None,
                   cancel: Callable[[], bool] = lambda: False, refresh: bool = False,
                   on_kept: Callable[[Path], None] | None = None) -> RetrievedStudy:
    """The MG images of the study at ``address`` in a cache folder (retrieved again only with ``refresh``).
    ``on_kept(path)`` is called with each MG file as soon as it is written (while the retrieve goes on; the
    path is valid during the call), so that a viewer can show the views as they arrive."""
    progress = progress or (lambda *a: None)
    node = address.node
    from app.settings import private_folder  # noqa: PLC0415

    root = private_folder(cache_root())  # other patients' images: readable by the user alone (0700)
    remove_stale_partials(root)
    key = f"{node.describe()}|{_identity(node)}|{address.study_uid}"
    final = root / hashlib.sha1(key.encode()).hexdigest()[:20]
    changed: list[str] = []
    listed: frozenset[str] | None = None
    if not refresh and (final / COMPLETE).is_file():
        listed = _protocol(node).study_images(node, address.study_uid)  # a refusal raises with its reason
        if listed is None:
            who = f"our AE title {node.calling_aet!r}" if node.protocol == "dimse" else "these credentials"
            raise PacsError(node, f"study {address.study_uid} is not on the node, or not open to {who}: the copy "
                                  "in the cache is not used")
        record = json.loads((final / COMPLETE).read_text(encoding="utf-8"))
        changed = _changed(record.get("images"), listed)
        if not changed:
            (final / COMPLETE).touch()
            return RetrievedStudy(final, record.get("instances", 0),
                                  [*record.get("notes", []), *([UNCHECKED] if not listed else [])], cached=True)
    if listed is None:  # the node's list before the retrieve: an image that comes during it is a change next time
        try:
            listed = _protocol(node).study_images(node, address.study_uid) or frozenset()
        except PacsError:  # a node that answers no query: the retrieve says what it says (the copy goes unchecked)
            listed = frozenset()
    partial = root / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700)
    os.chmod(partial, 0o700)  # the user's alone (mkdir's mode is filtered by the umask), as its images are
    kept: dict[str, None] = {}  # names, each once (an instance sent twice is kept once)
    ignored: dict[str, int] = {}
    foreign = 0  # instances of another study: never kept with this one (another patient's image in this exam)

    def on_instance(dataset: Dataset) -> None:
        nonlocal foreign
        if str(dataset.get("StudyInstanceUID", "")) != address.study_uid:
            foreign += 1
            return
        modality = str(dataset.get("Modality", "")) or "no modality"
        if modality != "MG":
            ignored[modality] = ignored.get(modality, 0) + 1
            return
        name = instance_name(dataset)
        with atomic_path(partial / name) as temporary:
            dataset.save_as(temporary, enforce_file_format=True)
            os.chmod(temporary, 0o600)
        kept[name] = None
        progress(f"retrieved {len(kept)} image(s)", len(kept), 0)
        if on_kept is not None:
            on_kept(partial / name)

    try:
        protocol = _protocol(node)
        fetch = protocol.move_study if node.protocol == "dimse" and node.move_port else protocol.get_study
        try:
            _, failed = fetch(node, address.study_uid, on_instance, cancel)
        except NothingMoved as error:
            if not listed:
                raise
            raise PacsError(node, f"C-MOVE of study {address.study_uid} failed (status 0x{error.status:04X}): the "
                                  f"node lists {len(listed)} MG image(s) of it but delivered none to our receiver "
                                  f"(AE title {node.calling_aet!r}, port {node.move_port}): check that its entry for "
                                  f"{node.calling_aet!r} names this computer and port {node.move_port}") from None
        notes = changed + [f"ignored {count} {modality} instance(s) of the study (only MG images are read)"
                           for modality, count in sorted(ignored.items())]
        if foreign:
            notes.append(f"ignored {foreign} instance(s) of another study that the node sent with this one")
        if failed:
            notes.append(f"{failed} instance(s) could not be retrieved (the node could not send them in a "
                         "transfer syntax this workstation decodes, or they failed)")
        if not kept:
            if foreign and not ignored:
                raise PacsError(node, f"study {address.study_uid}: the node sent only instances of other studies "
                                      f"({foreign}); none was kept")
            if ignored:
                raise PacsError(node, f"study {address.study_uid} holds no MG image (only "
                                      f"{', '.join(sorted(ignored))}): not a mammography study")
            raise PacsError(node, f"study {address.study_uid}: nothing was retrieved (no such study on the node?)")
        (partial / COMPLETE).write_text(json.dumps({"study": address.study_uid, "node": node.describe(),
                                                    "instances": len(kept), "notes": notes[len(changed):],
                                                    "images": sorted(listed)}), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    evict(root, cache_limit_bytes(), keep=final)
    return RetrievedStudy(final, len(kept), notes)


def send_files(node: RemoteNode, paths: Sequence[Path]) -> None:
    """C-STORE or STOW-RS of ``paths`` (the SR, SEG, Encapsulated PDF a report wrote)."""
    if not paths:
        raise PacsError(node, "nothing to send (write the report with --format sr and/or seg)")
    _protocol(node).store_files(node, [Path(p) for p in paths])


def find_studies(node: RemoteNode, query):
    """C-FIND or QIDO-RS, by the node's protocol."""
    return _protocol(node).find_studies(node, query)


def echo(node: RemoteNode) -> None:
    """C-ECHO or a QIDO-RS search for one study: whether the node answers and lets us in."""
    _protocol(node).echo(node)
