"""The fault matrix: every provider path x every fault x every front end (ask, compare, a magic).

Each case checks the Result's status and error_kind, the number of attempts (retries only for
retryable faults before any token; never once tokens were shown), a one-line error without a
traceback, partial text where tokens were shown, the healthy model of a compare finishing ok, and
the ledger row of the call. The outcome of every case is collected into
`test-output/fault-matrix.md` (fault x provider x front end: pass/FAIL).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import llmcells
from llmcells import magics, models
from llmcells.config import settings
from llmcells.comparison import Comparison
from llmcells.types import Result

ROOT = Path(__file__).resolve().parents[1]
MATRIX_FILE = ROOT / "test-output" / "fault-matrix.md"

FAKE_KEYS = {"OPENAI_API_KEY": "sk-test-faults-openai-0000",
             "ANTHROPIC_API_KEY": "sk-ant-test-faults-0000",
             "GOOGLE_API_KEY": "AIzaTestFaults000000000000"}

MAX_ATTEMPTS = 4
TTFT_TIMEOUT = 0.3


@dataclass(frozen=True)
class Path_:
    name: str        # column name in the matrix
    model: str       # what ask/compare get
    magic: str       # the cell magic
    line: str        # its options
    healthy: str     # another provider's model, for compare


PATHS = [
    Path_("openai chat", "chatgpt", "chatgpt", "", "claude"),
    Path_("openai responses", "openai-responses:gpt-6-luna", "chatgpt",
          "-m openai-responses:gpt-6-luna", "claude"),
    Path_("anthropic", "claude", "claude", "", "gemini"),
    Path_("gemini", "gemini", "gemini", "", "chatgpt"),
]


@dataclass(frozen=True)
class Fault:
    name: str                      # row name in the matrix
    sim_fault: str | None          # None: connection refused (closed port)
    status: str
    kind: str | None
    attempts: int
    partial: bool = False          # tokens were shown before the failure: text kept
    times: int | None = None       # None: the fault never runs out
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def expected(self) -> str:
        what = self.status if self.kind is None else f"{self.status}/{self.kind}"
        return f"{what}, {self.attempts} attempt{'s' if self.attempts > 1 else ''}" + (
            ", partial text" if self.partial else "")


FAULTS = [
    Fault("401", "401", "error", "authentication", 1),
    Fault("404 model", "404", "error", "model_not_found", 1),
    Fault("400", "400", "error", "bad_request", 1),
    Fault("429 once (retry-after)", "429", "ok", None, 2, times=1, options={"retry_after": 0.05}),
    Fault("429 forever (retry-after)", "429", "error", "rate_limited", MAX_ATTEMPTS,
          options={"retry_after": 0.05}),
    Fault("500 once", "500", "ok", None, 2, times=1),
    Fault("500 forever", "500", "error", "server_error", MAX_ATTEMPTS),
    Fault("529 once", "529", "ok", None, 2, times=1),
    Fault("529 forever", "529", "error", "overloaded", MAX_ATTEMPTS),
    Fault("midstream_error", "midstream_error", "error", "*", 1, partial=True,
          options={"after_tokens": 3}),
    Fault("cut", "cut", "incomplete", "incomplete", 1, partial=True, options={"after_tokens": 3}),
    Fault("cut_mid_event", "cut_mid_event", "incomplete", "incomplete", 1, partial=True,
          options={"after_tokens": 3}),
    Fault("slow first token > ttft_timeout", "slow_first_token", "error", "timeout", 1,
          options={"delay": 3.0}),
    Fault("connection refused", None, "error", "connection", MAX_ATTEMPTS),
    Fault("malformed SSE", "malformed", "incomplete", "incomplete", 1, partial=True,
          options={"after_tokens": 3}),
    Fault("connection dropped (no response)", "drop", "error", "connection", MAX_ATTEMPTS),
    # issue 12: nothing shown yet, so a reset right after the start event is retried
    Fault("reset_after_start once", "reset_after_start", "ok", None, 2, times=1),
    Fault("reset_after_start forever", "reset_after_start", "error", "connection", MAX_ATTEMPTS),
    # a captive portal's page is a connection problem (retryable); a proxy's 502 page a server error
    Fault("html200 (captive portal)", "html200", "error", "connection", MAX_ATTEMPTS),
    Fault("html502 once (proxy page)", "html502", "ok", None, 2, times=1),
    # the terminal event decides: a drop after it is a whole answer
    Fault("drop_after_terminal", "drop_after_terminal", "ok", None, 1),
    Fault("junk_after_body (past Content-Length)", "junk_after_body", "ok", None, 1),
    Fault("sse_comments", "sse_comments", "ok", None, 1),
    Fault("sse_event_ping", "sse_event_ping", "ok", None, 1),
    Fault("sse_no_space", "sse_no_space", "ok", None, 1),
    Fault("split_surrogate", "split_surrogate", "ok", None, 1, options={"after_tokens": 2}),
]
FRONTS = ["ask", "compare", "magic"]

# (fault, path, front) -> "pass" | "FAIL"
OUTCOMES: dict[tuple[str, str, str], str] = {}


@pytest.fixture(scope="module", autouse=True)
def _write_matrix():
    yield
    if not OUTCOMES:
        return
    lines = ["# Fault matrix", "",
             "Each cell: ask / compare / magic (`pass`, `FAIL`, or `-` when not run). "
             "Generated by tests/test_faults.py.", "",
             "| fault | expected | " + " | ".join(p.name for p in PATHS) + " |",
             "|---|---|" + "---|" * len(PATHS)]
    for f in FAULTS:
        cells = []
        for p in PATHS:
            cells.append(" / ".join(OUTCOMES.get((f.name, p.name, fr), "-") for fr in FRONTS))
        lines.append(f"| {f.name} | {f.expected} | " + " | ".join(cells) + " |")
    total = len(OUTCOMES)
    passed = sum(v == "pass" for v in OUTCOMES.values())
    lines += ["", f"{passed} of {total} cases passed."]
    MATRIX_FILE.parent.mkdir(parents=True, exist_ok=True)
    MATRIX_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def env_sim(fresh_sim, monkeypatch):
    """Every provider reached through its standard base-URL env var and a fake key."""
    models.set_simulator(None)
    for name, value in {**fresh_sim.env(), **FAKE_KEYS}.items():
        monkeypatch.setenv(name, value)
    settings.update(retry_initial_wait=0.01, retry_max_wait=0.5, max_attempts=MAX_ATTEMPTS)
    yield fresh_sim


def _closed_port_url(provider: str) -> tuple[str, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = models.PROVIDERS[provider].base_env
    url = f"http://127.0.0.1:{port}" + ("/v1" if provider == "openai" else "")
    return env, url


def _arm(sim, fault: Fault, path: Path_, monkeypatch) -> str:
    """Set the fault up for path's provider; returns the provider."""
    provider = models.resolve(path.model).provider
    # a short first-token limit only where it is the point (a first call imports SDK modules)
    settings.update(ttft_timeout=TTFT_TIMEOUT if fault.sim_fault == "slow_first_token" else 30)
    if fault.sim_fault is None:
        env, url = _closed_port_url(provider)
        monkeypatch.setenv(env, url)
    else:
        sim.inject(fault.sim_fault, provider=provider, times=fault.times, **fault.options)
    return provider


