"""Issue 31: the workstation warms its models in the background once the window is up (torch, the weights, the
copies for the device and mode), and an exam opened meanwhile is analysed as soon as they are ready — once."""

from __future__ import annotations

from app.demo import demo_model_path
from app.settings import AppSettings
from app.ui.workstation.main_window import MainWindow
from inference.families.common import _COPIES
from tests.helpers import synthetic_view, write_png


def test_models_warm_after_the_window_is_up_and_an_exam_waits_for_them(qtbot, store, tmp_path):
    model = demo_model_path()
    assert model is not None
    write_png(tmp_path / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = MainWindow(AppSettings(blind_first=True, auto_run=True, device="cpu", mode="exact"), store,
                        model_path=str(model))
    qtbot.addWidget(window)
    window.show()
    worker = window.analyses.warm_models()
    assert worker is not None and window.warm_worker is worker
    assert window.analyses.warm_models() is None  # one warm-up at a time
    started = []
    window.analysisFinished.connect(lambda: started.append(window.result))
    window.open_exam(tmp_path)  # while the models are still loading: the analysis waits for them
    qtbot.waitUntil(lambda: window.warm_worker is None, timeout=60_000)
    assert window._groups is not None and window._groups_key == (str(model),)
    member = window._groups[0].members[0]
    assert ("cpu", "exact") in _COPIES.get(member.model, {})  # its copy for the device and mode is made
    qtbot.waitUntil(lambda: bool(started), timeout=120_000)
    assert started[0] is not None and window.analysis_worker is not None
    qtbot.wait(300)
    assert len(started) == 1  # analysed once, with the warmed models
    assert window.analyses.warm_models() is None  # nothing left to warm
    window.close()


class Loading:
    """The warm-up, still loading the models."""

    def is_running(self) -> bool:
        return True


def shown_exam_window(qtbot, store, tmp_path) -> MainWindow:
    """A window on a one-view exam, its analysis not started (the models not loaded yet)."""
    write_png(tmp_path / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    window = MainWindow(AppSettings(blind_first=True, auto_run=False, device="cpu", mode="exact"), store,
                        model_path=str(demo_model_path()))
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.examShown, timeout=30_000):
        window.open_exam(tmp_path)
    return window


def test_an_analysis_waiting_for_the_models_shows_progress_can_be_cancelled_and_keeps_analyse_again(
        qtbot, store, tmp_path, monkeypatch):
    import app.ui.workstation.analysis_control as control

    window = shown_exam_window(qtbot, store, tmp_path)

    window.warm_worker = Loading()
    window.analyses.start_analysis(force=True)  # "Analyse again" while the models load
    assert window._analysis_wanted and window._analysis_force
    assert window.progress.isVisible() and window.cancel_button.isVisible()  # said, and can be cancelled
    assert window.stage_label.text() == "loading models…"
    window.analyses.cancel_analysis()
    assert not window._analysis_wanted and not window.progress.isVisible() and not window.cancel_button.isVisible()
    window.analyses.start_analysis(force=True)
    started = []

    class Recorded:  # the analysis worker, recorded instead of run
        def __init__(self, *args) -> None:
            started.append(args)

        def __getattr__(self, _signal):
            return type("Signal", (), {"connect": staticmethod(lambda *_: None)})()

        def start(self, **_):
            return self

        def is_running(self) -> bool:
            return False

    monkeypatch.setattr(control, "Worker", Recorded)
    window.warm_worker = None
    window.analyses.start_analysis()  # what the warm-up's end does: the waiting one starts, still forced
    assert started and started[0][-1] is True  # force: analysed again, not restored from the store
    assert not window._analysis_wanted and not window._analysis_force


def test_the_wait_for_the_models_is_taken_down_with_the_exam(qtbot, store, tmp_path):
    window = shown_exam_window(qtbot, store, tmp_path)

    window.warm_worker = Loading()
    window.analyses.start_analysis()
    assert window.progress.isVisible() and window.stage_label.text() == "loading models…"
    window.clear_exam()  # the next exam is opened (or a failed open cleared the screen)
    assert not window.progress.isVisible() and not window.cancel_button.isVisible()
    assert window.stage_label.text() == ""
    window.warm_worker = None
