"""Site validation: the AUC and its DeLong interval, Wilson intervals, thresholds, paired comparisons named
A - B, recalibration, CBIS-DDSM's outcome files, and ``python main.py validate`` end to end."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from app.validation import calibration as calib
from app.validation.errors import ValidationInputError
from app.validation.metrics import (
    Target,
    at_threshold,
    auc_with_ci,
    paired_comparison,
    parse_target,
    threshold_ci,
    threshold_for,
    wilson,
)
from app.validation.outcomes import read_outcomes

Z = 1.959963984540054


def test_auc_equals_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    truth = (rng.random(400) < 0.2).astype(int)
    scores = np.round(rng.random(400) * 0.6 + 0.3 * truth, 2)  # rounded: many ties, counted half
    assert auc_with_ci(scores, truth)["auc"] == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)


def test_delong_interval_of_a_hand_worked_example():
    # positives 0.8, 0.6, 0.5 and negatives 0.5, 0.3 (one tie, counted one half):
    #   V10 (each positive against the negatives): 0.8 -> (1 + 1)/2 = 1, 0.6 -> 1, 0.5 -> (1/2 + 1)/2 = 3/4
    #   V01 (each negative against the positives): 0.5 -> (1 + 1 + 1/2)/3 = 5/6, 0.3 -> 1
    #   AUC = mean V10 = 11/12
    #   S10 = sample variance of V10 = ((1/12)^2 + (1/12)^2 + (2/12)^2) / 2 = 3/144; S10 / m = 1/144
    #   S01 = sample variance of V01 = ((1/12)^2 + (1/12)^2) / 1 = 2/144;      S01 / n = 1/144
    #   Var = 2/144 = 1/72; CI = 11/12 -/+ 1.96 sqrt(1/72) = 0.68568 .. 1.14765, clipped to 1
    result = auc_with_ci([0.8, 0.6, 0.5, 0.5, 0.3], [1, 1, 1, 0, 0])
    assert result["auc"] == pytest.approx(11 / 12)
    assert result["auc_ci"][0] == pytest.approx(11 / 12 - Z * math.sqrt(1 / 72))
    assert result["auc_ci"][0] == pytest.approx(0.68568, abs=1e-5)
    assert result["auc_ci"][1] == 1.0
    assert (result["n_positive"], result["n_negative"]) == (3, 2)


def test_an_auc_of_one_cancer_against_one_non_cancer_says_it_is_too_few_to_say():
    """'AUC 1.000  1 cancers, 1 non-cancers' was printed with no CI and no word of why."""
    from app.validation.report import _auc_ci

    result = auc_with_ci([0.9, 0.1], [1, 0])
    assert result["auc"] == 1.0 and result["auc_ci"] is None
    assert result["auc_ci_note"] == "no CI: fewer than two cancers or two non-cancers (1 cancer(s), 1 non-cancer(s)): " \
                                    "too few to say"
    assert _auc_ci(result) == "none: fewer than two cancers or two non-cancers"


def test_wholly_separated_classes_get_no_point_interval_but_the_reason():
    """Seen: AUC 1.000 (1.000–1.000) on 12 cancers: DeLong's variance is 0 when every cancer outscores every
    non-cancer, and a point interval claimed a certainty no sample of 12 gives."""
    from app.validation.report import _auc_ci
    from app.validation.subgroups import _cell

    for scores, auc in (([0.9, 0.8, 0.7, 0.2, 0.1], 1.0), ([0.1, 0.2, 0.3, 0.8, 0.9], 0.0)):
        result = auc_with_ci(scores, [1, 1, 1, 0, 0])
        assert result["auc"] == auc and result["auc_ci"] is None
        assert "separate every positive from every negative unit" in result["auc_ci_note"]
        assert _auc_ci(result) == "none: complete separation"
    assert "auc_ci_note" not in auc_with_ci([0.8, 0.6, 0.5, 0.5, 0.3], [1, 1, 1, 0, 0])
    alike = auc_with_ci([0.4] * 5, [1, 1, 1, 0, 0])  # one score for all: AUC 0.5, variance 0 too
    assert alike["auc"] == 0.5 and alike["auc_ci"] is None and "one score for all" in alike["auc_ci_note"]
    assert _auc_ci(alike) == "none: one score for all"
    units = [SimpleNamespace(score=s, outcome=SimpleNamespace(cancer=t)) for s, t in
             zip([0.9] * 12 + [0.1] * 20, [1] * 12 + [0] * 20, strict=True)]
    row = _cell("density", "b", units, None)
    assert row["auc"] == 1.0 and row["auc_ci"] is None and "DeLong's variance is 0" in row["note"]
    assert "auc_ci_note" not in row


def test_wilson_intervals_by_formula():
    # Wilson (1927): (p + z^2/2n -/+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n); 8/10 -> 0.4902 .. 0.9433
    low, high = wilson(8, 10)
    assert (low, high) == pytest.approx((0.490162, 0.943318), abs=1e-6)
    p, n = 8 / 10, 10
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n * n)) / (1 + Z**2 / n)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert wilson(0, 10) == pytest.approx((0.0, 0.277533), abs=1e-6)  # no successes: still an upper bound
    # the bound at 0 (and at 1) exact: the formula's rounding wrote 1.3877787807814457e-17 into a site's CSV
    assert all(wilson(0, n)[0] == 0.0 and wilson(n, n)[1] == 1.0 for n in range(1, 200))
    assert wilson(0, 0) is None


def test_operating_point_counts_and_threshold_for_a_target():
    scores = np.array([0.9, 0.8, 0.7, 0.35, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.0])
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    point = at_threshold(scores, truth, 0.5)  # >= 0.5 called: 3 cancers, 2 non-cancers
    assert (point["tp"], point["fp"], point["tn"], point["fn"]) == (3, 2, 6, 1)
    assert point["sensitivity"]["value"] == 0.75 and point["specificity"]["value"] == 0.75
    assert point["recall_rate"]["value"] == 5 / 12 and point["ppv"]["value"] == 3 / 5
    assert point["ppv"]["ci"] == pytest.approx(list(wilson(3, 5)))
    # specificity 0.75 needs 6 of the 8 non-cancers below: the lowest such threshold is the next score above 0.4
    assert threshold_for(scores, truth, Target("spec", 0.75)) == 0.5
    assert threshold_for(scores, truth, Target("sens", 1.0)) == 0.35
    interval = threshold_ci(scores, truth, Target("spec", 0.75), replicates=200)
    assert interval == threshold_ci(scores, truth, Target("spec", 0.75), replicates=200)  # seeded
    assert interval[0] <= 0.5 <= interval[1]
    assert parse_target("sens=0.85") == Target("sens", 0.85)
    with pytest.raises(ValidationInputError, match="spec=0.9"):
        parse_target("spec=90")


def test_paired_comparison_sign_follows_the_names():
    rng = np.random.default_rng(5)
    truth = (rng.random(300) < 0.3).astype(int)
    good = truth * 1.5 + rng.normal(size=300)
    weak = truth * 0.4 + rng.normal(size=300)
    forward = paired_comparison(good, weak, truth, ("good", "weak"))
    backward = paired_comparison(weak, good, truth, ("weak", "good"))
    assert forward["difference"] > 0 and forward["difference"] == pytest.approx(forward["auc_a"] - forward["auc_b"])
    assert backward["difference"] == pytest.approx(-forward["difference"])
    assert backward["ci"] == pytest.approx([-forward["ci"][1], -forward["ci"][0]])
    assert backward["p"] == pytest.approx(forward["p"]) and forward["p"] < 0.001
    assert (backward["a"], backward["b"]) == ("weak", "good")


def test_recalibration_lowers_the_ece_of_a_miscalibrated_model(tmp_path):
    rng = np.random.default_rng(11)
    risk = rng.beta(1.2, 6.0, size=3000)  # the true probability of cancer
    truth = (rng.random(3000) < risk).astype(int)
    overconfident = 1 / (1 + np.exp(-(3 * np.log(risk / (1 - risk)) + 2.5)))  # far too high and too steep
    record = calib.recalibrate(overconfident, truth)
    assert record["ece_before"] > 0.08
    assert record["ece_after"] < record["ece_before"] / 4
    assert record["method"] == min(("platt", "isotonic"), key=record["cv_log_loss"].get)
    assert record["cv_log_loss"][record["method"]] < record["cv_log_loss"]["uncalibrated"]
    path = calib.calibration_path(tmp_path / "model.pt")
    assert path.name == "model.pt.site_calibration.json"
    first = calib.save_site_calibration(path, record, "Site A", "m", "k", "breast")
    second = calib.save_site_calibration(path, record, "Site A", "m", "k", "breast")
    assert (first["version"], second["version"]) == (1, 2) and second["history"][0]["version"] == 1
    stored = calib.read_site_calibration(path)
    assert stored["site"] == "Site A" and stored["n"] == 3000 and stored["method"] == record["method"]
    assert calib.ece(calib.apply(stored, overconfident), truth) == pytest.approx(record["ece_after"])


def _overconfident(n: int, rate: float, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    risk = np.clip(rng.beta(1.2, 1.2 / rate - 1.2, size=n), 1e-4, 1 - 1e-4)
    truth = (rng.random(n) < risk).astype(int)
    return 1 / (1 + np.exp(-(3 * np.log(risk / (1 - risk)) + 2.5))), truth


def test_a_recalibration_fitted_on_too_few_cancers_is_shown_not_saved(tmp_path):
    """A deployment engineer's validate on 21 breasts (6 cancers) saved an isotonic calibration beside the model
    that mapped every score above 8.3e-05 to 100 %, and the workstation's hybrid used it."""
    from types import SimpleNamespace

    from app.validation.run import _calibration

    scores, truth = _overconfident(400, 0.03)
    assert 5 <= truth.sum() < calib.MIN_SAVED
    checkpoint = tmp_path / "model.pt"
    options = SimpleNamespace(bins=10, save_calibration=True, calibration_folder=None, site="Site A")
    model = SimpleNamespace(model_id="m", model_key="k")
    out, after = _calibration(model, scores, truth, options, checkpoint)
    assert out["recalibration"]["method"] in ("platt", "isotonic") and after is not None  # fitted and shown
    assert out["note"].endswith(f"is shown, not saved: fitted on {truth.sum()} cancers and {400 - truth.sum()} "
                                f"non-cancers, and one that rescales the workstation's hybrid needs at least 20 of each")
    assert not calib.calibration_path(checkpoint).exists()
    # one saved before (the bad one this guards against) is still in use: said, with its version
    calib.save_site_calibration(calib.calibration_path(checkpoint), {**out["recalibration"], "method": "platt",
                                "parameters": {"a": 1.0, "b": 0.0}}, "Site A", "m", "k", "breast")
    out, _ = _calibration(model, scores, truth, options, checkpoint)
    assert "; the earlier site calibration (version 1 of " in out["note"] and "the workstation still uses it" in \
        out["note"]


