"""The one path to an exam's result (no Qt): restore it from the store, or analyse and store it.

Used by the workstation, the study reading screen, the Study menu, ``study scores``, ``study create --scores``,
``report`` and the batch. The store holds one *part* per model entry: that entry's views on the exam's images
in their slots with the reader's laterality decisions (SOP Instance UIDs, else pixel hashes), for one model
(or ensemble: its members' content hashes and settings) and one mode (with its arithmetic: a bf16 fast-mode
result is not an exact one). An analysis looks up each entry's part, runs only the entries that have none
(preparing each view once per preprocessing they need), stores their parts and assembles the exam result,
breasts and exam decisions recomputed from the views by the one aggregation of ``inference.results.exam_result``. So the
workstation's [GMIC, GLAM] and a study's [GMIC] share GMIC's part. A part is JSON with its maps as one
binary blob beside it, written once: a restored part is never written again. Rows that the earlier scheme
stored for a whole set of models are simply not found (those exams are analysed again). Everything here runs
off the GUI thread (the worker calls it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from typing import TYPE_CHECKING

import numpy as np

from inference.intake.exam import Exam
from inference.results.exam_result import (
    breast_results,
    exam_decisions,
    ExamResult,
    joined_numerics,
    Mode,
    ModelEntry,
    no_result_notice,
    Provenance,
    uncounted_notice,
)
from inference.results.serialize import maps_from_bytes, maps_to_bytes, result_from_data, result_to_data

if TYPE_CHECKING:  # torch is imported when a model runs, not when the window opens
    from inference.pipeline import PreparedExam
    from inference.weights import ModelGroup

logger = logging.getLogger(__name__)


def exam_key(exam: Exam) -> str:
    """A key of the exam's images that carries no identifier: their UIDs, else hashes of their pixels."""
    parts = sorted(img.sop_instance_uid or hashlib.sha1(img.pixels.tobytes()).hexdigest() for img in exam.views.values())
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


def pixel_digest(pixels: np.ndarray) -> str:
    """A short digest of an image's pixels (every 4th row and column, its shape and type): what tells two
    images apart that carry the same UID (a broken anonymiser, a device reusing UIDs)."""
    digest = hashlib.blake2b(f"{pixels.shape}{pixels.dtype}".encode(), digest_size=16)
    digest.update(np.ascontiguousarray(pixels[::4, ::4]).tobytes())
    return digest.hexdigest()


def exam_fingerprint(exam: Exam) -> str:
    """The exam's pixels, digested (see :func:`pixel_digest`), in a fixed order."""
    return hashlib.sha1("|".join(sorted(pixel_digest(img.pixels) for img in exam.views.values())).encode()).hexdigest()


IDENTITY_TABLE = ("CREATE TABLE IF NOT EXISTS exam_identities (exam_key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, "
                  "first_seen REAL NOT NULL)")


def claimed_exam_key(store, exam: Exam) -> str:
    """The key the reader's reads and marks of ``exam`` are kept under: :func:`exam_key`, unless an exam with the
    same image UIDs but other pixels was opened here first; then a key of its own, made with its pixels, so that
    it never shows (or overwrites) the other exam's reads. Runs off the GUI thread (SQL)."""
    key = exam_key(exam)
    if store is None or not any(img.sop_instance_uid for img in exam.views.values()):
        return key  # without UIDs the key is made of the pixels already
    fingerprint = exam_fingerprint(exam)
    store.submit(lambda db: (db.execute(IDENTITY_TABLE), db.execute(
        "INSERT OR IGNORE INTO exam_identities VALUES (?, ?, ?)", (key, fingerprint, time.time())))).result()
    (claimed,) = store.read("SELECT fingerprint FROM exam_identities WHERE exam_key=?", (key,))[0]
    if claimed == fingerprint:
        return key
    logger.warning("an exam carries the image UIDs of another exam opened here before, with other pixels: kept apart")
    return hashlib.sha1(f"{key}|{fingerprint}".encode()).hexdigest()


