"""``python main.py evaluate --model M --data TEST.csv``: a window classifier on labelled images — per-image
and per-window ROC AUC per class, four-class window accuracy, NLL and ECE before (T = 1) and after the
model's temperature — as a table, and as CSV files with ``--out``."""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from pathlib import Path

from inference.errors import MammoError

EVALUATION_SEED = 70_000  # phantoms for evaluation: none of the training, validation or calibration ones


def _shown(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def run(args: argparse.Namespace) -> int:
    from inference.backends.sliding_window import WindowSettings  # noqa: PLC0415
    from inference.files import write_text_atomic  # noqa: PLC0415
    from inference.temperature import softmax  # noqa: PLC0415
    from inference.weights import load_model  # noqa: PLC0415
    from inference.window_data import labelled_images  # noqa: PLC0415
    from inference.window_evaluation import evaluate_readings, read_images  # noqa: PLC0415

    loaded = load_model(args.model)
    identity = loaded.identity
    if identity.family != "sliding-window":
        raise MammoError(f"evaluate measures window classifiers (sliding-window); this is a {identity.family} "
                         "model", args.model)
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
        for reading, image in zip(readings, images, strict=True):
            top = softmax(reading.logits, settings.temperature).max(axis=0)
            writer.writerow([image.source, image.label, len(reading.logits)] + [f"{p:.6f}" for p in top])
        try:
            write_text_atomic(out / "metrics.csv", table.getvalue())
            write_text_atomic(out / "per_image.csv", per_image.getvalue())
        except OSError as error:
            raise MammoError(f"the evaluation could not be written ({error.strerror or error})", out) from error
        print(f"wrote {out / 'metrics.csv'} and {out / 'per_image.csv'}")
    return 0
