"""The simulator's model-list endpoints and its changing rate-limit headers.

- `GET /v1/models` (OpenAI, or Anthropic when the request carries `x-api-key` /
  `anthropic-version`) and `GET /v1beta/models`, `/v1/models?key=` (Gemini, `x-goog-api-key`), in
  each API's real shape (as the SDKs' `Model` types parse them): what the health check reads.
- `rate_headers(provider)`: headers that count down as requests arrive, reset every minute, as
  the real APIs' do, so quota tracking and the batch gate can be tested.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Any

from .common import Reply, compact

OPENAI_MODELS = ["gpt-4.1-mini", "gpt-4.1", "gpt-4o-mini", "gpt-5-mini", "o4-mini"]
ANTHROPIC_MODELS = [("claude-haiku-4-5-20251001", "Claude Haiku 4.5"),
                    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5"),
                    ("claude-opus-4-1-20250805", "Claude Opus 4.1")]
GEMINI_MODELS = [("gemini-2.5-flash", "Gemini 2.5 Flash"), ("gemini-2.5-pro", "Gemini 2.5 Pro"),
                 ("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite")]

# Per-minute windows, as the real APIs' (numbers of a modest paid tier).
LIMITS = {"openai": {"requests": 500, "tokens": 200_000},
          "anthropic": {"requests": 50, "tokens": 50_000, "input-tokens": 40_000,
                        "output-tokens": 10_000}}
_lock = threading.Lock()
_windows: dict[str, list[float]] = {}  # provider -> [window start, requests seen]


def set_limits(provider: str, **limits: int) -> None:
    """Change the per-minute limits the simulator advertises (and counts down) for a provider."""
    with _lock:
        LIMITS.setdefault(provider, {}).update({k.replace("_", "-"): int(v) for k, v in limits.items()})
        _windows.pop(provider, None)


def rate_headers(provider: str, tokens: int = 0) -> dict[str, str]:
    """Rate-limit headers for one more request: remaining counts fall as requests arrive."""
    limits = LIMITS.get(provider)
    if not limits:
        return {}
    now = time.time()
    with _lock:
        window = _windows.get(provider)
        if window is None or now - window[0] >= 60.0:
            window = _windows[provider] = [now, 0.0, 0.0]
        window[1] += 1
        window[2] += tokens
        used_req, used_tok, reset_in = int(window[1]), int(window[2]), max(0.0, window[0] + 60.0 - now)
    if provider == "openai":
        return {"x-ratelimit-limit-requests": str(limits["requests"]),
                "x-ratelimit-limit-tokens": str(limits["tokens"]),
                "x-ratelimit-remaining-requests": str(max(0, limits["requests"] - used_req)),
                "x-ratelimit-remaining-tokens": str(max(0, limits["tokens"] - used_tok)),
                "x-ratelimit-reset-requests": f"{reset_in:.3f}s",
                "x-ratelimit-reset-tokens": f"{reset_in:.3f}s"}
    at = datetime.fromtimestamp(now + reset_in, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = {}
    for what, limit in limits.items():
        used = used_req if what == "requests" else used_tok
        out[f"anthropic-ratelimit-{what}-limit"] = str(limit)
        out[f"anthropic-ratelimit-{what}-remaining"] = str(max(0, limit - used))
        out[f"anthropic-ratelimit-{what}-reset"] = at
    return out


def reset_windows() -> None:
    with _lock:
        _windows.clear()


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
    body: Any
    hdrs = {"content-type": "application/json"}
    if provider == "openai":
        created = 1744316542
        body = {"object": "list", "data": [{"id": m, "object": "model", "created": created,
                                            "owned_by": "system"} for m in OPENAI_MODELS]}
        hdrs.update({"x-request-id": "req_sim_models", "openai-version": "2020-10-01"})
        hdrs.update(rate_headers("openai"))
        return Reply(200, hdrs, compact(body).encode())
    if provider == "anthropic":
        data = [{"type": "model", "id": m, "display_name": label,
                 "created_at": "2025-10-01T00:00:00Z"} for m, label in ANTHROPIC_MODELS]
        body = {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
        hdrs.update(rate_headers("anthropic"))
        return Reply(200, hdrs, compact(body).encode())
    body = {"models": [{"name": f"models/{m}", "version": "001", "displayName": label,
                        "description": f"Simulated {label}", "inputTokenLimit": 1048576,
                        "outputTokenLimit": 65536,
                        "supportedGenerationMethods": ["generateContent", "countTokens",
                                                       "createCachedContent", "batchGenerateContent"],
                        "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2,
                        "thinking": True} for m, label in GEMINI_MODELS]}
    import json

    return Reply(200, {"content-type": "application/json; charset=UTF-8"},
                 (json.dumps(body, indent=2) + "\n").encode())
