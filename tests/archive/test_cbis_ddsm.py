"""``batch`` over CBIS-DDSM as TCIA lays it out (one folder per image, ROI mask folders beside them), one exam per
patient, then ``validate`` with the dataset's own description CSV; and the exam facts the batch table holds."""

from __future__ import annotations

import csv
import datetime
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from app.archive.sources import ExamItem, read_batch_source
from inference.errors import MammoError
from tests.archive.conftest import DEMO_MODEL
from tests.helpers import synthetic_view
from tests.inference.intake.dicom_factory import make_dataset, write

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # what CBIS-DDSM's files are
SIDES = {"L": "LEFT", "R": "RIGHT"}
LESIONS = {"L-CC": (350, 120), "R-CC": (300, 250), "L-MLO": (400, 130), "R-MLO": (380, 260)}


def _cbis_image(folder: Path, collection: str, patient: str, view: str, *, mask: int = 0, series: str = "") -> Path:
    """One TCIA image folder: ``<collection>_<patient>_<SIDE>_<VIEW>[_<n>]/<date>-DDSM-<n>/<series>/1-1.dcm``
    with the dataset's header (a per-image PatientID, its own study UID, Laterality and PatientOrientation
    naming the view, no accession, no birth date)."""
    side, projection = view.split("-")
    name = f"{collection}_{patient}_{SIDES[side]}_{projection}" + (f"_{mask}" if mask else "")
    series = series or ("1.000000-ROI mask images-71813" if mask else "1.000000-full mammogram images-24515")
    place = folder / name / "07-20-2016-DDSM-74994" / series
    place.mkdir(parents=True)
    pixels = synthetic_view(view, LESIONS[view], shape=(600, 360))
    if mask:
        pixels = (pixels > 3000).astype("uint16") * 255  # a lesion mask: one bright blob
    ds = make_dataset(pixels, view, projection="", laterality_keyword="Laterality", sop_class=SECONDARY_CAPTURE,
                      intent="", PatientID=name, PatientName=name, PatientBirthDate="", AccessionNumber="",
                      StudyDate="20161004", PatientOrientation=projection, SeriesDescription=(
                          "ROI mask images" if mask else "full mammogram images"))
    from pydicom.uid import generate_uid

    ds.StudyInstanceUID = generate_uid()  # one per image in this dataset
    return write(ds, place, "1-1.dcm")


@pytest.fixture(scope="module")
def tcia(tmp_path_factory) -> Path:
    """P_00001: Mass-Training, four views, a malignant left mass (its ROI mask folder beside the image);
    P_00004: four views split over Mass-Training and Calc-Training (R-CC in both);
    P_00006: Calc-Test, four views, with a crop folder."""
    root = tmp_path_factory.mktemp("tcia") / "CBIS-DDSM"
    for view in LESIONS:
        _cbis_image(root, "Mass-Training", "P_00001", view)
        _cbis_image(root, "Calc-Test", "P_00006", view)
    _cbis_image(root, "Mass-Training", "P_00001", "L-CC", mask=1)
    _cbis_image(root, "Mass-Training", "P_00001", "L-MLO", mask=1)
    _cbis_image(root, "Calc-Test", "P_00006", "R-CC", mask=2, series="1.000000-cropped images-26184")
    for view in ("L-CC", "L-MLO", "R-CC"):
        _cbis_image(root, "Mass-Training", "P_00004", view)
    for view in ("R-CC", "R-MLO"):
        _cbis_image(root, "Calc-Training", "P_00004", view)
    (root.parent / "metadata.csv").write_text("Series UID,Collection\n")  # what the NBIA retriever leaves
    return root


def test_the_tcia_layout_is_one_exam_per_patient_and_masks_are_not_views(tcia):
    items = read_batch_source(tcia)
    assert [i.exam_id for i in items] == ["P_00001", "P_00004", "P_00006"]
    by_id = {i.exam_id: i for i in items}
    assert len(by_id["P_00001"].files) == 4 and len(by_id["P_00004"].files) == 5
    assert all("_1/" not in f and "_2/" not in f and "mask" not in f and "cropped" not in f
               for i in items for f in i.files)
    assert all(f.endswith("1-1.dcm") and Path(f).is_absolute() for i in items for f in i.files)
    assert len({i.location for i in items}) == 3 and len({i.key for i in items}) == 3  # own bookkeeping each
    assert by_id["P_00001"].location == f"{tcia.resolve()}#P_00001"


