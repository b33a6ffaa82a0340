"""Anthropic Messages wire format, streamed (SSE with `event:` lines) and plain JSON."""

from __future__ import annotations

import uuid
from typing import Any

from .common import Plan, Prompt, Reply, as_text, compact, users_text

PROVIDER = "anthropic"
SSE_TYPE = "text/event-stream; charset=utf-8"
JSON_TYPE = "application/json"


def parse(api: str, body: dict[str, Any], path_model: str | None = None) -> Prompt:
    """The prompt of a `/v1/messages` request."""
    messages = body.get("messages") or []
    system = body.get("system")
    text = " ".join([as_text(system)] + [as_text(m.get("content")) for m in messages
                                         if isinstance(m, dict)])
    return Prompt(str(body.get("model", "")), bool(body.get("stream")), text, [system, messages],
                  body.get("max_tokens"), body.get("temperature"), latest=_latest_user(messages))


def _latest_user(messages: list[Any]) -> str:
    """The user's own text in the last user turn that has some (tool results carry none)."""
    for m in reversed(messages):
        if not isinstance(m, dict) or m.get("role") != "user":
            continue
        content = m.get("content")
        blocks = [content] if isinstance(content, str) else [
            b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]
        text = users_text(blocks)
        if text:
            return text
    return ""


def _request_id() -> str:
    return "req_011C" + uuid.uuid4().hex[:20]


def headers(stream: bool) -> dict[str, str]:
    """Response headers the real API sends (request id, organisation); the rate-limit ones are
    added per answer (`listing.rate_headers`)."""
    hdrs = {"content-type": SSE_TYPE if stream else JSON_TYPE, "request-id": _request_id(),
            "anthropic-organization-id": "00000000-0000-4000-8000-00000000517a",
            "x-envoy-upstream-service-time": "12"}
    if stream:
        hdrs["cache-control"] = "no-cache"
    return hdrs


def usage_json(plan: Plan, output_tokens: int, *, start: bool = False) -> dict[str, Any]:
    """A Messages `usage` object (start: as message_start carries it)."""
    # input_tokens excludes cache reads and writes, as in the real API.
    usage: dict[str, Any] = {"input_tokens": plan.input_tokens,
                             "cache_creation_input_tokens": plan.cache_write_tokens,
                             "cache_read_input_tokens": plan.cached_tokens}
    if start:
        usage["cache_creation"] = {"ephemeral_5m_input_tokens": plan.cache_write_tokens,
                                   "ephemeral_1h_input_tokens": 0}
    usage["output_tokens"] = output_tokens
    # thinking tokens, part of output_tokens (the usage type's output_tokens_details)
    usage["output_tokens_details"] = {"thinking_tokens": plan.reasoning_tokens}
    if start:
        usage["service_tier"] = "standard"
    return usage


