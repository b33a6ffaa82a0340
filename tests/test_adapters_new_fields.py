"""The adapters read what the providers' current APIs send: Anthropic's refusal, pause_turn and
context-window stops and its thinking-token count, OpenAI's queued and refusal events, new
incomplete reasons, cancelled status and cache writes split by lifetime, and Gemini's new finish
reasons. Each goes through the real SDK client over an injected httpx MockTransport."""

from __future__ import annotations

import asyncio

import pytest

from llmcells.errors import BadRequestError, ProviderError
from llmcells.providers import anthropic as anthropic_adapter
from llmcells.providers import openai as openai_adapter
from llmcells.types import Finish, ResponseInfo, Usage, UsageUpdate

from test_adapters_unit import (ANTHROPIC_BLOCK, ANTHROPIC_START, RESP_USAGE, _anthropic_text,
                                _chat_chunk, _collect, _gemini_chunk, _response_obj, _responses_event,
                                _serve, _sse, _text, _text_delta)


def _anthropic(stop_reason: str, delta_extra: dict | None = None, usage: dict | None = None,
               start_usage: dict | None = None):
    start = ANTHROPIC_START
    if start_usage:
        start = {**start, "message": {**start["message"], "usage": {**start["message"]["usage"], **start_usage}}}
    body = _sse(start, ANTHROPIC_BLOCK, _anthropic_text("I can't help with that."),
                {"type": "content_block_stop", "index": 0},
                {"type": "message_delta", "delta": {"stop_reason": stop_reason, **(delta_extra or {})},
                 "usage": usage or {"output_tokens": 7}},
                {"type": "message_stop"}, named=True)
    return asyncio.run(_collect("anthropic", _serve(body)))


def test_anthropic_refusal_is_an_answer_noted_as_a_refusal():
    details = {"type": "refusal", "category": "cyber", "explanation": "Exploit development."}
    events, exc, _ = _anthropic("refusal", {"stop_details": details})
    assert exc is None and _text(events) == "I can't help with that."
    assert events[-1] == Finish("refusal", "refused: the model declined to answer (cyber): Exploit development.")


@pytest.mark.parametrize("reason, words", [("pause_turn", "paused"),
                                           ("model_context_window_exceeded", "context window")])
def test_anthropic_new_stop_reasons_end_with_a_note(reason, words):
    events, exc, _ = _anthropic(reason)
    assert exc is None and events[-1].reason == reason and words in events[-1].note


def test_anthropic_thinking_tokens_are_reasoning_and_speed_and_geo_are_kept():
    events, exc, _ = _anthropic("end_turn", usage={"output_tokens": 900,
                                                   "output_tokens_details": {"thinking_tokens": 700}},
                                start_usage={"service_tier": "priority", "speed": "fast",
                                             "inference_geo": "us"})
    assert exc is None and events[-1] == Finish("end_turn")
    assert [e.usage for e in events if isinstance(e, UsageUpdate)][-1] == Usage(10, 0, 0, 900, 700)
    info = next(e for e in events if isinstance(e, ResponseInfo))
    assert (info.service_tier, info.speed, info.inference_geo) == ("priority", "fast", "us")


def test_anthropic_usage_object_reads_thinking_tokens():
    from anthropic.types import Usage as SdkUsage

    sdk = SdkUsage.model_validate({"input_tokens": 3, "output_tokens": 50,
                                   "output_tokens_details": {"thinking_tokens": 40}})
    assert anthropic_adapter.map_usage(sdk).reasoning_tokens == 40


def _responses(*events):
    body = _sse(_responses_event("response.queued", response=_response_obj("queued")), *events, named=True)
    return asyncio.run(_collect("openai-responses", _serve(body)))


def test_responses_queued_then_refusal_text_is_kept_and_noted():
    events, exc, _ = _responses(
        _responses_event("response.refusal.delta", item_id="m", output_index=0, content_index=0,
                         delta="I can't help "),
        _responses_event("response.refusal.delta", item_id="m", output_index=0, content_index=0,
                         delta="with that."),
        _responses_event("response.completed", response=_response_obj("completed", RESP_USAGE)))
    assert exc is None and _text(events) == "I can't help with that."
    assert isinstance(events[0], ResponseInfo) and events[0].response_id == "resp_1"  # from response.queued
    assert events[-1].reason == "refusal" and events[-1].note.startswith("refused")


