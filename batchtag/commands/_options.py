"""`ApplyOptions`: the options of one apply run, one field per Python option of the table."""

from __future__ import annotations

from dataclasses import field, make_dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from batchtag.defaults import PYTHON_OPTIONS, numpydoc_parameters
from batchtag.errors import UsageError, option
from batchtag.record import STAMPED, check_placeholders, fill_started

RUN_FILES = tuple(name for name in STAMPED if name != "output")  # an apply run's own files


def _check(self: Any) -> None:
    """Refuse option values that cannot work, naming the option the caller's way."""
    for name in (*RUN_FILES, "resume"):
        check_placeholders(name, getattr(self, name))
    for name in ("concurrency",):
        if getattr(self, name) < 1:
            raise UsageError(f"{option(name)} must be at least 1")
    for name in ("rate", "timeout", "connect_timeout"):
        if not getattr(self, name) > 0:
            raise UsageError(f"{option(name)} must be greater than 0")
    if self.request_deadline is not None and not self.request_deadline > 0:
        raise UsageError(f"{option('request_deadline')} must be greater than 0")
    if self.undo_file and self.check_current is False:
        raise UsageError(
            f"{option('undo_file')} needs the before-state of each snapshot: "
            f"do not combine it with {option('check_current', False)}"
        )
    if self.resume and self.report and Path(self.report) != Path(self.resume):
        raise UsageError(
            f"{option('resume')} continues its own report; do not also pass {option('report')}"
        )


def _stamped(self: Any, when: datetime | None = None) -> Any:
    """These options with ``{started}`` in the report, undo file and summary names filled
    in with the run's start (`batchtag.record.fill_started`); themselves when there is none.

    Parameters
    ----------
    when : datetime, optional
        The run's start (default: now).

    Returns
    -------
    ApplyOptions
        A copy with the names filled (the same stamp in each), or these options.
    """
    current = {name: getattr(self, name) for name in RUN_FILES}
    filled = fill_started(current, when)
    check_placeholders("resume", self.resume)
    if all(filled[n] == (None if v is None else str(v)) for n, v in current.items()):
        return self
    return replace(self, **filled)


def _repr(self: Any) -> str:
    shown = (
        f"{o.name}={'***' if o.secret else repr(getattr(self, o.name))}" for o in PYTHON_OPTIONS
    )
    return f"ApplyOptions({', '.join(shown)})"


# One field per Python option of the table, with the table's default (see batchtag.defaults).
ApplyOptions = make_dataclass(
    "ApplyOptions",
    [(o.name, o.annotation, field(default=o.default)) for o in PYTHON_OPTIONS],
    namespace={"check": _check, "stamped": _stamped, "__repr__": _repr, "__module__": __name__},
    repr=False,
)
ApplyOptions.__doc__ = "Options of one apply run.\n\nParameters\n----------\n" + (
    numpydoc_parameters()
)
