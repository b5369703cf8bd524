"""Finding, identifying and loading checkpoints of every registered model family.

Checkpoints are read with ``torch.load(weights_only=True)`` only: a file holding anything but tensors is
refused, never executed. Which family a file belongs to comes from its metadata (``<file>.json``: ``family``,
``classes``, ``malignancy``, ``label``, ``config`` …), else from its content hash (published checkpoints,
``inference/families/published.json``), else from its key layout; each family remaps and checks its own
layout strictly (``inference/families/<name>/family.py``).

A *model group* is what one model source gives: one checkpoint, or a folder of them, which is an ensemble
(the mean of its members; only of one family with the same classes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import re
import warnings
from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from inference.families import registry
from inference.families.protocol import LoadedModel
from inference.results.types import ModelIdentity
from inference.evaluation.calibration import read_site_calibration, site_calibration_path
from inference.errors import CheckpointError

logger = logging.getLogger(__name__)

__all__ = [
    "CheckpointError",
    "LoadedModel",
    "ModelGroup",
    "ModelIdentity",
    "find_checkpoints",
    "git_blob_sha1",
    "identify",
    "load_gmic_checkpoint",
    "load_model",
    "load_model_groups",
    "load_model_sources",
    "load_models",
    "published_checkpoints",
    "read_state_dict",
    "sha256_of",
]

CHECKPOINT_SUFFIXES = (".p", ".pt", ".pth", ".ckpt")


def git_blob_sha1(path: Path) -> str:
    """``git hash-object`` of a file: sha1 of ``b"blob <size>\\0" + content``."""
    path = Path(path)
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def published_checkpoints(family: str | None = None) -> list[dict]:
    """The published checkpoints Mammo Reader recognises (name, family, hash, settings, licence)."""
    return registry.published_checkpoints(family)


def identify(path: str | Path) -> dict | None:
    """The published checkpoint this file is, by content (not by name), or None."""
    return registry.published_checkpoint(git_blob_sha1(Path(path)))


REFUSED = ("the file contains Python objects other than tensors{what} and was refused for safety: only weight "
           "files (state dicts of tensors) are accepted. A training script's checkpoint that keeps its settings "
           "beside the weights (torchvision's references keep an argparse.Namespace under 'args') loads once its "
           "weights are saved alone, where you trust the file: torch.save(checkpoint['model'], 'weights.pt')")


def _is_whole_pickle(data: bytes) -> bool:
    """Whether ``data`` parses as a pickle from start to STOP (pickletools reads opcodes, runs nothing)."""
    import pickletools  # noqa: PLC0415

    try:
        for opcode, _, _ in pickletools.genops(data):
            if opcode.name == "STOP":
                return True
    except Exception:  # noqa: BLE001 - any parse failure means: not a whole pickle
        return False
    return False


def _what_the_file_is(path: Path) -> str:
    """A plain description of a file that is not a readable checkpoint."""
    data = path.read_bytes()
    if not data:
        return "the file is empty"
    if data.startswith(b"PK"):
        return "the file is a damaged or incomplete PyTorch checkpoint (its zip archive cannot be read)"
    if data[:1] == b"\x80":
        if _is_whole_pickle(data):
            return REFUSED.format(what="")
        return "the file is a damaged Python pickle, not a readable checkpoint"
    return "the file is not a PyTorch checkpoint (its content is neither a checkpoint archive nor a pickle)"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file safely into a flat dict of tensors.

    Accepts a plain state dict or a dict holding one under ``state_dict``/``model`` (training checkpoints).
    Messages say what the file is; torch's own advice to load without ``weights_only`` is never passed on.
    """
    return read_checkpoint(path)[0]


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], bool]:
    """:func:`read_state_dict`'s tensors, and whether the file says it needs its metadata file beside it (a
    model trained here: ``inference.training.common.store_float16``)."""
    path = Path(path)
    needs_metadata = False
    if not path.is_file():
        raise CheckpointError("the model file does not exist", path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = re.search(r"GLOBAL ([\w.]+)", str(error))
        if refused:
            raise CheckpointError(REFUSED.format(what=f" ({refused.group(1)})"), path) from None
        raise CheckpointError(_what_the_file_is(path), path) from None
    except MemoryError:
        raise  # not the file's fault
    except Exception:  # noqa: BLE001 - a damaged pickle makes the unpickler raise anything (IndexError, KeyError …)
        raise CheckpointError(_what_the_file_is(path), path) from None
    if isinstance(loaded, MappingABC) and isinstance(loaded.get("format"), str):
        from inference.training.resume import FORMAT as TRAINING_FORMAT  # noqa: PLC0415

        if loaded["format"] == TRAINING_FORMAT:  # loaded with the default settings it gave other numbers
            from inference.training.resume import TRAINED_MODEL  # noqa: PLC0415

            beside = ("load the model.pt that the run wrote beside it, with its metadata file"
                      if (path.parent / TRAINED_MODEL).is_file() else
                      "the run has not written its model.pt yet (it is training, or it stopped: train resumes it)")
            raise CheckpointError(f"this is a training run's checkpoint (for resuming it with train), not a model: "
                                  f"{beside}", path)
    if isinstance(loaded, MappingABC):
        for wrapper in ("state_dict", "model"):
            if wrapper in loaded and isinstance(loaded[wrapper], MappingABC):
                needs_metadata = isinstance(loaded.get(NEEDS_METADATA), str)
                loaded = loaded[wrapper]
                break
    if not isinstance(loaded, MappingABC) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise CheckpointError("the file does not hold a state dict (a mapping of names to tensors)", path)
    for name, tensor in loaded.items():  # an inf weight gives a "probability" of 1.0 downstream: never load one
        if not tensor.is_floating_point():
            # a weight of whole numbers was cast to float and gave other probabilities without a word; only a
            # batch norm's counter of batches is a whole number
            if name.rsplit(".", 1)[-1] != "num_batches_tracked":
                kind = str(tensor.dtype).replace("torch.", "")
                raise CheckpointError(f"the weight {name!r} holds whole numbers ({kind}), not the floating-point "
                                      "numbers of a model's weights: the checkpoint is damaged", path)
            continue
        if not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"the weight {name!r} holds values that are not finite numbers (NaN or inf): "
                                  "the checkpoint is damaged", path)
        if name.endswith("running_var") and bool((tensor < 0).any()):  # a variance: a square root downstream
            raise CheckpointError(f"the weight {name!r} holds negative variances: the checkpoint is damaged", path)
    return dict(loaded), needs_metadata


