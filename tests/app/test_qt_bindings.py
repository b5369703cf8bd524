"""The Qt bindings themselves: a binding that drops a reference to None on every call returning nothing
(PySide6-Essentials 6.12.0 on Python 3.11) aborts a reading session after some ten thousand calls."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication, QLabel


def test_calls_that_return_nothing_keep_none_alive(qtbot):
    label = QLabel()
    qtbot.addWidget(label)
    app = QApplication.instance()
    before = sys.getrefcount(None)
    for _ in range(2000):
        label.setText("x")
        label.setVisible(False)
        app.processEvents()
    assert sys.getrefcount(None) - before > -200, "the Qt bindings release None: pin another PySide6 release"
