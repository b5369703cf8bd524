"""Reader-study statistics: empirical AUC, DeLong and jackknife covariances, Obuchowski–Rockette analysis.

* AUC: the trapezoidal (Mann–Whitney) area, ties counting one half.
* Covariances of the AUCs of all (modality, reader) cells over the same cases: DeLong's structural
  components (DeLong, DeLong & Clarke-Pearson 1988; cov = S10/n1 + S01/n0) or the case jackknife
  (cov = (K-1)/K * sum (theta_(k) - mean)(theta'_(k) - mean')).
* Comparison of two modalities with the Obuchowski–Rockette (1995) model and Hillis' denominator degrees
  of freedom (Hillis 2007): random readers and random cases (RRRC), plus fixed readers (FRRC) and fixed
  cases (RRFC). Negative Cov2 - Cov3 is clipped to zero (Hillis 2005).

Clustered units (breast level: a woman's two breasts, read and scored together, are correlated): the jackknife
leaves out a cluster (a case) at a time and DeLong's variance is Obuchowski's (1997) for clustered data; with
one unit a cluster both are the plain ones. Taken as independent, the breasts' AUC variance fell short (0.66x
that of a bootstrap of women on the tests' correlated data), and the CIs and p-values with it.

Checked against the Van Dyke data and the values published by the Iowa OR-DBM MRMC program, RJafroc and
MRMCaov (``tests/study/test_analysis.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.reading import hybrid
from inference.evaluation.calibration import calibrated_probability
from inference.evaluation.metrics import auc_components

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile (scipy is imported only when a test needs it)


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson's score interval of a proportion (None when there are no trials): it stays inside [0, 1] and does
    not collapse to a point at 0 % or 100 %, as the normal approximation does with few units. The site validation's
    and the reader studies' proportions use this one."""
    if trials <= 0:
        return None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    if successes == 0:  # the bound is 0 exactly: centre − half rounds to 1.4e-17 ("1.3877787807814457e-17" in a CSV)
        return (0.0, min(1.0, centre + half))
    if successes == trials:
        return (max(0.0, centre - half), 1.0)
    return (max(0.0, centre - half), min(1.0, centre + half))


def auc(scores: Sequence[float], truth: Sequence[int]) -> float:
    """Trapezoidal AUC of ``scores`` for binary ``truth`` (1 = diseased): the project's one AUC
    (``inference.evaluation.metrics``); raises ``ValueError`` without both kinds of case."""
    return auc_components(np.asarray(scores, float), np.asarray(truth, int) == 1)[0]


@dataclass(frozen=True)
class AucEstimate:
    auc: float
    variance: float
    ci: tuple[float, float]

    @property
    def se(self) -> float:
        return float(np.sqrt(self.variance))


def structural_components(scores: np.ndarray, truth: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(AUC, V10 per diseased case, V01 per non-diseased case), by midranks (``inference.evaluation.metrics``)."""
    return auc_components(np.asarray(scores, float), np.asarray(truth, int) == 1)


def delong(scores: Sequence[float], truth: Sequence[int], clusters: Sequence[Any] | None = None) -> AucEstimate:
    """AUC with DeLong's variance and a 95 % normal-approximation confidence interval, clipped to [0, 1]
    as pROC does (an AUC near 1 with a small sample would otherwise get an upper bound above 1).

    ``clusters``: the sampling unit of each score (a breast's woman): the variance is then Obuchowski's (1997)
    for clustered data, which is DeLong's when every cluster holds one score (:func:`clustered_delong_cov`)."""
    scores, truth = np.asarray(scores, float), np.asarray(truth, int)
    if not ((truth == 1).any() and (truth != 1).any()):  # no AUC at all: one kind of case only
        return AucEstimate(float("nan"), float("nan"), (float("nan"), float("nan")))
    value, v10, v01 = structural_components(scores, truth)
    if v10.size < 2 or v01.size < 2:  # DeLong's variance needs two cases of each kind
        return AucEstimate(value, float("nan"), (float("nan"), float("nan")))
    if clusters is not None:
        variance = float(clustered_delong_cov(scores[None, :], truth, cluster_codes(clusters))[0, 0])
    else:
        variance = float(np.var(v10, ddof=1) / v10.size + np.var(v01, ddof=1) / v01.size)
    if not np.isfinite(variance):  # every diseased (or non-diseased) unit in one cluster
        return AucEstimate(value, float("nan"), (float("nan"), float("nan")))
    half = Z95 * np.sqrt(max(variance, 0.0))
    return AucEstimate(value, variance, (float(max(0.0, value - half)), float(min(1.0, value + half))))


def cluster_codes(clusters: Sequence[Any]) -> np.ndarray:
    """Each unit's cluster as an integer code (0 .. G-1), in a fixed order."""
    names = _ordered(clusters)
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[c] for c in clusters], int)


