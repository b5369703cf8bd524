"""The local engine: the unit of work in this process, the next exam decoded while the current one runs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from app.archive.ledger import Ledger
from app.archive.unit import BatchOptions, analyse, decode, write
from inference.pipeline import model_families


def run_local(ledger: Ledger, groups, out: Path, options: BatchOptions, record: dict, store=None) -> None:
    """Every exam of ``ledger.todo`` through ``groups``, one after another (``store``: the results store the
    models' parts are restored from and stored in, see ``app.analysis``; None: no caching)."""
    todo = ledger.todo
    families = model_families(groups)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as pool:
        pending = pool.submit(decode, todo[0], families, options) if todo else None
        for index in range(len(todo)):
            decoded = pending.result()
            pending = pool.submit(decode, todo[index + 1], families, options) if index + 1 < len(todo) else None
            ledger.add(write(analyse(decoded, groups, options, store), out, options, record))
