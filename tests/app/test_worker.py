"""The generic worker: result, progress, cancel, error — all delivered on the GUI thread."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QThread

from app.ui.worker import Worker
from inference.exam import ExamError
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
    with qtbot.waitSignal(worker.result, timeout=5000) as blocker:
        worker.start()
    assert blocker.args == [10]
    qtbot.waitUntil(lambda: len(seen) == 5)
    assert all(on_gui for *_, on_gui in seen)
    qtbot.waitSignal(worker.finished, timeout=5000)


def test_cancel_is_a_normal_outcome(qtbot):
    worker = Worker(counting, 1000)
    errors = []
    worker.error.connect(errors.append)
    worker.start()
    worker.cancel()
    with qtbot.waitSignal(worker.finished, timeout=5000):
        pass
    assert not errors


def test_error_is_delivered_not_raised(qtbot):
    def failing(*, progress, cancel):
        raise ExamError("the file is damaged", "/tmp/x.dcm")

    worker = Worker(failing)
    with qtbot.waitSignal(worker.error, timeout=5000) as blocker:
        worker.start()
    assert isinstance(blocker.args[0], ExamError) and "x.dcm" in str(blocker.args[0])
    qtbot.waitSignal(worker.finished, timeout=5000)


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
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
