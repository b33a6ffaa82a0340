"""Gemini wire format: `:streamGenerateContent?alt=sse` (CRLF SSE) and `:generateContent`."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

from .common import Plan, Prompt, Reply, as_text, users_text

PROVIDER = "google"
SSE_TYPE = "text/event-stream"
JSON_TYPE = "application/json; charset=UTF-8"


def gjson(obj: Any) -> str:
    """JSON as Gemini streams it: a space after colons, none after commas."""
    return json.dumps(obj, separators=(",", ": "), ensure_ascii=False)


def pretty(obj: Any) -> str:
    """JSON as Gemini sends whole bodies: indented by two spaces."""
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def parse(api: str, body: dict[str, Any], path_model: str | None = None) -> Prompt:
    """The prompt of a generateContent request; the model comes from the URL path."""
    contents = body.get("contents") or []
    system = body.get("systemInstruction") or body.get("system_instruction")
    text = " ".join([as_text(system)] + [as_text(c) for c in contents])
    config = body.get("generationConfig") or body.get("generation_config") or {}
    max_tokens = config.get("maxOutputTokens", config.get("max_output_tokens"))
    latest = ""
    for c in reversed(contents):
        if isinstance(c, dict) and c.get("role", "user") == "user":
            latest = users_text([p.get("text", "") for p in c.get("parts") or []
                                 if isinstance(p, dict) and "text" in p])
            if latest:
                break
    return Prompt(path_model or "", api == "stream", text, [system, contents], max_tokens,
                  config.get("temperature"), latest=latest)


def headers(stream: bool, *, vertex: bool = False) -> dict[str, str]:
    """Response headers the real API sends (Vertex AI names no service tier)."""
    hdrs = {"content-type": SSE_TYPE if stream else JSON_TYPE, "vary": "Origin, X-Origin, Referer"}
    if not vertex:
        hdrs["x-gemini-service-tier"] = "standard"
    if stream:
        hdrs["content-disposition"] = "attachment"
    return hdrs


def usage_metadata(plan: Plan, candidates: int, *, vertex: bool = False) -> dict[str, Any]:
    """A generateContent `usageMetadata` object for plan: the Gemini API's serviceTier, or
    Vertex AI's trafficType (ON_DEMAND: pay-as-you-go), as each sends it."""
    # promptTokenCount includes cached tokens; candidatesTokenCount excludes thoughts.
    usage: dict[str, Any] = {"promptTokenCount": plan.prompt_total,
                             "candidatesTokenCount": candidates,
                             "totalTokenCount": plan.prompt_total + candidates + plan.reasoning_tokens,
                             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": plan.prompt_total}]}
    if plan.cached_tokens:
        usage["cachedContentTokenCount"] = plan.cached_tokens
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.cached_tokens}]
    if plan.reasoning_tokens:
        usage["thoughtsTokenCount"] = plan.reasoning_tokens
    if vertex:
        usage["trafficType"] = "ON_DEMAND"
    else:
        usage["serviceTier"] = "standard"
    return usage


