"""Hostile and odd files from the boundary probe: a PNG that declares 30000 x 30000 pixels, damaged RLE pixel
data, a dangling link named like a view. Each is refused with a message naming the file and the reason."""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import RLELossless

from inference.intake.exam import ExamError, load_exam, load_view
from tests.conftest import ROOT
from tests.helpers import synthetic_view, write_png
from tests.inference.intake.dicom_factory import make_dataset, write


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(path, width: int = 30000, height: int = 30000):
    """A valid PNG header declaring ``width`` x ``height`` 8-bit grey pixels; the data is the first rows of
    zeros only (the probe's 1.7 MB file held them all; the header is what must stop the decoder)."""
    rows = zlib.compress(bytes(width + 1) * 16)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b""))
    return path


def test_a_png_declaring_30000_by_30000_pixels_is_refused_from_its_header(tmp_path):
    path = huge_png(tmp_path / "L-CC.png")
    with pytest.raises(ExamError) as refused:
        load_view(path)
    message = str(refused.value)
    assert "L-CC.png" in message and "30000 x 30000 pixels" in message and "not loaded" in message


def test_the_huge_png_is_refused_without_allocating_the_image(tmp_path):
    """In a fresh process: the peak resident memory stays far below the 900 MB an 8-bit 30000² image takes."""
    path = huge_png(tmp_path / "R-MLO.png")
    probe = (
        "import resource, sys\n"
        "from inference.intake.exam import ExamError, load_view\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    load_view({str(path)!r})\n"
        "except ExamError as error:\n"
        "    print('refused', error)\n"
        "print('grew_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "refused" in done.stdout and "30000 x 30000" in done.stdout
    grew_kib = int(done.stdout.split("grew_kib")[1])
    assert grew_kib < 100 * 1024, done.stdout  # far below 900 MB


def test_an_ordinary_png_still_loads(tmp_path):
    path = write_png(tmp_path / "L-CC.png", synthetic_view("L-CC", (300, 200), shape=(600, 400)))
    assert load_view(path).pixels.shape == (600, 400)


def damaged_rle(folder, damage: str):
    """An RLE Lossless MG file whose one fragment is complete as stored (no truncation) but whose RLE data is
    damaged: ``short`` (cut inside the 64-byte RLE header) or ``overrun`` (runs that decode past the frame)."""
    ds = make_dataset(synthetic_view("L-CC", (300, 200), shape=(120, 80)), "L-CC")
    ds.compress(RLELossless)
    (frame,) = list(generate_frames(ds.PixelData, number_of_frames=1))
    broken = bytearray(frame[:10]) if damage == "short" else bytearray(frame[:64]) + b"\x81" * (len(frame) - 64)
    ds.PixelData = encapsulate([bytes(broken)])
    return write(ds, folder, "L-CC.dcm")


@pytest.mark.parametrize("damage", ["short", "overrun"])
def test_damaged_rle_pixel_data_is_named_as_damage_without_pydicom_tracebacks(tmp_path, caplog, damage):
    path = damaged_rle(tmp_path, damage)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ExamError) as refused:
        load_view(path)
    message = str(refused.value)
    assert "L-CC.dcm" in message and "the RLE-compressed pixel data is damaged (" in message
    assert "cannot decode" not in message
    assert not [r for r in caplog.records if r.name.startswith("pydicom") and r.levelno >= logging.ERROR]


def test_pydicom_decoder_errors_of_other_threads_still_reach_the_log(caplog):
    caplog.set_level(logging.ERROR)
    logging.getLogger("pydicom.pixels.decoders.base").error("elsewhere")
    assert [r.getMessage() for r in caplog.records] == ["elsewhere"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
def test_a_dangling_link_named_like_a_view_is_named_in_the_refused_list(tmp_path):
    exam = tmp_path / "exam"
    exam.mkdir()
    for view in ("L-CC", "R-CC", "L-MLO"):
        write_png(exam / f"{view}.png", synthetic_view(view, (300, 200), shape=(600, 400)))
    (exam / "R-MLO.png").symlink_to(tmp_path / "gone" / "R-MLO.png")
    loaded = load_exam(exam)
    assert ("R-MLO.png", f"a link to a file that does not exist ({tmp_path / 'gone' / 'R-MLO.png'})") in loaded.refused
    assert any(w.startswith("R-MLO.png could not be loaded: a link to a file that does not exist")
               for w in loaded.warnings)
