"""Each prior view registered to the current view of the same breast and projection (SimpleITK), so that the
cursor, the magnifier and the cross-reference follow from the current image into the prior.

What is registered: the two images downsampled to about 1 mm pixels (at most 400 on the long side), compared
on the current view's breast (its tissue mask, dilated), with a 2-D affine transform: the breast is positioned
and compressed differently from one screening round to the next, and an affine on the breast region takes up
position, size, rotation and the compression's stretch. A deformable transform was not chosen: it would also
chase the tissue's own changes, which are what the reader compares. The affine starts from the two tissue
masks' centres of mass and is refined by Mattes mutual information (the studies may come from different
detectors and processing) over three resolutions, with a fixed sampling seed: the same pair registers the
same way every time. Its quality is the overlap (Dice) of the current tissue with the registered prior's, where the
prior was imaged; a refinement that overlaps worse than its start is dropped for the start, and then, like an
overlap under 0.75, the registration is called approximate. A view whose breast faces the way
the other side's would (the intake's possible laterality error, until the reader confirms or moves it)
is not registered: that view's cursor is not linked.

Coordinates are the viewer's: x the column and y the row of the stored pixels, pixel k covering [k, k + 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from inference.intake.exam import Exam
from inference.intake.image import ViewImage
from inference.intake.views import View

# a prior slot takes the image of its own view, else one kept aside of the same breast and projection family
FALLBACK_LABELS = {"CC": ("XCCL", "XCCM", "FB"), "MLO": ("ML", "LM", "LMO", "SIO")}
MAX_SIDE = 400  # pixels on the long side of the images registered
MIN_PIXEL_MM = 1.0
UNKNOWN_SPACING_MM = 0.1  # an image without pixel spacing is taken at a typical detector's 0.1 mm
MIN_OVERLAP = 0.75  # below this tissue overlap the registration is called approximate on screen


def prior_image(exam: Exam, view: View) -> ViewImage | None:
    """The prior's image for ``view``: its own slot, else the usual fallbacks (ML for MLO, XCCL for CC)."""
    if view in exam.views:
        return exam.views[view]
    for label in FALLBACK_LABELS[view.projection.value]:
        for image in exam.aside:
            if image.view_label.split(" ")[0] == label and image.laterality == view.laterality.value:
                return image
    return None


@dataclass(frozen=True)
class ViewRegistration:
    """Where a point of the current view lies in the prior view.

    Attributes:
        matrix: 3x3, current (x, y, 1) to prior (x, y, 1), stored pixels of each image.
        tissue_overlap: Dice of the current breast and the registered prior breast (0..1).
        method: how it was obtained, in words (for the status line and the docs).
    """

    matrix: np.ndarray
    tissue_overlap: float
    method: str
    refined: bool = True  # False: the affine refinement failed or did not help (the tissue centres only)

    def to_prior(self, row: float, col: float) -> tuple[float, float]:
        """(row, col) in the prior for (row, col) in the current view."""
        x, y, _ = self.matrix @ np.array([col, row, 1.0])
        return float(y), float(x)

    @property
    def approximate(self) -> bool:
        """Not to be trusted point for point (dashed cross, said on the status line): the breasts overlap
        poorly, or only their centres were aligned."""
        return self.tissue_overlap < MIN_OVERLAP or not self.refined


@dataclass(frozen=True)
class _Grid:
    """An image brought to about 1 mm pixels: the SimpleITK image, its tissue mask, and the map from the
    stored image's pixel coordinates to the physical coordinates SimpleITK works in."""

    image: object  # SimpleITK.Image
    tissue: object  # SimpleITK.Image, uint8
    to_physical: np.ndarray  # 3x3, stored (x, y, 1) -> physical (x, y, 1)


def _spacing(image: ViewImage, other: ViewImage) -> tuple[float, float]:
    """(row, col) mm per pixel; both images at the typical spacing when either lacks one (then only their
    pixel sizes are compared, and the affine's scale takes up the difference)."""
    if image.pixel_spacing and other.pixel_spacing:
        return float(image.pixel_spacing[0]), float(image.pixel_spacing[1])
    return UNKNOWN_SPACING_MM, UNKNOWN_SPACING_MM


