"""The simulator's advertised rate limits: per-minute windows whose remaining counts fall as
requests arrive and reset every minute, as the real APIs' headers do."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

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
