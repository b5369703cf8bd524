"""Exam intake: DICOM and PNG read right, or refused with ExamError naming the file."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from inference.intake.exam import Exam, ExamError, View, load_exam, load_view
from inference.pipeline import analyze_exam
from tests.conftest import DATA, SHARED, require_shared
from tests.helpers import synthetic_view
from tests.inference.intake.dicom_factory import (
    MG_FOR_PROCESSING,
    PATIENT_ID,
    PATIENT_NAME,
    code_item,
    make_dataset,
    sample_pixels,
    write,
)

DICOM_DIR = SHARED / "data" / "dicom"


@pytest.fixture(scope="module")
def pixels():
    require_shared()
    return sample_pixels("L-CC")


def test_png_exam_folder_loads_four_views_and_skips_masks():
    require_shared()
    exam = load_exam(DATA / "gmic-exam0")
    assert set(exam.views) == set(View)
    assert not exam.aside  # the *_benign.png masks are not images of the exam
    assert all(not img.horizontal_flip for img in exam.views.values())
    assert exam.views[View.L_CC].view_source == "file name"


@pytest.mark.parametrize("name", ["0_L-CC.png", "1_L_CC.png", "LCC.png", "L_CC.png", "left_cc.png"])
def test_png_names(tmp_path, name):
    require_shared()
    shutil.copy(DATA / "gmic-exam0" / "0_L-CC.png", tmp_path / name)
    assert load_view(tmp_path / name).view == View.L_CC


def test_png_manifest_csv_and_json(tmp_path):
    require_shared()
    shutil.copy(DATA / "gmic-exam0" / "0_L-CC.png", tmp_path / "a.png")
    shutil.copy(DATA / "gmic-exam0" / "0_R-MLO.png", tmp_path / "b.png")
    (tmp_path / "m.csv").write_text("path,view\na.png,L-CC\nb.png,R_MLO\n")
    (tmp_path / "m.json").write_text('{"a.png": "L-CC", "b.png": "R-MLO"}')
    for manifest in ("m.csv", "m.json"):
        exam = load_exam(tmp_path / manifest)
        assert set(exam.views) == {View.L_CC, View.R_MLO}
    (tmp_path / "typo.csv").write_text("file,v\na.png,L-CC\nb.png,R-MLO\n")  # a reviewer's: the views not read
    with pytest.raises(ExamError, match=r"typo.csv: the manifest has no 'view' column \(its header has file, v\)"):
        load_exam(tmp_path / "typo.csv")
    shutil.copy(tmp_path / "a.png", tmp_path / "0_L-CC.png")
    (tmp_path / "paths.csv").write_text("path\n0_L-CC.png\n")  # the views from the files' names: still fine
    assert set(load_exam(tmp_path / "paths.csv").views) == {View.L_CC}


def test_png_model_image_is_the_png_itself():
    """Clean PNGs (background exactly 0) reach the model unchanged, so the oracles still hold."""
    require_shared()
    image = load_view(DATA / "gmic-exam0" / "0_R-CC.png")
    import cv2

    raw = cv2.imread(str(DATA / "gmic-exam0" / "0_R-CC.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(image.model_image, raw.astype(np.float32))
    assert image.background_level == 0


def test_monochrome1_and_monochrome2_give_identical_model_input(tmp_path, pixels):
    mono2 = write(make_dataset(pixels), tmp_path, "m2.dcm")
    mono1 = write(make_dataset(4095 - pixels, photometric="MONOCHROME1", PresentationLUTShape="INVERSE"), tmp_path, "m1.dcm")
    a, b = load_view(mono2), load_view(mono1)
    assert np.array_equal(a.model_image, b.model_image)
    assert b.invert_display and not a.invert_display
    assert any("MONOCHROME1" in w for w in b.warnings)
    # displayed the same way: dense tissue white in both, inverted once only
    assert np.allclose(a.display_image(a.auto_window()), b.display_image(b.auto_window()), atol=2e-3)


def test_presentation_lut_inverse_on_monochrome2_inverts_once(tmp_path, pixels):
    path = write(make_dataset(4095 - pixels, PresentationLUTShape="INVERSE"), tmp_path, "inv.dcm")
    reference = load_view(write(make_dataset(pixels), tmp_path, "ref.dcm"))
    image = load_view(path)
    assert np.array_equal(image.model_image, reference.model_image)


@pytest.mark.parametrize(
    "syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless, DeflatedExplicitVRLittleEndian], ids=str
)
def test_compressed_syntaxes_decode_to_the_same_pixels(tmp_path, pixels, syntax):
    ds = make_dataset(pixels)
    if syntax == DeflatedExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = syntax
    else:
        ds.compress(syntax, pixels.astype(np.uint16))
    image = load_view(write(ds, tmp_path, "c.dcm"))
    assert np.array_equal(image.pixels, pixels)


def test_real_cbis_ddsm_rle_files():
    require_shared()
    left = load_view(DICOM_DIR / "cbis-ddsm_P00173_LEFT_CC_rle.dcm")
    right = load_view(DICOM_DIR / "cbis-ddsm_P00820_RIGHT_MLO_rle.dcm")
    assert left.view == View.L_CC and right.view == View.R_MLO
    assert left.laterality_source == "Laterality" and left.view_source == "PatientOrientation"
    assert any("not ImageLaterality" in w for w in left.warnings)
    assert not left.windows and left.auto_window().width > 0
    assert not right.horizontal_flip  # a right view facing left is the usual storage
    assert right.model_image.min() == 0 and right.model_image.max() > 0


def test_ge_for_presentation_header_windows_and_degenerate_size():
    require_shared()
    import pydicom

    from inference.intake.dicom import _windows

    ds = pydicom.dcmread(DICOM_DIR / "openrem_MG-Im-GE_Seno_1_ForPresentation.dcm")
    windows, warning = _windows(ds)
    assert len(windows) == 3 and all(w.function == "SIGMOID" for w in windows) and warning == ""
    with pytest.raises(ExamError, match="too small"):
        load_view(DICOM_DIR / "openrem_MG-Im-GE_Seno_1_ForPresentation.dcm")


def test_for_processing_is_viewable_not_analyzable(tmp_path):
    require_shared()
    import pydicom

    with pytest.raises(ExamError, match=r"too small to be a mammogram \(4 x 4 pixels"):
        load_view(DICOM_DIR / "openrem_MG-Im-GE-SenDS-scaled.dcm")  # its pixels were scaled down to 4 x 4
    shutil.copy(DICOM_DIR / "openrem_MG-Im-GE-SenDS-scaled.dcm", tmp_path / "small.dcm")
    others = [write(make_dataset(sample_pixels(view), view), tmp_path, f"{view}.dcm") for view in ("R-CC", "R-MLO")]
    exam = load_exam([tmp_path / "small.dcm", *others])
    assert "too small to be a mammogram (4 x 4 pixels" in exam.unreadable[View.L_CC]  # a DICOM's slot, as a PNG's
    assert set(exam.views) == {View.R_CC, View.R_MLO}
    ds = pydicom.dcmread(DICOM_DIR / "openrem_MG-Im-GE-SenDS-scaled.dcm")  # its header, with pixels of a size
    ds.Rows, ds.Columns = 640, 480  # at its spacing, a field a mammogram may cover
    ds.PixelData = (np.arange(640 * 480) % 4096).astype(np.uint16).tobytes()
    image = load_view(write(ds, tmp_path, "for_processing.dcm"))
    assert not image.analyzable and image.invert_display
    assert image.patient.name  # non-ASCII name decoded, available for display
    exam = Exam(views={image.view: image}, source=image.source)
    with pytest.raises(ExamError, match="For Processing"):
        analyze_exam(exam, [])


def test_no_pixel_data_is_refused():
    require_shared()
    with pytest.raises(ExamError, match="no displayable pixel data"):
        load_view(DICOM_DIR / "openrem_MG-Im-Hologic-PropProj.dcm")


def test_voi_lut_sequence_and_sigmoid_and_rescale(tmp_path, pixels):
    ds = make_dataset(pixels)
    lut = code_item("x", "x")
    del lut.CodeValue, lut.CodingSchemeDesignator, lut.CodeMeaning
    lut.LUTDescriptor = [4096, 0, 16]
    table = (np.linspace(0, 1, 4096) ** 0.5 * 65535).astype(np.uint16)
    lut.LUTData = table.tobytes()
    lut["LUTData"].VR = "OW"
    ds.VOILUTSequence = Sequence([lut])
    image = load_view(write(ds, tmp_path, "lut.dcm"))
    shown = image.display_image()
    expected = table[pixels].astype(np.float32) / 65535
    assert np.allclose(shown, expected, atol=1e-4)

    ds = make_dataset(pixels, WindowCenter=[2000, 1500], WindowWidth=[1000, 3000],
                      WindowCenterWidthExplanation=["NORMAL", "WIDE"], VOILUTFunction="SIGMOID")
    image = load_view(write(ds, tmp_path, "sig.dcm"))
    assert [w.explanation for w in image.windows] == ["NORMAL", "WIDE"]
    shown = image.display_image()
    assert 0.45 < float(shown[pixels == 2000].mean()) < 0.55 if np.any(pixels == 2000) else True
    assert shown.min() >= 0 and shown.max() <= 1

    ds = make_dataset(pixels, RescaleSlope=2, RescaleIntercept=-100)
    image = load_view(write(ds, tmp_path, "rescale.dcm"))
    assert np.array_equal(image.pixels, pixels.astype(np.int64) * 2 - 100)


def test_noisy_background_is_detected_and_zeroed(tmp_path, pixels):
    rng = np.random.default_rng(1)
    noisy = pixels.astype(np.int32) + 60 + rng.integers(0, 40, pixels.shape)
    image = load_view(write(make_dataset(np.clip(noisy, 0, 4095)), tmp_path, "noisy.dcm"))
    assert any("noisy background" in w for w in image.warnings)
    background = pixels == 0
    assert np.mean(image.model_image[background] == 0) > 0.98
    assert np.mean(image.model_image[pixels > 300] > 0) > 0.99


def test_image_stored_mirrored_is_flagged_and_still_reaches_the_model_facing_right(tmp_path, pixels):
    mirrored = write(make_dataset(pixels[:, ::-1].copy()), tmp_path, "mirror.dcm")
    normal = write(make_dataset(pixels), tmp_path, "normal.dcm")
    a, b = load_view(normal), load_view(mirrored)
    assert b.horizontal_flip and not a.horizontal_flip
    assert any("mirrored" in w for w in b.warnings)
    from inference.families.preprocess import prepare_view

    assert np.array_equal(prepare_view(a.model_image, "L-CC", a.horizontal_flip).input,
                          prepare_view(b.model_image, "L-CC", b.horizontal_flip).input)


def test_missing_and_contradictory_tags(tmp_path, pixels):
    ds = make_dataset(pixels, laterality_keyword="", projection="")
    ds.SeriesDescription = "L CC"
    image = load_view(write(ds, tmp_path, "noview.dcm"))
    assert image.view == View.L_CC and image.laterality_source == "SeriesDescription"
    ds = make_dataset(pixels, laterality_keyword="", projection="")
    with pytest.raises(ExamError, match="laterality"):
        load_view(write(ds, tmp_path, "unknown.dcm"))
    ds = make_dataset(pixels)
    ds.ViewPosition = "MLO"  # ViewCodeSequence says CC
    image = load_view(write(ds, tmp_path, "contra.dcm"))  # which is right is not known: no slot, said why
    assert image.view is None and any("ViewCodeSequence says CC, ViewPosition says MLO; check the image" in w
                                      for w in image.warnings)
    ds.ViewPosition = "LCC"  # the side in the position too: no disagreement
    assert load_view(write(ds, tmp_path, "sided.dcm")).view == View.L_CC
    ds = make_dataset(pixels, laterality_keyword="", projection="", PatientOrientation=["A", "R"])
    image = load_view(write(ds, tmp_path, "RIGHT_MLO_name.dcm"))
    assert image.view == View.R_MLO and image.view_source == "file name"


def test_sources_naming_the_other_side_are_said(tmp_path, pixels):
    """The header's side is used, and a series description, a second tag or the file name saying the other side
    is named with both values (it was read silently)."""
    ds = make_dataset(pixels, "L-CC", SeriesDescription="R CC")
    image = load_view(write(ds, tmp_path, "R_CC_from_name.dcm"))
    assert image.view == View.L_CC
    (said,) = [w for w in image.warnings if w.startswith("laterality:")]
    assert said == ("laterality: ImageLaterality says left but SeriesDescription says right and file name says "
                    "right; shown as left (ImageLaterality): check the image's side")
    ds = make_dataset(pixels, "L-CC", Laterality="R")
    assert any("ImageLaterality says left but Laterality says right" in w
               for w in load_view(write(ds, tmp_path, "tags.dcm")).warnings)
    ds = make_dataset(pixels, "L-CC", SeriesDescription="L CC")
    assert not [w for w in load_view(write(ds, tmp_path, "L_CC_agree.dcm")).warnings if "laterality" in w]
    for text in ("R CC L CC", "LCC+RCC", "Left and right"):  # the exam's protocol, naming both: no source
        ds = make_dataset(pixels, "L-CC", ProtocolName=text)
        assert not [w for w in load_view(write(ds, tmp_path, "both.dcm")).warnings if "laterality" in w], text


def test_spot_implant_and_ml_views_are_kept_aside(tmp_path, pixels):
    write(make_dataset(pixels), tmp_path, "a.dcm")
    write(make_dataset(pixels, modifiers=("spot compression",)), tmp_path, "b.dcm")
    write(make_dataset(pixels, modifiers=("implant displaced",)), tmp_path, "c.dcm")
    write(make_dataset(pixels, projection="ML"), tmp_path, "d.dcm")
    exam = load_exam(tmp_path)
    assert list(exam.views) == [View.L_CC]
    assert len(exam.aside) == 3
    assert all(any("kept aside" in w for w in img.warnings) for img in exam.aside)
    # the exam's note on its missing views names them (a reviewer's XCCL was dropped with "missing views: L-CC")
    missing = next(w for w in exam.warnings if w.startswith("missing views"))
    assert missing.startswith("missing views: R-CC, L-MLO, R-MLO; not a screening view, kept aside: b.dcm (L ")
    assert "c.dcm (L " in missing and "d.dcm (L ML" in missing


def test_every_non_standard_view_is_kept_aside_and_named_with_the_four_slots_filled(tmp_path, pixels):
    """An integration engineer's exams: a tangential L-CC and a nipple-in-profile view acquired after the standard
    ones took their slots ("latest acquisition"); implant-displaced views marked only in their series description
    or protocol, and a magnification view marked only by its factor, took all four; an XCCL coded by CID 4014's
    meaning ("cranio-caudal exaggerated laterally") was read as a CC; and with four views present nothing said
    what was set aside."""
    from tests.inference.intake.dicom_factory import code_item

    for view in ("L-CC", "R-CC", "L-MLO", "R-MLO"):
        write(make_dataset(sample_pixels(view), view, AcquisitionDateTime="20260101100000"), tmp_path, f"{view}.dcm")
    late = {"AcquisitionDateTime": "20260101110000"}
    write(make_dataset(pixels, modifiers=("Tangential",), **late), tmp_path, "tangential.dcm")
    write(make_dataset(pixels, modifiers=("Nipple in profile",), **late), tmp_path, "nipple.dcm")
    write(make_dataset(pixels, SeriesDescription="L CC ID", **late), tmp_path, "id_series.dcm")
    write(make_dataset(pixels, ProtocolName="LCCID", **late), tmp_path, "id_protocol.dcm")
    write(make_dataset(sample_pixels("L-CC", shrink=2), EstimatedRadiographicMagnificationFactor=1.8, **late),
          tmp_path, "mag.dcm")
    xccl = make_dataset(pixels, projection="XCCL", **late)
    xccl.ViewCodeSequence = [code_item("XCCL", "cranio-caudal exaggerated laterally", "99HOLOGIC")]
    write(xccl, tmp_path, "xccl.dcm")
    # a standard view stays standard: a factor of a breast on the detector, the exam's protocol naming both sides
    write(make_dataset(sample_pixels("R-CC", shrink=2), "R-CC", EstimatedRadiographicMagnificationFactor=1.08,
                       ProtocolName="Screening Bilateral", AcquisitionDateTime="20260101110000"), tmp_path,
          "r_cc_late.dcm")
    exam = load_exam(tmp_path)
    assert exam.views[View.L_CC].source.name == "L-CC.dcm"
    assert exam.views[View.R_CC].source.name == "r_cc_late.dcm"
    aside = {img.source.name: img for img in exam.aside}
    assert {"tangential.dcm", "nipple.dcm", "id_series.dcm", "id_protocol.dcm", "mag.dcm", "xccl.dcm"} <= set(aside)
    assert any("Tangential view, not a standard CC" in w for w in aside["tangential.dcm"].warnings)
    # free text is a hint: it ranks an image after one of its slot whose text says nothing of the kind
    choice = next(w for w in exam.warnings if w.startswith("3 images for L-CC: used L-CC.dcm ("))
    assert "id_series.dcm is an implant-displaced view by its SeriesDescription" in choice
    assert "id_protocol.dcm is an implant-displaced view by its ProtocolName" in choice
    assert any("magnification (estimated factor 1.8)" in w for w in aside["mag.dcm"].warnings)
    assert aside["xccl.dcm"].view_label == "XCCL"
    note = next(w for w in exam.warnings if w.startswith("not a screening view, kept aside: "))
    assert all(name in note for name in ("tangential.dcm", "nipple.dcm", "mag.dcm", "xccl.dcm (L XCCL)"))
    # every image aside: the refusal says each one and why
    with pytest.raises(ExamError, match=r"none of the images is a screening view .*; kept aside: tangential.dcm: "
                                        r"Tangential view, not a standard CC"):
        load_exam([tmp_path / "tangential.dcm", tmp_path / "mag.dcm"])


def test_a_synthesized_2d_image_ranks_after_the_conventional_one_and_is_said_when_alone(tmp_path, pixels):
    """GE's conventional images are DERIVED\\PRIMARY like its V-Preview (…\\GENERATED_2D), made later: the
    synthesized image took every slot; a C-View-only or a lossy exam was analysed with no word about it."""
    write(make_dataset(pixels, ImageType=["DERIVED", "PRIMARY"], AcquisitionDateTime="20260101100000"), tmp_path,
          "ffdm.dcm")
    write(make_dataset(pixels, ImageType=["DERIVED", "PRIMARY", "GENERATED_2D"],
                       AcquisitionDateTime="20260101110000"), tmp_path, "vpreview.dcm")
    exam = load_exam(tmp_path)
    assert exam.views[View.L_CC].source.name == "ffdm.dcm"
    assert any("used ffdm.dcm (vpreview.dcm is a 2-D image synthesized from tomosynthesis (ImageType "
               "…GENERATED_2D))" in w for w in exam.warnings)
    alone = load_exam([tmp_path / "vpreview.dcm"]).views[View.L_CC]
    assert any(w.startswith("a 2-D image synthesized from a tomosynthesis scan (ImageType GENERATED_2D)")
               for w in alone.warnings)
    lossy = make_dataset(pixels, LossyImageCompression="01", LossyImageCompressionRatio="20",
                         LossyImageCompressionMethod="ISO_15444_1")
    image = load_view(write(lossy, tmp_path, "lossy.dcm"))
    assert "compressed with loss (ratio 20, ISO_15444_1): fine detail such as calcifications may be altered" in \
        image.warnings
    processing = make_dataset(pixels, sop_class="1.2.840.10008.5.1.4.1.1.13.1.5", intent="")
    assert not load_view(write(processing, tmp_path, "bpx_processing.dcm")).analyzable


def test_an_implant_patient_s_id_views_named_only_in_their_text_rank_after_the_standard_views(tmp_path):
    """A re-test: ID views taken after the standard ones, "CC ID" / "MLO ID" in their series description (no side,
    no modifier code), took all four slots ("latest acquisition")."""
    for view in ("L-CC", "R-CC", "L-MLO", "R-MLO"):
        pixels = sample_pixels(view)
        write(make_dataset(pixels, view, SeriesDescription=view.split("-")[1], AcquisitionDateTime="20260101100000"),
              tmp_path, f"{view}.dcm")
        write(make_dataset(pixels, view, SeriesDescription=f"{view.split('-')[1]} ID",
                           AcquisitionDateTime="20260101110000"), tmp_path, f"id_{view}.dcm")
    exam = load_exam(tmp_path)
    assert {v.value: img.source.name for v, img in exam.views.items()} == {
        v: f"{v}.dcm" for v in ("L-CC", "R-CC", "L-MLO", "R-MLO")}
    assert any("id_L-CC.dcm is an implant-displaced view by its SeriesDescription" in w for w in exam.warnings)


def test_headers_of_a_unit_s_habits_are_said_rightly(tmp_path, pixels):
    """A re-test: a ViewPosition naming the other side went unsaid; "Screening Bilateral MLO" was read as a left
    MLO; an XCCL coded as such beside the position "CC" was said to be a disagreement; a JPEG-LS near-lossless
    image without the lossy flag was analysed without a word."""
    from tests.inference.intake.dicom_factory import code_item

    image = load_view(write(make_dataset(pixels, ViewPosition="RCC"), tmp_path, "other_side.dcm"))
    assert image.view == View.L_CC and any("ViewPosition 'RCC' names the other side" in w for w in image.warnings)
    image = load_view(write(make_dataset(sample_pixels("R-MLO"), "R-MLO", ProtocolName="Screening Bilateral MLO"),
                            tmp_path, "bilateral.dcm"))
    assert image.view == View.R_MLO and not [w for w in image.warnings if "laterality" in w]
    xccl = make_dataset(pixels, projection="CC")
    xccl.ViewCodeSequence = [code_item("399192003", "cranio-caudal exaggerated laterally")]
    image = load_view(write(xccl, tmp_path, "xccl.dcm"))
    assert image.view is None and not [w for w in image.warnings if "disagree" in w]
    from pydicom.uid import JPEGLSNearLossless

    from inference.intake.dicom import _image_notes

    near = make_dataset(pixels)
    near.file_meta.TransferSyntaxUID = JPEGLSNearLossless
    assert _image_notes(near) == ["compressed with loss (JPEG-LS Near-lossless): fine detail such as calcifications "
                                  "may be altered"]


def test_a_retake_without_times_is_told_by_its_series_and_instance_number_and_the_note_says_so(tmp_path, pixels):
    write(make_dataset(pixels, SeriesNumber=1, InstanceNumber=1), tmp_path, "IM0001.dcm")
    write(make_dataset(pixels, SeriesNumber=1, InstanceNumber=9), tmp_path, "1.2.3.4.dcm")
    exam = load_exam(tmp_path)
    assert exam.views[View.L_CC].source.name == "1.2.3.4.dcm"
    assert any("used 1.2.3.4.dcm (latest series and instance number: no acquisition time tells them apart)" in w
               for w in exam.warnings)
    # instance numbers start again in each series: a retake sent as a new series' first instance is the later
    write(make_dataset(pixels, SeriesNumber=2, InstanceNumber=1), tmp_path, "0_retake.dcm")
    assert load_exam(tmp_path).views[View.L_CC].source.name == "0_retake.dcm"
    for name in ("IM0001.dcm", "1.2.3.4.dcm", "0_retake.dcm"):
        (tmp_path / name).unlink()
    write(make_dataset(pixels), tmp_path, "a.dcm")
    write(make_dataset(pixels), tmp_path, "b.dcm")
    assert any("used b.dcm (file name: no acquisition time or instance number tells them apart)" in w
               for w in load_exam(tmp_path).warnings)


@pytest.mark.parametrize("attributes, standard", [
    ({"ProtocolName": "Bilateral CC MLO ID"}, True),  # an exam's protocol, no side: its standard views stay
    ({"ProtocolName": "CC MLO + ID views"}, True),
    ({"SeriesDescription": "CC ID"}, True),
    ({"ViewPosition": "L CC"}, True),  # a vendor's wording of the position, the side in it
    ({"ViewPosition": "CC-L"}, True),
    ({"ViewPosition": "CRANIO"}, True),  # no projection code: said, the code used
    ({"SeriesDescription": "L CC ID"}, True),  # free text alone never sets the only image of a slot aside
    ({"SeriesDescription": "RCC (ID 4711)"}, True),
    ({"ProtocolName": "Diagnostic Left + Spot"}, True),
    ({"ViewPosition": "MLO"}, False),  # a known projection against the code: which is right is not known
])
def test_what_keeps_a_standard_view_standard(tmp_path, pixels, attributes, standard):
    """A review of the rules above: an exam-wide protocol "Bilateral CC MLO ID" put all four standard views aside
    and refused the exam; a ViewPosition "L CC" disagreed with its own code; an empty modifier item was a
    modifier."""
    image = load_view(write(make_dataset(pixels, **attributes), tmp_path, "x.dcm"))
    assert (image.view == View.L_CC) == standard, image.warnings
    empty = make_dataset(pixels)
    empty.ViewCodeSequence[0].ViewModifierCodeSequence = [pydicom.Dataset()]
    assert load_view(write(empty, tmp_path, "empty_modifier.dcm")).view == View.L_CC


def test_a_view_given_only_for_processing_leaves_its_slot_unreadable_and_the_others_are_analysed(tmp_path):
    """An integration engineer's exam: R-CC sent only 'For Processing' refused the whole exam, while a view truly
    missing is analysed without it."""
    for view in ("L-CC", "L-MLO", "R-MLO"):
        write(make_dataset(sample_pixels(view), view), tmp_path, f"{view}.dcm")
    write(make_dataset(sample_pixels("R-CC"), "R-CC", sop_class=MG_FOR_PROCESSING, intent="FOR PROCESSING"),
          tmp_path, "raw_R-CC.dcm")
    exam = load_exam(tmp_path)
    assert set(exam.views) == {View.L_CC, View.L_MLO, View.R_MLO}
    assert exam.unreadable[View.R_CC].startswith("raw_R-CC.dcm: only a 'For Processing' image")
    exam.check_analyzable()
    # every view raw: shown for viewing, the analysis refused as before
    alone = load_exam([tmp_path / "raw_R-CC.dcm"])
    assert list(alone.views) == [View.R_CC]
    with pytest.raises(ExamError, match="For Processing"):
        alone.check_analyzable()


def test_several_candidates_pick_latest_and_say_which(tmp_path, pixels):
    write(make_dataset(pixels, AcquisitionDateTime="20260101100000"), tmp_path, "early.dcm")
    write(make_dataset(pixels, AcquisitionDateTime="20260101110000"), tmp_path, "late.dcm")
    exam = load_exam(tmp_path)
    assert exam.views[View.L_CC].source.name == "late.dcm"
    assert any("used late.dcm" in w for w in exam.warnings)


@pytest.mark.parametrize("ours, copy, says", [
    (["ORIGINAL", "PRIMARY"], {"sop_class": "1.2.840.10008.5.1.4.1.1.7", "ImageType": ["DERIVED", "SECONDARY"]},
     "is a Secondary Capture"),
    # GE's 'For Presentation' mammograms are DERIVED\\PRIMARY (the project's openrem sample): still the mammogram
    (["DERIVED", "PRIMARY", ""], {"sop_class": "1.2.840.10008.5.1.4.1.1.7", "ImageType": ["DERIVED", "SECONDARY"]},
     "is a Secondary Capture"),
    (["DERIVED", "PRIMARY"], {"ImageType": ["DERIVED", "SECONDARY"]}, "is a secondary image (ImageType …\\SECONDARY)"),
    (["ORIGINAL", "PRIMARY"], {"ImageType": ["DERIVED", "PRIMARY"]}, "is a derived image (ImageType DERIVED)"),
    (["ORIGINAL", "PRIMARY"], {"ImageType": "DERIVED"}, "is a derived image (ImageType DERIVED)"),  # one value
    (["ORIGINAL", "PRIMARY"], {"sop_class": MG_FOR_PROCESSING, "intent": "FOR PROCESSING"},
     "is a 'For Processing' image"),
])
def test_the_acquired_presentation_image_wins_over_a_copy_or_the_raw_one(tmp_path, pixels, ours, copy, says):
    """A deployer's test of the AI node: an annotated Secondary Capture of L-CC, acquired later and named
    after the original, was analysed in its place and its results sent to the PACS; a modality sending each
    view 'For Presentation' and 'For Processing' had the raw image chosen and the whole exam refused."""
    original = make_dataset(pixels, AcquisitionDateTime="20260101100000", ImageType=ours)
    write(original, tmp_path, "L-CC.dcm")
    write(make_dataset(pixels, AcquisitionDateTime="20260101110000", **copy), tmp_path, "zz_copy_L-CC.dcm")
    exam = load_exam(tmp_path)
    assert exam.views[View.L_CC].source.name == "L-CC.dcm"
    assert [img.source.name for img in exam.aside] == ["zz_copy_L-CC.dcm"]
    note = next(w for w in exam.warnings if "2 images for L-CC" in w)
    assert f"used L-CC.dcm (zz_copy_L-CC.dcm {says}); kept aside: zz_copy_L-CC.dcm" in note
    exam.check_analyzable()  # the exam is analysed, from the original
    # a copy alone in its slot is still used (CBIS-DDSM's scanned films are Secondary Captures)
    alone = load_exam([tmp_path / "zz_copy_L-CC.dcm"])
    assert list(alone.views) == [View.L_CC]


def test_the_reason_for_a_copy_set_aside_is_where_the_two_differ(tmp_path, pixels):
    """A second review: two Secondary Captures, one ORIGINAL, were told apart "because it is a Secondary
    Capture", which both were."""
    capture = "1.2.840.10008.5.1.4.1.1.7"
    write(make_dataset(pixels, sop_class=capture, ImageType=["ORIGINAL", "PRIMARY"]), tmp_path, "a.dcm")
    write(make_dataset(pixels, sop_class=capture, ImageType=["DERIVED", "PRIMARY"],
                       AcquisitionDateTime="20260101110000"), tmp_path, "b.dcm")
    exam = load_exam(tmp_path)
    assert exam.views[View.L_CC].source.name == "a.dcm"
    assert any("used a.dcm (b.dcm is a derived image (ImageType DERIVED))" in w for w in exam.warnings)


