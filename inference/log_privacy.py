"""What keeps patient identifiers and a peer's bytes out of the console and the logs: installed by ``main.py``
at start (the AI node logs pydicom's complaints about received headers before the intake is ever imported) and
by the intake, for library use. No heavy import: it runs before the window is up."""

from __future__ import annotations

import logging
import re

# the value, whatever its quotes or escapes: up to pydicom's "Please see …" or the message's end
_HEADER_VALUE = re.compile(r"(Invalid value for VR \w+): .*?(?=\. Please see|\.?$)", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# pynetdicom's "Non-conformant 'Affected SOP Instance UID' value '1.2.3.<MRN>.1'": a received UID can hold an MRN
_NON_CONFORMANT = re.compile(r"(Non-conformant '[^']*' value) .*", re.DOTALL)


def without_header_values(record: logging.LogRecord) -> bool:
    """pydicom quotes a value it finds invalid ("Invalid value for VR CS: 'female Testperson'"): a header value
    can be a patient's name or an identifier in a UID, and none goes to the console or the logs. The VR is
    kept."""
    message = record.getMessage()
    if "Invalid value for VR" in message:
        record.msg, record.args = _HEADER_VALUE.sub(r"\1 (the value is not shown)", message), None
    elif "Non-conformant '" in message:
        record.msg, record.args = _NON_CONFORMANT.sub(r"\1 (the value is not shown)", message), None
    return True


class PlainFormatter(logging.Formatter):
    """Log lines with control characters written as escapes (``\\x1b``) and a message's further lines indented:
    an unknown peer's AE title or bytes, quoted by pynetdicom, wrote terminal escapes and NUL bytes into the log,
    and a newline in them could forge a line that reads as a record of its own."""

    def format(self, record: logging.LogRecord) -> str:
        lines = super().format(record).split("\n")
        return "\n    ".join(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", line) for line in lines)


def install() -> None:
    """The header-value filter on pydicom's logger (once), for library use; ``main.py`` puts it on its handler,
    where it sees every logger's records (pynetdicom's modules log under their own names)."""
    logger = logging.getLogger("pydicom")
    if without_header_values not in logger.filters:
        logger.addFilter(without_header_values)
