"""The overlay tool bar of the workstation and its control: whose maps, which layer, which classes, regions."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPixmap
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSizePolicy, QSlider, QToolBar, QWidget

from app.colours import class_colour, layer_lut
from app.ui.workstation.view_widget import OverlayOptions
from inference.intake.views import View

CLASS_KEYS = {"benign": "B", "malignant": "M"}


def legend_pixmap(lut, width: int = 90, height: int = 12) -> QPixmap:
    """0 -> 1 of a heat layer as drawn: its (256, 4) RGBA lookup table over black."""
    pixmap = QPixmap(width, height)
    pixmap.fill(Qt.GlobalColor.black)
    painter = QPainter(pixmap)
    gradient = QLinearGradient(0, 0, width, 0)
    for index in range(0, 256, 15):
        red, green, blue, alpha = (int(v) for v in lut[index])
        gradient.setColorAt(index / 255, QColor(red, green, blue, alpha))
    red, green, blue, alpha = (int(v) for v in lut[255])
    gradient.setColorAt(1.0, QColor(red, green, blue, alpha))
    painter.fillRect(0, 0, width, height, gradient)
    painter.end()
    return pixmap


class RuleNote(QLabel):
    """The regions' rule in the tool bar: it takes the bar's room left after the controls and is cut short with
    "…" where that is less than its words (the whole line in its tooltip), so no control goes under the » button."""

    def __init__(self) -> None:
        super().__init__("")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(0)

    def sizeHint(self) -> QSize:  # the bar lays widgets out by their hint: a small one, then the expansion
        return QSize(min(super().sizeHint().width(), 120), super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip((text.strip() + "\n" if text.strip() else "") + "which of the model's regions are drawn; "
                        "\"all regions\" adds the others over the breast, dimmed")
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        shown = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, self.width())
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(self.rect(), int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), shown)
        painter.end()


def build_overlay_toolbar(window) -> None:
    """The overlay tool bar: overlays on/off, whose maps, which layer, class boxes, regions, opacity."""
    bar = QToolBar("Overlays")
    bar.setObjectName("overlayToolbar")
    window.addToolBar(bar)
    window.overlays_box = QCheckBox("Overlays (H)")
    window.overlays_box.setChecked(window.settings.show_overlays)
    window.overlays_box.toggled.connect(window.overlay_control.apply_overlay_options)
    window.overlays_box.toggled.connect(window.overlay_control.say_if_hidden)
    window.overlays_box.toggled.connect(window.overlay_control.note_asked_while_loading)
    bar.addWidget(window.overlays_box)
    window.entry_label_action = bar.addWidget(QLabel("  maps of "))
    window.entry_combo = QComboBox()
    window.entry_combo.setObjectName("entryCombo")
    window.entry_combo.setToolTip("whose maps and regions are drawn (every model's scores are in the panel)")
    window.entry_combo.currentIndexChanged.connect(window.overlay_control.on_entry_chosen)
    window.entry_action = bar.addWidget(window.entry_combo)
    window.layer_combo = QComboBox()
    window.layer_combo.setObjectName("layerCombo")
    window.layer_combo.setToolTip("which of the model's maps: its main map per class, or another layer")
    window.layer_combo.currentIndexChanged.connect(window.overlay_control.apply_overlay_options)
    window.layer_action = bar.addWidget(window.layer_combo)
    window.classes_holder = QWidget()
    window.classes_layout = QHBoxLayout(window.classes_holder)
    window.classes_layout.setContentsMargins(4, 0, 4, 0)
    bar.addWidget(window.classes_holder)
    window.patches_box = QCheckBox("Regions (P)")
    window.patches_box.setChecked(True)
    window.patches_box.toggled.connect(window.overlay_control.apply_overlay_options)
    window.patches_box.toggled.connect(window.overlay_control.say_if_hidden)
    bar.addWidget(window.patches_box)
    window.all_regions_box = QCheckBox("all regions")
    window.all_regions_box.setObjectName("allRegionsBox")
    window.all_regions_box.setToolTip("also the regions below the model's operating point (dimmed); a region "
                                    "lying mostly outside the breast is never drawn")
    window.all_regions_box.toggled.connect(window.overlay_control.apply_overlay_options)
    bar.addWidget(window.all_regions_box)
    bar.addWidget(QLabel("  opacity "))
    window.opacity_slider = QSlider(Qt.Orientation.Horizontal)
    window.opacity_slider.setObjectName("opacitySlider")
    window.opacity_slider.setRange(0, 100)
    window.opacity_slider.setValue(45)
    window.opacity_slider.setFixedWidth(110)
    window.opacity_slider.valueChanged.connect(window.overlay_control.apply_overlay_options)
    bar.addWidget(window.opacity_slider)
    # the rule's words last: on a narrow screen their tail goes under the bar's » button, never a control
    window.regions_note = RuleNote()
    window.regions_note.setObjectName("regionsNote")
    window.regions_note_action = bar.addWidget(window.regions_note)  # hidden with the model (blind reading)


BLIND_OVERLAYS_TEXT = ("The model is hidden until you commit your estimate (blind reading): its maps and regions "
                       "appear after the commit.")


class OverlayControl:
    """What of a result is drawn: whose maps, which layer and classes, regions, opacity; and the gallery."""

    def __init__(self, window) -> None:
        self.window = window

    def _entry(self):
        window = self.window
        return window.result.entry(window.entry_id) if window.result is not None else None

    def _rebuild_overlay_controls(self) -> None:
        """Entry chooser, layer chooser, class check boxes and legend from the result itself."""
        window = self.window
        window.entry_combo.blockSignals(True)
        window.entry_combo.clear()
        from app.model_comparison import unique_labels  # noqa: PLC0415

        labels = unique_labels(window.result.entries) if window.result else {}
        for entry in window.result.entries if window.result else ():
            window.entry_combo.addItem(labels[entry.id], entry.id)  # family, checkpoint, short hash: never alike
        index = window.entry_combo.findData(window.entry_id)
        window.entry_combo.setCurrentIndex(max(index, 0))
        several = window.entry_combo.count() > 1  # a widget in a tool bar is shown and hidden by its action
        window.entry_action.setVisible(several)
        window.entry_label_action.setVisible(several)
        window.entry_combo.blockSignals(False)
        entry = self._entry()
        layers = ()
        if entry is not None:
            first = next((r.result(entry.id) for r in window.result.views.values() if r.result(entry.id)), None)
            if first is not None:
                layers = first.layers
        names = list(dict.fromkeys(layer.name for layer in layers))
        window.layer_combo.blockSignals(True)
        window.layer_combo.clear()
        window.layer_combo.addItem("main map", None)
        for name in names:
            window.layer_combo.addItem(name, name)
        window.layer_action.setVisible(len(names) > 1)
        window.layer_combo.blockSignals(False)
        while window.classes_layout.count():
            item = window.classes_layout.takeAt(0)
            if item.widget() is not None:  # hidden now: deleted later, it would stay visible until then
                item.widget().hide()
                item.widget().deleteLater()
        window._class_boxes = {}
        mapped = {layer.class_name for layer in layers}
        from app.cad_marks import background_classes  # noqa: PLC0415

        members = window.hanging.members_by_entry.get(entry.id, entry.members) if entry else ()
        background = background_classes(entry.classes, members) if entry else frozenset()
        for number, name in enumerate(entry.classes if entry else (), start=1):
            if name not in mapped:  # a class without a map has nothing to switch
                continue
            key = CLASS_KEYS.get(name, f"Alt+{number}")
            box = QCheckBox(f"{name.replace('_', ' ')} ({key})")
            box.setObjectName(f"classBox_{name}")
            box.setChecked(name not in background)  # "no finding" painted over the breast says nothing
            box.toggled.connect(self.apply_overlay_options)
            legend = QLabel()
            legend.setPixmap(legend_pixmap(layer_lut("", class_colour(name, entry.classes))))
            legend.setToolTip(f"{name}: transparent at 0, full colour at 1")
            window.classes_layout.addWidget(box)
            window.classes_layout.addWidget(legend)
            window._class_boxes[name] = box
        for layer in {layer.name: layer for layer in layers if layer.class_name is None and layer.primary}.values():
            label = QLabel(layer.name)  # a map of no class (attention, saliency): its colour map, shown by H
            label.setObjectName(f"layerLegend_{layer.name}")
            legend = QLabel()
            legend.setPixmap(legend_pixmap(layer_lut(layer.colormap, (255, 255, 255))))
            from app.cad_marks import map_range  # noqa: PLC0415

            scale = map_range(members)
            legend.setToolTip(f"{layer.name}{' in ' + layer.colormap if layer.colormap else ''}, over the model's window "
                              "on the breast, at the map's own resolution (a cell may reach past the skin line); "
                              + (f"on the model's absolute scale: transparent at {scale[0]:g}, full colour at "
                                 f"{scale[1]:g}" if scale else "as the model gives it (no range in its metadata): "
                                 "transparent at 0, full colour at 1"))
            window.classes_layout.addWidget(label)
            window.classes_layout.addWidget(legend)

    def toggle_class(self, name: str) -> None:
        window = self.window
        if name in window._class_boxes:
            window._class_boxes[name].toggle()

    def toggle_class_number(self, number: int) -> None:
        entry = self._entry()
        if entry is not None and number <= len(entry.classes):
            self.toggle_class(entry.classes[number - 1])

    def overlay_options(self) -> OverlayOptions:
        window = self.window
        hidden_by_blind = window.reading.model_hidden()
        return OverlayOptions(
            visible=window.overlays_box.isChecked() and not hidden_by_blind,
            classes=frozenset(name for name, box in window._class_boxes.items() if box.isChecked()),
            layer=window.layer_combo.currentData(),
            regions=window.patches_box.isChecked() and not hidden_by_blind,
            opacity=window.opacity_slider.value() / 100.0,
            all_regions=window.all_regions_box.isChecked(),
        )

    def say_if_hidden(self, on: bool) -> None:
        """Maps or regions asked for (H, P) while blind reading hides the model: said, not silently ignored."""
        window = self.window
        if on and window.reading.model_hidden() and window.result is not None:
            window.statusBar().showMessage(BLIND_OVERLAYS_TEXT, 5000)

    def note_asked_while_loading(self, _on: bool) -> None:
        """H pressed while the next exam loads (no exam on screen) is the reader's choice for that exam: the
        exam arriving set the switch back to Preferences' default and the key press was lost."""
        if self.window.exam is None:
            self.window.overlays_asked_while_loading = True

    def apply_overlay_options(self, *_args) -> None:
        self.window.hanging.set_overlay_options(self.overlay_options())

    def on_entry_chosen(self, index: int) -> None:
        window = self.window
        if window.result is None or index < 0:
            return
        window.entry_id = window.entry_combo.itemData(index)
        self.draw_result()

    def next_entry(self) -> None:
        """Flip the drawn maps and regions to the next model, keeping the layout, zoom and window."""
        window = self.window
        count = window.entry_combo.count()
        if count > 1:
            window.entry_combo.setCurrentIndex((window.entry_combo.currentIndex() + 1) % count)
            window.statusBar().showMessage(f"maps of {window.entry_combo.currentText()}", 3000)

    def draw_result(self) -> None:
        """Draw the chosen entry's maps and regions, one view per event-loop turn (no stall)."""
        window = self.window
        result, overlays, entry_id = window.result, window.overlays, window.entry_id
        window.hanging.members_by_entry = {g.id: tuple(m.identity for m in g.members) for g in window._groups or ()}
        self._rebuild_overlay_controls()
        steps = [(lambda v=v: window.hanging.set_view_result(result, v, entry_id, overlays)) for v in window.hanging.views]
        steps.append(lambda: window.gallery.set_result(result, overlays, entry_id, window.exam))
        steps.append(window.priors.draw_prior_maps)  # the prior's maps follow the model chosen
        steps.append(window.analyses.overlays_applied)
        window._overlays_pending = True
        generation = window._generation
        # a step runs only while this result is the one on screen: another exam shown between two steps (a
        # prefetched one arrives at once) must never get this exam's maps
        window.analyses.run_steps(steps, lambda: window._current(generation) and window.result is result)

    def zoom_to_patch(self, view: View, rank: int) -> None:
        widget = self.window.hanging.views[view]
        if widget.result is None:
            return
        region = next(p for p in widget.result.regions if p.rank == rank)
        widget.zoom_to_box(region.box_original)
        widget.highlight_patch(rank)