def _cluster_sums(scores: np.ndarray, truth: np.ndarray, codes: np.ndarray):
    """For cells of scores (cells, K) over units with ``truth`` and cluster ``codes``: the AUCs, each cluster's
    sums of the positives' V10 and of the negatives' V01 (cells, G), its counts of positives and negatives, and
    M and N (the structural components summed per cluster, as Obuchowski 1997 writes them)."""
    positive = truth == 1
    groups = int(codes.max()) + 1
    components = [structural_components(row, truth) for row in scores]
    theta = np.array([c[0] for c in components])
    a = np.zeros((len(scores), groups))
    b = np.zeros((len(scores), groups))
    for cell, (_, v10, v01) in enumerate(components):
        np.add.at(a[cell], codes[positive], v10)
        np.add.at(b[cell], codes[~positive], v01)
    m_i = np.bincount(codes[positive], minlength=groups).astype(float)
    n_i = np.bincount(codes[~positive], minlength=groups).astype(float)
    return theta, a, b, m_i, n_i, float(positive.sum()), float((~positive).sum())


def clustered_delong_cov(scores: np.ndarray, truth: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Covariance of the AUCs of the cells of ``scores`` (cells, K) when the K units come in clusters (both
    breasts of a woman): Obuchowski (1997), S10/M + S01/N + (S11 + S11')/(MN) with S10 = I10/((I10-1) M)
    sum_i D10_i D10_i', S01 alike, S11 = I/(I-1) sum_i D10_i D01_i', where D10_i = V10(cluster i) - m_i AUC.
    Treated as independent, two correlated breasts counted as two women's."""
    theta, a, b, m_i, n_i, m, n = _cluster_sums(np.atleast_2d(scores), np.asarray(truth, int), codes)
    d10 = a - m_i[None, :] * theta[:, None]
    d01 = b - n_i[None, :] * theta[:, None]
    groups = m_i.size
    i10, i01 = int((m_i > 0).sum()), int((n_i > 0).sum())
    if i10 < 2 or i01 < 2:
        return np.full((len(theta), len(theta)), np.nan)
    s10 = i10 / ((i10 - 1) * m) * d10 @ d10.T
    s01 = i01 / ((i01 - 1) * n) * d01 @ d01.T
    s11 = groups / (groups - 1) * d10 @ d01.T
    return s10 / m + s01 / n + (s11 + s11.T) / (m * n)


def _cluster_jackknife_cov(scores: np.ndarray, truth: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Jackknife covariance of the cells' AUCs leaving out one cluster at a time: (G-1)/G sum_g (theta_(g) -
    mean)(theta'_(g) - mean'). Without cluster g the AUC is (MN theta - N A_g - M B_g + W_g) / ((M - m_g)(N - n_g)),
    W_g its own diseased-against-non-diseased pairs; with one unit a cluster, the case jackknife."""
    theta, a, b, m_i, n_i, m, n = _cluster_sums(scores, truth, codes)
    if ((m - m_i) <= 0).any() or ((n - n_i) <= 0).any():
        raise NotEstimable("one case holds every diseased (or every non-diseased) unit: leaving it out leaves no AUC")
    positive = truth == 1
    within = np.zeros_like(a)
    pos_index, neg_index = np.flatnonzero(positive), np.flatnonzero(~positive)
    same = codes[pos_index][:, None] == codes[neg_index][None, :]
    pairs_p, pairs_n = pos_index[np.nonzero(same)[0]], neg_index[np.nonzero(same)[1]]
    if pairs_p.size:
        x, y = scores[:, pairs_p], scores[:, pairs_n]
        psi = (x > y) + 0.5 * (x == y)
        for cell in range(len(scores)):
            np.add.at(within[cell], codes[pairs_p], psi[cell])
    pseudo = (m * n * theta[:, None] - n * a - m * b + within) / ((m - m_i) * (n - n_i))[None, :]
    groups = pseudo.shape[1]
    centred = pseudo - pseudo.mean(axis=1, keepdims=True)
    return (groups - 1) / groups * centred @ centred.T


def zero_variance_reason(auc_value: float, brief: bool = False) -> str:
    """Why DeLong's variance is 0 for an AUC: its interval would be a point, claiming a certainty no sample gives,
    so none is reported and this says why (``brief``: for a table's cell)."""
    if auc_value in (0.0, 1.0):
        return "complete separation" if brief else "the scores separate every positive from every negative unit"
    return ("one score for all" if brief else
            "the scores rank every positive alike against the negatives and every negative alike (one score for all)")


def roc_points(scores: Sequence[float], truth: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empirical ROC curve: (false-positive rate, true-positive rate, thresholds), via scikit-learn."""
    from sklearn.metrics import roc_curve  # noqa: PLC0415

    fpr, tpr, thresholds = roc_curve(np.asarray(truth, int), np.asarray(scores, float), drop_intermediate=False)
    return fpr, tpr, thresholds


# --------------------------------------------------------------------------------------------------------
# multi-reader multi-case


@dataclass(frozen=True)
class StudyMatrix:
    """Scores of a fully crossed study: ``scores[modality, reader, case]`` with one truth per case."""

    modalities: tuple[Any, ...]
    readers: tuple[Any, ...]
    cases: tuple[Any, ...]
    truth: np.ndarray
    scores: np.ndarray
    clusters: np.ndarray | None = None  # each case's cluster code (the woman of a breast), None: independent


def _get(record: Any, key: str) -> Any:
    if isinstance(record, Mapping):
        return record[key]
    return getattr(record, key)


def _ordered(values: Iterable[Any]) -> tuple[Any, ...]:
    """Distinct values in a fixed order (sorted), so that the order of the records never matters."""
    distinct = set(values)
    try:
        return tuple(sorted(distinct))
    except TypeError:  # mixed types: any fixed order will do
        return tuple(sorted(distinct, key=repr))


class NotEstimable(ValueError):
    """An analysis that the data cannot support (one reader, one class of truth, no variance): ``reason``
    says why in words a study coordinator understands; ``reader_mean`` holds what could still be computed."""

    def __init__(self, reason: str, reader_mean: Mapping[Any, float] | None = None) -> None:
        super().__init__(f"not estimable: {reason}")
        self.reason = reason
        self.reader_mean = dict(reader_mean or {})


def study_matrix(records: Iterable[Any], modalities: Sequence[Any] | None = None) -> StudyMatrix:
    """Arrange rows with ``reader, modality, case, truth, score`` (dicts or objects) into a matrix.

    Modalities are in the order given by ``modalities`` (else sorted), readers and cases sorted: the matrix
    does not depend on the order of the records. Raises ``ValueError`` when the design is not fully crossed
    or a case's truth is inconsistent, :class:`NotEstimable` when only one class of truth is present.
    """
    records = list(records)
    rows = [(_get(r, "modality"), _get(r, "reader"), _get(r, "case"), int(_get(r, "truth")), float(_get(r, "score")))
            for r in records]
    if not rows:
        raise ValueError("no records")
    cluster_of = {_get(r, "case"): _cluster(r) for r in records}
    present = _ordered(r[0] for r in rows)
    if modalities is None:
        modalities = present
    else:
        modalities = tuple(modalities)
        if len(set(modalities)) != len(modalities):
            raise ValueError(f"modalities named twice: {modalities!r}")
        if set(present) != set(modalities):
            raise ValueError(f"the records hold modalities {present!r}, not {modalities!r}")
    readers = _ordered(r[1] for r in rows)
    cases = _ordered(r[2] for r in rows)
    m_index = {m: i for i, m in enumerate(modalities)}
    r_index = {r: i for i, r in enumerate(readers)}
    c_index = {c: i for i, c in enumerate(cases)}
    scores = np.full((len(modalities), len(readers), len(cases)), np.nan)
    truth = np.full(len(cases), -1)
    for modality, reader, case, t, score in rows:
        k = c_index[case]
        if truth[k] not in (-1, t):
            raise ValueError(f"case {case!r} has two different truths")
        truth[k] = t
        scores[m_index[modality], r_index[reader], k] = score
    if np.isnan(scores).any():
        raise ValueError("the design is not fully crossed: some reader/modality/case scores are missing")
    if not set(np.unique(truth)) <= {0, 1}:
        raise ValueError("truth must be 0 (not diseased) or 1 (diseased)")
    if truth.min() == truth.max():
        kind = "diseased" if truth[0] == 1 else "non-diseased"
        raise NotEstimable(f"every one of the {truth.size} units is {kind}: an AUC needs both kinds")
    named = [cluster_of[case] for case in cases]
    if all(c is None for c in named):
        return StudyMatrix(tuple(modalities), readers, cases, truth, scores)
    if any(c is None for c in named):
        raise ValueError("some records name the case they are a unit of (cluster) and others do not")
    return StudyMatrix(tuple(modalities), readers, cases, truth, scores, cluster_codes(named))


def _cluster(record: Any) -> Any:
    """The record's cluster (the case a breast-level unit is of), or None."""
    if isinstance(record, Mapping):
        return record.get("cluster")
    return getattr(record, "cluster", None)


def auc_matrix(matrix: StudyMatrix) -> np.ndarray:
    """AUC per (modality, reader)."""
    t, r, _ = matrix.scores.shape
    return np.array([[auc(matrix.scores[i, j], matrix.truth) for j in range(r)] for i in range(t)])


def covariance_matrix(matrix: StudyMatrix, method: str) -> np.ndarray:
    """Covariance of the cell AUC estimates, (t*r) x (t*r), cells ordered modality-major. With clustered units
    (``matrix.clusters``: a woman's two breasts) the jackknife leaves out a cluster at a time and DeLong's is
    Obuchowski's; with one unit a cluster both are the plain ones."""
    t, r, _ = matrix.scores.shape
    truth = matrix.truth
    if matrix.clusters is not None and method in ("delong", "jackknife"):
        cells = matrix.scores.reshape(t * r, -1)
        if method == "delong":
            return clustered_delong_cov(cells, truth, matrix.clusters)
        return _cluster_jackknife_cov(cells, truth, matrix.clusters)
    components = [structural_components(matrix.scores[i, j], truth) for i in range(t) for j in range(r)]
    theta = np.array([c[0] for c in components])
    v10 = np.array([c[1] for c in components])  # (cells, m)
    v01 = np.array([c[2] for c in components])  # (cells, n)
    m, n = v10.shape[1], v01.shape[1]
    if method == "delong":
        return np.cov(v10, ddof=1) / m + np.cov(v01, ddof=1) / n
    if method == "jackknife":
        # leaving out diseased case i: (m*theta - V10_i)/(m-1); non-diseased case j: (n*theta - V01_j)/(n-1)
        without_pos = (m * theta[:, None] - v10) / (m - 1)
        without_neg = (n * theta[:, None] - v01) / (n - 1)
        pseudo = np.concatenate([without_pos, without_neg], axis=1)  # (cells, K)
        k = pseudo.shape[1]
        centred = pseudo - pseudo.mean(axis=1, keepdims=True)
        return (k - 1) / k * centred @ centred.T
    raise ValueError(f"unknown covariance method {method!r}: use 'jackknife' or 'delong'")


@dataclass(frozen=True)
class ORComponents:
    var: float
    cov1: float
    cov2: float
    cov3: float


def or_components(cov: np.ndarray, t: int, r: int) -> ORComponents:
    """Averages of the covariance matrix: Var (diagonal), Cov1 (same reader, other modality), Cov2 (same
    modality, other reader), Cov3 (both different)."""
    modality = np.repeat(np.arange(t), r)
    reader = np.tile(np.arange(r), t)
    same_m = modality[:, None] == modality[None, :]
    same_r = reader[:, None] == reader[None, :]

    def mean(mask: np.ndarray) -> float:
        return float(cov[mask].mean()) if mask.any() else 0.0

    return ORComponents(
        var=mean(same_m & same_r),
        cov1=mean(~same_m & same_r),
        cov2=mean(same_m & ~same_r),
        cov3=mean(~same_m & ~same_r),
    )


@dataclass(frozen=True)
class ModalityEstimate:
    """One modality's reader-averaged AUC with its standard error and 95 % CI (and df where t-based)."""

    auc: float
    se: float
    ci: tuple[float, float]
    df: float | None = None


@dataclass(frozen=True)
class Comparison:
    """A test of the first modality minus the second; ``reason`` is set (and the statistic, p and CI are
    NaN) when this variant is not estimable from the data."""

    statistic: float
    df: tuple[float, float]
    p: float
    difference: float
    se: float
    ci: tuple[float, float]
    single: dict[Any, ModalityEstimate] = field(default_factory=dict)
    reason: str = ""

    @property
    def estimable(self) -> bool:
        return not self.reason


@dataclass(frozen=True)
class ORHResult:
    """The Obuchowski–Rockette–Hillis analysis of two named modalities: ``difference`` is always
    ``reader_mean[first] - reader_mean[second]`` (``first``, ``second`` = ``modalities``).

    ``F``, ``ddf``, ``p``, ``ci`` are the random-reader random-case (RRRC) test; ``fixed_readers`` (FRRC,
    chi-square with 1 df) and ``fixed_cases`` (RRFC) are the other two generalisations.
    """

    method: str
    modalities: tuple[Any, ...]
    readers: tuple[Any, ...]
    aucs: np.ndarray
    reader_mean: dict[Any, float]
    difference: float
    F: float  # noqa: N815 - the statistic's usual name
    ddf: float
    p: float
    se: float
    ci: tuple[float, float]
    var: float
    cov1: float
    cov2: float
    cov3: float
    var_r: float
    var_tr: float
    ms_t: float
    ms_r: float
    ms_tr: float
    single: dict[Any, ModalityEstimate]
    fixed_readers: Comparison
    fixed_cases: Comparison
    per_reader: list[Comparison]

    @property
    def first(self) -> Any:
        return self.modalities[0]

    @property
    def second(self) -> Any:
        return self.modalities[1]


# A mean square or variance term below this is zero for the analysis: an AUC is reported to 3-4 decimals,
# and a standard error under 1e-6 only means that nothing varied (identical readers, perfect separation).
ZERO_VARIANCE = 1e-12
_NAN_PAIR = (float("nan"), float("nan"))


def hillis_ddf(ms_tr: float, denominator: float, t: int, r: int) -> float:
    """Hillis' (2008) denominator degrees of freedom of the random-reader random-case test, from its error term
    ``denominator`` and the modality-by-reader mean square: infinite where that is zero (every reader's figure of
    merit differs by one amount), as RJafroc gives it; the ROC and FROC analyses alike."""
    return denominator**2 / (ms_tr**2 / ((t - 1) * (r - 1))) if ms_tr > ZERO_VARIANCE else math.inf


def _refuse_unestimable(matrix: StudyMatrix, means: dict) -> None:
    """Raise :class:`NotEstimable` (with the reader means still computed) where the random-reader analysis cannot
    be estimated: one reader, or fewer than two units (two cases, for breasts) of a kind."""
    if matrix.scores.shape[1] < 2:
        raise NotEstimable("a single reader: the random-reader analysis needs at least two readers", means)
    n_pos, n_neg = int((matrix.truth == 1).sum()), int((matrix.truth == 0).sum())
    if min(n_pos, n_neg) < 2:
        raise NotEstimable(f"{n_pos} diseased and {n_neg} non-diseased unit(s): the variance of an AUC needs at "
                           "least two of each", means)
    if matrix.clusters is not None:  # breasts: the sampling unit is the case (both methods need two of a kind)
        holding = [np.unique(matrix.clusters[matrix.truth == kind]).size for kind in (1, 0)]
        if min(holding) < 2:
            raise NotEstimable(f"{holding[0]} case(s) hold the diseased breasts and {holding[1]} the non-diseased: "
                               "a woman's two breasts are one sampling unit, and the variance needs two cases of "
                               "each", means)


def _random_readers_estimate(aucs: np.ndarray, block: np.ndarray, alpha: float) -> ModalityEstimate:
    """One modality's reader-averaged AUC with Hillis' random-reader random-case interval, from its readers'
    AUCs and their (r x r) covariance block."""
    from scipy import stats  # noqa: PLC0415

    r = len(aucs)
    mean = float(aucs.mean())
    cov2 = float(block[~np.eye(r, dtype=bool)].mean())
    ms_r = float(((aucs - mean) ** 2).sum()) / (r - 1)
    term = ms_r + r * max(cov2, 0.0)
    se = float(np.sqrt(term / r))
    # a model's AUC is the same beside every reader (ms_r = 0): the t-based interval becomes normal
    df = term**2 / (ms_r**2 / (r - 1)) if ms_r > ZERO_VARIANCE else np.inf
    q = float(stats.t.ppf(1 - alpha / 2, df))
    return ModalityEstimate(mean, se, (mean - q * se, mean + q * se), df)


def single_modality(records: Iterable[Any], method: str = "jackknife", alpha: float = 0.05) -> ModalityEstimate:
    """The reader-averaged AUC of one modality's records with its ORH random-reader random-case 95 % CI: what a
    study of one modality (unaided reading only) reports, with no comparison to take it from.

    Raises:
        NotEstimable: fewer than two readers, or two units of a kind (two cases of a kind for breasts)."""
    matrix = study_matrix(records)
    t = matrix.scores.shape[0]
    if t != 1:
        raise ValueError(f"single_modality takes one modality's records; they hold {t}")
    aucs = auc_matrix(matrix)[0]
    means = {matrix.modalities[0]: float(aucs.mean())}
    _refuse_unestimable(matrix, means)
    return _random_readers_estimate(aucs, covariance_matrix(matrix, method), alpha)


def orh(records: Iterable[Any], method: str = "jackknife", alpha: float = 0.05,
        compare: tuple[Any, Any] | None = None) -> ORHResult:
    """Obuchowski–Rockette analysis with Hillis' ddf of a fully crossed two-modality study.

    Args:
        records: rows with ``reader, modality, case, truth, score``, in any order.
        method: covariance estimate: ``"jackknife"`` or ``"delong"``.
        alpha: 1 - confidence level.
        compare: the two modalities (A, B): every difference is A minus B. Without it, the two
            modalities of the records in sorted order.

    Raises:
        NotEstimable: the random-reader random-case test cannot be computed from these data (a single
            reader, one kind of truth, fewer than two units of a kind, or no variance); the reason says which.
        ValueError: the records are not a fully crossed design of two modalities.
    """
    from scipy import stats  # noqa: PLC0415 - a second or more to import: only when a study is analysed

    matrix = study_matrix(records, compare)
    t, r, _ = matrix.scores.shape
    if t != 2:
        raise ValueError(f"orh compares two modalities; the records hold {t}")
    aucs = auc_matrix(matrix)
    modality_mean = aucs.mean(axis=1)
    means = {m: float(modality_mean[i]) for i, m in enumerate(matrix.modalities)}
    _refuse_unestimable(matrix, means)
    cov = covariance_matrix(matrix, method)
    comps = or_components(cov, t, r)
    reader_mean_ = aucs.mean(axis=0)
    grand = aucs.mean()
    ms_t = r * float(((modality_mean - grand) ** 2).sum()) / (t - 1)
    ms_r = t * float(((reader_mean_ - grand) ** 2).sum()) / (r - 1)
    resid = aucs - modality_mean[:, None] - reader_mean_[None, :] + grand
    ms_tr = float((resid**2).sum()) / ((t - 1) * (r - 1))
    clipped = max(comps.cov2 - comps.cov3, 0.0)
    var_tr = ms_tr - comps.var + comps.cov1 + comps.cov2 - comps.cov3
    var_r = (ms_r - var_tr - comps.var - (t - 1) * comps.cov1 + comps.cov2 + (t - 1) * comps.cov3) / t
    difference = float(modality_mean[0] - modality_mean[1])

    # random readers, random cases
    denominator = ms_tr + r * clipped
    if denominator <= ZERO_VARIANCE:
        raise NotEstimable("no variance: the readers' AUCs and the units' scores leave a zero error term "
                           "(identical readers, or every AUC the same)", means)
    if ms_tr <= ZERO_VARIANCE and ms_r <= ZERO_VARIANCE:
        raise NotEstimable("every reader has the same AUCs in both modalities (identical readers?): the readers are "
                           "no sample to generalise from", means)
    f_stat = ms_t / denominator
    # every reader's AUC differing between the two by the same amount (MS(T×R) = 0) leaves the cases' term alone:
    # Hillis' ddf is infinite, the F an F(t - 1, ∞), as RJafroc reports it (the test, its interval and every other
    # generalisation were withheld as "not estimable")
    ddf = hillis_ddf(ms_tr, denominator, t, r)
    p = float(stats.f.sf(f_stat, t - 1, ddf) if np.isfinite(ddf) else stats.chi2.sf(f_stat * (t - 1), t - 1))
    se = float(np.sqrt(2.0 / r * denominator))
    tq = float(stats.t.ppf(1 - alpha / 2, ddf))
    ci = (difference - tq * se, difference + tq * se)

    z = float(stats.norm.ppf(1 - alpha / 2))
    single: dict[Any, ModalityEstimate] = {}
    single_fr: dict[Any, ModalityEstimate] = {}
    single_fc: dict[Any, ModalityEstimate] = {}
    for i, modality in enumerate(matrix.modalities):
        block = cov[i * r : (i + 1) * r, i * r : (i + 1) * r]
        var_i = float(np.diag(block).mean())
        cov2_i = float(block[~np.eye(r, dtype=bool)].mean())
        ms_r_i = float(((aucs[i] - modality_mean[i]) ** 2).sum()) / (r - 1)
        mean_i = float(modality_mean[i])
        single[modality] = _random_readers_estimate(aucs[i], block, alpha)
        se_fr = float(np.sqrt(max(var_i + (r - 1) * cov2_i, 0.0) / r))
        single_fr[modality] = ModalityEstimate(mean_i, se_fr, (mean_i - z * se_fr, mean_i + z * se_fr))
        se_fc = float(np.sqrt(ms_r_i / r))
        q_fc = float(stats.t.ppf(1 - alpha / 2, r - 1))
        single_fc[modality] = ModalityEstimate(mean_i, se_fc, (mean_i - q_fc * se_fc, mean_i + q_fc * se_fc), r - 1)

    # fixed readers, random cases
    fr_term = max(comps.var - comps.cov1 + (r - 1) * clipped, 0.0)
    if fr_term > ZERO_VARIANCE:
        chi2 = (t - 1) * ms_t / fr_term
        se_fr = float(np.sqrt(2.0 / r * fr_term))
        fixed_readers = Comparison(
            statistic=float(chi2), df=(t - 1, np.inf), p=float(stats.chi2.sf(chi2, t - 1)), difference=difference,
            se=se_fr, ci=(difference - z * se_fr, difference + z * se_fr), single=single_fr,
        )
    else:
        fixed_readers = Comparison(float("nan"), (t - 1, np.inf), float("nan"), difference, 0.0, _NAN_PAIR,
                                   single_fr, "no case variance: the fixed-reader error term is zero")
    # random readers, fixed cases
    if ms_tr > ZERO_VARIANCE:
        f_fc = ms_t / ms_tr
        se_fc = float(np.sqrt(2.0 * ms_tr / r))
        q_fc = float(stats.t.ppf(1 - alpha / 2, (t - 1) * (r - 1)))
        fixed_cases = Comparison(
            statistic=float(f_fc), df=(t - 1, (t - 1) * (r - 1)), p=float(stats.f.sf(f_fc, t - 1, (t - 1) * (r - 1))),
            difference=difference, se=se_fc, ci=(difference - q_fc * se_fc, difference + q_fc * se_fc),
            single=single_fc)
    else:
        fixed_cases = Comparison(float("nan"), (t - 1, (t - 1) * (r - 1)), float("nan"), difference, 0.0, _NAN_PAIR,
                                 single_fc, "no reader-by-modality variance: the fixed-case error term is zero")
    per_reader = []
    for j in range(r):
        d = float(aucs[0, j] - aucs[1, j])
        a, b = j, r + j
        v = cov[a, a] + cov[b, b] - 2 * cov[a, b]
        if v > ZERO_VARIANCE:
            s = float(np.sqrt(v))
            zz = d / s
            per_reader.append(Comparison(statistic=zz, df=(1, np.inf), p=float(2 * stats.norm.sf(abs(zz))),
                                         difference=d, se=s, ci=(d - z * s, d + z * s)))
        else:
            per_reader.append(Comparison(float("nan"), (1, np.inf), float("nan"), d, 0.0, _NAN_PAIR,
                                         reason="this reader's two AUCs have no case variance"))
    return ORHResult(
        method=method, modalities=matrix.modalities, readers=matrix.readers, aucs=aucs,
        reader_mean=means,
        difference=difference, F=float(f_stat), ddf=float(ddf), p=p, se=se, ci=(float(ci[0]), float(ci[1])),
        var=comps.var, cov1=comps.cov1, cov2=comps.cov2, cov3=comps.cov3, var_r=float(var_r), var_tr=float(var_tr),
        ms_t=ms_t, ms_r=ms_r, ms_tr=ms_tr, single=single, fixed_readers=fixed_readers, fixed_cases=fixed_cases,
        per_reader=per_reader,
    )


def hybrid_records(records: Iterable[Any], model_scores: Mapping[Any, float], modality: Any,
                   calibration: tuple[Mapping[str, Any] | None, Mapping[str, Any] | None] = (None, None),
                   name: str = "hybrid") -> list[dict]:
    """Rows of the human-machine hybrid: for each read of ``modality``, the mean of the reader's score and
    the model's score of that case, the model's put on the reader's scale by ``calibration`` (site record,
    card record; ``inference.evaluation.calibration``). Without one it is the GMIC reader study's plain mean."""
    out = []
    for row in records:
        if _get(row, "modality") != modality:
            continue
        case = _get(row, "case")
        model = calibrated_probability(float(model_scores[case]), *calibration)
        out.append({
            "reader": _get(row, "reader"), "modality": name, "case": case, "truth": _get(row, "truth"),
            "score": hybrid(float(_get(row, "score")), model),
        })
    return out
