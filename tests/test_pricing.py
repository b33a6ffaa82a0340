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


def test_a_reset_session_warns_of_an_unknown_price_again():
    # the warnings given are the session's: after reset() (a new notebook's state, each test's
    # end) the same model warns once more, whatever an earlier test in this process asked
    from llmcells.session import session

    name = _unique("llama")
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pricing.cost("ollama", name, Usage(input_tokens=10, output_tokens=5))
            pricing.cost("ollama", name, Usage(input_tokens=10, output_tokens=5))
        assert len([w for w in caught if issubclass(w.category, pricing.PriceWarning)]) == 1
        session.reset()


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
    # the alias names anthropic:claude-haiku-5-5; its price then wins for that model only
    pricing.set_price("claude", input=2.0, output=10.0, cache_write=3.0)
    c, src = pricing.cost("anthropic", "claude-haiku-5-5", u)
    assert src == pricing.USER_PRICE_SOURCE
    assert c == pytest.approx((800 * 2.0 + 200 * 3.0 + 100 * 10.0) / M)
    assert pricing.cost("anthropic", "claude-haiku-4-5-20251001", u)[1].startswith("genai-prices")
    pricing.clear_prices()
    c, src = pricing.cost("anthropic", "claude-haiku-4-5-20251001", u)
    assert src.startswith("genai-prices")
    assert c == pytest.approx((800 * 1.0 + 200 * 1.25 + 100 * 5.0) / M)


def test_one_batch_price_variant_or_the_half_rule_and_its_source_round_trips():
    u = Usage(input_tokens=10_000, cached_input_tokens=2_000, output_tokens=1_000)
    live, _ = pricing.cost("anthropic", "claude-3-haiku-20240307", u)
    # no batch price in genai-prices: genai-prices alone would answer the live $ figure
    c, b = pricing.price("anthropic", "claude-3-haiku-20240307", u, processing="batch")
    assert c == pytest.approx(live / 2, rel=1e-12) and b.label.endswith(pricing.BATCH_RULE)
    c, b = pricing.price("openai", "gpt-4o-mini", u, processing="batch")     # has its own
    assert b.label.endswith(pricing.BATCH_VARIANT) and b.processing == "batch"
    name = _unique("b")
    pricing.set_price(f"vllm:{name}", input=1.0, output=3.0)
    c, b = pricing.price("vllm", name, u, processing="batch")
    assert b.label == "set_price" + pricing.BATCH_RULE
    assert c == pytest.approx(pricing.cost("vllm", name, u)[0] / 2, rel=1e-12)
    for processing in ("live", "batch"):      # the ledger's columns give the same basis back
        _, b = pricing.price("openai", "gpt-4o-mini", u, processing=processing)
        row = {"price_rates": b.rates_json, "price_source": b.label, "processing": b.processing,
               "price_provider": b.provider, "price_model": b.model, "price_data_date": b.data_date}
        assert pricing.PriceBasis.from_row(row) == b
        assert pricing.PriceBasis.from_dict(b.as_dict()) == b


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


# ===== the audit's cases, end to end: raw provider payload -> SDK -> adapter -> engine -> ledger ====
#
# Each case is a streamed answer as the provider sends it, fed to the real SDK through an injected
# httpx transport, run by the engine (engine.execute) and recorded in the ledger. The expected
# price is worked out by hand below from the per-million rates in genai-prices 0.2.3's data.

import json  # noqa: E402

import httpx2  # noqa: E402

from llmcells import calls, engine, ledger, models, pipeline  # noqa: E402
from llmcells._loop import run as _run  # noqa: E402
from llmcells.models import ModelSpec  # noqa: E402
from test_adapters_unit import _sse as _sse_of  # noqa: E402  (the one SSE writer of the tests)


def _sse(events, named=False) -> bytes:
    return _sse_of(*events, named=named)


def openai_chat(model, usage, tier=None) -> bytes:
    """A Chat Completions stream: text chunks, then the usage chunk; service_tier on every chunk."""
    def chunk(**kw):
        c = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
             "choices": [], "usage": None, **kw}
        if tier is not None:
            c["service_tier"] = tier
        return c
    return _sse([
        chunk(choices=[{"index": 0, "delta": {"role": "assistant", "content": "hi"},
                        "finish_reason": None}]),
        chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        chunk(usage=usage),
    ]) + b"data: [DONE]\n\n"


def openai_responses(model, usage, tier=None) -> bytes:
    def resp(status, **kw):
        r = {"id": "resp_1", "object": "response", "created_at": 1, "model": model,
             "status": status, "output": [], "parallel_tool_calls": True, "tool_choice": "auto",
             "tools": [], **kw}
        if tier is not None:
            r["service_tier"] = tier
        return r
    return _sse([
        {"type": "response.created", "sequence_number": 0, "response": resp("in_progress")},
        {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "m",
         "output_index": 0, "content_index": 0, "delta": "hi", "logprobs": []},
        {"type": "response.completed", "sequence_number": 2,
         "response": resp("completed", usage=usage)},
    ], named=True)


def anthropic_stream(model, start_usage, output_tokens) -> bytes:
    return _sse([
        {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": output_tokens}},
        {"type": "message_stop"},
    ], named=True)


def gemini_stream(model_version, usage_metadata) -> bytes:
    return _sse([
        {"candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"}, "index": 0}],
         "usageMetadata": {"promptTokenCount": usage_metadata["promptTokenCount"]},
         "modelVersion": model_version, "responseId": "r1"},
        {"candidates": [{"content": {"parts": [{"text": "!"}], "role": "model"}, "index": 0,
                         "finishReason": "STOP"}],
         "usageMetadata": usage_metadata, "modelVersion": model_version, "responseId": "r1"},
    ])


@pytest.fixture
def keys(monkeypatch):
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.setenv(var, "test-key-not-real")
    yield  # the endpoints a test adds are dropped by session.reset() after it (conftest)