def test_a_folder_mixing_tcia_and_other_folders_is_refused(tcia, tmp_path):
    import shutil

    mixed = tmp_path / "mixed"
    shutil.copytree(tcia / "Mass-Training_P_00001_LEFT_CC", mixed / "Mass-Training_P_00001_LEFT_CC")
    (mixed / "exam7").mkdir()
    with pytest.raises(MammoError, match="mixes CBIS-DDSM image folders with other folders \\(exam7\\)"):
        read_batch_source(mixed)
    masks_only = tmp_path / "masks"
    shutil.copytree(tcia / "Mass-Training_P_00001_LEFT_CC_1", masks_only / "Mass-Training_P_00001_LEFT_CC_1")
    with pytest.raises(MammoError, match="only ROI mask folders"):
        read_batch_source(masks_only)


def test_a_deidentified_cbis_item_keeps_its_files_and_redacts_their_paths(tcia, tmp_path, monkeypatch):
    from app.archive.sources import deidentified_items

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    item = read_batch_source(tcia)[0]
    (label,) = deidentified_items([item])
    assert label.files == item.files and label.exam_id.startswith("anon-") and label.location == label.exam_id
    reason = f"{item.files[0]}: the file is damaged; Mass-Training_P_00001_LEFT_CC"
    assert "P_00001" not in label.redacted(reason) and label.exam_id in label.redacted(reason)


def _description_csv(path: Path) -> Path:
    """CBIS-DDSM's mass description CSV (its columns and names): P_00001's left breast malignant, P_00004's
    right benign, P_00006's left benign and right malignant."""
    header = ["patient_id", "breast_density", "left or right breast", "image view", "abnormality id",
              "abnormality type", "mass shape", "mass margins", "assessment", "pathology", "subtlety",
              "image file path", "cropped image file path", "ROI mask file path"]
    rows = [("P_00001", 3, "LEFT", "CC", "MALIGNANT"), ("P_00001", 3, "LEFT", "MLO", "MALIGNANT"),
            ("P_00004", 2, "RIGHT", "CC", "BENIGN"), ("P_00006", 1, "LEFT", "MLO", "BENIGN_WITHOUT_CALLBACK"),
            ("P_00006", 1, "RIGHT", "CC", "MALIGNANT")]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for patient, density, side, view, pathology in rows:
            folder = f"Mass-Training_{patient}_{side}_{view}"
            writer.writerow([patient, density, side, view, 1, "MASS", "OVAL", "CIRCUMSCRIBED", 4, pathology, 3,
                             f"{folder}/1.3.6.1.4.1.9590/1.3.6.1.4.1.9590/000000.dcm",
                             f"{folder}_1/1.3.6/1.3.6/000000.dcm", f"{folder}_1/1.3.6/1.3.6/000001.dcm"])
    return path


def test_batch_then_validate_on_the_tcia_layout_end_to_end(tcia, tmp_path, capsys):
    from main import main

    out = tmp_path / "run"
    status = main(["batch", str(tcia), "--out", str(out), "--models", str(DEMO_MODEL), "--device", "cpu"])
    printed = capsys.readouterr()
    assert status == 0, printed.out + printed.err
    rows = pq.read_table(out / "scores.parquet").to_pylist()
    assert {r["exam_id"] for r in rows} == {"P_00001", "P_00004", "P_00006"}
    for exam in ("P_00001", "P_00004", "P_00006"):
        views = {r["view"] for r in rows if r["exam_id"] == exam and r["level"] == "view"}
        assert views == {"L-CC", "R-CC", "L-MLO", "R-MLO"}, exam
    assert {r["study_date"] for r in rows} == {"2016-10-04"} and {r["manufacturer"] for r in rows} == {None}

    outcomes = _description_csv(tmp_path / "mass_case_description_train_set.csv")
    status = main(["validate", "--scores", str(out / "scores.parquet"), "--outcomes", str(outcomes), "--out",
                   str(tmp_path / "validation"), "--operating-point", "sens=0.5"])
    printed = capsys.readouterr()
    assert status == 0, printed.out + printed.err
    metrics = json.loads((tmp_path / "validation" / "metrics.json").read_text())
    (model,) = metrics["run"]["models"]
    breast = metrics[model]["breast"]
    assert (breast["n_positive"], breast["n_negative"]) == (2, 2)  # the four described breasts, all joined
    assert metrics["accounting"]["exams_without_outcome"] == []
    assert metrics["accounting"]["outcome_exams_not_analysed"] == []
    assert sorted(metrics[model]["unused"]["breasts_without_outcome"]) == ["P_00001 R", "P_00004 L"]
    drift = metrics[model]["drift"]  # the study date came from the headers: the CSV has none
    assert [d["month"] for d in drift] == ["2016-10"]


