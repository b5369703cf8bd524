"""A small reliability diagram drawn from a model's calibration metadata (no file is read: the bins are
numbers in the metadata, loaded with the model off the GUI thread)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget


def reliability_of(calibration: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The reliability bins of a calibration, or None when the metadata has none."""
    reliability = (calibration or {}).get("reliability")
    if not isinstance(reliability, Mapping) or not all(
            isinstance(reliability.get(k), Mapping) for k in ("before", "after")):
        return None
    return reliability


class ReliabilityChart(QWidget):
    """Accuracy per confidence bin, before (grey outline) and after (blue) the temperature, against the
    diagonal of perfect calibration."""

    def __init__(self, reliability: Mapping[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.reliability = reliability
        self.setMinimumSize(180, 150)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setToolTip("reliability diagram: the accuracy of the predictions in each confidence bin; the diagonal "
                        "is perfect calibration (grey: before the temperature, blue: after)")

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        margin = 22
        side = min(self.width() - 2 * margin, self.height() - 2 * margin)
        plot = QRectF(margin, 6, side, side)
        painter.fillRect(plot, QColor(250, 250, 250))

        def x(value: float) -> float:
            return plot.left() + value * plot.width()

        def y(value: float) -> float:
            return plot.bottom() - value * plot.height()

        for name, fill, outline in (("after", QColor(60, 120, 200, 170), QColor(30, 70, 140)),
                                    ("before", None, QColor(120, 120, 120))):
            data = self.reliability[name]
            edges = data.get("edges") or [i / len(data["accuracy"]) for i in range(len(data["accuracy"]) + 1)]
            for lo, hi, accuracy, count in zip(edges[:-1], edges[1:], data["accuracy"], data["count"], strict=False):
                if not count:
                    continue
                bar = QRectF(x(lo), y(accuracy), x(hi) - x(lo), y(0) - y(accuracy))
                if fill is not None:
                    painter.fillRect(bar, fill)
                painter.setPen(QPen(outline, 1))
                painter.drawRect(bar)
        painter.setPen(QPen(QColor(200, 40, 40), 1, Qt.PenStyle.DashLine))
        painter.drawLine(int(x(0)), int(y(0)), int(x(1)), int(y(1)))
        painter.setPen(QPen(QColor(60, 60, 60), 1))
        painter.drawRect(plot)
        painter.drawText(QRectF(plot.left(), plot.bottom() + 2, plot.width(), 16), Qt.AlignmentFlag.AlignCenter,
                         "confidence")
        painter.end()