@pytest.fixture(autouse=True)
def _recorded_while_live(monkeypatch):
    """The audit cases price answers their models gave while they were live; some of those models
    have since been retired, which make_plan would refuse before anything is sent."""
    from llmcells import lifecycle

    monkeypatch.setattr(lifecycle, "check", lambda spec: None)


def call(model_id: str, body: bytes, headers: dict | None = None, **spec_changes) -> "engine.Result":
    """One call through the engine, answered by body (and headers); returns the Result (also in
    the ledger)."""
    spec = models.resolve(model_id)
    if spec_changes:
        spec = ModelSpec(**{**spec.__dict__, **spec_changes})
    plan = calls.make_plan("hello", spec)

    def handler(request):
        return httpx2.Response(200, headers={"content-type": "text/event-stream", **(headers or {})},
                               content=body)

    async def go():
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
            plan.http_client = http
            return await pipeline.call(plan)
    return _run(go())


def oa_usage(prompt, cached, completion, reasoning=0):
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning}}


def resp_usage(inp, cached, out, reasoning=0):
    return {"input_tokens": inp, "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": out, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": inp + out}


def an_usage(plain, read, write_5m, write_1h, tier="standard"):
    return {"input_tokens": plain, "cache_read_input_tokens": read,
            "cache_creation_input_tokens": write_5m + write_1h,
            "cache_creation": {"ephemeral_5m_input_tokens": write_5m,
                               "ephemeral_1h_input_tokens": write_1h},
            "output_tokens": 1, "service_tier": tier}


def gm_usage(prompt, cached, candidates, thoughts):
    return {"promptTokenCount": prompt, "cachedContentTokenCount": cached,
            "candidatesTokenCount": candidates, "thoughtsTokenCount": thoughts,
            "totalTokenCount": prompt + candidates + thoughts}


# (id, model, raw payload, expected USD worked out by hand, expected tier)
AUDIT = [
    # gpt-5-mini: default $0.25 in / $0.025 cached / $2 out; flex half; priority $0.45/$0.045/$3.60.
    # 12,000 input of which 4,000 cached -> 8,000 plain; 1,800 output (600 reasoning inside).
    ("gpt-5-mini default", "openai:gpt-5-mini",
     openai_chat("gpt-5-mini-2025-08-07", oa_usage(12_000, 4_000, 1_800, 600), "default"),
     (8_000 * 0.25 + 4_000 * 0.025 + 1_800 * 2.00) / M, "default"),              # 0.0057
    ("gpt-5-mini flex", "openai:gpt-5-mini",
     openai_chat("gpt-5-mini-2025-08-07", oa_usage(12_000, 4_000, 1_800, 600), "flex"),
     (8_000 * 0.125 + 4_000 * 0.0125 + 1_800 * 1.00) / M, "flex"),               # 0.00285
    ("gpt-5-mini priority (Responses)", "openai-responses:gpt-5-mini",
     openai_responses("gpt-5-mini-2025-08-07", resp_usage(12_000, 4_000, 1_800, 600), "priority"),
     (8_000 * 0.45 + 4_000 * 0.045 + 1_800 * 3.60) / M, "priority"),             # 0.01026
    # gpt-4.1-mini: $0.40 / $0.10 / $1.60; priority $0.70 / $0.175 / $2.80; no flex price
    # (OpenAI offers flex for the gpt-5 and o-series only), so flex is billed at the default rate.
    ("gpt-4.1-mini default", "openai:gpt-4.1-mini",
     openai_chat("gpt-4.1-mini-2025-04-14", oa_usage(10_000, 2_000, 1_000), "default"),
     (8_000 * 0.40 + 2_000 * 0.10 + 1_000 * 1.60) / M, "default"),
    ("gpt-4.1-mini flex", "openai:gpt-4.1-mini",
     openai_chat("gpt-4.1-mini-2025-04-14", oa_usage(10_000, 2_000, 1_000), "flex"),
     (8_000 * 0.40 + 2_000 * 0.10 + 1_000 * 1.60) / M, "flex"),
    ("gpt-4.1-mini priority", "openai:gpt-4.1-mini",
     openai_chat("gpt-4.1-mini-2025-04-14", oa_usage(10_000, 2_000, 1_000), "priority"),
     (8_000 * 0.70 + 2_000 * 0.175 + 1_000 * 2.80) / M, "priority"),
    # gpt-4o-mini (answered under its dated name): $0.15 / $0.075 / $0.60; priority $0.25 / $0.125 / $1.
    ("gpt-4o-mini default, dated", "openai:gpt-4o-mini",
     openai_chat("gpt-4o-mini-2024-07-18", oa_usage(5_000, 1_000, 500), "default"),
     (4_000 * 0.15 + 1_000 * 0.075 + 500 * 0.60) / M, "default"),
    ("gpt-4o-mini flex", "openai:gpt-4o-mini",
     openai_chat("gpt-4o-mini-2024-07-18", oa_usage(5_000, 1_000, 500), "flex"),
     (4_000 * 0.15 + 1_000 * 0.075 + 500 * 0.60) / M, "flex"),
    ("gpt-4o-mini priority", "openai:gpt-4o-mini",
     openai_chat("gpt-4o-mini-2024-07-18", oa_usage(5_000, 1_000, 500), "priority"),
     (4_000 * 0.25 + 1_000 * 0.125 + 500 * 1.00) / M, "priority"),
    # Haiku 4.5: $1 in / $0.10 read / $1.25 5-min write / $2 1-hour write / $5 out.
    ("haiku 5-minute writes", "anthropic:claude-haiku-4-5",
     anthropic_stream("claude-haiku-4-5-20251001", an_usage(2_000, 6_000, 10_000, 0), 700),
     (2_000 * 1 + 6_000 * 0.10 + 10_000 * 1.25 + 700 * 5) / M, "standard"),
    ("haiku 1-hour writes", "anthropic:claude-haiku-4-5",
     anthropic_stream("claude-haiku-4-5-20251001", an_usage(2_000, 6_000, 4_000, 6_000), 700),
     (2_000 * 1 + 6_000 * 0.10 + 4_000 * 1.25 + 6_000 * 2.00 + 700 * 5) / M, "standard"),
    # Sonnet 4.5: $3 / $0.30 / $3.75 / $6 / $15 up to 200k input; above: $6 / $0.60 / $7.50 / $12 /
    # $22.50 on every token of the request. The audit's 20k 1-hour writes: 0.1275, not 0.0825.
    ("sonnet 5-minute writes", "anthropic:claude-sonnet-4-5",
     anthropic_stream("claude-sonnet-4-5-20250929", an_usage(1_000, 0, 20_000, 0), 1_000),
     (1_000 * 3 + 20_000 * 3.75 + 1_000 * 15) / M, "standard"),                 # 0.093
    ("sonnet 1-hour writes", "anthropic:claude-sonnet-4-5",
     anthropic_stream("claude-sonnet-4-5-20250929", an_usage(1_000, 0, 0, 20_000), 1_000),
     (1_000 * 3 + 20_000 * 6.00 + 1_000 * 15) / M, "standard"),                  # 0.138
    ("sonnet above 200k", "anthropic:claude-sonnet-4-5",
     anthropic_stream("claude-sonnet-4-5-20250929", an_usage(150_000, 40_000, 10_000, 5_000), 2_000),
     (150_000 * 6 + 40_000 * 0.60 + 10_000 * 7.50 + 5_000 * 12 + 2_000 * 22.50) / M, "standard"),
    # Gemini 2.5 Flash: $0.30 / $0.03 cached / $2.50 out (thinking billed as output); asked for
    # under its `models/` name.
    ("gemini flash thinking, models/ name", "google:models/gemini-2.5-flash",
     gemini_stream("gemini-2.5-flash", gm_usage(20_000, 8_000, 1_000, 2_000)),
     (12_000 * 0.30 + 8_000 * 0.03 + 3_000 * 2.50) / M, None),
    # Gemini 2.5 Pro: $1.25 / $0.125 / $10 up to 200k; above: $2.50 / $0.25 / $15.
    ("gemini pro thinking", "google:gemini-2.5-pro",
     gemini_stream("gemini-2.5-pro", gm_usage(100_000, 20_000, 500, 1_500)),
     (80_000 * 1.25 + 20_000 * 0.125 + 2_000 * 10) / M, None),
    ("gemini pro above 200k", "google:gemini-2.5-pro",
     gemini_stream("gemini-2.5-pro", gm_usage(250_000, 50_000, 500, 1_500)),
     (200_000 * 2.50 + 50_000 * 0.25 + 2_000 * 15) / M, None),
]


@pytest.mark.parametrize("case", AUDIT, ids=[c[0] for c in AUDIT])
def test_audit_case_through_the_adapters(keys, case):
    _, model_id, body, expected, tier = case
    r = call(model_id, body)
    assert r.status == "ok", r.error
    assert r.service_tier == tier
    assert r.cost_usd == pytest.approx(expected, rel=1e-12)
    row = ledger.usage().set_index("call_id").loc[r.call_id]
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert row["service_tier"] == tier and row["processing"] == "live"
    assert row["price_source"] == f"genai-prices {row['price_version']}"
    assert row["price_provider"] == models.resolve(model_id).provider
    assert row["price_data_date"]
    # the row alone re-derives the cost: the formula in pricing's docstring
    assert pricing.rows_cost([row.to_dict()])[0] == r.cost_usd


def test_anthropic_1h_writes_are_kept_apart_in_usage(keys):
    r = call("anthropic:claude-sonnet-4-5",
             anthropic_stream("claude-sonnet-4-5-20250929", an_usage(1_000, 0, 5_000, 20_000), 10))
    assert r.usage.cache_write_tokens == 25_000          # the total, as before
    assert r.usage.cache_write_1h_tokens == 20_000
    assert r.usage.input_tokens == 26_000
    row = ledger.usage().iloc[-1]
    assert row["cache_write_tokens"] == 25_000 and row["cache_write_1h_tokens"] == 20_000


def test_anthropic_fast_mode_is_priced_at_its_fast_rates(keys):
    # Claude Opus 4.8: $5 in / $0.50 read / $6.25 5-min write / $25 out; fast mode (usage.speed
    # "fast", genai-prices' speed variant): $10 / $1 / $12.50 / $50.
    usage = {**an_usage(2_000, 6_000, 10_000, 0), "speed": "fast"}
    r = call("anthropic:claude-opus-4-8", anthropic_stream("claude-opus-4-8", usage, 700))
    assert r.status == "ok", r.error
    assert r.speed == "fast"
    expected = (2_000 * 10 + 6_000 * 1 + 10_000 * 12.5 + 700 * 50) / M
    assert r.cost_usd == pytest.approx(expected, rel=1e-12)                      # 0.186
    row = ledger.usage().set_index("call_id").loc[r.call_id]
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert pricing.rows_cost([row.to_dict()])[0] == r.cost_usd
    standard = call("anthropic:claude-opus-4-8", anthropic_stream(
        "claude-opus-4-8", {**usage, "speed": "standard"}, 700))
    assert standard.cost_usd == pytest.approx(expected / 2, rel=1e-12)


@pytest.mark.parametrize("tier, rates", [
    # Gemini 4 Argon from 2026-12-01: standard $4 in / $0.20 cached / $20 out; flex (50%) $2 /
    # $0.10 / $10; priority $7.20 / $0.36 / $36 (genai-prices' service_tier variants). The tier
    # that served the call is the answer's usageMetadata.serviceTier (and x-gemini-service-tier):
    # priority is downgraded to standard when over its limits.
    ("standard", (4.0, 0.20, 20.0)), ("flex", (2.0, 0.10, 10.0)), ("priority", (7.2, 0.36, 36.0)),
])
def test_gemini_service_tier_as_answered_sets_the_price(keys, tier, rates):
    usage = {**gm_usage(20_000, 8_000, 1_000, 2_000), "serviceTier": tier}
    r = call("google:gemini-4-argon", gemini_stream("gemini-4-argon", usage),
             headers={"x-gemini-service-tier": tier})
    assert r.status == "ok", r.error
    assert r.service_tier == tier
    r_in, r_cached, r_out = rates
    expected = (12_000 * r_in + 8_000 * r_cached + 3_000 * r_out) / M
    assert r.cost_usd == pytest.approx(expected, rel=1e-12)
    row = ledger.usage().set_index("call_id").loc[r.call_id]
    assert row["service_tier"] == tier
    assert pricing.rows_cost([row.to_dict()])[0] == pytest.approx(expected, rel=1e-12)


def test_gemini_traffic_type_flex_sets_the_tier(keys):
    # Vertex AI says which tier served the call in usageMetadata.trafficType
    usage = {**gm_usage(20_000, 8_000, 1_000, 2_000), "trafficType": "ON_DEMAND_FLEX"}
    r = call("google:gemini-4-argon", gemini_stream("gemini-4-argon", usage))
    assert r.service_tier == "flex"
    assert r.cost_usd == pytest.approx((12_000 * 2.0 + 8_000 * 0.10 + 3_000 * 10.0) / M, rel=1e-12)


def test_unknown_model_through_the_adapter_is_nan_with_one_warning(keys):
    name = _unique("gpt-unknown")
    body = openai_chat(name, oa_usage(100, 0, 10), "default")
    with pytest.warns(pricing.PriceWarning) as rec:
        r1 = call(f"openai:{name}", body)
        r2 = call(f"openai:{name}", body)
    assert math.isnan(r1.cost_usd) and math.isnan(r2.cost_usd)
    assert len([w for w in rec if issubclass(w.category, pricing.PriceWarning)]) == 1
    rows = ledger.usage()
    assert rows["cost_usd"].isna().all() and rows["price_rates"].isna().all()


@pytest.mark.parametrize("base_url, model, expected", [
    # OpenRouter's openai/gpt-4o-mini: $0.15 / $0.075 cached / $0.60.
    ("https://openrouter.ai/api/v1", "openai/gpt-4o-mini", (900 * 0.15 + 100 * 0.075 + 200 * 0.60) / M),
    # Groq's llama-3.3-70b-versatile: $0.59 / $0.79 (no cached price: cached input at $0.59).
    ("https://api.groq.com/openai/v1", "llama-3.3-70b-versatile", (1_000 * 0.59 + 200 * 0.79) / M),
])
def test_endpoint_priced_from_its_base_url(keys, base_url, model, expected):
    models.add_endpoint("myhost", base_url, api_key="test-key-not-real")
    r = call(f"myhost:{model}", openai_chat(model, oa_usage(1_000, 100, 200)))
    assert r.cost_usd == pytest.approx(expected, rel=1e-12)
    row = ledger.usage().iloc[-1]
    assert row["price_provider"] == ("openrouter" if "openrouter" in base_url else "groq")
    assert row["price_model"] == model


def test_set_price_endpoint_with_cache_rates_and_tiers(keys):
    models.add_endpoint("local", "http://127.0.0.1:9/v1", api_key="test-key-not-real")
    pricing.set_price("local:*", input=0.20, output=0.80, cached_input=0.05,
                      above={100_000: {"input": 0.40, "output": 1.60, "cached_input": 0.10}})
    pricing.set_price("local:*", input=0.10, output=0.40, cached_input=0.025, tier="flex")
    r = call("local:qwen3", openai_chat("qwen3", oa_usage(10_000, 4_000, 1_000)))
    assert r.cost_usd == pytest.approx((6_000 * 0.20 + 4_000 * 0.05 + 1_000 * 0.80) / M, rel=1e-12)
    big = call("local:qwen3", openai_chat("qwen3", oa_usage(120_000, 20_000, 1_000)))
    assert big.cost_usd == pytest.approx((100_000 * 0.40 + 20_000 * 0.10 + 1_000 * 1.60) / M, rel=1e-12)
    flex = call("local:qwen3", openai_chat("qwen3", oa_usage(10_000, 4_000, 1_000), "flex"))
    assert flex.cost_usd == pytest.approx((6_000 * 0.10 + 4_000 * 0.025 + 1_000 * 0.40) / M, rel=1e-12)
    rows = ledger.usage()
    assert set(rows["price_source"]) == {"set_price"} and set(rows["price_model"]) == {"local:*"}
    assert json.loads(rows.iloc[-1]["price_rates"])["cached_input"] == 0.05  # the first call
    # the set_price values in force are on the row: a later set_price can't change its re-derivation
    pricing.set_price("local:*", input=9, output=9, cached_input=9)
    assert pricing.rows_cost(rows.to_dict("records")) == [flex.cost_usd, big.cost_usd, r.cost_usd]


def test_set_price_never_invents_a_cache_write_price_silently():
    pricing.set_price("vllm:m", input=1.0, output=2.0)
    u = Usage(input_tokens=1_000, cache_write_tokens=400, output_tokens=10)
    with pytest.warns(pricing.PriceWarning, match="no cache_write price.*input rate"):
        c, _ = pricing.cost("vllm", "m", u)
    assert c == pytest.approx((1_000 * 1.0 + 10 * 2.0) / M)
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # said once
        pricing.cost("vllm", "m", u)
        pricing.cost("vllm", "m", Usage(input_tokens=5))    # no cache writes: nothing to say


# ----- data updates in the middle of a session ---------------------------------------------------

NEW_DATA = [{"id": "openai", "name": "OpenAI", "api_pattern": "https://api\\.openai\\.com",
             "model_match": {"starts_with": "gpt-"},
             "models": [{"id": "gpt-4o-mini",
                         "match": {"or": [{"equals": "gpt-4o-mini"},
                                          {"starts_with": "gpt-4o-mini-"}]},
                         "prices": [{"prices": {"input_mtok": 0.30, "output_mtok": 1.20,
                                                "cache_read_mtok": 0.15}},
                                    {"constraint": {"start_date": "2026-01-01"},
                                     "prices": {"input_mtok": 0.30, "output_mtok": 1.20,
                                                "cache_read_mtok": 0.15}}]}]}]


def _snapshot(raw=NEW_DATA):
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import _providers_from_raw

    return DataSnapshot(_providers_from_raw(raw), from_auto_update=True)


@pytest.fixture
def restore_data():
    yield
    from genai_prices.data_snapshot import set_custom_snapshot

    set_custom_snapshot(None)


def test_data_update_mid_session_reprices_every_name(restore_data):
    from genai_prices.data_snapshot import set_custom_snapshot

    u = Usage(input_tokens=1_000, cached_input_tokens=200, output_tokens=100)
    names = ["gpt-4o-mini", "gpt-4o-mini-2024-07-18", "openai:gpt-4o-mini"]
    old = (800 * 0.15 + 200 * 0.075 + 100 * 0.60) / M
    new = (800 * 0.30 + 200 * 0.15 + 100 * 1.20) / M
    before = {n: pricing.price("openai", n, u) for n in names}
    assert all(c == pytest.approx(old, rel=1e-12) for c, _ in before.values())
    set_custom_snapshot(_snapshot())           # what genai_prices.UpdatePrices does
    after = {n: pricing.price("openai", n, u) for n in names}
    assert all(c == pytest.approx(new, rel=1e-12) for c, _ in after.values())
    # labelled apart: same version, different data
    assert {b.data_date for _, b in after.values()} != {b.data_date for _, b in before.values()}
    assert len({b.data_date for _, b in after.values()}) == 1
    assert "fetched" in after["gpt-4o-mini"][1].data_date
    assert pricing.estimate_cost("openai", "gpt-4o-mini-2024-07-18", 1_000, 100) == \
        pytest.approx((1_000 * 0.30 + 100 * 1.20) / M, rel=1e-12)
    set_custom_snapshot(None)                  # back to the bundled data: old prices again
    assert pricing.cost("openai", "gpt-4o-mini-2024-07-18", u)[0] == pytest.approx(old, rel=1e-12)


def _serve_data(body: bytes):
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_update_prices_fetches_over_http_and_reports_dates(restore_data):
    server = _serve_data(json.dumps(NEW_DATA).encode())
    try:
        before, after = pricing.update_prices(url=f"http://127.0.0.1:{server.server_port}/data.json")
    finally:
        server.shutdown()
    assert before.startswith("bundled, prices to ") and after.startswith("fetched ")
    assert after.endswith(", prices to 2026-01-01")
    assert pricing.cost("openai", "gpt-4o-mini", Usage(input_tokens=1_000))[0] == \
        pytest.approx(1_000 * 0.30 / M)


def test_update_prices_network_failure_is_one_line(restore_data):
    import socket

    with socket.socket() as s:                  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError) as err:
        pricing.update_prices(url=f"http://127.0.0.1:{port}/data.json", timeout=3)
    msg = str(err.value)
    assert "\n" not in msg and "Could not update genai-prices data" in msg
    assert "still using the data of bundled, prices to" in msg
    assert pricing.data_info()["data"] == "bundled"


