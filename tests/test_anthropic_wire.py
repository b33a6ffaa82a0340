"""Claude's adapters (Anthropic, Amazon Bedrock, Vertex AI) against what today's wire sends: the
error answers of each cloud in their own form, errors inside a stream, the server's retry
advice, how an answer cut by max_tokens ends, attachments by URL (which the clouds' Claude does
not take), Bedrock's invocation metrics at the end of its stream, and web searches (a server
tool, billed apart from the tokens). Each goes through the real SDK client over an injected
httpx MockTransport, or the simulator for a whole call."""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest

from llmcells.errors import (AuthenticationError, BadRequestError, ConfigError, OverloadedError,
                             RateLimitError, ServerError)
from llmcells.models import ModelSpec
from llmcells.providers import ClientOptions, get_provider
from llmcells.retry import should_retry
from llmcells.types import Message, Request, UsageUpdate

from test_adapters_unit import ANTHROPIC_BLOCK, ANTHROPIC_START, _anthropic_text, _collect, _serve, _sse, _text

BEDROCK = ModelSpec("bedrock", "bedrock", "us.anthropic.claude-haiku-4-5-20251001-v1:0",
                    "us.anthropic.claude-haiku-4-5-20251001-v1:0")
VERTEX = ModelSpec("vertex", "vertex_anthropic", "claude-haiku-4-5", "claude-haiku-4-5")


