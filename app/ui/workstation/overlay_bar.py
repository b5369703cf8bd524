"""The overlay tool bar of the workstation."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSlider, QToolBar, QWidget


def build_overlay_toolbar(window) -> None:
    """The overlay tool bar: overlays on/off, whose maps, which layer, class boxes, regions, opacity."""
    bar = QToolBar("Overlays")
    bar.setObjectName("overlayToolbar")
    window.addToolBar(bar)
    window.overlays_box = QCheckBox("Overlays (H)")
    window.overlays_box.setChecked(window.settings.show_overlays)
    window.overlays_box.toggled.connect(window._apply_overlay_options)
    bar.addWidget(window.overlays_box)
    window.entry_label_action = bar.addWidget(QLabel("  maps of "))
    window.entry_combo = QComboBox()
    window.entry_combo.setObjectName("entryCombo")
    window.entry_combo.setToolTip("whose maps and regions are drawn (every model's scores are in the panel)")
    window.entry_combo.currentIndexChanged.connect(window._on_entry_chosen)
    window.entry_action = bar.addWidget(window.entry_combo)
    window.layer_combo = QComboBox()
    window.layer_combo.setObjectName("layerCombo")
    window.layer_combo.setToolTip("which of the model's maps: its main map per class, or another layer")
    window.layer_combo.currentIndexChanged.connect(window._apply_overlay_options)
    window.layer_action = bar.addWidget(window.layer_combo)
    window.classes_holder = QWidget()
    window.classes_layout = QHBoxLayout(window.classes_holder)
    window.classes_layout.setContentsMargins(4, 0, 4, 0)
    bar.addWidget(window.classes_holder)
    window.patches_box = QCheckBox("Regions (P)")
    window.patches_box.setChecked(True)
    window.patches_box.toggled.connect(window._apply_overlay_options)
    bar.addWidget(window.patches_box)
    window.all_regions_box = QCheckBox("all regions")
    window.all_regions_box.setObjectName("allRegionsBox")
    window.all_regions_box.setToolTip("also the regions below the model's operating point (dimmed); a region "
                                    "lying mostly outside the breast is never drawn")
    window.all_regions_box.toggled.connect(window._apply_overlay_options)
    bar.addWidget(window.all_regions_box)
    window.regions_note = QLabel("")
    window.regions_note.setObjectName("regionsNote")
    bar.addWidget(window.regions_note)
    bar.addWidget(QLabel("  opacity "))
    window.opacity_slider = QSlider(Qt.Orientation.Horizontal)
    window.opacity_slider.setObjectName("opacitySlider")
    window.opacity_slider.setRange(0, 100)
    window.opacity_slider.setValue(45)
    window.opacity_slider.setFixedWidth(110)
    window.opacity_slider.valueChanged.connect(window._apply_overlay_options)
    bar.addWidget(window.opacity_slider)
