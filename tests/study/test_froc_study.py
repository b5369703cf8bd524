"""A small localisation study end to end: created with truth, read with marks by two readers in both
modalities, scored, analysed from the store through the command line, exported in the JSON form and
re-analysed from it with identical results."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from app.study.cases import CaseEntry
from app.study.design import Design, create_study
from app.study.errors import StudyError
from app.study.froc_study import load_lesion_truth, stored_froc_data
from app.study.sessions import ReadingSession
from app.study.store import ReaderMark, Store
from tests.helpers import run_main
from tests.study.ai_results import store_ai_results

CENTRE = (1000.0, 1000.0)
HIT, NEAR, AWAY = (1003.0, 998.0), (1050.0, 1050.0), (200.0, 300.0)  # NEAR: 7.1 mm at 0.1 mm per pixel
IN_MASK = (1000.0, 1300.0)  # 30 mm from the centre but inside the elongated outline of case c00

# (reader, modality) -> per case: (position or None, confidence); c00..c02 malignant (left), c03..c05 normal
PLAN = {
    ("A", "unaided"): [(IN_MASK, 4), (NEAR, 2), (None, 0), (AWAY, 3), (None, 0), (AWAY, 1)],
    ("A", "aided"): [(IN_MASK, 5), (HIT, 4), (HIT, 2), (AWAY, 1), (None, 0), (None, 0)],
    ("B", "unaided"): [(HIT, 3), (AWAY, 2), (NEAR, 1), (AWAY, 4), (AWAY, 2), (None, 0)],
    ("B", "aided"): [(HIT, 5), (NEAR, 3), (HIT, 3), (AWAY, 2), (None, 0), (AWAY, 1)],
}


def make_study(tmp_path):
    store = Store(tmp_path / "study.sqlite")
    entries = [CaseEntry(f"c{i:02d}", f"/exams/{i}", "malignant" if i < 3 else "normal", "normal") for i in range(6)]
    study_id = create_study(store, "loc", Design.SEQUENTIAL, ["A", "B"], entries, seed=3)
    mask = np.zeros((100, 400), np.uint8)
    mask[40:60, :] = 255  # a band from the centre 400 px (40 mm) to the right
    cv2.imwrite(str(tmp_path / "c00_lcc.png"), mask)
    truth = {"rule": {"distance_mm": 10.0},
             "cases": {f"c{i:02d}": {"spacing": {"L-CC": [0.1, 0.1]},
                                     "lesions": [{"id": 1, "views": [{"view": "L-CC", "centre": list(CENTRE)}]}]}
                       for i in range(3)}}
    truth["cases"]["c00"]["lesions"][0]["views"][0].update(mask="c00_lcc.png", origin=[950, 1000])
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    return store, study_id


def read(store, study_id, reader, skip=()):
    store_ai_results(store, study_id)  # what the aided reads were shown (study scores)
    session = ReadingSession(store, study_id, reader)
    for case_number in range(6):
        case = f"c{case_number:02d}"
        for modality in ("unaided", "aided"):
            if (case, modality) in skip:
                continue
            position, confidence = PLAN[(reader, modality)][case_number]
            marks = [ReaderMark("L-CC", *position, "mass", confidence)] if position else []
            session.commit(case, modality, {"L": confidence / 5, "R": 0.0}, marks=marks).result()
            if modality == "unaided":
                session.reveal(case).result()


def main(*args):
    return run_main(list(args))


def test_stored_study_analysed_exported_and_reimported_identically(tmp_path):
    store, study_id = make_study(tmp_path)
    truth = load_lesion_truth(tmp_path / "truth.json")
    read(store, study_id, "A")
    read(store, study_id, "B", skip={("c05", "aided")})
    form, cautions = stored_froc_data(store, study_id, truth)
    assert [c["id"] for c in form["cases"]] == ["c00", "c01", "c02", "c03", "c04"]
    assert any("1 of 6 case(s)" in c and "interim" in c for c in cautions)
    only_a, cautions = stored_froc_data(store, study_id, truth, chosen={"A"})  # study results --readers A
    assert only_a["readers"] == ["A"] and len(only_a["cases"]) == 6 and cautions == ()
    assert {m["reader"] for m in only_a["marks"]} == {"A"}
    read_last = ReadingSession(store, study_id, "B")
    read_last.commit("c05", "aided", {"L": 0.2, "R": 0.0}, marks=[ReaderMark("L-CC", *AWAY, "mass", 1)]).result()
    form, cautions = stored_froc_data(store, study_id, truth)
    assert cautions == () and len(form["cases"]) == 6
    marks = {(m["modality"], m["reader"], m["case"]): m for m in form["marks"]}
    assert marks[("unaided", "A", "c00")]["lesion"] == 1  # inside the outline, 30 mm from the centre
    assert marks[("unaided", "A", "c01")]["lesion"] == 1  # 7.1 mm from the centre
    assert marks[("unaided", "B", "c01")]["lesion"] is None  # away
    assert form["description"]["scoring"] == {"distance_mm": 10.0, "use_outline": True}
    store.close()

    first = main("study", "--db", tmp_path / "study.sqlite", "froc", "loc", "--truth", tmp_path / "truth.json",
                 "--out", tmp_path / "stored")
    assert first.returncode == 0, first.stderr
    assert "aided − unaided" in first.stdout
    exported = json.loads((tmp_path / "stored" / "study_froc.json").read_text())
    assert exported == json.loads(json.dumps(form))
    again = main("study", "froc", "--data", tmp_path / "stored" / "study_froc.json", "--out", tmp_path / "again")
    assert again.returncode == 0, again.stderr
    results = [json.loads((tmp_path / folder / "results.json").read_text()) for folder in ("stored", "again")]
    assert results[0]["foms"] == results[1]["foms"] and results[0]["tests"] == results[1]["tests"]
    # aided, reader A: FP (1 on c03; none on c04, c05) against lesions (5, 4, 2): every lesion beats every FP
    assert results[0]["foms"]["aided"]["A"] == pytest.approx(1.0)


def test_a_malignant_case_without_lesion_locations_is_named(tmp_path):
    store, study_id = make_study(tmp_path)
    truth = load_lesion_truth(tmp_path / "truth.json")
    del truth.lesions["c02"]
    read(store, study_id, "A")
    with pytest.raises(StudyError, match="case c02 is malignant"):
        stored_froc_data(store, study_id, truth)
    store.close()


def test_a_stored_study_needs_the_lesion_locations(tmp_path):
    store, _ = make_study(tmp_path)
    store.close()
    done = main("study", "--db", tmp_path / "study.sqlite", "froc", "loc", "--out", tmp_path / "out")
    assert done.returncode != 0 and "--truth" in done.stderr


def test_a_malignant_training_case_s_lesion_does_not_stop_the_analysis(store):
    """Its lesion is required at creation (every malignant breast has one) and left out of the analysis."""
    from app.study.cases import CaseEntry  # noqa: PLC0415
    from app.study.design import Design, create_study  # noqa: PLC0415
    from app.study.froc_study import stored_froc_data  # noqa: PLC0415
    from app.study.lesions import StudyLesion, stored_lesion_truth  # noqa: PLC0415
    from app.study.sessions import ReadingSession  # noqa: PLC0415
    from app.study.store import ReaderMark  # noqa: PLC0415

    entries = [CaseEntry("t1", "/e/t", "malignant", "normal", training=True)] + [
        CaseEntry(f"c{i}", f"/e/{i}", "malignant" if i < 3 else "normal", "normal") for i in range(6)]
    lesions = [StudyLesion(c.case_id, "1", "L", "L-CC", (100.0, 100.0), 5.0, None, (0, 0), (0.1, 0.1), None)
               for c in entries if c.truth_left == "malignant"]
    study = create_study(store, "loc", Design.UNAIDED, ["A", "B"], entries, seed=1, lesions=lesions)
    for reader in ("A", "B"):
        session = ReadingSession(store, study, reader)
        for case in entries:
            session.commit(case.case_id, "unaided", {"L": 0.5, "R": 0.1},
                           marks=[ReaderMark("L-CC", 101, 101, "mass", 4)]).result()
    data, _ = stored_froc_data(store, study, stored_lesion_truth(store, study))
    assert [c["id"] for c in data["cases"]] == [f"c{i}" for i in range(6)]
    assert not [m for m in data["marks"] if m.get("case") == "t1"]


def test_a_reader_who_has_read_nothing_is_left_out_and_no_file_is_written_without_cases(tmp_path):
    """A third reader with no reads made every case "incomplete": 'froc' said "no modalities, readers or cases"
    and the RJafroc export raised an IndexError."""
    from app.study.froc_export import rjafroc_tables

    store = Store(tmp_path / "study.sqlite")
    entries = [CaseEntry(f"c{i:02d}", f"/exams/{i}", "malignant" if i < 3 else "normal", "normal") for i in range(6)]
    training = CaseEntry("t0", "/exams/t", "normal", "normal", training=True)
    study_id = create_study(store, "loc", Design.SEQUENTIAL, ["A", "B", "Lz"], [training, *entries], seed=3)
    (tmp_path / "first").mkdir()
    truth_store, _ = make_study(tmp_path / "first")  # writes its truth.json
    truth_store.close()
    truth = load_lesion_truth(tmp_path / "first" / "truth.json")
    read(store, study_id, "A")
    read(store, study_id, "B")
    lz = ReadingSession(store, study_id, "Lz")  # the training case only (it comes first): not the study's reads
    lz.commit("t0", "unaided", {"L": 0.1, "R": 0.1}).result()
    form, cautions = stored_froc_data(store, study_id, truth)
    assert form["readers"] == ["A", "B"] and len(form["cases"]) == 6
    assert any("Lz have read nothing yet and are left out" in c for c in cautions)
    assert len(rjafroc_tables(form)["Truth"]) == 7  # header, three normal cases, three lesions

    alone = create_study(store, "one case", Design.UNAIDED, ["A"], entries[:1], seed=1)
    ReadingSession(store, alone, "A").commit("c00", "unaided", {"L": 0.8, "R": 0.1},
                                             marks=[ReaderMark("L-CC", *HIT, "mass", 4)]).result()
    one = json.loads((tmp_path / "first" / "truth.json").read_text())
    one["cases"] = {"c00": one["cases"]["c00"]}
    (tmp_path / "first" / "one.json").write_text(json.dumps(one))
    form, _ = stored_froc_data(store, alone, load_lesion_truth(tmp_path / "first" / "one.json"))
    with pytest.raises(StudyError, match="needs at least two rows of truth"):
        rjafroc_tables(form)
    store.close()


def test_a_truth_file_gets_the_checks_of_a_lesion_list(tmp_path):
    """study froc --truth took what study create --lesions refuses: a lesion on a normal case (which then
    counted as abnormal, and the figures moved without a word), on the breast the case list calls normal, a
    centre outside the image (a coordinator's test)."""
    from app.study.cases import study_cases
    from app.study.froc_study import check_truth_file

    store, study_id = make_study(tmp_path)
    cases = study_cases(store, study_id)
    shapes = lambda _exam: {"L-CC": (3000, 2000), "R-CC": (3000, 2000)}  # noqa: E731
    good = json.loads((tmp_path / "truth.json").read_text())
    assert check_truth_file(load_lesion_truth(tmp_path / "truth.json"), cases, "truth.json", shapes) == ()

    def refused(change, message):
        data = json.loads(json.dumps(good))
        change(data["cases"])
        (tmp_path / "bad.json").write_text(json.dumps(data))
        with pytest.raises(StudyError, match=message):
            check_truth_file(load_lesion_truth(tmp_path / "bad.json"), cases, "bad.json", shapes)

    lesion = {"id": 7, "views": [{"view": "L-CC", "centre": [100, 100]}]}
    refused(lambda c: c.update(c03={"lesions": [lesion]}),
            r"bad.json: case c03: lesion 7 is on L-CC, but the left breast is normal in the study's case list")
    refused(lambda c: c["c01"]["lesions"][0]["views"].__setitem__(0, {"view": "R-CC", "centre": [10, 10]}),
            "case c01: lesion 1 is on R-CC, but the right breast is normal")
    refused(lambda c: c["c01"]["lesions"][0]["views"][0].update(centre=[99999, 99999]),
            r"case c01: lesion 1: its centre \(row 99999, col 99999\) is outside the L-CC image \(3000 rows")
    refused(lambda c: c["c01"]["lesions"][0]["views"].append({"view": "L-MLO", "centre": [10, 10]}),
            "case c01: lesion 1 is on L-MLO, but the case's exam has no L-MLO image")
    # from a review: the creation's other checks too
    refused(lambda c: c["c01"]["lesions"][0]["views"].append({"view": "L-CC", "centre": [20, 20]}),
            "case c01: lesion 1 is given twice on L-CC")
    refused(lambda c: c["c01"]["lesions"][0]["views"].append({"view": "lcc", "centre": [20, 20]}),
            "case c01: lesion 1 is given twice on L-CC")  # one view however spelt (a second review)
    refused(lambda c: c["c01"]["lesions"][0]["views"].append({"view": "CC", "centre": [20, 20]}),
            "bad.json: case c01: 'CC' is not a view")
    refused(lambda c: c.pop("c02"), "bad.json: case c02: the left breast is malignant in the study's case list but "
                                    "the truth file gives it no lesion")
    # an exam moved away since the reading: the breasts are checked, the places cannot be, and that is said
    spelt = json.loads(json.dumps(good))  # "LCC" is L-CC, in the spacing too: marks on L-CC hit its lesion
    spelt["cases"]["c01"]["lesions"][0]["views"][0]["view"] = "LCC"
    spelt["cases"]["c01"]["spacing"] = {"lcc": [0.1, 0.1]}
    (tmp_path / "spelt.json").write_text(json.dumps(spelt))
    truth = load_lesion_truth(tmp_path / "spelt.json")
    assert truth.lesions["c01"][0].outlines[0].view == "L-CC" and truth.spacing["c01"] == {"L-CC": (0.1, 0.1)}
    cautions = check_truth_file(load_lesion_truth(tmp_path / "truth.json"), cases, "truth.json")
    assert len(cautions) == 1 and "c00, c01, c02 could not be read" in cautions[0]
    store.close()
    data = json.loads(json.dumps(good))
    data["cases"]["c03"] = {"lesions": [lesion]}
    (tmp_path / "bad.json").write_text(json.dumps(data))
    done = main("study", "--db", tmp_path / "study.sqlite", "froc", "loc", "--truth", tmp_path / "bad.json",
                "--out", tmp_path / "out")
    assert done.returncode != 0 and "the left breast is normal in the study's case list" in done.stderr


def test_a_froc_that_cannot_be_estimated_still_says_who_was_left_out(tmp_path):
    """Reader B had read nothing: 'study froc' said "not estimable: a single reader" and not that B was left out
    and the results interim, which the results screen says."""
    store, study_id = make_study(tmp_path)
    read(store, study_id, "A")
    store.close()
    done = main("study", "--db", tmp_path / "study.sqlite", "froc", "loc", "--truth", tmp_path / "truth.json",
                "--out", tmp_path / "out")
    assert done.returncode == 1 and "single reader" in done.stdout, done.stdout + done.stderr
    assert "note: reader(s) B have read nothing yet and are left out; results are interim" in done.stdout
