"""The OpenAI and Azure OpenAI adapters against what today's APIs send: error answers (status,
code, rate-limit headers, Azure's content filter and 404s), Responses reasoning summaries,
messages and incomplete endings, Chat Completions' filtered or cut answers, and what a request
sends (token limits). Streams and error answers go through the real SDK client over an injected
httpx MockTransport; the tier, 429 and token-limit checks through the simulator."""

from __future__ import annotations

import asyncio
import json

import pytest

from llmcells.errors import (AuthenticationError, BadRequestError, ModelNotFoundError, ProviderError,
                             RateLimitError, ServerError)
from llmcells.models import ModelSpec
from llmcells.providers import openai as openai_adapter
from llmcells.retry import should_retry
from llmcells.types import Finish, Message, Request

from _parts import reasoning_of
from test_adapters_unit import (RESP_USAGE, SPECS, _chat_chunk, _collect, _response_obj,
                                _responses_event, _serve, _sse, _text, _text_delta)

CHAT_USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}


def _error(status: int, error: dict, headers: dict | None = None, kind: str = "openai",
           base_url: str | None = None):
    """The mapped error of an HTTP error answer with this `error` object."""
    handler = _serve(json.dumps({"error": error}).encode(), status,
                     {"content-type": "application/json", **(headers or {})})
    _, _, mapped = asyncio.run(_collect(kind, handler, base_url=base_url))
    return mapped


def test_a_403_model_not_found_is_access_denied_not_an_unknown_model():
    # What OpenAI answers for a model the project may not use (the model exists).
    mapped = _error(403, {"message": "Project `proj_abc` does not have access to model `gpt-4o-mini`",
                          "type": "invalid_request_error", "param": None, "code": "model_not_found"})
    assert isinstance(mapped, AuthenticationError) and mapped.kind == "authentication"
    assert mapped.message == ("OpenAI denied access: Project `proj_abc` does not have access to "
                              "model `gpt-4o-mini`")
    assert mapped.status_code == 403 and not mapped.retryable


def test_a_429_without_retry_after_waits_for_the_exhausted_limit_to_reset():
    body = {"message": "Rate limit reached for gpt-4o-mini in organization org-x on requests per day "
                       "(RPD): Limit 10000, Used 10000, Requested 1. Please try again in 6m0s.",
            "type": "requests", "param": None, "code": "rate_limit_exceeded"}
    limits = {"x-ratelimit-limit-requests": "10000", "x-ratelimit-remaining-requests": "0",
              "x-ratelimit-reset-requests": "6m0s", "x-ratelimit-limit-tokens": "200000",
              "x-ratelimit-remaining-tokens": "199000", "x-ratelimit-reset-tokens": "300ms"}
    mapped = _error(429, body, limits)
    assert isinstance(mapped, RateLimitError) and mapped.retryable
    # the requests limit is the exhausted one: its reset, not the tokens' 300 ms
    assert mapped.retry_after == pytest.approx(360, abs=2)
    assert not should_retry(mapped, max_wait=60)  # longer than llmcells waits: ends at once

    tokens = {**limits, "x-ratelimit-remaining-requests": "9000", "x-ratelimit-remaining-tokens": "0",
              "x-ratelimit-reset-tokens": "1.5s"}
    assert _error(429, body, tokens).retry_after == pytest.approx(1.5, abs=0.5)
    # a retry-after header, when sent, wins; no exhausted limit and none: backoff
    assert _error(429, body, {**limits, "retry-after": "2"}).retry_after == 2
    assert _error(429, body, {**tokens, "x-ratelimit-remaining-tokens": "5"}).retry_after is None


def _responses(*events: dict):
    body = _sse(_responses_event("response.created", response=_response_obj("in_progress")), *events,
                named=True)
    return asyncio.run(_collect("openai-responses", _serve(body)))


def _summary(item: str, index: int, text: str) -> list[dict]:
    """One reasoning summary part as the API streams it (added, text deltas, done)."""
    at = {"item_id": item, "output_index": 0, "summary_index": index}
    half = len(text) // 2
    return [_responses_event("response.reasoning_summary_part.added", **at,
                             part={"type": "summary_text", "text": ""}),
            _responses_event("response.reasoning_summary_text.delta", **at, delta=text[:half]),
            _responses_event("response.reasoning_summary_text.delta", **at, delta=text[half:]),
            _responses_event("response.reasoning_summary_text.done", **at, text=text),
            _responses_event("response.reasoning_summary_part.done", **at,
                             part={"type": "summary_text", "text": text})]


def test_responses_reasoning_summary_parts_and_items_are_separate_paragraphs():
    events, exc, _ = _responses(
        *_summary("rs_1", 0, "**Reading the question**\n\nThe user wants a number."),
        *_summary("rs_1", 1, "**Checking**\n\nTwo plus two is four."),
        *_summary("rs_2", 0, "**Answering**\n\nSay it plainly."),
        _text_delta("4"),
        _responses_event("response.completed", response=_response_obj("completed", RESP_USAGE)))
    assert exc is None and _text(events) == "4"
    assert reasoning_of(events) == ("**Reading the question**\n\nThe user wants a number.\n\n"
                                    "**Checking**\n\nTwo plus two is four.\n\n"
                                    "**Answering**\n\nSay it plainly.")


