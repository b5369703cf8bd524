"""``python main.py [open] [EXAM]``: the workstation (and its offscreen ``--screenshot`` mode)."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from app.gui import run_gui  # noqa: PLC0415

    overrides = {key: value for key, value in (("device", args.device), ("mode", args.mode)) if value}
    return run_gui(args.exam, models=args.models, screenshot=args.screenshot, settings_overrides=overrides or None)
