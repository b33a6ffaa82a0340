"""Tool calls in the real recordings: the adapter reads the streamed tool calls of OpenAI Chat
recordings (01, 02) as part events that fold into the recorded calls, and builds the follow-up request the way the recorded client sent it."""

from __future__ import annotations

import asyncio
import json

from _parts import tool_calls_of
from test_cassettes import CASES, _run, load_interactions

from llmcells.providers._tools import chat_messages
from llmcells.types import Finish, Message, PartEnd, ToolCall


def _calls(cassettes_dir, name):
    case = CASES[name]
    _, events, error = asyncio.run(_run(case, load_interactions(cassettes_dir, case.file)))
    assert error is None
    # Chat never ends a tool-call part itself: the calls end with the stream, at Finish
    assert isinstance(events[-1], Finish) and events[-1].reason == "tool_calls"
    assert not any(isinstance(e, PartEnd) for e in events)
    return tool_calls_of(events)


def test_streamed_tool_calls_from_real_recordings(cassettes_dir):
    (call,) = _calls(cassettes_dir, "01-chat-tool-call-turn")
    assert call.name == "multiply" and json.loads(call.arguments_json) == {"a": 1231, "b": 2331}
    assert call.id == "call_1EYWDzueHEp8OsB8jJSEp7WB"
    (call,) = _calls(cassettes_dir, "02-chat-tool-call-turn")
    assert call == ToolCall("call_ZR5UUuTt3pf61kjwAJIYdVMj", "get_capital", '{"country":"UK"}')


def test_the_follow_up_request_is_shaped_like_the_recorded_one(cassettes_dir):
    recorded = load_interactions(cassettes_dir, "02")[1]["request"]["parsed_body"]["messages"]
    call = ToolCall("call_ZR5UUuTt3pf61kjwAJIYdVMj", "get_capital", '{"country":"UK"}')
    ours = chat_messages([
        Message("user", "What is the capital of the UK? Use the tool, then answer."),
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", "London", tool_call_id=call.id, name="get_capital"),
    ])
    assert ours == recorded
