"""The ledger end to end, through real calls (`llmcells.run(llmcells.ask(...))`, batches) against
the simulator: a SIGKILLed process loses no finished call, several processes write one ledger at
once, and a corrupt or locked ledger never breaks a call.

tests/test_ledger.py covers `ledger.record()` on its own (direct writes, threads, a corrupt file,
an unwritable home); these tests go through the runner and separate processes.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import pytest

import llmcells
from llmcells import ledger, ledger_sqlite
from llmcells.config import settings

SRC = str(Path(__file__).resolve().parents[1] / "src")
KEYS = {"OPENAI_API_KEY": "sk-test-durability-0000", "ANTHROPIC_API_KEY": "sk-ant-test-durability-0",
        "GOOGLE_API_KEY": "AIzaTestDurability00000000"}


def _child_env(sim) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(sim.env())
    env.update(KEYS)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env["LLMCELLS_HOME"] = str(ledger.path().parent)   # this test's home: we read what it wrote
    return env


LOOP_CHILD = """
    import itertools, llmcells
    models = ["chatgpt", "claude", "gemini", "openai-responses:gpt-6-luna"]
    for i, model in zip(itertools.count(), itertools.cycle(models)):
        r = llmcells.run(llmcells.ask(f"question {i}", model, display=False))
        print(r.call_id, r.status, flush=True)
"""

BATCH_CHILD = """
    import llmcells
    from llmcells import pipeline
    call = pipeline.call
    async def reporting(plan, observer=None):   # each call, once the pipeline says it is finished
        result = await call(plan, observer)
        print(result.call_id, result.status, flush=True)
        return result
    pipeline.call = reporting   # (batch workers look it up per call)
    llmcells.run(llmcells.batch([f"question {i}" for i in range(400)],
                                models=["chatgpt", "claude", "gemini"], concurrency=8, display=False))
    print("BATCH DONE", flush=True)
