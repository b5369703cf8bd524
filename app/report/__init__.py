"""Annotated reports and exports (PDF, PNG, JSON, DICOM SR) rendered without Qt."""
