"""The strict simulator: it refuses what the real APIs refuse, with their status codes and error
bodies, and its answers carry what the specs say (headers, events, usage, model lists, ids).

Refusals are checked with raw HTTP requests (the SDKs would not send most of these bodies);
answer shapes with the real SDKs, which parse them into their own types.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import types as genai_types

import llmcells
from llmcells.sim import Simulator
from llmcells.sim.batches import control

OPENAI = {"authorization": "Bearer k"}
ANTHROPIC = {"x-api-key": "k", "anthropic-version": "2026-10-21"}  # what anthropic 2.17 sends
GOOGLE = {"x-goog-api-key": "k"}
USER = [{"role": "user", "content": "Say hello"}]
CLAUDE = {"model": "claude-haiku-5-5", "max_tokens": 256, "messages": USER}
CHAT = {"model": "gpt-6-luna", "messages": USER}
GEMINI_URL = "/v1beta/models/gemini-3.5-flash-lite:generateContent"
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
RATE_HEADERS = [f"anthropic-ratelimit-{what}-{field}" for what in ("requests", "tokens", "input-tokens",
                                                                    "output-tokens")
                for field in ("limit", "remaining", "reset")]


def run(coro):
    return asyncio.run(coro)


def post(sim, path, body, headers):
    with httpx2.Client(base_url=sim.url, timeout=30) as client:
        return client.post(path, json=body, headers=headers)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def openai_error(r, status=400):
    """The body of an OpenAI error, checked for the API's exact shape."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error" and r.headers["x-request-id"]
    return body["error"]


def anthropic_error(r, status=400, kind="invalid_request_error"):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"type", "error", "request_id"} and body["type"] == "error"
    assert body["error"]["type"] == kind and set(body["error"]) == {"type", "message"}
    assert body["request_id"] == r.headers["request-id"]
    return body["error"]["message"]


def gemini_error(r, status=400, kind="INVALID_ARGUMENT"):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == status and body["error"]["status"] == kind
    return body["error"]["message"]


# ----- refusals: each API's status and body ----------------------------------------------------------


@pytest.mark.parametrize("body, message", [
    ({k: v for k, v in CLAUDE.items() if k != "max_tokens"}, "max_tokens: Field required"),
    ({**CLAUDE, "temperature": 0.2}, "temperature: Extra inputs are not permitted"),
    ({**CLAUDE, "top_p": 0.9}, "top_p: Extra inputs are not permitted"),
    ({**CLAUDE, "top_k": 5}, "top_k: Extra inputs are not permitted"),
    ({**CLAUDE, "messages": [{"role": "system", "content": "Be brief."}, *USER]}, 'Unexpected role "system"'),
    ({**CLAUDE, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "colour": "red"}]}]},
     "messages.0.content.0.colour: Extra inputs are not permitted"),
    ({**CLAUDE, "max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
    ({**CLAUDE, "max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 500}},
     "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"),
    ({**CLAUDE, "max_tokens": 1_000_000}, "maximum allowed number of output tokens for claude-haiku-5-5"),
    ({**CLAUDE, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": b64(PNG)}}]}]},
     "Input should be 'image/jpeg' or 'image/png' or 'image/gif' or 'image/webp'"),
    ({**CLAUDE, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "not base64!"}}]}]},
     "not valid base64"),
    ({**CLAUDE, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": b64(PNG)}}]}]},
     "Image does not match the provided media type image/jpeg"),
    ({**CLAUDE, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": b64(PNG + bytes(6 * 1024 * 1024))}}]}]},
     "image exceeds 5 MB maximum"),
])
def test_anthropic_refuses_what_the_messages_api_refuses(fresh_sim, body, message):
    assert message in anthropic_error(post(fresh_sim, "/v1/messages", body, ANTHROPIC))


