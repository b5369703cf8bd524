"""Finding, identifying and loading GMIC checkpoints.

Checkpoints are read with ``torch.load(weights_only=True)`` only: a file holding anything but tensors is
refused, never executed. The published checkpoints (``sample_model_1.p`` ... ``_5.p``, nyukat/GMIC) use flat
keys (``ds_net.*``, ``dn_resnet.*``, ``mil_attn_U.*`` ...) and carry one unused key,
``shared_rep_filter.weight``; :func:`remap_published_keys` translates them onto this package's module tree.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import warnings
from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from inference.errors import MammoError
from inference.models.gmic import GMIC, GMICConfig

logger = logging.getLogger(__name__)

DEFAULT_PERCENT_T = 0.02
UNUSED_PUBLISHED_KEYS = frozenset({"shared_rep_filter.weight"})
CHECKPOINT_SUFFIXES = (".p", ".pt", ".pth", ".ckpt")


class CheckpointError(MammoError):
    """A checkpoint that cannot be used: unreadable, unsafe, or not a GMIC state dict."""


@dataclass(frozen=True)
class PublishedCheckpoint:
    """One of the five checkpoints released with the GMIC paper."""

    name: str
    git_blob_sha1: str
    percent_t: float


PUBLISHED_CHECKPOINTS: tuple[PublishedCheckpoint, ...] = (
    PublishedCheckpoint("sample_model_1.p", "04e473379a8313daa426c38e69bad392fc0be769", 0.02),
    PublishedCheckpoint("sample_model_2.p", "98074a24bbebdbf030eb2bd9c27e96f4683d336b", 0.03),
    PublishedCheckpoint("sample_model_3.p", "9304d4b3224ecd4b9bd6717095ef819c779efae5", 0.03),
    PublishedCheckpoint("sample_model_4.p", "4e87f6453d71e9e9be01504ee8b64ff077c254ee", 0.05),
    PublishedCheckpoint("sample_model_5.p", "ec942dd65a99aaa3fce8cf00bcd10bdb0ee40e2c", 0.1),
)
_BY_SHA1 = {entry.git_blob_sha1: entry for entry in PUBLISHED_CHECKPOINTS}


@dataclass(frozen=True)
class ModelIdentity:
    """Where a loaded model came from; shown in the UI and written into every result.

    Attributes:
        path: the checkpoint file.
        git_blob_sha1: content hash (``git hash-object``), which identifies published checkpoints.
        sha256: content hash for reports.
        published_name: ``sample_model_N.p`` when the file is a published checkpoint, else None.
        percent_t: the pooling threshold in use.
        label: a short human-readable name.
        demo: True for the project's synthetic-data demo model (never for clinical use).
    """

    path: str
    git_blob_sha1: str
    sha256: str
    published_name: str | None
    percent_t: float
    label: str
    demo: bool = False


@dataclass(frozen=True)
class LoadedModel:
    """A ready model with its identity."""

    model: GMIC
    identity: ModelIdentity


_PUBLISHED_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^ds_net\.first_conv\.(.+)$", r"global_net.stem.\1"),
        (r"^ds_net\.layer_list\.(\d+)\.(\d+)\.downsample\.0\.(.+)$", r"global_net.stages.\1.\2.shortcut.\3"),
        (r"^ds_net\.layer_list\.(\d+)\.(\d+)\.((?:bn|conv)[12]\..+)$", r"global_net.stages.\1.\2.\3"),
        (r"^ds_net\.final_bn\.(.+)$", r"global_net.final_bn.\1"),
        (r"^left_postprocess_net\.gn_conv_last\.(.+)$", r"saliency_head.\1"),
        (r"^dn_resnet\.conv1\.(.+)$", r"local_net.stem_conv.\1"),
        (r"^dn_resnet\.bn1\.(.+)$", r"local_net.stem_bn.\1"),
        (r"^dn_resnet\.layer([1-4])\.(\d+)\.downsample\.([01])\.(.+)$", r"local_net.stages.<\1>.\2.shortcut.\3.\4"),
        (r"^dn_resnet\.layer([1-4])\.(\d+)\.((?:bn|conv)[12]\..+)$", r"local_net.stages.<\1>.\2.\3"),
        (r"^mil_attn_([UVw])\.(.+)$", r"attention.\1.\2"),
        (r"^classifier_linear\.(.+)$", r"local_classifier.\1"),
        (r"^fusion_dnn\.(.+)$", r"fusion.\1"),
    )
)


def remap_published_keys(state: MappingABC[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Translate a state dict in the published GMIC layout into this package's module tree (pure).

    Keys already in this package's layout pass through unchanged; ``shared_rep_filter.weight`` is dropped.
    Any other key that matches no rule is kept as it is, so that strict loading names it.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in UNUSED_PUBLISHED_KEYS:
            continue
        new_key = key
        for pattern, replacement in _PUBLISHED_RULES:
            if pattern.match(key):
                new_key = pattern.sub(replacement, key)
                # torchvision numbers ResNet layers from 1; this package's stages from 0
                new_key = re.sub(r"<(\d)>", lambda m: str(int(m.group(1)) - 1), new_key)
                break
        out[new_key] = value
    return out


def git_blob_sha1(path: Path) -> str:
    """``git hash-object`` of a file: sha1 of ``b"blob <size>\\0" + content``."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def identify(path: str | Path) -> PublishedCheckpoint | None:
    """The published checkpoint this file is, by content (not by name), or None."""
    return _BY_SHA1.get(git_blob_sha1(Path(path)))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file safely into a flat dict of tensors.

    Accepts a plain state dict or a dict holding one under ``state_dict``/``model`` (training checkpoints).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("the model file does not exist", path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            "the file contains Python objects other than tensors and was refused for safety "
            f"(only weight files are accepted): {str(error).splitlines()[0]}",
            path,
        ) from error
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, TypeError) as error:
        raise CheckpointError(f"the file is not a readable PyTorch checkpoint ({error})", path) from error
    if isinstance(loaded, MappingABC):
        for wrapper in ("state_dict", "model"):
            if wrapper in loaded and isinstance(loaded[wrapper], MappingABC):
                loaded = loaded[wrapper]
                break
    if not isinstance(loaded, MappingABC) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise CheckpointError("the file does not hold a state dict (a mapping of names to tensors)", path)
    return dict(loaded)


