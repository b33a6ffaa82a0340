"""Google Gemini adapter: generateContent streaming through the official `google-genai` SDK.

The Gemini Developer API by default; Vertex AI when GOOGLE_GENAI_USE_VERTEXAI is true.
"""

from __future__ import annotations

import base64
import codecs
import functools
import json
import os
import re
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

import httpx2
import pydantic
from google import genai
from google.genai import _common as genai_common
from google.genai import errors as genai_errors
from google.genai import models as genai_models
from google.genai import types as genai_types

from .. import capabilities
from ..errors import AuthenticationError, BadRequestError, LLMError, ProviderError, RateLimitError
from ..errors import did_you_mean
from ..models import ModelSpec, vertex_enabled
from ..quotas import day_bounds, from_headers
from ..types import Event, Finish, PartDelta, PartEnd, PartStart, Request, ResponseInfo, Usage, UsageUpdate
from ..errors import kind_of_status
from ._common import (
    SdkStream,
    api_error,
    count,
    field,
    host_of,
    incomplete,
    map_transport_error,
    max_tokens_note,
    one_line,
    parse_duration,
    retry_after_from_headers,
)
from . import _rich, _tools
from ._http import StreamErrorEvent, body_read_here, capture_responses, guard, media_type, tls_context
from ._sse import SKIP, EventStream, json_of
from .base import ClientOptions, Provider

DEVELOPER_HOST = "generativelanguage.googleapis.com"
VERTEX_HOST = "aiplatform.googleapis.com"
_USAGE_NAMES = ("prompt_token_count", "tool_use_prompt_token_count", "cached_content_token_count",
                "candidates_token_count", "thoughts_token_count")
_USAGE_CAMEL = ("promptTokenCount", "toolUsePromptTokenCount", "cachedContentTokenCount",
                "candidatesTokenCount", "thoughtsTokenCount")
_RETRY_IN = re.compile(r"retry in (\d+(?:\.\d+)?)\s*s\b", re.IGNORECASE)
#: a QuotaFailure quotaId of a per-day quota ("GenerateRequestsPerDayPerProjectPerModel-FreeTier")
_PER_DAY = re.compile(r"PerDay", re.IGNORECASE)

# What this adapter reads of the SDK's types, and what it leaves alone on purpose (with why).
# tests/test_sdk_drift.py checks both against the installed SDK: a finish reason, usage field or
# candidate field that a new SDK adds and neither names fails that test.
READS = {
    # each ends the answer as "ok" with the reason as given, except those of _FINISH_ERRORS (an
    # error) and _FINISH_NOTES (a note; MAX_TOKENS one when no answer text came);
    # CONTINUATION resumes the answer (see _lane_chunks)
    "finish_reasons": {"STOP", "MAX_TOKENS", "SAFETY", "RECITATION", "LANGUAGE", "OTHER",
                       "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "MALFORMED_FUNCTION_CALL",
                       "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_OTHER", "NO_IMAGE",
                       "IMAGE_RECITATION", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS",
                       "MISSING_THOUGHT_SIGNATURE", "MALFORMED_RESPONSE", "MODEL_ARMOR",
                       "ESCALATION", "PUP_LIMITED_DISABLED", "CONTINUATION"},
    "usage": set(_USAGE_NAMES),
    # finish_message: the reason's explanation ("Malformed function call: ..."), added to its note
    "candidate": {"content", "finish_reason", "continuation_token", "finish_message"},
}
_BREAKDOWN = "a per-modality breakdown of a count that is read"
IGNORES = {
    "finish_reasons": {"FINISH_REASON_UNSPECIFIED": "the enum's default, never a real ending"},
    "usage": {"total_token_count": "the sum of the counts read", "prompt_tokens_details": _BREAKDOWN,
              "candidates_tokens_details": _BREAKDOWN, "cache_tokens_details": _BREAKDOWN,
              "tool_use_prompt_tokens_details": _BREAKDOWN,
              "traffic_type": "which quota served the call; it does not change the token counts"},
    "candidate": {"index": "only one candidate is asked for (the first is read)",
                  "citation_metadata": "citations are not shown",
                  "token_count": "usageMetadata counts the tokens",
                  "grounding_metadata": "no grounding tools are declared",
                  "url_context_metadata": "no URL-context tool is declared",
                  "avg_logprobs": "log probabilities are not asked for",
                  "logprobs_result": "log probabilities are not asked for",
                  "safety_ratings": "a blocked answer shows as its finish reason"},
}


# ----- usage -------------------------------------------------------------------------------------


