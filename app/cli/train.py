"""``python main.py train``: train a model of any family that declares training (GMIC, the sliding-window
classifier, the attention CNN, GlimpseNet, Mask R-CNN) on phantoms or on a site's own images."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from app.cli.common import print_device_notice
from inference.errors import MammoError

# command-line options that only some families take (the families declare which, in their ``commands``)
FAMILY_OPTIONS = {"val_data": "--val-data", "encoder_weights": "--encoder-weights", "folds": "--folds"}


def run(args: argparse.Namespace) -> int:
    from inference.families.protocol import commands_of, resolve  # noqa: PLC0415
    from inference.families.registry import families, get  # noqa: PLC0415

    try:
        family = get(args.family)
    except KeyError as error:
        raise MammoError(str(error.args[0])) from error
    commands = commands_of(family)
    if commands.train is None or commands.train_config is None:
        trainable = [name for name, f in families().items() if commands_of(f).train]
        raise MammoError(f"the {family.name} family is not trained here; train one of: {', '.join(trainable)}")
    overrides = {"out": args.out, "device": args.device, "epochs": args.epochs, "seed": args.seed, "data": args.data}
    for dest, flag in FAMILY_OPTIONS.items():
        value = getattr(args, dest, None)
        if not value:
            continue
        if dest not in commands.train_options:
            takers = [name for name, f in families().items() if dest in commands_of(f).train_options]
            raise MammoError(f"{flag} is for the {', '.join(takers)} famil{'y' if len(takers) == 1 else 'ies'}; "
                             f"{family.name} does not take it")
        overrides[commands.train_options[dest]] = value
    config_type, train = resolve(commands.train_config), resolve(commands.train)
    try:
        if args.config:
            config = config_type.from_json(args.config, **overrides)
        else:
            config = config_type(**{k: v for k, v in overrides.items() if v is not None})
    except (OSError, ValueError, TypeError) as error:
        text = str(error)
        if args.config and text.startswith(f"{args.config}: "):  # the file is named once, by the MammoError
            text = text[len(f"{args.config}: "):]
        raise MammoError(f"the training options are invalid ({text})", args.config or None) from error
    out = Path(config.out)
    from inference.training.resume import (  # noqa: PLC0415
        TRAINED_MODEL,
        TRAINING_CHECKPOINT,
        check_checkpoint,
        run_record,
    )

    existed = out.exists()
    lock = _hold_out_folder(out)  # before anything is read there: two runs wrote the same checkpoint.pt
    try:
        if (out / TRAINED_MODEL).exists() and not (out / TRAINING_CHECKPOINT).exists():
            raise MammoError("the folder already holds a model (model.pt) that no training run here started (there "
                             "is no checkpoint.pt to resume): train into another --out, or move that model away first",
                             out)
        try:  # before the data is read (minutes of phantoms), not after: a checkpoint of another run is refused
            check_checkpoint(out / TRAINING_CHECKPOINT, run_record(family.name, config),
                             bool(getattr(config, "continue_with_changes", False)), getattr(config, "epochs", None))
        except (OSError, ValueError) as error:
            raise MammoError(str(error)) from error
        print_device_notice(getattr(config, "device", None))  # as analyze says it: cuda without a GPU runs on the CPU
        try:
            train(config)
        except (OSError, ValueError) as error:
            raise MammoError(f"training stopped: {error}") from error
    finally:
        with contextlib.suppress(OSError):  # never in the way of the error said above
            if lock is not None and not existed and {p.name for p in out.iterdir()} == {LOCK_NAME}:
                (out / LOCK_NAME).unlink()  # still held: no other run takes a lock file about to go
        if lock is not None:
            lock.release()
        with contextlib.suppress(OSError):
            if not existed and out.is_dir() and not any(out.iterdir()):
                out.rmdir()  # a run that stopped before writing anything leaves no empty folder behind
    return 0


LOCK_NAME = ".train.lock"  # the output folder's lock, held by the training run that writes there


def _hold_out_folder(out: Path):
    """``out``'s lock for the whole run, taken at once or refused: a second run on the same folder wrote the same
    checkpoint.pt and model.pt as the first (it "resumed" the first one's epochs while that one still ran). Under
    torchrun (GMIC on several GPUs) the first process holds it for all of them (None for the others)."""
    import os  # noqa: PLC0415

    from app.folders import hold_folder  # noqa: PLC0415

    if os.environ.get("RANK", "0") != "0":
        return None
    return hold_folder(out, LOCK_NAME, "another training is writing to this folder (its checkpoint.pt and model.pt): "
                       "wait for it to end, or train into another --out", "the training's output folder cannot be "
                       "made or written in")