STUDY_TABLE = ("CREATE TABLE IF NOT EXISTS exam_studies (exam_key TEXT PRIMARY KEY, study TEXT NOT NULL, "
               "views TEXT NOT NULL, first_seen REAL NOT NULL)")
STUDY_INDEX = "CREATE INDEX IF NOT EXISTS exam_studies_study ON exam_studies (study)"


@dataclass(frozen=True)
class EarlierRead:
    """A reader's read of this study made on another set of its images (a retake or a late image came since)."""

    key: str  # the key it is stored under
    changed: tuple[str, ...]  # the views whose image differs now (another image, one added, one gone)
    committed: bool
    marked: tuple[str, ...] = ()  # changed views the read has marks on (placed on an image not shown now)

    @property
    def taken(self) -> bool:
        """Whether the read is this exam's read: not when marks of it lie on an image that is not shown now
        (drawn on the new image they would point at the wrong place)."""
        return not self.marked

    def note(self) -> str:
        kind = "committed" if self.committed else "draft"
        said = (f"The reader's {kind} read of this study was made on another set of its images "
                f"({', '.join(self.changed)}: another image now, a retake or one that came later or went)")
        if self.marked:
            return (f"{said}, with marks on the earlier {', '.join(self.marked)}: it is kept with the images it was "
                    "made on, and this set of images is read anew.")
        if self.committed:
            return f"{said}; it is shown as it was committed: amend it if the new image changes it."
        return f"{said}; it is shown as it was saved."


def _study_digest(exam: Exam) -> str:
    """The exam's patient and study as a digest (the store keeps no identifier); "" unless its images name one
    study."""
    uids = {str(image.study.get("study_uid", "")) for image in exam.views.values()}
    if len(uids) != 1 or "" in uids or not exam.views:
        return ""
    first = next(iter(exam.views.values()))
    text = "|".join((exam.patient.patient_id, str(first.study.get("issuer", "")), uids.pop()))
    return hashlib.sha1(text.encode()).hexdigest()


def read_of_other_images(store, exam: Exam, key: str, reader: str) -> EarlierRead | None:
    """Record which study ``key``'s images are of; when ``reader`` has no read under ``key`` but one of the same
    study made on another set of its images sharing one image with this set at least, that read (the most recent
    set first; a set sharing no image may be another exam under reused UIDs). Runs off the GUI thread (SQL)."""
    study = _study_digest(exam)
    if store is None or not study:
        return None
    # an image is its UID with its pixels: another exam under reused UIDs shares no image with this one
    views = {view.value: hashlib.sha1(f"{image.sop_instance_uid}|{pixel_digest(image.pixels)}".encode()).hexdigest()[:16]
             for view, image in exam.views.items()}
    encoded = "|".join(f"{view}={digest}" for view, digest in sorted(views.items()))
    store.submit(lambda db: (db.execute(STUDY_TABLE), db.execute(STUDY_INDEX), db.execute(
        "INSERT OR IGNORE INTO exam_studies VALUES (?, ?, ?, ?)", (key, study, encoded, time.time())))).result()
    if store.load_reads(key, reader):
        return None
    for other, other_views in store.read("SELECT exam_key, views FROM exam_studies WHERE study=? AND exam_key<>? "
                                         "ORDER BY first_seen DESC", (study, key)):
        then = dict(part.split("=", 1) for part in other_views.split("|") if part)
        if not any(then.get(view) == digest for view, digest in views.items()):
            continue  # no image in common: not this exam with one image changed
        reads = store.load_reads(other, reader)
        if reads:
            changed = tuple(v for v in sorted(set(then) | set(views)) if then.get(v) != views.get(v))
            marked = tuple(sorted({m.view for m in store.load_marks(other, reader) if m.view in changed}))
            return EarlierRead(other, changed, any(read.committed for read in reads.values()), marked)
    return None


