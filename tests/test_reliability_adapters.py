"""The provider adapters under the reliability faults of issue 12, through the real SDKs against
the simulator: cuts before any text, cuts after the terminal event, HTML pages instead of the
API, junk on a kept-alive connection, SSE the Gemini SDK cannot parse, split surrogate pairs,
Anthropic's placeholder output count, and SDK streams closed deterministically on every path."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import types
from collections import Counter
from typing import Any

import httpx2
import pytest

from llmcells.errors import ConnectionFailedError, IncompleteStreamError, LLMError, ServerError
from llmcells.models import ModelSpec
from llmcells.providers import ClientOptions, get_provider
from llmcells.sim.state import FAULT_HELP
from llmcells.types import Finish, Message, PartDelta, PartStart, Request, ResponseInfo, UsageUpdate

from _parts import reasoning_of, text_of, text_pieces, tool_calls_of

PATHS = ["chat", "responses", "anthropic", "google"]


def _spec(path: str, sim) -> ModelSpec:
    return {
        "chat": ModelSpec("openai", "openai", "gpt-6-luna", "gpt-6-luna", base_url=sim.url + "/v1"),
        "responses": ModelSpec("openai", "openai", "gpt-6-luna", "gpt-6-luna", api="responses",
                               base_url=sim.url + "/v1"),
        "anthropic": ModelSpec("anthropic", "anthropic", "claude-haiku-5-5", "claude-haiku-5-5",
                               base_url=sim.url),
        "google": ModelSpec("google", "google", "gemini-3.5-flash-lite", "gemini-3.5-flash-lite", base_url=sim.url),
    }[path]


class Call:
    """One adapter call's outcome: the events, the raw exception and its llmcells mapping."""

    def __init__(self, events: list[Any], exc: BaseException | None, mapped: LLMError | None):
        self.events, self.exc, self.mapped = events, exc, mapped

    @property
    def text(self) -> str:
        return text_of(self.events)

    @property
    def finished(self) -> bool:
        return any(isinstance(e, Finish) for e in self.events)


async def _call(adapter, client, spec: ModelSpec, prompt: str = "Tell me about tides.") -> Call:
    events: list[Any] = []
    try:
        async for event in adapter.stream(client, Request(spec, [Message("user", prompt)])):
            events.append(event)
    except Exception as exc:  # noqa: BLE001 - the outcome is what the tests look at
        return Call(events, exc, adapter.map_error(exc, spec))
    return Call(events, None, None)


def _calls(sim, path: str, n: int = 1) -> list[Call]:
    """n calls in a row on one client (a kept-alive connection is reused between them)."""
    spec = _spec(path, sim)
    adapter = get_provider(spec.adapter)

    async def main() -> list[Call]:
        client = adapter.make_client(ClientOptions(base_url=spec.base_url, api_key="sk-test-rel-0000"))
        return [await _call(adapter, client, spec, f"question {i}") for i in range(n)]

    return asyncio.run(main())


@pytest.fixture
def rsim(fresh_sim):
    fresh_sim.configure(ttft=0.0, tokens_per_s=0, output_tokens=12)
    return fresh_sim


# ----- item 3: a reset right after the start event ----------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_reset_after_the_start_event_is_a_retryable_connection_error(rsim, path):
    rsim.inject("reset_after_start")
    (call,) = _calls(rsim, path)
    assert call.text == "" and not call.finished
    assert isinstance(call.mapped, ConnectionFailedError), (call.exc, call.mapped)
    assert call.mapped.retryable
    assert rsim.url.split("//")[1] in call.mapped.message and "before any text" in call.mapped.message
    assert rsim.requests[-1].fault == "reset_after_start"


@pytest.mark.parametrize("path", PATHS)
def test_a_cut_once_text_was_shown_is_still_incomplete(rsim, path):
    rsim.inject("cut_mid_event", after_tokens=3)
    (call,) = _calls(rsim, path)
    assert call.text and isinstance(call.mapped, IncompleteStreamError), (call.exc, call.mapped)