def message_json(plan: Plan, msg_id: str, content: list[Any], stop: str | None,
                 usage: dict[str, Any]) -> dict[str, Any]:
    """A Messages `message` object with this content, stop reason and usage."""
    return {"model": plan.model, "id": msg_id, "type": "message", "role": "assistant",
            "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage}


class MessagesStream:
    """Messages events; most data lines end with a run of spaces before the final `}`,
    like the real API's length padding."""

    content_type = SSE_TYPE

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.msg_id = f"msg_01{plan.ident(22)}"
        self.sent = 0

    def _event(self, name: str, data: dict[str, Any], pad: bool = True) -> bytes:
        body = compact(data)
        if pad:
            body = body[:-1] + " " * self.plan.rng.randint(0, 15) + "}"
        return f"event: {name}\ndata: {body}\n\n".encode()

    def open(self) -> list[bytes]:
        start = message_json(self.plan, self.msg_id, [], None, usage_json(self.plan, 1, start=True))
        return [self._event("message_start", {"type": "message_start", "message": start}),
                self._event("content_block_start", {"type": "content_block_start", "index": 0,
                                                    "content_block": {"type": "text", "text": ""}}),
                b'event: ping\ndata: {"type": "ping"}\n\n']

    def delta(self, token: str) -> bytes:
        self.sent += 1
        return self._event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                   "delta": {"type": "text_delta", "text": token}})

    def close(self) -> list[bytes]:
        stop = "max_tokens" if self.plan.truncated else "end_turn"
        usage = usage_json(self.plan, self.sent + self.plan.reasoning_tokens)
        return [self._event("content_block_stop", {"type": "content_block_stop", "index": 0}),
                self._event("message_delta", {"type": "message_delta",
                                              "delta": {"stop_reason": stop, "stop_sequence": None},
                                              "usage": usage}, pad=False),
                self._event("message_stop", {"type": "message_stop"})]

    def error(self) -> bytes:
        return self._event("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                "message": "Overloaded"}}, pad=False)

    def malformed(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_de\n\n'


def stream(plan: Plan) -> MessagesStream:
    """The event formatter for a streamed answer."""
    return MessagesStream(plan)


def complete(plan: Plan) -> Reply:
    """A non-streamed answer."""
    stop = "max_tokens" if plan.truncated else "end_turn"
    usage = usage_json(plan, len(plan.tokens) + plan.reasoning_tokens, start=True)
    body = message_json(plan, f"msg_01{plan.ident(22)}", [{"type": "text", "text": plan.text}], stop, usage)
    return Reply(200, headers(False), compact(body).encode())


_ERRORS = {
    "401": (401, "authentication_error", "invalid x-api-key"),
    "400": (400, "invalid_request_error", "The simulator was asked to reject this request."),
    "429": (429, "rate_limit_error", "This request would exceed the rate limit for your organization "
                                     "of 50 requests per minute. For details, refer to: "
                                     "https://docs.claude.com/en/api/rate-limits."),
    "500": (500, "api_error", "Internal server error"),
    "billing": (400, "invalid_request_error", "Your credit balance is too low to access the Anthropic "
                                              "API. Please go to Plans & Billing to upgrade or purchase "
                                              "credits."),
    "529": (529, "overloaded_error", "Overloaded"),
}


def error(fault: str, model: str, *, api: str, stream: bool, key: str = "",
          retry_after: float | None = None) -> Reply:
    """The HTTP error answer for a fault name ("401", "404", "400", "429", "500", "529")."""
    if fault == "404":
        status, kind, message = 404, "not_found_error", f"model: {model}"
    else:
        status, kind, message = _ERRORS.get(fault, _ERRORS["500"])
    if fault == "401" and not key:
        message = "x-api-key header is required"
    hdrs = _error_headers()
    if status == 429 or status >= 500:
        hdrs["x-should-retry"] = "true"  # as the real API marks the errors worth sending again
    if status == 429:
        # The real API says when to come back; a fault's own retry_after wins (and the server
        # sets it on the reply), else one second, as a short burst limit asks.
        hdrs["retry-after"] = f"{retry_after:g}" if retry_after is not None else "1"
    body = {"type": "error", "error": {"type": kind, "message": message},
            "request_id": hdrs["request-id"]}
    return Reply(status, hdrs, compact(body).encode())


def _error_headers() -> dict[str, str]:
    """An error's headers: request id and the rate-limit counters, as on every answer."""
    from .ratelimits import rate_headers

    return {**headers(False), **rate_headers(PROVIDER)}


def refuse(refusal: Any, api: str) -> Reply:
    """The answer to a request the real API refuses (a validate.Refusal)."""
    from .validate import error_body

    hdrs = _error_headers()
    return Reply(refusal.status, hdrs, compact(error_body(PROVIDER, refusal, hdrs["request-id"])).encode())


def url_source(body: Any) -> str | None:
    """Where a Messages body gives an image or document by URL (`messages.0.content.1.source`),
    or None: Claude on Amazon Bedrock and on Vertex AI takes them inline (base64) only."""
    messages = body.get("messages") if isinstance(body, dict) else None
    for i, message in enumerate(messages if isinstance(messages, list) else ()):
        content = message.get("content") if isinstance(message, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else ()):
            source = block.get("source") if isinstance(block, dict) else None
            if isinstance(source, dict) and source.get("type") == "url":
                return f"messages.{i}.content.{j}.source"
    return None
