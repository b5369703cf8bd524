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
