"""Folders that results are written into: whether anything can be written there (asked before the work, not
found out at its end), and one process at a time in them (a lock file held for as long as the work runs: the
batch's and report's output folder, the DICOM node's DIR; filelock, a well-kept library, rather than a lock of our
own making: a lock left by a killed process is free again, the operating system drops it with the process)."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from inference.errors import MammoError
from inference.files import file_in_the_way


def folder_write_error(folder: Path, probe_bytes: int = 0) -> OSError | None:
    """Why nothing can be written into ``folder`` (made if missing), None when a file can: a probe file of
    ``probe_bytes`` is written, flushed to the disk (so that a full one says so) and removed. Root passes any
    mode bits, so a read-only or full file system shows only by trying."""
    blocking = file_in_the_way(folder)
    if blocking is not None:
        return NotADirectoryError(errno.ENOTDIR, f"the file {blocking} is in the way of the folder", str(folder))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".write-probe.", suffix=".part", dir=folder)
    except OSError as error:
        return error
    try:
        with os.fdopen(handle, "wb") as written:  # a buffered write: all of it, or the disk's refusal
            if probe_bytes:
                written.write(bytes(probe_bytes))
                written.flush()
                os.fsync(written.fileno())
    except OSError as error:
        return error
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)
    return None


@contextlib.contextmanager
def made_folders_removed_if_refused(folder: Path):
    """The folders ``folder`` needs made (it and its missing parents) are removed again when the work in the
    ``with`` block fails, as long as nothing was left in them: a refused command leaves no empty output folder
    behind for the user to wonder about (a folder that holds anything stays)."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        yield
    except BaseException:
        for made in missing:
            with contextlib.suppress(OSError):
                made.rmdir()  # only ever an empty one
        raise


def hold_folder(folder: Path, lock_name: str, busy: str, unusable: str, private: bool = False):
    """Make ``folder`` (``private``: readable by this user alone) and take its lock ``lock_name`` at once, never
    waiting; the lock is returned to be released when the work ends. Raises :class:`MammoError` naming the
    folder: ``busy`` when another process holds it, ``unusable`` (with the system's reason) when the folder
    cannot be made or written in."""
    from filelock import FileLock, Timeout  # noqa: PLC0415

    from app.settings import private_folder  # noqa: PLC0415

    try:
        if private:
            private_folder(folder)
        else:
            folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(folder / lock_name, timeout=0, thread_local=False)
        lock.acquire()
    except Timeout:
        raise MammoError(busy, folder) from None
    except OSError as error:
        raise MammoError(f"{unusable} ({error.strerror or error})", folder) from error
    return lock
