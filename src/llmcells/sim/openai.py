"""OpenAI wire format: Chat Completions and Responses, streamed (SSE) and plain JSON."""

from __future__ import annotations

import uuid
from typing import Any

from .common import Plan, Prompt, Reply, as_text, compact, users_text

PROVIDER = "openai"
SSE_TYPE = "text/event-stream; charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"
#: the system_fingerprint of every Chat Completions answer
FINGERPRINT = "fp_5im0000001"


def served_tier(requested: Any) -> str:
    """The service_tier an answer says served it, for the one the request asked for: flex and
    scale as asked, fast as priority (the API says "priority" for either), auto or none as the
    project's default, "default"."""
    if requested in ("flex", "scale", "priority"):
        return str(requested)
    return "priority" if requested == "fast" else "default"


def parse(api: str, body: dict[str, Any], path_model: str | None = None) -> Prompt:
    """The prompt of a `/v1/chat/completions` (api "chat") or `/v1/responses` request."""
    prompt = _parse(api, body)
    prompt.service_tier = served_tier(body.get("service_tier"))
    return prompt


def _parse(api: str, body: dict[str, Any]) -> Prompt:
    model = str(body.get("model", ""))
    if api == "chat":
        messages = body.get("messages") or []
        text = " ".join(as_text(m.get("content")) for m in messages if isinstance(m, dict))
        return Prompt(model, bool(body.get("stream")), text, messages,
                      body.get("max_completion_tokens") or body.get("max_tokens"),
                      body.get("temperature"),
                      bool((body.get("stream_options") or {}).get("include_usage")),
                      latest=_latest_user(messages))
    items = body.get("input") or ""
    text = as_text(items) if isinstance(items, str) else " ".join(
        as_text(i.get("content")) if isinstance(i, dict) else "" for i in items)
    key = [body.get("instructions"), items]
    latest = items if isinstance(items, str) else _latest_user(items)
    return Prompt(model, bool(body.get("stream")), f"{body.get('instructions') or ''} {text}", key,
                  body.get("max_output_tokens"), body.get("temperature"), latest=latest)


def _latest_user(messages: list[Any]) -> str:
    """The text of the last user message (Chat messages or Responses input items)."""
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            blocks = [content] if isinstance(content, str) else [
                p.get("text", "") for p in content or [] if isinstance(p, dict) and "text" in p]
            return users_text(blocks)
    return ""


def headers(stream: bool) -> dict[str, str]:
    """Response headers the real API sends (request id, version, rate limits)."""
    return {
        "content-type": SSE_TYPE if stream else JSON_TYPE,
        "x-request-id": f"req_{uuid.uuid4().hex}",
        "openai-version": "2020-10-01",
        "openai-organization": "llmcells-sim",
        "openai-processing-ms": "12",
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-limit-tokens": "10000000",
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-remaining-tokens": "9999900",
        "x-ratelimit-reset-requests": "6ms",
        "x-ratelimit-reset-tokens": "0s",
    }