# ----- provenance --------------------------------------------------------------------------------


def test_provenance_rederives_100_rows_exactly(keys):
    import random

    rnd = random.Random(15)
    makers = [
        lambda: ("openai:gpt-5-mini", openai_chat(
            "gpt-5-mini", oa_usage(p := rnd.randint(1, 300_000), rnd.randint(0, p), rnd.randint(0, 9_000),
                                   0), rnd.choice(["default", "flex", "priority"]))),
        lambda: ("anthropic:claude-sonnet-4-5", anthropic_stream(
            "claude-sonnet-4-5-20250929",
            an_usage(rnd.randint(0, 150_000), rnd.randint(0, 60_000), rnd.randint(0, 30_000),
                     rnd.randint(0, 30_000)), rnd.randint(1, 5_000))),
        lambda: ("google:gemini-2.5-pro", gemini_stream("gemini-2.5-pro", gm_usage(
            p := rnd.randint(1, 400_000), rnd.randint(0, p), rnd.randint(0, 3_000),
            rnd.randint(0, 3_000)))),
        lambda: ("anthropic:claude-haiku-4-5", anthropic_stream(
            "claude-haiku-4-5-20251001", an_usage(rnd.randint(0, 9_000), rnd.randint(0, 9_000),
                                                  rnd.randint(0, 9_000), rnd.randint(0, 9_000)),
            rnd.randint(1, 900))),
    ]
    for i in range(100):
        model_id, body = makers[i % len(makers)]()
        assert call(model_id, body).ok
    rows = ledger.usage()
    assert len(rows) == 100 and rows["cost_usd"].gt(0).all()
    for row in rows.to_dict("records"):
        # by hand, from the row's columns only (no llmcells code)
        r = json.loads(row["price_rates"])
        plain = row["input_tokens"] - row["cached_input_tokens"] - row["cache_write_tokens"]
        write_5m = row["cache_write_tokens"] - row["cache_write_1h_tokens"]
        derived = ((plain * r["input"] + row["cached_input_tokens"] * r["cached_input"]
                    + write_5m * r["cache_write"] + row["cache_write_1h_tokens"] * r["cache_write_1h"]
                    + (row["output_tokens"] - row["reasoning_tokens"]) * r["output"]
                    + row["reasoning_tokens"] * r["reasoning"]) / 1_000_000 + r.get("request", 0.0))
        assert derived == row["cost_usd"], row          # exactly
    assert pricing.rows_cost(rows.to_dict("records")) == rows["cost_usd"].tolist()


