"""Batch prices: genai-prices' `processing=batch` variant, or the providers' published 50% rule.

genai-prices has batch prices for about half the models; for the rest, asking with
price_context={"processing": "batch"} silently gives the standard price. So the model's price
variants are checked first: without a batch variant, the standard price is halved (OpenAI,
Anthropic and Google all publish batch as 50% of the standard price) and price_source says so.
"""

from __future__ import annotations

import dataclasses
import functools
import math

from .. import pricing
from ..types import Usage

RULE = "50% batch rule"


def batch_price(provider: str, model: str, usage: Usage, *, requested: str | None = None
                ) -> tuple[float, str | None, "pricing.PriceBasis | None"]:
    """USD cost of one request run as a provider batch, the price_source text, and the
    PriceBasis (rates per million tokens) it was computed with, so the ledger row re-derives.

    "genai-prices X (batch)" when genai-prices has the model's batch price; "genai-prices X,
    50% batch rule" (or "set_price, 50% batch rule") when only a standard price is known: then the
    standard rates are halved. NaN and None when no price is known at all.
    """
    live_cost, live = pricing.price(provider, model, usage, requested=requested)
    if live is None:
        return math.nan, None, None
    cost, batch = pricing.price(provider, model, usage, requested=requested, processing="batch")
    if batch is not None and batch.source == "genai-prices" and batch.rates != live.rates:
        return cost, f"{batch.label} (batch)", batch
    # No batch variant: genai-prices silently answers with the standard price for processing=batch.
    halved = dataclasses.replace(live, processing="batch", rates=tuple(r * 0.5 for r in live.rates),
                                 request=live.request * 0.5)
    return live_cost * 0.5, f"{live.label}, {RULE}", halved


def batch_cost(provider: str, model: str, usage: Usage, *, requested: str | None = None
               ) -> tuple[float, str | None]:
    """(USD cost, price_source) of one request run as a provider batch (see batch_price)."""
    value, source, _ = batch_price(provider, model, usage, requested=requested)
    return value, source


@functools.lru_cache(maxsize=8192)
def estimate(provider: str, model: str, input_tokens: int, output_tokens: int) -> float:
    """Estimated batch cost of one request (NaN when no price is known)."""
    value, _ = batch_cost(provider, model, Usage(input_tokens=input_tokens, output_tokens=output_tokens))
    return value
