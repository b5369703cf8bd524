"""A prior view registered to the current one: a prior made from the current image by a known affine (rotation,
scale, shift), with another detector's contrast and stored mirrored, maps every breast point back within a
fraction of a millimetre; a prior without tissue to register is called approximate; another breast under the
label is not registered."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from app.prior_registration import prior_image, register_exam, register_view
from inference.intake.exam import load_exam
from inference.intake.views import View
from tests.conftest import SHARED, require_shared


@pytest.fixture(scope="module")
def exam0():
    folder = SHARED / "data" / "gmic-exam0"
    require_shared(folder)  # fails instead of skipping where MAMMO_REQUIRE_SHARED=1 (CI)
    return load_exam(folder)


def warped(image, matrix, *, mirror=False, contrast=lambda a: a):
    h, w = image.pixels.shape

    def warp(a):
        out = cv2.warpAffine(np.asarray(a, np.float32), matrix, (w, h), flags=cv2.INTER_LINEAR)
        return out[:, ::-1].copy() if mirror else out

    return dataclasses.replace(image, pixels=warp(contrast(image.pixels)), model_image=warp(contrast(image.model_image)),
                               horizontal_flip=image.horizontal_flip != mirror)


def mapping_errors(current, registration, matrix, *, mirror=False):
    """Pixel distance between where the registration puts breast points and where the affine put them."""
    h, w = current.pixels.shape
    errors = []
    for row, col in np.argwhere(current.model_image > 0)[::2000] + 0.5:
        x, y = matrix @ np.array([col, row, 1.0])
        if not (0 <= x < w and 0 <= y < h):
            continue  # pushed out of the prior's field
        if mirror:
            x = w - x
        got_row, got_col = registration.to_prior(row, col)
        errors.append(np.hypot(got_row - y, got_col - x))
    return np.array(errors)


@pytest.mark.parametrize("view", [View.L_CC, View.R_MLO])
def test_a_known_affine_is_recovered_within_a_pixel(exam0, view):
    current = exam0.views[view]
    h, w = current.pixels.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), 4.0, 1.06)
    matrix[:, 2] += (60, -90)
    registration = register_view(current, warped(current, matrix))
    errors = mapping_errors(current, registration, matrix)
    assert len(errors) > 50 and np.median(errors) < 1.0 and errors.max() < 3.0
    assert not registration.approximate and "mutual information" in registration.method


def test_a_mirrored_prior_with_another_contrast_is_registered(exam0):
    current = exam0.views[View.R_CC]
    h, w = current.pixels.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), -3.0, 0.95)
    matrix[:, 2] += (-40, 70)
    prior = warped(current, matrix, mirror=True, contrast=lambda a: np.sqrt(np.asarray(a, np.float32)) * 40)
    assert prior.horizontal_flip != current.horizontal_flip
    registration = register_view(current, prior)
    errors = mapping_errors(current, registration, matrix, mirror=True)
    assert len(errors) > 50 and np.median(errors) < 1.5 and errors.max() < 4.0


def test_a_prior_without_tissue_is_called_approximate(exam0):
    current, other = exam0.views[View.L_CC], exam0.views[View.L_MLO]
    registration = register_view(current, dataclasses.replace(other, model_image=np.zeros_like(other.model_image)))
    assert registration.approximate  # nothing to overlap: a registration not to be trusted, and said so
    assert np.isfinite(registration.matrix).all()


def test_every_view_of_the_exam_is_paired_with_the_priors_image_for_its_slot(exam0):
    registrations, failed = register_exam(exam0, exam0)
    assert set(registrations) == set(exam0.views) and not failed
    for view, registration in registrations.items():
        assert prior_image(exam0, view) is exam0.views[view]
        row, col = np.argwhere(exam0.views[view].model_image > 0)[1000] + 0.5
        got = registration.to_prior(row, col)
        assert np.hypot(got[0] - row, got[1] - col) < 1.0  # the same image: the identity


def test_another_breast_under_the_label_is_not_registered_and_the_status_says_so(exam0, tmp_path):
    """A prior whose R-CC file holds a left breast (a mislabelled laterality): the intake turns it the right
    way and calls it a possible laterality error, and an affine overlays it well on the right breast (overlap
    0.99). It was linked with a solid cross; it is not linked now, and the status line says why."""
    import shutil

    from app.pacs.priors import PriorStudy
    from app.ui.workstation.priors_control import link_text
    from app.workstation import PriorFound
    from tests.conftest import DATA

    folder = tmp_path / "prior"
    shutil.copytree(DATA / "gmic-exam0", folder, ignore=shutil.ignore_patterns("*mask*", "*.json", "*.md"))
    shutil.copy(folder / "0_L-CC.png", folder / "0_R-CC.png")
    mislabelled = load_exam(folder)
    assert View.R_CC in mislabelled.laterality_conflicts
    registrations, failed = register_exam(exam0, mislabelled)
    assert set(failed) == {View.R_CC} and View.R_CC not in registrations
    assert set(registrations) >= {View.L_CC, View.R_MLO, View.L_MLO}
    found = PriorFound(PriorStudy("20250101", "", "", "local", folder), mislabelled, (), registrations, failed)
    assert link_text(found) == "R-CC not linked (the prior's R-CC may be the other breast: a possible laterality error)"


def test_a_view_whose_registration_fails_leaves_the_others_linked(exam0, monkeypatch):
    import app.prior_registration as registration_module

    real = registration_module.register_view

    def failing(current, prior):
        if current is exam0.views[View.L_MLO]:
            raise RuntimeError("ITK: too many samples map outside the moving image")
        return real(current, prior)

    monkeypatch.setattr(registration_module, "register_view", failing)
    registrations, failed = register_exam(exam0, exam0)
    assert failed == {View.L_MLO: "ITK: too many samples map outside the moving image"}
    assert set(registrations) == set(exam0.views) - {View.L_MLO}


def test_centres_only_is_approximate_however_well_the_outlines_overlap():
    from app.prior_registration import ViewRegistration

    assert ViewRegistration(np.eye(3), 0.83, "tissue centres aligned", refined=False).approximate
    assert not ViewRegistration(np.eye(3), 0.83, "affine, mutual information on the breast").approximate
