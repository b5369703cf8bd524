"""Models side by side: labels that tell two checkpoints apart, one column per model that fits the panel for up
to four models, and N flipping the drawn maps between the models in place."""

from __future__ import annotations

from dataclasses import replace

from app.model_comparison import member_label, short_labels, unique_labels
from inference.families.protocol import LoadedModel
from inference.results.exam_result import ModelEntry
from tests.helpers import synthetic_view, write_png


def _stub(base: LoadedModel, path: str, sha256: str, published: str | None = None) -> LoadedModel:
    return LoadedModel(model=base.model, identity=replace(base.identity, path=path, sha256=sha256,
                                                           published_name=published))


def _entry(entry_id: str, identity) -> ModelEntry:
    return ModelEntry(entry_id, identity.label, identity.family, identity.classes, identity.malignancy,
                      identity.exclusive, (identity,))


def test_labels_name_family_file_and_short_hash_and_stay_unique(stub_model):
    a = _stub(stub_model, "/models/a/seeded_state_dict.pt", "ab12cd34ef" * 6).identity
    b = _stub(stub_model, "/models/b/seeded_state_dict.pt", "99887766aa" * 6).identity
    published = _stub(stub_model, "/models/sample_model_1.p", "1234" * 16, "sample_model_1.p").identity
    assert member_label(a) == "gmic · seeded_state_dict.pt · ab12cd34"
    assert member_label(published) == "gmic · sample_model_1.p (published)"
    labels = unique_labels([_entry("x", a), _entry("y", b), _entry("z", a), _entry("p", published)])
    assert labels == {"x": "gmic · seeded_state_dict.pt · ab12cd34", "y": "gmic · seeded_state_dict.pt · 99887766",
                      "z": "gmic · seeded_state_dict.pt · ab12cd34 #2", "p": "gmic · sample_model_1.p (published)"}


def test_short_labels_name_the_family_and_only_then_the_hash(stub_model):
    """Headers and the status bar: the family alone where it is the only one (it was the internal entry id,
    "seeded_state_dict-2", or four times "seeded_state_dict.pt")."""
    a = _stub(stub_model, "/models/a/seeded_state_dict.pt", "ab12cd34ef" * 6).identity
    b = _stub(stub_model, "/models/b/seeded_state_dict.pt", "99887766aa" * 6).identity
    glam = replace(a, family="glam", sha256="")
    assert short_labels([("x", [a]), ("g", [glam])]) == {"x": "gmic", "g": "glam"}
    assert short_labels([("x", [a]), ("y", [b]), ("z", [a]), ("e", [a, b])]) == {
        "x": "gmic · ab12cd34", "y": "gmic · 99887766", "z": "gmic · ab12cd34 #2", "e": "gmic · ab12cd34 (ensemble of 2)"}
    unhashed = [replace(a, sha256="", path="/m/first.pt"), replace(a, sha256="", path="/m/second.pt")]
    assert short_labels([("p", [unhashed[0]]), ("q", [unhashed[1]])]) == {"p": "gmic · first.pt", "q": "gmic · second.pt"}