def map_usage(raw: Any) -> Usage:
    """Normalise Gemini usageMetadata (the wire's JSON, or a batch job's SDK object).

    Every chunk carries the running totals, so the last chunk's usage is the call's usage.
    Thoughts are billed as output but reported apart from candidatesTokenCount (which can be
    missing), so output is their sum. promptTokenCount already includes cached content.
    """
    if raw is None:
        counts = [0] * len(_USAGE_NAMES)
    elif isinstance(raw, Mapping):  # camelCase as sent (snake_case accepted)
        counts = [count(raw, camel, snake) for snake, camel in zip(_USAGE_NAMES, _USAGE_CAMEL)]
    else:  # an SDK object: its snake_case fields, None when absent
        counts = [count(raw, name) for name in _USAGE_NAMES]
    prompt, tool_prompt, cached, candidates, thoughts = counts
    return Usage(
        input_tokens=prompt + tool_prompt,
        cached_input_tokens=cached,
        cache_write_tokens=0,
        output_tokens=candidates + thoughts,
        reasoning_tokens=thoughts,
    )


#: Vertex AI's usageMetadata.trafficType of a call served at a tier of another price
_TRAFFIC_TIERS = {"ON_DEMAND_FLEX": "flex", "ON_DEMAND_PRIORITY": "priority"}


def _served_tier(headers: Any) -> str | None:
    """The service tier an answer's x-gemini-service-tier header names ("standard", "flex",
    "priority"), lower-cased; None when absent."""
    get = getattr(headers, "get", None)  # a mapping (httpx.Headers), or no tier known from it
    value = get("x-gemini-service-tier") if callable(get) else None
    return (value.strip().lower() or None) if isinstance(value, str) else None


# ----- client ------------------------------------------------------------------------------------


class _ClientTimeoutAsyncClient(httpx2.AsyncClient):
    """An httpx client that keeps its own timeouts.

    google-genai sends every request with `timeout=None` when HttpOptions.timeout is unset
    (_api_client.py, HttpRequest.timeout -> build_request), which httpx reads as "no timeout at
    all". Treat None as "use the client's timeout" so connect and read limits still apply.
    """

    def build_request(self, *args: Any, **kwargs: Any) -> httpx2.Request:
        if "timeout" in kwargs and kwargs["timeout"] is None:
            kwargs["timeout"] = httpx2.USE_CLIENT_DEFAULT
        return super().build_request(*args, **kwargs)


# ----- requests ----------------------------------------------------------------------------------


def request_contents(request: Request) -> list[dict[str, Any]]:
    """The request's turns as Gemini `contents` (a live call's and a batch line's)."""
    # Gemini calls the assistant "model".
    # Tool turns as function_call / function_response parts; the last user message carries the
    # attachments (see _rich.py).
    return _rich.attach_to_last_user(_tools.gemini_contents(request.messages), request,
                                     _rich.gemini_parts)


def _stream_contents(request: Request) -> list[dict[str, Any]] | str:
    """request_contents, or a lone user text as a plain string: the SDK turns that into the same
    one-part user turn on the wire, without validating a list of dicts into its models (about 0.15 ms)."""
    messages = request.messages
    if len(messages) == 1 and messages[0].role == "user" and not request.attachments:
        return messages[0].content
    return request_contents(request)


def request_config(request: Request) -> dict[str, Any]:
    """GenerateContentConfig fields; pass-through params (e.g. thinking_config) win."""
    config: dict[str, Any] = {}
    if request.system:
        config["system_instruction"] = request.system
    if request.temperature is not None and capabilities.of(request.spec).accepts(
            "temperature", request.extra.get("params")):
        config["temperature"] = request.temperature  # (make_plan left out, with a note, one refused)
    if request.max_tokens is not None:
        config["max_output_tokens"] = request.max_tokens
    config.update(_rich.gemini_schema(request))
    if _tools.declared(request):
        config["tools"] = _tools.gemini_tools(_tools.declared(request))
    config.update(request.extra.get("params") or {})
    return config


# ----- the stream --------------------------------------------------------------------------------
#
# google-genai turns every streamed chunk into a pydantic GenerateContentResponse (more than half
# of its CPU per call) and offers no raw stream: it refuses should_return_http_response for
# streams. So, when the installed SDK has them, the adapter makes the calls that
# generate_content_stream makes under its models: the SDK's own request converter and its API
# client's request path (the same URL, body, auth, headers, retries and APIError), and reads
# the body itself, each chunk as the JSON the server sent (see _chunks). With an SDK that lacks
# them, it uses the typed stream and reads each chunk's dump in the same camelCase form. Either
# way one loop reads them.

_CONTINUATION = "CONTINUATION"


def _lane(client: genai.Client) -> Any | None:
    """The SDK's API client under client.aio, if this google-genai has the request path that
    generate_content_stream uses; None otherwise (the typed stream is used then)."""
    api = getattr(client.aio, "_api_client", None)
    if api is None or not callable(getattr(api, "async_request_streamed", None)) or not _sdk_has_lane():
        return None
    return api


