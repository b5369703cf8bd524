"""Preprocessing against the reference oracles, and the coordinate mapping."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from inference.errors import PreprocessError
from inference.families.preprocess import Mapping, prepare_view
from inference.intake.views import View
from tests.conftest import DATA, REFERENCE, REQUIRE_SHARED, require_shared

ORACLE_FILES = {
    "preprocess_exam0.json": "gmic-exam0",
    "preprocess_bcc_1_L_CC.json": "bcc-sample",
    "preprocess_large.json": "large",
}


def _oracle_cases():
    if not REFERENCE.is_dir():
        if REQUIRE_SHARED:
            raise RuntimeError(f"no preprocessing oracles in {REFERENCE} (MAMMO_REQUIRE_SHARED=1 requires them)")
        return []
    cases = []
    for name, folder in ORACLE_FILES.items():
        record = json.loads((REFERENCE / name).read_text())
        for exam in record["exams"]:
            for view, entry in exam["views"].items():
                stem = entry["short_file_path"]
                golden = None
                if folder == "gmic-exam0":
                    golden = REFERENCE / f"golden_exam0_{view}.npz"
                elif folder == "large":
                    golden = REFERENCE / f"golden_large_{stem}.npz"
                cases.append(pytest.param(view, DATA / folder / f"{stem}.png", entry, golden, id=stem))
    return cases


def read_png(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize(("view", "png", "entry", "golden"), _oracle_cases())
def test_stage1_stage2_and_input_match_reference(view, png, entry, golden):
    require_shared()
    prepared = prepare_view(read_png(png), view)
    crop = prepared.crop
    assert list(prepared.window_location) == entry["window_location"]
    assert [list(crop.rightmost_points[0]), crop.rightmost_points[1]] == entry["rightmost_points"]
    assert [crop.bottommost_points[0], list(crop.bottommost_points[1])] == entry["bottommost_points"]
    assert crop.distance_from_starting_side == entry["distance_from_starting_side"]
    assert list(prepared.best_center) == entry["best_center"]
    assert prepared.input.shape == (2944, 1920) and prepared.input.dtype == np.float32
    if golden is not None:
        expected = np.load(golden)["input"]
        assert np.abs(prepared.input - expected).max() <= 1e-5
    if "process_image_window" in entry:
        window = entry["process_image_window"]["window_top_left_in_flipped_crop"]
        if prepared.mapping.crop_shape[0] >= 2944:
            assert prepared.mapping.window_origin[0] == window[0]
        assert prepared.mapping.window_origin[1] == window[1]


def test_oracle_cases_are_present():
    """The oracle tests must run, not skip, where ../shared exists."""
    require_shared()
    assert len(_oracle_cases()) == 8


@pytest.mark.parametrize("view", ["L-CC", "R-CC", "L-MLO", "R-MLO"])
def test_patch_box_mapped_back_cuts_the_same_pixels(view):
    """A box in the input frame, mapped to the original frame, cuts the pixels the model saw."""
    require_shared()
    original = read_png(DATA / "gmic-exam0" / f"0_{view}.png")
    prepared = prepare_view(original, view)
    mapping = prepared.mapping
    # a 256 box fully inside the breast in the input frame
    rows, cols = np.nonzero(prepared.input > prepared.input.min())
    top, left = int(np.median(rows)) - 128, int(np.median(cols)) - 128
    box = (top, left, top + 256, left + 256)
    seen = prepared.input[box[0] : box[2], box[1] : box[3]]
    t, l, b, r = (int(round(v)) for v in mapping.box_to_original(box))
    cut = original[t:b, l:r].astype(np.float32)
    if mapping.flipped:
        cut = cut[:, ::-1]
    restored = (cut - np.float32(prepared.mean)) / np.float32(prepared.std)
    assert restored.shape == seen.shape
    assert np.abs(restored - seen).max() < 1e-5


def test_bcc_crop_mapping_round_trip():
    require_shared()
    original = read_png(DATA / "bcc-sample" / "1_R_CC.png")
    prepared = prepare_view(original, "R-CC")
    mapping = prepared.mapping
    rng = np.random.default_rng(0)
    points = rng.uniform([0, 0], [2944, 1920], size=(100, 2))
    assert np.allclose(mapping.to_input(mapping.to_original(points)), points)
    indices = rng.integers([0, 0], [2944, 1920], size=(50, 2))
    orig = mapping.index_to_original(indices)
    inside = (orig[:, 0] >= 0) & (orig[:, 0] < original.shape[0]) & (orig[:, 1] >= 0) & (orig[:, 1] < original.shape[1])
    values = (original[orig[inside, 0], orig[inside, 1]].astype(np.float32) - prepared.mean) / prepared.std
    assert np.allclose(values, prepared.input[indices[inside, 0], indices[inside, 1]], atol=1e-5)


def test_saliency_map_lands_on_the_same_tissue_in_the_original_frame():
    """A single hot cell of a 46 x 30 map resampled to the original frame peaks where the cell's pixels are."""
    require_shared()
    original = read_png(DATA / "gmic-exam0" / "0_R-MLO.png")
    prepared = prepare_view(original, "R-MLO")
    heat = np.zeros((46, 30), np.float32)
    heat[20, 5] = 1.0
    warped = prepared.mapping.map_to_original(heat, fill=0.0)
    peak = np.array(np.unravel_index(np.nanargmax(warped), warped.shape)) + 0.5
    centre_input = np.array([20 * 64 + 32, 5 * 64 + 32])
    expected = prepared.mapping.to_original(centre_input)
    assert np.abs(peak - expected).max() <= 33  # within half a cell


