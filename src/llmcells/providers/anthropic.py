"""Anthropic adapter: the Messages API through the official `anthropic` SDK, its events read as the
JSON the server sent (see `_common.post_stream`)."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2

from .. import capabilities
from ..errors import LLMError, ProviderError, ProviderTimeoutError
from ..models import ModelSpec
from ..registry import PROVIDERS
from ..quotas import from_headers
from ..types import Event, Finish, PartDelta, PartEnd, PartStart, Request, ResponseInfo, Usage, UsageUpdate
from ..errors import kind_of_status
from ._common import (
    SdkStream,
    api_error,
    as_count,
    connection_failed,
    count,
    field,
    host_of,
    map_transport_error,
    max_tokens_note,
    one_line,
    retry_after_from_headers,
    post_stream,
    with_params,
)
from . import _rich, _tools
from ._http import guard, tls_context
from ._sse import SKIP, json_of
from .base import ClientOptions, Provider

DEFAULT_HOST = PROVIDERS["anthropic"].api_host
_INPUT_FIELDS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
_USAGE_FIELDS = (*_INPUT_FIELDS, "output_tokens")
# messages.create() keywords that the SDK sends as headers, not in the body.
_HEADER_PARAMS = {"user_profile_id": "anthropic-user-profile-id", "workspace_id": "anthropic-workspace-id"}
_WRITE_1H = "cache_creation_1h_input_tokens"  # merged usage key for cache_creation.ephemeral_1h_input_tokens
_THINKING = "thinking_tokens"  # merged usage key for output_tokens_details.thinking_tokens
_SEARCHES = "web_search_requests"  # merged usage key for server_tool_use.web_search_requests
# Amazon Bedrock: a guardrail (the request's, or one the account or region enforces on every call)
# that blocked the prompt or the answer. The answer is then the guardrail's canned message, with
# stop reason "guardrail_intervened", or "end_turn" and the chunk's guardrail action INTERVENED.
_GUARDRAIL_NOTE = ("blocked: an Amazon Bedrock guardrail intervened; the text is the guardrail's "
                   "message, not the model's answer")
_GUARDRAIL_ACTION = "amazon-bedrock-guardrailAction"
_GUARDRAIL_STOP = "guardrail_intervened"  # (Bedrock's own: not among the SDK's stop reasons)
# How a stop reason ended the answer, when "end_turn"-like wording would hide it (Result.notes).
# The status stays "ok": the provider answered and billed it; finish_reason keeps the reason.
_STOP_NOTES = {
    "pause_turn": "paused: Anthropic paused a long turn; send the conversation again to continue it",
    "model_context_window_exceeded": "stopped: the conversation filled the model's context window",
}
# What this adapter reads of the SDK's stream types, and what it leaves alone on purpose (with
# why). tests/test_sdk_drift.py checks both against the installed SDK: a stream event, delta,
# stop reason or usage field that a new SDK adds and neither names fails that test.
READS = {
    "events": {"message_start", "message_delta", "message_stop", "content_block_start",
               "content_block_delta", "content_block_stop"},
    "deltas": {"text_delta", "thinking_delta", "input_json_delta", "signature_delta"},
    # stop reasons: each ends the answer with status "ok" and finish_reason as given; refusal,
    # max_tokens and those of _STOP_NOTES add a note
    "stop_reasons": {"end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal",
                     "pause_turn", "model_context_window_exceeded"},
    "usage": {"input_tokens", "output_tokens", "cache_read_input_tokens",
              "cache_creation_input_tokens", "cache_creation", "output_tokens_details",
              "service_tier", "speed", "inference_geo", "server_tool_use"},
}
IGNORES = {
    "deltas": {"citations_delta": "citations are not shown"},
}
# The content blocks that are parts of the answer, by the part they are (others, such as
# redacted thinking, are not shown).
_BLOCK_PARTS = {"text": "text", "thinking": "reasoning", "tool_use": "tool_call"}
# The deltas of shown text: delta type -> (the part it belongs to, the delta's field)
_SHOWN_DELTAS = {"text_delta": ("text", "text"), "thinking_delta": ("reasoning", "thinking")}
# Anthropic's error types, by the kind of llmcells error they are (an `event: error` inside a 200
# stream has no telling status, only its type).
ERROR_TYPE_KINDS = {"overloaded_error": "overloaded", "authentication_error": "authentication",
                    "permission_error": "denied", "not_found_error": "model_not_found",
                    "rate_limit_error": "rate_limited", "billing_error": "billing",
                    "timeout_error": "timeout", "api_error": "server_error",
                    "invalid_request_error": "bad_request", "request_too_large": "bad_request",
                    # Bedrock's exception events, which AsyncAnthropicBedrock passes on as types
                    "serviceUnavailableException": "overloaded", "throttlingException": "rate_limited",
                    "internalServerException": "server_error", "modelStreamErrorException": "server_error",
                    "modelTimeoutException": "timeout", "validationException": "bad_request"}
# The 400 Anthropic answers an account out of credit with ("Your credit balance is too low to
# access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."): an
# invalid_request_error by its type, a billing problem by its words.
_CREDIT_TOO_LOW = "credit balance is too low"
# Amazon Bedrock's error answers: a body of only {"message": ...}, the error's name in the
# x-amzn-ErrorType header ("ThrottlingException:http://internal.amazon.com/..."). The names whose
# kind their status alone would get wrong (a bad signature or key is a 403, like a denied model).
_AWS_KINDS = {"UnrecognizedClientException": "authentication", "InvalidSignatureException": "authentication",
              "IncompleteSignatureException": "authentication", "ExpiredTokenException": "authentication",
              "MissingAuthenticationTokenException": "authentication",
              "ServiceUnavailableException": "overloaded"}


# ----- usage -------------------------------------------------------------------------------------


def map_usage(raw: Any) -> Usage:
    """Normalise an Anthropic usage object or dict.

    Anthropic's input_tokens leaves out cache reads and writes, so they are added back to get all
    input. Thinking tokens are part of output_tokens; output_tokens_details.thinking_tokens says
    how many (API version 2026-10-21), and they are the reasoning tokens.
    """
    cache_read = count(raw, "cache_read_input_tokens")
    cache_write = count(raw, "cache_creation_input_tokens")
    # cache_creation splits the writes by lifetime; the 1-hour ones are billed higher.
    write_1h = count(raw, _WRITE_1H) or count(field(raw, "cache_creation"), "ephemeral_1h_input_tokens")
    return Usage(
        input_tokens=count(raw, "input_tokens") + cache_read + cache_write,
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
        output_tokens=count(raw, "output_tokens"),
        reasoning_tokens=count(raw, _THINKING) or count(field(raw, "output_tokens_details"), _THINKING),
        cache_write_1h_tokens=min(write_1h, cache_write),
    )


def merge_usage(seen: dict[str, int], raw: Any, names: tuple[str, ...] = _USAGE_FIELDS) -> dict[str, int]:
    """seen updated with the fields of names that raw reports (message_delta may omit the input
    fields)."""
    for name in names:
        value = as_count(field(raw, name))
        if value is not None:
            seen[name] = value
    for name, value in ((_WRITE_1H, field(field(raw, "cache_creation"), "ephemeral_1h_input_tokens")),
                        (_THINKING, field(field(raw, "output_tokens_details"), _THINKING)),
                        (_SEARCHES, field(field(raw, "server_tool_use"), _SEARCHES))):
        value = as_count(value)
        if value is not None:
            seen[name] = value
    return seen


def _refusal_note(details: Any) -> str:
    """The note for a `refusal` stop: its policy category and explanation, when given."""
    category = field(details, "category")
    explanation = field(details, "explanation")
    note = "refused: the model declined to answer"
    if category:
        note += f" ({one_line(category, 40)})"
    return note + (f": {one_line(explanation, 160)}" if explanation else "")


# ----- requests ----------------------------------------------------------------------------------


def message_body(request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON body of a streamed Messages call, and its SDK request options."""
    kwargs: dict[str, Any] = {
        "model": request.spec.name,
        "messages": _rich.attach_to_last_user(_tools.anthropic_messages(request.messages), request,
                                              _rich.anthropic_parts),
        # Anthropic requires max_tokens; make_plan passes the model's default in extra (see
        # data/models.toml for why it is 16000).
        "max_tokens": request.max_tokens or request.extra.get("default_max_tokens")
        or capabilities.of(request.spec).max_tokens or 16000,
        "stream": True,
        **_rich.anthropic_schema(request),  # attachments above and the schema: see _rich.py
    }
    if request.system:
        kwargs["system"] = request.system
    if _tools.declared(request):
        kwargs["tools"] = _tools.anthropic_tools(_tools.declared(request))
    params = dict(request.extra.get("params") or {})
    # Anthropic API version 2026-10-21 refuses temperature/top_p/top_k on every Claude model:
    # make_plan leaves a refused temperature out; one set here anyway (a Request built by hand,
    # an add_endpoint model) is sent only if the model's profile takes it.
    if request.temperature is not None and capabilities.of(request.spec).accepts("temperature", params):
        params.setdefault("temperature", request.temperature)
    return with_params(kwargs, params, _HEADER_PARAMS)


