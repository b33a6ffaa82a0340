"""The one home of cost: USD cost of a call from its normalised Usage.

Prices come from `genai-prices` (exact, offline, with cached input, cache writes and tiered prices)
unless the user set one with `set_price`, which always wins. An unknown model costs NaN, never a
silent 0, and warns once per (provider, model) per session, saying how to add a price.

How llmcells' Usage maps onto genai-prices' Usage (checked against genai-prices 0.2.3 source):

- genai-prices' `input_tokens` is the TOTAL input; `cache_read_tokens` and `cache_write_tokens` are
  "descendants" of it: the plain-input charge is on input - cache_read - cache_write (only for the
  descendants the model prices; an unpriced kind of token falls back to the input rate). That is
  exactly llmcells' convention (input_tokens counts cached reads and cache writes), so the fields map
  one to one. Tiers (Gemini 2.5 Pro above 200k prompt tokens, Anthropic long context) are chosen
  from that total input of the one request, and a crossed tier applies to all its tokens.
- genai-prices' `output_tokens` is the TOTAL output; `output_reasoning_tokens` is a descendant that
  is charged apart only when a model has a reasoning price (none of OpenAI's, Anthropic's or
  Google's do): reasoning is billed as output, which matches llmcells' output_tokens.

`import genai_prices` costs ~0.2 s, so it happens on the first priced call, not on import.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .models import PROVIDER_SYNONYMS
from .session import session
from .types import Usage

__all__ = ["cost", "estimate_cost", "set_price", "clear_prices", "prices", "PriceWarning",
           "USER_PRICE_SOURCE"]

# llmcells provider -> genai-prices provider id. Anything else (user endpoints) has no price
# unless one is registered with set_price.
_GENAI_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "google": "google"}

USER_PRICE_SOURCE = "set_price"
_PER = 1_000_000


class PriceWarning(UserWarning):
    """A call's price is unknown (its cost is NaN)."""


@dataclass(frozen=True)
class _UserPrice:
    """A price set by the user, in USD per million tokens."""

    input: float
    output: float
    cached_input: float
    cache_write: float

    def cost(self, input_tokens: int, cached: int, write: int, output_tokens: int) -> float:
        plain = input_tokens - cached - write
        return (plain * self.input + cached * self.cached_input + write * self.cache_write
                + output_tokens * self.output) / _PER


_user_prices: dict = session.prices  # the session's user prices (set_price)
_warned: set[tuple[str, str]] = set()
_warn_lock = threading.Lock()


# ----- names ---------------------------------------------------------------------------------------

_DATE_SUFFIXES = [
    re.compile(r"[-@]\d{4}-\d{2}-\d{2}$"),   # gpt-4o-mini-2024-07-18
    re.compile(r"[-@]\d{8}$"),               # claude-haiku-4-5-20251001, claude-...@20251001
    re.compile(r"-\d{3,4}$"),                # gpt-4-0613, gemini-1.5-pro-002
    re.compile(r"-latest$"),
]


def _norm_provider(provider: str | None) -> str:
    p = (provider or "").strip().lower()
    return PROVIDER_SYNONYMS.get(p, p)


@functools.lru_cache(maxsize=4096)
def _normalise(provider: str | None, model: str) -> tuple[str, str]:
    """(provider, model name) as used for price lookup: synonyms mapped, prefixes stripped."""
    prov = _norm_provider(provider)
    name = (model or "").strip()
    if ":" in name:
        prefix, rest = name.split(":", 1)
        p = _norm_provider(prefix)
        # Only strip a provider prefix: Ollama names contain colons too (llama3.2:3b).
        if p == prov or (not prov and p in _GENAI_PROVIDERS):
            prov, name = p, rest.strip()
    if name.startswith("models/"):
        name = name[len("models/"):]
    elif "/models/" in name:                 # projects/.../publishers/google/models/gemini-2.5-pro
        name = name.rsplit("/models/", 1)[1]
    return prov, name.lower()


