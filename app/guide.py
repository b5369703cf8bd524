"""The user guide the Help menu shows: the documentation's pages (``docs/*.md``) read from the checkout or from
the built app, where packaging puts them beside the resources (no Qt)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
# the pages a reader, a study coordinator or a deployer opens from the workstation, in that order
PAGES = ("workstation", "studies", "reports", "pacs", "batch", "validation", "intake", "analyze", "demo")


def docs_dir() -> Path:
    bundle = getattr(sys, "_MEIPASS", None)
    return Path(bundle) / "docs" if bundle else DOCS


def read_guide(folder: Path | None = None) -> list[tuple[str, str, str]]:
    """(name, title, Markdown) of each page that is there, in :data:`PAGES`' order; the title is the page's first
    heading. Read off the GUI thread: the dialog asks for it on a worker."""
    folder = folder or docs_dir()
    pages = []
    for name in PAGES:
        try:
            text = (folder / f"{name}.md").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        title = next((line.lstrip("#").strip() for line in text.splitlines() if line.startswith("# ")), name)
        title = re.sub(r"\s*\(`[^)]*`\)", "", title).replace("`", "")  # "PACS (`app/pacs/`)": the code's place
        pages.append((name, title, text))
    return pages
