"""Stop and resume a training run: one checkpoint file per run with everything that decides what comes next.

The file holds the model, every optimiser, the progress (epochs done, per stage where a family trains in
stages), the history and the random states (torch's global generator and any generator a family keeps), so a
stopped and resumed run continues exactly as an uninterrupted one. Every family's training uses this one helper.

It also holds the run's record (:func:`run_record`): the family, the data and the weights it starts from (each
file's path and the SHA-256 of its content, compared by the content) and every option that decides the weights (the seed, the learning rate …; not where or how long it
runs: ``out``, ``device``, ``epochs``, ``memory_format``, nor the ``label``/``demo`` it is shown with). A resume
with another record is refused, naming what differs, so that a model's metadata never records settings its
weights did not come from; unless the options say ``continue_with_changes`` (a second stage on purpose, as the
demo's mask loss), which is then written into the history (``settings_changed_after`` on the last epoch before
the change). A checkpoint written before records existed resumes with a warning that its settings could not be
checked; the checkpoints written from then on carry the record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

FORMAT = "mammo-reader/training-checkpoint 1"
TRAINED_MODEL, TRAINING_CHECKPOINT = "model.pt", "checkpoint.pt"  # what every family's train run writes in --out

# options that say where, on what and how long a run goes, or what its model is called: not what it learns
NOT_DECIDING = frozenset({"out", "device", "epochs", "memory_format", "label", "demo", "continue_with_changes"})
# options naming files (the data, and weights to start from): recorded as their full path and their content's
# hash, and compared by the hash (the same CSV moved with its project is the same run)
DATA_OPTIONS = ("data", "val_data", "weights", "encoder_weights", "classifier_weights")


def data_fingerprint(value: str, leave_out: Path | None = None) -> dict[str, Any]:
    """A data option as recorded: ``phantom`` (or nothing) as it is; a file as its full path and the SHA-256 of
    its content; a folder (a MIAS folder) as its full path and the SHA-256 of its files' names and sizes, those
    under ``leave_out`` (the run's own --out, when it lies inside) not counted."""
    if not value or value == "phantom":
        return {"path": value}
    path = Path(value).expanduser().resolve()
    digest = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    elif path.is_dir():
        skipped = leave_out.expanduser().resolve() if leave_out is not None else None
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            if skipped is not None and item.is_relative_to(skipped):
                continue
            digest.update(f"{item.relative_to(path).as_posix()}\t{item.stat().st_size}\n".encode())
    else:
        return {"path": str(path), "sha256": None}
    return {"path": str(path), "sha256": digest.hexdigest()}


def run_record(family: str, config: Any) -> dict[str, Any]:
    """What decides a run's weights: ``family``, the file options' fingerprints and ``config``'s (a dataclass
    of options) other deciding values, as JSON values."""
    values = dataclasses.asdict(config)
    out = Path(str(values["out"])) if values.get("out") else None
    data = {name: data_fingerprint(str(values.pop(name) or ""), out) for name in DATA_OPTIONS if name in values}
    options = {k: v for k, v in values.items() if k not in NOT_DECIDING}
    return json.loads(json.dumps({"family": family, "data": data, "options": options}))


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "…"


def run_differences(stored: Mapping[str, Any], record: Mapping[str, Any]) -> list[str]:
    """What differs between a checkpoint's record and this run's, in words (empty: the same run). An option
    only one of them knows (added in a later version) is not counted."""
    differences = []
    if stored.get("family") != record.get("family"):
        differences.append(f"family {stored.get('family')} there, {record.get('family')} now")
    for name, now in record.get("data", {}).items():
        then = stored.get("data", {}).get(name)
        if then is None:
            continue
        if then.get("sha256") and now.get("sha256"):  # files on both sides: their content decides
            if then["sha256"] != now["sha256"]:
                moved = "" if then.get("path") == now.get("path") else f" (the run's was {then.get('path')})"
                differences.append(f"{name} {now.get('path')} has other content than the run's{moved}")
        elif then.get("path") != now.get("path"):
            differences.append(f"{name} {then.get('path') or 'none'} there, {now.get('path') or 'none'} now")
    then_options, now_options = stored.get("options", {}), record.get("options", {})
    for name in sorted(then_options.keys() & now_options.keys()):
        if name == "family":
            continue  # said above: the family is an option too, and was said twice
        if then_options[name] != now_options[name]:
            differences.append(f"{name} {_shown(then_options[name])} there, {_shown(now_options[name])} now")
    return differences


def _stored_record(state: Mapping[str, Any]) -> dict[str, Any] | None:
    return json.loads(state["run"]) if isinstance(state.get("run"), str) else None


def refuse_another_run(path: Path, stored: Mapping[str, Any] | None, record: Mapping[str, Any] | None,
                       continue_with_changes: bool = False) -> list[str]:
    """Raise ValueError (one line: what differs, what to do) when the checkpoint at ``path`` (its record
    ``stored``) is of another run than ``record``; the differences allowed by ``continue_with_changes`` are
    returned (empty: the same run, or nothing to compare)."""
    if stored is None or record is None:
        return []
    differences = run_differences(stored, record)
    if differences and not continue_with_changes:
        shown = "; ".join(differences[:3]) + (f"; and {len(differences) - 3} more" if len(differences) > 3 else "")
        raise ValueError(f"{path}: the checkpoint is of a run with other settings ({shown}), which the model would "
                         "record for weights that did not come from them: train into another --out, or move the "
                         "checkpoint away to start afresh (continue_with_changes in the training options continues "
                         "it on purpose, as a new stage)")
    return differences


def check_checkpoint(path: Path, record: Mapping[str, Any], continue_with_changes: bool = False,
                     epochs: int | None = None) -> None:
    """Before any work: refuse (ValueError) a checkpoint at ``path`` of another layout or of another run than
    ``record`` (:func:`refuse_another_run`), or one already past ``epochs`` (the run's length now: it wrote the
    model again with that length in its record and a longer history); nothing when there is none."""
    if not path.is_file():
        return
    state = _load(path, torch.device("cpu"), mmap=True)  # the record, not the weights, is read
    refuse_another_run(path, _stored_record(state), record, continue_with_changes)
    try:
        done = int(json.loads(state.get("progress") or "{}").get("epoch", 0))
    except (TypeError, ValueError, AttributeError):
        return  # counted otherwise (steps); resume() says what it finds
    if epochs is not None and done > epochs:
        raise ValueError(f"{path}: this run has done {done} epochs already, more than --epochs {epochs}: give "
                         f"--epochs {done} or more to go on, or train into another --out")


def _load(path: Path, device: torch.device, mmap: bool = False) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location=device, weights_only=True, mmap=mmap)
    except OSError:
        raise
    except Exception as error:  # noqa: BLE001 - a damaged file makes torch raise anything; said of the file
        raise ValueError(f"{path}: not a readable training checkpoint ({type(error).__name__}); move it away to "
                         "start afresh") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a training checkpoint of this version; move it away to start afresh")
    return state


