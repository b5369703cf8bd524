"""Bad input: every case either loads with warnings or raises ExamError; nothing else escapes or hangs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydicom.encaps import encapsulate

from inference.intake.exam import ExamError, ViewImage, load_exam, load_view
from tests.conftest import require_shared
from tests.inference.intake.dicom_factory import make_dataset, sample_pixels, write

# a hostile file must not hang the intake: each test is bounded (pytest-timeout), not timed
pytestmark = pytest.mark.timeout(120)


def outcome(path):
    """'ok' or 'refused'; any other exception fails the test."""
    try:
        image = load_view(path)
        assert isinstance(image, ViewImage)
        result = "ok"
    except ExamError as error:
        assert str(path.name) in str(error)  # the message names the file
        result = "refused"
    return result


@pytest.fixture(scope="module")
def good_dicom(tmp_path_factory):
    require_shared()
    folder = tmp_path_factory.mktemp("good")
    return write(make_dataset(sample_pixels("L-CC", shrink=8)), folder, "good.dcm").read_bytes()


@pytest.mark.parametrize("suffix", [".dcm", ".png"])
def test_zero_length(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    assert outcome(path) == "refused"


@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.2, 0.5, 0.9, 0.999])
def test_truncated(tmp_path, good_dicom, fraction):
    path = tmp_path / "cut.dcm"
    path.write_bytes(good_dicom[: int(len(good_dicom) * fraction)])
    assert outcome(path) == "refused"


@pytest.mark.parametrize("seed", range(40))
def test_random_corruption(tmp_path, good_dicom, seed):
    rng = np.random.default_rng(seed)
    data = bytearray(good_dicom)
    header_end = min(len(data), 2000)
    for _ in range(int(rng.integers(1, 20))):
        # most flips hit the header, where they do most damage; some hit the pixels
        position = int(rng.integers(0, header_end if rng.random() < 0.8 else len(data)))
        data[position] = int(rng.integers(0, 256))
    path = tmp_path / "corrupt.dcm"
    path.write_bytes(bytes(data))
    assert outcome(path) in ("ok", "refused")


def test_not_dicom_named_dcm(tmp_path):
    path = tmp_path / "letter.dcm"
    path.write_text("Dear colleague, please find the images attached.")
    assert outcome(path) == "refused"


def test_dimensions_that_disagree_with_the_data(tmp_path):
    require_shared()
    ds = make_dataset(sample_pixels("L-CC", shrink=8))
    ds.Rows = ds.Rows * 2
    assert outcome(write(ds, tmp_path, "short.dcm")) == "refused"


def test_absurd_dimensions_are_refused_without_allocating(tmp_path):
    require_shared()
    ds = make_dataset(sample_pixels("L-CC", shrink=8))
    ds.Rows, ds.Columns = 65535, 65535
    path = write(ds, tmp_path, "huge.dcm")
    with pytest.raises(ExamError, match="implausible"):
        load_view(path)


def test_unsupported_syntax_without_codec(tmp_path):
    require_shared()
    pixels = sample_pixels("L-CC", shrink=8)
    ds = make_dataset(pixels)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder for a still image
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    path = write(ds, tmp_path, "mpeg.dcm")
    with pytest.raises(ExamError, match="mpeg.dcm"):
        load_view(path)


def test_png_variants(tmp_path):
    require_shared()
    grey16 = sample_pixels("L-CC", shrink=4)
    grey8 = (grey16 >> 4).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "8bit_L-CC.png"), grey8)
    image = load_view(tmp_path / "8bit_L-CC.png")
    assert any("8-bit" in w for w in image.warnings)
    cv2.imwrite(str(tmp_path / "greyrgb_L-CC.png"), np.dstack([grey8] * 3))
    assert any("colour" in w for w in load_view(tmp_path / "greyrgb_L-CC.png").warnings)
    colour = np.dstack([grey8, grey8 // 2, grey8])
    cv2.imwrite(str(tmp_path / "colour_L-CC.png"), colour)
    with pytest.raises(ExamError, match="colour"):
        load_view(tmp_path / "colour_L-CC.png")
    from PIL import Image

    Image.fromarray(grey8).convert("P").save(tmp_path / "palette_L-CC.png")
    assert load_view(tmp_path / "palette_L-CC.png").view.value == "L-CC"
    (tmp_path / "broken_L-CC.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    assert outcome(tmp_path / "broken_L-CC.png") == "refused"


def test_folder_with_no_mammogram(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4")
    with pytest.raises(ExamError, match="no mammogram"):
        load_exam(tmp_path)


def test_missing_source():
    with pytest.raises(ExamError, match="no such file"):
        load_exam("/nonexistent/exam")


def test_a_refused_file_of_another_patient_is_said_to_be_another_patient_s(tmp_path):
    """A folder with a patient's views and another patient's file that cannot be loaded (no pixel data) opened
    as the first patient's exam with only "could not be loaded" said of the other file (a radiologist's test):
    the note says the folder mixes patients, without the other patient's ID."""
    from tests.inference.intake.dicom_factory import PATIENT_ID  # noqa: PLC0415

    for view, name in (("L-CC", "a.dcm"), ("R-CC", "b.dcm")):
        write(make_dataset(sample_pixels(view, shrink=16), view), tmp_path, name)
    stranger = make_dataset(sample_pixels("L-MLO", shrink=16), "L-MLO", PatientID="OTHER-77")
    del stranger.PixelData
    write(stranger, tmp_path, "c.dcm")
    exam = load_exam(tmp_path)
    assert exam.patient.patient_id == PATIENT_ID
    (note,) = [w for w in exam.warnings if "another patient's" in w]
    assert note.startswith("c.dcm is another patient's file (its Patient ID is not this exam's)")
    assert "OTHER-77" not in " ".join(exam.warnings)
    own = make_dataset(sample_pixels("L-MLO", shrink=16), "L-MLO")
    del own.PixelData
    write(own, tmp_path, "c.dcm")  # the patient's own file that cannot be loaded: no such note
    assert not [w for w in load_exam(tmp_path).warnings if "another patient's" in w]


