"""Unit tests of the three provider adapters: usage normalisation, cut streams, error mapping,
closing on cancellation. Everything goes through an injected httpx MockTransport; no network."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx2
import pytest

from llmcells.errors import (
    AuthenticationError,
    BadRequestError,
    BillingError,
    ConnectionFailedError,
    IncompleteStreamError,
    OverloadedError,
    ProviderError,
    RateLimitError,
    ServerError,
)
from llmcells.models import ModelSpec
from llmcells.providers import ClientOptions, get_provider
from llmcells.providers import anthropic as anthropic_adapter
from llmcells.providers import google as google_adapter
from llmcells.providers import openai as openai_adapter
from llmcells.types import Finish, Message, PartDelta, PartStart, Request, Usage, UsageUpdate

from _parts import reasoning_of, text_of, tool_calls_of

KEY = "sk-unit-test-key-000000"


# ----- map_usage --------------------------------------------------------------------------------


def test_openai_usage_chat_with_cache_and_reasoning():
    raw = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
           "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
           "completion_tokens_details": {"reasoning_tokens": 256}}
    assert openai_adapter.map_usage(raw) == Usage(
        input_tokens=1200, cached_input_tokens=1024, cache_write_tokens=0,
        output_tokens=300, reasoning_tokens=256)


def test_openai_usage_responses_with_cache_write():
    raw = {"input_tokens": 33, "input_tokens_details": {"cache_write_tokens": 20, "cached_tokens": 5},
           "output_tokens": 11, "output_tokens_details": {"reasoning_tokens": 4}, "total_tokens": 44}
    assert openai_adapter.map_usage(raw) == Usage(33, 5, 20, 11, 4)


def test_openai_usage_missing_fields_and_sdk_objects():
    # OpenAI-compatible servers often send only the totals, or nulls.
    assert openai_adapter.map_usage({"prompt_tokens": 7, "completion_tokens": None}) == Usage(7, 0, 0, 0, 0)
    assert openai_adapter.map_usage({}) == Usage()
    from openai.types import CompletionUsage

    sdk = CompletionUsage.model_validate({"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12,
                                          "completion_tokens_details": {"reasoning_tokens": 2}})
    assert openai_adapter.map_usage(sdk) == Usage(9, 0, 0, 3, 2)


def test_anthropic_usage_adds_cache_reads_and_writes_to_input():
    raw = {"input_tokens": 10, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 500,
           "output_tokens": 42}
    assert anthropic_adapter.map_usage(raw) == Usage(
        input_tokens=2510, cached_input_tokens=2000, cache_write_tokens=500, output_tokens=42,
        reasoning_tokens=0)


def test_anthropic_usage_missing_fields():
    assert anthropic_adapter.map_usage({"output_tokens": 4}) == Usage(0, 0, 0, 4, 0)
    assert anthropic_adapter.map_usage({"input_tokens": 10, "cache_read_input_tokens": None}) == Usage(10)


def test_anthropic_message_delta_merges_with_message_start():
    seen: dict[str, int] = {}
    anthropic_adapter.merge_usage(seen, {"input_tokens": 10, "cache_read_input_tokens": 90,
                                          "cache_creation_input_tokens": 0, "output_tokens": 1})
    # An older-style message_delta that reports only output keeps the input counts from the start.
    merged = anthropic_adapter.merge_usage(seen, {"output_tokens": 57, "input_tokens": None})
    assert anthropic_adapter.map_usage(merged) == Usage(100, 90, 0, 57, 0)


#: token counts no API sends, as a buggy proxy or a hostile server might: each is left out
UNREADABLE_COUNTS = ["many", {"n": 1}, [3], float("inf"), -5, True, "\u00b2"]


@pytest.mark.parametrize("bad", UNREADABLE_COUNTS, ids=repr)
def test_a_token_count_that_cannot_be_read_is_left_out_and_the_answer_kept(bad):
    """A count that is not a whole number of at least 0: Anthropic's adapter failed the call on
    it (int() of text, an object, infinity), losing its answer; the others read infinity as an
    OverflowError, and every adapter took a negative count, which priced the call below zero.
    Now each is left out as an absent count is: the answer stays, and a count already read
    (message_start's input) is kept."""
    body = _sse(ANTHROPIC_START, ANTHROPIC_BLOCK, _anthropic_text("Bonjour"),
                {"type": "content_block_stop", "index": 0},
                {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                 "usage": {"input_tokens": bad, "output_tokens": bad}},
                {"type": "message_stop"}, named=True)
    events, exc, _ = asyncio.run(_collect("anthropic", _serve(body)))
    assert exc is None and _text(events) == "Bonjour" and events[-1] == Finish("end_turn")
    assert [e.usage for e in events if isinstance(e, UsageUpdate)][-1] == Usage(10)

    chat = _sse(_chat_chunk("Bonjour"), _chat_chunk(finish="stop"),
                _chat_chunk(choices=False, usage={"prompt_tokens": 3, "completion_tokens": bad}))
    events, exc, _ = asyncio.run(_collect("openai", _serve(chat)))
    assert exc is None and _text(events) == "Bonjour"
    assert [e.usage for e in events if isinstance(e, UsageUpdate)][-1] == Usage(3)

    assert google_adapter.map_usage({"promptTokenCount": 5, "candidatesTokenCount": bad,
                                     "thoughtsTokenCount": bad}) == Usage(5)


_DEEP = b"[" * 100_000 + b"]" * 100_000  # nested deeper than Python's JSON parser can go


@pytest.mark.parametrize("kind", ["openai", "anthropic", "google"])
def test_an_event_nested_too_deeply_is_a_cut_stream_that_keeps_its_text(kind):
    """json.loads raises RecursionError on such an event, not the JSONDecodeError of broken
    JSON: it reached the user as "RecursionError: maximum recursion depth exceeded while
    decoding a JSON array from a unicode string". Now it is read as the garbled event it is."""
    head = {"openai": _sse(_chat_chunk("Hi")),
            "anthropic": _sse(ANTHROPIC_START, ANTHROPIC_BLOCK, _anthropic_text("Hi"), named=True),
            "google": _sse(_gemini_chunk("Hi"))}[kind]
    for tail in (b"data: " + _DEEP + b"\n\n", b'data: {"type": "x", "a": ' + _DEEP + b"}\n\n"):
        events, exc, err = asyncio.run(_collect(kind, _serve(head + tail)))
        assert _text(events) == "Hi" and isinstance(err, IncompleteStreamError), (exc, err)


def test_a_gemini_error_body_nested_too_deeply_is_one_line():
    """google-genai parses an error body with json.loads, so the RecursionError came from the
    SDK itself: the engine names it in one line."""
    from llmcells.engine import as_llm_error

    events, exc, err = asyncio.run(_collect("google", _serve(
        _DEEP, status=500, headers={"content-type": "application/json"})))
    assert events == [] and isinstance(exc, RecursionError) and err is None
    mapped = as_llm_error(exc, SPECS["google"])
    assert isinstance(mapped, ProviderError)
    assert str(mapped) == "Google Gemini sent a body nested too deeply to read."


#: each provider's whole answer, up to its terminal event
_WHOLE = {
    "openai-responses": lambda: _sse(_text_delta("Hi"), _responses_event(
        "response.completed", response=_response_obj("completed", RESP_USAGE))),
    "anthropic": lambda: _sse(ANTHROPIC_START, ANTHROPIC_BLOCK, _anthropic_text("Hi"),
                              {"type": "content_block_stop", "index": 0},
                              {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                               "usage": {"output_tokens": 2}},
                              {"type": "message_stop"}, named=True),
    "google": lambda: _sse(_gemini_chunk("Hi", finish="STOP")),
}


@pytest.mark.parametrize("kind", sorted(_WHOLE))
@pytest.mark.parametrize("junk", [b"data: {broken\n\n", b"event: message_stop\ndata: {broken\n\n"],
                         ids=["nameless", "named"])
def test_a_garbled_event_after_the_answers_end_leaves_the_whole_answer(kind, junk):
    """A proxy that appends junk after the terminal event (response.completed, message_stop, a
    finishReason): the answer was recorded as cut ("incomplete"), as a cut there already was not."""
    events, exc, err = asyncio.run(_collect(kind, _serve(_WHOLE[kind]() + junk)))
    assert exc is None and _text(events) == "Hi" and isinstance(events[-1], Finish), (exc, err)


@pytest.mark.parametrize("code", [None, "503", 99, True], ids=repr)
def test_a_gemini_error_object_without_a_status_code_is_a_server_error(code):
    """An error object in place of a chunk whose code is no HTTP status (another provider's
    shape from a proxy): google-genai compared it with numbers, and the call failed with
    "TypeError: '<=' not supported between instances of 'int' and 'NoneType'"."""
    error: dict[str, Any] = {"message": "upstream overloaded", "status": "UNAVAILABLE"}
    if code is not None:
        error["code"] = code
    body = _sse(_gemini_chunk("Hi")) + b"data: " + json.dumps({"error": error}).encode() + b"\n\n"
    events, exc, err = asyncio.run(_collect("google", _serve(body)))
    assert _text(events) == "Hi" and isinstance(err, ServerError), (exc, err)
    assert "upstream overloaded" in str(err) and "\n" not in str(err)


def test_a_token_count_sent_as_a_float_or_digits_is_read():
    assert anthropic_adapter.map_usage({"input_tokens": 10.0, "output_tokens": " 42 "}) == Usage(10, 0, 0, 42, 0)
    assert openai_adapter.map_usage({"prompt_tokens": "7", "completion_tokens": 3.9}) == Usage(7, 0, 0, 3, 0)


def test_gemini_usage_thoughts_and_cache():
    raw = {"promptTokenCount": 1000, "cachedContentTokenCount": 800, "candidatesTokenCount": 80,
           "thoughtsTokenCount": 35, "totalTokenCount": 1115}
    assert google_adapter.map_usage(raw) == Usage(
        input_tokens=1000, cached_input_tokens=800, cache_write_tokens=0, output_tokens=115,
        reasoning_tokens=35)


def test_gemini_usage_missing_candidates_and_sdk_object():
    # gemini-2.0 first chunks: no candidatesTokenCount at all; Vertex first chunk: no counts.
    assert google_adapter.map_usage({"promptTokenCount": 15, "totalTokenCount": 15}) == Usage(15)
    assert google_adapter.map_usage({"trafficType": "ON_DEMAND"}) == Usage()
    from google.genai import types

    sdk = types.GenerateContentResponseUsageMetadata(
        prompt_token_count=18, candidates_token_count=None, thoughts_token_count=35,
        tool_use_prompt_token_count=4)
    assert google_adapter.map_usage(sdk) == Usage(22, 0, 0, 35, 35)


# ----- a tiny streaming server -------------------------------------------------------------------


class Body(httpx2.AsyncByteStream):
    """A response body sent in pieces; remembers whether it was closed; can hang after the pieces."""

    def __init__(self, pieces: list[bytes], hang: bool = False, fail: BaseException | None = None):
        self.pieces, self.hang, self.fail, self.closed = pieces, hang, fail, False

    async def __aiter__(self):
        for piece in self.pieces:
            yield piece
            await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        if self.hang:  # until closed, as a real connection's read ends when its response is
            while not self.closed:
                await asyncio.sleep(0.01)
            raise httpx2.ReadError("the response was closed")

    async def aclose(self) -> None:
        self.closed = True


SPECS = {
    "openai": ModelSpec("openai", "openai", "gpt-4o-mini", "gpt-4o-mini"),
    "openai-responses": ModelSpec("openai", "openai", "gpt-5.5", "gpt-5.5", api="responses"),
    "anthropic": ModelSpec("anthropic", "anthropic", "claude-haiku-5-5", "claude-haiku-5-5"),
    "google": ModelSpec("google", "google", "gemini-3.5-flash-lite", "gemini-3.5-flash-lite"),
}


def _serve(body: Any, status: int = 200, headers: dict[str, str] | None = None):
    """A handler returning one response; body is bytes or a Body; also records requests."""
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if isinstance(body, BaseException):
            raise body
        hdrs = {"content-type": "text/event-stream", **(headers or {})}
        if isinstance(body, Body):
            return httpx2.Response(status, headers=hdrs, stream=body)
        return httpx2.Response(status, headers=hdrs, content=body)

    handler.seen = seen  # type: ignore[attr-defined]
    return handler


async def _collect(kind: str, handler, *, base_url: str | None = None, **request_kw: Any):
    spec = SPECS[kind]
    if base_url:
        spec = ModelSpec(spec.provider, spec.adapter, spec.name, spec.requested, api=spec.api,
                         base_url=base_url)
    adapter = get_provider(spec.adapter)
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
        client = adapter.make_client(ClientOptions(base_url=base_url, api_key=KEY, http_client=http))
        events: list[Any] = []
        try:
            async for event in adapter.stream(client, Request(spec, [Message("user", "hi")], **request_kw)):
                events.append(event)
        except Exception as exc:  # noqa: BLE001
            return events, exc, adapter.map_error(exc, spec)
    return events, None, None


def _text(events) -> str:
    return text_of(events)


def _sse(*events: dict[str, Any], named: bool = False, sep: str = "\n") -> bytes:
    out = ""
    for e in events:
        if named:
            out += f"event: {e['type']}{sep}"
        out += f"data: {json.dumps(e)}{sep}{sep}"
    return out.encode()


def _chat_chunk(content: str | None = None, finish: str | None = None, usage: dict | None = None,
                choices: bool = True) -> dict[str, Any]:
    chunk: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                             "model": "gpt-4o-mini-2024-07-18", "choices": [], "usage": usage}
    if choices:
        chunk["choices"] = [{"index": 0, "delta": {"content": content} if content is not None else {},
                             "finish_reason": finish}]
    return chunk