def reader_read_key(store, exam: Exam, reader: str) -> tuple[str, EarlierRead | None]:
    """The key ``reader``'s read and marks of ``exam`` are kept under, and the read of another set of the study's
    images when there is one (its note says what changed). A read is of a study: keyed by its images alone, a
    committed read vanished from the screen when a retake arrived, the model was hidden again and a second
    "first" read could be committed beside it. The workstation and the report of the batch use this one key."""
    key = claimed_exam_key(store, exam)
    earlier = read_of_other_images(store, exam, key, reader) if reader else None
    return (earlier.key if earlier is not None and earlier.taken else key), earlier


def slots_key(exam: Exam) -> str:
    """Which image sits in which slot, how it faces and what the reader decided about it: the same images
    in other slots (two CC files moved to the other side, or confirmed as stored mirrored) give another
    result, each breast's scores on its own side."""
    parts = []
    for view, image in sorted(exam.views.items(), key=lambda item: item[0].value):
        # a UID with its pixels' digest: another image under the same UID never restores this one's result
        uid = (f"{image.sop_instance_uid}:{pixel_digest(image.pixels)}" if image.sop_instance_uid
               else hashlib.sha1(image.pixels.tobytes()).hexdigest())
        parts.append(f"{view.value}={uid}|flip={int(image.horizontal_flip)}|{image.reader_decision}")
    return "|".join(parts)


def arithmetic(mode: Mode | str, device: str | None, group: ModelGroup) -> str:
    """The mode with the arithmetic ``group``'s models run with on ``device``: ``exact``, or ``fast-bf16`` /
    ``fast-fp32`` (``inference.pipeline.model_numerics``)."""
    from inference.pipeline import model_numerics  # noqa: PLC0415

    mode = Mode(mode)
    if mode == Mode.EXACT:
        return "exact"
    return "fast-" + joined_numerics(model_numerics(m.identity, device, mode) for m in group.members)


def result_arithmetic(result: ExamResult) -> str:
    """The arithmetic a result was computed with, as :func:`arithmetic` names it."""
    provenance = result.provenance
    return "exact" if provenance.mode == Mode.EXACT else f"fast-{provenance.numerics}"


def part_key(exam: Exam, model_key: str, arithmetic_name: str, slots: str | None = None) -> str:
    """The store key of one entry's part: the images in their slots with the reader's decisions, the
    entry's models (``ModelGroup.key``: the members' content hashes and settings, not the entry's name) and
    the arithmetic. ``slots``: :func:`slots_key` of ``exam`` when the caller has it already."""
    laterality = ",".join(v.value for v in exam.laterality_conflicts)
    text = f"entry#{slots if slots is not None else slots_key(exam)}#{model_key}#{arithmetic_name}#{laterality}"
    return hashlib.sha256(text.encode()).hexdigest()


def entry_key(exam: Exam, group: ModelGroup, mode: Mode | str, device: str | None = None) -> str:
    """The store key of ``group``'s part of the exam's analysis in ``mode`` on ``device``."""
    return part_key(exam, group.key, arithmetic(mode, device, group))


def result_key(exam: Exam, groups: Sequence[ModelGroup], mode: Mode | str, device: str | None = None) -> str:
    """A key naming a whole analysis (the images in their slots with the reader's decisions, models in order
    and mode); the store itself holds one part per entry (:func:`entry_key`)."""
    slots = slots_key(exam)
    text = ";".join(f"{g.id}={part_key(exam, g.key, arithmetic(mode, device, g), slots)}"
                    for g in groups)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Analysis:
    """A result and where it came from.

    Attributes:
        key: the store key of the first entry's part (what :func:`restore` gives back, e.g. for a study).
        restored: every entry came from the store (nothing was analysed).
        keys: entry id -> the store key of its part.
        analysed: the entries analysed now (the others were restored).
    """

    result: ExamResult
    key: str
    restored: bool
    keys: Mapping[str, str] = field(default_factory=dict)
    analysed: tuple[str, ...] = ()


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


# ------------------------------------------------------------------------------------------------- parts