# ----- the stream --------------------------------------------------------------------------------


def _read_event(client: anthropic.AsyncAnthropic, name: str | None, data: bytes, response: Any) -> Any:
    """One SSE event of a Messages stream, read as the anthropic SDK's stream reads it: `ping`
    is skipped, and `event: error` raises the SDK's status error (with the 200 of the stream:
    `_status_error` reads its type).

    An event without an `event:` line is named by its JSON's "type", as a proxy that leaves the
    names out means it. (The SDK skips every such event: a whole answer read as a stream cut
    before any text, and sent again.)"""
    event: Any = None
    if name is None:
        if data[:1] != b"{":
            return SKIP
        event = json_of(data)
        name = event.get("type") if isinstance(event, dict) else None
        if not isinstance(name, str):
            return SKIP
    if name == "ping":
        return SKIP
    if name == "error":
        if event is None:
            try:
                event = json.loads(data)
            except (ValueError, RecursionError):
                event = data.decode("utf-8", "replace")
        raise client._make_status_error(event if isinstance(event, str) else f"{event}",
                                        body=event, response=response)
    return json_of(data) if event is None else event


async def _stream(client: anthropic.AsyncAnthropic, request: Request,
                  host: str = DEFAULT_HOST, body_version: str | None = None) -> AsyncIterator[Event]:
    # Events arrive as the JSON objects the server sent (see post_stream): every read is a .get.
    # (A Bedrock client sends the same call to its /model/{id}/invoke-with-response-stream.)
    body, options = message_body(request)
    if body_version:  # a cloud's own `anthropic_version` (the SDK would put its API date there)
        body["anthropic_version"] = body_version
    stream = await post_stream(client, "/v1/messages", body, options, anthropic.AsyncStream,
                               functools.partial(_read_event, client), _whole_message)
    limits = from_headers(stream.response)  # rate-limit headers, for quotas
    items = SdkStream(stream, request.spec, host, close=stream.close)
    seen: dict[str, int] = {}
    stop_reason: str | None = None
    stop_details: Any = None
    started: dict[Any, str] = {}  # the content blocks whose part started: index -> part kind
    # The thinking blocks before the first tool call, whole (thinking text and signature, or a
    # redacted block's data): with thinking on, the next request must send them back first in
    # this assistant turn, or the API refuses it. They travel as the first call's signature.
    thinking: dict[Any, dict[str, Any]] = {}
    calls = 0
    guarded = False  # a Bedrock guardrail intervened
    try:
        async for event in items:
            if not isinstance(event, dict):
                continue
            kind = event.get("type")
            if kind == "content_block_delta":
                delta = event.get("delta")
                delta = delta if isinstance(delta, dict) else {}
                kind = delta.get("type")
                index = event.get("index")
                shown = _SHOWN_DELTAS.get(kind)
                if shown is not None:
                    part, key = shown
                    if isinstance(delta.get(key), str) and delta[key]:
                        if index not in started:  # (a server that skipped content_block_start)
                            started[index] = part
                            yield PartStart(index, part)
                        if index in thinking:
                            thinking[index]["thinking"].append(delta[key])
                        yield items.shown_delta(index, delta[key])
                elif kind == "input_json_delta":
                    if started.get(index) == "tool_call" and delta.get("partial_json"):
                        yield PartDelta(index, delta["partial_json"])
                elif kind == "signature_delta" and index in thinking:
                    thinking[index]["signature"] = str(delta.get("signature") or "")
            elif kind == "message_start":
                message = event.get("message")
                message = message if isinstance(message, dict) else {}
                usage = message.get("usage")
                yield ResponseInfo(response_model=message.get("model") or None,
                                   response_id=message.get("id") or None,
                                   service_tier=field(usage, "service_tier"), rate_limits=limits,
                                   speed=field(usage, "speed"),
                                   inference_geo=field(usage, "inference_geo"))
                if usage:
                    # Only the input side: output_tokens here is a placeholder (1) that a live
                    # count would show for the whole stream; message_delta brings the real one.
                    yield UsageUpdate(map_usage(merge_usage(seen, usage, _INPUT_FIELDS)))
            elif kind == "content_block_start":
                index, block = event.get("index"), event.get("content_block")
                block_type = field(block, "type")
                if block_type == "thinking" and not calls:
                    thinking[index] = {"type": "thinking", "thinking": [str(field(block, "thinking") or "")],
                                       "signature": str(field(block, "signature") or "")}
                elif block_type == "redacted_thinking" and not calls:
                    thinking[index] = {"type": "redacted_thinking", "data": field(block, "data") or ""}
                part = _BLOCK_PARTS.get(block_type)
                if part is not None and index not in started:
                    started[index] = part
                    signature = None
                    if part == "tool_call":
                        calls += 1
                        if calls == 1 and thinking:
                            signature = thinking_signature(thinking)
                    yield PartStart(index, part, id=field(block, "id") or None,
                                    name=field(block, "name") or None, signature=signature)
            elif kind == "content_block_stop":
                index = event.get("index")
                if index in started:
                    yield PartEnd(index)
            elif kind == "message_delta":
                stop_reason = field(event.get("delta"), "stop_reason") or stop_reason
                stop_details = field(event.get("delta"), "stop_details") or stop_details
                guarded = guarded or event.get(_GUARDRAIL_ACTION) == "INTERVENED"
                if event.get("usage"):
                    yield UsageUpdate(map_usage(merge_usage(seen, event["usage"])))
            elif kind == "message_stop":
                # No `break`: read the body to its end, so that the connection goes back to the
                # pool. Closing the stream here would drop it, and every call would pay a new
                # TCP + TLS handshake. A cut after this point no longer matters.
                items.finished()
                guarded = guarded or event.get(_GUARDRAIL_ACTION) == "INTERVENED"
    finally:
        await items.aclose()
    # The SDK ends silently when the body stops before message_stop.
    if not items.done:
        raise items.cut_short()
    reason = stop_reason or "end_turn"
    if reason == "refusal":
        note = _refusal_note(stop_details)
    elif reason == "max_tokens":
        # the answer is cut where the limit fell (often llmcells' default, not one the user set)
        note = max_tokens_note(bool(items.shown or calls), body.get("max_tokens"))
    else:
        note = _STOP_NOTES.get(reason)
    if guarded or reason == _GUARDRAIL_STOP:
        note = "; ".join(n for n in (note, _GUARDRAIL_NOTE) if n)
    notes = [n for n in (note, _searches_note(seen.get(_SEARCHES), request)) if n]
    yield Finish(reason, "; ".join(notes) or None)


