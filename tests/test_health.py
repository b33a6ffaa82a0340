"""health() through the real SDKs: a live simulator, a closed port and a port that accepts but
never answers, all checked at once within a few seconds; a refused key; the result orders chains."""

from __future__ import annotations

import socket
import time

import pytest

import llmcells
from conftest import missing_cli
from llmcells import healthcheck as health
from llmcells.session import known_down, session


def _missing_clis() -> set[str]:
    """Agent CLIs not installed here: health() rightly reports them as not reachable."""
    return {c for c in ("claude-code", "gemini-cli", "codex") if missing_cli(c)}


@pytest.fixture
def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    return port


@pytest.fixture
def silent_port():
    """A port that accepts connections (the kernel's backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


@pytest.fixture(autouse=True)
def _forget_health():
    session.health.clear()  # (session.reset() after each test clears it too)
    yield


def test_live_closed_and_silent_hosts_within_five_seconds(fresh_sim, closed_port, silent_port, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", fresh_sim.url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-health-000000")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-health-0000")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", f"http://127.0.0.1:{silent_port}")
    monkeypatch.setenv("GOOGLE_API_KEY", "AIzaTestHealth00000000")
    llmcells.add_endpoint("local", fresh_sim.url + "/v1", api_key="invalid-key-for-test")
    # The SDKs' first import (seconds on a busy machine) is a once-per-process cost, not the
    # network's: timed apart, so that what is asserted is what a hanging host costs.
    from llmcells.providers import get_provider

    t_import = time.monotonic()
    for adapter in ("openai", "anthropic", "google"):
        get_provider(adapter)
    print(f"\nSDK imports: {time.monotonic() - t_import:.2f} s")
    t0 = time.monotonic()
    frame = llmcells.run(llmcells.health(timeout=2.0))
    wall = time.monotonic() - t0
    print(f"\nhealth of 4 endpoints (live, closed, silent, bad key): {wall:.2f} s")
    assert wall < 5.0
    rows = frame.set_index("provider")
    assert list(frame.columns) == health.COLUMNS
    live = rows.loc["openai"]
    from llmcells.sim import catalog

    listed = catalog.listed("openai")  # what the simulator's model list serves
    assert live.reachable and live.key_accepted and live.n_models == len(listed) and "gpt-6-luna" in live.models
    assert live.latency_s < 2.0 and not live.simulated
    closed = rows.loc["anthropic"]
    assert closed.reachable is False or closed.reachable == False  # noqa: E712
    assert "connection" in closed.error
    silent = rows.loc["google"]
    assert silent.reachable == False and "no answer within 2 s" in silent.error  # noqa: E712
    refused = rows.loc["local"]
    assert refused.reachable and refused.key_accepted == False  # noqa: E712
    assert "invalid-key-for-test" not in frame.to_string()
    assert known_down() == {"anthropic", "google", "local"} | _missing_clis()


def test_simulated_providers_are_labelled_and_list_the_real_shapes(simulated):
    frame = llmcells.run(llmcells.health())
    missing = frame.provider.isin(_missing_clis())
    assert frame[missing].error.str.contains("not installed").all()
    frame = frame[~missing]
    assert frame.simulated.all() and frame.reachable.all() and frame.key_accepted.all()
    models = dict(zip(frame.provider, frame.models))
    assert "claude-haiku-5-5" in models["anthropic"]
    assert "gemini-3.5-flash-lite" in models["google"]  # "models/" prefix stripped


def test_missing_key_is_not_checked(fresh_sim, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", fresh_sim.url + "/v1")
    frame = llmcells.run(llmcells.health(timeout=1.0)).set_index("provider")
    assert frame.loc["openai"].key_present == False  # noqa: E712
    assert fresh_sim.requests == [] and known_down() == set()


def test_a_provider_found_down_is_tried_last(simulated):
    health._last["anthropic"] = (time.monotonic(), True)
    r = llmcells.run(llmcells.ask("hi", "claude|chatgpt", display=False))
    assert r.ok and r.model == "openai:gpt-6-luna"
    assert [s["model"] for s in r.attempts_by_model] == ["openai:gpt-6-luna"]
    assert not [q for q in simulated.requests if q.model == "claude-haiku-5-5"]


def test_extension_point_adds_rows(simulated):
    async def cli_check(timeout):
        return {"provider": "claude-code", "endpoint": "cli", "key_present": True, "reachable": True,
                "simulated": False}

    health.register_check("claude-code", cli_check)
    try:
        frame = llmcells.run(llmcells.health())
    finally:
        health._extra_checks.clear()
    assert "claude-code" in set(frame.provider)