ANTHROPIC_START = {"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5-20251001",
    "content": [], "stop_reason": None, "stop_sequence": None,
    "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
              "output_tokens": 1}}}
ANTHROPIC_BLOCK = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}


def _anthropic_text(text: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}


def _gemini_chunk(text: str, finish: str | None = None, thought: bool = False) -> dict[str, Any]:
    part: dict[str, Any] = {"text": text}
    if thought:
        part["thought"] = True
    cand: dict[str, Any] = {"content": {"parts": [part], "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return {"candidates": [cand], "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2},
            "modelVersion": "gemini-3.5-flash-lite", "responseId": "r1"}


def _responses_event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "sequence_number": 0, **fields}


def _response_obj(status: str, usage: dict | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "created_at": 1, "model": "gpt-5.5-2026-04-23",
            "status": status, "output": [], "parallel_tool_calls": True, "tool_choice": "auto",
            "tools": [], "usage": usage, **extra}


RESP_USAGE = {"input_tokens": 11, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 5,
              "output_tokens_details": {"reasoning_tokens": 3}, "total_tokens": 16}


def _text_delta(delta: str) -> dict[str, Any]:
    return _responses_event("response.output_text.delta", item_id="m", output_index=0,
                            content_index=0, delta=delta, logprobs=[])


# ----- cut streams -> IncompleteStreamError ------------------------------------------------------


CUT_STREAMS = {
    # OpenAI chat: text, no finish_reason, no [DONE]: the SDK ends silently.
    "openai-chat-no-finish": ("openai", _sse(_chat_chunk("He"), _chat_chunk("l"))),
    # ...and cut in the middle of an event.
    "openai-chat-mid-event": ("openai", _sse(_chat_chunk("Hel")) + b'data: {"id":"chatcmpl-1","obj'),
    "openai-responses-no-completed": ("openai-responses", _sse(
        _responses_event("response.created", response=_response_obj("in_progress")),
        _text_delta("Hel"), named=True)),
    "anthropic-no-message-stop": ("anthropic", _sse(
        ANTHROPIC_START, ANTHROPIC_BLOCK, _anthropic_text("Hel"), named=True)),
    "anthropic-after-message-delta": ("anthropic", _sse(
        ANTHROPIC_START, ANTHROPIC_BLOCK, _anthropic_text("Hel"),
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
        named=True)),
    # An event whose JSON is garbled: openai/anthropic let json.JSONDecodeError through.
    "openai-chat-malformed-event": ("openai", _sse(_chat_chunk("Hel")) + b"data: {not json}\n\n"),
    "anthropic-malformed-event": ("anthropic", _sse(ANTHROPIC_START, ANTHROPIC_BLOCK, _anthropic_text("Hel"),
                                                    named=True) + b"event: content_block_delta\ndata: {oops\n\n"),
    "google-no-finish-reason": ("google", _sse(_gemini_chunk("Hel"), sep="\r\n")),
    # Gemini cut mid-JSON: the SDK raises UnknownApiResponseError, mapped to IncompleteStreamError.
    "google-mid-json": ("google", _sse(_gemini_chunk("Hel"), sep="\r\n") + b'data: {"candidates": [{"con'),
}