def _incomplete(reason: str) -> dict:
    return _responses_event("response.incomplete", response=_response_obj(
        "incomplete", RESP_USAGE, incomplete_details={"reason": reason}))


def test_responses_incomplete_keeps_the_partial_answer_and_says_why():
    events, exc, _ = _responses(_text_delta("The first half"), _incomplete("max_output_tokens"))
    assert exc is None and _text(events) == "The first half"
    assert events[-1] == Finish("max_output_tokens", "cut short: the answer reached max_tokens; "
                                                     "raise max_tokens for the rest")
    events, exc, _ = _responses(_text_delta("Once upon"), _incomplete("content_filter"))
    assert exc is None and _text(events) == "Once upon"
    assert events[-1].reason == "content_filter"
    assert events[-1].note.startswith("blocked: OpenAI's content filter stopped the answer")


def test_responses_reasoning_that_used_every_token_says_so():
    # A reasoning model given a small max_output_tokens: a summary, then no answer at all.
    events, exc, _ = _responses(*_summary("rs_1", 0, "**Thinking**\n\nLong."),
                                _incomplete("max_output_tokens"))
    assert exc is None and _text(events) == ""
    assert events[-1].note == ("stopped: max_tokens was used up, reasoning included, before any "
                               "answer text; raise max_tokens (or lower the reasoning effort)")


def _chat(*chunks: dict):
    return asyncio.run(_collect("openai", _serve(_sse(*chunks))))


@pytest.mark.parametrize("reason, note", [
    ("length", "cut short: the answer reached max_tokens; raise max_tokens for the rest"),
    ("content_filter", "blocked: OpenAI's content filter stopped the answer (any text before it is kept)"),
    ("stop", None)])
def test_chat_cut_or_filtered_answer_keeps_its_text_with_a_note(reason, note):
    events, exc, _ = _chat(_chat_chunk("Once upon"), _chat_chunk(finish=reason),
                           _chat_chunk(choices=False, usage=CHAT_USAGE))
    assert exc is None and _text(events) == "Once upon"
    assert events[-1] == Finish(reason, note)


@pytest.mark.parametrize("event", [
    # the error event as the spec has it (flat), and as the API also sends it (nested)
    _responses_event("error", code="context_length_exceeded", param="input",
                     message="Your input exceeds the context window of this model."),
    {"type": "error", "sequence_number": 2, "error": {
        "type": "invalid_request_error", "code": "context_length_exceeded", "param": "input",
        "message": "Your input exceeds the context window of this model."}},
    # a failed response whose error blames the request
    _responses_event("response.failed", response=_response_obj("failed", None, error={
        "code": "invalid_image_url", "message": "Error while downloading https://example.com/a.png."}))])
def test_responses_errors_that_blame_the_request_are_bad_requests(event):
    _, _, mapped = _responses(event)
    assert isinstance(mapped, BadRequestError) and not mapped.retryable
    assert mapped.message.startswith("OpenAI rejected the request: ")
    assert mapped.message.endswith(("the context window of this model.", "example.com/a.png."))


def test_responses_server_and_rate_limit_failures_stay_retryable():
    _, _, mapped = _responses(_responses_event("response.failed", response=_response_obj(
        "failed", None, error={"code": "server_error", "message": "The model failed."})))
    assert isinstance(mapped, ServerError) and mapped.retryable
    _, _, mapped = _responses(_responses_event("error", code="rate_limit_exceeded", param=None,
                                               message="Rate limit reached."))
    assert isinstance(mapped, RateLimitError) and mapped.retryable


AZURE = ModelSpec("azure", "azure", "my-gpt-deployment", "my-gpt-deployment")
AZURE_FILTERED = {
    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
               "policy. Please modify your prompt and retry. To learn more about our content filtering "
               "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
    "type": None, "param": "prompt", "code": "content_filter", "status": 400,
    "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
        "hate": {"filtered": False, "severity": "safe"},
        "jailbreak": {"filtered": True, "detected": True},
        "self_harm": {"filtered": False, "severity": "safe"},
        "sexual": {"filtered": False, "severity": "safe"},
        "violence": {"filtered": True, "severity": "medium"}}}}


def test_azure_content_filter_400_names_the_categories(monkeypatch):
    monkeypatch.setitem(SPECS, "azure", AZURE)
    mapped = _error(400, AZURE_FILTERED, kind="azure", base_url="https://res.openai.azure.com")
    assert isinstance(mapped, BadRequestError) and not mapped.retryable
    assert mapped.message == ("Azure OpenAI rejected the request: the content filter blocked the prompt "
                              "(jailbreak: detected, violence: medium); change the prompt, or the "
                              "deployment's content filter")


