"""A study's hybrid on one scale: the calibrated hybrid (the calibration stored with the model's scores) and the
GMIC reader study's plain mean beside it, each labelled with its basis (issue 27, item 4)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import numpy as np
import pytest

from app.study.analysis import hybrid_records
from app.study.cases import CaseEntry
from app.study.design import Design, create_study
from app.study.exchange import export_study, import_study
from app.study.records import analysis_records, hybrid_bases
from app.study.results import study_results, write_results
from app.study.scores import _register_models
from app.study.sessions import ReadingSession
from app.study.store import MIGRATIONS, SCHEMA_VERSION, Store, _statements
from inference.evaluation.calibration import apply_recalibration
from inference.pipeline import as_groups
from tests.helpers import insert_model_scores

SITE = {"format": "mammo-reader site calibration", "method": "platt", "parameters": {"a": 2.0, "b": -1.0},
        "site": "St Elsewhere", "date": "2026-03-01", "n": 812, "version": 1}
N_CASES = 8


def _cases() -> list[CaseEntry]:
    return [CaseEntry(f"c{i}", f"/exams/{i}", "malignant" if i < 3 else "normal", "normal") for i in range(N_CASES)]


def _model_score(i: int, breast: str) -> float:
    return 0.8 - 0.05 * i if breast == "L" else 0.15 + 0.01 * i


def _reader_score(reader: str, i: int, breast: str) -> float:
    return (0.9 if i < 3 else 0.3) - (0.03 * i if reader == "A" else 0.02 * i) if breast == "L" else 0.1


def _study(store: Store, stub_model, site: dict | None) -> int:
    study = create_study(store, f"hybrid-{site is not None}", Design.UNAIDED, ["A", "B"], _cases(), seed=3)
    identity = dataclasses.replace(stub_model.identity, site_calibration=site)
    model = dataclasses.replace(stub_model, identity=identity)
    group = dataclasses.replace(as_groups([model])[0], id="model")
    _register_models(store, study, [group])  # what compute_model_scores does before it stores any score
    insert_model_scores(store, study, {(f"c{i}", b): _model_score(i, b) for i in range(N_CASES) for b in ("L", "R")})
    for reader in ("A", "B"):
        session = ReadingSession(store, study, reader)
        for position in range(N_CASES):
            case = session.case_at(position).case_id
            i = int(case[1:])
            session.commit(case, "unaided", {b: _reader_score(reader, i, b) for b in ("L", "R")}).result()
    return study



def test_a_calibrated_model_gives_the_calibrated_hybrid_and_the_plain_mean_each_with_its_basis(store, stub_model,
                                                                                                 tmp_path):
    study = _study(store, stub_model, SITE)
    stored = store.read("SELECT model_id, kind, calibration_json FROM study_model_calibrations WHERE study_id=?",
                        (study,))
    assert [(m, k, json.loads(t)) for m, k, t in stored] == [("model", "site", SITE)]
    rows = analysis_records(store, study)
    one = {r["modality"]: r["score"] for r in rows if r["reader"] == "A" and r["case"] == "c1:L"}
    reader, model = _reader_score("A", 1, "L"), _model_score(1, "L")
    calibrated = float(apply_recalibration(SITE, np.array([model]))[0])
    assert one["hybrid (unaided)"] == pytest.approx((reader + calibrated) / 2)
    assert one["hybrid (plain mean) (unaided)"] == pytest.approx((reader + model) / 2)
    assert one["model (vs unaided)"] == pytest.approx(model)  # the model's own AUC is on its own output
    assert calibrated != pytest.approx(model)

    bases = hybrid_bases(store, study)
    assert bases["hybrid"].startswith("hybrid: mean of the reader and the model calibrated on St Elsewhere, "
                                      "2026-03-01, n = 812")
    assert "plain mean" in bases["hybrid (plain mean)"]
    results = study_results(store, study)
    assert results.hybrids == bases
    assert any(n.startswith("hybrid: mean of the reader and the model calibrated on St Elsewhere")
               for n in results.notes())
    assert {"hybrid (unaided) vs unaided", "hybrid (plain mean) (unaided) vs unaided"} <= set(results.comparisons)
    assert {"hybrid (unaided)", "hybrid (plain mean) (unaided)"} <= {a.modality for a in results.aucs}
    write_results(results, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "hybrids.json").read_text()) == bases

    copy = import_study(store, json.loads(json.dumps(export_study(store, study))), name="copy")
    assert hybrid_bases(store, copy) == bases  # the calibration travels with the exported scores


def test_a_reversing_calibration_stored_with_the_scores_gives_no_calibrated_hybrid(store, stub_model, tmp_path):
    """A Platt slope below 0 (saved by an earlier validate, or in an imported study file) stored with a study's
    scores turned every hybrid against the model: the study's calibrated hybrid is not computed then, and the
    notes say why; the model's own AUC and the plain mean still are."""
    study = _study(store, stub_model, SITE)
    reversing = dict(SITE, parameters={"a": -1.6, "b": 0.2})
    store.submit(lambda db: db.execute("UPDATE study_model_calibrations SET calibration_json=? WHERE study_id=?",
                                       (json.dumps(reversing), study))).result()
    modalities = {r["modality"] for r in analysis_records(store, study)}
    assert "hybrid (unaided)" not in modalities
    assert {"hybrid (plain mean) (unaided)", "model (vs unaided)", "unaided"} <= modalities
    assert set(hybrid_bases(store, study)) == {"hybrid (plain mean)"}
    results = study_results(store, study)
    assert "hybrid (unaided)" not in {a.modality for a in results.aucs}
    assert "hybrid (unaided) vs unaided" not in results.comparisons, results.comparisons.keys()
    assert "hybrid (plain mean) (unaided) vs unaided" in results.comparisons
    note = next(n for n in results.notes() if n.startswith("hybrid not computed"))
    assert "model's scores in this study is unusable (platt's slope a must be above 0" in note
    assert note.endswith("hybrid (plain mean) is computed instead")
    assert not any("not computed yet" in n for n in results.notes())  # the study is complete
    write_results(results, tmp_path / "out")
    assert "hybrid not computed" in (tmp_path / "out" / "notes_breast.txt").read_text()

    store.submit(lambda db: db.execute("UPDATE study_model_calibrations SET calibration_json='[1' WHERE study_id=?",
                                       (study,))).result()
    assert "hybrid (unaided)" not in {r["modality"] for r in analysis_records(store, study)}
    assert any("unusable (it is not JSON" in n for n in study_results(store, study).notes())
    for record in ({"method": "beta", "parameters": {}}, {"parameters": {"a": 1.0}}):  # crashed the analysis
        store.submit(lambda db, r=record: db.execute(
            "UPDATE study_model_calibrations SET calibration_json=? WHERE study_id=?", (json.dumps(r), study))).result()
        assert "hybrid (unaided)" not in {r["modality"] for r in analysis_records(store, study)}
        assert any("is neither platt nor isotonic" in n for n in study_results(store, study).notes())


