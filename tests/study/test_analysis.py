"""Reader-study statistics against published values (Van Dyke: Iowa OR-DBM MRMC 2.51, RJafroc, MRMCaov;
aSAH: pROC) and small examples whose answers are known exactly."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest

from app.study.analysis import (
    NotEstimable,
    auc,
    delong,
    hybrid_records,
    orh,
    roc_points,
    structural_components,
    study_matrix,
)
from tests.conftest import SHARED, require_shared

MRMC = SHARED / "reference" / "mrmc"


def load_rows(path):
    require_shared(path)
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def vandyke():
    return load_rows(MRMC / "vandyke.csv"), json.loads((MRMC / "expected_vandyke.json").read_text())["datasets"]["vandyke"]


def close(value, expected, digits):
    """Agreement to the printed precision of ``expected`` (``digits`` significant decimals)."""
    return abs(value - expected) <= 0.5 * 10 ** (-digits) + 1e-12


def test_reader_aucs_and_means(vandyke):
    rows, expected = vandyke
    result = orh(rows, "jackknife")
    by = expected["auc_trapezoidal"]["by_modality_reader"]
    assert np.allclose(result.aucs, [by["1"], by["2"]], atol=5e-9)
    assert close(result.reader_mean["1"], 0.89703704, 8) and close(result.reader_mean["2"], 0.94083736, 8)


@pytest.mark.parametrize("method", ["jackknife", "delong"])
def test_or_components_and_rrrc(vandyke, method):
    rows, expected = vandyke
    result = orh(rows, method)
    components = expected[method]["or_components"]
    for ours, key in ((result.var, "Var"), (result.cov1, "Cov1"), (result.cov2, "Cov2"), (result.cov3, "Cov3"),
                      (result.var_r, "VarR"), (result.var_tr, "VarTR")):
        assert abs(ours - components[key]) < 5e-12, key
    rrrc = expected[method]["RRRC_ORH"]
    digits = {"F": 7, "ddf": 6, "p": 9} if method == "jackknife" else {"F": 6, "ddf": 5, "p": 8}
    assert close(result.F, rrrc["F"], digits["F"])
    assert close(result.ddf, rrrc["ddf"], digits["ddf"])
    assert close(result.p, rrrc["p"], digits["p"])
    assert abs(result.ci[0] - rrrc["ci95"][0]) < 5e-10 and abs(result.ci[1] - rrrc["ci95"][1]) < 5e-10
    for modality, single in rrrc["single_modality"].items():
        assert abs(result.single[modality].se - single["se"]) < 5e-8
        assert abs(result.single[modality].df - single["df"]) < 5e-5


def test_anova_and_fixed_factor_variants(vandyke):
    rows, expected = vandyke
    result = orh(rows, "jackknife")
    anova = expected["or_anova_of_aucs"]
    assert abs(result.ms_t - anova["MS_T"]) < 5e-13 and abs(result.ms_r - anova["MS_R"]) < 5e-13
    assert abs(result.ms_tr - anova["MS_TR"]) < 5e-13
    frrc = expected["jackknife"]["FRRC"]
    assert close(result.fixed_readers.statistic, frrc["chi2"], 7) and close(result.fixed_readers.p, frrc["p"], 9)
    assert np.allclose(result.fixed_readers.ci, frrc["ci95"], atol=5e-10)
    per = frrc["per_reader_difference"]
    assert np.allclose([c.difference for c in result.per_reader], per["estimate"], atol=5e-10)
    assert np.allclose([c.se for c in result.per_reader], per["se"], atol=5e-10)
    assert np.allclose([c.p for c in result.per_reader], per["p"], atol=5e-10)
    rrfc = expected["jackknife"]["RRFC"]
    assert close(result.fixed_cases.statistic, rrfc["F"], 3) and close(result.fixed_cases.p, rrfc["p"], 9)
    assert np.allclose(result.fixed_cases.ci, rrfc["ci95"], atol=5e-10)


def test_delong_on_a_case_computed_by_hand():
    # positives 2, 3; negatives 1, 2.5: psi = [[1, 0], [1, 1]] -> AUC 3/4, V10 = (1/2, 1), V01 = (1, 1/2)
    # S10 = S01 = 1/8 -> var = 1/8 / 2 + 1/8 / 2 = 1/8
    estimate = delong([2, 3, 1, 2.5], [1, 1, 0, 0])
    assert estimate.auc == 0.75 and estimate.variance == pytest.approx(0.125, abs=1e-15)
    assert auc([1, 1, 0, 0], [1, 1, 0, 0]) == 1.0 and auc([1, 1], [1, 0]) == 0.5  # tie counts one half
    perfect = delong([5, 6, 7, 1, 2], [1, 1, 1, 0, 0])
    assert perfect.auc == 1.0 and perfect.variance == 0.0
    near = delong([0.9, 0.8, 0.7, 0.75, 0.1, 0.2, 0.3, 0.4], [1, 1, 1, 0, 0, 0, 0, 0])
    assert near.auc == pytest.approx(14 / 15) and near.ci[1] == 1.0 and near.ci[0] < near.auc  # clipped, as pROC


def test_delong_matches_proc_on_asah():
    rows = load_rows(SHARED / "data" / "mrmc-extra" / "asah_delong.csv")
    truth = np.array([int(r["truth"]) for r in rows])
    s100b = np.array([float(r["s100b"]) for r in rows])
    estimate = delong(s100b, truth)
    assert round(estimate.auc, 4) == 0.7314
    assert (round(estimate.ci[0], 4), round(estimate.ci[1], 4)) == (0.6301, 0.8326)
    wfns = np.array([float(r["wfns"]) for r in rows])
    _, a10, a01 = structural_components(wfns, truth)
    _, b10, b01 = structural_components(s100b, truth)
    cov = np.cov(np.vstack([a10, b10])) / a10.size + np.cov(np.vstack([a01, b01])) / a01.size
    z = (a10.mean() - b10.mean()) / np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert round(z, 3) == 2.209  # pROC roc.test(method = "delong")


def test_hybrid_is_the_mean_of_reader_and_model():
    rows = [
        {"reader": "A", "modality": "unaided", "case": c, "truth": t, "score": s}
        for c, t, s in (("x", 1, 0.8), ("y", 0, 0.4), ("z", 1, 0.2))
    ]
    model = {"x": 0.6, "y": 0.1, "z": 0.9}
    hybrid = hybrid_records(rows, model, "unaided")
    assert [h["score"] for h in hybrid] == pytest.approx([0.7, 0.25, 0.55])
    assert auc([h["score"] for h in hybrid], [h["truth"] for h in hybrid]) == 1.0
    assert auc([0.8, 0.4, 0.2], [1, 0, 1]) == 0.5


def test_roc_points_span_the_unit_square():
    fpr, tpr, _ = roc_points([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0])
    assert fpr[0] == 0 and tpr[-1] == 1 and fpr[-1] == 1


def test_design_must_be_fully_crossed():
    rows = [{"reader": 1, "modality": 1, "case": 1, "truth": 1, "score": 1},
            {"reader": 1, "modality": 2, "case": 2, "truth": 0, "score": 1}]
    with pytest.raises(ValueError, match="fully crossed"):
        study_matrix(rows)
    with pytest.raises(ValueError, match="two modalities"):
        orh([{"reader": r, "modality": 1, "case": c, "truth": c % 2, "score": c} for r in (1, 2) for c in range(4)])


# --------------------------------------------------------------------------------------------------------
# "A vs B" is A − B by name, whatever the order of the records; degenerate data are "not estimable"


def test_the_difference_is_first_minus_second_by_name_in_any_record_order(vandyke):
    import random

    rows, expected = vandyke
    rrrc = expected["jackknife"]["RRRC_ORH"]
    shuffled = list(rows)
    random.Random(3).shuffle(shuffled)
    for records in (rows, rows[::-1], shuffled):  # modality "2" first in the reversed records
        one_minus_two = orh(records, "jackknife", compare=("1", "2"))
        assert one_minus_two.first == "1" and close(one_minus_two.difference, rrrc["difference"], 9)
        assert close(one_minus_two.F, rrrc["F"], 7) and close(one_minus_two.p, rrrc["p"], 9)
        assert np.allclose(one_minus_two.ci, rrrc["ci95"], atol=5e-10)
        two_minus_one = orh(records, "jackknife", compare=("2", "1"))
        assert two_minus_one.modalities == ("2", "1")
        assert close(two_minus_one.difference, -rrrc["difference"], 9)
        assert two_minus_one.difference == pytest.approx(two_minus_one.reader_mean["2"] - two_minus_one.reader_mean["1"])
        assert np.allclose(two_minus_one.ci, [-rrrc["ci95"][1], -rrrc["ci95"][0]], atol=5e-10)
        assert two_minus_one.F == pytest.approx(one_minus_two.F) and two_minus_one.p == pytest.approx(one_minus_two.p)
        assert orh(records, "jackknife").modalities == ("1", "2")  # no names given: sorted, never record order
    with pytest.raises(ValueError, match="modalities"):
        orh(rows, compare=("1", "3"))


def _reads(readers, modalities, truth, score):
    return [{"reader": r, "modality": m, "case": c, "truth": t, "score": score(r, m, c)}
            for m in modalities for r in readers for c, t in enumerate(truth)]


PERFECT_MODEL = lambda r, m, c: 0.9 if c < 3 else 0.1 + 0.01 * c  # noqa: E731


def _reader(r, m, c):
    if m == "model":
        return PERFECT_MODEL(r, m, c)
    return [0.6, 0.5, 0.3, 0.2, 0.55, 0.1, 0.45, 0.35][c] + (0.01 * c if r == "B" else 0.0)


@pytest.mark.parametrize("records_order", ["model first", "readers first"])
def test_a_better_model_gives_a_positive_difference(records_order):
    truth = [1, 1, 1, 0, 0, 0, 0, 0]
    rows = _reads(("A", "B"), ("model", "unaided"), truth, _reader)
    if records_order == "readers first":
        rows = rows[::-1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = orh(rows, compare=("model", "unaided"))
    assert result.reader_mean["model"] == 1.0 and result.reader_mean["unaided"] < 1.0
    assert result.difference > 0 and result.difference == pytest.approx(1.0 - result.reader_mean["unaided"])
    assert result.ci[0] < result.difference < result.ci[1] and np.isfinite([result.F, result.ddf, result.p]).all()


@pytest.mark.parametrize("case, why", [
    ("identical readers", "identical readers"),
    ("single reader", "single reader"),
    ("one kind of truth", "every one of the 8 units is non-diseased"),
    ("one diseased unit", "1 diseased and 7 non-diseased"),
    ("all perfect", "no variance"),
])
def test_a_degenerate_analysis_is_not_estimable_without_numpy_warnings(case, why):
    truth = [1, 1, 1, 0, 0, 0, 0, 0]
    readers, score = ("A", "B"), _reader
    if case == "identical readers":
        score = lambda r, m, c: _reader("A", m, c)  # noqa: E731
    elif case == "single reader":
        readers = ("A",)
    elif case == "one kind of truth":
        truth = [0] * 8
    elif case == "one diseased unit":
        truth = [1, 0, 0, 0, 0, 0, 0, 0]
    elif case == "all perfect":
        score = PERFECT_MODEL
    rows = _reads(readers, ("model", "unaided"), truth, score)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy or scipy RuntimeWarning fails the test
        for method in ("jackknife", "delong"):
            with pytest.raises(NotEstimable, match=why) as raised:
                orh(rows, method, compare=("model", "unaided"))
            means = raised.value.reader_mean
            if case != "one kind of truth":  # the AUCs themselves exist: they are kept for the report
                assert set(means) == {"model", "unaided"} and all(0 <= v <= 1 for v in means.values())


# -- clustered units (a woman's two breasts) -----------------------------------------------------------------


def _clustered(seed: int, women: int):
    """Two breasts a woman, their scores sharing the woman's own level, cancers more often in both breasts."""
    rng = np.random.default_rng(seed)
    woman = rng.random(women) < 0.25
    truth = np.stack([woman & (rng.random(women) < 0.8), woman & (rng.random(women) < 0.8)], 1).astype(int)
    common = rng.normal(size=(women, 1)) * 1.5
    scores = (common + 0.5 * rng.normal(size=(women, 2)) + truth).ravel()
    return scores, truth.ravel(), np.repeat(np.arange(women), 2)