def test_deidentify_drops_identifiers(tmp_path, pixels):
    exam = load_exam([write(make_dataset(pixels), tmp_path, "a.dcm")])
    assert exam.patient.name == PATIENT_NAME
    clean = exam.deidentify()
    text = repr(clean) + repr(clean.views[View.L_CC].patient)
    assert PATIENT_NAME not in text and PATIENT_ID not in text
    assert clean.views[View.L_CC].patient.patient_id == ""


def test_identifiers_never_reach_the_log(tmp_path, pixels, caplog):
    caplog.set_level("DEBUG")
    path = write(make_dataset(pixels), tmp_path, "a.dcm")
    load_exam([path])
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ExamError):
        load_view(bad)
    assert PATIENT_NAME not in caplog.text and PATIENT_ID not in caplog.text


def test_other_modality_multiframe_and_colour_are_refused(tmp_path, pixels):
    with pytest.raises(ExamError, match="not a mammogram"):
        load_view(write(make_dataset(pixels, Modality="CT"), tmp_path, "ct.dcm"))
    frames = np.stack([pixels, pixels])
    ds = make_dataset(pixels, NumberOfFrames=2)
    ds.PixelData = frames.astype(np.uint16).tobytes()
    with pytest.raises(ExamError, match="multi-frame"):
        load_view(write(ds, tmp_path, "mf.dcm"))
    ds = make_dataset(pixels, SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0)
    with pytest.raises(ExamError, match="colour"):
        load_view(write(ds, tmp_path, "rgb.dcm"))