# ----- item 7: the terminal event decides -------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_a_drop_after_the_terminal_event_is_a_whole_answer(rsim, path):
    expected = _calls(rsim, path)[0].text
    rsim.inject("drop_after_terminal")
    (call,) = _calls(rsim, path)
    assert call.exc is None, (call.exc, call.mapped)
    assert call.finished and call.text == expected
    usage = [e.usage for e in call.events if isinstance(e, UsageUpdate)][-1]
    assert usage.output_tokens == 12


# ----- item 5: HTML pages -----------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_a_200_html_page_is_a_connection_error_naming_the_host(rsim, path):
    rsim.inject("html200")
    (call,) = _calls(rsim, path)
    m = call.mapped
    assert isinstance(m, ConnectionFailedError) and m.retryable, (call.exc, m)
    host = rsim.url.split("//")[1]
    assert "HTML page" in m.message and host in m.message and "Welcome to Guest Wi-Fi" in m.message
    assert "\n" not in m.message and len(m.message) < 300


@pytest.mark.parametrize("path", PATHS)
def test_a_502_html_page_gives_the_status_and_a_short_reason(rsim, path):
    rsim.inject("html502")
    (call,) = _calls(rsim, path)
    m = call.mapped
    assert isinstance(m, ServerError) and m.status_code == 502 and m.retryable, (call.exc, m)
    assert "502" in m.message and "Bad Gateway" in m.message and "HTML page" in m.message
    assert "<" not in m.message and "nginx" not in m.message and len(m.message) < 200


# ----- item 9: junk on a kept-alive connection, SSE oddities ------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_junk_past_a_content_length_does_not_break_the_next_call(rsim, path):
    rsim.inject("junk_after_body")
    first, second = _calls(rsim, path, n=2)
    assert first.exc is None and first.finished, (first.exc, first.mapped)
    assert second.exc is None and second.finished, (second.exc, second.mapped)
    assert [r.fault for r in rsim.requests] == ["junk_after_body", None]  # no third request


@pytest.mark.parametrize("fault", ["sse_comments", "sse_event_ping", "sse_no_space"])
@pytest.mark.parametrize("path", PATHS)
def test_valid_sse_variants_read_in_full(rsim, path, fault):
    expected = _calls(rsim, path)[0].text
    rsim.inject(fault, times=None)
    (call,) = _calls(rsim, path)
    assert call.exc is None, (fault, call.exc, call.mapped)
    assert call.finished and call.text == expected


# ----- split surrogate pairs pass through -------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_surrogate_halves_in_two_events_pass_through_as_two_deltas(rsim, path):
    rsim.inject("split_surrogate", after_tokens=2)
    (call,) = _calls(rsim, path)
    assert call.exc is None and call.finished
    texts = text_pieces(call.events)
    i = texts.index("\ud83d")
    assert texts[i + 1] == "\ude00" and i == 2
    # rejoined, the halves are one emoji
    assert "\U0001F600" in call.text.encode("utf-16", "surrogatepass").decode("utf-16")


# ----- Anthropic's placeholder output count -----------------------------------------------------


def test_anthropic_start_usage_reports_input_only_and_the_final_count_is_exact(rsim):
    rsim.set_model("claude-haiku-5-5", cached_input_tokens=40, output_tokens=7)
    (call,) = _calls(rsim, "anthropic")
    usages = [e.usage for e in call.events if isinstance(e, UsageUpdate)]
    assert usages[0].output_tokens == 0, "message_start's placeholder output_tokens was reported"
    assert usages[0].input_tokens > 40 and usages[0].cached_input_tokens == 40
    assert usages[-1].output_tokens == 7 and usages[-1].input_tokens == usages[0].input_tokens


# ----- item 8: streams closed deterministically -------------------------------------------------