def test_cache_hits_keep_the_provenance_and_cost_nothing(keys):
    body = openai_chat("gpt-5-mini", oa_usage(12_000, 4_000, 1_800), "flex")
    spec = models.resolve("openai:gpt-5-mini")

    def plan():
        p = calls.make_plan("same prompt", spec, cache=True)
        return p

    async def go(p):
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(
                lambda req: httpx2.Response(200, headers={"content-type": "text/event-stream"},
                                            content=body))) as http:
            p.http_client = http
            return await pipeline.call(p)

    first = _run(go(plan()))
    hit = _run(go(plan()))
    assert not first.cached and hit.cached
    assert hit.cost_usd == 0.0 and first.cost_usd == pytest.approx(
        (8_000 * 0.125 + 4_000 * 0.0125 + 1_800 * 1.0) / M, rel=1e-12)
    assert hit.price_basis == first.price_basis and hit.service_tier == "flex"
    rows = ledger.usage().set_index("call_id")
    a, b = rows.loc[first.call_id], rows.loc[hit.call_id]
    for c in ("price_source", "price_version", "price_data_date", "price_provider", "price_model",
              "price_rates", "service_tier", "processing"):
        assert a[c] == b[c], c
    assert bool(b["cached"]) and b["cost_usd"] == 0.0
    assert pricing.rows_cost([b.to_dict()]) == [0.0]        # a replay costs 0 and says so