# a trained checkpoint's key (``inference.training.common.store_float16``): its metadata file must lie beside it
NEEDS_METADATA = "mammo_reader"


# torch's note on an older pickle protocol reached the console; what fails to load is said by read_state_dict
# (set once here: warnings.catch_warnings is not thread-safe, and models load on several threads)
warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)

OBJECT_SECTIONS = ("config", "calibration", "display", "windows", "thresholds", "regions", "input", "glimpses",
                   "normalisation")


def read_metadata(path: Path) -> dict:
    """Optional metadata next to a checkpoint (``<file>.json``)."""
    sidecar = path.with_name(path.name + ".json")
    if not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # ValueError: bad JSON, or bytes that are not UTF-8
        raise CheckpointError(f"the model's metadata file could not be read ({error})", sidecar) from error
    if not isinstance(data, dict):
        raise CheckpointError("the model's metadata file does not hold a JSON object", sidecar)
    for section in OBJECT_SECTIONS:  # each family reads these as objects; null is as if absent
        if section in data and data[section] is None:
            del data[section]
        elif section in data and not isinstance(data[section], dict):
            raise CheckpointError(f"the model's metadata: {section!r} must be a JSON object, not "
                                  f"{json.dumps(data[section])[:40]}", sidecar)
    card = data.get("calibration") or {}
    if card.get("method") in ("platt", "isotonic"):  # the card's recalibration, applied to every hybrid
        from inference.evaluation.calibration import recalibration_problem  # noqa: PLC0415

        problem = recalibration_problem(card)
        if problem:
            raise CheckpointError(f"the model's metadata: its calibration is damaged ({problem})", sidecar)
    if data.get("label") is not None and not isinstance(data["label"], str):
        raise CheckpointError(f"the model's metadata: 'label' must be text, not {json.dumps(data['label'])[:40]}",
                              sidecar)
    # fields of the wrong JSON type: a "malignancy" given as text named each of its letters a class, and
    # "demo": "no" put the demo banner on a model
    for field, kind, words in (("family", str, "text"), ("licence", str, "text"), ("demo", bool, "true or false"),
                               ("classes", list, "a list of class names"),
                               ("malignancy", list, "a list of class names")):
        value = data.get(field)
        if value is not None and (not isinstance(value, kind) or (kind is list and not all(
                isinstance(item, str) for item in value))):
            raise CheckpointError(f"the model's metadata: {field!r} must be {words}, not {json.dumps(value)[:40]}",
                                  sidecar)
    twice = sorted({c for c in data.get("classes") or [] if data["classes"].count(c) > 1})
    if twice:  # the second took the first's place: a class's output vanished and another's was shown for it
        raise CheckpointError(f"the model's metadata: the class {twice[0]!r} is named twice in 'classes'", sidecar)
    problem = operating_points_problem(card.get("operating_points"))
    if problem:
        raise CheckpointError(f"the model's metadata: {problem}", sidecar)
    return data


