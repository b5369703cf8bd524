"""Exam intake: image types, PNG and DICOM readers, the four-view exam, the phantom, view geometry."""