def _own_notices(result: ExamResult, entry_id: str) -> set[str]:
    """The notices of ``result`` that say one entry has no result on a view."""
    entry = result.entry(entry_id)
    return {no_result_notice(entry.label, view, r.no_result[entry_id])
            for view, r in result.views.items() if entry_id in r.no_result}


def entry_parts(result: ExamResult) -> dict[str, ExamResult]:
    """Entry id -> a one-entry result of that entry alone (what the store holds per entry)."""
    parts = {}
    for entry in result.entries:
        others = set().union(*(_own_notices(result, e.id) for e in result.entries if e.id != entry.id))
        views = {view: dataclasses.replace(r, entries={k: v for k, v in r.entries.items() if k == entry.id},
                                           no_result={k: v for k, v in r.no_result.items() if k == entry.id})
                 for view, r in result.views.items()}
        provenance = dataclasses.replace(result.provenance, models=entry.members,
                                         numerics=entry_numerics(result, entry),
                                         notices=tuple(n for n in result.provenance.notices if n not in others))
        breasts = breast_results(views, (entry,))
        parts[entry.id] = ExamResult((entry,), views, breasts, exam_decisions(breasts, (entry,)), provenance)
    return parts


def entry_numerics(result: ExamResult, entry: ModelEntry) -> str:
    """One entry's arithmetic in ``result``: the run's, which names bf16 and fp32 both only where the fast mode
    ran a model that autocasts beside one that keeps float32 (``model_fast_mode``)."""
    run = result.provenance.numerics.split(", ")
    if len(run) == 1:
        return run[0]
    from inference.families import registry  # noqa: PLC0415 - torch and the families, only for a mixed run
    from inference.families.common import model_fast_mode  # noqa: PLC0415

    known = registry.families()
    if any(m.family not in known for m in entry.members):
        return result.provenance.numerics  # a family this installation lacks: the run's, as it was recorded

    def autocasts(member) -> bool:
        fast = model_fast_mode(known[member.family], member.settings)
        return "bf16" in run and (fast is None or fast.autocast)

    return joined_numerics("bf16" if autocasts(m) else "fp32" for m in entry.members)


def _joined(values: Sequence[str]) -> str:
    return ", ".join(dict.fromkeys(values))


def assemble(groups: Sequence[ModelGroup], parts: Sequence[ExamResult]) -> ExamResult:
    """The exam result of ``groups`` (in order, under their own ids and labels) from one part per group:
    each entry's views as stored, breasts and exam decisions recomputed from them."""
    if not parts or len(parts) != len(groups):
        raise ValueError("one stored part per model entry is needed")
    entries, stored_ids = [], []
    for group, part in zip(groups, parts, strict=True):
        stored = part.entries[0]
        entries.append(dataclasses.replace(stored, id=group.id, label=group.label))
        stored_ids.append(stored.id)
    views = {}
    for view, base in parts[0].views.items():
        results, missing, warnings = {}, {}, []
        for entry, stored_id, part in zip(entries, stored_ids, parts, strict=True):
            mine = part.views[view]
            warnings += mine.warnings
            if stored_id in mine.entries:
                results[entry.id] = mine.entries[stored_id]
            if stored_id in mine.no_result:
                missing[entry.id] = mine.no_result[stored_id]
        views[view] = dataclasses.replace(base, entries=results, no_result=missing,
                                          warnings=tuple(dict.fromkeys(warnings)))
    uncounted = [uncounted_notice(view, r.uncounted_reason) for view, r in views.items() if not r.counted]
    general = [n for part, stored_id in zip(parts, stored_ids, strict=True) for n in part.provenance.notices
               if n not in _own_notices(part, stored_id) and n not in uncounted]
    missing_notices = [no_result_notice(entry.label, view, r.no_result[entry.id])
                       for view, r in views.items() for entry in entries if entry.id in r.no_result]
    provenances = [part.provenance for part in parts]
    provenance = Provenance(
        models=tuple(m for entry in entries for m in entry.members), device=_joined([p.device for p in provenances]),
        mode=provenances[0].mode, torch_version=_joined([p.torch_version for p in provenances]),
        threads=provenances[0].threads, python=_joined([p.python for p in provenances]),
        notices=tuple(dict.fromkeys(general)) + tuple(missing_notices) + tuple(uncounted),
        numerics=joined_numerics(p.numerics for p in provenances))
    breasts = breast_results(views, entries)
    return ExamResult(tuple(entries), views, breasts, exam_decisions(breasts, entries), provenance)