# ------------------------------------------------------------------------------------------------------------
# the exam's facts in the table


def _exam(tmp_path: Path, birth: str, maker: str = "HOLOGIC", **header) -> Path:
    folder = tmp_path / "exams" / "exam1"
    folder.mkdir(parents=True)
    for view, lesion in LESIONS.items():
        write(make_dataset(synthetic_view(view, lesion, shape=(600, 360)), view, PatientBirthDate=birth,
                           StudyDate="20250611", Manufacturer=maker, **header), folder, f"{view}.dcm")
    return folder


def test_exam_facts_from_the_headers_and_deidentified(tmp_path, monkeypatch):
    from app.archive.facts import exam_facts
    from app.report.deidentify import Deidentifier
    from inference.intake.exam import load_exam
    from tests.inference.intake.dicom_factory import PATIENT_ID

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    exam = load_exam(_exam(tmp_path, "19300612"))
    assert exam_facts(exam) == {"density": None, "manufacturer": "HOLOGIC", "age": 94.0, "study_date": "2025-06-11",
                                "date_shift": datetime.timedelta(0)}
    key = b"k" * 32
    safe = exam_facts(exam, deidentify=True, key=key)
    shifted = datetime.date(2025, 6, 11) + Deidentifier(key).date_offset(PATIENT_ID)  # the exports' own shift
    assert safe == {"density": None, "manufacturer": "HOLOGIC", "age": 90.0, "study_date": shifted.isoformat(),
                    "date_shift": Deidentifier(key).date_offset(PATIENT_ID)}
    assert safe["study_date"] != "2025-06-11"
    birthday_tomorrow = load_exam(_exam(tmp_path / "b", "19600612"))
    assert exam_facts(birthday_tomorrow)["age"] == 64.0
    # an archive that dropped the birth date and kept PatientAge: the age column was empty
    aged = load_exam(_exam(tmp_path / "c", "", PatientAge="045Y"))
    assert exam_facts(aged)["age"] == 45.0
    assert exam_facts(load_exam(_exam(tmp_path / "d", "", PatientAge="093Y")), deidentify=True, key=key)["age"] == 90.0
    assert exam_facts(load_exam(_exam(tmp_path / "e", "", PatientAge="45")))["age"] is None  # not an age string


