"""ExamResult as JSON plus binary maps (schema ``mammo-reader/exam-result`` 2.1; docs/result-schema.md).

The JSON holds every number but the maps; each heat layer, and each region's instance mask (2.1: detectors),
names an array in a sibling ``.npz`` file (``maps_file``), so that a full-resolution map is a few compressed
megabytes instead of hundreds of megabytes of JSON lists. Schema 2.0 (no instance masks: regions read back
without one) and 1.0 (GMIC only, saliency as lists) are still read.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inference.results.types import (HeatLayer, InputFrame, InstanceMask, ModelIdentity, ModelViewOutput,
                                     ScoredRegion)
from inference.files import atomic_path
from inference.results.exam_result import (
    BreastResult,
    BreastScores,
    EntryViewResult,
    ExamDecision,
    ExamResult,
    Mode,
    ModelEntry,
    Provenance,
    ViewResult,
)
from inference.intake.views import Laterality, View

SCHEMA = "mammo-reader/exam-result"
SCHEMA_VERSION = "2.1"


def _region(region: ScoredRegion, key: str, maps: dict[str, np.ndarray]) -> dict[str, Any]:
    """A region as JSON; its instance mask (when it has one) goes to ``maps`` under ``key``."""
    mask = None
    if region.mask is not None:
        values = np.asarray(region.mask.values, dtype=np.float32)
        # a one-model entry's member holds the entry's own masks: stored once, both naming its key
        key = next((k for k, stored in maps.items() if stored is values), key)
        maps[key] = values
        mask = {"map": key, "shape": list(maps[key].shape), "threshold": float(region.mask.threshold),
                "to_original": np.asarray(region.mask.to_original, dtype=np.float64).tolist()}
    return {
        "rank": region.rank,
        "box_original": [round(v, 3) for v in region.box_original],
        "score": region.score,
        "kind": region.kind,
        "probabilities": dict(region.probabilities) if region.probabilities is not None else None,
        "box_input": list(region.box_input) if region.box_input is not None else None,
        "size": list(region.size) if region.size is not None else None,
        "source": region.source,
        "mask": mask,
    }


def _layer(layer: HeatLayer, key: str, maps: dict[str, np.ndarray]) -> dict[str, Any]:
    maps[key] = np.asarray(layer.values, dtype=np.float32)
    return {"name": layer.name, "class": layer.class_name, "primary": layer.primary, "smooth": layer.smooth,
            "colormap": layer.colormap, "shape": list(layer.values.shape),
            "to_original": np.asarray(layer.to_original).tolist(), "map": key}


def _frame(frame: InputFrame) -> dict[str, Any]:
    return {"input_shape": list(frame.input_shape), "to_original": np.asarray(frame.to_original).tolist(),
            "original_shape": list(frame.original_shape), "record": dict(frame.record)}


def _identity(identity: ModelIdentity) -> dict[str, Any]:
    data = dataclasses.asdict(identity)
    data["classes"], data["malignancy"] = list(identity.classes), list(identity.malignancy)
    data["settings"] = dict(identity.settings)
    return data


def result_to_data(result: ExamResult) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(JSON-ready dict, maps): every number of ``result`` except region pixels; maps keyed as the JSON names
    them."""
    maps: dict[str, np.ndarray] = {}
    views = {}
    for view, view_result in result.views.items():
        entries = {}
        for entry_id, r in view_result.entries.items():
            prefix = f"{view.value}/{entry_id}"
            entries[entry_id] = {
                "probabilities": dict(r.probabilities),
                "spread": dict(r.spread),
                "extras": {name: dict(values) for name, values in r.extras.items()},
                "regions": [_region(region, f"{prefix}/mask/{i}", maps) for i, region in enumerate(r.regions)],
                "regions_from": r.regions_from,
                "layers": [_layer(layer, f"{prefix}/{i}", maps) for i, layer in enumerate(r.layers)],
                "frame": _frame(r.frame),
                "members": [{"probabilities": dict(m.probabilities),
                             "extras": {name: dict(values) for name, values in m.extras.items()},
                             "regions": [_region(region, f"{prefix}/member/{k}/mask/{i}", maps)
                                         for i, region in enumerate(m.regions)]}
                            for k, m in enumerate(r.members)],
            }
        views[view.value] = {"original_shape": list(view_result.original_shape), "warnings": list(view_result.warnings),
                             "counted": view_result.counted, "uncounted_reason": view_result.uncounted_reason,
                             "models": entries, "no_result": dict(view_result.no_result),
                             "source": {"file": view_result.source_file,
                                        "sop_instance_uid": view_result.sop_instance_uid}}
    provenance = result.provenance
    data = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "models": [{"id": e.id, "family": e.family, "classes": list(e.classes), "label": e.label,
                    "malignancy": list(e.malignancy), "exclusive": e.exclusive,
                    "members": [_identity(m) for m in e.members]} for e in result.entries],
        "views": views,
        "breasts": {side.value: {"views": [v.value for v in b.views],
                                 "models": {i: {"probabilities": dict(s.probabilities), "malignant": s.malignant,
                                                "views_used": [v.projection.value for v in s.views]}
                                            for i, s in b.entries.items()}}
                    for side, b in result.breasts.items()},
        "exam": {"models": {i: {"malignant": d.malignant, "breast": d.breast.value if d.breast else None,
                                "probabilities": dict(d.probabilities)} for i, d in result.exam.items()}},
        "provenance": {
            "models": [_identity(m) for m in provenance.models],
            "device": provenance.device,
            "mode": provenance.mode.value,
            "numerics": provenance.numerics,
            "torch_version": provenance.torch_version,
            "threads": provenance.threads,
            "python": provenance.python,
            "notices": list(provenance.notices),
        },
    }
    refuse_non_finite(data)
    for key, values in maps.items():
        if not np.isfinite(values).all():
            raise ValueError(f"map {key} holds a value that is not a finite number; refusing to write it")
    return data, maps


