"""Mask R-CNN findings in the DICOM exports, through ``main.py report`` on exam 0 (made DICOM) with the shared
seeded weights: SEG with one BINARY segment per detection on the source grid (the reference's full-resolution
masks), SR with each detection's outline as a closed polygon with its class and score; both dciodvfy clean."""

from __future__ import annotations


import cv2
import numpy as np
import pydicom
import pytest

from inference.intake.views import View

from tests.conftest import DATA, SHARED, require_shared
from tests.helpers import dciodvfy, run_main

MASKRCNN = SHARED / "reference" / "maskrcnn"
VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")
CLASSES = ("benign mass", "malignant mass")


def _golden(view: str) -> dict[str, np.ndarray]:
    with np.load(MASKRCNN / f"golden_exam0_{view}.npz") as data:
        return {k: data[k] for k in data.files}


def _golden_masks(golden) -> list[np.ndarray]:
    rows, cols = (int(s) for s in golden["image_size"])
    return [np.unpackbits(bits, count=rows * cols).reshape(rows, cols).astype(bool) for bits in golden["mask_bits"]]


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """Exam 0 as a DICOM study, reported as SR and SEG by the seeded Mask R-CNN through the command line."""
    require_shared(MASKRCNN)
    from tests.inference.intake.dicom_factory import make_dataset, write

    folder = tmp_path_factory.mktemp("maskrcnn_exam0")  # a name of its own: "exam0" matched other modules' exams
    for view in VIEWS:
        pixels = cv2.imread(str(DATA / "gmic-exam0" / f"0_{view}.png"), cv2.IMREAD_UNCHANGED)
        write(make_dataset(pixels, view), folder, f"{view}.dcm")
    out = folder.parent / "out"
    done = run_main(["report", str(folder), "--out", str(out),
                     "--models", str(MASKRCNN / "seeded_state_dict.pt"), "--format", "sr,seg", "--device", "cpu"])
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _over_breast(out) -> dict[str, np.ndarray]:
    """Per view, which golden detections lie mostly over the breast of the reported exam (one on a marker is no
    finding)."""
    from inference.intake.exam import load_exam
    from inference.intake.image import breast_mask, tissue_fraction

    exam = load_exam(next(p for p in out.parent.iterdir() if p.name.startswith("maskrcnn_exam0")))
    found = {}
    for view in VIEWS:
        breast = breast_mask(exam.views[View(view)].model_image)
        found[view] = np.array([tissue_fraction((y1, x1, y2, x2), breast) >= 0.5
                                for x1, y1, x2, y2 in _golden(view)["boxes"]])
    return found


def _shown(out) -> dict[str, np.ndarray]:
    """Per view, which golden detections the screen and the PDF show (the model's operating point; without one,
    the first by rank and each class's best, over the breast): the findings the SR and SEG carry (a site lead
    found 377 "Lesion" groups in an SR whose PDF showed 3 a view)."""
    from app.cad_marks import shown_regions
    from inference.intake.exam import load_exam
    from inference.pipeline import analyze_exam
    from inference.weights import load_model

    exam = load_exam(next(p for p in out.parent.iterdir() if p.name.startswith("maskrcnn_exam0")))
    model = load_model(MASKRCNN / "seeded_state_dict.pt")
    result = analyze_exam(exam, [model], device="cpu")
    (entry,) = result.entries
    found = {}
    for view in VIEWS:
        regions = result.views[View(view)].result(entry.id).regions
        ranks = {region.rank for region in shown_regions(regions, entry.members, exam.views[View(view)])[0]}
        found[view] = np.array([i + 1 in ranks for i in range(len(_golden(view)["scores"]))])
    return found


def _segs(out) -> dict[str, pydicom.Dataset]:
    found = {}
    for path in sorted(out.rglob("*_detections_seg.dcm")):
        view = next(v for v in VIEWS if f"_{v}_" in path.name)
        found[view] = path
    return found