def _sidecar_config(path: Path) -> dict:
    """Optional metadata next to a project checkpoint (``<file>.json``): config fields, label, demo flag."""
    sidecar = path.with_name(path.name + ".json")
    if not sidecar.is_file():
        return {}
    try:
        return json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"the model's metadata file could not be read ({error})", sidecar) from error


def _check_state(model: GMIC, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing:
        raise CheckpointError(f"the checkpoint lacks the weight '{missing[0]}' ({len(missing)} missing)", path)
    if unexpected:
        raise CheckpointError(
            f"the checkpoint holds an unknown weight '{unexpected[0]}' ({len(unexpected)} unknown); "
            "it is not a GMIC checkpoint",
            path,
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"the weight '{key}' has shape {tuple(state[key].shape)}, expected {tuple(tensor.shape)}", path
            )


def load_gmic_checkpoint(
    path: str | Path,
    *,
    percent_t: float | None = None,
    device: str | torch.device | None = None,
) -> GMIC:
    """Load a GMIC checkpoint (published layout or this package's) into an eval-mode model.

    A published checkpoint gets its own pooling threshold; for another file ``percent_t`` is used, or the
    value in its ``<file>.json`` metadata, or 0.02 with a warning.
    """
    return load_model(path, percent_t=percent_t, device=device).model


def load_model(
    path: str | Path,
    *,
    percent_t: float | None = None,
    device: str | torch.device | None = None,
) -> LoadedModel:
    """Like :func:`load_gmic_checkpoint`, also returning the model's :class:`ModelIdentity`."""
    path = Path(path)
    state = remap_published_keys(read_state_dict(path))
    blob = git_blob_sha1(path)
    published = _BY_SHA1.get(blob)
    meta = _sidecar_config(path)
    config_fields = {k: v for k, v in meta.get("config", {}).items() if k in GMICConfig.__dataclass_fields__}
    for key in ("cam_size", "crop_shape"):
        if key in config_fields:
            config_fields[key] = tuple(config_fields[key])
    try:
        config = GMICConfig(**config_fields)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the model's metadata holds an invalid configuration ({error})", path) from error
    if published is not None:
        threshold = published.percent_t
    elif percent_t is not None:
        threshold = percent_t
    elif "percent_t" in config_fields:
        threshold = config.percent_t
    else:
        threshold = DEFAULT_PERCENT_T
        warnings.warn(
            f"{path.name}: unknown checkpoint and no pooling threshold given; using percent_t = 0.02",
            stacklevel=2,
        )
    try:
        config = replace(config, percent_t=threshold)
    except ValueError as error:
        raise CheckpointError(str(error), path) from error
    model = GMIC(config)
    _check_state(model, state, path)
    state = {key: value.to(torch.float32) if value.is_floating_point() else value for key, value in state.items()}
    model.load_state_dict(state, strict=True)
    model.eval()
    if device is not None:
        model.to(device)
    identity = ModelIdentity(
        path=str(path),
        git_blob_sha1=blob,
        sha256=sha256_of(path),
        published_name=published.name if published else None,
        percent_t=threshold,
        label=published.name if published else meta.get("label", path.name),
        demo=bool(meta.get("demo", False)),
    )
    logger.info("loaded model %s (percent_t=%s)", identity.label, threshold)
    return LoadedModel(model=model, identity=identity)


def find_checkpoints(folder: str | Path) -> list[Path]:
    """Checkpoint files in a folder, published ones first in their numbered order, then others by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError("the model folder does not exist", folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES)
    if not files:
        raise CheckpointError(
            "no model file found; put the published GMIC checkpoints (sample_model_1.p ... sample_model_5.p) "
            "or another GMIC checkpoint (.p, .pt, .pth) in this folder",
            folder,
        )
    return files


def split_model_sources(sources: str | Path | Sequence[str | Path]) -> list[Path]:
    """Model sources as a list: several may be given as a sequence or in one string separated by
    ``os.pathsep`` (how Preferences and the window keep them)."""
    if isinstance(sources, (str, Path)):
        return [Path(p) for p in str(sources).split(os.pathsep) if p.strip()]
    return [Path(p) for p in sources]


def load_model_sources(sources: str | Path | Sequence[str | Path], **options) -> list[LoadedModel]:
    """Every model of every source (see :func:`load_models`), in the order given."""
    return [model for source in split_model_sources(sources) for model in load_models(source, **options)]


def load_models(
    source: str | Path,
    *,
    percent_t: float | None = None,
    device: str | torch.device | None = None,
) -> list[LoadedModel]:
    """Load one checkpoint file, or every checkpoint in a folder (an ensemble; five published ones give the
    paper's ensemble, averaged by the pipeline)."""
    source = Path(source)
    paths = find_checkpoints(source) if source.is_dir() else [source]
    models = [load_model(p, percent_t=percent_t, device=device) for p in paths]
    order = {entry.name: i for i, entry in enumerate(PUBLISHED_CHECKPOINTS)}
    models.sort(key=lambda m: (order.get(m.identity.published_name or "", len(order)), m.identity.path))
    return models
