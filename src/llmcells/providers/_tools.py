"""Tool calling on each provider's wire: a conversation with tool calls and results, and the
tool declarations, in the shape each official SDK takes (no SDK imports here). Streamed events
may be SDK objects or the plain JSON objects the server sent: they are read with `field`.

request.extra["tools"] holds the declarations as [{"name", "description", "parameters"}]
(parameters: a JSON schema), built by llmcells.tools from the user's functions.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ..types import Message, Request, ToolCall
from ._common import field


def declared(request: Request) -> list[dict[str, Any]]:
    """The tool declarations of request (empty when it has none)."""
    return list(request.extra.get("tools") or ())


def _args(call: ToolCall) -> dict[str, Any]:
    """A call's arguments as an object (what Anthropic and Gemini take back); bad JSON -> {}."""
    try:
        value = json.loads(call.arguments_json or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# ----- OpenAI Chat Completions --------------------------------------------------------------------


def chat_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Chat Completions messages: assistant `tool_calls`, then one role "tool" message per result."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content})
        elif m.tool_calls:
            out.append({"role": "assistant", "content": m.content or None,
                        "tool_calls": [{"id": c.id, "type": "function",
                                        "function": {"name": c.name, "arguments": c.arguments_json}}
                                       for c in m.tool_calls]})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t["name"], "description": t["description"],
                                              "parameters": t["parameters"]}} for t in tools]


class ChatToolCalls:
    """Chat Completions streams a call in pieces (`delta.tool_calls[i]`: id and name first, then
    argument fragments, by index); this joins them."""

    def __init__(self) -> None:
        self.calls: dict[int, dict[str, str]] = {}

    def add(self, deltas: Any) -> None:
        for d in deltas or ():
            index = field(d, "index") or 0
            call = self.calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
            if field(d, "id"):
                call["id"] = field(d, "id")
            fn = field(d, "function")
            if fn is not None:
                if field(fn, "name"):
                    call["name"] = field(fn, "name")
                if field(fn, "arguments"):
                    call["arguments"] += field(fn, "arguments")

    def done(self) -> list[ToolCall]:
        return [ToolCall(c["id"] or f"call_{i}", c["name"], c["arguments"] or "{}")
                for i, c in sorted(self.calls.items())]


# ----- OpenAI Responses ---------------------------------------------------------------------------


def responses_input(messages: list[Message]) -> list[dict[str, Any]]:
    """Responses input items: `function_call` items after the assistant's text, and a
    `function_call_output` item per result."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"type": "function_call_output", "call_id": m.tool_call_id or "",
                        "output": m.content})
            continue
        if m.content or not m.tool_calls:
            out.append({"role": m.role, "content": m.content})
        for c in m.tool_calls:
            out.append({"type": "function_call", "call_id": c.id, "name": c.name,
                        "arguments": c.arguments_json})
    return out


def responses_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "function", "name": t["name"], "description": t["description"],
             "parameters": t["parameters"], "strict": False} for t in tools]


def responses_call(item: Any) -> ToolCall | None:
    """The ToolCall of a finished Responses output item, if it is a function_call."""
    if field(item, "type") != "function_call":
        return None
    return ToolCall(field(item, "call_id", "id") or "", field(item, "name") or "",
                    field(item, "arguments") or "{}")


# ----- Anthropic ----------------------------------------------------------------------------------


def anthropic_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Messages with `tool_use` blocks in the assistant turn and `tool_result` blocks in the next
    user turn (consecutive results share one user message, as the API requires)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.tool_call_id or "",
                                     "content": m.content}
            if m.is_error:
                block["is_error"] = True
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif m.tool_calls:
            blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": _args(c)}
                       for c in m.tool_calls]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def anthropic_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
            for t in tools]


class AnthropicToolCalls:
    """tool_use blocks: content_block_start names the call, input_json_delta events carry its
    arguments, content_block_stop ends it."""

    def __init__(self) -> None:
        self.open: dict[int, dict[str, str]] = {}

    def start(self, index: int, block: Any) -> None:
        if field(block, "type") == "tool_use":
            self.open[index] = {"id": field(block, "id") or "", "name": field(block, "name") or "",
                                "arguments": ""}

    def delta(self, index: int, delta: Any) -> None:
        if field(delta, "type") == "input_json_delta" and index in self.open:
            self.open[index]["arguments"] += field(delta, "partial_json") or ""

    def stop(self, index: int) -> ToolCall | None:
        call = self.open.pop(index, None)
        if call is None:
            return None
        return ToolCall(call["id"], call["name"], call["arguments"] or "{}")


# ----- Gemini -------------------------------------------------------------------------------------


def gemini_contents(messages: list[Message]) -> list[dict[str, Any]]:
    """contents with `function_call` parts in the model's turn and `function_response` parts in
    the next user turn (consecutive results share one turn)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            key = "error" if m.is_error else "result"
            part = {"function_response": {"id": m.tool_call_id, "name": m.name or "",
                                          "response": {key: m.content}}}
            if out and out[-1]["role"] == "user" and "function_response" in out[-1]["parts"][0]:
                out[-1]["parts"].append(part)
            else:
                out.append({"role": "user", "parts": [part]})
        elif m.tool_calls:
            parts: list[dict[str, Any]] = [{"text": m.content}] if m.content else []
            for c in m.tool_calls:
                part = {"function_call": {"id": c.id, "name": c.name, "args": _args(c)}}
                if c.signature:  # Gemini 3 refuses a function call sent back without it
                    part["thought_signature"] = base64.b64decode(c.signature)
                parts.append(part)
            out.append({"role": "model", "parts": parts})
        else:
            out.append({"role": "model" if m.role == "assistant" else "user",
                        "parts": [{"text": m.content}]})
    return out


def gemini_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # parameters_json_schema takes a JSON schema as is (parameters would take Gemini's subset).
    return [{"function_declarations": [{"name": t["name"], "description": t["description"],
                                        "parameters_json_schema": t["parameters"]} for t in tools]}]


def gemini_call(part: dict[str, Any], n: int) -> ToolCall:
    """The ToolCall of a response part that holds a functionCall (the JSON the server sent, where
    the thought signature is already base64). Gemini may give no id: the call is then named by
    its position."""
    fc = part["functionCall"]
    return ToolCall(fc.get("id") or f"call_{n}", fc.get("name") or "",
                    json.dumps(fc.get("args") or {}, ensure_ascii=False),
                    part.get("thoughtSignature") or None)
