"""The CSV tables of a validation (one per section of ``metrics.json``), written atomically."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

from app.validation.run import RESERVED
from inference.files import write_text_atomic
from inference.spreadsheet_cells import text_writer

MEASURES = ("sensitivity", "specificity", "recall_rate", "ppv")


def _ci(pair: list[float] | None) -> tuple:
    return (pair[0], pair[1]) if pair else ("", "")


def _value(entry: dict | None) -> tuple:
    if not entry:
        return ("", "", "")
    return (entry["value"] if entry["value"] is not None else "", *_ci(entry["ci"]))


def _write(path: Path, header: list[str], rows: Iterable[Iterable]) -> Path:
    text = io.StringIO()
    writer = text_writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)  # a device "=…": text
    return write_text_atomic(path, text.getvalue())


def _models(metrics: dict) -> list[tuple[str, dict]]:
    return [(m, v) for m, v in metrics.items() if m not in RESERVED]


def write_tables(metrics: dict, out: Path) -> list[Path]:
    models = _models(metrics)
    paths = [_write(out / "summary.csv",
                    ["model", "label", "level", "n", "n_positive", "n_negative", "auc", "auc_low", "auc_high"],
                    [(m, v["label"], level, v[level]["n"], v[level]["n_positive"], v[level]["n_negative"],
                      v[level]["auc"], *_ci(v[level]["auc_ci"])) for m, v in models for level in ("breast", "exam")])]
    header = ["model", "level", "name", "source", "threshold", "threshold_low", "threshold_high", "tp", "fp", "tn",
              "fn"] + [f"{k}{s}" for k in MEASURES for s in ("", "_low", "_high")]
    paths.append(_write(out / "operating_points.csv", header, [
        (m, p["level"], p["name"], p["source"], p["threshold"], *_ci(p["threshold_ci"]), p["tp"], p["fp"], p["tn"],
         p["fn"], *[x for k in MEASURES for x in _value(p[k])]) for m, v in models for p in v["operating_points"]]))
    paths.append(_write(out / "calibration.csv", ["model", "bin_low", "bin_high", "count", "mean_predicted",
                                                  "observed", "count_recalibrated", "mean_predicted_recalibrated",
                                                  "observed_recalibrated"], calibration_rows(metrics)))
    paths.append(_write(out / "subgroups.csv",
                        ["model", "variable", "value", "n", "n_positive", "n_negative", "auc", "auc_low", "auc_high",
                         "note", "operating_point", "threshold", "sensitivity", "sensitivity_low", "sensitivity_high", "specificity",
                         "specificity_low", "specificity_high"],
                        [(m, s["variable"], s["value"], s["n"], s["n_positive"], s["n_negative"], s["auc"],
                          *_ci(s["auc_ci"]), s["note"], s.get("operating_point"), s.get("threshold"), *_value(s.get("sensitivity")),
                          *_value(s.get("specificity"))) for m, v in models for s in v["subgroups"]]))
    paths.append(_write(out / "drift.csv",
                        ["model", "month", "n", "n_positive", "n_negative", "auc", "auc_low", "auc_high", "note",
                         "score_mean", "score_median", "score_q25", "score_q75", "operating_point", "threshold",
                         "recall_rate", "recall_rate_low", "recall_rate_high"],
                        [(m, d["month"], d["n"], d["n_positive"], d["n_negative"], d["auc"], *_ci(d["auc_ci"]),
                          d["note"], d["score_mean"], d["score_median"], d["score_q25"], d["score_q75"],
                          d.get("operating_point"), d.get("threshold"), *_value(d.get("recall_rate")))
                         for m, v in models for d in v["drift"]]))
    paths.append(_write(out / "comparisons.csv",
                        ["a", "b", "level", "n", "n_positive", "n_negative", "auc_a", "auc_b", "difference_a_minus_b",
                         "ci_low", "ci_high", "p", "scored_by_one_only"],
                        [(c["a"], c["b"], c["level"], c["n"], c["n_positive"], c["n_negative"], c["auc_a"], c["auc_b"],
                          c["difference"], *_ci(c["ci"]), c["p"], c["scored_by_one_only"])
                         for c in metrics["comparisons"]]))
    paths.append(_write(out / "unused.csv", ["what", "model", "exam_id", "breast", "reason"], unused_rows(metrics)))
    return paths


def _bin(bins: dict | None, i: int) -> tuple:
    """(count, mean predicted, observed) of bin ``i``: an empty bin has no mean and no rate (empty cells, not
    the 0.0 the reliability arrays hold for it); without a recalibration, three empty cells."""
    if not bins:
        return ("", "", "")
    if not bins["count"][i]:
        return (0, "", "")
    return (bins["count"][i], bins["confidence"][i], bins["accuracy"][i])


def calibration_rows(metrics: dict) -> list[tuple]:
    """Per model and reliability bin: its range, then count, mean prediction and observed cancer rate before and
    after the site recalibration."""
    rows = []
    for m, v in _models(metrics):
        bins = v["calibration"].get("reliability")
        if not bins:
            continue
        after = (v["calibration"].get("recalibration") or {}).get("reliability_after")
        rows += [(m, bins["edges"][i], bins["edges"][i + 1], *_bin(bins, i), *_bin(after, i))
                 for i in range(len(bins["count"]))]
    return rows


def unused_rows(metrics: dict) -> list[tuple]:
    """Every exam, breast and model the validation could not use, one row each, with the reason."""
    account = metrics["accounting"]
    rows = [("exam without outcome", "", e, "", "in the score table, not in the outcomes")
            for e in account["exams_without_outcome"]]
    rows += [("failed exam", "", f["exam_id"], "", f["reason"]) for f in account["failed_exams"]]
    rows += [("exam not analysed", "", e, "", "in the outcomes, not in the score table nor among the failures")
             for e in account["outcome_exams_not_analysed"]]
    rows += [("exam without exam-level outcome", "", e["exam_id"], " ".join(e["breasts"]),
              "the outcomes give none for this breast: the exam's own outcome is unknown")
             for e in account.get("exams_without_exam_outcome", [])]
    if account.get("outcome_exams_outside_batch"):  # a de-identified run: counted, not named
        rows.append(("exams not in the batch's source", "", "", "", f"{account['outcome_exams_outside_batch']} exam(s) "
                     "of the outcomes are not in the de-identified batch's source (their IDs are not written)"))
    rows += [("model not validated", m["model_id"], "", "", m["reason"]) for m in account["models_not_validated"]]
    for m, v in _models(metrics):
        for breast in v["unused"]["breasts_without_score"]:
            exam, side = breast.rsplit(" ", 1)
            rows.append(("breast without score", m, exam, side, "the model gave no P(malignant) for this breast"))
        rows += [("exam without score", m, e, "", "the model gave no P(malignant) for this exam or one of its breasts")
                 for e in v["unused"]["exams_without_score"]]
        for breast in v["unused"]["breasts_without_outcome"]:
            exam, side = breast.rsplit(" ", 1)
            rows.append(("breast without outcome", m, exam, side, "scored, but the outcomes give only the other "
                         "breast of this exam"))
    return rows