def _undated(name: str) -> str | None:
    for rx in _DATE_SUFFIXES:
        stripped = rx.sub("", name)
        if stripped != name and stripped:
            return stripped
    return None


# ----- genai-prices --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _source_label() -> str:
    import genai_prices

    return f"genai-prices {genai_prices.__version__}"


@functools.lru_cache(maxsize=2048)
def _resolve(provider: str, name: str) -> Any:
    """(genai Provider, ModelInfo) for a normalised name, or None when genai-prices has no price."""
    gid = _GENAI_PROVIDERS.get(provider)
    if gid is None or not name:
        return None
    from genai_prices.data_snapshot import get_snapshot

    snap = get_snapshot()
    candidates = [name]
    undated = _undated(name)
    if undated:
        candidates.append(undated)
    for ref in candidates:
        try:
            return snap.find_provider_model(ref, None, gid, None)
        except LookupError:
            continue
    return None


def _clean_counts(usage: Usage) -> tuple[int, int, int, int, int]:
    """Non-negative, consistent counts: cached + writes <= input, reasoning <= output."""
    inp = max(int(usage.input_tokens or 0), 0)
    cached = max(int(usage.cached_input_tokens or 0), 0)
    write = max(int(usage.cache_write_tokens or 0), 0)
    out = max(int(usage.output_tokens or 0), 0)
    reasoning = max(int(usage.reasoning_tokens or 0), 0)
    inp = max(inp, cached + write)
    out = max(out, reasoning)
    return inp, cached, write, out, reasoning


def _genai_cost(resolved: Any, inp: int, cached: int, write: int, out: int, reasoning: int) -> float:
    from genai_prices import Usage as GUsage

    provider, model_info = resolved
    values = {"input_tokens": inp, "output_tokens": out}
    if cached:
        values["cache_read_tokens"] = cached
    if write:
        values["cache_write_tokens"] = write
    if reasoning:
        values["output_reasoning_tokens"] = reasoning
    calc = model_info.calc_price(GUsage(**values), provider)
    return float(calc.total_price)


# ----- user prices ---------------------------------------------------------------------------------


def _user_price(provider: str, name: str) -> _UserPrice | None:
    if not _user_prices:
        return None
    p = _user_prices.get((provider, name))
    if p is None:
        undated = _undated(name)
        if undated:
            p = _user_prices.get((provider, undated))
    if p is None:
        p = _user_prices.get((provider, "*"))
    return p


