"""PNG / TIFF mammograms: grey levels, the view from the file name (or a manifest), orientation."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from inference.errors import ExamError, UnreadablePixelsError
from inference.intake.image import (
    MAX_PIXELS,
    ViewImage,
    orient,
    screening_slot,
    size_problem,
    to_model_image,
    view_from_text,
)
from inference.intake.views import View


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png_size(head: bytes, path: Path) -> None:
    """Refuse a PNG whose IHDR declares more pixels than any detector has, before decoding it: a few
    compressed megabytes of zeros can declare 30000 x 30000 pixels and take gigabytes to decode (PNG spec
    11.2.2: IHDR is the first chunk; width and height are its first two big-endian 4-byte fields)."""
    if not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR" or len(head) < 24:
        return
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if width * height > MAX_PIXELS:
        raise ExamError(f"the image dimensions are implausible ({height} x {width} pixels, more than "
                        f"{MAX_PIXELS:,} pixels); not loaded", path)


def _read_png(path: Path) -> tuple[np.ndarray, list[str]]:
    warnings = []
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ExamError("the file is empty", path)
    _check_png_size(data[:24].tobytes(), path)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ExamError("the file is not a readable image (damaged, or not a PNG or TIFF)", path)
    if image.ndim == 3:
        channels = image[..., :3]
        if not (np.array_equal(channels[..., 0], channels[..., 1]) and np.array_equal(channels[..., 1], channels[..., 2])):
            raise ExamError("this is a colour image; mammograms are greyscale", path)
        image = channels[..., 0]
        warnings.append("stored as colour (RGB or palette) with equal channels; read as greyscale")
    if image.dtype == np.uint8:
        warnings.append("8-bit image: only 256 grey levels (mammograms are usually 12 to 16 bit)")
    elif image.dtype not in (np.uint16, np.int16, np.float32):
        image = image.astype(np.float32)
    return image, warnings


def load_png_view(path: Path, view_hint: View | None) -> ViewImage:
    if view_hint is not None:
        laterality, projection, source = view_hint.laterality, view_hint.projection.value, "manifest"
    else:
        laterality, projection = view_from_text(path.stem)
        source = "file name"
    known = laterality is not None and projection is not None
    view, aside_reason = screening_slot(laterality, projection, modifiers=()) if known else (None, "")
    try:  # a damaged file whose name gives its view leaves that slot unreadable, with the reason
        pixels, warnings = _read_png(path)
        problem = size_problem(*pixels.shape[:2])
        if problem:
            raise ExamError(problem, path)
        model_image, level, notes = to_model_image(pixels, dense_is_low=False)
    except ValueError as error:
        raise UnreadablePixelsError(f"{error}", path, view) from error
    except ExamError as error:
        raise UnreadablePixelsError(error.message, path, view) from error
    if not known:
        raise ExamError(
            "the view could not be told from the file name; name it like 0_L-CC.png, LCC.png or R_MLO.png, "
            "or list it in a manifest",
            path,
        )
    warnings += notes
    if aside_reason:
        warnings.append(aside_reason)
    flip = orient(model_image, laterality, "", warnings)
    return ViewImage(
        view=view,
        pixels=pixels,
        model_image=model_image,
        horizontal_flip=flip,
        source=path,
        laterality_source=source,
        view_source=source,
        view_label=projection,
        warnings=tuple(warnings),
        background_level=level,
    )


