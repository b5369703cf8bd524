"""Log records the workstation also shows in its status bar (e.g. a DICOMweb password sent over plain http).

The Qt-free code only logs; this handler picks the flagged records on whatever thread logged them and hands
the line to the GUI thread through a queued signal."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal


class StatusLogNotices(QObject):
    """Attach with ``attach()``, detach with ``detach()`` (the window's close); ``line(str)`` is emitted for
    each record of ``logger_name`` that carries ``flag`` in its ``extra``."""

    line = Signal(str)

    def __init__(self, logger_name: str, flag: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._logger = logging.getLogger(logger_name)
        self._handler = _FlaggedHandler(flag, self.line.emit)

    def attach(self) -> None:
        self._logger.addHandler(self._handler)

    def detach(self) -> None:
        self._logger.removeHandler(self._handler)


class _FlaggedHandler(logging.Handler):
    def __init__(self, flag: str, emit_line) -> None:
        super().__init__(logging.WARNING)
        self._flag = flag
        self._emit_line = emit_line

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, self._flag, False):
            try:
                self._emit_line(record.getMessage())
            except RuntimeError:  # the window was deleted without being closed: nobody to show it to
                pass