def test_a_deidentified_batch_writes_no_true_date_or_age_over_89_and_validate_takes_them(tmp_path, monkeypatch,
                                                                                         capsys):
    from app.archive.run import run_batch
    from app.archive.unit import BatchOptions
    from app.validation.outcomes import read_outcomes
    from app.validation.scores import read_score_table, with_table_facts

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    folder = _exam(tmp_path, "19300612")
    items = [ExamItem("exam1", str(folder))]
    run_batch(items, [str(DEMO_MODEL)], tmp_path / "plain", BatchOptions(device="cpu"))
    run_batch(items, [str(DEMO_MODEL)], tmp_path / "safe", BatchOptions(device="cpu", deidentify=True))
    plain = pq.read_table(tmp_path / "plain" / "scores.parquet").to_pylist()
    assert {(r["manufacturer"], r["age"], r["study_date"]) for r in plain} == {("HOLOGIC", 94.0, "2025-06-11")}
    safe = pq.read_table(tmp_path / "safe" / "scores.parquet").to_pylist()
    assert {r["age"] for r in safe} == {90.0}
    (date,) = {r["study_date"] for r in safe}
    assert date and date != "2025-06-11" and "20250611" not in json.dumps(safe, default=str)
    # no time of analysis: a true one beside the shifted date gave the patient's offset away, and one moved by
    # the offset gave it to anyone who knew roughly when the batch ran (a deployer's test)
    plain_at = {datetime.datetime.fromisoformat(r["analysed_at"]) for r in plain}
    assert len(plain_at) == 1 and {r["analysed_at"] for r in safe} == {None}
    from app.archive.run import LOCK_NAME
    from inference.files import DEIDENTIFIED_FILE_TIME

    assert (tmp_path / "safe" / LOCK_NAME).stat().st_mtime == DEIDENTIFIED_FILE_TIME  # the run's own time
    assert (tmp_path / "plain" / LOCK_NAME).stat().st_mtime != DEIDENTIFIED_FILE_TIME

    table = read_score_table(tmp_path / "plain" / "scores.parquet")
    csv_path = tmp_path / "outcomes.csv"
    csv_path.write_text("exam_id,breast,cancer,manufacturer\nexam1,L,1,\nexam1,R,0,GE\n")
    joined = {o.breast: o for o in with_table_facts(read_outcomes([csv_path]), table)}
    assert joined["L"].manufacturer == "HOLOGIC" and joined["R"].manufacturer == "GE"  # the CSV's kept
    assert joined["L"].age == 94.0 and joined["L"].study_date == datetime.date(2025, 6, 11)
    # the de-identified table's exams are the outcomes' exams again, through the source and this computer's key
    # (a site could not validate a de-identified batch at all: its IDs matched none of its outcomes')
    from app.validation.outcomes import with_batch_pseudonyms

    linked, matched, outside = with_batch_pseudonyms(read_outcomes([csv_path]), tmp_path / "exams")
    assert (matched, outside) == (1, 0)
    assert {o.exam_id for o in linked} == read_score_table(tmp_path / "safe" / "scores.parquet").exams

    # an outcome of an exam outside the batch's source: it kept the site's true exam ID, which the de-identified
    # validation's files listed as "not analysed" (and its report named the site's folders)
    from main import main
    from tests.report.test_deidentify import _pdf_texts

    csv_path.write_text("exam_id,breast,cancer\nexam1,L,1\nexam1,R,0\nSITE-REAL-777,L,0\n")
    out = tmp_path / "validated"
    assert main(["validate", "--scores", str(tmp_path / "safe" / "scores.parquet"), "--outcomes", str(csv_path),
                 "--out", str(out), "--batch-source", str(tmp_path / "exams"), "--no-calibration"]) == 0
    said = capsys.readouterr().out
    assert "1 exam(s) of the outcomes are not in" in said
    # the de-identified table's study dates are shifted patient by patient: no drift by month from them (seen in a
    # hands-on review: months 2018-03 … 2025-02 drawn for exams of 2025-03 … 2026-06, without a word)
    assert "study dates are shifted by each patient's own offset, so drift by month is not drawn" in said
    drift = json.loads((out / "metrics.json").read_text())
    assert {row["month"] for m in drift["run"]["models"] for row in drift[m]["drift"]} == {"no date"}
    written = sorted(out.rglob("*.*"))
    assert {p.name for p in written} >= {"metrics.json", "validation_report.pdf", "unused.csv"}
    for path in written:
        data = path.read_bytes()
        texts = _pdf_texts(data) if path.suffix == ".pdf" else [data]
        assert not any(b"SITE-REAL-777" in t or str(tmp_path).encode() in t for t in texts), path.name
    account = json.loads((out / "metrics.json").read_text())["accounting"]
    assert account["outcome_exams_not_analysed"] == []
    # counted in the files (the console alone said it; the report said every outcome was used)
    assert account["outcome_exams_outside_batch"] == 1
    assert "1 exam(s) of the outcomes are not in the de-identified batch's source" in (out / "unused.csv").read_text()
    from pypdf import PdfReader

    report = " ".join(" ".join(page.extract_text().split()) for page in PdfReader(out / "validation_report.pdf").pages)
    assert "not in the de-identified batch's source (counted only): 1" in report
    csv_path.write_text("exam_id,breast,cancer\nSITE-REAL-777,L,0\n")
    assert main(["validate", "--scores", str(tmp_path / "safe" / "scores.parquet"), "--outcomes", str(csv_path),
                 "--out", str(tmp_path / "none"), "--batch-source", str(tmp_path / "exams")]) != 0
    assert "no exam of the outcomes is in the batch's source" in capsys.readouterr().err
