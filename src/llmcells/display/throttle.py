"""Coalescing repaints: at most one paint per interval, the last state always painted.

No timer thread: a paint that comes too soon is deferred with ONE `loop.call_later` on the running
event loop (observers run on the private loop thread, so there is one); `flush()` paints at once
(used for the final state).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from .._log import swallowed


class Throttle:
    """Calls `paint()` at most once per `interval()` seconds; `request()` marks the state dirty.

    When `paint()` returns how many messages it sent, the next paint waits that many intervals,
    so the budget is in messages (at most ~1/interval a second), not in paints.
    """

    def __init__(self, paint: Callable[[], None], interval: Callable[[], float] | float):
        self._paint = paint
        self._interval = interval if callable(interval) else (lambda: float(interval))
        self._next = -float("inf")
        self._handle: asyncio.TimerHandle | None = None
        self._dirty = False
        self.paints = 0

    @property
    def dirty(self) -> bool:
        return self._dirty

    def request(self) -> None:
        """The state changed: paint now if the last paint is old enough, else once, later."""
        self._dirty = True
        if self._handle is not None:
            return  # a deferred paint is already scheduled; it will pick up this change
        wait = self._next - time.monotonic()
        if wait <= 0:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop here: the next due request() or the final flush() paints it
        self._handle = loop.call_later(wait, self._deferred)

    def _deferred(self) -> None:
        self._handle = None
        if self._dirty:
            self.flush()

    def flush(self) -> None:
        """Paint now (whether dirty or not) and drop any deferred paint."""
        self.cancel()
        self._dirty = False
        start = time.monotonic()
        self.paints += 1
        sent = 1
        try:
            n = self._paint()
            if isinstance(n, int) and n > 1:
                sent = n
        except Exception as exc:  # a display problem must never break a call
            swallowed("painting", exc)
        try:
            self._next = start + self._interval() * sent
        except Exception as exc:
            swallowed("reading the repaint interval (0.05 s instead)", exc)
            self._next = start + 0.05 * sent

    def cancel(self) -> None:
        if self._handle is not None:
            try:
                self._handle.cancel()
            except Exception as exc:
                swallowed("cancelling a scheduled paint", exc)
            self._handle = None
