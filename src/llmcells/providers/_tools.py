"""Tool calling on each provider's wire: a conversation with tool calls and results, and the
tool declarations, in the shape each official SDK takes (no SDK imports here). Streamed tool
calls are not read here: each adapter yields them as part events, which the engine folds into
ToolCalls.

request.extra["tools"] holds the declarations as [{"name", "description", "parameters"}]
(parameters: a JSON schema), built by llmcells.tools from the user's functions.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ..types import Message, Request, ToolCall


def declared(request: Request) -> list[dict[str, Any]]:
    """The tool declarations of request (empty when it has none)."""
    return list(request.extra.get("tools") or ())


def _args(call: ToolCall) -> dict[str, Any]:
    """A call's arguments as an object (what Anthropic and Gemini take back); bad JSON -> {}."""
    try:
        value = json.loads(call.arguments_json or "{}")
    except (ValueError, RecursionError):
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


# ----- Anthropic ----------------------------------------------------------------------------------


def claude_thinking(signature: str | None) -> list[dict[str, Any]]:
    """The thinking blocks Claude wrote before a turn's calls, from the first call's signature
    (a JSON list; a Gemini signature is base64, which never starts with '['), sent back as
    they came; [] when there are none."""
    if not signature or not signature.startswith("["):
        return []
    try:
        blocks = json.loads(signature)
    except ValueError:
        return []
    return [b for b in blocks if isinstance(b, dict)
            and b.get("type") in ("thinking", "redacted_thinking")] if isinstance(blocks, list) else []


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
            # with thinking on, the turn must start with the thinking that came before its calls
            blocks: list[dict[str, Any]] = claude_thinking(m.tool_calls[0].signature)
            blocks += [{"type": "text", "text": m.content}] if m.content else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": _args(c)}
                       for c in m.tool_calls]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def anthropic_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
            for t in tools]


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
                if c.signature and not c.signature.startswith("["):  # (not Claude's thinking)
                    # Gemini 3 refuses a function call sent back without it
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
