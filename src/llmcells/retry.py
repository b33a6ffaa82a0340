"""The one retry policy for every provider (the SDKs' own retries are off): what to retry and how
long to wait.

Retried: rate limits (429), overloaded (529 / 503), other 5xx and connection failures (a stream
that broke before any answer text included), with exponential backoff and jitter (tenacity's), or
the provider's own retry-after when it gives one, up to `retry_max_wait`. A provider that asks for
a longer pause is not waited for: the call ends and says what was asked.
Never retried: anything after answer tokens were shown, since re-sending would silently show
the user a different answer than the one they were reading.

The engine's attempt loop asks `should_retry` and `retry_wait` only after a failure, so a call
that succeeds first time pays nothing for the policy.
"""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from .config import Settings
from .errors import LLMError


def should_retry(exc: BaseException, max_wait: float) -> bool:
    """True for a retryable provider error that came before any output was shown."""
    if not isinstance(exc, LLMError) or not exc.retryable or getattr(exc, "partial", False):
        return False
    # A provider that asks for a longer pause than we are willing to wait: give up now and say so.
    return exc.retry_after is None or exc.retry_after <= max_wait


@lru_cache(maxsize=8)
def _backoff(initial: float, maximum: float) -> Any:
    # tenacity is imported at the first failure, not with the engine (a script's first call
    # would otherwise wait for it: about 40 ms).
    from tenacity.wait import wait_exponential_jitter

    return wait_exponential_jitter(initial=initial, max=maximum, jitter=initial)


def retry_wait(err: LLMError, attempts_made: int, settings: Settings) -> float:
    """Seconds to wait after `attempts_made` failed attempts: the provider's retry-after when it
    gave one (capped at retry_max_wait), else exponential backoff with jitter."""
    if err.retry_after is not None:
        return max(0.0, min(err.retry_after, settings.retry_max_wait))
    backoff = _backoff(settings.retry_initial_wait, settings.retry_max_wait)
    return float(backoff(SimpleNamespace(attempt_number=attempts_made)))
