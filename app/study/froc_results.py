"""A localisation study's results as files: ``results.json`` (the interchange shape of issue 29), CSVs for
archiving and other tools, and the FROC and wAFROC curves as PNGs (drawn with OpenCV, as the report figures)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.study.curve_figure import curve_png, titled
from app.study.froc import Curve, FrocAnalysis, FrocData, FrocTest, froc_curve, wafroc_curve
from app.study.results import MIN_UNITS
from inference.files import write_bytes_atomic, write_text_atomic
from inference.numbers import VAST_DDF, VAST_DDF_CAUTION, df_cell, df_text
from inference.spreadsheet_cells import text_writer


@dataclass(frozen=True)
class LocalisationCurves:
    """A localisation study's curves for the results screen: per modality, readers pooled, the FROC curve
    (x: non-lesion marks per case, y: lesions localised) and the wAFROC curve (x: normal cases with a false
    mark, y: weighted lesions localised), with the reader-mean wAFROC of each modality."""

    froc: dict[str, Curve]
    wafroc: dict[str, Curve]
    wafroc_mean: dict[str, float]
    cautions: tuple[str, ...] = ()


def localisation_curves(store: Any, study_id: int, readers: Any = None) -> LocalisationCurves | None:
    """The curves of a study stored with its lesions (``study create --lesions``); None for an ROC study.
    ``readers``: only these (default all).

    Raises:
        StudyError: the marks cannot be scored (see :func:`app.study.froc_study.stored_froc_data`).
        NotEstimable: the cases read so far are not both normal and abnormal.
    """
    from app.study.froc import figure_of_merit, froc_data_from_dict  # noqa: PLC0415
    from app.study.froc_study import stored_froc_data  # noqa: PLC0415
    from app.study.lesions import stored_lesion_truth  # noqa: PLC0415

    truth = stored_lesion_truth(store, study_id)
    if truth is None:
        return None
    form, cautions = stored_froc_data(store, study_id, truth, readers)
    data = froc_data_from_dict(form, "the study")
    foms = figure_of_merit(data, "wAFROC")
    return LocalisationCurves({m: froc_curve(data, m) for m in data.modalities},
                              {m: wafroc_curve(data, m) for m in data.modalities},
                              {m: float(foms[t].mean()) for t, m in enumerate(data.modalities)},
                              cautions + froc_cautions(data))


def froc_cautions(data: FrocData, analysis: FrocAnalysis | None = None) -> tuple[str, ...]:
    """What the numbers cannot say: too few cases of a kind, too few readers, a test not estimable, an interval
    of a difference past ±1."""
    out = []
    fewest = min(data.n_normal, data.n_abnormal)
    if fewest < MIN_UNITS:
        out.append(f"too small for firm conclusions: {data.n_normal} normal and {data.n_abnormal} abnormal case(s) "
                   f"(at least {MIN_UNITS} of each are needed for a usable interval)")
    if len(data.readers) < 3:
        out.append(f"{len(data.readers)} reader(s): the random-reader (RRRC) test generalises to other readers "
                   "only with several readers")
    if analysis is not None:
        out += [c for c in analysis.cautions if c not in out]
        out += [f"{name}: not estimable: {test.reason}" for name, test in analysis.tests.items()
                if test.reason and test.reason not in analysis.cautions]
        # as the ROC comparisons say it: a difference of figures of merit lies in [-1, 1]
        out += [f"{name} {d.a} − {d.b}: its interval ({d.ci[0]:+.4f} – {d.ci[1]:+.4f}) passes ±1, past what a "
                "difference of figures of merit can be: the normal approximation does not hold with so few cases; "
                "the interval is as the analysis gives it, not clipped"
                for name, test in analysis.tests.items() for d in test.differences
                if math.isfinite(d.ci[0]) and math.isfinite(d.ci[1]) and (d.ci[0] < -1 or d.ci[1] > 1)]
        rrrc = analysis.tests.get("RRRC")
        if rrrc is not None and not rrrc.reason and rrrc.ddf >= VAST_DDF:  # as the ROC comparisons say it
            out.append("RRRC: " + VAST_DDF_CAUTION.format(measure="figure of merit", ddf=df_text(rrrc.ddf)))
    return tuple(out)


def _number(value: float) -> float | None:
    """JSON has no NaN or infinity: a value that does not exist is null."""
    value = float(value)
    return value if math.isfinite(value) else None


def fom_interval(ci: tuple[float, float]) -> tuple[float, float]:
    """A modality's 95 % CI as reported: clipped to [0, 1], where every figure of merit lies, as the ROC
    results clip theirs (the analysis itself, like RJafroc, does not clip: a small study's interval reached
    1.35)."""
    low, high = (float(v) for v in ci)
    return (max(0.0, low) if math.isfinite(low) else low, min(1.0, high) if math.isfinite(high) else high)


def _test_dict(test: FrocTest) -> dict[str, Any]:
    chisq = test.statistic_name == "chisq"
    out: dict[str, Any] = {
        "p": _number(test.p),
        ("chisq" if chisq else "F"): _number(test.statistic),
        ("df" if chisq else "ddf"): _number(test.ndf if chisq else test.ddf),
        "ndf": _number(test.ndf),
        "differences": [{"a": d.a, "b": d.b, "estimate": _number(d.estimate), "se": _number(d.se),
                         "p": _number(d.p), "ci": [_number(d.ci[0]), _number(d.ci[1])]} for d in test.differences],
        "modalities": {m: {"estimate": _number(e.auc), "se": _number(e.se), "df": _number(e.df if e.df is not None
                                                                                          else math.inf),
                           "ci": [_number(v) for v in fom_interval(e.ci)]} for m, e in test.single.items()},
    }
    if test.reason:
        out["note"] = f"not estimable: {test.reason}"
    return out


def results_dict(analysis: FrocAnalysis, cautions: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{"foms": {modality: {reader: value}}, "tests": {"RRRC"|"FRRC"|"RRFC": {...}}}`` plus the analysis'
    name (figure of merit, method, covariance) and the cautions; every difference is "a − b"."""
    return {
        "fom": analysis.fom,
        "method": analysis.method,
        "covariance": analysis.covariance_method,
        "foms": {m: {r: float(analysis.foms[t, j]) for j, r in enumerate(analysis.readers)}
                 for t, m in enumerate(analysis.modalities)},
        "tests": {name: _test_dict(test) for name, test in analysis.tests.items()},
        "cautions": list(cautions),
    }