def test_dicom_exam_analyses_like_the_png_exam(tmp_path, seeded_model):
    """The same pixels as DICOM (MONOCHROME1 for one view) give the model's PNG answer."""
    require_shared()
    import cv2

    for view in ("L-CC", "R-CC"):
        raw = cv2.imread(str(DATA / "gmic-exam0" / f"0_{view}.png"), cv2.IMREAD_UNCHANGED)
        if view == "R-CC":
            ds = make_dataset(4095 - raw, view, photometric="MONOCHROME1")
        else:
            ds = make_dataset(raw, view)
        write(ds, tmp_path, f"{view}.dcm")
    dicom = analyze_exam(load_exam(tmp_path), seeded_model, device="cpu")
    png = analyze_exam(load_exam([DATA / "gmic-exam0" / "0_L-CC.png", DATA / "gmic-exam0" / "0_R-CC.png"]),
                       seeded_model, device="cpu")
    for view in (View.L_CC, View.R_CC):
        (a,), (b,) = dicom.views[view].entries.values(), png.views[view].entries.values()
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)


def _gdcm_transcode(source, target, syntax_name: str):
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(source))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, syntax_name)))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(target))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()
    return target


def test_jpeg_lossless_process14_sv1_decodes(tmp_path, pixels):
    source = write(make_dataset(pixels), tmp_path, "src.dcm")
    target = _gdcm_transcode(source, tmp_path / "sv1.dcm", "JPEGLosslessProcess14_1")
    import pydicom

    assert pydicom.dcmread(target).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"
    assert np.array_equal(load_view(target).pixels, pixels)


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.203"],
                         ids=["HTJ2K-lossless", "HTJ2K"])
