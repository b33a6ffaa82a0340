"""The provider simulator: byte-level framing, the real SDKs against it, faults, timing, load."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from llmcells.sim import Simulator
from llmcells.sim.text import answer_tokens, count_prompt_tokens, split_tokens

AUTH = {"authorization": "Bearer k"}
CHAT = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Say hello to the tests"}]}
MESSAGES = {"model": "claude-haiku-4-5", "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Say hello to the tests"}]}
GEMINI = {"contents": [{"parts": [{"text": "Say hello to the tests"}], "role": "user"}]}
GEMINI_STREAM = "/v1beta/models/gemini-3.5-flash-lite:streamGenerateContent?alt=sse"


def run(coro):
    return asyncio.run(coro)


async def post(sim, path, body, headers=AUTH, **kw):
    async with httpx2.AsyncClient(base_url=sim.url, timeout=20) as client:
        return await client.post(path, json=body, headers=headers, **kw)


def sse_events(raw: str, sep: str = "\n\n") -> list[str]:
    assert raw.endswith(sep)
    return raw[: -len(sep)].split(sep)


def data_of(event: str) -> dict:
    line = [ln for ln in event.split("\n") if ln.startswith("data: ")][0]
    return json.loads(line[len("data: "):])


def oai(sim):
    return openai.AsyncOpenAI(base_url=sim.url + "/v1", api_key="k", max_retries=0)


def ant(sim):
    return anthropic.AsyncAnthropic(base_url=sim.url, api_key="k", max_retries=0)


def gem(sim, version=None):
    return genai.Client(api_key="k", http_options=genai_types.HttpOptions(base_url=sim.url,
                                                                          api_version=version))


# --- text -----------------------------------------------------------------------------------
def test_text_is_deterministic_and_tokens_concatenate():
    tokens = answer_tokens("gpt-4.1-mini", 42)
    assert tokens == answer_tokens("gpt-4.1-mini", 42)
    assert 40 <= len(tokens) <= 95  # ends at a sentence after 40-64 tokens
    text = "".join(tokens)
    assert text.startswith("Simulated answer from gpt-4.1-mini: ")
    assert split_tokens(text) == tokens
    assert len(answer_tokens("m", 1, 17)) == 17
    assert "".join(split_tokens("  a  b\n\nccccccccccccc d ")) == "  a  b\n\nccccccccccccc d "
    assert count_prompt_tokens("one two three") == 7


def test_refuses_non_loopback_host():
    with pytest.raises(ValueError):
        Simulator(host="0.0.0.0")
    assert Simulator(host="localhost").host == "127.0.0.1"


def test_env_and_url(sim):
    assert sim.url == f"http://127.0.0.1:{sim.port}"
    assert sim.env() == {"OPENAI_BASE_URL": sim.url + "/v1", "ANTHROPIC_BASE_URL": sim.url,
                         "GOOGLE_GEMINI_BASE_URL": sim.url}


# --- byte-level framing ---------------------------------------------------------------------
def test_chat_stream_bytes_with_usage(fresh_sim):
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    r = run(post(fresh_sim, "/v1/chat/completions", body))
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.headers["transfer-encoding"] == "chunked"
    raw = r.text
    assert "\r" not in raw and "event:" not in raw
    assert raw.endswith("\n\ndata: [DONE]\n\n")
    events = sse_events(raw)
    assert all(e.startswith("data: ") and "\n" not in e for e in events)
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert all(", " not in e and '": ' not in e for e in events)  # compact JSON
    first, finish, usage = chunks[0], chunks[-2], chunks[-1]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert all(c["usage"] is None for c in chunks[:-1])
    assert all(isinstance(c["obfuscation"], str) for c in chunks)
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["choices"][0]["delta"] == {}
    assert usage["choices"] == []
    deltas = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert usage["usage"]["completion_tokens"] == len(deltas)
    assert usage["usage"]["prompt_tokens"] == count_prompt_tokens("Say hello to the tests")
    text = "".join(deltas)
    assert text.startswith("Simulated answer from gpt-4.1-mini:")
    # same prompt, not streamed: same text (temperature absent = reproducible)
    plain = run(post(fresh_sim, "/v1/chat/completions", CHAT))
    assert plain.headers["content-type"].startswith("application/json")
    assert int(plain.headers["content-length"]) == len(plain.content)
    assert plain.json()["choices"][0]["message"]["content"] == text


def test_chat_stream_bytes_without_usage(fresh_sim):
    raw = run(post(fresh_sim, "/v1/chat/completions", {**CHAT, "stream": True})).text
    chunks = [json.loads(e[6:]) for e in sse_events(raw)[:-1]]
    assert all("usage" not in c for c in chunks)
    assert all(c["choices"] for c in chunks)
    assert raw.endswith("data: [DONE]\n\n")


def test_responses_stream_bytes(fresh_sim):
    body = {"model": "gpt-5-mini", "input": "Say hello", "stream": True}
    raw = run(post(fresh_sim, "/v1/responses", body)).text
    assert "[DONE]" not in raw and "\r" not in raw
    events = sse_events(raw)
    types = []
    for i, event in enumerate(events):
        name_line, data_line = event.split("\n")
        data = json.loads(data_line[len("data: "):])
        assert name_line == f"event: {data['type']}"
        assert data["sequence_number"] == i
        types.append(data["type"])
    deltas = types.count("response.output_text.delta")
    assert types == (["response.created", "response.in_progress", "response.output_item.added",
                      "response.content_part.added"] + ["response.output_text.delta"] * deltas
                     + ["response.output_text.done", "response.content_part.done",
                        "response.output_item.done", "response.completed"])
    usage = data_of(events[-1])["response"]["usage"]
    assert usage["output_tokens"] == deltas
    assert usage["input_tokens_details"] == {  # cache_write_tokens is required, zero included
        "cached_tokens": 0, "cache_write_tokens": 0,
        "cache_write_tokens_details": {"ttl_30m_tokens": 0, "ttl_12h_tokens": 0}}
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages?beta=true"])
def test_anthropic_stream_bytes(fresh_sim, path):
    r = run(post(fresh_sim, path, {**MESSAGES, "stream": True}, headers={"x-api-key": "k"}))
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    raw = r.text
    assert "\r" not in raw and "[DONE]" not in raw
    assert "\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n" in raw
    events = sse_events(raw)
    names = [e.split("\n")[0][len("event: "):] for e in events]
    n = names.count("content_block_delta")
    assert names == (["message_start", "content_block_start", "ping"] + ["content_block_delta"] * n
                     + ["content_block_stop", "message_delta", "message_stop"])
    datas = [data_of(e) for e in events]
    assert [d["type"] for d in datas] == names
    assert any(e.endswith(" }") for e in events)  # trailing-space padding
    assert 1 <= datas[0]["message"]["usage"]["output_tokens"] <= 3
    assert datas[-2]["usage"]["output_tokens"] == n
    assert datas[-2]["delta"]["stop_reason"] == "end_turn"


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_gemini_stream_bytes(fresh_sim, version):
    fresh_sim.set_model("gemini-*", reasoning_tokens=7, output_tokens=5)
    path = f"/{version}/models/gemini-3.5-flash-lite:streamGenerateContent?alt=sse"
    r = run(post(fresh_sim, path, GEMINI, headers={"x-goog-api-key": "k"}))
    assert r.headers["content-type"] == "text/event-stream"
    raw = r.text
    events = sse_events(raw, "\r\n\r\n")
    assert all(e.startswith("data: {") and "\n" not in e for e in events)
    assert all('": ' in e and ', "' not in e for e in events)
    chunks = [json.loads(e[6:]) for e in events]
    assert [c["usageMetadata"]["candidatesTokenCount"] for c in chunks] == [1, 2, 3, 4, 5, 5]
    assert all(c["usageMetadata"]["thoughtsTokenCount"] == 7 for c in chunks)
    last = chunks[-1]
    assert last["usageMetadata"]["totalTokenCount"] == last["usageMetadata"]["promptTokenCount"] + 5 + 7
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None] * 5 + ["STOP"]
    assert {c["modelVersion"] for c in chunks} == {"gemini-3.5-flash-lite"}
    assert len({c["responseId"] for c in chunks}) == 1


def test_gemini_key_in_query_and_errors_on_stream_url(fresh_sim):
    ok = run(post(fresh_sim, GEMINI_STREAM + "&key=abc", GEMINI, headers={}))
    assert ok.status_code == 200
    assert "key=***" in fresh_sim.requests[-1].path
    fresh_sim.inject("404")
    r = run(post(fresh_sim, GEMINI_STREAM, GEMINI, headers={"x-goog-api-key": "k"}))
    assert r.status_code == 404 and r.headers["content-type"] == "text/event-stream"
    assert r.text.startswith('{\n  "error": {\n    "code": 404,')
    assert r.json()["error"]["status"] == "NOT_FOUND"


def test_determinism_and_temperature(fresh_sim):
    async def text(temperature):
        body = {**CHAT, **({"temperature": temperature} if temperature is not None else {})}
        return (await post(fresh_sim, "/v1/chat/completions", body)).json()["choices"][0]["message"]["content"]

    assert run(text(None)) == run(text(0)) == run(text(None))
    assert run(text(1.0)) != run(text(1.0))


def test_max_tokens_finish_reasons(fresh_sim):
    chat = run(post(fresh_sim, "/v1/chat/completions", {**CHAT, "max_tokens": 4})).json()
    assert chat["choices"][0]["finish_reason"] == "length" and chat["usage"]["completion_tokens"] == 4
    msg = run(post(fresh_sim, "/v1/messages", {**MESSAGES, "max_tokens": 4})).json()
    assert msg["stop_reason"] == "max_tokens" and msg["usage"]["output_tokens"] == 4
    gem_body = {**GEMINI, "generationConfig": {"maxOutputTokens": 4}}
    g = run(post(fresh_sim, "/v1beta/models/gemini-3.5-flash-lite:generateContent", gem_body)).json()
    assert g["candidates"][0]["finishReason"] == "MAX_TOKENS"
    resp = run(post(fresh_sim, "/v1/responses", {"model": "gpt-5", "input": "x", "max_output_tokens": 16}))
    assert resp.json()["status"] == "incomplete"


def test_auth_errors_and_masking(fresh_sim):
    r = run(post(fresh_sim, "/v1/chat/completions", CHAT, headers={}))
    assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_request_error"
    r = run(post(fresh_sim, "/v1/messages", MESSAGES, headers={"x-api-key": "invalid-key"}))
    assert r.status_code == 401
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert body["request_id"].startswith("req_")
    r = run(post(fresh_sim, "/v1/models/gemini-3.5-flash-lite:generateContent", GEMINI,
                 headers={"x-goog-api-key": "invalid"}))
    assert r.status_code == 401 and set(r.json()["error"]) >= {"code", "message", "status"}
    secret = run(post(fresh_sim, "/v1/chat/completions", CHAT, headers={"authorization": "Bearer sk-secret"}))
    assert secret.status_code == 200
    logged = fresh_sim.requests[-1]
    assert logged.headers["authorization"] == "***" and "sk-secret" not in repr(logged)
    assert (logged.provider, logged.api, logged.model, logged.stream) == ("openai", "chat", "gpt-4.1-mini", False)
    assert logged.body == CHAT


def test_error_bodies_per_provider(fresh_sim):
    fresh_sim.inject("404", times=3)
    r = run(post(fresh_sim, "/v1/chat/completions", {**CHAT, "model": "nope"}))
    assert r.status_code == 404 and r.json() == {"error": {
        "message": "The model `nope` does not exist or you do not have access to it.",
        "type": "invalid_request_error", "param": None, "code": "model_not_found"}}
    r = run(post(fresh_sim, "/v1/messages", {**MESSAGES, "model": "claude-nope"}))
    assert r.json()["error"] == {"type": "not_found_error", "message": "model: claude-nope"}
    r = run(post(fresh_sim, "/v1beta/models/gemini-nope:generateContent", GEMINI))
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["message"].startswith("models/gemini-nope is not found")
    fresh_sim.inject("429", provider="google", retry_after=2.5)
    r = run(post(fresh_sim, "/v1beta/models/gemini-3.5-flash-lite:generateContent", GEMINI))
    assert r.status_code == 429 and r.headers["retry-after"] == "2.5"
    details = r.json()["error"]["details"]
    assert r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert any(d["@type"].endswith("RetryInfo") for d in details)
    fresh_sim.inject("529", provider="openai")
    r = run(post(fresh_sim, "/v1/chat/completions", CHAT))
    assert r.status_code == 503 and r.json()["error"]["type"] == "server_error"


def test_bad_body_and_unknown_route(fresh_sim):
    async def scenario():
        async with httpx2.AsyncClient(base_url=fresh_sim.url) as c:
            bad = await c.post("/v1/messages", content=b"{not json", headers=AUTH)
            unknown = await c.get("/v1/engines", headers=AUTH)  # /v1/models is served (health)
            return bad, unknown

    bad, unknown = run(scenario())
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    assert unknown.status_code == 404


def test_model_overrides_exact_beats_glob(fresh_sim):
    fresh_sim.set_model("gpt-*", text="glob answer")
    fresh_sim.set_model("gpt-4.1-mini", text="exact answer")

    def content(model):
        r = run(post(fresh_sim, "/v1/chat/completions", {**CHAT, "model": model}))
        return r.json()["choices"][0]["message"]["content"]

    assert (content("gpt-4.1-mini"), content("gpt-5"), content("o3")[:21]) == (
        "exact answer", "glob answer", "Simulated answer from")


def test_fault_matching_order_and_times(fresh_sim):
    fresh_sim.inject("500", provider="anthropic")
    fresh_sim.inject("400", model="gpt-x", times=2)
    fresh_sim.inject("401", times=None, model="forever")

    def status(path, body):
        return run(post(fresh_sim, path, body)).status_code

    assert status("/v1/chat/completions", CHAT) == 200          # no fault matches
    assert status("/v1/messages", MESSAGES) == 500
    assert status("/v1/messages", MESSAGES) == 200              # consumed
    assert status("/v1/chat/completions", {**CHAT, "model": "gpt-x"}) == 400
    assert status("/v1/responses", {"model": "gpt-x", "input": "x"}) == 400
    assert status("/v1/chat/completions", {**CHAT, "model": "gpt-x"}) == 200
    assert [status("/v1/chat/completions", {**CHAT, "model": "forever"}) for _ in range(3)] == [401] * 3
    assert [r.fault for r in fresh_sim.requests] == [None, "500", None, "400", "400", None, "401", "401", "401"]
    fresh_sim.clear_faults()
    assert status("/v1/chat/completions", {**CHAT, "model": "forever"}) == 200
    with pytest.raises(ValueError):
        fresh_sim.inject("teapot")


def test_control_endpoints(fresh_sim):
    async def scenario():
        async with httpx2.AsyncClient(base_url=fresh_sim.url) as c:
            assert (await c.post("/_sim/faults", json={"fault": "500", "provider": "openai"})).status_code == 200
            assert (await c.post("/_sim/config", json={"output_tokens": 6})).status_code == 200
            assert (await c.post("/_sim/config", json={"model": "gpt-*", "text": "fixed text"})).status_code == 200
            assert (await c.post("/_sim/config", json={"bogus": 1})).status_code == 400
            first = await c.post("/v1/chat/completions", json=CHAT, headers=AUTH)
            second = await c.post("/v1/chat/completions", json=CHAT, headers=AUTH)
            claude = await c.post("/v1/messages", json=MESSAGES, headers=AUTH)
            log = (await c.get("/_sim/requests")).json()
            await c.post("/_sim/reset")
            after = (await c.get("/_sim/requests")).json()
            return first, second, claude, log, after

    first, second, claude, log, after = run(scenario())
    assert first.status_code == 500
    assert second.json()["choices"][0]["message"]["content"] == "fixed text"
    assert claude.json()["usage"]["output_tokens"] == 6
    assert [e["fault"] for e in log] == ["500", None, None] and log[0]["headers"]["authorization"] == "***"
    assert after == [] and fresh_sim.requests == []


def _raw_chat_request(body: dict) -> bytes:
    """A Chat Completions request as bytes, for a socket of our own."""
    raw = json.dumps(body).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer k\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(raw), raw))


def _content_length(head: bytes) -> int:
    return int([ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0]
               .split(b":")[1])


def test_keep_alive_on_one_socket(sim):
    request = _raw_chat_request(CHAT)
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as s:
        for _ in range(2):
            s.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(65536)
            head, rest = head.split(b"\r\n\r\n", 1)
            length = _content_length(head)
            while len(rest) < length:
                rest += s.recv(65536)
            assert head.startswith(b"HTTP/1.1 200 OK") and json.loads(rest)["object"] == "chat.completion"


# --- real SDKs ------------------------------------------------------------------------------
def test_openai_sdk_chat_and_responses(fresh_sim):
    fresh_sim.set_model("gpt-4.1-mini", cached_input_tokens=20, reasoning_tokens=9)
    expected = run(post(fresh_sim, "/v1/chat/completions", CHAT)).json()["choices"][0]["message"]["content"]

    async def scenario():
        client = oai(fresh_sim)
        stream = await client.chat.completions.create(
            **CHAT, stream=True, stream_options={"include_usage": True})
        parts, usage = [], None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
            usage = chunk.usage or usage
        events = [e async for e in await client.responses.create(model="gpt-5", input="hi", stream=True)]
        return "".join(parts), usage, events

    text, usage, events = run(scenario())
    assert text == expected
    assert usage.prompt_tokens_details.cached_tokens == 20
    assert usage.prompt_tokens == count_prompt_tokens("Say hello to the tests") + 20
    assert usage.completion_tokens_details.reasoning_tokens == 9
    assert usage.completion_tokens == len(split_tokens(text)) + 9
    final = events[-1]
    assert final.type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert final.response.output_text == deltas and deltas.startswith("Simulated answer from gpt-5:")
    assert final.response.usage.input_tokens_details.cached_tokens == 0


def test_anthropic_sdk_stream_and_cache_usage(fresh_sim):
    fresh_sim.set_model("claude-*", cached_input_tokens=100, cache_write_tokens=30, text="Hello there, tests!")

    async def scenario():
        async with ant(fresh_sim).messages.stream(**MESSAGES) as stream:
            pieces = [t async for t in stream.text_stream]
            return pieces, await stream.get_final_message()

    pieces, message = run(scenario())
    assert "".join(pieces) == "Hello there, tests!" and len(pieces) == 3
    assert message.stop_reason == "end_turn" and message.model == "claude-haiku-4-5"
    u = message.usage
    assert (u.input_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens, u.output_tokens) == (
        count_prompt_tokens("Say hello to the tests"), 100, 30, 3)
    assert fresh_sim.requests[-1].headers["authorization"] == "***"


@pytest.mark.parametrize("version", [None, "v1beta"])
def test_gemini_sdk_stream(fresh_sim, version):
    fresh_sim.set_model("gemini-3.5-flash-lite", reasoning_tokens=11, cached_input_tokens=5)

    async def scenario():
        client = gem(fresh_sim, version)
        chunks = [c async for c in await client.aio.models.generate_content_stream(
            model="gemini-3.5-flash-lite", contents="Say hello to the tests")]
        whole = await client.aio.models.generate_content(model="gemini-3.5-flash-lite",
                                                         contents="Say hello to the tests")
        return chunks, whole

    chunks, whole = run(scenario())
    text = "".join(c.text or "" for c in chunks)
    assert text == whole.text and "gemini-3.5-flash-lite" in text
    usage = chunks[-1].usage_metadata
    assert usage.thoughts_token_count == 11 and usage.cached_content_token_count == 5
    assert usage.candidates_token_count == len(split_tokens(text))
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count + 11
    assert chunks[-1].candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert fresh_sim.requests[-1].path.startswith(f"/{version or 'v1'}/models/gemini-3.5-flash-lite:")


def test_openai_sdk_http_faults(fresh_sim):
    async def call():
        return await oai(fresh_sim).chat.completions.create(**CHAT)

    fresh_sim.inject("429", retry_after=1.5, retry_after_ms=1500)
    with pytest.raises(openai.RateLimitError) as exc:
        run(call())
    assert exc.value.response.headers["retry-after"] == "1.5"
    assert exc.value.response.headers["retry-after-ms"] == "1500"
    assert exc.value.code == "rate_limit_exceeded"
    for fault, error in [("401", openai.AuthenticationError), ("404", openai.NotFoundError),
                         ("400", openai.BadRequestError), ("500", openai.InternalServerError),
                         ("529", openai.InternalServerError), ("drop", openai.APIConnectionError)]:
        fresh_sim.inject(fault)
        with pytest.raises(error):
            run(call())
    assert run(call()).choices[0].message.content


def test_openai_sdk_stream_faults(fresh_sim):
    async def chat_text():
        stream = await oai(fresh_sim).chat.completions.create(
            **CHAT, stream=True, stream_options={"include_usage": True})
        parts, finish, usage = [], None, None
        async for chunk in stream:
            if chunk.choices:
                parts.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
            usage = chunk.usage or usage
        return "".join(parts), finish, usage

    async def responses_events():
        stream = await oai(fresh_sim).responses.create(model="gpt-5", input="hi", stream=True)
        return [e async for e in stream]

    async def responses_types():
        return [e.type for e in await responses_events()]

    fresh_sim.inject("midstream_error", provider="openai", after_tokens=2)
    with pytest.raises(openai.APIError) as exc:
        run(chat_text())
    assert not isinstance(exc.value, openai.APIStatusError)
    # Responses: the spec's flat error event (the SDK yields it), numbered right after the last
    # event sent: sequence numbers never skip.
    fresh_sim.inject("midstream_error", after_tokens=2)
    events = run(responses_events())
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "error" and events[-1].code == "server_error" and events[-1].message
    assert [e.type for e in events].count("response.output_text.delta") == 2
    expected = run(post(fresh_sim, "/v1/chat/completions", CHAT)).json()["choices"][0]["message"]["content"]
    fresh_sim.inject("cut", after_tokens=3)
    text, finish, usage = run(chat_text())  # ends silently: no finish chunk, no usage, no [DONE]
    assert text == "".join(split_tokens(expected)[:3])
    assert finish is None and usage is None
    fresh_sim.inject("cut", after_tokens=2)
    types = run(responses_types())
    assert types.count("response.output_text.delta") == 2 and "response.completed" not in types
    fresh_sim.inject("malformed")
    with pytest.raises(json.JSONDecodeError):
        run(chat_text())
    fresh_sim.inject("cut_mid_event", after_tokens=1)
    with pytest.raises(openai.APIConnectionError):  # the half-sent chunk is an incomplete body
        run(chat_text())
    assert run(chat_text())[1] == "stop"


def test_anthropic_sdk_faults(fresh_sim):
    async def streamed():
        async with ant(fresh_sim).messages.stream(**MESSAGES) as stream:
            events = [e.type async for e in stream]
            return events, await stream.get_final_message()

    fresh_sim.inject("529")
    with pytest.raises(anthropic.OverloadedError):
        run(streamed())
    fresh_sim.inject("429", retry_after=3)
    with pytest.raises(anthropic.RateLimitError) as exc:
        run(streamed())
    assert exc.value.response.headers["retry-after"] == "3"
    fresh_sim.inject("404")
    with pytest.raises(anthropic.NotFoundError):
        run(streamed())
    fresh_sim.inject("midstream_error", after_tokens=2)
    with pytest.raises(anthropic.APIStatusError) as exc:
        run(streamed())
    assert exc.value.status_code == 200 and exc.value.body["error"]["type"] == "overloaded_error"
    fresh_sim.inject("cut", after_tokens=4)
    events, message = run(streamed())
    assert "message_stop" not in events and message.stop_reason is None
    assert len(split_tokens(message.content[0].text)) == 4
    fresh_sim.inject("malformed")
    with pytest.raises(json.JSONDecodeError):
        run(streamed())
    fresh_sim.inject("cut_mid_event")
    with pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)):
        run(streamed())
    fresh_sim.inject("drop")
    with pytest.raises(anthropic.APIConnectionError):
        run(streamed())


def test_gemini_sdk_faults(fresh_sim):
    async def streamed():
        stream = await gem(fresh_sim).aio.models.generate_content_stream(model="gemini-3.5-flash-lite",
                                                                       contents="hello")
        return [c async for c in stream]

    for fault, error, code in [("429", genai_errors.ClientError, 429), ("404", genai_errors.ClientError, 404),
                               ("500", genai_errors.ServerError, 500), ("529", genai_errors.ServerError, 503),
                               ("401", genai_errors.ClientError, 401)]:
        fresh_sim.inject(fault, provider="google")
        with pytest.raises(error) as exc:
            run(streamed())
        assert exc.value.code == code
    fresh_sim.inject("midstream_error", after_tokens=2)
    with pytest.raises(genai_errors.ServerError):
        run(streamed())
    fresh_sim.inject("cut", after_tokens=3)
    chunks = run(streamed())
    assert len(chunks) == 3 and all(c.candidates[0].finish_reason is None for c in chunks)
    fresh_sim.inject("malformed")
    with pytest.raises(genai_errors.UnknownApiResponseError):
        run(streamed())
    fresh_sim.inject("cut_mid_event", after_tokens=2)
    with pytest.raises(httpx2.RemoteProtocolError):
        run(streamed())


# --- timing ---------------------------------------------------------------------------------
async def _first_token_times(sim, path, body, headers=AUTH):
    """(seconds to headers, seconds to the first content token, seconds to the end)."""
    marker = {"/v1/chat/completions": b'"content":"S', "/v1/messages": b"text_delta"}.get(path, b'"text": "S')
    start = time.perf_counter()
    async with httpx2.AsyncClient(base_url=sim.url, timeout=20) as client:
        async with client.stream("POST", path, json=body, headers=headers) as r:
            t_headers = time.perf_counter() - start
            t_first = None
            seen = b""
            async for piece in r.aiter_bytes():
                seen += piece
                if t_first is None and marker in seen:
                    t_first = time.perf_counter() - start
            return t_headers, t_first, time.perf_counter() - start


def test_ttft_and_rate(fresh_sim):
    fresh_sim.set_model("claude-slow", ttft=0.4, tokens_per_s=100, output_tokens=30)
    t_headers, t_first, t_end = run(_first_token_times(
        fresh_sim, "/v1/messages", {**MESSAGES, "model": "claude-slow", "stream": True}))
    # the headers come before the 0.4 s wait for the first token, not after it (measured from
    # the same start, so a slow connection on a busy machine delays both alike)
    assert t_headers < t_first - 0.3 and 0.38 <= t_first < 0.8
    assert 0.65 <= t_end < 1.5  # 0.4 s + 29 gaps of 10 ms
    fresh_sim.configure(ttft=0.0, tokens_per_s=50, output_tokens=10)
    start = time.perf_counter()
    run(post(fresh_sim, "/v1/chat/completions", CHAT))
    assert 0.15 <= time.perf_counter() - start < 1.0


def test_slow_first_token_sends_headers_first(fresh_sim):
    fresh_sim.inject("slow_first_token", delay=0.5)
    t_headers, t_first, _ = run(_first_token_times(fresh_sim, GEMINI_STREAM, GEMINI))
    assert t_headers < 0.2 and t_first >= 0.5


def test_three_concurrent_one_second_streams(fresh_sim):
    fresh_sim.configure(ttft=0.1, tokens_per_s=45, output_tokens=41)  # 0.1 s + 40 / 45 s ~ 1 s

    async def scenario():
        start = time.perf_counter()
        results = await asyncio.gather(
            _first_token_times(fresh_sim, "/v1/chat/completions", {**CHAT, "stream": True}),
            _first_token_times(fresh_sim, "/v1/messages", {**MESSAGES, "stream": True}),
            _first_token_times(fresh_sim, GEMINI_STREAM, GEMINI))
        return results, time.perf_counter() - start

    results, total = run(scenario())
    assert all(0.9 <= end < 1.6 for _, _, end in results)
    assert total < 1.7


# --- load and robustness --------------------------------------------------------------------
@pytest.mark.slow
def test_200_concurrent_streams(fresh_sim):
    fresh_sim.configure(ttft=0.05, tokens_per_s=200, output_tokens=20)

    async def one(client, i):
        body = {**CHAT, "messages": [{"role": "user", "content": f"question {i}"}], "stream": True}
        r = await client.post("/v1/chat/completions", json=body, headers=AUTH)
        return r.status_code, r.text.endswith("data: [DONE]\n\n")

    async def scenario():
        limits = httpx2.Limits(max_connections=250, max_keepalive_connections=250)
        async with httpx2.AsyncClient(base_url=fresh_sim.url, timeout=30, limits=limits) as client:
            return await asyncio.gather(*(one(client, i) for i in range(200)))

    results = run(scenario())
    assert results == [(200, True)] * 200
    assert len(fresh_sim.requests) == 200


def test_client_disconnect_mid_stream_is_quiet(fresh_sim, caplog):
    fresh_sim.configure(ttft=0.0, tokens_per_s=100, output_tokens=200)

    async def hang_up():
        async with httpx2.AsyncClient(base_url=fresh_sim.url, timeout=10) as client:
            for path, body in [("/v1/chat/completions", {**CHAT, "stream": True}),
                               ("/v1/messages", {**MESSAGES, "stream": True}), (GEMINI_STREAM, GEMINI)]:
                async with client.stream("POST", path, json=body, headers=AUTH) as r:
                    async for _ in r.aiter_bytes():
                        break

    with caplog.at_level(logging.WARNING):
        run(hang_up())
        time.sleep(0.3)  # the server notices on its next writes
        fresh_sim.configure(output_tokens=5)
        assert run(post(fresh_sim, "/v1/chat/completions", CHAT)).status_code == 200
    assert not [r for r in caplog.records if r.name.startswith(("asyncio", "llmcells"))]


def test_start_stop_context_manager():
    with Simulator(ttft=0, tokens_per_s=0, output_tokens=3) as s:
        r = run(post(s, "/v1/chat/completions", CHAT))
        assert r.json()["usage"]["completion_tokens"] == 3
    with pytest.raises(httpx2.ConnectError):
        run(post(s, "/v1/chat/completions", CHAT))


# --- the reliability faults (issue 12) ------------------------------------------------------
async def _raw_stream(sim, path, body):
    """(status, headers, bytes received, the error that ended the read or None)."""
    pieces: list[bytes] = []
    async with httpx2.AsyncClient(base_url=sim.url, timeout=30) as client:
        async with client.stream("POST", path, json=body, headers=AUTH) as r:
            try:
                async for piece in r.aiter_raw():
                    pieces.append(piece)
            except httpx2.HTTPError as exc:
                return r.status_code, r.headers, b"".join(pieces), exc
            return r.status_code, r.headers, b"".join(pieces), None


STREAMS = [("/v1/chat/completions", {**CHAT, "stream": True}, b"data: [DONE]"),
           ("/v1/responses", {"model": "gpt-5", "input": "hi", "stream": True}, b"response.completed"),
           ("/v1/messages", {**MESSAGES, "stream": True}, b"message_stop"),
           (GEMINI_STREAM, GEMINI, b'"finishReason": "STOP"')]
FIRST = {"/v1/chat/completions": b'"role":"assistant"', "/v1/responses": b"response.created",
         "/v1/messages": b"message_start", GEMINI_STREAM: b'"text": ""'}


@pytest.mark.parametrize("path,body,terminal", STREAMS, ids=["chat", "responses", "anthropic", "gemini"])
def test_reset_after_start_sends_one_start_event_then_resets(fresh_sim, path, body, terminal):
    fresh_sim.inject("reset_after_start")
    status, _, received, error = run(_raw_stream(fresh_sim, path, body))
    assert status == 200 and FIRST[path] in received and isinstance(error, httpx2.ReadError)
    assert received.count(b"data:") == 1  # the start event and nothing else
    causes, e = [], error
    while e is not None:
        causes.append(e)
        e = e.__cause__ or e.__context__
    assert any(isinstance(c, ConnectionResetError) for c in causes), causes  # a TCP reset, not a FIN


@pytest.mark.parametrize("path,body,terminal", STREAMS, ids=["chat", "responses", "anthropic", "gemini"])
def test_drop_after_terminal_sends_everything_but_the_body_end(fresh_sim, path, body, terminal):
    fresh_sim.inject("drop_after_terminal")
    status, _, received, error = run(_raw_stream(fresh_sim, path, body))
    assert status == 200 and terminal in received and error is not None


@pytest.mark.parametrize("fault,status,title", [("html200", 200, b"Welcome to Guest Wi-Fi"),
                                                ("html502", 502, b"502 Bad Gateway")])
def test_html_pages(fresh_sim, fault, status, title):
    for path, body, _ in STREAMS:
        fresh_sim.inject(fault)
        r = run(post(fresh_sim, path, body))
        assert r.status_code == status and r.headers["content-type"].startswith("text/html")
        assert b"<title>" + title + b"</title>" in r.content


def test_junk_after_body_is_past_the_content_length(fresh_sim):
    fresh_sim.configure(ttft=0, tokens_per_s=0, output_tokens=5)
    fresh_sim.inject("junk_after_body")
    with socket.create_connection(("127.0.0.1", fresh_sim.port), timeout=5) as s:
        s.sendall(_raw_chat_request({**CHAT, "stream": True}))
        data = b""
        while b"bytes past the declared end" not in data:
            data += s.recv(65536)
    head, rest = data.split(b"\r\n\r\n", 1)
    length = _content_length(head)
    assert b"transfer-encoding" not in head.lower()
    assert rest[:length].endswith(b"data: [DONE]\n\n") and rest[length:].startswith(b'{"note"')


@pytest.mark.parametrize("path,body,terminal", STREAMS, ids=["chat", "responses", "anthropic", "gemini"])
def test_sse_variants(fresh_sim, path, body, terminal):
    fresh_sim.configure(ttft=0, tokens_per_s=0, output_tokens=4)
    sep = b"\r\n" if path == GEMINI_STREAM else b"\n"
    fresh_sim.inject("sse_comments")
    received = run(_raw_stream(fresh_sim, path, body))[2]
    assert received.startswith(b": ping" + sep + sep) and terminal in received
    fresh_sim.inject("sse_event_ping")
    received = run(_raw_stream(fresh_sim, path, body))[2]
    assert received.startswith(b"event: ping" + sep + b'data: {"type": "ping"}' + sep + sep)
    fresh_sim.inject("sse_no_space")
    received = run(_raw_stream(fresh_sim, path, body))[2]
    assert b"data:{" in received and b"data: " not in received and b"event: " not in received


@pytest.mark.parametrize("path,body,terminal", STREAMS, ids=["chat", "responses", "anthropic", "gemini"])
def test_split_surrogate_sends_the_two_halves_json_escaped_in_two_events(fresh_sim, path, body, terminal):
    fresh_sim.inject("split_surrogate", after_tokens=1)
    received = run(_raw_stream(fresh_sim, path, body))[2]
    sep = b"\r\n\r\n" if path == GEMINI_STREAM else b"\n\n"
    events = [e for e in received.split(sep) if b"@@" in e or b"\\ud83d" in e or b"\\ude00" in e]
    high = [i for i, e in enumerate(events) if b"\\ud83d" in e and b"\\ude00" not in e]
    low = [i for i, e in enumerate(events) if b"\\ude00" in e and b"\\ud83d" not in e]
    assert len(high) == 1 and low == [high[0] + 1], events
    assert b"@@" not in received
    if path == "/v1/responses":  # the done event carries the whole text, the pair rejoined
        assert b"\\ud83d\\ude00" in received


@pytest.mark.slow
def test_a_two_megabyte_answer_in_twenty_thousand_events(fresh_sim):
    from llmcells.sim.text import filler

    text = filler(2_000_000)
    assert len(text) == 2_000_000 and text == filler(2_000_000) and text.isascii()
    fresh_sim.set_model("big-*", text=text, delta_chars=100, ttft=0, tokens_per_s=0)
    received = run(_raw_stream(fresh_sim, "/v1/chat/completions",
                               {**CHAT, "model": "big-chat", "stream": True}))[2]
    deltas = [json.loads(e[6:]) for e in sse_events(received.decode())
              if e.startswith("data: {") and '"content":"' in e]
    pieces = [d["choices"][0]["delta"]["content"] for d in deltas]
    pieces = [p for p in pieces if p]
    assert len(pieces) == 20_000 and "".join(pieces) == text


def test_429_with_an_hour_long_retry_after(fresh_sim):
    for path, body, _ in STREAMS:
        fresh_sim.inject("429", retry_after=3600)
        r = run(post(fresh_sim, path, body))
        assert r.status_code == 429 and r.headers["retry-after"] == "3600"
    assert "Please retry in 3600s." in r.json()["error"]["message"]  # Gemini names it too
    assert r.json()["error"]["details"][-1]["retryDelay"] == "3600s"


def test_a_simulator_shows_where_it_serves():
    """`llmcells.simulate()` ending a notebook cell shows the simulator, not an object address."""
    sim = Simulator(strict=False)
    assert repr(sim) == "<llmcells simulator (stopped)>"
    with sim:
        assert repr(sim) == f"<llmcells simulator at {sim.url} (loose)>"