@pytest.mark.parametrize("reason", ["max_messages", "steered"])
def test_responses_new_incomplete_reasons_are_short_endings_with_a_note(reason):
    events, exc, _ = _responses(
        _text_delta("Hel"),
        _responses_event("response.incomplete", response=_response_obj(
            "incomplete", RESP_USAGE, incomplete_details={"reason": reason})))
    assert exc is None and _text(events) == "Hel"
    assert events[-1].reason == reason and events[-1].note.startswith("stopped")


def test_responses_cancelled_status_is_an_error():
    _, exc, mapped = _responses(
        _text_delta("Hel"),
        _responses_event("response.completed", response=_response_obj("cancelled", RESP_USAGE)))
    assert isinstance(mapped, ProviderError) and "cancelled" in mapped.message


def test_responses_cache_writes_split_by_lifetime_are_summed():
    raw = {"input_tokens": 100, "output_tokens": 5,
           "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0,
                                    "cache_write_tokens_details": {"ttl_30m_tokens": 30, "ttl_12h_tokens": 12}},
           "output_tokens_details": {"reasoning_tokens": 0}}
    assert openai_adapter.map_usage(raw).cache_write_tokens == 42
    raw["input_tokens_details"]["cache_write_tokens"] = 42  # both given: the same total, once
    assert openai_adapter.map_usage(raw).cache_write_tokens == 42


def test_chat_refusal_field_is_the_text_and_noted():
    chunk = _chat_chunk()
    chunk["choices"][0]["delta"] = {"refusal": "No."}
    body = _sse(chunk, _chat_chunk(finish="stop"), _chat_chunk(usage={"prompt_tokens": 3, "completion_tokens": 1},
                                                                choices=False)) + b"data: [DONE]\n\n"
    events, exc, _ = asyncio.run(_collect("openai", _serve(body)))
    assert exc is None and _text(events) == "No."
    assert events[-1].reason == "stop" and events[-1].note.startswith("refused")


def test_gemini_model_armor_is_noted():
    body = _sse(_gemini_chunk("Par", finish="MODEL_ARMOR"), sep="\r\n")
    events, exc, _ = asyncio.run(_collect("google", _serve(body)))
    assert exc is None and events[-1] == Finish("MODEL_ARMOR", "blocked: a Model Armor policy stopped the answer")


@pytest.mark.parametrize("reason, kind", [("MISSING_THOUGHT_SIGNATURE", BadRequestError),
                                          ("MALFORMED_RESPONSE", ProviderError)])
def test_gemini_reasons_without_a_usable_answer_are_errors(reason, kind):
    body = _sse(_gemini_chunk("x", finish=reason), sep="\r\n")
    _, exc, mapped = asyncio.run(_collect("google", _serve(body)))
    assert type(mapped) is kind


def test_a_note_reaches_the_result_and_the_card_line(simulated):
    """make_plan's note (a temperature left out) reaches Result.notes and the card's line."""
    import llmcells
    from llmcells.display import _format as F

    simulated.set_model("gpt-4.1", text="Fine.")
    r = llmcells.run(llmcells.ask("hi", model="openai:gpt-4.1", temperature=0.5, display=False))
    assert r.ok and r.notes == []
    r = llmcells.run(llmcells.ask("hi", model="claude", temperature=0.5, display=False))
    assert r.ok and r.notes == ["sent without temperature: claude-haiku-5-5 doesn't accept it"]
    assert F.notes_line(r) == r.notes[0]


def test_a_call_with_tools_keeps_its_notes_once(simulated):
    import llmcells

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    r = llmcells.run(llmcells.ask("What is 2 + 3? Use the tool.", model="claude", temperature=0.3,
                                  tools=[add], display=False))
    assert r.ok and r.notes == ["sent without temperature: claude-haiku-5-5 doesn't accept it"]
    assert all("temperature" not in q.body for q in simulated.requests)


