"""``python main.py train``: train a model on phantoms or on a site's own images."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from inference.train import TrainConfig, train  # noqa: PLC0415

    overrides = {"out": args.out, "device": args.device, "epochs": args.epochs, "seed": args.seed, "data": args.data}
    if args.config:
        config = TrainConfig.from_json(args.config, **overrides)
    else:
        config = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    train(config)
    return 0
