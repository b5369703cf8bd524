"""A cached study is served only while the node's MG images of it are those that were retrieved: a view that
arrived after the retrieve (a study still arriving from the modality), a retake, or an image moved away to
another patient's study makes the workstation retrieve it again, never show the stale copy."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from app.pacs import retrieve
from app.pacs.nodes import parse_address
from app.pacs.retrieve import COMPLETE
from inference.exam import load_exam
from inference.intake.phantom import generate_exam, write_dicom_exam


class FakeNode:
    """The node's study: what a retrieve sends, and what its image-level query lists (MG only)."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        self.retrieves = 0
        self.cannot_send = 0  # the last N instances fail to come (a transfer syntax we do not decode)
        self.lists_images = True  # False: a node that answers no image-level query

    def get_study(self, node, uid, on_instance, cancel):
        self.retrieves += 1
        sent = self.datasets[:len(self.datasets) - self.cannot_send]
        for dataset in sent:
            on_instance(dataset)
        return len(sent), self.cannot_send

    def study_images(self, node, uid):
        if not self.lists_images:
            return frozenset()
        return frozenset(str(d.SOPInstanceUID) for d in self.datasets if d.Modality == "MG")


@pytest.fixture
def study(tmp_path, monkeypatch):
    views = [dcmread(p) for p in write_dicom_exam(generate_exam(9201, shape=(320, 240)), tmp_path / "exam")]
    fake = FakeNode(views[:3])
    monkeypatch.setenv("MAMMO_PACS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(retrieve, "_protocol", lambda node: fake)
    uid = str(views[0].StudyInstanceUID)
    node, _ = parse_address(f"dimse://ORTHANC@127.0.0.1:4242/{uid}")
    address = SimpleNamespace(node=node, study_uid=uid)
    return fake, views, lambda: retrieve.retrieve_study(address)


def _views(folder):
    return sorted(v.value for v in load_exam(folder).views)


def test_a_view_that_arrived_after_the_retrieve_is_retrieved_not_served_from_the_cache(study):
    fake, views, get = study
    first = get()
    assert len(_views(first.folder)) == 3 and not first.cached
    fake.datasets.append(views[3])  # the modality's last image reaches the PACS
    again = get()
    assert not again.cached and fake.retrieves == 2 and len(_views(again.folder)) == 4
    assert "the study changed on the node since it was cached (1 image(s) added): retrieved again" in again.notes
    third = get()
    assert third.cached and fake.retrieves == 2 and len(_views(third.folder)) == 4
    assert not any("changed" in note for note in third.notes)


def test_a_retake_replaces_the_cached_image_and_an_image_moved_away_goes(study):
    fake, views, get = study
    get()
    retake = dcmread(fake.datasets[0].filename)
    retake.SOPInstanceUID = retake.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    fake.datasets[0] = retake
    again = get()
    assert not again.cached
    assert "(1 image(s) added, 1 image(s) gone)" in again.notes[0]
    kept = {str(dcmread(p).SOPInstanceUID) for p in again.folder.glob("*.dcm")}
    assert kept == {str(d.SOPInstanceUID) for d in fake.datasets}
    del fake.datasets[1]  # filed under the wrong patient, moved on the PACS
    moved = get()
    assert not moved.cached and "(1 image(s) gone)" in moved.notes[0] and len(_views(moved.folder)) == 2


def test_instances_that_are_not_mg_do_not_make_the_cache_stale(study):
    fake, views, get = study
    get()
    report = dcmread(fake.datasets[0].filename)
    report.SOPInstanceUID, report.Modality = generate_uid(), "SR"  # our own results sent back to the study
    fake.datasets.append(report)
    assert get().cached and fake.retrieves == 1


def test_a_cache_entry_that_cannot_be_checked_is_retrieved_again(study):
    fake, views, get = study
    first = get()
    record = json.loads((first.folder / COMPLETE).read_text())
    del record["images"]  # written by an earlier version
    (first.folder / COMPLETE).write_text(json.dumps(record))
    again = get()
    assert not again.cached and fake.retrieves == 2
    assert "could not be checked against the node" in again.notes[0]


def test_an_image_the_node_lists_but_cannot_send_does_not_make_the_cache_stale(study):
    """Found in review: the cache kept the UIDs that arrived, so an instance the node lists but could not send
    made every opening retrieve the study again, saying it had changed."""
    fake, views, get = study
    fake.datasets.append(views[3])
    fake.cannot_send = 1
    first = get()
    assert not first.cached and "1 instance(s) could not be retrieved" in " ".join(first.notes)
    again = get()
    assert again.cached and fake.retrieves == 1
    assert not any("changed" in note for note in again.notes)


def test_a_node_that_lists_no_image_serves_the_cached_copy_with_a_note(study):
    from app.pacs.retrieve import UNCHECKED  # noqa: PLC0415

    fake, views, get = study
    fake.lists_images = False
    get()
    again = get()
    assert again.cached and fake.retrieves == 1 and UNCHECKED in again.notes
