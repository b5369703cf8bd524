"""Labelled images for the window classifier, and the labels of their windows.

An image carries one class (its finding's, or the background class for a normal image) and, where there is
one, the finding's pixel mask. A window's label comes from the mask: the image's class when the window holds
at least half of the lesion (or, for lesions larger than the window, lesion over at least
``LARGE_LESION_COVER`` of the window), the background class when it holds none of it, and no label
(``AMBIGUOUS``, left out of training and of window-level measures) when it holds a sliver. A lesion image
without a mask gives no window labels except for the image as a whole.

Sources: phantoms (spiculated mass -> malignant, round mass -> benign, calcification cluster -> benign
without callback, none -> no tumour), or a CSV with the columns ``path, view, label[, mask]`` (paths relative
to the CSV; ``mask`` a PNG/TIFF whose non-zero pixels are the lesion, in the image's stored frame: 0 and one or
two other values, more grey levels are refused).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.intake.views import View

AMBIGUOUS = -1
LARGE_LESION_COVER = 0.25
PHANTOM_CLASS = {"spiculated": "malignant", "round": "benign", "calcifications": "benign_without_callback"}
BACKGROUND_NAMES = ("no_tumour", "normal")
# a mask holds 0 and the lesion's value (CBIS-DDSM's ROI masks: 0 and 255); one more level is let through (a mask
# drawn with two values, e.g. an outline), more is an image: a JPEG's ringing, or the mammogram itself
MAX_MASK_LEVELS = 3


@dataclass(frozen=True)
class LabelledImage:
    """One image with its class and (optionally) its lesion mask, in the stored frame."""

    image: np.ndarray
    view: View | None
    label: str
    lesion: np.ndarray | None
    source: str
    row: int | None = None  # its line in the CSV it came from (None: a phantom)
    notes: tuple[str, ...] = ()  # the intake's notes on the file ("8-bit image: …"), for the command to say
    eight_bit: bool = False  # stored with 8 bits (grey levels 0 to 255), not a mammogram's 12 to 16


def background_class(classes: tuple[str, ...]) -> int:
    """The index of the class that means "nothing here" (``no_tumour``/``normal``, else the first)."""
    return next((i for i, c in enumerate(classes) if c in BACKGROUND_NAMES), 0)


def phantom_images(count: int, seed: int, shape: tuple[int, int] | None = None,
                   kinds: tuple[str | None, ...] = ("spiculated", "round", "calcifications", None)) -> list[LabelledImage]:
    """``count`` single phantom views, each with at most one finding (drawn evenly from ``kinds``; None is a
    normal view); deterministic from ``seed``."""
    from inference.intake.phantom import DEFAULT_SHAPE, Finding, render_view  # noqa: PLC0415

    images = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        view = list(View)[index % 4]
        kind = kinds[int(rng.integers(0, len(kinds)))]
        findings = [] if kind is None else [Finding(kind, (rng.uniform(0.3, 0.7), rng.uniform(0.28, 0.58)),
                                                    rng.uniform(0.8, 1.3))]
        phantom = render_view(view, findings, rng, shape or DEFAULT_SHAPE)
        lesion = phantom.lesion_masks["malignant"] | phantom.lesion_masks["benign"]
        label = PHANTOM_CLASS[kind] if kind else "no_tumour"
        images.append(LabelledImage(phantom.image, view, label, lesion if kind else None, f"phantom {seed}/{index}"))
    return images


def read_csv_text(path: Path, columns: str) -> str:
    """The text of a training CSV, checked first (a decoding error later would be an image's or a mask's, not
    the CSV's): it exists, is UTF-8 (a spreadsheet's byte-order mark too) and is not empty; ``columns`` says the
    header the message asks for."""
    if path.is_dir():
        raise ValueError(f"{path}: this is a folder; give the CSV file ({columns})")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the data file does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: the CSV is not UTF-8 text ({error})") from error
    if not text.strip():
        raise ValueError(f"{path}: the CSV is empty (it needs a header row {columns} and a row per image)")
    return text


def csv_table(text: str, path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """A training CSV's columns and its rows, each with its line in the file (a blank line counts): names and
    values without the spaces around them ("path, view, label" as typed by hand names the columns), and a row
    with more fields than the header refused by its line (a comma inside a path, or a shifted row, was read
    without a word; trailing empty fields are a spreadsheet's padding)."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    reader.fieldnames = [name.strip() for name in reader.fieldnames or ()]
    rows = []
    for row in reader:
        extra = row.pop(None, None)
        if extra and any((value or "").strip() for value in extra):
            raise ValueError(f"{path}, row {reader.line_num}: {len(reader.fieldnames) + len(extra)} fields for the "
                             f"header's {len(reader.fieldnames)} ({', '.join(reader.fieldnames)})")
        rows.append((reader.line_num, {key: (value or "").strip() for key, value in row.items()}))
    return list(reader.fieldnames), rows


def csv_images(path: str | Path, classes: tuple[str, ...]) -> list[LabelledImage]:
    """Rows ``path, view, label[, mask]``; every problem names the file and the row."""
    path = Path(path)
    text = read_csv_text(path, "path, view, label[, mask]")
    images = []
    columns, rows = csv_table(text, path)
    missing = {"path", "label"} - set(columns)
    if missing:
        raise ValueError(f"{path}: the CSV lacks the column(s) {sorted(missing)} (path, view, label[, mask]); "
                         f"its header has: {', '.join(columns) or 'nothing'}")
    for number, row in rows:
        where = f"{path}, row {number}"
        given = row.get("label", "")
        # in any case, as CBIS-DDSM writes its pathology ("MALIGNANT"); kept in the model's spelling
        label = next((name for name in classes if name.casefold() == given.strip().casefold()), None)
        if label is None:
            raise ValueError(f"{where}: unknown label {given!r}; the model's classes are {list(classes)}")
        file = Path(row["path"]) if Path(row["path"]).is_absolute() else path.parent / row["path"]
        image = load_row_view(file, row, where)
        lesion = read_lesion_mask(row.get("mask") or "", path, where, image.model_image.shape)
        images.append(LabelledImage(image.model_image, image.view, label, lesion, str(file), number,
                                    tuple(image.warnings), image.pixels.dtype == np.uint8))
    if not images:
        raise ValueError(f"{path}: the CSV holds no rows")
    return images


def load_row_view(file: Path, row: dict, where: str):
    """The image of a CSV row (``load_view``), any refusal (a file that does not exist, an unknown view …)
    said with the CSV and the row (``where``) as ValueError."""
    from inference.errors import ExamError  # noqa: PLC0415
    from inference.intake.exam import load_view  # noqa: PLC0415

    from inference.intake.image import view_from_text  # noqa: PLC0415

    given = (row.get("view") or "").strip() or None
    try:
        return load_view(file, given)
    except (ValueError, ExamError) as error:  # e.g. "unknown view 'X-YY'", "the file does not exist"
        if given is None and "view" in str(error) and file.is_file() and None in view_from_text(file.stem):
            # the intake asks for the view in the file's name; here the CSV's view column is the place for it
            raise ValueError(f"{where}: {file}: the row's view is empty and the file's name does not tell it: write "
                             "the view (L-CC, R-CC, L-MLO or R-MLO) in the CSV's view column") from error
        raise ValueError(f"{where}: {error}") from error


def read_lesion_mask(name: str, csv_path: Path, where: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """A CSV row's ``mask`` (relative to the CSV) as a boolean image of ``shape`` (non-zero pixels are the
    lesion), or None when the row names none; problems name the row (``where``)."""
    import cv2  # noqa: PLC0415

    if not name.strip():
        return None
    file = Path(name) if Path(name).is_absolute() else csv_path.parent / name
    # said here, before OpenCV would print its own warning ("can't open/read file") above the message
    if not file.exists():
        raise ValueError(f"{where}: the mask {file} could not be read: it does not exist")
    if not file.is_file():
        raise ValueError(f"{where}: the mask {file} could not be read: it is not a file")
    if file.stat().st_size == 0:
        raise ValueError(f"{where}: the mask {file} could not be read: it is empty (0 bytes)")
    mask = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise ValueError(f"{where}: the mask {file} could not be read as an image")
    mask = mask if mask.ndim == 2 else mask.max(axis=2)
    levels = mask_levels(mask)
    if levels > MAX_MASK_LEVELS:  # a JPEG's ringing made the lesion bigger; the image itself became all lesion
        raise ValueError(f"{where}: the mask {file} holds {levels} grey levels, not a mask's 0 and one other value: "
                         "is it the image itself, or a JPEG? save masks as PNG with 0 and 255")
    if mask.shape != shape:
        raise ValueError(f"{where}: the mask is {mask.shape[1]} x {mask.shape[0]} pixels, the image "
                         f"{shape[1]} x {shape[0]}")
    return mask > 0


def mask_levels(mask: np.ndarray) -> int:
    """How many distinct values ``mask`` (H, W) holds."""
    if mask.dtype == np.uint8:  # the usual PNG mask: counted without sorting its pixels
        return int(np.count_nonzero(np.bincount(mask.ravel(), minlength=256)))
    return int(np.unique(mask).size)


def window_labels(image: LabelledImage, origins: np.ndarray, window: int, classes: tuple[str, ...]) -> np.ndarray:
    """(M,) class index of each window (``AMBIGUOUS`` where the rule gives none)."""
    import cv2  # noqa: PLC0415

    background = background_class(classes)
    label = classes.index(image.label)
    if label == background:
        return np.full(len(origins), background, np.int64)
    if image.lesion is None or not image.lesion.any():
        return np.full(len(origins), AMBIGUOUS, np.int64)
    h, w = image.lesion.shape
    integral = cv2.integral(image.lesion.astype(np.uint8), sdepth=cv2.CV_64F)
    r0, c0 = np.clip(origins[:, 0], 0, h), np.clip(origins[:, 1], 0, w)
    r1, c1 = np.clip(origins[:, 0] + window, 0, h), np.clip(origins[:, 1] + window, 0, w)
    inside = integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]
    area = float(image.lesion.sum())
    needed = min(0.5 * area, LARGE_LESION_COVER * window * window)
    labels = np.full(len(origins), AMBIGUOUS, np.int64)
    labels[inside == 0] = background
    labels[inside >= needed] = label
    return labels


def labelled_images(data: str, classes: tuple[str, ...], phantoms: int, seed: int) -> tuple[list[LabelledImage], str]:
    """(images, a description for reports) from ``phantom`` (``phantoms`` views from ``seed``) or a CSV."""
    if data == "phantom":
        return phantom_images(phantoms, seed), f"{phantoms} phantom views (seed {seed})"
    images = csv_images(data, classes)
    return images, f"{Path(data).name} ({len(images)} images)"
