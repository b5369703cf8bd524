"""The workstation's tasks, Qt-free (3D Slicer's "Logic"): loading an exam with what the store holds for it,
analysing it through the one results path with its overlay pixels, finding and loading priors, saving the
settings. The window runs each on a worker thread and only renders what they return."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.analysis import Analysis, analyse_or_restore, reader_read_key
from app.background import at_full_speed
from app.exam_window import ExamWindow, exam_window
from app.overlay_images import OverlayImages, prepare_overlays
from app.pacs.inbox import inbox_folder
from app.pacs.nodes import StudyAddress, node_of
from app.prior_registration import ViewRegistration, register_exam
from app.settings import AppSettings
from app.study.store import BreastRead, ReaderMark, Store
from inference.errors import MammoError
from inference.intake.exam import Exam, load_exam, person_name_key
from inference.intake.views import View
from inference.results.exam_result import ExamResult

if TYPE_CHECKING:
    from app.pacs.priors import PriorStudy
    from inference.weights import ModelGroup

DEMO_EXAM = object()  # load_exam_task(DEMO_EXAM, …) and the window's open_exam(DEMO_EXAM) open the built-in demo


def prepare_display(exam: Exam) -> Exam:
    """Compute here, off the GUI thread, what showing the exam needs from its pixels: each view's auto window
    (robust percentiles), its breast (the regions' and the cross-reference's tissue) and, for a VOI LUT or a
    sigmoid window, the first rendered display image."""
    for image in [*exam.views.values(), *exam.aside]:
        image.auto_window()
        image.breast()
        if image.needs_rendered_display():
            image.display_image(None if image.voi_lut_dataset is not None else image.windows[0])
    return exam


@dataclass(frozen=True)
class LoadedExam:
    """What the load task hands to the GUI: the exam and what the store holds for it and this reader."""

    exam: Exam
    key: str
    reads: dict[str, BreastRead]
    marks: list[ReaderMark]
    window: ExamWindow | None = None  # one display window for all views, computed here off the GUI thread
    # the reader's change after the commit, not recorded when the app last stopped (a crash, a kill): shown again
    pending: dict[str, BreastRead] = field(default_factory=dict)


@dataclass(frozen=True)
class AnalysisOutcome:
    """What the background analysis hands to the GUI: everything heavy is already computed."""

    groups: list[ModelGroup]
    analysis: Analysis
    overlays: OverlayImages


def load_exam_task(source, store: Store | None, reader: str, *, progress, cancel, arrived=None) -> LoadedExam:
    """The exam, through the intake; a study on a PACS is retrieved into the cache first, each view handed to
    ``arrived(ViewImage)`` as it comes (the hanging fills view by view)."""
    progress("loading images", 0, 1)
    if isinstance(source, StudyAddress):  # a study on a PACS: into the cache first, with progress and Cancel
        from app.pacs.retrieve import retrieve_study  # noqa: PLC0415
        from inference.intake.exam import load_view  # noqa: PLC0415

        def kept(path: Path) -> None:
            try:
                image = load_view(path)
            except MammoError:
                return  # the intake of the whole study says what is wrong with it
            if image.view is not None and arrived is not None:
                arrived(image)

        progress(f"retrieving from {source.node.describe()}", 0, 1)
        study = retrieve_study(source, progress=progress, cancel=cancel, on_kept=kept)
        exam = load_exam(study.folder)
        exam = dataclasses.replace(exam, warnings=exam.warnings + tuple(study.notes))
        return _with_reads(exam, store, reader)
    if not isinstance(source, (str, Path, list, tuple)):  # the demo sentinel
        from app.demo import ensure_demo_exam  # noqa: PLC0415

        progress("preparing the demo exam", 0, 1)
        source = ensure_demo_exam()
    return _with_reads(load_exam(source), store, reader)


def _with_reads(exam, store: Store | None, reader: str) -> LoadedExam:
    """The exam ready to show, with this reader's reads and marks of it (under the key it claims)."""
    key, earlier = reader_read_key(store, exam, reader)
    if earlier is not None:  # what changed since that read, and whether it is this exam's
        exam = dataclasses.replace(exam, warnings=(*exam.warnings, earlier.note()))
    reads = store.load_reads(key, reader) if store is not None else {}
    marks = store.load_marks(key, reader) if store is not None else []
    committed = any(read.committed for read in reads.values())
    pending = store.load_pending_change(key, reader) if store is not None and committed else {}
    return LoadedExam(prepare_display(exam), key, reads, marks, exam_window(exam), pending)


def analysis_task(exam: Exam, model_path: str, cached: list[ModelGroup] | None, device: str, mode: str,
                   store: Store | None, force: bool, *, progress, cancel) -> AnalysisOutcome:
    """Load the models if needed; restore this exam's stored result for these models and mode, or analyse
    and store it; prepare the overlay pixels."""
    at_full_speed()
    groups = cached
    if groups is None:
        from inference.weights import load_model_groups  # noqa: PLC0415 - torch loads here, off the GUI thread

        progress("loading models", 0, 1)
        groups = load_model_groups(model_path)
    analysis = analyse_or_restore(exam, groups, store=store, device=device, mode=mode, force=force,
                                  progress=progress, cancel=cancel)
    progress("preparing overlays", 0, 1)
    members = {g.id: tuple(m.identity for m in g.members) for g in groups}
    return AnalysisOutcome(groups, analysis, prepare_overlays(analysis.result, exam, members))