def test_a_model_id_that_is_a_path_never_writes_outside_the_output_folder(tmp_path):
    """A score table's model ID "/…/deployed/model.pt" (or "../../x") wrote the site calibration beside that
    deployed checkpoint, and the workstation's hybrid then used it: the ID came from the table, not the user."""
    from types import SimpleNamespace

    from app.validation.run import _calibration
    from inference.files import distinct_file_stem

    deployed, out = tmp_path / "deployed", tmp_path / "out"
    deployed.mkdir()
    out.mkdir()
    scores, truth = _overconfident(800, 0.05)
    options = SimpleNamespace(bins=10, save_calibration=True, calibration_folder=out, site="Site A")
    for model_id in (str(deployed / "model.pt"), "../deployed/model.pt", "CON"):
        model = SimpleNamespace(model_id=model_id, model_key="k")
        result, _ = _calibration(model, scores, truth, options, None)
        written = Path(result["recalibration"]["file"])
        assert written.parent == out and written.name == f"{distinct_file_stem(model_id)}.site_calibration.json"
    assert not list(deployed.iterdir()) and len(list(out.iterdir())) == 3
    assert distinct_file_stem("gmic-v2.1") == "gmic-v2.1"  # a plain name stays itself
    assert distinct_file_stem("a/b") != distinct_file_stem("a_b") and distinct_file_stem("CON").startswith("_CON-")
    # a name starting with "-" is an option to the shell's tools ("-c1", a coordinator's batch folder)
    from inference.files import file_stem

    assert distinct_file_stem("-c1").startswith("_-c1-") and file_stem("-123") == "_-123"


def test_an_enriched_set_never_replaces_a_screening_calibration_and_says_what_its_own_is(tmp_path):
    """Seen in a hands-on review: validate on a cancer-enriched set (23 % of the breasts) saved its Platt as version
    2 over a screening-prevalence version 1, and the workstation's calibrated P(malignant) of a raw 0.3 went from
    2.5 % to 19.7 %, with only the PPV note said."""
    from types import SimpleNamespace

    from app.validation.run import _calibration

    checkpoint = tmp_path / "model.pt"
    options = SimpleNamespace(bins=10, save_calibration=True, calibration_folder=None, site="Site A")
    model = SimpleNamespace(model_id="m", model_key="k")
    path = calib.calibration_path(checkpoint)
    enriched_scores, enriched_truth = _overconfident(400, 0.25)
    out, after = _calibration(model, enriched_scores, enriched_truth, options, checkpoint)  # nothing to keep: saved
    assert out["recalibration"]["version"] == 1 and after is not None
    assert "cancers (screening finds under 1 %): its probabilities are those of such a set" in out["note"]
    screening_scores, screening_truth = _overconfident(4000, 0.01, seed=3)
    assert screening_truth.sum() >= calib.MIN_SAVED and screening_truth.mean() <= 0.02
    out, _ = _calibration(model, screening_scores, screening_truth, options, checkpoint)
    assert out["recalibration"]["version"] == 2 and "enriched" not in out["note"]
    before = path.read_bytes()
    out, after = _calibration(model, enriched_scores, enriched_truth, options, checkpoint)
    assert after is not None and "version" not in out["recalibration"]  # shown, not saved
    assert "is shown, not saved: fitted on a set with" in out["note"]
    assert "it would replace the site calibration fitted on a screening-like set (version 2 of " in out["note"]
    assert path.read_bytes() == before
    # without the checkpoint it goes to the output folder, with a word against copying it over the screening one
    folder = SimpleNamespace(bins=10, save_calibration=True, calibration_folder=tmp_path / "out", site="Site A")
    out, _ = _calibration(model, enriched_scores, enriched_truth, folder, None)
    assert "do not copy it over a calibration fitted on screening exams beside the model" in out["note"]
    unsaved = SimpleNamespace(bins=10, save_calibration=False, calibration_folder=tmp_path / "out", site="Site A")
    out, _ = _calibration(model, enriched_scores, enriched_truth, unsaved, None)  # nothing written: nothing to copy
    assert "its probabilities are those of such a set" in out["note"] and "do not copy" not in out["note"]


def test_outcomes_coded_the_wrong_way_round_never_save_a_calibration_that_reverses_the_model(tmp_path):
    """A re-test inverted the cancer column (a coding slip): validate saved Platt with a = -1.6, and the
    workstation's hybrid turned the model's 90.9 % into 1.9 %."""
    from types import SimpleNamespace

    from app.validation.run import _calibration
    from inference.errors import CheckpointError
    from inference.evaluation.calibration import read_site_calibration

    scores, truth = _overconfident(600, 0.2)
    checkpoint = tmp_path / "model.pt"
    options = SimpleNamespace(bins=10, save_calibration=True, calibration_folder=None, site="Site A")
    out, after = _calibration(SimpleNamespace(model_id="m", model_key="k"), scores, 1 - truth, options, checkpoint)
    assert after is None and not calib.calibration_path(checkpoint).exists()
    assert out["note"].startswith("no recalibration: the model's AUC here is 0.") and "below chance" in out["note"]
    inverted = calib.recalibrate(scores, 1 - truth)
    assert inverted["method"] != "platt" and inverted["not_chosen"].startswith("Platt, whose slope here is 0 or below")
    reversed_record = {"format": "mammo-reader site calibration", "version": 1, "model_id": "m", "model_key": "k",
                       "method": "platt", "parameters": {"a": -1.6, "b": 0.2}}
    calib.calibration_path(checkpoint).write_text(json.dumps(reversed_record))
    with pytest.raises(CheckpointError, match="platt's slope a must be above 0 .*; delete it .* or run validate again"):
        read_site_calibration(calib.calibration_path(checkpoint))  # the loader refuses one too, naming the remedy
    # validate on outcomes coded the right way: says the old file is refused, and a new version replaces it
    out, _ = _calibration(SimpleNamespace(model_id="m", model_key="k"), scores, truth, options, checkpoint)
    assert read_site_calibration(calib.calibration_path(checkpoint))["parameters"] != reversed_record["parameters"]
    assert json.loads(calib.calibration_path(checkpoint).with_name("model.pt.site_calibration.json.refused")
                      .read_text()) == reversed_record  # kept aside


def test_an_isotonic_recalibration_never_says_0_or_1():
    scores, truth = _overconfident(300, 0.2)
    steps = calib.fit("isotonic", scores, truth)["y"]
    assert 0.0 < min(steps) and max(steps) < 1.0
    assert calib.apply({"method": "isotonic", "parameters": calib.fit("isotonic", scores, truth)}, scores).max() < 1.0


MASS_HEADER = ["patient_id", "breast_density", "left or right breast", "image view", "abnormality id",
               "abnormality type", "mass shape", "mass margins", "assessment", "pathology", "subtlety",
               "image file path", "cropped image file path", "ROI mask file path"]
CALC_HEADER = ["patient_id", "breast density", "left or right breast", "image view", "abnormality id",
               "abnormality type", "calc type", "calc distribution", "assessment", "pathology", "subtlety",
               "image file path", "cropped image file path", "ROI mask file path"]