def _suspended_generators() -> Counter[str]:
    """SDK / httpx / httpcore async generators that are alive and suspended mid-iteration."""
    gc.collect()
    found: Counter[str] = Counter()
    for obj in gc.get_objects():
        if isinstance(obj, types.AsyncGeneratorType) and obj.ag_frame is not None:
            module = obj.ag_frame.f_globals.get("__name__", "")
            if module.split(".")[0] in ("httpx2", "httpcore2", "openai", "anthropic", "google", "llmcells"):
                found[obj.ag_code.co_qualname] += 1
    return found


async def _consume(adapter, client, spec, how: str) -> None:
    gen = adapter.stream(client, Request(spec, [Message("user", "hi")]))
    if how == "early":  # the consumer stops after the first text and closes the stream
        async for event in gen:
            if isinstance(event, PartDelta):
                break
        await gen.aclose()
    elif how == "cancel":
        async def read() -> None:
            async for _ in gen:
                await asyncio.sleep(0.001)

        task = asyncio.create_task(read())
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await gen.aclose()
    else:
        try:
            async for _ in gen:
                pass
        except Exception:  # noqa: BLE001 - the faults end in errors; what is left over matters
            pass


CLOSING_CASES = [("full", None), ("early", None), ("cancel", None), ("full", "cut"),
                 ("full", "midstream_error"), ("full", "cut_mid_event"), ("full", "500"),
                 ("full", "reset_after_start"), ("full", "drop_after_terminal"), ("full", "html200")]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.slow
def test_no_sdk_generator_is_left_for_the_garbage_collector(fresh_sim, path):
    """After every way a call can end, none of the SDK's or httpx's async generators is left
    suspended: otherwise garbage collection closes them later, from whatever thread it runs in,
    which printed "Exception ignored in: <async_generator Response.aiter_raw> ... async generator
    already executing" after mixed batches."""
    fresh_sim.configure(ttft=0.0, tokens_per_s=400, output_tokens=30)
    spec = _spec(path, fresh_sim)
    adapter = get_provider(spec.adapter)
    leftovers: dict[str, Counter[str]] = {}

    async def main() -> None:
        client = adapter.make_client(ClientOptions(base_url=spec.base_url, api_key="sk-test-rel-0000"))
        before = _suspended_generators()
        for how, fault in CLOSING_CASES:
            if fault:
                fresh_sim.inject(fault, after_tokens=3)
            await _consume(adapter, client, spec, how)
            # A generator freed by reference counting is closed at once by a task on this loop
            # (asyncio's finalizer hook): let those run. What is still suspended after that is
            # kept by a reference cycle, and only the garbage collector would close it.
            await asyncio.sleep(0.05)
            after = _suspended_generators()
            extra = after - before
            if extra:
                leftovers[f"{how}/{fault}"] = extra
            before = after

    asyncio.run(main())
    assert not leftovers, leftovers


@pytest.mark.slow
def test_mixed_batch_with_cancellations_and_faults_reports_nothing_unraisable(fresh_sim, monkeypatch,
                                                                               capfd):
    """A mixed-provider batch with faults and timeouts that cut calls, run on llmcells' own loop
    thread, with garbage collection from the main thread: nothing reaches sys.unraisablehook
    and nothing is printed to stderr."""
    import llmcells
    from llmcells import models
    from llmcells.config import settings

    reported: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(f"{u.object!r}: {u.exc_value!r}"))
    fresh_sim.configure(ttft=0.0, tokens_per_s=400, output_tokens=40)
    models.set_simulator(fresh_sim.url)
    settings.update(retry_initial_wait=0.01, retry_max_wait=0.05, max_attempts=2)
    try:
        for trial, timeout in enumerate([0.15, 0.4, 2.0]):
            for fault in ("cut", "midstream_error", "drop", "cut_mid_event", "500", "reset_after_start"):
                fresh_sim.inject(fault, times=2, after_tokens=5)
            prompts = [f"q{trial}-{i}" for i in range(8)]
            llmcells.run(llmcells.batch(prompts, models=["chatgpt", "claude", "gemini",
                                                         "openai-responses:gpt-6-luna"],
                                        concurrency=16, timeout=timeout, display=False))
            gc.collect()
    finally:
        models.set_simulator(None)
    gc.collect()
    assert reported == []
    err = capfd.readouterr().err
    assert "Exception ignored" not in err and "already executing" not in err, err


