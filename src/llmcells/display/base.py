"""What the runner holds: a DisplayHandle with one observer per call."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from ..types import CallObserver, Result

F = TypeVar("F", bound=Callable)


def safe(method: F) -> F:
    """Observer methods must never raise: a display problem must not break a call."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Exception:
            return None

    return wrapper  # type: ignore[return-value]


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