def _cbis(path: Path, header: list[str], rows: list[tuple]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for patient, density, side, view, kind, pathology in rows:
            folder = f"{'Mass' if kind == 'mass' else 'Calc'}-Training_{patient}_{side}_{view}"
            writer.writerow([patient, density, side, view, 1, kind, "x", "y", 4, pathology, 3,
                             f"{folder}/1.3.6/1.3.6/000000.dcm", "", ""])
    return path


def test_cbis_ddsm_description_csvs_as_outcomes(tmp_path):
    mass = _cbis(tmp_path / "mass_case_description_train_set.csv", MASS_HEADER, [
        ("P_00001", 3, "LEFT", "CC", "mass", "MALIGNANT"), ("P_00001", 3, "LEFT", "MLO", "mass", "MALIGNANT"),
        ("P_00004", 2, "LEFT", "CC", "mass", "BENIGN"), ("P_00005", 4, "RIGHT", "CC", "mass", "BENIGN")])
    calc = _cbis(tmp_path / "calc_case_description_test_set.csv", CALC_HEADER, [
        ("P_00004", 2, "RIGHT", "MLO", "calcification", "BENIGN_WITHOUT_CALLBACK"),
        ("P_00005", 4, "RIGHT", "MLO", "calcification", "MALIGNANT")])
    outcomes = {o.key: o for o in read_outcomes([mass, calc])}
    assert set(outcomes) == {("P_00001", "L"), ("P_00004", "L"), ("P_00004", "R"), ("P_00005", "R")}
    assert outcomes[("P_00001", "L")].cancer == 1 and outcomes[("P_00001", "L")].density == "c"
    assert outcomes[("P_00004", "R")].cancer == 0  # BENIGN_WITHOUT_CALLBACK is not a cancer
    assert outcomes[("P_00005", "R")].cancer == 1  # a benign mass and a malignant calcification: a cancer
    assert outcomes[("P_00005", "R")].density == "d"
    from_folder = [(o.key, o.cancer, o.density) for o in read_outcomes([tmp_path])]  # a folder of them
    assert from_folder == sorted((o.key, o.cancer, o.density) for o in outcomes.values())
    bad = _cbis(tmp_path / "bad.csv", MASS_HEADER, [("P_00009", 2, "LEFT", "CC", "mass", "MALIGN")])
    with pytest.raises(ValidationInputError, match="bad.csv.*MALIGN"):
        read_outcomes([bad])


# ------------------------------------------------------------------------------------------------------------
# end to end


CHECKPOINT_A = b"weights"  # model A's checkpoint file: the table's key for A names its content hash


def _key(model: str) -> str:
    import hashlib  # noqa: PLC0415

    if model != "A":
        return f"key-{model}"
    blob = hashlib.sha1(b"blob %d\0" % len(CHECKPOINT_A) + CHECKPOINT_A).hexdigest()  # git's blob hash
    return f"gmic:{blob}:percent_t=0.02"


def _rows(exam: str, model: str, breasts: dict[str, float | None], views: dict[str, int]) -> list[dict]:
    common = {"exam_id": exam, "location": f"/archive/{exam}", "model_id": model, "model_label": f"Model {model}",
              "family": "gmic", "model_key": _key(model), "mode": "exact", "numerics": "fp32", "device": "cpu",
              "seconds": 1.0, "analysed_at": "2026-01-01T00:00:00+00:00"}
    rows = []

    def add(level, view, breast, p, counted=True):
        rows.append({**common, "level": level, "view": view, "breast": breast, "kind": "class", "class": "malignant",
                     "probability": p, "counted": counted})
        rows.append({**common, "level": level, "view": view, "breast": breast, "kind": "malignancy",
                     "class": "malignant", "probability": p, "counted": counted})

    for side, p in breasts.items():
        for number, view in enumerate(("CC", "MLO")):
            counted = number < views.get(side, 2) and p is not None  # as the batch: no result, not counted
            add("view", f"{side}-{view}", side, p if counted else None, counted)
        if p is not None:
            add("breast", "", side, p)
    scored = {s: p for s, p in breasts.items() if p is not None}
    if scored:
        side = max(scored, key=scored.get)
        add("exam", "", side, scored[side])
    return rows


@pytest.fixture
def site(tmp_path):
    """A batch table of two models over 120 exams, its failures, the outcomes, and a checkpoint for A."""
    from app.archive.table import SCHEMA, write_scores

    rng = np.random.default_rng(7)
    batch = tmp_path / "batch"
    batch.mkdir()
    tables, outcomes = [], []
    for number in range(120):
        exam = f"E{number:04d}"
        cancer = {"L": int(rng.random() < 0.25), "R": int(rng.random() < 0.1)}
        a = {s: float(1 / (1 + np.exp(-(2.5 * c - 1.5 + rng.normal())))) for s, c in cancer.items()}
        b = {s: float(1 / (1 + np.exp(-(0.8 * c - 1.0 + rng.normal())))) for s, c in cancer.items()}
        if number == 3:
            a["R"] = None  # model A gave no score for this breast
        views = {"L": 1} if number % 10 == 0 else {}
        rows = _rows(exam, "A", a, views) + _rows(exam, "B", b, views)
        tables.append(pa.Table.from_pylist(rows, schema=SCHEMA))
        if number == 119:
            continue  # in the table, without an outcome
        for side, c in cancer.items():
            if (number, side) == (7, "R"):
                continue  # scored, without an outcome (as CBIS-DDSM's undescribed breasts)
            outcomes.append({"exam_id": exam, "breast": side, "cancer": c, "density": "abcd"[number % 4],
                             "manufacturer": ("HOLOGIC", "GE")[number % 2], "age": 45 + number % 30,
                             "study_date": f"2025-{1 + number % 3:02d}-15"})
    outcomes += [{"exam_id": "E9000", "breast": "L", "cancer": 1},  # failed in the batch
                 {"exam_id": "E9001", "breast": "R", "cancer": 0}]  # never analysed
    write_scores(batch, tables)
    (batch / "failures.csv").write_text("exam_id,location,reason,failed_at\nE9000,/archive/E9000,"
                                        "the CC view of the left breast is missing,2026-01-01T00:00:00+00:00\n"
                                        # analysed in part: its scores are in the table and used (a privacy
                                        # reviewer saw it counted as failed)
                                        "E0005,/archive/E0005,the SR was not written,\n"
                                        # analysed in part and without an outcome: not used, so not said to be
                                        # (a deployment engineer saw "2 exams analysed only in part (used)")
                                        "E0119,/archive/E0119,the SEG was not written,\n")
    outcome_file = tmp_path / "outcomes.csv"
    with outcome_file.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["exam_id", "breast", "cancer", "density", "manufacturer", "age",
                                         "study_date"])
        writer.writeheader()
        writer.writerows(outcomes)
    checkpoint = tmp_path / "models" / "a.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(CHECKPOINT_A)
    checkpoint.with_name("a.pt.json").write_text(json.dumps({"calibration": {"method": "none", "operating_points": [
        {"name": "recall", "threshold": 0.5}]}}))
    return batch / "scores.parquet", outcome_file, checkpoint, outcomes