@functools.cache
def _sdk_has_lane() -> bool:
    needed = ((genai_models, "_GenerateContentParameters_to_mldev"),
              (genai_models, "_GenerateContentParameters_to_vertex"),
              (genai_common, "convert_to_dict"), (genai_common, "encode_unserializable_types"),
              (genai_types, "_GenerateContentParameters"))
    return all(callable(getattr(module, name, None)) for module, name in needed)


def _hop_request(api: Any, request: Request, token: bytes | None) -> tuple[str, dict, Any]:
    """(path, body, http_options) of one streamGenerateContent request, built as the SDK's
    AsyncModels._generate_content_stream builds it; token resumes a CONTINUATION."""
    config = request_config(request)
    if token:
        config["continuation_token"] = token
    try:
        params = genai_types._GenerateContentParameters(
            model=request.spec.name, contents=_stream_contents(request), config=config or None)
    except pydantic.ValidationError as exc:  # a params= key or value the SDK's types refuse
        raise _params_refused(exc, request.spec) from None
    convert = (genai_models._GenerateContentParameters_to_vertex if api.vertexai
               else genai_models._GenerateContentParameters_to_mldev)
    body = convert(api, params, None, params)
    url = body.get("_url")
    path = ("{model}:streamGenerateContent?alt=sse".format_map(url) if url
            else "{model}:streamGenerateContent?alt=sse")
    query = body.get("_query")
    if query:
        path = f"{path}?{urlencode(query)}"
    body.pop("config", None)
    http_options = params.config.http_options if params.config is not None else None
    body = genai_common.encode_unserializable_types(genai_common.convert_to_dict(body))
    return path, body, http_options


def _params_refused(exc: "pydantic.ValidationError", spec: ModelSpec) -> BadRequestError:
    """One line for a request the SDK's own types refuse before sending: which params= key is
    not a GenerateContentConfig field (with the closest one), or what its value must be. (The
    bare pydantic error named only "_GenerateContentParameters".)"""
    problem = exc.errors()[0]
    where = [str(part) for part in problem.get("loc", ())]
    key = ".".join(where[1:]) if where[:1] == ["config"] else ".".join(where)
    if problem.get("type") == "extra_forbidden" and where[:1] == ["config"] and len(where) == 2:
        hint = did_you_mean(where[1], genai_types.GenerateContentConfig.model_fields)
        line = f"params={{'{key}': ...}} is not a Gemini request field{hint}"
    else:
        line = f"params {key!r}: {problem.get('msg', 'not accepted')}"
    return BadRequestError(f"{spec.label}: {line} (google-genai's GenerateContentConfig); nothing "
                           "was sent.", provider=spec.provider)


class _Responses(list):
    """The httpx responses of one call's requests, so that its stream can be closed at once."""

    closed = False  # closed: no further request may start

    async def aclose(self) -> None:
        self.closed = True
        for response in self:
            await response.aclose()


async def _lane_chunks(api: Any, request: Request, responses: _Responses) -> AsyncIterator[tuple[Any, dict]]:
    """(headers, chunk JSON) for every chunk, over as many requests as CONTINUATION asks for.

    A hop that ends with finishReason CONTINUATION and a new continuationToken is resumed with
    that token, as the SDK's automatic continuation does (unless the params say
    automatic_continuation=False): the intermediate reason is dropped, and each hop's usage (its
    own request's) is added to the earlier hops'."""
    token: bytes | None = None
    earlier: dict[str, int] = {}
    follow = (request.extra.get("params") or {}).get("automatic_continuation") is not False
    while not responses.closed:
        path, body, http_options = _hop_request(api, request, token)
        with capture_responses() as found:
            try:
                hop = await _send_hop(api, path, body, http_options)
            finally:
                responses += found
        last_reason = next_token = None
        hop_usage: dict[str, int] | None = None
        async for headers, chunk in hop:
            candidates = chunk.get("candidates")
            candidate = candidates[0] if candidates else None
            if candidate is not None:
                last_reason = candidate.get("finishReason")
                next_token = candidate.get("continuationToken") or next_token
                if last_reason == _CONTINUATION and follow:
                    candidate = dict(candidate)
                    del candidate["finishReason"]  # not the end of the answer: more hops follow
                    chunk = {**chunk, "candidates": [candidate, *candidates[1:]]}
            usage = chunk.get("usageMetadata")
            if usage is not None:
                hop_usage = usage
                if earlier:
                    chunk = {**chunk, "usageMetadata": {k: count(usage, k) + earlier.get(k, 0)
                                                        for k in {*usage, *earlier}}}
            yield headers, chunk
        resume = base64.b64decode(next_token) if isinstance(next_token, str) else next_token
        if last_reason != _CONTINUATION or not resume or resume == token or not follow:
            return
        token = resume
        for k, v in (hop_usage or {}).items():
            if isinstance(v, int):
                earlier[k] = earlier.get(k, 0) + v


