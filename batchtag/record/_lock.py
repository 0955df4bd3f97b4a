"""One run per report: an exclusive lock held for the whole run.

The lock is `fcntl.flock` on `<report>.lock`, which holds the holder's pid. The kernel
drops a flock when its process dies, so the lock file of a killed run is simply taken
over. Taking the lock is also the check that the report's folder can be written, before
anything is sent.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from batchtag.errors import UsageError, option
from batchtag.tabular import write_all


def cannot_write(report: str | os.PathLike[str], error: OSError) -> UsageError:
    """The one-line error for a report that cannot be started (nothing was sent)."""
    return UsageError(f"report {report} cannot be written: {error.strerror or error}")


def lock_path(report: str | os.PathLike[str]) -> Path:
    return Path(f"{report}.lock")


class ReportLock:
    """An exclusive lock on a report for the whole run.

    Parameters
    ----------
    report : str or PathLike
        The report path; the lock is ``<report>.lock`` beside it.

    Raises
    ------
    UsageError
        From `acquire()`: another run holds the lock (its pid is named), or the report's
        folder or file cannot be written.

    Examples
    --------
    >>> with ReportLock("reports/run1.csv"):  # doctest: +SKIP
    ...     ...  # write the report
    """

    def __init__(self, report: str | os.PathLike[str]):
        self.report = Path(report)
        self.path = lock_path(report)
        self._fd: int | None = None

    def acquire(self) -> ReportLock:
        """Take the lock (without waiting) and write this process's pid into it."""
        try:
            self.report.parent.mkdir(parents=True, exist_ok=True)
            while self._fd is None:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                if self._lock(fd):
                    self._fd = fd
            os.ftruncate(self._fd, 0)
            write_all(self._fd, f"{os.getpid()}\n".encode())
            os.fsync(self._fd)
            if self.report.exists() and not os.access(self.report, os.W_OK):
                raise PermissionError(13, "Permission denied")
        except OSError as exc:
            self.release()
            raise cannot_write(self.report, exc) from None
        return self

    def _lock(self, fd: int) -> bool:
        """Lock `fd`; False if the file was replaced meanwhile (try again)."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise UsageError(
                f"report {self.report} is in use by another batchtag run (pid {holder}); "
                f"wait for it to end, or use another {option('report')}"
            ) from None
        except OSError:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False  # released and removed by its holder between open and flock
        if not same:
            os.close(fd)
        return same

    def release(self) -> None:
        """Remove the lock file and drop the lock; safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still held: no one else has it open
        os.close(fd)

    def __enter__(self) -> ReportLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def lock_holder(report: str | os.PathLike[str]) -> str | None:
    """The pid of the run that holds `report`'s lock now (it is still writing the report),
    or None; looks without taking it for more than a moment and never creates the file.

    Examples
    --------
    >>> lock_holder("reports/no-such-run.csv") is None
    True
    """
    try:
        fd = os.open(lock_path(report), os.O_RDWR)
    except OSError:
        return None  # no lock file: no run holds it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text or "unknown"
