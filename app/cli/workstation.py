"""``python main.py [open] [EXAM]``: the workstation (and its offscreen ``--screenshot`` mode)."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from app.gui import run_gui  # noqa: PLC0415

    from app.pacs.nodes import DEFAULT_AE_TITLE, is_pacs_address, parse_study  # noqa: PLC0415

    # --ae-title is this session's calling AE title for every PACS call (the exam, the worklist's query and
    # retrieves, priors, sends), not only the exam given
    overrides = {key: value for key, value in (("device", args.device), ("mode", args.mode),
                                               ("ae_title", getattr(args, "ae_title", None))) if value}
    exam = args.exam
    if is_pacs_address(exam):  # checked now; retrieved by the workstation's worker, not before it opens
        exam = parse_study(exam, args.ae_title or DEFAULT_AE_TITLE)
    code = run_gui(exam, models=args.models, screenshot=args.screenshot, settings_overrides=overrides or None,
                   worklist=getattr(args, "worklist", None), worklist_dates=getattr(args, "dates", "today"))
    # The window has closed, its workers were cancelled and the store has written everything: leave now,
    # without the interpreter's teardown of torch and Qt (most of a second), so the process ends with the window.
    import logging  # noqa: PLC0415
    import os  # noqa: PLC0415
    import sys  # noqa: PLC0415

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