async def _send_hop(api: Any, path: str, body: dict, http_options: Any) -> AsyncIterator[tuple[Any, dict]]:
    """Send one streamGenerateContent request; its (headers, chunk JSON) pairs.

    The SDK's own request path under async_request_streamed (its _build_request and
    _async_request: auth, headers, retries, HTTP errors), the body read here (see `_chunks`).
    async_request_streamed itself reads the body line by line and dumps every parsed chunk back
    into a string, in a pydantic SdkHttpResponse, for its caller to parse again. An SDK without
    those methods takes that path."""
    build = getattr(api, "_build_request", None)
    send = getattr(api, "_async_request", None)
    if not (callable(build) and callable(send)):
        return _reparsed(await api.async_request_streamed("post", path, body, http_options))
    with body_read_here():
        response = await send(http_request=build("post", path, body, http_options),
                              http_options=http_options, stream=True)
    return _chunks(response)


async def _chunks(response: Any) -> AsyncIterator[tuple[Any, dict]]:
    """(headers, chunk JSON) of one hop's body, read as google-genai reads it, in one pass:
    - SSE (`text/event-stream`, what alt=sse asks for) by `_sse.EventStream`, with the SDK's
      extras: raw JSON lines (Gemini sends an error object that way, pretty-printed) and the
      event the body ends in; `event: ping` events are skipped;
    - JSON (`application/json`): one chunk, or the array of chunks that streamGenerateContent
      sends without alt=sse (a proxy that drops the query), read as it arrives;
    - anything else (or an aiohttp response): the SDK's own reading.
    An error object in place of a chunk is raised as async_request_streamed raises it."""
    body = getattr(response, "response_stream", None)
    media = media_type(body) if isinstance(body, httpx2.Response) else None
    close: Any = None  # what closes a reader of ours, if the stream ends early
    if media == "text/event-stream":
        items: Any = EventStream(body, _read_event, other=_RawJson(), last=True)
        close = items.close
    elif media is not None and (media == "application/json" or media.endswith("+json")):
        items = _json_values(body)
        close = items.aclose
    else:
        items = response  # google-genai's HttpResponse: the chunks it parsed (it closes its body)
    headers = response.headers
    try:
        async for value in items:
            # (an array of chunks read whole, as raw JSON in a body labelled SSE: its chunks)
            for chunk in value if isinstance(value, list) else (value,):
                if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
                    await genai_errors.APIError.raise_error_async(_error_status(chunk["error"]),
                                                                  chunk, response)
                yield headers, chunk if isinstance(chunk, dict) else {}
    finally:
        if close is not None:
            await close()


def _error_status(error: dict) -> int:
    """The HTTP status of an error object sent in place of a chunk: its `code`, or 500 when that
    is no status (missing, text, another provider's error shape from a proxy); google-genai
    compares it with numbers and failed with a TypeError."""
    code = error.get("code")
    return code if type(code) is int and 100 <= code <= 599 else 500


def _read_event(name: str | None, data: bytes, response: Any) -> Any:
    """One SSE event of a Gemini stream: its JSON (an `event: ping` is skipped, as llmcells'
    rewrite for google-genai skips it)."""
    return SKIP if name == "ping" else json_of(data)


class _RawJson:
    """google-genai's reading of the lines of an SSE body that are no SSE field: raw JSON (Gemini
    sends an error object so, pretty-printed), gathered until its braces balance outside
    strings. A line that starts no JSON object or array is ignored, as SSE ignores it (the SDK
    failed the call on it)."""

    def __init__(self) -> None:
        self._lines: list[bytes] = []
        self._depth = 0
        self._in_string = False
        self._escaped = False

    def __call__(self, line: bytes | None) -> bytes | None:
        if line is None:  # the body's end: an object it cut off (its JSON then fails to parse)
            rest, self._lines = b"".join(self._lines), []
            return rest or None
        if not self._lines and line.lstrip()[:1] not in (b"{", b"["):
            return None
        for c in line.decode("utf-8", "replace"):
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif c == "\\":
                    self._escaped = True
                elif c == '"':
                    self._in_string = False
            elif c == '"':
                self._in_string = True
            elif c in "{[":
                self._depth += 1
            elif c in "}]":
                self._depth -= 1
        self._lines.append(line)
        if self._depth > 0:
            return None
        whole, self._lines, self._depth = b"\n".join(self._lines), [], 0
        self._in_string = self._escaped = False
        return whole


