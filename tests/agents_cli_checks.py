"""Each agent CLI run for real against the simulator: a plain answer, a 401, a 529 and an
interrupt mid-stream that leaves no process behind.

Not collected on its own (the file name does not start with test_): tests/test_agents.py runs it
inside a network namespace with only loopback (`unshare -n`), so any request a CLI tried to
send elsewhere would fail the run.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path

import pytest

import llmcells
from llmcells.config import settings

AGENTS = {  # model id, the simulator's provider (the API the CLI speaks)
    "claude-code": ("claude-code:claude-sonnet-4-6", "anthropic"),
    "gemini-cli": ("gemini-cli:gemini-3.5-flash", "google"),
    "codex": ("codex:gpt-5.5-codex", "openai"),
}


@pytest.fixture(params=list(AGENTS))
def agent(request, simulated):
    """An agent id whose CLI is installed (a missing one skips, or fails where
    LLMCELLS_REQUIRE_AGENTS=1, saying how to install it)."""
    from conftest import need_tools

    need_tools(request.param)
    return request.param


def _ask(model: str, **kwargs):
    return llmcells.run(llmcells.ask("Say hello", model=model, display=False, **kwargs))


def test_plain_answer_streams_into_a_result_with_usage_and_cost(agent, simulated):
    model, api = AGENTS[agent]
    r = _ask(model)
    assert r.status == "ok", r.error
    assert r.text.startswith("Simulated answer from "), r.text[:80]
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.cost_usd > 0 and not math.isnan(r.cost_usd) and r.price_source
    assert r.ttft_s is not None and r.attempts == 1
    info = r.agent
    assert info["version"] and info["session_id"] and info["tools"] is False
    assert Path(info["cwd"]).is_dir()
    # one request per answer, and it went to the simulator through the API the CLI speaks
    reqs = simulated.requests
    assert len(reqs) == 1 and reqs[0].provider == api, [(q.provider, q.path) for q in reqs]
    if agent == "claude-code":  # the CLI's own cost agrees with llmcells' price
        assert info["cli_cost_usd"] == pytest.approx(r.cost_usd, rel=0.02)
        assert info["startup_s"] is not None and info["turns"] == 1
    rows = llmcells.usage()
    mine = rows[rows["call_id"] == r.call_id]
    assert list(mine["status"]) == ["ok"] and float(mine["cost_usd"].iloc[0]) == pytest.approx(r.cost_usd)


def test_401_is_an_authentication_error(agent, simulated):
    model, api = AGENTS[agent]
    simulated.inject("401", provider=api, times=None)
    r = _ask(model)
    assert (r.status, r.error_kind) == ("error", "authentication"), (r.status, r.error)
    assert r.attempts == 1 and len(simulated.requests) == 1  # the CLI did not retry on its own
    assert "\n" not in r.error and "sim-key" not in r.error


def test_529_reported_by_the_cli_as_an_error(agent, simulated):
    model, api = AGENTS[agent]
    settings.update(max_attempts=1)
    simulated.inject("529", provider=api, times=None)
    r = _ask(model)
    assert (r.status, r.error_kind) == ("error", "overloaded"), (r.status, r.error_kind, r.error)
    assert len(simulated.requests) == 1, "the CLI retried by itself"
    assert r.text == ""


def test_interrupt_mid_stream_leaves_no_process(agent, simulated, tmp_path):
    model, api = AGENTS[agent]
    simulated.configure(tokens_per_s=20, output_tokens=400)  # 20 s of answer
    cwd = tmp_path / "work"
    cwd.mkdir()
    main = threading.get_ident()
    fired: list[float] = []

    def interrupt() -> None:
        deadline = time.monotonic() + 60
        while not simulated.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # mid-stream: the answer is flowing
        fired.append(time.monotonic())
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        _ask(model, params={"cwd": str(cwd)})
    ended = time.monotonic() - fired[0]
    assert ended < 2.0, f"the call took {ended:.2f} s to end after the interrupt"
    left = _processes_in(cwd)
    assert not left, f"processes left running in {cwd}: {left}"
    rows = llmcells.usage()
    assert list(rows["status"])[0] == "cancelled"  # the newest row


def _processes_in(folder: Path) -> list[str]:
    """Processes whose working directory is folder (the CLI and anything it started)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{pid}/cwd") == str(folder):
                found.append(f"{pid} {Path(f'/proc/{pid}/cmdline').read_bytes()[:80]!r}")
        except OSError:
            continue
    return found


def test_an_error_mid_stream_is_reported_never_spliced(agent, simulated):
    """The API breaks the answer after a few tokens: the CLI must not re-ask on its own, and the
    Result holds at most the one partial answer, with the status the CLI reported."""
    model, api = AGENTS[agent]
    settings.update(max_attempts=1)
    simulated.inject("midstream_error", provider=api, times=None, after_tokens=5)
    r = _ask(model)
    assert r.status in ("error", "incomplete"), (r.status, r.error)
    assert len(simulated.requests) == 1, "the CLI asked again by itself"
    assert r.text.count("Simulated answer from") <= 1, r.text  # nothing spliced or repeated
    assert r.attempts == 1 and r.error and "\n" not in r.error


def test_a_batch_runs_at_most_the_allowed_processes_of_one_cli(agent, simulated, monkeypatch):
    """Eight calls in a batch of concurrency 8, with LLMCELLS_AGENT_PROCESSES=2: all answered,
    and the simulator never saw more than two requests at once."""
    model, _ = AGENTS[agent]
    monkeypatch.setenv("LLMCELLS_AGENT_PROCESSES", "2")
    simulated.configure(ttft=0.3)
    df = llmcells.run(llmcells.batch([f"question {i}" for i in range(8)], models=[model],
                                     concurrency=8, display=False))
    assert list(df["status"]) == ["ok"] * 8
    spans = [(q.time, q.completed) for q in simulated.requests]
    assert len(spans) == 8 and all(end is not None for _, end in spans)
    most = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert most <= 2, f"{most} requests of {agent} at once"
