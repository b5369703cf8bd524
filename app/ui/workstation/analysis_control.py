"""The models and their analysis: which models, the banner that says what they are, starting, cancelling and applying
an analysis through the one results path."""

from __future__ import annotations

from collections.abc import Callable

import os
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from app.model_comparison import short_labels
from app.ui.errors import user_message
from app.ui.worker import Worker
from app.workstation import AnalysisOutcome, analysis_task, warm_models_task
from inference.results.exam_result import shown_notices

if TYPE_CHECKING:
    from inference.weights import ModelGroup

CANCELLED_TEXT = "Analysis cancelled; Run analysis (Ctrl+R) analyses the exam again."
# cancelled while an earlier result of the exam is on screen (restored from the store, or the run before): said,
# or "cancelled" stood above a full table of scores that seemed to be this run's
CANCELLED_KEPT_TEXT = ("Analysis cancelled: the results shown are this exam's earlier analysis, as before; Run "
                       "analysis (Ctrl+R) analyses the exam again.")
NO_MODEL_TEXT = (
    "No model configured — images can be read, but not analysed. To analyse, open Preferences (Ctrl+,) and "
    "choose a folder holding the published GMIC checkpoints (sample_model_1.p … sample_model_5.p, from "
    "github.com/nyukat/GMIC), a GLAM checkpoint, or another model checkpoint file."
)
DEMO_TEXT = "DEMO MODEL — trained on synthetic data only — NOT FOR CLINICAL USE"
MODE_TIPS = {"exact": "exact mode: the reference arithmetic (float32, TF32 off); the numbers the published "
                      "models give",
             "fast": "fast mode: batch norms folded, bf16 where this CPU or GPU has it natively (Mask R-CNN: float32 "
                     "unless its metadata declares fast_autocast); probabilities within 0.01 of exact"}