def test_clustered_variances_are_the_plain_ones_with_one_unit_a_cluster(vandyke):
    from app.study.analysis import covariance_matrix  # noqa: PLC0415

    rows, _ = vandyke
    plain = study_matrix(rows)
    clustered = study_matrix([{**r, "cluster": r["case"]} for r in rows])
    assert clustered.clusters is not None and plain.clusters is None
    for method in ("delong", "jackknife"):
        np.testing.assert_allclose(covariance_matrix(clustered, method), covariance_matrix(plain, method), rtol=1e-12,
                                   atol=1e-15)
    scores = np.array([float(r["score"]) for r in rows if r["reader"] == "1" and r["modality"] == "1"])
    truth = np.array([int(r["truth"]) for r in rows if r["reader"] == "1" and r["modality"] == "1"])
    assert delong(scores, truth, clusters=list(range(truth.size))).variance == pytest.approx(
        delong(scores, truth).variance, rel=1e-12)


def test_the_cluster_jackknife_leaves_out_a_woman_at_a_time():
    """Checked against the AUCs recomputed without each woman's two breasts."""
    from app.study.analysis import _cluster_jackknife_cov  # noqa: PLC0415

    scores, truth, women = _clustered(3, 40)
    without = np.array([auc(scores[women != g], truth[women != g]) for g in range(40)])
    expected = 39 / 40 * ((without - without.mean()) ** 2).sum()
    assert _cluster_jackknife_cov(scores[None], truth, women)[0, 0] == pytest.approx(expected, rel=1e-12)


