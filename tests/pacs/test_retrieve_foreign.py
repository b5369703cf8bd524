"""A retrieve keeps only the study it asked for: an instance of another study that the node sends with it
(a misconfigured PACS, another patient's image) is left out with a note, never shown in this exam."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydicom import dcmread

from app.pacs import retrieve
from app.pacs.nodes import PacsError, parse_address
from inference.exam import load_exam
from inference.intake.phantom import generate_exam, write_dicom_exam


@pytest.fixture
def two_studies(tmp_path):
    ours = [dcmread(p) for p in write_dicom_exam(generate_exam(9101, shape=(320, 240)), tmp_path / "ours")]
    other = [dcmread(p) for p in write_dicom_exam(generate_exam(9102, shape=(320, 240)), tmp_path / "other")]
    return ours, other


def _retrieve(monkeypatch, tmp_path, study_uid: str, sent):
    def get_study(node, uid, on_instance, cancel):
        for dataset in sent:
            on_instance(dataset)
        return len(sent), 0

    monkeypatch.setenv("MAMMO_PACS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(retrieve, "_protocol", lambda node: SimpleNamespace(
        get_study=get_study, study_images=lambda node, uid: frozenset(str(d.SOPInstanceUID) for d in sent)))
    node, _ = parse_address(f"dimse://ORTHANC@127.0.0.1:4242/{study_uid}")
    return retrieve.retrieve_study(SimpleNamespace(node=node, study_uid=study_uid))


def test_an_instance_of_another_study_is_left_out_with_a_note(monkeypatch, tmp_path, two_studies):
    ours, other = two_studies
    uid = str(ours[0].StudyInstanceUID)
    got = _retrieve(monkeypatch, tmp_path, uid, [*ours[:3], other[3], ours[3]])
    assert got.instances == 4
    assert "ignored 1 instance(s) of another study that the node sent with this one" in got.notes
    kept = [dcmread(p) for p in got.folder.glob("*.dcm")]
    assert {str(d.StudyInstanceUID) for d in kept} == {uid}
    assert {str(d.PatientID) for d in kept} == {str(ours[0].PatientID)}
    assert len(load_exam(got.folder).views) == 4


def test_a_node_that_sends_only_other_studies_retrieves_nothing(monkeypatch, tmp_path, two_studies):
    ours, other = two_studies
    with pytest.raises(PacsError, match="only instances of other studies"):
        _retrieve(monkeypatch, tmp_path, str(ours[0].StudyInstanceUID), other)
    assert not [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