def _fraction(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1


def operating_points_problem(points: Any) -> str:
    """Why a metadata card's operating points cannot be used ("" when they can): each is an object with a name
    and a threshold that is a probability. A threshold of -1 called every exam "above the 90 % specificity
    threshold", one of NaN failed every report after the analysis, one given as text failed the analysis."""
    if points is None:
        return ""
    if not isinstance(points, list):
        return f"'operating_points' must be a list of objects, not {json.dumps(points)[:40]}"
    for number, point in enumerate(points, start=1):
        if not isinstance(point, dict) or not isinstance(point.get("name"), str) or not point["name"].strip():
            return f"operating point {number} must be an object with a \"name\" and a \"threshold\""
        if not _fraction(point.get("threshold")):
            return (f"operating point {point['name']!r}: the threshold must be a number from 0 to 1, not "
                    f"{json.dumps(point.get('threshold'))[:40]}")
        for key in ("sensitivity", "specificity"):
            if key in point and not _fraction(point[key]):
                return f"operating point {point['name']!r}: its {key} must be a number from 0 to 1"
    return ""


def load_model(
    path: str | Path,
    *,
    percent_t: float | None = None,
    device: str | torch.device | None = None,
    settings: MappingABC[str, Any] | None = None,
) -> LoadedModel:
    """Load a checkpoint of any registered family into an eval-mode float32 model with its identity.

    ``percent_t`` is GMIC's pooling threshold for checkpoints that are neither published nor say it in
    their metadata. ``settings`` override a family's metadata settings (the sliding-window family's
    ``overlap``, ``min_tissue``, ``top``). ``device`` moves the new model there (the pipeline never moves a
    caller's model).
    """
    path = Path(path)
    state, needs_metadata = read_checkpoint(path)
    meta = read_metadata(path)
    sidecar = path.with_name(path.name + ".json")
    if needs_metadata and not sidecar.is_file():  # a model trained here, copied without its metadata file
        raise CheckpointError(f"the model's metadata file {sidecar.name} is missing: it holds the settings the model "
                              "was trained with (its window size, image sizes, widths), its calibration and its "
                              "label, and without them it would give other numbers; copy it beside the checkpoint",
                              path)
    blob = git_blob_sha1(path)
    published = registry.published_checkpoint(blob)
    declared = meta.get("family") or (published or {}).get("family")
    try:
        family = registry.family_for(state, declared)
    except KeyError as error:
        raise CheckpointError(f"the metadata names an unknown model family ({error})", path) from error
    if family is None:
        known = ", ".join(registry.families())
        raise CheckpointError(f"the checkpoint's weights have the layout of none of the known model families "
                              f"({known}); first weight '{next(iter(state), '')}'", path)
    if declared and not family.recognises(state):  # a sidecar copied beside another model's weights
        layout = registry.family_for(state)
        if layout is not None and layout.name != family.name:
            raise CheckpointError(f"the metadata says the model is {registry.spoken_name(family.name)}, but its "
                                  f"weights have the layout of {registry.spoken_name(layout.name)}: the metadata file "
                                  "belongs to another model", path.with_name(path.name + ".json"))
    model, fields = family.build(state, meta, str(path), {"percent_t": percent_t, "published": published,
                                                        "overrides": dict(settings or {})})
    if device is not None:
        model.to(device)
    classes = tuple(fields["classes"])
    malignancy = tuple(fields.get("malignancy", ()))
    unknown = [c for c in malignancy if c not in classes]
    if unknown:
        raise CheckpointError(f"the malignancy rule names classes the model does not have: {unknown}", path)
    identity = ModelIdentity(
        path=str(path),
        git_blob_sha1=blob,
        sha256=sha256_of(path),
        published_name=published["name"] if published else None,
        percent_t=fields.get("percent_t"),
        label=published["name"] if published else meta.get("label") or path.name,
        demo=bool(meta.get("demo", False)),
        family=family.name,
        classes=classes,
        malignancy=malignancy,
        exclusive=bool(fields.get("exclusive", False)),
        licence=(published or {}).get("licence", meta.get("licence", "")),
        calibration=meta.get("calibration"),
        settings=dict(fields.get("settings", {})),
        site_calibration=read_site_calibration(site_calibration_path(path)),  # the hybrid's scale at this site
        display=fields.get("display", meta.get("display")),  # a family may derive it (a detector's threshold)
    )
    fitted_for = str((identity.site_calibration or {}).get("model_key") or "")
    if fitted_for and blob not in fitted_for:  # a calibration copied beside another model must not rescale it
        raise CheckpointError(f"the site calibration beside this model was fitted for another model ({fitted_for}; "
                              f"this file's content hash is {blob}): remove it, or validate this model again",
                              site_calibration_path(path))
    logger.info("loaded %s model %s", family.name, identity.label)
    return LoadedModel(model=model, identity=identity)


def load_gmic_checkpoint(path: str | Path, *, percent_t: float | None = None,
                         device: str | torch.device | None = None) -> torch.nn.Module:
    """A GMIC checkpoint's eval-mode module (refuses checkpoints of other families)."""
    loaded = load_model(path, percent_t=percent_t, device=device)
    if loaded.identity.family != "gmic":
        raise CheckpointError(f"this is a {registry.spoken_name(loaded.identity.family)} checkpoint, not GMIC", path)
    return loaded.model


def find_checkpoints(folder: str | Path) -> list[Path]:
    """Checkpoint files in a folder, by name; a train run's folder gives its model, not its training checkpoint
    (given as a model it was an ensemble member read with the default settings)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError("the model folder does not exist", folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES)
    from inference.training.resume import TRAINED_MODEL, TRAINING_CHECKPOINT  # noqa: PLC0415

    if (folder / TRAINED_MODEL).is_file():  # a train run's folder: its checkpoint is for resuming, not a model
        files = [p for p in files if p.name != TRAINING_CHECKPOINT]
    if not files:
        raise CheckpointError(
            "no model file found; put the published GMIC checkpoints (sample_model_1.p ... sample_model_5.p), a "
            "GLAM checkpoint or another model checkpoint (.p, .pt, .pth, .ckpt) in this folder", folder)
    return files


def load_models(
    source: str | Path,
    *,
    percent_t: float | None = None,
    device: str | torch.device | None = None,
    settings: MappingABC[str, Any] | None = None,
) -> list[LoadedModel]:
    """Load one checkpoint file, or every checkpoint in a folder: published ones first in their published
    order, then the others by path."""
    source = Path(source)
    paths = find_checkpoints(source) if source.is_dir() else [source]
    models = [load_model(p, percent_t=percent_t, device=device, settings=settings) for p in paths]
    order: dict[str, int] = {}
    for i, entry in enumerate(registry.published_checkpoints()):
        order.setdefault(entry["name"], i)
    models.sort(key=lambda m: (order.get(m.identity.published_name or "", len(order)), m.identity.path))
    return models


@dataclass(frozen=True)
class ModelGroup:
    """One model, or an ensemble (the mean of its members), as one entry of an analysis.

    Attributes:
        id: the entry's name in results (``models.<id>`` in the result JSON); unique within an analysis.
        members: the models; all of one family and with the same classes.
        label: what the UI and reports call it.
    """

    id: str
    members: tuple[LoadedModel, ...]
    label: str

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a model group needs at least one model")
        first = self.members[0].identity
        for member in self.members[1:]:
            other = member.identity
            if (other.family, other.classes) != (first.family, first.classes):
                raise CheckpointError(
                    f"an ensemble averages models of one family with the same classes; {other.label} is "
                    f"{other.family} {list(other.classes)}, {first.label} is {first.family} {list(first.classes)}",
                    other.path)

    @property
    def identity(self) -> ModelIdentity:
        """The first member's identity: family, classes, malignancy rule and calibration of the group."""
        return self.members[0].identity

    @property
    def key(self) -> str:
        return "+".join(m.identity.key for m in self.members)


def group_label(members: Sequence[LoadedModel], source: Path | None = None) -> str:
    if len(members) == 1:
        return members[0].identity.label
    names = [m.identity.published_name for m in members]
    if all(names) and len(names) == 5 and all(n.startswith("sample_model_") for n in names):
        return "GMIC ensemble (5 published models)"
    where = f" ({source.name})" if source is not None else ""
    return f"{registry.spoken_name(members[0].identity.family)} ensemble of {len(members)}{where}"


def _unique(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^\w.-]+", "_", name).strip("_") or "model"
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}-{number}", number + 1
    taken.add(candidate)
    return candidate


def split_model_sources(sources: str | Path | Sequence[str | Path]) -> list[Path]:
    """Model sources as a list: several may be given as a sequence or in one string separated by
    ``os.pathsep`` (how Preferences and the window keep them)."""
    if isinstance(sources, (str, Path)):
        return [Path(p) for p in str(sources).split(os.pathsep) if p.strip()]
    return [Path(p) for p in sources]


def load_model_groups(sources: str | Path | Sequence[str | Path], **options) -> list[ModelGroup]:
    """One group per source, in the order given: a file is one model, a folder is an ensemble."""
    taken: set[str] = set()
    groups = []
    for source in split_model_sources(sources):
        members = tuple(load_models(source, **options))
        name = source.name if source.is_dir() else source.stem
        groups.append(ModelGroup(_unique(name, taken), members, group_label(members, source)))
    return groups


def load_model_sources(sources: str | Path | Sequence[str | Path], **options) -> list[LoadedModel]:
    """Every model of every source, in the order given (flat; see :func:`load_model_groups`)."""
    return [model for source in split_model_sources(sources) for model in load_models(source, **options)]
