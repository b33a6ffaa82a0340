"""Small helpers shared by the three provider adapters (no SDK imports here).

Reading numbers out of usage payloads that may be SDK objects or plain dicts, shortening provider
messages to one line, parsing retry hints, and turning httpx transport failures into llmcells errors.
"""

from __future__ import annotations

import email.utils
import inspect
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlparse

import httpx2

from ..errors import (
    ConnectionFailedError,
    IncompleteStreamError,
    LLMError,
    ProviderTimeoutError,
    redact,
)
from ..models import ModelSpec


def field(raw: Any, *names: str) -> Any:
    """The first present, non-None value among names, from a dict or an object (else None)."""
    if raw is None:
        return None
    for name in names:
        value = raw.get(name) if isinstance(raw, Mapping) else getattr(raw, name, None)
        if value is not None:
            return value
    return None


def count(raw: Any, *names: str) -> int:
    """An integer token count from raw (first present name); missing or None counts as 0."""
    value = field(raw, *names)
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def one_line(text: Any, limit: int = 200) -> str:
    """Text collapsed to one line and cut to about limit characters; keys are removed first, so
    that a cut never leaves a piece of a key that redaction would no longer recognise."""
    text = redact(" ".join(str(text or "").split()))
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def host_of(base_url: str | None, default: str) -> str:
    """The host (and port) of base_url, or default when no base URL is set."""
    if not base_url:
        return default
    parsed = urlparse(base_url if "//" in base_url else "//" + base_url)
    return parsed.netloc or base_url


def retry_after_from_headers(headers: Any) -> float | None:
    """Seconds to wait, from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms:
            return max(float(ms) / 1000.0, 0.0)
        value = headers.get("retry-after")
    except Exception:  # a header mapping we don't understand: no hint
        return None
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def parse_duration(value: Any) -> float | None:
    """A protobuf Duration string such as "58s" or "1.5s" in seconds (None if not one)."""
    m = _DURATION.match(str(value)) if value is not None else None
    return float(m.group(1)) if m else None


def split_params(method: Any, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split pass-through params into keyword arguments the SDK method accepts and extra body fields.

    Passing an unknown keyword to an SDK method raises TypeError, so anything it doesn't name goes
    into `extra_body` (sent as is in the JSON body).
    """
    if not params:
        return {}, {}
    try:
        accepted = set(inspect.signature(method).parameters)
    except (TypeError, ValueError):
        accepted = set()
    kwargs = {k: v for k, v in params.items() if k in accepted}
    extra = {k: v for k, v in params.items() if k not in accepted}
    return kwargs, extra


def incomplete(spec: ModelSpec) -> IncompleteStreamError:
    """The error for a stream that ended before the provider's terminal event."""
    return IncompleteStreamError(
        f"The stream from {spec.label} ended before it was complete; the partial answer is kept.",
        provider=spec.provider,
    )


def is_cut(exc: BaseException) -> bool:
    """True when a read failed because the peer closed or reset the connection mid-body.

    Raised while iterating a stream that already delivered events, this means the answer was cut
    off (IncompleteStreamError), not that the server could not be reached. The openai SDK wraps
    it in APIConnectionError (openai/_streaming.py, _iter_events), keeping it as __cause__;
    anthropic and google-genai let the httpx error through.
    """
    return any(isinstance(e, (httpx2.RemoteProtocolError, httpx2.ReadError))
               for e in (exc, exc.__cause__))


async def events_of(stream: Any, spec: ModelSpec) -> AsyncIterator[Any]:
    """The items of an SDK stream, with the two ways a body can break turned into
    IncompleteStreamError: the connection cut after the first item, and an event that is not
    JSON (openai and anthropic let json.JSONDecodeError through; google-genai raises
    UnknownApiResponseError, which its map_error handles)."""
    started = False
    try:
        async for item in stream:
            started = True
            yield item
    except json.JSONDecodeError as exc:
        raise incomplete(spec) from exc
    except Exception as exc:
        if started and is_cut(exc):
            raise incomplete(spec) from exc
        raise


def map_transport_error(exc: BaseException, spec: ModelSpec, default_host: str) -> LLMError | None:
    """llmcells error for an httpx (or aiohttp) failure that reached us unwrapped, else None.

    The SDKs wrap failures while sending, but errors while *reading* a streamed body (a read
    timeout, a dropped connection) surface as raw httpx exceptions.
    """
    host = host_of(spec.base_url, default_host)
    if isinstance(exc, httpx2.TimeoutException):
        return ProviderTimeoutError(
            f"{spec.label} at {host} did not answer in time ({type(exc).__name__}).",
            provider=spec.provider,
        )
    transport_errors: tuple[type[BaseException], ...] = (httpx2.TransportError,)
    aiohttp = sys.modules.get("aiohttp")  # only if something else imported it
    if aiohttp is not None:
        transport_errors += (aiohttp.ClientError,)
    if isinstance(exc, transport_errors):
        return connection_failed(spec, host, exc)
    return None


def connection_failed(spec: ModelSpec, host: str, exc: BaseException) -> ConnectionFailedError:
    """ConnectionFailedError naming the host and the underlying cause in one line."""
    cause = exc.__cause__ or exc
    detail = one_line(str(cause) or type(cause).__name__, 120)
    return ConnectionFailedError(f"Could not reach {spec.label} at {host}: {detail}",
                                 provider=spec.provider)
