"""``python main.py train``: train a model (GMIC or the sliding-window classifier) on phantoms or on a site's
own images."""

from __future__ import annotations

import argparse

from inference.errors import MammoError


def run(args: argparse.Namespace) -> int:
    overrides = {"out": args.out, "device": args.device, "epochs": args.epochs, "seed": args.seed, "data": args.data}
    if args.family == "sliding-window":
        from inference.train_windows import WindowTrainConfig, train_windows  # noqa: PLC0415

        config_type, train = WindowTrainConfig, train_windows
        overrides["val_data"] = args.val_data
    else:
        from inference.train import TrainConfig, train  # noqa: PLC0415

        config_type = TrainConfig
        if args.val_data:
            raise MammoError("--val-data is for the sliding-window family; GMIC holds out 20 % of --data")
    try:
        if args.config:
            config = config_type.from_json(args.config, **overrides)
        else:
            config = config_type(**{k: v for k, v in overrides.items() if v is not None})
    except (OSError, ValueError, TypeError) as error:
        raise MammoError(f"the training options are invalid ({error})", args.config or None) from error
    train(config)
    return 0
