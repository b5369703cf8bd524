"""A C-MOVE whose images reached our receiver and were refused here (a full disk, a file that cannot be written)
is said to be that, not "no such study?" nor a node that cannot reach us."""

from __future__ import annotations

import errno
import socket

import pytest
from pydicom import dcmread
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    DigitalMammographyXRayImageStorageForPresentation,
    StudyRootQueryRetrieveInformationModelMove,
)

from app.pacs import dimse
from app.pacs.nodes import PacsError, parse_address
from inference.intake.phantom import generate_exam, write_dicom_exam


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(("its_syntax", "said"), [
    (True, "the node reached our receiver but none of its images was kept (1 refused here; the log says why)"),
    # a PACS that proposes only uncompressed syntaxes and holds the image RLE-compressed fails on its side
    (False, "the node reached our receiver but none of its images was kept (it sent none of them: the node's log "
            "says why"),
])
def test_a_move_refused_by_our_receiver_says_the_node_reached_us(tmp_path, its_syntax, said):
    image = dcmread(write_dicom_exam(generate_exam(9103, shape=(320, 240)), tmp_path / "exam")[0])
    move_port, node_port = _free_port(), _free_port()

    def on_move(event):  # a PACS that knows our AE title and sends the study's one image to our receiver
        yield "127.0.0.1", move_port
        yield 1
        yield 0xFF00, image

    pacs = AE("ORTHANC")
    pacs.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
    pacs.add_requested_context(DigitalMammographyXRayImageStorageForPresentation,
                               [str(image.file_meta.TransferSyntaxUID)] if its_syntax else None)
    server = pacs.start_server(("127.0.0.1", node_port), block=False, evt_handlers=[(evt.EVT_C_MOVE, on_move)])

    def full_disk(_dataset):
        raise OSError(errno.ENOSPC, "No space left on device")

    try:
        node = parse_address(f"dimse://ORTHANC@127.0.0.1:{node_port}?move={move_port}")[0]
        with pytest.raises(PacsError) as raised:
            dimse.move_study(node, str(image.StudyInstanceUID), full_disk)
    finally:
        server.shutdown()
    assert said in str(raised.value) and "no such study" not in str(raised.value)
