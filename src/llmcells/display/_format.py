"""Formatting shared by the notebook and terminal front ends: numbers, metrics lines, the
fastest / cheapest picks, and live estimates (tokens from characters, cost from pricing).

Nothing here imports ipywidgets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from ..types import CallInfo, Result, Usage

#: rough characters per token, for the live estimate shown while a call streams
CHARS_PER_TOKEN = 4.0
#: the longest error message shown in a card or a terminal line
MAX_ERROR_CHARS = 300


def estimate_tokens(text: str) -> int:
    """A rough token count of text (~4 characters per token), for display while streaming."""
    return estimate_tokens_from_chars(len(text or ""))


def live_cost(info: CallInfo, input_tokens: int, output_tokens: int, usage: Usage | None = None) -> float:
    """The cost of so many tokens on info's model, or NaN when it can't be told (yet); the cache
    reads and writes of usage (the provider's running count) are priced at their own rates."""
    try:
        from .. import pricing  # written concurrently; absent or incomplete is fine

        estimate = pricing.estimate_cost
    except (ImportError, AttributeError):
        return math.nan
    from ..registry import model_name

    model = model_name(info.model_id)
    try:
        cache = {} if usage is None else {k: int(v) for k, v in (
            ("cached_input_tokens", usage.cached_input_tokens),
            ("cache_write_tokens", usage.cache_write_tokens),
            ("cache_write_1h_tokens", getattr(usage, "cache_write_1h_tokens", 0))) if v}
        value = float(estimate(info.provider, model, int(input_tokens), int(output_tokens), **cache))
    except Exception:
        return math.nan
    return value


def known(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def fmt_seconds(s: float | None) -> str:
    if not known(s):
        return "–"
    if s < 10:
        return f"{s:.2f} s"
    if s < 100:
        return f"{s:.1f} s"
    return f"{s:.0f} s"


def fmt_cost(c: float | None) -> str:
    """$0.000330 style; "cost unknown" for NaN / None."""
    if not known(c):
        return "cost unknown"
    if c == 0:
        return "$0"
    if abs(c) < 1:
        return f"${c:.6f}"
    return f"${c:,.4f}"


def fmt_rate(r: float | None) -> str:
    if not known(r):
        return "–"
    return f"{r:.0f} tok/s" if r >= 10 else f"{r:.1f} tok/s"


def fmt_int(n: int | None) -> str:
    return "–" if n is None else f"{n:,}"


def short_error(result: Result) -> str:
    """One short line saying why a call did not end ok (never a traceback)."""
    msg = (result.error or "").strip()
    if not msg:
        msg = {"cancelled": "cancelled", "incomplete": "the answer stopped before its end",
               "error": "failed"}.get(result.status, result.status)
    msg = " ".join(msg.split())  # one line
    if len(msg) > MAX_ERROR_CHARS:
        msg = msg[: MAX_ERROR_CHARS - 1] + "…"
    return msg


def figures(latency: float | None, ttft: float | None, rate: float | None, input_tokens: int | None,
            output_tokens: int | None, cost: float | None, *, estimated: bool = False,
            input_estimated: bool = False) -> list[str]:
    """The figures of a call in the order both the live and the final footer show them:
    time, TTFT, tokens/s, input→output tokens, cost. With estimated=True the token-derived
    figures (tokens/s, output tokens, cost) are marked `~`; time and TTFT are measured, never
    estimated. One definition for live and final: time counts from the engine's request clock,
    tokens/s is output tokens over the time since the first token."""
    approx = "~" if estimated else ""
    parts = []
    if known(latency):
        parts.append(fmt_seconds(latency))
    if known(ttft):
        parts.append(f"TTFT {fmt_seconds(ttft)}")
    if known(rate):
        parts.append(approx + fmt_rate(rate))
    if input_tokens or output_tokens:
        inp = ("~" if input_estimated else "") + f"{input_tokens or 0:,}"
        parts.append(f"{inp}→{approx}{output_tokens or 0:,} tokens")
    if known(cost) or not estimated:
        parts.append((approx if known(cost) else "") + fmt_cost(cost))
    return parts


def best_output_tokens(reported: int | None, text_chars: int) -> int:
    """The best live estimate of output tokens: the provider's running count once it is
    plausible, else an estimate from the text. A provider's placeholder (Anthropic's
    message_start says output_tokens=1) is far below the text's estimate and is ignored."""
    est = estimate_tokens_from_chars(text_chars)
    if reported and reported >= 0.5 * est:
        return int(reported)
    return est


def estimate_tokens_from_chars(n: int) -> int:
    return 0 if n <= 0 else max(1, int(round(n / CHARS_PER_TOKEN)))


def metric_parts(result: Result) -> list[str]:
    """The pieces of a final metrics line: latency, TTFT, tokens/s, in→out tokens, cost."""
    u = result.usage or Usage()
    parts = figures(result.latency_s, result.ttft_s, result.tokens_per_s, u.input_tokens,
                    u.output_tokens, result.cost_usd)
    if result.attempts and result.attempts > 1:
        parts.append(f"{result.attempts} attempts")
    if result.cached:
        parts.append("cached")
    from .scores import footer_parts  # [scoring hook]: "replayed", then each score

    parts += footer_parts(result)
    return parts


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def notes_line(result: Result) -> str | None:
    """The call's notes in one line ("sent without temperature: … · refused: …"), or None."""
    notes = getattr(result, "notes", None)
    # (a refusal's explanation is the provider's text: no control characters reach a terminal)
    return _CONTROL.sub("", " · ".join(notes)) if notes else None


def metrics_line(result: Result, model: str | None = None) -> str:
    """`[anthropic:claude-haiku-5-5 · ok · 1.23 s · TTFT 0.31 s · 58 tok/s · 10→64 tokens · $0.000330]`"""
    head = [model or result.model, result.status]
    return "[" + " · ".join(head + metric_parts(result)) + "]"


def pick_best(results: Sequence[Result]) -> tuple[int | None, int | None]:
    """(index of the fastest, index of the cheapest) among successful results.

    Fastest: lowest latency. Cheapest: lowest known cost. None when fewer than two results or no
    candidate.
    """
    if len(results) < 2:
        return None, None
    ok = [(i, r) for i, r in enumerate(results) if r is not None and r.status == "ok"]
    fast = [(r.latency_s, i) for i, r in ok if known(r.latency_s)]
    cheap = [(r.cost_usd, i) for i, r in ok if known(r.cost_usd)]
    return (min(fast)[1] if fast else None), (min(cheap)[1] if cheap else None)


def retry_label(retry, left_s: float | None = None) -> str:
    """"retrying in 2 s (429)… attempt 2 of 4" from a RetryInfo (left_s: seconds still to wait)."""
    wait = retry.wait_s if left_s is None else left_s
    label = f"retrying in {max(0, math.ceil(wait))} s"
    if retry.status_code:
        label += f" ({retry.status_code})"
    elif retry.reason:
        label += f" ({retry.reason.replace('_', ' ')})"
    return label + f"… attempt {retry.attempt} of {retry.max_attempts}"