# ----- estimates count the cache ----------------------------------------------------------------


def test_estimate_counts_cached_input_and_writes():
    # Sonnet 4.5 with 40k of 42k input read from the cache, 500 output:
    actual = pricing.cost("anthropic", "claude-sonnet-4-5",
                          Usage(input_tokens=42_000, cached_input_tokens=40_000, output_tokens=500))[0]
    assert actual == pytest.approx((2_000 * 3 + 40_000 * 0.30 + 500 * 15) / M, rel=1e-12)
    est = pricing.estimate_cost("anthropic", "claude-sonnet-4-5", 42_000, 500,
                                cached_input_tokens=40_000)
    assert est == pytest.approx(actual, rel=1e-12)
    blind = pricing.estimate_cost("anthropic", "claude-sonnet-4-5", 42_000, 500)
    assert blind > 4 * actual                 # what the budget used to assume
    w = pricing.estimate_cost("anthropic", "claude-haiku-4-5", 10_000, 0, cache_write_tokens=10_000,
                              cache_write_1h_tokens=4_000)
    assert w == pytest.approx((6_000 * 1.25 + 4_000 * 2.0) / M, rel=1e-12)


def test_batch_estimator_learns_cache_share_and_output():
    from llmcells.types import Result

    spec = models.resolve("anthropic:claude-sonnet-4-5")
    est = pricing.BatchEstimator()
    p = calls.make_plan("x" * 4_000, spec)
    first = est.estimate(p)      # ~1,008 tokens in, 400 out, no cache known yet
    assert first == pytest.approx((1_008 * 3 + 400 * 15) / M, rel=1e-12)
    done = Result(status="ok", usage=Usage(input_tokens=42_000, cached_input_tokens=40_000,
                                           output_tokens=500))
    est.learn(calls.make_plan("y" * 168_000, spec), done)   # 4 characters per token
    second = est.estimate(calls.make_plan("z" * 168_000, spec))
    assert second == pytest.approx((2_000 * 3 + 40_000 * 0.30 + 500 * 15) / M, rel=1e-9)