def test_an_older_api_version_or_a_beta_is_checked_as_such(fresh_sim):
    # Clients that pin an older anthropic-version (agent CLIs) may still send sampling parameters.
    old = {**ANTHROPIC, "anthropic-version": "2023-06-01"}
    assert post(fresh_sim, "/v1/messages", {**CLAUDE, "temperature": 0.5, "top_k": 5}, old).status_code == 200
    assert "temperature: Input should be less than or equal to 1" in anthropic_error(
        post(fresh_sim, "/v1/messages", {**CLAUDE, "temperature": 1.5}, old))
    # A beta request is checked against the SDK's beta type, which has fields the GA one lacks.
    beta = {"context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}}
    assert "context_management: Extra inputs" in anthropic_error(
        post(fresh_sim, "/v1/messages", {**CLAUDE, **beta}, ANTHROPIC))
    with_beta = {**ANTHROPIC, "anthropic-beta": "context-management-2025-06-27"}
    r = post(fresh_sim, "/v1/messages", {**CLAUDE, **beta}, with_beta)
    assert r.status_code == 200, r.text


def test_a_prompt_beyond_the_context_window_is_refused_not_billed(fresh_sim):
    # About 1.6M tokens: more than claude-haiku-4-5's 200k (and claude-haiku-5-5's 1M).
    prompt = "word " * 1_200_000
    for model, window in (("claude-haiku-4-5", 200_000), ("claude-haiku-5-5", 1_000_000)):
        r = post(fresh_sim, "/v1/messages", {**CLAUDE, "model": model,
                                            "messages": [{"role": "user", "content": prompt}]}, ANTHROPIC)
        message = anthropic_error(r)
        assert re.fullmatch(rf"prompt is too long: \d+ tokens > {window} maximum", message)
    err = openai_error(post(fresh_sim, "/v1/chat/completions",
                            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}, OPENAI))
    assert err["code"] == "context_length_exceeded" and "maximum context length is 128000" in err["message"]
    big = {"contents": [{"role": "user", "parts": [{"text": prompt * 2}]}]}
    assert "exceeds the maximum number of tokens allowed (1048576)" in gemini_error(
        post(fresh_sim, GEMINI_URL, big, GOOGLE))


@pytest.mark.parametrize("path, body, param, code, message", [
    ("/v1/chat/completions", {**CHAT, "colour": "red"}, None, None,
     "Unrecognized request argument supplied: colour"),
    ("/v1/chat/completions", {"model": "gpt-6-luna"}, "messages", "missing_required_parameter",
     "Missing required parameter: 'messages'."),
    ("/v1/chat/completions", {**CHAT, "response_format": {"type": "json_schema", "json_schema": {
        "schema": {"type": "object"}}}}, "response_format.json_schema.name", "missing_required_parameter",
     "Missing required parameter: 'response_format.json_schema.name'."),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "robot", "content": "hi"}]},
     "messages[0].role", "invalid_value", "Invalid value: 'robot'."),
    ("/v1/chat/completions", {**CHAT, "model": "gpt-4.1", "temperature": 2.5}, "temperature",
     "decimal_above_max_value", "Expected a value <= 2, but got 2.5 instead."),
    ("/v1/chat/completions", {**CHAT, "temperature": 0.2}, "temperature", "unsupported_value",
     "Only the default (1) value is supported."),
    ("/v1/chat/completions", {**CHAT, "model": "gpt-5.5-codex", "temperature": 0.2, "reasoning_effort": "none"},
     "temperature", "unsupported_value", "'temperature' does not support 0.2 with this model"),
    ("/v1/chat/completions", {**CHAT, "presence_penalty": 0.5}, "presence_penalty", "unsupported_parameter",
     "Unsupported parameter: 'presence_penalty' is not supported with this model."),
    ("/v1/chat/completions", {**CHAT, "frequency_penalty": 0, "reasoning_effort": "none"}, "frequency_penalty",
     "unsupported_parameter", "Unsupported parameter: 'frequency_penalty' is not supported with this model."),
    ("/v1/chat/completions", {**CHAT, "max_tokens": 100}, "max_tokens", "unsupported_parameter",
     "Use 'max_completion_tokens' instead."),
    ("/v1/chat/completions", {**CHAT, "tools": [{"type": "function", "function": {"name": "f"}}]},
     "reasoning_effort", "unsupported_parameter", "Function tools with reasoning_effort"),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]}]},
     "messages[0].content[0].image_url", "invalid_image_format", "You uploaded an unsupported image."),
    ("/v1/responses", {"model": "gpt-6-luna", "input": "hi", "text": {"format": {
        "type": "json_schema", "schema": {"type": "object"}}}}, "text.format.name",
     "missing_required_parameter", "Missing required parameter: 'text.format.name'."),
    ("/v1/responses", {"model": "gpt-6-luna", "input": "hi", "max_output_tokens": 4}, "max_output_tokens",
     "integer_below_min_value", "Expected a value >= 16"),
    ("/v1/responses", {"model": "gpt-6-luna", "input": "hi", "temperature": 0.3}, "temperature",
     "unsupported_value", "Only the default (1) value is supported."),
])
def test_openai_refuses_what_the_api_refuses(fresh_sim, path, body, param, code, message):
    err = openai_error(post(fresh_sim, path, body, OPENAI))
    assert (err["param"], err["code"]) == (param, code) and message in err["message"]


