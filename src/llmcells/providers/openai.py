"""OpenAI adapter: Chat Completions and the Responses API through the official `openai` SDK.

Also serves every OpenAI-compatible server added with `add_endpoint` (Ollama, vLLM, OpenRouter...),
which is why nothing here assumes that a usage chunk or OpenAI's own extras will arrive. Requests go
through the SDK's client (auth, headers, timeouts, HTTP errors); the body's events are read as the
JSON the server sent, by the SDK's rules for [DONE] and in-stream errors (see `_common.post_stream`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai

from .. import capabilities
from ..errors import LLMError, ProviderError, ProviderTimeoutError
from ..models import PROVIDERS, ModelSpec
from ..quotas import from_headers
from ..types import Event, Finish, PartDelta, PartEnd, PartStart, Request, ResponseInfo, Usage, UsageUpdate
from ..errors import kind_of_status
from ._common import (
    SdkStream,
    api_error,
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
from ._sse import END, json_of
from .base import ClientOptions, Provider

DEFAULT_HOST = PROVIDERS["openai"].api_host


# What this adapter reads of the SDK's stream types, and what it leaves alone on purpose (with
# why). tests/test_sdk_drift.py checks both against the installed SDK: an event type, finish or
# incomplete reason, status or usage field that a new SDK adds and neither names fails that test.
READS = {
    "responses_events": {"response.created", "response.in_progress", "response.queued",
                         "response.output_item.added", "response.output_item.done",
                         "response.output_text.delta",
                         "response.reasoning_summary_text.delta", "response.reasoning_text.delta",
                         "response.refusal.delta", "response.completed", "response.incomplete",
                         "response.failed", "error"},
    # each ends the answer as "ok" with the status or reason as given (cancelled: an error);
    # _INCOMPLETE_NOTES' reasons add a note
    "responses_status": {"completed", "incomplete", "cancelled", "failed", "queued", "in_progress"},
    "incomplete_reasons": {"max_output_tokens", "content_filter", "max_messages", "steered"},
    "responses_usage": {"input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details"},
    "responses_input_details": {"cached_tokens", "cache_write_tokens", "cache_write_tokens_details"},
    "chat_finish_reasons": {"stop", "length", "tool_calls", "content_filter", "function_call"},
    "chat_delta": {"content", "refusal", "tool_calls"},
    "chat_usage": {"prompt_tokens", "completion_tokens", "prompt_tokens_details",
                   "completion_tokens_details"},
    "chat_prompt_details": {"cached_tokens", "cache_write_tokens"},
    "chat_completion_details": {"reasoning_tokens"},
}
_HOSTED = "a hosted tool's progress: llmcells declares only function tools"
_WHOLE = "the same content arrives whole elsewhere (deltas, or response.output_item.done)"
IGNORES = {
    "responses_events": {
        "response.content_part.added": _WHOLE,
        "response.content_part.done": _WHOLE, "response.output_text.done": _WHOLE,
        "response.output_text.annotation.added": "annotations (citations) are not shown",
        "response.refusal.done": _WHOLE, "response.reasoning_text.done": _WHOLE,
        "response.reasoning_summary_text.done": _WHOLE,
        "response.reasoning_summary_part.added": _WHOLE, "response.reasoning_summary_part.done": _WHOLE,
        "response.function_call_arguments.delta": _WHOLE, "response.function_call_arguments.done": _WHOLE,
        "response.compaction.compacting": "server-side context compaction: progress only",
    "response.audio.delta": _HOSTED,
    "response.audio.done": _HOSTED,
    "response.audio.transcript.delta": _HOSTED,
    "response.audio.transcript.done": _HOSTED,
    "response.code_interpreter_call.completed": _HOSTED,
    "response.code_interpreter_call.in_progress": _HOSTED,
    "response.code_interpreter_call.interpreting": _HOSTED,
    "response.code_interpreter_call_code.delta": _HOSTED,
    "response.code_interpreter_call_code.done": _HOSTED,
    "response.file_search_call.completed": _HOSTED,
    "response.file_search_call.in_progress": _HOSTED,
    "response.file_search_call.searching": _HOSTED,
    "response.image_generation_call.completed": _HOSTED,
    "response.image_generation_call.generating": _HOSTED,
    "response.image_generation_call.in_progress": _HOSTED,
    "response.image_generation_call.partial_image": _HOSTED,
    "response.mcp_call.completed": _HOSTED,
    "response.mcp_call.failed": _HOSTED,
    "response.mcp_call.in_progress": _HOSTED,
    "response.mcp_call_arguments.delta": _HOSTED,
    "response.mcp_call_arguments.done": _HOSTED,
    "response.mcp_list_tools.completed": _HOSTED,
    "response.mcp_list_tools.failed": _HOSTED,
    "response.mcp_list_tools.in_progress": _HOSTED,
    "response.shell_call_command.added": _HOSTED,
    "response.shell_call_command.delta": _HOSTED,
    "response.shell_call_command.done": _HOSTED,
    "response.shell_call_output_content.delta": _HOSTED,
    "response.shell_call_output_content.done": _HOSTED,
    "response.web_search_call.completed": _HOSTED,
    "response.web_search_call.in_progress": _HOSTED,
    "response.web_search_call.searching": _HOSTED,
    "response.custom_tool_call_input.delta": _HOSTED,
    "response.custom_tool_call_input.done": _HOSTED,
    },
    "responses_usage": {"total_tokens": "the sum of input and output"},
    "chat_delta": {"role": "always the assistant", "audio": "audio output is not asked for",
                   "function_call": "the deprecated form of tool_calls, never asked for"},
    "chat_usage": {"total_tokens": "the sum of prompt and completion"},
    "chat_prompt_details": {"audio_tokens": "a breakdown of prompt_tokens",
                            "image_tokens": "a breakdown of prompt_tokens",
                            "text_tokens": "a breakdown of prompt_tokens"},
    "chat_completion_details": {"audio_tokens": "a breakdown of completion_tokens",
                                "text_tokens": "a breakdown of completion_tokens",
                                "accepted_prediction_tokens": "predicted outputs are not used",
                                "rejected_prediction_tokens": "predicted outputs are not used"},
}


# ----- usage -------------------------------------------------------------------------------------


def map_usage(raw: Any) -> Usage:
    """Normalise a Chat Completions `usage` or a Responses `response.usage` (object or dict).

    Both count cached input inside the input total and reasoning inside the output total already.
    """
    in_details = field(raw, "prompt_tokens_details", "input_tokens_details")
    out_details = field(raw, "completion_tokens_details", "output_tokens_details")
    # Responses splits cache writes by lifetime (cache_write_tokens_details: ttl_30m_tokens,
    # ttl_12h_tokens); their sum is every write, whichever of the two figures is given.
    by_ttl = field(in_details, "cache_write_tokens_details")
    ttl_sum = sum(count(by_ttl, k) for k in by_ttl) if isinstance(by_ttl, dict) else 0
    return Usage(
        input_tokens=count(raw, "prompt_tokens", "input_tokens"),
        cached_input_tokens=count(in_details, "cached_tokens"),
        cache_write_tokens=max(count(in_details, "cache_write_tokens"), ttl_sum),
        output_tokens=count(raw, "completion_tokens", "output_tokens"),
        reasoning_tokens=count(out_details, "reasoning_tokens"),
    )


# ----- requests ----------------------------------------------------------------------------------


def chat_body(request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON body of a streamed Chat Completions call, and its SDK request options."""
    messages: list[dict[str, str]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages += _rich.attach_to_last_user(_tools.chat_messages(request.messages), request,
                                          _rich.chat_parts)
    kwargs: dict[str, Any] = {
        "model": request.spec.name,
        "messages": messages,
        "stream": True,
        # Without this, OpenAI reports no usage at all on a stream.
        "stream_options": {"include_usage": True},
        **_rich.chat_schema(request),  # attachments above and the schema: see _rich.py
    }
    params = request.extra.get("params") or {}
    if _tools.declared(request):
        kwargs["tools"] = _tools.chat_tools(_tools.declared(request))
        # gpt-6-luna on Chat Completions takes function tools only with reasoning_effort "none"
        # (data/models.toml); the user's params= still win.
        kwargs.update(capabilities.of(request.spec).chat_tools_need)
    _sampling(kwargs, request, params)
    if request.max_tokens is not None:
        # OpenAI's (and Azure's) reasoning models refuse max_tokens; an OpenAI-compatible server
        # added with add_endpoint may know only max_tokens (Ollama's request type has no
        # max_completion_tokens, and drops it unread: the answer would not be capped).
        limit = "max_completion_tokens" if request.spec.provider in PROVIDERS else "max_tokens"
        kwargs[limit] = request.max_tokens
    return with_params(kwargs, params)


def _sampling(kwargs: dict[str, Any], request: Request, params: dict[str, Any]) -> None:
    """The request's temperature, if the model takes it (make_plan has already left out, with a
    note, one it refuses; this keeps a Request built by hand just as safe)."""
    if request.temperature is not None and capabilities.of(request.spec).accepts("temperature", params):
        kwargs["temperature"] = request.temperature


def responses_body(request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON body of a streamed Responses call, and its SDK request options."""
    kwargs: dict[str, Any] = {
        "model": request.spec.name,
        "input": _rich.attach_to_last_user(_tools.responses_input(request.messages), request,
                                           _rich.responses_parts),
        "stream": True,
        **_rich.responses_schema(request),
    }
    if _tools.declared(request):
        kwargs["tools"] = _tools.responses_tools(_tools.declared(request))
    if request.system:
        kwargs["instructions"] = request.system
    params = request.extra.get("params") or {}
    _sampling(kwargs, request, params)
    if request.max_tokens is not None:
        kwargs["max_output_tokens"] = request.max_tokens
    return with_params(kwargs, params)


# ----- streams -----------------------------------------------------------------------------------

#: the note of an answer that is the model's refusal (its text is kept as the answer)
_REFUSED = "refused: the model declined to answer (its refusal is the text)"
# How a Responses incomplete reason ended the answer, when the reason alone would not say it.
_INCOMPLETE_NOTES = {
    "max_messages": "stopped: the response reached the most messages it may hold",
    "steered": "stopped: the response was steered (redirected) before it finished",
}
# Endings that leave a short or empty answer with status "ok" (the call was answered and
# billed): without a note a cut or filtered answer, or an empty one, would not say why. Chat
# Completions says "length" and "content_filter", the Responses API the incomplete reasons
# "max_output_tokens" and "content_filter".
_FILTERED = "blocked: {}'s content filter stopped the answer (any text before it is kept)"


def _ending_note(spec: ModelSpec, reason: str, refused: bool, answered: bool) -> str | None:
    """The note of an answer that ended for this (finish or incomplete) reason, if any."""
    if refused:
        return _REFUSED
    if reason == "content_filter":
        return _FILTERED.format(spec.label)
    if reason in ("length", "max_output_tokens"):
        return max_tokens_note(answered)
    return _INCOMPLETE_NOTES.get(reason)


# Events arrive as the JSON objects the server sent (see post_stream): a missing field is a
# missing key, so every read below is a .get, and an OpenAI-compatible server that leaves a field
# out reads the same as one that sends null.

# The request option that the SDK's own create() methods set for these endpoints.
_SECURITY = {"security": {"bearer_auth": True}}


async def _open(client: openai.AsyncOpenAI, path: str, body: dict[str, Any],
                options: dict[str, Any], whole: Any = None) -> tuple[Any, Any]:
    """Send the request: the stream of its events and the response's rate-limit headers (whole:
    see post_stream)."""
    stream = await post_stream(client, path, body, {**_SECURITY, **options}, openai.AsyncStream,
                               _read_event, whole)
    limits = from_headers(stream.response)  # rate-limit headers, for quotas
    return stream, limits


def _read_event(name: str | None, data: bytes, response: Any) -> Any:
    """One SSE event of a Chat Completions or Responses stream, read as the openai SDK's stream
    reads it: `[DONE]` ends the stream, and an object with an "error" raises the SDK's APIError
    (it has no HTTP status: `_map_error` reads its code)."""
    if data[:6] == b"[DONE]":
        return END
    event = json_of(data)
    if isinstance(event, dict) and event.get("error"):
        error = event["error"]
        message = error.get("message") if isinstance(error, dict) else None
        if not message or not isinstance(message, str):
            message = "An error occurred during streaming"
        raise openai.APIError(message, response.request, body=error)
    return event


def _whole_chat(answer: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A whole `chat.completion` (from an OpenAI-compatible server that ignored "stream": true)
    as the chunks its stream would have sent: one with each choice's message as its delta and
    its finish_reason, then one with the usage. None if it holds no choices with a message.

    The document arrived whole, so it is a complete answer: a choice without a finish_reason
    reads as "stop", and one whose index isn't a number takes its place in the list. (Read as a
    cut stream, it was a connection error before any text, and the answered request was sent
    again.)"""
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices:
        return None
    streamed = []
    for place, choice in enumerate(choices):
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            return None
        delta = dict(message)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):  # a stream's tool-call pieces carry their index
            delta["tool_calls"] = [{**call, "index": i} if isinstance(call, dict) else call
                                   for i, call in enumerate(calls)]
        index = choice.get("index")
        streamed.append({"index": index if type(index) is int else place, "delta": delta,
                         "finish_reason": choice.get("finish_reason") or "stop"})
    head = {k: answer[k] for k in ("id", "model", "service_tier") if k in answer}
    chunks = [{**head, "choices": streamed}]
    if answer.get("usage"):
        chunks.append({**head, "choices": [], "usage": answer["usage"]})
    return chunks


