"""Mask R-CNN as a model family: torchvision checkpoints in, detections with instance masks out.

Each view is read as stored (no crop, no flip): the model image divided by the declared maximum (``input.max_value``,
default 4095 for 12-bit mammograms), grey replicated to three channels; the network resizes and normalises
itself (``transform`` in the metadata; default min 1024 / max 2048 for tall mammograms). A view whose pixel values
exceed the declared maximum, or fill a sixteenth of it or less (an 8-bit image under a 12-bit model, a 12-bit one
under a 16-bit model), is refused (no result, with the reason): the network reads [0, 1], at the scale it learnt.

Answer per view:
* regions: one per detection, best score first, ``kind`` "<class> detection", its box in stored pixels, its
  class probability as the score, and its instance mask (the 28 x 28 mask pasted onto the box, with the
  affine of the crop it covers);
* probabilities: per class, the **highest score of a detection lying mostly over the breast** (0 when none),
  declared in the frame's record (``probability_rule``) and the identity's settings; not exclusive, they need not
  add up to 1. A detection on the detector's letters or markers (outside ``breast_mask``) stays among the
  regions (structured data) but never makes the view's probability: the screen does not draw it either.

Both modes run in float32 (see ``MaskRCNNFamily.fast``), unless the metadata declares ``fast_autocast: true``
(the fast mode then autocasts to bf16 where the device has it); the frame's record says which (``numerics``).

Metadata sidecar (``<file>.json``): ``family: "maskrcnn"``, ``classes`` (every output, the background first;
default background, benign mass, malignant mass), ``malignancy`` (default the classes whose name says malignant), ``transform``
(``min_size``, ``max_size``, ``image_mean``, ``image_std``), ``thresholds`` (``box_score_threshold``, ``box_nms``,
``detections_per_image``, ``display_threshold``), ``input`` (``max_value``), ``fast_autocast`` (default false).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from inference.families.protocol import Commands, Prepared
from inference.results.types import (InputFrame, InstanceMask, ModelIdentity, ModelViewOutput, ScoredRegion,
                                     scale_affine)
from inference.families.common import (
    FastMode,
    load_strict,
    mode_numerics,
    model_fast_mode,
    numerics,
    runnable,
)
from inference.errors import CheckpointError
from inference.families.maskrcnn import checkpoint, ops
from inference.families.maskrcnn.model import MaskRCNN, fold_frozen_batchnorm
from inference.families.registry import register
from inference.finite_guard import not_finite_output
from inference.intake.image import MIN_TISSUE_FRACTION, breast_mask, tissue_fraction
from inference.intake.views import View

DEFAULT_CLASSES = ("background", "benign mass", "malignant mass")
PROBABILITY_RULE = "highest score per class of a detection lying mostly over the breast"


class MaskRCNNFamily:
    name = "maskrcnn"
    preprocessing = "stored-image"
    commands = Commands(train_config="inference.families.maskrcnn.training:MaskRCNNTrainConfig",
                        train="inference.families.maskrcnn.training:train_maskrcnn",
                        train_options={"encoder_weights": "weights"}, evaluation="detections")
    # The fast mode folds the frozen batch norms and stays in float32. bf16 (what other families use where the
    # hardware has it) was measured on exam 0 with the reference weights, detections paired by class and IoU:
    # whole network, ResNet body only, one ResNet stage or the FPN alone, or only the backbone's weights rounded
    # to bf16, it moved paired scores by 0.14-0.25 and lost detections scored up to 0.75 (docs/speed.md), so this
    # family autocasts only a model whose metadata declares ``fast_autocast`` (``model_fast_mode``): its owner
    # checked it (a trained ResNet-50-FPN runs 3x faster in bf16 on an AMX CPU).
    # Nothing is compiled: the RPN and the heads are data-dependent.
    fast = FastMode(fold_frozen_batchnorm, autocast=False)

    def recognises(self, state: Mapping[str, torch.Tensor]) -> bool:
        return checkpoint.recognises(state)

    def build(self, state: Mapping[str, torch.Tensor], meta: Mapping[str, Any], path: str,
              options: Mapping[str, Any]) -> tuple[torch.nn.Module, dict[str, Any]]:
        state = checkpoint.remap(state, path)
        config = checkpoint.config_from(state, meta, path)
        model = load_strict(MaskRCNN(config), state, path, self.name)
        classes = tuple(meta.get("classes", DEFAULT_CLASSES if config.num_classes == 3 else
                                 ["background"] + [f"class {i}" for i in range(1, config.num_classes)]))
        if len(classes) != config.num_classes:
            raise CheckpointError(f"the metadata names {len(classes)} classes (background first), the model has "
                                  f"{config.num_classes}", path)
        findings = classes[1:]
        malignancy = tuple(meta.get("malignancy", [findings[-1]] if "malignant" in findings[-1] else []))
        max_value = (meta.get("input") or {}).get("max_value", 4095)
        if isinstance(max_value, bool) or not isinstance(max_value, (int, float)) or not 0 < max_value < math.inf:
            raise CheckpointError(f"the metadata's input maximum must be a positive number, not {max_value!r}", path)
        max_value = float(max_value)
        declared = (meta.get("thresholds") or {}).get("display_threshold")
        if declared is not None and (isinstance(declared, bool) or not isinstance(declared, (int, float))
                                     or not 0 <= declared <= 1):
            raise CheckpointError(f"the metadata's thresholds.display_threshold must be a score from 0 to 1, not "
                                  f"{declared!r}", path)
        display = float(declared if declared is not None else config.box_score_threshold)
        settings = {"min_size": config.min_size, "max_size": config.max_size, "max_value": max_value,
                    "box_score_threshold": config.box_score_threshold, "box_nms": config.box_nms,
                    "display_threshold": display, "probability_rule": PROBABILITY_RULE}
        autocast = meta.get("fast_autocast", False)
        if not isinstance(autocast, bool):
            raise CheckpointError(f"the metadata's fast_autocast must be true or false, not {autocast!r}", path)
        if autocast:  # only when declared, so that the identities (and stored results) of the others stay as they were
            settings["fast_autocast"] = True
        fields = {"classes": findings, "malignancy": malignancy, "exclusive": False, "percent_t": None,
                  "settings": settings}
        shown = dict(meta.get("display") or {})
        if declared is not None and "region_operating_point" not in shown:
            # a declared display threshold is where the screen draws detections from (the regions' operating
            # point); without one, the screen's rule: the top three and the best of each class
            fields["display"] = {**shown, "region_operating_point": display}
        return model, fields

    def prepare(self, model_image: np.ndarray, view: View, horizontal_flip: bool) -> Prepared:
        # detections are read where they lie: no flip, no crop; the input frame is the stored image
        image = np.asarray(model_image, np.float32)
        if image.ndim != 2:
            raise ValueError(f"{view.value}: expected a 2-D image, got shape {image.shape}")
        shape = tuple(int(s) for s in image.shape)
        return Prepared(view, image, InputFrame(shape, np.eye(3), shape, {}))

    def run(self, model: torch.nn.Module, batch: Sequence[Prepared], device: torch.device, mode: str,
            identity: ModelIdentity) -> list[ModelViewOutput]:
        module = runnable(model, device, mode, self.fast)
        fast = model_fast_mode(self, identity.settings)  # float32 unless the metadata declares fast_autocast
        numbers = mode_numerics(device, mode, fast)
        max_value = float(identity.settings.get("max_value", 4095))
        outputs = []
        for prepared in batch:
            high = float(prepared.input.max()) if prepared.input.size else 0.0
            # the network reads [0, 1]: beyond it its scores mean nothing (a 16-bit scan), and an image that fills
            # a sixteenth of it or less (an 8-bit one under a 12-bit model) is read as a far darker breast than any
            # it learnt from
            if high > max_value or 0 < high <= max_value / 16:
                outputs.append(_refused(prepared, identity, high, max_value))
                continue
            x = torch.from_numpy(prepared.input / np.float32(max_value))[None].expand(3, -1, -1).to(device)
            with numerics(device, mode, fast):
                detections = module.detect([x])[0]
            if detections.non_finite:  # no result, never "nothing found" (a NaN score passes no threshold)
                outputs.append(not_finite_output(prepared.frame, identity.classes, detections.non_finite))
                continue
            outputs.append(view_output(detections.boxes.float().cpu(), detections.labels.cpu(),
                                       detections.scores.float().cpu(), detections.mask_probs.float().cpu(),
                                       prepared, identity, module.config.box_score_threshold, numbers))
        return outputs


def _refused(prepared: Prepared, identity: ModelIdentity, high: float, max_value: float) -> ModelViewOutput:
    """No result on a view whose pixel values exceed the input maximum the model declares, or fill a sixteenth
    of it or less (an 8-bit image under a model of 12-bit input)."""
    bits = max(int(high).bit_length(), 1)  # said as a range, the same for the views of one exam (said once)
    if high > max_value:
        why = (f"its pixel values use {bits} bits, above the input maximum the model declares ({max_value:g}, "
               "input.max_value in its metadata), so its detections would mean nothing")
    else:
        why = (f"its pixel values use {bits} bits, a sixteenth or less of the input maximum the model declares "
               f"({max_value:g}, input.max_value in its metadata): read so, the breast is far darker than any the "
               "model learnt from and its detections would mean nothing (a model for such images declares "
               f"{2 ** bits - 1})")
    return ModelViewOutput(probabilities=dict.fromkeys(identity.classes, float("nan")), layers=(), regions=(),
                           extras={}, frame=prepared.frame, refused=why)


def metadata(classes: Sequence[str] = DEFAULT_CLASSES, malignancy: Sequence[str] | None = None, *,
             min_size: int = 1024, max_size: int = 2048, score_threshold: float = 0.05,
             display_threshold: float | None = None, max_value: float = 4095, **fields_: Any) -> dict[str, Any]:
    """A ``model.pt.json`` for a Mask R-CNN checkpoint: classes (background first), the malignancy rule, the
    transform's sizes, the thresholds (a display threshold only when given: the screen draws from it) and the
    input's maximum."""
    if malignancy is None:
        malignancy = [c for c in classes[1:] if "malignant" in c]
    thresholds: dict[str, float] = {"box_score_threshold": score_threshold}
    if display_threshold is not None:
        thresholds["display_threshold"] = display_threshold
    return {"family": "maskrcnn", "classes": list(classes), "malignancy": list(malignancy),
            "transform": {"min_size": min_size, "max_size": max_size}, "thresholds": thresholds,
            "input": {"max_value": max_value}, **fields_}