@pytest.mark.parametrize("kind,body", list(CUT_STREAMS.values()), ids=list(CUT_STREAMS))
def test_cut_stream_is_incomplete_and_keeps_text(kind: str, body: bytes):
    events, exc, mapped = asyncio.run(_collect(kind, _serve(body)))
    assert _text(events) == "Hel"  # the partial answer was yielded before the error
    assert not any(isinstance(e, Finish) for e in events)
    assert isinstance(mapped, IncompleteStreamError), (exc, mapped)
    assert "ended before it was complete" in mapped.message
    assert mapped.provider == SPECS[kind].provider


CONNECTION_CUT = {
    "openai": _sse(_chat_chunk("Hel")),
    "openai-responses": _sse(_responses_event("response.created", response=_response_obj("in_progress")),
                             _text_delta("Hel"), named=True),
    "anthropic": _sse(ANTHROPIC_START, ANTHROPIC_BLOCK, _anthropic_text("Hel"), named=True),
    "google": _sse(_gemini_chunk("Hel"), sep="\r\n"),
}


@pytest.mark.parametrize("kind", list(CONNECTION_CUT))
def test_connection_closed_mid_body_is_incomplete(kind: str):
    """The peer closing the connection mid-body (incomplete chunked read) after some events is a
    cut answer, not a failure to connect (openai wraps it in APIConnectionError, the others don't)."""
    body = Body([CONNECTION_CUT[kind]], fail=httpx2.RemoteProtocolError(
        "peer closed connection without sending complete message body (incomplete chunked read)"))
    events, exc, mapped = asyncio.run(_collect(kind, _serve(body)))
    assert _text(events) == "Hel"
    assert isinstance(mapped, IncompleteStreamError), (exc, mapped)


# ----- terminal events ---------------------------------------------------------------------------


def test_openai_chat_finish_after_usage_chunk_and_reasoning_extra():
    body = _sse({**_chat_chunk(), "choices": [{"index": 0, "delta": {"reasoning_content": "think"},
                                               "finish_reason": None}]},
                _chat_chunk("Hi"), _chat_chunk(finish="stop"),
                _chat_chunk(choices=False, usage={"prompt_tokens": 3, "completion_tokens": 2})) + b"data: [DONE]\n\n"
    events, exc, _ = asyncio.run(_collect("openai", _serve(body)))
    assert exc is None
    assert reasoning_of(events) == "think"
    assert isinstance(events[-2], UsageUpdate) and events[-2].usage == Usage(3, 0, 0, 2, 0)
    assert events[-1] == Finish("stop")


@pytest.mark.parametrize("kind", ["openai", "openai-responses", "anthropic"])
def test_pass_through_params_go_to_the_body_headers_query_and_timeout(kind: str):
    # The openai and anthropic adapters send through the SDK's own post(): every param is a body
    # field except the create() keywords that are request options or headers.
    params = {"extra_body": {"vendor_flag": True, "top_p": 0.5}, "seed": 7, "store": False, "top_p": 0.9,
              "extra_headers": {"X-Trace": "t1"}, "extra_query": {"api-version": "2"}, "timeout": 30}
    if kind == "anthropic":
        params["workspace_id"] = "wrkspc_1"
    handler = _serve(b"")
    asyncio.run(_collect(kind, handler, extra={"params": params}))
    sent = handler.seen[0]
    body = json.loads(sent.content)
    assert body["seed"] == 7 and body["store"] is False and body["vendor_flag"] is True
    assert body["top_p"] == 0.5  # extra_body wins over a named field, as the SDK's extra_json does
    assert not {"extra_body", "extra_headers", "extra_query", "timeout", "workspace_id"} & set(body)
    assert sent.headers["x-trace"] == "t1" and sent.url.params["api-version"] == "2"
    assert sent.extensions["timeout"]["read"] == 30
    if kind == "anthropic":
        assert sent.headers["anthropic-workspace-id"] == "wrkspc_1"
    # The same headers as the SDK's typed create() sends (auth, version, user agent...).
    typed = _serve(b"")

    async def via_create() -> None:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(typed)) as http:
            client = get_provider(SPECS[kind].adapter).make_client(ClientOptions(base_url=None, api_key=KEY,
                                                                             http_client=http))
            create = {"openai": lambda **kw: client.chat.completions.create(messages=[], **kw),
                      "openai-responses": lambda **kw: client.responses.create(input="hi", **kw),
                      "anthropic": lambda **kw: client.messages.create(messages=[], max_tokens=1, **kw)}[kind]
            stream = await create(model="m", stream=True, extra_headers={"X-Trace": "t1"})
            await stream.close()

    asyncio.run(via_create())
    # (anthropic's typed methods open an OpenTelemetry span of their own and send its context,
    # traceparent, once a tracer provider is set: the OTel tests set one for the whole process)
    ignore = {"content-length", "x-stainless-retry-count", "x-stainless-read-timeout", "x-stainless-timeout",
              "anthropic-workspace-id", "traceparent", "tracestate"}
    assert ({k: v for k, v in sent.headers.items() if k not in ignore}
            == {k: v for k, v in typed.seen[0].headers.items() if k not in ignore})
    assert KEY in (sent.headers.get("authorization", "") + sent.headers.get("x-api-key", ""))


def test_openai_compatible_server_that_leaves_fields_out():
    # Some compatible servers send no `index`, `id` or `model`, and a null delta on the last chunk.
    body = _sse({"choices": [{"delta": {"content": "Hi"}}]},
                {"choices": [{"delta": None, "finish_reason": "stop"}]}, {"choices": ["junk"]})
    events, exc, _ = asyncio.run(_collect("openai", _serve(body), base_url="http://localhost:8000/v1"))
    assert exc is None and _text(events) == "Hi" and events[-1] == Finish("stop")


def test_openai_compatible_server_without_usage_or_done():
    # A server that ends right after the finish_reason chunk, without [DONE] or usage, is complete.
    body = _sse(_chat_chunk("Hi"), _chat_chunk(finish="stop"))
    events, exc, _ = asyncio.run(_collect("openai", _serve(body), base_url="http://localhost:11434/v1"))
    assert exc is None and _text(events) == "Hi" and events[-1] == Finish("stop")
    assert not any(isinstance(e, UsageUpdate) for e in events)


def test_responses_incomplete_is_a_normal_short_ending():
    body = _sse(_responses_event("response.created", response=_response_obj("in_progress")),
                _text_delta("Hel"),
                _responses_event("response.reasoning_summary_text.delta", item_id="r", output_index=0,
                                 summary_index=0, delta="thinking"),
                _responses_event("response.incomplete", response=_response_obj(
                    "incomplete", RESP_USAGE, incomplete_details={"reason": "max_output_tokens"})),
                named=True)
    events, exc, _ = asyncio.run(_collect("openai-responses", _serve(body)))
    assert exc is None and _text(events) == "Hel"
    assert reasoning_of(events) == "thinking"
    assert [e.usage for e in events if isinstance(e, UsageUpdate)][-1] == Usage(11, 0, 0, 5, 3)
    assert events[-1].reason == "max_output_tokens" and events[-1].note.startswith("cut short")