# ----- processing and date ------------------------------------------------------------------------


def test_batch_processing_and_request_date():
    from datetime import datetime, timezone

    u = Usage(input_tokens=10_000, output_tokens=1_000)
    live = pricing.cost("openai", "gpt-5-mini", u)[0]
    batch, b = pricing.price("openai", "gpt-5-mini", u, processing="batch")
    assert batch == pytest.approx(live / 2, rel=1e-12) and b.processing == "batch"
    # before 2026-10-12 genai-prices has no priority price for gpt-5-mini: the standard one applies
    old = datetime(2026, 1, 5, tzinfo=timezone.utc).timestamp()
    assert pricing.price("openai", "gpt-5-mini", u, service_tier="priority", when=old)[0] == \
        pytest.approx(live, rel=1e-12)
    assert pricing.price("openai", "gpt-5-mini", u, service_tier="priority")[0] == \
        pytest.approx((10_000 * 0.45 + 1_000 * 3.60) / M, rel=1e-12)
    # DeepSeek's off-peak prices differ by time of day (genai-prices data): 16:30-00:30 UTC is
    # $0.135/$0.55, the rest of the day $0.27/$1.10.
    noon = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc).timestamp()
    night = datetime(2026, 11, 2, 20, 0, tzinfo=timezone.utc).timestamp()
    assert pricing.price("deepseek", "deepseek-chat", u, when=noon)[0] == \
        pytest.approx((10_000 * 0.27 + 1_000 * 1.10) / M, rel=1e-12)
    assert pricing.price("deepseek", "deepseek-chat", u, when=night)[0] == \
        pytest.approx((10_000 * 0.135 + 1_000 * 0.55) / M, rel=1e-12)


def test_batch_before_genai_prices_had_a_batch_price_is_half_the_live_price():
    """genai-prices' batch prices start on a date (2026-10-14 for gpt-4o-mini, Claude Haiku 4.5,
    Gemini 2.5 Flash); a batch call before it was still billed at 50%, and genai-prices then
    answers the standard price for processing="batch": the 50% rule applies, not that answer."""
    from datetime import datetime, timezone

    u = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    before = datetime(2026, 9, 1, tzinfo=timezone.utc).timestamp()
    after = datetime(2026, 10, 20, tzinfo=timezone.utc).timestamp()
    for provider, model, live in (("openai", "gpt-4o-mini", 0.15 + 0.60),
                                  ("anthropic", "claude-haiku-4-5", 1.0 + 5.0),
                                  ("google", "gemini-2.5-flash", 0.30 + 2.50)):
        assert pricing.price(provider, model, u, when=before)[0] == pytest.approx(live, rel=1e-12)
        c, b = pricing.price(provider, model, u, processing="batch", when=before)
        assert c == pytest.approx(live / 2, rel=1e-12) and b.label.endswith(pricing.BATCH_RULE)
        c, b = pricing.price(provider, model, u, processing="batch", when=after)
        assert c == pytest.approx(live / 2, rel=1e-12) and b.label.endswith(pricing.BATCH_VARIANT)


