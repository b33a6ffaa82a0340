"""Tool calling in the simulator: a prompt directs tool calls, and the answer after the results
quotes them, in each provider's streamed wire format (parallel calls in one turn included).

Directives, in the last user message of a request that declares tools:
- `call NAME({"arg": 1})` asks for one call; several directives make parallel calls in one turn;
- `always call NAME({...})` asks for the calls again on every turn (to reach max_turns).
Once the tool results of the turn are back (and no `always`), the answer is, byte for byte:
`Tool results: NAME -> OUTPUT; NAME2 -> OUTPUT2` (OUTPUT as sent back, in the order sent).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from .common import Plan, compact, sign_thinking
from .text import count_prompt_tokens, split_tokens

_DIRECTIVE = re.compile(r"\b(always\s+)?call\s+([A-Za-z_][\w-]*)\(")


@dataclass
class Turn:
    """What a request gets instead of generated text: tool calls to make, or the text quoting
    the results."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    text: str | None = None


def directives(text: str) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """The (name, arguments) of each `call NAME({...})` in text, and whether any says `always`."""
    calls, always = [], False
    decoder = json.JSONDecoder()
    for m in _DIRECTIVE.finditer(text):
        rest = text[m.end():].lstrip()
        try:
            args, end = decoder.raw_decode(rest) if not rest.startswith(")") else ({}, 0)
        except ValueError:
            continue
        if not isinstance(args, dict) or not rest[end:].lstrip().startswith(")"):
            continue
        calls.append((m.group(2), args))
        always = always or bool(m.group(1))
    return calls, always


# ----- reading a conversation in each provider's format ------------------------------------------
# Each becomes a list of entries: ("user", text), ("calls", {id: name}) or ("results", [(id, name, output)]).


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content
                        if isinstance(p, dict) and p.get("type") in (None, "text", "input_text"))
    return ""