def test_validate_end_to_end(site, tmp_path, capsys):
    from sklearn.metrics import roc_auc_score

    from main import main

    scores, outcome_file, checkpoint, outcomes = site
    out = tmp_path / "out"
    status = main(["validate", "--scores", str(scores), "--outcomes", str(outcome_file), "--out", str(out),
                   "--models", f"A={checkpoint}", "B", "--operating-point", "spec=0.9", "threshold=0.3",
                   "--compare", "A", "B", "--compare", "B", "A", "--site", "Test site"])
    assert status == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    for model in ("A", "B"):
        entry = metrics[model]
        assert {"breast", "exam", "operating_points", "calibration", "subgroups", "drift"} <= set(entry)
        assert {"auc", "auc_ci", "n_positive", "n_negative"} <= set(entry["breast"])
        assert entry["breast"]["auc_ci"][0] < entry["breast"]["auc"] < entry["breast"]["auc_ci"][1]
    # model A's breast AUC over the joined breasts equals scikit-learn's on the same breasts
    joined = [(o["cancer"], o["exam_id"], o["breast"]) for o in outcomes
              if o["exam_id"] < "E0119" and (o["exam_id"], o["breast"]) != ("E0003", "R")]
    import pyarrow.parquet as pq

    table = pq.read_table(scores).to_pylist()
    lookup = {(r["exam_id"], r["breast"]): r["probability"] for r in table
              if r["model_id"] == "A" and r["level"] == "breast" and r["kind"] == "malignancy"}
    truth = [c for c, _, _ in joined]
    assert metrics["A"]["breast"]["auc"] == pytest.approx(roc_auc_score(truth, [lookup[(e, b)] for _, e, b in joined]))
    assert metrics["A"]["breast"]["n_positive"] + metrics["A"]["breast"]["n_negative"] == len(joined)
    # nothing silently dropped
    assert metrics["A"]["unused"]["breasts_without_score"] == ["E0003 R"]
    assert metrics["A"]["unused"]["one_view_breasts"] == 12
    assert metrics["A"]["unused"]["breasts_without_outcome"] == ["E0007 R"]
    account = metrics["accounting"]
    assert account["exams_without_outcome"] == ["E0119"]
    assert [f["exam_id"] for f in account["failed_exams"]] == ["E9000"] and account["failed_exams"][0]["has_outcome"]
    assert account["partial_exams"] == [{"exam_id": "E0005", "reason": "the SR was not written"}]
    assert account["outcome_exams_not_analysed"] == ["E9001"]
    unused = (out / "unused.csv").read_text()
    for text in ("E0119", "E9000", "E9001", "E0003,R", "breast without outcome,A,E0007,R",
                 "exam without exam-level outcome,,E0007,R"):
        assert text in unused
    assert [p["exam_id"] for p in account["exams_without_exam_outcome"]] == ["E0007"]
    assert (out / "calibration.csv").read_text().startswith(
        "model,bin_low,bin_high,count,mean_predicted,observed,count_recalibrated,mean_predicted_recalibrated,")
    # operating points: declared (from the checkpoint's metadata) and requested, at both levels
    points = {(p["level"], p["name"], p["source"]) for p in metrics["A"]["operating_points"]}
    assert {("breast", "recall", "declared"), ("breast", "spec=0.9", "requested"),
            ("exam", "threshold=0.3", "requested")} <= points
    spec = next(p for p in metrics["A"]["operating_points"] if p["name"] == "spec=0.9" and p["level"] == "breast")
    assert spec["specificity"]["value"] >= 0.9 and spec["threshold_ci"][0] <= spec["threshold"] <= spec["threshold_ci"][1]
    assert metrics["B"]["operating_points_note"].startswith("no checkpoint")
    # a set with this many cancers is no screening population: its PPV is not screening's, and says so
    share = metrics["A"]["exam"]["n_positive"] / metrics["A"]["exam"]["n"]
    assert share > 0.02 and f"{100 * share:.1f} % of the exams here" in metrics["A"]["ppv_note"]
    from pypdf import PdfReader

    report_text = " ".join(page.extract_text() for page in PdfReader(out / "validation_report.pdf").pages)
    assert "against under 1 % of screening exams" in " ".join(report_text.split())
    # comparisons: the difference is a - b by name, both ways round
    by_pair = {(c["a"], c["b"], c["level"]): c for c in metrics["comparisons"]}
    forward, backward = by_pair[("A", "B", "breast")], by_pair[("B", "A", "breast")]
    # on the breasts both scored: A's (B scored E0003 R too, A did not), and that one breast is counted
    assert forward["n"] == metrics["A"]["breast"]["n"] and forward["scored_by_one_only"] == 1
    assert forward["auc_a"] == pytest.approx(metrics["A"]["breast"]["auc"])
    assert forward["difference"] == pytest.approx(forward["auc_a"] - forward["auc_b"])
    assert backward["difference"] == pytest.approx(-forward["difference"]) and forward["difference"] > 0
    # subgroups with "too few to say", drift by month
    densities = {s["value"]: s for s in metrics["A"]["subgroups"] if s["variable"] == "density"}
    assert set(densities) == {"a", "b", "c", "d"}
    assert all((s["auc"] is None) == (s["n_positive"] < 10) for s in metrics["A"]["subgroups"])
    assert any(s["note"].startswith("too few to say") for s in metrics["A"]["subgroups"])
    views = {s["value"]: s["n"] for s in metrics["A"]["subgroups"] if s["variable"] == "views"}
    assert views["one view"] == 12
    assert [d["month"] for d in metrics["A"]["drift"]] == ["2025-01", "2025-02", "2025-03"]
    # each subgroup's sensitivity and specificity name the operating point they are at, in the CSV and the PDF
    spec_threshold = spec["threshold"]
    with (out / "subgroups.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["model"] == "A"]
    assert {(r["operating_point"], float(r["threshold"])) for r in rows} == {("spec=0.9", spec_threshold)}
    dense = next(r for r in rows if r["variable"] == "density" and r["value"] == "d")
    assert float(dense["specificity"]) == densities["d"]["specificity"]["value"]
    assert "At the operating point spec=0.9 (threshold" in " ".join(report_text.split())
    assert "density: d" in report_text
    # and each month's share of breasts called at it, the recall rate a service watches
    with (out / "drift.csv").open() as handle:
        months = [r for r in csv.DictReader(handle) if r["model"] == "A"]
    assert {r["operating_point"] for r in months} == {"spec=0.9"}
    for row, entry in zip(months, metrics["A"]["drift"], strict=True):
        assert float(row["recall_rate"]) == entry["recall_rate"]["value"]
        assert float(row["recall_rate_low"]) <= float(row["recall_rate"]) <= float(row["recall_rate_high"])
    assert sum(round(float(r["recall_rate"]) * int(r["n"])) for r in months) == spec["tp"] + spec["fp"]
    # the site calibration: beside A's checkpoint, in B's case in the output folder
    stored = calib.read_site_calibration(checkpoint.with_name("a.pt.site_calibration.json"))
    assert stored["site"] == "Test site" and stored["n"] == metrics["A"]["breast"]["n"]
    assert stored["method"] in ("platt", "isotonic")
    assert metrics["A"]["calibration"]["recalibration"]["method"] == stored["method"]
    assert calib.read_site_calibration(out / "B.site_calibration.json")["model_id"] == "B"
    for name in ("summary", "operating_points", "calibration", "subgroups", "drift", "comparisons", "unused"):
        with (out / f"{name}.csv").open() as handle:
            assert len(list(csv.reader(handle))) > 1, name
    assert (out / "validation_report.pdf").read_bytes().startswith(b"%PDF")
    for name in ("roc", "reliability_A", "subgroups_A", "drift_B"):
        assert (out / f"{name}.png").read_bytes().startswith(b"\x89PNG")


def _outcome_file(path: Path, rows) -> Path:
    """An outcomes CSV of the site fixture's rows (exam_id, breast, cancer)."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["exam_id", "breast", "cancer"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_outcomes_of_cancers_only_say_what_to_add(site, tmp_path, capsys):
    """A file listing only the cancers (the usual first export of a registry) gave "AUC —" and no hint why."""
    from main import main

    scores, _, checkpoint, outcomes = site
    cancers = _outcome_file(tmp_path / "cancers.csv",
                            (o for o in outcomes if o["cancer"] == 1 and o["exam_id"] < "E9000"))
    out = tmp_path / "out"
    assert main(["validate", "--scores", str(scores), "--outcomes", str(cancers), "--out", str(out),
                 "--models", f"A={checkpoint}"]) == 0
    printed = capsys.readouterr().out
    assert "A breast: AUC —" in printed
    assert "note: the outcomes give only cancers" in printed and "with cancer 0" in printed
    note = json.loads((out / "metrics.json").read_text())["A"]["operating_points_note"]
    assert note.endswith("list the screened breasts without cancer with cancer 0")


def test_validate_says_on_the_console_why_no_site_calibration_was_written(site, tmp_path, capsys):
    """Too few cancers for a recalibration: only metrics.json said why the calibration file was missing."""
    from main import main

    scores, _, checkpoint, outcomes = site
    few = [o for o in outcomes if o["cancer"] == 1][:2] + [o for o in outcomes if o["cancer"] == 0][:4]
    outcome_file = _outcome_file(tmp_path / "few.csv", few)
    status = main(["validate", "--scores", str(scores), "--outcomes", str(outcome_file), "--out", str(tmp_path / "o"),
                   "--models", f"A={checkpoint}"])
    printed = capsys.readouterr().out
    assert status == 0
    assert "A: no recalibration: a recalibration needs at least 5 cancers and 5 non-cancers (here 2 and 4)" in printed


def test_a_site_without_a_cancer_still_gets_its_specificity_and_recall_rate(site, tmp_path, capsys):
    """A site before its first cancer: the operating points were left empty, with no reason, though the
    specificity and recall rate at each threshold are the numbers it goes live on."""
    from main import main

    scores, _, checkpoint, outcomes = site
    negatives = _outcome_file(tmp_path / "negatives.csv",
                              (o for o in outcomes if o["cancer"] == 0 and o["exam_id"] < "E9000"))
    out = tmp_path / "out"
    status = main(["validate", "--scores", str(scores), "--outcomes", str(negatives), "--out", str(out),
                   "--models", f"A={checkpoint}", "--operating-point", "spec=0.9", "sens=0.8"])
    assert status == 0, capsys.readouterr().err
    model = json.loads((out / "metrics.json").read_text())["A"]
    points = {(p["level"], p["name"]): p for p in model["operating_points"]}
    assert set(points) == {(level, name) for level in ("breast", "exam") for name in ("recall", "spec=0.9")}
    spec = points[("breast", "spec=0.9")]
    assert spec["specificity"]["value"] >= 0.9 and spec["recall_rate"]["value"] <= 0.1 + 1e-9
    assert spec["sensitivity"]["value"] is None and spec["tp"] == spec["fn"] == 0
    assert model["operating_points_note"].endswith("at the breast level every unit is a non-cancer, and at the exam "
                                                   "level every unit is a non-cancer: the measures of the other kind "
                                                   "(and the targets on them) cannot be given")


def test_a_model_label_and_a_site_name_with_markup_characters_are_printed_as_written(site, tmp_path, capsys):
    """A label with "<b" failed the whole validation PDF (reportlab read it as markup); "&" and "<x>" were
    dropped or changed."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pypdf import PdfReader

    from main import main

    scores, outcome_file, checkpoint, _ = site
    table = pq.read_table(scores)
    labels = ["Model <b A & Co" if v == "Model A" else v for v in table.column("model_label").to_pylist()]
    pq.write_table(table.set_column(table.schema.get_field_index("model_label"), "model_label", pa.array(labels)),
                   scores)
    out = tmp_path / "out"
    status = main(["validate", "--scores", str(scores), "--outcomes", str(outcome_file), "--out", str(out),
                   "--models", f"A={checkpoint}", "--site", "A & B <x>"])
    assert status == 0, capsys.readouterr().err
    text = " ".join(" ".join(page.extract_text().split()) for page in PdfReader(out / "validation_report.pdf").pages)
    assert "Site: A & B <x>" in text and "Model <b A & Co: " in text and "&amp;" not in text


def test_validate_names_an_unknown_model(site, tmp_path, capsys):
    from main import main

    scores, outcome_file, _, _ = site
    status = main(["validate", "--scores", str(scores), "--outcomes", str(outcome_file), "--out",
                   str(tmp_path / "o"), "--models", "C"])
    assert status == 2
    assert "model 'C' cannot be validated" in capsys.readouterr().err


def test_validate_refuses_outcomes_that_match_no_exam_of_the_table(site, tmp_path, capsys):
    """An empty analysis written as if it were one (exit 0, "wrote 12 files") when no exam ID joined."""
    from main import main

    scores, _, _, _ = site
    stray = tmp_path / "stray.csv"
    stray.write_text("exam_id,breast,cancer\nX1,L,1\nX2,R,0\n")
    status = main(["validate", "--scores", str(scores), "--outcomes", str(stray), "--out", str(tmp_path / "o")])
    assert status == 2
    error = capsys.readouterr().err
    assert "no exam of the outcomes (2, e.g. X1, X2) is in the score table (120, e.g. E0000" in error
    assert not (tmp_path / "o").exists()  # the folder made for the output is not left behind, empty
    assert "; " not in error.splitlines()[-1].split("batch's exam ID")[-1]  # no hint where none fits
    stray.write_text("exam_id,breast,cancer\ne0000,L,1\ne0001,R,0\n")
    assert main(["validate", "--scores", str(scores), "--outcomes", str(stray), "--out", str(tmp_path / "o")]) == 2
    assert ("; 2 of them differ from the table's only in capitals (e.g. e0000 and E0000): exam IDs are compared "
            "exactly, write them as the batch did") in capsys.readouterr().err
    stray.write_text("exam_id,breast,cancer\n0007,L,1\n")
    assert main(["validate", "--scores", str(scores), "--outcomes", str(stray), "--out", str(tmp_path / "o")]) == 2
    assert "; 1 of them lies inside one of the table's or the other way round (e.g. 0007 and E0007)" in \
        capsys.readouterr().err
    kept = tmp_path / "kept"
    (kept / "o").mkdir(parents=True)
    (kept / "notes.txt").write_text("the user's")
    assert main(["validate", "--scores", str(scores), "--outcomes", str(stray), "--out", str(kept / "o" / "a" / "b")]) == 2
    assert sorted(p.name for p in kept.rglob("*")) == ["notes.txt", "o"]  # what was there before stays


def test_outcomes_that_partly_miss_the_table_for_capitals_get_the_hint(site, tmp_path):
    """Seen in a hands-on review: 10 of 40 exam IDs in lower case gave exit 0 and "10 not analysed", a quarter of
    the cohort dropped without the hint a wholly unmatched file gets."""
    from app.validation.run import Options, validate
    from app.validation.scores import read_score_table

    scores, outcome_file, _, _ = site
    lines = outcome_file.read_text().splitlines()
    lowered = tmp_path / "lowered.csv"
    lowered.write_text("\n".join([lines[0], *(line.replace("E00", "e00", 1) if line.startswith(("E000", "E001"))
                                              else line for line in lines[1:])]) + "\n")
    result = validate(read_score_table(scores), read_outcomes([lowered]), Options(save_calibration=False), ["A"])
    hint = result.metrics["accounting"]["not_analysed_hint"]
    assert hint.startswith("21 exam(s) of the outcomes are not in the score table; 20 of them differ from the "
                           "table's only in capitals (e.g. e0000 and E0000)")
    plain = validate(read_score_table(scores), read_outcomes([outcome_file]), Options(save_calibration=False), ["A"])
    assert "not_analysed_hint" not in plain.metrics["accounting"]  # E9001, never analysed: nothing like it there


def test_validate_refuses_a_checkpoint_that_is_not_the_table_s_model(site, tmp_path, capsys):
    """Its site calibration would be written beside another model, which the loader would then rescale."""
    from main import main

    scores, outcome_file, checkpoint, _ = site
    other = checkpoint.with_name("other.pt")
    other.write_bytes(b"other weights")
    status = main(["validate", "--scores", str(scores), "--outcomes", str(outcome_file), "--out",
                   str(tmp_path / "o"), "--models", f"A={other}"])
    assert status == 2
    assert "other.pt: this is not the model whose scores the table holds as 'A'" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.site_calibration.json"))


def _table(tmp_path, breasts: dict[str, dict[str, float | None]]):
    """A batch table of model m: per exam, each breast's P (None: no breast row) and the exam row the batch
    writes (the maximum over the breasts it scored)."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    rows = []
    for exam, sides in breasts.items():
        for side, p in sides.items():
            if p is not None:
                rows.append(dict(exam_id=exam, level="breast", view="", breast=side, model_id="m", model_label="m",
                                 kind="malignancy", probability=p, counted=True))
        scored = [p for p in sides.values() if p is not None]
        rows.append(dict(exam_id=exam, level="exam", view="", breast="", model_id="m", model_label="m",
                         kind="malignancy", probability=max(scored) if scored else None, counted=True))
    path = tmp_path / "scores.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_an_exam_with_an_unscored_breast_has_no_exam_score(tmp_path):
    """e0's cancer is in its left breast, which has no images: the right breast's 0.1 is no exam score."""
    from app.validation.outcomes import BreastOutcome  # noqa: PLC0415
    from app.validation.run import Options, validate  # noqa: PLC0415
    from app.validation.scores import read_score_table  # noqa: PLC0415

    breasts = {f"e{i}": {"L": None if i == 0 else (0.8 if i < 10 else 0.2), "R": 0.1} for i in range(30)}
    outcomes = [BreastOutcome(f"e{i}", side, int(i < 10 and side == "L")) for i in range(30) for side in "LR"]
    result = validate(read_score_table(_table(tmp_path, breasts)), outcomes, Options(save_calibration=False), ["m"])
    metrics = result.metrics["m"]
    assert metrics["unused"]["breasts_without_score"] == ["e0 L"]
    assert metrics["unused"]["exams_without_score"] == ["e0"]
    assert (metrics["exam"]["n"], metrics["exam"]["n_positive"], metrics["exam"]["auc"]) == (29, 9, 1.0)


def _with_second_model(path: Path, **columns) -> Path:
    """The table with a copy of model m's rows as model n (its probabilities 0.9 of m's), and ``columns`` set
    on every row (a list: one value a row of m, and the same for n's)."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    rows = pq.read_table(path).to_pylist()
    copies = [{**row, "model_id": "n", "model_label": "n",
               "probability": None if row["probability"] is None else 0.9 * row["probability"]} for row in rows]
    every = rows + copies
    for name, values in columns.items():
        for row, value in zip(every, list(values) * 2, strict=True):
            row[name] = value
    pq.write_table(pa.Table.from_pylist(every), path)
    return path


def test_a_comparison_takes_the_exams_each_model_s_own_measures_take(tmp_path):
    """Seen in a hands-on review: e0, whose cancer breast has no images, had no exam score in the model's exam
    AUC (n 29) but was a cancer scored by its other breast in the paired comparison (n 30): two AUCs of one model
    on one page, on different exams."""
    from app.validation.outcomes import BreastOutcome  # noqa: PLC0415
    from app.validation.run import Options, validate  # noqa: PLC0415
    from app.validation.scores import read_score_table  # noqa: PLC0415

    breasts = {f"e{i}": {"L": None if i == 0 else (0.8 if i < 10 else 0.2 + i / 100), "R": 0.1} for i in range(30)}
    outcomes = [BreastOutcome(f"e{i}", side, int(i < 10 and side == "L")) for i in range(30) for side in "LR"]
    table = read_score_table(_with_second_model(_table(tmp_path, breasts)))
    result = validate(table, outcomes, Options(save_calibration=False, compare=(("m", "n"),)), ["m", "n"])
    by_level = {c["level"]: c for c in result.metrics["comparisons"]}
    assert by_level["exam"]["n"] == result.metrics["m"]["exam"]["n"] == result.metrics["n"]["exam"]["n"] == 29
    assert by_level["exam"]["auc_a"] == pytest.approx(result.metrics["m"]["exam"]["auc"])
    assert by_level["breast"]["n"] == result.metrics["m"]["breast"]["n"] == 59


def test_one_model_id_over_two_checkpoints_or_two_modes_is_refused(tmp_path):
    """Seen in a hands-on review: two batch tables joined (as shards are), one model ID with another file's
    hash in the second, were validated as one model, and its site calibration fitted on both."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    from app.validation.scores import read_score_table  # noqa: PLC0415

    path = _table(tmp_path, {f"e{i}": {"L": 0.5, "R": 0.1} for i in range(4)})
    count = len(pq.read_table(path))
    _with_second_model(path, model_key=["k1"] * (count // 2) + ["k2"] * (count - count // 2))
    with pytest.raises(ValidationInputError, match="model m: the table holds the scores of 2 different checkpoints "
                                                   "under this ID \\(model keys k1, k2\\)"):
        read_score_table(path)
    path = _table(tmp_path, {f"e{i}": {"L": 0.5, "R": 0.1} for i in range(4)})
    _with_second_model(path, model_key=["k1"] * count, mode=["exact"] * (count - 1) + ["fast"])
    with pytest.raises(ValidationInputError, match="model m: the table holds scores of both the exact and the fast"):
        read_score_table(path)
    path = _table(tmp_path, {f"e{i}": {"L": 0.5, "R": 0.1} for i in range(4)})
    _with_second_model(path, model_key=["k1"] * count, mode=["exact"] * count)  # one model, one mode each: read
    assert set(read_score_table(path).models) == {"m", "n"}


def test_a_probability_that_is_no_number_in_0_1_is_refused_by_exam(tmp_path):
    from app.validation.scores import read_score_table  # noqa: PLC0415

    breasts = {f"e{i}": {"L": 0.5, "R": 0.1} for i in range(4)}
    breasts["e2"]["L"] = float("nan")
    with pytest.raises(ValidationInputError, match=r"scores.parquet: exam e2 L, breast level, model m: the "
                                                   r"probability nan is not a number in \[0, 1\]"):
        read_score_table(_table(tmp_path, breasts))


def test_nan_scores_get_no_auc():
    from inference.evaluation.metrics import roc_auc  # noqa: PLC0415

    assert math.isnan(roc_auc([0.9, 0.8, 0.3, float("nan")], [1, 1, 0, 0]))
    assert roc_auc([0.9, 0.8, 0.3, 0.2], [1, 1, 0, 0]) == 1.0


def test_a_screening_like_set_gets_no_enrichment_note():
    from app.validation.run import ppv_note  # noqa: PLC0415

    screening = {"breast": {"n_positive": 6, "n": 2000}, "exam": {"n_positive": 6, "n": 1000}}
    assert ppv_note(screening) == ""
    enriched = {"breast": {"n_positive": 50, "n": 400}, "exam": {"n_positive": 50, "n": 200}}
    assert ppv_note(enriched).startswith("PPV and the recall rate depend on how many cancers the set holds: 12.5 % of "
                                         "the breasts and 25.0 % of the exams here")


def test_every_problem_of_an_outcomes_file_is_named_at_once(tmp_path):
    """The reading stopped at the first bad line: a file with twelve took twelve runs to correct."""
    path = tmp_path / "outcomes.csv"
    # a breast given twice with two truths is among them (it came only once the others were fixed)
    path.write_text("exam_id,breast,cancer,density\ne1,L,1,b\ne1,X,0,b\n,R,1,\ne2,L,2,e\ne2,R,0,\ne1,L,0,b\n")
    with pytest.raises(ValidationInputError) as raised:
        read_outcomes([path])
    assert str(raised.value) == (f"{path}: 4 problems: line 3: breast 'X' is neither L nor R (nor left or right); "
                                 "line 4: exam_id is empty; line 5: cancer '2' is neither 0 nor 1; line 7: exam e1 "
                                 "breast L is cancer 0 here and 1 on line 2")
    path.write_text("exam_id,breast,cancer\ne1,Left,1\ne1,RIGHT,0\ne2,Lymph node,0\n")  # the word, not its letter
    with pytest.raises(ValidationInputError, match=r"outcomes.csv: line 4: breast 'Lymph node' is neither L nor R"):
        read_outcomes([path])
    path.write_text("exam_id,breast,cancer\n" + "".join(f"e{i},L,yes\n" for i in range(12)))
    with pytest.raises(ValidationInputError, match=r"12 problems: line 2: cancer 'yes' .*; line 11: cancer 'yes' "
                                                   r"is neither 0 nor 1; and 2 more$"):
        read_outcomes([path])
    first, second = tmp_path / "site_a.csv", tmp_path / "site_b.csv"  # across two files: both named
    first.write_text("exam_id,breast,cancer\ne1,L,1\n")
    second.write_text("exam_id,breast,cancer\ne1,L,0\n")
    with pytest.raises(ValidationInputError) as raised:
        read_outcomes([first, second])
    assert str(raised.value) == f"{second}: exam e1 breast L is cancer 0 here and 1 in site_a.csv"
    cbis = tmp_path / "mass_case_description_test_set.csv"
    cbis.write_text("patient_id,left or right breast,image view,pathology\nP_1,LEFT,CC,MALIGNANT\n"
                    "P_2,MIDDLE,CC,BENIGN\nP_3,RIGHT,CC,UNKNOWN\n")
    with pytest.raises(ValidationInputError, match="2 problems: line 3: 'left or right breast' is 'MIDDLE', not "
                                                   "LEFT or RIGHT; line 4: pathology 'UNKNOWN' is none of"):
        read_outcomes([cbis])


def test_a_breast_given_twice_with_other_facts_is_refused_and_a_spreadsheet_s_header_and_numbers_are_read(tmp_path):
    """Seen in a hands-on review: e1 L twice, dated 2026-04-26 and 2019-01-01, was merged without a word (the
    first date kept, a blank density filled from the other row); 'Exam_ID,Breast,Cancer' was refused for its
    capitals, and a cancer of 1.0 (a pandas export) as neither 0 nor 1."""
    path = tmp_path / "outcomes.csv"
    path.write_text("exam_id,breast,cancer,study_date,density\ne1,L,0,2026-04-26,\ne1,R,0,2026-04-26,b\n"
                    "e1,L,0,2019-01-01,d\n")
    with pytest.raises(ValidationInputError) as raised:
        read_outcomes([path])
    assert str(raised.value) == (f"{path}: line 4: exam e1 breast L is given again (first on line 2) with another "
                                 "density (d, not (none)), study_date (2019-01-01, not 2026-04-26); give each breast "
                                 "once")
    path.write_text("Exam_ID,Breast,Cancer\ne1,L,1.0\ne1,R,0.0\ne1,R,0\n")  # the same row twice: one breast
    assert [(o.exam_id, o.breast, o.cancer) for o in read_outcomes([path])] == [("e1", "L", 1), ("e1", "R", 0)]
    other = tmp_path / "other.csv"  # across two files too
    other.write_text("exam_id,breast,cancer,age\ne1,L,1,45\n")
    with pytest.raises(ValidationInputError, match=r"other.csv: exam e1 breast L is given here with another age "
                                                   r"\(45.0, not \(none\)\) than in outcomes.csv; give each breast once"):
        read_outcomes([path, other])


def test_a_spreadsheet_s_code_page_an_empty_cancer_a_self_comparison_and_pseudonyms_are_said_plainly(site, tmp_path):
    """Seen in a hands-on review: a Windows-1252 CSV gave "'utf-8' codec can't decode byte 0xf4 in position 46";
    an empty cancer cell gave no way out; --compare A A printed +0.000, p = 1.0000; and outcomes against a
    de-identified batch's table, without --batch-source, did not say why nothing joined."""
    import pyarrow.parquet as pq

    from app.validation.run import Options, validate
    from app.validation.scores import read_score_table

    path = tmp_path / "spreadsheet.csv"  # (the site's own outcomes.csv is beside it)
    path.write_bytes("exam_id,breast,cancer,manufacturer\ne1,L,0,GE\ne2,R,1,H\u00f4pital\n".encode("cp1252"))
    with pytest.raises(ValidationInputError, match=r"the outcomes file is not UTF-8 text \(byte 0xf4 on line 3\): "
                                                   r"save it as \"CSV UTF-8\""):
        read_outcomes([path])
    path.write_text("exam_id,breast,cancer\ne1,L,\n")
    with pytest.raises(ValidationInputError, match="line 2: cancer is empty: give 0 or 1, or leave out a breast whose "
                                                   "outcome is not known"):
        read_outcomes([path])
    scores, outcome_file, _, _ = site
    table, outcomes = read_score_table(scores), read_outcomes([outcome_file])
    with pytest.raises(ValidationInputError, match="--compare A A: a model compared with itself differs by nothing"):
        validate(table, outcomes, Options(save_calibration=False, compare=(("A", "A"),)), ["A"])
    rows = pq.read_table(scores).to_pylist()
    for row in rows:
        row["exam_id"] = "anon-" + row["exam_id"].lower()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "anon.parquet")
    with pytest.raises(ValidationInputError, match="the score table is a de-identified batch's .* give --batch-source"):
        validate(read_score_table(tmp_path / "anon.parquet"), outcomes, Options(save_calibration=False), ["A"])


