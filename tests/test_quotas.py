"""Quotas through the real SDKs against the simulator: rate-limit headers kept per model,
Gemini quota errors, the batch gate slowing down before a 429, daily caps from the ledger
(across processes)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import llmcells
from llmcells import quotas
from llmcells.config import settings


@pytest.fixture(autouse=True)
def _clean_quotas():
    quotas.clear()
    quotas.set_limits(None)
    yield
    quotas.clear()
    quotas.set_limits(None)


def test_from_headers_parses_both_styles():
    now = 1000.0
    got = quotas.from_headers({"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
                               "x-ratelimit-reset-requests": "1m30.5s", "x-ratelimit-reset-tokens": "6ms",
                               "X-RateLimit-Remaining-Tokens": "1200", "content-type": "x"}, now)
    assert got == {"requests_limit": 500, "requests_remaining": 499, "requests_reset_at": 1090.5,
                   "tokens_reset_at": 1000.006, "tokens_remaining": 1200}
    got = quotas.from_headers({"anthropic-ratelimit-output-tokens-remaining": "10",
                               "anthropic-ratelimit-output-tokens-reset": "1970-01-01T00:20:00Z"})
    assert got == {"output_tokens_remaining": 10, "output_tokens_reset_at": 1200.0}
    assert quotas.from_headers({"content-type": "x"}) is None and quotas.from_headers(None) is None


def test_quota_before_any_call_has_its_columns_and_says_why_it_is_empty(shell):
    """quota() before any call was a frame with no columns ("Empty DataFrame / Columns: []"),
    and `%llmcells quota` showed just that. The frame now has its columns and a note, and the
    magic prints the note instead of an empty table."""
    frame = llmcells.quota()
    assert frame.empty and {"provider", "model", "requests_remaining"} <= set(frame.columns)
    assert "no rate limits seen yet" in frame.attrs["note"]
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        shown = shell.run_line_magic("llmcells", "quota")
    assert shown is None and "they show after a call" in out.getvalue()


def test_quota_reflects_the_headers_of_each_response(simulated):
    for _ in range(3):
        assert llmcells.run(llmcells.ask("hi", "chatgpt", display=False)).ok
    assert llmcells.run(llmcells.ask("hi", "claude", display=False)).ok
    frame = llmcells.quota().set_index(["provider", "model"])
    openai = frame.loc[("openai", "gpt-6-luna")]
    assert openai.requests_limit == 500 and openai.requests_remaining == 497
    assert openai.tokens_limit == 200_000 and openai.tokens_remaining < 200_000
    claude = frame.loc[("anthropic", "claude-haiku-5-5")]
    assert claude.requests_limit == 50 and claude.requests_remaining == 49
    assert claude.output_tokens_limit == 10_000 and claude.input_tokens_remaining < 40_000
    assert claude.requests_reset_at > openai.seen_at - __import__("pandas").Timedelta(seconds=1)


def test_gemini_quota_errors_are_kept(simulated):
    settings.update(max_attempts=1)
    simulated.inject("429", model="gemini-3.5-flash-lite")
    r = llmcells.run(llmcells.ask("hi", "gemini", display=False))
    assert r.error_kind == "rate_limited"
    entry = quotas.latest("google", "gemini-3.5-flash-lite")
    assert entry["quota_violations"] and "quotaMetric" in entry["quota_violations"][0]
    assert entry["last_429_at"] > time.time() - 60
    assert "quota_violations" in llmcells.quota().columns


def test_gate_waits_for_the_window_when_headers_say_none_are_left(simulated):
    from llmcells.batches import ProviderGate, RateLimit
    from llmcells.calls import make_plan

    plan = make_plan("hi", "chatgpt")
    quotas.observe(plan.spec, {"requests_remaining": 0, "requests_reset_at": time.time() + 0.5})
    gate = ProviderGate(RateLimit(), 4)

    async def go():
        t0 = time.monotonic()
        await gate.acquire(plan)
        return time.monotonic() - t0

    waited = asyncio.run(go())
    assert 0.4 <= waited < 2.0
    quotas.observe(plan.spec, {"requests_remaining": 5, "requests_reset_at": time.time() + 30})
    assert asyncio.run(go()) < 0.1


@pytest.fixture
def real_route(fresh_sim, monkeypatch):
    """OpenAI and Anthropic reached as real providers are (their base-URL variables and a key),
    served by the simulator: the ledger marks these calls real, so daily caps count them."""
    monkeypatch.setenv("OPENAI_BASE_URL", fresh_sim.url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-quota")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fresh_sim.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-quota")
    return fresh_sim


def test_simulated_calls_are_neither_counted_nor_capped(simulated):
    caps = {"openai": {"rpd": 1}}
    results = [llmcells.run(llmcells.ask(f"q{i}", "chatgpt", limits=caps, display=False))
               for i in range(3)]
    assert [r.status for r in results] == ["ok"] * 3
    quotas.set_limits(caps)
    row = quotas.quota().set_index("provider").loc["openai"]
    assert row["requests_today"] == 0


@pytest.mark.slow
def test_daily_cap_stops_the_eleventh_call_and_survives_a_new_process(real_route):
    simulated = real_route
    caps = {"openai": {"rpd": 10}}
    results = [llmcells.run(llmcells.ask(f"q{i}", "chatgpt", limits=caps, display=False))
               for i in range(11)]
    assert [r.status for r in results[:10]] == ["ok"] * 10
    last = results[10]
    assert last.error_kind == "rate_limited" and "Daily cap" in last.error and "resets at" in last.error
    assert "UTC" in last.error
    assert len([q for q in simulated.requests if q.model == "gpt-6-luna"]) == 10  # never sent
    assert llmcells.usage().status.tolist().count("error") == 1  # but recorded
    # a new process (a restarted kernel) counts from the same ledger
    code = ("import llmcells, sys;"
            "r = llmcells.run(llmcells.ask('again', 'chatgpt', limits={'openai': {'rpd': int(sys.argv[2])}}, display=False));"
            "print(r.status, r.error_kind)")
    env = {**os.environ, "PYTHONPATH": str(Path(llmcells.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", code, simulated.url, "10"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.split() == ["error", "rate_limited"], out.stderr
    out = subprocess.run([sys.executable, "-c", code, simulated.url, "11"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.split() == ["ok", "None"], out.stderr


def test_daily_cap_in_a_concurrent_batch_and_fallback_past_it(real_route):
    frame = llmcells.run(llmcells.batch([f"p{i}" for i in range(15)], ["chatgpt"], concurrency=8,
                                        limits={"openai": {"rpd": 10}}, display=False))
    assert (frame.status == "ok").sum() == 10 and (frame.error_kind == "rate_limited").sum() == 5
    # a chain moves on from a capped provider
    quotas.set_limits({"openai": {"rpd": 10}})
    r = llmcells.run(llmcells.ask("more", "chatgpt|claude", display=False))
    assert r.ok and r.model == "anthropic:claude-haiku-5-5"
    assert r.attempts_by_model[0]["error_kind"] == "rate_limited"


def test_google_day_starts_at_pacific_midnight():
    start, end, zone = quotas.day_bounds("google", now=1_767_225_600.0)  # 2026-01-01 00:00 UTC
    assert zone == "America/Los_Angeles"
    assert end - start == 86_400 and (start - 1_767_225_600.0) % 3600 == 0
    assert start == 1_767_225_600.0 - 16 * 3600  # 2025-12-31 00:00 PST = 08:00 UTC
    s2, e2, z2 = quotas.day_bounds("openai", now=1_767_225_600.0)
    assert z2 == "UTC" and s2 == 1_767_225_600.0 and e2 == s2 + 86_400
