"""Starting the desktop application (and the offscreen screenshot mode used by tests and docs)."""

from __future__ import annotations

import dataclasses
import logging
import os
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.pacs.nodes import StudyAddress
    from app.settings import AppSettings

logger = logging.getLogger(__name__)


def session_settings(saved: AppSettings, models: list[str] | None,
                     overrides: dict | None) -> tuple[AppSettings, dict[str, tuple]]:
    """(the settings of this session, and for each of the command line's values: (saved, this session's)).
    --models, --device, --mode and --ae-title are this session's: Preferences saved for something else keep the
    saved ones (the models given by a relative path were saved, and gone at the next start elsewhere)."""
    overrides = dict(overrides or {})
    if models:
        overrides["model_path"] = os.pathsep.join(os.path.abspath(m) for m in models)
    settings = dataclasses.replace(saved, **overrides) if overrides else saved
    return settings, {key: (getattr(saved, key), value) for key, value in overrides.items()}


def run_gui(
    exam: str | StudyAddress | None,
    *,
    models: list[str] | None = None,
    screenshot: str | None = None,
    settings_overrides: dict | None = None,
    worklist: str | None = None,
    worklist_dates: str = "today",
) -> int:
    """Open the main window (on ``exam`` when given). With ``screenshot``, render the window to that PNG
    once the exam is shown and analysed (or cannot be), then exit."""
    if screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.startup import freeze_long_lived, milestone

    from app.settings import AppSettings, store_path
    from app.study.store import Store
    from app.ui.workstation.main_window import MainWindow, grab_png

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Mammo Reader")
    from app.demo import demo_model_path

    saved = AppSettings.load()
    settings, session_only = session_settings(saved, models, settings_overrides)
    model_path = settings.model_path if models else None
    if model_path is None and not settings.model_path and demo_model_path() is not None:
        model_path = str(demo_model_path())  # the built-in default; the UI labels it as the demo model
    store, store_error = None, None
    try:
        store = Store(store_path())
    except (sqlite3.Error, OSError) as error:  # a full disk, a read-only or damaged config folder
        store_error = error
    window = MainWindow(settings, store, model_path=model_path)
    window.session_only = session_only
    if screenshot:
        window.show()
    else:
        window.showMaximized()  # a reading screen uses the whole monitor
    app.processEvents()
    milestone("window shown")
    freeze_long_lived("start-up objects")  # later collections no longer walk the imports and the window

    models_frozen = []  # once: by the warm-up, or by the first analysis when it loaded them itself

    def freeze_models(what: str) -> None:
        if not models_frozen:
            models_frozen.append(what)
            freeze_long_lived(what)

    def warm() -> None:
        worker = window.analyses.warm_models()
        if worker is not None:
            worker.finished.connect(lambda: freeze_models("warm models"))

    # the models warm in the background a second after the window is up, unless the first exam's own analysis
    # has started by then (an exam opened at start loads them itself: a warm-up beside its intake only slowed
    # its pixels, 0.26 -> 0.5 s); a study retrieved from the PACS or a worklist being read gains the load
    QTimer.singleShot(1000, window, warm)
    window.examShown.connect(lambda: milestone("exam shown"))
    window.analysisFinished.connect(lambda: milestone("analysis finished"))
    window.analysisFinished.connect(lambda: freeze_models("first analysis"))
    if store_error is not None:
        window.store_unavailable(store_error)
    status = {"code": 0}
    if screenshot:
        def finish() -> None:
            app.processEvents()
            try:
                grab_png(window, screenshot)
                print(f"wrote {screenshot}")
            except OSError as error:
                print(f"error: {error}", file=sys.stderr)
                status["code"] = 1
            app.quit()

        def on_shown() -> None:
            if window.analysis_worker is None and not window._analysis_wanted:  # no analysis running or waiting
                QTimer.singleShot(300, finish)

        def failed(error: BaseException) -> None:  # the picture is still written (it shows the message)
            from app.ui.errors import user_message  # noqa: PLC0415

            print(f"error: {user_message(error)[1]}", file=sys.stderr)
            status["code"] = 1

        window.examShown.connect(on_shown)
        window.analysisFinished.connect(lambda: QTimer.singleShot(300, finish))
        window.analysisFailed.connect(failed)
        window.loadFailed.connect(failed)
        window.loadFailed.connect(lambda _error: QTimer.singleShot(300, finish))
    from app.workstation import DEMO_EXAM

    if worklist:
        opening = window.worklist.open_source(worklist, worklist_dates)
        if screenshot:  # a worklist refused or empty shows no exam: said, the picture written, the app ends
            def empty(opened) -> None:
                if not len(opened):
                    print(f"error: the worklist {worklist} holds no exam", file=sys.stderr)
                    status["code"] = 1
                    QTimer.singleShot(300, finish)

            opening.error.connect(failed)
            opening.error.connect(lambda _error: QTimer.singleShot(300, finish))
            opening.result.connect(empty)
    else:
        window.open_exam(Path(exam) if isinstance(exam, str) else (DEMO_EXAM if exam is None else exam))
    app.exec()
    if store is not None:
        store.close()
    return status["code"]


def run_study_reading(store, study_id: int, reader: str) -> int:
    """Open the blinded reading screen of one reader."""
    from PySide6.QtWidgets import QApplication

    from app.study.reading_screen import open_reading
    from app.ui.study.window import StudyReadingWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = StudyReadingWindow(open_reading(store, study_id, reader))  # before any window is shown
    window.show()
    return app.exec()


def run_study_results(results, screenshot: str | None = None) -> int:
    """Open the coordinator's results screen (ROC curves, AUC and ORH tables, telemetry); with
    ``screenshot``, render it to that PNG and exit."""
    from PySide6.QtWidgets import QApplication

    from app.ui.workstation.main_window import grab_png
    from app.ui.study.results import StudyResultsWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = StudyResultsWindow(results)
    window.resize(1400, 900)
    window.show()
    if screenshot:
        app.processEvents()
        grab_png(window, screenshot)
        window.close()
        print(f"wrote {screenshot}")
        return 0
    return app.exec()
