"""Localisation (FROC) figures of merit and DBM / OR tests against RJafroc's stored values for dataset05
(``shared/reference/rjafroc``), and small examples whose answers are known by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from app.study.analysis import NotEstimable, orh
from app.study.errors import StudyError
from app.study.froc import (
    case_ratings,
    figure_of_merit,
    froc_analysis,
    froc_curve,
    froc_data_from_dict,
    froc_data_to_dict,
    jackknife_foms,
    load_froc_json,
    pseudovalues,
    wafroc_curve,
)
from tests.conftest import SHARED, require_shared

RJAFROC = SHARED / "reference" / "rjafroc"
TOL = 1e-12


@pytest.fixture(scope="module")
def dataset05():
    require_shared(RJAFROC / "dataset05.json")
    return load_froc_json(RJAFROC / "dataset05.json")


def expected(name: str) -> dict:
    path = RJAFROC / "expected" / f"{name}.json"
    require_shared(path)
    return json.loads(path.read_text())["value"]


def table(value: dict) -> dict[str, list]:
    return dict(zip(value["rows"], value["values"]))


def test_dataset05_is_read_as_described(dataset05):
    assert dataset05.modalities == ("1", "2") and len(dataset05.readers) == 9
    assert (dataset05.n_normal, dataset05.n_abnormal) == (45, 47)
    marks = int(np.isfinite(dataset05.nl).sum() + np.isfinite(dataset05.ll).sum())
    assert marks == 1581


@pytest.mark.parametrize("fom", ["wAFROC", "AFROC", "wAFROC1", "AFROC1"])
def test_jackknife_foms_and_pseudovalues_equal_rjafroc(dataset05, fom):
    value = expected(f"Utils__PseudoValues-{fom}")
    foms = figure_of_merit(dataset05, fom)
    jack = jackknife_foms(dataset05, fom)
    np.testing.assert_allclose(jack, np.array(value["jkFomValues"]), rtol=0, atol=TOL)
    np.testing.assert_allclose(pseudovalues(foms, jack), np.array(value["jkPseudoValues"]), rtol=0, atol=TOL)


@pytest.mark.parametrize("fom", ["wAFROC", "HrAuc"])
def test_dbm_mean_squares_equal_rjafroc(dataset05, fom):
    value = expected(f"MeanSquares__dataset05{fom}-DBM")
    dbm = froc_analysis(dataset05, fom, "DBM").dbm
    for term in ("T", "R", "C", "TR", "TC", "RC", "TRC"):
        assert dbm.ms[term] == pytest.approx(value[f"ms{term}"], rel=TOL, abs=TOL), term
    np.testing.assert_allclose(dbm.ms_c_single_t, value["msCSingleT"], rtol=TOL, atol=0)
    np.testing.assert_allclose(dbm.ms_c_single_r, value["msCSingleR"], rtol=TOL, atol=0)


@pytest.mark.parametrize("fom", ["wAFROC", "HrAuc"])
def test_or_mean_squares_equal_rjafroc(dataset05, fom):
    value = expected(f"MeanSquares__dataset05{fom}-OR")
    orm = froc_analysis(dataset05, fom, "OR").orm
    expected_ms = (value["msT"], value["msR"], value["msTR"])
    assert (orm.ms_t, orm.ms_r, orm.ms_tr) == pytest.approx(expected_ms, rel=TOL, abs=TOL)


def test_dbm_variance_components_and_anova_equal_rjafroc(dataset05):
    value = expected("UtilVarComponents__DbmDatasetwAFROC05")
    analysis = froc_analysis(dataset05, "wAFROC", "DBM")
    for name, (estimate,) in table(value["VarCom"]).items():
        assert analysis.variance_components[name] == pytest.approx(estimate, rel=1e-10, abs=TOL), name
    dbm = analysis.dbm
    for term, (ss, df, ms) in table(value["TRCanova"]).items():
        if term == "Total":
            assert (dbm.ss_total, dbm.df_total) == (pytest.approx(ss, rel=TOL), df)
            continue
        assert dbm.df[term] == df, term
        assert (dbm.ss[term], dbm.ms[term]) == pytest.approx((ss, ms), rel=TOL), term
    trt, rdr = table(value["IndividualTrt"]), table(value["IndividualRdr"])
    np.testing.assert_allclose(dbm.ms_r_single_t, trt["msR"][1:], rtol=TOL)
    np.testing.assert_allclose(dbm.ms_c_single_t, trt["msC"][1:], rtol=TOL)
    np.testing.assert_allclose(dbm.ms_rc_single_t, trt["msRC"][1:], rtol=TOL)
    np.testing.assert_allclose(dbm.ms_t_single_r, rdr["msT"][1:], rtol=TOL)
    np.testing.assert_allclose(dbm.ms_c_single_r, rdr["msC"][1:], rtol=TOL)
    np.testing.assert_allclose(dbm.ms_tc_single_r, rdr["msTC"][1:], rtol=TOL)


@pytest.mark.parametrize("fom", ["wAFROC", "AFROC", "HrAuc"])
def test_jackknife_dbm_and_or_give_the_same_random_reader_test(dataset05, fom):
    dbm = froc_analysis(dataset05, fom, "DBM").tests["RRRC"]
    orr = froc_analysis(dataset05, fom, "OR").tests["RRRC"]
    assert (dbm.statistic, dbm.ddf, dbm.p) == pytest.approx((orr.statistic, orr.ddf, orr.p), rel=1e-9)
    assert dbm.differences[0].ci == pytest.approx(orr.differences[0].ci, rel=1e-9)
    for modality in dataset05.modalities:
        assert dbm.single[modality].ci == pytest.approx(orr.single[modality].ci, rel=1e-9)


@pytest.mark.parametrize("method", ["jackknife", "delong"])
def test_hrauc_or_equals_the_roc_analysis_of_the_highest_ratings(dataset05, method):
    """HrAuc is an ROC analysis of each case's highest rating: the app's ORH analysis of those ratings must
    give the same test (one AUC, one covariance)."""
    ratings = case_ratings(dataset05, "HrAuc")
    records = [{"modality": m, "reader": r, "case": c, "truth": int(dataset05.abnormal[k]),
                "score": float(ratings[t, j, k])}
               for t, m in enumerate(dataset05.modalities) for j, r in enumerate(dataset05.readers)
               for k, c in enumerate(dataset05.cases)]
    roc = orh(records, method=method, compare=dataset05.modalities)
    froc = froc_analysis(dataset05, "HrAuc", "OR", covariance=method)
    test = froc.tests["RRRC"]
    assert (test.statistic, test.ddf, test.p) == pytest.approx((roc.F, roc.ddf, roc.p), rel=1e-9)
    assert test.differences[0].ci == pytest.approx(roc.ci, rel=1e-9)
    np.testing.assert_allclose(froc.foms, roc.aucs, rtol=0, atol=TOL)


def test_differences_are_named_a_minus_b_with_ci(dataset05):
    analysis = froc_analysis(dataset05, "wAFROC", "DBM")
    means = analysis.modality_mean()
    for test in analysis.tests.values():
        (difference,) = test.differences
        assert (difference.a, difference.b, difference.name) == ("1", "2", "1 − 2")
        assert difference.estimate == pytest.approx(means["1"] - means["2"], abs=TOL)
        lo, hi = difference.ci
        assert lo < difference.estimate < hi
    assert analysis.tests["FRRC"].statistic_name == "F"
    assert froc_analysis(dataset05, "wAFROC", "OR").tests["FRRC"].statistic_name == "chisq"


def test_wafroc_curve_area_is_the_figure_of_merit(dataset05):
    for fom, weighted in (("wAFROC", True), ("AFROC", False)):
        foms = figure_of_merit(dataset05, fom)
        for t, modality in enumerate(dataset05.modalities):
            for r, reader in enumerate(dataset05.readers):
                curve = wafroc_curve(dataset05, modality, [reader], weighted=weighted)
                assert float(np.trapezoid(curve.y, curve.x)) == pytest.approx(foms[t, r], abs=TOL)
    froc = froc_curve(dataset05, "1")
    assert np.all(np.diff(froc.x) >= 0) and np.all(np.diff(froc.y) >= 0) and froc.y[-1] <= 1


def test_json_form_round_trips(dataset05):
    again = froc_data_from_dict(json.loads(json.dumps(froc_data_to_dict(dataset05))))
    np.testing.assert_array_equal(again.nl, dataset05.nl)
    np.testing.assert_array_equal(again.ll, dataset05.ll)
    np.testing.assert_array_equal(again.weights, dataset05.weights)
    assert again.cases == dataset05.cases and again.lesions == dataset05.lesions


# ---------------------------------------------------------------------------------------------------------
# small studies answered by hand


def tiny(marks, kind="FROC", readers=("a",), modalities=("x",), more_cases=()):
    return froc_data_from_dict({
        "name": "tiny", "description": {"type": kind}, "modalities": list(modalities), "readers": list(readers),
        "cases": [{"id": 1, "abnormal": False, "lesions": []}, {"id": 2, "abnormal": False, "lesions": []},
                  {"id": 3, "abnormal": True, "lesions": [{"id": 1, "weight": 0.75}, {"id": 2, "weight": 0.25}]},
                  *more_cases],
        "marks": [dict(zip(("modality", "reader", "case", "lesion", "rating"), m)) for m in marks],
    }, "tiny.json")


def test_unmarked_lesion_and_unmarked_normal_case_tie_at_one_half():
    # normal 1: NL 3; normal 2: no mark (-inf); lesion 1 rated 4, lesion 2 not marked (-inf)
    data = tiny([("x", "a", 1, None, 3.0), ("x", "a", 3, 1, 4.0), ("x", "a", 3, None, 5.0)])
    # wAFROC: 0.75 * (1 + 1) + 0.25 * (0 + 0.5) over K1*K2 = 2
    assert figure_of_merit(data, "wAFROC")[0, 0] == pytest.approx((0.75 * 2 + 0.25 * 0.5) / 2)
    # AFROC: (1 + 1 + 0 + 0.5) / (K1 * L = 4)
    assert figure_of_merit(data, "AFROC")[0, 0] == pytest.approx(2.5 / 4)
    # wAFROC1: FP over all three cases (3, -inf, 5): lesion 1 (4): 1 + 1 + 0; lesion 2 (-inf): 0 + 0.5 + 0
    assert figure_of_merit(data, "wAFROC1")[0, 0] == pytest.approx((0.75 * 2 + 0.25 * 0.5) / 3)
    assert figure_of_merit(data, "AFROC1")[0, 0] == pytest.approx(2.5 / 6)
    # HrAuc: normals 3, -inf; abnormal max(5, 4) = 5 -> outscores both
    assert figure_of_merit(data, "HrAuc")[0, 0] == pytest.approx(1.0)


def test_wilcoxon_is_for_roc_data_only():
    roc = tiny([("x", "a", 1, None, 2.0), ("x", "a", 2, None, 4.0), ("x", "a", 3, 1, 4.0)], kind="ROC")
    assert figure_of_merit(roc, "Wilcoxon")[0, 0] == pytest.approx((1 + 0.5) / 2)
    with pytest.raises(StudyError, match="ROC data"):
        figure_of_merit(tiny([("x", "a", 3, 1, 4.0)]), "Wilcoxon")


@pytest.mark.parametrize("mark, message", [
    (("x", "a", 9, None, 1.0), "unknown modality, reader or case"),
    (("x", "a", 3, 7, 1.0), "no such lesion"),
    (("x", "a", 3, 1, float("nan")), "rating"),
    (("x", "a", 3, 1, "high"), "has the rating 'high'"),
])
def test_bad_marks_are_named(mark, message):
    with pytest.raises(StudyError, match=message) as error:
        tiny([mark])
    assert "tiny.json" in str(error.value)


def test_a_lesion_marked_twice_is_refused():
    with pytest.raises(StudyError, match="marked twice"):
        tiny([("x", "a", 3, 1, 1.0), ("x", "a", 3, 1, 2.0)])


def test_a_single_reader_is_not_estimable():
    with pytest.raises(NotEstimable, match="single reader"):
        froc_analysis(tiny([("x", "a", 3, 1, 4.0)]))
    data = tiny([("x", "a", 3, 1, 4.0), ("y", "a", 3, 1, 2.0)], modalities=("x", "y"))
    with pytest.raises(NotEstimable, match="single reader") as error:
        froc_analysis(data)
    assert set(error.value.reader_mean) == {"x", "y"}


def test_delong_is_refused_for_localisation_figures_of_merit(dataset05):
    with pytest.raises(StudyError, match="DeLong"):
        froc_analysis(dataset05, "wAFROC", "OR", covariance="delong")


def test_fixed_reader_test_without_case_variance_says_why():
    """Two readers who agree on everything in both modalities: no case or reader variance at all."""
    marks = [(m, r, c, 1, 4.0) for m in ("x", "y") for r in ("a", "b") for c in (3, 4)]
    marks += [(m, r, 1, None, 2.0) for m in ("x", "y") for r in ("a", "b")]
    data = tiny(marks, readers=("a", "b"), modalities=("x", "y"),
                more_cases=[{"id": 4, "abnormal": True, "lesions": [{"id": 1}]}])
    analysis = froc_analysis(data, "wAFROC", "OR")
    for test in analysis.tests.values():
        assert not test.estimable and test.reason and math.isnan(test.p)


# ---------------------------------------------------------------------------------------------------------
# the command line


def test_cli_analyses_a_json_study_and_writes_the_interchange_results(tmp_path, dataset05):
    import cv2  # noqa: PLC0415

    from tests.helpers import run_main  # noqa: PLC0415

    out = tmp_path / "out"
    done = run_main(["study", "froc", "--data", str(RJAFROC / "dataset05.json"), "--fom", "wAFROC", "--method", "OR",
                     "--out", str(out)])
    assert done.returncode == 0, done.stderr
    assert "1 − 2 = " in done.stdout
    results = json.loads((out / "results.json").read_text())
    expected_foms = figure_of_merit(dataset05, "wAFROC")
    assert results["foms"]["2"]["9"] == pytest.approx(expected_foms[1, 8], abs=TOL)
    direct = froc_analysis(dataset05, "wAFROC", "OR").tests
    assert set(results["tests"]) == {"RRRC", "FRRC", "RRFC"}
    rrrc = results["tests"]["RRRC"]
    assert (rrrc["F"], rrrc["ddf"], rrrc["p"]) == pytest.approx((direct["RRRC"].statistic, direct["RRRC"].ddf,
                                                                  direct["RRRC"].p), rel=1e-12)
    (difference,) = rrrc["differences"]
    assert (difference["a"], difference["b"]) == ("1", "2")
    assert difference["ci"] == pytest.approx(list(direct["RRRC"].differences[0].ci), rel=1e-12)
    frrc = results["tests"]["FRRC"]  # OR with fixed readers: a chi-square test
    assert {"chisq", "df", "p"} <= set(frrc) and frrc["df"] == 1
    for name in ("foms.csv", "differences.csv", "modalities.csv", "jackknife.csv"):
        assert (out / name).stat().st_size > 0
    for name in ("froc.png", "wafroc.png"):
        image = cv2.imread(str(out / name))
        assert image is not None and image.std() > 0


def test_the_command_says_bad_input_and_options_without_a_traceback(tmp_path, capsys):
    """Seen hands-on: --alpha 2 / nan and a study without abnormal cases ended in tracebacks."""
    from main import main

    require_shared(RJAFROC / "dataset05.json")
    data = json.loads((RJAFROC / "dataset05.json").read_text())
    data["cases"] = [case for case in data["cases"] if not case["abnormal"]]
    kept = {case["id"] for case in data["cases"]}
    data["marks"] = [mark for mark in data["marks"] if mark["case"] in kept]
    normal = tmp_path / "normal.json"
    normal.write_text(json.dumps(data))
    db = str(tmp_path / "s.db")
    assert main(["study", "--db", db, "froc", "--data", str(normal), "--out", str(tmp_path / "o")]) == 2
    assert "normal.json: not estimable: 45 normal and 0 abnormal case(s)" in capsys.readouterr().err
    for alpha in ("2", "nan"):
        with pytest.raises(SystemExit) as code:
            main(["study", "--db", db, "froc", "--data", str(normal), "--alpha", alpha, "--out", str(tmp_path / "o")])
        assert code.value.code == 2 and "must lie strictly between 0 and 1" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["DBM", "OR"])
def test_a_single_modality_has_its_figure_of_merit_and_intervals_without_a_test(dataset05, method, tmp_path):
    """An unaided localisation study wrote nothing and exited 1 ("a single modality: nothing to compare"). Its
    intervals are the ones the comparison of the two modalities gives each of them (RJafroc's per-modality
    intervals): they use that modality's own mean squares only."""
    from dataclasses import replace

    from app.study.froc_results import write_froc_results

    both = froc_analysis(dataset05, "wAFROC", method)
    for t, modality in enumerate(dataset05.modalities):
        alone = replace(dataset05, modalities=(modality,), nl=dataset05.nl[t : t + 1], ll=dataset05.ll[t : t + 1])
        analysis = froc_analysis(alone, "wAFROC", method)
        assert analysis.modalities == (modality,) and np.array_equal(analysis.foms, both.foms[t : t + 1])
        for name, test in analysis.tests.items():
            assert math.isnan(test.statistic) and test.differences == () and "single modality" in test.reason
            mine, theirs = test.single[modality], both.tests[name].single[modality]
            assert mine.auc == pytest.approx(theirs.auc, abs=1e-12)
            assert mine.ci == pytest.approx(theirs.ci, abs=1e-12) and mine.se == pytest.approx(theirs.se, abs=1e-12)
    written = {p.name for p in write_froc_results(alone, analysis, tmp_path)}
    assert {"results.json", "foms.csv", "modalities.csv", "froc.png", "wafroc.png"} <= written


def test_an_interval_of_a_difference_past_one_is_cautioned_as_the_roc_comparisons_are(dataset05):
    """A coordinator's finding, said of the ROC comparisons and missing here: "95 % CI −1.2013 – −0.3115" of a
    difference of figures of merit, which lies in [−1, 1], stood without a word."""
    from dataclasses import replace

    from app.study.froc_results import froc_cautions

    analysis = froc_analysis(dataset05, "wAFROC", "OR")
    assert not any("passes ±1" in c for c in froc_cautions(dataset05, analysis))  # 9 readers, 92 cases: none
    test = analysis.tests["RRRC"]
    wide = replace(test, differences=(replace(test.differences[0], ci=(-1.2013, -0.3115)),))
    cautions = froc_cautions(dataset05, replace(analysis, tests={**analysis.tests, "RRRC": wide}))
    assert [c for c in cautions if "passes ±1" in c] == [
        "RRRC 1 − 2: its interval (-1.2013 – -0.3115) passes ±1, past what a difference of figures of merit can "
        "be: the normal approximation does not hold with so few cases; the interval is as the analysis gives it, "
        "not clipped"]