def test_one_binary_segment_per_detection_on_the_source_grid(reported):
    import highdicom as hd

    segs = _segs(reported)
    over, shown = _over_breast(reported), _shown(reported)
    assert sorted(segs) == sorted(VIEWS)
    assert not list(reported.rglob("*_saliency_seg.dcm"))  # a detector has no maps
    assert not all(all(o) for o in over.values())  # some lie on markers: left out below
    assert all(not (s & ~o).any() for s, o in zip(shown.values(), over.values(), strict=True))
    assert sum(int(s.sum()) for s in shown.values()) < sum(int(o.sum()) for o in over.values())  # fewer: shown
    for view, path in segs.items():
        golden = _golden(view)
        seg = hd.seg.segread(path)
        assert seg.SegmentationType == "BINARY"
        expected = _golden_masks(golden)
        nonempty = [i for i, m in enumerate(expected) if m.any() and shown[view][i]]
        assert len(seg.SegmentSequence) == len(nonempty) > 0
        source_uid = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
        pixels = seg.get_pixels_by_source_instance([source_uid], segment_numbers=list(range(
            1, len(nonempty) + 1)))[0]
        assert pixels.shape[:2] == tuple(golden["image_size"])
        for number, i in enumerate(nonempty, start=1):
            segment = seg.SegmentSequence[number - 1]
            label, score = CLASSES[int(golden["labels"][i]) - 1], float(golden["scores"][i])
            assert segment.SegmentLabel == f"#{i + 1} {label} detection"
            described = segment.SegmentDescription
            assert described.startswith(f"{label} detection #{i + 1}, score ")
            assert float(described.split("score ")[1][:5]) == pytest.approx(score, abs=1.1e-3)
            assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "4147007"  # SCT Mass
            differing = int((pixels[..., number - 1].astype(bool) != expected[i]).sum())
            assert differing <= 10 + 0.01 * int(golden["mask_pixels"][i]), (view, i, differing)


def test_structured_report_has_each_detection_as_a_polygon_with_class_and_score(reported):
    (path,) = reported.rglob("*_sr.dcm")
    sr = pydicom.dcmread(path)
    groups = []

    def walk(items):
        for item in items:
            name = item.get("ConceptNameCodeSequence")
            if name and name[0].CodeMeaning == "Measurement Group":
                groups.append(item)
            walk(item.get("ContentSequence", []))

    walk(sr.ContentSequence)
    regions = []
    for group in groups:
        texts = {i.ConceptNameCodeSequence[0].CodeMeaning: i for i in group.ContentSequence
                 if "ConceptNameCodeSequence" in i}
        if "Image Region" not in texts:
            continue
        region = texts["Image Region"]
        identifier = texts["Tracking Identifier"].TextValue
        numbers = {i.ConceptNameCodeSequence[0].CodeMeaning: float(i.MeasuredValueSequence[0].NumericValue)
                   for i in group.ContentSequence if i.ValueType == "NUM"}
        regions.append((identifier, region.GraphicType, np.asarray(region.GraphicData, float).reshape(-1, 2), numbers))
    over = _shown(reported)
    assert len(regions) == sum(int(o.sum()) for o in over.values())  # the findings: those the screen shows
    for view in VIEWS:
        golden = _golden(view)
        masks = _golden_masks(golden)
        mine = [r for r in regions if f" {view} " in r[0]]
        kept = np.flatnonzero(over[view])
        assert len(mine) == len(kept)
        for i, (identifier, kind, points, numbers) in zip(kept, mine, strict=True):
            label, score = CLASSES[int(golden["labels"][i]) - 1], float(golden["scores"][i])
            assert identifier.endswith(f"{label} detection {i + 1}")
            assert numbers[f"Probability of {label}"] == pytest.approx(score, abs=1e-4)
            assert kind == "POLYLINE" and (points[0] == points[-1]).all()  # closed: SCOORD's polygon
            # the polygon filled on the grid covers the reference mask's largest piece (the outline is that
            # piece's; its vertices are boundary-cell centres)
            _, pieces, stats, _ = cv2.connectedComponentsWithStats(masks[i].astype(np.uint8), connectivity=8)
            largest = pieces == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            rows, cols = np.nonzero(largest)
            if largest.sum() < 20 or len(set(rows)) < 3 or len(set(cols)) < 3:
                continue
            assert len(points) > 5  # an outline, not the four corners of the box
            filled = np.zeros(masks[i].shape, np.uint8)
            cv2.fillPoly(filled, [np.round(points - 0.5).astype(np.int32)], 1)
            overlap = (filled.astype(bool) & largest).sum() / largest.sum()
            assert overlap > 0.9, (view, i, overlap)