def refuse_non_finite(data: Any, where: str = "result") -> None:
    """Raise ValueError naming the place of any NaN or infinity in JSON-ready ``data``: the analysis turns a
    non-finite output into "no result", so one here is a bug, and it must not reach a file as a number."""
    if isinstance(data, float) and not np.isfinite(data):
        raise ValueError(f"{where} is {data}, not a finite number; refusing to write it")
    if isinstance(data, Mapping):
        for key, value in data.items():
            refuse_non_finite(value, f"{where}/{key}")
    elif isinstance(data, (list, tuple)):
        for index, value in enumerate(data):
            refuse_non_finite(value, f"{where}/{index}")


def _identity_from(data: Mapping[str, Any]) -> ModelIdentity:
    known = {f.name for f in dataclasses.fields(ModelIdentity)}
    values = {k: v for k, v in data.items() if k in known}
    for key in ("classes", "malignancy"):
        if key in values:
            values[key] = tuple(values[key])
    return ModelIdentity(**values)


def _region_from(d: Mapping[str, Any], maps: Mapping[str, np.ndarray]) -> ScoredRegion:
    """A region; its instance mask from ``maps`` where the file has one (2.1), else None (2.0)."""
    mask = None
    if d.get("mask"):
        m = d["mask"]
        if m["map"] not in maps:
            raise ValueError(f"the maps file holds no instance mask {m['map']}")
        mask = InstanceMask(np.asarray(maps[m["map"]], dtype=np.float32),
                            np.asarray(m["to_original"], dtype=np.float64), float(m.get("threshold", 0.5)))
    return ScoredRegion(
        rank=int(d["rank"]), box_original=tuple(d["box_original"]), score=float(d["score"]), kind=d["kind"],
        probabilities=d.get("probabilities"), box_input=tuple(d["box_input"]) if d.get("box_input") else None,
        size=tuple(d["size"]) if d.get("size") else None, source=d.get("source", ""), mask=mask)


def _frame_from(d: Mapping[str, Any]) -> InputFrame:
    return InputFrame(tuple(d["input_shape"]), np.asarray(d["to_original"], dtype=np.float64),
                      tuple(d["original_shape"]), dict(d.get("record", {})))


def result_from_data(data: Mapping[str, Any], maps: Mapping[str, np.ndarray]) -> ExamResult:
    """Rebuild an ExamResult from :func:`result_to_data` output (region pixels are not stored: None)."""
    if data.get("schema") != SCHEMA:
        raise ValueError("not a Mammo Reader exam result")
    if str(data.get("schema_version", "")).startswith("1."):
        return _from_version_1(data)
    entries = tuple(ModelEntry(m["id"], m["label"], m["family"], tuple(m["classes"]), tuple(m["malignancy"]),
                               bool(m["exclusive"]), tuple(_identity_from(i) for i in m["members"]))
                    for m in data["models"])
    views = {}
    for name, v in data["views"].items():
        results = {}
        for entry_id, r in v["models"].items():
            frame = _frame_from(r["frame"])
            layers = tuple(HeatLayer(layer["name"], layer["class"], np.asarray(maps[layer["map"]], dtype=np.float32),
                                     np.asarray(layer["to_original"], dtype=np.float64), bool(layer["primary"]),
                                     bool(layer["smooth"]), str(layer.get("colormap", "")))
                           for layer in r["layers"])
            members = tuple(ModelViewOutput(m["probabilities"], (), tuple(_region_from(x, maps) for x in m["regions"]),
                                            m["extras"], frame) for m in r["members"])
            results[entry_id] = EntryViewResult(r["probabilities"], r["spread"], layers,
                                                tuple(_region_from(x, maps) for x in r["regions"]), r["extras"], members,
                                                r.get("regions_from", ""), frame)
        views[View(name)] = ViewResult(View(name), tuple(v["original_shape"]), results, tuple(v["warnings"]),
                                       bool(v.get("counted", True)), v.get("uncounted_reason", ""),
                                       dict(v.get("no_result", {})), str(v.get("source", {}).get("file", "")),
                                       str(v.get("source", {}).get("sop_instance_uid", "")))
    breasts = {Laterality(side): BreastResult(Laterality(side), tuple(View(x) for x in b["views"]),
                                              {i: BreastScores(s["probabilities"], s["malignant"],
                                                               _views_used(side, s.get("views_used"), b["views"]))
                                               for i, s in b["models"].items()})
               for side, b in data["breasts"].items()}
    exam = {i: ExamDecision(d["malignant"], Laterality(d["breast"]) if d["breast"] else None, d["probabilities"])
            for i, d in data["exam"]["models"].items()}
    return ExamResult(entries, views, breasts, exam, _provenance_from(data["provenance"]))


