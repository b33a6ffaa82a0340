"""Costs computed by hand from the published per-million-token prices (as in genai-prices 0.2.3's
data) must equal pricing.cost() for calls with cached input, cache writes and reasoning tokens."""

from __future__ import annotations

import math
import uuid
import warnings

import pytest

from llmcells import pricing
from llmcells.errors import ConfigError
from llmcells.types import Usage

M = 1_000_000


@pytest.fixture(autouse=True)
def _no_user_prices():
    pricing.clear_prices()
    yield
    pricing.clear_prices()


def _unique(prefix: str = "m") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_gpt_41_mini_cached_input_and_reasoning():
    # gpt-4.1-mini: input $0.40/M, cached input $0.10/M, output $1.60/M.
    u = Usage(input_tokens=10_000, cached_input_tokens=4_000, output_tokens=2_000,
              reasoning_tokens=500)
    expected = (6_000 * 0.40 + 4_000 * 0.10 + 2_000 * 1.60) / M  # reasoning is inside output
    c, source = pricing.cost("openai", "gpt-4.1-mini", u)
    assert c == pytest.approx(expected, rel=1e-12)
    assert source.startswith("genai-prices ")


def test_gpt_4o_mini_dated_snapshot_and_prefixed_id():
    # gpt-4o-mini: input $0.15/M, cached input $0.075/M, output $0.60/M.
    u = Usage(input_tokens=1_000, cached_input_tokens=500, output_tokens=100)
    expected = (500 * 0.15 + 500 * 0.075 + 100 * 0.60) / M
    for model in ("gpt-4o-mini-2024-07-18", "openai:gpt-4o-mini", "gpt-4o-mini"):
        assert pricing.cost("openai", model, u)[0] == pytest.approx(expected, rel=1e-12)
    assert pricing.cost("openai-responses", "gpt-4o-mini", u)[0] == pytest.approx(expected, rel=1e-12)


def test_claude_haiku_45_cache_read_and_write():
    # claude-haiku-4-5: input $1/M, cache write (5 min) $1.25/M, cache read $0.10/M, output $5/M.
    # Usage.input_tokens counts all input, cache reads and writes included.
    u = Usage(input_tokens=3_000, cached_input_tokens=1_000, cache_write_tokens=1_500,
              output_tokens=800, reasoning_tokens=300)
    expected = (500 * 1.0 + 1_000 * 0.10 + 1_500 * 1.25 + 800 * 5.0) / M
    for model in ("claude-haiku-4-5", "claude-haiku-4-5-20251001", "anthropic:claude-haiku-4-5"):
        c, _ = pricing.cost("anthropic", model, u)
        assert c == pytest.approx(expected, rel=1e-12), model


def test_gemini_25_flash_thinking_and_models_prefix():
    # gemini-2.5-flash: input $0.30/M, cached input $0.03/M, output (thinking included) $2.50/M.
    u = Usage(input_tokens=20_000, cached_input_tokens=8_000, output_tokens=3_000,
              reasoning_tokens=2_000)
    expected = (12_000 * 0.30 + 8_000 * 0.03 + 3_000 * 2.50) / M
    for prov, model in [("google", "gemini-2.5-flash"), ("google", "models/gemini-2.5-flash"),
                        ("gemini", "gemini-2.5-flash"), ("google", "gemini:gemini-2.5-flash")]:
        assert pricing.cost(prov, model, u)[0] == pytest.approx(expected, rel=1e-12), (prov, model)


def test_gemini_25_pro_tier_applies_per_request():
    # gemini-2.5-pro: prompts <= 200k: input $1.25/M, cached $0.125/M, output $10/M;
    # prompts > 200k: input $2.50/M, cached $0.25/M, output $15/M, on ALL tokens of that request.
    small = Usage(input_tokens=150_000, cached_input_tokens=50_000, output_tokens=1_000)
    big = Usage(input_tokens=250_000, cached_input_tokens=50_000, output_tokens=1_000)
    exp_small = (100_000 * 1.25 + 50_000 * 0.125 + 1_000 * 10) / M
    exp_big = (200_000 * 2.50 + 50_000 * 0.25 + 1_000 * 15) / M
    assert pricing.cost("google", "gemini-2.5-pro", small)[0] == pytest.approx(exp_small, rel=1e-12)
    assert pricing.cost("google", "models/gemini-2.5-pro", big)[0] == pytest.approx(exp_big, rel=1e-12)
    # Two small requests are two base-rate requests, not one big one.
    two = pricing.cost("google", "gemini-2.5-pro", small)[0] * 2
    assert two == pytest.approx(2 * exp_small)
    # The running estimate uses the same tier.
    assert pricing.estimate_cost("google", "gemini-2.5-pro", 250_000, 1_000) == \
        pytest.approx((250_000 * 2.50 + 1_000 * 15) / M, rel=1e-12)
    assert pricing.estimate_cost("google", "gemini-2.5-pro", 150_000, 1_000) == \
        pytest.approx((150_000 * 1.25 + 1_000 * 10) / M, rel=1e-12)