def _whole_message(answer: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A whole Messages answer (from a server or proxy that ignored "stream": true) as the events
    its stream would have carried: message_start, each content block's start, delta and stop,
    message_delta with the stop reason and usage, message_stop. None if it is not a message.
    The document arrived whole, so the answer is complete: no stop_reason reads as end_turn."""
    content = answer.get("content")
    if answer.get("type", "message") != "message" or not isinstance(content, list):
        return None
    usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
    head = {k: v for k, v in answer.items() if k not in ("content", "stop_reason", "stop_details")}
    events: list[dict[str, Any]] = [{"type": "message_start",
                                     "message": {**head, "content": [], "usage": usage}}]
    for index, block in enumerate(content):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        deltas: list[dict[str, Any]] = []
        start = block
        if kind == "text":
            start = {**block, "text": ""}
            deltas = [{"type": "text_delta", "text": block.get("text")}]
        elif kind == "thinking":
            start = {**block, "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": block.get("thinking")},
                      {"type": "signature_delta", "signature": block.get("signature")}]
        elif kind == "tool_use":
            start = {**block, "input": {}}
            deltas = [{"type": "input_json_delta",
                       "partial_json": json.dumps(block.get("input") or {}, ensure_ascii=False)}]
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta", "usage": usage,
                   "delta": {"stop_reason": answer.get("stop_reason") or "end_turn",
                             "stop_details": answer.get("stop_details")}})
    events.append({"type": "message_stop"})
    return events


def _searches_note(searches: int | None, request: Request) -> str | None:
    """The note for web searches the model ran (a server tool passed in params): Anthropic bills
    each one apart from the tokens, and cost_usd counts tokens only."""
    if not searches:
        return None
    return (f"{searches} web search{'es' if searches != 1 else ''} not in the cost: "
            f"{request.spec.label} bills them apart from the tokens")


def thinking_signature(blocks: dict[Any, dict[str, Any]]) -> str:
    """The thinking blocks of an answer, in order, as the JSON list a ToolCall's signature holds
    for Claude (`_tools.anthropic_messages` puts them back at the head of the assistant turn)."""
    whole = []
    for _, block in sorted(blocks.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        if block["type"] == "thinking":
            block = {**block, "thinking": "".join(block["thinking"])}
        whole.append(block)
    return json.dumps(whole, ensure_ascii=False)


# ----- errors ------------------------------------------------------------------------------------


def _status_error(exc: anthropic.APIStatusError, spec: ModelSpec, host: str = DEFAULT_HOST,
                  credentials: str | None = None) -> LLMError:
    # An `event: error` inside a 200 stream arrives as APIStatusError with status 200: it has no
    # HTTP status of its own (none is shown or recorded), only its type.
    status = exc.status_code if exc.status_code >= 400 else None
    aws_type = (exc.response.headers.get("x-amzn-errortype") or "").partition(":")[0]
    type_kind = ERROR_TYPE_KINDS.get(exc.type or "")
    if status is not None and type_kind == "bad_request":
        # an HTTP answer's status says more than this catch-all type (a gateway's 401 whose body
        # says invalid_request_error is still a key problem); an in-stream event has only its type
        type_kind = None
    kind = type_kind or _AWS_KINDS.get(aws_type) or kind_of_status(status)
    if status == 529:
        kind = "overloaded"
    # (exc.message is the SDK's "503 <body> (path: /v1/messages)": the body's words suffice)
    message = exc.api_message or _plain_message(exc.body) or exc.response.reason_phrase or exc.message
    if kind == "bad_request" and _CREDIT_TOO_LOW in str(message).lower():
        kind = "billing"  # out of credit, though Anthropic types it invalid_request_error
    return api_error(spec, kind, one_line(message),
                     host=host_of(spec.base_url, host), status=status,
                     retry_after=retry_after_from_headers(exc.response.headers), response=exc.response,
                     credentials=credentials)


def _plain_message(body: Any) -> str | None:
    """The message of an error body that is not Anthropic's: Bedrock's `{"message": ...}`, a
    Google error (`{"error": {...}}`) that Vertex AI sent in a one-item list, or a proxy's text."""
    if isinstance(body, str):
        return body if body.strip() else None
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, dict):
        return None
    message = field(body, "message", "Message") or field(body.get("error"), "message")
    return message if isinstance(message, str) and message.strip() else None