@pytest.mark.parametrize("age", ["nan", "inf", "-3", "200"])
def test_an_age_that_is_no_age_is_refused_by_line(tmp_path, age):
    path = tmp_path / "outcomes.csv"
    path.write_text(f"exam_id,breast,cancer,age\ne1,L,1,52\ne1,R,0,{age}\n")
    with pytest.raises(ValidationInputError, match=f"line 3: age '{age}' is not a number of years"):
        read_outcomes([path])


def test_an_age_outside_every_band_is_no_subgroup():
    from app.validation.subgroups import age_band  # noqa: PLC0415

    assert [age_band(a) for a in (None, 45, 55, 999, float("nan"))] == ["", "<50", "50-59", "", ""]


def test_two_different_scores_for_one_breast_are_refused(tmp_path):
    import pyarrow.parquet as pq  # noqa: PLC0415

    from app.validation.scores import read_score_table  # noqa: PLC0415

    path = _table(tmp_path, {f"e{i}": {"L": 0.5, "R": 0.1} for i in range(3)})
    rows = pq.read_table(path).to_pylist()
    duplicate = [dict(r, probability=0.9) for r in rows if r["exam_id"] == "e1" and r["level"] == "breast"
                 and r["breast"] == "L"]
    pq.write_table(pa.Table.from_pylist(rows + duplicate), path)
    with pytest.raises(ValidationInputError, match="exam e1 L, breast level, model m: the table gives two different "
                                                   r"probabilities \(0.5 and 0.9\)"):
        read_score_table(path)


