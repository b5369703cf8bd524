"""Help → User guide: the documentation's pages, listed on the left and shown as formatted text on the right."""

from __future__ import annotations

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QTextCursor, QTextDocument
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHBoxLayout, QListWidget, QTextBrowser, QVBoxLayout, QWidget

from app.guide import docs_dir, read_guide
from app.ui.worker import Worker


def _read_task(progress=None, cancel=None) -> list[tuple[str, str, str]]:  # noqa: ARG001 - the Worker's signature
    return read_guide()


class GuideDialog(QDialog):
    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("guideDialog")
        self.setWindowTitle("Mammo Reader — user guide")
        self.pages = QListWidget()
        self.pages.setObjectName("guidePages")
        self.pages.setMaximumWidth(260)
        self.pages.setWordWrap(True)
        self.text = QTextBrowser()
        self.text.setObjectName("guideText")
        self.text.setOpenLinks(False)  # a page's link to another page ("batch.md") blanked the text: handled here
        self.text.anchorClicked.connect(self._follow)
        self.text.setPlainText("Reading the guide…")
        self._markdown: list[str] = []
        self._names: list[str] = []
        self.pages.currentRowChanged.connect(self._show)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.pages)
        row.addWidget(self.text, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(row, 1)
        layout.addWidget(buttons)
        screen = parent.screen().availableGeometry() if parent.screen() is not None else None
        self.resize(min(1100, int(screen.width() * 0.9)) if screen else 1000,
                    min(900, int(screen.height() * 0.9)) if screen else 760)
        self.worker = Worker(_read_task)  # files are read off the GUI thread
        self.worker.result.connect(self._fill)
        self.worker.error.connect(lambda error: self.text.setPlainText(f"The guide could not be read: {error}"))
        self.worker.start()

    def _fill(self, pages: list[tuple[str, str, str]]) -> None:
        if not pages:
            self.text.setPlainText(f"The guide's pages are not in {docs_dir()}: this installation has no "
                                   "documentation (it is in the project's docs/ folder).")
            return
        self._markdown = [text for _name, _title, text in pages]
        self._names = [name for name, _title, _text in pages]
        self.pages.addItems([title for _name, title, _text in pages])
        self.pages.setCurrentRow(0)
        self.pages.setFocus()

    def _follow(self, url: QUrl) -> None:
        """A link to another page of the guide opens that page; a web address opens in the browser the user has."""
        if url.scheme() in ("http", "https"):
            QDesktopServices.openUrl(url)
            return
        name = url.path().rsplit("/", 1)[-1].removesuffix(".md")
        if name in self._names:
            self.pages.setCurrentRow(self._names.index(name))

    def _show(self, row: int) -> None:
        if 0 <= row < len(self._markdown):
            self.text.setMarkdown(self._markdown[row])
            wrap_code_blocks(self.text.document())


def wrap_code_blocks(document: QTextDocument) -> None:
    """Let the command blocks wrap at the window's width: Qt's Markdown makes their lines unbreakable, and a long
    command scrolled the whole page sideways, its text cut at the right."""
    block = document.begin()
    while block.isValid():
        if block.blockFormat().nonBreakableLines():
            cursor = QTextCursor(block)
            form = block.blockFormat()
            form.setNonBreakableLines(False)
            cursor.setBlockFormat(form)
        block = block.next()
