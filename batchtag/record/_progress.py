"""The progress bar: a widget in Jupyter, text on a terminal, silent otherwise.

It counts finished snapshots by status in its postfix (``ok=95, failed=3``). Snapshots
`skipped` because the run stopped are counted there but do not advance the bar, and a run
that ends interrupted or aborted closes its bar red and unfinished.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

from batchtag.model import SKIPPED, STATUSES, Result

FAILED_COLOUR = "red"


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
            self.bar = make(total=total, unit="snap", dynamic_ncols=True, file=sys.stderr)

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
        """End the bar; `ok=False` (interrupted, aborted, crashed) leaves it red."""
        if self.bar is None:
            return
        if not ok:
            self.bar.colour = FAILED_COLOUR
        self.bar.close()