def test_a_table_without_scores_is_said_not_validated_as_nothing(tmp_path):
    import pyarrow.parquet as pq  # noqa: PLC0415

    from app.archive.table import SCHEMA  # noqa: PLC0415
    from app.validation.outcomes import BreastOutcome  # noqa: PLC0415
    from app.validation.run import Options, validate  # noqa: PLC0415
    from app.validation.scores import read_score_table  # noqa: PLC0415

    pq.write_table(SCHEMA.empty_table(), tmp_path / "scores.parquet")
    with pytest.raises(ValidationInputError, match="the score table holds no model's P\\(malignant\\): it has no scores"):
        validate(read_score_table(tmp_path / "scores.parquet"), [BreastOutcome("e1", "L", 1)], Options())


def _validate_table(tmp_path, breasts: dict[str, dict[str, float | None]], outcomes, **options):
    from app.validation.run import Options, validate  # noqa: PLC0415
    from app.validation.scores import read_score_table  # noqa: PLC0415

    return validate(read_score_table(_table(tmp_path, breasts)), outcomes, Options(**options), ["m"])


def test_a_recalibration_worse_than_none_is_not_saved_and_the_earlier_version_stays(tmp_path):
    """Scores that are already calibrated: Platt and isotonic fitted here only add noise on held-out breasts. The
    workstation's hybrid would apply whatever is saved, so nothing is (the tester's "Platt 0.5549, isotonic
    0.9004 (uncalibrated 0.5207) → platt … Saved as version 1")."""
    from app.validation.outcomes import BreastOutcome  # noqa: PLC0415

    rng = np.random.default_rng(5)
    risk = rng.beta(1.5, 3.0, size=200)
    truth = (rng.random(200) < risk).astype(int)
    record = calib.recalibrate(risk, truth)
    losses = record["cv_log_loss"]
    assert min(losses["platt"], losses["isotonic"]) > losses["uncalibrated"]
    assert record["method"] == "none" and record["parameters"] == {}
    with pytest.raises(ValueError, match="not saved"):
        calib.save_site_calibration(tmp_path / "x.json", record, "Site A", "m", "k", "breast")

    earlier = tmp_path / "out" / "m.site_calibration.json"
    calib.save_site_calibration(earlier, {**record, "method": "platt", "parameters": {"a": 1.0, "b": 0.0}},
                                "Site A", "m", "", "breast")
    before = earlier.read_bytes()
    breasts = {f"e{i}": {"L": float(risk[2 * i]), "R": float(risk[2 * i + 1])} for i in range(100)}
    outcomes = [BreastOutcome(f"e{i}", side, int(truth[2 * i + (side == "R")])) for i in range(100) for side in "LR"]
    result = _validate_table(tmp_path, breasts, outcomes, calibration_folder=tmp_path / "out")
    calibration = result.metrics["m"]["calibration"]
    assert calibration["recalibration"]["method"] == "none" and "file" not in calibration["recalibration"]
    assert calibration["note"].startswith("no recalibration kept: neither Platt")
    assert "no calibration file was written" in calibration["note"]
    assert "the earlier site calibration (version 1 of " in calibration["note"]
    assert f"{earlier}) stays as it was and the workstation still uses it" in calibration["note"]
    assert earlier.read_bytes() == before  # version 1 untouched, no version 2
    assert "m" not in result.recalibrated  # no "recalibrated" panel or CSV columns


def test_an_exam_with_a_breast_without_outcome_has_no_exam_outcome(tmp_path):
    """Outcomes for the left breast only: the right one is not known to be cancer-free, so the truth of an exam
    whose left breast is cancer-free is unknown (as an exam with an unscored breast has no exam score); one with
    a left cancer is a cancer exam whatever the right (dropping those biased the exam level's sensitivity). An
    exam the table holds one breast of (a mastectomy) keeps its exam outcome."""
    from app.validation.outcomes import BreastOutcome  # noqa: PLC0415
    from app.validation.tables import unused_rows  # noqa: PLC0415

    breasts = {f"e{i}": {"L": 0.8 if i % 3 == 0 else 0.2, "R": 0.9 if i % 5 == 0 else 0.1} for i in range(30)}
    breasts["single"] = {"L": 0.7}
    outcomes = [BreastOutcome(f"e{i}", "L", int(i % 3 == 0)) for i in range(30)]  # every exam: L only
    outcomes += [BreastOutcome(f"e{i}", "R", int(i % 5 == 0)) for i in range(10)]  # e0-e9: both breasts
    outcomes += [BreastOutcome("single", "L", 1)]
    from app.validation.run import Options, validate  # noqa: PLC0415
    from app.validation.scores import read_score_table  # noqa: PLC0415

    table = read_score_table(_with_second_model(_table(tmp_path, breasts)))
    metrics = validate(table, outcomes, Options(save_calibration=False, compare=(("m", "n"),)), ["m"]).metrics
    exam = metrics["m"]["exam"]
    # e0-e9 (e0 and e5 have a right cancer; e3, e6, e9 a left one), "single", and the six of e10-e29 with a left
    # cancer (e12, e15 … e27)
    assert (exam["n"], exam["n_positive"]) == (17, 12)
    assert metrics["m"]["breast"]["n"] == 41  # every breast with an outcome still counts at breast level
    partial = metrics["accounting"]["exams_without_exam_outcome"]
    assert [p["exam_id"] for p in partial] == sorted(f"e{i}" for i in range(10, 30) if i % 3)
    assert all(p["breasts"] == ["R"] for p in partial)
    assert next(c for c in metrics["comparisons"] if c["level"] == "exam")["n"] == 17
    rows = [r for r in unused_rows(metrics) if r[0] == "exam without exam-level outcome"]
    assert len(rows) == 14 and rows[0][2:4] == ("e10", "R") and "the exam's own outcome is unknown" in rows[0][4]
    assert len(metrics["m"]["unused"]["breasts_without_outcome"]) == 20  # and each R breast, as before


