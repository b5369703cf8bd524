"""``python main.py calibrate --model M --data VAL.csv``: fit a window classifier's temperature on held-out
data (negative log-likelihood, L-BFGS on log T), write a reliability diagram with ECE and NLL before and
after, and store the temperature in the model's metadata (``model.pt.json``), where inference applies it.

Operating points in the metadata were measured at the old temperature; they are dropped, and said so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.cli.common import command_device, phantom_count, read_images_with_progress
from app.folders import folder_write_error

from inference.errors import MammoError

CALIBRATION_SEED = 50_000  # phantoms for calibration: not the training (0 …) nor the validation (10 000 …) ones


def run(args: argparse.Namespace) -> int:
    from inference.families.protocol import commands_of  # noqa: PLC0415
    from inference.families.registry import get  # noqa: PLC0415
    from inference.families.sliding_window.family import WindowSettings  # noqa: PLC0415
    from inference.files import write_text_atomic  # noqa: PLC0415
    from inference.evaluation.reliability_diagram import write_reliability_diagram  # noqa: PLC0415
    from inference.weights import load_model, read_metadata  # noqa: PLC0415
    from inference.training.labelled_images import labelled_images  # noqa: PLC0415
    from inference.evaluation.temperature import unusable_fit  # noqa: PLC0415
    from inference.families.sliding_window.evaluation import calibration_record, fit_on_readings  # noqa: PLC0415

    args.phantoms = phantom_count(args)  # before the model is read: a wrong option is said at once
    path = Path(args.model)
    loaded = load_model(path, settings={"temperature": 1.0})  # a model stored with an unusable one is fitted anew
    identity = loaded.identity
    if not commands_of(get(identity.family)).temperature_calibration:
        raise MammoError(f"calibrate fits the temperature of window classifiers (sliding-window); this is a "
                         f"{identity.family} model", path)
    settings = WindowSettings(**{**identity.settings, "temperature": 1.0})
    # a dry run leaves the diagram the model's metadata and card refer to as it is
    default = path.name + (".reliability.dry-run.png" if args.dry_run else ".reliability.png")
    diagram = Path(args.diagram) if args.diagram else path.with_name(default)
    if diagram.is_dir():
        raise MammoError("this is a folder: --diagram takes the PNG file to write", diagram)
    for folder, what in ((diagram.parent, "the reliability diagram"),
                         *(() if args.dry_run else ((path.parent, "the model's metadata"),))):
        error = folder_write_error(folder)  # before the images are read, not after
        if error is not None:
            hint = "; give --diagram PNG elsewhere" if folder == diagram.parent and not args.diagram else ""
            raise MammoError(f"{what} cannot be written there ({error.strerror or error}){hint}", folder)
    try:
        images, description = labelled_images(args.data, identity.classes, args.phantoms, CALIBRATION_SEED)
    except (OSError, ValueError) as error:
        raise MammoError(str(error)) from error
    readings = read_images_with_progress(loaded.model, settings, identity.classes, images, command_device(args.device))
    try:
        fit = fit_on_readings(readings, args.bins)
    except ValueError as error:
        raise MammoError(str(error), args.data) from error
    problem = unusable_fit(fit, len(identity.classes))
    if problem:  # stored, it made a model that says the same for every image (a reviewer's 0.25 everywhere)
        raise MammoError(f"{problem}. Nothing was written; check the data's labels, or this model does not suit "
                         "this data", args.data)
    write_reliability_diagram(fit, diagram, description)
    print(f"temperature T = {fit.temperature:.4f}  ({fit.samples} labelled windows of {len(images)} images, "
          f"{fit.bins} bins)")
    print(f"{'':<8}{'NLL':>10}{'ECE':>10}")
    print(f"{'before':<8}{fit.nll_before:>10.4f}{fit.ece_before:>10.4f}")
    print(f"{'after':<8}{fit.nll_after:>10.4f}{fit.ece_after:>10.4f}")
    print(f"accuracy {fit.accuracy:.4f} (the same before and after: a temperature never changes the argmax)")
    print(f"wrote {diagram}")
    if args.dry_run:
        print("dry run: the model's metadata is unchanged")
        return 0
    meta = read_metadata(path)
    old = meta.get("calibration") or {}
    if old.get("operating_points"):
        print(f"note: {len(old['operating_points'])} operating point(s) measured at the old temperature were "
              "dropped", file=sys.stderr)
    meta.setdefault("family", identity.family)
    meta.setdefault("classes", list(identity.classes))
    meta["calibration"] = calibration_record(fit, description, len(images), diagram.name)
    evaluation = meta.get("evaluation")
    if isinstance(evaluation, dict) and evaluation:  # measured at the old temperature: said so, not left as current
        then = (old.get("temperature") if isinstance(old, dict) else None) or evaluation.get("temperature")
        evaluation["note"] = (f"measured before this calibration{f' (temperature {then:g})' if then else ''}; "
                              f"'calibration' holds what was measured with the temperature {fit.temperature:g}")
    sidecar = path.with_name(path.name + ".json")
    try:
        write_text_atomic(sidecar, json.dumps(meta, indent=1))
    except OSError as error:
        raise MammoError(f"the calibration could not be stored ({error.strerror or error})", sidecar) from error
    print(f"stored the temperature in {sidecar}")
    return 0