def test_clustered_delong_agrees_with_a_bootstrap_of_women_where_the_plain_one_does_not():
    """Breasts counted as independent units: DeLong's variance was 0.66x the spread of the AUC over resampled
    women (correlated breasts; the clustered one 1.07x), so the breast-level CIs and ORH p-values were too small."""
    scores, truth, women = _clustered(1, 300)
    rng = np.random.default_rng(7)
    resampled = []
    for _ in range(3000):
        pick = (rng.integers(0, 300, 300)[:, None] * 2 + np.arange(2)).ravel()
        if 0 < truth[pick].sum() < pick.size:
            resampled.append(auc(scores[pick], truth[pick]))
    bootstrap = np.var(resampled, ddof=1)
    assert delong(scores, truth, clusters=women).variance == pytest.approx(bootstrap, rel=0.1)
    assert delong(scores, truth).variance < 0.75 * bootstrap


def test_breast_level_records_name_their_case_and_orh_uses_it(vandyke):
    """ORH on breast-level rows (two units a case) with their case as the cluster differs from the same rows
    taken as independent; the cluster jackknife's variance components come from leaving out whole cases."""
    rows, _ = vandyke
    breasts = [{**r, "case": f"{r['case']}:{side}", "cluster": r["case"],
                "score": float(r["score"]) + (0.0 if side == "L" else 0.5)} for r in rows for side in ("L", "R")]
    independent = [{k: v for k, v in r.items() if k != "cluster"} for r in breasts]
    clustered, plain = orh(breasts, "jackknife"), orh(independent, "jackknife")
    assert clustered.difference == pytest.approx(plain.difference, abs=1e-12)  # the AUCs are the same
    assert clustered.p != pytest.approx(plain.p, rel=1e-3)


