"""The hybrid on one scale (issue 27): the site's calibration (``validate`` writes it beside the checkpoint) is
read at model load, and the workstation's, the report's hybrid use the calibrated model probability and say
which calibration; without one they say "uncalibrated"; the GMIC paper's plain mean stays available."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from app.reading import entry_hybrid, hybrid, hybrid_basis
from inference.evaluation.calibration import apply_recalibration, read_site_calibration
from inference.errors import CheckpointError
from tests.archive.conftest import DEMO_MODEL
from tests.conftest import ROOT

PLATT = {"format": "mammo-reader site calibration", "version": 2, "model_id": "model", "model_key": "k",
         "site": "Site A", "date": "2026-12-04", "n": 812, "n_positive": 41, "level": "breast", "method": "platt",
         "parameters": {"a": 1.0, "b": -2.0}}


def _entry(site=None, card=None):
    from inference.results.exam_result import ModelEntry
    from tests.helpers import make_stub_model

    identity = dataclasses.replace(make_stub_model().identity, site_calibration=site, calibration=card)
    return ModelEntry(id="model", label="stub", family="gmic", classes=("benign", "malignant"),
                      malignancy=("malignant",), exclusive=False, members=(identity,))


def test_the_model_loader_reads_the_site_calibration_beside_the_checkpoint(tmp_path):
    from inference.weights import load_model

    checkpoint = tmp_path / "model.pt"
    shutil.copy(DEMO_MODEL, checkpoint)
    if DEMO_MODEL.with_name(DEMO_MODEL.name + ".json").is_file():
        shutil.copy(DEMO_MODEL.with_name(DEMO_MODEL.name + ".json"), tmp_path / "model.pt.json")
    assert load_model(checkpoint).identity.site_calibration is None
    key = load_model(checkpoint).identity.key
    (tmp_path / "model.pt.site_calibration.json").write_text(json.dumps({**PLATT, "model_key": key}))
    loaded = load_model(checkpoint)
    assert loaded.identity.site_calibration["site"] == "Site A"
    assert loaded.identity.key == load_model(DEMO_MODEL).identity.key  # the numbers are the model's: same key
    # a calibration fitted for another model (copied beside this one, or validated against the wrong file)
    (tmp_path / "model.pt.site_calibration.json").write_text(json.dumps({**PLATT, "model_key": "gmic:0123abcd:"}))
    with pytest.raises(CheckpointError, match="site_calibration.json: the site calibration beside this model was "
                                              "fitted for another model"):
        load_model(checkpoint)
    (tmp_path / "model.pt.site_calibration.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="site_calibration.json.*could not be read"):
        load_model(checkpoint)


def test_validation_and_inference_share_one_calibration_reader():
    from app.validation import calibration as calib

    scores = np.array([0.05, 0.3, 0.7, 0.95])
    assert np.allclose(calib.apply(PLATT, scores), apply_recalibration(PLATT, scores))
    assert calib.calibration_path("/m/a.pt").name == "a.pt.site_calibration.json"
    # inference never imports app (the loader's calibration lives in inference/evaluation/calibration.py)
    code = "import sys, inference.weights, inference.evaluation.calibration; print(any(m.startswith('app') for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_the_hybrid_uses_the_calibrated_model_and_says_so():
    reader, model = 0.6, 0.3
    calibrated = 1 / (1 + np.exp(-(np.log(0.3 / 0.7) - 2.0)))
    site = _entry(site=PLATT)
    assert entry_hybrid(reader, model, site) == pytest.approx((reader + calibrated) / 2)
    assert hybrid_basis(site).startswith("hybrid: mean of the reader and the model calibrated on Site A, 2026-12-04, "
                                         "n = 812")
    # the paper's plain mean stays available
    assert entry_hybrid(reader, model, site, plain=True) == hybrid(reader, model) == pytest.approx(0.45)
    assert "plain mean" in hybrid_basis(site, plain=True)
    # no calibration: as before, and said
    bare = _entry()
    assert entry_hybrid(reader, model, bare) == pytest.approx(0.45)
    assert hybrid_basis(bare) == "hybrid: mean of the reader and the model output, not calibrated as a probability"
    # the card's calibration when the site has none: a recalibration is applied, a temperature already was
    card = _entry(card={**{k: PLATT[k] for k in ("method", "parameters")}, "data": "CBIS-DDSM test"})
    assert entry_hybrid(reader, model, card) == pytest.approx((reader + calibrated) / 2)
    assert "calibrated by its model card (platt, on CBIS-DDSM test)" in hybrid_basis(card)
    temperature = _entry(card={"method": "temperature", "temperature": 1.7})
    assert entry_hybrid(reader, model, temperature) == pytest.approx(0.45)
    assert "model card (temperature" in hybrid_basis(temperature)
    # the site's wins over the card's
    both = _entry(site=PLATT, card={"method": "temperature", "temperature": 1.7})
    assert "Site A" in hybrid_basis(both)


def test_a_site_calibration_of_another_kind_is_refused_by_name(tmp_path):
    path = tmp_path / "m.pt.site_calibration.json"
    path.write_text(json.dumps({**PLATT, "method": "beta"}))
    with pytest.raises(CheckpointError, match="m.pt.site_calibration.json.*'beta'"):
        read_site_calibration(path)


@pytest.mark.parametrize("parameters, says", [
    ({"a": float("nan"), "b": 0.0}, "platt's a must be finite numbers"),
    ({"a": "x", "b": 0.0}, "platt's a must be finite numbers"),
    ({"a": 1.0}, "platt's b must be finite numbers"),
    ({"a": [], "b": [1, 2]}, "platt's a and b must be finite numbers"),
], ids=["nan", "text", "missing", "lists"])
def test_a_site_calibration_with_unusable_parameters_is_refused_by_name(tmp_path, parameters, says):
    """A NaN slope gave a traceback in analyze and report; text passed analyze --json and failed report."""
    path = tmp_path / "m.pt.site_calibration.json"
    path.write_text(json.dumps({**PLATT, "parameters": parameters}))
    with pytest.raises(CheckpointError, match=f"m.pt.site_calibration.json: the site calibration is damaged: {says}"):
        read_site_calibration(path)
    for steps in ({"x": [0.0, 0.5, 0.4], "y": [0, 1, 1]}, {"x": [0.0, 0.5, 1.0], "y": [1, 0.5, 0]}):
        path.write_text(json.dumps({**PLATT, "method": "isotonic", "parameters": steps}))
        with pytest.raises(CheckpointError, match="isotonic's x and y must not decrease"):  # a reversed ranking
            read_site_calibration(path)


def _result_with(site):
    from inference.pipeline import analyze_exam
    from inference.intake.views import View
    from tests.helpers import make_stub_model, synthetic_view

    result = analyze_exam({v: synthetic_view(v.value, (600, 400)) for v in View}, make_stub_model(), device="cpu")
    entry = result.entries[0]
    member = dataclasses.replace(entry.members[0], site_calibration=site)
    return dataclasses.replace(result, entries=(dataclasses.replace(entry, members=(member,)),))


def test_the_workstation_compare_box_shows_the_calibrated_hybrid_and_its_basis(qtbot):
    from app.reading import percent
    from app.study.store import BreastRead
    from app.ui.workstation.score_panel import ScorePanelWidget
    from inference.intake.views import Laterality

    result = _result_with(PLATT)
    panel = ScorePanelWidget()
    qtbot.addWidget(panel)
    panel.set_result(result)
    panel.reader.first_reads = {"L": BreastRead("L", 0.6, committed=True), "R": BreastRead("R", 0.2, committed=True)}
    panel.refresh_compare()
    entry = result.entries[0]
    model = result.breasts[Laterality.LEFT].entries[entry.id].malignant
    row = next(r for r in range(panel.compare.rowCount()) if panel.compare.item(r, 0).text().startswith("Left"))
    hybrid_cell = panel.compare.item(row, panel.compare.columnCount() - 1).text()
    calibrated = float(apply_recalibration(PLATT, np.array([model]))[0])
    assert hybrid_cell == percent((0.6 + calibrated) / 2) != percent((0.6 + model) / 2)
    assert "calibrated on Site A, 2026-12-04, n = 812" in panel.hybrid_basis.text()
    panel.set_plain_hybrid(True)
    assert panel.compare.item(row, panel.compare.columnCount() - 1).text() == percent((0.6 + model) / 2)
    assert "plain mean" in panel.hybrid_basis.text()
    panel.set_result(_result_with(None))
    panel.set_plain_hybrid(False)
    assert "not calibrated as a probability" in panel.hybrid_basis.text()


def test_the_report_gives_the_calibrated_hybrid_and_its_basis():
    from app.report.content import ReportContent, ReportInput
    from app.report.json_report import report_dict
    from app.study.store import BreastRead
    from inference.intake.exam import Exam
    from inference.intake.views import Laterality

    result = _result_with(PLATT)
    reads = {"L": BreastRead("L", 0.6, committed=True)}
    data, _ = report_dict(ReportContent(ReportInput(Exam(views={}), result, reads=reads)))
    entry = result.entries[0]
    model = result.breasts[Laterality.LEFT].entries[entry.id].malignant
    left = data["reads"]["L"]["models"][entry.id] if "reads" in data else None
    assert left is not None, sorted(data)
    calibrated = float(apply_recalibration(PLATT, np.array([model]))[0])
    assert left["hybrid_malignant"] == pytest.approx((0.6 + calibrated) / 2)
    assert "calibrated on Site A" in left["hybrid_basis"]
    plain, _ = report_dict(ReportContent(ReportInput(Exam(views={}), result, reads=reads, plain_hybrid=True)))
    assert plain["reads"]["L"]["models"][entry.id]["hybrid_malignant"] == pytest.approx((0.6 + model) / 2)
