"""`Slots`: a bound on the requests in flight that can change while requests wait and run."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class Slots:
    """At most `limit` holders at a time, in the order they asked; `resize` changes the
    limit at once for those that wait (holders over a smaller limit finish first).

    Examples
    --------
    >>> async def main():
    ...     slots = Slots(1)
    ...     async with slots:
    ...         slots.resize(2)
    ...         async with slots:
    ...             return slots.held
    >>> asyncio.run(main())
    2
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.held = 0
        self._waiters: deque[asyncio.Future] = deque()

    def resize(self, limit: int) -> None:
        """Hold at most `limit` from now on."""
        self.limit = limit
        self._wake()

    async def __aenter__(self) -> None:
        if self.held < self.limit and not self._waiters:
            self.held += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # `_wake` counts it held before it resolves it
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # given a slot, then cancelled
                self._release()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        self.held -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.held < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.held += 1
                waiter.set_result(None)
