"""Site validation: the AUC and its DeLong interval, Wilson intervals, thresholds, paired comparisons named
A - B, recalibration, CBIS-DDSM's outcome files, and ``python main.py validate`` end to end."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

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


def test_wilson_intervals_by_formula():
    # Wilson (1927): (p + z^2/2n -/+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n); 8/10 -> 0.4902 .. 0.9433
    low, high = wilson(8, 10)
    assert (low, high) == pytest.approx((0.490162, 0.943318), abs=1e-6)
    p, n = 8 / 10, 10
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n * n)) / (1 + Z**2 / n)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert wilson(0, 10) == pytest.approx((0.0, 0.277533), abs=1e-6)  # no successes: still an upper bound
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
            counted = number < views.get(side, 2)
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
                                        "the CC view of the left breast is missing,2026-01-01T00:00:00+00:00\n")
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
    assert account["failed_exams"][0]["exam_id"] == "E9000" and account["failed_exams"][0]["has_outcome"]
    assert account["outcome_exams_not_analysed"] == ["E9001"]
    unused = (out / "unused.csv").read_text()
    for text in ("E0119", "E9000", "E9001", "E0003,R", "breast without outcome,A,E0007,R"):
        assert text in unused
    # operating points: declared (from the checkpoint's metadata) and requested, at both levels
    points = {(p["level"], p["name"], p["source"]) for p in metrics["A"]["operating_points"]}
    assert {("breast", "recall", "declared"), ("breast", "spec=0.9", "requested"),
            ("exam", "threshold=0.3", "requested")} <= points
    spec = next(p for p in metrics["A"]["operating_points"] if p["name"] == "spec=0.9" and p["level"] == "breast")
    assert spec["specificity"]["value"] >= 0.9 and spec["threshold_ci"][0] <= spec["threshold"] <= spec["threshold_ci"][1]
    assert metrics["B"]["operating_points_note"].startswith("no checkpoint")
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
    assert not (tmp_path / "o" / "metrics.json").exists()


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