@pytest.mark.parametrize("method", ["jackknife", "delong"])
def test_one_woman_holding_every_cancer_is_not_estimable_with_the_readers_means_kept(method):
    """Found in review: the jackknife raised without the readers' means ('no AUCs'), DeLong's gave NaN."""
    rng = np.random.default_rng(4)
    rows = []
    for case in range(6):
        for side in ("L", "R"):
            truth = int(case == 0)  # a bilateral cancer: the study's only one so far
            for reader in ("A", "B"):
                for modality in ("aided", "unaided"):
                    rows.append({"reader": reader, "modality": modality, "case": f"c{case}:{side}",
                                 "cluster": f"c{case}", "truth": truth, "score": truth + rng.random()})
    with pytest.raises(NotEstimable, match="1 case.s. hold the diseased breasts and 5 the non-diseased") as raised:
        orh(rows, method)
    assert set(raised.value.reader_mean) == {"aided", "unaided"}
    scores = np.array([r["score"] for r in rows if r["reader"] == "A" and r["modality"] == "aided"])
    truth = np.array([r["truth"] for r in rows if r["reader"] == "A" and r["modality"] == "aided"])
    clusters = [r["cluster"] for r in rows if r["reader"] == "A" and r["modality"] == "aided"]
    assert np.isnan(delong(scores, truth, clusters).variance) and np.isnan(delong(scores, truth, clusters).ci[0])