# ----- the simulator documents every fault ------------------------------------------------------


def test_every_fault_is_documented():
    from llmcells.sim import Simulator

    for name in ("reset_after_start", "drop_after_terminal", "html200", "html502", "junk_after_body",
                 "sse_comments", "sse_event_ping", "sse_no_space", "split_surrogate"):
        assert FAULT_HELP[name] and name in (Simulator.inject.__doc__ or "")


# ----- the shared status table ------------------------------------------------------------------


_SPECS = {"openai": ModelSpec("openai", "openai", "gpt-4o-mini", "gpt-4o-mini"),
          "anthropic": ModelSpec("anthropic", "anthropic", "claude-x", "claude-x"),
          "google": ModelSpec("google", "google", "gemini-x", "gemini-x"),
          "responses": ModelSpec("openai", "openai", "gpt-5.5", "gpt-5.5", api="responses")}


def _answered(kind: str, status: int, body: bytes, headers: dict[str, str]) -> tuple[Call, list]:
    """One call of kind's adapter that a server answers with status, headers and body: the call,
    and the requests the server got."""
    adapter = get_provider(_SPECS[kind].adapter)
    sent: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return httpx2.Response(status, headers=headers, content=body)

    async def main() -> Call:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
            client = adapter.make_client(ClientOptions(base_url=None, api_key="sk-test-rel-0000",
                                                       http_client=http))
            return await _call(adapter, client, _SPECS[kind])

    return asyncio.run(main()), sent


def _status(kind: str, status: int, body: bytes, ctype: str = "application/json") -> LLMError | None:
    return _answered(kind, status, body, {"content-type": ctype})[0].mapped


@pytest.mark.parametrize("kind", ["openai", "anthropic", "google"])
@pytest.mark.parametrize("status,cls,retryable", [(402, "BillingError", False),
                                                  (408, "ProviderTimeoutError", True),  # the three SDKs retry a 408
                                                  (409, "ServerError", True),
                                                  (503, "ServerError", True),
                                                  (418, "BadRequestError", False)])
def test_one_status_table_for_every_provider(kind, status, cls, retryable):
    body = b'{"error": {"message": "nope", "code": %d, "status": "X"}}' % status
    m = _status(kind, status, body)
    assert type(m).__name__ == cls and m.retryable == retryable and m.status_code == status, m
    assert "nope" in m.message


# ----- gzip-encoded streams -------------------------------------------------------------------------


