"""The blinded reading screen's Logic (Qt-free): opening a reader's session (the plan, the study, where to
resume and that reading's state) and loading a case with its reads and the stored AI result. The window
runs both on a worker and only renders what they return."""

from __future__ import annotations

import shlex

from dataclasses import dataclass, field, replace

from app.exam_window import ExamWindow, exam_window
from app.overlay_images import OverlayImages, prepare_overlays
from app.study.blinding import blind_exam
from app.study.design import Design, study_info
from app.study.errors import StudyError
from app.study.sessions import ReadingSession
from app.study.store import Store
from inference.errors import MammoError
from inference.intake.exam import Exam, load_exam
from inference.results.exam_result import ExamResult


@dataclass(frozen=True)
class CaseState:
    """What the reading screen knows of one reading: read from the store off the GUI thread.

    ``result`` is loaded with the case but shown only when the design and the reads allow it."""

    position: int
    reads: dict
    revealed: bool
    open: bool
    washout_ends: float | None = None  # when session 2 opens (crossover), for the washout notice
    birads: dict = field(default_factory=dict)  # {modality: {breast: category}} of the committed reads
    marks: dict = field(default_factory=dict)  # {modality: [ReaderMark]} of the committed reads
    exam: Exam | None = None
    result: ExamResult | None = None
    overlays: OverlayImages | None = None
    window: ExamWindow | None = None  # one window/level for the case's views, as the workstation shows an exam


def case_identifiers(session: ReadingSession, position: int) -> set[str]:
    """What names the case outside the study: its ID in the case list and its exam's path."""
    case = session.case_at(position)
    return {case.case_id, str(case.exam_path)}


class CaseUnreadable(MammoError):
    """A study case whose exam cannot be opened, said without what its files' headers hold (the reading screen
    removes the case's ID, path and file names itself)."""


def _without_header_identifiers(text: str, exam_path: str) -> str:
    """``text`` without the patient IDs, names, dates … of the exam's files: a two-patient refusal names both
    patients' IDs, which no exam was made of to blind."""
    from inference.intake.exam import exam_files  # noqa: PLC0415
    from inference.intake.identifiers import header_identifiers, remove_identifiers  # noqa: PLC0415

    return remove_identifiers(text, header_identifiers(exam_files(exam_path)))


def case_state(session: ReadingSession, position: int) -> CaseState:
    case_id = session.order[position]
    return CaseState(position, session.reads(case_id), session.is_revealed(case_id), session.is_open(position),
                     session.washout_ends_at(), session.birads(case_id), session.marks(case_id))


def load_case(session: ReadingSession, position: int, *, progress, cancel) -> CaseState:
    """The case (de-identified), its reads and reveal, and the first model's stored result."""
    from app.analysis import restore  # noqa: PLC0415
    from app.workstation import prepare_display  # noqa: PLC0415
    from app.study.scores import stored_result_key  # noqa: PLC0415

    progress("loading case", 0, 1)
    state = case_state(session, position)
    if not state.open:  # a session that is not open yet shows nothing of its cases
        return state
    case = session.case_at(position)
    try:
        opened = load_exam(case.exam_path)
    except MammoError as error:
        raise CaseUnreadable(_without_header_identifiers(str(error), case.exam_path)) from None
    exam = prepare_display(blind_exam(opened, case_identifiers(session, position)))
    key = stored_result_key(session.store, session.study_id, case.case_id)
    result = restore(session.store, key) if key else None
    overlays = prepare_overlays(result, exam) if result is not None else None
    return replace(state, exam=exam, result=result, overlays=overlays, window=exam_window(exam))


@dataclass(frozen=True)
class OpenedReading:
    """A reader's session as the reading screen opens on it."""

    session: ReadingSession
    info: dict
    position: int | None  # where to resume (None: every reading is done)
    state: CaseState | None  # that reading's reads, reveal and whether it is open


def open_reading(store: Store, study_id: int, reader: str, *, progress=None, cancel=None) -> OpenedReading:
    """Read the study's plan for ``reader`` (raises StudyError for someone who is not one of its readers)."""
    session = ReadingSession(store, study_id, reader)
    if session.design != Design.UNAIDED:
        from app.study.scores import cases_without_result  # noqa: PLC0415

        missing = cases_without_result(store, study_id)
        # a case whose exam cannot be opened has no result and cannot have one: the reading screen says so and
        # goes past it; it must not hold up the study (one that opens is enough to refuse)
        if missing:
            from app.study.cases import study_cases  # noqa: PLC0415

            exams = study_cases(store, study_id)
            if not any(_opens(exams[case_id].exam_path) for case_id in missing):
                missing = []
        if missing:  # said to a reader: no case ID (one may be made from an accession number); the
            # coordinator's 'study scores' names the cases it scores or cannot
            raise StudyError(f"{len(missing)} case(s) have no stored AI result, so a {session.design} reading would "
                             "record aided reads with no AI shown; the coordinator runs 'python main.py study scores "
                             f"{shlex.quote(session.study_name)} --models …' on this machine first (an imported "
                             "study or scores from a batch's table carry the scores, not the results to show)")
    position = session.next_position()
    state = case_state(session, position) if position is not None else None
    return OpenedReading(session, study_info(store, study_id), position, state)


def _opens(exam_path: str) -> bool:
    try:
        load_exam(exam_path)
    except (MammoError, OSError):
        return False
    return True


@dataclass(frozen=True)
class StudyOverview:
    """What the study chooser shows: every study (newest first) and, per study, each reader's progress."""

    studies: list[dict]
    progress: dict[int, list[dict]]


def study_overview(store: Store, *, progress=None, cancel=None) -> StudyOverview:
    """The studies and their readers' progress, read in one go (off the GUI thread)."""
    from app.study.design import list_studies  # noqa: PLC0415
    from app.study.sessions import reader_progress  # noqa: PLC0415

    studies = list_studies(store)
    return StudyOverview(studies, {info["study_id"]: reader_progress(store, info["study_id"]) for info in studies})