def warm_models_task(model_path: str, device: str, mode: str, *, progress, cancel) -> list[ModelGroup] | None:
    """After the window is up: torch imported, the models read and their copies for the device and mode made
    (``inference.pipeline.warm_models``), so that the first exam's analysis starts with its network."""
    at_full_speed()
    from inference.pipeline import warm_models  # noqa: PLC0415 - torch loads here, off the GUI thread
    from inference.weights import load_model_groups  # noqa: PLC0415

    progress("loading models", 0, 1)
    groups = load_model_groups(model_path)
    if cancel():
        return None
    warm_models(groups, device, mode)
    return groups


@dataclass(frozen=True)
class PriorFound:
    """A prior study of the exam's patient, loaded, with each of its views registered to the current one."""

    prior: PriorStudy  # the study shown
    exam: Exam
    studies: tuple[PriorStudy, ...]  # every earlier study found, most recent first
    registrations: dict[View, ViewRegistration]
    unregistered: dict[View, str] = dataclasses.field(default_factory=dict)  # view -> why its cursor is not linked
    refused: tuple[str, ...] = ()  # the more recent studies found and refused as this patient's prior, and why

    @property
    def earlier(self) -> int:
        """How many earlier studies were found."""
        return len(self.studies)


@dataclass(frozen=True)
class PriorAnalysis:
    result: ExamResult
    overlays: OverlayImages  # the prior's maps, prepared as the current exam's are


PRIOR_TRIES = 3  # the most recent earlier studies tried, one after another, when one is refused


class PriorRefused(MammoError):
    """The study found as the prior is not this patient's earlier study (another person, not earlier)."""

    def __init__(self, message: str, study: PriorStudy | None = None) -> None:
        super().__init__(message)  # the message names the folder
        self.study = study


def priors_task(exam: Exam, pacs_node: str, ae_title: str, *, progress, cancel) -> PriorFound | None:
    """The patient's earlier MG studies (local folders first, then the PACS); the most recent one loaded."""
    from app.pacs.priors import find_priors  # noqa: PLC0415 - the PACS modules load with the first prior search
    from app.pacs.retrieve import cache_root  # noqa: PLC0415

    progress("looking for priors", 0, 1)
    roots = [p for p in (exam.source.parent if exam.source is not None else None, cache_root(), inbox_folder()) if p]
    node = node_of(pacs_node, ae_title) if pacs_node else None
    priors = find_priors(exam, node=node, roots=roots)
    if not priors or cancel():
        return None
    refused: list[PriorRefused] = []
    for study in priors[:PRIOR_TRIES]:  # a study refused as another person's hid the patient's own older one
        try:
            found = prior_load_task(exam, study, tuple(priors), progress=progress, cancel=cancel)
        except PriorRefused as error:
            refused.append(error)
            continue
        if found is None:
            return None
        kept = tuple(p for p in priors if all(p is not r.study for r in refused))
        return dataclasses.replace(found, studies=kept, refused=tuple(r.message for r in refused))
    raise refused[0]


def prior_load_task(exam: Exam, study: PriorStudy, studies: tuple[PriorStudy, ...], *, progress,
                    cancel) -> PriorFound | None:
    """One prior study (retrieved first when it is on the PACS), loaded and registered view by view."""
    folder = study.location
    if isinstance(folder, StudyAddress):
        from app.pacs.retrieve import retrieve_study  # noqa: PLC0415

        progress(f"retrieving the prior from {folder.node.describe()}", 0, 1)
        folder = retrieve_study(folder, progress=progress, cancel=cancel).folder
    prior = prepare_display(load_exam(folder))
    if cancel():
        return None
    try:
        check_prior_identity(exam, prior, folder)
    except PriorRefused as error:
        error.study = study
        raise
    progress("registering the prior to the current views", 0, 1)
    return PriorFound(study, prior, studies, *register_exam(exam, prior))


def check_prior_identity(exam: Exam, prior: Exam, folder) -> None:
    """The study loaded as the prior is this patient's (same ID, same issuer where both say one) and earlier:
    what was found by one header or a PACS answer is checked again on what was actually loaded (a mis-filed
    folder or a PACS answering with another patient's instances is refused, never hung as PRIOR)."""
    from app.pacs.priors import patient_key  # noqa: PLC0415

    current, loaded = patient_key(exam), patient_key(prior)
    if current is None or loaded is None or not current.matches(loaded.patient_id, loaded.issuer):
        found = loaded.patient_id if loaded else "missing"
        raise PriorRefused(f"{folder}: the study loaded as the prior is not this patient's (patient ID {found}, "
                           f"expected {exam.patient.patient_id}); not shown")
    names = (person_name_key(str(exam.patient.name)), person_name_key(str(prior.patient.name)))
    births = (exam.patient.birth_date.strip(), prior.patient.birth_date.strip())
    for what, (ours, theirs) in (("name", names), ("birth date", births)):
        if ours and theirs and ours != theirs:  # one ID given to two people (a reused or mistyped ID)
            raise PriorRefused(f"{folder}: the study loaded as the prior has this patient's ID but another "
                               f"patient {what}; not shown (if the patient's {what} was corrected since, compare the "
                               "two studies' records first)")
    if not current.earlier(loaded.date, loaded.study_uid):
        raise PriorRefused(f"{folder}: the study loaded as the prior is dated {loaded.date}, not before the "
                           f"current study ({current.date}); not shown")


def prior_analysis_task(prior: Exam, groups: list[ModelGroup], device: str, mode: str, store: Store | None, *,
                        progress, cancel) -> PriorAnalysis:
    """The prior analysed by the models loaded for the current exam, with its maps' pixels."""
    at_full_speed()
    result = analyse_or_restore(prior, groups, store=store, device=device, mode=mode, progress=progress,
                                cancel=cancel).result
    members = {g.id: tuple(m.identity for m in g.members) for g in groups}
    return PriorAnalysis(result, prepare_overlays(result, prior, members))


def save_settings_task(settings: AppSettings, *, progress, cancel) -> None:
    settings.save()