class _BodyTransport(httpx2.AsyncBaseTransport):
    """The simulator's answers with their body rewritten by `body(raw)` and `headers` added (the
    Content-Length goes: the rewritten body's length differs)."""

    headers: tuple[tuple[bytes, bytes], ...] = ()

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()

    def body(self, raw: Any) -> Any:
        """The rewritten body: an async iterator of bytes over the simulator's (raw)."""
        raise NotImplementedError

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        raw, body = response.stream, self.body

        class Rewritten(httpx2.AsyncByteStream):
            def __aiter__(self):
                return body(raw)

            async def aclose(self) -> None:
                await raw.aclose()

        headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"content-length"]
        return httpx2.Response(response.status_code, headers=[*headers, *self.headers],
                               stream=Rewritten(), extensions=response.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _GzipTransport(_BodyTransport):
    """The simulator's answers, gzip-encoded as a proxy would send them: each chunk compressed
    and flushed as it arrives (Content-Encoding: gzip), so a client that decodes incrementally
    sees each event when it comes."""

    headers = ((b"content-encoding", b"gzip"),)

    async def body(self, raw: Any) -> Any:
        import zlib

        z = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        async for chunk in raw:
            yield z.compress(chunk) + z.flush(zlib.Z_SYNC_FLUSH)
        yield z.flush()


@pytest.mark.parametrize("path", PATHS)
def test_a_gzip_encoded_stream_is_decoded_as_it_comes(fresh_sim, path):
    """Every provider path reads a gzip-encoded SSE stream event by event: the first token
    comes long before the last (Gemini's got its first token with the last one, 1 s later)."""
    import time

    fresh_sim.configure(ttft=0.05, tokens_per_s=20, output_tokens=20)  # the answer takes ~1 s
    spec = _spec(path, fresh_sim)
    adapter = get_provider(spec.adapter)

    async def main() -> tuple[list[float], Call]:
        async with httpx2.AsyncClient(transport=_GzipTransport(), timeout=30) as http:
            client = adapter.make_client(ClientOptions(base_url=spec.base_url, api_key="sk-test-rel-0000",
                                                       http_client=http))
            t0, times, events = time.monotonic(), [], []
            async for event in adapter.stream(client, Request(spec, [Message("user", "tides")])):
                events.append(event)
                if isinstance(event, PartDelta):
                    times.append(time.monotonic() - t0)
            return times, Call(events, None, None)

    times, call = asyncio.run(main())
    assert call.finished and call.text, call.events
    assert len(times) > 5, times
    assert times[0] < 0.5 and times[-1] - times[0] > 0.5, (path, times[0], times[-1])


# ----- a JSON document instead of the stream ----------------------------------------------------


@pytest.mark.parametrize("kind,body,cls,retryable,words", [
    ("openai", b'{"error": {"message": "The model does not exist", "type": "invalid_request_error", '
               b'"code": "model_not_found"}}', "ModelNotFoundError", False, "gpt-4o-mini"),
    ("openai", b'{"error": {"message": "Slow down", "type": "rate_limit_error"}}',
     "RateLimitError", True, "Slow down"),
    ("anthropic", b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}',
     "OverloadedError", True, "overloaded"),
    ("anthropic", b'{"type": "error", "error": {"type": "invalid_request_error", "message": "bad field"}}',
     "BadRequestError", False, "bad field"),
    # a JSON document that is neither an error nor a whole answer
    ("openai", b'{"id": "c1", "object": "list", "data": []}', "ProviderError", False, "not a stream"),
])
def test_a_200_json_answer_to_a_stream_request_says_what_it_holds(kind, body, cls, retryable, words):
    """A proxy's 200 error object, or a whole answer from a server that does not stream, is
    that error (retried only when it is a rate limit or an overload), or a whole answer never
    sent again. The SDKs read such a body as an empty event stream: it was a connection error
    'before any text', retried max_attempts times, its reason lost."""
    m = _status(kind, 200, body)
    assert type(m).__name__ == cls and m.retryable == retryable, (m and m.message)
    assert words.lower() in m.message.lower() and "\n" not in m.message, m.message


def _whole(body: bytes, kind: str = "openai") -> Call:
    """An OpenAI Chat Completions (or Anthropic Messages) call answered by a server that ignored
    "stream": true."""
    call, sent = _answered(kind, 200, body, {"content-type": "application/json",
                                             "x-ratelimit-remaining-requests": "41"})
    assert [json.loads(r.content)["stream"] for r in sent] == [True]
    return call


def test_a_whole_chat_answer_to_a_stream_request_is_read_as_the_answer():
    """An OpenAI-compatible server that ignored "stream": true answered the whole completion:
    its text, finish reason and usage are the call's. It was an error ("not a stream") and the
    answer, billed, was lost."""
    call = _whole(b'{"id": "c1", "object": "chat.completion", "model": "gpt-4o-mini-2024", '
                  b'"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there"}, '
                  b'"finish_reason": "stop"}], '
                  b'"usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}')
    assert call.exc is None and call.text == "Hi there" and call.finished, call.events
    info = next(e for e in call.events if isinstance(e, ResponseInfo))
    assert info.response_model == "gpt-4o-mini-2024" and info.response_id == "c1"
    assert info.rate_limits  # the response's rate-limit headers still count for quota()
    usage = next(e.usage for e in call.events if isinstance(e, UsageUpdate))
    assert (usage.input_tokens, usage.output_tokens) == (5, 2)
    assert [e.reason for e in call.events if isinstance(e, Finish)] == ["stop"]


