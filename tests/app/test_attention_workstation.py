"""The attention CNN in the workstation: seven classes spelled out, no P(malignant) or hybrid without a
malignancy rule (and saying why), the attention map drawn in viridis on the breast, its regions."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from app.ui.workstation.main_window import grab_png
from inference.families.attention_cnn.mias import CLASSES
from inference.intake.views import View
from tests.app.conftest import open_one_view
from tests.helpers import make_attention_stub, synthetic_view

LESION = (700, 500)



def test_the_attention_map_is_drawn_in_viridis_on_the_breast(qtbot, store, tmp_path):
    from app.colours import colormap_rgb

    window = open_one_view(qtbot, store, tmp_path, [make_attention_stub(region_threshold=0.9)],
                           synthetic_view("R-CC", LESION, shape=(1600, 900)))
    widget = window.hanging.views[View.R_CC]
    heat = widget.heatmap_item(None)
    assert heat is not None and heat.isVisible()
    lut = heat.lut if not callable(heat.lut) else heat.lut(heat.image)
    assert np.array_equal(np.asarray(lut)[-1, :3], colormap_rgb("viridis")[-1])  # the top of viridis: yellow
    i, j = np.unravel_index(np.argmax(heat.image), heat.image.shape)
    peak = heat.mapToItem(widget.image_item, QPointF(j + 0.5, i + 0.5))
    assert abs(peak.y() - LESION[0]) < 1600 / 7 and abs(peak.x() - LESION[1]) < 900 / 7
    far = heat.mapToItem(widget.image_item, QPointF(heat.image.shape[1], heat.image.shape[0]))
    assert far.x() == pytest.approx(900) and far.y() == pytest.approx(1600)  # the map covers the stored image
    assert widget.patch_boxes() and "attention region" in window.gallery.lists[View.R_CC].item(0).text()
    entry = window.result.entries[0]
    table = window.scores.model_tables[entry.id]
    headers = [table.horizontalHeaderItem(k).text().replace("\n", " ") for k in range(table.columnCount())]
    assert [h for h in headers if h.replace(" ", "_") in CLASSES] == [c.replace("_", " ") for c in CLASSES]
    assert "P(malignant)" not in headers
    texts = " ".join(label.text() for label in window.scores.findChildren(type(window.scores.reader.saved_label)))
    assert "findings only" in texts
    assert "(no model gives one)" in window.scores.compare_box.title()
    grab_png(window, tmp_path / "attention.png")
