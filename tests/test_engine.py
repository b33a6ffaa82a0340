"""The call engine through the real SDKs against the simulator: rate gates, retries of streams
that broke before any text, cost of cut calls, the ledger under strange text, the magic's prompt,
the session object, generated magics, unloading, warm-up and debug logging."""

from __future__ import annotations

import json
import logging
import re
import math
import os
import subprocess
import sys
import textwrap
import time
import types
import warnings
from typing import Any

import pytest

import llmcells
from llmcells import _loop, ledger, ledger_sqlite
from llmcells.registry import PROVIDERS, parse_id
from llmcells.session import session

MODELS = ["chatgpt", "claude", "gemini", "openai-responses:gpt-6-luna"]


def run_batch(*args, **kwargs):
    return llmcells.run(llmcells.batch(*args, display=False, **kwargs))


# ----- issue: one 429 with a long retry-after stalled a whole batch ---------------------------------


def test_a_long_retry_after_does_not_stall_a_batch(simulated):
    """retry-after: 3600 on one row: that row ends at once saying what was asked; the provider is
    paused no longer than retry_max_wait, so every other row is sent and answered."""
    llmcells.configure(retry_max_wait=0.3)
    simulated.inject("429", provider="anthropic", retry_after=3600)
    df = run_batch([f"q{i}" for i in range(6)], ["claude"], concurrency=2, timeout=5)
    sent = [r.time for r in simulated.requests]
    wall = max(sent) - min(sent)  # (the first call of a process also imports the SDK: not counted)
    assert len(simulated.requests) == 6, df[["status", "error"]].to_string()
    limited = df[df.status != "ok"]
    assert len(limited) == 1 and limited.iloc[0].error_kind == "rate_limited"
    assert "asked to wait 1 h" in limited.iloc[0].error
    assert (df[df.status == "ok"].shape[0]) == 5
    assert wall < 3, f"the batch took {wall:.1f} s from its first request to its last"


def test_a_provider_that_keeps_asking_for_an_hour_fails_the_queued_rows_at_once(simulated):
    """Default settings (retry_max_wait 30 s), every answer a 429 with retry-after: 3600: the
    rows in flight fail saying so, one probe goes out after a short pause, and when it is told
    the same, every row still queued fails at once with the same message: 6 rows in under 5 s
    (they waited 30 s for nothing before), and only 3 requests sent."""
    simulated.inject("429", provider="anthropic", retry_after=3600, times=None)
    t0 = time.monotonic()
    df = run_batch([f"q{i}" for i in range(6)], ["claude"], concurrency=2)
    took = time.monotonic() - t0
    assert list(df.status) == ["error"] * 6, df[["status", "error"]].to_string()
    assert set(df.error_kind) == {"rate_limited"}
    assert all("asked to wait 1 h" in e for e in df.error), df.error.tolist()
    assert len(simulated.requests) == 3, len(simulated.requests)  # two in flight, then the probe
    assert took < 5, f"the batch took {took:.1f} s"


def test_a_probe_that_finds_the_limit_gone_lets_the_rows_go_ahead(simulated):
    """retry-after: 3600 on the two rows in flight, then the limit is gone: the probe is
    answered and the other rows follow it, well before retry_max_wait (30 s)."""
    simulated.inject("429", provider="anthropic", retry_after=3600, times=2)
    t0 = time.monotonic()
    df = run_batch([f"q{i}" for i in range(6)], ["claude"], concurrency=2)
    took = time.monotonic() - t0
    assert list(df.status).count("ok") == 4 and "asked to wait 1 h" in df.error.iloc[0], df[["status", "error"]]
    assert took < 5, f"the batch took {took:.1f} s"


def test_rows_of_a_closed_provider_move_on_along_their_fallback_chain(simulated):
    """A chain claude|chatgpt: once Anthropic's gate has closed on an hour-long wait, the rows
    still queued are answered by the next model of their chain, at once."""
    simulated.inject("429", provider="anthropic", retry_after=3600, times=None)
    t0 = time.monotonic()
    df = run_batch([f"q{i}" for i in range(6)], ["claude|chatgpt"], concurrency=2)
    assert list(df.status) == ["ok"] * 6, df[["status", "error"]].to_string()
    assert set(df.provider) == {"openai"}
    assert time.monotonic() - t0 < 5
    assert sum(r.path.startswith("/v1/messages") for r in simulated.requests) == 3


