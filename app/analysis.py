"""The one path to an exam's result (no Qt): restore it from the store, or analyse and store it.

Used by the workstation, the study reading screen, the Study menu, ``study scores``, ``report`` and the batch.
One key says when two results are the same: the images in their slots with the reader's laterality decisions
(SOP Instance UIDs, else pixel hashes), the model identities (content hashes and settings) and the mode (with
its arithmetic: a bf16 fast-mode result is not an exact one). Results are stored as JSON with the maps as one binary blob beside it, once: a restored result
is never written again. Everything here runs off the GUI thread (the worker calls it).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from typing import TYPE_CHECKING

from inference.exam import Exam
from inference.results import ExamResult, Mode
from inference.serialize import maps_from_bytes, maps_to_bytes, result_from_data, result_to_data

if TYPE_CHECKING:  # torch is imported when a model runs, not when the window opens
    from inference.weights import ModelGroup

logger = logging.getLogger(__name__)


def exam_key(exam: Exam) -> str:
    """A key of the exam's images that carries no identifier: their UIDs, else hashes of their pixels."""
    parts = sorted(img.sop_instance_uid or hashlib.sha1(img.pixels.tobytes()).hexdigest() for img in exam.views.values())
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


def slots_key(exam: Exam) -> str:
    """Which image sits in which slot, how it faces and what the reader decided about it: the same images
    in other slots (two CC files moved to the other side, or confirmed as stored mirrored) give another
    result, each breast's scores on its own side."""
    parts = []
    for view, image in sorted(exam.views.items(), key=lambda item: item[0].value):
        uid = image.sop_instance_uid or hashlib.sha1(image.pixels.tobytes()).hexdigest()
        parts.append(f"{view.value}={uid}|flip={int(image.horizontal_flip)}|{image.reader_decision}")
    return "|".join(parts)


def result_key(exam: Exam, groups: Sequence[ModelGroup], mode: Mode | str, device: str | None = None) -> str:
    """The cache key of an analysis: the images in their slots with the reader's decisions, models (in
    order, with their ensembles) and mode."""
    from inference.pipeline import choose_device, fast_mode_numerics  # noqa: PLC0415

    mode = Mode(mode)
    arithmetic = "exact" if mode == Mode.EXACT else f"fast-{fast_mode_numerics(choose_device(device)[0])}"
    laterality = ",".join(v.value for v in exam.laterality_conflicts)
    models = ";".join(f"{g.id}={g.key}" for g in groups)
    text = f"{slots_key(exam)}#{models}#{arithmetic}#{laterality}"
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Analysis:
    """A result and where it came from."""

    result: ExamResult
    key: str
    restored: bool


def restore(store, key: str) -> ExamResult | None:
    """The stored result with this key, or None (also when it cannot be read: it is then computed again)."""
    if store is None:
        return None
    stored = store.load_result(key)
    if stored is None:
        return None
    try:
        return result_from_data(json.loads(stored[0]), maps_from_bytes(stored[1]))
    except (ValueError, KeyError, TypeError) as error:
        logger.warning("a stored result could not be read (%s); analysing again", type(error).__name__)
        return None


def analyse_or_restore(
    exam: Exam,
    models: object,
    *,
    store=None,
    device: str | None = None,
    mode: Mode | str = Mode.EXACT,
    force: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Analysis:
    """The exam's result for these models and mode: from the store unless ``force``, else analysed and
    stored (durably, before returning)."""
    from inference.pipeline import analyze_exam, as_groups  # noqa: PLC0415

    progress = progress or (lambda *a: None)
    groups = as_groups(models)
    key = result_key(exam, groups, mode, device)
    if not force:
        restored = restore(store, key)
        if restored is not None:
            progress("restored the stored result", 1, 1)
            return Analysis(restored, key, restored=True)
    result = analyze_exam(exam, groups, device=device, mode=mode, progress=progress, cancel=cancel)
    if store is not None and not store.closed:
        data, maps = result_to_data(result)
        store.save_result(key, json.dumps(data), maps_to_bytes(maps)).result()
    return Analysis(result, key, restored=False)