@pytest.fixture
def aws(monkeypatch, tmp_path):
    """Made-up AWS credentials (the client signs with them) and no AWS files to find others in."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLETEST00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret-key-for-tests")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK", "ANTHROPIC_BEDROCK_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _cloud_error(spec: ModelSpec, status: int, body: object, headers: dict[str, str] | None = None,
                 base_url: str | None = None, api_key: str = ""):
    """The llmcells error for one error answer of a cloud route."""
    adapter = get_provider(spec.adapter)

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=json.dumps(body).encode(),
                               headers={"content-type": "application/json", **(headers or {})})

    async def main():
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
            client = adapter.make_client(ClientOptions(base_url=base_url, api_key=api_key, http_client=http))
            try:
                async for _ in adapter.stream(client, Request(spec, [Message("user", "hi")])):
                    pass
            except Exception as exc:  # noqa: BLE001 - the mapping is what the tests look at
                return adapter.map_error(exc, spec)
        raise AssertionError("no error")

    return asyncio.run(main())


def _bedrock_error(aws_type: str, status: int, message: str):
    return _cloud_error(BEDROCK, status, {"message": message},
                        {"x-amzn-errortype": f"{aws_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
                        base_url="https://bedrock-runtime.us-east-1.amazonaws.com")


# ----- Amazon Bedrock's and Vertex AI's own error answers ------------------------------------------


def test_bedrock_errors_say_bedrocks_message_not_its_json(aws):
    err = _bedrock_error("ThrottlingException", 429, "Too many requests, please wait before trying again.")
    assert isinstance(err, RateLimitError)
    assert err.message == "Amazon Bedrock rate limit: Too many requests, please wait before trying again."
    err = _bedrock_error("ValidationException", 400, "The provided model identifier is invalid.")
    assert isinstance(err, BadRequestError)
    assert err.message.startswith("Amazon Bedrock rejected the request: The provided model identifier is invalid. ")


def test_bedrock_names_its_errors_in_a_header(aws):
    """A bad signature is a 403 as a denied model is: x-amzn-ErrorType tells them apart."""
    err = _bedrock_error("UnrecognizedClientException", 403,
                         "The security token included in the request is invalid.")
    assert isinstance(err, AuthenticationError) and "AWS credentials" in err.message
    assert "check ." not in err.message
    denied = _bedrock_error("AccessDeniedException", 403,
                            "You don't have access to the model with the specified model ID.")
    assert isinstance(denied, AuthenticationError) and "denied access: You don't have access" in denied.message
    busy = _bedrock_error("ServiceUnavailableException", 503, "Bedrock is unable to process your request.")
    assert isinstance(busy, OverloadedError) and busy.retryable


def test_vertex_rejected_credentials_name_google_clouds():
    err = _cloud_error(VERTEX, 401, {"error": {"code": 401, "status": "UNAUTHENTICATED",
                                               "message": "Request had invalid authentication credentials."}},
                       api_key="ya29.test-token")
    assert isinstance(err, AuthenticationError)
    assert "Google Cloud credentials" in err.message and "check ." not in err.message


def test_vertex_error_in_a_list_says_its_message():
    quota = "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model"
    err = _cloud_error(VERTEX, 429, [{"error": {"code": 429, "message": quota, "status": "RESOURCE_EXHAUSTED"}}],
                       api_key="ya29.test-token")
    assert isinstance(err, RateLimitError) and err.message == f"Vertex AI rate limit: {quota}"


@pytest.mark.parametrize("body, said", [
    (b"upstream connect error or disconnect/reset before headers. reset reason: overflow",
     "upstream connect error or disconnect/reset before headers. reset reason: overflow"),
    (b"", "Bad Gateway"),  # no body: the status's own words
])
def test_a_proxys_plain_text_error_is_said_without_the_sdks_wrapping(body, said):
    handler = _serve(body, 502, {"content-type": "text/plain"})
    mapped = asyncio.run(_collect("anthropic", handler))[2]
    assert isinstance(mapped, ServerError) and mapped.message == f"Anthropic had a server error (502): {said}"


# ----- errors inside a 200 stream ------------------------------------------------------------------


def _midstream(error_type: str, message: str):
    stream = _sse(ANTHROPIC_START, ANTHROPIC_BLOCK, _anthropic_text("Hel"), named=True) + (
        b"event: error\ndata: " + json.dumps({"type": "error", "error": {"type": error_type, "message": message},
                                               "request_id": "req_1"}).encode() + b"\n\n")
    return asyncio.run(_collect("anthropic", _serve(stream)))


def test_an_error_event_has_no_http_status_of_its_own():
    """The stream's 200 is not the error's status: none is shown ("server error (200)") or kept."""
    events, _, mapped = _midstream("api_error", "Internal server error")
    assert _text(events) == "Hel"
    assert isinstance(mapped, ServerError) and mapped.status_code is None
    assert mapped.message == "Anthropic had a server error: Internal server error"


def test_an_invalid_request_error_event_is_a_bad_request():
    _, _, mapped = _midstream("invalid_request_error", "messages: text content blocks must be non-empty")
    assert isinstance(mapped, BadRequestError) and not mapped.retryable
    assert mapped.message.endswith("messages: text content blocks must be non-empty")


def test_an_http_answers_status_outranks_a_catch_all_error_type():
    """A 401 (a gateway's, a batch endpoint's) whose body says invalid_request_error was read as a
    bad request ("rejected the request"), not a rejected key: the type wins only in a stream,
    where there is no status."""
    mapped = _answer_error(401, "invalid_request_error", {})
    assert isinstance(mapped, AuthenticationError) and "rejected the API key" in mapped.message
    assert isinstance(_answer_error(413, "request_too_large", {}), BadRequestError)


# ----- the server's retry advice -------------------------------------------------------------------


def _answer_error(status: int, error_type: str, headers: dict[str, str]):
    body = json.dumps({"type": "error", "error": {"type": error_type, "message": "no"}, "request_id": "req_1"})
    handler = _serve(body.encode(), status, {"content-type": "application/json", **headers})
    return asyncio.run(_collect("anthropic", handler))[2]


@pytest.mark.parametrize("status, error_type, header, retried", [
    (500, "api_error", "false", False),         # a server error the server says not to repeat
    (429, "rate_limit_error", "false", False),
    (400, "invalid_request_error", "true", True),  # (as the SDK obeys it, whatever the status)
    (500, "api_error", None, True),             # no advice: the status decides, as before
    (400, "invalid_request_error", None, False),
])
def test_x_should_retry_is_obeyed_as_the_sdk_obeys_it(status, error_type, header, retried):
    err = _answer_error(status, error_type, {"x-should-retry": header} if header else {})
    assert err.retryable is retried and should_retry(err, 60) is retried


# ----- an answer cut by max_tokens -----------------------------------------------------------------


def test_an_answer_cut_by_max_tokens_is_kept_with_a_note_naming_the_limit():
    stream = _sse(ANTHROPIC_START, ANTHROPIC_BLOCK, _anthropic_text("The tide comes in"),
                  {"type": "content_block_stop", "index": 0},
                  {"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
                   "usage": {"output_tokens": 50}},
                  {"type": "message_stop"}, named=True)
    events, exc, _ = asyncio.run(_collect("anthropic", _serve(stream), max_tokens=50))
    assert exc is None and _text(events) == "The tide comes in"
    assert events[-1].reason == "max_tokens" and "max_tokens (50)" in events[-1].note


def test_a_cut_answer_says_so_on_the_result(simulated):
    import llmcells

    r = llmcells.run(llmcells.ask("Tell me about tides.", "anthropic:claude-haiku-5-5", max_tokens=3,
                                  display=False))
    assert r.ok and r.text and r.finish_reason == "max_tokens"
    assert any("max_tokens (3)" in note for note in r.notes)


# ----- attachments by URL on the clouds -----------------------------------------------------------


IMAGE_URL = "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"
URL_BLOCK = {"type": "image", "source": {"type": "url", "url": IMAGE_URL}}


@pytest.mark.parametrize("model, cloud", [(f"bedrock:{BEDROCK.name}", "Amazon Bedrock"),
                                          ("vertex:claude-haiku-5-5", "Vertex AI")])
def test_claude_on_a_cloud_is_not_sent_an_image_or_pdf_by_url(simulated, model, cloud):
    """Bedrock and Vertex AI fetch no URLs for Claude (base64 sources only): the call is refused
    before sending, in one line, instead of coming back as the cloud's 400."""
    import llmcells

    before = len(simulated.requests)
    for url in (IMAGE_URL, "https://example.com/report.pdf"):
        with pytest.raises(ConfigError, match=f"Anthropic on {cloud} .* by URL; attach the file\\.$"):
            llmcells.run(llmcells.ask("What is this?", model, attach=url, display=False))
    assert len(simulated.requests) == before
    direct = llmcells.run(llmcells.ask("What is this?", "anthropic:claude-haiku-5-5", attach=IMAGE_URL,
                                       display=False))
    assert direct.ok, direct.error  # the direct API fetches it
    assert simulated.requests[-1].body["messages"][-1]["content"][0]["source"]["type"] == "url"


