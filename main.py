"""Mammo Reader: the one entry point.

``python main.py [EXAM]`` opens the workstation; ``python main.py COMMAND …`` runs headless work (``analyze``,
``report``, ``study …``, ``train``; ``--help`` lists them). This module configures the process (the
allocator, logging) and dispatches to ``app/cli``; each command imports what it needs when it runs.
"""

from __future__ import annotations

import errno
import importlib
import logging
import sqlite3
import sys
import warnings

logger = logging.getLogger("mammo_reader")


def _handler(dotted: str):
    module, function = dotted.split(":")
    return getattr(importlib.import_module(module), function)


def _store_error(error: sqlite3.Error, named: str | None) -> str:
    """A database error in words: a lock or a full disk as such; the user's own file (study --db) named, with no
    advice about the app's folder; otherwise the local database."""
    text = str(error).lower()
    where = f"{named}" if named else "the local database"
    if "locked" in text or "busy" in text:
        return f"{where} is being written by another program (the workstation?); try again when it is done ({error})"
    if "full" in text:
        return f"{where}: the disk is full ({error})"
    if not named:
        from app.settings import store_path  # noqa: PLC0415

        where = f"the local database {store_path()}"
    if "readonly" in text or "read-only" in text or "unable to open" in text:  # its folder cannot be written
        return (f"{where} cannot be opened for writing ({error}): its folder is read-only or missing; make it "
                "writable" + (", or give another with --db" if named else " or set MAMMO_READER_HOME to another folder"))
    if named:
        return f"{named}: this file cannot be used as a study database ({error})"
    return f"{where} cannot be used ({error}); free disk space or check the folder (MAMMO_READER_HOME)"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line in words ("warning: …"), not Python's file, line number and source line."""
    print(f"warning: {message}", file=file if file is not None else sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from inference.memory import reuse_freed_memory

    reuse_freed_memory()  # before any worker thread: image-sized tensors stop being page-faulted in anew
    from app.cli.parser import parse_args

    args = parse_args(sys.argv[1:] if argv is None else argv)
    from inference.log_privacy import PlainFormatter, without_header_values

    handler = logging.StreamHandler()
    handler.setFormatter(PlainFormatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(without_header_values)  # every logger's, before anything reads a header (the AI node's)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    if not args.verbose:  # -v keeps Python's own form, with where a warning was raised
        warnings.showwarning = _show_warning
    # pydicom both logs and warns each of its warnings ("WARNING pydicom: …" and the same as a UserWarning): once
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
    if args.verbose:  # pynetdicom's warnings and errors too (app/pacs/contexts.py quiets them otherwise); never
        # its info and debug lines, which print the identifiers of C-FIND requests and answers
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
        logging.getLogger("dicomweb_client").setLevel(logging.WARNING)  # its info lines name the study UIDs,
        logging.getLogger("highdicom").setLevel(logging.WARNING)  # and highdicom's the source datasets' UIDs
    from inference.errors import MammoError

    try:
        return _handler(args.handler)(args)
    except MammoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; nothing half-written was left behind", file=sys.stderr)
        return 130
    except sqlite3.Error as error:  # the local store: a full disk, a read-only or damaged database
        print(f"error: {_store_error(error, getattr(args, 'db', None))}", file=sys.stderr)
        return 1
    except OSError as error:  # a full disk, a read-only folder, a vanished network share
        where = f"{error.filename}: " if error.filename else ""
        what = "the disk is full" if error.errno == errno.ENOSPC else (error.strerror or str(error))
        out = getattr(args, "out", None)
        if not error.filename and out and error.errno == errno.ENOSPC:  # a write into an open file names none
            what += f" (writing to {out})"
        print(f"error: {where}{what}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