def test_htj2k_decodes_to_the_same_pixels(tmp_path, pixels, syntax):
    """High-Throughput JPEG 2000 (Part 15), encoded reversibly by OpenJPH through imagecodecs."""
    import imagecodecs
    from pydicom.encaps import encapsulate

    stream = imagecodecs.htj2k_encode(pixels.astype(np.uint16))
    assert b"\xff\x50" in stream[:200]  # the CAP marker segment: a Part 15 (HT) codestream
    ds = make_dataset(pixels)
    ds.PixelData = encapsulate([stream])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    image = load_view(write(ds, tmp_path, "htj2k.dcm"))
    assert np.array_equal(image.pixels, pixels)


def test_lossy_jpeg2000_decodes_close_to_the_original(tmp_path, pixels):
    from pydicom.uid import JPEG2000

    ds = make_dataset(pixels)
    ds.compress(JPEG2000, pixels.astype(np.uint16), j2k_cr=[10])
    image = load_view(write(ds, tmp_path, "lossy.dcm"))
    assert np.abs(image.pixels.astype(np.int64) - pixels).mean() < 40


# ------------------------------------------------------------------------------------------ label safety


def _copy_exam0(folder, names=("L-CC", "R-CC", "L-MLO", "R-MLO")):
    folder.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(DATA / "gmic-exam0" / f"0_{name}.png", folder / f"0_{name}.png")
    return folder


