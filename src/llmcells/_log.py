"""The `llmcells` logger, and the one DEBUG line that notes an exception let go on purpose."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("llmcells")


def swallowed(what: str, exc: BaseException | None = None) -> None:
    """Note at DEBUG level that `what` failed and was let go on purpose.

    Only the exception's type is given, never its text: a provider's message or a prompt could
    hold a key. Turn the lines on with `logging.getLogger("llmcells").setLevel("DEBUG")`.
    """
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s failed (%s); let go", what, type(exc).__name__ if exc is not None else "error")


def quietly(fn: Callable[..., object], *args: Any) -> None:
    """Call fn(*args); an exception is noted (see `swallowed`) and let go. For observers and other
    callbacks, whose failure must never break a call."""
    try:
        fn(*args)
    except Exception as exc:
        swallowed(getattr(fn, "__qualname__", None) or "a callback", exc)
