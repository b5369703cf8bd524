"""What every family's training shares: options read from JSON, the float16 file of the final weights, and
ImageNet initialisation of a pre-trained part from a user-supplied state dict."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from inference.numbers import finite_number

Options = TypeVar("Options", bound="JsonOptions")


class JsonOptions:
    """A frozen dataclass of training options that can be read from a JSON file (unknown keys refused)."""

    @classmethod
    def from_json(cls: type[Options], path: str | Path, **overrides: Any) -> Options:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: training options are a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown training options {sorted(unknown)}")
        data = checked_options(cls, data, str(path))
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)


# counts where 0 means "none" (a seed of 0, no resampling, the drop at once, no FCGN stage)
ZERO_ALLOWED = frozenset({"seed", "balance_to", "lr_drop_epoch", "fcgn_epochs"})
# rates that must be positive, numbers that must not be negative, and fractions (of a split, a momentum)
POSITIVE_RATES = frozenset({"lr", "lr_after"})
NON_NEGATIVE = frozenset({"weight_decay"})
FRACTIONS = frozenset({"momentum", "val_fraction", "test_fraction"})
# flags whose default (None) means "decided by the run" (``demo``: by its data, :func:`model_label`)
OPTIONAL_FLAGS = frozenset({"demo"})


def checked_options(cls: type, data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``data`` checked against the kinds of ``cls``'s defaults (a count a whole number of at least 1, where
    0 means nothing; a rate a finite number; a flag true or false; a list for a tuple), lists made tuples: a
    "many" or a 0 met half-way through a run was a TypeError or a division by zero there."""
    out = dict(data)
    for item in dataclasses.fields(cls):
        if item.name not in data or item.default is dataclasses.MISSING:
            continue
        value, default = data[item.name], item.default
        if isinstance(default, bool) or (default is None and item.name in OPTIONAL_FLAGS):
            kind, ok = "true or false", isinstance(value, bool)
        elif isinstance(default, int):
            least = 0 if item.name in ZERO_ALLOWED or default == 0 else 1
            kind = f"a whole number of at least {least}"
            ok = isinstance(value, int) and finite_number(value) and value >= least
        elif isinstance(default, float):
            kind, ok = "a finite number", finite_number(value)
            if ok and item.name in POSITIVE_RATES:  # -0.01 passed here and torch refused it after the data
                kind, ok = "a number above 0", value > 0  # preparation, naming no file
            elif ok and item.name in NON_NEGATIVE:
                kind, ok = "a number of at least 0", value >= 0
            elif ok and item.name in FRACTIONS:
                kind, ok = "a number between 0 and 1", 0 <= value < 1
        elif isinstance(default, str):
            kind, ok = "text", isinstance(value, str)
        elif isinstance(default, tuple):
            kind, ok = "a list", isinstance(value, (list, tuple))
            if ok:
                out[item.name] = tuple(value)
        else:
            continue
        if not ok:
            raise ValueError(f"{source}: {item.name} must be {kind}, not {json.dumps(value)[:40]}")
    return out


def model_label(config: Any, family: str, demo_label: str) -> tuple[str, bool]:
    """(label, demo) of a trained model: the options' own ``label`` and ``demo`` where they set them; else a run
    on phantoms is the demo (``demo_label``, demo true: the app's red banner) and a run on the user's data is
    named by the family (as ``registry.spoken_name`` writes it) and the data ("Mask R-CNN trained on
    train.csv"), demo false."""
    from inference.families.registry import spoken_name  # noqa: PLC0415

    phantom = config.data == "phantom"
    label = config.label or (demo_label if phantom else f"{spoken_name(family)} trained on {Path(config.data).name}")
    return label, phantom if config.demo is None else bool(config.demo)


def store_float16(model: nn.Module, path: Path) -> None:
    """Write ``model``'s weights in float16 to ``path`` and load the rounded weights back into ``model``, so
    that what is evaluated afterwards is the model as stored. The weights lie under ``model`` (as torchvision's
    training checkpoints hold them) beside a note that the model's metadata file is needed: without it a trained
    model loaded silently on its family's default settings (another window size, no calibration, no label)."""
    from inference.weights import NEEDS_METADATA  # noqa: PLC0415

    stored = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch.save({"model": stored, NEEDS_METADATA: f"needs {path.name}.json beside it (its settings, calibration "
                                                 "and label)"}, path)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in stored.items()})


def load_pretrained(target: nn.Module, state: Mapping[str, torch.Tensor], wanted: Callable[[str], bool], path: str,
                    hint: str) -> None:
    """Copy the ``wanted`` keys of ``target``'s state from ``state`` (already in ``target``'s names), refusing a
    file that lacks one or has another shape; ``hint`` says what fits."""
    own = {k: v for k, v in target.state_dict().items() if wanted(k)}
    missing = sorted(set(own) - set(state))
    wrong = sorted(k for k in own.keys() & state.keys() if own[k].shape != state[k].shape)
    if missing or wrong:
        raise ValueError(f"{path}: does not fit (missing {missing[:3]}, wrong shape {wrong[:3]}; {hint})")
    target.load_state_dict({**target.state_dict(), **{k: state[k].float() for k in own}})