def test_clustered_delong_covariance_between_cells_matches_the_pairwise_definition():
    """The cross terms (S11 and its transpose) of two correlated cells, against a direct computation of the
    linearised AUC: theta_hat - theta ~ sum_i (D10_i / M + D01_i / N) over the clusters."""
    from app.study.analysis import clustered_delong_cov  # noqa: PLC0415

    rng = np.random.default_rng(11)
    women = 25
    truth = (rng.random(2 * women) < 0.35).astype(int)
    clusters = np.repeat(np.arange(women), 2)
    base = rng.normal(size=2 * women) + truth
    cells = np.stack([base + 0.3 * rng.normal(size=base.size), base + 0.6 * rng.normal(size=base.size)])
    positive, negative = np.flatnonzero(truth == 1), np.flatnonzero(truth == 0)
    m, n = positive.size, negative.size
    parts = []
    for cell in cells:
        psi = (cell[positive][:, None] > cell[negative][None, :]) + 0.5 * (cell[positive][:, None] == cell[negative])
        theta = psi.mean()
        d10 = np.array([psi[clusters[positive] == g].sum() / n - (clusters[positive] == g).sum() * theta
                        for g in range(women)])
        d01 = np.array([psi[:, clusters[negative] == g].sum() / m - (clusters[negative] == g).sum() * theta
                        for g in range(women)])
        parts.append((d10, d01))
    i10 = len(set(clusters[positive]))
    i01 = len(set(clusters[negative]))
    expected = np.empty((2, 2))
    for r in range(2):
        for s in range(2):
            (a10, a01), (b10, b01) = parts[r], parts[s]
            expected[r, s] = (i10 / ((i10 - 1) * m) * a10 @ b10 / m + i01 / ((i01 - 1) * n) * a01 @ b01 / n
                              + women / (women - 1) * (a10 @ b01 + b10 @ a01) / (m * n))
    np.testing.assert_allclose(clustered_delong_cov(cells, truth, clusters), expected, rtol=1e-12)