def test_the_http_service_answers_with_the_notes():
    from llmcells.serve import result_json
    from llmcells.types import Result

    assert result_json(Result(text="x", notes=["refused: no"]))["notes"] == ["refused: no"]
    assert result_json(Result(text="x"))["notes"] == []


@pytest.mark.parametrize("reason", ["UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS", "LANGUAGE", "IMAGE_SAFETY",
                                    "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER", "NO_IMAGE",
                                    "ESCALATION", "OTHER"])
def test_gemini_every_stop_short_of_an_answer_says_why(reason):
    """Each of today's FinishReasons that ends a candidate short of its answer (often with no
    text at all) gets a note: an empty "ok" answer would not say why it is empty."""
    body = _sse(_gemini_chunk("", finish=reason), sep="\r\n")
    events, exc, _ = asyncio.run(_collect("google", _serve(body)))
    assert exc is None and _text(events) == ""
    assert events[-1].reason == reason and events[-1].note, events[-1]


def test_gemini_finish_message_is_added_to_the_note():
    chunk = _gemini_chunk("", finish="MALFORMED_FUNCTION_CALL")
    chunk["candidates"][0]["finishMessage"] = "Malformed function call: print(default_api.lookup(city=))\n"
    events, exc, _ = asyncio.run(_collect("google", _serve(_sse(chunk, sep="\r\n"))))
    assert exc is None
    assert events[-1].note == ("stopped: the model produced a malformed function call: "
                               "Malformed function call: print(default_api.lookup(city=))")


def test_gemini_account_limited_for_policy_is_an_error():
    body = _sse(_gemini_chunk("", finish="PUP_LIMITED_DISABLED"), sep="\r\n")
    _, exc, mapped = asyncio.run(_collect("google", _serve(body)))
    assert type(mapped) is ProviderError and not mapped.retryable
    assert "Prohibited Use Policy" in mapped.message


def test_gemini_max_tokens_spent_on_thinking_says_so():
    """A thinking model can use the whole max_output_tokens on thoughts: MAX_TOKENS, no text."""
    body = _sse(_gemini_chunk("planning...", thought=True), _gemini_chunk("", finish="MAX_TOKENS"), sep="\r\n")
    events, exc, _ = asyncio.run(_collect("google", _serve(body)))
    assert exc is None and _text(events) == ""
    assert events[-1].reason == "MAX_TOKENS" and "max_tokens" in events[-1].note
    # with some answer text, MAX_TOKENS cuts it short, as every provider's limit says
    body = _sse(_gemini_chunk("Par", finish="MAX_TOKENS"), sep="\r\n")
    events, exc, _ = asyncio.run(_collect("google", _serve(body)))
    assert events[-1] == Finish("MAX_TOKENS", "cut short: the answer reached max_tokens; raise max_tokens for the rest")


def test_gemini_blocked_prompt_says_what_to_do():
    body = _sse({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT",
                                    "blockReasonMessage": "The prompt was blocked."},
                 "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
                 "modelVersion": "gemini-3.5-flash-lite", "responseId": "r2"}, sep="\r\n")
    events, exc, mapped = asyncio.run(_collect("google", _serve(body)))
    assert isinstance(mapped, BadRequestError) and not mapped.retryable
    assert mapped.message == ("Gemini blocked the prompt (PROHIBITED_CONTENT): The prompt was blocked; "
                              "rephrase it or remove what the filter objects to.")


def test_gemini_max_tokens_after_a_function_call_is_not_called_empty():
    call = {"functionCall": {"name": "add", "args": {"a": 2}}, "thoughtSignature": "AQI="}
    chunk = _gemini_chunk("", finish="MAX_TOKENS")
    chunk["candidates"][0]["content"]["parts"] = [call]
    events, exc, _ = asyncio.run(_collect("google", _serve(_sse(chunk, sep="\r\n"))))
    assert exc is None and events[-1] == Finish("MAX_TOKENS", "cut short: the answer reached max_tokens; raise max_tokens for the rest")