def test_a_cd_export_with_a_dicomdir_is_read_through_it(tmp_path):
    """A CD or USB export (DICOMDIR beside PT…/ST…/SE… folders) failed with "DICOMDIR: the file has no displayable
    pixel data": the media directory was read as an image and the images never looked at."""
    from pydicom import dcmread
    from pydicom.fileset import FileSet

    views = ("L-CC", "R-CC", "L-MLO", "R-MLO")
    staged = tmp_path / "staged"
    staged.mkdir()
    media = FileSet()
    for number, view in enumerate(views):
        dataset = make_dataset(sample_pixels(view, shrink=8), view, StudyTime="101500", StudyID="1",
                               SeriesNumber=number + 1, InstanceNumber=1)
        media.add(dcmread(write(dataset, staged, f"{number}.dcm")))
    media.write(tmp_path / "cd")
    assert (tmp_path / "cd" / "DICOMDIR").is_file() and not list((tmp_path / "cd").glob("*.dcm"))
    for given in (tmp_path / "cd", tmp_path / "cd" / "DICOMDIR"):
        exam = load_exam(given)
        assert sorted(v.value for v in exam.views) == sorted(views)
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "DICOMDIR").write_bytes(b"\0" * 200)
    with pytest.raises(ExamError, match=r"the media directory \(DICOMDIR\) cannot be read") as raised:
        load_exam(tmp_path / "damaged")
    assert raised.value.path.name == "DICOMDIR"


def test_a_file_cut_off_in_its_header_is_said_to_be_cut_short(tmp_path):
    """A 400-byte file (a copy interrupted in the header) was said to have "no Pixel Data element", as if it were
    some other kind of object."""
    path = write(make_dataset(sample_pixels("R-MLO", shrink=8), "R-MLO"), tmp_path, "IMR-MLO.dcm")
    data = path.read_bytes()
    path.write_bytes(data[: data.find(b"\x28\x00\x10\x00")])  # cut before Rows
    with pytest.raises(ExamError, match=r"the file ends after [\d,]+ bytes, in its header, before the image's size "
                                        r"and pixels: it is cut short") as raised:
        load_view(path)
    assert raised.value.path == path