def _check_one_line(message: str | None) -> None:
    assert message, "an error without a message"
    assert "\n" not in message and "\r" not in message, repr(message)
    assert len(message) < 300, len(message)
    assert "Traceback" not in message and 'File "' not in message, message


def _check_result(r: Result, fault: Fault, sim, provider: str) -> None:
    assert isinstance(r, Result)
    got = (r.status, r.error_kind, r.attempts)
    kind_ok = fault.kind == "*" and r.error_kind not in (None, "ok") or r.error_kind == fault.kind
    assert r.status == fault.status and kind_ok and r.attempts == fault.attempts, (got, r.error)
    if fault.status == "ok":
        assert r.ok and r.text and r.error is None
    else:
        _check_one_line(r.error)
    if fault.partial:
        assert r.text, "the partial answer was dropped"
    elif fault.status != "ok":
        assert r.text == ""
    if fault.sim_fault is not None:
        # the server saw exactly one request per attempt: nothing re-sent after tokens were shown
        sent = [q for q in sim.requests if q.provider == provider]
        assert len(sent) == fault.attempts, [q.fault for q in sent]
    # and the ledger has the call, with the same outcome
    rows = llmcells.usage(session=True)
    row = rows[rows["call_id"] == r.call_id]
    assert len(row) == 1, "the call is not in the ledger"
    row = row.iloc[0]
    assert row["status"] == r.status and row["attempts"] == r.attempts
    assert (row["error_kind"] or None) == r.error_kind
    if r.error:
        _check_one_line(row["error"])


