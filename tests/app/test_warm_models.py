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
