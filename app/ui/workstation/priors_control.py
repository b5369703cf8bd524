"""The patient's prior study: found and loaded in the background, shown in the current-vs-prior layouts, analysed
with the same models."""

from __future__ import annotations

from app.ui.worker import Worker
from app.workstation import PriorFound, prior_analysis_task, priors_task
from inference.intake.exam import Exam
from inference.intake.views import Laterality
from inference.results.exam_result import ExamResult


class PriorsControl:
    """Finds, loads and analyses the prior of the exam on screen."""

    def __init__(self, window) -> None:
        self.window = window

    def find_priors(self, exam: Exam) -> None:
        """In the background: the patient's most recent earlier study, for the current-vs-prior layouts."""
        window = self.window
        window.prior, window.prior_result = None, None
        window.hanging.set_prior(None)
        window.scores.set_prior_text("")
        if window.prior_worker is not None and window.prior_worker.is_running():
            window.prior_worker.cancel()
        if not exam.patient.patient_id:
            return
        worker = Worker(priors_task, exam, window.settings.pacs_node, window.settings.ae_title)
        worker.result.connect(lambda found, e=exam: self._on_prior(found, e))
        worker.error.connect(lambda error, e=exam: window.statusBar().showMessage(f"priors: {error}", 10_000)
                             if e is window.exam else None)
        window.prior_worker = window._track(worker).start()

    def _on_prior(self, found: PriorFound | None, exam: Exam) -> None:
        window = self.window
        if exam is not window.exam:
            return  # another exam has been opened since
        if found is None:
            window.statusBar().showMessage("no prior study of this patient was found", 5000)
            return
        window.prior = found
        window.hanging.set_prior(found.exam)
        date = found.exam.study_date
        shown = f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 else date
        window.statusBar().showMessage(f"prior: {shown} ({found.prior.where}; {found.earlier} earlier "
                                     f"stud{'y' if found.earlier == 1 else 'ies'}) — 6 / 7: current above prior", 10_000)
        window.priorShown.emit()
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

    def _on_prior_result(self, result: ExamResult, prior: PriorFound) -> None:
        window = self.window
        if prior is not window.prior:
            return
        window.prior_result = result
        date = prior.exam.study_date
        lines = [f"Prior {date[:4]}-{date[4:6]}-{date[6:8]}:" if len(date) == 8 else f"Prior {date}:"]
        for entry in result.entries:
            if not entry.malignancy:
                continue
            sides = []
            for side, name in (("R", "right"), ("L", "left")):
                breast = result.breasts.get(Laterality(side))
                scores = breast.entries.get(entry.id) if breast is not None else None
                value = scores.malignant if scores is not None else None
                sides.append(f"{name} {value:.2f}" if value is not None else f"{name} —")
            lines.append(f"{entry.label}: P(malignant) " + " · ".join(sides))
        if len(lines) == 1:
            lines.append("no model gives a probability of malignancy")
        window.scores.set_prior_text("\n".join(lines))
        window.priorAnalysed.emit()
