"""Localisation (FROC) reader studies: the data, the figures of merit, jackknife pseudovalues, DBM and OR tests.

The figures of merit are the empirical ones of Chakraborty's RJafroc (the values of its test suite are
reproduced in ``tests/study/test_froc.py``); ψ(x, y) = 1 when y > x, ½ on ties (an unmarked lesion and an
unmarked normal case tie at −∞), 0 otherwise:

* ``wAFROC`` (default): Σₙ Σₐ Σₗ w_{a,l} ψ(FPₙ, z_{a,l}) / (K1·K2), FPₙ the highest non-lesion mark of normal
  case n, z_{a,l} the rating of lesion l of abnormal case a, w its weight (each case's weights sum to 1);
* ``AFROC``: the same unweighted, divided by K1·L (L lesions);
* ``wAFROC1`` / ``AFROC1``: FP over all K1 + K2 cases (non-lesion marks on abnormal cases count);
* ``HrAuc``: each case rated by its highest mark of any kind, then the ROC AUC;
* ``Wilcoxon``: the ROC AUC of ROC data (one rating per case).

The two ROC figures of merit use the one AUC of the app (:func:`app.study.analysis.auc`). Significance tests:
Dorfman–Berbaum–Metz (an ANOVA of the case-jackknife pseudovalues) and Obuchowski–Rockette (an ANOVA of the
figures of merit with jackknife or, for ROC figures of merit, DeLong error covariances), each with random
readers and cases (RRRC, Hillis' denominator degrees of freedom), fixed readers (FRRC) and fixed cases (RRFC).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from app.study.analysis import (
    ModalityEstimate,
    NotEstimable,
    StudyMatrix,
    auc,
    covariance_matrix,
    hillis_ddf,
    or_components,
)
from app.study.errors import StudyError
from inference.evaluation.metrics import auc_components

FOMS = ("wAFROC", "AFROC", "wAFROC1", "AFROC1", "HrAuc", "Wilcoxon")
DEFAULT_FOM = "wAFROC"
METHODS = ("DBM", "OR")
ROC_FOMS = ("HrAuc", "Wilcoxon")
WEIGHT_TOLERANCE = 1e-6  # lesion weights of a case must sum to 1 within this (1/3 each in floating point passes)


# --------------------------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class FrocData:
    """A fully crossed localisation study: every reader read every case in every modality.

    ``nl[t, r, k, m]``: the ratings of the non-lesion marks of case k (padded with −∞);
    ``ll[t, r, k, l]``: the rating of lesion l of case k (−∞ when not marked or when the case has fewer
    lesions); ``weights[k, l]``: lesion weights (0 past a case's lesions, all 0 on normal cases).
    """

    name: str
    kind: str  # "FROC" or "ROC"
    modalities: tuple[str, ...]
    readers: tuple[str, ...]
    cases: tuple[Any, ...]
    abnormal: np.ndarray  # (K,) bool
    lesions: tuple[tuple[Any, ...], ...]  # lesion ids per case, () for normal cases
    weights: np.ndarray  # (K, L_max)
    nl: np.ndarray  # (T, R, K, NL_max)
    ll: np.ndarray  # (T, R, K, L_max)

    @property
    def lesion_counts(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.lesions])

    @property
    def n_normal(self) -> int:
        return int((~self.abnormal).sum())

    @property
    def n_abnormal(self) -> int:
        return int(self.abnormal.sum())


def _bad(source: str, what: str) -> StudyError:
    return StudyError(f"{source}: {what}")


def froc_data_from_dict(data: Mapping[str, Any], source: str = "the study data") -> FrocData:
    """Build :class:`FrocData` from the JSON form of ``shared/reference/rjafroc/README.md``.

    Raises:
        StudyError: a mark names an unknown modality, reader, case or lesion, a lesion is marked twice by
            one reader, a rating is not a finite number, or lesion weights do not sum to 1; the message
            names ``source``.
    """
    try:
        kind = str(data.get("description", {}).get("type", "FROC")).upper()
        modalities = tuple(str(m) for m in data["modalities"])
        readers = tuple(str(r) for r in data["readers"])
        case_rows = list(data["cases"])
        marks = list(data["marks"])
    except (KeyError, TypeError, AttributeError) as error:
        raise _bad(source, f"not a localisation study in the JSON form (missing {error})") from error
    if kind not in ("FROC", "ROC"):
        raise _bad(source, f"study type {kind!r}: only FROC and ROC data can be analysed here")
    if not modalities or not readers or not case_rows:
        raise _bad(source, "no modalities, readers or cases")
    for label, names in (("modality", modalities), ("reader", readers)):
        if len(set(names)) != len(names):
            raise _bad(source, f"a {label} is named twice")
    cases, abnormal, lesion_ids, weight_rows = [], [], [], []
    for row in case_rows:
        case_id = row["id"]
        if case_id in cases:
            raise _bad(source, f"case {case_id!r} is listed twice")
        lesions = list(row.get("lesions") or [])
        is_abnormal = bool(row.get("abnormal", bool(lesions)))
        if is_abnormal and not lesions:
            raise _bad(source, f"abnormal case {case_id!r} has no lesion")
        if not is_abnormal and lesions:
            raise _bad(source, f"normal case {case_id!r} has lesions")
        ids = tuple(lesion["id"] for lesion in lesions)
        if len(set(ids)) != len(ids):
            raise _bad(source, f"case {case_id!r} names a lesion twice")
        weights = [float(lesion["weight"]) if lesion.get("weight") is not None else 1.0 / len(lesions)
                   for lesion in lesions]
        if lesions and abs(sum(weights) - 1.0) > WEIGHT_TOLERANCE:
            raise _bad(source, f"the lesion weights of case {case_id!r} sum to {sum(weights):g}, not 1")
        cases.append(case_id)
        abnormal.append(is_abnormal)
        lesion_ids.append(ids)
        weight_rows.append(weights)
    t_index = {m: i for i, m in enumerate(modalities)}
    r_index = {r: i for i, r in enumerate(readers)}
    k_index = {c: i for i, c in enumerate(cases)}
    l_index = [{lesion: i for i, lesion in enumerate(ids)} for ids in lesion_ids]
    n_lesions = max([len(ids) for ids in lesion_ids] + [1])
    nl_lists: dict[tuple[int, int, int], list[float]] = {}
    ll = np.full((len(modalities), len(readers), len(cases), n_lesions), -np.inf)
    for mark in marks:
        try:
            t, r = t_index[str(mark["modality"])], r_index[str(mark["reader"])]
            k = k_index[mark["case"]]
        except KeyError as error:
            raise _bad(source, f"a mark names an unknown modality, reader or case {error}") from error
        try:
            rating = float(mark["rating"])
        except (KeyError, TypeError, ValueError):
            rating = math.nan  # said below, with the case
        if not math.isfinite(rating):
            raise _bad(source, f"a mark on case {mark['case']!r} has the rating {mark.get('rating')!r}")
        lesion = mark.get("lesion")
        if lesion is None:
            nl_lists.setdefault((t, r, k), []).append(rating)
            continue
        if lesion not in l_index[k]:
            raise _bad(source, f"a mark names lesion {lesion!r} of case {mark['case']!r}, which has no such lesion")
        l = l_index[k][lesion]
        if ll[t, r, k, l] != -np.inf:
            raise _bad(source, f"lesion {lesion!r} of case {mark['case']!r} is marked twice by reader "
                               f"{mark['reader']!r} in modality {mark['modality']!r}")
        ll[t, r, k, l] = rating
    n_nl = max([len(v) for v in nl_lists.values()] + [1])
    nl = np.full((len(modalities), len(readers), len(cases), n_nl), -np.inf)
    for (t, r, k), ratings in nl_lists.items():
        nl[t, r, k, : len(ratings)] = sorted(ratings, reverse=True)
    weights = np.zeros((len(cases), n_lesions))
    for k, row in enumerate(weight_rows):
        weights[k, : len(row)] = row
    data_ = FrocData(str(data.get("name", "")), kind, modalities, readers, tuple(cases), np.array(abnormal, bool),
                     tuple(lesion_ids), weights, nl, ll)
    if data_.n_normal == 0 or data_.n_abnormal == 0:
        raise NotEstimable(f"{data_.n_normal} normal and {data_.n_abnormal} abnormal case(s): the figures of merit "
                           "need both kinds")
    return data_


def load_froc_json(path: str | Path) -> FrocData:
    """Read a study in the JSON form (RJafroc's datasets converted, another tool's export, ``study export``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StudyError(f"{path}: not a readable localisation study ({error})") from error
    return froc_data_from_dict(data, str(path))


def froc_data_to_dict(data: FrocData) -> dict[str, Any]:
    """The JSON form of :class:`FrocData` (the inverse of :func:`froc_data_from_dict`)."""
    marks = []
    for t, modality in enumerate(data.modalities):
        for r, reader in enumerate(data.readers):
            for k, case in enumerate(data.cases):
                for rating in data.nl[t, r, k]:
                    if rating != -np.inf:
                        marks.append({"modality": modality, "reader": reader, "case": case, "lesion": None,
                                      "rating": float(rating)})
                for l, lesion in enumerate(data.lesions[k]):
                    if data.ll[t, r, k, l] != -np.inf:
                        marks.append({"modality": modality, "reader": reader, "case": case, "lesion": lesion,
                                      "rating": float(data.ll[t, r, k, l])})
    return {
        "name": data.name,
        "description": {"type": data.kind},
        "modalities": list(data.modalities),
        "readers": list(data.readers),
        "cases": [{"id": case, "abnormal": bool(data.abnormal[k]),
                   "lesions": [{"id": lesion, "weight": float(data.weights[k, l])}
                               for l, lesion in enumerate(data.lesions[k])]}
                  for k, case in enumerate(data.cases)],
        "marks": marks,
    }


# --------------------------------------------------------------------------------------------------------
# figures of merit


def case_ratings(data: FrocData, fom: str = "HrAuc") -> np.ndarray:
    """(T, R, K) rating of each case for the ROC figures of merit, −∞ where a case has no mark.

    ``HrAuc``: the highest mark of any kind; ``Wilcoxon``: the ROC data's one rating (a normal case's
    non-lesion mark, an abnormal case's lesion-1 mark).
    """
    if fom == "Wilcoxon":
        if data.kind != "ROC":
            raise StudyError("Wilcoxon is the figure of merit of ROC data; for localisation (FROC) data use HrAuc "
                             "(the highest rating of each case) or a wAFROC / AFROC figure of merit")
        return np.where(data.abnormal[None, None, :], data.ll[..., 0], data.nl.max(axis=3))
    return np.maximum(data.nl.max(axis=3), data.ll.max(axis=3))


def _check_fom(fom: str) -> None:
    if fom not in FOMS:
        raise StudyError(f"unknown figure of merit {fom!r}: use one of {', '.join(FOMS)}")


def _afroc_value(z: np.ndarray, weight: np.ndarray, fp: np.ndarray, divisor: int) -> float:
    """Σₗ wₗ Σₙ ψ(FPₙ, zₗ) / (n_FP · divisor). The inner mean over FP cases is the lesion's structural
    component V10 of the one AUC (ties, −∞ against −∞ included, count ½)."""
    truth = np.r_[np.ones(z.size, bool), np.zeros(fp.size, bool)]
    v10 = auc_components(np.r_[z, fp], truth)[1]
    return float((weight * v10).sum()) / divisor


def _fom_table(data: FrocData, fom: str, keeps: Sequence[np.ndarray]) -> np.ndarray:
    """(T, R, len(keeps)): the figure of merit on each subset of the cases."""
    _check_fom(fom)
    t_n, r_n = len(data.modalities), len(data.readers)
    out = np.empty((t_n, r_n, len(keeps)))
    if fom in ROC_FOMS:
        ratings = case_ratings(data, fom)
        truth = data.abnormal.astype(int)
        for t in range(t_n):
            for r in range(r_n):
                for n, keep in enumerate(keeps):
                    out[t, r, n] = auc(ratings[t, r, keep], truth[keep])
        return out
    counts = data.lesion_counts
    lesion_case = np.repeat(np.arange(len(data.cases)), counts)
    lesion_slot = np.concatenate([np.arange(n) for n in counts])
    weighted = fom.startswith("w")
    lesion_weight = data.weights[lesion_case, lesion_slot] if weighted else np.ones(lesion_case.size)
    fp_cases = ~data.abnormal if fom in ("wAFROC", "AFROC") else np.ones(len(data.cases), bool)
    highest_nl = data.nl.max(axis=3)  # (T, R, K)
    for n, keep in enumerate(keeps):
        lesions = keep[lesion_case]
        fp_rows = keep & fp_cases
        # weighted: divide by the abnormal cases (weights are not renormalised when a case is left out)
        divisor = int((keep & data.abnormal).sum()) if weighted else int(lesions.sum())
        for t in range(t_n):
            for r in range(r_n):
                z = data.ll[t, r, lesion_case[lesions], lesion_slot[lesions]]
                out[t, r, n] = _afroc_value(z, lesion_weight[lesions], highest_nl[t, r, fp_rows], divisor)
    return out


def figure_of_merit(data: FrocData, fom: str = DEFAULT_FOM) -> np.ndarray:
    """(T, R) figure of merit per modality and reader."""
    return _fom_table(data, fom, [np.ones(len(data.cases), bool)])[..., 0]


def jackknife_foms(data: FrocData, fom: str = DEFAULT_FOM) -> np.ndarray:
    """(T, R, K): the figure of merit with case k left out (the other lesions keep their weights)."""
    k_n = len(data.cases)
    if data.n_normal < 2 or data.n_abnormal < 2:
        raise NotEstimable(f"{data.n_normal} normal and {data.n_abnormal} abnormal case(s): the jackknife needs "
                           "at least two of each")
    keeps = [np.arange(k_n) != k for k in range(k_n)]
    return _fom_table(data, fom, keeps)


def pseudovalues(foms: np.ndarray, jackknife: np.ndarray) -> np.ndarray:
    """Jackknife pseudovalues K·θ − (K−1)·θ₍ₖ₎, shifted so that their mean over cases is θ exactly."""
    k_n = jackknife.shape[2]
    values = k_n * foms[..., None] - (k_n - 1) * jackknife
    return values + (foms - values.mean(axis=2))[..., None]


# --------------------------------------------------------------------------------------------------------
# operating characteristics (empirical, pooled over the readers given)


@dataclass(frozen=True)
class Curve:
    """An empirical operating characteristic: points from (0, 0), one per distinct rating threshold."""

    x: np.ndarray
    y: np.ndarray


def _select(data: FrocData, modality: str, readers: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:
    t = data.modalities.index(modality)
    chosen = [data.readers.index(r) for r in (readers if readers is not None else data.readers)]
    return data.nl[t, chosen], data.ll[t, chosen]


def _thresholds(*arrays: np.ndarray) -> np.ndarray:
    values = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays])
    return np.unique(values)[::-1]


def froc_curve(data: FrocData, modality: str, readers: Sequence[str] | None = None) -> Curve:
    """FROC: non-lesion localisations per case (NLF) against the fraction of lesions localised (LLF)."""
    nl, ll = _select(data, modality, readers)
    present = np.arange(ll.shape[-1])[None, :] < data.lesion_counts[:, None]  # (K, L_max)
    lesions = nl.shape[0] * int(present.sum())
    cases = nl.shape[0] * len(data.cases)
    zetas = _thresholds(nl, ll)
    x = [0.0] + [float((nl >= z).sum()) / cases for z in zetas]
    y = [0.0] + [float(((ll >= z) & present).sum()) / lesions for z in zetas]
    return Curve(np.array(x), np.array(y))


def wafroc_curve(data: FrocData, modality: str, readers: Sequence[str] | None = None, weighted: bool = True) -> Curve:
    """wAFROC (AFROC when ``weighted`` is false): the fraction of normal cases with a non-lesion mark at or
    above the threshold (FPF) against the weighted fraction of lesions localised, ending at (1, 1); its
    trapezoidal area is the wAFROC (AFROC) figure of merit."""
    nl, ll = _select(data, modality, readers)
    fp = nl.max(axis=-1)[:, ~data.abnormal]  # (readers, K1)
    present = np.arange(ll.shape[-1])[None, :] < data.lesion_counts[:, None]
    w = data.weights if weighted else present.astype(float)
    total = nl.shape[0] * (data.n_abnormal if weighted else int(present.sum()))
    zetas = _thresholds(fp, ll[:, present])
    x = [0.0] + [float((fp >= z).sum()) / fp.size for z in zetas] + [1.0]
    y = [0.0] + [float((w[None] * (ll >= z)).sum()) / total for z in zetas] + [1.0]
    return Curve(np.array(x), np.array(y))


# --------------------------------------------------------------------------------------------------------
# DBM


@dataclass(frozen=True)
class DbmMeanSquares:
    """The modality × reader × case ANOVA of the pseudovalues (sums of squares, df and mean squares by term
    T, R, C, TR, TC, RC, TRC), with the per-modality (``*_single_t``) and per-reader (``*_single_r``) ANOVAs."""

    ss: dict[str, float]
    df: dict[str, int]
    ms: dict[str, float]
    ss_total: float
    df_total: int
    ms_r_single_t: np.ndarray  # (T,) reader MS within each modality
    ms_c_single_t: np.ndarray  # (T,)
    ms_rc_single_t: np.ndarray  # (T,)
    ms_t_single_r: np.ndarray  # (R,) modality MS within each reader
    ms_c_single_r: np.ndarray  # (R,)
    ms_tc_single_r: np.ndarray  # (R,)


def dbm_mean_squares(values: np.ndarray) -> DbmMeanSquares:
    """ANOVA of pseudovalues ``values[t, r, k]``."""
    t_n, r_n, k_n = values.shape
    grand = values.mean()
    m_t = values.mean(axis=(1, 2))
    m_r = values.mean(axis=(0, 2))
    m_c = values.mean(axis=(0, 1))
    m_tr = values.mean(axis=2)
    m_tc = values.mean(axis=1)
    m_rc = values.mean(axis=0)
    ss = {
        "T": r_n * k_n * float(((m_t - grand) ** 2).sum()),
        "R": t_n * k_n * float(((m_r - grand) ** 2).sum()),
        "C": t_n * r_n * float(((m_c - grand) ** 2).sum()),
        "TR": k_n * float(((m_tr - m_t[:, None] - m_r[None, :] + grand) ** 2).sum()),
        "TC": r_n * float(((m_tc - m_t[:, None] - m_c[None, :] + grand) ** 2).sum()),
        "RC": t_n * float(((m_rc - m_r[:, None] - m_c[None, :] + grand) ** 2).sum()),
    }
    resid = (values - m_tr[:, :, None] - m_tc[:, None, :] - m_rc[None, :, :]
             + m_t[:, None, None] + m_r[None, :, None] + m_c[None, None, :] - grand)
    ss["TRC"] = float((resid**2).sum())
    df = {"T": t_n - 1, "R": r_n - 1, "C": k_n - 1, "TR": (t_n - 1) * (r_n - 1), "TC": (t_n - 1) * (k_n - 1),
          "RC": (r_n - 1) * (k_n - 1), "TRC": (t_n - 1) * (r_n - 1) * (k_n - 1)}
    ms = {term: (ss[term] / df[term] if df[term] > 0 else float("nan")) for term in ss}

    def per(axis_values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(factor MS, case MS, interaction MS) of a (groups, F, K) array, one two-way ANOVA per group."""
        groups, f_n, _ = axis_values.shape
        out = np.empty((3, groups))
        for g in range(groups):
            y = axis_values[g]
            mean = y.mean()
            mf, mc = y.mean(axis=1), y.mean(axis=0)
            out[0, g] = k_n * float(((mf - mean) ** 2).sum()) / (f_n - 1) if f_n > 1 else float("nan")
            out[1, g] = f_n * float(((mc - mean) ** 2).sum()) / (k_n - 1)
            inter = y - mf[:, None] - mc[None, :] + mean
            out[2, g] = float((inter**2).sum()) / ((f_n - 1) * (k_n - 1)) if f_n > 1 else float("nan")
        return out[0], out[1], out[2]

    ms_r_t, ms_c_t, ms_rc_t = per(values)
    ms_t_r, ms_c_r, ms_tc_r = per(values.transpose(1, 0, 2))
    return DbmMeanSquares(ss, df, ms, float(((values - grand) ** 2).sum()), values.size - 1,
                          ms_r_t, ms_c_t, ms_rc_t, ms_t_r, ms_c_r, ms_tc_r)


def dbm_variance_components(ms: DbmMeanSquares, t_n: int, r_n: int, k_n: int) -> dict[str, float]:
    """The DBM model's variance components (pseudovalue scale) from its expected mean squares."""
    m = ms.ms
    return {
        "VarR": (m["R"] - m["TR"] - m["RC"] + m["TRC"]) / (t_n * k_n),
        "VarC": (m["C"] - m["TC"] - m["RC"] + m["TRC"]) / (t_n * r_n),
        "VarTR": (m["TR"] - m["TRC"]) / k_n,
        "VarTC": (m["TC"] - m["TRC"]) / r_n,
        "VarRC": (m["RC"] - m["TRC"]) / t_n,
        "VarErr": m["TRC"],
    }


# --------------------------------------------------------------------------------------------------------
# OR


@dataclass(frozen=True)
class OrMeanSquares:
    """The modality × reader ANOVA of the figures of merit and the error covariances (Var, Cov1 same reader,
    Cov2 same modality, Cov3 neither), overall and within each modality."""

    ms_t: float
    ms_r: float
    ms_tr: float
    var: float
    cov1: float
    cov2: float
    cov3: float
    ms_r_single_t: np.ndarray  # (T,)
    var_single_t: np.ndarray  # (T,)
    cov2_single_t: np.ndarray  # (T,)
    covariance: np.ndarray  # (T·R, T·R), cells modality-major


def jackknife_covariance(jackknife: np.ndarray) -> np.ndarray:
    """(K−1)/K · Σₖ (θ₍ₖ₎ − θ̄)(θ₍ₖ₎ − θ̄)ᵀ over the cells (modality-major)."""
    t_n, r_n, k_n = jackknife.shape
    flat = jackknife.reshape(t_n * r_n, k_n)
    centred = flat - flat.mean(axis=1, keepdims=True)
    return (k_n - 1) / k_n * (centred @ centred.T)


def delong_covariance(data: FrocData, fom: str) -> np.ndarray:
    """DeLong's covariance of the ROC figures of merit (HrAuc, Wilcoxon), through the app's ROC analysis."""
    if fom not in ROC_FOMS:
        raise StudyError(f"DeLong's covariance is for ROC figures of merit (HrAuc, Wilcoxon), not {fom}: "
                         "use the jackknife")
    ratings = case_ratings(data, fom)
    matrix = StudyMatrix(data.modalities, data.readers, data.cases, data.abnormal.astype(int), ratings)
    return covariance_matrix(matrix, "delong")


def or_mean_squares(foms: np.ndarray, covariance: np.ndarray) -> OrMeanSquares:
    t_n, r_n = foms.shape
    grand = foms.mean()
    m_t, m_r = foms.mean(axis=1), foms.mean(axis=0)
    ms_t = r_n * float(((m_t - grand) ** 2).sum()) / (t_n - 1) if t_n > 1 else float("nan")
    ms_r = t_n * float(((m_r - grand) ** 2).sum()) / (r_n - 1) if r_n > 1 else float("nan")
    resid = foms - m_t[:, None] - m_r[None, :] + grand
    ms_tr = float((resid**2).sum()) / ((t_n - 1) * (r_n - 1)) if t_n > 1 and r_n > 1 else float("nan")
    comps = or_components(covariance, t_n, r_n)
    ms_r_t = np.empty(t_n)
    var_t = np.empty(t_n)
    cov2_t = np.empty(t_n)
    off = ~np.eye(r_n, dtype=bool)
    for t in range(t_n):
        block = covariance[t * r_n : (t + 1) * r_n, t * r_n : (t + 1) * r_n]
        ms_r_t[t] = float(((foms[t] - m_t[t]) ** 2).sum()) / (r_n - 1) if r_n > 1 else float("nan")
        var_t[t] = float(np.diag(block).mean())
        cov2_t[t] = float(block[off].mean()) if r_n > 1 else 0.0
    return OrMeanSquares(ms_t, ms_r, ms_tr, comps.var, comps.cov1, comps.cov2, comps.cov3, ms_r_t, var_t, cov2_t,
                         covariance)


# --------------------------------------------------------------------------------------------------------
# tests


@dataclass(frozen=True)
class Difference:
    """Modality ``a`` minus modality ``b``: the estimate, its standard error, p and confidence interval."""

    a: str
    b: str
    estimate: float
    se: float
    df: float  # inf: a normal (z) interval
    p: float
    ci: tuple[float, float]

    @property
    def name(self) -> str:
        return f"{self.a} − {self.b}"


@dataclass(frozen=True)
class FrocTest:
    """One generalisation (RRRC, FRRC or RRFC) of a DBM or OR analysis. ``statistic_name`` is ``"F"``
    (``ndf``, ``ddf``) or ``"chisq"`` (``ndf`` degrees of freedom); ``reason`` is set, and the numbers are
    NaN, when the data cannot support it."""

    name: str
    statistic_name: str
    statistic: float
    ndf: float
    ddf: float
    p: float
    differences: tuple[Difference, ...]
    single: dict[str, ModalityEstimate] = field(default_factory=dict)
    reason: str = ""

    @property
    def estimable(self) -> bool:
        return not self.reason


@dataclass(frozen=True)
class FrocAnalysis:
    fom: str
    method: str  # "DBM" or "OR"
    covariance_method: str  # "jackknife" or "delong"
    modalities: tuple[str, ...]
    readers: tuple[str, ...]
    foms: np.ndarray  # (T, R)
    tests: dict[str, FrocTest]
    dbm: DbmMeanSquares | None = None
    variance_components: dict[str, float] | None = None
    orm: OrMeanSquares | None = None
    jackknife: np.ndarray | None = None  # (T, R, K)
    pseudovalues: np.ndarray | None = None  # (T, R, K)
    cautions: tuple[str, ...] = ()

    def modality_mean(self) -> dict[str, float]:
        return {m: float(v) for m, v in zip(self.modalities, self.foms.mean(axis=1))}


_NAN_PAIR = (float("nan"), float("nan"))
ZERO = 1e-12  # a mean square or variance below this is zero (see app.study.analysis.ZERO_VARIANCE)


def _differences(modalities: Sequence[str], means: np.ndarray, se: float, df: float,
                 alpha: float) -> tuple[Difference, ...]:
    """Every pair "A − B" (A before B in the modality order) with a t (finite df) or z interval."""
    from scipy import stats  # noqa: PLC0415

    out = []
    for i in range(len(modalities)):
        for j in range(i + 1, len(modalities)):
            estimate = float(means[i] - means[j])
            if not se > 0 or not math.isfinite(se):
                out.append(Difference(modalities[i], modalities[j], estimate, float("nan"), df, float("nan"),
                                      _NAN_PAIR))
                continue
            dist = stats.norm if math.isinf(df) else stats.t(df)
            q = float(dist.ppf(1 - alpha / 2))
            statistic = estimate / se
            p = float(2 * dist.sf(abs(statistic)))
            out.append(Difference(modalities[i], modalities[j], estimate, se, df, p,
                                  (estimate - q * se, estimate + q * se)))
    return tuple(out)


def _single(mean: float, se: float, df: float, alpha: float) -> ModalityEstimate:
    from scipy import stats  # noqa: PLC0415

    if not se > 0 or not math.isfinite(se):
        return ModalityEstimate(mean, se, _NAN_PAIR, df)
    q = float(stats.norm.ppf(1 - alpha / 2) if math.isinf(df) else stats.t.ppf(1 - alpha / 2, df))
    return ModalityEstimate(mean, se, (mean - q * se, mean + q * se), df)


IDENTICAL_READERS = ("every reader has the same figures of merit in both modalities (identical readers?): the readers "
                     "are no sample to generalise from")
NO_RRRC_VARIANCE = ("the readers' figures of merit differ between the modalities by the same amount and the cases add "
                    "no variance: the random-reader test's error term is zero")


def _f_test(name: str, modalities: Sequence[str], means: np.ndarray, numerator: float, denominator: float,
            ndf: float, ddf: float, diff_se: float, single: dict[str, ModalityEstimate], why_zero: str,
            alpha: float) -> FrocTest:
    from scipy import stats  # noqa: PLC0415

    if not denominator > ZERO or math.isnan(ddf):
        return FrocTest(name, "F", float("nan"), ndf, ddf, float("nan"),
                        _differences(modalities, means, float("nan"), ddf, alpha), single, why_zero)
    f_stat = numerator / denominator
    # an infinite ddf (the readers' figures of merit differ by the same amount): F(ndf, ∞) is chi-square / ndf
    p = stats.f.sf(f_stat, ndf, ddf) if math.isfinite(ddf) else stats.chi2.sf(f_stat * ndf, ndf)
    return FrocTest(name, "F", float(f_stat), ndf, float(ddf), float(p),
                    _differences(modalities, means, diff_se, ddf, alpha), single)


def _dbm_tests(modalities: Sequence[str], foms: np.ndarray, dbm: DbmMeanSquares, k_n: int,
               alpha: float) -> dict[str, FrocTest]:
    t_n, r_n = foms.shape
    m = dbm.ms
    means = foms.mean(axis=1)
    tests = {}
    # random readers, random cases (Hillis 2008 ddf)
    den = m["TR"] + max(m["TC"] - m["TRC"], 0.0)
    identical = m["TR"] <= ZERO and m["R"] <= ZERO
    ddf = math.nan if identical else hillis_ddf(m["TR"], den, t_n, r_n)
    single = {}
    for t, modality in enumerate(modalities):
        den_t = dbm.ms_r_single_t[t] + max(dbm.ms_c_single_t[t] - dbm.ms_rc_single_t[t], 0.0)
        df_t = den_t**2 / (dbm.ms_r_single_t[t] ** 2 / (r_n - 1)) if dbm.ms_r_single_t[t] > ZERO else math.inf
        single[modality] = _single(float(means[t]), math.sqrt(den_t / (r_n * k_n)), df_t, alpha)
    tests["RRRC"] = _f_test("RRRC", modalities, means, m["T"], den, t_n - 1, ddf, math.sqrt(2 * den / (r_n * k_n)),
                            single, IDENTICAL_READERS if identical else NO_RRRC_VARIANCE, alpha)
    # fixed readers, random cases
    single = {mod: _single(float(means[t]), math.sqrt(dbm.ms_c_single_t[t] / (r_n * k_n)), k_n - 1, alpha)
              for t, mod in enumerate(modalities)}
    tests["FRRC"] = _f_test("FRRC", modalities, means, m["T"], m["TC"], t_n - 1, (t_n - 1) * (k_n - 1),
                            math.sqrt(2 * m["TC"] / (r_n * k_n)), single,
                            "no case variance: the fixed-reader error term is zero", alpha)
    # random readers, fixed cases
    single = {mod: _single(float(means[t]), math.sqrt(dbm.ms_r_single_t[t] / (r_n * k_n)), r_n - 1, alpha)
              for t, mod in enumerate(modalities)}
    tests["RRFC"] = _f_test("RRFC", modalities, means, m["T"], m["TR"], t_n - 1, (t_n - 1) * (r_n - 1),
                            math.sqrt(2 * m["TR"] / (r_n * k_n)), single,
                            "no reader-by-modality variance: the fixed-case error term is zero", alpha)
    return tests


def _or_tests(modalities: Sequence[str], foms: np.ndarray, orm: OrMeanSquares, alpha: float) -> dict[str, FrocTest]:
    from scipy import stats  # noqa: PLC0415

    t_n, r_n = foms.shape
    means = foms.mean(axis=1)
    clipped = max(orm.cov2 - orm.cov3, 0.0)
    tests = {}
    den = orm.ms_tr + r_n * clipped
    identical = orm.ms_tr <= ZERO and orm.ms_r <= ZERO
    ddf = math.nan if identical else hillis_ddf(orm.ms_tr, den, t_n, r_n)
    single = {}
    for t, modality in enumerate(modalities):
        den_t = orm.ms_r_single_t[t] + r_n * max(orm.cov2_single_t[t], 0.0)
        df_t = den_t**2 / (orm.ms_r_single_t[t] ** 2 / (r_n - 1)) if orm.ms_r_single_t[t] > ZERO else math.inf
        single[modality] = _single(float(means[t]), math.sqrt(den_t / r_n), df_t, alpha)
    tests["RRRC"] = _f_test("RRRC", modalities, means, orm.ms_t, den, t_n - 1, ddf, math.sqrt(2 * den / r_n), single,
                            IDENTICAL_READERS if identical else NO_RRRC_VARIANCE, alpha)
    # fixed readers: chi-square with t - 1 df
    fr = orm.var - orm.cov1 + (r_n - 1) * clipped
    single = {}
    for t, modality in enumerate(modalities):
        var_t = max(orm.var_single_t[t] + (r_n - 1) * max(orm.cov2_single_t[t], 0.0), 0.0)
        single[modality] = _single(float(means[t]), math.sqrt(var_t / r_n), math.inf, alpha)
    if fr > ZERO:
        chisq = (t_n - 1) * orm.ms_t / fr
        tests["FRRC"] = FrocTest("FRRC", "chisq", float(chisq), t_n - 1, math.inf, float(stats.chi2.sf(chisq, t_n - 1)),
                                 _differences(modalities, means, math.sqrt(2 * fr / r_n), math.inf, alpha), single)
    else:
        tests["FRRC"] = FrocTest("FRRC", "chisq", float("nan"), t_n - 1, math.inf, float("nan"),
                                 _differences(modalities, means, float("nan"), math.inf, alpha), single,
                                 "no case variance: the fixed-reader error term is zero")
    single = {mod: _single(float(means[t]), math.sqrt(orm.ms_r_single_t[t] / r_n), r_n - 1, alpha)
              for t, mod in enumerate(modalities)}
    tests["RRFC"] = _f_test("RRFC", modalities, means, orm.ms_t, orm.ms_tr, t_n - 1, (t_n - 1) * (r_n - 1),
                            math.sqrt(2 * orm.ms_tr / r_n), single,
                            "no reader-by-modality variance: the fixed-case error term is zero", alpha)
    return tests


def froc_analysis(data: FrocData, fom: str = DEFAULT_FOM, method: str = "DBM", covariance: str = "jackknife",
                  alpha: float = 0.05) -> FrocAnalysis:
    """The figures of merit and the DBM or OR significance tests of a localisation (or ROC) study.

    Raises:
        StudyError: an unknown figure of merit or method, or DeLong asked for a non-ROC figure of merit.
        NotEstimable: fewer than two readers, or fewer than two normal or abnormal cases; the reason says which
            (``reader_mean`` holds the modalities' mean figures of merit when known). One modality is no error:
            its figure of merit and interval, without a test (:func:`_single_modality`).
    """
    _check_fom(fom)
    if method not in METHODS:
        raise StudyError(f"unknown analysis {method!r}: use DBM or OR")
    if covariance not in ("jackknife", "delong"):
        raise StudyError(f"unknown covariance estimate {covariance!r}: use jackknife or delong")
    if method == "DBM" and covariance != "jackknife":
        raise StudyError("DBM analyses jackknife pseudovalues: DeLong's covariance is for the OR analysis")
    if covariance == "delong" and fom not in ROC_FOMS:
        raise StudyError(f"DeLong's covariance is for ROC figures of merit (HrAuc, Wilcoxon), not {fom}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie between 0 and 1, not {alpha}")
    foms = figure_of_merit(data, fom)
    means = {m: float(v) for m, v in zip(data.modalities, foms.mean(axis=1))}
    t_n, r_n = foms.shape
    if r_n < 2:
        raise NotEstimable("a single reader: the analyses need at least two readers", means)
    if t_n < 2:
        return _single_modality(data, fom, method, covariance, alpha, foms)
    jack = jackknife_foms(data, fom)
    k_n = jack.shape[2]
    if method == "DBM":
        values = pseudovalues(foms, jack)
        dbm = dbm_mean_squares(values)
        return FrocAnalysis(fom, method, covariance, data.modalities, data.readers, foms,
                            _dbm_tests(data.modalities, foms, dbm, k_n, alpha), dbm=dbm,
                            variance_components=dbm_variance_components(dbm, t_n, r_n, k_n),
                            jackknife=jack, pseudovalues=values)
    cov = jackknife_covariance(jack) if covariance == "jackknife" else delong_covariance(data, fom)
    orm = or_mean_squares(foms, cov)
    return FrocAnalysis(fom, method, covariance, data.modalities, data.readers, foms,
                        _or_tests(data.modalities, foms, orm, alpha), orm=orm, jackknife=jack)


SINGLE_MODALITY = "a single modality: there is nothing to compare (its figure of merit has its interval)"


def _single_modality(data: FrocData, fom: str, method: str, covariance: str, alpha: float,
                     foms: np.ndarray) -> FrocAnalysis:
    """A one-modality study (an unaided reader study): the readers' figures of merit and the modality's mean
    with its interval under each generalisation (random readers and cases, fixed readers, fixed cases), as
    RJafroc gives for each modality of a comparison; no test.

    Each modality's interval uses that modality's own mean squares (or covariances) only, so it is the one the
    analysis of the modality beside a copy of itself gives: that analysis is run, and its tests dropped."""
    twice = replace(data, modalities=(data.modalities[0], f"{data.modalities[0]} (copy)"),
                    nl=np.concatenate([data.nl, data.nl]), ll=np.concatenate([data.ll, data.ll]))
    paired = froc_analysis(twice, fom, method, covariance, alpha)
    modality = data.modalities[0]
    tests = {name: FrocTest(name, test.statistic_name, float("nan"), 0.0, float("nan"), float("nan"), (),
                            {modality: test.single[modality]}, SINGLE_MODALITY)
             for name, test in paired.tests.items()}
    first = (lambda values: None if values is None else values[:1])
    return FrocAnalysis(fom, method, covariance, data.modalities, data.readers, foms, tests,
                        jackknife=first(paired.jackknife), pseudovalues=first(paired.pseudovalues),
                        cautions=(SINGLE_MODALITY,))