def _cell(value: float) -> Any:
    return value if math.isfinite(value) else ""  # empty cells, never NaN or inf


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = text_writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_froc_results(data: FrocData, analysis: FrocAnalysis, folder: str | Path,
                       cautions: tuple[str, ...] = ()) -> list[Path]:
    """``results.json``, ``foms.csv``, ``differences.csv``, ``modalities.csv``, ``jackknife.csv`` (and
    ``pseudovalues.csv`` for DBM), ``froc.png`` and ``wafroc.png`` (each modality pooled over its readers)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = results_dict(analysis, cautions + froc_cautions(data, analysis))
    written = [write_text_atomic(folder / "results.json", json.dumps(summary, indent=1))]
    written.append(_write_csv(folder / "foms.csv", ["modality", "reader", "fom"],
                              [[m, r, float(analysis.foms[t, j])] for t, m in enumerate(analysis.modalities)
                               for j, r in enumerate(analysis.readers)]))
    rows, single = [], []
    for name, test in analysis.tests.items():
        for d in test.differences:
            rows.append([name, test.statistic_name, _cell(test.statistic), _cell(test.ndf), df_cell(test.ddf),
                         _cell(test.p), d.a, d.b, d.estimate, _cell(d.se), _cell(d.p), _cell(d.ci[0]), _cell(d.ci[1]),
                         test.reason])
        for modality, e in test.single.items():
            single.append([name, modality, e.auc, _cell(e.se), df_cell(e.df if e.df is not None else math.inf),
                           *(_cell(v) for v in fom_interval(e.ci))])
    written.append(_write_csv(folder / "differences.csv",
                              ["test", "statistic", "value", "ndf", "ddf", "p", "a", "b", "estimate_a_minus_b", "se",
                               "p_difference", "ci_low", "ci_high", "not_estimable"], rows))
    written.append(_write_csv(folder / "modalities.csv", ["test", "modality", "fom", "se", "df", "ci_low", "ci_high"],
                              single))
    tables = [("jackknife.csv", analysis.jackknife), ("pseudovalues.csv", analysis.pseudovalues)]
    for name, values in tables:
        if values is None:
            continue
        written.append(_write_csv(folder / name, ["modality", "reader", "case", "value"],
                                  [[m, r, c, float(values[t, j, k])] for t, m in enumerate(analysis.modalities)
                                   for j, r in enumerate(analysis.readers) for k, c in enumerate(data.cases)]))
    froc = {m: froc_curve(data, m) for m in data.modalities}
    written.append(write_bytes_atomic(folder / "froc.png", curve_png(
        froc, titled("FROC", data.name, "readers pooled"), "non-lesion marks per case (NLF)",
        "lesions localised (LLF)")))
    wafroc = {m: wafroc_curve(data, m) for m in data.modalities}
    written.append(write_bytes_atomic(folder / "wafroc.png", curve_png(
        wafroc, titled("wAFROC", data.name, "readers pooled"), "normal cases with a false mark (FPF)",
        "weighted lesions localised (wLLF)", x_max=1.0)))
    return written
