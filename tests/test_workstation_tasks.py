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


@pytest.mark.parametrize("marked_view, taken", [("R-CC", True), ("R-MLO", False)])
def test_a_read_of_the_study_is_found_across_a_retake_by_the_workstation_and_the_report_alike(tmp_path, marked_view,
                                                                                              taken):
    """One key for the workstation and the report of the batch (the report looked under the new images' key and
    found nothing); a read with a mark on the image that changed is not taken for the new image (its mark would
    point at the wrong place there): kept with its images, said."""
    from app.analysis import reader_read_key
    from app.archive.unit import committed_read
    from app.study.store import BreastRead, ReaderMark, Store
    from inference.intake.exam import load_exam
    from tests.inference.intake.dicom_factory import make_dataset, sample_pixels, write

    folder = tmp_path / "study"
    folder.mkdir()
    for view in ("R-CC", "R-MLO"):
        write(make_dataset(sample_pixels(view), view, AcquisitionDateTime="20260101090000"), folder, f"{view}.dcm")
    store = Store(tmp_path / "store.sqlite")
    key, earlier = reader_read_key(store, load_exam(folder), "dr A")
    assert earlier is None
    store.save_marks(key, "dr A", [ReaderMark(marked_view, 300.0, 200.0, "mass", 4)]).result()
    store.save_reads(key, "dr A", [BreastRead("R", 0.3, committed=True)]).result()
    write(make_dataset(sample_pixels("R-MLO")[:, :-8].copy(), "R-MLO", AcquisitionDateTime="20260101093000"),
          folder, "R-MLO_retake.dcm")
    retake = load_exam(folder)
    new_key, earlier = reader_read_key(store, retake, "dr A")
    assert earlier is not None and earlier.changed == ("R-MLO",) and earlier.committed
    reads, marks, note = committed_read(store, retake, "dr A")
    if taken:
        assert new_key == key and reads["R"].malignant == 0.3 and [m.view for m in marks] == ["R-CC"]
        assert note == earlier.note() and "amend it if the new image changes it" in note
    else:
        assert new_key != key and earlier.marked == ("R-MLO",) and (reads, marks, note) == ({}, (), "")
        assert "with marks on the earlier R-MLO: it is kept with the images it was made on" in earlier.note()
    from app.analysis import claimed_exam_key

    assert reader_read_key(store, retake, "dr B") == (claimed_exam_key(store, retake), None)  # no read of hers
    assert committed_read(store, retake, "dr B") == ({}, (), "")
    store.close()