def test_four_models_side_by_side_without_scrolling_and_n_flips_the_maps(qtbot, tmp_path, stub_model):
    from PySide6.QtCore import Qt

    from app.settings import AppSettings
    from app.ui.workstation.hanging import Layout
    from app.ui.workstation.main_window import MainWindow
    from inference.intake.views import View

    folder = tmp_path / "exam"
    folder.mkdir()
    write_png(folder / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    write_png(folder / "0_L-CC.png", synthetic_view("L-CC", (600, 250)))
    models = [_stub(stub_model, "/models/a/seeded_state_dict.pt", "ab12cd34" * 8),
              _stub(stub_model, "/models/b/seeded_state_dict.pt", "99887766" * 8),
              _stub(stub_model, "/models/sample_model_1.p", "1234" * 16, "sample_model_1.p"),
              _stub(stub_model, "/models/c/finetuned.pt", "feedbeef" * 8)]
    window = MainWindow(AppSettings(blind_first=False, show_overlays=True, auto_run=True))
    qtbot.addWidget(window)
    window.resize(1600, 1000)
    window.show()
    qtbot.waitExposed(window)
    window.use_models(models)
    with qtbot.waitSignal(window.analysisFinished, timeout=120_000):
        window.open_exam(folder)
    table = window.scores.side_by_side
    qtbot.waitUntil(table.isVisible, timeout=5000)
    headers = [table.item(0, i).toolTip() for i in range(1, table.columnCount())]
    assert headers == ["gmic · seeded_state_dict.pt · ab12cd34", "gmic · seeded_state_dict.pt · 99887766",
                       "gmic · sample_model_1.p (published)", "gmic · finetuned.pt · feedbeef"]
    rows = [table.item(r, 0).text() for r in range(table.rowCount())]
    assert rows == ["model", "P(malignant) right", "P(malignant) left", "P(malignant) exam", "Exam decision",
                    "Operating point"]
    assert table.item(1, 1).text().endswith("%") and table.item(5, 1).text() == "none declared (uncalibrated)"
    # no scrolling: every column within the table's width, every row within its height
    qtbot.waitUntil(lambda: table.horizontalScrollBar().maximum() == 0 and table.verticalScrollBar().maximum() == 0,
                    timeout=5000)
    assert table.horizontalHeader().length() <= table.viewport().width()
    # nothing elided: a word wider than its column ("(uncalibrated)", "(temperature)") breaks, and every cell's
    # wrapped text fits its row
    from PySide6.QtCore import QRect
    from PySide6.QtGui import QFontMetrics
    from PySide6.QtWidgets import QStyle

    assert table.textElideMode() == Qt.TextElideMode.ElideNone
    table.ensurePolished()
    metrics = QFontMetrics(table.font())  # the style sheet's size
    margin = 2 * (table.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, table) + 1)
    wrap = Qt.TextFlag.TextWordWrap | Qt.TextFlag.TextWrapAnywhere
    for row in range(table.rowCount()):
        for column in range(table.columnCount()):
            text = table.item(row, column).text()
            needed = metrics.boundingRect(QRect(0, 0, table.columnWidth(column) - margin, 10_000), wrap, text).height()
            assert needed <= table.rowHeight(row), (row, column, text)
    # the reader | model | hybrid table names each model and its hybrid by the short label, in full in the tooltip
    compare = window.scores.compare
    names = [compare.horizontalHeaderItem(i).text() for i in range(compare.columnCount())]
    assert names[:4] == ["breast", "reader", "gmic · ab12cd34", "hybrid (gmic · ab12cd34)"]
    assert compare.horizontalHeaderItem(2).toolTip() == "gmic · seeded_state_dict.pt · ab12cd34"
    assert window.scores.hybrid_basis.text().startswith("hybrid (gmic · ab12cd34): mean of the reader and ")
    assert window.device_label.text().endswith("gmic · ab12cd34, gmic · 99887766, gmic · sample_model_1.p, gmic · feedbeef")
    # and the arithmetic that gave the numbers on screen (a radiologist found the mode said nowhere on screen)
    assert window.device_label.text().startswith(f"cpu, {window.result.provenance.mode.value} · ")
    assert window.device_label.toolTip().startswith(f"{window.result.provenance.mode.value} mode: ")
    # the tool bar's chooser names the models as uniquely; N flips the drawn maps in place
    combo = window.entry_combo
    assert len({combo.itemText(i) for i in range(combo.count())}) == 4
    window.hanging.set_layout(Layout.CC)
    first = window.entry_id or combo.itemData(0)
    window.activateWindow()
    qtbot.keyClick(window.hanging, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: window.entry_id == combo.itemData(1), timeout=5000)
    assert window.entry_id != first and window.hanging.layout_mode == Layout.CC
    qtbot.waitUntil(lambda: window.hanging.views[View.R_CC].result is not None, timeout=10_000)
    for _ in range(3):
        window.findChild(type(window.hanging_steps.next_action), "nextModelMaps").trigger()
    assert window.entry_id == combo.itemData(0)  # round the four and back to the first
    window.close()
