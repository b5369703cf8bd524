"""analyze_exam: oracle agreement end to end, breast/exam arithmetic, progress, cancel, devices, modes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from inference.exam import View, load_exam
from inference.pipeline import Cancelled, Mode, analyze_exam, choose_device
from tests.conftest import DATA, REFERENCE, require_shared
from tests.helpers import run_isolated


@pytest.fixture(scope="module")
def stub_gmic():
    from tests.helpers import make_stub_model

    return make_stub_model()


@pytest.fixture(scope="module")
def exam0():
    require_shared()
    return load_exam(DATA / "gmic-exam0")


@pytest.fixture(scope="module")
def exam0_result(exam0, seeded_model):
    calls = []
    result = analyze_exam(exam0, seeded_model, device="cpu", progress=lambda *a: calls.append(a))
    return result, calls


def test_end_to_end_matches_golden_per_view(exam0_result):
    result, _ = exam0_result
    for view in View:
        golden = np.load(REFERENCE / f"golden_exam0_{view.value}.npz")
        view_result = result.views[view]
        assert np.abs(view_result.probabilities - golden["y_fusion"][0]).max() <= 1e-4
        assert np.abs(view_result.saliency - golden["saliency_map"][0]).max() <= 1e-4
        boxes = [p.box_input[:2] for p in view_result.patches]
        assert boxes == [tuple(int(v) for v in loc) for loc in golden["patch_locations"][0]]


def test_breast_is_mean_of_cc_and_mlo_and_exam_is_max(exam0_result):
    result, _ = exam0_result
    for side in ("L", "R"):
        cc, mlo = result.views[View(f"{side}-CC")], result.views[View(f"{side}-MLO")]
        assert np.allclose(result.breasts[side].probabilities, (cc.probabilities + mlo.probabilities) / 2)
    assert np.allclose(result.probabilities, np.max([b.probabilities for b in result.breasts.values()], axis=0))


def test_patch_boxes_are_in_original_pixels(exam0_result, exam0):
    """Each box in the original frame cuts the same pixels as the model's patch: the part of the box inside
    the image is compared (a box can run past the image where the model window was zero padded)."""
    from inference.preprocess import prepare_view

    result, _ = exam0_result
    checked = 0
    for view in View:
        view_result = result.views[view]
        image = exam0.views[view]
        original = image.model_image
        prepared = prepare_view(original, view, image.horizontal_flip)
        for patch in view_result.patches:
            t, l, b, r = (int(round(v)) for v in patch.box_original)
            rows = slice(max(t, 0), min(b, original.shape[0]))
            cols = slice(max(l, 0), min(r, original.shape[1]))
            assert rows.stop > rows.start and cols.stop > cols.start, f"{view} patch {patch.rank} is off the image"
            cut = (original[rows, cols] - prepared.mean) / prepared.std
            expected = np.zeros((b - t, r - l), np.float32)
            expected[rows.start - t : rows.stop - t, cols.start - l : cols.stop - l] = cut
            if view_result.mapping.flipped:
                expected = expected[:, ::-1]  # the model saw the breast facing right
            inside = np.zeros_like(expected, bool)
            inside[rows.start - t : rows.stop - t, cols.start - l : cols.stop - l] = True
            if view_result.mapping.flipped:
                inside = inside[:, ::-1]
            assert np.abs(expected - patch.pixels)[inside].max() < 1e-4
            checked += 1
    assert checked == 4 * 6


def test_progress_reports_stages_in_order(exam0_result):
    _, calls = exam0_result
    stages = [c[0] for c in calls]
    assert stages[0] == "preprocess" and stages[-1] == "models"
    assert any("R-MLO" in s for s in stages)
    assert all(0 <= done <= total for _, done, total in calls)


def test_cancel_between_stages(exam0, seeded_model):
    seen = []

    def cancel():
        return len(seen) >= 6

    with pytest.raises(Cancelled):
        analyze_exam(exam0, seeded_model, device="cpu", progress=lambda *a: seen.append(a), cancel=cancel)
    assert len(seen) < 10  # stopped before all four views ran


def test_cancel_before_start(exam0, seeded_model):
    with pytest.raises(Cancelled):
        analyze_exam(exam0, seeded_model, cancel=lambda: True)


def test_cuda_request_falls_back_to_cpu_with_notice(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    device, notices = choose_device("cuda")
    assert device.type == "cpu" and "CPU" in notices[0]
    assert choose_device("auto")[0].type == "cpu"


def test_ensemble_mean_and_spread(seeded_model):
    require_shared()
    image = cv2.imread(str(DATA / "gmic-exam0" / "0_L-CC.png"), cv2.IMREAD_UNCHANGED)
    single = analyze_exam({"L-CC": image}, seeded_model, device="cpu")
    double = analyze_exam({"L-CC": image}, [seeded_model, seeded_model], device="cpu")
    assert np.allclose(single.views[View.L_CC].probabilities, double.views[View.L_CC].probabilities)
    assert np.allclose(double.views[View.L_CC].spread, 0)
    assert len(double.views[View.L_CC].per_model) == 2
    assert list(single.breasts) == ["L"]


def test_batched_views_equal_one_at_a_time(exam0, seeded_model):
    one = analyze_exam(exam0, seeded_model, device="cpu", batch_size=1)
    four = analyze_exam(exam0, seeded_model, device="cpu", batch_size=4)
    for view in View:
        assert np.abs(one.views[view].probabilities - four.views[view].probabilities).max() < 1e-5
        assert [p.box_input for p in one.views[view].patches] == [p.box_input for p in four.views[view].patches]


@pytest.mark.timeout(900)
def test_fast_mode_agrees_with_exact_as_readme_states():
    """The compiled fast mode on all seven oracle inputs, in a child process (compilation is native code). In
    fp32 README states |dy_fusion| <= 1.3e-6 and |dsaliency| <= 3.1e-6 with the same patches: tested with a
    margin. Where the fast mode runs in bf16 (CPUs with AMX / AVX-512-BF16) the bound is |dp| <= 0.01."""
    require_shared()
    done = run_isolated(["-m", "tests.inference.fast_mode_probe", str(REFERENCE)], timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    worst = json.loads(done.stdout.strip().splitlines()[-1])
    assert worst["inputs"] == 7
    if worst["numerics"] == "fp32":
        assert worst["y_fusion"] <= 1e-5 and worst["saliency"] <= 2e-5, worst
        assert worst["same_patches"], worst
    else:
        assert worst["y_fusion"] <= 0.01 and worst["saliency"] <= 0.01, worst


def test_no_views_is_a_value_error(stub_gmic):
    with pytest.raises(ValueError, match="views"):
        analyze_exam({}, stub_gmic)


def test_no_models_is_a_value_error():
    image = np.zeros((64, 32), np.uint16)
    image[10:50, :20] = 1000
    with pytest.raises(ValueError, match="model"):
        analyze_exam({"L-CC": image}, [])


def test_result_json_round_trip(exam0_result):
    import json

    from inference.serialize import exam_result_from_dict, exam_result_to_dict

    result, _ = exam0_result
    data = json.loads(json.dumps(exam_result_to_dict(result)))
    again = exam_result_from_dict(data)
    for view in View:
        a, b = result.views[view], again.views[view]
        assert np.allclose(a.probabilities, b.probabilities) and np.allclose(a.saliency, b.saliency, atol=1e-6)
        assert np.allclose([p.box_original for p in a.patches], [p.box_original for p in b.patches], atol=1e-3)
        assert a.mapping == b.mapping
    assert np.allclose(result.probabilities, again.probabilities)
    assert exam_result_to_dict(again)["breasts"] == data["breasts"]
