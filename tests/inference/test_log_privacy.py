"""The log filters: no header value of pydicom's complaints, no control character of a peer's bytes."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from inference.log_privacy import PlainFormatter, without_header_values

ROOT = Path(__file__).resolve().parents[2]


def test_a_header_value_pydicom_quotes_is_not_shown():
    record = logging.LogRecord("pydicom", logging.WARNING, __file__, 1,
                               "Invalid value for VR UI: '1.2.3.PIDZ9988776.1'. Please see <link>", None, None)
    assert without_header_values(record)
    assert record.getMessage() == "Invalid value for VR UI (the value is not shown). Please see <link>"


def test_control_characters_of_a_peer_are_escaped_and_forge_no_line():
    record = logging.LogRecord("pynetdicom", logging.ERROR, __file__, 1, "AE title 'X\nsent 4 file\x1b[2J\x00'",
                               None, None)
    text = PlainFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert text == "ERROR pynetdicom: AE title 'X\n    sent 4 file\\x1b[2J\\x00'"  # no line of its own


def test_the_node_s_process_hides_header_values_before_the_intake_is_imported():
    """The AI node logged pydicom's complaints about a received UID verbatim until its first analysis imported
    the intake (which installed the filter)."""
    code = ("import logging, sys\n"
            "import main\n"
            "main._handler = lambda dotted: (lambda args: 0)  # the process as main.py sets it up, no command\n"
            "main.main(['serve', '--port', '1', '--ae-title', 'N', '--allow', 'M', '--out', 'o'])\n"
            "logging.getLogger('pydicom').warning(\"Invalid value for VR UI: '1.2.PIDZ'\")\n"
            "logging.getLogger('pynetdicom.utils').warning(\"Non-conformant 'SOP Instance UID' value '1.2.PIDZ.1'\")\n"
            "print('intake imported' if 'inference.intake.dicom' in sys.modules else 'intake not imported')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "PIDZ" not in done.stderr and "(the value is not shown)" in done.stderr, done.stderr[-2000:]
    assert "intake not imported" in done.stdout