def test_swapped_cc_files_are_possible_laterality_errors_not_counted_until_resolved(tmp_path):
    require_shared()
    folder = tmp_path / "swapped"
    _copy_exam0(folder, ("L-MLO", "R-MLO"))
    shutil.copy(DATA / "gmic-exam0" / "0_L-CC.png", folder / "0_R-CC.png")
    shutil.copy(DATA / "gmic-exam0" / "0_R-CC.png", folder / "0_L-CC.png")
    exam = load_exam(folder)
    assert exam.laterality_conflicts == (View.L_CC, View.R_CC)
    message = exam.laterality_message(View.L_CC)
    assert "POSSIBLE LATERALITY ERROR" in message and "look swapped" in message and "0_L-CC.png" in message
    moved = exam.move_view(View.L_CC, View.R_CC)  # swap: both images go to the other slot
    assert moved.laterality_conflicts == ()
    assert moved.views[View.R_CC].source.name == "0_L-CC.png" and not moved.views[View.R_CC].horizontal_flip
    assert any("moved from L-CC to R-CC" in w for w in moved.views[View.R_CC].warnings)
    confirmed = exam.confirm_orientation(View.L_CC)
    assert confirmed.laterality_conflicts == (View.R_CC,) and confirmed.views[View.L_CC].horizontal_flip


def test_a_whole_exam_stored_mirrored_is_no_conflict(tmp_path, pixels):
    for view in ("L-CC", "R-CC"):
        image = pixels if view.startswith("L") else pixels[:, ::-1]
        write(make_dataset(np.ascontiguousarray(image[:, ::-1]), view), tmp_path, f"{view}.dcm")
    exam = load_exam(tmp_path)
    assert all(img.horizontal_flip for img in exam.views.values())
    assert exam.laterality_conflicts == () and any("stored mirrored as a whole" in w for w in exam.warnings)


def test_two_patients_in_one_folder_are_refused_naming_files_and_identities(tmp_path, pixels):
    write(make_dataset(pixels, "L-CC"), tmp_path, "a.dcm")
    write(make_dataset(pixels[:, ::-1].copy(), "R-CC", PatientID="OTHER-7"), tmp_path, "b.dcm")
    with pytest.raises(ExamError) as caught:
        load_exam(tmp_path)
    text = str(caught.value)
    assert "2 different patients" in text and "a.dcm" in text and "b.dcm" in text and "OTHER-7" in text


@pytest.mark.parametrize("other, what", [({"PatientName": "Corrected^Name"}, "2 different patient names"),
                                         ({"PatientBirthDate": "19600102"}, "2 different birth dates")])
def test_one_patient_id_with_two_names_or_birth_dates_is_refused_without_the_names(tmp_path, pixels, other, what):
    """A name corrected on one view and resent was analysed, and the results sent to the PACS named the patient
    two ways (from a hands-on test of the DICOM node)."""
    first = make_dataset(pixels, "L-CC", PatientBirthDate="19600101")
    write(first, tmp_path, "a.dcm")
    write(make_dataset(pixels[:, ::-1].copy(), "R-CC", **{"PatientBirthDate": "19600101", **other}), tmp_path, "b.dcm")
    with pytest.raises(ExamError) as caught:
        load_exam(tmp_path)
    text = str(caught.value)
    assert f"the images give one patient {what}" in text and "a.dcm" in text and "b.dcm" in text
    assert "Corrected" not in text and "1960" not in text and str(first.PatientName) not in text