def test_fast_path_equals_genai_prices_for_every_model():
    """The multiplied rates give genai-prices' own answer for every model, tier and processing
    (a batch price genai-prices does not list: its standard price halved, the 50% rule)."""
    import random
    from datetime import datetime, timezone

    from genai_prices import Usage as GUsage
    from genai_prices.data_snapshot import get_snapshot

    rnd = random.Random(7)
    snap = get_snapshot()
    now = time_now = __import__("time").time()
    checked = 0
    for prov in snap.providers:
        for m in prov.models:
            tier = rnd.choice([None, "flex", "priority"])
            proc = rnd.choice(["live", "batch"])
            inp = rnd.choice([0, 700, 50_000, 250_000])
            cached, write = rnd.randint(0, inp // 3), rnd.randint(0, inp // 3)
            w1h, out = rnd.randint(0, write), rnd.randint(0, 4_000)
            reasoning = rnd.randint(0, out)
            ctx = {k: v for k, v in (("service_tier", tier),
                                     ("processing", "batch" if proc == "batch" else None)) if v}
            try:
                expected = float(m.calc_price(GUsage(
                    input_tokens=inp, cache_read_tokens=cached, cache_write_tokens=write,
                    cache_write_1h_tokens=w1h, output_tokens=out, output_reasoning_tokens=reasoning),
                    prov, genai_request_timestamp=datetime.fromtimestamp(now, timezone.utc),
                    price_context=ctx or None).total_price)
            except Exception:
                continue                         # usage this model can't take (e.g. characters)
            st = pricing._state()
            entry = pricing._Entry((prov.id, m.id, None), prov, m)
            if proc == "batch" and not entry.batch:
                expected *= 0.5    # genai-prices' standard price, for it has no batch price
            b = pricing._pick(pricing._levels(entry, st, tier, proc, time_now), inp)
            got = b.cost(Usage(inp, cached, write, out, reasoning, w1h))
            assert got == pytest.approx(expected, rel=1e-12, abs=1e-15), (prov.id, m.id, tier, proc)
            checked += 1
    assert checked > 2_000


# ----- what-if repricing ---------------------------------------------------------------------------


def test_reprice_equals_fresh_calls_at_that_price(keys):
    import llmcells

    usages = [(12_000, 4_000, 1_800), (300, 0, 40), (90_000, 80_000, 2_500)]
    for u in usages:
        assert call("openai:gpt-4o-mini", openai_chat("gpt-4o-mini-2024-07-18", oa_usage(*u), "default")).ok
    frame = ledger.usage()
    # the same usage answered by gpt-5-mini, and by gpt-5-mini on the flex tier
    fresh = [call("openai:gpt-5-mini", openai_chat("gpt-5-mini", oa_usage(*u), "default")) for u in usages]
    flex = [call("openai:gpt-5-mini", openai_chat("gpt-5-mini", oa_usage(*u), "flex")) for u in usages]

    what = llmcells.reprice(frame, model="gpt-5-mini")
    assert len(what) == len(frame) and list(what["call_id"]) == list(frame["call_id"])
    assert what["cost_usd"].tolist() == [r.cost_usd for r in reversed(fresh)]  # newest first
    assert what["actual_cost_usd"].tolist() == frame["cost_usd"].tolist()
    assert set(what["priced_as"]) == {"openai:gpt-5-mini"} and set(what["price_model"]) == {"gpt-5-mini"}
    same = [c for c in frame.columns
            if not c.startswith("price_") and c not in ("cost_usd", "service_tier", "processing")]
    assert what[same].equals(frame[same])        # the same rows otherwise

    assert llmcells.reprice(frame, model="openai:gpt-5-mini", tier="flex")["cost_usd"].tolist() == \
        [r.cost_usd for r in reversed(flex)]
    # provider batch processing: half of gpt-5-mini's live price in genai-prices' data
    batch = llmcells.reprice(frame, model="gpt-5-mini", processing="batch")
    assert batch["cost_usd"].tolist() == pytest.approx([r.cost_usd / 2 for r in reversed(fresh)], rel=1e-12)
    assert set(batch["processing"]) == {"batch"}
    # each row at its own model and date gives back what was recorded
    assert llmcells.reprice(frame)["cost_usd"].tolist() == frame["cost_usd"].tolist()
    # as of a date before gpt-4o-mini's priority price existed, priority costs the default price
    early = llmcells.reprice(frame, tier="priority", as_of="2026-01-01")["cost_usd"].tolist()
    assert early == pytest.approx(frame["cost_usd"].tolist(), rel=1e-12)
    assert llmcells.reprice(frame, tier="priority", as_of="now")["cost_usd"].sum() > frame["cost_usd"].sum()
    with pytest.raises(ConfigError):
        llmcells.reprice(frame, processing="overnight")


def test_whatif_table_actual_whatif_difference(keys):
    from llmcells.repricing import whatif

    call("openai:gpt-4o-mini", openai_chat("gpt-4o-mini", oa_usage(10_000, 0, 1_000), "default"))
    call("anthropic:claude-haiku-4-5",
         anthropic_stream("claude-haiku-4-5-20251001", an_usage(10_000, 0, 0, 0), 1_000))
    t = whatif("gpt-5-mini")
    assert list(t.columns) == ["model", "calls", "actual_usd", "whatif_usd", "difference_usd"]
    t = t.set_index("model")
    gpt5 = (10_000 * 0.25 + 1_000 * 2) / M
    assert t.loc["openai:gpt-4o-mini", "actual_usd"] == pytest.approx((10_000 * 0.15 + 1_000 * 0.6) / M)
    assert t.loc["anthropic:claude-haiku-4-5", "actual_usd"] == pytest.approx((10_000 * 1 + 1_000 * 5) / M)
    assert t["whatif_usd"].iloc[:2].tolist() == pytest.approx([gpt5, gpt5])
    assert t.loc["total", "calls"] == 2
    assert t.loc["total", "difference_usd"] == pytest.approx(2 * gpt5 - t["actual_usd"].iloc[:2].sum())


# ----- the magics ------------------------------------------------------------------------------------


def test_magic_costs_whatif_and_prices(shell, keys, capsys, restore_data):
    call("openai:gpt-4o-mini", openai_chat("gpt-4o-mini", oa_usage(10_000, 0, 1_000), "default"))
    t = shell.run_line_magic("llmcells", "costs --whatif gpt-5-mini")
    assert list(t.columns) == ["model", "calls", "actual_usd", "whatif_usd", "difference_usd"]
    assert t["whatif_usd"].iloc[0] == pytest.approx((10_000 * 0.25 + 1_000 * 2) / M, rel=1e-12)
    flex = shell.run_line_magic("llmcells", "costs --whatif gpt-5-mini --tier flex --batch")
    assert flex["whatif_usd"].iloc[0] == pytest.approx((10_000 * 0.125 + 1_000 * 1) / M, rel=1e-12)
    shell.run_line_magic("llmcells", "prices")
    assert "price data: bundled, prices to" in capsys.readouterr().out


def test_magic_prices_update_offline_is_one_line(shell, monkeypatch, restore_data):
    from IPython.core.error import UsageError

    monkeypatch.setenv(pricing.PRICES_URL_ENV, "http://127.0.0.1:9/data.json")   # nothing there
    with pytest.raises(UsageError) as err:
        shell.run_line_magic("llmcells", "prices update")
    assert "\n" not in str(err.value) and "Could not update genai-prices data" in str(err.value)
    with pytest.raises(UsageError, match="prices takes no argument or 'update'"):
        shell.run_line_magic("llmcells", "prices frobnicate")


def test_magic_prices_update_says_the_dates(shell, monkeypatch, capsys, restore_data):
    server = _serve_data(json.dumps(NEW_DATA).encode())
    monkeypatch.setenv(pricing.PRICES_URL_ENV, f"http://127.0.0.1:{server.server_port}/data.json")
    try:
        shell.run_line_magic("llmcells", "prices update")
    finally:
        server.shutdown()
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0
    assert out.startswith("genai-prices data updated: bundled, prices to ")
    assert "-> fetched " in out and out.endswith(", prices to 2026-01-01.")


def test_resumed_batch_rows_keep_their_price_provenance(simulated):
    import llmcells

    prompts = ["one", "two"]
    first = llmcells.run(llmcells.batch(prompts, models=["chatgpt"], display=False, batch_id="keep-price"))
    assert first.status.eq("ok").all() and first["price_source"].str.startswith("genai-prices").all()
    again = llmcells.run(llmcells.batch(prompts, models=["chatgpt"], display=False, batch_id="keep-price",
                                        resume=True))
    assert again.resumed.all()
    assert again["price_source"].tolist() == first["price_source"].tolist()
    assert again["cost_usd"].tolist() == first["cost_usd"].tolist()
    assert again["service_tier"].tolist() == first["service_tier"].tolist() == ["default", "default"]


# ----- plots and lazy imports ---------------------------------------------------------------------


@pytest.mark.slow
def test_plot_costs_renders_png_headless(keys):
    import llmcells

    for u in [(12_000, 4_000, 1_800), (300, 0, 40)]:
        call("openai:gpt-5-mini", openai_chat("gpt-5-mini", oa_usage(*u), "default"))
    call("anthropic:claude-haiku-4-5",
         anthropic_stream("claude-haiku-4-5-20251001", an_usage(2_000, 0, 0, 0), 100))
    for by in ("day", "model"):
        plot = llmcells.plot_costs(by=by)
        png = plot._repr_png_()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
        left, right = plot.figure.axes[:2]
        assert {t.get_text() for t in left.get_legend().get_texts()} == {
            "openai:gpt-5-mini", "anthropic:claude-haiku-4-5"}
        assert right.get_xlabel() == "latency (s)"
    empty = llmcells.plot_costs(frame=ledger.usage().iloc[:0])
    assert empty._repr_png_()[:4] == b"\x89PNG"
    with pytest.raises(ConfigError, match="by='day' or 'model'|use 'day' or 'model'"):
        llmcells.plot_costs(by="colour")


def test_plot_costs_without_matplotlib_is_one_line(monkeypatch):
    import sys

    import llmcells

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)       # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'llmcells\[plot\]'"):
        llmcells.plot_costs()


def test_new_modules_import_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys, llmcells, llmcells.plots, llmcells.repricing, llmcells.pricing; "
            "print(sorted(m for m in ('matplotlib', 'pandas', 'genai_prices') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_live_card_cost_counts_the_cache():
    from llmcells.display import _format as F
    from llmcells.types import CallInfo

    info = CallInfo("c", "claude-sonnet-4-5", "anthropic:claude-sonnet-4-5", "anthropic")
    u = Usage(input_tokens=42_000, cached_input_tokens=40_000, output_tokens=500)
    assert F.live_cost(info, 42_000, 500, u) == pytest.approx(
        (2_000 * 3 + 40_000 * 0.30 + 500 * 15) / M, rel=1e-12)
    assert F.live_cost(info, 42_000, 500) == pytest.approx((42_000 * 3 + 500 * 15) / M, rel=1e-12)
