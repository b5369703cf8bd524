"""GLAM (Liu et al., MIDL 2021) as a model family: GMIC's preprocessing, two classes, a fused full-resolution
map per class, and the one high-resolution patch as a region.

Checkpoints: the published ``model_sep.ckpt`` and ``model_joint.ckpt`` (user-supplied: an NYU
non-commercial licence forbids redistributing them), recognised by content. Their flat layout has 352 keys
(``global_network.downsampling_branch.*``, ``global_network.postprocess_module.*``,
``detection_network.dn_resnet.*``, ``detection_network.gn_conv_last.weight``) plus exactly seven training
leftovers, which are ignored whatever their shape; any other missing, unknown or mis-shaped key is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from inference.families.registry import register
from inference.families.protocol import Commands, Prepared
from inference.results.types import HeatLayer, ModelIdentity, ModelViewOutput, ScoredRegion, map_box, scale_affine
from inference.families.common import (
    GMIC_WINDOW,
    FastMode,
    has_keys,
    layout_namer,
    load_strict,
    prepare_gmic_window,
    run_gmic_window,
)
from inference.families.nets.fold import fold_batchnorm
from inference.families.nets.precision import Float32, fast_global_network
from inference.families.glam.model import GLAM, GLAMConfig
from inference.intake.views import View

CLASSES = ("benign", "malignant")
HARNESS_KEYS = frozenset({
    "mil.mil_attn_V.weight", "mil.mil_attn_U.weight", "mil.mil_attn_w.weight", "mil.classifier_linear.weight",
    "fusion_dnn.weight", "fusion_dnn.bias", "shared_rep_filter.weight",
})

_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^global_network\.downsampling_branch\.first_conv\.(.+)$", r"global_net.stem.\1"),
        (r"^global_network\.downsampling_branch\.layer_list\.(\d+)\.(\d+)\.downsample\.0\.(.+)$",
         r"global_net.stages.\1.\2.shortcut.\3"),
        (r"^global_network\.downsampling_branch\.layer_list\.(\d+)\.(\d+)\.((?:bn|conv)[12]\..+)$",
         r"global_net.stages.\1.\2.\3"),
        (r"^global_network\.downsampling_branch\.final_bn\.(.+)$", r"global_net.final_bn.\1"),
        (r"^global_network\.postprocess_module\.gn_conv_1\.(.+)$", r"head_1.\1"),
        (r"^global_network\.postprocess_module\.gn_conv_2\.(.+)$", r"head_2.\1"),
        (r"^global_network\.postprocess_module\.gn_conv_last\.(.+)$", r"head_last.\1"),
        (r"^global_network\.postprocess_module\.combine\.(.+)$", r"combine.\1"),
        (r"^detection_network\.dn_resnet\.conv1\.(.+)$", r"local_net.stem_conv.\1"),
        (r"^detection_network\.dn_resnet\.bn1\.(.+)$", r"local_net.stem_bn.\1"),
        (r"^detection_network\.dn_resnet\.layer([1-4])\.(\d+)\.downsample\.([01])\.(.+)$",
         r"local_net.stages.<\1>.\2.shortcut.\3.\4"),
        (r"^detection_network\.dn_resnet\.layer([1-4])\.(\d+)\.((?:bn|conv)[12]\..+)$", r"local_net.stages.<\1>.\2.\3"),
        (r"^detection_network\.gn_conv_last\.(.+)$", r"local_head.\1"),
    )
)


def remap_glam_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Translate a state dict in the published GLAM layout into this package's module tree (pure).

    The seven harness keys of the published files are dropped; a key that matches no rule is kept as it is,
    so that strict loading names it.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in HARNESS_KEYS:
            continue
        new_key = key
        for pattern, replacement in _RULES:
            if pattern.match(key):
                new_key = re.sub(r"<(\d)>", lambda m: str(int(m.group(1)) - 1), pattern.sub(replacement, key))
                break
        out[new_key] = value
    return out


def fast_glam(model: torch.nn.Module) -> torch.nn.Module:
    """The fast mode's GLAM (CPU and CUDA): batch norms folded; under the fast mode's bf16 autocast the global
    network's stem and first stage, its three class-map heads and their combination, the local network's stem, first
    stage and head in float32, the global network's four other stages with bf16 convolutions over a float32 residual
    stream (``fast_global_network``), the local ResNet-34's other three stages (some 95 % of GLAM's time in exact
    mode) in bf16.

    Why (as for GMIC, ``fast_gmic``): the class maps are sigmoids of 1x1 heads on the global network's raw residual
    stream, which plain bf16 autocast rounds to 8 bits at every block. With every part in bf16 the global maps moved
    by up to 0.13 on the exam-0 views (0.22 on an H200 with random weights), the patch moved on two of the four
    views (fused map 0.50 off), and the local map moved by 0.12 even where the patch stayed: the rounding of the
    standardised patch and of the first stage's narrow features grows through the 16 blocks at stride 1. Now, on the
    four exam-0 views, y_global is within 3.3e-4 of exact, the global maps within 0.012, the patches where exact
    puts them, the local map within 0.08 and the fused map within 0.042 (2-core AMX CPU). The local network's first
    stage stays wholly float32: with bf16 convolutions over a float32 stream there, the local map moved by 0.15.
    """
    fast = fold_batchnorm(model)
    fast_global_network(fast.global_net)
    # the class-map heads, their combination and the local head in float32: in bf16 every map value and output
    # was one of bf16's 256 steps per octave, for no time saved
    for name in ("head_1", "head_2", "head_last", "combine", "local_head"):
        setattr(fast, name, Float32(getattr(fast, name)))
    local = fast.local_net
    local.stem_conv = Float32(local.stem_conv)
    local.stages[0] = Float32(local.stages[0])
    return fast


class GLAMFamily:
    name = "glam"
    preprocessing = GMIC_WINDOW  # GLAM's preprocessing is GMIC's: views are prepared once
    commands = Commands()  # published weights only: no training or evaluation command here
    fast = FastMode(fast_glam)

    def recognises(self, state: Mapping[str, torch.Tensor]) -> bool:
        return has_keys(state, ("global_network.downsampling_branch.", "detection_network.dn_resnet.")) or has_keys(
            state, ("global_net.stem.", "head_1.", "local_head."))

    def build(self, state: Mapping[str, torch.Tensor], meta: Mapping[str, Any], path: str,
              options: Mapping[str, Any]) -> tuple[torch.nn.Module, dict[str, Any]]:
        model = load_strict(GLAM(GLAMConfig()), remap_glam_keys(state), path, self.name,
                            layout_namer(_RULES, state))
        classes = tuple(meta.get("classes", CLASSES))
        return model, {"classes": classes, "malignancy": tuple(meta.get("malignancy", ("malignant",)) or ()),
                       "exclusive": False, "percent_t": None, "settings": {}}

    def prepare(self, model_image: np.ndarray, view: View, horizontal_flip: bool) -> Prepared:
        return prepare_gmic_window(model_image, view, horizontal_flip)

    def run(self, model: torch.nn.Module, batch: Sequence[Prepared], device: torch.device, mode: str,
            identity: ModelIdentity) -> list[ModelViewOutput]:
        module, out = run_gmic_window(model, batch, device, mode, self.fast)
        return [self._output(out, i, prepared, identity, module.config) for i, prepared in enumerate(batch)]

    @staticmethod
    def _output(out, i: int, prepared: Prepared, identity: ModelIdentity, config: GLAMConfig) -> ModelViewOutput:
        classes, frame = identity.classes, prepared.frame

        def named(values: torch.Tensor) -> dict[str, float]:
            return {name: float(v) for name, v in zip(classes, values.float().cpu().tolist(), strict=True)}

        fused = out.saliency_map[i].float().cpu().numpy()
        global_map = out.saliency_global[i].float().cpu().numpy()
        local = out.local_cam[i, 0].float().cpu().numpy()
        r, c = (int(v) for v in out.patch_locations[i, 0])
        ph, pw = config.crop_shape
        local_affine = frame.to_original @ np.array([[1.0, 0, r], [0, 1.0, c], [0, 0, 1]]) @ scale_affine(
            ph / local.shape[-2], pw / local.shape[-1])
        layers = []
        for index, name in enumerate(classes):
            # nearest upsampling everywhere in GLAM: the maps are blocks, drawn as blocks
            layers.append(HeatLayer("fused", name, fused[index], frame.layer_affine(fused.shape[1:]), True, False))
            layers.append(HeatLayer("global", name, global_map[index], frame.layer_affine(global_map.shape[1:]),
                                    False, False))
            layers.append(HeatLayer("local patch", name, local[index], local_affine, False, False))
        box = (float(r), float(c), float(r + ph), float(c + pw))
        local_scores = named(out.y_local_patch[i])
        region = ScoredRegion(rank=1, box_original=map_box(frame.to_original, box),
                              score=local_scores.get("malignant", max(local_scores.values())), kind="GLAM patch",
                              probabilities=local_scores, box_input=box, size=(ph, pw),
                              pixels=out.crop[i, 0].float().cpu().numpy())
        extras = {f"y_{name}": named(out.y_per_scale[s, i]) for s, name in enumerate(("cam_1", "cam_2", "cam_3"))}
        extras["y_local_patch"] = local_scores
        return ModelViewOutput(probabilities=named(out.y_global[i]), layers=tuple(layers), regions=(region,),
                               extras=extras, frame=frame)


register(GLAMFamily())
