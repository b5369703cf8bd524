"""The synthetic demo exam: deterministic, labelled, read by the real DICOM intake."""

from __future__ import annotations

import numpy as np

from inference.intake.exam import View, load_exam
from inference.intake import phantom
from inference.intake.phantom import Finding, demo_exam, generate_exam, power_law_noise, write_dicom_exam
from inference.intake.views import Laterality
from tests.helpers import dciodvfy


def test_deterministic_from_the_seed():
    a, b = generate_exam(5), generate_exam(5)
    for view in View:
        assert np.array_equal(a.views[view].image, b.views[view].image)
    assert not np.array_equal(generate_exam(6).views[View.L_CC].image, a.views[View.L_CC].image)


def test_lesions_drawn_in_their_box_are_the_lesions_drawn_over_the_whole_image(monkeypatch):
    """Each lesion is computed only near its centre; with the box the whole image, every pixel and mask is the
    same: the box holds every pixel a lesion touches (large lesions, at the edges and corners included)."""
    edges = {Laterality.LEFT: [Finding("spiculated", (0.02, 0.98), 1.3), Finding("calcifications", (0.99, 0.01), 1.3)],
             Laterality.RIGHT: [Finding("round", (0.0, 0.0), 1.3), Finding("spiculated", (1.0, 1.0), 1.3)]}
    drawn = [generate_exam(seed, findings, (400, 300)) for seed, findings in ((9, edges), (3, None), (11, None))]
    monkeypatch.setattr(phantom, "_box", lambda shape, centre, reach: (slice(0, shape[0]), slice(0, shape[1])))
    whole = [generate_exam(seed, findings, (400, 300)) for seed, findings in ((9, edges), (3, None), (11, None))]
    for boxed, everywhere in zip(drawn, whole):
        for view in View:
            a, b = boxed.views[view], everywhere.views[view]
            assert np.array_equal(a.image, b.image), view
            assert all(np.array_equal(a.lesion_masks[k], b.lesion_masks[k]) for k in ("benign", "malignant")), view
    assert any(exam.views[view].lesion_masks["malignant"].any() for exam in drawn for view in View)


def test_demo_exam_findings_and_masks():
    exam = demo_exam()
    assert exam.labels == {"right_malignant": 1, "right_benign": 0, "left_malignant": 0, "left_benign": 1}
    for view, phantom in exam.views.items():
        image = phantom.image
        assert image.dtype == np.uint16 and image.max() <= 4095 and image.min() == 0
        assert phantom.lesion_masks["malignant"].any() == (view.laterality == "R")
        assert phantom.lesion_masks["benign"].any() == (view.laterality == "L")
        lesion = phantom.lesion_masks["malignant"] | phantom.lesion_masks["benign"]
        assert np.all(phantom.breast_mask[lesion])  # findings lie inside the breast
        # stored the usual way: L views face right (tissue at column 0), R views face left
        left_edge, right_edge = phantom.breast_mask[:, 0].mean(), phantom.breast_mask[:, -1].mean()
        assert (left_edge > right_edge) == (view.laterality == "L")


def test_texture_has_a_power_law_spectrum():
    noise = power_law_noise((512, 512), beta=3.0, rng=np.random.default_rng(0))
    power = np.abs(np.fft.rfft2(noise)) ** 2
    f = np.sqrt(np.fft.fftfreq(512)[:, None] ** 2 + np.fft.rfftfreq(512)[None, :] ** 2)
    band = (f > 0.02) & (f < 0.3)
    slope = np.polyfit(np.log(f[band]), np.log(power[band]), 1)[0]
    assert -3.4 < slope < -2.6


def test_dicom_demo_goes_through_the_real_intake(tmp_path):
    exam = demo_exam()
    write_dicom_exam(exam, tmp_path)
    loaded = load_exam(tmp_path)
    assert set(loaded.views) == set(View)
    for view, image in loaded.views.items():
        assert image.view_source == "ViewCodeSequence" and image.laterality_source == "ImageLaterality"
        assert not image.warnings and not image.horizontal_flip
        assert np.array_equal(image.pixels, exam.views[view].image)
        assert image.windows and image.pixel_spacing is not None


def test_demo_dicom_is_a_valid_mammography_iod(tmp_path):
    for path in write_dicom_exam(demo_exam(), tmp_path):
        assert dciodvfy(path) == [], path.name