def save_checkpoint(path: Path, model: torch.nn.Module, optimizers: Mapping[str, torch.optim.Optimizer],
                    progress: Mapping[str, int], history: list[dict[str, Any]],
                    generators: Mapping[str, torch.Generator] | None = None,
                    run: Mapping[str, Any] | None = None) -> None:
    """Write the checkpoint (a temporary file renamed over the old one, so a crash never leaves half of one);
    ``run`` is the run's record (:func:`run_record`)."""
    state = {"format": FORMAT, "model": model.state_dict(),
             "optimizers": {name: optimizer.state_dict() for name, optimizer in optimizers.items()},
             "progress": json.dumps(dict(progress)), "history": json.dumps(history),
             "torch_rng": torch.get_rng_state(),
             "generators": {name: generator.get_state() for name, generator in (generators or {}).items()}}
    if run is not None:
        state["run"] = json.dumps(run)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    partial.replace(path)


def resume(path: Path, model: torch.nn.Module, optimizers: Mapping[str, torch.optim.Optimizer],
           device: torch.device, generators: Mapping[str, torch.Generator] | None = None,
           run: Mapping[str, Any] | None = None, continue_with_changes: bool = False,
           log: Callable[[str], None] | None = None) -> tuple[dict[str, int], list[dict[str, Any]]] | None:
    """Load a checkpoint into ``model``, ``optimizers`` and ``generators``: (progress, history), or None when
    there is none. A checkpoint of another layout is refused with its path rather than half-loaded, and one of
    another run than ``run`` (:func:`run_record`) as :func:`refuse_another_run` says; ``log`` is told of a
    checkpoint without a record and of a continuation with changed settings."""
    if not path.is_file():
        return None
    state = _load(path, device)
    stored = _stored_record(state)
    changed = refuse_another_run(path, stored, run, continue_with_changes)
    missing = set(optimizers) - set(state["optimizers"]) | set(generators or {}) - set(state["generators"])
    if missing:
        raise ValueError(f"{path}: the checkpoint lacks {sorted(missing)}; move it away to start afresh")
    own, stored_model = model.state_dict(), state["model"]
    foreign = sorted(set(own) ^ set(stored_model)) or sorted(k for k in own if own[k].shape != stored_model[k].shape)
    if foreign:  # another family's run, or other widths: said in a line, not torch's screens of key names
        raise ValueError(f"{path}: the checkpoint is of another model (another family or other sizes: "
                         f"{foreign[0]!r} differs, {len(foreign)} weight(s) in all); train into another --out, "
                         "or move it away to start afresh")
    model.load_state_dict(stored_model)
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
    for name, generator in (generators or {}).items():
        generator.set_state(state["generators"][name])
    torch.set_rng_state(state["torch_rng"])
    history = json.loads(state["history"])
    if run is not None and stored is None and log is not None:
        log(f"warning: {path} was written before checkpoints recorded their run's settings, so they could not be "
            "checked; the model's metadata records this run's settings for the earlier epochs too")
    if changed:
        if history:  # the change stays in the model's metadata, with the epochs it came after
            history[-1] = {**history[-1], "settings_changed_after": changed}
        if log is not None:
            log("continuing with changed settings: " + "; ".join(changed))
    return json.loads(state["progress"]), history


def resume_epochs(path: Path, model: torch.nn.Module, optimizers: Mapping[str, torch.optim.Optimizer],
                  device: torch.device, generators: Mapping[str, torch.Generator] | None = None,
                  log=None, run: Mapping[str, Any] | None = None,
                  continue_with_changes: bool = False) -> tuple[int, list[dict[str, Any]]]:
    """:func:`resume` for trainings counted in epochs: (epochs done, history), (0, []) without a checkpoint;
    ``log`` is told where the run resumes."""
    resumed = resume(path, model, optimizers, device, generators, run, continue_with_changes, log)
    if resumed is None:
        return 0, []
    progress, history = resumed
    if log is not None:
        log(f"resumed from epoch {progress['epoch']}")
    return int(progress["epoch"]), history