def test_responses_failed_and_error_events_raise():
    failed = _sse(_responses_event("response.created", response=_response_obj("in_progress")),
                  _responses_event("response.failed", response=_response_obj(
                      "failed", error={"code": "server_error", "message": "The server had an error."})),
                  named=True)
    events, exc, mapped = asyncio.run(_collect("openai-responses", _serve(failed)))
    assert isinstance(mapped, ServerError) and mapped.retryable
    billed = _sse(_responses_event("response.failed", response=_response_obj(
        "failed", RESP_USAGE, error={"code": "server_error", "message": "The server had an error."})),
        named=True)
    events, exc, mapped = asyncio.run(_collect("openai-responses", _serve(billed)))
    assert isinstance(mapped, ServerError)  # and the usage the failed response reports is read
    assert [e.usage for e in events if isinstance(e, UsageUpdate)] == [Usage(11, 0, 0, 5, 3)]

    flat = _sse(_responses_event("response.created", response=_response_obj("in_progress")),
                _responses_event("error", code="invalid_prompt", message="Bad prompt.", param=None),
                named=True)
    _, exc, mapped = asyncio.run(_collect("openai-responses", _serve(flat)))
    assert isinstance(mapped, BadRequestError) and not mapped.retryable and "Bad prompt." in mapped.message


def _function_call_events(done_item: bool = True, output: bool = False) -> list[dict[str, Any]]:
    """A Responses stream of one function call, as the API sends it: the item added, its
    argument deltas and their end, the item done (if done_item), then the completed response
    (with the call among its output items, if output)."""
    added = {"id": "fc_1", "type": "function_call", "status": "in_progress", "arguments": "",
             "call_id": "call_1", "name": "get_weather"}
    whole = {**added, "status": "completed", "arguments": '{"city":"Oslo"}'}
    events = [_responses_event("response.created", response=_response_obj("in_progress")),
              _responses_event("response.output_item.added", item=added, output_index=0)]
    events += [_responses_event("response.function_call_arguments.delta", item_id="fc_1",
                                output_index=0, delta=piece) for piece in ('{"city"', ':"Oslo"}')]
    events.append(_responses_event("response.function_call_arguments.done", item_id="fc_1",
                                   output_index=0, name="get_weather", arguments='{"city":"Oslo"}'))
    if done_item:
        events.append(_responses_event("response.output_item.done", item=whole, output_index=0))
    events.append(_responses_event("response.completed", response=_response_obj(
        "completed", RESP_USAGE, output=[whole] if output else [])))
    return events


@pytest.mark.parametrize("done_item, output", [(True, True), (True, False), (False, True)],
                         ids=["item-and-response", "item-only", "response-only"])
def test_responses_function_call_is_one_call_with_its_arguments_once(done_item, output):
    # The argument deltas, the finished item and the finished response all carry the arguments:
    # the call gets them once, from whichever finishes it first.
    body = _sse(*_function_call_events(done_item, output), named=True)
    events, exc, _ = asyncio.run(_collect("openai-responses", _serve(body)))
    assert exc is None and events[-1] == Finish("completed")
    (call,) = tool_calls_of(events)
    assert (call.id, call.name, call.arguments_json) == ("call_1", "get_weather", '{"city":"Oslo"}')


def test_responses_function_call_starts_when_its_item_is_added():
    # The card says "calling get_weather…" while the model writes the arguments: the call's part
    # starts at response.output_item.added. The rest of the body is only sent once it has.
    events = _function_call_events()
    gate = asyncio.Event()

    class Gated(httpx2.AsyncByteStream):
        async def __aiter__(self):
            for e in events[:3]:  # created, the item added, the first argument delta
                yield _sse(e, named=True)
            await gate.wait()
            for e in events[3:]:
                yield _sse(e, named=True)

    async def run():
        spec = SPECS["openai-responses"]
        adapter = get_provider(spec.adapter)
        seen: list[Any] = []
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(_serve(Gated()))) as http:
            client = adapter.make_client(ClientOptions(base_url=None, api_key=KEY, http_client=http))
            try:
                async with asyncio.timeout(5):  # the start never came before the rest was sent
                    async for event in adapter.stream(client, Request(spec, [Message("user", "hi")])):
                        seen.append(event)
                        if isinstance(event, PartStart) and event.kind == "tool_call":
                            gate.set()
            finally:
                gate.set()
        return seen

    seen = asyncio.run(run())
    start = next(e for e in seen if isinstance(e, PartStart) and e.kind == "tool_call")
    assert (start.id, start.name) == ("call_1", "get_weather")
    (call,) = tool_calls_of(seen)
    assert call.arguments_json == '{"city":"Oslo"}' and seen[-1] == Finish("completed")


def test_anthropic_events_without_names_are_read_by_their_type():
    """A proxy that leaves out the `event:` lines: the SDK skipped every event, and the whole
    answer read as a cut before any text (retried); each event's "type" names it instead."""
    body = _sse(ANTHROPIC_START, {"type": "ping"}, ANTHROPIC_BLOCK, _anthropic_text("Bonjour"),
                {"type": "content_block_stop", "index": 0},
                {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
                {"type": "message_stop"})
    events, exc, _ = asyncio.run(_collect("anthropic", _serve(body)))
    assert exc is None and _text(events) == "Bonjour"
    assert isinstance(events[-1], Finish) and events[-1].reason == "end_turn"
    assert [e.usage.output_tokens for e in events if isinstance(e, UsageUpdate)][-1] == 3

    overloaded = _sse(ANTHROPIC_START, ANTHROPIC_BLOCK, _anthropic_text("Bon"),
                      {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    events, exc, err = asyncio.run(_collect("anthropic", _serve(overloaded)))
    assert _text(events) == "Bon" and err is not None and err.kind == "overloaded", (exc, err)


def test_anthropic_thinking_and_finish_reason():
    body = _sse(ANTHROPIC_START,
                {"type": "content_block_start", "index": 0,
                 "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
                {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}},
                {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "x"}},
                {"type": "content_block_stop", "index": 0},
                {**ANTHROPIC_BLOCK, "index": 1},
                {**_anthropic_text("Hi"), "index": 1},
                {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 9}},
                {"type": "message_stop"}, named=True)
    events, exc, _ = asyncio.run(_collect("anthropic", _serve(body)))
    assert exc is None and _text(events) == "Hi"
    assert reasoning_of(events) == "hmm"
    assert [e.usage for e in events if isinstance(e, UsageUpdate)][-1] == Usage(10, 0, 0, 9, 0)
    assert events[-1].reason == "max_tokens"  # (its note: test_anthropic_wire.py)


def test_gemini_sends_a_lone_prompt_as_one_user_turn():
    # A lone user text is handed to the SDK as a string: the wire must hold the same one-part turn.
    handler = _serve(_sse(_gemini_chunk("Hi", finish="STOP")))
    events, exc, _ = asyncio.run(_collect("google", handler))
    assert exc is None and _text(events) == "Hi"
    body = json.loads(handler.seen[0].content)
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]


def test_gemini_thought_parts_are_reasoning():
    body = _sse(_gemini_chunk("plan", thought=True), _gemini_chunk("Hi", finish="MAX_TOKENS"), sep="\r\n")
    events, exc, _ = asyncio.run(_collect("google", _serve(body)))
    assert exc is None and _text(events) == "Hi"
    assert reasoning_of(events) == "plan"
    assert events[-1] == Finish("MAX_TOKENS", "cut short: the answer reached max_tokens; raise max_tokens for the rest")


@pytest.mark.parametrize("reason", ["SAFETY", "RECITATION", "PROHIBITED_CONTENT", "MALFORMED_FUNCTION_CALL"])
def test_gemini_answer_stopped_by_a_filter_says_why(reason):
    # finishReason SAFETY (and the like) ends a candidate whose text may be empty: the ending
    # keeps the reason and a note, as Anthropic's and OpenAI's refusals do.
    body = _sse(_gemini_chunk("", finish=reason), sep="\r\n")
    events, exc, _ = asyncio.run(_collect("google", _serve(body)))
    assert exc is None and _text(events) == ""
    assert events[-1].reason == reason and events[-1].note