def _map_error(exc: BaseException, spec: ModelSpec, default_host: str = DEFAULT_HOST,
               credentials: str | None = None) -> LLMError | None:
    if isinstance(exc, LLMError):
        return exc
    host = host_of(spec.base_url, default_host)
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderTimeoutError(f"{spec.label} at {host} did not answer in time.", provider=spec.provider)
    if isinstance(exc, anthropic.APIConnectionError):
        return connection_failed(spec, host, exc)
    if isinstance(exc, anthropic.APIStatusError):
        return _status_error(exc, spec, default_host, credentials)
    if isinstance(exc, anthropic.AnthropicError):
        return ProviderError(f"{spec.label}: {one_line(exc)}", provider=spec.provider)
    return map_transport_error(exc, spec, default_host)


# ----- the adapter -------------------------------------------------------------------------------


class AnthropicProvider(Provider):
    """Anthropic through `anthropic.AsyncAnthropic`."""

    name = "anthropic"
    #: the host named in errors when the client has no base URL of its own
    default_host = DEFAULT_HOST
    #: the `anthropic_version` a cloud takes in the body (None: the direct API's header only)
    body_version: str | None = None
    #: what a rejected sign-in names, and where to fix it (None: the API key and its variable)
    credentials: str | None = None

    def make_client(self, options: ClientOptions) -> anthropic.AsyncAnthropic:
        """An AsyncAnthropic client with the SDK's retries off (the runner retries)."""
        timeout = httpx2.Timeout(options.read_timeout, connect=options.connect_timeout)
        http_client = options.http_client or anthropic.DefaultAsyncHttpxClient(timeout=timeout, verify=tls_context())
        client = anthropic.AsyncAnthropic(
            api_key=options.api_key,
            base_url=options.base_url,  # None: ANTHROPIC_BASE_URL or the SDK's default
            max_retries=0,
            timeout=timeout,
            # the SDK's own default client (its limits and keep-alive socket options), hooked
            http_client=guard(http_client),
        )
        client.messages  # noqa: B018 - load the lazily imported resource module now, off the loop
        return client

    def stream(self, client: anthropic.AsyncAnthropic, request: Request) -> AsyncIterator[Event]:
        """Stream one Messages call; Finish comes only after message_stop."""
        return _stream(client, request, self.default_host, self.body_version)

    def map_error(self, exc: BaseException, spec: ModelSpec) -> LLMError | None:
        """The llmcells error for an anthropic / httpx exception, or None if exc is neither."""
        return _map_error(exc, spec, self.default_host, self.credentials)


ADAPTER = AnthropicProvider()
