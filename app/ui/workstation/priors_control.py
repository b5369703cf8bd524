"""The patient's prior studies: found, loaded and registered to the current views in the background, one of them
shown in the current-vs-prior layouts (the reader chooses which), analysed with the same models, its maps drawn
as the current exam's are."""

from __future__ import annotations

from app.dates import dicom_date
from app.reading import percent
from app.ui.worker import Worker
from app.workstation import PriorAnalysis, PriorFound, prior_analysis_task, prior_load_task, priors_task
from inference.intake.exam import Exam
from inference.intake.views import Laterality


class PriorsControl:
    """Finds, loads and analyses the prior of the exam on screen."""

    def __init__(self, window) -> None:
        self.window = window
        self.requested = None  # the prior study asked for last (Shift+P, the menu), while it loads

    def find_priors(self, exam: Exam) -> None:
        """In the background: the patient's most recent earlier study, for the current-vs-prior layouts."""
        window = self.window
        window.prior, window.prior_result, window.prior_overlays = None, None, None
        self.fill_menu(None)
        window.hanging.set_prior(None)
        window.scores.set_prior_text("")
        if window.prior_worker is not None and window.prior_worker.is_running():
            window.prior_worker.cancel()
        if not exam.patient.patient_id:
            return
        self.requested = None
        worker = Worker(priors_task, exam, window.settings.pacs_node, window.settings.ae_title)
        worker.result.connect(lambda found, e=exam, w=worker: self._on_prior(found, e, w))
        worker.error.connect(lambda error, e=exam: self._on_find_error(error, e))
        window.prior_worker = window._track(worker).start()

    def _on_find_error(self, error: BaseException, exam: Exam) -> None:
        """Said in the notes too: a status line alone was overwritten by the next within a second."""
        window = self.window
        if exam is window.exam:
            window.statusBar().showMessage(f"priors: {error}", 10_000)
            window.notes.addItem(f"⚠ Prior not shown: {error}")

    def _on_prior(self, found: PriorFound | None, exam: Exam, worker: Worker) -> None:
        window = self.window
        if exam is not window.exam or worker is not window.prior_worker:
            return  # another exam has been opened since, or another prior asked for (this load was cancelled)
        self.requested = None
        if found is None:
            window.statusBar().showMessage("no prior study of this patient was found", 5000)
            return
        window.prior, window.prior_result, window.prior_overlays = found, None, None
        window.prior_worker = None  # the load has delivered (its thread may still be winding down): analyse now
        window.hanging.set_prior(found.exam, found.registrations)
        others = found.earlier - 1
        window.statusBar().showMessage(
            f"prior: {dicom_date(found.exam.study_date)} ({found.prior.where}"
            + (f"; {others} earlier: Shift+P for the next" if others else "") + ") — 6 / 7: current above prior; "
            + link_text(found), 10_000)
        self.fill_menu(found)
        for refusal in found.refused:  # a more recent study, refused as this patient's prior: the reader is told
            window.notes.addItem(f"⚠ Prior not shown: {refusal}")
        window.priorShown.emit()
        self.analyse_prior()

    def fill_menu(self, found: PriorFound | None) -> None:
        """View ▸ Prior study: every earlier study found, the one shown checked."""
        menu = self.window.prior_menu
        menu.clear()
        menu.setEnabled(found is not None and found.earlier > 0)
        for study in found.studies if found is not None else ():
            action = menu.addAction(f"{dicom_date(study.date)}  ({study.where}{', Acc ' + study.accession if study.accession else ''})")
            action.setCheckable(True)
            action.setChecked(study == found.prior)
            action.triggered.connect(lambda _=False, s=study: self.choose_prior(s))

    def next_prior(self) -> None:
        """The next earlier prior study (after the oldest, the most recent again), loaded in the background."""
        window = self.window
        found = window.prior
        if found is None or found.earlier < 2:
            window.statusBar().showMessage("no other prior study of this patient", 3000)
            return
        loading = window.prior_worker is not None and window.prior_worker.is_running() and self.requested is not None
        index = found.studies.index(self.requested if loading else found.prior)  # pressed again while loading
        self.choose_prior(found.studies[(index + 1) % found.earlier])

    def choose_prior(self, study) -> None:
        """Show ``study`` (one of the prior studies found) below the current exam."""
        window = self.window
        found, exam = window.prior, window.exam
        if found is None or exam is None:
            return
        if window.prior_worker is not None and window.prior_worker.is_running():
            window.prior_worker.cancel()
        window.statusBar().showMessage(f"loading the prior of {dicom_date(study.date)}…", 5000)
        self.requested = study
        worker = Worker(prior_load_task, exam, study, found.studies)
        worker.result.connect(lambda chosen, e=exam, w=worker: self._on_prior(chosen, e, w))
        worker.error.connect(lambda error, e=exam, w=worker: self._on_load_error(error, e, w))
        window.prior_worker = window._track(worker).start()

    def _on_load_error(self, error: BaseException, exam: Exam, worker: Worker) -> None:
        """The prior asked for did not load: the one shown stays, and its analysis (cancelled for the load)
        runs again."""
        window = self.window
        if exam is not window.exam or worker is not window.prior_worker:
            return
        self.requested = None
        window.prior_worker = None
        window.statusBar().showMessage(f"prior: {error}", 10_000)
        self.analyse_prior()

    def analyse_prior(self) -> None:
        """Once the models are loaded (by the current exam's analysis), the prior's scores."""
        window = self.window
        if window.prior is None or window.prior_result is not None or window._groups is None:
            return
        if window.prior_worker is not None and window.prior_worker.is_running():
            return
        prior = window.prior
        worker = Worker(prior_analysis_task, prior.exam, window._groups, window.settings.device, window.settings.mode,
                        window.store)
        worker.result.connect(lambda result, p=prior: self._on_prior_result(result, p))
        worker.error.connect(lambda error, p=prior: window.scores.set_prior_text(f"Prior: the analysis failed ({error})")
                             if p is window.prior else None)
        window.prior_worker = window._track(worker).start()

    def _on_prior_result(self, analysis: PriorAnalysis, prior: PriorFound) -> None:
        window = self.window
        if prior is not window.prior:
            return
        window.prior_result, window.prior_overlays = analysis.result, analysis.overlays
        self.draw_prior_maps()
        result = analysis.result
        lines = [f"Prior {dicom_date(prior.exam.study_date)}:"]
        for entry in result.entries:
            if not entry.malignancy:
                continue
            sides = []
            for side, name in (("R", "right"), ("L", "left")):
                breast = result.breasts.get(Laterality(side))
                scores = breast.entries.get(entry.id) if breast is not None else None
                value = scores.malignant if scores is not None else None
                sides.append(f"{name} {percent(value)}")  # as every other probability on screen: "56.8 %"
            lines.append(f"{entry.label}: P(malignant) " + " · ".join(sides))
        if len(lines) == 1:
            lines.append("no model gives a probability of malignancy")
        window.scores.set_prior_text("\n".join(lines))
        window.priorAnalysed.emit()

    def draw_prior_maps(self) -> None:
        """The prior's maps and regions of the model chosen for the current exam (hidden with the current
        ones while the reader has not committed)."""
        window = self.window
        if window.prior_result is None:
            return
        ids = [e.id for e in window.prior_result.entries]
        entry_id = window.entry_id if window.entry_id in ids else None
        window.hanging.set_prior_result(window.prior_result if entry_id else None, entry_id, window.prior_overlays)


def link_text(found: PriorFound) -> str:
    """How the cursor follows into the prior, for the status line: linked, approximate, or not, view by view."""
    approximate = sorted(v.value for v, r in found.registrations.items() if r.approximate)
    parts = [f"{view.value} not linked ({why})" for view, why in sorted(found.unregistered.items(),
                                                                          key=lambda item: item[0].value)]
    if approximate:
        parts.append(f"registration approximate on {', '.join(approximate)}")
    if not found.registrations:
        return "; ".join(parts) or "cursor not linked (no view to register)"
    return "; ".join(parts) if parts else "cursor linked"