def test_readers_whose_aucs_differ_by_one_amount_get_the_test_with_infinite_ddf():
    """A coordinator's test: three readers with unaided AUCs 0.5–0.7 whose aided AUCs were each exactly 2/24 higher
    (MS(T×R) = 0) were told "not estimable (identical readers?)", the intervals and the fixed-reader p withheld too.
    Hillis' ddf is then infinite, F an F(1, ∞), as RJafroc reports it; the fixed-case test alone has no error term.
    Here one cancer, last of every reader's unaided scores, is first of the aided ones: +1/3 for each reader."""
    from scipy import stats

    truth = [1, 1, 1, 0, 0, 0, 0, 0]
    base = {"A": [0.2, 0.5, 0.6, 0.3, 0.4, 0.45, 0.55, 0.35], "B": [0.2, 0.7, 0.28, 0.3, 0.6, 0.25, 0.4, 0.35],
            "C": [0.2, 0.8, 0.7, 0.3, 0.6, 0.25, 0.4, 0.35]}

    def score(reader, modality, case):
        value = base[reader][case]
        return 0.1 if (case == 0 and modality == "unaided") else 0.95 if case == 0 else value

    rows = _reads(("A", "B", "C"), ("aided", "unaided"), truth, score)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("jackknife", "delong"):
            result = orh(rows, method, compare=("aided", "unaided"))
            steps = result.aucs[0] - result.aucs[1]
            assert steps == pytest.approx([1 / 3] * 3) and len(set(np.round(result.aucs[1], 6))) == 3
            assert result.ms_tr == pytest.approx(0.0, abs=1e-15) and result.ddf == np.inf
            denominator = 3 * max(result.cov2 - result.cov3, 0.0)
            assert result.F == pytest.approx(result.ms_t / denominator)
            assert result.p == pytest.approx(stats.chi2.sf(result.F, 1))  # F(1, ∞) is chi-square(1)
            half = stats.norm.ppf(0.975) * np.sqrt(2 / 3 * denominator)
            assert result.ci == pytest.approx((1 / 3 - half, 1 / 3 + half))
            assert result.fixed_readers.estimable and np.isfinite(result.fixed_readers.p)
            assert not result.fixed_cases.estimable and "fixed-case error term is zero" in result.fixed_cases.reason
            assert all(np.isfinite(e.ci).all() for e in result.single.values())
            from app.study.results import comparison_caution

            assert "the ddf are ∞ (as RJafroc gives them) and the test is as liberal as it can be" in (
                comparison_caution(result))


def test_an_froc_test_with_infinite_ddf_is_an_f_over_infinity_and_says_so_in_its_files():
    """The FROC analysis's random-reader test, as the ROC one: an infinite Hillis ddf (MS(T×R) = 0) gives F(1, ∞),
    a chi-square(1) p and z intervals; shown "∞", written "Inf" (R's spelling) in a CSV."""
    from scipy import stats

    from app.study.froc import _f_test
    from inference.numbers import df_cell, df_text

    test = _f_test("RRRC", ["a", "b"], np.array([0.8, 0.7]), 0.02, 0.004, 1, np.inf, 0.05, {}, "unused", 0.05)
    assert test.statistic == pytest.approx(5.0) and test.ddf == np.inf and test.reason == ""
    assert test.p == pytest.approx(stats.chi2.sf(5.0, 1))
    (difference,) = test.differences
    assert difference.ci == pytest.approx((0.1 - 1.959964 * 0.05, 0.1 + 1.959964 * 0.05), abs=1e-6)
    assert (df_text(np.inf), df_text(15.2597), df_text(2.1e21), df_cell(np.inf), df_cell(float("nan")),
            df_cell(3.5)) == ("∞", "15.26", "2.1e+21", "Inf", "", 3.5)
    none = _f_test("RRRC", ["a", "b"], np.array([0.8, 0.7]), 0.02, 0.0, 1, np.inf, 0.05, {}, "no variance", 0.05)
    assert none.reason == "no variance" and np.isnan(none.p)
    # the caution, as the ROC comparisons give it, at ∞ and at a vast finite ddf (MS(T×R) just above zero: a review)
    from types import SimpleNamespace

    from app.study.froc_results import froc_cautions

    data = SimpleNamespace(n_normal=40, n_abnormal=40, readers=("A", "B", "C"))
    for ddf, shown in ((np.inf, "∞"), (6.4e15, "6.4e+15")):
        rrrc = _f_test("RRRC", ["a", "b"], np.array([0.8, 0.7]), 0.02, 0.004, 1, ddf, 0.05, {}, "unused", 0.05)
        said = froc_cautions(data, SimpleNamespace(cautions=(), tests={"RRRC": rrrc}))
        assert any(c.startswith("RRRC: every reader's figure of merit differs") and f"the ddf are {shown} " in c
                   for c in said), said
    finite = _f_test("RRRC", ["a", "b"], np.array([0.8, 0.7]), 0.02, 0.004, 1, 15.3, 0.05, {}, "unused", 0.05)
    assert not froc_cautions(data, SimpleNamespace(cautions=(), tests={"RRRC": finite}))
