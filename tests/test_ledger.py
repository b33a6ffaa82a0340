"""The usage ledger: records come back typed and filtered; aggregates; several writers; SIGKILL;
a corrupt file never breaks a call."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
import warnings
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from llmcells import ledger
from llmcells.config import settings
from llmcells.errors import ConfigError
from llmcells.types import Result, Usage


def make(**kw) -> Result:
    base = dict(
        text="an answer", model="anthropic:claude-haiku-5-5", provider="anthropic",
        response_model="claude-haiku-4-5-20251001",
        usage=Usage(input_tokens=100, cached_input_tokens=20, cache_write_tokens=10,
                    output_tokens=50, reasoning_tokens=5),
        cost_usd=0.001, latency_s=2.0, ttft_s=0.5, status="ok", attempts=1,
        call_id=uuid.uuid4().hex, started_at=time.time(), cell=7, price_source="genai-prices 0.2.3",
    )
    base.update(kw)
    return Result(**base)


def test_record_and_read_back_typed():
    r = make(group_id="g1", batch_id="b1", simulated=True, cached=True, sample=2)
    ledger.record(r, prompt="What is\n  2+2?", system="Be brief.")
    ledger.record(make(cost_usd=math.nan, price_source=None, status="error", error="boom",
                       error_kind="server_error", cell=None, usage=Usage()), prompt="x")
    df = ledger.usage().iloc[::-1].reset_index(drop=True)  # (usage() is newest first)
    assert len(df) == 2
    assert list(df.columns) == ledger.USAGE_COLUMNS
    assert str(df["ts"].dtype).startswith("datetime64[") and str(df["ts"].dt.tz) == "UTC"
    for c in ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
              "reasoning_tokens", "attempts", "sample"):
        assert df[c].dtype == "int64", c
    for c in ("cost_usd", "latency_s", "ttft_s", "tokens_per_s"):
        assert df[c].dtype == "float64", c
    assert df["cached"].dtype == bool and df["simulated"].dtype == bool
    first = df.iloc[0]
    assert first["call_id"] == r.call_id
    assert first["model"] == "anthropic:claude-haiku-5-5"
    assert first["response_model"] == "claude-haiku-4-5-20251001"
    assert first["input_tokens"] == 100 and first["cache_write_tokens"] == 10
    assert first["cost_usd"] == pytest.approx(0.001)
    assert first["tokens_per_s"] == pytest.approx(50 / 1.5)
    assert bool(first["cached"]) and bool(first["simulated"]) and first["sample"] == 2
    assert first["cell"] == 7 and pd.isna(df.iloc[1]["cell"])
    assert first["session_id"] == ledger.session_id()
    assert first["prompt_preview"] == "What is 2+2?"
    assert first["prompt_hash"] == ledger.prompt_hash("What is\n  2+2?", "Be brief.")
    assert len(first["prompt_hash"]) == 64
    assert pd.isna(first["prompt_text"]) and pd.isna(first["output_text"])   # store_text is off
    assert abs(first["ts"].timestamp() - r.started_at) < 1e-3
    # A NaN cost stays NaN, not 0.
    assert math.isnan(df.iloc[1]["cost_usd"])
    assert df.iloc[1]["status"] == "error" and df.iloc[1]["error"] == "boom"


def test_store_text_keeps_prompt_and_answer(monkeypatch):
    monkeypatch.setattr(settings, "store_text", True)
    ledger.record(make(text="the full answer"), prompt="the full prompt " * 20)
    row = ledger.usage().iloc[0]
    assert row["prompt_text"] == "the full prompt " * 20
    assert row["output_text"] == "the full answer"
    assert len(row["prompt_preview"]) <= 80


def test_empty_ledger_is_typed():
    df = ledger.usage()
    assert len(df) == 0 and list(df.columns) == ledger.USAGE_COLUMNS
    assert df["cost_usd"].dtype == "float64" and df["input_tokens"].dtype == "int64"
    c = ledger.costs()
    assert len(c) == 0 and "cost_usd" in c.columns


def test_filters():
    now = time.time()
    ledger.insert_rows([
        dict(ts=now - 3 * 86400, call_id="old", model="openai:gpt-6-luna", provider="openai",
             response_model="gpt-4.1-mini-2025-04-14", status="ok", session_id="another-session",
             cost_usd=0.5),
    ])
    ledger.record(make(call_id="c1", started_at=now - 60, group_id="g"), prompt="a")
    ledger.record(make(call_id="c2", started_at=now - 30, status="error", batch_id="b"), prompt="b")
    ledger.record(make(call_id="c3", started_at=now, model="google:gemini-3.5-flash-lite",
                       provider="google", response_model="gemini-3.5-flash-lite"), prompt="c")
    assert list(ledger.usage()["call_id"]) == ["c3", "c2", "c1", "old"]      # newest first
    assert list(ledger.usage(session=True)["call_id"]) == ["c3", "c2", "c1"]
    assert list(ledger.usage(since=timedelta(days=1))["call_id"]) == ["c3", "c2", "c1"]
    assert list(ledger.usage(since="1h")["call_id"]) == ["c3", "c2", "c1"]
    since = datetime.fromtimestamp(now - 45, tz=timezone.utc)
    assert list(ledger.usage(since=since)["call_id"]) == ["c3", "c2"]
    assert list(ledger.usage(since=since.isoformat())["call_id"]) == ["c3", "c2"]
    assert list(ledger.usage(model="claude")["call_id"]) == ["c2", "c1"]            # alias
    assert list(ledger.usage(model="anthropic:claude-haiku-5-5")["call_id"]) == ["c2", "c1"]
    assert list(ledger.usage(model="gpt-4.1-mini-2025-04-14")["call_id"]) == ["old"]  # answered
    assert list(ledger.usage(model="gemini:gemini-3.5-flash-lite")["call_id"]) == ["c3"]
    assert list(ledger.usage(model=["chatgpt", "gemini"])["call_id"]) == ["c3", "old"]
    assert list(ledger.usage(status="error")["call_id"]) == ["c2"]
    assert list(ledger.usage(status=["ok"], session=True)["call_id"]) == ["c3", "c1"]
    assert list(ledger.usage(group_id="g")["call_id"]) == ["c1"]
    assert list(ledger.usage(batch_id="b")["call_id"]) == ["c2"]
    assert list(ledger.usage(limit=2)["call_id"]) == ["c3", "c2"]
    with pytest.raises(ConfigError):
        ledger.usage(since="not a time")


def test_costs_by_keys():
    ledger.record(make(cost_usd=0.01, latency_s=1.0, ttft_s=0.1, group_id="g1", cell=1), prompt="a")
    ledger.record(make(cost_usd=0.03, latency_s=3.0, ttft_s=0.3, group_id="g1", cell=1), prompt="b")
    ledger.record(make(cost_usd=math.nan, price_source=None, status="error", cell=2,
                       group_id="g2"), prompt="c")
    ledger.record(make(model="ollama:llama3.2", provider="ollama", response_model="llama3.2",
                       cost_usd=math.nan, price_source=None, cell=2), prompt="d")
    by_model = ledger.costs(by="model")
    assert list(by_model.columns[:1]) == ["model"]
    for c in ("calls", "errors", "error_rate", "input_tokens", "output_tokens",
              "cached_input_tokens", "reasoning_tokens", "cost_usd", "unpriced_calls",
              "latency_p50", "latency_p95", "ttft_p50"):
        assert c in by_model.columns, c
    claude = by_model.set_index("model").loc["anthropic:claude-haiku-5-5"]
    assert claude["calls"] == 3 and claude["errors"] == 1
    assert claude["error_rate"] == pytest.approx(1 / 3)
    assert claude["cost_usd"] == pytest.approx(0.04)           # the known costs
    assert claude["unpriced_calls"] == 1                       # and how many are unknown
    assert claude["input_tokens"] == 300
    assert claude["latency_p50"] == pytest.approx(2.0)
    ollama = by_model.set_index("model").loc["ollama:llama3.2"]
    assert math.isnan(ollama["cost_usd"]) and ollama["unpriced_calls"] == 1   # NaN, not 0
    assert list(by_model["model"]) == ["anthropic:claude-haiku-5-5", "ollama:llama3.2"]  # cost desc

    by_cell = ledger.costs(by="cell").set_index("cell")
    assert by_cell.loc[1, "calls"] == 2 and by_cell.loc[1, "cost_usd"] == pytest.approx(0.04)
    by_group = ledger.costs(by="group")
    assert "group_id" in by_group.columns and len(by_group) == 3      # g1, g2 and no group
    day_model = ledger.costs(by=["day", "model"])
    assert list(day_model.columns[:2]) == ["day", "model"]
    assert day_model["calls"].sum() == 4
    assert len(ledger.costs(by=["provider", "status"])) == 3
    assert ledger.costs(by="session")["calls"].sum() == 4
    assert ledger.costs(by="batch")["calls"].sum() == 4
    assert ledger.costs(by="model", status="ok")["calls"].sum() == 3
    with pytest.raises(ConfigError, match="Valid keys: model, provider, day"):
        ledger.costs(by="colour")


def test_costs_by_two_keys_give_the_latency_of_calls_with_no_group():
    """A group key that is empty (a batch's calls have no group_id) among two keys: the
    latency percentiles are those of its calls, as the ttft median is, not NaN."""
    ledger.record(make(latency_s=1.0, ttft_s=0.1, purpose="answer"), prompt="a")
    ledger.record(make(latency_s=3.0, ttft_s=0.3, purpose="answer"), prompt="b")
    ledger.record(make(latency_s=0.5, ttft_s=0.2, purpose="judge"), prompt="c")
    ledger.record(make(latency_s=4.0, ttft_s=0.4, purpose="judge", group_id="g1"), prompt="d")
    out = ledger.costs(by=["group", "purpose"])
    got = {(g if isinstance(g, str) else None, p): (lat, hi, t) for g, p, lat, hi, t in
           out[["group_id", "purpose", "latency_p50", "latency_p95", "ttft_p50"]].itertuples(index=False)}
    assert got[(None, "answer")] == pytest.approx((2.0, 2.9, 0.2))
    assert got[(None, "judge")] == pytest.approx((0.5, 0.5, 0.2))
    assert got[("g1", "judge")] == pytest.approx((4.0, 4.0, 0.4))


def _script(body: str) -> str:
    src = os.path.join(os.path.dirname(__file__), "..", "src")
    return textwrap.dedent(f"""
        import sys, time, uuid
        sys.path.insert(0, {os.path.abspath(src)!r})
        from llmcells import ledger
        from llmcells.types import Result, Usage
        def make(i):
            return Result(text="t", model="openai:gpt-6-luna", provider="openai",
                          usage=Usage(input_tokens=i, output_tokens=1), cost_usd=1e-6,
                          call_id=uuid.uuid4().hex, started_at=time.time())
    """) + textwrap.dedent(body)


def test_two_processes_writing_at_once_lose_nothing():
    n = 150
    body = f"""
        for i in range({n}):
            ledger.record(make(i), prompt="p")
        print("done")
    """
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-c", _script(body)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    # and this process writes too
    for i in range(50):
        ledger.record(make(), prompt="main")
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "done" in out
    df = ledger.usage()
    assert len(df) == 2 * n + 50
    assert df["call_id"].is_unique
    assert df["session_id"].nunique() == 3


def test_sigkill_midway_loses_no_recorded_row():
    body = """
        for i in range(100000):
            r = make(i)
            ledger.record(r, prompt="p")
            print(r.call_id, flush=True)
    """
    p = subprocess.Popen([sys.executable, "-c", _script(body)], env=dict(os.environ),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reported = []
    try:
        while len(reported) < 30:
            line = p.stdout.readline()
            if not line:
                pytest.fail("the writer stopped early: " + p.stderr.read())
            reported.append(line.strip())
    finally:
        os.kill(p.pid, signal.SIGKILL)
    out, _ = p.communicate(timeout=30)
    reported += [x.strip() for x in out.splitlines() if len(x.strip()) == 32]
    assert p.returncode == -signal.SIGKILL
    ids = set(ledger.usage()["call_id"])
    missing = [c for c in reported if c not in ids]
    assert not missing, f"{len(missing)} of {len(reported)} reported rows lost"


def test_corrupt_ledger_does_not_break_calls():
    path = ledger.path()
    path.write_bytes(b"this is not a database, just garbage bytes " * 100)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ledger.record(make(call_id="k1"), prompt="a")      # must not raise
        ledger.record(make(call_id="k2"), prompt="b")
        df = ledger.usage(session=True)
    ours = [w for w in rec if issubclass(w.category, ledger.LedgerWarning)]
    assert len(ours) == 1
    msg = str(ours[0].message)
    assert str(path) in msg and "Move the file away" in msg and "calls still run" in msg
    assert list(df["call_id"]) == ["k2", "k1"]
    assert list(ledger.usage(model="claude", limit=1)["call_id"]) == ["k2"]

    # Moving the file away starts a new ledger, and the rows kept in memory are written to it.
    path.rename(path.with_suffix(".corrupt"))
    ledger.record(make(call_id="k3"), prompt="c")
    conn = sqlite3.connect(str(path))
    try:
        stored = {r[0] for r in conn.execute("SELECT call_id FROM calls")}
    finally:
        conn.close()
    assert stored == {"k1", "k2", "k3"}
    assert list(ledger.usage()["call_id"]) == ["k3", "k2", "k1"]


def test_unwritable_home_does_not_break_calls(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LLMCELLS_HOME", str(blocker / "home"))     # can't be created
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ledger.record(make(call_id="u1"), prompt="a")
    assert [w for w in rec if issubclass(w.category, ledger.LedgerWarning)]
    assert list(ledger.usage()["call_id"]) == ["u1"]


def test_record_from_threads():
    import threading

    def work():
        for _ in range(25):
            ledger.record(make(), prompt="t")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ledger.usage()) == 100


def test_ledger_follows_llmcells_home(tmp_path, monkeypatch):
    ledger.record(make(call_id="h1"), prompt="a")
    monkeypatch.setenv("LLMCELLS_HOME", str(tmp_path / "other-home"))
    assert len(ledger.usage()) == 0
    ledger.record(make(call_id="h2"), prompt="a")
    assert list(ledger.usage()["call_id"]) == ["h2"]
    assert ledger.path() == tmp_path / "other-home" / "ledger.sqlite"


def test_schema_wal_and_indexes():
    ledger.record(make(), prompt="a")
    conn = sqlite3.connect(str(ledger.path()))
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        idx = {r[1] for r in conn.execute("PRAGMA index_list(calls)")}
        assert {"calls_ts", "calls_model", "calls_group_id", "calls_batch_id"} <= idx
    finally:
        conn.close()


def test_import_is_cheap():
    code = "import sys, llmcells.ledger; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_usage_reads_every_row_of_a_bulk_insert_newest_first():
    # (its speed is measured in benchmarks/bench_ledger.py, not asserted here)
    n = 3_000
    now = time.time()
    ledger.insert_rows(dict(ts=now - n + i, model="openai:gpt-6-luna", provider="openai",
                            status="ok", input_tokens=i, output_tokens=1, cost_usd=1e-6)
                       for i in range(n))
    df = ledger.usage()
    assert len(df) == n and df["ts"].is_monotonic_decreasing  # newest first
    assert list(df["input_tokens"][:3]) == [n - 1, n - 2, n - 3]


def test_costs_say_how_many_simulated_calls_they_left_out(shell, capsys):
    for i in range(3):
        ledger.record(make(cost_usd=0.02, simulated=True), prompt=f"simulated {i}")
    ledger.record(make(cost_usd=0.01, status="error"), prompt="real")
    real = ledger.costs(by="model")
    assert real["calls"].tolist() == [1]
    note = "costs: 3 simulated calls left out (never billed); include_simulated=True " \
           "(or %llmcells costs --simulated) counts them."
    assert real.attrs["simulated_left_out"] == 3 and real.attrs["note"] == note
    assert capsys.readouterr().out == note + "\n"  # in IPython the line is shown, once
    shown = shell.run_line_magic("llmcells", "costs")
    assert capsys.readouterr().out == note + "\n" and shown["calls"].tolist() == [1]
    both = ledger.costs(by="model", include_simulated=True)
    assert both.attrs["simulated_left_out"] == 0 and "note" not in both.attrs
    assert capsys.readouterr().out == ""


def test_costs_count_real_spend_unless_asked():
    ledger.record(make(cost_usd=0.01), prompt="real")
    ledger.record(make(cost_usd=0.02, simulated=True), prompt="simulated")
    ledger.record(make(cost_usd=0.0, cached=True), prompt="cached replay")
    ledger.record(make(cost_usd=0.0, cached=True, simulated=True), prompt="both")
    real = ledger.costs(by="model")
    assert real["calls"].tolist() == [1] and real["cost_usd"].tolist() == pytest.approx([0.01])
    assert "simulated" not in real.columns and "cached_calls" not in real.columns
    both = ledger.costs(by="model", include_simulated=True)
    assert list(both.columns[:2]) == ["model", "simulated"]        # never summed together
    by_kind = both.set_index("simulated")
    assert by_kind.loc[False, "cost_usd"] == pytest.approx(0.01)
    assert by_kind.loc[True, "cost_usd"] == pytest.approx(0.02)
    only_sim = ledger.costs(by="model", include_simulated=True, status="ok", session=True,
                            since="1h", model="anthropic:claude-haiku-5-5")
    assert only_sim["calls"].sum() == 2
    cached = ledger.costs(by="model", include_cached=True)
    assert cached["calls"].tolist() == [2] and cached["cached_calls"].tolist() == [1]
    assert cached["cost_usd"].tolist() == pytest.approx([0.01])      # a replay costs nothing
    everything = ledger.costs(by=["model"], include_simulated=True, include_cached=True)
    assert everything["calls"].sum() == 4 and everything["cached_calls"].sum() == 2
    # only simulated calls: no split column needed
    ledger.close()


def test_provenance_columns_are_recorded():
    from llmcells.pricing import PriceBasis

    basis = PriceBasis("genai-prices", "0.2.3", "bundled, prices to 2026-10-14", "openai", "gpt-5-mini",
                       "flex", "live", (0.125, 0.0125, 0.125, 0.125, 1.0, 1.0))
    r = make(provider="openai", model="openai:gpt-5-mini", service_tier="flex", price_basis=basis,
             usage=Usage(input_tokens=1_000, cached_input_tokens=200, output_tokens=100,
                         cache_write_tokens=0))
    r.cost_usd = basis.cost(r.usage)
    ledger.record(r, prompt="p")
    row = ledger.usage().iloc[0]
    assert row["service_tier"] == "flex" and row["processing"] == "live"
    assert row["price_version"] == "0.2.3" and row["price_data_date"] == "bundled, prices to 2026-10-14"
    assert row["price_provider"] == "openai" and row["price_model"] == "gpt-5-mini"
    assert PriceBasis.from_row(row.to_dict()).rates == basis.rates
    assert row["cost_usd"] == (800 * 0.125 + 200 * 0.0125 + 100 * 1.0) / 1e6


def test_old_ledger_gains_the_new_columns(tmp_path):
    p = ledger.path()
    p.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(p)
    conn.execute("CREATE TABLE calls (ts REAL NOT NULL, call_id TEXT NOT NULL UNIQUE, model TEXT, "
                 "cost_usd REAL)")
    conn.execute("INSERT INTO calls VALUES (1.0, 'old', 'openai:gpt-4o-mini', 0.5)")
    conn.commit()
    conn.close()
    ledger.record(make(), prompt="new")
    df = ledger.usage()
    assert len(df) == 2 and df.iloc[0]["processing"] == "live"
    assert df.iloc[0]["cache_write_1h_tokens"] == 0


def test_the_folder_of_prompts_and_answers_is_its_users_alone(tmp_path, monkeypatch):
    """~/.llmcells (the ledger's prompt previews, the store's whole answers) was made 0755, its
    SQLite files 0644: any user of the machine could read them."""
    from llmcells import config

    old = os.umask(0o022)
    try:
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.delenv("LLMCELLS_HOME", raising=False)
        monkeypatch.setattr(config, "_homes", {})
        made = config.home()
        assert made == tmp_path / ".llmcells" and (made.stat().st_mode & 0o777) == 0o700
        made.chmod(0o755)  # as an older version left it
        monkeypatch.setattr(config, "_homes", {})
        assert (config.home().stat().st_mode & 0o777) == 0o700

        shared = tmp_path / "team"
        shared.mkdir(mode=0o750)
        monkeypatch.setenv("LLMCELLS_HOME", str(shared))  # named on purpose: its rights stay
        assert config.home() == shared and (shared.stat().st_mode & 0o777) == 0o750
        monkeypatch.setenv("LLMCELLS_HOME", str(tmp_path / "new"))
        assert (config.home().stat().st_mode & 0o777) == 0o700
    finally:
        os.umask(old)
