"""One generic worker for long work written with ``progress(stage, done, total)`` / ``cancel()`` callbacks.

The function runs on its own ``QThread`` inside a small runner object that lives there. The public
:class:`Worker` lives in the GUI thread and re-emits the runner's signals through queued connections, so
every slot connected to a ``Worker`` signal (lambdas included) runs on the GUI thread, and background code
never touches a widget. Cancel sets a flag the function polls between stages; a cancel is a normal
outcome (``cancelled``), not an error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from inference.errors import Cancelled

logger = logging.getLogger(__name__)

_RUNNING: set[Worker] = set()  # keeps workers alive until their thread ends


class _Runner(QObject):
    """Lives on the worker thread; calls the function and reports through its own signals."""

    progressed = Signal(str, int, int)
    succeeded = Signal(object)
    failed = Signal(object)
    was_cancelled = Signal()

    def __init__(self, function: Callable[..., Any], args: tuple, kwargs: dict, cancel: threading.Event) -> None:
        super().__init__()
        self._function, self._args, self._kwargs, self._cancel = function, args, kwargs, cancel

    @Slot()
    def run(self) -> None:
        try:
            value = self._function(
                *self._args, progress=self.progressed.emit, cancel=self._cancel.is_set, **self._kwargs
            )
        except Cancelled:
            self.was_cancelled.emit()
        except Exception as error:  # noqa: BLE001 - delivered to the GUI's one error handler
            logger.info("background task failed: %s", type(error).__name__)
            self.failed.emit(error)
        else:
            if self._cancel.is_set():
                self.was_cancelled.emit()
            else:
                self.succeeded.emit(value)
        finally:
            self.thread().quit()


class Worker(QObject):
    """Runs ``function(*args, progress=..., cancel=..., **kwargs)`` on a QThread.

    Signals (all delivered on the GUI thread): ``progress(stage, done, total)``, ``result(value)``,
    ``error(exception)``, ``cancelled()``, and ``finished()`` after any of the three outcomes, once the
    thread has stopped.
    """

    progress = Signal(str, int, int)
    result = Signal(object)
    error = Signal(object)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._cancel = threading.Event()
        self._thread = QThread()
        self._thread.setObjectName(f"worker:{getattr(function, '__name__', 'task')}")
        self._runner = _Runner(function, args, kwargs, self._cancel)
        self._runner.moveToThread(self._thread)
        # bound methods of this GUI-thread object: queued across the thread boundary
        self._runner.progressed.connect(self._relay_progress)
        self._runner.succeeded.connect(self._relay_result)
        self._runner.failed.connect(self._relay_error)
        self._runner.was_cancelled.connect(self._relay_cancelled)
        self._thread.started.connect(self._runner.run)
        self._thread.finished.connect(self._on_thread_finished)

    def start(self, background: bool = False) -> Worker:
        """Start the thread; ``background`` runs it at the lowest priority (prefetch yields to the exam on
        screen)."""
        _RUNNING.add(self)
        self._thread.start(QThread.Priority.LowestPriority if background else QThread.Priority.InheritPriority)
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, msecs: int = 30_000) -> bool:
        return self._thread.wait(msecs)

    @Slot(str, int, int)
    def _relay_progress(self, stage: str, done: int, total: int) -> None:
        self.progress.emit(stage, done, total)

    @Slot(object)
    def _relay_result(self, value: object) -> None:
        self.result.emit(value)

    @Slot(object)
    def _relay_error(self, error: object) -> None:
        self.error.emit(error)

    @Slot()
    def _relay_cancelled(self) -> None:
        self.cancelled.emit()

    @Slot()
    def _on_thread_finished(self) -> None:
        _RUNNING.discard(self)
        self.finished.emit()


def running_workers() -> int:
    """How many workers have not finished (tests check that none dangle)."""
    return len(_RUNNING)