def _record(fault: Fault, path: Path_, front: str, check) -> None:
    try:
        check()
    except BaseException:
        OUTCOMES[(fault.name, path.name, front)] = "FAIL"
        raise
    OUTCOMES[(fault.name, path.name, front)] = "pass"


def _case_id(f: Fault, p: Path_) -> str:
    words = f.name.split()
    # the first word, and the second where the first is shared ("429 once", "429 forever")
    shared = sum(g.name.split()[0] == words[0] for g in FAULTS) > 1
    return f"{words[0]}{'-' + words[1] if shared else ''}-{p.name.replace(' ', '_')}"


CASES = [pytest.param(f, p, id=_case_id(f, p)) for f in FAULTS for p in PATHS]


@pytest.mark.parametrize("fault,path", CASES)
def test_ask(env_sim, monkeypatch, fault, path):
    def check():
        provider = _arm(env_sim, fault, path, monkeypatch)
        r = llmcells.run(llmcells.ask("Tell me about tides.", path.model, display=False))
        _check_result(r, fault, env_sim, provider)

    _record(fault, path, "ask", check)


@pytest.mark.parametrize("fault,path", CASES)
def test_compare(env_sim, monkeypatch, fault, path):
    def check():
        provider = _arm(env_sim, fault, path, monkeypatch)
        c = llmcells.run(llmcells.compare("Tell me about tides.", [path.model, path.healthy],
                                          display=False))
        assert isinstance(c, Comparison) and len(c.results) == 2
        bad, good = c.results
        _check_result(bad, fault, env_sim, provider)
        assert good.ok and good.text and good.attempts == 1, (good.status, good.error)
        frame = c.to_frame()
        assert frame["status"].tolist() == [bad.status, "ok"]
        rows = llmcells.usage(session=True)
        assert set(rows["call_id"]) >= {bad.call_id, good.call_id}

    _record(fault, path, "compare", check)


@pytest.mark.parametrize("fault,path", CASES)
def test_magic(env_sim, monkeypatch, shell, capsys, fault, path):
    def check():
        magics.conversations.clear()
        shell.user_ns.pop("_llm", None)
        provider = _arm(env_sim, fault, path, monkeypatch)
        shell.run_cell_magic(path.magic, f"{path.line} --no-display", "Tell me about tides.")
        r = shell.user_ns["_llm"]
        _check_result(r, fault, env_sim, provider)
        out = capsys.readouterr()
        assert "Traceback" not in out.out + out.err

    _record(fault, path, "magic", check)


def test_stopped_simulator_is_a_connection_error_everywhere(monkeypatch):
    """A simulator that was running and is then stopped: the port is closed, every path says
    'connection' in one line after the retries, and the ledger has the rows."""
    from llmcells.sim import Simulator

    settings.update(retry_initial_wait=0.01, retry_max_wait=0.2, max_attempts=2)
    models.set_simulator(None)
    with Simulator(ttft=0.0, tokens_per_s=5000) as s:
        for name, value in {**s.env(), **FAKE_KEYS}.items():
            monkeypatch.setenv(name, value)
        assert llmcells.run(llmcells.ask("hi", "claude", display=False)).ok
    c = llmcells.run(llmcells.compare("hi", [p.model for p in PATHS], display=False))
    for r in c:
        assert (r.status, r.error_kind, r.attempts) == ("error", "connection", 2), (r.model, r.error)
        _check_one_line(r.error)
    rows = llmcells.usage(session=True)
    assert set(rows["call_id"]) >= {r.call_id for r in c}


@pytest.mark.parametrize("path", PATHS, ids=[p.name.replace(" ", "_") for p in PATHS])
def test_junk_past_a_content_length_costs_the_next_call_nothing(env_sim, monkeypatch, path):
    """Junk left on a kept-alive connection after a short Content-Length: the next call on that
    provider is sent once and succeeds (the connection was dropped, not reused)."""
    provider = models.resolve(path.model).provider
    settings.update(ttft_timeout=30)
    env_sim.inject("junk_after_body", provider=provider, times=1)
    first = llmcells.run(llmcells.ask("Tell me about tides.", path.model, display=False))
    second = llmcells.run(llmcells.ask("And about waves?", path.model, display=False))
    assert (first.status, first.attempts) == ("ok", 1), first.error
    assert (second.status, second.attempts) == ("ok", 1), second.error
    sent = [q.fault for q in env_sim.requests if q.provider == provider]
    assert sent == ["junk_after_body", None], sent