def test_an_uncalibrated_model_has_one_hybrid_the_plain_mean_said_uncalibrated(store, stub_model):
    study = _study(store, stub_model, None)
    assert store.read("SELECT COUNT(*) FROM study_model_calibrations WHERE study_id=?", (study,)) == [(0,)]
    modalities = {r["modality"] for r in analysis_records(store, study)}
    assert "hybrid (unaided)" in modalities and not any("plain mean" in m for m in modalities)
    one = next(r for r in analysis_records(store, study) if r["modality"] == "hybrid (unaided)"
               and r["reader"] == "B" and r["case"] == "c2:L")
    assert one["score"] == pytest.approx((_reader_score("B", 2, "L") + _model_score(2, "L")) / 2)
    assert hybrid_bases(store, study) == {
        "hybrid": "hybrid: mean of the reader and the model output, not calibrated as a probability"}


def test_the_calibration_is_the_one_the_first_scores_were_stored_with(store, stub_model):
    """A site calibration written after the study's scores were computed does not change the study's hybrid."""
    study = _study(store, stub_model, None)
    later = dataclasses.replace(stub_model, identity=dataclasses.replace(stub_model.identity, site_calibration=SITE))
    _register_models(store, study, [dataclasses.replace(as_groups([later])[0], id="model")])
    assert store.read("SELECT COUNT(*) FROM study_model_calibrations WHERE study_id=?", (study,)) == [(0,)]


def test_hybrid_records_use_the_calibration_given():
    rows = [{"reader": "A", "modality": "unaided", "case": "x", "truth": 1, "score": 0.6}]
    plain = hybrid_records(rows, {"x": 0.3}, "unaided")
    calibrated = hybrid_records(rows, {"x": 0.3}, "unaided", (SITE, None))
    assert plain[0]["score"] == pytest.approx(0.45)
    assert calibrated[0]["score"] == pytest.approx((0.6 + float(apply_recalibration(SITE, np.array([0.3]))[0])) / 2)


def test_schema_7_store_migrates_to_the_calibration_table(tmp_path):
    path = tmp_path / "v7.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for version in range(1, 8):
        for statement in _statements(MIGRATIONS[version]):
            db.execute(statement)
    db.execute("PRAGMA user_version=7")
    db.close()
    store = Store(path)
    try:
        assert SCHEMA_VERSION >= 8
        assert store.read("PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert store.read("SELECT COUNT(*) FROM study_model_calibrations") == [(0,)]
    finally:
        store.close()