def test_gpt_6_luna_takes_a_temperature_with_reasoning_effort_none(fresh_sim):
    ok = post(fresh_sim, "/v1/chat/completions", {**CHAT, "temperature": 0.2, "reasoning_effort": "none",
                                                  "tools": [{"type": "function", "function": {"name": "f"}}]},
              OPENAI)
    assert ok.status_code == 200, ok.text
    ok = post(fresh_sim, "/v1/responses", {"model": "gpt-6-luna", "input": "hi", "temperature": 0.2,
                                           "reasoning": {"effort": "none"}}, OPENAI)
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("body, message", [
    ({"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}, "Please use a valid role: user, model."),
    ({**GEMINI, "generationConfig": {"colour": "red"}},
     "Unknown name \"colour\" at 'generation_config': Cannot find field."),
    ({**GEMINI, "stream": True}, 'Unknown name "stream": Cannot find field.'),
    ({**GEMINI, "generationConfig": {"temperature": 3}}, "temperature value of 3 but the supported range"),
    ({**GEMINI, "generationConfig": {"temperature": "hot"}}, "Invalid value at 'generation_config.temperature'"),
    ({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "@@"}}]}]},
     "Base64 decoding failed"),
    ({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "application/x-msdownload",
                                                              "data": b64(PNG)}}]}]},
     "Unsupported MIME type: application/x-msdownload"),
    ({**GEMINI, "generationConfig": {"thinkingConfig": {"thinkingLevel": "LOW", "thinkingBudget": 128}}},
     "You can only set only one of thinking budget and thinking level."),
    ({**GEMINI, "generationConfig": {"maxOutputTokens": 0}},
     "maxOutputTokens value of 0 but the supported range is from 1 (inclusive) to 65537 (exclusive)"),
])
def test_gemini_refuses_what_the_api_refuses(fresh_sim, body, message):
    assert message in gemini_error(post(fresh_sim, GEMINI_URL, body, GOOGLE))


def test_a_thinking_level_is_refused_before_gemini_3(fresh_sim):
    level = {**GEMINI, "generationConfig": {"thinkingConfig": {"thinkingLevel": "LOW"}}}
    assert gemini_error(post(fresh_sim, "/v1beta/models/gemini-2.5-flash-lite:generateContent", level,
                             GOOGLE)) == "Thinking level is not supported for this model."
    assert post(fresh_sim, GEMINI_URL, level, GOOGLE).status_code == 200
    budget = {**GEMINI, "generationConfig": {"thinkingConfig": {"thinkingBudget": 512}}}
    assert post(fresh_sim, "/v1beta/models/gemini-2.5-flash-lite:generateContent", budget,
                GOOGLE).status_code == 200