def test_gemini_parts_that_are_not_text_are_named_in_a_note():
    """An image model's answer (inlineData), or code execution's parts, came as text "" and ok,
    with nothing to say the answer held more than llmcells shows."""
    def chunk(*parts: dict[str, Any]) -> dict[str, Any]:
        return {"candidates": [{"content": {"parts": list(parts), "role": "model"},
                                "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1290}}

    image = {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    events, exc, _ = asyncio.run(_collect("google", _serve(_sse(chunk(image)))))
    assert exc is None and _text(events) == ""
    assert events[-1] == Finish("STOP", "not shown: the answer also held 1 inline image/png part")
    code = _sse(_gemini_chunk("Let me run it."),
                chunk({"executableCode": {"language": "PYTHON", "code": "print(2 + 2)"}},
                      {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "4"}}, image, image,
                      {"text": "", "thoughtSignature": "c2ln"}))
    events, exc, _ = asyncio.run(_collect("google", _serve(code)))
    assert exc is None and _text(events) == "Let me run it."
    assert events[-1].note == ("not shown: the answer also held 1 code part, 1 code result part, "
                               "2 inline image/png parts")
    events, _, _ = asyncio.run(_collect("google", _serve(_sse(_gemini_chunk("Hi", finish="STOP")))))
    assert events[-1] == Finish("STOP")  # text alone: no note


def test_gemini_blocked_prompt_is_a_bad_request():
    body = _sse({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5}},
                sep="\r\n")
    events, exc, mapped = asyncio.run(_collect("google", _serve(body)))
    assert isinstance(mapped, BadRequestError) and "SAFETY" in mapped.message
    # the blocked prompt's tokens, billed: read (they were ignored, and the call cost NaN)
    assert [e.usage for e in events if isinstance(e, UsageUpdate)] == [Usage(5)]


# ----- Gemini: the SDK's request path, read as JSON ------------------------------------------------


async def _gemini_run(handler, request: Request, *, typed: bool):
    """Events (or the exception) of one Gemini stream: the adapter's lane, or the SDK's typed
    stream (generate_content_stream) when typed=True."""
    adapter = get_provider("google")
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
        client = adapter.make_client(ClientOptions(base_url=None, api_key=KEY, http_client=http))
        assert google_adapter._lane(client) is not None  # this SDK has the path the lane uses
        events: list[Any] = []
        try:
            async for event in google_adapter._stream(client, request, typed=typed):
                events.append(event)
        except Exception as exc:  # noqa: BLE001
            return events, exc
    return events, None


def _gemini_requests() -> dict[str, Request]:
    from llmcells.attachments import attachments
    from llmcells.structured import output_schema

    spec = SPECS["google"]
    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
    tool = {"name": "add", "description": "Add two numbers.",
            "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}
    return {
        "lone prompt": Request(spec, [Message("user", "hi")]),
        "options": Request(spec, [Message("user", "hi")], system="Be brief.", temperature=0.2,
                           max_tokens=50),
        "history": Request(spec, [Message("user", "a"), Message("assistant", "b"), Message("user", "c")]),
        "params": Request(spec, [Message("user", "hi")],
                          extra={"params": {"thinking_config": {"thinking_budget": 0}, "top_k": 3}}),
        "tools": Request(spec, [Message("user", "add 2")], extra={"tools": [tool]}),
        "schema": Request(spec, [Message("user", "hi")], schema=output_schema({"name": str})),
        "image": Request(spec, [Message("user", "what is it?")], attachments=attachments(png)),
    }


@pytest.mark.parametrize("vertex", [False, True], ids=["developer-api", "vertex-express"])
@pytest.mark.parametrize("shape", list(_gemini_requests()))
def test_gemini_lane_sends_exactly_what_the_sdks_typed_stream_sends(shape, vertex, monkeypatch):
    # The lane builds its request with the SDK's own converter and sends it with the SDK's API
    # client: URL, body and headers must be those of client.aio.models.generate_content_stream.
    if vertex:  # Vertex AI express mode: a key, Vertex's URLs and its own request converter
        monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    request = _gemini_requests()[shape]
    sent = {}
    for typed in (False, True):
        handler = _serve(_sse(_gemini_chunk("Hi", finish="STOP")))
        events, exc = asyncio.run(_gemini_run(handler, request, typed=typed))
        assert exc is None and _text(events) == "Hi", (shape, typed, exc)
        (req,) = handler.seen
        sent[typed] = (req.method, str(req.url), json.loads(req.content),
                       {k: v for k, v in req.headers.items() if k != "content-length"})
    assert sent[False] == sent[True]
    assert ("aiplatform.googleapis.com" in sent[False][1]) == vertex


def test_gemini_lane_and_typed_stream_give_the_same_events():
    call = {"functionCall": {"id": "c1", "name": "add", "args": {"a": 2}}, "thoughtSignature": "AQI="}
    body = _sse(
        _gemini_chunk("plan", thought=True),
        {"candidates": [{"content": {"parts": [{"text": "Hel"}, call], "role": "model"}, "index": 0}],
         "usageMetadata": {"promptTokenCount": 7, "cachedContentTokenCount": 2,
                           "candidatesTokenCount": 3, "thoughtsTokenCount": 4},
         "modelVersion": "gemini-2.5-flash-001", "responseId": "r9"},
        _gemini_chunk("lo", finish="STOP"), sep="\r\n")
    request = Request(SPECS["google"], [Message("user", "hi")])
    lane, exc = asyncio.run(_gemini_run(_serve(body), request, typed=False))
    typed, exc_typed = asyncio.run(_gemini_run(_serve(body), request, typed=True))
    assert exc is None and exc_typed is None
    assert lane == typed
    assert _text(lane) == "Hello" and lane[-1] == Finish("STOP")
    (tool_call,) = tool_calls_of(lane)
    assert (tool_call.id, tool_call.name, json.loads(tool_call.arguments_json)) == ("c1", "add", {"a": 2})
    assert tool_call.signature == "AQI="
    assert UsageUpdate(Usage(7, 2, 0, 7, 4)) in lane


def test_gemini_lane_raises_an_error_object_in_the_stream_as_the_typed_stream_does():
    # The lane reads the chunks the SDK parsed (not async_request_streamed's re-dumped strings),
    # so it checks for an error object in their place itself, as that method does.
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    body = _sse(_gemini_chunk("Hel"), sep="\r\n") + json.dumps(error).encode() + b"\r\n"
    request = Request(SPECS["google"], [Message("user", "hi")])
    lane, exc = asyncio.run(_gemini_run(_serve(body), request, typed=False))
    typed, exc_typed = asyncio.run(_gemini_run(_serve(body), request, typed=True))
    assert type(exc) is type(exc_typed) and exc is not None, (exc, exc_typed)
    assert getattr(exc, "code", None) == 503 and "overloaded" in str(exc)
    assert _text(lane) == _text(typed) == "Hel"


def test_gemini_lane_without_the_sdks_request_methods_takes_its_public_streamed_path():
    class PublicOnly:  # an SDK whose API client has no _build_request / _async_request
        def __init__(self, api):
            self._api = api

        def __getattr__(self, name):
            if name in ("_build_request", "_async_request"):
                raise AttributeError(name)
            return getattr(self._api, name)

    async def run():
        adapter = get_provider("google")
        handler = _serve(_sse(_gemini_chunk("Hel"), _gemini_chunk("lo", finish="STOP"), sep="\r\n"))
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
            client = adapter.make_client(ClientOptions(base_url=None, api_key=KEY, http_client=http))
            api = PublicOnly(google_adapter._lane(client))
            request = Request(SPECS["google"], [Message("user", "hi")])
            path, body, options = google_adapter._hop_request(api, request, None)
            hop = await google_adapter._send_hop(api, path, body, options)
            return [chunk async for _, chunk in hop]

    chunks = asyncio.run(run())
    assert [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks] == ["Hel", "lo"]


def _json_body(value: Any, size: int) -> Body:
    """value as the pretty-printed JSON Gemini sends without alt=sse, in pieces of size bytes."""
    raw = json.dumps(value, indent=2).encode()
    return Body([raw[i:i + size] for i in range(0, len(raw), size)])


@pytest.mark.parametrize("size", [1, 7, 10_000])
@pytest.mark.parametrize("form", ["array", "object"])
def test_gemini_lane_reads_a_json_body_one_chunk_or_the_array_of_them(form, size):
    """streamGenerateContent without alt=sse (a proxy that drops the query) sends a JSON array of
    chunks; a server that does not stream, one chunk. google-genai's line reader took the array
    for a broken stream: no answer, and the request was sent again (max_attempts bills)."""
    first = _gemini_chunk("Hel")
    last = {**_gemini_chunk("lo", finish="STOP"), "usageMetadata": {"promptTokenCount": 3,
                                                                   "candidatesTokenCount": 2}}
    value = [first, last] if form == "array" else {**last, "candidates": [
        {"content": {"parts": [{"text": "Hello"}], "role": "model"}, "finishReason": "STOP", "index": 0}]}
    handler = _serve(_json_body(value, size), headers={"content-type": "application/json; charset=UTF-8"})
    request = Request(SPECS["google"], [Message("user", "hi")])
    events, exc = asyncio.run(_gemini_run(handler, request, typed=False))
    assert exc is None, exc
    assert _text(events) == "Hello" and events[-1] == Finish("STOP")
    assert UsageUpdate(Usage(3, 0, 0, 2, 0)) in events and len(handler.seen) == 1


def test_gemini_lane_shows_a_json_arrays_chunks_as_they_come():
    # the array's first chunk, then a body that waits: its text is shown before the body ends
    body = Body([b'[{"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]}\r\n,'], hang=True)
    request = Request(SPECS["google"], [Message("user", "hi")])

    async def first_text():
        adapter = get_provider("google")
        handler = _serve(body, headers={"content-type": "application/json"})
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
            client = adapter.make_client(ClientOptions(base_url=None, api_key=KEY, http_client=http))
            events = google_adapter._stream(client, request)
            try:
                async for event in events:
                    if isinstance(event, PartDelta):
                        return event.text
            finally:
                await events.aclose()

    assert asyncio.run(asyncio.wait_for(first_text(), 10)) == "Hel"
    assert body.closed


@pytest.mark.parametrize("size", [1, 5, 10_000])
def test_gemini_lane_raises_a_pretty_printed_error_object_after_the_answers_start(size):
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    raw = _sse(_gemini_chunk("Hel"), sep="\r\n") + json.dumps(error, indent=2).replace("\n", "\r\n").encode()
    request = Request(SPECS["google"], [Message("user", "hi")])
    events, exc = asyncio.run(_gemini_run(_serve(Body([raw[i:i + size] for i in range(0, len(raw), size)])),
                                          request, typed=False))
    assert getattr(exc, "code", None) == 503 and "overloaded" in str(exc), exc
    assert _text(events) == "Hel"


def test_gemini_lane_reads_the_json_array_form_in_a_body_labelled_sse():
    # a proxy that drops alt=sse but keeps the stream's Content-Type: the array comes as raw JSON
    array = json.dumps([_gemini_chunk("Hel"), _gemini_chunk("lo", finish="STOP")], indent=2).encode()
    request = Request(SPECS["google"], [Message("user", "hi")])
    events, exc = asyncio.run(_gemini_run(_serve(Body([array[i:i + 9] for i in range(0, len(array), 9)])),
                                          request, typed=False))
    assert exc is None and _text(events) == "Hello" and events[-1] == Finish("STOP"), exc


def test_gemini_lane_ignores_a_line_that_is_no_sse_field_and_no_json():
    # SSE ignores an unknown field; google-genai took the line for JSON and failed the call
    body = (b"data: " + json.dumps(_gemini_chunk("Hel")).encode() + b"\r\n\r\n"
            b"x-proxy-note: kept alive\r\n\r\n"
            b"data: " + json.dumps(_gemini_chunk("lo", finish="STOP")).encode())  # no blank line after
    request = Request(SPECS["google"], [Message("user", "hi")])
    events, exc = asyncio.run(_gemini_run(_serve(body), request, typed=False))
    assert exc is None and _text(events) == "Hello" and events[-1] == Finish("STOP"), exc


def test_gemini_lane_leaves_a_body_of_another_media_type_to_the_sdk():
    # neither SSE nor JSON by its Content-Type: google-genai's own reading, as before
    body = _sse(_gemini_chunk("Hel"), _gemini_chunk("lo", finish="STOP"))

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/plain"}, content=body)

    events, exc = asyncio.run(_gemini_run(handler, Request(SPECS["google"], [Message("user", "hi")]),
                                          typed=False))
    assert exc is None and _text(events) == "Hello", exc


def test_gemini_continuation_is_followed_as_the_sdk_follows_it():
    # A hop that ends with finishReason CONTINUATION and a continuationToken is resumed with
    # that token; the answer, its usage (each hop's own request, added) and one Finish come out.
    def script():
        first = _gemini_chunk("Hel")
        first["candidates"][0].update(finishReason="CONTINUATION", continuationToken="dG9rZW4x")
        first["usageMetadata"] = {"promptTokenCount": 5, "candidatesTokenCount": 2}
        second = _gemini_chunk("lo", finish="STOP")
        second["usageMetadata"] = {"promptTokenCount": 6, "candidatesTokenCount": 1}
        hops = iter([_sse(first), _sse(second)])
        seen: list[httpx2.Request] = []

        def handler(request: httpx2.Request) -> httpx2.Response:
            seen.append(request)
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=next(hops))

        handler.seen = seen  # type: ignore[attr-defined]
        return handler

    request = Request(SPECS["google"], [Message("user", "hi")])
    lane_handler, typed_handler = script(), script()
    lane, exc = asyncio.run(_gemini_run(lane_handler, request, typed=False))
    typed, exc_typed = asyncio.run(_gemini_run(typed_handler, request, typed=True))
    assert exc is None and exc_typed is None
    assert _text(lane) == "Hello" and [e for e in lane if isinstance(e, Finish)] == [Finish("STOP")]
    assert [e for e in lane if isinstance(e, UsageUpdate)][-1] == UsageUpdate(Usage(11, 0, 0, 3, 0))
    assert _text(typed) == "Hello"
    # The second request carries the token exactly where the SDK's own continuation puts it.
    assert len(lane_handler.seen) == len(typed_handler.seen) == 2
    assert json.loads(lane_handler.seen[1].content) == json.loads(typed_handler.seen[1].content)
    assert json.loads(lane_handler.seen[1].content) != json.loads(lane_handler.seen[0].content)

    # Closed after the first hop's last chunk (an interrupt), the stream starts no further request.
    async def stop_early(handler):
        adapter = get_provider("google")
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
            client = adapter.make_client(ClientOptions(base_url=None, api_key=KEY, http_client=http))
            events = google_adapter._stream(client, request)
            async for event in events:
                if isinstance(event, UsageUpdate):
                    break
            await events.aclose()

    early = script()
    asyncio.run(stop_early(early))
    assert len(early.seen) == 1


# ----- error mapping -----------------------------------------------------------------------------


def _json(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def test_openai_429_retry_after_ms_and_quota():
    body = _json({"error": {"message": "Rate limit reached. Please try again in 1.2s.",
                            "type": "tokens", "param": None, "code": "rate_limit_exceeded"}})
    handler = _serve(body, 429, {"content-type": "application/json", "retry-after-ms": "1200"})
    _, _, mapped = asyncio.run(_collect("openai", handler))
    assert isinstance(mapped, RateLimitError) and mapped.retryable
    assert mapped.retry_after == pytest.approx(1.2) and mapped.status_code == 429
    assert len(handler.seen) == 1  # no SDK retry



#: OpenAI's out-of-credit error: a 429 that is no rate limit
QUOTA = {"message": "You exceeded your current quota, please check your plan and billing details.",
         "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}


def test_out_of_credit_is_a_billing_error_however_it_arrives():
    """OpenAI's insufficient_quota came as "OpenAI rate limit: ..." (rate_limited) in a 429 and as
    "OpenAI reported an error" (provider_error) in a Responses stream; Anthropic's billing_error
    was a provider_error. Each is the account out of credit: one kind, not retried."""
    ct = {"content-type": "application/json"}
    _, _, http = asyncio.run(_collect("openai", _serve(_json({"error": QUOTA}), 429,
                                                       {**ct, "retry-after": "3"})))
    stream = _sse(_responses_event("response.created", response=_response_obj("in_progress")),
                  _responses_event("error", code="insufficient_quota", message=QUOTA["message"],
                                   param=None), named=True)
    _, _, streamed = asyncio.run(_collect("openai-responses", _serve(stream)))
    for mapped in (http, streamed):
        assert isinstance(mapped, BillingError) and mapped.kind == "billing", mapped
        assert not mapped.retryable
        assert mapped.message == f"OpenAI billing problem: {QUOTA['message']}"
    _, _, claude = asyncio.run(_collect("anthropic", _serve(_json(
        {"type": "error", "error": {"type": "billing_error", "message": "Your credit balance is too low."}}),
        400, ct)))
    assert isinstance(claude, BillingError) and not claude.retryable
    assert claude.message == "Anthropic billing problem: Your credit balance is too low."


def test_openai_400_message_is_one_short_line_without_key():
    long_message = ("Invalid value for 'temperature': decimal below minimum value.\n" * 10
                    + f" Incorrect API key provided: {KEY}.")
    body = _json({"error": {"message": long_message, "type": "invalid_request_error",
                            "param": "temperature", "code": "decimal_below_min_value"}})
    _, _, mapped = asyncio.run(_collect("openai", _serve(body, 400, {"content-type": "application/json"})))
    assert isinstance(mapped, BadRequestError) and mapped.status_code == 400
    assert "\n" not in mapped.message and len(mapped.message) <= 240
    assert mapped.message.startswith("OpenAI rejected the request: Invalid value for 'temperature'")
    assert KEY not in mapped.message


def test_openai_mid_stream_error_object():
    body = _sse(_chat_chunk("Hel"), {"error": {"message": "The server had an error while processing "
                                               "your request.", "type": "server_error"}})
    events, exc, mapped = asyncio.run(_collect("openai", _serve(body)))
    assert _text(events) == "Hel"
    assert isinstance(mapped, ServerError) and mapped.status_code is None


def test_openai_500_and_503_overloaded():
    body = _json({"error": {"message": "The engine is currently overloaded, please try again later.",
                            "type": "server_error", "param": None, "code": None}})
    _, _, mapped = asyncio.run(_collect("openai", _serve(body, 503, {"content-type": "application/json"})))
    assert isinstance(mapped, OverloadedError) and mapped.status_code == 503
    _, _, mapped = asyncio.run(_collect("openai", _serve(_json({"error": {"message": "boom"}}), 500,
                                                         {"content-type": "application/json"})))
    assert isinstance(mapped, ServerError) and mapped.status_code == 500


def test_anthropic_529_and_mid_stream_overloaded_event():
    body = _json({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
                  "request_id": "req_1"})
    handler = _serve(body, 529, {"content-type": "application/json", "retry-after": "7"})
    _, _, mapped = asyncio.run(_collect("anthropic", handler))
    assert isinstance(mapped, OverloadedError) and mapped.status_code == 529 and mapped.retry_after == 7
    assert len(handler.seen) == 1

    stream = _sse(ANTHROPIC_START, ANTHROPIC_BLOCK, _anthropic_text("Hel"), named=True) + (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n')
    events, exc, mapped = asyncio.run(_collect("anthropic", _serve(stream)))
    assert _text(events) == "Hel"
    assert isinstance(mapped, OverloadedError) and mapped.status_code is None  # (no HTTP status of its own)


def test_anthropic_401_400_429():
    def err(kind: str, message: str) -> bytes:
        return _json({"type": "error", "error": {"type": kind, "message": message}})

    ct = {"content-type": "application/json"}
    _, _, m = asyncio.run(_collect("anthropic", _serve(err("authentication_error", "invalid x-api-key"), 401, ct)))
    assert isinstance(m, AuthenticationError)
    assert m.message == "Anthropic rejected the API key; check ANTHROPIC_API_KEY."  # not mangled by redact
    _, _, m = asyncio.run(_collect("anthropic", _serve(err("invalid_request_error", "max_tokens: too big"), 400, ct)))
    assert isinstance(m, BadRequestError) and m.message == "Anthropic rejected the request: max_tokens: too big"
    _, _, m = asyncio.run(_collect("anthropic", _serve(err("rate_limit_error", "slow down"), 429,
                                                       {**ct, "retry-after": "12"})))
    assert isinstance(m, RateLimitError) and m.retry_after == 12


def test_gemini_429_retry_info_and_503_overloaded():
    body = _json({"error": {"code": 429, "message": "You exceeded your current quota. Please retry in 58.2s.",
                            "status": "RESOURCE_EXHAUSTED", "details": [
                                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "58s"}]}})
    handler = _serve(body, 429, {"content-type": "application/json"})
    _, _, mapped = asyncio.run(_collect("google", handler))
    # retryDelay is whole seconds; the message's 58.2 s is the more exact (and longer) hint.
    assert isinstance(mapped, RateLimitError) and mapped.retry_after == 58.2 and mapped.status_code == 429
    assert len(handler.seen) == 1

    body = _json({"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                            "status": "UNAVAILABLE"}})
    _, _, mapped = asyncio.run(_collect("google", _serve(body, 503, {"content-type": "application/json"})))
    assert isinstance(mapped, OverloadedError) and mapped.retryable


def _gemini_daily_429() -> bytes:
    """A free tier's requests-per-day quota used up, as the Gemini API answers it: a QuotaFailure
    naming the per-day quota, and a RetryInfo of a few seconds all the same."""
    return _json({"error": {"code": 429, "message": "You exceeded your current quota, please check your plan "
                            "and billing details. Please retry in 14.3s.", "status": "RESOURCE_EXHAUSTED",
                            "details": [
                                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                                    {"quotaMetric": "generativelanguage.googleapis.com/"
                                                    "generate_content_free_tier_requests",
                                     "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                                     "quotaDimensions": {"location": "global", "model": "gemini-3.5-flash-lite"},
                                     "quotaValue": "20"}]},
                                {"@type": "type.googleapis.com/google.rpc.Help", "links": [
                                    {"description": "Learn more about Gemini API quotas",
                                     "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
                                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "14s"}]}})


def test_gemini_429_of_a_daily_quota_is_not_retried_and_says_when_it_resets():
    """A per-day quota is not worth a retry in 14 s: every request fails until midnight Pacific."""
    from llmcells.quotas import day_bounds
    from llmcells.retry import should_retry

    handler = _serve(_gemini_daily_429(), 429, {"content-type": "application/json"})
    _, _, mapped = asyncio.run(_collect("google", handler))
    assert isinstance(mapped, RateLimitError) and mapped.status_code == 429
    assert not mapped.retryable and not should_retry(mapped, 3600)
    reset = day_bounds("google")[1]
    assert mapped.retry_after is not None and abs(mapped.retry_after - (reset - time.time())) < 5
    assert "daily quota" in mapped.message and "America/Los_Angeles" in mapped.message
    assert "GenerateRequestsPerDayPerProjectPerModel-FreeTier" in mapped.message
    assert "\n" not in mapped.message


def test_an_unretried_error_is_not_told_to_raise_retry_max_wait(simulated, monkeypatch):
    """The engine's 'asked to wait longer than retry_max_wait' advice is for an error it would
    retry; a daily quota's error keeps its own line, and is sent once."""
    import llmcells
    from google.genai import errors as genai_errors

    sent = []

    async def refused(client, request, **kw):
        sent.append(request)
        body = json.loads(_gemini_daily_429())
        raise genai_errors.ClientError(429, body)
        yield  # pragma: no cover - an async generator

    monkeypatch.setattr(google_adapter, "_stream", refused)
    r = llmcells.run(llmcells.ask("hi", "gemini", display=False))
    assert r.status == "error" and r.error_kind == "rate_limited", r.error
    assert "daily quota" in r.error and "retry_max_wait" not in r.error, r.error
    assert len(sent) == 1


@pytest.mark.parametrize("kind", ["openai", "anthropic", "google"])
def test_connection_refused_names_the_host(kind: str):
    handler = _serve(httpx2.ConnectError("[Errno 111] Connection refused"))
    _, exc, mapped = asyncio.run(_collect(kind, handler, base_url="http://127.0.0.1:9"))
    assert isinstance(mapped, ConnectionFailedError), (exc, mapped)
    assert "127.0.0.1:9" in mapped.message and "Connection refused" in mapped.message


@pytest.mark.parametrize("kind", ["openai", "anthropic", "google"])
def test_foreign_exceptions_are_not_mapped(kind: str):
    adapter = get_provider(SPECS[kind].adapter)
    assert adapter.map_error(asyncio.CancelledError(), SPECS[kind]) is None
    assert adapter.map_error(KeyboardInterrupt(), SPECS[kind]) is None
    assert adapter.map_error(ValueError("x"), SPECS[kind]) is None


# ----- cancellation closes the connection --------------------------------------------------------


FIRST_EVENT = {
    "openai": _sse(_chat_chunk("Hel")),
    "anthropic": _sse(ANTHROPIC_START, ANTHROPIC_BLOCK, _anthropic_text("Hel"), named=True),
    "google": _sse(_gemini_chunk("Hel"), sep="\r\n"),
}


@pytest.mark.parametrize("kind", list(FIRST_EVENT))
def test_cancelling_a_call_closes_its_response(kind: str):
    body = Body([FIRST_EVENT[kind]], hang=True)

    async def main() -> list[Any]:
        spec = SPECS[kind]
        adapter = get_provider(spec.adapter)
        got: list[Any] = []
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(_serve(body))) as http:
            client = adapter.make_client(ClientOptions(base_url=None, api_key=KEY, http_client=http))

            async def consume() -> None:
                async for event in adapter.stream(client, Request(spec, [Message("user", "hi")])):
                    got.append(event)

            task = asyncio.create_task(consume())
            for _ in range(200):
                await asyncio.sleep(0.005)
                if any(isinstance(e, PartDelta) for e in got):
                    break
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # Closed by the adapter itself, not later by garbage collection or loop shutdown.
            assert body.closed
        return got

    got = asyncio.run(main())
    assert _text(got) == "Hel"
    assert body.closed


# ----- client construction -----------------------------------------------------------------------


def test_make_client_turns_sdk_retries_off_and_sets_timeouts():
    opts = ClientOptions(base_url="http://localhost:1234/v1", api_key=KEY, connect_timeout=3, read_timeout=77)
    oa = get_provider("openai").make_client(opts)
    assert oa.max_retries == 0 and oa.timeout.connect == 3 and oa.timeout.read == 77
    assert str(oa.base_url).startswith("http://localhost:1234/v1")
    an = get_provider("anthropic").make_client(opts)
    assert an.max_retries == 0 and an.timeout.connect == 3 and an.timeout.read == 77


def test_gemini_client_uses_httpx_with_our_timeouts(monkeypatch):
    client = get_provider("google").make_client(
        ClientOptions(base_url="http://localhost:1234", api_key=KEY, connect_timeout=3, read_timeout=77))
    api = client._api_client
    assert api._http_options.retry_options is None
    assert not api._use_aiohttp()  # an explicit httpx client keeps aiohttp out even if installed
    http = api._async_httpx_client
    assert isinstance(http, google_adapter._ClientTimeoutAsyncClient)
    # google-genai passes timeout=None per request; that must not switch the timeouts off.
    request = http.build_request("POST", "http://localhost:1234/x", timeout=None)
    assert request.extensions["timeout"] == {"connect": 3, "read": 77, "write": 77, "pool": 77}


def test_gemini_vertex_mode(monkeypatch):
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "us-central1")
    monkeypatch.setattr("google.auth.default", lambda *a, **k: (None, "my-project"))
    client = get_provider("google").make_client(ClientOptions(base_url=None, api_key=""))
    api = client._api_client
    assert api.vertexai and api.project == "my-project" and api.location == "us-central1"


# ----- what a cut means: nothing shown, text shown, terminal event seen ----------------------------


CUT_BEFORE_TEXT = {
    "openai": _sse({**_chat_chunk(), "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                  "finish_reason": None}]}),
    "openai-responses": _sse(_responses_event("response.created", response=_response_obj("in_progress")),
                             named=True),
    "anthropic": _sse(ANTHROPIC_START, named=True),
    "google": _sse({**_gemini_chunk(""), "candidates": [{"content": {"parts": [{"text": ""}], "role": "model"},
                                                         "index": 0}]}, sep="\r\n"),
}


@pytest.mark.parametrize("kind", list(CUT_BEFORE_TEXT))
def test_a_reset_before_any_text_is_a_retryable_connection_error(kind: str):
    body = Body([CUT_BEFORE_TEXT[kind]], fail=httpx2.ReadError("[Errno 104] Connection reset by peer"))
    events, exc, mapped = asyncio.run(_collect(kind, _serve(body)))
    assert _text(events) == "" and not any(isinstance(e, Finish) for e in events)
    assert isinstance(mapped, ConnectionFailedError) and mapped.retryable, (exc, mapped)


@pytest.mark.parametrize("kind", list(CUT_BEFORE_TEXT))
def test_a_clean_end_before_any_text_is_retryable_too(kind: str):
    events, exc, mapped = asyncio.run(_collect(kind, _serve(CUT_BEFORE_TEXT[kind])))
    assert isinstance(mapped, ConnectionFailedError) and mapped.retryable, (exc, mapped)


COMPLETE_THEN_CUT = {
    "anthropic": _sse(ANTHROPIC_START, ANTHROPIC_BLOCK, _anthropic_text("Hi"),
                      {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
                      {"type": "message_stop"}, named=True),
    "google": _sse(_gemini_chunk("Hi", finish="STOP"), sep="\r\n"),
    "openai-responses": _sse(_responses_event("response.created", response=_response_obj("in_progress")),
                             _text_delta("Hi"),
                             _responses_event("response.completed", response=_response_obj("completed", RESP_USAGE)),
                             named=True),
    "openai": _sse(_chat_chunk("Hi"), _chat_chunk(finish="stop")),
}


@pytest.mark.parametrize("kind", list(COMPLETE_THEN_CUT))
def test_a_cut_after_the_terminal_event_is_a_whole_answer(kind: str):
    body = Body([COMPLETE_THEN_CUT[kind]], fail=httpx2.RemoteProtocolError(
        "peer closed connection without sending complete message body (incomplete chunked read)"))
    events, exc, mapped = asyncio.run(_collect(kind, _serve(body)))
    assert exc is None, (exc, mapped)
    assert _text(events) == "Hi" and isinstance(events[-1], Finish)


# ----- the Gemini SSE rewriter -------------------------------------------------------------------


def test_sse_fixer_rewrites_what_genai_cannot_read_whatever_the_chunking():
    from llmcells.providers._http import _SseFixer

    raw = (b': ping\r\n\r\nevent: ping\r\ndata: {"type": "ping"}\r\n\r\nid: 7\r\nretry: 10\r\n'
           b'data:{"a": 1}\r\n\r\nevent: message\ndata: {"b": 2}\n\n{\n  "raw": true\n}\n')
    # the comment's event leaves its blank line (harmless); the ping event goes whole
    expected = b'\ndata: {"a": 1}\n\ndata: {"b": 2}\n\n{\n  "raw": true\n}\n'
    for size in (1, 2, 3, 7, len(raw)):
        fixer = _SseFixer()
        out = b"".join(fixer.feed(raw[i:i + size]) for i in range(0, len(raw), size)) + fixer.flush()
        assert out == expected, (size, out)
        assert b"ping" not in out and b"id:" not in out


def test_sse_fixer_stops_at_an_error_event():
    from llmcells.providers._http import _SseFixer

    fixer = _SseFixer()
    out = fixer.feed(b'data: {"x": 1}\r\n\r\ndata: {"error": {"code": 503, "message": "busy"}}\r\n\r\ndata: {"y": 2}\r\n')
    assert out == b'data: {"x": 1}\n\n' and fixer.error == {"error": {"code": 503, "message": "busy"}}


def test_sse_fixer_gives_plain_gemini_chunks_the_same_bytes_as_the_line_by_line_rewrite():
    """Whole `data: ...` lines (Gemini's usual chunk, CRLF or LF) take a shortcut; what comes out
    must be exactly what the line-by-line rewrite gives, an error event still ends the stream."""
    from llmcells.providers._http import _SseFixer

    raw = (b'data: {"a": 1}\r\n\r\ndata: {"b": 2}\r\n\r\ndata:  {"c": 3}\n\n'
           b'data: {"error": {"code": 500}}\r\n\r\ndata: {"d": 4}\r\n\r\n')
    expected = b'data: {"a": 1}\n\ndata: {"b": 2}\n\ndata: {"c": 3}\n\n'
    whole = raw.split(b"\r\n\r\n")  # a chunk per event, as Gemini sends them
    for chunks in ([c + b"\r\n\r\n" for c in whole[:-1]], [raw[i:i + 5] for i in range(0, len(raw), 5)]):
        fixer = _SseFixer()
        out = b""
        for chunk in chunks:
            out += fixer.feed(chunk)
            if fixer.error is not None:
                break
        assert out == expected, out
        assert fixer.error == {"error": {"code": 500}}