# --- usage --------------------------------------------------------------------------------
def chat_usage(plan: Plan, n_out: int) -> dict[str, Any]:
    """A Chat Completions `usage` object for plan with n_out output tokens."""
    prompt_details: dict[str, int] = {"cached_tokens": plan.cached_tokens, "audio_tokens": 0,
                                      "cache_write_tokens": plan.cache_write_tokens}
    completion = n_out + plan.reasoning_tokens
    return {"prompt_tokens": plan.prompt_total, "completion_tokens": completion,
            "total_tokens": plan.prompt_total + completion,
            "prompt_tokens_details": prompt_details,
            "completion_tokens_details": {"reasoning_tokens": plan.reasoning_tokens, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


def responses_usage(plan: Plan) -> dict[str, Any]:
    """A Responses `usage` object for plan."""
    # cache_write_tokens is a required field (zero included), split by cache lifetime.
    input_details: dict[str, Any] = {"cached_tokens": plan.cached_tokens,
                                     "cache_write_tokens": plan.cache_write_tokens,
                                     "cache_write_tokens_details": {"ttl_30m_tokens": plan.cache_write_tokens,
                                                                    "ttl_12h_tokens": 0}}
    output = len(plan.tokens) + plan.reasoning_tokens
    return {"input_tokens": plan.prompt_total, "input_tokens_details": input_details,
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": plan.reasoning_tokens},
            "total_tokens": plan.prompt_total + output}


# --- Chat Completions ---------------------------------------------------------------------
class ChatStream:
    """Chat Completions chunks: `data: <compact json>\\n\\n`, ending with `data: [DONE]`."""

    content_type = SSE_TYPE

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.id = f"chatcmpl-{plan.ident(29)}"
        self.sent = 0

    def _chunk(self, choices: list[dict[str, Any]], usage: Any = None) -> bytes:
        chunk: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk",
                                 "created": self.plan.created, "model": self.plan.model,
                                 "service_tier": self.plan.service_tier, "system_fingerprint": FINGERPRINT,
                                 "choices": choices}
        if self.plan.include_usage:
            chunk["usage"] = usage
        chunk["obfuscation"] = self.plan.padding()
        return b"data: " + compact(chunk).encode() + b"\n\n"

    @staticmethod
    def _choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    def open(self) -> list[bytes]:
        return [self._chunk(self._choice({"role": "assistant", "content": "", "refusal": None}))]

    def delta(self, token: str) -> bytes:
        self.sent += 1
        return self._chunk(self._choice({"content": token}))

    def close(self) -> list[bytes]:
        events = [self._chunk(self._choice({}, "length" if self.plan.truncated else "stop"))]
        if self.plan.include_usage:
            events.append(self._chunk([], chat_usage(self.plan, self.sent)))
        return events + [b"data: [DONE]\n\n"]

    def error(self) -> bytes:
        return b"data: " + compact({"error": _server_error()}).encode() + b"\n\n"

    def malformed(self) -> bytes:
        return b'data: {"id":"' + self.id.encode() + b'","object":"chat.completion.chunk","choices":[{"delta":{"content":\n\n'


def chat_body(plan: Plan) -> dict[str, Any]:
    """A non-streamed Chat Completions answer."""
    return {"id": f"chatcmpl-{plan.ident(29)}", "object": "chat.completion", "created": plan.created,
            "model": plan.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": plan.text,
                                                 "refusal": None, "annotations": []},
                         "logprobs": None, "finish_reason": "length" if plan.truncated else "stop"}],
            "usage": chat_usage(plan, len(plan.tokens)), "service_tier": plan.service_tier,
            "system_fingerprint": FINGERPRINT}


# --- Responses ----------------------------------------------------------------------------
def response_object(plan: Plan, resp_id: str, status: str, output: list[Any],
                    usage: Any, max_output_tokens: int | None = None) -> dict[str, Any]:
    """A Responses `response` object with these output items and usage."""
    return {"id": resp_id, "object": "response", "created_at": plan.created, "status": status,
            "background": False, "completed_at": None if status == "in_progress" else plan.created,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": None, "max_output_tokens": max_output_tokens, "model": plan.model,
            "output": output, "parallel_tool_calls": True, "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None}, "service_tier": plan.service_tier, "store": False,
            "temperature": 1.0, "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
            "usage": usage, "user": None, "metadata": {}}


def _message_item(msg_id: str, text: str, status: str) -> dict[str, Any]:
    content = [] if status == "in_progress" else [_text_part(text)]
    return {"id": msg_id, "type": "message", "status": status, "content": content,
            "role": "assistant"}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


class ResponsesStream:
    """Responses events: `event: <type>` + `data: <json>` with consecutive sequence numbers."""

    content_type = SSE_TYPE

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.resp_id = f"resp_{plan.ident(48).lower()}"
        self.msg_id = f"msg_{plan.ident(48).lower()}"
        self.seq = 0
        self.text = ""

    def _event(self, data: dict[str, Any]) -> bytes:
        data["sequence_number"] = self.seq
        self.seq += 1
        return f"event: {data['type']}\ndata: {compact(data)}\n\n".encode()

    def open(self) -> list[bytes]:
        empty = response_object(self.plan, self.resp_id, "in_progress", [], None)
        return [
            self._event({"type": "response.created", "response": empty}),
            self._event({"type": "response.in_progress", "response": empty}),
            self._event({"type": "response.output_item.added",
                         "item": _message_item(self.msg_id, "", "in_progress"), "output_index": 0}),
            self._event({"type": "response.content_part.added", "content_index": 0,
                         "item_id": self.msg_id, "output_index": 0, "part": _text_part("")}),
        ]

    def delta(self, token: str) -> bytes:
        self.text += token
        return self._event({"type": "response.output_text.delta", "content_index": 0, "delta": token,
                            "item_id": self.msg_id, "logprobs": [], "obfuscation": self.plan.padding(),
                            "output_index": 0})

    def close(self) -> list[bytes]:
        item = _message_item(self.msg_id, self.text, "completed")
        status = "incomplete" if self.plan.truncated else "completed"
        final = response_object(self.plan, self.resp_id, status, [item], responses_usage(self.plan))
        return [
            self._event({"type": "response.output_text.done", "content_index": 0, "item_id": self.msg_id,
                         "logprobs": [], "output_index": 0, "text": self.text}),
            self._event({"type": "response.content_part.done", "content_index": 0,
                         "item_id": self.msg_id, "output_index": 0, "part": _text_part(self.text)}),
            self._event({"type": "response.output_item.done", "item": item, "output_index": 0}),
            self._event({"type": f"response.{status}", "response": final}),
        ]

    def error(self) -> bytes:
        # Flat, as in the spec (ResponseErrorEvent): code, message, param, sequence_number.
        err = _server_error()
        return self._event({"type": "error", "code": "server_error", "message": err["message"],
                            "param": None})

    def malformed(self) -> bytes:
        return b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"\n\n'