def test_retired_models_get_each_apis_404(fresh_sim):
    err = openai_error(post(fresh_sim, "/v1/chat/completions", {**CHAT, "model": "gpt-5-codex"}, OPENAI), 404)
    assert err["code"] == "model_not_found" and "gpt-5-codex" in err["message"]
    message = anthropic_error(post(fresh_sim, "/v1/messages", {**CLAUDE, "model": "claude-sonnet-4-5-20250929"},
                                   ANTHROPIC), 404, "not_found_error")
    assert message == "model: claude-sonnet-4-5-20250929"
    message = gemini_error(post(fresh_sim, "/v1beta/models/gemini-2.5-flash:generateContent", GEMINI, GOOGLE),
                           404, "NOT_FOUND")
    assert message.startswith("models/gemini-2.5-flash is not found")
    # a model that is only retiring still answers
    assert post(fresh_sim, "/v1/chat/completions", {**CHAT, "model": "gpt-4.1-mini"}, OPENAI).status_code == 200


def test_loose_answers_what_strict_refuses(fresh_sim):
    bad = [("/v1/messages", {**CLAUDE, "temperature": 0.2, "messages": [{"role": "system", "content": "x"},
                                                                        *USER]}, ANTHROPIC),
           ("/v1/chat/completions", {**CHAT, "colour": "red", "temperature": 0.2}, OPENAI),
           (GEMINI_URL, {"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}, GOOGLE),
           ("/v1beta/models/gemini-2.5-flash:generateContent", GEMINI, GOOGLE)]
    assert [post(fresh_sim, *req).status_code for req in bad] == [400, 400, 400, 404]
    fresh_sim.strict = False
    assert [post(fresh_sim, *req).status_code for req in bad] == [200, 200, 200, 200]
    fresh_sim.reset()  # back to the constructor's strictness
    assert fresh_sim.strict and post(fresh_sim, *bad[0]).status_code == 400


def test_an_agent_cli_may_send_fields_newer_than_the_sdk_types(fresh_sim):
    """Codex sends `client_metadata` and tool fields the installed openai SDK doesn't declare yet,
    and the live API takes them; a plain client sending the same is refused as unknown."""
    body = {**CHAT, "client_metadata": {"session": "s1"}}
    assert openai_error(post(fresh_sim, "/v1/chat/completions", body, OPENAI))["param"] is None
    codex = {**OPENAI, "originator": "codex_cli_rs"}
    assert post(fresh_sim, "/v1/chat/completions", body, codex).status_code == 200
    # the documented rules still apply to it: a temperature out of range is refused
    assert post(fresh_sim, "/v1/chat/completions", {**body, "temperature": 7}, codex).status_code == 400


def test_simulate_is_strict_by_default():
    try:
        sim = llmcells.simulate()
        assert sim.strict
        assert llmcells.simulate(strict=False) is sim and not sim.strict
        assert llmcells.simulate().strict
    finally:
        llmcells.simulate(False)


# ----- what the SDKs send is accepted ----------------------------------------------------------------


def test_the_sdks_rich_requests_are_accepted(fresh_sim):
    """Requests as the SDKs build them (system, history, tools, schema, images, documents) pass."""
    png = b64(PNG)
    tool = {"name": "lookup", "description": "Look up", "input_schema": {"type": "object", "properties": {
        "q": {"type": "string"}}, "required": ["q"]}}

    async def go():
        a = anthropic.AsyncAnthropic(base_url=fresh_sim.url, api_key="k", max_retries=0)
        await a.messages.create(model="claude-haiku-5-5", max_tokens=300, system="Be brief.", tools=[tool],
                                messages=[{"role": "user", "content": [
                                    {"type": "text", "text": "What is this?"},
                                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                 "data": png}},
                                    {"type": "document", "source": {"type": "base64",
                                                                    "media_type": "application/pdf",
                                                                    "data": b64(b"%PDF-1.4 tiny")}}]},
                                    {"role": "assistant", "content": "A pixel."},
                                    {"role": "user", "content": "Thanks"}])
        o = openai.AsyncOpenAI(base_url=fresh_sim.url + "/v1", api_key="k", max_retries=0)
        await o.chat.completions.create(
            model="gpt-6-luna", reasoning_effort="none", temperature=0.3,
            messages=[{"role": "developer", "content": "Be brief."},
                      {"role": "user", "content": [{"type": "text", "text": "hi"},
                                                   {"type": "image_url", "image_url": {
                                                       "url": f"data:image/png;base64,{png}"}}]}],
            response_format={"type": "json_schema", "json_schema": {"name": "out", "strict": True, "schema": {
                "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
                "additionalProperties": False}}})
        await o.responses.create(model="gpt-6-luna", instructions="Be brief.", max_output_tokens=64,
                                 input=[{"role": "user", "content": [
                                     {"type": "input_text", "text": "hi"},
                                     {"type": "input_image", "image_url": f"data:image/png;base64,{png}",
                                      "detail": "auto"}]}],
                                 tools=[{"type": "function", "name": "f", "parameters": {"type": "object"},
                                         "strict": False}])
        g = genai.Client(api_key="k", http_options=genai_types.HttpOptions(base_url=fresh_sim.url))
        await g.aio.models.generate_content(
            model="gemini-3.5-flash-lite",
            contents=[genai_types.Content(role="user", parts=[
                genai_types.Part.from_text(text="What is this?"),
                genai_types.Part.from_bytes(data=PNG, mime_type="image/png")])],
            config=genai_types.GenerateContentConfig(
                system_instruction="Be brief.", max_output_tokens=100, response_mime_type="application/json",
                response_json_schema={"type": "object", "properties": {"a": {"type": "string"}}},
                thinking_config=genai_types.ThinkingConfig(thinking_budget=0)))

    run(go())
    assert len(fresh_sim.requests) == 4