def test_estimate_cost_matches_cost_without_cache():
    for prov, model in [("openai", "gpt-4.1-mini"), ("anthropic", "claude-haiku-4-5")]:
        for out in (0, 1, 77, 5_000):
            exact = pricing.cost(prov, model, Usage(input_tokens=1_234, output_tokens=out))[0]
            assert pricing.estimate_cost(prov, model, 1_234, out) == pytest.approx(exact, rel=1e-12)


def test_zero_usage_costs_zero_for_a_known_model():
    assert pricing.cost("openai", "gpt-4.1-mini", Usage()) == (0.0, pricing.cost(
        "openai", "gpt-4.1-mini", Usage())[1])


def test_unknown_model_is_nan_and_warns_once():
    name = _unique("llama")
    with pytest.warns(pricing.PriceWarning, match=rf"ollama:{name}.*set_price") as rec:
        c1, s1 = pricing.cost("ollama", name, Usage(input_tokens=10, output_tokens=5))
        c2, s2 = pricing.cost("ollama", name, Usage(input_tokens=10, output_tokens=5))
        c3 = pricing.estimate_cost("ollama", name, 10, 5)
    assert math.isnan(c1) and math.isnan(c2) and math.isnan(c3)
    assert s1 is None and s2 is None
    assert len([w for w in rec if issubclass(w.category, pricing.PriceWarning)]) == 1
    assert "llmcells.set_price('ollama:" in str(rec[0].message)


def test_unknown_model_of_a_known_provider_is_nan():
    name = _unique("gpt-99")
    with pytest.warns(UserWarning, match="No price known for openai:"):
        c, src = pricing.cost("openai", name, Usage(input_tokens=10, output_tokens=5))
    assert math.isnan(c) and src is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # the second time: no warning at all
        assert math.isnan(pricing.cost("openai", name, Usage(input_tokens=1))[0])


def test_set_price_for_self_hosted_endpoint_zero_and_star():
    name = _unique("qwen")
    pricing.set_price(f"ollama:{name}", input=0.0, output=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c, src = pricing.cost("ollama", name, Usage(input_tokens=1_000, output_tokens=1_000))
    assert c == 0.0 and src == pricing.USER_PRICE_SOURCE

    pricing.set_price("vllm:*", input=0.5, output=2.0, cached_input=0.05)
    u = Usage(input_tokens=4_000, cached_input_tokens=1_000, output_tokens=500)
    expected = (3_000 * 0.5 + 1_000 * 0.05 + 500 * 2.0) / M
    assert pricing.cost("vllm", "any-model:7b", u)[0] == pytest.approx(expected, rel=1e-12)
    assert pricing.estimate_cost("vllm", "other", 1_000, 1_000) == pytest.approx(2.5e-3)


def test_user_price_wins_over_genai_prices_and_clear_prices():
    u = Usage(input_tokens=1_000, cache_write_tokens=200, output_tokens=100)
    pricing.set_price("claude", input=2.0, output=10.0, cache_write=3.0)   # alias -> anthropic:...
    c, src = pricing.cost("anthropic", "claude-haiku-4-5-20251001", u)
    assert src == pricing.USER_PRICE_SOURCE
    assert c == pytest.approx((800 * 2.0 + 200 * 3.0 + 100 * 10.0) / M)
    pricing.clear_prices()
    c, src = pricing.cost("anthropic", "claude-haiku-4-5-20251001", u)
    assert src.startswith("genai-prices")
    assert c == pytest.approx((800 * 1.0 + 200 * 1.25 + 100 * 5.0) / M)


@pytest.mark.parametrize("bad", [dict(input=-1, output=0), dict(input=float("nan"), output=0),
                                 dict(input="1", output=0)])
def test_set_price_rejects_bad_prices(bad):
    with pytest.raises(ConfigError):
        pricing.set_price("ollama:x", **bad)


def test_set_price_needs_provider_model():
    with pytest.raises(ConfigError, match="provider:model"):
        pricing.set_price("no-provider-here", input=1, output=1)


def test_inconsistent_usage_does_not_raise():
    # cached > input (a provider bug) is clamped instead of crashing the call.
    c, _ = pricing.cost("openai", "gpt-4.1-mini", Usage(input_tokens=10, cached_input_tokens=50))
    assert c == pytest.approx(50 * 0.10 / M)


def test_import_is_lazy_and_lookups_are_fast():
    import subprocess
    import sys

    code = ("import sys, llmcells.pricing; "
            "print('genai_prices' in sys.modules, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]

    import time

    pricing.estimate_cost("anthropic", "claude-haiku-4-5", 500, 1)
    t = time.perf_counter()
    for i in range(2_000):
        pricing.estimate_cost("anthropic", "claude-haiku-4-5", 500, i)
    assert (time.perf_counter() - t) / 2_000 < 1e-4      # well under 0.1 ms per running estimate