def test_a_class_with_no_detection_is_said_so_not_written_as_a_probability_of_0(tmp_path):
    """A view's class score is its best detection's; a class none of whose detections passed the score threshold
    had "Probability of … 0.0" in the SR where the screen and the PDF say "< 10 %". The view's group (and its
    breast's, the exam's) says the threshold and, for that class, that nothing was detected at or above it; a
    detected class keeps its score; dciodvfy clean. Exam 0's R-CC under a threshold of 0.1: its best benign
    detection scores 0.153 (0.144 over the breast), its best malignant one 0.069 (the oracle)."""
    import json
    import shutil

    import highdicom as hd

    require_shared(MASKRCNN)
    from app.report.content import ReportInput
    from app.report.export import export_report
    from inference.families.maskrcnn.family import metadata
    from inference.intake.exam import load_exam
    from inference.pipeline import analyze_exam
    from inference.weights import load_model
    from tests.inference.intake.dicom_factory import make_dataset, write

    golden = _golden("R-CC")
    assert max(golden["scores"][golden["labels"] == 1]) > 0.1 > max(golden["scores"][golden["labels"] == 2])
    shutil.copy(MASKRCNN / "seeded_state_dict.pt", tmp_path / "detector.pt")
    (tmp_path / "detector.pt.json").write_text(json.dumps(metadata(score_threshold=0.1)))
    folder = tmp_path / "exam"
    folder.mkdir()
    pixels = cv2.imread(str(DATA / "gmic-exam0" / "0_R-CC.png"), cv2.IMREAD_UNCHANGED)
    write(make_dataset(pixels, "R-CC"), folder, "R-CC.dcm")
    exam = load_exam(folder)
    result = analyze_exam(exam, [load_model(tmp_path / "detector.pt")], device="cpu")
    view = result.views[View.R_CC].result(result.entries[0].id).probabilities
    assert view["benign mass"] > 0.1 and view["malignant mass"] == 0.0
    (path,) = export_report(ReportInput(exam, result), tmp_path / "out", formats=("sr",))
    assert dciodvfy(path) == []
    report = hd.sr.MeasurementReport.from_sequence([hd.sr.srread(path)])
    groups = report.get_image_measurement_groups()
    assert len(groups) == 3  # the view, its breast, the exam
    for group in groups:
        numbers = {m.name.meaning: m.value for m in group.get_measurements()}
        coded = {e.name.meaning: e.value.meaning for e in group.get_qualitative_evaluations()}
        assert numbers["Probability of benign mass"] == pytest.approx(view["benign mass"], abs=1e-6)
        for below in ("Probability of malignant mass", "Probability of malignancy"):
            assert below not in numbers  # no number, no 0
            assert coded[below] == "No detection scored at or above the detector's threshold"
        assert numbers["Detector score threshold"] == pytest.approx(0.1)


def test_detection_exports_pass_dciodvfy(reported):
    paths = [*reported.rglob("*_sr.dcm"), *reported.rglob("*_detections_seg.dcm")]
    assert len(paths) == 5
    for path in paths:
        assert dciodvfy(path) == [], path.name


