"""GlimpseNet in the workstation: three classes spelled out with P(malignant) deciding, the saliency map in
viridis on the (mirrored) breast, the glimpses as regions captioned "glimpse" with their own probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from app.ui.workstation.main_window import grab_png
from inference.families.glimpsenet.family import CLASSES
from inference.intake.views import View
from tests.app.conftest import open_one_view
from tests.helpers import make_glimpse_stub, synthetic_view

LESION = (700, 300)



def test_saliency_and_glimpses_on_the_breast(qtbot, store, tmp_path):
    window = open_one_view(qtbot, store, tmp_path, [make_glimpse_stub()],
                           synthetic_view("R-CC", LESION, shape=(1600, 900)))
    widget = window.hanging.views[View.R_CC]
    heat = widget.heatmap_item(None)
    assert heat is not None and heat.isVisible()
    i, j = np.unravel_index(np.argmax(heat.image), heat.image.shape)
    peak = heat.mapToItem(widget.image_item, QPointF(j + 0.5, i + 0.5))
    assert abs(peak.y() - LESION[0]) < 20 and abs(peak.x() - LESION[1]) < 20  # through crop, mirror and resize
    boxes = widget.patch_boxes()
    assert len(boxes) == 1
    qtbot.waitUntil(lambda: window.gallery.lists[View.R_CC].count() == 1, timeout=5000)
    caption = window.gallery.lists[View.R_CC].item(0).text()
    assert "glimpse" in caption and "attention" not in caption
    table = window.scores.model_tables[window.result.entries[0].id]
    headers = [table.horizontalHeaderItem(k).text().replace("\n", " ") for k in range(table.columnCount())]
    assert [h for h in headers if h.replace(" ", "_") in CLASSES] == [c.replace("_", " ") for c in CLASSES]
    decision = window.result.exam[window.result.entries[0].id]
    assert decision.breast.value == "R" and decision.malignant == pytest.approx(
        window.result.views[View.R_CC].entries[window.result.entries[0].id].probabilities["malignant"])
    # no class has a map: no class switches, the saliency's own colour map as the legend
    from PySide6.QtWidgets import QLabel

    assert window._class_boxes == {}  # noqa: SLF001
    assert window.findChild(QLabel, "layerLegend_saliency").text() == "saliency"
    grab_png(window, tmp_path / "glimpsenet.png")
