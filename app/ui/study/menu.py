"""The workstation's Study menu: a coordinator creates a study (and its model scores are computed in the
background), a reader opens their blinded reading screen, a coordinator opens the results — without a
terminal. Everything slow runs in a :class:`Worker`; the windows share the workstation's store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMainWindow, QMenu, QMessageBox

from app.study.results import study_results
from app.study.store import Store
from app.study.cases import case_mix_note, read_case_list, unread_columns_note
from app.study.design import create_study, design_note
from app.study.errors import StudyError
from app.study.lesions import LESION_COLUMNS, lesions_for_new_study, lesions_summary
from app.ui.errors import show_error
from app.ui.study.dialogs import ChooseStudyDialog, NewStudy, NewStudyDialog
from app.ui.study.results import StudyResultsWindow
from app.ui.study.window import StudyReadingWindow
from app.ui.worker import Worker

if TYPE_CHECKING:
    from inference.weights import ModelGroup

logger = logging.getLogger(__name__)


class StudyNotCreated(StudyError):
    """The study was refused before it existed (its name, case list, readers …): the form is offered again."""


def create_and_score(
    store: Store, study: NewStudy, model_path: str, models: list[ModelGroup] | None, device: str, mode: str,
    *, progress, cancel, note_to: Callable[[str], None] = lambda _note: None,
) -> tuple[int, int | None]:
    """Background task: create the study, then compute the model's scores for its cases (resumable: a
    cancel keeps what is done). Returns (study id, cases scored or None when no model is configured). What
    the case mix will never give (``case_mix_note``) goes to ``note_to`` once the study exists, whatever the
    scoring then does."""
    progress("reading the case list", 0, 1)
    try:
        cases = read_case_list(study.case_list, check_exams=True)
        lesions, rule = None, None
        if study.lesions:
            progress("reading the lesion list", 0, 1)
            lesions, rule = lesions_for_new_study(study.lesions, cases, study.distance_mm)
        study_id = create_study(store, study.name, study.design, list(study.readers), cases, seed=study.seed,
                                washout_days=study.washout_days, lesions=lesions, scoring=rule)
    except StudyError as error:
        raise StudyNotCreated(str(error)) from error
    note = "; ".join(n for n in (unread_columns_note(study.case_list), case_mix_note(cases),
                                 design_note(study.design, list(study.readers), study.washout_days),
                                 lesions_summary(lesions, rule) if lesions else "",
                                 unread_columns_note(study.lesions, LESION_COLUMNS, "the lesion list") if lesions
                                 else "") if n)
    if note:
        note_to(note)
    if models is None and not model_path:
        return study_id, None
    from app.study.scores import compute_model_scores  # noqa: PLC0415 - torch, off the GUI thread
    from inference.weights import load_model_groups  # noqa: PLC0415

    if models is None:
        progress("loading models", 0, 1)
        models = load_model_groups(model_path)
    return study_id, compute_model_scores(store, study_id, models, device=device, mode=mode, progress=progress,
                                          cancel=cancel)


def _cases_task(store: Store, study_id: int, *, progress, cancel):
    from app.study.cases import study_cases  # noqa: PLC0415

    progress("reading the study's cases", 0, 1)
    return study_cases(store, study_id)


def _results_task(store: Store, study_id: int, level: str, *, progress, cancel):
    progress("computing the study's results", 0, 1)
    return study_results(store, study_id, level)


class StudyMenu(QObject):
    """Builds the Study menu on ``window`` (a MainWindow) and owns the study windows it opens."""

    studyCreated = Signal(int)  # noqa: N815 - Qt signal naming
    caseMixNoted = Signal(str, str)  # noqa: N815 - (study name, what its case mix will never give)
    readingOpened = Signal(object)  # noqa: N815 - the StudyReadingWindow, once its session is read

    def __init__(self, window, menu: QMenu) -> None:
        super().__init__(window)
        self.window = window
        self.windows: list[QMainWindow] = []
        self.worker: Worker | None = None
        self.overview_worker: Worker | None = None  # the studies and their progress, for the chooser
        self.caseMixNoted.connect(self._show_case_mix)
        window.add_action(menu, "New study…", None, lambda: self.new_study(), "newStudy")
        window.add_action(menu, "Read a study…", None, self.choose_reading, "readStudy")
        window.add_action(menu, "Study results…", None, self.choose_results, "studyResults")
        window.add_action(menu, "Draw a case's lesions…", None, self.choose_lesions, "drawLesions")

    @property
    def store(self) -> Store:
        return self.window.store

    def _busy(self) -> bool:
        if self.store is None:
            self.window.statusBar().showMessage("No study store is open in this window.", 5000)
            return True
        if self.worker is not None and self.worker.is_running():
            self.window.statusBar().showMessage("A study task is still running.", 5000)
            return True
        return False

    # ----------------------------------------------------------------------------------------- create

    def new_study(self, earlier: NewStudy | None = None) -> None:
        """The New study form (``earlier``: filled as it was, after a refusal)."""
        if self._busy():
            return
        dialog = NewStudyDialog(self.window)
        if earlier is not None:
            dialog.set_values(earlier)
        self.new_study_dialog = dialog
        dialog.accepted.connect(lambda: self.create(dialog.values()))
        dialog.open()

    def create(self, study: NewStudy) -> Worker | None:
        if self._busy():
            return None
        models = self.window.analyses.loaded_models
        worker = Worker(create_and_score, self.store, study, self.window.model_path, models,
                        self.window.settings.device, self.window.settings.mode,
                        note_to=lambda note: self.caseMixNoted.emit(study.name, note))  # queued to this thread
        worker.progress.connect(
            lambda stage, done, total: self.window.statusBar().showMessage(f"Study {study.name}: {stage}"))
        worker.result.connect(lambda outcome: self._created(study, *outcome))
        worker.error.connect(lambda error: self._not_created(study, error))
        worker.cancelled.connect(lambda: self.window.statusBar().showMessage(
            f"Study {study.name} created; model scores stopped part-way (they resume with study scores)", 10000))
        self.worker = worker.start()
        return worker

    def _created(self, study: NewStudy, study_id: int, scored: int | None) -> None:
        scores = ("no model is configured, so no model scores yet (python main.py study scores)" if scored is None
                  else f"model scores for {scored} case(s)")
        self.window.statusBar().showMessage(f"Study {study.name} created with {len(study.readers)} readers; {scores}",
                                            15000)
        self.studyCreated.emit(study_id)

    def _show_case_mix(self, name: str, note: str) -> None:
        """Said where it cannot be missed, before anyone reads the study (also when its scoring then stops)."""
        box = QMessageBox(QMessageBox.Icon.Information, "Reader study", f"Study {name} created. Note: {note}.",
                          QMessageBox.StandardButton.Ok, self.window)
        box.setObjectName("studyCaseMixNote")
        box.open()
        self.case_mix_box = box

    # ------------------------------------------------------------------------------------ read, results

    def _choose_study(self, with_reader: bool, then) -> None:
        """Read the studies and their progress in the background, then ask which (``then(dialog)`` on OK)."""
        from app.study.reading_screen import study_overview  # noqa: PLC0415

        if self._busy():
            return

        def ask(overview) -> None:
            dialog = ChooseStudyDialog(overview, with_reader=with_reader, parent=self.window)
            if dialog.exec() and dialog.study.currentData() is not None:
                then(dialog)

        worker = Worker(study_overview, self.store)
        worker.result.connect(ask)
        worker.error.connect(lambda error: show_error(self.window, error))
        self.overview_worker = worker.start()  # not self.worker: what the dialog leads to may start at once

    def choose_reading(self) -> None:
        def read(dialog) -> None:
            study_id, reader = dialog.chosen()
            if reader:
                self.open_reading(study_id, reader)

        self._choose_study(True, read)

    def open_reading(self, study_id: int, reader: str) -> Worker | None:
        """The reader's session is read in the background; its window opens when it is (``readingOpened``)."""
        from app.study.reading_screen import open_reading  # noqa: PLC0415

        if self._busy():
            return None
        worker = Worker(open_reading, self.store, study_id, reader)
        worker.result.connect(self._show_reading)
        worker.error.connect(lambda error: show_error(self.window, error))
        self.worker = worker.start()
        return worker

    def _not_created(self, study: NewStudy, error: BaseException) -> None:
        """Said; a study refused before it existed gets its form back, filled as it was."""
        if not isinstance(error, StudyNotCreated):
            show_error(self.window, error)
            return
        show_error(self.window, error).finished.connect(lambda _result: self.new_study(study))

    def _show_reading(self, opened) -> None:
        window = StudyReadingWindow(opened)
        self._keep(window)
        self.readingOpened.emit(window)

    def choose_results(self) -> None:
        self._choose_study(False, lambda dialog: self.show_results(dialog.study.currentData(),
                                                                   dialog.level.currentText()))

    def show_results(self, study_id: int, level: str = "breast") -> Worker | None:
        if self._busy():
            return None
        worker = Worker(_results_task, self.store, study_id, level)
        worker.result.connect(lambda results: self._keep(StudyResultsWindow(results)))
        worker.error.connect(lambda error: show_error(self.window, error))
        self.worker = worker.start()
        return worker

    def choose_lesions(self) -> None:
        """A coordinator draws the lesions of one case (study set-up): the study, then the case."""
        self._choose_study(False, lambda dialog: self.open_lesions(dialog.study.currentData()))

    def open_lesions(self, study_id: int) -> Worker | None:
        """The study's cases are read in the background; the case is then chosen from a list."""
        if self._busy():
            return None
        worker = Worker(_cases_task, self.store, study_id)
        worker.result.connect(lambda cases: self._choose_case(study_id, cases))
        worker.error.connect(lambda error: show_error(self.window, error))
        self.worker = worker.start()
        return worker

    def _choose_case(self, study_id: int, cases: dict) -> None:
        from PySide6.QtWidgets import QInputDialog  # noqa: PLC0415

        from app.ui.study.lesion_dialog import LesionDialog  # noqa: PLC0415

        if not cases:
            self.window.statusBar().showMessage("This study has no cases.", 5000)
            return
        chooser = QInputDialog(self.window)
        chooser.setObjectName("chooseCaseDialog")
        chooser.setWindowTitle("Draw lesions")
        chooser.setLabelText("Case")
        chooser.setComboBoxItems(sorted(cases))

        def chosen(case_id: str) -> None:
            dialog = LesionDialog(self.store, study_id, cases[case_id], self.window)
            dialog.setObjectName("lesionDialog")
            dialog.saved.connect(lambda count, c=case_id: self.window.statusBar().showMessage(
                f"case {c}: {count} lesion(s) saved with the study", 10_000))
            self.lesion_dialog = dialog
            dialog.open()

        chooser.textValueSelected.connect(chosen)
        self.case_chooser = chooser
        chooser.open()

    def _keep(self, window: QMainWindow) -> None:
        self.windows = [w for w in self.windows if w.isVisible()] + [window]
        window.show()
