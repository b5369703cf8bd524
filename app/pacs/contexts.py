"""The presentation contexts our DIMSE code offers and accepts: shared by the clients (``dimse``) and the
receiver (``scp``), so that neither imports the other for them. Also where pynetdicom's own log is quieted."""

from __future__ import annotations

import logging

# pynetdicom logs each refusal as ERROR lines ("Association Rejected", "Reason: …") before our message, which
# names the node and says the same; ``-v`` (WARNING, set by main.py before any DIMSE module is imported) keeps
# them. Its INFO and DEBUG lines print the identifiers of C-FIND requests and answers: never shown, and not
# formatted either.
if logging.getLogger("pynetdicom").level == logging.NOTSET:
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)


def _no_identifiers_in_pynetdicom_logs() -> None:
    from pynetdicom import _config  # noqa: PLC0415

    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False


_no_identifiers_in_pynetdicom_logs()

# what the intake decodes (pydicom with pylibjpeg, GDCM, pyjpegls): each offered in its own context
DECODABLE_SYNTAXES = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
)
# the classes a mammography study holds: the images, and what other systems add to it (kept or noted)
RETRIEVED_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography X-Ray Image - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.2.1",  # - For Processing
    "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image - For Presentation
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
    # what a PACS study also holds beside the images: offered so that the node can send them with a study-level
    # C-GET (they are then left out as no MG image); unoffered, Orthanc ended the C-GET at the first of them and
    # the study came instance by instance (16 s against 6), with a note that they "could not be retrieved"
    "1.2.840.10008.5.1.4.1.1.11.1",  # Grayscale Softcopy Presentation State
    "1.2.840.10008.5.1.4.1.1.88.50",  # Mammography CAD SR
    "1.2.840.10008.5.1.4.1.1.88.59",  # Key Object Selection Document
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
)
VERIFICATION = "1.2.840.10008.1.1"