class AnalysisControl:
    """Loads the models and analyses the exam on screen off the GUI thread, then draws the result."""

    def __init__(self, window) -> None:
        self.window = window

    @property
    def loaded_models(self) -> list[ModelGroup] | None:
        """The models already in memory (None until an analysis or ``use_models`` loaded them)."""
        return self.window._groups

    def use_models(self, models, label: str = "<in memory>") -> None:
        """Use already-loaded models (scripts, tests) instead of a model path."""
        window = self.window
        from inference.pipeline import as_groups  # noqa: PLC0415

        window.model_path = label
        window._groups, window._groups_key = as_groups(models), (label,)
        self.update_model_banner()

    def update_model_banner(self) -> None:
        """The demo or no-model banner, and the status bar's device, mode and models."""
        window = self.window
        groups = window._groups or []
        # the models configured, and those whose result is on screen: after a change of models in Preferences the
        # demo's numbers stay shown until the new analysis replaces them, and so does the banner that says what they are
        shown_demo = window.result is not None and any(m.demo for m in window.result.provenance.models)
        demo = any(m.identity.demo for g in groups for m in g.members) or self.model_is_demo() or shown_demo
        if demo:
            window.banner.setText(DEMO_TEXT)
            window.banner.setStyleSheet("background: #7a1f1f; color: white; font-weight: bold; padding: 6px;")
            window.banner.show()
        elif not window.model_path:
            window.banner.setText(NO_MODEL_TEXT)
            window.banner.setStyleSheet("background: #33334d; color: white; padding: 6px;")
            window.banner.show()
        else:
            window.banner.hide()
        device = window.result.provenance.device if window.result else window.settings.device
        mode = window.result.provenance.mode.value if window.result else window.settings.mode
        device = f"{device}, {mode}"  # which arithmetic gave the numbers on screen (Preferences set it)
        window.device_label.setToolTip("\n".join(MODE_TIPS[m] for m in sorted(MODE_TIPS, key=lambda m: m != mode)))
        if len(groups) > 1:  # each checkpoint told apart (several are often called seeded_state_dict.pt)
            short = short_labels([(g.id, [m.identity for m in g.members]) for g in groups])
            window.device_label.setText(f"{device} · " + ", ".join(short[g.id] for g in groups))
        elif groups:
            window.device_label.setText(f"{device} · {groups[0].label}")
        elif window.model_path:
            names = ", ".join(Path(p).name for p in window.model_path.split(os.pathsep))
            window.device_label.setText(f"{device} · model: {names}")
        else:
            window.device_label.setText("no model")

    def model_is_demo(self) -> bool:
        from app.demo import demo_model_path  # noqa: PLC0415

        demo = demo_model_path()
        return demo is not None and self.window.model_path == str(demo)

    def rerun_analysis(self) -> None:
        """Ctrl+R: analyse; when the shown result was restored from the store, offer to analyse again."""
        window = self.window
        if window.result is not None and window.restored:
            what = ("The result (hidden until you commit your estimate) was" if window.reading.model_hidden()
                    else "The result shown was")
            box = QMessageBox(QMessageBox.Icon.Question, "Analyse again?",
                              f"{what} restored from an earlier analysis of these images with the same models and "
                              "mode. Analyse the exam again?",
                              QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, window)
            box.setObjectName("reanalyseDialog")
            box.buttonClicked.connect(lambda button: self.start_analysis(force=True)
                                      if box.standardButton(button) == QMessageBox.StandardButton.Yes else None)
            box.open()
            return
        self.start_analysis()

    def warm_models(self) -> Worker | None:
        """Soon after the window is up: the models loaded and made ready for the device and mode in the
        background (``app.workstation.warm_models_task``) unless an analysis already does it; an analysis asked
        for meanwhile starts when they are ready."""
        window = self.window
        if not window.model_path or window._groups_key == (window.model_path,) or window._closed:
            return None
        if window.analysis_worker is not None or window.warm_worker is not None:
            return None  # an analysis loads (or has loaded) them itself
        key = (window.model_path,)
        worker = Worker(warm_models_task, window.model_path, window.settings.device, window.settings.mode)
        worker.result.connect(lambda groups, k=key: self._on_warm(groups, k))
        worker.error.connect(lambda _error: None)  # the analysis loads them again and says what is wrong
        worker.finished.connect(self._on_warm_finished)
        window.warm_worker = window._track(worker).start(background=True)
        return worker

    def _on_warm(self, groups, key) -> None:
        window = self.window
        if groups is not None and key == (window.model_path,) and window._groups_key != key:
            window._groups, window._groups_key = groups, key
            self.update_model_banner()

    def _on_warm_finished(self) -> None:
        window = self.window
        window.warm_worker = None
        if not window._closed and window._analysis_wanted and window.exam is not None:
            self.start_analysis()

    def start_analysis(self, force: bool = False) -> None:
        window = self.window
        if window.exam is None:
            return
        if not window.model_path:
            window.scores.set_no_result(NO_MODEL_TEXT)
            return
        force = force or window._analysis_force  # "Analyse again" asked while it waited
        if window.warm_worker is not None and window.warm_worker.is_running():
            self._defer(force, "loading models…")  # the models are being loaded: analysed as soon as they are
            return
        if window.analysis_worker is not None and window.analysis_worker.is_running():
            self._defer(force, "")  # the running one belongs to an exam no longer shown: started after it
            return
        window._analysis_wanted = window._analysis_force = False
        generation = window._generation
        key = (window.model_path,)
        asked = (window.model_path, window.settings.device, window.settings.mode)
        cached = window._groups if window._groups_key == key else None
        self.show_busy("starting analysis…")
        window.scores.set_status("Analysing…")
        worker = Worker(analysis_task, window.exam, window.model_path, cached, window.settings.device, window.settings.mode,
                        window.store, force)
        worker.progress.connect(lambda *a, g=generation: self._on_progress(*a) if window._current(g) else None)
        worker.result.connect(lambda value, k=key, g=generation, a=asked: self.on_result(value, k, g, a))
        worker.error.connect(lambda error, g=generation: self._on_analysis_error(error) if window._current(g) else None)
        worker.cancelled.connect(lambda g=generation: self.say_cancelled() if window._current(g) else None)
        worker.finished.connect(lambda g=generation: self._on_analysis_finished(g))
        window.analysis_worker = window._track(worker).start()

    def show_busy(self, stage: str = "") -> None:
        """Work under way (a load, a retrieve, an analysis or its wait): the busy bar, Cancel and the stage."""
        window = self.window
        window.progress.setRange(0, 0)
        window.progress.show()
        window.cancel_button.show()
        if stage:
            window.stage_label.setText(stage)

    def reset_progress(self) -> None:
        """No analysis running or waiting: its progress, Cancel and stage taken down."""
        window = self.window
        window.progress.hide()
        window.cancel_button.hide()
        window.stage_label.setText("")

    def _defer(self, force: bool, stage: str) -> None:
        """An analysis to start once the work before it ends: said, with its progress and Cancel, meanwhile."""
        window = self.window
        window._analysis_wanted, window._analysis_force = True, force
        self.show_busy(stage)

    def say_cancelled(self) -> None:
        """The model panel says the analysis was cancelled, and whether the results it shows are an earlier one's."""
        result = self.window.scores.result
        earlier = result is not None and any(view.entries for view in result.views.values())
        self.window.scores.set_no_result(CANCELLED_KEPT_TEXT if earlier else CANCELLED_TEXT)

    def cancel_analysis(self) -> None:
        window = self.window
        worklist = getattr(window, "worklist", None)  # made after this controller
        if worklist is not None:
            worklist.cancel_awaited()  # the exam on screen waiting on its prefetch's analysis; its own, below
        if window._analysis_wanted:
            window._analysis_wanted = window._analysis_force = False  # one still waiting: never started
            self.reset_progress()
            self.say_cancelled()
        if window.load_worker is not None and window.load_worker.is_running():
            window.load_worker.cancel()  # a retrieve from the PACS polls it between instances
        if window.analysis_worker is not None and window.analysis_worker.is_running():
            window.analysis_worker.cancel()
            window.stage_label.setText("cancelling…")

    def _on_progress(self, stage: str, done: int, total: int) -> None:
        window = self.window
        window.progress.setRange(0, max(total, 1))
        window.progress.setValue(done)
        window.stage_label.setText(stage)

    def _on_analysis_error(self, error: BaseException) -> None:
        window = self.window
        window._on_error(error)
        window.scores.set_no_result(f"Not analysed: {user_message(error)[1]}")
        window.analysisFailed.emit(error)

    def on_result(self, outcome: AnalysisOutcome, key, generation: int, asked: tuple | None = None) -> None:
        window = self.window
        if key == (window.model_path,):
            window._groups, window._groups_key = outcome.groups, key  # the loaded models serve the next exam too
        if not window._current(generation):
            return  # the result of an exam no longer shown: never drawn
        if asked is not None and asked != (window.model_path, window.settings.device, window.settings.mode):
            return  # models, device or mode changed while it ran: not drawn as theirs (their analysis follows)
        QTimer.singleShot(0, window, window.priors.analyse_prior)  # the prior's scores with the models now loaded
        window.result, window.restored, window.overlays = outcome.analysis.result, outcome.analysis.restored, outcome.overlays
        ids = [e.id for e in window.result.entries]
        window.entry_id = window.entry_id if window.entry_id in ids else ids[0]
        window.scores.set_result(window.result)
        window.reading.note_seen()  # on screen from now (blind reading off), before its overlays are drawn
        window.overlay_control.draw_result()

    def run_steps(self, steps: list, still: Callable[[], bool]) -> None:
        """Run ``steps`` one per event-loop turn while ``still()`` holds; the rest are dropped once it fails."""
        if not steps or not still():
            return
        steps[0]()
        QTimer.singleShot(0, self.window, lambda: self.run_steps(steps[1:], still))  # dropped if the window is gone

    def overlays_applied(self) -> None:
        window = self.window
        result = window.result
        window._overlays_pending = False
        notices = shown_notices(result)
        origin = "Restored from the store" if window.restored else "Analysed"
        window.scores.set_status(
            f"{origin}: {result.provenance.device} ({result.provenance.mode.value} mode), "
            f"{len(result.provenance.models)} model(s)." + ("\n" + "\n".join(notices) if notices else ""))
        window.overlay_control.apply_overlay_options()
        window.reading.apply_blind_state()
        self.update_model_banner()
        notes = sorted({w.regions_note for w in window.hanging.views.values() if w.regions_note})
        window.regions_note.setText(("  " + "; ".join(notes)) if notes else "")
        self.maybe_finished()

    def _on_analysis_finished(self, generation: int) -> None:
        if self.window._closed:
            return  # delivered after the window closed: its widgets may be gone
        if not self.window._current(generation):
            if self.window._analysis_wanted and self.window.exam is not None:  # the exam shown now waited for this stale one
                QTimer.singleShot(0, self.window, self.start_analysis)
            elif self.window.analysis_worker is None or not self.window.analysis_worker.is_running():
                self.reset_progress()  # nothing else runs: no "cancelling…" left behind
            return
        if self.window._analysis_wanted and self.window.exam is not None:  # asked for while this one ran (other
            QTimer.singleShot(0, self.window, self.start_analysis)  # models chosen): it starts now
            return
        self.reset_progress()
        self.window._thread_done = True
        self.maybe_finished()

    def maybe_finished(self) -> None:
        """``analysisFinished`` once the thread ended and every overlay is on screen."""
        window = self.window
        if window._thread_done and not window._overlays_pending:
            window._thread_done = False
            window.analysisFinished.emit()
