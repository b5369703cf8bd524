"""The coordinator's results screen: ROC curves, AUCs with 95 % CIs, ORH tables, operating points, telemetry."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.study.analysis import Comparison
from app.study.recall import cells
from app.study.curve_figure import MARKER_SHAPES, READING_COLOURS, marker_places
from app.study.roc_curves import curve_colour, curve_dashed, roc_curves
from app.ui.forms import fit_to_screen
from app.study.results import (
    StudyResults,
    UnestimableComparison,
    comparison_test,
    write_results,
)
from app.ui.errors import show_error
from app.ui.worker import Worker
from inference.numbers import df_text, p_text, threshold_text

# app.study.curve_figure's MARKER_SHAPES as pyqtgraph's symbols: the screen's markers are the file's
SYMBOLS = {"circle": "o", "square": "s", "triangle down": "t", "diamond": "d", "star": "star", "plus": "+", "x": "x",
           "triangle up": "t1"}
LEGEND_NAME = 60  # characters: a longer name is cut in its middle in the legend (it ran off the plot's left)


LEGEND_TEXT = (40, 40, 40)  # pyqtgraph's default legend text is light grey, faint on the white plots


MAX_COLUMN = 240  # px: a longer cell is cut with "…", whole in its tooltip


def _table(headers: list[str], rows: list[list[str]], name: str) -> QTableWidget:
    table = QTableWidget(len(rows), len(headers))
    table.setObjectName(name)
    table.setTabKeyNavigation(False)
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().hide()
    for i, row in enumerate(rows):
        for j, text in enumerate(row):
            item = QTableWidgetItem(text)
            item.setToolTip(text)  # whole on hover where the column cuts it
            table.setItem(i, j, item)
    table.resizeColumnsToContents()
    for column in range(table.columnCount()):  # a reason ("not estimable: …") made its column as wide as the
        table.setColumnWidth(column, min(table.columnWidth(column), MAX_COLUMN))  # screen: p and the CI off it
    return table


def _legend_name(name: str) -> str:
    """A legend's name, cut in its middle past LEGEND_NAME characters (whole in roc_LEVEL.png and the tables)."""
    if len(name) <= LEGEND_NAME:
        return name
    half = (LEGEND_NAME - 1) // 2
    return f"{name[:half]}…{name[-(LEGEND_NAME - 1 - half):]}"


def _p(test: Comparison) -> str:
    return p_text(test.p) if test.estimable else f"not estimable: {test.reason}"


def _write_task(results: StudyResults, folder: str, *, progress, cancel) -> list:  # noqa: ARG001
    from inference.errors import MammoError  # noqa: PLC0415

    progress("writing the results", 0, 1)
    try:
        return write_results(results, folder)
    except OSError as error:
        raise MammoError(f"the results could not be written ({error.strerror or error})", folder) from error


def export_line(files, folder: str) -> str:
    """The status line of an export: what was written, the files left beside them that are not this run's (named
    first: the window cut a long line short), and how many of an earlier run's were removed; then the folder."""
    line = f"exported {len(files)} file(s)"
    if files.kept_aside:
        line += f"; your files of its names kept as {', '.join(p.name for p in files.kept_aside)}"
    if files.left:
        line += f"; left as they were, not this run's: {', '.join(p.name for p in files.left)}"
    if files.removed:
        line += f"; removed {len(files.removed)} of an earlier run"
    return f"{line} — in {folder}"