def test_the_simulated_clouds_refuse_a_url_source_as_the_real_ones_do(fresh_sim):
    from test_routes_azure_vertex import _post
    from test_routes_bedrock import _signed_post

    message = {"role": "user", "content": [URL_BLOCK, {"type": "text", "text": "What is this?"}]}
    r = _signed_post(fresh_sim.url, "/model/us.anthropic.claude-haiku-5-5/invoke",
                     {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 20, "messages": [message]})
    assert r.status_code == 400 and r.headers["x-amzn-errortype"].startswith("ValidationException")
    assert r.json()["message"].startswith("messages.0.content.0.source:")
    status, answer = _post(f"{fresh_sim.url}/v1/projects/p/locations/global/publishers/anthropic/models/"
                           "claude-haiku-5-5:rawPredict",
                           {"anthropic_version": "vertex-2023-10-16", "max_tokens": 20, "messages": [message]},
                           {"authorization": "Bearer ya29.sim"})
    assert status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"


# ----- Bedrock's own count at the end of the stream ------------------------------------------------


def test_bedrocks_last_chunk_carries_its_invocation_metrics_and_the_call_reads_through_it(simulated):
    import base64

    import llmcells
    from test_routes_bedrock import BODY, _frames, _signed_post

    r = _signed_post(simulated.url, "/model/us.anthropic.claude-haiku-5-5/invoke-with-response-stream", BODY)
    events = [json.loads(base64.b64decode(json.loads(f.payload)["bytes"])) for f in _frames(r.content)]
    last, delta = events[-1], next(e for e in events if e["type"] == "message_delta")
    metrics = last["amazon-bedrock-invocationMetrics"]
    assert last["type"] == "message_stop"
    assert metrics["inputTokenCount"] == events[0]["message"]["usage"]["input_tokens"]
    assert metrics["outputTokenCount"] == delta["usage"]["output_tokens"]
    assert metrics["invocationLatency"] >= metrics["firstByteLatency"] >= 0

    result = llmcells.run(llmcells.ask("Say hello", "bedrock:us.anthropic.claude-haiku-5-5", display=False))
    assert result.ok and result.finish_reason == "end_turn", result.error
    assert result.usage.output_tokens > 0


