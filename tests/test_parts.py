"""The engine folds a response's part events in one place: a stand-in adapter, registered like
any adapter, streams interleaved text, reasoning and tool-call parts through the real
`engine.execute`, and the Result holds the answer, the reasoning and the ToolCalls. Then the
adapters' side: OpenAI Chat's and Anthropic's streamed tool calls as parts, and stand-in Gemini
CLI and Codex executables whose answers arrive as text parts."""

from __future__ import annotations

import re

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import llmcells
from _parts import fold
from llmcells import engine, providers
from llmcells.errors import IncompleteStreamError
from llmcells.models import ModelSpec
from llmcells.providers.base import ClientOptions, Provider
from llmcells.types import (CallInfo, CallObserver, Finish, Message, PartDelta, PartEnd, PartStart,
                            Request, ResponseInfo, ToolCall, Usage, UsageUpdate)
from test_adapters_unit import (ANTHROPIC_BLOCK, ANTHROPIC_START, _anthropic_text, _chat_chunk,
                                _collect, _serve, _sse)

ADAPTER = "parts_stand_in"


class Scripted(Provider):
    """An adapter whose every attempt streams the next script of events (an exception in a
    script is raised there)."""

    name = ADAPTER

    def __init__(self, *scripts: list[Any]):
        self.scripts = list(scripts)

    def make_client(self, options: ClientOptions) -> Any:
        return object()

    async def _events(self, script: list[Any]) -> AsyncIterator[Any]:
        for event in script:
            if isinstance(event, BaseException):
                raise event
            yield event

    def stream(self, client: Any, request: Request) -> AsyncIterator[Any]:
        return self._events(self.scripts.pop(0))

    def map_error(self, exc: BaseException, spec: ModelSpec) -> None:
        return None


class Seen(CallObserver):
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.first_tokens: list[float] = []

    def on_text(self, delta: str) -> None:
        self.texts.append(delta)

    def on_first_token(self, ttft_s: float) -> None:
        self.first_tokens.append(ttft_s)


def _execute(monkeypatch, *scripts: list[Any]) -> tuple[Any, Seen]:
    monkeypatch.setitem(providers._instances, ADAPTER, Scripted(*scripts))
    spec = ModelSpec("openai", ADAPTER, "stand-in", "stand-in", simulated=True)
    plan = engine.CallPlan(request=Request(spec, [Message("user", "hi")]),
                           info=CallInfo("c1", "stand-in", spec.id, spec.provider, simulated=True),
                           timeout=30, ttft_timeout=30, connect_timeout=5)
    seen = Seen()
    return llmcells.run(engine.execute(plan, seen)), seen


def test_interleaved_parts_fold_into_the_answer_the_reasoning_and_the_tool_calls(monkeypatch):
    script = [
        ResponseInfo(response_model="stand-in-001", response_id="r1"),
        PartStart(0, "reasoning"),
        PartDelta(0, "Weather "),
        PartStart(1, "text"),
        PartDelta(1, "Let me check "),
        PartDelta(0, "and time."),                 # reasoning again, after text began
        PartStart(2, "tool_call", id="call_w", name="get_weather"),
        PartStart(3, "tool_call"),                 # its id and name come later (OpenAI Chat)
        PartDelta(2, '{"city":'),
        PartDelta(3, '{"tz":', id="call_t"),
        PartDelta(1, "\ud83d"),                    # a surrogate pair split over two deltas
        PartDelta(2, ' "Paris"}'),
        PartDelta(3, ' "UTC"}', name="get_time"),
        PartDelta(1, "\ude00 both."),
        PartEnd(2),
        PartStart(4, "tool_call", name="ping"),    # no id, no arguments, never ended
        PartDelta(9, "not a part"),                # a delta for a part that never started
        UsageUpdate(Usage(input_tokens=5, output_tokens=9)),
        Finish("tool_calls"),                      # parts 3 and 4 end here
    ]
    r, seen = _execute(monkeypatch, script)
    assert r.status == "ok", r.error
    assert r.text == "Let me check \U0001F600 both."
    assert r.reasoning == "Weather and time."
    assert r.tool_calls[:2] == [
        ToolCall("call_w", "get_weather", '{"city": "Paris"}'),  # ended first, by its PartEnd
        ToolCall("call_t", "get_time", '{"tz": "UTC"}'),          # id and name that came late
    ]
    ping = r.tool_calls[2]                                        # the one rule: position, "{}"
    assert (ping.name, ping.arguments_json) == ("ping", "{}") and ping.id.startswith("call_2_")
    assert "".join(seen.texts) == r.text and "\ud83d" not in seen.texts
    assert len(seen.first_tokens) == 1 and r.ttft_s == seen.first_tokens[0]
    assert r.finish_reason == "tool_calls" and r.usage.output_tokens == 9
    assert r.response_model == "stand-in-001"