def _views_used(side: str, projections: list[str] | None, breast_views: list[str]) -> tuple[View, ...]:
    """A breast score's views; files written before ``views_used`` existed: the breast's counted views."""
    if projections is None:
        return tuple(View(x) for x in breast_views)
    return tuple(View.of(side, p) for p in projections)


def _provenance_from(p: Mapping[str, Any]) -> Provenance:
    return Provenance(models=tuple(_identity_from(m) for m in p["models"]), device=p["device"], mode=Mode(p["mode"]),
                      torch_version=p["torch_version"], threads=p["threads"], python=p["python"],
                      notices=tuple(p["notices"]), numerics=p.get("numerics", "fp32"))


def _from_version_1(data: Mapping[str, Any]) -> ExamResult:
    """Schema 1.0: GMIC only, two classes, one ensemble of every model, saliency as 46 x 30 lists."""
    from inference.results.exam_result import breast_results, entry_view, exam_decisions  # noqa: PLC0415

    classes = tuple(data.get("classes", ("benign", "malignant")))
    identities = tuple(_identity_from(m) for m in data["provenance"]["models"])
    entry = ModelEntry("gmic", identities[0].label if len(identities) == 1 else f"GMIC ensemble of {len(identities)}",
                       "gmic", classes, ("malignant",), False, identities)
    views = {}
    for name, v in data["views"].items():
        m = v["mapping"]
        to_original = np.asarray(m["input_to_original_affine"], dtype=np.float64)
        frame = InputFrame(tuple(m["input_shape"]), to_original, tuple(m["original_shape"]),
                           {k: m[k] for k in ("crop_origin", "crop_shape", "flipped", "window_origin")})
        members = []
        for mv in v["models"]:
            saliency = {c: np.asarray(mv["saliency_input_frame"][c], np.float32) for c in classes}
            affine = frame.layer_affine(saliency[classes[0]].shape)
            layers = tuple(HeatLayer("saliency", c, saliency[c], affine) for c in classes)
            regions = tuple(ScoredRegion(int(p["rank"]), tuple(p["box_original"]), float(p["attention"]), "attention",
                                         box_input=tuple(p["box_input"]),
                                         size=(p["box_input"][2] - p["box_input"][0], p["box_input"][3] - p["box_input"][1]))
                            for p in mv["patches"])
            members.append(ModelViewOutput(mv["y_fusion"], layers, regions,
                                           {"y_global": mv["y_global"], "y_local": mv["y_local"]}, frame))
        views[View(name)] = ViewResult(View(name), tuple(m["original_shape"]),
                                       {entry.id: entry_view(members, identities[0].label)}, tuple(v["warnings"]))
    breasts = breast_results(views, (entry,))
    p = data["provenance"]
    provenance = Provenance(models=identities, device=p["device"], mode=Mode(p["mode"]), torch_version=p["torch_version"],
                            threads=p["threads"], python=p["python"], notices=tuple(p["notices"]))
    return ExamResult((entry,), views, breasts, exam_decisions(breasts, (entry,)), provenance)


# ------------------------------------------------------------------------------------------------- files


def maps_to_bytes(maps: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{key.replace("/", "|"): value for key, value in maps.items()})
    return buffer.getvalue()


def maps_from_bytes(data: bytes) -> dict[str, np.ndarray]:
    if not data:
        return {}
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {key.replace("|", "/"): archive[key] for key in archive.files}


def maps_path(json_path: str | Path) -> Path:
    path = Path(json_path)
    return path.with_name(path.stem + ".maps.npz")


def write_result(result: ExamResult, path: str | Path, exam_notes: Sequence[str] = ()) -> tuple[Path, Path]:
    """Write the JSON and its maps file beside it, each atomically; returns both paths. ``exam_notes``: what the
    intake said of the exam (a retake chosen, a view missing or kept aside, a possible laterality error), kept
    with the figures they qualify."""
    path = Path(path)
    data, maps = result_to_data(result)
    data["exam_notes"] = list(exam_notes)
    binary = maps_path(path)
    data["maps_file"] = binary.name
    with atomic_path(binary) as temporary:
        temporary.write_bytes(maps_to_bytes(maps))
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=1, allow_nan=False), encoding="utf-8")
    return path, binary


def read_result(path: str | Path) -> ExamResult:
    """Read a result JSON (2.1 or 2.0 with its maps file, or 1.0)."""
    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    maps = {}
    if data.get("maps_file"):
        maps = maps_from_bytes((path.parent / data["maps_file"]).read_bytes())
    return result_from_data(data, maps)
