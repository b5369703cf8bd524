"""A localisation study's truth from a DICOM Segmentation, and lesions drawn by the coordinator (Qt-free part)
(issue 29, item 1)."""

from __future__ import annotations

import copy
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from app.study.cases import CaseEntry
from app.study.design import Design, create_study
from app.study.errors import StudyError
from app.study.lesions import (
    DrawnLesion,
    check_lesions,
    circle_from_drag,
    drawn_lesions,
    read_lesion_list,
    save_drawn_lesions,
    stored_lesion_truth,
    study_lesions,
    with_exam_spacing,
)
from app.study.localisation import ScoringRule
from tests.helpers import synthetic_view
from tests.inference.intake.dicom_factory import make_dataset, write

SHAPE = (700, 400)


def dicom_exam(folder: Path) -> dict[str, pydicom.Dataset]:
    """A left-breast DICOM exam (L-CC, L-MLO) with 0.1 mm pixels; its datasets by view."""
    folder.mkdir(parents=True)
    datasets = {}
    for view, name in (("L-CC", "cc.dcm"), ("L-MLO", "mlo.dcm")):
        ds = make_dataset(synthetic_view(view, (300, 150), shape=SHAPE), view)
        write(ds, folder, name)
        datasets[view] = ds
    return datasets


def write_seg(source: pydicom.Dataset, masks: list[np.ndarray], path: Path) -> Path:
    """A BINARY Segmentation of ``source`` with one segment per mask (as app/report/seg.py writes them: a
    projection image's geometry without its pixel spacing)."""
    geometry = copy.deepcopy(source)
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        if keyword in geometry:
            delattr(geometry, keyword)
    for keyword in ("PatientSex", "StudyTime", "ReferringPhysicianName", "StudyID"):  # type 2, copied by highdicom
        if keyword not in geometry:
            setattr(geometry, keyword, "")
    segments = [hd.seg.SegmentDescription(
        segment_number=number, segment_label=f"lesion {number}",
        segmented_property_category=hd.sr.CodedConcept("49755003", "SCT", "Morphologically Altered Structure"),
        segmented_property_type=hd.sr.CodedConcept("4147007", "SCT", "Mass"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL) for number in range(1, len(masks) + 1)]
    stack = np.stack(masks, axis=-1)[None]
    seg = hd.seg.Segmentation(
        source_images=[geometry], pixel_array=stack, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segments, series_instance_uid=hd.UID(), series_number=99, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="test", manufacturer_model_name="test", software_versions="1",
        device_serial_number="1")
    seg.save_as(path)
    return path


def disc(centre: tuple[int, int], radius: int) -> np.ndarray:
    rows, cols = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2



def test_each_segment_of_a_seg_is_a_lesion_on_the_view_of_the_image_it_references(tmp_path, store):
    datasets = dicom_exam(tmp_path / "exam")
    write_seg(datasets["L-CC"], [disc((300, 150), 20), disc((500, 250), 10)], tmp_path / "cc_seg.dcm")
    write_seg(datasets["L-MLO"], [disc((320, 160), 25)], tmp_path / "mlo_seg.dcm")
    (tmp_path / "lesions.csv").write_text("case_id,breast,view,mask,row,col,radius_mm,weight,lesion,spacing_mm,seg\n"
                                          "c1,,,,,,,,,,cc_seg.dcm\nc1,,,,,,,,,,mlo_seg.dcm\n")
    cases = [CaseEntry("c1", str(tmp_path / "exam"), "malignant", "normal"),
             CaseEntry("c2", str(tmp_path / "exam"), "normal", "normal")]
    lesions = read_lesion_list(tmp_path / "lesions.csv", cases)
    by_key = {(l.lesion_id, l.view): l for l in lesions}
    assert set(by_key) == {("S1", "L-CC"), ("S2", "L-CC"), ("S1", "L-MLO")}  # segment 1 of both SEGs: one lesion
    assert all(l.breast == "L" and l.case_id == "c1" and l.weight is None for l in lesions)
    assert by_key[("S1", "L-CC")].centre == pytest.approx((300, 150), abs=0.5)
    assert by_key[("S2", "L-CC")].centre == pytest.approx((500, 250), abs=0.5)
    assert by_key[("S1", "L-MLO")].centre == pytest.approx((320, 160), abs=0.5)
    assert by_key[("S2", "L-CC")].mask.sum() == disc((500, 250), 10).sum()  # the outline itself, cropped
    assert by_key[("S2", "L-CC")].mask_origin == (490, 240)
    check_lesions(lesions, cases)
    lesions = with_exam_spacing(lesions, cases)
    study = create_study(store, "seg", Design.UNAIDED, ["A"], cases, lesions=lesions, scoring=ScoringRule())
    truth = stored_lesion_truth(store, study)
    assert {l.lesion_id: len(l.outlines) for l in truth.lesions["c1"]} == {"S1": 2, "S2": 1}
    assert truth.spacing["c1"]["L-CC"] == pytest.approx((0.1, 0.1))


def test_a_seg_of_another_exam_is_refused_naming_the_file_and_line(tmp_path):
    dicom_exam(tmp_path / "exam")
    other = dicom_exam(tmp_path / "other")  # same views, other SOP Instance UIDs
    write_seg(other["L-CC"], [disc((300, 150), 20)], tmp_path / "other_seg.dcm")
    (tmp_path / "lesions.csv").write_text("case_id,seg\nc1,other_seg.dcm\n")
    cases = [CaseEntry("c1", str(tmp_path / "exam"), "malignant", "normal")]
    with pytest.raises(StudyError, match=r"lesions.csv: line 2: case c1: the segmentation .*other_seg.dcm segments "
                                         r"an image that is not in the case's exam"):
        read_lesion_list(tmp_path / "lesions.csv", cases)
    (tmp_path / "bad.csv").write_text("case_id,seg,weight\nc1,other_seg.dcm,0.5\n")
    with pytest.raises(StudyError, match="line 2: a row with a seg takes its lesions"):
        read_lesion_list(tmp_path / "bad.csv", cases)
    (tmp_path / "image.csv").write_text("case_id,seg\nc1,exam/cc.dcm\n")
    with pytest.raises(StudyError, match="is DICOM but not a Segmentation"):
        read_lesion_list(tmp_path / "image.csv", cases)


def test_drawn_circles_are_saved_with_normalised_weights_and_replace_the_earlier_ones(tmp_path, store):
    cases = [CaseEntry("c1", "/exams/1", "malignant", "normal"), CaseEntry("c2", "/exams/2", "normal", "normal")]
    study = create_study(store, "drawn", Design.UNAIDED, ["A"], cases)  # an ROC study so far: no rule
    centre, radius = circle_from_drag((100, 100), (103, 104), (0.1, 0.1))
    assert centre == (100.0, 100.0) and radius == pytest.approx(0.5)
    spacing = {"L-CC": (0.1, 0.1), "L-MLO": (0.1, 0.1)}
    drawn = [DrawnLesion("L-CC", (100, 100), 5.0, 3.0), DrawnLesion("L-MLO", (120, 90), 4.0, 1.0)]
    assert save_drawn_lesions(store, study, "c1", drawn, spacing) == 2
    again = drawn_lesions(store, study, "c1")
    assert [(l.view, l.centre, l.radius_mm) for l in again] == [("L-CC", (100, 100), 5.0), ("L-MLO", (120, 90), 4.0)]
    assert [l.weight for l in again] == pytest.approx([0.75, 0.25])
    truth = stored_lesion_truth(store, study)  # the study got the default scoring rule with its first lesion
    assert truth.rule == ScoringRule()
    assert [l.lesion_id for l in truth.lesions["c1"]] == ["D1", "D2"]
    assert save_drawn_lesions(store, study, "c1", drawn[:1], spacing) == 1  # the case's drawn set, replaced
    assert [l.lesion_id for l in study_lesions(store, study)] == ["D1"]
    with pytest.raises(StudyError, match="the left breast is normal"):
        save_drawn_lesions(store, study, "c2", drawn[:1], spacing)
    with pytest.raises(StudyError, match="a positive weight for every lesion"):
        save_drawn_lesions(store, study, "c1", [drawn[0], DrawnLesion("L-MLO", (1, 1), 2.0)], spacing)
    with pytest.raises(StudyError, match="no pixel spacing"):
        save_drawn_lesions(store, study, "c1", drawn[:1], {})
