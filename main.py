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
    if named:
        return f"{named}: this file cannot be used as a study database ({error})"
    return f"the local database cannot be used ({error}); free disk space or check the folder (MAMMO_READER_HOME)"


def main(argv: list[str] | None = None) -> int:
    from inference.memory import reuse_freed_memory

    reuse_freed_memory()  # before any worker thread: image-sized tensors stop being page-faulted in anew
    from app.cli.parser import parse_args

    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.verbose:  # pynetdicom's warnings and errors too (app/pacs/contexts.py quiets them otherwise); never
        # its info and debug lines, which print the identifiers of C-FIND requests and answers
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
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
        print(f"error: {where}{what}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
