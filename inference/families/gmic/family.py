"""GMIC (Shen et al., Medical Image Analysis 2021) as a model family.

Checkpoints: the five published ones (flat keys ``ds_net.*``, ``dn_resnet.*``, ``mil_attn_U.*`` … plus an
unused ``shared_rep_filter.weight``), recognised by content with their pooling thresholds
(``published.json``), and the project's own (``model.pt`` with ``model.pt.json``). Output: y_fusion as the
class probabilities, one saliency layer per class (46 x 30 over the 2944 x 1920 window), the K patches as
regions scored by their attention weight, and y_global / y_local as extras.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from typing import Any

import numpy as np
import torch

from inference.families.registry import register
from inference.families.protocol import Commands, Prepared
from inference.results.types import ModelIdentity, ModelViewOutput, HeatLayer, ScoredRegion, map_box
from inference.families.common import (
    GMIC_WINDOW,
    FastMode,
    has_keys,
    layout_namer,
    load_strict,
    prepare_gmic_window,
    run_gmic_window,
)
from inference.errors import CheckpointError
from inference.families.nets.fold import fold_batchnorm
from inference.families.nets.precision import Float32, fast_global_network
from inference.families.gmic.model import GMIC, GMICConfig
from inference.intake.views import View

DEFAULT_PERCENT_T = 0.02
UNUSED_PUBLISHED_KEYS = frozenset({"shared_rep_filter.weight"})
CLASSES = ("benign", "malignant")

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


def remap_published_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
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


def _config(meta: Mapping[str, Any], path: str) -> GMICConfig:
    known = {f.name for f in fields(GMICConfig)}
    values = {k: v for k, v in (meta.get("config") or {}).items() if k in known}
    try:
        for key in ("cam_size", "crop_shape"):
            if key in values:
                values[key] = tuple(values[key])
        return GMICConfig(**values)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the model's metadata holds an invalid configuration ({error})", path) from error


def fast_gmic(model: torch.nn.Module) -> torch.nn.Module:
    """The fast mode's GMIC (CPU and CUDA): batch norms folded; under the fast mode's bf16 autocast, the global
    network's stem and first stage (16 channels), the saliency head and the small heads (attention, classifiers) in
    float32, its four other stages with bf16 convolutions over a float32 residual stream, the local network in bf16.

    Why: y_fusion reads the spatial max of the global feature map h_g. With the whole global network under autocast,
    its pre-activation residual stream was rounded to 8 bits at every block: y_fusion moved by up to 0.012 on the
    exam-0 oracle inputs (over the 0.01 bound of every fast path) and retrieved patches moved on every view. With
    the stream in float32 (``fast_global_network``), on the seven oracle inputs y_fusion stays within 3.9e-3 and the
    saliency map within 0.017; the retrieved patches are exact's on six, in another order on two of them (R-MLO,
    whose greedy steps win by 3e-4 in the reference, and the enlarged L-MLO), and on L-CC the last patch, which wins
    by 1.5e-4 there, moves. The 16-channel stem and stage gain nothing in bf16 on an AMX CPU and cost fidelity
    (y_fusion 0.011 with the stem in bf16). One view's forward on a 2-core AMX CPU (docs/speed.md): 0.127 s, 0.173 s
    with the whole global network in float32, exact 0.220 s.
    """
    fast = fold_batchnorm(model)
    fast_global_network(fast.global_net)
    fast.saliency_head = Float32(fast.saliency_head)
    # the small heads that give the probabilities: in bf16 every output was one of bf16's 256 steps per octave
    # (0.006103515625; a benign 0.9996 written as exactly 1.0), for no time saved
    for name in ("attention", "local_classifier", "fusion"):
        setattr(fast, name, Float32(getattr(fast, name)))
    return fast


class GMICFamily:
    name = "gmic"
    preprocessing = GMIC_WINDOW  # Stage-1 crop, optimal centre, the 2944 x 1920 window, standardisation
    commands = Commands(train_config="inference.families.gmic.training:TrainConfig",
                        train="inference.families.gmic.training:train")
    fast = FastMode(fast_gmic)

    def recognises(self, state: Mapping[str, torch.Tensor]) -> bool:
        return has_keys(state, ("ds_net.", "dn_resnet.", "mil_attn_")) or has_keys(
            state, ("global_net.stem.", "local_net.", "attention.", "fusion."))

    def build(self, state: Mapping[str, torch.Tensor], meta: Mapping[str, Any], path: str,
              options: Mapping[str, Any]) -> tuple[torch.nn.Module, dict[str, Any]]:
        config = _config(meta, path)
        published = options.get("published")
        if published is not None:
            threshold = float(published["settings"]["percent_t"])
        elif options.get("percent_t") is not None:
            threshold = float(options["percent_t"])
        elif "percent_t" in meta.get("config", {}):
            threshold = config.percent_t
        else:
            threshold = DEFAULT_PERCENT_T
            warnings.warn(f"{path}: unknown GMIC checkpoint and no pooling threshold given; using percent_t = 0.02",
                          stacklevel=3)
        try:
            config = replace(config, percent_t=threshold)
        except ValueError as error:
            raise CheckpointError(str(error), path) from error
        model = load_strict(GMIC(config), remap_published_keys(state), path, self.name,
                            layout_namer(_PUBLISHED_RULES, state))
        classes = tuple(meta.get("classes", CLASSES))
        if len(classes) != config.num_classes:
            raise CheckpointError(f"the metadata names {len(classes)} classes, the model has {config.num_classes}", path)
        return model, {"classes": classes, "malignancy": tuple(meta.get("malignancy", ("malignant",)) or ()),
                       "exclusive": False, "percent_t": threshold, "settings": {"percent_t": threshold}}

    def prepare(self, model_image: np.ndarray, view: View, horizontal_flip: bool) -> Prepared:
        return prepare_gmic_window(model_image, view, horizontal_flip)

    def run(self, model: torch.nn.Module, batch: Sequence[Prepared], device: torch.device, mode: str,
            identity: ModelIdentity) -> list[ModelViewOutput]:
        module, out = run_gmic_window(model, batch, device, mode, self.fast)
        return [self._output(out, i, prepared, identity) for i, prepared in enumerate(batch)]

    @staticmethod
    def _output(out, i: int, prepared: Prepared, identity: ModelIdentity) -> ModelViewOutput:
        classes = identity.classes
        frame = prepared.frame

        def named(values: torch.Tensor) -> dict[str, float]:
            return {name: float(v) for name, v in zip(classes, values[i].float().cpu().tolist(), strict=True)}

        saliency = out.saliency_map[i].float().cpu().numpy()
        affine = frame.layer_affine(saliency.shape[1:])
        layers = tuple(HeatLayer("saliency", name, saliency[c], affine) for c, name in enumerate(classes))
        crop_h, crop_w = out.patches.shape[-2:]
        regions = []
        for k in range(out.patch_locations.shape[1]):
            r, c = (int(v) for v in out.patch_locations[i, k])
            box = (float(r), float(c), float(r + crop_h), float(c + crop_w))
            regions.append(ScoredRegion(
                rank=k + 1, box_original=map_box(frame.to_original, box), score=float(out.patch_attention[i, k]),
                kind="attention", box_input=box, size=(int(crop_h), int(crop_w)),
                pixels=out.patches[i, k].float().cpu().numpy()))
        return ModelViewOutput(
            probabilities=named(out.y_fusion), layers=layers, regions=tuple(regions),
            extras={"y_global": named(out.y_global), "y_local": named(out.y_local)}, frame=frame)


register(GMICFamily())
