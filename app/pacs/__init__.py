"""Mammo Reader as a DICOM node: query / retrieve from a PACS (DIMSE with pynetdicom, DICOMweb with
dicomweb-client), a local cache of what was retrieved, and sending results back. No Qt here."""
