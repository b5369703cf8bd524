"""The generic worker: result, progress, cancel, error — all delivered on the GUI thread."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QThread

from app.ui.worker import Worker
from inference.intake.exam import ExamError
from inference.pipeline import Cancelled


def counting(n, *, progress, cancel):
    for i in range(n):
        if cancel():
            raise Cancelled()
        progress("counting", i + 1, n)
        time.sleep(0.01)
    return n * 2


def test_result_and_progress_arrive_on_the_gui_thread(qtbot):
    seen = []
    gui_thread = QThread.currentThread()
    worker = Worker(counting, 5)
    worker.progress.connect(lambda stage, done, total: seen.append((stage, done, total, QThread.currentThread() is gui_thread)))
    results = []
    worker.result.connect(results.append)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    assert results == [10]
    assert [s[:3] for s in seen] == [("counting", i, 5) for i in range(1, 6)]
    assert all(on_gui for *_, on_gui in seen)


def test_cancel_is_a_normal_outcome(qtbot):
    worker = Worker(counting, 1000)  # 10 s if it ran to the end
    outcomes = []
    worker.error.connect(lambda error: outcomes.append(("error", error)))
    worker.result.connect(lambda value: outcomes.append(("result", value)))
    worker.cancelled.connect(lambda: outcomes.append(("cancelled", None)))
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
        worker.cancel()
    assert outcomes == [("cancelled", None)]


def test_error_is_delivered_not_raised(qtbot):
    def failing(*, progress, cancel):
        raise ExamError("the file is damaged", "/tmp/x.dcm")

    worker = Worker(failing)
    errors, results = [], []
    worker.error.connect(errors.append)
    worker.result.connect(results.append)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    assert len(errors) == 1 and isinstance(errors[0], ExamError) and "x.dcm" in str(errors[0])
    assert not results


def test_background_code_runs_off_the_gui_thread(qtbot):
    where = {}

    def record(*, progress, cancel):
        where["thread"] = threading.current_thread()

    worker = Worker(record)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    assert where["thread"] is not threading.main_thread()


@pytest.mark.parametrize("n", [0, 1])
def test_quick_tasks_finish(qtbot, n):
    worker = Worker(counting, n)
    results = []
    worker.result.connect(results.append)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    assert results == [2 * n] and not worker.is_running()
