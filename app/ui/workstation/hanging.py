"""The screening hanging: R-CC | L-CC above R-MLO | L-MLO, right views on the left half, back to back.

Layouts: four views, CC pair, MLO pair, right breast (CC | MLO), left breast (CC | MLO), current above prior
(CC or MLO: the current pair above the prior's, each pair back to back; the prior's date on its labels), and
any single view (double-click toggles). Every layout places its views in its own grid and fits them to their viewports on
entry, at one physical scale (mm, where the pixel spacing is known) for the views shown. Zoom/pan can be
linked across the two views of a row: since they hang back to back, the link shares the distance from the
chest wall and the height, not raw pixel coordinates. The cross-reference (X) shows, for the point under the
cursor in one view of a breast, the band at the same depth in the other view of that breast. With a prior hung,
each prior view is registered to its current view (app.prior_registration): the cursor, the magnifier and the
cross-reference follow from either image into the other.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QGridLayout, QWidget

from app.dates import dicom_date
from app.overlay_images import OverlayImages
from app.prior_registration import ViewRegistration, prior_image
from app.ui.workstation.view_widget import MammoViewWidget, OverlayOptions
from inference.intake.breast_geometry import corresponding_band
from inference.intake.exam import Exam
from inference.intake.views import View
from inference.results.exam_result import ExamResult

PARTNER = {View.R_CC: View.L_CC, View.L_CC: View.R_CC, View.R_MLO: View.L_MLO, View.L_MLO: View.R_MLO}
OTHER_PROJECTION = {View.R_CC: View.R_MLO, View.R_MLO: View.R_CC, View.L_CC: View.L_MLO, View.L_MLO: View.L_CC}


class Layout(StrEnum):
    FOUR = "four views"
    CC = "CC pair"
    MLO = "MLO pair"
    RIGHT = "right CC + MLO"
    LEFT = "left CC + MLO"
    PRIOR_CC = "CC: current above prior"
    PRIOR_MLO = "MLO: current above prior"
    SINGLE = "single view"


# where each layout puts its views: (row, column) in its own grid
LAYOUT_GRID = {
    Layout.FOUR: {View.R_CC: (0, 0), View.L_CC: (0, 1), View.R_MLO: (1, 0), View.L_MLO: (1, 1)},
    Layout.CC: {View.R_CC: (0, 0), View.L_CC: (0, 1)},
    Layout.MLO: {View.R_MLO: (0, 0), View.L_MLO: (0, 1)},
    Layout.RIGHT: {View.R_CC: (0, 0), View.R_MLO: (0, 1)},
    Layout.LEFT: {View.L_CC: (0, 0), View.L_MLO: (0, 1)},
}
# current above prior: each pair back to back (chest walls meeting in the middle), the prior's row below
PRIOR_GRID = {
    Layout.PRIOR_CC: {View.R_CC: (0, 0), View.L_CC: (0, 1)},
    Layout.PRIOR_MLO: {View.R_MLO: (0, 0), View.L_MLO: (0, 1)},
}
LAYOUT_GRID.update(PRIOR_GRID)
LAYOUT_VIEWS = {layout: tuple(grid) for layout, grid in LAYOUT_GRID.items()}


def study_text(exam: Exam | None) -> list[str]:
    """The standard corner text: study date, accession; the patient only when the exam is identified."""
    if exam is None:
        return []
    lines = []
    if exam.study_date:
        lines.append(dicom_date(exam.study_date))
    if exam.accession:
        lines.append(f"Acc {exam.accession}")
    if exam.patient.name or exam.patient.patient_id:
        lines.append(" ".join(filter(None, [exam.patient.name.replace("^", " ").strip(), exam.patient.patient_id])))
    return lines


class HangingWidget(QWidget):
    """Four :class:`MammoViewWidget` slots in the standard screening hanging."""

    layoutChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, blinded: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName("hanging")
        # blinded (reader studies): the corner text is only the case label ("case k of n"), never the exam's
        # date, accession or patient, whatever the exam still carries
        self.blinded = blinded
        self.case_label = ""
        self.views = {view: MammoViewWidget(view) for view in LAYOUT_GRID[Layout.FOUR]}
        self.prior_views = {view: MammoViewWidget(view) for view in LAYOUT_GRID[Layout.FOUR]}
        for view, widget in self.prior_views.items():
            widget.setObjectName(f"prior_{view.value}")
            widget.mark_as_prior()
        self.prior: Exam | None = None
        self.registrations: dict[View, ViewRegistration] = {}  # prior view -> current view, per slot
        self.linked = True
        self.link_window = True  # one window/level for the exam's views (Preferences unlink it)
        self.exam_window = None  # app.exam_window.ExamWindow of the exam shown
        # entry id -> the identities of the models in memory: their display metadata (operating point) is
        # read from them, not from a stored result written before the metadata said it
        self.members_by_entry: dict[str, tuple] = {}
        self.cross_reference = False
        self.layout_mode = Layout.FOUR
        self.single: View | None = None
        self._previous_layout = Layout.FOUR
        self._syncing = False
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(3)
        for widget in self.views.values():
            widget.doubleClicked.connect(self.toggle_single)
            widget.rangeChangedByUser.connect(self._on_user_range)
            widget.pointed.connect(self._on_pointed)
            widget.windowDraggedTo.connect(self._on_window_dragged)
        for widget in self.prior_views.values():
            widget.pointed.connect(self._on_prior_pointed)
        for widget in (*self.views.values(), *self.prior_views.values()):
            widget.pointerLeft.connect(self._take_down_lenses)
        # one slot's room changed alone (its laterality warning shown): every view refitted to one scale again,
        # once the layout has settled
        self._refit_timer = QTimer(self)
        self._refit_timer.setSingleShot(True)
        self._refit_timer.setInterval(0)
        self._refit_timer.timeout.connect(lambda: self.fit_same_scale(keep_zoom=True))
        for widget in (*self.views.values(), *self.prior_views.values()):
            widget.viewportResized.connect(self._refit_timer.start)
        self._place()
        # dark around the images; a tooltip shown over them (a region's score) stays dark on light: the sheet
        # cascades to it, and it was black text on this black
        self.setStyleSheet("QWidget { background: #101010; } "
                           "QToolTip { color: #000000; background: #ffffdc; border: 1px solid #767676; }")

    def _place(self) -> None:
        for widget in (*self.views.values(), *self.prior_views.values()):
            self.grid.removeWidget(widget)
        for row in range(2):
            self.grid.setRowStretch(row, 0)
        for col in range(2):
            self.grid.setColumnStretch(col, 0)
        cells = {self.single: (0, 0)} if self.layout_mode == Layout.SINGLE else LAYOUT_GRID[self.layout_mode]
        prior_cells = PRIOR_GRID.get(self.layout_mode, {})
        for rows_down, widgets, placed in ((0, self.views, cells), (1, self.prior_views, prior_cells)):
            for view, widget in widgets.items():
                if view in placed:
                    row, col = placed[view]
                    self.grid.addWidget(widget, row + rows_down, col)
                    self.grid.setRowStretch(row + rows_down, 1)
                    self.grid.setColumnStretch(col, 1)
                    widget.show()
                else:
                    widget.hide()

    def _take_down_lenses(self) -> None:
        """The pointer left a view: the lenses that followed it into the other views go with its own (each
        comes back where the pointer moves next; the magnifier stays on)."""
        for widget in (*self.views.values(), *self.prior_views.values()):
            widget.hide_lens()

    def _take_down_followers(self) -> None:
        """The crosses and lenses that followed the cursor from the other row (they belong to a layout or a
        prior left); the magnifier stays on where it was."""
        for widget in self.views.values():
            widget.show_linked_cursor(None)
            widget.hide_lens()
        for widget in self.prior_views.values():
            widget.show_linked_cursor(None)
            widget.set_magnifier(False)

    def set_prior(self, prior: Exam | None, registrations: dict[View, ViewRegistration] | None = None) -> None:
        """The prior exam for the current-vs-prior layouts (its date on every label), or none; ``registrations``
        link each current view to the prior's image in that slot."""
        self._take_down_followers()
        self.prior = prior
        self.registrations = dict(registrations or {}) if prior is not None else {}
        # "PRIOR" is in each slot's amber marker already; the corner says which study (its date)
        text = [] if prior is None or self.blinded else study_text(prior)
        images = {view: prior_image(prior, view) if prior is not None else None for view in self.prior_views}
        file_window = every_view_has_a_window(images.values())
        for view, widget in self.prior_views.items():
            widget.set_image(images[view], text, "", file_window=file_window)
            if widget.image is None:  # say what is missing: the whole prior study, or this view of it
                widget.empty.setText("No prior study" if prior is None else f"No {view.value} image in the prior")
        self.fit_same_scale()

    def set_prior_result(self, result: ExamResult | None, entry_id: str | None = None,
                         overlays: OverlayImages | None = None) -> None:
        """The prior's maps and regions of the model chosen for the current exam (slots whose image is the
        prior's own view; an image kept aside in its place was not analysed)."""
        for view, widget in self.prior_views.items():
            own = self.prior is not None and widget.image is not None and self.prior.views.get(view) is widget.image
            self._draw_entry(widget, result if own else None, view, entry_id, overlays)

    def _follow_into_prior(self, view: View, row: float, col: float) -> None:
        """The reader's cursor in a current view: its registered place in the prior's view of that slot (a
        cross), the magnifier there too, and with the cross-reference on, the prior's bands."""
        target = self.prior_views[view]
        registration = self.registrations.get(view)
        if registration is None or target.image is None or not target.isVisible():
            return
        point = registration.to_prior(row, col)
        target.show_linked_cursor(point, registration.approximate)
        source = self.views[view]
        source.show_linked_cursor(None)  # the reader's own cursor is in this view now
        target.magnify_at(point if source._magnifier_on else None, source.magnification)
        if self.cross_reference:
            self._prior_bands(view, point, pointed_here=False)

    def _on_prior_pointed(self, view: View, row: float, col: float) -> None:
        """The reader's cursor in a prior view: its place in the current view (the inverse registration)."""
        registration = self.registrations.get(view)
        here, target = self.prior_views[view], self.views[view]
        here.show_linked_cursor(None)  # the reader's own cursor is in this view now
        lens = target._magnifier_on  # the magnifier is the reader's tool in both rows
        here.magnify_at((row, col) if lens else None, target.magnification)
        if self.cross_reference:
            self._prior_bands(view, (row, col), pointed_here=True)
        if registration is None or target.image is None:
            return
        x, y, _ = np.linalg.solve(registration.matrix, np.array([col, row, 1.0]))
        target.show_linked_cursor((float(y), float(x)), registration.approximate)
        if lens:
            target.magnify_at((float(y), float(x)), target.magnification)

    def _prior_bands(self, view: View, point: tuple[float, float], pointed_here: bool) -> None:
        """In the prior: the cross-reference band in the prior's other projection of that breast and, for a
        point followed from the current view, the band at its depth in the prior's view itself."""
        here, other = self.prior_views[view], self.prior_views[OTHER_PROJECTION[view]]
        axis, other_axis = here.breast_axis(), other.breast_axis()
        here.show_band(corresponding_band(axis, point, axis) if axis is not None and not pointed_here else None)
        other.show_band(corresponding_band(axis, point, other_axis) if axis is not None and other_axis is not None
                        else None)

    def resizeEvent(self, event):  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self.fit_same_scale()

    def set_loading(self) -> None:
        for widget in self.views.values():
            widget.set_loading()

    def set_case_label(self, text: str) -> None:
        """Blinded mode: the corner text of the next :meth:`set_exam` ("case 3 of 40")."""
        self.case_label = text

    def set_exam_window(self, window, linked: bool = True) -> None:
        """The exam's one window (``app.exam_window.ExamWindow``), used by every view when ``linked``."""
        self.exam_window = window
        self.link_window = linked
        for widget in self.views.values():
            widget.exam_window = window if linked else None

    def _on_window_dragged(self, source: View, center: float, width: float) -> None:
        if not self.link_window:
            return
        for view, widget in self.views.items():
            if view != source:
                widget.follow_window(center, width)

    def set_exam(self, exam: Exam | None) -> None:
        if self.blinded:
            text = [self.case_label] if self.case_label and exam is not None else []
        else:
            text = study_text(exam)
        conflicts = exam.laterality_conflicts if exam is not None else ()
        file_window = every_view_has_a_window(exam.views.values() if exam is not None else ())
        warnings = {view: exam.laterality_message(view) for view in conflicts} if exam is not None else {}
        for view, widget in self.views.items():
            partner = view.other_side
            widget.set_image(exam.views.get(view) if exam is not None else None, text, warnings.get(view, ""),
                             unreadable=exam.unreadable.get(view, "") if exam is not None else "",
                             file_window=file_window, partner_warning=warnings.get(partner, ""))
        self.fit_same_scale()

    def set_result(self, result: ExamResult | None, entry_id: str | None = None,
                   overlays: OverlayImages | None = None) -> None:
        for view in self.views:
            self.set_view_result(result, view, entry_id, overlays)

    def set_view_result(self, result: ExamResult | None, view: View, entry_id: str | None,
                        overlays: OverlayImages | None) -> None:
        self._draw_entry(self.views[view], result, view, entry_id, overlays)

    def _draw_entry(self, widget: MammoViewWidget, result: ExamResult | None, view: View, entry_id: str | None,
                    overlays: OverlayImages | None) -> None:
        if result is None or view not in result.views:
            widget.set_result(None)
            return
        entry = result.entry(entry_id)
        entry_result = result.views[view].result(entry.id)
        if entry_result is None:  # no result on this view (not finite, or refused): nothing to draw
            widget.set_result(None)
            return
        textures = {index: overlays.textures[(view, entry.id, index)] for index in range(len(entry_result.layers))
                    if (view, entry.id, index) in overlays.textures} if overlays else None
        from app.cad_marks import region_operating_point  # noqa: PLC0415

        members = self.members_by_entry.get(entry.id, entry.members)  # the metadata of the models loaded now
        widget.set_result(entry_result, textures, entry.classes, region_operating_point(members))

    def set_overlay_options(self, options: OverlayOptions) -> None:
        for widget in (*self.views.values(), *self.prior_views.values()):
            widget.set_overlay_options(options)

    def visible_views(self) -> tuple[View, ...]:
        if self.layout_mode == Layout.SINGLE and self.single is not None:
            return (self.single,)
        return LAYOUT_VIEWS[self.layout_mode]

    def set_layout(self, mode: Layout, single: View | None = None) -> None:
        # a cross or lens that followed the cursor from the other row belongs to the layout left
        self._take_down_followers()
        self.layout_mode = mode
        self.single = single if mode == Layout.SINGLE else None
        self._place()
        self.grid.activate()
        self.fit_same_scale()
        QTimer.singleShot(0, self, self.fit_same_scale)  # again once the new geometry has reached the views
        self.layoutChanged.emit(mode.value if mode != Layout.SINGLE else f"{single.value} alone")

    def toggle_single(self, view: View) -> None:
        if self.layout_mode == Layout.SINGLE:
            self.set_layout(self._previous_layout)
        else:
            self._previous_layout = self.layout_mode
            self.set_layout(Layout.SINGLE, view)

    def fit_same_scale(self, keep_zoom: bool = False) -> None:
        """Fit the shown images at one physical scale, the largest extent of the shown views (current and prior
        together; else each study's views at a scale of their own; else each view in its own slot: see
        :func:`one_scale`); ``keep_zoom``: only the views still fitted (one the reader or a hanging step zoomed
        stays as it is)."""
        current = [self.views[v] for v in self.visible_views() if self.views[v].image is not None]
        prior = [self.prior_views[v] for v in PRIOR_GRID.get(self.layout_mode, {})
                 if self.prior_views[v].image is not None]
        if keep_zoom:
            current, prior = [w for w in current if w.fitted], [w for w in prior if w.fitted]
        groups = [current + prior] if one_scale(current + prior) else [current, prior]
        self._syncing = True
        try:
            for group in groups:
                if one_scale(group):
                    sizes = [w.physical_size() for w in group]
                    height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
                    scale = max(w.scale_to_fit(height, width) for w in group)  # the most cramped slot's
                    for widget in group:
                        widget.show_extent(height, width, scale)
                else:  # each view fills its own slot
                    for widget in group:
                        widget.show_extent(*widget.physical_size())
        finally:
            self._syncing = False

    def reset(self) -> None:
        for widget in self.views.values():
            if widget.image is not None:
                widget.apply_preset(widget.first_preset())
                widget.set_invert(False)
        self.fit_same_scale()

    def set_linked(self, on: bool) -> None:
        self.linked = on

    def set_cross_reference(self, on: bool) -> None:
        self.cross_reference = on
        if not on:
            for widget in (*self.views.values(), *self.prior_views.values()):
                widget.show_band(None)

    def _on_pointed(self, view: View, row: float, col: float) -> None:
        self._follow_into_prior(view, row, col)
        if not self.cross_reference:
            return
        source, target = self.views[view], self.views[OTHER_PROJECTION[view]]
        source.show_band(None)
        source_axis, target_axis = source.breast_axis(), target.breast_axis()
        if source_axis is None or target_axis is None:
            target.show_band(None)
            return
        target.show_band(corresponding_band(source_axis, (row, col), target_axis))

    def _on_user_range(self, view: View) -> None:
        if not self.linked or self._syncing:
            return
        partner = self.views[PARTNER[view]]
        source = self.views[view]
        if partner.image is None or source.image is None or not partner.isVisible():
            return
        self._syncing = True
        try:
            partner.set_distance_range(*source.distance_range_from_wall())
        finally:
            self._syncing = False


def one_scale(widgets: list) -> bool:
    """Whether views can be hung at one physical scale: all have a pixel spacing (or none has: pixels then) and
    their extents lie within 3x of each other. A view in pixels beside views in millimetres, or a spacing off by a
    unit in its header, shrank the others to a few screen pixels, blank."""
    if len({widget.image.pixel_spacing is not None for widget in widgets}) > 1:
        return False
    sizes = [widget.physical_size() for widget in widgets]
    heights = [h for h, _ in sizes if h > 0]
    widths = [w for _, w in sizes if w > 0]
    return bool(heights and widths) and max(heights) <= 3 * min(heights) and max(widths) <= 3 * min(widths)


def every_view_has_a_window(images) -> bool:
    """Whether every image of a study (None for an empty slot) has a display window of its own. When one has
    none (a file without it, or one whose window is no number), every view starts on the auto window: a view
    under its file's window beside one under the auto window drew one breast denser than the other."""
    return all(image.windows for image in images if image is not None)