def test_a_whole_chat_answer_with_tool_calls_gives_the_calls():
    call = _whole(json.dumps({
        "id": "c2", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "get_time", "arguments": "{}"}}]}}]}).encode())
    assert call.exc is None and call.finished, (call.exc, call.events)
    starts = [e for e in call.events if isinstance(e, PartStart) and e.kind == "tool_call"]
    assert [(e.id, e.name) for e in starts] == [("call_1", "get_weather"), ("call_2", "get_time")]
    args = {e.index: e.text for e in call.events if isinstance(e, PartDelta)}
    assert [args[s.index] for s in starts] == ['{"city": "Paris"}', "{}"]


@pytest.mark.parametrize("choice", [b'{"message": {"content": "All of it"}}',
                                    b'{"index": "zero", "message": {"content": "All of it"}}',
                                    b'{"index": null, "message": {"content": "All of it"}}'])
def test_a_whole_chat_answer_is_complete_without_a_finish_reason_or_a_numbered_choice(choice):
    """The document arrived whole: its answer is complete. Read as a stream cut before its end,
    it was a connection error before any text (the index "zero" skipped the choice), and the
    answered request was sent again."""
    call = _whole(b'{"id": "c3", "object": "chat.completion", "choices": [' + choice + b']}')
    assert call.exc is None and call.text == "All of it", (call.exc, call.mapped)
    assert [e.reason for e in call.events if isinstance(e, Finish)] == ["stop"]