def test_waiting_in_the_rate_gate_is_not_counted_against_a_calls_timeout(simulated):
    """Five 0.4 s calls one at a time (concurrency 1) with a 1 s timeout each: the later ones
    wait longer than 1 s in the gate, and must not time out for it."""
    simulated.configure(ttft=0.1, tokens_per_s=100, output_tokens=30)
    df = run_batch([f"q{i}" for i in range(5)], ["claude"], limits={"anthropic": {"concurrency": 1}},
                   timeout=1.0)
    assert list(df.status) == ["ok"] * 5, df[["status", "error"]].to_string()


# ----- issue: a reset before the first text token was not retried -----------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_a_stream_that_ends_before_any_text_is_sent_again(simulated, model):
    """The start event (message_start, response.created...) arrives, then the stream ends: no
    text was shown, so the retry policy sends it again and the call succeeds."""
    llmcells.configure(retry_initial_wait=0.01)
    spec = llmcells.models.resolve(model)
    simulated.inject("cut", provider=spec.provider, after_tokens=0)
    r = llmcells.run(llmcells.ask("hi", model, display=False))
    assert r.ok and r.attempts == 2 and r.text, (r.status, r.error)


@pytest.mark.parametrize("model", MODELS)
def test_a_stream_cut_after_text_is_not_sent_again(simulated, model):
    spec = llmcells.models.resolve(model)
    simulated.inject("cut", provider=spec.provider, after_tokens=3)
    r = llmcells.run(llmcells.ask("hi", model, display=False))
    assert r.status == "incomplete" and r.attempts == 1 and r.text
    assert len(simulated.requests) == 1


# ----- issue: cut or timed-out calls recorded cost 0.0 --------------------------------------------


def test_printing_a_call_that_failed_before_any_answer_says_why(simulated):
    """print(r) printed an empty line for it, which reads as an empty answer."""
    simulated.inject("400", provider="anthropic", times=1)
    r = llmcells.run(llmcells.ask("hi", "claude", display=False))
    assert str(r) == f"[error: {r.error}]" and r.error.startswith("Anthropic rejected the request")
    simulated.inject("cut", provider="anthropic", times=1, after_tokens=3)
    r = llmcells.run(llmcells.ask("hi", "claude", display=False))
    assert r.status == "incomplete" and r.text and str(r) == r.text  # the partial answer itself
    assert str(llmcells.run(llmcells.ask("hi", "claude", display=False))).startswith("Simulated")


def test_a_cut_openai_stream_costs_nan_not_zero(simulated):
    """OpenAI reports usage only at the end: a stream cut after text has no usage, and its cost
    is unknown (NaN), not a silent 0; a call refused with a 401 cost nothing."""
    simulated.inject("cut", provider="openai", after_tokens=3)
    r = llmcells.run(llmcells.ask("hi", "chatgpt", display=False))
    assert r.status == "incomplete" and math.isnan(r.cost_usd)
    assert r.price_source == "usage not reported"
    simulated.inject("401", provider="openai")
    r = llmcells.run(llmcells.ask("hi", "chatgpt", display=False))
    assert r.status == "error" and r.cost_usd == 0.0


@pytest.mark.parametrize("fault", ["cut", "midstream_error"])
def test_an_anthropic_answer_ended_before_its_output_count_costs_nan(simulated, fault):
    """message_start reports the input (its output_tokens is a placeholder), message_delta the
    output: a stream that ended between them after text was priced on the input alone, a
    known-looking cost far below what the answer shown cost (1e-06 for a few tokens)."""
    llmcells.configure(max_attempts=1)
    simulated.inject(fault, provider="anthropic", times=1, after_tokens=3)
    r = llmcells.run(llmcells.ask("hi", "claude", display=False))
    assert r.status != "ok" and r.text and r.usage.input_tokens > 0 and r.usage.output_tokens == 0
    assert math.isnan(r.cost_usd) and r.price_source == "output not reported"
    assert math.isnan(llmcells.usage(group_id=r.group_id).cost_usd.iloc[0])


