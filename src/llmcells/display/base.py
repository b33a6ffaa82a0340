"""What the runner holds: a DisplayHandle with one observer per call."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from ..types import CallObserver, Result
from .._log import swallowed

F = TypeVar("F", bound=Callable)


def safe(method: F) -> F:
    """Observer methods must never raise: a display problem must not break a call."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Exception as exc:  # a display problem must never break a call
            swallowed(f"display {method.__qualname__}", exc)
            return None

    return wrapper  # type: ignore[return-value]


def match_results(infos, results) -> list[Result | None]:
    """The result of each call, in the order of infos: by call_id, else by position when the
    runner passed one result per call (it may pass only the results it has)."""
    results = [r for r in (results or [])]
    by_id = {getattr(r, "call_id", None): r for r in results if r is not None and getattr(r, "call_id", "")}
    claimed = {info.call_id for info in infos if info.call_id and info.call_id in by_id}
    out: list[Result | None] = []
    for i, info in enumerate(infos):
        r = by_id.get(info.call_id) if info.call_id else None
        if r is None and len(results) == len(infos):
            # by position: also a call's replacement (a repaired answer has its own call_id)
            other = results[i]
            if other is not None and getattr(other, "call_id", "") not in claimed:
                r = other
        out.append(r)
    return out


class DisplayHandle:
    """A live view of one ask / compare.

    observers: one CallObserver per call (same order as the infos given to open_display); the
    runner calls their methods on the private loop thread. close(results) is called once, from
    the loop thread, after every call finished or was cancelled.
    """

    mode: str = ""

    def __init__(self, observers: list[CallObserver] | None = None):
        self.observers: list[CallObserver] = list(observers or [])
        self.closed = False

    def close(self, results: list[Result]) -> None:
        self.closed = True
