"""Small helpers shared by the three provider adapters (no SDK imports here).

Reading numbers out of usage payloads that may be SDK objects or plain dicts, shortening provider
messages to one line, parsing retry hints, reading an SDK stream and deciding what a broken body
means, the one HTTP status -> error table, and turning httpx failures into llmcells errors.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import math
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlparse

import httpx2

from ..errors import (
    AuthenticationError,
    BadRequestError,
    BillingError,
    ConnectionFailedError,
    IncompleteStreamError,
    LLMError,
    ModelNotFoundError,
    OverloadedError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
    kind_of_status,
    redact,
)
from ..models import PROVIDERS, ModelSpec
from ..types import Event, PartDelta, PartStart
from ._http import NotTheApiError, capture_responses, html_title, is_html, media_type
from ._sse import EventStream, Reader
from .._log import swallowed


_is_mapping: dict[type, bool] = {}  # type -> isinstance(x, Mapping): an ABC check is slow per event


def field(raw: Any, *names: str) -> Any:
    """The first present, non-None value among names, from a dict or an object (else None)."""
    if raw is None:
        return None
    kind = type(raw)
    mapping = _is_mapping.get(kind)
    if mapping is None:
        mapping = _is_mapping[kind] = isinstance(raw, Mapping)
    for name in names:
        value = raw.get(name) if mapping else getattr(raw, name, None)
        if value is not None:
            return value
    return None


def as_count(value: Any) -> int | None:
    """A token count read from the wire: a whole number of at least 0 (also sent as a float or
    a string of digits); None for anything else (absent, a bool, a negative or non-finite
    number, other text, an object). A count that can't be read is left out, as an absent one
    is: it must neither fail the call (the answer is there) nor price it below zero."""
    kind = type(value)
    if kind is int:
        return value if value >= 0 else None
    if kind is float:
        return int(value) if 0 <= value < math.inf else None  # (NaN fails both)
    if kind is str and value.isascii() and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):  # an int subclass (an SDK's)
        return int(value) if value >= 0 else None
    return None


def count(raw: Any, *names: str) -> int:
    """A token count from raw (its first present name); missing or unreadable counts as 0."""
    return as_count(field(raw, *names)) or 0


def one_line(text: Any, limit: int = 200) -> str:
    """Text collapsed to one line and cut to about limit characters; keys are removed first, so
    that a cut never leaves a piece of a key that redaction would no longer recognise."""
    text = redact(" ".join(str(text or "").split()))
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@functools.lru_cache(maxsize=256)
def host_of(base_url: str | None, default: str) -> str:
    """The host (and port) of base_url, or default when no base URL is set (remembered: every
    call's stream asks for its endpoint's)."""
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
    except Exception as exc:  # a header mapping we don't understand: no hint
        swallowed("reading a retry-after header", exc)
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


# create() keywords that are request options, not fields of the JSON body (the same in the openai
# and anthropic SDKs), and where RequestOptions keeps them.
_OPTION_PARAMS = {"extra_query": "params", "timeout": "timeout"}


def with_params(body: dict[str, Any], params: Mapping[str, Any],
                header_params: Mapping[str, str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON body with the user's pass-through params merged in, and the SDK request options
    that some of them name: `extra_headers`, `extra_query`, `timeout`, and header_params (create()
    keywords that the SDK sends as a header, by header name). Everything else is a body field
    (merged, one level deep, into an object of the same name the body already has)."""
    options: dict[str, Any] = {}
    headers: dict[str, Any] = {}
    for key, value in params.items():
        if key in _OPTION_PARAMS:
            options[_OPTION_PARAMS[key]] = value
        elif header_params and key in header_params:
            headers.setdefault(header_params[key], value)
        elif key == "extra_headers":
            headers.update(value or {})  # as in create(): these win over the named header params
        elif key != "extra_body":
            mine = body.get(key)
            # an object the request already has (Anthropic's output_config holds a schema=, and
            # params may add its effort): the user's keys go into it, not in its place
            body[key] = {**mine, **value} if isinstance(mine, dict) and isinstance(value, Mapping) else value
    body.update(params.get("extra_body") or {})  # as in create(): extra_body wins, whatever the order
    if headers:
        options["headers"] = headers
    return body, options


