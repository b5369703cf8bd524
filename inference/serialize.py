"""ExamResult as plain JSON-ready data (documented, versioned schema; see README "Result JSON")."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from inference.pipeline import CLASS_NAMES, ExamResult, ModelViewResult, ViewResult

SCHEMA_VERSION = "1.0"


def _probabilities(values: np.ndarray) -> dict[str, float]:
    return {name: float(v) for name, v in zip(CLASS_NAMES, values, strict=True)}


def _model_view(result: ModelViewResult) -> dict[str, Any]:
    return {
        "model": result.model.label,
        "y_fusion": _probabilities(result.y_fusion),
        "y_global": _probabilities(result.y_global),
        "y_local": _probabilities(result.y_local),
        "saliency_input_frame": {name: result.saliency[i].round(6).tolist() for i, name in enumerate(CLASS_NAMES)},
        "patches": [
            {
                "rank": p.rank,
                "attention": p.attention,
                "box_input": list(p.box_input),
                "box_original": [round(v, 3) for v in p.box_original],
            }
            for p in result.patches
        ],
    }


def _view(result: ViewResult) -> dict[str, Any]:
    m = result.mapping
    return {
        "probabilities": _probabilities(result.probabilities),
        "y_global": _probabilities(result.y_global),
        "y_local": _probabilities(result.y_local),
        "ensemble_spread": _probabilities(result.spread),
        "mapping": {
            "original_shape": list(m.original_shape),
            "crop_origin": list(m.crop_origin),
            "crop_shape": list(m.crop_shape),
            "flipped": m.flipped,
            "window_origin": list(m.window_origin),
            "input_shape": list(m.input_shape),
            "input_to_original_affine": m.input_to_original_affine().tolist(),
        },
        "models": [_model_view(r) for r in result.per_model],
        "warnings": list(result.warnings),
    }


def exam_result_to_dict(result: ExamResult) -> dict[str, Any]:
    """Everything in ``result`` except patch pixels, as JSON-ready data."""
    provenance = result.provenance
    return {
        "schema": "mammo-reader/exam-result",
        "schema_version": SCHEMA_VERSION,
        "classes": list(CLASS_NAMES),
        "exam": _probabilities(result.probabilities),
        "breasts": {
            side.value: {"probabilities": _probabilities(b.probabilities), "views": [v.value for v in b.views]}
            for side, b in result.breasts.items()
        },
        "views": {view.value: _view(r) for view, r in result.views.items()},
        "provenance": {
            "models": [dataclasses.asdict(m) for m in provenance.models],
            "device": provenance.device,
            "mode": provenance.mode.value,
            "torch_version": provenance.torch_version,
            "threads": provenance.threads,
            "python": provenance.python,
            "notices": list(provenance.notices),
        },
    }


def exam_result_from_dict(data: dict[str, Any]) -> ExamResult:
    """Rebuild an ExamResult from :func:`exam_result_to_dict` output (patch pixels are not stored: empty)."""
    from inference.pipeline import BreastResult, ModelViewResult, Mode, Patch, Provenance  # noqa: PLC0415
    from inference.preprocess import Mapping  # noqa: PLC0415
    from inference.views import Laterality, View  # noqa: PLC0415
    from inference.weights import ModelIdentity  # noqa: PLC0415

    if data.get("schema") != "mammo-reader/exam-result":
        raise ValueError("not a Mammo Reader exam result")

    def probs(d: dict[str, float]) -> np.ndarray:
        return np.array([d[name] for name in CLASS_NAMES], dtype=np.float32)

    identities = tuple(ModelIdentity(**m) for m in data["provenance"]["models"])
    by_label = {m.label: m for m in identities}
    views = {}
    for name, v in data["views"].items():
        m = v["mapping"]
        mapping = Mapping(
            original_shape=tuple(m["original_shape"]), crop_origin=tuple(m["crop_origin"]),
            crop_shape=tuple(m["crop_shape"]), flipped=bool(m["flipped"]), window_origin=tuple(m["window_origin"]),
            input_shape=tuple(m["input_shape"]),
        )
        per_model = []
        for mv in v["models"]:
            saliency = np.stack([np.asarray(mv["saliency_input_frame"][c], np.float32) for c in CLASS_NAMES])
            patches = tuple(
                Patch(rank=p["rank"], box_input=tuple(p["box_input"]), box_original=tuple(p["box_original"]),
                      attention=p["attention"], pixels=np.zeros((0, 0), np.float32))
                for p in mv["patches"]
            )
            per_model.append(ModelViewResult(
                model=by_label.get(mv["model"], identities[0]), y_fusion=probs(mv["y_fusion"]),
                y_global=probs(mv["y_global"]), y_local=probs(mv["y_local"]), saliency=saliency, patches=patches))
        views[View(name)] = ViewResult(
            view=View(name), probabilities=probs(v["probabilities"]), y_global=probs(v["y_global"]),
            y_local=probs(v["y_local"]), spread=probs(v["ensemble_spread"]),
            saliency=np.mean([pm.saliency for pm in per_model], axis=0), mapping=mapping,
            per_model=tuple(per_model), warnings=tuple(v["warnings"]),
        )
    breasts = {
        Laterality(side): BreastResult(Laterality(side), probs(b["probabilities"]), tuple(View(x) for x in b["views"]))
        for side, b in data["breasts"].items()
    }
    p = data["provenance"]
    provenance = Provenance(models=identities, device=p["device"], mode=Mode(p["mode"]), torch_version=p["torch_version"],
                            threads=p["threads"], python=p["python"], notices=tuple(p["notices"]))
    return ExamResult(views=views, breasts=breasts, probabilities=probs(data["exam"]), provenance=provenance)