class StudyResultsWindow(QMainWindow):
    exported = Signal(str)  # the folder, once the files are written

    def __init__(self, results: StudyResults, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("studyResultsWindow")
        named = f"study '{results.study}', " if results.study else ""
        self.setWindowTitle(f"Study results — {named}{results.level} level")
        self.results = results
        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("rocPlot")
        # the study's name is in the window's title and atop the side panel: in the plot's title a long one set the
        # plot's least width past its pane at 1280 px, and the pane cut off the right of the axes and the legend
        self.plot.setTitle(f"ROC, {results.level} level", color=LEGEND_TEXT)  # also a margin above 1.0
        self.plot.setLabel("bottom", "1 - specificity (false-positive rate)")
        self.plot.setLabel("left", "sensitivity (true-positive rate)")
        for side in ("bottom", "left"):
            self.plot.getAxis(side).setTextPen(LEGEND_TEXT)
        self.plot.setXRange(0, 1)
        self.plot.setYRange(0, 1)
        self.plot.addLegend(offset=(-10, -10), labelTextColor=LEGEND_TEXT)  # lower right, where ROC curves rarely are
        self.curves = self._draw_rocs()

        tabs = QTabWidget()
        # the reader-averaged rows first (their CI from ORH: random readers and cases), then each reader's (DeLong)
        rows = [[a.reader, a.modality, f"{a.auc:.3f}",
                 "no CI" if np.isnan(a.ci_low) else f"{a.ci_low:.3f} – {a.ci_high:.3f}",
                 str(a.n_positive), str(a.n_negative)] for a in [*results.reader_averages(), *results.aucs]]
        tabs.addTab(_table(["reader", "modality", "AUC", "95 % CI (DeLong;\nreader mean: ORH)", "positives",
                            "negatives"], rows, "aucTable"), "AUCs")
        orh_rows = []
        for name, r in results.comparisons.items():  # "A vs B": every difference is A − B, said by name
            means = ([f"{r.reader_mean[r.first]:.3f}", f"{r.reader_mean[r.second]:.3f}", f"{r.difference:+.4f}"]
                     if r.difference is not None else ["", "", ""])
            if isinstance(r, UnestimableComparison):
                orh_rows.append([name, *means, comparison_test(r), "", "", "", "", ""])
                continue
            orh_rows.append([name, *means, f"{r.F:.3f}", df_text(r.ddf), p_text(r.p),
                             f"{r.ci[0]:+.4f} – {r.ci[1]:+.4f}", _p(r.fixed_readers), _p(r.fixed_cases)])
        # one number a column, the readers' mean AUCs (they were one sentence a cell, and pushed F, ddf, p and the
        # CI off screen)
        # two-line headers: the ten columns fit the panel beside the curves (the last one was cut off)
        tabs.addTab(_table(["comparison\n(A vs B)", "AUC A", "AUC B", "A − B", "F", "ddf",
                            "p\n(RRRC)", "95 % CI\nof A − B", "p (fixed\nreaders)", "p (fixed\ncases)"], orh_rows,
                           "orhTable"),
                    f"ORH ({next(iter(results.comparisons.values())).method if results.comparisons else '—'})")
        tabs.addTab(_table(["model operating point", "threshold", "sensitivity", "specificity"],
                           [[p.name, threshold_text(p.threshold), f"{p.sensitivity:.3f}", f"{p.specificity:.3f}"]
                            for p in results.model_points], "pointsTable"), "Operating points")
        if results.recalls:
            tabs.addTab(self._recall_tab(results), "BI-RADS recall")
        tabs.addTab(_table(["telemetry", "count"], [[k, str(v)] for k, v in results.telemetry_summary().items()],
                           "telemetryTable"), "Telemetry")
        self.froc_curves: dict[str, object] = {}
        self.wafroc_curves: dict[str, object] = {}
        if results.localisation is not None:
            tabs.addTab(self._localisation_tab(results.localisation), "FROC / wAFROC")
        export = QPushButton("Export CSV / iMRMC / JSON…")
        export.clicked.connect(self._export)
        side = QWidget()
        layout = QVBoxLayout(side)
        heading = QLabel(f"Study '{results.study}', {results.level} level. " if results.study else "")
        heading.setText(heading.text() + "Telemetry and ground truth are for the coordinator only.")
        heading.setObjectName("resultsHeading")
        heading.setWordWrap(True)
        layout.addWidget(heading)
        cautions = [f"ORH {caution}" for caution in results.comparison_cautions()]  # as the command line says them
        if results.notes() or cautions:
            note = QLabel("\n".join(f"• {n}" for n in [*results.notes(), *cautions]))
            note.setObjectName("exclusionNote")
            note.setWordWrap(True)
            note.setStyleSheet("color: #9a5a00;")
            layout.addWidget(note)
        layout.addWidget(tabs)
        layout.addWidget(export)
        splitter = QSplitter()
        splitter.addWidget(self.plot)
        splitter.addWidget(side)
        splitter.setSizes([600, 900])
        self.setCentralWidget(splitter)
        fit_to_screen(self, 1500, 800)

    def _draw_rocs(self) -> dict[str, object]:
        curves = {}
        for index, curve in enumerate(roc_curves(self.results.records)):
            modality, colour = curve.modality, curve_colour(curve)
            style = pg.QtCore.Qt.PenStyle.DashLine if curve_dashed(curve) else pg.QtCore.Qt.PenStyle.SolidLine
            for fpr, tpr in curve.readers:  # each reader's own, thin
                self.plot.plot(fpr, tpr, pen=pg.mkPen(colour + (110,), width=1))
            pen = pg.mkPen(colour, width=3 if curve.kind == "readers" else 4, style=style)
            curves[modality] = self.plot.plot(curve.fpr, curve.tpr, pen=pen)
            # hollow markers of its own shape, each curve's at its own places along the axis: two curves that
            # coincide (aided reads that changed nothing, a hybrid equal to the model) still both show
            symbol, marks = SYMBOLS[MARKER_SHAPES[index % len(MARKER_SHAPES)]], marker_places(index)
            # hollow in the legend too: a brush of None there drew pyqtgraph's default filled grey-blue shape
            marker = {"symbol": symbol, "symbolSize": 11, "symbolPen": pg.mkPen(colour, width=2),
                      "symbolBrush": pg.mkBrush(255, 255, 255, 0)}
            markers = self.plot.plot(marks, np.interp(marks, curve.fpr, curve.tpr), pen=None, **marker)
            # the legend's: line and marker (a point of data, or the legend drew the scatter's default symbol: a
            # filled grey-blue shape whatever the curve's); a click on it hides or
            sample = pg.PlotDataItem([0.0], [0.0], pen=pen, **marker)
            self.plot.plotItem.legend.addItem(sample, _legend_name(curve.name))  # shows the curve and markers
            sample.visibleChanged.connect(
                lambda s=sample, drawn=(curves[modality], markers): [d.setVisible(s.isVisible()) for d in drawn])
        self.plot.plot([0, 1], [0, 1], pen=pg.mkPen((160, 160, 160), style=pg.QtCore.Qt.PenStyle.DashLine))
        return curves

    @staticmethod
    def _recall_tab(results: StudyResults) -> QWidget:
        """The readers' screening decisions from their BI-RADS categories, with the rule they are counted by."""
        rows = [[row.reader, row.modality, *cells(row).values(), str(row.without_category)]
                for row in results.recalls]  # "count/of percent (CI)" a cell: the table fits the side panel
        tab = QWidget()
        layout = QVBoxLayout(tab)
        rule = QLabel(results.recall_notes()[0])
        rule.setWordWrap(True)
        rule.setObjectName("recallRule")
        layout.addWidget(rule)
        layout.addWidget(_table(["reader", "modality", "recall rate\n(95 % CI)", "sensitivity\n(95 % CI)",
                                 "specificity\n(95 % CI)", "PPV\n(95 % CI)", "without\ncategory"], rows,
                                "recallTable"))
        return tab

    def _localisation_tab(self, curves) -> QWidget:
        """FROC and wAFROC curves of a study with lesions (``app.study.froc_results.LocalisationCurves``), each
        modality pooled over its readers, as the files ``study froc`` writes."""
        page = QWidget()
        layout = QVBoxLayout(page)
        plots = []
        for name, title, x_label, y_label in (
                ("frocPlot", "FROC", "non-lesion marks per case (NLF)", "lesions localised (LLF)"),
                ("wafrocPlot", "wAFROC", "normal cases with a false mark (FPF)", "weighted lesions localised (wLLF)")):
            plot = pg.PlotWidget(background="w")
            plot.setTitle(title, color=LEGEND_TEXT)
            plot.setObjectName(name)
            plot.setLabel("bottom", x_label)
            plot.setLabel("left", y_label)
            for side in ("bottom", "left"):  # rates as they are: no "x0.001" SI prefix on a 0-0.4 axis
                plot.getAxis(side).enableAutoSIPrefix(False)
                plot.getAxis(side).setTextPen(LEGEND_TEXT)
            plot.setYRange(0, 1)
            plot.addLegend(offset=(-10, -10), labelTextColor=LEGEND_TEXT)
            layout.addWidget(plot)
            plots.append(plot)
        froc_plot, wafroc_plot = plots
        wafroc_plot.setXRange(0, 1)
        for modality, curve in curves.froc.items():
            colour = READING_COLOURS.get(modality, (90, 90, 90))
            self.froc_curves[modality] = froc_plot.plot(curve.x, curve.y, pen=pg.mkPen(colour, width=3),
                                                        name=f"{modality} (readers pooled)")
        for modality, curve in curves.wafroc.items():
            colour = READING_COLOURS.get(modality, (90, 90, 90))
            mean = curves.wafroc_mean.get(modality)
            label = f"{modality} (reader-mean wAFROC {mean:.3f})" if mean is not None else modality
            self.wafroc_curves[modality] = wafroc_plot.plot(curve.x, curve.y, pen=pg.mkPen(colour, width=3),
                                                            name=label)
        if curves.cautions:
            note = QLabel("\n".join(f"• {n}" for n in curves.cautions))
            note.setObjectName("localisationNote")
            note.setWordWrap(True)
            note.setStyleSheet("color: #9a5a00;")
            layout.addWidget(note)
        return page

    def _export(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export results to")
        if folder:
            self.export_to(folder)

    def export_to(self, folder: str) -> Worker:
        """Write the results' CSV / iMRMC / JSON files in the background; the status bar says where, an error
        names the folder."""
        worker = Worker(_write_task, self.results, folder)
        worker.result.connect(lambda files: (self.statusBar().showMessage(export_line(files, folder), 30_000),
                                             self.exported.emit(folder)))
        worker.error.connect(lambda error: show_error(self, error))
        self.export_worker = worker.start()
        return worker