async def _json_values(response: httpx2.Response) -> AsyncIterator[Any]:
    """The JSON values of a body that is one value or an array of them, each as soon as its
    bytes have come. A body that is not such JSON raises json.JSONDecodeError at its end."""
    utf8 = codecs.getincrementaldecoder("utf-8")()
    text, in_array = "", None
    chunks = response.aiter_bytes()
    try:
        async for chunk in chunks:
            try:
                piece = utf8.decode(chunk)
            except UnicodeDecodeError as exc:
                raise json.JSONDecodeError(f"not UTF-8: {exc.reason}", "", 0) from None
            text += piece
            if "}" in piece or "]" in piece:  # only then can a value have ended
                values, text, in_array = _values_in(text, in_array)
                for value in values:
                    yield value
    finally:
        await chunks.aclose()
    values, text, in_array = _values_in(text, in_array)
    for value in values:
        yield value
    rest = text.strip()
    if rest:
        _JSON.decode(rest)  # raises: what is left is no whole JSON value
        raise json.JSONDecodeError("not a JSON value or an array of them", rest, 0)


_JSON = json.JSONDecoder()


def _values_in(text: str, in_array: bool | None) -> tuple[list[Any], str, bool | None]:
    """(the whole values at text's start, the rest, whether they are an array's items). in_array
    is None until the first value (or "[") has come."""
    values: list[Any] = []
    pos, n = 0, len(text)
    while True:
        while pos < n and (text[pos] in " \t\r\n" or (in_array and text[pos] == ",")):
            pos += 1
        if pos >= n:
            break
        if in_array is None:
            in_array = text[pos] == "["
            if in_array:
                pos += 1
                continue
        if in_array and text[pos] == "]":
            return values, "", in_array  # the array's end (anything after it is not read)
        try:
            value, pos = _JSON.raw_decode(text, pos)
        except json.JSONDecodeError:
            break  # not whole yet: the next bytes may complete it
        except RecursionError:  # no more bytes can make this readable
            raise json.JSONDecodeError("nested too deeply to read", "", pos) from None
        values.append(value)
    return values, text[pos:], in_array


async def _reparsed(hop: Any) -> AsyncIterator[tuple[Any, dict]]:
    async for piece in hop:
        yield piece.headers, json_of(piece.body) if piece.body else {}


async def _typed_chunks(client: genai.Client, request: Request) -> AsyncIterator[tuple[Any, dict]]:
    """(headers, chunk JSON) from the SDK's typed stream, each chunk dumped in its wire form."""
    stream = await client.aio.models.generate_content_stream(
        model=request.spec.name, contents=_stream_contents(request), config=request_config(request) or None)
    async for chunk in stream:
        yield (field(chunk.sdk_http_response, "headers"),
               chunk.model_dump(mode="json", by_alias=True, exclude_none=True,
                                exclude={"sdk_http_response"}))