def _output(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content blocks
        return "".join(p.get("text", "") for p in value if isinstance(p, dict))
    return compact(value)


def _entries(provider: str, api: str, body: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if provider == "openai" and api == "chat":
        for m in body.get("messages") or ():
            role = m.get("role")
            if role == "user":
                out.append(("user", _text(m.get("content"))))
            elif role == "assistant" and m.get("tool_calls"):
                out.append(("calls", {c["id"]: c["function"]["name"] for c in m["tool_calls"]}))
            elif role == "tool":
                out.append(("results", [(m.get("tool_call_id"), None, _output(m.get("content")))]))
    elif provider == "openai":
        items = body.get("input") or ()
        for i in ([{"role": "user", "content": items}] if isinstance(items, str) else items):
            if i.get("type") == "function_call":
                out.append(("calls", {i["call_id"]: i["name"]}))
            elif i.get("type") == "function_call_output":
                out.append(("results", [(i.get("call_id"), None, _output(i.get("output")))]))
            elif i.get("role") == "user":
                out.append(("user", _text(i.get("content"))))
    elif provider == "anthropic":
        for m in body.get("messages") or ():
            content = m.get("content")
            blocks = content if isinstance(content, list) else []
            if m.get("role") == "assistant":
                calls = {b["id"]: b["name"] for b in blocks if b.get("type") == "tool_use"}
                if calls:
                    out.append(("calls", calls))
            elif any(b.get("type") == "tool_result" for b in blocks):
                out.append(("results", [(b.get("tool_use_id"), None, _output(b.get("content")))
                                        for b in blocks if b.get("type") == "tool_result"]))
            else:
                out.append(("user", _text(content)))
    else:  # google
        for c in body.get("contents") or ():
            parts = c.get("parts") or []
            calls = [p.get("functionCall") or p.get("function_call") for p in parts]
            responses = [p.get("functionResponse") or p.get("function_response") for p in parts]
            if any(calls):
                out.append(("calls", {f.get("id") or f"call_{i}": f.get("name") for i, f in enumerate(calls) if f}))
            elif any(responses):
                out.append(("results", [(r.get("id"), r.get("name"), _gemini_output(r.get("response")))
                                        for r in responses if r]))
            elif c.get("role", "user") == "user":
                out.append(("user", _text(parts)))
    return out


def _gemini_output(response: Any) -> str:
    if isinstance(response, dict) and len(response) == 1:
        (value,) = response.values()
        return _output(value)
    return _output(response)


def _declares_tools(provider: str, body: dict[str, Any]) -> bool:
    if provider == "google":
        tools = body.get("tools") or []
        return any(t.get("functionDeclarations") or t.get("function_declarations") for t in tools)
    return bool(body.get("tools"))


def turn(provider: str, api: str, body: Any) -> Turn | None:
    """The scripted tool turn for this request, or None for an ordinary answer."""
    if not isinstance(body, dict) or not _declares_tools(provider, body):
        return None
    try:
        entries = _entries(provider, api, body)
    except (AttributeError, KeyError, TypeError):
        return None
    last_user = max((i for i, (k, _) in enumerate(entries) if k == "user"), default=None)
    if last_user is None:
        return None
    calls, always = directives(entries[last_user][1])
    after = entries[last_user + 1:]
    results = [r for k, v in after if k == "results" for r in v]
    if not results:
        return Turn(calls=calls) if calls else None
    if always:
        return Turn(calls=calls)
    names: dict[str, str] = {}
    for k, v in after:
        if k == "calls":
            names.update(v)
    # the results of the last turn only: those after the last "calls" entry
    last_calls = max(i for i, (k, _) in enumerate(after) if k == "calls") if any(
        k == "calls" for k, _ in after) else -1
    latest = [r for k, v in after[last_calls + 1:] if k == "results" for r in v]
    quoted = "; ".join(f"{name or names.get(cid, '?')} -> {output}" for cid, name, output in latest)
    return Turn(text=f"Tool results: {quoted}")


# ----- streaming tool calls -------------------------------------------------------------------------


def _pieces(text: str, n: int = 3) -> list[str]:
    """Arguments streamed in a few fragments, as the real APIs do."""
    size = max(1, -(-len(text) // n))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def _ids(n: int, prefix: str) -> list[str]:
    return [f"{prefix}{uuid.uuid4().hex[:24]}" for _ in range(n)]


def usage_counts(prompt_text: str, calls: list[tuple[str, dict[str, Any]]]) -> tuple[int, int]:
    """(input tokens, output tokens) of a tool-call turn."""
    out = sum(len(split_tokens(compact(args))) + 5 for _, args in calls)
    return count_prompt_tokens(prompt_text), out


def _written(plan: Plan, calls: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, bool]]:
    """(name, arguments JSON, whole) of each call the turn writes. A turn the request's max
    tokens cut (plan.truncated, plan.tokens as many as it allows) writes its calls until the
    limit: the last one's arguments cut off mid-JSON, the calls after it not at all, as the
    real APIs end a turn that reaches the limit while calling (stop_reason max_tokens)."""
    budget = len(plan.tokens) if plan.truncated else None
    out = []
    for name, args in calls:
        tokens = split_tokens(compact(args))
        if budget is not None and budget < len(tokens) + 5:
            out.append((name, "".join(tokens[:max(budget - 5, 1)]), False))
            break
        out.append((name, compact(args), True))
        if budget is not None:
            budget -= len(tokens) + 5
    return out


def events(provider: str, api: str, plan: Plan, calls: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
    """The whole streamed answer of a turn that ends in `calls`, in provider's wire format."""
    if provider == "openai" and api == "chat":
        return _chat(plan, calls)
    if provider == "openai":
        return _responses(plan, calls)
    if provider == "anthropic":
        return _anthropic(plan, calls)
    return _gemini(plan, calls)


def _chat(plan: Plan, calls: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
    from .openai import chat_usage

    cid = f"chatcmpl-{plan.ident(29)}"

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> bytes:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                             "finish_reason": finish}]
        body: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": plan.created,
                                "model": plan.model, "service_tier": plan.service_tier,
                                "system_fingerprint": "fp_5im0000001", "choices": choices}
        if plan.include_usage:
            body["usage"] = usage
        return b"data: " + compact(body).encode() + b"\n\n"

    out = [chunk({"role": "assistant", "content": None, "refusal": None})]
    written = _written(plan, calls)
    for index, ((name, text, _), call_id) in enumerate(zip(written, _ids(len(written), "call_"))):
        out.append(chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                          "function": {"name": name, "arguments": ""}}]}))
        for piece in _pieces(text):
            out.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    out.append(chunk({}, "length" if plan.truncated else "tool_calls"))
    if plan.include_usage:
        out.append(chunk(None, usage=chat_usage(plan, len(plan.tokens))))
    return out + [b"data: [DONE]\n\n"]


