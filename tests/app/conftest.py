"""GUI test fixtures: offscreen Qt, an isolated settings/store folder, a model stub, no dangling threads."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from tests.helpers import BrightSpotGMIC, make_stub_model, synthetic_view, write_png  # noqa: E402, F401


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMMO_READER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(autouse=True)
def no_dangling_threads(qtbot):
    yield
    from app.ui.worker import running_workers

    qtbot.waitUntil(lambda: running_workers() == 0, timeout=60_000)
    assert running_workers() == 0


def close_windows_then(store) -> None:
    """Close every window (their closeEvent flushes pending saves) before the store they write to."""
    from PySide6.QtWidgets import QApplication

    for widget in QApplication.topLevelWidgets():
        widget.close()
    store.close()


@pytest.fixture
def store(store):
    """The suite's one store, closed only after every window that writes to it."""
    yield store
    close_windows_then(store)


@pytest.fixture(scope="session")
def stub_model():
    return make_stub_model()


def open_one_view(qtbot, store, folder, models, image, name: str = "0_R-CC.png"):
    """A main window (overlays on, not blinded) that has opened ``folder`` holding ``image`` as one PNG view
    and finished analysing it with ``models``."""
    from app.settings import AppSettings
    from app.ui.workstation.main_window import MainWindow

    write_png(folder / name, image)
    window = MainWindow(AppSettings(blind_first=False, show_overlays=True), store)
    qtbot.addWidget(window)
    window.resize(1500, 900)
    window.show()
    window.use_models(models)
    with qtbot.waitSignal(window.analysisFinished, timeout=120_000):
        window.open_exam(folder)
    return window


STALL_LIMIT_S = 0.25  # a real freeze fails; a loaded CI machine's scheduling hiccups do not (typically ~20 ms)


class StallProbe:
    """The longest gap between 5 ms timer ticks on the GUI thread while the ``with`` block runs: how long the
    event loop was blocked (what a reader would feel as a frozen screen)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.ticks: list[float] = []
        self.longest = 0.0
        self.duration = 0.0
        self.collections: list[tuple[int, float]] = []  # Python's garbage collections meanwhile: (generation, s)

    def __enter__(self) -> StallProbe:
        import gc
        import time

        from PySide6.QtCore import QTimer

        self._timer = QTimer()
        self._timer.setInterval(5)
        self._timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        self._collecting: dict[int, float] = {}
        # What the test process holds from the hundreds of tests before this one is no reader's: a full collection
        # of it took 0.8 s here, in the middle of a probe, stopping every thread. It is collected now and frozen
        # (left out of the collections) while the probe measures; what the measured work makes is collected as
        # it would be, and said beside the longest stall.
        gc.collect()
        gc.freeze()
        gc.callbacks.append(self._on_collection)
        self._started = time.perf_counter()
        self._timer.start()
        return self

    def _on_collection(self, phase: str, info: dict) -> None:
        """A collection in any thread stops them all (it holds the GIL): said beside a long stall."""
        import time

        if phase == "start":
            self._collecting[info["generation"]] = time.perf_counter()
        elif info["generation"] in self._collecting:
            started = self._collecting.pop(info["generation"])
            self.collections.append((info["generation"], time.perf_counter() - started))

    def __exit__(self, *exc) -> None:
        import gc
        import time

        self._timer.stop()
        gc.callbacks.remove(self._on_collection)
        gc.unfreeze()
        self.duration = time.perf_counter() - self._started
        marks = [self._started, *self.ticks]
        self.longest = max((b - a for a, b in zip(marks, marks[1:])), default=0.0)

    def report(self, capsys) -> str:
        slowest = max(self.collections, key=lambda c: c[1], default=None)
        collected = (f"; {len(self.collections)} garbage collection(s), the longest {1000 * slowest[1]:.1f} ms "
                     f"(generation {slowest[0]})") if slowest else ""
        line = (f"{self.what} {self.duration:.2f} s, {len(self.ticks)} ticks, longest event-loop stall "
                f"{1000 * self.longest:.1f} ms{collected}")
        with capsys.disabled():
            print(f"\n[stall probe] {line}")
        return line


def settle() -> None:
    """Handle every event already posted (layouts, view ranges, repaints, queued signals) until none is left:
    what a fixed ``qtbot.wait`` hoped had happened, without a clock."""
    from PySide6.QtCore import QCoreApplication, QEventLoop

    app = QCoreApplication.instance()
    for _ in range(5):  # events handled may post more (a layout posts a resize, which posts a repaint)
        QCoreApplication.sendPostedEvents()
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents)


def open_and_wait(qtbot, window, source, analysis=False):
    """Open ``source`` and wait for the exam (or, with ``analysis``, its analysis) to be shown and laid out."""
    signal = window.analysisFinished if analysis else window.examShown
    with qtbot.waitSignal(signal, timeout=120_000):
        window.open_exam(source)
    settle()
