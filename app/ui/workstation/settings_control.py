"""Preferences and the inbox: taking new settings (models, overlays, the exam's window link, blind-first, the
Storage SCP), saving them in the background, and the received studies."""

from __future__ import annotations

import dataclasses

from app.pacs.inbox import inbox_folder
from app.settings import AppSettings
from app.ui.pacs.inbox_dialog import InboxDialog
from app.ui.worker import Worker
from app.ui.workstation.preferences import PreferencesDialog
from app.ui.workstation.score_panel import reader_title
from app.workstation import save_settings_task
from inference.errors import MammoError


class SettingsControl:
    """The window's preferences, its saved settings and its Storage SCP (``app.pacs.inbox``)."""

    def __init__(self, window) -> None:
        self.window = window

    def open_inbox(self) -> None:
        """File → Received studies: what our Storage SCP received (see Preferences)."""
        dialog = InboxDialog(inbox_folder(), self.window.inbox.describe(self.window.settings), self.window)
        dialog.studyChosen.connect(self.window.exams.open_exam)
        self.window.inbox_dialog = dialog
        dialog.open()

    def apply_scp(self) -> None:
        """Start, restart or stop our Storage SCP as the preferences say; a port in use is a message."""
        try:
            self.window.inbox.apply(self.window.settings)
        except MammoError as error:
            self.window._on_error(error)

    def models_in_use(self) -> tuple[str, bool]:
        """(what the window uses now, whether that is the built-in demo model)."""
        return self.window.model_path, self.window.analyses.model_is_demo()

    def open_preferences(self) -> None:
        in_use, demo = self.models_in_use()
        dialog = PreferencesDialog(self.window.settings, self.window, in_use=in_use, in_use_is_demo=demo,
                                   session_only=self.window.session_only)
        if dialog.exec():
            self.apply_settings(dialog.settings())

    def remember(self, **changes) -> None:
        """A value the window keeps for the next session (the last export folder): saved in the background."""
        self.window.settings = dataclasses.replace(self.window.settings, **changes)
        self._save(self.window.settings)

    def _save(self, settings: AppSettings) -> None:
        """Write the settings file in the background; a session's command-line value (--ae-title …) is not
        saved, unless changed in Preferences."""
        window = self.window
        kept = {key: saved for key, (saved, session) in window.session_only.items() if getattr(settings, key) == session}
        saver = window._track(Worker(save_settings_task, dataclasses.replace(settings, **kept)))
        saver.error.connect(window._on_error)
        window._settings_worker = saver.start()

    def apply_settings(self, settings: AppSettings) -> None:
        """Take new preferences; an empty model field means the built-in demo model, never "none"."""
        window = self.window
        reader_changed = (settings.reader_name or "reader") != window._reader()
        unnamed = 'unnamed ("reader")'  # "the reader stays reader" read as a slip
        stayed = (f"the reader stays {window.settings.reader_name or unnamed}: the question about this exam's form "
                  "was cancelled (choose the reader again in Preferences)")
        if reader_changed and not window.reading.leave_or_ask(lambda: self.apply_settings(settings), stayed=stayed):
            # the previous reader's change after the commit is recorded or discarded first; the rest applies now
            self.apply_settings(dataclasses.replace(settings, reader_name=window.settings.reader_name))
            window.statusBar().showMessage(f"the reader becomes {settings.reader_name or unnamed} once the question "
                                           "about this exam's form is answered", 15_000)
            return
        if reader_changed and window.exam is not None:  # the form's draft is the previous reader's: saved as theirs
            window._save_timer.stop()
            window.reading.save_reads(committed=window.committed)
        models_changed = settings.model_path != window.settings.model_path
        analysis_changed = models_changed or (settings.device, settings.mode) != (window.settings.device,
                                                                                  window.settings.mode)
        revealed = (window.settings.blind_first and not settings.blind_first and window.exam is not None
                    and not window.committed and window.result is not None)
        window.settings = settings
        if revealed:  # said: the read in progress is no longer an opinion formed without the model
            window.statusBar().showMessage("Blind reading is off: the model is shown, and this exam's read is "
                                           "recorded as read with the AI shown, even if blind reading is turned on "
                                           "again before the commit.", 15_000)
        if models_changed:
            window.model_path = window._configured_models()
            window._groups, window._groups_key = None, None
        if reader_changed:  # another reader: what is on screen and held ahead shows the previous one's reads
            window.worklist.change_reader()
        elif analysis_changed:
            window.worklist.forget_analyses()
        window.overlays_box.setChecked(settings.show_overlays or window.overlays_box.isChecked())
        window.scores.reader.setTitle(reader_title(settings.reader_name))
        window.hanging.set_exam_window(window.hanging.exam_window, linked=settings.link_window)
        self._save(settings)
        window.analyses.update_model_banner()
        window.reading.apply_blind_state()
        self.apply_scp()
        if analysis_changed and window.exam is not None and not reader_changed:
            # the result on screen is the previous models' (or device's, or mode's): analysed again, not left to
            # pass for the new ones (Run analysis offered it as "restored with the same models and mode")
            window.restored = False
            running = window.analysis_worker
            if running is not None and running.is_running():
                running.cancel()  # the previous models' analysis: not waited for, and its result never drawn
            window.analyses.start_analysis()
