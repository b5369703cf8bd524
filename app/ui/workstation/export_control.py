"""Reports and DICOM results of the exam on screen, written and sent in the background; a send the PACS did not take
can be retried."""

from __future__ import annotations

from pathlib import Path

from app.ui.errors import user_message
from app.ui.worker import Worker


class ExportControl:
    """Exports the exam on screen (PDF, PNG, JSON, SR, SEG) and sends its DICOM files."""

    def __init__(self, window) -> None:
        self.window = window

    @property
    def folder(self) -> str:
        """The folder the export dialog offers: the last one chosen, also in an earlier session."""
        return self.window.settings.export_folder or str(Path.home() / "mammo-reader-reports")

    def report_input(self, deidentify: bool, comments: str = ""):
        """What an export may show: nothing of the model while it is hidden (blind first)."""
        window = self.window
        from app.report.content import ReportInput  # noqa: PLC0415

        # the reader as named in Preferences ("—" when unnamed, as the command says: "reader" is only the key
        # the unnamed reader's reads are kept under); the exam as it is: a de-identified report removes its
        # identifiers itself, and takes from its patient ID the one pseudonym and date shift of every file (a
        # stripped exam gave each view's file its own)
        hidden = window.reading.model_hidden()
        return ReportInput(window.exam, None if hidden else window.result,
                           window.scores.reader.stored_reads(window.committed),
                           reader=window.settings.reader_name.strip(), comments=comments, deidentify=deidentify,
                           entry_id=window.entry_id, marks=tuple(window.marks),
                           model_withheld="the model is hidden until the reader commits (blind first)" if hidden and
                           window.result is not None else "")

    def open_export(self) -> None:
        window = self.window
        if window.exam is None:
            return
        # the report gives the recorded read: a change on screen after the commit is recorded or discarded first
        if not window.reading.leave_or_ask(self.open_export, before="exporting"):
            return
        from app.ui.workstation.export_dialog import ExportDialog  # noqa: PLC0415

        has_dicom = all(img.sop_instance_uid for img in window.exam.views.values())
        dialog = ExportDialog(self.folder,
                              has_dicom and window.result is not None and not window.reading.model_hidden(), window,
                              withheld=window.reading.model_hidden() and window.result is not None, send_to=window.settings.pacs_node)
        if dialog.exec():
            if dialog.chosen_folder() != self.folder:  # kept for the next export, also after a restart
                window.preferences.remember(export_folder=dialog.chosen_folder())
            self.export(dialog.chosen_folder(), dialog.chosen_formats(), dialog.deidentify.isChecked(),
                        dialog.page_size.currentText(), dialog.comments.toPlainText(),
                        send=dialog.send.isChecked() and dialog.send.isEnabled())

    def export(self, folder: str, formats: list[str], deidentify: bool, page_size: str = "A4", comments: str = "",
               send: bool = False) -> Worker:
        """The export in the background; with ``send``, its DICOM files to the PACS node of Preferences."""
        window = self.window
        from app.ui.workstation.export_dialog import export_task  # noqa: PLC0415

        target = (window.settings.pacs_node, window.settings.ae_title) if send and window.settings.pacs_node else None
        worker = window._track(Worker(export_task, self.report_input(deidentify, comments), folder, formats, page_size,
                                    target, window.exam_key))
        worker.result.connect(lambda outcome: self._on_exported(outcome, folder))
        worker.error.connect(window._on_error)
        worker.error.connect(lambda error: window.statusBar().showMessage(
            f"NOT exported to {folder}: {user_message(error)[1]}", 30_000))
        window.statusBar().showMessage(f"exporting to {folder}…")  # not the last export's success line meanwhile
        window.export_worker = worker.start()
        return worker

    def _on_exported(self, outcome, folder: str) -> None:
        window = self.window
        line = f"exported {len(outcome.paths)} file(s) to {folder}"
        if outcome.sent_to:
            window._unsent = []
            line += f"; sent {len(outcome.dicom_files)} DICOM file(s) to {outcome.sent_to}"
        elif outcome.send_error:
            window._unsent = outcome.dicom_files
            line += (f"; NOT SENT: {outcome.send_error} — the files are kept; File → Send again retries")
        window.retry_send_action.setEnabled(bool(window._unsent))
        window.statusBar().showMessage(line, 30_000)
        window.exportFinished.emit(line)

    def retry_send(self) -> Worker | None:
        """File → Send again: the DICOM files of the export whose send failed, to the node of Preferences."""
        window = self.window
        from app.ui.workstation.export_dialog import send_task  # noqa: PLC0415

        if not window._unsent or not window.settings.pacs_node:
            return None
        files = list(window._unsent)
        worker = window._track(Worker(send_task, files, window.settings.pacs_node, window.settings.ae_title))

        def sent(node: str) -> None:
            window._unsent = []
            window.retry_send_action.setEnabled(False)
            line = f"sent {len(files)} DICOM file(s) to {node}"
            window.statusBar().showMessage(line, 30_000)
            window.exportFinished.emit(line)

        def failed(error: BaseException) -> None:
            line = f"NOT SENT: {error} — the files are kept; File → Send again retries"
            window.statusBar().showMessage(line, 30_000)
            window.exportFinished.emit(line)

        worker.result.connect(sent)
        worker.error.connect(failed)
        window.send_worker = worker.start()
        return worker