def test_an_endpoints_token_limit_is_max_tokens_and_openais_is_max_completion_tokens():
    # Ollama's OpenAI-compatible chat request knows only max_tokens (max_completion_tokens is
    # dropped unread); OpenAI's reasoning models, and Azure's, refuse max_tokens.
    endpoint = ModelSpec("ollama", "openai", "llama3.2", "llama3.2", base_url="http://localhost:11434/v1")
    body, _ = openai_adapter.chat_body(Request(endpoint, [Message("user", "hi")], max_tokens=50))
    assert body["max_tokens"] == 50 and "max_completion_tokens" not in body
    for spec in (SPECS["openai"], AZURE):
        body, _ = openai_adapter.chat_body(Request(spec, [Message("user", "hi")], max_tokens=50))
        assert body["max_completion_tokens"] == 50 and "max_tokens" not in body


def test_azure_404s_speak_of_deployments_and_the_endpoint(monkeypatch):
    monkeypatch.setitem(SPECS, "azure", AZURE)
    url = "https://res.openai.azure.com"
    mapped = _error(404, {"code": "DeploymentNotFound", "message": "The API deployment for this resource "
                          "does not exist. If you created the deployment within the last 5 minutes, "
                          "please wait a moment and try again."}, kind="azure", base_url=url)
    assert isinstance(mapped, ModelNotFoundError) and mapped.status_code == 404
    assert mapped.message == ("Azure OpenAI has no deployment named 'my-gpt-deployment' at "
                              "res.openai.azure.com: check the deployment name (a new one takes a few "
                              "minutes to answer).")
    mapped = _error(404, {"code": "404", "message": "Resource not found"}, kind="azure", base_url=url)
    assert isinstance(mapped, ProviderError) and not isinstance(mapped, ModelNotFoundError)
    assert "check AZURE_OPENAI_ENDPOINT" in mapped.message and "OPENAI_API_VERSION" in mapped.message


def test_the_simulators_429_shows_the_exhausted_limit_as_the_api_does(fresh_sim):
    # OpenAI's 429 carries its limits, the exhausted one at 0 with its reset, and no retry-after.
    import openai

    async def call():
        client = openai.AsyncOpenAI(base_url=fresh_sim.url + "/v1", api_key="k", max_retries=0)
        await client.chat.completions.create(model="gpt-4.1-mini",
                                             messages=[{"role": "user", "content": "hi"}])

    fresh_sim.inject("429")
    with pytest.raises(openai.RateLimitError) as caught:
        asyncio.run(call())
    headers = caught.value.response.headers
    assert "retry-after" not in headers and headers["x-ratelimit-remaining-tokens"] == "0"
    assert headers["x-ratelimit-reset-tokens"] == "1.2s" and "try again in 1.2s" in caught.value.message
    mapped = openai_adapter.ADAPTER.map_error(caught.value, SPECS["openai"])
    assert isinstance(mapped, RateLimitError) and mapped.retry_after == pytest.approx(1.2, abs=0.3)


@pytest.mark.parametrize("model", ["openai:gpt-5.5", "openai-responses:gpt-5.5"])
def test_a_flex_call_is_served_and_priced_at_flex(simulated, model):
    # The answer says which tier served it (the simulator as the API: flex asked, flex served;
    # fast asked, priority served); the Result keeps it and is priced at that tier.
    import llmcells

    def ask(**params):
        return llmcells.run(llmcells.ask("Say hello", model=model, params=params, display=False))

    standard, flex, fast = ask(), ask(service_tier="flex"), ask(service_tier="fast")
    assert (standard.service_tier, flex.service_tier, fast.service_tier) == ("default", "flex", "priority")
    assert standard.usage == flex.usage == fast.usage
    assert flex.cost_usd == pytest.approx(standard.cost_usd / 2)
    assert fast.cost_usd > standard.cost_usd


def test_responses_two_messages_are_two_paragraphs_of_the_answer():
    # gpt-5.x models may write a commentary message before the final answer, in one response.
    def delta(item: str, index: int, text: str) -> dict:
        return _responses_event("response.output_text.delta", item_id=item, output_index=index,
                                content_index=0, delta=text, logprobs=[])

    events, exc, _ = _responses(delta("msg_1", 0, "Let me work "), delta("msg_1", 0, "that out."),
                                delta("msg_2", 1, "It is "), delta("msg_2", 1, "four."),
                                _responses_event("response.completed",
                                                 response=_response_obj("completed", RESP_USAGE)))
    assert exc is None and _text(events) == "Let me work that out.\n\nIt is four."


def test_a_token_limit_below_the_responses_apis_least_is_sent_as_16_with_a_note(simulated):
    # The Responses API refuses max_output_tokens below 16 (a 400 after sending); Chat
    # Completions takes any positive limit.
    import llmcells

    r = llmcells.run(llmcells.ask("Write a story", model="openai-responses:gpt-5.5", max_tokens=5,
                                  display=False))
    assert r.ok, r.error
    assert simulated.requests[-1].body["max_output_tokens"] == 16
    assert r.notes[0] == "sent max_tokens 16, not 5: the Responses API takes no fewer"
    r = llmcells.run(llmcells.ask("Write a story", model="openai:gpt-5.5", max_tokens=5, display=False))
    assert r.ok and simulated.requests[-1].body["max_completion_tokens"] == 5
    assert not any(n.startswith("sent max_tokens") for n in r.notes)
