"""What the commands share: the progress bar, the default models, the exam argument."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from inference.errors import MammoError


class ProgressBar:
    """A one-line progress bar on stderr; where stderr is no terminal (a log file, a pipe) a line per stage and
    per tenth of the work instead, since a log cannot redraw a line."""

    def __init__(self, stream=None) -> None:
        self.stream = stream if stream is not None else sys.stderr  # the stderr of now, not of the import
        self.start = time.perf_counter()
        isatty = getattr(self.stream, "isatty", None)
        self.redraws = bool(isatty and isatty())
        self._logged: tuple[str, int] | None = None  # the stage and tenth last written to a log

    def __call__(self, stage: str, done: int, total: int) -> None:
        width = 24
        filled = int(width * done / total) if total else width
        elapsed = time.perf_counter() - self.start
        if not self.redraws:
            tenth = (10 * done // total) if total else 10
            if (stage, tenth) == self._logged:
                return
            self._logged = (stage, tenth)
            self.stream.write(f"{done}/{total} {stage} {elapsed:.1f}s\n")
            self.stream.flush()
            return
        line = f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {stage[:48]:<48} {elapsed:6.1f}s"
        self.stream.write(line)
        self.stream.flush()

    def close(self) -> None:
        if self.redraws:  # a log's lines end themselves
            self.stream.write("\n")
            self.stream.flush()


DEFAULT_PHANTOMS = 48


def phantom_count(args: argparse.Namespace) -> int:
    """``--phantoms``, or its default, with ``--data phantom``; refused with a CSV or folder (it was ignored)."""
    if args.phantoms is not None and args.data != "phantom":
        raise MammoError(f"--phantoms {args.phantoms} is for --data phantom; with --data {args.data} the images "
                         "are the data's own: leave --phantoms out")
    return DEFAULT_PHANTOMS if args.phantoms is None else args.phantoms


def read_images_with_progress(model, settings, classes, images, device: str, mode: str = "exact") -> list:
    """A window classifier's readings of labelled images (``sliding_window.evaluation.read_images``, as
    evaluate and calibrate read them), with a progress bar on stderr."""
    from inference.families.sliding_window.evaluation import read_images  # noqa: PLC0415

    bar = ProgressBar()
    try:
        return read_images(model, settings, classes, images, device,
                           progress=lambda done, total: bar("reading the images", done, total), mode=mode)
    finally:
        bar.close()


def model_sources(args: argparse.Namespace) -> list[str]:
    """``--models`` as given; else the models configured in Preferences; else the built-in demo model."""
    if getattr(args, "models", None):
        return list(args.models)
    from app.demo import demo_model_path  # noqa: PLC0415
    from app.settings import AppSettings  # noqa: PLC0415

    configured = [part for part in AppSettings.load().model_path.split(os.pathsep) if part.strip()]
    if configured:  # several are joined by os.pathsep there, as the workstation reads them
        return configured
    demo = demo_model_path()
    if demo is None:
        raise MammoError("no model: give --models, or configure one in the workstation's Preferences")
    return [str(demo)]


def exam_argument(values: Sequence[str] | str) -> str | list[str]:
    """One exam from the positional argument(s): a folder, a manifest or a file, or a list of image files."""
    if isinstance(values, str):
        return values
    values = list(values)
    if len(values) == 1:
        return values[0]
    folders = [v for v in values if Path(v).is_dir()]
    if folders:
        raise MammoError(f"give one exam folder, or a list of image files (not {len(values)} paths with folders "
                         "among them)", folders[0])
    return values



def load_exam_argument(values: Sequence[str] | str, args: argparse.Namespace):
    """The exam of the positional argument(s): files and folders through the intake, or a PACS study
    (``dimse://…``, ``dicomweb+http(s)://…``) retrieved into the cache first (its notes join the intake's)."""
    from app.archive.unit import open_exam  # noqa: PLC0415
    from app.pacs.nodes import DEFAULT_AE_TITLE, is_pacs_address  # noqa: PLC0415
    from inference.intake.exam import load_exam  # noqa: PLC0415

    source = exam_argument(values)
    if not is_pacs_address(source):
        return load_exam(source)
    exam = open_exam(source, getattr(args, "ae_title", None) or DEFAULT_AE_TITLE)
    print(f"{source}: {len(exam.views)} view(s) retrieved", file=sys.stderr)
    return exam


def print_device_notice(device: str | None) -> None:
    """Say at once, as ``analyze`` does, that a GPU asked for is not there and the CPU runs the models (the
    batch fell back without a word, and its table said ``cpu``)."""
    if str(device or "auto") in ("auto", "cpu"):
        return
    from inference.devices import choose_device  # noqa: PLC0415

    for notice in choose_device(device)[1]:
        print(f"notice: {notice}")


def command_device(device: str | None, default: str = "cpu") -> str:
    """The device a command runs on, from ``--device`` (``default`` when not given), resolved as ``analyze``
    resolves it (``choose_device``: ``auto`` is CUDA where there is one; ``cuda`` without a usable GPU is the
    CPU, said with the same notice)."""
    from inference.devices import choose_device  # noqa: PLC0415

    print_device_notice(device)
    return str(choose_device(device or default)[0])
