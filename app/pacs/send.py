"""Sending results (SR, SEG, Encapsulated PDF) to a node, with one rule for every sender — the workstation's
export, ``report --send`` and the AI node: the same bytes are never sent twice to the same node, and files
whose send failed are kept and sent on the next try. What was sent is recorded per node as the SHA-256 of each
file, so a re-export whose content changed (an amended read, a newer model) is sent again."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from app.pacs.nodes import RemoteNode
from inference.files import write_text_atomic


def node_folder(root: Path, node: RemoteNode) -> Path:
    """Where the records of what was sent to ``node`` live under ``root``."""
    return root / "sent" / hashlib.sha1(node.describe().encode()).hexdigest()[:16]


def _digests(files: Sequence[Path]) -> list[str]:
    return sorted(hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files)


def send_once(node: RemoteNode, files: Sequence[Path], record: Path) -> bool:
    """Send ``files`` to ``node`` unless exactly these bytes were sent there already (``record``); True when
    they were sent now, False when they had been. Raises ``PacsError`` / ``OSError`` when the send fails (the
    record is then unchanged, so the next try sends them)."""
    from app.pacs.retrieve import send_files  # noqa: PLC0415

    digests = _digests(files)
    if record.is_file():
        try:
            if json.loads(record.read_text(encoding="utf-8")).get("sha256") == digests:
                return False
        except (ValueError, AttributeError):
            pass  # an unreadable record: send again rather than trust it
    send_files(node, list(files))
    write_text_atomic(record, json.dumps({"node": node.describe(), "files": [str(f) for f in files], "sha256": digests}))
    return True
