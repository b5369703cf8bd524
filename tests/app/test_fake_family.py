"""A third model family that exists only in this test: three exclusive classes, one full-resolution map and
regions of its own kind. It goes through loading, analysis beside GMIC, the result file, the workstation,
every report format, the store and a reader study — and is dropped again, without a line of code outside
this test knowing it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from inference.families import registry
from inference.families.protocol import Prepared
from inference.results.types import HeatLayer, InputFrame, ModelViewOutput, ScoredRegion, map_box, scale_affine
from inference.intake.views import View

CLASSES = ("normal", "benign", "malignant")


class TinyNet(nn.Module):
    """Class logits from the mean brightness of a 64 x 64 thumbnail; a 'hot' map where it is brightest."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(x.mean(dim=(1, 2, 3))[:, None]), dim=1)


class FakeFamily:
    name = "fake3"
    preprocessing = "fake3-thumbnail"  # its own: a plain resize of the whole view

    def recognises(self, state):
        return set(state) == {"head.weight", "head.bias"}

    def build(self, state, meta, path, options):
        model = TinyNet()
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        return model.eval(), {"classes": tuple(meta["classes"]), "malignancy": tuple(meta["malignancy"]),
                              "exclusive": True, "settings": {}}

    def prepare(self, model_image, view, horizontal_flip):
        import cv2

        h, w = model_image.shape
        thumbnail = cv2.resize(model_image.astype(np.float32), (64, 64), interpolation=cv2.INTER_AREA)
        frame = InputFrame((64, 64), scale_affine(h / 64, w / 64), (h, w), {"resized": True})
        return Prepared(view, thumbnail / max(float(thumbnail.max()), 1.0), frame, ())

    def run(self, model, batch, device, mode, identity):
        outputs = []
        with torch.inference_mode():
            probabilities = model(torch.from_numpy(np.stack([p.input for p in batch]))[:, None])
        for p, row in zip(batch, probabilities, strict=True):
            h, w = p.frame.original_shape
            # a full-resolution map (one value per original pixel): the thumbnail upsampled back
            import cv2

            full = cv2.resize(p.input, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
            layer = HeatLayer("brightness", "malignant", np.clip(full, 0, 1), np.eye(3), smooth=False)
            r, c = np.unravel_index(int(np.argmax(p.input)), p.input.shape)
            box = map_box(p.frame.to_original, (max(r - 4, 0), max(c - 4, 0), r + 4, c + 4))
            region = ScoredRegion(1, box, float(p.input[r, c]), "window probability",
                                  probabilities=dict(zip(CLASSES, row.tolist(), strict=True)), size=(8, 8))
            outputs.append(ModelViewOutput(dict(zip(CLASSES, row.tolist(), strict=True)), (layer,), (region,), {},
                                           p.frame))
        return outputs


@pytest.fixture
def fake_model(tmp_path):
    registry.register(FakeFamily())
    torch.manual_seed(0)
    path = tmp_path / "fake.pt"
    torch.save(TinyNet().state_dict(), path)
    path.with_name("fake.pt.json").write_text(json.dumps(
        {"family": "fake3", "classes": list(CLASSES), "malignancy": ["malignant"], "label": "fake three-class"}))
    yield path
    registry.unregister("fake3")
    assert "fake3" not in registry.families()  # dropped again


@pytest.fixture
def dicom_exam(tmp_path):
    from tests.helpers import synthetic_view
    from tests.inference.intake.dicom_factory import make_dataset, write

    folder = tmp_path / "exam"
    folder.mkdir()
    write(make_dataset(synthetic_view("R-CC", (600, 500)), "R-CC"), folder, "a.dcm")
    write(make_dataset(synthetic_view("L-CC", (800, 250)), "L-CC"), folder, "b.dcm")
    return folder


def test_a_new_family_goes_through_every_layer(qtbot, tmp_path, fake_model, dicom_exam, stub_model):
    from app.report.content import ReportInput
    from app.report.export import export_report
    from inference.intake.exam import load_exam
    from inference.pipeline import analyze_exam
    from inference.results.serialize import read_result, write_result
    from inference.weights import load_model

    loaded = load_model(fake_model)
    assert loaded.identity.family == "fake3" and loaded.identity.classes == CLASSES and loaded.identity.exclusive
    exam = load_exam(dicom_exam)
    result = analyze_exam(exam, [stub_model, loaded], device="cpu")
    assert [e.family for e in result.entries] == ["gmic", "fake3"]
    fake = result.views[View.R_CC].entries[loaded.identity.label]
    assert set(fake.probabilities) == set(CLASSES) and abs(sum(fake.probabilities.values()) - 1) < 1e-5
    assert fake.layers[0].values.shape == exam.views[View.R_CC].pixels.shape  # full resolution
    assert fake.regions[0].kind == "window probability" and set(fake.regions[0].probabilities) == set(CLASSES)
    decision = result.exam[loaded.identity.label]
    # exclusive classes: the exam takes the deciding breast's own probabilities (they still sum to 1)
    assert abs(sum(decision.probabilities.values()) - 1) < 1e-5 and decision.malignant is not None

    path, maps = write_result(result, tmp_path / "result.json")
    again = read_result(path)
    assert again.views[View.R_CC].entries[loaded.identity.label].layers[0].values.shape == fake.layers[0].values.shape
    raw = sum(layer.values.nbytes for v in result.views.values() for e in v.entries.values() for layer in e.layers)
    assert maps.stat().st_size < 0.6 * raw  # compressed binary, not JSON lists (~10 bytes a value)

    # every report format, drawing the new family's maps and regions
    paths = export_report(ReportInput(exam, result, entry_id=loaded.identity.label), tmp_path / "reports",
                          formats=("pdf", "png", "json", "sr", "seg"))
    names = {p.name for p in paths}
    assert any(n.endswith(".pdf") for n in names) and any(n.endswith("_sr.dcm") for n in names)
    assert any(n.endswith(f"_{loaded.identity.label}_saliency_seg.dcm") for n in names)
    from tests.helpers import dciodvfy

    for dicom in (p for p in paths if p.suffix == ".dcm"):
        assert dciodvfy(dicom) == [], dicom.name
    from tests.report.test_report import pdf_text

    text = " ".join(pdf_text(next(p for p in paths if p.suffix == ".pdf")).split())
    assert "normal" in text and "window probability" in text and "fake three-class" in text

    # the workstation: both models' scores, the new family's maps drawn when chosen
    from app.settings import AppSettings
    from app.study.store import Store
    from app.ui.workstation.main_window import MainWindow, grab_png

    store = Store(tmp_path / "store.sqlite")
    window = MainWindow(AppSettings(blind_first=False, show_overlays=True), store)
    qtbot.addWidget(window)
    window.resize(1500, 900)
    window.show()
    window.use_models([stub_model, loaded])
    with qtbot.waitSignal(window.analysisFinished, timeout=120_000):
        window.open_exam(dicom_exam)
    assert set(window.scores.model_tables) == {stub_model.identity.label, loaded.identity.label}
    headers = [window.scores.model_tables[loaded.identity.label].horizontalHeaderItem(i).text()
               for i in range(window.scores.model_tables[loaded.identity.label].columnCount())]
    assert headers[1:4] == list(CLASSES)
    window.entry_combo.setCurrentIndex(1)
    qtbot.waitUntil(lambda: window.hanging.views[View.R_CC].heatmap_item("malignant", "brightness") is not None,
                    timeout=10_000)
    assert set(window._class_boxes) == {"malignant"}  # the one class with a map
    qtbot.waitUntil(lambda: window.gallery.lists[View.R_CC].item(0).text().startswith("#1  window probability"),
                    timeout=10_000)
    grab_png(window, tmp_path / "fake_family.png")
    window.close()

    # a study: scores of both models, readers compared with each
    from app.study.cases import CaseEntry
    from app.study.design import Design, create_study
    from app.study.results import study_results
    from app.study.scores import compute_model_scores
    from app.study.sessions import ReadingSession

    cases = [CaseEntry(f"c{i}", str(dicom_exam), "malignant" if i % 2 else "normal", "normal") for i in range(4)]
    study = create_study(store, "fake", Design.UNAIDED, ["A", "B"], cases)
    compute_model_scores(store, study, [stub_model, loaded], device="cpu")
    models = {r[0] for r in store.read("SELECT DISTINCT model_id FROM model_scores WHERE study_id=?", (study,))}
    assert models == {stub_model.identity.label, loaded.identity.label}
    for k, reader in enumerate(("A", "B")):
        session = ReadingSession(store, study, reader)
        for position in range(4):
            case = session.case_at(position).case_id
            session.commit(case, "unaided", {"L": 0.2 + 0.5 * (int(case[1:]) % 2) + 0.05 * k, "R": 0.1}).result()
    results = study_results(store, study)
    assert {a.modality for a in results.aucs if a.reader == "(model)"} == {
        f"model [{stub_model.identity.label}]", f"model [{loaded.identity.label}]"}
    store.close()
