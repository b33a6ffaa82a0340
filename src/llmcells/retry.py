"""The one retry policy for every provider (the SDKs' own retries are off).

Retried: rate limits (429), overloaded (529 / 503), other 5xx and connection failures, with
exponential backoff and jitter, or the provider's own retry-after when it gives one (up to a cap).
Never retried: anything after answer tokens were shown, since re-sending would silently show
the user a different answer than the one they were reading.
"""

from __future__ import annotations

from collections.abc import Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from .config import Settings
from .errors import LLMError


def should_retry(exc: BaseException, max_wait: float) -> bool:
    """True for a retryable provider error that came before any output was shown."""
    if not isinstance(exc, LLMError) or not exc.retryable or getattr(exc, "partial", False):
        return False
    # A provider that asks for a longer pause than we are willing to wait: give up now and say so.
    return exc.retry_after is None or exc.retry_after <= max_wait


def retrying(settings: Settings, on_retry: Callable[[LLMError, float, int], None] | None = None
             ) -> AsyncRetrying:
    """A tenacity AsyncRetrying for one call. on_retry(error, wait_s, next_attempt) is called
    before each pause."""
    backoff = wait_exponential_jitter(initial=settings.retry_initial_wait, max=settings.retry_max_wait,
                                      jitter=settings.retry_initial_wait)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, LLMError) and exc.retry_after is not None:
            return max(0.0, min(exc.retry_after, settings.retry_max_wait))
        return backoff(state)

    def before_sleep(state: RetryCallState) -> None:
        if on_retry and state.outcome is not None and state.next_action is not None:
            on_retry(state.outcome.exception(), state.next_action.sleep, state.attempt_number + 1)

    return AsyncRetrying(
        stop=stop_after_attempt(max(1, settings.max_attempts)),
        wait=wait,
        retry=retry_if_exception(lambda e: should_retry(e, settings.retry_max_wait)),
        before_sleep=before_sleep,
        reraise=True,
    )
