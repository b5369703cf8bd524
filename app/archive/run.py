"""``run_batch``: the batch as one call, whatever the engine."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from app.archive.ledger import BatchSummary, Ledger, Progress
from app.archive.sources import ExamItem
from app.archive.unit import BatchOptions
from app.folders import hold_folder
from inference.errors import MammoError
from inference.files import hide_file_times

ENGINES = ("local", "ray")


def run_batch(
    items: Sequence[ExamItem],
    models: Sequence,
    out: str | Path,
    options: BatchOptions,
    *,
    engine: str = "local",
    force: bool = False,
    progress: Progress | None = None,
    percent_t: float | None = None,
    ray_options: dict | None = None,
    store=None,
    keep: Sequence[ExamItem] = (),
) -> BatchSummary:
    """Analyse every exam of ``items`` and write its files in ``out``; exams finished by an earlier run with
    the same options are skipped (unless ``force``).

    ``models``: checkpoint files or folders (``--models``), or for the local engine loaded models (anything
    ``inference.pipeline.as_groups`` takes). The Ray engine's actors load the files themselves.

    ``store`` (engine ``local``): an ``app.study.store.Store`` through which each model's result on an exam
    is restored when the workstation, a study or an earlier run computed it, and stored otherwise (see
    ``app.analysis``); without one every exam is analysed (the Ray engine's actors always analyse).

    ``ray_options`` (engine ``ray``): ``address``, ``workers``, ``gpus_per_worker`` and ``init`` (extra
    ``ray.init`` arguments for a local instance).

    ``keep``: exams an earlier run finished in ``out`` whose rows stay in the table though this run does not
    name them (see :class:`app.archive.ledger.Ledger`).
    """
    from inference.pipeline import as_groups  # noqa: PLC0415
    from inference.weights import load_model_groups  # noqa: PLC0415

    if engine not in ENGINES:
        raise MammoError(f"unknown engine {engine!r}; choose {' or '.join(ENGINES)}")
    if engine == "ray":
        from app.archive.ray_engine import require_ray  # noqa: PLC0415

        require_ray()  # before anything is loaded: a missing extra is said at once
    out = Path(out)
    from app.archive.sources import output_problem  # noqa: PLC0415

    # a report's files may go into its exam's folder (report EXAM --out EXAM); a batch's exam folders, and
    # de-identified copies of the images, may not: they would be read as exams, or as another patient's images
    if (options.folder_per_exam or options.deidentify) and (
            problem := output_problem(items, out, options.folder_per_exam)):
        raise MammoError(f"the results cannot go there: {problem}; give --out a folder of its own (a new folder "
                         "beside the exams will do)", out)
    if options.deidentify:  # nothing of an exam's folder name reaches the outputs, its bookkeeping included
        from app.archive.sources import deidentified_items  # noqa: PLC0415

        items = deidentified_items(list(items))
    sources = [str(m) for m in models] if all(isinstance(m, (str, Path)) for m in models) else None
    if sources is None and engine != "local":
        raise MammoError("the Ray engine loads the models in its workers: give checkpoint files, not loaded models")
    # the driver's copy: the models' identities for the markers (and the local engine's models)
    groups = load_model_groups(sources, percent_t=percent_t) if sources is not None else as_groups(models)
    record = options.record([f"{g.id}={g.key}" for g in groups])
    lock = _hold_folder(out)
    try:
        ledger = Ledger(out, items, record, force=force, progress=progress, keep=keep)
    except BaseException:
        lock.release()
        if options.deidentify:
            hide_file_times([out / LOCK_NAME, out])
        raise
    try:
        if engine == "local":
            from app.archive.local import run_local  # noqa: PLC0415

            run_local(ledger, groups, out, options, record, store)
        elif ledger.todo:
            from app.archive.ray_engine import run_on_ray  # noqa: PLC0415

            run_on_ray(ledger, sources, groups, out, options, record, percent_t=percent_t,
                       **(ray_options or {}))
    finally:
        try:
            summary = ledger.close()
        finally:
            lock.release()
            if options.deidentify:  # the lock file's time named when the run was made (and the folder's again)
                hide_file_times([out / LOCK_NAME, out])
    return summary


LOCK_NAME = ".batch.lock"


def _hold_folder(out: Path):
    """The output folder's lock, held for the run: a second run on the same folder analysed every exam again
    beside the first and both wrote its journal and table."""
    return hold_folder(out, LOCK_NAME, "another batch or report run is writing to this folder: wait for it to "
                       "finish, or choose another folder", "the folder cannot be used")
