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

Options = TypeVar("Options", bound="JsonOptions")


class JsonOptions:
    """A frozen dataclass of training options that can be read from a JSON file (unknown keys refused)."""

    @classmethod
    def from_json(cls: type[Options], path: str | Path, **overrides: Any) -> Options:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown training options {sorted(unknown)}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)


def store_float16(model: nn.Module, path: Path) -> None:
    """Write ``model``'s weights in float16 to ``path`` and load the rounded weights back into ``model``, so
    that what is evaluated afterwards is the model as stored."""
    stored = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch.save(stored, path)
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