async def _stream(client: genai.Client, request: Request, *, typed: bool = False) -> AsyncIterator[Event]:
    """The call's events; typed=True reads the SDK's typed stream even where the lane exists."""
    api = None if typed else _lane(client)
    if api is not None:
        responses = _Responses()
        items = SdkStream(_lane_chunks(api, request, responses), request.spec, _default_host(),
                          close=responses.aclose)
    else:
        # The SDK sends the request on the first item and keeps the httpx response to itself:
        # closing its generator alone would leave the ones under it to the garbage collector.
        items = SdkStream(_typed_chunks(client, request), request.spec, _default_host(), capture=True)
    finish_reason: str | None = None
    info_sent = False
    last_usage: dict | None = None
    served: str | None = None      # the service tier the answer says served it
    # The parts, numbered as they come (items.show, items.new_part): one text part for the
    # answer, one reasoning part (the thoughts), and one per function call, sent whole.
    # (This loop runs for every chunk: each field is read once, and usage is mapped only when
    # it changes.)
    finish_message: str | None = None
    answered = False               # some answer came: text (not thoughts) or a function call
    unshown: dict[str, int] = {}   # parts of other kinds (an image, code): what the note names
    try:
        async for headers, chunk in items:
            if not info_sent and (chunk.get("modelVersion") or chunk.get("responseId")):
                info_sent = True
                served = _served_tier(headers)
                yield ResponseInfo(response_model=chunk.get("modelVersion"),
                                   response_id=chunk.get("responseId"), rate_limits=from_headers(headers),
                                   service_tier=served)
            feedback = chunk.get("promptFeedback")
            if feedback and feedback.get("blockReason"):
                if chunk.get("usageMetadata"):  # the blocked prompt's tokens: the call's cost
                    yield UsageUpdate(map_usage(chunk["usageMetadata"]))
                raise prompt_blocked(feedback, request.spec.provider)
            candidates = chunk.get("candidates")
            candidate = candidates[0] if candidates else None
            if candidate is not None:
                content = candidate.get("content")
                for part in (content.get("parts") or ()) if content else ():
                    if "functionCall" in part:
                        answered = True
                        call, index = part["functionCall"], items.new_part()
                        yield PartStart(index, "tool_call", id=call.get("id") or None,
                                        name=call.get("name") or None,
                                        signature=part.get("thoughtSignature") or None)
                        yield PartDelta(index, json.dumps(call.get("args") or {}, ensure_ascii=False))
                        yield PartEnd(index)
                        continue
                    text = part.get("text")
                    if text:
                        answered = answered or not part.get("thought")
                        for shown in items.show("reasoning" if part.get("thought") else "text", text):
                            yield shown
                    elif "text" not in part:
                        kind = _other_part(part)
                        if kind is not None:
                            unshown[kind] = unshown.get(kind, 0) + 1
            usage = chunk.get("usageMetadata")
            if usage is not None and usage != last_usage:
                last_usage = usage
                # the tier that served the call (it sets the price: flex is billed at half,
                # priority above standard, and priority over its limit is served as standard)
                tier = usage.get("serviceTier") or _TRAFFIC_TIERS.get(usage.get("trafficType"))
                if isinstance(tier, str) and tier and tier.lower() != served:
                    served = tier.lower()
                    yield ResponseInfo(service_tier=served)
                yield UsageUpdate(map_usage(usage))
            if candidate is not None and candidate.get("finishReason"):
                finish_reason = str(candidate["finishReason"])
                finish_message = candidate.get("finishMessage") or finish_message
                items.finished()  # the last chunk: a cut after it no longer matters
    finally:
        await items.aclose()
    # A cleanly cut stream ends silently in the SDK; only a finishReason proves the answer is whole.
    if finish_reason is None:
        raise items.cut_short()
    failed, note = ending(finish_reason, finish_message, answered, request.spec.provider)
    if failed is not None:
        raise failed
    if unshown:  # an image answer came as text "" and ok, with nothing to say there was more
        held = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in unshown.items())
        note = "; ".join(n for n in (note, f"not shown: the answer also held {held}") if n)
    yield Finish(finish_reason, note)


#: the parts of an answer that are neither text nor a function call, by what the note calls them
_OTHER_PARTS = {"inlineData": "inline {mime} part", "fileData": "file part ({mime})",
                "executableCode": "code part", "codeExecutionResult": "code result part"}


def _other_part(part: Mapping[str, Any]) -> str | None:
    """What a part that is neither text nor a function call holds ("inline image/png part"),
    or None for one with nothing of its own (a lone thought signature)."""
    for name, words in _OTHER_PARTS.items():
        value = part.get(name)
        if value is not None:
            mime = value.get("mimeType") if isinstance(value, Mapping) else None
            return words.format(mime=one_line(mime, 40) if mime else "data")
    return None


def prompt_blocked(feedback: Mapping[str, Any], provider: str) -> LLMError:
    """The error of a prompt Gemini blocked (promptFeedback.blockReason; no candidate comes)."""
    blocked = _with_message(f"Gemini blocked the prompt ({one_line(feedback.get('blockReason'), 40)})",
                            feedback.get("blockReasonMessage"))
    return BadRequestError(f"{blocked}; rephrase it or remove what the filter objects to.", provider=provider)


def ending(reason: str, message: Any, answered: bool, provider: str) -> tuple[LLMError | None, str | None]:
    """How a candidate's finishReason ends its call: (the error when there is no usable answer,
    else None; the note that says why the answer stopped short, else None). answered: some
    text (not thoughts) or a function call came; message: the candidate's finishMessage."""
    failed = _FINISH_ERRORS.get(reason)
    if failed is not None:
        return failed[0](_with_message(failed[1], message), provider=provider), None
    note = _FINISH_NOTES.get(reason)
    if note is None and reason == "MAX_TOKENS":
        note = max_tokens_note(answered)  # (a thinking model can spend it all before any text)
    return None, _with_message(note, message) if note else None


def _with_message(line: str, message: Any) -> str:
    """line, and the candidate's finishMessage after it when one came (one line, cut short)."""
    if not isinstance(message, str) or not message.strip():
        return line
    return f"{line.rstrip('.')}: {one_line(message, 200).rstrip('.')}"


