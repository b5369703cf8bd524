"""The blinded reading screen: three cases read unaided, AI revealed, aided read, next."""

from __future__ import annotations

import pytest

from app.study.store import Store
from app.study.study import CaseEntry, Design, ReadingSession, compute_model_scores, create_study
from app.ui.study_window import StudyReadingWindow
from tests.app.conftest import close_windows_then, synthetic_view, write_png


@pytest.fixture
def study(tmp_path, stub_model):
    store = Store(tmp_path / "study.sqlite")
    entries = []
    for i in range(3):
        folder = tmp_path / f"exam_secret_name_{i}"
        folder.mkdir()
        write_png(folder / "0_R-CC.png", synthetic_view("R-CC", (600 + 50 * i, 500)))
        write_png(folder / "0_L-CC.png", synthetic_view("L-CC", (700, 250)))
        entries.append(CaseEntry(f"case{i}", str(folder), "normal", "malignant" if i == 1 else "normal"))
    study_id = create_study(store, "pilot", Design.SEQUENTIAL, ["A"], entries, seed=2)
    compute_model_scores(store, study_id, [stub_model], device="cpu")
    yield store, study_id
    close_windows_then(store)


def set_reader(window, right: int, left: int) -> None:
    window.reader_panel.inputs["R"].spin.setValue(right)
    window.reader_panel.inputs["L"].spin.setValue(left)


def test_read_three_cases_blinded_then_aided(qtbot, study):
    store, study_id = study
    window = StudyReadingWindow(store, study_id, "A")
    qtbot.addWidget(window)
    window.show()
    for number in range(3):
        qtbot.waitUntil(lambda: window.exam is not None and window.status_label.text() == "", timeout=30_000)
        case_id = window.case_id
        assert f"case {number + 1} of 3" in window.header.text()
        assert "secret" not in window.header.text() and "secret" not in window.windowTitle()
        assert window.exam.patient.name == ""  # de-identified
        # blinded: no AI anywhere
        assert not window.ai_box.isVisible() and not window.reveal_button.isEnabled()
        views = [w for w in window.hanging.views.values() if w.result is not None]
        assert not views
        set_reader(window, 20 + number, 10)
        with qtbot.waitSignal(window.committed, timeout=10_000) as blocker:
            window.commit()
        assert blocker.args == [case_id, "unaided"]
        assert window.reveal_button.isEnabled() and not window.next_button.isEnabled()
        window.reveal()
        qtbot.waitUntil(lambda: window.ai_box.isVisible(), timeout=10_000)
        assert "malignant" in window.ai_label.text()
        shown = [w for w in window.hanging.views.values() if w.result is not None]
        assert shown and shown[0].heatmap_item(1).isVisible()
        assert "locked" in window.locked_label.text()
        assert window.reader_panel.value("R") == pytest.approx((20 + number) / 100)  # starts from the first answer
        set_reader(window, 60, 15)
        with qtbot.waitSignal(window.committed, timeout=10_000) as blocker:
            window.commit()
        assert blocker.args == [case_id, "aided"]
        if number < 2:
            assert window.next_button.isEnabled()
            window.next_case()
            qtbot.waitUntil(lambda c=case_id: window.case_id != c, timeout=5_000)
    session = ReadingSession(store, study_id, "A")
    assert session.next_position() is None
    durations = store.read("SELECT duration_s FROM study_reads WHERE study_id=?", (study_id,))
    assert len(durations) == 12 and all(d[0] >= 0 for d in durations)
    window.close()


def test_resume_opens_at_the_first_unfinished_case(qtbot, study):
    store, study_id = study
    session = ReadingSession(store, study_id, "A")
    first = session.case_at(0).case_id
    session.commit(first, "unaided", {"L": 0.1, "R": 0.2}).result()
    session.reveal(first).result()
    session.commit(first, "aided", {"L": 0.1, "R": 0.3}).result()
    window = StudyReadingWindow(store, study_id, "A")
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.exam is not None, timeout=30_000)
    assert window.position == 1
    window.previous_case()
    qtbot.waitUntil(lambda: window.position == 0 and window.exam is not None, timeout=30_000)
    assert not window.commit_button.isEnabled()  # a finished case is read-only
    window.close()