def _response(plan: Plan, resp_id: str, text: str, candidates: int, finish: bool,
              vertex: bool = False) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish:
        candidate["finishReason"] = "MAX_TOKENS" if plan.truncated else "STOP"
    candidate["index"] = 0
    body = {"candidates": [candidate], "usageMetadata": usage_metadata(plan, candidates, vertex=vertex),
            "modelVersion": plan.model}
    if vertex:  # Vertex AI also says when it made the answer
        body["createTime"] = datetime.fromtimestamp(plan.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body["responseId"] = resp_id
    return body


def response_id(plan: Plan) -> str:
    """A responseId like Gemini's (23 URL-safe characters)."""
    return base64.urlsafe_b64encode(plan.rng.randbytes(17)).decode().rstrip("=")[:23]


class GeminiStream:
    """One `data: <json>\\r\\n\\r\\n` chunk per token, usage cumulative on each; the last chunk
    (empty text) carries finishReason."""

    content_type = SSE_TYPE

    def __init__(self, plan: Plan, vertex: bool = False) -> None:
        self.plan = plan
        self.vertex = vertex
        self.resp_id = response_id(plan)
        self.sent = 0

    @staticmethod
    def _data(obj: Any) -> bytes:
        return f"data: {gjson(obj)}\r\n\r\n".encode()

    def open(self) -> list[bytes]:
        return []

    def delta(self, token: str) -> bytes:
        self.sent += 1
        return self._data(_response(self.plan, self.resp_id, token, self.sent, False, self.vertex))

    def close(self) -> list[bytes]:
        return [self._data(_response(self.plan, self.resp_id, "", self.sent, True, self.vertex))]

    def error(self) -> bytes:
        return self._data({"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                                     "status": "UNAVAILABLE"}})

    def malformed(self) -> bytes:
        return b'data: {"candidates": [{"content": {"parts": [{"text": "oops\r\n\r\n'


def stream(plan: Plan, *, vertex: bool = False) -> GeminiStream:
    """The event formatter for a streamed answer (on Vertex AI: its usage and fields)."""
    return GeminiStream(plan, vertex)


def complete(plan: Plan, *, vertex: bool = False) -> Reply:
    """A non-streamed answer (pretty-printed, like the real API)."""
    body = _response(plan, response_id(plan), plan.text, len(plan.tokens), True, vertex)
    return Reply(200, headers(False, vertex=vertex), pretty(body).encode())


def _error_fields(fault: str, model: str, api: str, retry_after: float | None) -> dict[str, Any]:
    method = "streamGenerateContent" if api == "stream" else "generateContent"
    if fault == "401":
        return {"code": 401, "message": "API key not valid. Please pass a valid API key.",
                "status": "UNAUTHENTICATED",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                             "domain": "googleapis.com",
                             "metadata": {"service": "generativelanguage.googleapis.com"}}]}
    if fault == "404":
        return {"code": 404, "message": f"models/{model} is not found for API version v1beta, or is not "
                                        f"supported for {method}. Call ModelService.ListModels to see the "
                                        "list of available models and their supported methods.",
                "status": "NOT_FOUND"}
    if fault == "400":
        return {"code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT"}
    if fault == "429":
        delay = retry_after if retry_after is not None else 58.0
        return {"code": 429, "message": "You exceeded your current quota, please check your plan and billing "
                                        f"details. Please retry in {delay:g}s.",
                "status": "RESOURCE_EXHAUSTED",
                "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                             "violations": [{"quotaMetric": "generativelanguage.googleapis.com/"
                                                            "generate_content_free_tier_requests",
                                             "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                                             "quotaDimensions": {"model": model, "location": "global"},
                                             "quotaValue": "10"}]},
                            {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                             "retryDelay": f"{int(delay)}s"}]}
    if fault == "529":
        return {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}
    if fault == "billing":
        return {"code": 403, "message": "This API method requires billing to be enabled. Please enable "
                                        "billing on project #1234567890 by visiting https://console."
                                        "developers.google.com/billing/enable?project=1234567890 then "
                                        "retry.", "status": "PERMISSION_DENIED"}
    return {"code": 500, "message": "An internal error has occurred. Please retry or report in "
                                    "https://developers.generativeai.google/guide/troubleshooting",
            "status": "INTERNAL"}


def error(fault: str, model: str, *, api: str, stream: bool, key: str = "",
          retry_after: float | None = None) -> Reply:
    """The HTTP error answer for a fault name; on the streaming URL the pretty JSON body comes
    with a text/event-stream content type, as the real API does."""
    fields = _error_fields(fault, model, api, retry_after)
    hdrs = headers(False)
    hdrs["content-type"] = SSE_TYPE if api == "stream" else JSON_TYPE
    return Reply(fields["code"], hdrs, pretty({"error": fields}).encode())


def refuse(refusal: Any, api: str) -> Reply:
    """The answer to a request the real API refuses (a validate.Refusal), pretty as Gemini's."""
    from .validate import error_body

    hdrs = headers(False)
    hdrs["content-type"] = SSE_TYPE if api == "stream" else JSON_TYPE
    return Reply(refusal.status, hdrs, pretty(error_body(PROVIDER, refusal, "")).encode())