def test_a_first_token_timeout_costs_what_was_reported_or_nan(simulated):
    """Timed out before the first token: Anthropic had reported the input tokens at
    message_start, so that is the cost; OpenAI had reported nothing, so the cost is unknown.
    (The limit leaves a loaded machine time to deliver message_start: 0.3 s did not, at times.)"""
    llmcells.configure(ttft_timeout=1.5, max_attempts=1)
    simulated.inject("slow_first_token", provider="openai", delay=10)
    r = llmcells.run(llmcells.ask("hi", "chatgpt", display=False))
    assert r.error_kind == "timeout" and math.isnan(r.cost_usd)
    simulated.inject("slow_first_token", provider="anthropic", delay=10)
    r = llmcells.run(llmcells.ask("hi", "claude", display=False))
    assert r.error_kind == "timeout" and r.usage.input_tokens > 0 and r.cost_usd > 0


# ----- issue: ledger rows lost when text can't be encoded as UTF-8 -----------------------------


def test_a_prompt_with_an_unpaired_surrogate_still_leaves_a_ledger_row(simulated):
    llmcells.configure(store_text=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = llmcells.run(llmcells.ask("broken \ud800 text", "claude", display=False))
        llmcells.run(llmcells.ask("again \udfff", "claude", display=False))
    rows = llmcells.usage()
    assert r.call_id in set(rows.call_id) and len(rows) == 2
    assert all("\ud800" not in (t or "") for t in rows.prompt_text)
    ours = [w for w in caught if issubclass(w.category, ledger.LedgerWarning)]
    assert len(ours) == 1 and "replacement" in str(ours[0].message)


def test_the_ledger_warning_says_what_to_do_and_warns_again_after_a_recovery(tmp_path, monkeypatch):
    import errno

    assert "disk is full" in ledger_sqlite.advice(OSError(errno.ENOSPC, "No space left on device"))
    assert "LLMCELLS_HOME" in ledger_sqlite.advice(OSError(errno.EROFS, "Read-only file system"))
    assert "damaged" in ledger_sqlite.advice(Exception("file is not a database"))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("LLMCELLS_HOME", str(home))
    blocker = home / "ledger.sqlite"
    result = llmcells.Result(model="anthropic:x", provider="anthropic", call_id="a1", status="ok")
    ledger.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        blocker.mkdir()               # a folder where the file should be: no one can open it, root included
        ledger.record(result, prompt="p")
        ledger.record(result.replace(call_id="a2"), prompt="p")
        during_first = [w for w in caught if issubclass(w.category, ledger.LedgerWarning)]
        blocker.rmdir()               # fixed: the next record writes the kept rows too
        ledger.record(result.replace(call_id="a3"), prompt="p")
        ledger.close()
        blocker.unlink()
        blocker.mkdir()               # a second outage later in the same process
        ledger.record(result.replace(call_id="a4"), prompt="p")
        ours = [w for w in caught if issubclass(w.category, ledger.LedgerWarning)]
    assert len(during_first) == 1 and during_first[0].filename == "llmcells"
    message = str(during_first[0].message)
    assert "runner.py" not in message and "calls still run" in message
    assert len(ours) == 2, [str(w.message) for w in ours]


# ----- issue: the answer's text ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_long_answer_is_joined_once(simulated):
    """A 20,000-piece answer: the Result holds it whole and in order."""
    simulated.configure(ttft=0.0, tokens_per_s=0, output_tokens=20_000)
    r = llmcells.run(llmcells.ask("long", "claude", max_tokens=30_000, display=False))
    assert r.ok and r.usage.output_tokens == 20_000 and len(r.text) > 60_000


def test_pieces_with_split_surrogate_pairs_are_rejoined():
    """The engine's text assembly: halves of a pair in two deltas become one character; a lone
    half left at the end becomes U+FFFD, so print(result.text) always works."""
    from llmcells.engine import _Call

    call = _Call.__new__(_Call)
    call.pieces, call.held = [], ""
    for piece in ["smile ", "\ud83d", "\ude00", " and ", "x\ud83d", "\ude03!"]:
        text = call._piece(piece)
        if text:
            call.pieces.append(text)
    assert call.text() == "smile 😀 and x😃!"
    call.pieces, call.held = ["a"], ""
    assert call._piece("b\ud83d") == "b" and call.text() == "a\ufffd"
    call.text().encode("utf-8")


# ----- issue 13: the prompt is the cell as written ----------------------------------------------------


def test_a_magic_sends_the_cell_as_written(simulated, shell):
    shell.run_cell_magic("claude", "--no-display", "say hi\n")
    shell.run_cell_magic("claude", "--no-display", "say hi  \n\n")
    llmcells.run(llmcells.ask("say hi", "claude", display=False))
    sent = [r.body["messages"][-1]["content"] for r in simulated.requests]
    assert sent == ["say hi", "say hi", "say hi"]


# ----- issue 13: structure --------------------------------------------------------------------------


def test_one_parser_of_model_ids():
    assert parse_id("openai:gpt-6-luna") == ("openai", "gpt-6-luna")
    assert parse_id(" Gemini : gemini-3.5-flash ") == ("gemini", "gemini-3.5-flash")
    assert parse_id("ollama:llama3.2:8b") == ("ollama", "llama3.2:8b")
    assert parse_id("chatgpt") == ("", "chatgpt")


def test_every_registry_row_has_a_generated_magic(shell):
    for row in PROVIDERS.values():
        if row.kind == "route":  # a cloud route has no magic: an alias is pointed at it
            assert not row.alias
            continue
        magic = shell.find_cell_magic(row.alias)
        assert magic is not None, row.alias
        doc = magic.__doc__
        assert f"%%{row.alias}" in doc and row.default_id in doc and "--continue" in doc
        assert row.product in doc


def test_session_reset_restores_a_fresh_session(simulated):
    llmcells.add_alias("fast", "openai:gpt-6-sol")
    llmcells.add_endpoint("local", "http://127.0.0.1:9/v1")
    llmcells.set_price("openai:x", input=1, output=2)
    from llmcells.batches import set_rate_limit

    set_rate_limit("openai", rpm=5)
    llmcells.run(llmcells.ask("hi", "claude", display=False))
    assert session.clients and session.simulator_url
    session.reset()
    assert llmcells.aliases() == {row.alias: row.default_id for row in PROVIDERS.values() if row.alias}
    assert not session.endpoints and not session.prices and not session.rate_limits
    assert not session.clients and session.simulator_url is None
    assert llmcells.models.resolve("claude").base_url is None


def test_an_observer_that_raises_is_logged_at_debug_and_never_breaks_the_call(simulated, caplog):
    from llmcells.pipeline import call as execute
    from llmcells.calls import make_plan
    from llmcells.types import CallObserver

    class Broken(CallObserver):
        def on_start(self, info):
            raise RuntimeError("observer bug")

    with caplog.at_level(logging.DEBUG, logger="llmcells"):
        r = _loop.run(execute(make_plan("hi", "claude"), Broken()))
    assert r.ok
    assert any("Broken.on_start failed (RuntimeError)" in rec.getMessage() for rec in caplog.records)
    assert "sim-key" not in caplog.text


def test_a_cancelled_execute_returns_its_result(simulated):
    """The engine returns the Result of a cancelled call (no holder objects needed)."""
    import asyncio

    from llmcells.calls import make_plan
    from llmcells.pipeline import call as execute

    simulated.inject("slow_first_token", delay=5)

    async def go():
        task = asyncio.ensure_future(execute(make_plan("hi", "claude")))
        await asyncio.sleep(0.3)
        task.cancel()
        return await task

    r = _loop.run(go())
    assert r.status == "cancelled" and r.call_id in set(llmcells.usage().call_id)


def test_unload_ext_stops_the_loop_thread():
    code = textwrap.dedent("""
        import threading
        from IPython.core.interactiveshell import InteractiveShell
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "llmcells")
        from llmcells import _loop
        _loop.get_loop()
        assert any(t.name == "llmcells-loop" for t in threading.enumerate())
        ip.run_line_magic("unload_ext", "llmcells")
        assert not any(t.name == "llmcells-loop" for t in threading.enumerate()), threading.enumerate()
        ip.run_line_magic("load_ext", "llmcells")
        assert _loop.run(__import__("asyncio").sleep(0, "again")) == "again"
        print("OK")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-2000:]


def test_load_ext_warms_up_the_sdks_of_the_providers_with_a_key(tmp_path):
    """With only an OpenAI key set, %load_ext starts importing openai in the background (and not
    anthropic or google-genai); the import finishes without any call being made."""
    code = textwrap.dedent("""
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "llmcells")
        from llmcells import warmup
        warmup.wait(60)
        print(sorted(m for m in ("openai", "anthropic", "google.genai", "llmcells.engine") if m in sys.modules))
    """)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(OPENAI_API_KEY="sk-test-not-real", LLMCELLS_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "['llmcells.engine', 'openai']"


def test_load_ext_itself_imports_no_sdk():
    code = textwrap.dedent("""
        import sys, threading
        threading.Thread.start = lambda self: None   # no warm-up thread: see what load_ext itself imports
        from IPython.core.interactiveshell import InteractiveShell
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "llmcells")
        print(sorted(m for m in ("openai", "anthropic", "google.genai", "pandas", "ipywidgets") if m in sys.modules))
    """)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["OPENAI_API_KEY"] = "sk-test-not-real"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "[]", (out.stdout, out.stderr[-1000:])


@pytest.mark.parametrize("model", MODELS)
def test_a_surrogate_pair_split_across_events_is_one_character(simulated, model):
    """The simulator sends an emoji as a JSON-escaped \\ud83d in one event and \\ude00 in the next:
    the Result holds the character itself, prints, and its ledger row (with store_text) keeps it."""
    llmcells.configure(store_text=True)
    spec = llmcells.models.resolve(model)
    simulated.inject("split_surrogate", provider=spec.provider, after_tokens=2)
    r = llmcells.run(llmcells.ask("hi", model, display=False))
    assert r.ok and "\U0001F600" in r.text, repr(r.text[:80])
    r.text.encode("utf-8")  # no lone surrogate left
    rows = llmcells.usage()
    assert "\U0001F600" in rows.set_index("call_id").loc[r.call_id, "output_text"]


def test_a_client_build_left_over_from_a_stopped_loop_does_not_hold_up_new_calls(simulated):
    """Calls whose clients are built together wait for each other's builds; a build started on a
    loop that has since stopped (unload_ext, a test's reset) never finishes, and must not be
    waited for (it held every later first call of a provider until the test gave up)."""
    import asyncio

    from llmcells import engine
    from llmcells.session import session

    stale_loop = asyncio.new_event_loop()
    stale = stale_loop.create_future()  # never done, and of another loop
    engine._building.add(stale)
    session.clients.clear()
    try:
        r = llmcells.run(llmcells.ask("hello", "claude", display=False))
        assert r.ok, r.error
        assert stale not in engine._building
    finally:
        engine._building.discard(stale)
        stale_loop.close()


def test_a_client_that_fails_to_build_leaves_no_unretrieved_error(simulated, monkeypatch, caplog):
    """Clients built together for a first compare, some of which fail (an agent CLI that isn't
    installed): each failure is its own call's error, and asyncio logs no "Future exception was
    never retrieved" traceback (a notebook's `%%compare claude-code gemini-cli codex claude`
    printed two under the cards)."""
    import gc

    from llmcells import engine

    real = engine.get_provider

    class Broken:
        def __init__(self, adapter):
            self._adapter = adapter

        def __getattr__(self, name):
            return getattr(self._adapter, name)

        def make_client(self, options):
            raise llmcells.ConfigError("Not installed: npm install -g it (then run the cell again).")

    monkeypatch.setattr(engine, "get_provider",
                        lambda name: real(name) if name.startswith("anthropic") else Broken(real(name)))
    session.clients.clear()
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        c = llmcells.run(llmcells.compare("hi", models=["chatgpt", "claude", "gemini"], display=False))
        gc.collect()
        time.sleep(0.2)  # (a future of the loop thread may be collected there)
        gc.collect()
    assert [r.status for r in c.results] == ["error", "ok", "error"], [r.error for r in c.results]
    assert "Not installed" in c.results[0].error
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()], caplog.text


def test_the_client_builder_waits_for_an_import_under_way_in_another_thread(simulated, tmp_path):
    """Every import llmcells makes outside the main thread takes one lock (warmup.import_lock):
    while another thread holds it (the warm-up importing an SDK), a first call's client builder
    waits instead of importing the same package tree beside it, which under load handed out
    half-initialized modules ("partially initialized module 'httpx' has no attribute
    'Timeout'"). The call then runs, and a module another thread is still importing counts as
    not ready."""
    code = textwrap.dedent("""
        import sys, threading, time, llmcells
        from llmcells import warmup
        held, seen = threading.Event(), []
        def hold():
            with warmup.import_lock:
                held.set()
                time.sleep(0.6)
                seen.append("anthropic" in sys.modules)  # did anyone import the SDK meanwhile?
        t = threading.Thread(target=hold)
        t.start()
        held.wait()
        r = llmcells.run(llmcells.ask("hi", "claude", display=False))
        t.join()
        print("RESULT", r.ok, seen[0], r.error)
    """)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(LLMCELLS_HOME=str(tmp_path), ANTHROPIC_API_KEY="sk-sim", ANTHROPIC_BASE_URL=simulated.url)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[:3] == ["RESULT", "True", "False"], out.stdout


def test_a_module_still_being_imported_is_not_loaded():
    import types

    from llmcells import warmup

    module = types.ModuleType("llmcells_half")
    module.__spec__ = types.SimpleNamespace(_initializing=True)
    sys.modules["llmcells_half"] = module
    try:
        assert not warmup.loaded("llmcells_half")
        module.__spec__._initializing = False
        assert warmup.loaded("llmcells_half")
    finally:
        del sys.modules["llmcells_half"]


# ----- a stream's turns on the loop ----------------------------------------------------------------


def _yields_of_attempt(monkeypatch) -> list[float]:
    """asyncio.sleep(0) calls made by the engine's attempt loop (a yield of the loop), recorded."""
    import asyncio

    seen: list[float] = []
    real = asyncio.sleep

    def counting(delay, *args, **kwargs):
        if sys._getframe(1).f_code.co_name == "attempt":
            seen.append(delay)
        return real(delay, *args, **kwargs)

    monkeypatch.setattr(asyncio, "sleep", counting)
    return seen


def _stream_with(sim_url: str, observer=None):
    from llmcells import models
    from llmcells.calls import make_plan
    from llmcells.pipeline import call as execute
    from llmcells.types import CallObserver

    models.set_simulator(sim_url)
    try:
        return llmcells.run(execute(make_plan("a long answer", "claude"), observer or CallObserver()))
    finally:
        models.set_simulator(None)


def test_a_stream_that_waits_for_each_token_never_yields_the_loop_again():
    # Tokens 10 ms apart: the stream gives the loop back while it waits for each one, so an extra
    # pass of the loop per token (as every event after the first 5 ms once made) is only cost.
    from llmcells.sim import Simulator

    with Simulator(ttft=0.0, tokens_per_s=100, output_tokens=15) as sim, \
            pytest.MonkeyPatch.context() as mp:
        yields = _yields_of_attempt(mp)
        r = _stream_with(sim.url)
    assert r.ok and r.usage.output_tokens == 15
    assert yields == []


def test_a_stream_that_keeps_the_loop_lets_the_others_run():
    # Every token already there and slow to show (0.3 ms each): the stream never waits, so it
    # yields the loop itself every turn (5 ms), and another task keeps running meanwhile.
    import asyncio

    from llmcells.sim import Simulator
    from llmcells.types import CallObserver

    class SlowToShow(CallObserver):
        def on_text(self, text):
            time.sleep(0.0003)

    ticks: list[float] = []

    async def both(url):
        from llmcells import models
        from llmcells.calls import make_plan
        from llmcells.pipeline import call as execute

        async def ticker():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.001)

        models.set_simulator(url)
        tick = asyncio.ensure_future(ticker())
        try:
            await asyncio.sleep(0.01)
            t0 = time.monotonic()
            r = await execute(make_plan("a long answer", "claude"), SlowToShow())
            return r, t0, time.monotonic()
        finally:
            tick.cancel()
            models.set_simulator(None)

    with Simulator(ttft=0.0, tokens_per_s=0, output_tokens=2000) as sim, \
            pytest.MonkeyPatch.context() as mp:
        yields = _yields_of_attempt(mp)
        r, t0, t1 = llmcells.run(both(sim.url))
    assert r.ok and r.usage.output_tokens == 2000
    assert yields  # the stream let the loop run on its own at least once
    during = [t for t in ticks if t0 <= t <= t1]
    gaps = [b - a for a, b in zip(during, during[1:])]
    # ~0.6 s of showing tokens: without the yields the ticker would wait for all of it
    assert len(during) >= 20 and max(gaps) < (t1 - t0) / 4, (len(during), max(gaps, default=None))