def test_a_name_written_in_another_case_or_with_empty_components_is_the_same_name(tmp_path, pixels):
    write(make_dataset(pixels, "L-CC", PatientName="Doe^Jane"), tmp_path, "a.dcm")
    write(make_dataset(pixels[:, ::-1].copy(), "R-CC", PatientName="DOE^JANE^^"), tmp_path, "b.dcm")
    assert set(load_exam(tmp_path).views) == {View.L_CC, View.R_CC}


def test_an_image_without_any_identity_beside_identified_ones_is_left_out_named(tmp_path, pixels):
    """It may be another patient's image with its header stripped: never read as this patient's."""
    write(make_dataset(pixels, "L-CC"), tmp_path, "a.dcm")
    stripped = make_dataset(pixels[:, ::-1].copy(), "R-CC")
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "AccessionNumber"):
        if keyword in stripped:
            delattr(stripped, keyword)
    write(stripped, tmp_path, "b.dcm")
    exam = load_exam(tmp_path)
    assert set(exam.views) == {View.L_CC}
    assert [name for name, _ in exam.refused] == ["b.dcm"] and "carries no patient or study identity" in exam.refused[0][1]
    assert any(w.startswith("b.dcm: it carries no patient or study identity") for w in exam.warnings)


def test_an_image_with_only_a_study_date_beside_identified_ones_is_left_out(tmp_path, pixels):
    """A date is shared by every patient imaged that day: it names no one."""
    write(make_dataset(pixels, "L-CC"), tmp_path, "a.dcm")
    stripped = make_dataset(pixels[:, ::-1].copy(), "R-CC")  # StudyDate kept, as the other image's
    for keyword in ("PatientID", "PatientName", "PatientBirthDate", "StudyInstanceUID", "AccessionNumber"):
        delattr(stripped, keyword)
    write(stripped, tmp_path, "b.dcm")
    exam = load_exam(tmp_path)
    assert set(exam.views) == {View.L_CC} and [name for name, _ in exam.refused] == ["b.dcm"]


def test_an_implausible_pixel_spacing_or_window_is_named_and_not_used(tmp_path, pixels):
    """A spacing off by a unit hung the exam's other views at nothing (1e30 crashed the window); a window that
    is not a number drew the view black."""
    pixels = sample_pixels("L-CC", shrink=1)  # 80 mm wide at 0.1 mm, 56 mm at 0.07: each a mammogram's field
    ds = make_dataset(pixels, PixelSpacing=[1e30, 1e30], WindowCenter="nan", WindowWidth="nan")
    image = load_view(write(ds, tmp_path, "a.dcm"))
    assert image.pixel_spacing == (0.1, 0.1) and image.spacing_source == "ImagerPixelSpacing (detector plane)"
    assert any("PixelSpacing 1e+30\\1e+30 mm is not a mammogram's pixel spacing" in w for w in image.warnings)
    assert not image.windows and any("display window not a finite number" in w for w in image.warnings)
    ds = make_dataset(pixels, PixelSpacing=[70, 70], ImagerPixelSpacing=[7e-12, 7e-12],
                      WindowCenter=[2000, 1500], WindowWidth=[4000, "inf"])
    image = load_view(write(ds, tmp_path, "b.dcm"))
    assert image.pixel_spacing is None and image.spacing_source == ""
    assert any(w.startswith("PixelSpacing 70\\70 mm is not a mammogram's pixel spacing; ImagerPixelSpacing 7e-12")
               and w.endswith("not used, sizes are in pixels") for w in image.warnings)
    assert [w.width for w in image.windows] == [4000]
    ds = make_dataset(pixels, EstimatedRadiographicMagnificationFactor=0.5)
    image = load_view(write(ds, tmp_path, "m.dcm"))
    assert image.pixel_spacing == (0.1, 0.1)
    assert "EstimatedRadiographicMagnificationFactor 0.5 is no magnification: not used" in image.warnings
    ds = make_dataset(pixels, PixelSpacing=[0.05, 0.5])  # anisotropic beyond any detector: a broken value
    assert load_view(write(ds, tmp_path, "c.dcm")).pixel_spacing == (0.1, 0.1)
    ds = make_dataset(pixels, PixelSpacing=[0.07, 0.07])
    image = load_view(write(ds, tmp_path, "d.dcm"))
    assert image.pixel_spacing == (0.07, 0.07) and not any("spacing" in w for w in image.warnings)


@pytest.mark.parametrize("shape", [(3, 3), (1, 4000), (31, 800)])
def test_an_image_too_small_to_be_a_mammogram_leaves_its_slot_unreadable_named(tmp_path, shape):
    """A 3 x 3 PNG was analysed and counted as a view; a 1 x 4000 one failed the exam in preprocessing with a
    message naming no file. The slot is unreadable with the reason; the other views load."""
    import cv2

    for view in ("L-CC", "R-CC", "L-MLO"):
        cv2.imwrite(str(tmp_path / f"0_{view}.png"), synthetic_view(view, (600, 400)))
    cv2.imwrite(str(tmp_path / "0_R-MLO.png"), np.full(shape, 900, np.uint16))
    exam = load_exam(tmp_path)
    assert set(exam.views) == {View.L_CC, View.R_CC, View.L_MLO}
    reason = exam.unreadable[View.R_MLO]
    assert f"too small to be a mammogram ({shape[0]} x {shape[1]} pixels" in reason
    assert any("0_R-MLO.png" in note and "too small" in note for note in exam.warnings)


def test_a_dicom_image_covering_a_few_millimetres_is_no_mammogram(tmp_path):
    """A 40 x 40 pixel MG file at 0.1 mm (4 mm of anything) was analysed, and counted in its breast's score."""
    tiny = make_dataset(np.full((40, 40), 900, np.uint16), "L-MLO", ImagerPixelSpacing=[0.1, 0.1])
    others = [write(make_dataset(sample_pixels(view), view), tmp_path, f"{view}.dcm") for view in ("L-CC", "R-CC")]
    exam = load_exam([write(tiny, tmp_path, "tiny.dcm"), *others])
    assert exam.unreadable[View.L_MLO] == ("tiny.dcm: the image covers 4.0 x 4.0 mm (40 x 40 pixels of 0.1 x 0.1 mm): "
                                           "too small to be a mammogram (at least 20 mm a side)")
    assert set(exam.views) == {View.L_CC, View.R_CC}
    no_spacing = make_dataset(np.full((40, 40), 900, np.uint16), "L-MLO")
    del no_spacing.ImagerPixelSpacing  # its size unknown: held to 64 pixels a side (it escaped and was counted)
    with pytest.raises(ExamError, match=r"40 x 40 pixels, and no pixel spacing in the file; at least 64 a side"):
        load_view(write(no_spacing, tmp_path, "no_spacing.dcm"))
    coarse = make_dataset(np.arange(1600, dtype=np.uint16).reshape(40, 40), "L-MLO", ImagerPixelSpacing=[1.0, 1.0])
    assert load_view(write(coarse, tmp_path, "coarse.dcm")).pixels.shape == (40, 40)  # 40 mm: may be one


def test_pngs_named_for_two_exams_are_refused(tmp_path, pixels):
    import cv2  # noqa: PLC0415

    for name in ("0_L-CC.png", "0_R-CC.png", "1_L_CC.png"):
        cv2.imwrite(str(tmp_path / name), pixels if "L" in name.split("_")[1] else pixels[:, ::-1].copy())
    with pytest.raises(ExamError, match=r"the PNG file names give 2 exams \(exam 0: 0_L-CC.png, 0_R-CC.png; exam 1: "
                                        r"1_L_CC.png\)"):
        load_exam(tmp_path)