def responses_body(plan: Plan) -> dict[str, Any]:
    """A non-streamed Responses answer."""
    status = "incomplete" if plan.truncated else "completed"
    item = _message_item(f"msg_{plan.ident(48).lower()}", plan.text, "completed")
    return response_object(plan, f"resp_{plan.ident(48).lower()}", status, [item],
                           responses_usage(plan))


def stream(plan: Plan) -> ChatStream | ResponsesStream:
    """The event formatter for a streamed answer."""
    return ChatStream(plan) if plan.api == "chat" else ResponsesStream(plan)


def complete(plan: Plan) -> Reply:
    """A non-streamed answer."""
    body = chat_body(plan) if plan.api == "chat" else responses_body(plan)
    return Reply(200, headers(False), compact(body).encode())


# --- errors -------------------------------------------------------------------------------
def _server_error() -> dict[str, Any]:
    return {"message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error", "param": None, "code": None}


def _error_fields(fault: str, model: str, api: str, key: str,
                  delay: float = 1.2) -> tuple[int, dict[str, Any]]:
    if fault == "401":
        shown = (key[:3] + "*" * 10 + key[-4:]) if len(key) > 8 else key
        message = (f"Incorrect API key provided: {shown}. You can find your API key at "
                   "https://platform.openai.com/account/api-keys.") if key else (
            "You didn't provide an API key. You need to provide your API key in an Authorization "
            "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        return 401, {"message": message, "type": "invalid_request_error", "param": None,
                     "code": "invalid_api_key" if key else None}
    if fault == "404":
        if api == "responses":
            return 404, {"message": f"The requested model '{model}' does not exist.",
                         "type": "invalid_request_error", "param": "model", "code": "model_not_found"}
        return 404, {"message": f"The model `{model}` does not exist or you do not have access to it.",
                     "type": "invalid_request_error", "param": None, "code": "model_not_found"}
    if fault == "400":
        return 400, {"message": "Invalid request: the simulator was asked to reject this request.",
                     "type": "invalid_request_error", "param": None, "code": None}
    if fault == "429":
        return 429, {"message": f"Rate limit reached for {model} in organization org-llmcellssim on "
                                "tokens per min (TPM): Limit 30000, Used 30000, Requested 100. "
                                f"Please try again in {delay:g}s. Visit https://platform.openai.com/account/"
                                "rate-limits to learn more.",
                     "type": "tokens", "param": None, "code": "rate_limit_exceeded"}
    if fault == "billing":
        return 429, {"message": "You exceeded your current quota, please check your plan and billing "
                                "details. For more information on this error, read the docs: "
                                "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                     "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}
    if fault == "529":
        return 503, {"message": "The server is overloaded or not ready yet.", "type": "server_error",
                     "param": None, "code": None}
    return 500, _server_error()


def error(fault: str, model: str, *, api: str, stream: bool, key: str = "",
          retry_after: float | None = None) -> Reply:
    """The HTTP error answer for a fault name ("401", "404", "400", "429", "500", "529")."""
    delay = retry_after if retry_after is not None else 1.2
    status, fields = _error_fields(fault, model, api, key, delay)
    hdrs = headers(False)
    if status == 429:
        # As the real API: the exhausted limit (tokens per minute, as the message says) shows
        # none remaining and when it resets; no retry-after header (a fault's own is added by
        # the server).
        hdrs["x-ratelimit-remaining-tokens"] = "0"
        hdrs["x-ratelimit-reset-tokens"] = f"{delay:g}s"
    return Reply(status, hdrs, compact({"error": fields}).encode())


def refuse(refusal: Any, api: str) -> Reply:
    """The answer to a request the real API refuses (a validate.Refusal)."""
    from .validate import error_body

    return Reply(refusal.status, headers(False), compact(error_body(PROVIDER, refusal, "")).encode())
