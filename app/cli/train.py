"""``python main.py train``: train a model (GMIC, the sliding-window classifier, the attention CNN,
GlimpseNet or Mask R-CNN) on phantoms or on a site's own images."""

from __future__ import annotations

import argparse

from inference.errors import MammoError


def run(args: argparse.Namespace) -> int:
    overrides = {"out": args.out, "device": args.device, "epochs": args.epochs, "seed": args.seed, "data": args.data}
    if args.family == "sliding-window":
        from inference.families.sliding_window.training import WindowTrainConfig, train_windows  # noqa: PLC0415

        config_type, train = WindowTrainConfig, train_windows
        overrides["val_data"] = args.val_data
    elif args.family == "attention-cnn":
        from inference.families.attention_cnn.training import AttentionTrainConfig, train_attention  # noqa: PLC0415

        config_type, train = AttentionTrainConfig, train_attention
        overrides["encoder_weights"] = args.encoder_weights
    elif args.family == "glimpsenet":
        from inference.families.glimpsenet.training import GlimpseTrainConfig, train_glimpsenet  # noqa: PLC0415

        config_type, train = GlimpseTrainConfig, train_glimpsenet
        overrides["folds"] = args.folds
        overrides["classifier_weights"] = args.encoder_weights
    elif args.family == "maskrcnn":
        from inference.families.maskrcnn.training import MaskRCNNTrainConfig, train_maskrcnn  # noqa: PLC0415

        config_type, train = MaskRCNNTrainConfig, train_maskrcnn
        overrides["weights"] = args.encoder_weights
    else:
        from inference.families.gmic.training import TrainConfig, train  # noqa: PLC0415

        config_type = TrainConfig
    if args.val_data and args.family != "sliding-window":
        raise MammoError(f"--val-data is for the sliding-window family; {args.family} holds out part of --data")
    if args.encoder_weights and args.family not in ("attention-cnn", "glimpsenet", "maskrcnn"):
        raise MammoError("--encoder-weights is for the attention-cnn, glimpsenet and maskrcnn families")
    if args.folds and args.family != "glimpsenet":
        raise MammoError("--folds is for the glimpsenet family")
    try:
        if args.config:
            config = config_type.from_json(args.config, **overrides)
        else:
            config = config_type(**{k: v for k, v in overrides.items() if v is not None})
    except (OSError, ValueError, TypeError) as error:
        raise MammoError(f"the training options are invalid ({error})", args.config or None) from error
    try:
        train(config)
    except (OSError, ValueError) as error:
        raise MammoError(f"training stopped: {error}") from error
    return 0