async def post_stream(client: Any, path: str, body: dict[str, Any], options: dict[str, Any],
                      stream_cls: Any, read: Reader,
                      whole: Callable[[dict[str, Any]], list[dict[str, Any]] | None] | None = None
                      ) -> Any:
    """A streamed POST through the SDK's own request path (auth, headers, timeouts, retries and
    HTTP errors), its body read as an `EventStream`: each event yielded as the JSON object the
    provider sent, as `read` takes it (the SDK's rules for its stream's end, errors and events to
    skip, written in the adapter). A body that is not `text/event-stream` is left to the SDK's
    own stream (its decoder may read a binary event stream, as Bedrock's client does).

    The typed `create()` methods build a pydantic model per event (about half of the openai
    SDK's CPU per streamed call, and a third of anthropic's) for fields the adapter reads once,
    and the SDKs' SSE decoders cost about as much again: so the request is the SDKs' documented
    one by hand (`client.post(..., cast_to=object, stream=True)`), and the body is read here.

    whole: the adapter's reading of a whole answer (the JSON a server that ignored "stream": true
    sent) as the events its stream would have carried, or None when the JSON is not one; those
    events are then yielded as if streamed (a `WholeAnswer`).
    """
    stream = await client.post(path, body=body, options=options, cast_to=object, stream=True,
                               stream_cls=stream_cls[object])
    response = stream.response
    if response.is_success and _is_json(response):
        # A proxy's 200 error, or a server that ignored "stream": true. The SDKs read the body as
        # SSE, find no event in it and end quietly: that looked like a cut before any text, was
        # sent again max_attempts times (a whole answer billed each time), and lost the reason.
        raw = await response.aread()  # (and the response is closed)
        answer = _json_or_none(raw)
        # (an error object goes to not_a_stream; a whole response's "error": null does not)
        if whole is not None and isinstance(answer, dict) and not isinstance(answer.get("error"), dict):
            events = whole(answer)
            if events:
                return WholeAnswer(events, response)
        raise NotAStreamError(answer)
    if media_type(response) != "text/event-stream":
        return stream  # (Bedrock's binary event stream, say): the SDK's own decoder reads it
    return EventStream(response, read)


class WholeAnswer:
    """A whole answer to a streamed request, read as the stream's events (see post_stream): an
    async iterator of event dicts with the SDK stream's `response` and `close()`."""

    def __init__(self, events: list[dict[str, Any]], response: Any) -> None:
        self._events = iter(events)
        self.response = response  # read and closed already: its headers still hold the rate limits

    def __aiter__(self) -> WholeAnswer:
        return self

    async def __anext__(self) -> dict[str, Any]:
        for event in self._events:
            return event
        raise StopAsyncIteration

    async def close(self) -> None:
        self._events = iter(())


def _is_json(response: Any) -> bool:
    media = media_type(response)
    return media == "application/json" or media.endswith("+json")


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


class NotAStreamError(Exception):
    """A successful answer to a streamed request that is one JSON document, not an event stream:
    an error object (`{"error": {...}}`) or a whole answer. `body` is the parsed JSON (or None)."""

    def __init__(self, body: Any) -> None:
        self.body = body
        super().__init__("a JSON answer instead of an event stream")


#: an error object's code or type (no HTTP status to go by) -> its error kind, by the words the
#: providers use ("rate_limit_error", "insufficient_quota", "overloaded_error", ...)
_CODE_WORDS = (("rate_limit", "rate_limited"), ("overloaded", "overloaded"),
               ("insufficient_quota", "billing"), ("billing", "billing"),
               ("authentication", "authentication"), ("invalid_api_key", "authentication"),
               ("permission", "denied"), ("not_found", "model_not_found"),
               ("server_error", "server_error"), ("api_error", "server_error"),
               ("internal", "server_error"), ("unavailable", "overloaded"),
               ("invalid_request", "bad_request"), ("invalid_argument", "bad_request"))