def _responses(plan: Plan, calls: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
    from .openai import response_object, responses_usage

    resp_id = f"resp_{plan.ident(48).lower()}"
    seq = 0

    def event(data: dict[str, Any]) -> bytes:
        nonlocal seq
        data["sequence_number"] = seq
        seq += 1
        return f"event: {data['type']}\ndata: {compact(data)}\n\n".encode()

    empty = response_object(plan, resp_id, "in_progress", [], None)
    out = [event({"type": "response.created", "response": empty}),
           event({"type": "response.in_progress", "response": empty})]
    items = []
    written = _written(plan, calls)
    for index, ((name, text, whole), call_id) in enumerate(zip(written, _ids(len(written), "call_"))):
        item_id = f"fc_{plan.ident(40).lower()}"
        item = {"id": item_id, "type": "function_call", "status": "in_progress", "arguments": "",
                "call_id": call_id, "name": name}
        out.append(event({"type": "response.output_item.added", "item": item, "output_index": index}))
        for piece in _pieces(text):
            out.append(event({"type": "response.function_call_arguments.delta", "delta": piece,
                              "item_id": item_id, "output_index": index}))
        if whole:
            out.append(event({"type": "response.function_call_arguments.done", "arguments": text,
                              "item_id": item_id, "name": name, "output_index": index}))
        done = {**item, "status": "completed" if whole else "incomplete", "arguments": text}
        items.append(done)
        out.append(event({"type": "response.output_item.done", "item": done, "output_index": index}))
    status = "incomplete" if plan.truncated else "completed"
    final = response_object(plan, resp_id, status, items, responses_usage(plan))
    out.append(event({"type": f"response.{status}", "response": final}))
    return out


def _anthropic(plan: Plan, calls: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
    from .anthropic import message_json, usage_json

    def event(name: str, data: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {compact(data)}\n\n".encode()

    msg_id = f"msg_01{plan.ident(22)}"
    start = message_json(plan, msg_id, [], None, usage_json(plan, 1, start=True))
    out = [event("message_start", {"type": "message_start", "message": start})]
    first = 0
    if plan.thinking:  # thinking first, its signature last (a signature_delta before the stop)
        block = _thinking_block(calls)
        out.append(event("content_block_start", {"type": "content_block_start", "index": 0, "content_block":
                                                 {"type": "thinking", "thinking": "", "signature": ""}}))
        for piece in _pieces(block["thinking"]):
            out.append(event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                     "delta": {"type": "thinking_delta", "thinking": piece}}))
        out.append(event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta":
                                                 {"type": "signature_delta", "signature": block["signature"]}}))
        out.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        first = 1
    written = _written(plan, calls)
    for index, ((name, text, _), call_id) in enumerate(zip(written, _ids(len(written), "toolu_01")), first):
        out.append(event("content_block_start", {
            "type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}}}))
        for piece in _pieces(text):
            out.append(event("content_block_delta", {
                "type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": piece}}))
        out.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
    stop = "max_tokens" if plan.truncated else "tool_use"
    out.append(event("message_delta", {"type": "message_delta",
                                       "delta": {"stop_reason": stop, "stop_sequence": None},
                                       "usage": usage_json(plan, len(plan.tokens))}))
    out.append(event("message_stop", {"type": "message_stop"}))
    return out


def _thinking_block(calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Claude's thinking before a turn's calls, signed as validate.thinking_signed checks."""
    thought = "I should call " + ", ".join(name for name, _ in calls) + "."
    return {"type": "thinking", "thinking": thought, "signature": sign_thinking(thought)}


def _gemini(plan: Plan, calls: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
    from .google import response_id, usage_metadata, gjson

    # Gemini sends a turn's function calls whole, in one chunk, with finishReason STOP.
    # Gemini 2.5+ signs a turn's first function call (thoughtSignature; parallel calls after it
    # carry none): a client must send it back as is (validate._unsigned_call).
    parts: list[dict[str, Any]] = [{"functionCall": {"name": name, "args": args}} for name, args in calls]
    if parts:
        name = calls[0][0]
        parts[0]["thoughtSignature"] = base64.b64encode(f"sig:{name}:0".encode()).decode()
    body = {"candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP",
                            "index": 0}],
            "usageMetadata": usage_metadata(plan, len(plan.tokens)), "modelVersion": plan.model,
            "responseId": response_id(plan)}
    return [f"data: {gjson(body)}\r\n\r\n".encode()]


# ----- a tool-call turn as one JSON body (not streamed; every batch line) ---------------------------


def body(provider: str, api: str, plan: Plan, calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The whole non-streamed answer of a turn that ends in `calls`, in provider's JSON shape."""
    if provider == "openai" and api == "chat":
        from .openai import FINGERPRINT, chat_usage

        tool_calls = [{"id": call_id, "type": "function", "function": {"name": name, "arguments": compact(args)}}
                      for (name, args), call_id in zip(calls, _ids(len(calls), "call_"))]
        return {"id": f"chatcmpl-{plan.ident(29)}", "object": "chat.completion", "created": plan.created,
                "model": plan.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "refusal": None,
                                                     "annotations": [], "tool_calls": tool_calls},
                             "logprobs": None, "finish_reason": "tool_calls"}],
                "usage": chat_usage(plan, len(plan.tokens)), "service_tier": plan.service_tier,
                "system_fingerprint": FINGERPRINT}
    if provider == "openai":
        from .openai import response_object, responses_usage

        items = [{"id": f"fc_{plan.ident(40).lower()}", "type": "function_call", "status": "completed",
                  "arguments": compact(args), "call_id": call_id, "name": name}
                 for (name, args), call_id in zip(calls, _ids(len(calls), "call_"))]
        return response_object(plan, f"resp_{plan.ident(48).lower()}", "completed", items,
                               responses_usage(plan))
    if provider == "anthropic":
        from .anthropic import message_json, usage_json

        content = [_thinking_block(calls)] if plan.thinking else []
        content += [{"type": "tool_use", "id": call_id, "name": name, "input": args}
                    for (name, args), call_id in zip(calls, _ids(len(calls), "toolu_01"))]
        return message_json(plan, f"msg_01{plan.ident(22)}", content, "tool_use",
                            usage_json(plan, len(plan.tokens), start=True))
    return json.loads(_gemini(plan, calls)[0].decode()[len("data: "):])


def complete(provider: str, api: str, plan: Plan, calls: list[tuple[str, dict[str, Any]]]) -> bytes:
    """`body` encoded as the provider sends a whole answer."""
    if provider == "google":
        from .google import pretty

        return pretty(body(provider, api, plan, calls)).encode()
    return compact(body(provider, api, plan, calls)).encode()