# ----- server tools (web search passed in params) --------------------------------------------------


def _web_search_stream(stop_reason: str = "end_turn", searches: int = 2) -> bytes:
    start = {**ANTHROPIC_START, "message": {**ANTHROPIC_START["message"], "usage": {
        "input_tokens": 2679, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        "output_tokens": 3, "service_tier": "standard"}}}
    return _sse(
        start, ANTHROPIC_BLOCK, _anthropic_text("I'll search. "), {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {
            "type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta",
                                                              "partial_json": '{"query": "tides today"}'}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {
            "type": "web_search_tool_result", "tool_use_id": "srvtoolu_01",
            "content": [{"type": "web_search_result", "title": "Tides", "url": "https://example.com/tides",
                         "encrypted_content": "EqgfCioIARgBIiQ", "page_age": None}]}},
        {"type": "content_block_stop", "index": 2},
        {"type": "content_block_start", "index": 3, "content_block": {"type": "text", "text": "", "citations": []}},
        {"type": "content_block_delta", "index": 3, "delta": {"type": "citations_delta", "citation": {
            "type": "web_search_result_location", "cited_text": "High tide at 6 am.",
            "url": "https://example.com/tides", "title": "Tides", "encrypted_index": "Eo8BCioIAhgB"}}},
        {"type": "content_block_delta", "index": 3, "delta": {"type": "text_delta", "text": "High tide is at 6 am."}},
        {"type": "content_block_stop", "index": 3},
        {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
         "usage": {"input_tokens": 10682, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                   "output_tokens": 510, "server_tool_use": {"web_search_requests": searches,
                                                              "web_fetch_requests": 0}}},
        {"type": "message_stop"}, named=True)


def test_web_searches_are_noted_as_left_out_of_the_cost():
    """Web search is billed per search apart from the tokens (cost_usd counts tokens only): the
    answer says how many ran instead of passing a lower cost off as the whole."""
    events, exc, _ = asyncio.run(_collect("anthropic", _serve(_web_search_stream())))
    assert exc is None and _text(events) == "I'll search. High tide is at 6 am."  # the tool blocks are not text
    usage = [e.usage for e in events if isinstance(e, UsageUpdate)][-1]
    assert (usage.input_tokens, usage.output_tokens) == (10682, 510)  # message_delta's totals
    assert events[-1].reason == "end_turn"
    assert events[-1].note == "2 web searches not in the cost: Anthropic bills them apart from the tokens"


def test_a_search_note_joins_a_stop_note():
    events, _, _ = asyncio.run(_collect("anthropic", _serve(_web_search_stream("pause_turn", 1))))
    assert events[-1].note.startswith("paused:") and events[-1].note.endswith("1 web search not in the cost: "
                                                                             "Anthropic bills them apart from the tokens")