def not_a_stream(exc: NotAStreamError, spec: ModelSpec, host: str) -> LLMError:
    """The llmcells error for a JSON answer to a streamed request: the error it holds, by its
    code (retried only when that says so, as a rate limit), else a whole answer that did not
    stream, which is never sent again (it was answered, and may be billed)."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    if isinstance(error, dict):
        message = one_line(error.get("message") or error.get("type") or "an error")
        code = error.get("code")
        if isinstance(code, int) and not isinstance(code, bool):
            kind = kind_of_status(code, message)
        else:
            words = " ".join(str(error.get(k) or "") for k in ("type", "code", "status")).lower()
            kind = next((k for word, k in _CODE_WORDS if word in words), "provider_error")
        return api_error(spec, kind, message, host=host, status=None)
    err = ProviderError(
        f"{spec.label} at {host} answered with one JSON document, not a stream: the server does not "
        "stream (not sent again: the answer may be billed).", provider=spec.provider)
    err.answered = True  # the provider did the work: its cost is unknown (NaN), not 0
    return err


def max_tokens_note(answered: bool, limit: int | None = None) -> str:
    """The note of an answer the output limit ended (alike for every provider): cut short, its
    text so far kept; or, with no answer text at all, the limit spent first (by the model's
    reasoning, on a thinking model)."""
    at = f" ({limit:,})" if limit else ""
    if answered:
        return f"cut short: the answer reached max_tokens{at}; raise max_tokens for the rest"
    return (f"stopped: max_tokens{at} was used up, reasoning included, before any answer text; "
            "raise max_tokens (or lower the reasoning effort)")


def incomplete(spec: ModelSpec) -> IncompleteStreamError:
    """The error for a stream that ended before the provider's terminal event."""
    return IncompleteStreamError(
        f"The stream from {spec.label} ended before it was complete; the partial answer is kept.",
        provider=spec.provider,
    )


def is_cut(exc: BaseException) -> bool:
    """True when a read failed because the peer closed or reset the connection mid-body.

    The openai SDK wraps it in APIConnectionError (openai/_streaming.py, _iter_events), keeping it
    as __cause__; anthropic and google-genai let the httpx error through.
    """
    return any(isinstance(e, (httpx2.RemoteProtocolError, httpx2.ReadError))
               for e in (exc, exc.__cause__))


#: how long the rest of a body may take once the provider's terminal event has come (seconds)
AFTER_END_S = 5.0


