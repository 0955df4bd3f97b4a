"""A progress bar (tqdm.auto, so notebooks get a widget); silent when not wanted."""

from __future__ import annotations

import sys

from batchtag.result import FAILED, NOT_FOUND, Result


class Progress:
    def __init__(self, total: int, enabled: bool | None = None):
        if enabled is None:  # auto: only on an interactive terminal
            enabled = sys.stderr.isatty()
        self.failures = 0
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="snap", dynamic_ncols=True, file=sys.stderr)

    def update(self, result: Result) -> None:
        if self.bar is None:
            return
        if result.status in (FAILED, NOT_FOUND):
            self.failures += 1
            self.bar.set_postfix(failed=self.failures, refresh=False)
        self.bar.update(1)

    def advance(self, count: int, total: int | None = None) -> None:
        """Move on by `count` (e.g. a page of a read); `total` corrects the expected total."""
        if self.bar is None:
            return
        if total is not None and total != self.bar.total:
            self.bar.total = total
        self.bar.update(count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