def test_tool_calls_left_open_end_at_finish_in_the_order_of_their_parts(monkeypatch):
    script = [PartStart(7, "tool_call", id="b", name="second"),
              PartStart(3, "tool_call", id="a", name="first"),
              PartDelta(7, '{"n": 2}'), PartDelta(3, '{"n": 1}'),
              Finish("tool_calls")]
    r, _ = _execute(monkeypatch, script)
    assert [(c.id, c.arguments_json) for c in r.tool_calls] == [("a", '{"n": 1}'), ("b", '{"n": 2}')]
    assert r.text == "" and r.ttft_s is None


def test_a_gemini_signature_goes_with_its_call(monkeypatch):
    script = [PartStart(0, "tool_call", name="f", signature="c2ln"), PartDelta(0, "{}"), PartEnd(0),
              Finish("STOP")]
    r, _ = _execute(monkeypatch, script)
    [call] = r.tool_calls
    assert (call.name, call.arguments_json, call.signature) == ("f", "{}", "c2ln")
    assert re.fullmatch(r"call_0_[0-9a-f]{8}", call.id), call.id  # (unique across turns: see below)


def test_calls_without_ids_get_ids_unique_across_turns(monkeypatch):
    """Gemini sends calls without ids: each turn's were named call_0, call_1..., so a chat that
    moved to Claude carried the same tool_use id twice, which Anthropic refuses (400)."""
    script = [PartStart(0, "tool_call", name="f"), PartDelta(0, "{}"), PartEnd(0), Finish("STOP")]
    first, _ = _execute(monkeypatch, script)
    second, _ = _execute(monkeypatch, script)
    assert first.tool_calls[0].id != second.tool_calls[0].id


@pytest.mark.parametrize("shown", [False, True])
def test_reasoning_is_shown_but_tool_call_arguments_are_not(monkeypatch, shown):
    """A cut after visible reasoning keeps the partial answer and is never sent again; a cut
    after only a tool call's fragments showed nothing, so it is sent again."""
    llmcells.configure(retry_initial_wait=0.01)
    first = ([PartStart(0, "reasoning"), PartDelta(0, "hmm")] if shown
             else [PartStart(0, "tool_call", id="x", name="f"), PartDelta(0, '{"a"')])
    cut = IncompleteStreamError("cut", provider="openai")
    again = [PartStart(0, "text"), PartDelta(0, "ok"), Finish("stop")]
    r, _ = _execute(monkeypatch, first + [cut], again)
    if shown:
        assert r.status == "incomplete" and r.attempts == 1 and r.reasoning == "hmm"
    else:
        assert r.status == "ok" and r.attempts == 2 and r.text == "ok"
        assert r.tool_calls == []  # the broken attempt's call is not kept


# ----- adapters: each provider's tool calls as parts ------------------------------------------------