def view_output(boxes: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, masks: torch.Tensor,
                prepared: Prepared, identity: ModelIdentity, threshold: float,
                numbers: str = "fp32") -> ModelViewOutput:
    """Detections (boxes x1, y1, x2, y2 in stored pixels) as scored regions with instance masks; ``numbers``:
    the arithmetic they were computed with, for the frame's record."""
    shape = prepared.frame.original_shape
    crops = ops.paste_crops(masks, boxes, shape)
    breast = breast_mask(prepared.input) if prepared.input.shape == tuple(shape) else None
    best = dict.fromkeys(identity.classes, 0.0)
    regions = []
    for rank, (box, label, score, (values, top, left)) in enumerate(
            zip(boxes.tolist(), labels.tolist(), scores.tolist(), crops, strict=True), start=1):
        name = identity.classes[int(label) - 1]
        x1, y1, x2, y2 = box
        if breast is None or tissue_fraction((y1, x1, y2, x2), breast) >= MIN_TISSUE_FRACTION:
            best[name] = max(best[name], float(score))
        mask = InstanceMask(values, np.array([[1.0, 0.0, top], [0.0, 1.0, left], [0.0, 0.0, 1.0]]))
        regions.append(ScoredRegion(rank=rank, box_original=(y1, x1, y2, x2), score=float(score),
                                    kind=f"{name} detection", probabilities={name: float(score)},
                                    box_input=(y1, x1, y2, x2), mask=mask))
    frame = InputFrame(prepared.frame.input_shape, scale_affine(1.0, 1.0), shape,
                       {"detections": len(regions), "score_threshold": threshold,
                        "probability_rule": PROBABILITY_RULE, "numerics": numbers})
    return ModelViewOutput(probabilities=best, layers=(), regions=tuple(regions), extras={}, frame=frame)


register(MaskRCNNFamily())
