"""The study's ROC curves as the results screen draws them and ``roc_LEVEL.png`` shows them: each reading
modality's readers averaged (vertically, on a grid of false-positive rates), each model on every unit a reader's
records hold, each hybrid; with every reader's own curve beside its modality's average."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.study.analysis import roc_points
from app.study.curve_figure import READING_COLOURS, CurveStyle, curve_png, titled
from app.study.froc import Curve
from app.study.records import PLAIN_SUFFIX
from app.study.results import model_name, model_units, reader_scores

FPR_GRID = np.linspace(0, 1, 101)
# one colour per model (three models were one red, their hybrids one green: told apart by their markers only)
MODEL_COLOURS = ((200, 30, 30), (140, 40, 150), (160, 95, 20), (100, 20, 20), (220, 80, 130))
HYBRID_COLOURS = ((30, 150, 60), (0, 120, 120), (70, 185, 140), (20, 90, 40), (60, 160, 200))  # unaided reads'
AIDED_HYBRID_COLOURS = ((120, 150, 0), (165, 135, 40), (90, 110, 30), (185, 175, 0), (130, 100, 70))


@dataclass(frozen=True)
class RocCurve:
    modality: str  # the records' modality ("unaided", "model (vs unaided)", "hybrid (aided)")
    name: str  # what the legend calls it
    kind: str  # "readers", "model" or "hybrid"
    fpr: np.ndarray  # from (0, 0): the rise at zero false positives is drawn, not implied
    tpr: np.ndarray
    readers: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # each reader's own (fpr, tpr)
    model_index: int = 0  # a model's or hybrid's model among the study's (its colour)
    plain: bool = False  # a hybrid that is the plain mean beside a calibrated one


def model_of(modality: str) -> str:
    """The model a model or hybrid modality is of: "hybrid [glam] (plain mean) (unaided)" -> "model [glam]"."""
    base = model_name(modality.rsplit(" (", 1)[0] if modality.startswith("hybrid") else modality)
    return base.removesuffix(PLAIN_SUFFIX).replace("hybrid", "model", 1)


def roc_curves(records: list[dict]) -> list[RocCurve]:
    """One curve per reading modality, model (once, whichever comparison it came from) and hybrid, in the
    records' modality order; none for a modality without units of both kinds."""
    curves: list[RocCurve] = []
    readers = sorted({r["reader"] for r in records})
    models = sorted({model_name(r["modality"]) for r in records if r["modality"].startswith("model")})
    for modality in sorted({r["modality"] for r in records}):
        is_model = modality.startswith("model")
        if is_model and any(c.kind == "model" and model_name(c.modality) == model_name(modality) for c in curves):
            continue
        # a model's curve is on every unit any reader's records hold, as its AUC is computed
        samples = ([model_units(records, model_name(modality))] if is_model else
                   [reader_scores(records, modality, reader) for reader in readers])
        # the average is of the readers who have read the most units: one part-way (a case or two) pulled it to a
        # curve no reader has (each reader's own curve is still there)
        most = max(len(truth) for _, truth in samples)
        read = sum(1 for _, truth in samples if len(truth))
        averaged, own = [], []
        for scores, truth in samples:
            if not len(truth) or truth.min() == truth.max():
                continue
            fpr, tpr, _ = roc_points(scores, truth)
            if len(truth) == most:
                averaged.append(np.interp(FPR_GRID, fpr, tpr))
            if not is_model:
                own.append((fpr, tpr))
        if not averaged:
            continue
        partway = read - sum(1 for _, truth in samples if len(truth) == most)
        kind = "model" if is_model else "hybrid" if modality.startswith("hybrid") else "readers"
        name = model_name(modality) if is_model else f"{modality} (reader average)" + (
            f" — {partway} reader(s) part-way not in it" if partway else "")
        index = models.index(model_of(modality)) if kind != "readers" and model_of(modality) in models else 0
        curves.append(RocCurve(modality, name, kind, np.r_[0.0, FPR_GRID], np.r_[0.0, np.mean(averaged, axis=0)],
                               own, index, PLAIN_SUFFIX in modality))
    return curves


def curve_colour(curve: RocCurve) -> tuple[int, int, int]:
    """RGB, the same on the screen and in the file: readers by modality; each model its own red or purple; a
    hybrid green, of the aided reads olive (its dashes alone were lost in the legend's short sample), the plain
    mean beside a calibrated hybrid a lighter shade of it."""
    if curve.kind == "model":
        return MODEL_COLOURS[curve.model_index % len(MODEL_COLOURS)]
    if curve.kind == "hybrid":
        colours = HYBRID_COLOURS if curve.modality.endswith("(unaided)") else AIDED_HYBRID_COLOURS
        colour = colours[curve.model_index % len(colours)]
        return tuple(int(round(c + 0.45 * (255 - c))) for c in colour) if curve.plain else colour  # lighter
    return READING_COLOURS.get(curve.modality, (90, 90, 90))


def curve_dashed(curve: RocCurve) -> bool:
    """A hybrid of the reads made with the AI is dashed (the unaided reads' solid)."""
    return curve.kind == "hybrid" and not curve.modality.endswith("(unaided)")


def roc_png(records: list[dict], level: str, study: str = "") -> bytes | None:
    """The ROC figure of the results files: every average, model and hybrid curve, with the chance line (None:
    no curve to draw)."""
    curves = roc_curves(records)
    if not curves:
        return None
    return curve_png({c.name: Curve(c.fpr, c.tpr) for c in curves}, titled("ROC", study, f"{level} level"),
                     "1 - specificity (false-positive rate)", "sensitivity (true-positive rate)", x_max=1.0,
                     styles={c.name: CurveStyle(curve_colour(c), n, curve_dashed(c)) for n, c in enumerate(curves)},
                     diagonal=True)
