"""analyze_exam: oracle agreement end to end, breast/exam arithmetic, progress, cancel, devices, modes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inference.exam import View, load_exam
from inference.pipeline import Cancelled, Mode, analyze_exam, choose_device
from tests.conftest import DATA, REFERENCE, require_shared


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
    """Each box in the original frame cuts the same pixels as the model's patch (where inside the image)."""
    result, _ = exam0_result
    view_result = result.views[View.R_CC]
    original = exam0.views[View.R_CC].model_image
    prepared_mean_std = None
    for patch in view_result.patches:
        t, l, b, r = (int(round(v)) for v in patch.box_original)
        if t < 0 or l < 0 or b > original.shape[0] or r > original.shape[1]:
            continue
        cut = original[t:b, l:r][:, ::-1]  # R view: the model saw it mirrored
        if prepared_mean_std is None:
            # recover the standardisation from one pixel pair
            a, c = np.polyfit(cut.ravel()[:5000], patch.pixels.ravel()[:5000], 1)
            prepared_mean_std = (a, c)
        a, c = prepared_mean_std
        assert np.abs(cut * a + c - patch.pixels).max() < 1e-4


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


def test_fast_mode_agrees_with_exact_within_001(exam0, seeded_model, exam0_result):
    exact, _ = exam0_result
    fast = analyze_exam(exam0, seeded_model, device="cpu", mode=Mode.FAST)
    assert fast.provenance.mode == Mode.FAST
    for view in View:
        assert np.abs(fast.views[view].probabilities - exact.views[view].probabilities).max() < 0.01


def test_bad_views_argument():
    with pytest.raises(ValueError):
        analyze_exam({}, [])


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