# ----- answers as the specs have them ----------------------------------------------------------------


def test_anthropic_answers_carry_request_id_and_rate_limit_headers(fresh_sim):
    client = anthropic.Anthropic(base_url=fresh_sim.url, api_key="k", max_retries=0)
    ok = client.messages.with_raw_response.create(**CLAUDE)
    streamed = client.messages.with_raw_response.create(**CLAUDE, stream=True)
    fresh_sim.inject("429", provider="anthropic")
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(**CLAUDE)
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(**CLAUDE, extra_body={"temperature": 0.5})
    for headers in (ok.headers, streamed.headers, limited.value.response.headers, refused.value.response.headers):
        assert headers["request-id"].startswith("req_")
        assert all(headers.get(name) for name in RATE_HEADERS), dict(headers)
    assert int(limited.value.response.headers["retry-after"]) >= 1
    assert limited.value.body["request_id"] == limited.value.response.headers["request-id"]
    assert ok.parse().usage.input_tokens > 0  # the answer itself still parses
    # the counters fall as requests arrive
    assert int(ok.headers["anthropic-ratelimit-requests-remaining"]) > int(
        limited.value.response.headers["anthropic-ratelimit-requests-remaining"])
    fresh_sim.inject("429", provider="anthropic", retry_after=30)
    with pytest.raises(anthropic.RateLimitError) as asked:
        client.messages.create(**CLAUDE)
    assert asked.value.response.headers["retry-after"] == "30"