def _null_row(tmp_path, level: str) -> Path:
    """A table of model m in which one P(malignant) was NaN when a table editor (pandas) saved it: as null."""
    from app.archive.table import SCHEMA  # noqa: PLC0415

    rows = [r for exam in ("e1", "e2") for r in _rows(exam, "m", {"L": 0.6, "R": 0.1}, {})]
    target = next(r for r in rows if r["exam_id"] == "e2" and r["level"] == level and r["kind"] == "malignancy"
                  and r["view"] in ("", "L-CC") and (level == "exam" or r["breast"] == "L"))
    target["probability"] = None
    path = tmp_path / "scores.parquet"
    import pyarrow.parquet as pq  # noqa: PLC0415

    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path)
    return path


@pytest.mark.parametrize(("level", "where"), [("breast", "e2 L, breast"), ("view", "e2 L, view"),
                                              ("exam", "e2, exam")])
def test_a_nan_saved_as_null_where_the_batch_writes_a_number_is_refused_like_inf(tmp_path, level, where):
    """The batch writes null only where a model gave no P(malignant) (an uncounted view, an exam with no scored
    breast; a breast it did not score has no row): a null elsewhere was a NaN, and is refused as inf is."""
    from app.validation.scores import read_score_table  # noqa: PLC0415

    with pytest.raises(ValidationInputError, match=rf"scores.parquet: exam {where} level, model m: the probability "
                                                   r"NaN \(stored as null\) is not a number in \[0, 1\]; the table is "
                                                   r"damaged \(analyse that exam again\)"):
        read_score_table(_null_row(tmp_path, level))


def test_a_score_table_whose_probabilities_an_editor_saved_as_text_is_read_or_refused(tmp_path):
    """Probabilities stored as text crashed validate and study create with a TypeError (a reviewer's table):
    numbers written as text are read as the numbers they say; other text is refused, naming the column."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    from app.archive.study_scores import read_batch_scores  # noqa: PLC0415
    from app.study.errors import StudyError  # noqa: PLC0415
    from app.validation.scores import read_score_table  # noqa: PLC0415

    from app.archive.table import SCHEMA  # noqa: PLC0415

    rows = [r for exam in ("e1", "e2") for r in _rows(exam, "m", {"L": 0.6, "R": 0.1}, {})]
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    pq.write_table(table, tmp_path / "scores.parquet")
    column = table.column_names.index("probability")
    as_text = [None if p is None else repr(p) for p in table.column(column).to_pylist()]
    pq.write_table(table.set_column(column, "probability", pa.array(as_text, pa.string())), tmp_path / "text.parquet")
    exams = read_score_table(tmp_path / "scores.parquet").models["m"].exam
    assert len(exams) == 2 and read_score_table(tmp_path / "text.parquet").models["m"].exam == exams
    words = ["high" if p is not None else None for p in as_text]
    pq.write_table(table.set_column(column, "probability", pa.array(words, pa.string())), tmp_path / "words.parquet")
    with pytest.raises(ValidationInputError, match="words.parquet.*column 'probability' holds string values"):
        read_score_table(tmp_path / "words.parquet")
    with pytest.raises(StudyError, match="column 'probability' holds string values"):
        read_batch_scores(tmp_path / "words.parquet", {})


def test_the_batch_s_own_no_score_is_still_no_score(tmp_path):
    """Written by the batch's own writer: no result on e1's left views (no breast row, uncounted null views) and
    none at all on e2 (its exam row null). Read as no score, not refused."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    from app.archive.sources import ExamItem  # noqa: PLC0415
    from app.archive.table import SCHEMA, score_rows  # noqa: PLC0415
    from app.validation.scores import read_score_table  # noqa: PLC0415
    from inference.intake.views import View  # noqa: PLC0415
    from inference.results.exam_result import (  # noqa: PLC0415
        EntryViewResult,
        ExamResult,
        Mode,
        ModelEntry,
        Provenance,
        ViewResult,
        breast_results,
        exam_decisions,
    )

    entry = ModelEntry("m", "model m", "stub", ("benign", "malignant"), ("malignant",), True, ())

    def exam(scored: tuple[View, ...]) -> ExamResult:
        answer = EntryViewResult({"benign": 0.7, "malignant": 0.3}, {"benign": 0.0, "malignant": 0.0}, (), (), {},
                                 (), "", None)
        views = {v: ViewResult(v, (10, 10), {"m": answer} if v in scored else {},
                               no_result={} if v in scored else {"m": "its output was not finite"})
                 for v in (View.L_CC, View.L_MLO, View.R_CC, View.R_MLO)}
        breasts = breast_results(views, (entry,))
        return ExamResult((entry,), views, breasts, exam_decisions(breasts, (entry,)),
                          Provenance((), "cpu", Mode.EXACT, "test", 1))

    rows = score_rows(ExamItem("e1", "/e1"), exam((View.R_CC, View.R_MLO)), 0.0)
    rows += score_rows(ExamItem("e2", "/e2"), exam(()), 0.0)
    assert any(r["probability"] is None for r in rows if r["level"] == "exam")  # the batch's own null
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp_path / "scores.parquet")
    model = read_score_table(tmp_path / "scores.parquet").models["m"]
    assert model.breast == {("e1", "R"): pytest.approx(0.3)}
    assert model.exam == {"e1": pytest.approx(0.3), "e2": None}
    assert model.views == {("e1", "R"): 2}


def test_calibration_csv_leaves_a_bin_without_breasts_empty():
    """A recalibrated bin no breast falls in has no mean and no observed rate: empty cells, not 0.0, and a count
    of its own so that "empty" differs from "0 % observed"."""
    from app.validation.tables import calibration_rows  # noqa: PLC0415

    before = {"edges": [0.0, 0.5, 1.0], "confidence": [0.2, 0.7], "accuracy": [0.0, 0.5], "count": [4, 2]}
    after = {"edges": [0.0, 0.5, 1.0], "confidence": [0.3, 0.0], "accuracy": [0.25, 0.0], "count": [6, 0]}
    metrics = {"m": {"calibration": {"reliability": before, "recalibration": {"reliability_after": after}}},
               "n": {"calibration": {"reliability": before, "recalibration": None}}, "comparisons": []}
    assert calibration_rows(metrics) == [
        ("m", 0.0, 0.5, 4, 0.2, 0.0, 6, 0.3, 0.25),  # 0 % observed: a number
        ("m", 0.5, 1.0, 2, 0.7, 0.5, 0, "", ""),  # no breast after recalibration: nothing to say
        ("n", 0.0, 0.5, 4, 0.2, 0.0, "", "", ""),  # no recalibration
        ("n", 0.5, 1.0, 2, 0.7, 0.5, "", "", "")]


def test_outcomes_from_a_european_spreadsheet_semicolons_bom_crlf(tmp_path):
    comma = tmp_path / "comma.csv"
    comma.write_text("exam_id,breast,cancer,density,age\ne1,L,1,a,45\ne1,R,0,a,45\ne2,L,0,3,51\n")
    semicolon = tmp_path / "semicolon.csv"
    semicolon.write_bytes(b"\xef\xbb\xbfexam_id;breast;cancer;density;age\r\ne1;L;1;a;45\r\ne1;R;0;a;45\r\n"
                          b"e2;L;0;3;51\r\n")
    expected = [(o.key, o.cancer, o.density, o.age) for o in read_outcomes([comma])]
    assert [(o.key, o.cancer, o.density, o.age) for o in read_outcomes([semicolon])] == expected
    assert len(expected) == 3


def test_outcomes_without_the_columns_name_those_it_has_and_an_empty_file_says_so(tmp_path):
    misnamed = tmp_path / "misnamed.csv"
    misnamed.write_text("Exam,Side,cancer\ne1,L,1\n")  # (capitals alone are read: Exam_ID is exam_id)
    with pytest.raises(ValidationInputError, match=r"misnamed.csv: the outcomes file lacks the column\(s\) breast, "
                                                   r"exam_id \(it needs exam_id, breast and cancer; its header has: "
                                                   r"Exam, Side, cancer\)"):
        read_outcomes([misnamed])
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ValidationInputError, match="empty.csv: the file is empty"):
        read_outcomes([empty])


def _deny_writes_in(monkeypatch, folder: Path) -> None:
    """Writing into ``folder`` fails as in a read-only folder (the tests run as root, whom chmod does not stop):
    the atomic writer's temporary file cannot be made there."""
    import tempfile  # noqa: PLC0415

    make = tempfile.mkstemp

    def mkstemp(suffix=None, prefix=None, dir=None, text=False):  # noqa: A002 - tempfile's own name
        if dir is not None and Path(dir).resolve() == folder.resolve():
            raise PermissionError(13, "Permission denied", str(Path(dir) / f"{prefix}y1cudob6{suffix}"))
        return make(suffix, prefix, dir, text)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_a_read_only_model_folder_still_gets_the_report_and_says_where_the_calibration_went(site, tmp_path,
                                                                                              monkeypatch, capsys):
    from main import main

    scores, outcome_file, checkpoint, _ = site
    _deny_writes_in(monkeypatch, checkpoint.parent)
    out = tmp_path / "out"
    status = main(["validate", "--scores", str(scores), "--outcomes", str(outcome_file), "--out", str(out),
                   "--models", f"A={checkpoint}", "--site", "Test site"])
    error = capsys.readouterr().err
    assert status == 1
    assert (out / "validation_report.pdf").is_file() and (out / "metrics.json").is_file()
    assert (f"error: A: the site calibration could not be saved beside the model: the folder {checkpoint.parent} "
            "cannot be written (Permission denied)") in error
    assert f"written to {out / 'a.pt.site_calibration.json'} instead: copy it into {checkpoint.parent}" in error
    assert ".part" not in error
    assert not checkpoint.with_name("a.pt.site_calibration.json").exists()
    moved = calib.read_site_calibration(out / "a.pt.site_calibration.json")  # ready to be copied beside the model
    assert (moved["model_id"], moved["version"], moved["site"]) == ("A", 1, "Test site")


def test_an_unwritable_output_folder_is_named_before_the_work(site, tmp_path, monkeypatch, capsys):
    from main import main

    scores, outcome_file, _, _ = site
    out = tmp_path / "out"
    out.mkdir()
    _deny_writes_in(monkeypatch, out)
    status = main(["validate", "--scores", str(scores), "--outcomes", str(outcome_file), "--out", str(out)])
    error = capsys.readouterr().err
    assert status == 2
    assert f"error: {out}: the output folder cannot be written (Permission denied)" in error and ".part" not in error