def test_two_studies_in_one_folder_are_refused(tmp_path, pixels):
    write(make_dataset(pixels, "L-CC"), tmp_path, "a.dcm")
    write(make_dataset(pixels[:, ::-1].copy(), "R-CC", StudyInstanceUID="1.2.3.4", StudyDate="20230105"), tmp_path,
          "b.dcm")
    with pytest.raises(ExamError, match="2 different studies.*20230105"):
        load_exam(tmp_path)


def test_one_unreadable_file_among_good_ones_is_named_and_the_rest_loads(tmp_path):
    require_shared()
    folder = _copy_exam0(tmp_path / "e", ("L-CC", "L-MLO", "R-MLO"))
    (folder / "0_R-CC.png").write_bytes(b"\x89PNG broken")
    exam = load_exam(folder)
    assert set(exam.views) == {View.L_CC, View.L_MLO, View.R_MLO}
    assert exam.refused and exam.refused[0][0] == "0_R-CC.png"
    assert any(w.startswith("0_R-CC.png could not be loaded") for w in exam.warnings)
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "0_R-CC.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ExamError, match="0_R-CC.png"):
        load_exam(only_bad)


def test_an_mlo_saved_as_cc_loses_the_cc_slot_to_the_true_cc(tmp_path):
    """Two images for L-CC: the later acquisition is an MLO saved as CC. The pixels (pectoral muscle, shape)
    tell them apart, the true CC is used, and the note says why."""
    require_shared()
    from tests.helpers import write_png
    import cv2

    cc = cv2.imread(str(DATA / "gmic-exam0" / "0_L-CC.png"), cv2.IMREAD_UNCHANGED)
    mlo = cv2.imread(str(DATA / "gmic-exam0" / "0_L-MLO.png"), cv2.IMREAD_UNCHANGED)
    write_png(tmp_path / "a_L-CC.png", cc)
    write_png(tmp_path / "b_L-CC.png", mlo)  # later by file name: chosen without the pixel check
    exam = load_exam(tmp_path)
    assert exam.views[View.L_CC].source.name == "a_L-CC.png"
    assert any("the pixels of b_L-CC.png look more like an MLO view than those of a_L-CC.png" in w
               for w in exam.warnings)


def test_a_file_named_twice_is_one_image(tmp_path, pixels):
    path = write(make_dataset(pixels, "L-CC"), tmp_path, "a.dcm")
    exam = load_exam([path, tmp_path / "." / "a.dcm"])
    assert set(exam.views) == {View.L_CC} and not any("kept aside" in w for w in exam.warnings)


def test_an_image_id_before_the_view_is_no_exam_number(tmp_path, pixels):
    """INbreast-style names start with each image's own ID: one exam, not four."""
    import cv2  # noqa: PLC0415

    for number, view in enumerate(("R_CC", "L_CC")):
        image = pixels if view.startswith("L") else pixels[:, ::-1].copy()
        cv2.imwrite(str(tmp_path / f"2058690{number}_6c613a14b80a859{number}_MG_{view}_ANON.png"), image)
    assert set(load_exam(tmp_path).views) == {View.R_CC, View.L_CC}


def test_pydicom_s_complaint_about_a_header_value_never_quotes_it(caplog):
    """Seen by a privacy reviewer: a de-identified run's console said "Invalid value for VR CS: 'female
    Testperson'" (pydicom quoting the PatientSex it read): a header value can be a name."""
    import logging
    import warnings

    from pydicom.dataset import Dataset

    import inference.intake.dicom  # noqa: F401 - the filter is installed with the intake

    caplog.set_level(logging.WARNING, logger="pydicom")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = Dataset()
        ds.PatientSex = "female Testperson"
        ds.PatientBirthDate = "17.03.1951"
        from pydicom import config
        from pydicom.valuerep import validate_value

        validate_value("CS", b"Anna O'Brien", config.WARN)  # a value with a quote in it (found in review)
    said = " ".join(record.getMessage() for record in caplog.records)
    assert "Invalid value for VR CS (the value is not shown)" in said and "VR DA (the value is not shown)" in said
    assert "Testperson" not in said and "1951" not in said and "Brien" not in said


def test_a_json_manifest_of_another_shape_says_what_a_manifest_is(tmp_path):
    """It said "the manifest could not be read ('path')"; GMIC's own exam_list.json is what a newcomer tries."""
    require_shared()
    with pytest.raises(ExamError, match="an exam list of the GMIC repositories .*open the folder of its images"):
        load_exam(DATA / "gmic-exam0" / "exam_list.json")
    manifest = tmp_path / "m.json"
    for text in ('[{"file": "a.png"}]', '["a.png"]'):
        manifest.write_text(text)
        with pytest.raises(ExamError, match=r'a JSON manifest is a list of \{"path": \.\.\., "view"'):
            load_exam(manifest)
    manifest.write_text('{"horizontal_flip": "NO", "L-CC": ["0_L-CC"]}')  # one exam of such a list, unwrapped
    with pytest.raises(ExamError, match="an exam list of the GMIC repositories"):
        load_exam(manifest)


def test_an_image_whose_header_names_the_wrong_side_never_takes_the_true_image_s_slot(tmp_path):
    """A right MLO whose ImageLaterality says L, acquired later than the true left MLO, took the L-MLO slot (then
    flagged as a possible laterality error and not counted) and set the true L-MLO aside: the left breast was
    scored from its CC alone. The image facing the slot's usual way is used, the other kept aside with why."""
    from tests.helpers import synthetic_view

    true_left = make_dataset(synthetic_view("L-MLO", (700, 250)), "L-MLO", AcquisitionDateTime="20250101100000")
    right_labelled_left = make_dataset(synthetic_view("R-MLO", (700, 450)), "L-MLO",
                                       AcquisitionDateTime="20250101110000",  # later: it won the slot
                                       SeriesDescription="R MLO")
    write(true_left, tmp_path, "L-MLO.dcm")
    write(right_labelled_left, tmp_path, "R-MLO.dcm")
    for view, lesion in (("L-CC", (700, 200)), ("R-CC", (600, 500))):  # the exam's other views face as usual
        write(make_dataset(synthetic_view(view, lesion), view), tmp_path, f"{view}.dcm")
    exam = load_exam(tmp_path)
    assert exam.views[View.L_MLO].source.name == "L-MLO.dcm" and not exam.views[View.L_MLO].horizontal_flip
    assert View.L_MLO not in exam.laterality_conflicts
    note = next(w for w in exam.warnings if w.startswith("2 images for L-MLO"))
    assert "used L-MLO.dcm" in note and "R-MLO.dcm faces the way of the other breast's MLO" in note
    # the headers' disagreement, with each value, said in the exam's notes (a site lead found it said nowhere)
    assert "R-MLO.dcm: laterality: ImageLaterality says left but SeriesDescription says right" in note


def test_a_folder_whose_images_lie_in_sub_folders_says_where(tmp_path, pixels):
    """'the folder holds no mammogram' was said of a PACS export's patient folder, its four DICOM files two
    levels down."""
    series = tmp_path / "exam 3 ü Müller" / "Studie 2025" / "Série 1"
    series.mkdir(parents=True)
    write(make_dataset(pixels, "L-CC"), series, "a.dcm")
    with pytest.raises(ExamError, match=r"holds no mammogram \(no DICOM or PNG file\); 1 image file\(s\) lie in 1 "
                                        r"sub-folder\(s\) of it \(the first: Studie 2025/Série 1\): give the folder"):
        load_exam(tmp_path / "exam 3 ü Müller")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ExamError, match=r"holds no mammogram \(no DICOM or PNG file\)$"):
        load_exam(empty)