def test_mapping_affine_agrees_with_point_mapping():
    mapping = Mapping(original_shape=(3000, 2000), crop_origin=(10, 20), crop_shape=(2900, 1500), flipped=True, window_origin=(-22, 0))
    points = np.array([[0.0, 0.0], [100.5, 7.25], [2944, 1920]])
    affine = mapping.input_to_original_affine()
    via_affine = (affine @ np.c_[points, np.ones(3)].T).T[:, :2]
    assert np.allclose(via_affine, mapping.to_original(points))


def test_blank_image_is_refused_with_a_message():
    with pytest.raises(PreprocessError, match="blank"):
        prepare_view(np.zeros((500, 300), np.uint16), "L-CC")


def test_small_image_falls_back_to_whole_image_with_a_warning():
    image = np.zeros((150, 120), np.uint16)
    image[20:130, :60] = 1000
    prepared = prepare_view(image, "L-CC")
    assert prepared.crop.used_fallback
    assert any("erosion" in w for w in prepared.warnings)
    assert prepared.input.shape == (2944, 1920)


def test_horizontal_flip_flag_mirrors_the_decision():
    require_shared()
    original = read_png(DATA / "gmic-exam0" / "0_L-CC.png")
    normal = prepare_view(original, "L-CC")
    mirrored = prepare_view(original[:, ::-1], "L-CC", horizontal_flip=True)
    assert mirrored.mapping.flipped and not normal.mapping.flipped
    assert np.array_equal(normal.input, mirrored.input)


def test_breast_tissue_outside_the_model_s_window_is_said():
    """A breast taller than 2944 rows: a third of it never reached the model, and the map simply stopped at a
    line with nothing said (a radiologist read 'no map' as 'nothing found'). The view's preparation says which
    rows were not analysed, and the result's notices carry it to the panel, the PDF and the command line."""
    from inference.results.exam_result import shown_notices  # noqa: PLC0415
    from tests.helpers import synthetic_view  # noqa: PLC0415

    tall = prepare_view(synthetic_view("R-MLO", (3000, 600), shape=(4368, 1570)), "R-MLO")
    (note,) = [w for w in tall.warnings if "outside the model's" in w]
    assert note.startswith("19 % of the breast lies outside the model's 2944 × 1920 window (rows 219–1197 above it")
    assert note.endswith("was not analysed: no map or region there means not looked at, not nothing found")
    assert not prepare_view(synthetic_view("R-CC", (700, 500)), "R-CC").warnings  # one that fits: nothing said
    # a breast deeper than 1920 columns: the window keeps the nipple side, the chest wall's tissue is left out
    (wide,) = prepare_view(synthetic_view("L-CC", (900, 1200), shape=(1800, 2600)), "L-CC").warnings
    assert wide.startswith("10 % of the breast lies outside the model's 2944 × 1920 window (the deepest tissue, at "
                           "the chest wall) and was not analysed")

    class ViewResult:
        warnings = (note,)

    class Result:
        views = {View.R_MLO: ViewResult()}
        entries = ()
        provenance = type("P", (), {"notices": ()})()

    assert shown_notices(Result()) == [f"R-MLO: {note}"]
