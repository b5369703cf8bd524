"""Stop and resume a training run: one checkpoint file per run with everything that decides what comes next.

The file holds the model, every optimiser, the progress (epochs done, per stage where a family trains in
stages), the history and the random states (torch's global generator and any generator a family keeps), so a
stopped and resumed run continues exactly as an uninterrupted one. Every family's training uses this one helper.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

FORMAT = "mammo-reader/training-checkpoint 1"


def save_checkpoint(path: Path, model: torch.nn.Module, optimizers: Mapping[str, torch.optim.Optimizer],
                    progress: Mapping[str, int], history: list[dict[str, Any]],
                    generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Write the checkpoint (a temporary file renamed over the old one, so a crash never leaves half of one)."""
    state = {"format": FORMAT, "model": model.state_dict(),
             "optimizers": {name: optimizer.state_dict() for name, optimizer in optimizers.items()},
             "progress": json.dumps(dict(progress)), "history": json.dumps(history),
             "torch_rng": torch.get_rng_state(),
             "generators": {name: generator.get_state() for name, generator in (generators or {}).items()}}
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    partial.replace(path)


def resume(path: Path, model: torch.nn.Module, optimizers: Mapping[str, torch.optim.Optimizer],
           device: torch.device, generators: Mapping[str, torch.Generator] | None = None,
           ) -> tuple[dict[str, int], list[dict[str, Any]]] | None:
    """Load a checkpoint into ``model``, ``optimizers`` and ``generators``: (progress, history), or None when
    there is none. A checkpoint of another layout is refused with its path rather than half-loaded."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a training checkpoint of this version; move it away to start afresh")
    missing = set(optimizers) - set(state["optimizers"]) | set(generators or {}) - set(state["generators"])
    if missing:
        raise ValueError(f"{path}: the checkpoint lacks {sorted(missing)}; move it away to start afresh")
    own, stored = model.state_dict(), state["model"]
    foreign = sorted(set(own) ^ set(stored)) or sorted(k for k in own if own[k].shape != stored[k].shape)
    if foreign:  # another family's run, or other widths: said in a line, not torch's screens of key names
        raise ValueError(f"{path}: the checkpoint is of another model (another family or other sizes: "
                         f"{foreign[0]!r} differs, {len(foreign)} weight(s) in all); train into another --out, "
                         "or move it away to start afresh")
    model.load_state_dict(stored)
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
    for name, generator in (generators or {}).items():
        generator.set_state(state["generators"][name])
    torch.set_rng_state(state["torch_rng"])
    return json.loads(state["progress"]), json.loads(state["history"])


def resume_epochs(path: Path, model: torch.nn.Module, optimizers: Mapping[str, torch.optim.Optimizer],
                  device: torch.device, generators: Mapping[str, torch.Generator] | None = None,
                  log=None) -> tuple[int, list[dict[str, Any]]]:
    """:func:`resume` for trainings counted in epochs: (epochs done, history), (0, []) without a checkpoint;
    ``log`` is told where the run resumes."""
    resumed = resume(path, model, optimizers, device, generators)
    if resumed is None:
        return 0, []
    progress, history = resumed
    if log is not None:
        log(f"resumed from epoch {progress['epoch']}")
    return int(progress["epoch"]), history