@pytest.mark.parametrize("options, line", [
    ({"system": 123}, "system must be text, not int."),
    ({"params": "top_p=0.9"}, "params must be a dict of the provider's request fields"),
    ({"params": [("top_p", 0.9)]}, "not list."),
])
def test_an_option_of_the_wrong_kind_is_one_line_before_sending(simulated, options, line):
    """system=123 or params="..." raised a bare TypeError / AttributeError from deep inside;
    ask and Chat now say which option takes what, before anything is sent."""
    with pytest.raises(llmcells.ConfigError, match=re.escape(line)):
        llmcells.run(llmcells.ask("hi", "claude", display=False, **options))
    if "system" in options:
        with pytest.raises(llmcells.ConfigError, match=re.escape(line)):
            llmcells.Chat("claude", **options)


_GEMINI_CHUNK = {"candidates": [{"content": {"parts": [{"text": "H"}], "role": "model"}, "index": 0}],
                 "modelVersion": "gemini-3.5-flash-lite"}
_WHOLE_ANSWERS = {
    "openai chat": ("openai:gpt-6-luna", {}, {
        "id": "c1", "object": "chat.completion", "model": "gpt-6-luna", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}, "stop"),
    # a Responses object as the API returns it, "error": null included
    "openai responses": ("openai:gpt-6-luna", {"api": "responses"}, {
        "id": "resp_1", "object": "response", "status": "completed", "model": "gpt-6-luna",
        "error": None, "incomplete_details": None,
        "output": [{"type": "reasoning", "id": "rs_1", "summary": []},
                   {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hi", "annotations": []}]}],
        "usage": {"input_tokens": 5, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 1,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 6}}, "completed"),
    # streamGenerateContent without alt=sse (a proxy that dropped the query): a JSON array
    "gemini array": ("google:gemini-3.5-flash-lite", {}, [
        _GEMINI_CHUNK,
        {"candidates": [{"content": {"parts": [{"text": "i"}], "role": "model"}, "finishReason": "STOP",
                         "index": 0}],
         "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6}}], "STOP"),
}


@pytest.mark.parametrize("case", list(_WHOLE_ANSWERS))
def test_a_whole_json_answer_instead_of_a_stream_is_the_answer_sent_once_and_priced(case, monkeypatch):
    """A server that ignored "stream": true answered (and billed) the whole completion: that is
    the call's answer, in one attempt, with its usage and price. It was an error ("not a
    stream", cost NaN, the answer lost); before that, max_attempts attempts recorded at $0. A
    whole Responses object and Gemini's JSON array were still that error, the array sent
    max_attempts times."""
    import httpx2

    from llmcells import pipeline
    from llmcells.calls import make_plan

    model, options, answer, reason = _WHOLE_ANSWERS[case]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-engine-0000")
    monkeypatch.setenv("GEMINI_API_KEY", "gm-test-engine-0000")
    body = json.dumps(answer, indent=2).encode()
    sent = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return httpx2.Response(200, headers={"content-type": "application/json"}, content=body)

    plan = make_plan("hi", model, **options)
    plan.http_client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    r = _loop.run(pipeline.call(plan))  # (priced at the finish, as every call is)
    assert (r.status, r.text, r.attempts, len(sent)) == ("ok", "Hi", 1, 1), r.error
    assert (r.usage.input_tokens, r.usage.output_tokens, r.finish_reason) == (5, 1, reason)
    assert r.cost_usd > 0 and r.price_source not in (None, "usage not reported")


def _half_imported(name: str) -> tuple[types.ModuleType, list[str]]:
    """A module another thread is still importing, as an SDK finds it in sys.modules: the first
    attribute read fails as Python's own does and puts back the whole one (or none); the reads."""
    whole, reads = sys.modules.get(name), []

    def missing(attr: str) -> Any:  # (PEP 562: called for what the module lacks)
        reads.append(attr)
        if whole is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = whole
        raise AttributeError(f"partially initialized module '{name}' has no attribute '{attr}' "
                             "(most likely due to a circular import)")

    half = types.ModuleType(name)
    half.__getattr__ = missing  # type: ignore[attr-defined]
    return half, reads


@pytest.mark.parametrize("model", ["openai-responses:gpt-6-luna"])
def test_a_request_that_meets_the_old_httpx_half_imported_is_sent_again(simulated, monkeypatch, model):
    """The openai SDK looks up the old httpx in sys.modules as they build a request;
    google-genai imports it, and while a background thread did (the warm-up, the simulator's
    request types) a call failed with "OpenAI: AttributeError: partially initialized module
    'httpx' has no attribute 'Timeout'", never sent again."""
    llmcells.run(llmcells.ask("hi", model, display=False))  # the client, built before
    half, reads = _half_imported("httpx")
    monkeypatch.setitem(sys.modules, "httpx", half)
    r = llmcells.run(llmcells.ask("hi", model, display=False))
    assert len(reads) == 1 and r.ok and r.attempts == 2, (reads, r.status, r.error)
