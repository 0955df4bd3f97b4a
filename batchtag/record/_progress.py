"""The progress bar: a widget in Jupyter, text on a terminal, silent otherwise.

It counts finished snapshots by status in its postfix (``ok=95, failed=3``). Snapshots
`skipped` because the run stopped are counted there but do not advance the bar. Its colour
at the end tells the outcome: green when every snapshot went well, orange when some failed
(``failed``, ``not_found``, ``conflict``), red (and unfinished) when the run was interrupted
or aborted. The rate it shows is the average since it started (tqdm's ``smoothing=0``), so
the last figure is the run's own, not that of its last few seconds.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

from batchtag.model import CONFLICT, FAILED, NOT_FOUND, SKIPPED, STATUSES, Result

OK_COLOUR = "green"
SOME_FAILED_COLOUR = "#ff8c00"  # orange (tqdm's text bar knows no "orange" by name)
FAILED_COLOUR = "red"
PROBLEM_STATUSES = (FAILED, NOT_FOUND, CONFLICT)  # finished, but not as asked


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython with a kernel attached), not in a plain shell."""
    ipython_module = sys.modules.get("IPython")  # never imported just to find out
    if ipython_module is None:
        return False
    shell = ipython_module.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def has_widgets() -> bool:
    return importlib.util.find_spec("ipywidgets") is not None


def choose_bar(notebook: bool) -> Callable[..., Any]:
    """tqdm's widget in a notebook with ipywidgets; its text bar everywhere else."""
    if notebook and has_widgets():
        from tqdm.notebook import tqdm as bar
    else:
        from tqdm.std import tqdm as bar
    return bar


class Progress:
    """A progress bar over `total` snapshots.

    Parameters
    ----------
    total : int
        Snapshots the run will finish.
    enabled : bool or None, default None
        None (auto): on in a Jupyter kernel and on an interactive terminal, off otherwise.
    bar_class : callable, optional
        A tqdm-like class to use instead of the automatic choice (tests inject one).

    Examples
    --------
    >>> progress = Progress(100, enabled=False)
    >>> progress.close(ok=True)
    """

    def __init__(
        self,
        total: int,
        enabled: bool | None = None,
        bar_class: Callable[..., Any] | None = None,
    ):
        notebook = in_notebook()
        if enabled is None:
            enabled = notebook or sys.stderr.isatty()
        self.counts: Counter[str] = Counter()
        self.bar = None
        if enabled:
            make = bar_class or choose_bar(notebook)
            self.bar = make(
                total=total, unit="snap", dynamic_ncols=True, file=sys.stderr, smoothing=0
            )

    def update(self, result: Result) -> None:
        """Count one finished snapshot; `skipped` ones are counted but not progress."""
        self.counts[result.status] += 1
        if self.bar is None:
            return
        shown = {status: self.counts[status] for status in STATUSES if self.counts[status]}
        self.bar.set_postfix(shown, refresh=False)
        if result.status != SKIPPED:
            self.bar.update(1)  # skipped ones show at the next update or at close()

    def advance(self, count: int, total: int | None = None) -> None:
        """Move on by `count` (e.g. a page of a read); `total` corrects the expected total."""
        if self.bar is None:
            return
        if total is not None and total != self.bar.total:
            self.bar.total = total
        self.bar.update(count)

    def close(self, ok: bool = True) -> None:
        """End the bar in the outcome's colour: `ok=False` (interrupted, aborted, crashed)
        red; else orange when some snapshot failed, green when none did."""
        if self.bar is None:
            return
        self.bar.colour = self.colour(ok)
        self.bar.close()

    def colour(self, ok: bool = True) -> str:
        """The colour a run that ended so (`ok`: it finished) closes its bar in."""
        if not ok:
            return FAILED_COLOUR
        if any(self.counts[status] for status in PROBLEM_STATUSES):
            return SOME_FAILED_COLOUR
        return OK_COLOUR