# Finish reasons that mean there is no usable answer: an error, not an ok result.
_FINISH_ERRORS = {
    "MISSING_THOUGHT_SIGNATURE": (BadRequestError, "Gemini refused the conversation: a function "
                                  "call in its history lacks the thought signature it came with."),
    "MALFORMED_RESPONSE": (ProviderError, "Gemini produced a malformed response; try again."),
    "PUP_LIMITED_DISABLED": (ProviderError, "Gemini refused to answer: Google has limited or "
                             "disabled this account for Prohibited Use Policy violations; see "
                             "Google AI Studio."),
}
# Finish reasons that end an answer the way a person should be told of (Result.notes).
_FINISH_NOTES = {
    "MODEL_ARMOR": "blocked: a Model Armor policy stopped the answer",
    # Gemini stops a candidate it flags mid-answer; the text before the stop (often none) is
    # kept, and without a note an empty "ok" answer would not say why it is empty.
    "SAFETY": "blocked: Gemini stopped the answer for safety reasons",
    "RECITATION": "blocked: Gemini stopped the answer as recitation of training data",
    "BLOCKLIST": "blocked: the answer contained a blocklisted term",
    "PROHIBITED_CONTENT": "blocked: Gemini stopped the answer as prohibited content",
    "SPII": "blocked: the answer contained sensitive personal information",
    "MALFORMED_FUNCTION_CALL": "stopped: the model produced a malformed function call",
    "UNEXPECTED_TOOL_CALL": "stopped: the model called a tool that was not declared",
    "TOO_MANY_TOOL_CALLS": "stopped: the model made too many tool calls in one request",
    "LANGUAGE": "blocked: Gemini stopped the answer as written in an unsupported language",
    "IMAGE_SAFETY": "blocked: Gemini stopped the generated image for safety reasons",
    "IMAGE_PROHIBITED_CONTENT": "blocked: Gemini stopped the generated image as prohibited content",
    "IMAGE_RECITATION": "blocked: Gemini stopped the generated image as recitation of a source",
    "IMAGE_OTHER": "stopped: Gemini stopped the image generation (no reason given)",
    "NO_IMAGE": "stopped: the model was expected to generate an image and did not",
    "ESCALATION": "blocked: an escalation rule filtered the request",
    "OTHER": "stopped: Gemini stopped the answer (no reason given)",
}


def _default_host() -> str:
    return VERTEX_HOST if vertex_enabled() else DEVELOPER_HOST


def enum_name(value: Any) -> str:
    """An SDK enum's wire name ("STOP"), or the value as text."""
    return str(getattr(value, "value", value))


# ----- errors ------------------------------------------------------------------------------------


def _error_details(exc: genai_errors.APIError) -> list[dict[str, Any]]:
    body = exc.details if isinstance(exc.details, dict) else {}
    details = (body.get("error") or {}).get("details") if isinstance(body.get("error"), dict) else None
    details = details if details is not None else body.get("details")
    return [d for d in details or [] if isinstance(d, dict)]