class SdkStream:
    """One call's SDK stream, read item by item, and what a broken body means for it.

    The adapter marks what it yields: `shown_delta()` builds a text or reasoning part's delta and
    notes that content was shown, `finished()` notes the provider's terminal event. A connection cut, or an
    early clean end (checked with `cut_short()`), then means:
    - after the terminal event: nothing; the answer is whole, the stream just ends;
    - once content was shown: IncompleteStreamError (the partial answer is kept, never re-sent);
    - before that: ConnectionFailedError, which is retryable, since nothing was shown.

    `aclose()` closes the HTTP response and then runs the SDK's iterator to its end, so that none
    of the SDK's or httpx's async generators is left suspended for the garbage collector to close
    (doing that from another thread printed "async generator already executing").
    """

    def __init__(self, stream: Any, spec: ModelSpec, default_host: str,
                 close: Callable[[], Awaitable[Any]] | None = None, *, capture: bool = False) -> None:
        """close closes the HTTP response; capture=True (for an SDK that keeps the response to
        itself and sends the request on the first item) finds it while the first item comes."""
        self._stream = stream
        self._close = close
        self._responses: list[Any] | None = [] if capture else None
        self.spec = spec
        self.host = host_of(spec.base_url, default_host)
        self.shown = False  # a text or reasoning delta was yielded
        self.done = False  # the provider's terminal event arrived
        self._over = False  # the SDK iterator ended or raised: its generators are finished
        self._first = True
        self._parts: dict[str, int] = {}  # the answer's and the reasoning's part index (see show)
        self._next_part = 0

    def __aiter__(self) -> SdkStream:
        return self

    async def _first_item(self) -> Any:
        """The first item, read while the responses that arrive meanwhile are captured."""
        self._first = False
        with capture_responses() as found:  # set and reset within this one step
            try:
                return await self._stream.__anext__()
            finally:
                self._responses += found
                if found and self._close is None:
                    self._close = self._close_responses

    async def _close_responses(self) -> None:
        for response in self._responses or ():
            await response.aclose()

    async def __anext__(self) -> Any:
        if self._over:
            raise StopAsyncIteration
        try:
            if self._first and self._responses is not None:
                return await self._first_item()
            if self.done:
                return await self._after_end()
            return await self._stream.__anext__()  # (inline: this runs for every item)
        except StopAsyncIteration:
            self._over = True
            raise
        except json.JSONDecodeError as exc:
            # openai and anthropic let a garbled event's JSON error through.
            self._over = True
            if self.done:  # garbled after the terminal event, as a cut there: the answer is whole
                swallowed(f"a garbled event from {self.spec.id} after its answer's end", exc)
                raise StopAsyncIteration from None
            raise incomplete(self.spec) from exc
        except Exception as exc:
            self._over = True
            if is_cut(exc):
                if self.done:
                    raise StopAsyncIteration from None  # cut after the terminal event: whole answer
                raise self.cut_short() from exc
            raise
        except BaseException:  # cancelled: the exception went through the whole chain too
            self._over = True
            raise

    async def _after_end(self) -> Any:
        """The next item after the terminal event, within AFTER_END_S, else the end. A server or
        proxy that held the body open after the whole answer (message_stop, a finishReason) held
        the call until its timeout, then recorded that whole answer as a timeout error."""
        async with asyncio.timeout(AFTER_END_S) as limit:
            try:
                return await self._stream.__anext__()
            except asyncio.CancelledError:
                if limit.expired():  # (the SDK's generators were cancelled: they are finished)
                    raise StopAsyncIteration from None
                raise

    def new_part(self) -> int:
        """The next part index of a stream whose API numbers no parts (a tool call's, say)."""
        index = self._next_part
        self._next_part += 1
        return index

    def show(self, kind: str, text: str) -> tuple[Event, ...]:
        """The events of a piece of the answer (kind "text") or of the reasoning ("reasoning"),
        for an API that numbers no parts: each kind is one part, started (numbered as they come)
        the first time it is shown."""
        index = self._parts.get(kind)
        if index is None:
            index = self._parts[kind] = self.new_part()
            return PartStart(index, kind), self.shown_delta(index, text)
        return (self.shown_delta(index, text),)

    def started(self, kind: str) -> bool:
        """True once a piece of kind ("text" or "reasoning") was shown."""
        return kind in self._parts

    def shown_delta(self, index: int, text: str) -> PartDelta:
        """The delta of the text or reasoning part at index; from now on a cut keeps the
        partial answer. (A tool call's argument fragments are not shown: yield their
        PartDelta directly.)"""
        self.shown = True
        return PartDelta(index, text)

    def finished(self) -> None:
        """The provider's terminal event arrived: the answer is whole."""
        self.done = True

    def cut_short(self) -> LLMError:
        """The error for a stream that ended before its terminal event."""
        if self.shown:
            return incomplete(self.spec)
        return ConnectionFailedError(
            f"The stream from {self.spec.label} at {self.host} broke off before any text arrived.",
            provider=self.spec.provider)

    async def aclose(self) -> None:
        """Close the response, then run the SDK's iterator to its end (it ends at once: the
        body is closed), unless it already ended. Without a way to close the response, close
        the SDK's iterator itself."""
        if self._close is None:
            closer = getattr(self._stream, "aclose", None)
            if closer is not None and not self._over:
                try:
                    await closer()
                except Exception as exc:
                    swallowed("closing an SDK stream", exc)
            self._over = True
            return
        try:
            await self._close()
        except Exception as exc:
            swallowed("closing a response", exc)
        if self._over:
            return
        self._over = True
        while True:
            try:
                await self._stream.__anext__()
            except StopAsyncIteration:
                return
            except Exception as exc:  # the closed body's read error
                swallowed("reading a closed stream to its end", exc)
                return