def test_mask_outline_is_the_boundary_cell_centres_through_the_affine():
    """Hand-checked: a 3 x 4 block of cells inside a 6 x 6 mask whose cell (0, 0) lies at original (10, 20)."""
    from app.report.sr import mask_outline
    from inference.results.types import InstanceMask

    values = np.zeros((6, 6), np.float32)
    values[1:4, 2:6] = 0.9
    values[5, 0] = 0.9  # a smaller piece: not the outline
    mask = InstanceMask(values, np.array([[1.0, 0.0, 10.0], [0.0, 1.0, 20.0], [0.0, 0.0, 1.0]]))
    outline = mask_outline(mask, (100, 100))
    # (column, row): boundary cells' centres, cols 2..5 -> 22.5..25.5, rows 1..3 -> 11.5..13.5, closed
    assert {tuple(p) for p in outline.tolist()} == {(22.5, 11.5), (25.5, 11.5), (25.5, 13.5), (22.5, 13.5)}
    assert outline[0].tolist() == outline[-1].tolist()
    assert mask_outline(InstanceMask(np.zeros((3, 3), np.float32), np.eye(3)), (10, 10)) is None
    pasted = mask.in_original((100, 100))
    assert pasted.sum() == 13 and pasted[11:14, 22:26].all() and pasted[15, 20]


def test_an_exam_the_detector_reads_on_no_view_is_reported_partial_with_the_reason(tmp_path):
    """16-bit views under a detector that declares 12-bit input: every view has no result. The report writes
    what it can (the JSON, the PDF with its notes) and says why there is no SR; the exam is partial, not failed
    with highdicom's "Argument 'imaging_measurements' must contain at least one item"."""
    import csv

    require_shared(MASKRCNN)
    from tests.inference.intake.dicom_factory import make_dataset, write

    folder = tmp_path / "exam16"
    folder.mkdir()
    for view in VIEWS:
        pixels = cv2.imread(str(DATA / "gmic-exam0" / f"0_{view}.png"), cv2.IMREAD_UNCHANGED)
        write(make_dataset(pixels.astype(np.uint16) * np.uint16(16), view, BitsStored=16, HighBit=15), folder,
              f"{view}.dcm")
    out = tmp_path / "out"
    done = run_main(["report", str(folder), "--out", str(out), "--models",
                     str(MASKRCNN / "seeded_state_dict.pt"), "--format", "json,sr,pdf", "--device", "cpu"])
    assert done.returncode == 1 and "IN PART exam16" in done.stdout, done.stdout[-3000:]  # partial, not failed
    assert "ValueError" not in done.stdout + done.stderr
    (failure,) = list(csv.DictReader((out / "failures.csv").open()))
    assert "PDF, JSON written; SR failed: no model has a result on any view of this exam" in failure["reason"]
    assert "above the input maximum the model declares (4095" in failure["reason"]
    assert list(out.rglob("*.json")) and not list(out.rglob("*.dcm"))
    from pypdf import PdfReader

    text = " ".join(page.extract_text() for page in PdfReader(next(out.rglob("*.pdf"))).pages)
    assert "none shown (no region on any view with a result" in " ".join(text.split())
    assert "has no result on L-CC" in " ".join(text.split())


def test_with_two_models_each_gets_its_segmentations(tmp_path):
    """A deployment engineer reported with the demo GMIC and the Mask R-CNN: only the drawn (first) model's
    saliency SEG was written, the detector's detections none, and nothing said so."""
    require_shared(MASKRCNN)
    from app.demo import demo_model_path
    from app.report.content import ReportInput
    from app.report.export import export_report
    from inference.exam import load_exam
    from inference.pipeline import analyze_exam
    from inference.weights import load_model_groups
    from tests.inference.intake.dicom_factory import make_dataset, write

    pixels = cv2.imread(str(DATA / "gmic-exam0" / "0_L-CC.png"), cv2.IMREAD_UNCHANGED)
    (tmp_path / "exam").mkdir()
    write(make_dataset(pixels, "L-CC"), tmp_path / "exam", "L-CC.dcm")
    exam = load_exam(tmp_path / "exam")
    groups = load_model_groups([demo_model_path(), MASKRCNN / "seeded_state_dict.pt"])
    result = analyze_exam(exam, groups, device="cpu")
    written = export_report(ReportInput(exam, result), tmp_path / "out", ["seg"], "A4")
    names = sorted(path.name for path in written)
    assert names == ["ACC123_L-CC_model_saliency_seg.dcm", "ACC123_L-CC_seeded_state_dict_detections_seg.dcm"], names
    detections = pydicom.dcmread(next(p for p in written if "detections" in p.name))
    assert detections.SegmentationType == "BINARY" and len(detections.SegmentSequence) >= 1