def test_responses_events_follow_the_spec(fresh_sim):
    text = post(fresh_sim, "/v1/responses", {
        "model": "gpt-6-luna", "input": 'call lookup({"q": "otters"})', "stream": True,
        "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}, "strict": False}]},
        OPENAI).text
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert done and done[0]["name"] == "lookup" and json.loads(done[0]["arguments"]) == {"q": "otters"}
    usage = events[-1]["response"]["usage"]
    assert usage["input_tokens_details"]["cache_write_tokens"] == 0


def test_a_request_that_should_call_a_tool_gets_the_call_unstreamed(fresh_sim):
    prompt = 'call lookup({"q": "otters"})'
    o = openai.OpenAI(base_url=fresh_sim.url + "/v1", api_key="k", max_retries=0)
    chat = o.chat.completions.create(model="gpt-6-luna", reasoning_effort="none",
                                     messages=[{"role": "user", "content": prompt}],
                                     tools=[{"type": "function", "function": {"name": "lookup"}}])
    call = chat.choices[0].message.tool_calls[0]
    assert chat.choices[0].finish_reason == "tool_calls" and call.function.name == "lookup"
    resp = o.responses.create(model="gpt-6-luna", input=prompt,
                              tools=[{"type": "function", "name": "lookup", "parameters": {}, "strict": False}])
    assert resp.output[0].type == "function_call" and json.loads(resp.output[0].arguments) == {"q": "otters"}
    a = anthropic.Anthropic(base_url=fresh_sim.url, api_key="k", max_retries=0)
    msg = a.messages.create(**{**CLAUDE, "messages": [{"role": "user", "content": prompt}]},
                            tools=[{"name": "lookup", "input_schema": {"type": "object"}}])
    assert msg.stop_reason == "tool_use" and msg.content[0].input == {"q": "otters"}
    g = genai.Client(api_key="k", http_options=genai_types.HttpOptions(base_url=fresh_sim.url))
    answer = g.models.generate_content(model="gemini-3.5-flash-lite", contents=prompt, config={
        "tools": [{"function_declarations": [{"name": "lookup"}]}],
        "automatic_function_calling": {"disable": True}})
    assert answer.function_calls[0].name == "lookup" and answer.function_calls[0].args == {"q": "otters"}


def test_model_lists_have_the_required_fields(fresh_sim):
    a = anthropic.Anthropic(base_url=fresh_sim.url, api_key="k", max_retries=0)
    raw = a.models.with_raw_response.list()
    assert raw.headers["request-id"]
    models = {m.id: m for m in raw.parse().data}
    for m in models.values():
        assert m.capabilities is not None and m.max_input_tokens and m.max_tokens and m.lifecycle
    assert models["claude-haiku-5-5"].lifecycle == "active"
    assert models["claude-sonnet-4-5"].lifecycle == "retired"  # Anthropic keeps the record
    o = openai.OpenAI(base_url=fresh_sim.url + "/v1", api_key="k", max_retries=0)
    raw = o.models.with_raw_response.list()
    ids = [m.id for m in raw.parse().data]
    assert raw.headers["x-request-id"] and "gpt-6-luna" in ids and "gpt-5-codex" not in ids
    body = httpx2.get(fresh_sim.url + "/v1beta/models", headers=GOOGLE).json()
    names = {m["baseModelId"] for m in body["models"]}
    assert {"gemini-3.5-flash-lite", "gemini-3.5-flash"} <= names and "gemini-2.5-flash" not in names
    g = genai.Client(api_key="k", http_options=genai_types.HttpOptions(base_url=fresh_sim.url))
    assert "models/gemini-3.5-flash-lite" in [m.name for m in g.models.list()]


# ----- batches and files -------------------------------------------------------------------------------


def _upload(sim, lines: list) -> str:
    o = openai.OpenAI(base_url=sim.url + "/v1", api_key="k", max_retries=0)
    content = "\n".join(json.dumps(x) for x in lines).encode()
    raw = o.files.with_raw_response.create(file=("in.jsonl", content), purpose="batch")
    assert raw.headers["x-request-id"]
    return raw.parse().id


def _until(get, done, timeout: float = 10.0):
    """get() again until done(it) (the simulated batch clock runs in wall time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if done(value) or time.monotonic() > deadline:
            assert done(value), value
            return value
        time.sleep(0.05)


def test_batch_lines_without_custom_id_are_a_400_never_a_500(fresh_sim):
    line = {"method": "POST", "url": "/v1/chat/completions", "body": CHAT}
    for strict in (True, False):
        fresh_sim.strict = strict
        file_id = _upload(fresh_sim, [line])
        r = post(fresh_sim, "/v1/batches", {"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                                            "completion_window": "24h"}, OPENAI)
        assert openai_error(r)["param"] == "custom_id" and "Line 1" in r.json()["error"]["message"]
        r = post(fresh_sim, "/v1/messages/batches", {"requests": [{"params": CLAUDE}]}, ANTHROPIC)
        assert anthropic_error(r) == "requests.0.custom_id: Field required"
    fresh_sim.reset()


def test_batch_requests_are_checked_like_live_ones(fresh_sim):
    r = post(fresh_sim, "/v1/messages/batches", {"requests": [
        {"custom_id": "a", "params": CLAUDE}, {"custom_id": "b", "params": {**CLAUDE, "temperature": 0}}]},
        ANTHROPIC)
    assert anthropic_error(r) == "requests.1.params.temperature: Extra inputs are not permitted"
    r = post(fresh_sim, "/v1beta/models/gemini-3.5-flash-lite:batchGenerateContent", {"batch": {
        "inputConfig": {"requests": {"requests": [{"request": {"contents": [
            {"role": "assistant", "parts": [{"text": "hi"}]}]}, "metadata": {"key": "a"}}]}}}}, GOOGLE)
    assert gemini_error(r) == "Please use a valid role: user, model."
    # OpenAI judges each line while validating: the job fails, naming the line
    control(fresh_sim).configure(validate_s=0.05)
    file_id = _upload(fresh_sim, [{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                                   "body": CHAT},
                                  {"custom_id": "b", "method": "POST", "url": "/v1/chat/completions",
                                   "body": {**CHAT, "colour": "red"}}])
    o = openai.OpenAI(base_url=fresh_sim.url + "/v1", api_key="k", max_retries=0)
    raw = o.batches.with_raw_response.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                                             completion_window="24h")
    assert raw.headers["x-request-id"]
    job = _until(lambda: o.batches.retrieve(raw.parse().id), lambda j: j.status == "failed")
    assert job.errors.data[0].line == 2
    assert "colour" in job.errors.data[0].message
    a = anthropic.Anthropic(base_url=fresh_sim.url, api_key="k", max_retries=0)
    assert a.messages.batches.with_raw_response.create(requests=[{"custom_id": "x", "params": CLAUDE}]
                                                       ).headers["request-id"]


def test_every_batch_line_with_tools_gets_a_tool_call(fresh_sim):
    control(fresh_sim).configure(validate_s=0.0, run_s=0.05, finalize_s=0.0)
    params = {**CLAUDE, "messages": [{"role": "user", "content": 'call lookup({"q": 1})'}],
              "tools": [{"name": "lookup", "input_schema": {"type": "object"}}]}
    a = anthropic.Anthropic(base_url=fresh_sim.url, api_key="k", max_retries=0)
    batch = a.messages.batches.create(requests=[{"custom_id": "a", "params": params}])
    _until(lambda: a.messages.batches.retrieve(batch.id), lambda b: b.processing_status == "ended")
    results = list(a.messages.batches.results(batch.id))
    message = results[0].result.message
    assert message.stop_reason == "tool_use" and message.content[0].name == "lookup"


# ----- what the answer quotes ----------------------------------------------------------------------------


def test_the_answer_quotes_the_latest_user_turn(fresh_sim):
    history = [{"role": "user", "content": "Tell me about otters"}, {"role": "assistant", "content": "Otters."},
               {"role": "user", "content": "Now tell me about badgers"}]
    chat = post(fresh_sim, "/v1/chat/completions", {**CHAT, "messages": history}, OPENAI).json()
    text = chat["choices"][0]["message"]["content"]
    assert "badgers" in text and "otters" not in text.lower()
    msg = post(fresh_sim, "/v1/messages", {**CLAUDE, "messages": history}, ANTHROPIC).json()
    assert "badgers" in msg["content"][0]["text"]


def test_the_answer_quotes_the_users_text_for_claude_code(fresh_sim):
    # Claude Code's first text block is a billing header; system reminders come with the prompt.
    content = [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.0; cc_entrypoint=sdk-py"},
               {"type": "text", "text": "<system-reminder>\nThe user's files may have changed.\n</system-reminder>"},
               {"type": "text", "text": "Rename the helper in utils.py"}]
    body = {"model": "claude-sonnet-4-6", "max_tokens": 2000, "messages": [{"role": "user", "content": content}]}
    text = post(fresh_sim, "/v1/messages", body, ANTHROPIC).json()["content"][0]["text"]
    assert "Rename the helper in utils.py" in text
    assert "billing" not in text and "system-reminder" not in text


def test_cli_takes_loose():
    from llmcells.sim.__main__ import main

    with pytest.raises(SystemExit):
        main(["--help"])
    sim = Simulator(strict=False)
    assert not sim.strict


def test_the_magic_turns_on_a_loose_simulator(shell, capsys):
    from llmcells import _simulation

    try:
        shell.run_line_magic("llmcells", "simulate loose")
        assert not _simulation._sim.strict and "Loose" in capsys.readouterr().out
        shell.run_line_magic("llmcells", "simulate on")
        assert _simulation._sim.strict
    finally:
        llmcells.simulate(False)


# ----- Gemini 3's thought signatures ------------------------------------------------------------


def _gemini_tool_history(first: dict, *, model_url: str = GEMINI_URL, earlier_turn: bool = False) -> dict:
    """A tool loop's second request: the user's question, the model's step of two parallel calls
    (first as given, the second unsigned as Gemini sends it) and their results."""
    step = {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, **first},
                                       {"functionCall": {"name": "get_time", "args": {}}}]}
    results = {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}},
        {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}}]}
    contents = [{"role": "user", "parts": [{"text": "Weather and time?"}]}, step, results]
    if earlier_turn:  # the calls were a finished turn: a new question came after them
        contents += [{"role": "model", "parts": [{"text": "Sunny, at noon."}]},
                     {"role": "user", "parts": [{"text": "Thanks. And tomorrow?"}]}]
    return {"contents": contents}


def test_gemini_3_refuses_a_current_turns_function_call_without_its_thought_signature(sim):
    """Gemini 3 validates the signature of each step's first function call in the current turn
    (400 otherwise); the parallel calls after it carry none, and earlier turns are not checked."""
    r = post(sim, GEMINI_URL, _gemini_tool_history({}), GOOGLE)
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "missing a thought_signature" in r.json()["error"]["message"]
    assert "default_api:get_weather" in r.json()["error"]["message"]
    signed = {"thoughtSignature": b64(b"sig:get_weather:0")}
    assert post(sim, GEMINI_URL, _gemini_tool_history(signed), GOOGLE).status_code == 200
    dummy = {"thoughtSignature": b64(b"skip_thought_signature_validator")}  # Google's documented escape
    assert post(sim, GEMINI_URL, _gemini_tool_history(dummy), GOOGLE).status_code == 200
    assert post(sim, GEMINI_URL, _gemini_tool_history({}, earlier_turn=True), GOOGLE).status_code == 200
    older = "/v1beta/models/gemini-2.5-flash-lite:generateContent"  # Gemini 2.5 does not enforce it
    assert post(sim, older, _gemini_tool_history({}), GOOGLE).status_code == 200


def test_gemini_signs_only_the_first_of_parallel_calls(simulated):
    """The simulator answers parallel calls as Gemini 3 does (one signature, on the first call),
    and llmcells' tool loop sends that step back so that Gemini 3 takes it."""
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    def get_time(city: str) -> str:
        """The time in a city."""
        return "noon"

    r = llmcells.run(llmcells.ask('call get_weather({"city": "Paris"}) and call get_time({"city": "Paris"})',
                                  "gemini", tools=[get_weather, get_time], display=False))
    assert r.ok, r.error
    assert [c.name for c in r.tool_calls] == ["get_weather", "get_time"]
    step = next(c for c in simulated.requests[-1].body["contents"] if c["role"] == "model")
    assert [("thoughtSignature" in p) for p in step["parts"]] == [True, False]


def test_a_request_type_in_hand_does_not_wait_for_another_sdks_import():
    """The request types are kept once imported, and read without the import lock: the lock is
    held for a whole SDK's import (the warm-up's anthropic or google-genai, a second or more),
    and a notebook's first simulated %%chatgpt waited for it before its answer started (its
    TTFT 0.5-1.9 s in the ledger, against 0.06 s after)."""
    import threading

    from llmcells import _imports
    from llmcells.sim import validate

    chat = validate.request_type("chat")
    holding, release = threading.Event(), threading.Event()

    def importer() -> None:  # another thread, in the middle of a long import
        with _imports.import_lock:
            holding.set()
            release.wait(10)

    t = threading.Thread(target=importer)
    t.start()
    try:
        assert holding.wait(5)
        got: list = []
        reader = threading.Thread(target=lambda: got.append(validate.request_type("chat")))
        reader.start()
        reader.join(2)
        assert got == [chat], "the request type waited for the import lock"
    finally:
        release.set()
        t.join()