def test_in_an_exam_stored_mirrored_as_a_whole_the_true_image_keeps_its_slot(tmp_path):
    """Found in review: with every view stored mirrored, the right MLO labelled L faced the slot's usual way and
    took it, the true (mirrored) L-MLO set aside and three views no longer counted."""
    from tests.helpers import synthetic_view

    for view, lesion in (("L-CC", (700, 200)), ("R-CC", (600, 500)), ("R-MLO", (700, 450))):
        write(make_dataset(synthetic_view(view, lesion, mirrored=True), view), tmp_path, f"{view}.dcm")
    write(make_dataset(synthetic_view("L-MLO", (700, 250), mirrored=True), "L-MLO",
                       AcquisitionDateTime="20250101100000"), tmp_path, "L-MLO.dcm")
    write(make_dataset(synthetic_view("R-MLO", (600, 450), mirrored=True), "L-MLO",
                       AcquisitionDateTime="20250101110000"), tmp_path, "extra_R-MLO.dcm")
    exam = load_exam(tmp_path)
    assert exam.views[View.L_MLO].source.name == "L-MLO.dcm"
    assert not exam.laterality_conflicts  # taken as stored mirrored as a whole
    note = next(w for w in exam.warnings if w.startswith("2 images for L-MLO"))
    assert "extra_R-MLO.dcm faces the way of the other breast's MLO" in note


def test_a_later_retake_set_aside_by_the_pixel_cue_is_said_to_be_the_later_acquisition(tmp_path):
    """A deployer's audit: a CC retake whose pixels looked more MLO-like than the first CC was kept aside with the
    note that it "looks like an MLO view". The older CC of the slot is the safer failure (an MLO analysed as a CC
    the worse), but the note says it is a weak cue, names the image it compared with and that the one kept aside is
    the later acquisition, to be checked."""
    require_shared()
    import cv2

    from tests.inference.intake.dicom_factory import make_dataset, write

    cc = cv2.imread(str(DATA / "gmic-exam0" / "0_L-CC.png"), cv2.IMREAD_UNCHANGED)[::4, ::4]
    mlo = cv2.imread(str(DATA / "gmic-exam0" / "0_L-MLO.png"), cv2.IMREAD_UNCHANGED)[::4, ::4]
    write(make_dataset(cc, "L-CC", AcquisitionDate="20260101", AcquisitionTime="100000"), tmp_path, "first.dcm")
    write(make_dataset(mlo, "L-CC", AcquisitionDate="20260101", AcquisitionTime="101500"), tmp_path, "retake.dcm")
    exam = load_exam(tmp_path)
    assert exam.views[View.L_CC].source.name == "first.dcm"
    assert any("the pixels of retake.dcm (the later acquisition: check it) look more like an MLO view than those "
               "of first.dcm" in w for w in exam.warnings), exam.warnings


def test_the_pixel_cue_s_note_calls_an_image_the_later_acquisition_only_by_its_time(tmp_path):
    """A re-test: with equal acquisition times and the instance number deciding, the note still said "the later
    acquisition"."""
    require_shared()
    import cv2

    from tests.inference.intake.dicom_factory import make_dataset, write

    cc = cv2.imread(str(DATA / "gmic-exam0" / "0_L-CC.png"), cv2.IMREAD_UNCHANGED)[::4, ::4]
    mlo = cv2.imread(str(DATA / "gmic-exam0" / "0_L-MLO.png"), cv2.IMREAD_UNCHANGED)[::4, ::4]
    same = {"AcquisitionDate": "20260101", "AcquisitionTime": "100000"}
    write(make_dataset(cc, "L-CC", InstanceNumber=1, **same), tmp_path, "first.dcm")
    write(make_dataset(mlo, "L-CC", InstanceNumber=2, **same), tmp_path, "second.dcm")
    exam = load_exam(tmp_path)
    assert exam.views[View.L_CC].source.name == "first.dcm"
    note = next(w for w in exam.warnings if w.startswith("2 images for L-CC"))
    assert "the pixels of second.dcm look more like an MLO view" in note and "later acquisition" not in note


def test_a_copy_of_a_file_is_one_image_and_a_reused_uid_is_said(tmp_path):
    """A site lead's findings: an identical copy of L-CC.dcm (one SOP Instance UID) was taken for a retake ("2
    images for L-CC: used L-CC_copy.dcm … kept aside: L-CC.dcm"); two images of one UID and other pixels were
    said nothing of."""
    import shutil

    from tests.helpers import synthetic_view

    for view, lesion in (("L-CC", (700, 200)), ("R-CC", (600, 500)), ("L-MLO", (700, 250)), ("R-MLO", (700, 450))):
        write(make_dataset(synthetic_view(view, lesion), view), tmp_path, f"{view}.dcm")
    shutil.copy(tmp_path / "L-CC.dcm", tmp_path / "L-CC_copy.dcm")
    exam = load_exam(tmp_path)
    assert exam.views[View.L_CC].source.name == "L-CC.dcm" and not exam.aside
    (note,) = [w for w in exam.warnings if "are one image" in w]
    assert note.startswith("L-CC.dcm and L-CC_copy.dcm are one image (the same SOP Instance UID")
    assert not any(w.startswith("2 images for L-CC") for w in exam.warnings)

    relabelled = pydicom.dcmread(tmp_path / "L-CC.dcm")  # the same image and UID, its header naming R: not a copy
    relabelled.ImageLaterality = "R"
    relabelled.save_as(tmp_path / "A_copy.dcm")
    (tmp_path / "aside").mkdir()  # out of the exam's folder (a file is read by its content, whatever its name)
    (tmp_path / "R-CC.dcm").rename(tmp_path / "aside" / "R-CC.dcm")
    exam = load_exam(tmp_path)  # a review's finding: the first by name was kept, and the true L-CC was gone
    assert exam.views[View.L_CC].source.name == "L-CC.dcm" and exam.views[View.R_CC].source.name == "A_copy.dcm"
    assert any("A_copy.dcm and L-CC.dcm share the SOP Instance UID" in w and "headers' views (R CC and L CC)" in w
               for w in exam.warnings)
    (tmp_path / "A_copy.dcm").unlink()
    (tmp_path / "aside" / "R-CC.dcm").rename(tmp_path / "R-CC.dcm")

    other = pydicom.dcmread(tmp_path / "R-CC.dcm")
    other.SOPInstanceUID = pydicom.dcmread(tmp_path / "L-CC.dcm").SOPInstanceUID  # another image, the same UID
    (tmp_path / "L-CC_copy.dcm").unlink()
    other.save_as(tmp_path / "R-CC.dcm")
    exam = load_exam(tmp_path)
    assert any("share the SOP Instance UID" in w and "their pixels differ" in w for w in exam.warnings)
    assert exam.views[View.R_CC].source.name == "R-CC.dcm" and exam.views[View.L_CC].source.name == "L-CC.dcm"


def test_an_image_far_smaller_than_a_mammogram_is_said_so(tmp_path):
    """A researcher's finding: a 50 × 50 PNG got confident numbers from every model without a word."""
    import cv2

    from tests.helpers import synthetic_view

    tiny = cv2.resize(synthetic_view("L-CC", (700, 300)), (50, 50), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(tmp_path / "0_L-CC.png"), tiny.astype(np.uint16))
    exam = load_exam(tmp_path)
    assert any(w.startswith("the image is 50 × 50 pixels, far smaller than a mammogram")
               for w in exam.views[View.L_CC].warnings)
    assert not any("far smaller" in w for w in load_view(tmp_path / "0_L-CC.png").warnings)  # a training patch
    other = tmp_path / "other"
    other.mkdir()
    write(make_dataset(synthetic_view("R-CC", (600, 500)), "R-CC"), other, "R-CC.dcm")
    assert not any("far smaller" in w for w in load_exam(other).views[View.R_CC].warnings)