def map_transport_error(exc: BaseException, spec: ModelSpec, default_host: str) -> LLMError | None:
    """llmcells error for an httpx (or aiohttp) failure that reached us unwrapped, else None.

    The SDKs wrap failures while sending, but errors while *reading* a streamed body (a read
    timeout, a dropped connection) surface as raw httpx exceptions.
    """
    host = host_of(spec.base_url, default_host)
    if isinstance(exc, NotAStreamError):
        return not_a_stream(exc, spec, host)
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
    if isinstance(cause, NotTheApiError):
        page = f' ("{cause.title}")' if cause.title else ""
        via = "" if cause.host == host else f" via {cause.host}"
        return ConnectionFailedError(
            f"{spec.label} at {host} answered with an HTML page{page}{via} instead of the API: "
            "a captive portal or proxy? Sign in to the network or check the base URL.",
            provider=spec.provider)
    detail = one_line(str(cause) or type(cause).__name__, 120)
    return ConnectionFailedError(f"Could not reach {spec.label} at {host}: {detail}",
                                 provider=spec.provider)


# ----- HTTP status -> llmcells error (errors.kind_of_status is the one table) ---------------------


def key_hint(spec: ModelSpec) -> str:
    """Where the key comes from: the provider's variables, or the endpoint's add_endpoint()."""
    if spec.provider in PROVIDERS:
        return "check " + " or ".join(PROVIDERS[spec.provider].key_env)
    return f"check the key given to add_endpoint('{spec.provider}', ...)"


def _model_names(spec: ModelSpec) -> list[str]:
    """The models llmcells knows of spec's provider (its price data) that aren't shut down."""
    from .. import lifecycle
    from ..pricing import model_names
    from ..registry import price_provider

    try:
        maker = price_provider(spec.provider)
        return [n for n in model_names(maker) if lifecycle.lookup(f"{maker}:{n}").status() != "retired"]
    except Exception as exc:  # no price data: no names, the error stands on its own
        swallowed("listing a provider's model names", exc)
        return []


def _close_model(spec: ModelSpec, names: list[str]) -> str:
    """" (did you mean claude-haiku-5-5?)" for a model name its provider doesn't know that is
    close to one of names; else ""."""
    from difflib import get_close_matches  # (only on this error's path)

    # close only: a loose match would offer claude-2 for "claud"
    close = get_close_matches(spec.name, [n for n in names if n != spec.name], n=1, cutoff=0.8)
    return f" (did you mean {close[0]}?)" if close else ""


def api_error(spec: ModelSpec, kind: str, message: str, *, host: str, status: int | None = None,
              retry_after: float | None = None, response: Any = None,
              credentials: str | None = None) -> LLMError:
    """The llmcells error for a provider's error answer, worded the same for every provider.

    kind is an error kind, as errors.kind_of_status (or the provider's own error code) says;
    message the provider's one-line reason; response the httpx response, if any, so that an HTML
    error page becomes a short reason instead of flattened markup (and its `x-should-retry`
    header decides whether the error is retried); credentials replaces "the API key; check VAR"
    in the authentication message.
    """
    err = _error_of_kind(spec, kind, message, host=host, status=status, retry_after=retry_after,
                         response=response, credentials=credentials)
    advice = _should_retry_header(response) if status is not None else None
    if advice is not None:
        err.retryable = advice
    return err


