"""``python main.py evaluate --model M --data TEST``: a model measured on labelled images, as a table and, with
``--out``, as files.

* A window classifier: per-image and per-window ROC AUC per class, four-class window accuracy, NLL and ECE
  before (T = 1) and after the model's temperature (``metrics.csv``, ``per_image.csv``, ``roc.png``).
* The attention CNN and GlimpseNet: the classification report — per class precision, recall, F1 and support, the micro,
  macro and weighted averages — and the confusion matrix (``classification_report.csv``,
  ``confusion_matrix.csv``, ``confusion_matrix.png``, ``per_image.csv``, ``roc.png``).

* A detector (Mask R-CNN): the FROC curve (sensitivity against mean false positives per image; the hit rule
  is ``--lesion-hit``: the box centre in the lesion's mask, or IoU >= ``--min-iou``), sensitivity at 1/4, 1/2,
  1, 2 and 4 false positives per image, the CPM, and the image-level ROC AUC of the highest malignant score
  (``froc.csv``, ``froc_summary.csv``, ``per_image.csv``, ``froc.png``); ``inference/evaluation/froc.py``.

``roc.png``: each class against the rest (a window classifier's lesion classes), per image, drawn by the validation's figure code
(``app/validation/figures.py``) so that an evaluation and a site validation look alike.

``--out``: the files are written all or none (:func:`_write`): a failure never leaves new files beside old ones of an
earlier evaluation.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
from pathlib import Path

from app.cli.common import ProgressBar, command_device, phantom_count, read_images_with_progress
from inference.evaluation.classes import EVALUATION_SEED
from inference.errors import MammoError
from inference.spreadsheet_cells import text_writer

DEFAULT_MIN_IOU = 0.1  # --min-iou when not given (the parser's default is None: given or not is told apart)


FEW = 10  # images of a class below which an image-level AUC is too few to say (as validate's subgroups)


def _shown(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _few_note(metric: str, positives: int, positive_name: str, negatives: int, negative_name: str) -> str | None:
    """Say that an image-level AUC is from too few images of a side (below ``FEW``) to say anything; the note,
    for the metrics file too (it was said on the terminal only), or None."""
    if min(positives, negatives) >= FEW:
        return None
    note = f"{metric} is from {positives} {positive_name} and {negatives} {negative_name} image(s): too few to say"
    print(f"  note: {note}")
    return note


def run(args: argparse.Namespace) -> int:
    from inference.weights import load_model  # noqa: PLC0415

    from inference.families.protocol import commands_of  # noqa: PLC0415
    from inference.families.registry import families, get  # noqa: PLC0415

    args.phantoms = phantom_count(args)  # before the model is read: a wrong option is said at once
    loaded = load_model(args.model)
    measure = {"windows": _windows, "classes": _classes, "detections": _detections}
    evaluation = commands_of(get(loaded.identity.family)).evaluation
    if evaluation != "detections" and (getattr(args, "lesion_hit", "centre") != "centre"
                                       or getattr(args, "min_iou", None) is not None):
        raise MammoError(f"--lesion-hit and --min-iou are for detectors (FROC); a {loaded.identity.family} model is "
                         "not measured by lesions found: leave them out")
    if evaluation in measure:
        return measure[evaluation](args, loaded)
    measured = [name for name, family in families().items() if commands_of(family).evaluation in measure]
    raise MammoError(f"evaluate measures the {', '.join(measured)} families; this is a {loaded.identity.family} model "
                     "(GMIC and GLAM: see 'verify' and bench/eval_demo_model.py)", args.model)


def _write(files: dict[str, str | bytes], out: Path) -> None:
    """Write the evaluation's ``files`` (name -> content) into ``out``, all or none.

    Every target is checked first (a folder where a file goes is refused before anything is written); then
    all are written into a temporary folder inside ``out`` and moved into place only when all are written,
    an old file of the same name set aside and put back should a move fail. A failure names the file and
    leaves ``out`` as it was: never new files beside old ones of another evaluation.
    """
    import contextlib  # noqa: PLC0415
    import os  # noqa: PLC0415
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from inference.files import file_in_the_way  # noqa: PLC0415

    unwritten = "; none of the evaluation's files was written"
    blocking = file_in_the_way(out)
    if blocking is not None:
        raise MammoError(f"a file is in the way of the folder to write the evaluation into{unwritten}", blocking)
    for name in files:
        if (out / name).is_dir():
            raise MammoError(f"a folder is where the evaluation's {name} goes{unwritten}", out / name)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".evaluation.", suffix=".part", dir=out))
    except OSError as error:
        raise MammoError(f"the evaluation could not be written ({error.strerror or error})", out) from error
    moved: list[str] = []
    set_aside: list[str] = []
    current = next(iter(files), "")
    try:
        for name, content in files.items():
            current = name
            with (staging / name).open("wb") as handle:
                handle.write(content if isinstance(content, bytes) else content.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())  # on disk before it becomes visible
        for name in files:
            current = name
            if (out / name).exists():
                os.replace(out / name, staging / f"{name}.old")
                set_aside.append(name)
            os.replace(staging / name, out / name)
            moved.append(name)
    except BaseException as error:  # Ctrl+C between two moves too: the old set comes back whole
        for name in moved:
            with contextlib.suppress(OSError):
                (out / name).unlink()
        for name in set_aside:
            with contextlib.suppress(OSError):
                os.replace(staging / f"{name}.old", out / name)
        moved.clear()
        if not isinstance(error, OSError):
            raise
        raise MammoError(f"the evaluation's {current} could not be written ({error.strerror or error}){unwritten}",
                         out / current) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not moved:
            with contextlib.suppress(OSError):
                out.rmdir()  # only when empty: a folder made for nothing is not left behind
    print("wrote " + ", ".join(str(out / name) for name in files))


def roc_curves(classes, probabilities, truth: list[int], left_out: int | None = None) -> list[tuple]:
    """The one-vs-rest ROC curve of each class as (legend, scores, positives), AUC in the legend.

    Args:
        classes: the class names, in the columns' order.
        probabilities: (images, classes) per-image class probabilities.
        truth: each image's class index.
        left_out: a class without an image-level curve (a window classifier's "no tumour": an image's highest
            window probability of it says nothing of the image, and ``metrics.csv`` has no AUC for it either).
    """
    import numpy as np  # noqa: PLC0415

    from app.validation.metrics import auc_with_ci  # noqa: PLC0415

    probabilities, truth_array = np.asarray(probabilities, float), np.asarray(truth, int)
    curves = []
    for index, name in enumerate(classes):
        if index == left_out:
            continue
        positive = (truth_array == index).astype(int)
        auc = auc_with_ci(probabilities[:, index], positive)["auc"]
        curves.append((f"{name} vs rest: AUC {'n/a' if auc is None else f'{auc:.3f}'} ({int(positive.sum())} images)",
                       probabilities[:, index], positive))
    return curves


def roc_png(curves: list[tuple]) -> bytes:
    from app.report.figures import encode_png  # noqa: PLC0415
    from app.validation.figures import roc_figure  # noqa: PLC0415

    return encode_png(roc_figure(curves))


def _classes(args: argparse.Namespace, loaded) -> int:
    import cv2  # noqa: PLC0415

    from inference.evaluation.classes import class_probabilities, evaluation_images  # noqa: PLC0415
    from inference.evaluation.classification_report import classification_report, confusion_picture  # noqa: PLC0415
    from inference.weights import read_metadata  # noqa: PLC0415

    identity = loaded.identity
    training = read_metadata(Path(args.model)).get("training", {})
    try:
        images, description = evaluation_images(identity.family, args.data, identity.classes, args.phantoms,
                                                args.split, training)
        bar = ProgressBar()
        try:
            probabilities = class_probabilities(loaded, images, command_device(args.device),
                                                progress=lambda done, total: bar("reading the images", done, total),
                                                mode=args.mode or "exact")
        finally:
            bar.close()
    except (OSError, ValueError) as error:
        raise MammoError(str(error)) from error
    truth = [identity.classes.index(image.label) for image in images]
    report = classification_report(truth, probabilities.argmax(axis=1), identity.classes)
    print(f"{identity.label} on {description}")
    print(report.text())
    if args.out:
        out = Path(args.out)
        picture = confusion_picture(report, f"{identity.label[:60]}: {description[:40]}")
        _, png = cv2.imencode(".png", picture)
        per_image = io.StringIO()
        writer = text_writer(per_image)
        writer.writerow(["image", "label", "predicted"] + [f"p_{c}" for c in identity.classes])
        for image, row in zip(images, probabilities, strict=True):
            writer.writerow([image.source, image.label, identity.classes[int(row.argmax())]]
                            + [f"{p:.6f}" for p in row])
        _write({"classification_report.csv": report.csv(), "confusion_matrix.csv": report.confusion_csv(),
                "confusion_matrix.png": png.tobytes(), "per_image.csv": per_image.getvalue(),
                "roc.png": roc_png(roc_curves(identity.classes, probabilities, truth))}, out)
    return 0


def _windows(args: argparse.Namespace, loaded) -> int:
    from inference.families.sliding_window.family import WindowSettings  # noqa: PLC0415
    from inference.evaluation.temperature import softmax  # noqa: PLC0415
    from inference.training.labelled_images import background_class, labelled_images  # noqa: PLC0415
    from inference.families.sliding_window.evaluation import evaluate_readings  # noqa: PLC0415

    identity = loaded.identity
    if args.split != "all":
        raise MammoError("--split test is for families measured by class (the attention CNN, GlimpseNet)")
    settings = WindowSettings(**identity.settings)
    try:
        images, description = labelled_images(args.data, identity.classes, args.phantoms, EVALUATION_SEED)
    except (OSError, ValueError) as error:
        raise MammoError(str(error)) from error
    readings = read_images_with_progress(loaded.model, settings, identity.classes, images,
                                         command_device(args.device), mode=args.mode or "exact")
    metrics = evaluate_readings(readings, identity.classes, settings.temperature, args.bins)
    counts = metrics.pop("window_class_counts", {})
    print(f"{identity.label} on {description} (temperature {settings.temperature:.4f})")
    rows = [(name, _shown(value)) for name, value in metrics.items()]
    rows += [(f"windows_{name}", str(count)) for name, count in counts.items()]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    labels = [reading.label for reading in readings]
    for index, name in enumerate(identity.classes):  # an image AUC of one image against one was printed bare
        if f"image_auc_{name}" in metrics:
            note = _few_note(f"image_auc_{name}", labels.count(index), name, len(labels) - labels.count(index),
                             "other")
            rows += [("note", note)] if note else []
    if args.out:
        out = Path(args.out)
        table = io.StringIO()
        writer = text_writer(table)
        writer.writerow(["metric", "value"])
        writer.writerows(rows)
        per_image = io.StringIO()
        writer = text_writer(per_image)
        writer.writerow(["image", "label", "windows"] + [f"p_{c}" for c in identity.classes])
        tops = []
        for reading, image in zip(readings, images, strict=True):
            top = softmax(reading.logits, settings.temperature).max(axis=0)
            tops.append(top)
            writer.writerow([image.source, image.label, len(reading.logits)] + [f"{p:.6f}" for p in top])
        truth = [identity.classes.index(image.label) if image.label in identity.classes else -1 for image in images]
        _write({"metrics.csv": table.getvalue(), "per_image.csv": per_image.getvalue(),
                "roc.png": roc_png(roc_curves(identity.classes, tops, truth, background_class(identity.classes)))},
               out)
    return 0


def _detections(args: argparse.Namespace, loaded) -> int:
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from app.validation.figures import froc_figure, png  # noqa: PLC0415
    from inference.families.registry import get  # noqa: PLC0415
    from inference.evaluation.froc import Detection, HitRule, ImageTruth, froc  # noqa: PLC0415
    from inference.families.maskrcnn.training import (  # noqa: PLC0415
        check_lesion_masks,
        image_key,
        intake_notes,
        labelled_images,
        lesion_images,
    )
    from inference.intake.image import MIN_TISSUE_FRACTION, breast_mask, tissue_fraction  # noqa: PLC0415
    from inference.intake.views import View  # noqa: PLC0415
    from inference.finite_guard import not_finite_reason, run_guarded  # noqa: PLC0415
    from inference.weights import read_metadata  # noqa: PLC0415

    identity = loaded.identity
    if args.split != "all":
        raise MammoError("--split test is for families measured by class (the attention CNN, GlimpseNet)")
    if HitRule(args.lesion_hit) == HitRule.CENTRE and args.min_iou is not None:
        raise MammoError(f"--min-iou {args.min_iou:g} is the overlap of --lesion-hit iou; with --lesion-hit centre "
                         "(the default) a lesion is found by a detection's box centre and no IoU is used: add "
                         "--lesion-hit iou, or leave --min-iou out")
    classes = ("background", *identity.classes)
    training = read_metadata(Path(args.model)).get("training", {})
    shape = tuple(training.get("phantom_size", (1600, 1000)))
    try:
        rows = labelled_images(args.data, classes, args.phantoms, EVALUATION_SEED, shape)
        # a lesion image without its lesion would count its detections as false positives and its lesion as none
        check_lesion_masks(rows, classes, args.data, "evaluate")
        entries = lesion_images(rows, classes, args.data)  # an image listed once per lesion: one image with its lesions
        truths = [ImageTruth(tuple(mask for _, mask in entry.lesions),
                             any(classes[label] in identity.malignancy for label, _ in entry.lesions))
                  for entry in entries]
    except (OSError, ValueError) as error:
        raise MammoError(str(error)) from error
    images = [entry.image for entry in entries]
    description = (f"{len(images)} phantom views (seed {EVALUATION_SEED})" if args.data == "phantom"
                   else f"{Path(args.data).name} ({len(images)} images)")
    for note in intake_notes(rows, (getattr(identity, "settings", None) or {}).get("max_value", 4095.0)):
        print(f"note: {note}")
    family, device = get(identity.family), torch.device(command_device(args.device))
    mode = getattr(args, "mode", None) or "exact"
    found = []
    bar = ProgressBar()
    with torch.inference_mode(), contextlib.closing(bar):
        for number, image in enumerate(images, start=1):
            view = image.view or View("L-CC")
            prepared = family.prepare(np.asarray(image.image, np.float32), view, False)
            (output,) = run_guarded(family, loaded.model, [prepared], device, mode, identity)
            row = f"{args.data}, row {image.row}: " if image.row is not None else ""  # the CSV's line too
            if output.refused:  # never counted as "nothing found"
                raise MammoError(f"{row}{image.source}: the model did not read this image: {output.refused}")
            problem = not_finite_reason(output)
            if problem:  # a NaN score passes no threshold: it would count as "nothing found" in every rate
                raise MammoError(f"{row}{image.source}: the model's output is not a finite number ({problem}): no "
                                 "rate is computed over it")
            shape_here = tuple(image.image.shape)
            breast = breast_mask(np.asarray(image.image))  # as the view's probability and the screen: no marker
            found.append([Detection(r.box_original, r.score, next(iter(r.probabilities or {r.kind: 0})),
                                    r.mask.in_original(shape_here) if r.mask is not None else None)
                          for r in output.regions if tissue_fraction(r.box_original, breast) >= MIN_TISSUE_FRACTION])
            bar("detecting", number, len(images))
    min_iou = DEFAULT_MIN_IOU if args.min_iou is None else args.min_iou
    result = froc(found, truths, identity.malignancy, HitRule(args.lesion_hit), min_iou)
    summary = [(f"sensitivity_at_{rate:g}_fp", value) for rate, value in result.at_rates.items()]
    summary += [("cpm", result.cpm), ("image_auc_malignant", result.image_auc), ("lesions", result.lesions),
                ("images", result.images)]
    print(f"{identity.label} on {description}; {result.rule}")
    width = max(len(name) for name, _ in summary)
    for name, value in summary:
        print(f"  {name:<{width}}  {_shown(value)}")
    few = None
    if not math.isnan(result.image_auc):  # an AUC of 2 cancers against 2 others was printed bare
        cancers = sum(truth.malignant for truth in truths)
        few = _few_note("image_auc_malignant", cancers, "malignant", len(truths) - cancers, "other")
    if args.out:
        curve = io.StringIO()
        writer = text_writer(curve)
        writer.writerow(["threshold", "sensitivity", "fp_per_image"])
        # a threshold as the float32 score it is, shortest (6 decimals printed distinct thresholds alike)
        writer.writerows([np.format_float_positional(np.float32(t), unique=True),
                          "n/a" if math.isnan(s) else f"{s:.6f}", f"{f:.6f}"] for t, s, f in
                         zip(result.thresholds, result.sensitivity, result.fp_per_image, strict=True))
        table = io.StringIO()
        writer = text_writer(table)
        writer.writerow(["metric", "value"])
        writer.writerows([(name, _shown(value)) for name, value in summary] + [("hit_rule", result.rule)]
                         + ([("note", few)] if few else []))
        per_image = io.StringIO()
        writer = text_writer(per_image)
        writer.writerow(["image", "label", "lesions", "detections", "highest_malignant_score"])
        labels: dict[str, set[str]] = {}  # an image's labels: its rows' (one per lesion), however its path is spelt
        for row in rows:
            labels.setdefault(image_key(row), set()).add(row.label)
        for image, truth, detections in zip(images, truths, found, strict=True):
            top = max((d.score for d in detections if d.class_name in identity.malignancy), default=0.0)
            writer.writerow([image.source, "+".join(sorted(labels[image_key(image)])), len(truth.lesions),
                             len(detections), f"{top:.6f}"])
        notes = [result.rule, f"CPM {_shown(result.cpm)}; image-level AUC (malignant) {_shown(result.image_auc)}",
                 f"{result.lesions} lesions on {result.images} images: {description}"[:90]]
        figure = froc_figure(result.fp_per_image, result.sensitivity, f"FROC: {identity.label}", notes)
        _write({"froc.csv": curve.getvalue(), "froc_summary.csv": table.getvalue(),
                "per_image.csv": per_image.getvalue(), "froc.png": png(figure)}, Path(args.out))
    return 0