def _chat_tools(*calls: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {**_chat_chunk(), "choices": [{"index": 0, "delta": {"tool_calls": list(calls)},
                                          "finish_reason": finish}]}


def test_openai_chat_tool_calls_with_a_late_id_and_name_and_no_arguments():
    body = _sse(_chat_chunk("Checking."),
                _chat_tools({"index": 0, "type": "function", "function": {"arguments": '{"a"'}}),
                _chat_tools({"index": 1, "id": "call_y", "type": "function", "function": {"name": "g"}}),
                _chat_tools({"index": 0, "id": "call_x", "function": {"name": "f", "arguments": ": 1}"}}),
                _chat_chunk(finish="tool_calls")) + b"data: [DONE]\n\n"
    events, exc, _ = asyncio.run(_collect("openai", _serve(body)))
    assert exc is None
    text, _, calls = fold(events)
    assert text == "Checking."
    assert calls == [ToolCall("call_x", "f", '{"a": 1}'), ToolCall("call_y", "g", "{}")]


def test_anthropic_tool_use_blocks_are_parts_ended_by_their_block_stop():
    tool = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    body = _sse(ANTHROPIC_START, ANTHROPIC_BLOCK, _anthropic_text("Let me look."),
                {"type": "content_block_stop", "index": 0},
                {"type": "content_block_start", "index": 1, "content_block": tool},
                {"type": "content_block_delta", "index": 1,
                 "delta": {"type": "input_json_delta", "partial_json": '{"city": '}},
                {"type": "content_block_delta", "index": 1,
                 "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'}},
                {"type": "content_block_stop", "index": 1},
                {"type": "content_block_start", "index": 2,
                 "content_block": {**tool, "id": "toolu_2", "name": "now"}},
                {"type": "content_block_stop", "index": 2},
                {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
                {"type": "message_stop"}, named=True)
    events, exc, _ = asyncio.run(_collect("anthropic", _serve(body)))
    assert exc is None
    assert [e for e in events if isinstance(e, PartEnd)] == [PartEnd(0), PartEnd(1), PartEnd(2)]
    text, _, calls = fold(events)
    assert text == "Let me look."
    assert calls == [ToolCall("toolu_1", "get_weather", '{"city": "Oslo"}'), ToolCall("toolu_2", "now", "{}")]


# ----- the agent CLIs: their answers are text parts too ---------------------------------------------

GEMINI_CLI = """
import json, sys
if "--version" in sys.argv:
    print("0.0.1"); sys.exit()
for line in [{"type": "init", "session_id": "s1", "model": "gemini-stand-in"},
             {"type": "message", "role": "assistant", "content": "Hel"},
             {"type": "tool_use", "tool_name": "ls"},
             {"type": "message", "role": "assistant", "content": "lo"},
             {"type": "result", "status": "success", "stats": {"input_tokens": 4, "output_tokens": 2}}]:
    print(json.dumps(line), flush=True)
"""

CODEX = """
import json, sys
if "--version" in sys.argv:
    print("0.0.1"); sys.exit()
def send(msg):
    print(json.dumps(msg), flush=True)
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("id") == 1:
        send({"id": 1, "result": {}})
    elif msg.get("id") == 2:
        send({"id": 2, "result": {"thread": {"id": "t1"}, "model": "codex-stand-in"}})
    elif msg.get("id") == 3:
        send({"id": 3, "result": {}})
        send({"method": "turn/started", "params": {}})
        for item, delta in [("a", "Hel"), ("a", "lo"), ("b", "World")]:
            send({"method": "item/agentMessage/delta", "params": {"itemId": item, "delta": delta}})
        send({"method": "thread/tokenUsage/updated",
              "params": {"tokenUsage": {"total": {"inputTokens": 4, "outputTokens": 3}}}})
        send({"method": "turn/completed", "params": {"turn": {"status": "completed"}}})
"""


@pytest.mark.parametrize("model,command,script,answer", [
    ("gemini-cli:gemini-3.5-flash", "gemini", GEMINI_CLI, "Hello"),
    ("codex:gpt-5.5-codex", "codex", CODEX, "Hello\n\nWorld"),  # a new message: a new paragraph
])
def test_an_agent_clis_answer_streams_as_a_text_part(simulated, tmp_path, monkeypatch, model,
                                                      command, script, answer):
    import os
    import sys

    cli = tmp_path / "bin" / command
    cli.parent.mkdir()
    cli.write_text(f"#!{sys.executable}\n{script}")
    cli.chmod(0o755)
    monkeypatch.setenv("PATH", f"{cli.parent}{os.pathsep}{os.environ['PATH']}")
    r = llmcells.run(llmcells.ask("hi", model=model, display=False))
    assert r.status == "ok", r.error
    assert r.text == answer and r.ttft_s is not None and r.tool_calls == []


def test_a_tool_name_is_shown_only_when_it_is_a_name_an_api_allows():
    """The name in "calling NAME…" is model output: markup or control sequences never pass."""
    assert engine.shown_tool_name("get_weather") == "get_weather"
    assert engine.shown_tool_name("search.web-v2") == "search.web-v2"
    for hostile in ("<img src=x onerror=alert(1)>", "\x1b[2J\x1b[Hgotcha", "a b", "x" * 65, "", None):
        assert engine.shown_tool_name(hostile) is None, hostile