#: a whole response's status -> the terminal event its stream would have ended with
_WHOLE_END = {"completed": "response.completed", "incomplete": "response.incomplete",
              "cancelled": "response.completed"}


def _whole_response(answer: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A whole `response` (from an OpenAI-compatible server that ignored "stream": true) as the
    events its stream would have sent: created, then each output item's text, refusal and
    reasoning as deltas and each function call as a finished item, in their order, then the
    terminal event of its status with the response (its usage). None if it is not a finished
    response (one still queued or in progress has no answer yet; a failed one holds an error
    object, which post_stream reads as the error it is)."""
    output = answer.get("output")
    end = _WHOLE_END.get(answer.get("status")) if isinstance(answer.get("status"), str) else None
    if answer.get("object") != "response" or not isinstance(output, list) or end is None:
        return None
    events: list[dict[str, Any]] = [{"type": "response.created", "response": answer}]
    for index, item in enumerate(output):
        if not isinstance(item, dict):
            continue
        kind, item_id = item.get("type"), item.get("id")
        if kind == "message":
            for part in item.get("content") or ():
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "output_text" and part.get("text"):
                    events.append({"type": "response.output_text.delta", "item_id": item_id,
                                   "output_index": index, "delta": part["text"]})
                elif part.get("type") == "refusal" and part.get("refusal"):
                    events.append({"type": "response.refusal.delta", "item_id": item_id,
                                   "output_index": index, "delta": part["refusal"]})
        elif kind == "reasoning":
            for key, event in (("summary", "response.reasoning_summary_text.delta"),
                               ("content", "response.reasoning_text.delta")):
                for n, part in enumerate(item.get(key) or ()):
                    if isinstance(part, dict) and isinstance(part.get("text"), str) and part["text"]:
                        events.append({"type": event, "item_id": item_id, "output_index": index,
                                       "summary_index" if key == "summary" else "content_index": n,
                                       "delta": part["text"]})
        elif kind == "function_call":
            events.append({"type": "response.output_item.done", "item": item, "output_index": index})
    events.append({"type": end, "response": answer})
    return events


# Chat Completions numbers only its tool calls: the answer and the reasoning are parts 0 and 1
# (items.show numbers them as they come), tool call i is part _CHAT_TOOL + i (the engine ends
# those at Finish, in that order).
_CHAT_TOOL = 2


async def _stream_chat(client: openai.AsyncOpenAI, request: Request) -> AsyncIterator[Event]:
    stream, limits = await _open(client, "/chat/completions", *chat_body(request),
                                 whole=_whole_chat)
    items = SdkStream(stream, request.spec, DEFAULT_HOST, close=stream.close)
    finish_reason: str | None = None
    info_sent = False
    tier: str | None = None
    tools_started: set[int] = set()
    refused = False
    try:
        async for chunk in items:
            if not isinstance(chunk, dict):
                continue
            get = chunk.get
            model, chunk_id = get("model"), get("id")
            # Every chunk carries service_tier (it sets the price); send it again if it changes.
            chunk_tier = get("service_tier") or tier
            if (not info_sent and (model or chunk_id)) or chunk_tier != tier:
                info_sent, tier = True, chunk_tier
                yield ResponseInfo(response_model=model or None, response_id=chunk_id or None,
                                   service_tier=tier, rate_limits=limits)
            for choice in get("choices") or ():
                if not isinstance(choice, dict) or (choice.get("index") or 0) != 0:
                    continue  # n > 1 is not modelled: keep the first choice
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    # Some OpenAI-compatible servers (vLLM, DeepSeek, OpenRouter) stream visible
                    # reasoning in a non-standard field.
                    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                    if isinstance(reasoning, str) and reasoning:
                        for shown in items.show("reasoning", reasoning):
                            yield shown
                    content = delta.get("content")
                    if isinstance(content, str) and content:
                        for shown in items.show("text", content):
                            yield shown
                    refusal = delta.get("refusal")  # the model's refusal, in place of an answer
                    if isinstance(refusal, str) and refusal:
                        refused = True
                        for shown in items.show("text", refusal):
                            yield shown
                    for call in delta.get("tool_calls") or ():
                        for event in _chat_tool_call(call, tools_started):
                            yield event
                if choice.get("finish_reason"):
                    # The model's own end; the usage chunk and [DONE] follow. A cut after this
                    # loses at most the usage, not the answer.
                    finish_reason = choice["finish_reason"]
                    items.finished()
            usage = get("usage")
            if usage:
                yield UsageUpdate(map_usage(usage))
    finally:
        await items.aclose()
    # The usage chunk comes after the finish_reason chunk, so Finish is only sent at the end.
    # The SDK ends silently on a cut stream (with or without [DONE]): finish_reason is the proof.
    # (Its tool calls end with it.)
    if finish_reason is None:
        raise items.cut_short()
    yield Finish(finish_reason, _ending_note(request.spec, finish_reason, refused,
                                             items.started("text") or bool(tools_started)))


def _chat_tool_call(call: Any, started: set[int]) -> list[Event]:
    """The part events of one `delta.tool_calls[i]` piece: the call's start the first time its
    index is seen (id and name usually come then), then its argument fragment, or an id or
    name that came late."""
    index = field(call, "index") or 0
    if type(index) is not int:  # (a server that sends the index as text)
        index = int(index) if str(index).isdigit() else 0
    fn = field(call, "function")
    call_id, name = field(call, "id") or None, field(fn, "name") or None
    args = field(fn, "arguments") or ""
    part = _CHAT_TOOL + index
    if index not in started:
        started.add(index)
        out: list[Event] = [PartStart(part, "tool_call", id=call_id, name=name)]
        if args:
            out.append(PartDelta(part, args))
        return out
    if args or call_id or name:
        return [PartDelta(part, args, id=call_id, name=name)]
    return []


def _response_info(response: Any, limits: Any = None) -> ResponseInfo:
    return ResponseInfo(response_model=field(response, "model") or None,
                        response_id=field(response, "id") or None,
                        service_tier=field(response, "service_tier"), rate_limits=limits)


async def _stream_responses(client: openai.AsyncOpenAI, request: Request) -> AsyncIterator[Event]:
    stream, limits = await _open(client, "/responses", *responses_body(request),
                                 whole=_whole_response)
    items = SdkStream(stream, request.spec, DEFAULT_HOST, close=stream.close)
    finish: Finish | None = None
    refused = False
    # The parts, numbered as they come (items.show, items.new_part): one text part for the
    # answer, one reasoning part, and one per function call. A call's part starts when its item
    # is added (the card says "calling NAME…" while the model writes the arguments), and takes
    # its arguments whole from the finished item, or from the finished response when no item
    # event finished it: the argument deltas would say the same again.
    calls: dict[Any, int] = {}  # open function calls: output_index and item id -> part index
    reasoning_at: tuple[Any, Any] | None = None  # the reasoning item and summary part last shown
    text_at: Any = None  # the message item whose text was last shown
    try:
        async for event in items:
            if finish is not None or not isinstance(event, dict):
                continue  # past the terminal event: read on to the body's end (see below)
            kind = event.get("type")
            if kind == "response.output_text.delta" or kind == "response.refusal.delta":
                # A refusal is kept as the answer's text, and noted as a refusal.
                delta = event.get("delta")
                if isinstance(delta, str) and delta:
                    if kind == "response.refusal.delta":
                        refused = True
                    # A second message of the response (a model's commentary before its final
                    # answer) starts a new paragraph rather than running on from the first.
                    if event.get("item_id") != text_at:
                        if text_at is not None:
                            delta = "\n\n" + delta
                        text_at = event.get("item_id")
                    for shown in items.show("text", delta):
                        yield shown
            elif kind in ("response.created", "response.in_progress", "response.queued"):
                yield _response_info(event.get("response"), limits)
            elif kind == "response.output_item.added":
                item = event.get("item")
                if field(item, "type") == "function_call":
                    part = items.new_part()
                    for key in (("index", event.get("output_index")), ("id", field(item, "id"))):
                        if key[1] is not None:
                            calls[key] = part
                    yield PartStart(part, "tool_call", id=field(item, "call_id", "id") or None,
                                    name=field(item, "name") or None)
            elif kind == "response.output_item.done":
                item = event.get("item")
                if field(item, "type") == "function_call":
                    for done in _end_call(items, calls, item, event.get("output_index")):
                        yield done
            elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
                delta = event.get("delta")
                if isinstance(delta, str) and delta:
                    # A summary comes in parts (each "**Heading**\n\nparagraph"), and a turn may
                    # reason in several items: a new one starts a new paragraph, as the API's
                    # own summary list reads, instead of running on from the last word.
                    where = (event.get("item_id"), event.get("summary_index", event.get("content_index")))
                    if where != reasoning_at and reasoning_at is not None:
                        delta = "\n\n" + delta
                    reasoning_at = where
                    for shown in items.show("reasoning", delta):
                        yield shown
            elif kind in ("response.completed", "response.incomplete"):
                response = event.get("response")
                response = response if isinstance(response, dict) else {}
                for index, item in enumerate(response.get("output") or ()):
                    if calls and field(item, "type") == "function_call":  # not ended by its item
                        for done in _end_call(items, calls, item, index, started_only=True):
                            yield done
                yield _response_info(response)
                if response.get("usage"):
                    yield UsageUpdate(map_usage(response["usage"]))
                status = response.get("status")
                if status == "cancelled":  # cancelled on OpenAI's side: no whole answer
                    raise ProviderError(f"{request.spec.label} cancelled the response before it was "
                                        "complete.", provider=request.spec.provider)
                if kind == "response.completed":
                    finish = Finish("refusal" if refused else (status or "completed"),
                                    _REFUSED if refused else None)
                else:
                    # e.g. max_output_tokens or content_filter: a normal, if short, ending.
                    reason = field(response.get("incomplete_details"), "reason") or "incomplete"
                    answered = items.started("text") or any(
                        field(item, "type") == "function_call" for item in response.get("output") or ())
                    finish = Finish(reason, _ending_note(request.spec, reason, refused, answered))
                # No `break`: the body ends right after this event, and reading it to its end
                # returns the connection to the pool and finishes the SDK's generators here.
                items.finished()
            elif kind == "response.failed":
                response = event.get("response")
                usage = field(response, "usage")
                if usage:  # what the failed response was billed for: the call's cost
                    yield UsageUpdate(map_usage(usage))
                raise _event_error(request.spec, field(response, "error"))
            elif kind == "error":
                raise _event_error(request.spec, event)
    finally:
        await items.aclose()
    if finish is None:
        raise items.cut_short()
    yield finish


def _end_call(items: SdkStream, calls: dict[Any, int], item: Any, output_index: Any,
              started_only: bool = False) -> list[Event]:
    """The events that end a finished function-call item: its arguments whole, then its end;
    a call whose start was not seen (a server that sends only finished items) starts here too.
    started_only: end only a call already started (the items of a finished response)."""
    part = calls.get(("id", field(item, "id")))
    if part is None and output_index is not None:
        part = calls.get(("index", output_index))
    out: list[Event] = []
    if part is None:
        if started_only:
            return out
        part = items.new_part()
        out.append(PartStart(part, "tool_call", id=field(item, "call_id", "id") or None,
                             name=field(item, "name") or None))
    else:
        for key in [k for k, v in calls.items() if v == part]:
            del calls[key]
    call_id, name = field(item, "call_id") or None, field(item, "name") or None
    if field(item, "arguments") or call_id or name:  # (a late id or name is taken as well)
        out.append(PartDelta(part, field(item, "arguments") or "", id=call_id, name=name))
    out.append(PartEnd(part))
    return out


def _event_error(spec: ModelSpec, error: Any) -> LLMError:
    """The error for a Responses `error` event or a `response.failed` response.error."""
    code = str(field(error, "code") or "")
    message = one_line(field(error, "message") or code or "the response failed")
    return _by_code(spec, code, message, status=None, type_=str(field(error, "type") or ""))


# Codes of an in-stream error or a failed response that blame the request (the prompt, an image,
# the context window): sent again unchanged, it fails the same way. (ResponseError.code's image
# codes all name the image: invalid_image_url, image_too_large, empty_image_file...)
_REQUEST_CODES = ("invalid_", "image_", "unsupported_", "empty_image", "failed_to_download_image",
                  "context_length_exceeded", "string_above_max_length")


def _by_code(spec: ModelSpec, code: str, message: str, status: int | None,
             type_: str = "") -> LLMError:
    """An error reported in a stream body (no HTTP status to go by): decide from its code (and
    its type, "invalid_request_error" when the request is at fault)."""
    if "rate_limit" in code:
        kind = "rate_limited"
    elif code == "insufficient_quota":  # out of credit, however it arrives
        kind = "billing"
    elif code in ("server_error", "internal_error") or "server_error" in message:
        kind = "server_error"
    elif "overloaded" in code or "overloaded" in message.lower():
        kind = "overloaded"
    elif code == "model_not_found":
        kind = "model_not_found"
    elif code.startswith(_REQUEST_CODES) or type_ == "invalid_request_error":
        kind = "bad_request"
    else:
        kind = "provider_error"
    return api_error(spec, kind, message, host=host_of(spec.base_url, DEFAULT_HOST), status=status)


# ----- errors ------------------------------------------------------------------------------------


def _status_error(exc: openai.APIStatusError, spec: ModelSpec) -> LLMError:
    status = exc.status_code
    body = exc.body if isinstance(exc.body, dict) else {}
    # exc.message is "Error code: N - {whole body}"; the provider's own sentence is in the body.
    message = one_line(body.get("message") or exc.message)
    code = str(exc.code or body.get("code") or "")
    kind = kind_of_status(status)
    if code == "content_filter":
        message = _filtered_prompt(body) or message
    if code == "invalid_api_key":
        kind = "authentication"
    elif code == "insufficient_quota":
        # a 429 that is no rate limit: the account is out of credit, and waiting will not help
        kind = "billing"
    elif code == "model_not_found" and status != 403:
        # (a 403 with this code is "Project `proj_…` does not have access to model `…`": the
        # model exists, the project may not use it; "denied" says that, with OpenAI's sentence)
        kind = "model_not_found"
    elif kind == "server_error" and "overloaded" in message.lower():
        kind = "overloaded"
    elif kind in ("bad_request", "provider_error") and not 400 <= status < 500:
        return _by_code(spec, code, message, status)
    retry_after = retry_after_from_headers(exc.response.headers)
    if retry_after is None and status == 429:
        retry_after = _reset_wait(exc.response.headers)
    err = api_error(spec, kind, message, host=host_of(spec.base_url, DEFAULT_HOST), status=status,
                    retry_after=retry_after, response=exc.response)
    return err


def _filtered_prompt(error: dict[str, Any]) -> str | None:
    """Azure's 400 `content_filter` error in one line: which categories of its content filter
    the prompt tripped (innererror.content_filter_result), and what to do. Its own message is
    three sentences and a link, cut off before it says anything specific."""
    verdicts = field(field(error, "innererror"), "content_filter_result")
    if not isinstance(verdicts, dict):
        return None
    hits = []
    for category, verdict in verdicts.items():
        if isinstance(verdict, dict) and verdict.get("filtered"):
            level = verdict.get("severity") or ("detected" if verdict.get("detected") else "")
            hits.append(f"{category}: {level}" if level and level != "safe" else str(category))
    found = f" ({', '.join(hits)})" if hits else ""
    return one_line(f"the content filter blocked the prompt{found}; change the prompt, or the "
                    "deployment's content filter")


def _reset_wait(headers: Any) -> float | None:
    """Seconds until the exhausted rate limit of a 429 resets, from its `x-ratelimit-remaining-*`
    and `x-ratelimit-reset-*` headers ("1s", "6m0s"), when no retry-after header says so: OpenAI
    often sends none, and without this a per-day limit was retried with backoff, and refused,
    until the attempts ran out."""
    limits = from_headers(headers) or {}
    now = time.time()
    waits = [limits[f"{what}_reset_at"] - now for what in ("requests", "tokens")
             if limits.get(f"{what}_remaining") == 0 and limits.get(f"{what}_reset_at") is not None]
    return max(max(waits), 0.0) if waits else None


def _map_error(exc: BaseException, spec: ModelSpec) -> LLMError | None:
    if isinstance(exc, LLMError):
        return exc
    host = host_of(spec.base_url, DEFAULT_HOST)
    if isinstance(exc, openai.APITimeoutError):
        return ProviderTimeoutError(f"{spec.label} at {host} did not answer in time.",
                                    provider=spec.provider)
    if isinstance(exc, openai.APIConnectionError):
        return connection_failed(spec, host, exc)
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc, spec)
    if isinstance(exc, openai.APIError):
        # An error object inside an SSE stream (no HTTP status): the SDK raises APIError.
        body = exc.body if isinstance(exc.body, dict) else {}
        code = str(exc.code or exc.type or body.get("type") or "")
        return _by_code(spec, code, one_line(exc.message), status=None,
                        type_=str(exc.type or body.get("type") or ""))
    if isinstance(exc, openai.OpenAIError):
        return ProviderError(f"{spec.label}: {one_line(exc)}", provider=spec.provider)
    return map_transport_error(exc, spec, DEFAULT_HOST)


# ----- the adapter -------------------------------------------------------------------------------


class OpenAIProvider(Provider):
    """OpenAI (and OpenAI-compatible servers) through `openai.AsyncOpenAI`."""

    name = "openai"

    def make_client(self, options: ClientOptions) -> openai.AsyncOpenAI:
        """An AsyncOpenAI client with the SDK's retries off (the runner retries)."""
        timeout = httpx2.Timeout(options.read_timeout, connect=options.connect_timeout)
        client = openai.AsyncOpenAI(
            api_key=options.api_key,
            base_url=options.base_url,  # None: OPENAI_BASE_URL or the SDK's default
            max_retries=0,
            timeout=timeout,
            # the SDK's own default client (its limits and redirects), with our response hook
            http_client=guard(options.http_client
                              or openai.DefaultAsyncHttpxClient(timeout=timeout, verify=tls_context())),
        )
        # The SDK imports its resource modules on first attribute access; the engine builds
        # clients off the event loop, so load them here, not mid-request.
        client.chat.completions  # noqa: B018
        return client

    def finish_client(self, client: openai.AsyncOpenAI) -> None:
        """The Responses API's modules (about 50 ms), loaded after the first chat call's client."""
        client.responses  # noqa: B018

    def stream(self, client: openai.AsyncOpenAI, request: Request) -> AsyncIterator[Event]:
        """Chat Completions, or the Responses API when the model's api is "responses"."""
        if request.spec.api == "responses":
            return _stream_responses(client, request)
        return _stream_chat(client, request)

    def map_error(self, exc: BaseException, spec: ModelSpec) -> LLMError | None:
        """The llmcells error for an openai / httpx exception, or None if exc is neither."""
        return _map_error(exc, spec)


ADAPTER = OpenAIProvider()
