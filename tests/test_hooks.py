"""Hooks (llmcells.on / off) through the real SDKs against the simulator: every event once per
occurrence and in order; a raising or slow hook changes neither the Result nor the stream."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

import llmcells
from llmcells import hooks


@pytest.fixture(autouse=True)
def _no_hooks():
    hooks.off()
    yield
    hooks.off()


def _follow(events=hooks.EVENTS):
    seen = []
    for e in events:
        llmcells.on(e, lambda r, e=e: seen.append((e, r)))
    return seen


@pytest.mark.parametrize("model", ["chatgpt", "claude", "gemini", "openai-responses:gpt-6-luna"])
def test_each_event_fires_once_in_order(simulated, model):
    seen = _follow()
    r = llmcells.run(llmcells.ask("hello", model=model, display=False))
    hooks.flush()
    assert r.ok
    assert [e for e, _ in seen] == ["request", "first_token", "finish"]
    assert len({rec.call_id for _, rec in seen}) == 1 and seen[0][1].call_id == r.call_id
    fin = seen[-1][1]
    assert fin.text == r.text and fin.output_tokens == r.usage.output_tokens
    assert seen[1][1].ttft_s == r.ttft_s
    with pytest.raises(Exception):
        fin.text = "changed"  # read-only


def test_retry_and_error_events(simulated):
    seen = _follow()
    simulated.inject("500", provider="anthropic", times=1)
    r = llmcells.run(llmcells.ask("hello", model="claude", display=False))
    hooks.flush()
    assert r.ok and r.attempts == 2
    assert [e for e, _ in seen] == ["request", "retry", "first_token", "finish"]
    assert seen[1][1].retry.attempt == 2
    seen.clear()
    simulated.inject("400", provider="anthropic", times=1)
    r = llmcells.run(llmcells.ask("hello", model="claude", display=False))
    hooks.flush()
    assert not r.ok
    assert [e for e, _ in seen] == ["request", "error"]
    assert seen[1][1].status == "error" and seen[1][1].error == r.error


def test_no_key_in_any_record(simulated, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-key-000000000000000000")
    seen = _follow()
    llmcells.run(llmcells.ask("hello", model="claude", display=False))
    hooks.flush()
    assert seen and all("secret" not in repr(rec) for _, rec in seen)


def test_off_removes_a_callback(simulated):
    seen = []
    f = llmcells.on("finish", seen.append)
    llmcells.off("finish", f)
    llmcells.run(llmcells.ask("hello", model="chatgpt", display=False))
    hooks.flush()
    assert seen == []


def test_an_unknown_event_is_one_clear_error():
    with pytest.raises(llmcells.ConfigError, match="use one of"):
        llmcells.on("finished", print)


def test_async_hooks_run(simulated):
    seen = []

    async def note(rec):
        await asyncio.sleep(0.01)
        seen.append(rec.event)

    llmcells.on("request", note)
    llmcells.on("finish", note)
    llmcells.run(llmcells.ask("hello", model="gemini", display=False))
    time.sleep(0.2)
    assert sorted(seen) == ["finish", "request"]


def _timed_stream(model):
    """The Result and the arrival time of every delta, relative to the request."""
    from llmcells.types import CallObserver

    class Clock(CallObserver):
        def __init__(self):
            self.t0, self.times = None, []

        def on_sent(self, t0):
            self.t0 = t0

        def on_text(self, delta):
            self.times.append(time.monotonic() - self.t0)

    from llmcells.calls import make_plan
    from llmcells.pipeline import call as execute

    clock = Clock()
    r = llmcells.run(execute(make_plan("a steady stream please", model), clock))
    return r, clock.times


@pytest.mark.slow
def test_a_raising_and_a_slow_hook_change_neither_result_nor_timing(simulated, caplog):
    simulated.configure(ttft=0.05, tokens_per_s=100)
    _timed_stream("claude")  # warm: the client and connection exist for both timed runs
    base, base_times = _timed_stream("claude")

    def slow(rec):
        time.sleep(1.0)

    def broken(rec):
        raise RuntimeError("hook bug")

    for e in hooks.EVENTS:
        llmcells.on(e, slow)
        llmcells.on(e, broken)
    with caplog.at_level(logging.WARNING, logger="llmcells"):
        r, times = _timed_stream("claude")
        r2, _ = _timed_stream("claude")
        hooks.flush(timeout=10)
    assert r.ok and r.text == base.text and r2.text == base.text
    assert r.usage == base.usage
    assert len(times) == len(base_times)
    # A hook that blocked the call would add its whole second (at least); half of it is the
    # bound, so a loaded machine's jitter (0.19 s seen in CI) is not read as a blocking hook.
    assert abs(times[-1] - base_times[-1]) < 0.5
    assert abs(r.latency_s - base.latency_s) < 0.5
    assert abs(times[0] - base_times[0]) < 0.5  # the first token
    assert abs(r.ttft_s - base.ttft_s) < 0.5
    reports = [m for m in caplog.messages if "hook bug" in m]
    assert len(reports) == 1 and "broken" in reports[0]
