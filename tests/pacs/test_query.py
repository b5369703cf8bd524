"""The C-FIND identifier as it goes on the wire: what the user typed, never a wildcard they did not type."""

from __future__ import annotations

import warnings
from io import BytesIO

import pytest
from pynetdicom.dsutils import decode, encode

from app.pacs.query import StudyQuery


@pytest.mark.parametrize("name", ["山田*", "ﾔﾏﾀﾞ*", "Müller*", "Ångström^Çelik"])
def test_a_name_beyond_ascii_is_sent_as_typed_with_its_character_set(name):
    """Sent undeclared, pydicom wrote "?" for each character Latin-1 lacks: "山田*" went out as "??*", DICOM's
    wildcard for any two characters, and the node listed every patient it holds."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydicom's "using replacement characters" would fail here
        wire = encode(StudyQuery(patient_name=name).dataset(), True, True)
    assert name.encode("utf-8") in wire and b"??" not in wire
    received = decode(BytesIO(wire), True, True)
    assert received.SpecificCharacterSet == "ISO_IR 192" and str(received.PatientName) == name


def test_an_ascii_query_declares_no_character_set():
    """Old nodes may refuse a declared UTF-8 query; ASCII needs no declaration."""
    query = StudyQuery(patient_id="PID-1", patient_name="DOE^J*", accession="A1").dataset()
    assert "SpecificCharacterSet" not in query
    assert b"DOE^J*" in encode(query, True, True)