def _with_sources(result: ExamResult, exam: Exam) -> ExamResult:
    """``result`` naming this exam's files for its views: a stored part is keyed by the images (their UIDs or
    pixels), not where they lie, and one stored before the files were recorded names none."""
    views = {view: dataclasses.replace(r, source_file=exam.views[view].source.name,
                                       sop_instance_uid=exam.views[view].sop_instance_uid) if view in exam.views else r
             for view, r in result.views.items()}
    return dataclasses.replace(result, views=views)


def _usable(part: ExamResult | None, exam: Exam) -> bool:
    """A stored part fits the exam: one entry, on exactly the exam's views."""
    return part is not None and len(part.entries) == 1 and set(part.views) == set(exam.views)


def store_parts(store, exam: Exam, result: ExamResult, keys: Mapping[str, str] | None = None) -> dict[str, str]:
    """Store each entry of ``result`` as its own part (durably, before returning); returns entry id -> key.

    ``keys``: entry id -> key (from :func:`entry_key`); by default each key is made from the entry's models
    and the arithmetic the result was computed with (a batch's result read back from its files)."""
    slots = slots_key(exam)
    written = {}
    futures = []
    for entry_id, part in entry_parts(result).items():
        key = keys[entry_id] if keys is not None else part_key(
            exam, "+".join(m.key for m in part.entries[0].members), result_arithmetic(part), slots)
        data, maps = result_to_data(part)
        futures.append(store.save_result(key, json.dumps(data), maps_to_bytes(maps)))
        written[entry_id] = key
    for future in futures:
        future.result()
    return written


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
    prepared: PreparedExam | None = None,
) -> Analysis:
    """The exam's result for these models and mode: each entry's part from the store unless ``force``, the
    others analysed and stored (durably, before returning), assembled in the order given.

    ``prepared``: the exam already prepared for these models' families (``inference.pipeline.prepare_exam``;
    the batch prepares on other workers); without it the exam is checked and prepared here, and only for
    the families of the entries that are analysed. Without a store every entry is analysed.
    """
    from inference.pipeline import analyze_exam, as_groups, run_prepared  # noqa: PLC0415

    progress = progress or (lambda *a: None)
    groups = as_groups(models)
    slots = slots_key(exam)
    keys = {g.id: part_key(exam, g.key, arithmetic(mode, device, g), slots) for g in groups}
    parts: dict[str, ExamResult] = {}
    if not force and store is not None:
        for group in groups:
            part = restore(store, keys[group.id])
            if _usable(part, exam):
                parts[group.id] = part
    missing = [g for g in groups if g.id not in parts]
    first = keys[groups[0].id]
    if not missing:
        progress("restored the stored result", 1, 1)
        return Analysis(_with_sources(assemble(groups, [parts[g.id] for g in groups]), exam), first, True, keys)
    if prepared is not None:
        fresh = run_prepared(prepared, missing, device=device, mode=mode, progress=progress, cancel=cancel)
    else:
        fresh = analyze_exam(exam, missing, device=device, mode=mode, progress=progress, cancel=cancel)
    if store is not None and not store.closed:
        store_parts(store, exam, fresh, {g.id: keys[g.id] for g in missing})
    if parts:
        new = entry_parts(fresh)
        result = _with_sources(assemble(groups, [parts[g.id] if g.id in parts else new[g.id] for g in groups]), exam)
    else:
        result = fresh  # nothing restored: the analysis as it came
    return Analysis(result, first, False, keys, tuple(g.id for g in missing))