def _check_price(label: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise ConfigError(f"set_price: {label} must be a non-negative number of USD per million "
                          f"tokens, not {value!r}.")
    return float(value)


def set_price(model_id: str, *, input: float, output: float, cached_input: float | None = None,
              cache_write: float | None = None) -> None:
    """Set the price of a model, in USD per million tokens; it wins over genai-prices.

    model_id is `provider:model` (e.g. `ollama:llama3.2`, `openai:gpt-4.1-mini`) or `provider:*`
    for every model of an endpoint. cached_input (cache reads) and cache_write default to the
    input price. A self-hosted model can be priced at 0: `set_price('ollama:*', input=0, output=0)`.
    """
    from .models import aliases

    if not isinstance(model_id, str) or not model_id.strip():
        raise ConfigError("set_price needs a model id such as 'ollama:llama3.2' or 'ollama:*'.")
    model_id = model_id.strip()
    model_id = aliases().get(model_id, model_id)
    if ":" not in model_id:
        raise ConfigError(f"set_price: {model_id!r} is not provider:model (e.g. 'ollama:llama3.2', "
                          "or 'ollama:*' for a whole endpoint).")
    prefix = model_id.split(":", 1)[0]
    provider, name = _normalise(prefix, model_id)
    if not provider or not name:
        raise ConfigError(f"set_price: {model_id!r} has no provider or model name.")
    inp = _check_price("input", input)
    price = _UserPrice(
        input=inp,
        output=_check_price("output", output),
        cached_input=inp if cached_input is None else _check_price("cached_input", cached_input),
        cache_write=inp if cache_write is None else _check_price("cache_write", cache_write),
    )
    _user_prices[(provider, name)] = price


def clear_prices() -> None:
    """Forget every price set with set_price (genai-prices' prices stay)."""
    _user_prices.clear()
    with _warn_lock:
        _warned.clear()


def prices() -> dict[str, dict[str, float]]:
    """The prices set with set_price, as {"provider:model": {input, output, cached_input, cache_write}}."""
    return {f"{p}:{m}": dict(vars(v)) for (p, m), v in _user_prices.items()}


# ----- public API ---------------------------------------------------------------------------------


def _warn_unknown(provider: str, name: str, raw_provider: str | None, raw_model: str) -> None:
    key = (provider, name)
    with _warn_lock:
        if key in _warned:
            return
        _warned.add(key)
    shown = f"{provider}:{name}" if provider else (raw_model or "?")
    warnings.warn(
        f"No price known for {shown}; cost is NaN. Add one with "
        f"llmcells.set_price('{shown}', input=0.0, output=0.0) (USD per million tokens).",
        PriceWarning,
        stacklevel=3,
    )


def cost(provider: str, model: str, usage: Usage, *, requested: str | None = None
         ) -> tuple[float, str | None]:
    """USD cost of one call and the source of its price (e.g. "genai-prices 0.2.3", "set_price").

    provider is "openai", "anthropic", "google" (or "gemini") or an endpoint name; model is the
    model name as answered (dated snapshots, `models/` and `provider:` prefixes are fine), and
    requested the name as asked for, used when the answered name has no price. Returns (NaN,
    None) for an unknown model, with one warning per model per session.
    """
    counts = _clean_counts(usage)
    candidates = [model] if requested is None or requested == model else [model, requested]
    for candidate in candidates:
        prov, name = _normalise(provider, candidate)
        user = _user_price(prov, name)
        if user is not None:
            return user.cost(*counts[:4]), USER_PRICE_SOURCE
        resolved = _resolve(prov, name)
        if resolved is not None:
            break
    else:
        _warn_unknown(prov, name, provider, candidates[-1])
        return math.nan, None
    try:
        return _genai_cost(resolved, *counts), _source_label()
    except (ValueError, ArithmeticError) as exc:  # inconsistent usage genai-prices refuses
        warnings.warn(f"Could not price a call to {prov}:{name}: {exc}; cost is NaN.", PriceWarning,
                      stacklevel=2)
        return math.nan, None


@functools.lru_cache(maxsize=8192)
def _linear(provider: str, name: str, input_tokens: int) -> tuple[float, float] | None:
    """(cost of the input alone, cost per output token) for a given prompt size.

    For a fixed input the price is linear in output tokens (the tier is chosen by the input), so
    two exact genai-prices computations give every running estimate for that call.
    """
    resolved = _resolve(provider, name)
    if resolved is None:
        return None
    base = _genai_cost(resolved, input_tokens, 0, 0, 0, 0)
    per_m = _genai_cost(resolved, input_tokens, 0, 0, _PER, 0) - base
    return base, per_m / _PER


def estimate_cost(provider: str, model: str, input_tokens: int, output_tokens: int) -> float:
    """Running cost while a call streams (no cache detail): same prices as cost(), cached so it
    can run many times a second. NaN when the price is unknown."""
    prov, name = _normalise(provider, model)
    inp = max(int(input_tokens or 0), 0)
    out = max(int(output_tokens or 0), 0)
    user = _user_price(prov, name)
    if user is not None:
        return user.cost(inp, 0, 0, out)
    lin = _linear(prov, name, inp)
    if lin is None:
        _warn_unknown(prov, name, provider, model)
        return math.nan
    return lin[0] + lin[1] * out
