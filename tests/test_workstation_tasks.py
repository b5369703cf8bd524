"""The workstation's Qt-free tasks (app/workstation.py) and the inbox service, run without a display."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from app.pacs.inbox import InboxService
from app.settings import AppSettings
from app.study.store import BreastRead
from app.workstation import analysis_task, load_exam_task
from inference.errors import MammoError
from tests.helpers import make_stub_model, synthetic_view, write_png


def no_progress(*_args) -> None:
    pass


def test_the_tasks_import_no_qt():
    code = "import sys, app.workstation, app.pacs.inbox; print(any(m.startswith('PySide6') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_loading_hands_the_exam_with_this_readers_reads_and_one_display_window(tmp_path, store):
    (tmp_path / "exam").mkdir()
    write_png(tmp_path / "exam" / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    first = load_exam_task(tmp_path / "exam", store, "reader-a", progress=no_progress, cancel=lambda: False)
    assert [view.value for view in first.exam.views] == ["R-CC"]
    assert first.reads == {} and first.marks == [] and first.window is not None
    store.save_reads(first.key, "reader-a", [BreastRead("R", 0.4, committed=True)]).result()
    again = load_exam_task(tmp_path / "exam", store, "reader-a", progress=no_progress, cancel=lambda: False)
    other = load_exam_task(tmp_path / "exam", store, "reader-b", progress=no_progress, cancel=lambda: False)
    assert again.key == first.key and again.reads["R"].malignant == pytest.approx(0.4)
    assert other.reads == {}  # another reader's read is not this reader's


def test_an_unreadable_folder_is_a_message_naming_it(tmp_path, store):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MammoError, match="empty"):
        load_exam_task(tmp_path / "empty", store, "reader", progress=no_progress, cancel=lambda: False)


def test_analysis_goes_through_the_one_results_path_and_prepares_the_overlay_pixels(tmp_path, store):
    from inference.pipeline import as_groups

    (tmp_path / "exam").mkdir()
    write_png(tmp_path / "exam" / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    loaded = load_exam_task(tmp_path / "exam", store, "r", progress=no_progress, cancel=lambda: False)
    model = make_stub_model()
    groups = as_groups(model)
    first = analysis_task(loaded.exam, "", groups, "cpu", "exact", store, False, progress=no_progress,
                          cancel=lambda: False)
    again = analysis_task(loaded.exam, "", groups, "cpu", "exact", store, False, progress=no_progress,
                          cancel=lambda: False)
    assert first.overlays.nbytes > 0
    assert not first.analysis.restored and again.analysis.restored  # the second comes from the cache
    view = next(iter(first.analysis.result.views.values()))
    assert all(np.isfinite(p) for p in view.result(groups[0].id).probabilities.values())


def test_the_inbox_service_runs_the_scp_only_when_the_settings_ask(monkeypatch, tmp_path):
    monkeypatch.setenv("MAMMO_READER_HOME", str(tmp_path / "home"))
    started, stopped = [], []

    class FakeReceiver:
        def stop(self) -> None:
            stopped.append(self)

    def receiver(settings, folder):
        if settings.scp_port == 1:
            raise OSError(98, "Address already in use")
        started.append((settings.scp_port, folder))
        return FakeReceiver()

    monkeypatch.setattr("app.pacs.scp.workstation_receiver", receiver)
    inbox = InboxService()
    inbox.apply(AppSettings(scp_enabled=False))
    assert inbox.scp is None and "off" in inbox.describe(AppSettings())
    on = AppSettings(scp_enabled=True, scp_port=11112)
    inbox.apply(on)
    inbox.apply(on)  # the same settings: not restarted
    assert len(started) == 1 and inbox.scp is not None and "11112" in inbox.describe(on)
    with pytest.raises(MammoError, match="cannot listen.*port in Preferences"):
        inbox.apply(AppSettings(scp_enabled=True, scp_port=1))
    assert inbox.scp is None and len(stopped) == 1  # the old one stopped, the new one failed: off, said so
    inbox.apply(on)
    inbox.stop()
    assert inbox.scp is None and len(stopped) == 2


def test_what_showing_an_exam_needs_from_its_pixels_is_computed_by_the_load_task(tmp_path, store, monkeypatch):
    """The auto window (percentiles) and a VOI LUT's rendered image come with the loaded exam: pressing W or A
    on screen reads them, it never computes over the pixels on the GUI thread."""
    from tests.inference.intake.dicom_factory import make_dataset, write

    (tmp_path / "exam").mkdir()
    ds = make_dataset(synthetic_view("R-CC", (700, 500)).astype(np.uint16), "R-CC")
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 12]
    lut.LUTData = np.linspace(0, 4095, 4096).astype(np.uint16).tobytes()
    lut["LUTData"].VR = "OW"
    ds.VOILUTSequence = Sequence([lut])
    write(ds, tmp_path / "exam", "a.dcm")
    loaded = load_exam_task(tmp_path / "exam", store, "r", progress=no_progress, cancel=lambda: False)
    image = next(iter(loaded.exam.views.values()))
    assert image.needs_rendered_display()
    first_window, first_display = image.auto_window(), image.display_image(None)

    def no_pixel_work(*_args, **_kwargs):
        raise AssertionError("pixel statistics computed again")

    monkeypatch.setattr(np, "percentile", no_pixel_work)
    monkeypatch.setattr("pydicom.pixels.processing.apply_voi", no_pixel_work)
    assert image.auto_window() is first_window and image.display_image(None) is first_display