"""


@pytest.mark.parametrize("script", [LOOP_CHILD, BATCH_CHILD], ids=["ask-loop", "batch"])
@pytest.mark.slow
def test_sigkill_mid_run_loses_no_finished_call(simulated, script):
    fresh_sim = simulated
    fresh_sim.configure(ttft=0.01, tokens_per_s=400)        # ~50 ms a call: killed mid-stream
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=_child_env(fresh_sim),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reported: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while len(reported) < 20 and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                pytest.fail("the child stopped early: " + p.stderr.read()[-2000:])
            reported.append(line.split()[0])
    finally:
        os.kill(p.pid, signal.SIGKILL)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == -signal.SIGKILL
    assert "BATCH DONE" not in out, "the batch finished before the kill: make it longer"
    reported += [x.split()[0] for x in out.split("\n")[:-1] if x.strip()]  # whole lines only
    assert len(reported) >= 20
    rows = llmcells.usage()
    ids = set(rows["call_id"])
    missing = [c for c in reported if c not in ids]
    assert not missing, f"{len(missing)} of {len(reported)} finished calls are not in the ledger"
    assert set(rows[rows["call_id"].isin(reported)]["status"]) == {"ok"}
    # the ledger is still a sound database, and this process can go on using it
    conn = sqlite3.connect(str(ledger.path()))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    fresh_sim.reset()
    assert llmcells.run(llmcells.ask("after the kill", "claude", display=False)).ok


@pytest.mark.kernel
def test_sigkill_of_a_kernel_mid_batch_loses_no_finished_call(simulated):
    """The same as above in a real Jupyter kernel running `await llmcells.batch(...)`."""
    import queue

    from llmcells.testing import Kernel

    simulated.configure(ttft=0.01, tokens_per_s=400)
    # iopub may split one printed line across two stream messages: join the text first, and
    # count only whole lines (a line is whole once its newline has arrived).
    printed = ""

    def whole_lines() -> list[str]:
        return [x.split()[0] for x in printed.split("\n")[:-1] if x.strip()]

    def read(timeout: float) -> bool:
        nonlocal printed
        try:
            msg = k.kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return False
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            printed += msg["content"]["text"]
        assert msg["msg_type"] != "error", msg["content"]
        return True

    with Kernel(ledger.path().parent, env=_child_env(simulated)) as k:
        code = textwrap.dedent(BATCH_CHILD).replace("llmcells.run(llmcells.batch(", "await (llmcells.batch(")
        msg_id = k.send(code)
        deadline = time.monotonic() + 60
        while len(whole_lines()) < 20 and time.monotonic() < deadline:
            read(1)
        os.kill(k.pid, signal.SIGKILL)
        time.sleep(0.5)
        while read(0.5):  # what the kernel had sent before it died
            pass
    reported = whole_lines()
    assert len(reported) >= 20 and "BATCH" not in reported
    ids = set(llmcells.usage()["call_id"])
    missing = [c for c in reported if c not in ids]
    assert not missing, f"{len(missing)} of {len(reported)} finished calls are not in the ledger"


@pytest.mark.slow
def test_three_processes_making_real_calls_share_one_ledger(simulated):
    fresh_sim = simulated
    script = """
        import llmcells
        for i in range(5):
            c = llmcells.run(llmcells.compare(f"q{i}", ["chatgpt", "claude", "gemini"], display=False))
            for r in c:
                print(r.call_id, r.status, flush=True)
    """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)],
                              env=_child_env(fresh_sim), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    reported = []
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
        assert "LedgerWarning" not in err, err[-2000:]
        reported += [line.split() for line in out.splitlines()]
    assert len(reported) == 3 * 5 * 3 and all(status == "ok" for _, status in reported)
    rows = llmcells.usage()
    assert rows["call_id"].is_unique
    assert set(rows["call_id"]) == {call_id for call_id, _ in reported}
    assert rows["session_id"].nunique() == 3
    assert len(fresh_sim.requests) == 45


@pytest.fixture
def simulated_fast(simulated):
    settings.update(retry_initial_wait=0.01, retry_max_wait=0.2)
    return simulated


def test_corrupt_ledger_the_call_is_ok_with_one_warning(simulated_fast):
    ledger.close()
    path = ledger.path()
    path.write_bytes(os.urandom(4096) + b"garbage, not a database" * 50)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r1 = llmcells.run(llmcells.ask("one", "claude", display=False))
        c = llmcells.run(llmcells.compare("two", ["chatgpt", "gemini"], display=False))
        rows = llmcells.usage(session=True)
    assert r1.ok and all(r.ok for r in c)
    ours = [w for w in caught if issubclass(w.category, ledger.LedgerWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    message = str(ours[0].message)
    assert "\n" not in message and str(path) in message and "calls still run" in message
    # this session's calls are still listed (kept in memory)
    assert set(rows["call_id"]) >= {r1.call_id, *(r.call_id for r in c)}


def test_corrupt_ledger_through_a_magic(simulated_fast, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "llmcells")
    ledger.close()
    ledger.path().write_bytes(b"\x00garbage" * 1000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ip.run_cell_magic("claude", "--no-display", "hi")
        ip.run_cell_magic("compare", "chatgpt gemini --no-display", "hi")
        usage = ip.run_line_magic("llmcells", "usage --session")
    assert ip.user_ns["_llm"].results[0].ok
    assert len([w for w in caught if issubclass(w.category, ledger.LedgerWarning)]) == 1
    assert len(usage) == 3
    assert "Traceback" not in capsys.readouterr().err


def _hold_exclusive_lock(path: Path, seconds: float, locked: threading.Event) -> threading.Thread:
    def hold():
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=1)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            locked.set()
            time.sleep(seconds)
            conn.execute("COMMIT")
        finally:
            conn.close()

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    assert locked.wait(5)
    return t


def test_ledger_locked_past_the_busy_timeout_the_call_is_ok(simulated_fast, monkeypatch):
    """Another process holds the database locked for longer than the busy timeout (shortened
    here so that the test is quick): the call returns ok, one warning, the row is kept in memory
    and written as soon as the lock is gone."""
    assert llmcells.run(llmcells.ask("create the ledger", "claude", display=False)).ok
    monkeypatch.setattr(ledger_sqlite, "BUSY_TIMEOUT_MS", 200)
    monkeypatch.setattr(ledger_sqlite, "LOCK_RETRIES", 2)
    ledger.close()                                   # reopen with the short timeout
    locked = threading.Event()
    holder = _hold_exclusive_lock(ledger.path(), 2.0, locked)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.monotonic()
        r = llmcells.run(llmcells.ask("while locked", "gemini", display=False))
        took = time.monotonic() - t0
        r2 = llmcells.run(llmcells.ask("still locked", "chatgpt", display=False))
    assert r.ok and r2.ok and took < 1.5
    ours = [w for w in caught if issubclass(w.category, ledger.LedgerWarning)]
    assert len(ours) == 1 and "locked" in str(ours[0].message)
    assert {r.call_id, r2.call_id} <= set(llmcells.usage(session=True)["call_id"])
    holder.join()
    r3 = llmcells.run(llmcells.ask("unlocked", "claude", display=False))
    ledger.close()
    conn = sqlite3.connect(str(ledger.path()))
    try:
        stored = {row[0] for row in conn.execute("SELECT call_id FROM calls")}
    finally:
        conn.close()
    assert {r.call_id, r2.call_id, r3.call_id} <= stored


@pytest.mark.slow
def test_ledger_locked_longer_than_the_real_busy_timeout(simulated_fast):
    """The one slow test: the lock is held ~12 s, past the real 10 s busy timeout. The call
    still comes back ok, nothing is raised, and its row ends up in the ledger."""
    assert llmcells.run(llmcells.ask("create the ledger", "claude", display=False)).ok
    locked = threading.Event()
    hold_s = ledger_sqlite.BUSY_TIMEOUT_MS / 1000 + 2
    holder = _hold_exclusive_lock(ledger.path(), hold_s, locked)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.monotonic()
        r = llmcells.run(llmcells.ask("while locked", "gemini", display=False))
        took = time.monotonic() - t0
    holder.join()
    assert r.ok, r.error
    assert len([w for w in caught if issubclass(w.category, ledger.LedgerWarning)]) <= 1
    assert r.call_id in set(llmcells.usage()["call_id"])
    print(f"a call with the ledger locked for {hold_s:.0f} s took {took:.1f} s")


@pytest.mark.slow
def test_a_locked_ledger_does_not_stall_the_other_streams(simulated_fast):
    """While one call waits to write its row into a locked ledger, the other calls on the
    private loop go on: the writes happen off the loop."""
    assert llmcells.run(llmcells.ask("create the ledger", "claude", display=False)).ok
    simulated_fast.set_model("claude-haiku-5-5", ttft=0.0, tokens_per_s=5000, output_tokens=5)
    simulated_fast.set_model("gemini-3.5-flash-lite", ttft=1.0, tokens_per_s=200, output_tokens=20)
    holder = _hold_exclusive_lock(ledger.path(), 3.0, threading.Event())
    t0 = time.monotonic()
    c = llmcells.run(llmcells.compare("hi", ["claude", "gemini"], display=False))
    holder.join()
    assert all(r.ok for r in c)
    # claude finished at once and waited for the lock; meanwhile gemini's request went out
    sent = [q.time - t0 for q in simulated_fast.requests if q.provider == "google" and q.time > t0]
    assert sent and sent[0] < 1.0, f"gemini's request left {sent[0]:.2f} s after the start"
    assert {r.call_id for r in c} <= set(llmcells.usage()["call_id"])