def test_the_roc_legend_wraps_a_long_model_label_inside_the_image():
    """The tester's legend lost its end: "… classifier (synthetic phantoms) breast: AUC 0.9" (cut at 80 characters,
    at the image's edge). Now the whole label is drawn, wrapped, and the canvas grows for it."""
    import cv2  # noqa: PLC0415

    from app.validation.figures import FONT, roc_figure, wrap  # noqa: PLC0415

    truth = np.array([0, 0, 1, 1])
    name = ("Mammo Reader demo sliding-window classifier (synthetic phantoms) breast: AUC 0.935 (0.876–0.994)")
    short = roc_figure([("GMIC breast: AUC 0.812", np.array([0.1, 0.4, 0.35, 0.8]), truth)])
    image = roc_figure([("GMIC breast: AUC 0.812", np.array([0.1, 0.4, 0.35, 0.8]), truth),
                        (name, np.array([0.2, 0.3, 0.6, 0.9]), truth)] * 3)
    ink = (image < 200).any(axis=2)
    assert not ink[:, -8:].any()  # nothing reaches the right edge
    assert not ink[-4:, :].any()  # nor the bottom: the canvas grew for the wrapped lines
    assert image.shape[0] > short.shape[0] == 656 and image.shape[1] == short.shape[1]
    lines = wrap(name, 500, 0.42)
    assert len(lines) == 2 and " ".join(lines) == name  # nothing cut
    assert all(cv2.getTextSize(line, FONT, 0.42, 1)[0][0] <= 500 for line in lines)


def test_a_report_table_fits_the_page_width():
    """The operating-points table ran past the right edge of the A4 page."""
    from reportlab.lib.pagesizes import A4  # noqa: PLC0415
    from reportlab.lib.units import cm  # noqa: PLC0415

    from app.validation.report import _table  # noqa: PLC0415

    frame = A4[0] - 2 * 1.6 * cm - 12  # the page less its margins and the frame's padding
    rows = [["level", "point", "threshold (95 % CI)", "sensitivity", "specificity", "recall rate", "PPV"]]
    rows += [["breast", "90 % specificity (declared)", "0.467 (0.393–0.590)", "58.3 % (38.8–75.5)",
              "91.7 % (78.2–97.1)", "28.3 % (18.5–40.8)", "82.4 % (59.0–93.8)"]] * 4
    width, _ = _table(rows).wrap(frame, 1000)
    assert width <= frame
    narrow = _table([["model", "AUC"], ["A", "0.812"]])
    assert narrow.wrap(frame, 1000)[0] < frame / 2  # a small table keeps its own width
    # a site lead's finding: an interval was cut inside its one word, "(0.000111" / "–0.563)"
    from reportlab.pdfbase.pdfmetrics import stringWidth  # noqa: PLC0415

    from app.validation.report import FONT, PAD, SIZE  # noqa: PLC0415

    rows[1] = [*rows[1][:2], "0.000834 (0.000111–0.563)", *rows[1][3:]]
    table = _table(rows)
    assert table.wrap(frame, 1000)[0] <= frame
    assert table._colWidths[2] >= stringWidth("(0.000111–0.563)", FONT, SIZE) + 2 * PAD  # noqa: SLF001


def test_a_threshold_keeps_its_significant_digits():
    """A model whose scores all lie below 0.001 had its operating point printed as 0.000 in the PDF."""
    from inference.numbers import threshold_text

    assert [threshold_text(v) for v in (0.5, 0.123456, 0.0834, 8.34038874e-05, 0.0)] == \
        ["0.500", "0.123", "0.0834", "8.34×10⁻⁵", "0.000"]
    # a site lead's finding: thresholds of 0.99998 and 0.9999984 were printed "1.000", which recalls no one
    assert [threshold_text(v) for v in (0.9999817213005211, 0.9999983616397029, 0.995, 0.9994, 1.0)] == \
        ["0.999982", "0.9999984", "0.995", "0.9994", "1.000"]
    # wherever a threshold is shown (a review's finding: the screen's model card and the study's points kept
    # ".2f" and ".3f"): the model card's two decimals, with the same care at both ends
    from inference.evaluation.calibration import score_category

    assert [threshold_text(v, 2) for v in (0.4, 0.05, 0.004, 0.996)] == ["0.40", "0.05", "0.004", "0.996"]
    card = {"method": "temperature", "operating_points": [{"name": "90 % specificity", "threshold": 0.9996}]}
    assert score_category(0.5, card) == "below the 90 % specificity threshold (0.9996)"


def test_the_score_table_named_by_its_folder_or_missing_is_said_plainly(tmp_path):
    """A batch folder given as --scores raised pyarrow's words about a report JSON inside it; a missing file
    said only that the table 'could not be read'."""
    from app.validation.scores import read_score_table

    with pytest.raises(ValidationInputError, match="no such file"):
        read_score_table(tmp_path / "missing.parquet")
    with pytest.raises(ValidationInputError, match="a folder with no scores.parquet"):
        read_score_table(tmp_path)


def test_the_roc_title_and_the_y_label_do_not_overlap_and_the_reliability_bins_say_their_counts():
    """The title 'ROC curves' was drawn over 'sensitivity'; the reliability bars had no legend and a bin of one
    breast was drawn as one of twenty."""
    import cv2  # noqa: PLC0415

    from app.validation.figures import FONT, ROC_MARGIN  # noqa: PLC0415
    from inference.evaluation.reliability_diagram import _panel  # noqa: PLC0415
    from inference.evaluation.temperature import ReliabilityBins  # noqa: PLC0415

    (_, title_h), _ = cv2.getTextSize("ROC curves", FONT, 0.55, 1)
    assert 22 < ROC_MARGIN[1] - 10 - title_h  # the y label's top lies below the title's baseline
    edges = np.linspace(0, 1, 3)

    def panel(counts):
        return _panel(ReliabilityBins(edges, np.array([0.2, 0.9]), np.array([0.25, 0.7]), np.array(counts)), "t", [],
                      "predicted", "observed")

    one, two = panel([20, 1]), panel([20, 2])  # the same bars: only the second bin's count differs
    assert one.shape[0] == 420 + 120 + 3 * 20  # the panel and its three legend lines
    changed = np.argwhere((one != two).any(axis=2))
    assert changed.size and changed[:, 1].min() >= 60 + 210  # the count drawn over the second bin only


def test_the_drift_figure_marks_a_gap_of_months_and_the_subgroups_say_a_missing_ci():
    """Months years apart were drawn side by side as neighbours; a subgroup's AUC without a CI was a bare point."""
    from app.validation.figures import _months_apart, drift_figure, forest_figure  # noqa: PLC0415

    assert _months_apart("2016-10", "2025-01") == 99 and _months_apart("2025-01", "2025-02") == 1
    row = {"n": 20, "auc": None, "auc_ci": None, "score_q25": 0.2, "score_median": 0.3, "score_q75": 0.5}
    apart = drift_figure([{**row, "month": "2016-10"}, {**row, "month": "2025-01"}], "t")
    next_to = drift_figure([{**row, "month": "2024-12"}, {**row, "month": "2025-01"}], "t")
    middle = apart.shape[1] // 2 + 15  # between the two months (the plot's left margin is wider than its right)
    column = slice(middle - 20, middle + 20)
    assert (apart[60:300, column] != next_to[60:300, column]).any()  # the dotted line
    point = {"variable": "maker", "value": "S", "n": 22, "n_positive": 12, "auc": 1.0}
    bare = forest_figure([{**point, "auc_ci": [0.9, 1.0], "note": ""}], "t")
    said = forest_figure([{**point, "auc_ci": None, "note": "no CI: complete separation"}], "t")
    assert (bare != said).any()
    # a subgroup whose AUC is 0.054 (CI 0.00-0.115), the worst and the one that matters most: the axis reaches it,
    # its point and bar lie right of the labels (they were drawn over its label, the bar from 0.3 back to 0.12)
    worst = forest_figure([{**point, "auc": 0.054, "auc_ci": [0.0, 0.115]}], "t")
    fine = forest_figure([{**point, "auc": 0.8, "auc_ci": [0.7, 0.9]}], "t")
    assert (worst[:, :310] == fine[:, :310]).all() and (worst[:, 330:] != fine[:, 330:]).any()


def test_the_roc_palette_tells_seven_classes_apart():
    """The attention CNN's seven MIAS classes were drawn with six colours: two curves alike."""
    from app.validation.figures import PALETTE  # noqa: PLC0415

    assert len(set(PALETTE)) == len(PALETTE) >= 7


@pytest.mark.parametrize("value", ["Ελληνικό Νοσοκομείο", "装置 A", "Hôpital Nord"])
def test_a_subgroup_named_in_its_own_letters_is_drawn_not_question_marks(value):
    """OpenCV's figure font has no Greek and no CJK: a subgroup value in Greek or Japanese was drawn as question
    marks. What it draws (Latin with accents, Cyrillic) stays in its font."""
    from app.figure_text import CaptionFonts  # noqa: PLC0415
    from app.validation.figures import forest_figure  # noqa: PLC0415

    if ord(max(value)) > 0x2e80 and len(CaptionFonts(12).runs(value)) == 1:
        pytest.skip("no font on this computer draws Japanese (tests/run.sh installs fonts-droid-fallback)")
    point = {"variable": "site", "n": 22, "n_positive": 12, "auc": 0.8, "auc_ci": [0.7, 0.9], "note": ""}
    drawn = forest_figure([{**point, "value": value}], "t")
    marks = "".join("?" if "\u0370" <= c <= "\u03ff" or c > "\u2e80" else c for c in value)  # OpenCV's "?" a letter
    opencv = forest_figure([{**point, "value": marks}], "t")
    differs = np.argwhere((drawn != opencv).any(axis=2))
    if marks == value:  # nothing OpenCV lacks: drawn by it, as before
        assert not len(differs)
        return
    assert len(differs), "drawn as question marks"
    assert all(r > drawn.shape[0] // 4 and c < drawn.shape[1] // 2 for r, c in differs)  # the label's row alone


def test_a_table_cell_that_would_be_a_formula_is_written_as_text(tmp_path):
    """A device named "=HYPERLINK(…)" in the headers reached subgroups.csv as a formula; numbers stay numbers."""
    from app.validation.tables import _write

    path = _write(tmp_path / "t.csv", ["value", "auc"], [("=HYPERLINK(\"x\")", -0.5), ("GE", 0.9)])
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[1] == ["'=HYPERLINK(\"x\")", "-0.5"] and rows[2] == ["GE", "0.9"]
