"""The simulator's model-list endpoints and its changing rate-limit headers.

- `GET /v1/models` (OpenAI, or Anthropic when the request carries `x-api-key` /
  `anthropic-version`) and `GET /v1beta/models`, `/v1/models?key=` (Gemini, `x-goog-api-key`), in
  each API's real shape (as the SDKs' `Model` types parse them): what the health check reads.
- `rate_headers(provider)`: headers that count down as requests arrive, reset every minute, as
  the real APIs' do, so quota tracking and the batch gate can be tested.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

from .. import lifecycle
from . import catalog
from .common import Reply, compact

from .ratelimits import rate_headers  # noqa: E402


def _which(path: str, headers: dict[str, str], query: dict[str, str]) -> str | None:
    if path in ("/v1beta/models", "/v1alpha/models") or (
            path == "/v1/models" and ("x-goog-api-key" in headers or "key" in query)):
        return "google"
    if path == "/v1/models":
        return "anthropic" if ("x-api-key" in headers or "anthropic-version" in headers) else "openai"
    return None


def answer(method: str, path: str, headers: dict[str, str], query: dict[str, str], key: str) -> Reply | None:
    """The reply to a model-list request, or None when the request is something else."""
    if method != "GET":
        return None
    provider = _which(path, headers, query)
    if provider is None:
        return None
    if not key or key.startswith("invalid"):
        from . import anthropic, google, openai

        module = {"openai": openai, "anthropic": anthropic, "google": google}[provider]
        return module.error("401", "", api="models", stream=False, key=key)
    hdrs = {"content-type": "application/json"}
    if provider == "openai":
        body: Any = {"object": "list", "data": [_openai_model(m) for m in catalog.listed("openai")]}
        hdrs.update({"x-request-id": f"req_{uuid.uuid4().hex}", "openai-version": "2020-10-01"})
        hdrs.update(rate_headers("openai"))
        return Reply(200, hdrs, compact(body).encode())
    if provider == "anthropic":
        data = [_anthropic_model(m) for m in catalog.listed("anthropic")]
        body = {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
        hdrs["request-id"] = "req_011C" + uuid.uuid4().hex[:20]
        hdrs.update(rate_headers("anthropic"))
        return Reply(200, hdrs, compact(body).encode())
    body = {"models": [_gemini_model(m) for m in catalog.listed("google")]}
    return Reply(200, {"content-type": "application/json; charset=UTF-8"},
                 (json.dumps(body, indent=2) + "\n").encode())


def _day(date: str) -> int:
    return int(datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp())


def _openai_model(m: catalog.SimModel) -> dict[str, Any]:
    return {"id": m.id, "object": "model", "created": _day(m.created), "owned_by": "system"}


def _supported(flag: bool) -> dict[str, bool]:
    return {"supported": flag}


def _anthropic_model(m: catalog.SimModel) -> dict[str, Any]:
    """A model as anthropic's ModelInfo has it: lifecycle, limits and every capability key."""
    row = lifecycle.lookup(f"anthropic:{m.id}")
    state = {"active": "active", "retiring": "deprecated", "retired": "retired"}[m.status]
    at = lambda d: d.isoformat() + "T00:00:00Z" if d else None  # noqa: E731
    yes, no = _supported(True), _supported(False)
    line = next((name for name in ("haiku", "sonnet", "opus") if name in m.id), None)
    return {"type": "model", "id": m.id, "display_name": m.display, "created_at": m.created + "T00:00:00Z",
            "lifecycle": state, "deprecated_at": at(row.deprecated or (row.retires if state != "active" else None)),
            "retires_at": at(row.retires) if state == "deprecated" else None, "line": line,
            "max_input_tokens": m.context, "max_tokens": m.max_output,
            "capabilities": {
                "batch": yes, "citations": yes, "code_execution": yes, "image_input": yes, "pdf_input": yes,
                "structured_outputs": yes,
                "context_management": {"supported": True, "clear_thinking_20251015": yes,
                                       "clear_tool_uses_20250919": yes, "compact_20260112": no},
                "effort": {"supported": "haiku" not in m.id, "low": yes, "medium": yes, "high": yes,
                           "max": no, "xhigh": no},
                "server_tools": {"supported": True, "code_execution": yes, "web_search": yes},
                "thinking": {"supported": True, "types": {"adaptive": yes, "between_tools": yes,
                                                          "disabled": yes, "enabled": yes}}}}


def _gemini_model(m: catalog.SimModel) -> dict[str, Any]:
    return {"name": f"models/{m.id}", "baseModelId": m.id, "version": "001", "displayName": m.display,
            "description": f"Simulated {m.display}", "inputTokenLimit": m.context, "outputTokenLimit": m.max_output,
            "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent",
                                           "batchGenerateContent"],
            "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": True}