def _should_retry_header(response: Any) -> bool | None:
    """The server's own word on retrying an error answer, as the openai and anthropic SDKs obey it:
    `x-should-retry: true` or `false` (None without one). A 500 that says false fails at once
    instead of being sent again; an error answer that says true is retried."""
    try:
        value = response.headers.get("x-should-retry") if response is not None else None
    except Exception as exc:  # a header mapping we don't understand: no advice
        swallowed("reading x-should-retry", exc)
        return None
    return {"true": True, "false": False}.get(str(value).strip().lower()) if value else None


def _error_of_kind(spec: ModelSpec, kind: str, message: str, *, host: str, status: int | None,
                   retry_after: float | None, response: Any, credentials: str | None) -> LLMError:
    """api_error's error, before the server's retry advice."""
    label, provider = spec.label, spec.provider
    if response is not None and is_html(response):
        message = _html_reason(response, status, host)
    common: dict[str, Any] = {"provider": provider, "status_code": status}
    if kind == "authentication":
        what = credentials or f"the API key; {key_hint(spec)}"
        return AuthenticationError(f"{label} rejected {what}.", **common)
    if kind == "denied":
        return AuthenticationError(f"{label} denied access: {message}", **common)
    if kind == "model_not_found":
        from ..lifecycle import not_found_message

        retired = not_found_message(spec)  # a known retired model: say when, and what instead
        if retired:
            return ModelNotFoundError(f"{label}: {retired}", **common)
        where = "" if provider in PROVIDERS else f" at {host}"
        names = _model_names(spec)
        if spec.name in names:
            # a model llmcells knows and that isn't shut down: the name is right, so the likely
            # cause is the key's access to it, which the provider's own sentence says (a "did
            # you mean" would offer another model)
            row = PROVIDERS.get(provider)
            whose = ("your key's project may use it" if row is None or row.key_env else
                     "your cloud account may use it in its region")  # (Vertex AI, Bedrock: no key)
            return ModelNotFoundError(f"{label}{where} did not find {spec.name}, a model llmcells "
                                      f"knows: check that {whose}. {label} "
                                      f"said: {one_line(message, 120)}", **common)
        return ModelNotFoundError(f"Unknown model '{spec.name}' for {label}{where}: check the "
                                  f"name{_close_model(spec, names)} (%llmcells models lists aliases).",
                                  **common)
    if kind == "rate_limited":
        return RateLimitError(f"{label} rate limit: {message}", retry_after=retry_after, **common)
    if kind == "billing":
        return BillingError(f"{label} billing problem: {message}", **common)
    if kind == "timeout":
        err = ProviderTimeoutError(f"{label} timed out the request: {message}", **common)
        # a 408 (Bedrock's ModelTimeoutException, a gateway's Request Timeout) came before any
        # answer: it is sent again, as the openai and anthropic SDKs send it
        err.retryable = status == 408
        return err
    if kind == "overloaded":
        return OverloadedError(f"{label} is overloaded; try again shortly.", retry_after=retry_after,
                               **common)
    if kind == "server_error":
        code = f" ({status})" if status else ""
        return ServerError(f"{label} had a server error{code}: {message}", retry_after=retry_after,
                           **common)
    if kind == "bad_request":
        return BadRequestError(f"{label} rejected the request: {message}", **common)
    return ProviderError(f"{label} reported an error: {message}", **common)


def _html_reason(response: Any, status: int | None, host: str) -> str:
    """A short reason for an HTML error page: its title, or the HTTP reason phrase."""
    try:
        body = response.content
    except Exception as exc:  # a body not read yet: the reason phrase will do
        swallowed("reading an HTML error page's body (the reason phrase instead)", exc)
        body = None
    title = html_title(body) or getattr(response, "reason_phrase", "") or ""
    if status and title and not title.startswith(str(status)):
        title = f"{status} {title}"
    named = f' ("{title}")' if title else ""
    return f"{host} sent an HTML page{named} instead of an API answer (a proxy or gateway?)"