def test_a_whole_messages_answer_to_a_stream_request_is_read_as_the_answer():
    """A proxy that ignored "stream": true gave Claude's whole Message: its text, thinking,
    tool call, stop reason and usage are the call's. It was an error ("not a stream")."""
    call = _whole(json.dumps({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x-2026",
        "content": [{"type": "thinking", "thinking": "Look it up.", "signature": "sig-1"},
                    {"type": "text", "text": "Checking the weather."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                     "input": {"city": "Zürich"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 21, "output_tokens": 9, "cache_read_input_tokens": 4}}).encode(),
        kind="anthropic")
    assert call.exc is None and call.finished, (call.exc, call.mapped, call.events)
    assert call.text == "Checking the weather."
    info = next(e for e in call.events if isinstance(e, ResponseInfo))
    assert (info.response_model, info.response_id) == ("claude-x-2026", "msg_1") and info.rate_limits
    tool = next(e for e in call.events if isinstance(e, PartStart) and e.kind == "tool_call")
    assert (tool.id, tool.name) == ("toolu_1", "get_weather")
    assert json.loads(tool.signature)[0]["signature"] == "sig-1"  # the thinking goes back with it
    args = "".join(e.text for e in call.events if isinstance(e, PartDelta) and e.index == tool.index)
    assert json.loads(args) == {"city": "Zürich"}
    usage = [e.usage for e in call.events if isinstance(e, UsageUpdate)][-1]
    assert (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens) == (25, 9, 4)
    assert [e.reason for e in call.events if isinstance(e, Finish)] == ["tool_use"]


def test_a_whole_messages_answer_without_a_stop_reason_is_complete():
    call = _whole(b'{"type": "message", "content": [{"type": "text", "text": "All of it"}]}',
                  kind="anthropic")
    assert call.exc is None and call.text == "All of it", (call.exc, call.mapped)
    assert [e.reason for e in call.events if isinstance(e, Finish)] == ["end_turn"]


def _response(status: str, output: list, **extra: Any) -> bytes:
    """A whole Responses object, as the API returns one ("error": null and all)."""
    return json.dumps({"id": "resp_9", "object": "response", "created_at": 1, "model": "gpt-5.5-2026",
                       "status": status, "error": None, "incomplete_details": None, "output": output,
                       "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 2},
                                 "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 3},
                                 "total_tokens": 19}, **extra}).encode()


def test_a_whole_responses_answer_to_a_stream_request_is_read_as_the_answer():
    """A server that ignored "stream": true on the Responses API gave the whole response: its
    reasoning summary, its two messages, its function call, status and usage are the call's. It
    was the error "not a stream", and the answer (billed) was lost."""
    call = _whole(_response("completed", [
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Weather first."}]},
        {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city": "Oslo"}', "status": "completed"},
        {"type": "message", "id": "msg_2", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Done.", "annotations": []}]}]), kind="responses")
    assert call.exc is None and call.finished, (call.exc, call.mapped, call.events)
    assert call.text == "Checking.\n\nDone." and reasoning_of(call.events) == "Weather first."
    info = next(e for e in call.events if isinstance(e, ResponseInfo))
    assert (info.response_model, info.response_id) == ("gpt-5.5-2026", "resp_9") and info.rate_limits
    (tool,) = tool_calls_of(call.events)
    assert (tool.id, tool.name, json.loads(tool.arguments_json)) == ("call_1", "get_weather", {"city": "Oslo"})
    usage = [e.usage for e in call.events if isinstance(e, UsageUpdate)][-1]
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (12, 7, 3)
    assert [e.reason for e in call.events if isinstance(e, Finish)] == ["completed"]


def test_a_whole_responses_answer_cut_by_max_output_tokens_or_refused_says_so():
    cut = _whole(_response("incomplete", [
        {"type": "message", "id": "msg_1", "role": "assistant", "status": "incomplete",
         "content": [{"type": "output_text", "text": "The first half", "annotations": []}]}],
        incomplete_details={"reason": "max_output_tokens"}), kind="responses")
    assert cut.exc is None and cut.text == "The first half", (cut.exc, cut.mapped)
    (finish,) = [e for e in cut.events if isinstance(e, Finish)]
    assert finish.reason == "max_output_tokens" and "max_tokens" in finish.note
    refused = _whole(_response("completed", [
        {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
         "content": [{"type": "refusal", "refusal": "I can't help with that."}]}]), kind="responses")
    assert refused.exc is None and refused.text == "I can't help with that."
    assert [e.reason for e in refused.events if isinstance(e, Finish)] == ["refusal"]


@pytest.mark.parametrize("status", ["failed", "queued", "in_progress"])
def test_a_whole_response_without_an_answer_is_one_line_never_sent_again(status):
    """A failed response holds its error; a queued or unfinished one has no answer yet."""
    extra = {"error": {"code": "server_error", "message": "The model crashed."}} if status == "failed" else {}
    call = _whole(_response(status, [], **extra), kind="responses")
    assert call.exc is not None and not call.finished and "\n" not in call.mapped.message
    if status == "failed":
        assert "The model crashed." in call.mapped.message and call.mapped.kind == "server_error"
    else:
        assert "not a stream" in call.mapped.message and not call.mapped.retryable


# ----- events without data, and a byte order mark ---------------------------------------------------


class _PrefixTransport(_BodyTransport):
    """The simulator's answers, with `prefix` sent before a stream's first event."""

    def __init__(self, prefix: bytes) -> None:
        super().__init__()
        self.prefix = prefix

    async def body(self, raw: Any) -> Any:
        yield self.prefix
        async for chunk in raw:
            yield chunk


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("prefix", [b"retry: 3000\n\n", b"id: 7\n\n", b"event: keepalive\n\n",
                                    b"data:\n\n", b"\xef\xbb\xbf"],
                         ids=["retry", "id", "event", "empty-data", "bom"])
def test_events_without_data_and_a_bom_are_ignored(fresh_sim, path, prefix):
    """SSE dispatches no event without data, and ignores a byte order mark at the start (a
    server's "retry: 3000" first, a proxy's keep-alive). The openai SDK parsed such an event's
    empty data as JSON: the call failed as a cut 'before any text', every attempt; a BOM cost the
    first event (its first words) in silence, and failed every Gemini call."""
    fresh_sim.configure(ttft=0.0, tokens_per_s=0, output_tokens=12)
    spec = _spec(path, fresh_sim)
    adapter = get_provider(spec.adapter)

    async def one(before: bytes) -> Call:
        async with httpx2.AsyncClient(transport=_PrefixTransport(before), timeout=30) as http:
            client = adapter.make_client(ClientOptions(base_url=spec.base_url, api_key="sk-test-rel-0000",
                                                       http_client=http))
            return await _call(adapter, client, spec)

    call, whole = asyncio.run(one(prefix)), asyncio.run(one(b""))  # whole: sent plainly
    assert call.exc is None and call.finished, (call.exc, call.mapped and call.mapped.message)
    assert call.text == whole.text and call.text, (call.text, whole.text)
    usage = [[e for e in c.events if isinstance(e, UsageUpdate)][-1] for c in (call, whole)]
    assert usage[0] == usage[1], usage


class _TwiceEncodedTransport(_BodyTransport):
    """The simulator's answers, deflated then gzipped (Content-Encoding: deflate, gzip): an
    encoding httpx decodes itself, as it does br or zstd when their packages are installed."""

    headers = ((b"content-encoding", b"deflate, gzip"),)

    async def body(self, raw: Any) -> Any:
        import gzip
        import zlib

        encoded = gzip.compress(zlib.compress(b"".join([chunk async for chunk in raw])))
        for i in range(0, len(encoded), 64):  # in pieces, as a network delivers it
            yield encoded[i:i + 64]


@pytest.mark.parametrize("path", PATHS)
def test_an_encoding_httpx_decodes_itself_is_not_rewritten(fresh_sim, path):
    """The SSE rewrite (Gemini's, OpenAI's) reads lines: a body in an encoding it does not decode
    itself goes through to httpx as it came. The rewrite took the compressed bytes for lines and
    broke them, and no event was read."""
    fresh_sim.configure(ttft=0.0, tokens_per_s=0, output_tokens=12)
    spec = _spec(path, fresh_sim)
    adapter = get_provider(spec.adapter)

    async def main() -> Call:
        async with httpx2.AsyncClient(transport=_TwiceEncodedTransport(), timeout=30) as http:
            client = adapter.make_client(ClientOptions(base_url=spec.base_url, api_key="sk-test-rel-0000",
                                                       http_client=http))
            return await _call(adapter, client, spec)

    call = asyncio.run(main())
    assert call.exc is None and call.finished and call.text, (call.exc, call.mapped and call.mapped.message)


# ----- a body held open after the terminal event ------------------------------------------------


class _HeldOpenTransport(_BodyTransport):
    """The simulator's answers, with the body held open after its last byte (a proxy that
    does not end it)."""

    async def body(self, raw: Any) -> Any:
        async for chunk in raw:
            yield chunk
        await asyncio.sleep(3600)
        yield b""


@pytest.mark.parametrize("path", PATHS)
def test_a_body_held_open_after_the_terminal_event_ends_the_call_soon(fresh_sim, monkeypatch, path):
    """Once the terminal event has come (message_stop, response.completed, a finish_reason, a
    finishReason), the rest of the body gets AFTER_END_S. Claude's and Gemini's calls (and Chat
    Completions without [DONE]) waited for it until the call's timeout, then recorded the whole
    answer as a timeout error."""
    import time

    from llmcells.providers import _common

    monkeypatch.setattr(_common, "AFTER_END_S", 0.3, raising=False)
    fresh_sim.configure(ttft=0.0, tokens_per_s=0, output_tokens=12)
    spec = _spec(path, fresh_sim)
    adapter = get_provider(spec.adapter)

    async def main() -> Call:
        async with httpx2.AsyncClient(transport=_HeldOpenTransport(), timeout=30) as http:
            client = adapter.make_client(ClientOptions(base_url=spec.base_url, api_key="sk-test-rel-0000",
                                                       http_client=http))
            return await asyncio.wait_for(_call(adapter, client, spec), 5)

    t0 = time.monotonic()
    call = asyncio.run(main())
    assert call.exc is None and call.finished and call.text, (call.exc, call.mapped and call.mapped.message)
    assert time.monotonic() - t0 < 3
