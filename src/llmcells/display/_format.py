"""Formatting shared by the notebook and terminal front ends: numbers, metrics lines, the
fastest / cheapest picks, and live estimates (tokens from characters, cost from pricing).

Nothing here imports ipywidgets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from ..types import RATE_MIN_SPAN_S, CallInfo, Result, Usage
from .._log import swallowed

#: rough characters per token, when only a length is known
CHARS_PER_TOKEN = 4.0
#: the longest error message shown in a card or a terminal line
MAX_ERROR_CHARS = 300
#: tokens/s is shown only from this many streamed pieces over at least RATE_MIN_SPAN_S seconds
#: (an answer that arrives in one burst has no meaningful rate)
RATE_MIN_CHUNKS = 3

#: How the providers' tokenizers roughly cut text, for the live estimate: a word of up to
#: `whole` characters is one token, a longer one a token per `piece` characters. English prose
#: through OpenAI's, Anthropic's and Google's BPE vocabularies comes out near one token per
#: common word, which counting characters (4 per token) overstates by about 30%.
TOKENIZERS = {"openai": (8, 6), "anthropic": (8, 6), "google": (8, 6)}
_DEFAULT_TOKENIZER = (8, 6)
_WORD = re.compile(r"\S+")


#: what a terminal would act on rather than show: C0 controls but tab and newline (ESC starts
#: colour, clear-screen, title and hyperlink sequences; CR rewrites the line), DEL, the C1
#: controls (U+009B is a one-character CSI) and the bidi embeddings, overrides and isolates
#: (text shown in another order than it reads)
_TERMINAL_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """Text from a model or a provider as a terminal may print it: the control characters
    removed (escape sequences then show as plain text), tab and newline kept."""
    return _TERMINAL_CONTROLS.sub("", text) if text else text


def _word_tokens(n: int, rule: tuple[int, int]) -> int:
    whole, piece = rule
    return 1 if n <= whole else -(-n // piece)


def estimate_tokens(text: str, provider: str = "") -> int:
    """A rough token count of text as `provider`'s tokenizer would make it, for display while
    streaming (whole words up to a length, sub-word pieces beyond)."""
    rule = TOKENIZERS.get(provider, _DEFAULT_TOKENIZER)
    return sum(_word_tokens(len(m.group()), rule) for m in _WORD.finditer(text or ""))


class TokenCounter:
    """The live estimate of an answer's tokens, fed piece by piece in linear time: complete
    words are counted once; only the word still being written is counted again."""

    def __init__(self, provider: str = ""):
        self.rule = TOKENIZERS.get(provider, _DEFAULT_TOKENIZER)
        self.done = 0
        self.tail = ""

    def feed(self, delta: str) -> None:
        s = self.tail + delta
        cut = max(s.rfind(" "), s.rfind("\n"), s.rfind("\t"))
        if cut >= 0:
            self.done += sum(_word_tokens(len(m.group()), self.rule) for m in _WORD.finditer(s[:cut]))
            s = s[cut + 1:]
        if len(s) > 64:  # one very long unbroken string: count its whole pieces now
            piece = self.rule[1]
            k = (len(s) // piece - 1) * piece
            self.done += k // piece
            s = s[k:]
        self.tail = s

    @property
    def tokens(self) -> int:
        return self.done + (_word_tokens(len(self.tail), self.rule) if self.tail.strip() else 0)


def meaningful_rate(rate: float | None, span_s: float | None, chunks: int | None = None) -> float | None:
    """rate when it means something (at least RATE_MIN_CHUNKS pieces over RATE_MIN_SPAN_S
    seconds; chunks=None when the count is not known), else None."""
    if not known(rate) or not known(span_s) or span_s < RATE_MIN_SPAN_S:
        return None
    if chunks is not None and chunks < RATE_MIN_CHUNKS:
        return None
    return rate


def result_rate(result: Result, chunks: int | None = None) -> float | None:
    """A finished call's tokens/s, or None when it is not meaningful (see meaningful_rate)."""
    span = (result.latency_s - result.ttft_s) if known(result.latency_s) and known(result.ttft_s) \
        else None
    return meaningful_rate(result.tokens_per_s, span, chunks)


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
    except Exception as exc:
        swallowed("estimating a running cost (NaN instead)", exc)
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
    elif output_tokens and not estimated and known(ttft):
        parts.append("— tok/s")  # an answer in one burst: no meaningful rate
    if input_tokens or output_tokens:
        inp = ("~" if input_estimated else "") + f"{input_tokens or 0:,}"
        parts.append(f"{inp}→{approx}{output_tokens or 0:,} tokens")
    if known(cost) or not estimated:
        parts.append((approx if known(cost) else "") + fmt_cost(cost))
    return parts


def best_output_tokens(reported: int | None, est: int) -> int:
    """The best live estimate of output tokens: the provider's running count once it is
    plausible, else `est`, the estimate from the text. A provider's placeholder (Anthropic's
    message_start says output_tokens=1) is far below the text's estimate and is ignored."""
    if reported and reported >= 0.5 * est:
        return int(reported)
    return est


def estimate_tokens_from_chars(n: int) -> int:
    return 0 if n <= 0 else max(1, int(round(n / CHARS_PER_TOKEN)))


def metric_parts(result: Result, chunks: int | None = None) -> list[str]:
    """The pieces of a final metrics line: latency, TTFT, tokens/s (when meaningful: chunks is
    how many pieces the answer streamed in, None when unknown), in→out tokens, cost."""
    u = result.usage or Usage()
    parts = figures(result.latency_s, result.ttft_s, result_rate(result, chunks), u.input_tokens,
                    u.output_tokens, result.cost_usd)
    if result.attempts and result.attempts > 1:
        parts.append(f"{result.attempts} attempts")
    if result.cached:
        parts.append("cached")
    parts += footer_parts(result)  # "replayed", then each score
    return parts


def fmt_score(value: float | None) -> str:
    if not known(value):
        return "–"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def footer_parts(result: Result) -> list[str]:
    """Extra pieces of a finished call's metrics line: "replayed" with the original figures,
    then each score ("judge 8: clear and correct", "exact 1")."""
    parts = []
    if result.replayed:
        orig = result.original or {}
        figures = [fmt_seconds(orig.get("latency_s"))] if known(orig.get("latency_s")) else []
        if known(orig.get("cost_usd")):
            figures.append(fmt_cost(orig["cost_usd"]))
        parts.append("↺ replayed" + (f" (originally {', '.join(figures)})" if figures else ""))
    for name, value in (result.scores or {}).items():
        note = (result.score_notes or {}).get(name)
        piece = f"{name} {fmt_score(value)}"
        if note:
            piece += f": {note if len(note) <= 70 else note[:69] + '…'}"
        parts.append(piece)
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


def retry_label(retry, left_s: float | None = None, short: bool = False) -> str:
    """"retrying in 2 s (429)… attempt 2 of 4" from a RetryInfo (left_s: seconds still to wait);
    short=True gives "retry 2/4 in 2 s", which leaves a card header room for the model's name."""
    wait = retry.wait_s if left_s is None else left_s
    if short:
        return f"retry {retry.attempt}/{retry.max_attempts} in {max(0, math.ceil(wait))} s"
    label = f"retrying in {max(0, math.ceil(wait))} s"
    if retry.status_code:
        label += f" ({retry.status_code})"
    elif retry.reason:
        label += f" ({retry.reason.replace('_', ' ')})"
    return label + f"… attempt {retry.attempt} of {retry.max_attempts}"
