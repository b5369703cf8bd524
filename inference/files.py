"""Writing files so that a full disk, a crash or Ctrl+C never leaves a truncated one behind.

Everything is written to a temporary file in the same folder, flushed to disk, then renamed over the target
(an atomic step on POSIX and Windows): a reader sees the old file or the whole new one, never half of it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


# names Windows keeps for devices, whatever the extension ("CON.pdf" opens the console, not a file)
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def file_stem(text: str, limit: int = 40) -> str:
    """``text`` (an accession number, a model ID from a table) as a file name in a folder the caller chose: word
    characters, dots and hyphens only, so never a path ("../x", "/abs"), no leading dot (a hidden file, "..") or
    hyphen (an option to a shell command) and no Windows device name ("CON"); "" when nothing of it is left."""
    return _not_a_device(re.sub(r"[^\w.-]+", "_", text).strip("_").lstrip(".")[:limit])


def _not_a_device(stem: str) -> str:
    """``stem`` with "_" before it where it is a Windows device name, or where it starts with "-" (a folder "-c1"
    is taken for an option by the tools that open it: ``rm -c1``)."""
    return f"_{stem}" if stem.split(".")[0].upper() in WINDOWS_DEVICES or stem.startswith("-") else stem


def distinct_file_stem(text: str, fallback: str = "x") -> str:
    """``text`` (an exam ID of a case list, a model ID of a score table) as one file or folder name of its own:
    itself where it is a plain name, else its letters, digits, dots, hyphens and underscores (no leading dot, no
    Windows device name, at most 120 bytes) and a short hash of the whole, so that "x/1" and "x_1" never share
    one and "../x" is never a path. ``fallback`` stands for a text with nothing of it left."""
    # (its own character rule, not file_stem's: the batch's exam folders already on disk keep their names, but
    # for one starting with "-": it gets "_" before it, and an older version's folder of that name is not reused)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in text).strip(".") or fallback
    while len(safe.encode("utf-8")) > 120:
        safe = safe[:-1]
    safe = _not_a_device(safe)
    if safe != text:
        safe = f"{safe}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"
    return safe


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


_UMASK = _umask()  # read once, at import: os.umask can only be read by setting it


def file_in_the_way(folder: str | Path) -> Path | None:
    """A file standing where ``folder`` or one of its parents should be a folder (None: it can be made)."""
    folder = Path(folder)
    return next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on any error it is removed
    and ``path`` is left as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:  # "afile: File exists" said what it is
        raise NotADirectoryError(errno.ENOTDIR, "a file is in the way of the folder to write into",
                                 error.filename or str(path.parent)) from error
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as error:  # a read-only or full folder: said of the file asked for, not of a temporary name
        raise OSError(error.errno, error.strerror, str(path)) from error
    os.close(handle)
    temporary = Path(name)
    # mkstemp makes the file private (0600); the result gets the mode any new file would get
    with contextlib.suppress(OSError):
        os.chmod(temporary, 0o666 & ~_UMASK)
    try:
        yield temporary
        with temporary.open("rb+") as written:  # durable before it becomes visible
            os.fsync(written.fileno())
        try:
            os.replace(temporary, path)
        except OSError as error:  # said of the file asked for, not of the temporary one ("… .part: Is a directory")
            raise OSError(error.errno, error.strerror, str(path)) from error
    except BaseException as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(error, OSError) and (not error.filename or Path(error.filename) == temporary):
            # a full disk while writing: Python's own write names no file, a library may name the temporary one
            raise OSError(error.errno, error.strerror or str(error), str(path)) from error
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


# 2000-01-01 00:00 UTC: the one time a de-identified output's files and folders carry (a PDF's own metadata says
# the same, reportlab's "invariant" date)
DEIDENTIFIED_FILE_TIME = 946_684_800


def hide_file_times(paths: Iterable[Path]) -> None:
    """Give ``paths`` (files or folders) the one de-identified time: the true time a file was written, beside
    the shifted dates inside it, gave the patient's date offset away (a report is made near its exam). A path
    that cannot be touched is left: it holds no identifier itself."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.utime(path, (DEIDENTIFIED_FILE_TIME, DEIDENTIFIED_FILE_TIME))