def _grid(image: ViewImage, spacing: tuple[float, float], flip: bool) -> _Grid:
    import SimpleITK as sitk  # noqa: PLC0415 - loaded with the first registration, off the GUI thread

    pixels = np.asarray(image.model_image, dtype=np.float32)
    height, width = image.pixels.shape  # the viewer's coordinates are the stored pixels'
    if pixels.shape != (height, width):
        pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
    if flip:
        pixels = pixels[:, ::-1]
    sy, sx = spacing
    step = max(MIN_PIXEL_MM, max(height * sy, width * sx) / MAX_SIDE)
    small_w, small_h = max(8, round(width * sx / step)), max(8, round(height * sy / step))
    small = cv2.resize(pixels, (small_w, small_h), interpolation=cv2.INTER_AREA)
    px, py = width * sx / small_w, height * sy / small_h
    sitk_image = sitk.GetImageFromArray(small)
    sitk_image.SetSpacing((px, py))
    sitk_image.SetOrigin((px / 2, py / 2))  # small pixel i's centre: stored coordinate (i + 0.5) * step
    tissue = sitk.GetImageFromArray((small > 0).astype(np.uint8))
    tissue.CopyInformation(sitk_image)
    to_physical = np.diag([sx, sy, 1.0])
    if flip:  # stored x -> width - x, then physical
        to_physical = to_physical @ np.array([[-1.0, 0.0, width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return _Grid(sitk_image, tissue, to_physical)


def _matrix(transform) -> np.ndarray:
    """The 3x3 of a 2-D affine SimpleITK transform (physical fixed -> physical moving)."""
    origin = np.array(transform.TransformPoint((0.0, 0.0)))
    ex = np.array(transform.TransformPoint((1.0, 0.0))) - origin
    ey = np.array(transform.TransformPoint((0.0, 1.0))) - origin
    return np.array([[ex[0], ey[0], origin[0]], [ex[1], ey[1], origin[1]], [0.0, 0.0, 1.0]])


def _overlap(fixed: _Grid, moving: _Grid, transform) -> float:
    """Dice of the two breasts where the prior was imaged: a prior imaged with the breast further out of the
    field of view is not counted as mis-registered for the tissue it does not show."""
    import SimpleITK as sitk  # noqa: PLC0415

    moved = sitk.Resample(moving.tissue, fixed.tissue, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    field = sitk.Resample(moving.tissue * 0 + 1, fixed.tissue, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    inside = sitk.GetArrayViewFromImage(field) > 0
    a = (sitk.GetArrayViewFromImage(fixed.tissue) > 0) & inside
    b = (sitk.GetArrayViewFromImage(moved) > 0) & inside
    total = a.sum() + b.sum()
    return float(2 * np.logical_and(a, b).sum() / total) if total else 0.0


def register_view(current: ViewImage, prior: ViewImage) -> ViewRegistration:
    """The affine taking the current view's points to the prior's (see the module's docstring)."""
    import SimpleITK as sitk  # noqa: PLC0415

    fixed = _grid(current, _spacing(current, prior), flip=False)
    moving = _grid(prior, _spacing(prior, current), flip=prior.horizontal_flip != current.horizontal_flip)
    try:
        start = sitk.CenteredTransformInitializer(sitk.Cast(fixed.tissue, sitk.sitkFloat32),
                                                  sitk.Cast(moving.tissue, sitk.sitkFloat32), sitk.AffineTransform(2),
                                                  sitk.CenteredTransformInitializerFilter.MOMENTS)
    except RuntimeError:  # an image without tissue (blank, or its background not found): the images' centres
        start = sitk.CenteredTransformInitializer(fixed.image, moving.image, sitk.AffineTransform(2),
                                                  sitk.CenteredTransformInitializerFilter.GEOMETRY)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.3, 20261204)
    method.SetMetricFixedMask(sitk.BinaryDilate(fixed.tissue, [3, 3]))
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=150,
                                                    relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetNumberOfThreads(1)  # deterministic, and the reading's other work keeps the other cores
    method.SetInitialTransform(start, inPlace=False)
    start_overlap = _overlap(fixed, moving, start)
    try:
        refined = method.Execute(fixed.image, moving.image)
        overlap = _overlap(fixed, moving, refined)
    except RuntimeError:  # ITK gives up (too few samples in the mask): the start is what there is
        refined, overlap = None, -1.0
    if refined is not None and overlap >= start_overlap:
        chosen, how, good = refined, "affine, mutual information on the breast", True
    else:
        chosen, overlap, how, good = start, start_overlap, "tissue centres aligned (the affine refinement did not help)", False
    physical = _matrix(chosen)
    matrix = np.linalg.inv(moving.to_physical) @ physical @ fixed.to_physical
    return ViewRegistration(matrix, overlap, how, refined=good)


def register_exam(current: Exam, prior: Exam) -> tuple[dict[View, ViewRegistration], dict[View, str]]:
    """Each of the current exam's screening views registered to the prior's image for that slot, and why each
    slot with a prior image was not (that view's cursor is not linked; the others still are)."""
    found, failed = {}, {}
    for view, image in current.views.items():
        other = prior_image(prior, view)
        if other is None or not image.model_image.size or not other.model_image.size:
            continue
        if view in prior.laterality_conflicts or view in current.laterality_conflicts:
            # the breast faces the other side's way (the intake's possible laterality error, not confirmed): it
            # may be the other breast under this label, which an affine would still overlay well; never linked
            which = "the prior's" if view in prior.laterality_conflicts else "this exam's"
            failed[view] = f"{which} {view.value} may be the other breast: a possible laterality error"
            continue
        try:
            found[view] = register_view(image, other)
        except RuntimeError as error:  # ITK gives up on this view: the others stay linked
            failed[view] = str(error) or type(error).__name__
    return found, failed