def _retry_after(exc: genai_errors.APIError) -> float | None:
    """Seconds to wait: the longest of RetryInfo.retryDelay ("58s"), the message's "Please retry
    in 58.2s." and a Retry-After header. retryDelay is rounded down to whole seconds, so the
    message is often the more exact one."""
    hints: list[float] = []
    for d in _error_details(exc):
        if str(d.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = parse_duration(d.get("retryDelay"))
            if delay is not None:
                hints.append(delay)
    m = _RETRY_IN.search(str(exc.message or ""))
    if m:
        hints.append(float(m.group(1)))
    header = retry_after_from_headers(getattr(exc.response, "headers", None))
    if header is not None:
        hints.append(header)
    return max(hints) if hints else None


def _daily_quota(exc: genai_errors.APIError) -> str | None:
    """The quotaId of a per-day quota that a 429's QuotaFailure names, else None."""
    for d in _error_details(exc):
        if str(d.get("@type", "")).endswith("google.rpc.QuotaFailure"):
            for violation in d.get("violations") or ():
                quota = violation.get("quotaId") if isinstance(violation, dict) else None
                if isinstance(quota, str) and _PER_DAY.search(quota):
                    return quota
    return None


def _daily_quota_error(quota: str, spec: ModelSpec, code: int) -> LLMError:
    """A per-day quota used up: not retried (the RetryInfo Gemini sends with it is a few seconds,
    but every request fails until the quota's day ends at midnight Pacific); retry_after is the
    time left until then, so that a batch stops sending too."""
    _, reset, zone = day_bounds("google")  # the Gemini API's quota day, whatever the route
    when = datetime.fromtimestamp(reset, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    err = RateLimitError(f"{spec.label} daily quota used up ({one_line(quota, 80)}) for "
                         f"{spec.name}; it resets at {when} (midnight {zone}): use another model "
                         "or a higher usage tier until then.", provider=spec.provider,
                         status_code=code or None, retry_after=max(0.0, reset - time.time()))
    err.retryable = False  # every request fails until the day ends: waiting minutes won't help
    return err


def _api_error(exc: genai_errors.APIError, spec: ModelSpec) -> LLMError:
    code = int(exc.code) if isinstance(exc.code, int) or str(exc.code).isdigit() else 0
    status = str(exc.status or "")
    reasons = {str(d.get("reason", "")) for d in _error_details(exc)}
    message = one_line(exc.message or status or exc)
    kind = kind_of_status(code or None, message)  # (a 503 that says "overloaded" is an overload)
    if code == 403 or status == "PERMISSION_DENIED":
        # (a project without billing: "This API method requires billing to be enabled", with the
        # reason BILLING_DISABLED in its details)
        billing = "BILLING_DISABLED" in reasons or "requires billing" in message.lower()
        kind = "billing" if billing else "denied"
    elif code == 401 or "API_KEY_INVALID" in reasons or status == "UNAUTHENTICATED":
        kind = "authentication"  # Gemini answers a bad key with 400 API_KEY_INVALID
    elif status == "NOT_FOUND":
        kind = "model_not_found"
    elif status == "RESOURCE_EXHAUSTED":
        kind = "rate_limited"
    credentials = ("the credentials; check your Google Cloud login "
                   "(gcloud auth application-default login)" if vertex_enabled()
                   or spec.provider == "vertex" else None)
    retry_after = _retry_after(exc) if kind in ("rate_limited", "overloaded", "server_error") else None
    daily = _daily_quota(exc) if kind == "rate_limited" else None
    if daily is not None:
        return _daily_quota_error(daily, spec, code)
    return api_error(spec, kind, message, host=host_of(spec.base_url, _default_host()),
                     status=code or None, retry_after=retry_after,
                     response=getattr(exc, "response", None), credentials=credentials)


def _map_error(exc: BaseException, spec: ModelSpec) -> LLMError | None:
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, genai_errors.APIError):
        return _api_error(exc, spec)
    if isinstance(exc, StreamErrorEvent):  # the error object the SDK would have raised itself
        return _api_error(genai_errors.APIError(exc.code, exc.payload), spec)
    if isinstance(exc, genai_errors.UnknownApiResponseError):
        # Raised when a chunk is not valid JSON, i.e. the stream was cut mid-event.
        return incomplete(spec)
    module = type(exc).__module__ or ""
    if module.startswith("google.auth"):
        return AuthenticationError(
            "No usable Google Cloud credentials for Vertex AI: run "
            "`gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS.",
            provider=spec.provider)
    if module.startswith("google.genai"):
        return ProviderError(f"Google Gemini: {one_line(exc)}", provider=spec.provider)
    return map_transport_error(exc, spec, _default_host())


# ----- the adapter -------------------------------------------------------------------------------


def http_options(options: ClientOptions) -> genai_types.HttpOptions:
    """The SDK's HttpOptions: options.base_url, and an httpx client with its own timeouts."""
    http_client = guard(options.http_client or _ClientTimeoutAsyncClient(
        timeout=httpx2.Timeout(options.read_timeout, connect=options.connect_timeout),
        verify=tls_context()), gemini=True)
    return genai_types.HttpOptions(base_url=options.base_url, httpx_async_client=http_client)


class GoogleProvider(Provider):
    """Gemini through `google.genai.Client(...).aio`."""

    name = "google"

    def make_client(self, options: ClientOptions) -> genai.Client:
        """A genai.Client that always uses httpx (never aiohttp) and no SDK retries.

        google-genai switches to aiohttp for async calls whenever aiohttp is importable, unless an
        httpx async client is given; passing one keeps behaviour, timeouts and error types the same
        everywhere.
        """
        opts = http_options(options)
        if vertex_enabled():
            if options.api_key:  # Vertex AI express mode: a key instead of project credentials
                return genai.Client(vertexai=True, api_key=options.api_key, http_options=opts)
            return genai.Client(
                vertexai=True,
                project=os.environ.get("GOOGLE_CLOUD_PROJECT") or None,
                location=os.environ.get("GOOGLE_CLOUD_LOCATION") or None,
                http_options=opts,
            )
        return genai.Client(api_key=options.api_key, http_options=opts)

    def stream(self, client: genai.Client, request: Request) -> AsyncIterator[Event]:
        """Stream one generateContent call; Finish comes only after a chunk with finishReason."""
        return _stream(client, request)

    def map_error(self, exc: BaseException, spec: ModelSpec) -> LLMError | None:
        """The llmcells error for a google-genai / google-auth / httpx exception, else None."""
        return _map_error(exc, spec)


ADAPTER = GoogleProvider()
