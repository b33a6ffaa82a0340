"""Batch prices: genai-prices' `processing=batch` variant, or the providers' published 50% rule.

genai-prices has batch prices for about half the models; for the rest, asking with
price_context={"processing": "batch"} silently gives the standard price. So the model's price
variants are checked first: without a batch variant, the standard price is halved (OpenAI,
Anthropic and Google all publish batch as 50% of the standard price) and price_source says so.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

from .. import pricing
from ..types import Usage

BATCH_CONTEXT = {"processing": "batch"}
RULE = "50% batch rule"


def _has_batch_variant(model_info: Any) -> bool:
    return any(v.when.get("processing") == "batch" for v in (model_info.price_variants or ()))


def batch_cost(provider: str, model: str, usage: Usage, *, requested: str | None = None
               ) -> tuple[float, str | None]:
    """USD cost of one request run as a provider batch, and where its price came from.

    "genai-prices X (batch)" when genai-prices has the model's batch price; "genai-prices X,
    50% batch rule" (or "set_price, 50% batch rule") when only a standard price is known; NaN
    and None when no price is known at all.
    """
    from genai_prices import Usage as GUsage

    counts = pricing._clean_counts(usage)
    candidates = [model] if requested is None or requested == model else [model, requested]
    resolved = None
    for candidate in candidates:
        prov, name = pricing._normalise(provider, candidate)
        user = pricing._user_price(prov, name)
        if user is not None:
            return user.cost(*counts[:4]) * 0.5, f"{pricing.USER_PRICE_SOURCE}, {RULE}"
        resolved = pricing._resolve(prov, name)
        if resolved is not None:
            break
    if resolved is None:
        pricing._warn_unknown(prov, name, provider, candidates[-1])
        return math.nan, None
    gprovider, model_info = resolved
    inp, cached, write, out, reasoning = counts
    values = {"input_tokens": inp, "output_tokens": out}
    if cached:
        values["cache_read_tokens"] = cached
    if write:
        values["cache_write_tokens"] = write
    if reasoning:
        values["output_reasoning_tokens"] = reasoning
    source = pricing._source_label()
    try:
        if _has_batch_variant(model_info):
            calc = model_info.calc_price(GUsage(**values), gprovider, price_context=BATCH_CONTEXT)
            return float(calc.total_price), f"{source} (batch)"
        calc = model_info.calc_price(GUsage(**values), gprovider)
        return float(calc.total_price) * 0.5, f"{source}, {RULE}"
    except (ValueError, ArithmeticError) as exc:
        warnings.warn(f"Could not price a batch request to {provider}:{model}: {exc}; cost is NaN.",
                      pricing.PriceWarning, stacklevel=2)
        return math.nan, None


@functools.lru_cache(maxsize=8192)
def estimate(provider: str, model: str, input_tokens: int, output_tokens: int) -> float:
    """Estimated batch cost of one request (NaN when no price is known)."""
    value, _ = batch_cost(provider, model, Usage(input_tokens=input_tokens, output_tokens=output_tokens))
    return value
