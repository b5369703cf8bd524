"""``python main.py evaluate --model M --data TEST``: a model measured on labelled images, as a table and, with
``--out``, as files.

* A window classifier: per-image and per-window ROC AUC per class, four-class window accuracy, NLL and ECE
  before (T = 1) and after the model's temperature (``metrics.csv``, ``per_image.csv``, ``roc.png``).
* The attention CNN and GlimpseNet: the classification report — per class precision, recall, F1 and support, the micro,
  macro and weighted averages — and the confusion matrix (``classification_report.csv``,
  ``confusion_matrix.csv``, ``confusion_matrix.png``, ``per_image.csv``, ``roc.png``).

``roc.png``: each class against the rest, per image, drawn by the validation's figure code
(``app/validation/figures.py``) so that an evaluation and a site validation look alike.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from pathlib import Path

from inference.class_evaluation import EVALUATION_SEED
from inference.errors import MammoError


def _shown(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def run(args: argparse.Namespace) -> int:
    from inference.weights import load_model  # noqa: PLC0415

    loaded = load_model(args.model)
    family = loaded.identity.family
    if family == "sliding-window":
        return _windows(args, loaded)
    if family in ("attention-cnn", "glimpsenet"):
        return _classes(args, loaded)
    raise MammoError(f"evaluate measures the sliding-window, attention-cnn and glimpsenet families; this is a {family} model "
                     "(GMIC and GLAM: see 'verify' and bench/eval_demo_model.py)", args.model)


def _write(files: dict[str, str | bytes], out: Path) -> None:
    from inference.files import write_bytes_atomic, write_text_atomic  # noqa: PLC0415

    try:
        for name, content in files.items():
            if isinstance(content, bytes):
                write_bytes_atomic(out / name, content)
            else:
                write_text_atomic(out / name, content)
    except OSError as error:
        raise MammoError(f"the evaluation could not be written ({error.strerror or error})", out) from error
    print("wrote " + ", ".join(str(out / name) for name in files))


def roc_png(classes, probabilities, truth: list[int]) -> bytes:
    """The one-vs-rest ROC curves of each class (AUC in the legend) as a PNG.

    Args:
        classes: the class names, in the columns' order.
        probabilities: (images, classes) per-image class probabilities.
        truth: each image's class index.
    """
    import numpy as np  # noqa: PLC0415

    from app.report.figures import encode_png  # noqa: PLC0415
    from app.validation.figures import roc_figure  # noqa: PLC0415
    from app.validation.metrics import auc_with_ci  # noqa: PLC0415

    probabilities, truth_array = np.asarray(probabilities, float), np.asarray(truth, int)
    curves = []
    for index, name in enumerate(classes):
        positive = (truth_array == index).astype(int)
        auc = auc_with_ci(probabilities[:, index], positive)["auc"]
        curves.append((f"{name} vs rest: AUC {'n/a' if auc is None else f'{auc:.3f}'} ({int(positive.sum())} images)",
                       probabilities[:, index], positive))
    return encode_png(roc_figure(curves))


def _classes(args: argparse.Namespace, loaded) -> int:
    import csv  # noqa: PLC0415

    import cv2  # noqa: PLC0415

    from inference.class_evaluation import class_probabilities, evaluation_images  # noqa: PLC0415
    from inference.classification_report import classification_report, confusion_picture  # noqa: PLC0415
    from inference.weights import read_metadata  # noqa: PLC0415

    identity = loaded.identity
    training = read_metadata(Path(args.model)).get("training", {})
    try:
        images, description = evaluation_images(identity.family, args.data, identity.classes, args.phantoms,
                                                args.split, training)
        probabilities = class_probabilities(loaded, images, args.device or "cpu",
                                            progress=lambda done, total: print(f"\r{done}/{total}", end="",
                                                                               file=sys.stderr))
    except (OSError, ValueError) as error:
        raise MammoError(str(error)) from error
    print(file=sys.stderr)
    truth = [identity.classes.index(image.label) for image in images]
    report = classification_report(truth, probabilities.argmax(axis=1), identity.classes)
    print(f"{identity.label} on {description}")
    print(report.text())
    if args.out:
        out = Path(args.out)
        picture = confusion_picture(report, f"{identity.label[:60]}: {description[:40]}")
        _, png = cv2.imencode(".png", picture)
        per_image = io.StringIO()
        writer = csv.writer(per_image)
        writer.writerow(["image", "label", "predicted"] + [f"p_{c}" for c in identity.classes])
        for image, row in zip(images, probabilities, strict=True):
            writer.writerow([image.source, image.label, identity.classes[int(row.argmax())]]
                            + [f"{p:.6f}" for p in row])
        _write({"classification_report.csv": report.csv(), "confusion_matrix.csv": report.confusion_csv(),
                "confusion_matrix.png": png.tobytes(), "per_image.csv": per_image.getvalue(),
                "roc.png": roc_png(identity.classes, probabilities, truth)}, out)
    return 0


def _windows(args: argparse.Namespace, loaded) -> int:
    from inference.backends.sliding_window import WindowSettings  # noqa: PLC0415
    from inference.temperature import softmax  # noqa: PLC0415
    from inference.window_data import labelled_images  # noqa: PLC0415
    from inference.window_evaluation import evaluate_readings, read_images  # noqa: PLC0415

    identity = loaded.identity
    if args.split != "all":
        raise MammoError("--split test is for the attention-cnn family")
    settings = WindowSettings(**identity.settings)
    try:
        images, description = labelled_images(args.data, identity.classes, args.phantoms, EVALUATION_SEED)
    except (OSError, ValueError) as error:
        raise MammoError(str(error)) from error
    readings = read_images(loaded.model, settings, identity.classes, images, args.device or "cpu",
                           progress=lambda done, total: print(f"\r{done}/{total}", end="", file=sys.stderr))
    print(file=sys.stderr)
    metrics = evaluate_readings(readings, identity.classes, settings.temperature, args.bins)
    counts = metrics.pop("window_class_counts", {})
    print(f"{identity.label} on {description} (temperature {settings.temperature:.4f})")
    rows = [(name, _shown(value)) for name, value in metrics.items()]
    rows += [(f"windows_{name}", str(count)) for name, count in counts.items()]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    if args.out:
        out = Path(args.out)
        table = io.StringIO()
        writer = csv.writer(table)
        writer.writerow(["metric", "value"])
        writer.writerows(rows)
        per_image = io.StringIO()
        writer = csv.writer(per_image)
        writer.writerow(["image", "label", "windows"] + [f"p_{c}" for c in identity.classes])
        tops = []
        for reading, image in zip(readings, images, strict=True):
            top = softmax(reading.logits, settings.temperature).max(axis=0)
            tops.append(top)
            writer.writerow([image.source, image.label, len(reading.logits)] + [f"{p:.6f}" for p in top])
        truth = [identity.classes.index(image.label) if image.label in identity.classes else -1 for image in images]
        _write({"metrics.csv": table.getvalue(), "per_image.csv": per_image.getvalue(),
                "roc.png": roc_png(identity.classes, tops, truth)}, out)
    return 0
