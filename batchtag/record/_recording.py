"""Where each result of an apply run goes as it completes: report, undo file, summary, bar.

Both files are written as results are recorded: the report once per event-loop iteration
(see batchtag.record._writer: a `kill -9` loses at most the results finished since the last
hand-over, besides those in flight), the undo file per result. A write that fails (the
report's or the undo file's: a full disk) stops the run at once through `stop` (the
engine's abort: nothing more is dispatched) and is raised again by `close` as a
`ReportWriteError` (exit 3); what was recorded before stays, and a resume continues both
files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from batchtag.errors import ReportWriteError
from batchtag.model import Result
from batchtag.record import ReportWriter
from batchtag.record._changes import ChangeWriter
from batchtag.record._progress import Progress
from batchtag.record._summary import Summary


def undo_write_error(path: Path, error: OSError) -> ReportWriteError:
    """``undo file write failed: no space left on device (undo.jsonl)``."""
    reason = os.strerror(error.errno) if error.errno else str(error)
    return ReportWriteError(f"undo file write failed: {reason[:1].lower()}{reason[1:]} ({path})")


class Recorder:
    """Records results; `stop(reason)` is called once when a file cannot be written.

    Parameters
    ----------
    writer : ReportWriter
        The report.
    summary : Summary
        Counts every result.
    progress : Progress
        The progress bar.
    undo : ChangeWriter, optional
        The undo file (``--undo-file``): the change rows back of every `ok` row are
        written to it (its owner opens and closes it).
    """

    def __init__(
        self,
        writer: ReportWriter,
        summary: Summary,
        progress: Progress,
        undo: ChangeWriter | None = None,
    ):
        self.writer = writer
        self.summary = summary
        self.progress = progress
        self.undo = undo
        self.stop: Callable[[str], None] = lambda reason: None
        self.failure: ReportWriteError | None = None
        writer.on_failure = self._failed  # a deferred report write that failed

    def record(self, result: Result) -> None:
        """Write one result everywhere it goes (nothing more once a write failed)."""
        if self.failure is None:
            try:
                self.writer.write(result)
                if self.undo is not None:
                    self._write_undo(result)
            except ReportWriteError as error:
                self._failed(error)
        self.summary.add(result)
        self.progress.update(result)

    def _failed(self, error: ReportWriteError) -> None:
        """A write that cannot be recorded: stop now (once)."""
        if self.failure is None:
            self.failure = error
            self.stop(str(error))

    def _write_undo(self, result: Result) -> None:
        try:
            self.undo.write(result)
        except OSError as error:
            raise undo_write_error(self.undo.path, error) from None

    def close(self) -> None:
        """Close the report; raise the first write failure (ReportWriteError). The undo
        file is its owner's to close (`batchtag.commands`' apply run)."""
        self.writer.close()  # raises the report's own failure first
        if self.failure is not None:
            raise self.failure
