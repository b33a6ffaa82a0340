"""Provider batch jobs through the real SDKs against the simulator's batch APIs.

The big test submits 3 x 1,000 requests in a child process, SIGKILLs it while it waits,
reattaches from a second process, collects, and collects again; the others cover the faults
(validation failure, expiry with partial output, cancel, transient 404) and retry_failed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import llmcells
from llmcells import models
from llmcells.sim import Simulator
from llmcells.sim.batches import control

SRC = str(Path(__file__).resolve().parents[1] / "src")
MODELS = ["openai:gpt-4.1-mini", "anthropic:claude-haiku-4-5", "google:gemini-2.5-flash"]


@pytest.fixture
def sim():
    s = Simulator(ttft=0, tokens_per_s=0).start()
    control(s).configure(validate_s=0.2, run_s=1.0, finalize_s=0.1)
    yield s
    s.stop()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCELLS_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def via_env(sim, monkeypatch, home):
    """Point the SDKs at the simulator through the base-URL variables, as with real keys."""
    for name, value in {**sim.env(), "OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test",
                        "GOOGLE_API_KEY": "g-test"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    models.set_simulator(None)
    return sim


def _ledger(home: Path, where: str = "processing = 'batch'") -> list[tuple]:
    with sqlite3.connect(home / "ledger.sqlite") as conn:
        return conn.execute(f"SELECT call_id, model, status, output_text, prompt_text, cost_usd, "
                            f"price_source, ttft_s, processing FROM calls WHERE {where}").fetchall()


CHILD = textwrap.dedent("""
    import sys, llmcells
    mode = sys.argv[1]
    prompts = [f"Question number {i}: what is {i} squared?" for i in range(int(sys.argv[2]))]
    models = sys.argv[3].split(",")
    if mode == "submit":
        job = llmcells.run(llmcells.batch(prompts, models, via="provider", display=False))
        print("SUBMITTED", job.id, flush=True)
        job.wait()                     # killed while waiting
        print("FINISHED", flush=True)
    else:
        job = llmcells.job(sys.argv[4])
        df = job.wait()
        print("ROWS", len(df), (df["status"] == "ok").sum(), flush=True)
        df = job.wait()                # collecting again must not add rows
        again = llmcells.run(llmcells.batch(prompts, models, via="provider", display=False))
        print("SAME", again.id == job.id, flush=True)
""")


def _child_env(sim: Simulator, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI", "ANTHROPIC", "GOOGLE", "GEMINI"))}
    env.update(sim.env(), OPENAI_API_KEY="sk-test", ANTHROPIC_API_KEY="sk-ant-test", GOOGLE_API_KEY="g-test",
               LLMCELLS_HOME=str(home), PYTHONPATH=SRC)
    return env


def test_three_thousand_requests_survive_a_killed_process(sim, home, tmp_path):
    control(sim).configure(validate_s=0.5, run_s=4.0)
    for provider in ("openai", "anthropic"):   # Gemini keeps the input order, as the real API does
        control(sim).inject("out_of_order", provider=provider)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = _child_env(sim, home)
    first = subprocess.Popen([sys.executable, str(script), "submit", "1000", ",".join(MODELS)],
                             stdout=subprocess.PIPE, text=True, env=env)
    line = first.stdout.readline()
    assert line.startswith("SUBMITTED"), line
    job_id = line.split()[1]
    time.sleep(0.8)                       # waiting, jobs running
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert len(control(sim).jobs) == 3    # one provider job per provider and model
    assert {len(j.requests) for j in control(sim).jobs.values()} == {1000}

    second = subprocess.run([sys.executable, str(script), "reattach", "1000", ",".join(MODELS), job_id],
                            capture_output=True, text=True, env=env, timeout=240)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "ROWS 3000 3000" in second.stdout
    assert "SAME True" in second.stdout
    assert len(control(sim).jobs) == 3    # reattaching never submitted again

    rows = _ledger(home)
    assert len(rows) == 3000
    assert len({r[0] for r in rows}) == 3000
    assert all(r[2] == "ok" and r[7] is None and r[8] == "batch" for r in rows)
    assert {r[6] for r in rows} == {"genai-prices 0.2.3 (batch)"} or all("batch" in r[6] for r in rows)

    # The right text per row although OpenAI and Anthropic returned their results shuffled:
    # the same prompt asked live gives the simulator's same deterministic answer.
    models.set_simulator(sim.url)
    try:
        frame = llmcells.job(job_id).to_frame()     # texts are kept in the job store
        assert len(frame) == 3000 and set(frame.call_id) == {r[0] for r in rows}
        by_prompt = {(m, p): t for m, p, t in zip(frame.model, frame.prompt, frame.text)}
        assert len(set(by_prompt.values())) > 2900
        for i in (0, 1, 17, 500, 999):
            prompt = f"Question number {i}: what is {i} squared?"
            for model in MODELS:
                live = llmcells.run(llmcells.ask(prompt, model, display=False))
                assert live.ok and by_prompt[(model, prompt)] == live.text
    finally:
        models.set_simulator(None)


def test_batch_prices_and_the_half_price_rule(home):
    from llmcells.batchjobs.prices import batch_cost
    from llmcells.pricing import cost
    from llmcells.types import Usage

    usage = Usage(input_tokens=10_000, output_tokens=2_000)
    for provider, model in [("anthropic", "claude-haiku-4-5"), ("google", "gemini-2.5-flash")]:
        value, source = batch_cost(provider, model, usage)
        assert source.endswith("(batch)")            # genai-prices has a batch variant
        assert value == pytest.approx(cost(provider, model, usage)[0] / 2)
    value, source = batch_cost("google", "gemini-2.0-flash", usage)   # no batch variant
    assert source.endswith("50% batch rule")
    assert value == pytest.approx(cost("google", "gemini-2.0-flash", usage)[0] / 2)


def _submit(prompts, model, **kw):
    return llmcells.run(llmcells.batch(prompts, [model], via="provider", display=False, **kw))


def test_costs_in_the_frame_are_batch_prices(via_env, home):
    job = _submit([f"p{i}" for i in range(20)], "anthropic:claude-haiku-4-5")
    df = job.wait()
    from llmcells.pricing import cost
    from llmcells.types import Usage

    for _, row in df.iterrows():
        full, _ = cost("anthropic", "claude-haiku-4-5",
                       Usage(input_tokens=row.input_tokens, output_tokens=row.output_tokens))
        assert row.cost_usd == pytest.approx(full / 2)


def test_max_cost_is_checked_before_anything_is_sent(via_env, home, capsys):
    with pytest.raises(llmcells.ConfigError, match="nothing was sent"):
        _submit([f"p{i}" for i in range(50)], "openai:gpt-4.1-mini", max_cost=0.000001)
    assert control(via_env).jobs == {} and control(via_env).files == {}


def test_validation_failure_then_retry_live(via_env, home):
    control(via_env).inject("validation_failure", provider="openai")
    job = _submit([f"v{i}" for i in range(10)], "openai:gpt-4.1-mini")
    assert job.parts()[0]["state"] == "submitted"     # OpenAI accepts it at create
    df = job.wait()
    part = job.parts()[0]
    assert part["state"] == "failed" and "validation failed" in part["error"]
    assert set(df.status) == {"error"} and df.error.str.contains("retry_failed").all()
    df = job.retry_failed(via="live")
    assert set(df.status) == {"ok"} and len(df) == 10
    assert len(_ledger(home, "processing = 'live' AND status = 'ok'")) == 10
    assert len(_ledger(home, "processing = 'batch'")) == 10          # the failed ones, recorded


def test_expiry_keeps_the_partial_output_and_retry_finishes(via_env, home):
    control(via_env).inject("expire", provider="openai")
    job = _submit([f"e{i}" for i in range(20)], "openai:gpt-4.1-mini")
    df = job.wait()
    assert job.parts()[0]["state"] == "expired"
    assert (df.status == "ok").sum() == 10 and (df.status == "expired").sum() == 10
    kept = set(df[df.status == "ok"].prompt)
    job.wait()                                                    # collecting again adds nothing
    assert len(_ledger(home)) == 20
    df = job.retry_failed(via="live")
    assert set(df.status) == {"ok"}
    assert len(_ledger(home, "processing = 'live'")) == 10        # only the expired ones
    assert kept <= set(df.prompt)


def test_cancel_collects_what_finished_and_retry_via_provider(via_env, home):
    control(via_env).configure(run_s=3.0)
    job = _submit([f"c{i}" for i in range(30)], "anthropic:claude-haiku-4-5")
    time.sleep(1.2)
    job.cancel()
    df = job.wait()
    assert job.parts()[0]["state"] == "cancelled"
    done = (df.status == "ok").sum()
    assert 0 < done < 30 and (df.status == "cancelled").sum() == 30 - done
    control(via_env).configure(run_s=0.5)
    job = job.retry_failed(via="provider")
    df = job.wait()
    assert set(df.status) == {"ok"} and len(df) == 30
    assert len(job.parts()) == 2


def test_transient_404_after_create(via_env, home):
    control(via_env).inject("404_after_create", provider="google")
    job = _submit([f"g{i}" for i in range(5)], "google:gemini-2.5-flash")
    job.status()
    assert "not visible yet" in (job.parts()[0]["error"] or "")
    df = job.wait()
    assert set(df.status) == {"ok"}


def test_crash_between_create_and_persist_is_reconciled(via_env, home):
    """A part left in "creating" (the process died after create, before the id was written) is
    found again by its tag, or for Anthropic by time and size, instead of being sent twice."""
    from llmcells.batchjobs import store

    for model in MODELS:
        # A decoy of the same size, created just before: Anthropic's match must not take it.
        _submit([f"decoy{i} {model}" for i in range(4)], model).wait()
        job = _submit([f"r{i} {model}" for i in range(4)], model)
        job.wait()                     # ended: Anthropic's match checks the custom_ids too
        part = job.parts()[0]
        store.update_part(job.id, 0, provider_job_id=None, state="creating", collected=0,
                          created=part["created"] - 3)
        before = len(control(via_env).jobs)
        df = llmcells.job(job.id).wait()
        assert len(control(via_env).jobs) == before, model
        assert set(df.status) == {"ok"}
        assert llmcells.job(job.id).parts()[0]["provider_job_id"] == part["provider_job_id"]


def test_jobs_listing_and_pending_rows(via_env, home):
    control(via_env).configure(run_s=5.0)
    job = _submit(["a", "b"], "openai:gpt-4.1-mini")
    df = job.to_frame()
    assert set(df.status) == {"pending"} and list(df.prompt) == ["a", "b"]
    assert job.status().state[0] in ("validating", "running")
    listing = llmcells.jobs()
    assert list(listing.job_id) == [job.id] and listing.cost_kind[0] == "estimate"
    assert listing.expires_in_s[0] > 80_000
    job.cancel()
    job.wait()


def test_unknown_via_and_endpoint_models_are_one_line(via_env, home):
    with pytest.raises(llmcells.ConfigError, match="via must be"):
        llmcells.batch(["x"], ["chatgpt"], via="mail")
    llmcells.add_endpoint("localish", "http://127.0.0.1:9/v1")
    with pytest.raises(llmcells.ConfigError, match="no provider batch API"):
        llmcells.batch(["x"], ["localish:m"], via="provider")


def test_jobs_are_split_at_the_api_limits(via_env, home, monkeypatch):
    from llmcells.batchjobs import drivers

    monkeypatch.setitem(drivers.LIMITS, "openai", (7, 200 * 1024 * 1024))       # 7 lines a file
    monkeypatch.setitem(drivers.LIMITS, "anthropic", (100_000, 4 * 1024))       # 4 KB a batch
    prompts = [f"s{i} " + "x" * 500 for i in range(20)]
    job = llmcells.run(llmcells.batch(prompts, MODELS[:2], via="provider", display=False))
    parts = job.parts()
    sizes = [(p["provider"], p["requests"]) for p in parts]
    assert sizes[:3] == [("openai", 7), ("openai", 7), ("openai", 6)]
    assert [n for p, n in sizes if p == "anthropic"] == [5, 5, 5, 5]
    df = job.wait()
    assert len(df) == 40 and set(df.status) == {"ok"}
    assert len(control(via_env).jobs) == 7


def test_ledger_rows_say_live_or_batch(via_env, home):
    models.set_simulator(via_env.url)
    try:
        llmcells.run(llmcells.ask("live one", "chatgpt", display=False))
    finally:
        models.set_simulator(None)
    t0 = time.time()
    job = _submit(["batch one"], "openai:gpt-4.1-mini")
    submitted = job.parts()[0]["submitted"]
    job.wait()
    usage = llmcells.usage()
    assert sorted(usage.processing) == ["batch", "live"]
    batch = usage[usage.processing == "batch"].iloc[0]
    assert pd_isna(batch.ttft_s)
    assert batch.ts.timestamp() == pytest.approx(submitted, abs=0.01) and batch.ts.timestamp() >= t0
    assert 0 <= batch.latency_s <= time.time() - submitted      # finish = submit + latency_s


def pd_isna(x) -> bool:
    import pandas as pd

    return bool(pd.isna(x))


def test_missing_key_and_a_refused_create(via_env, home, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(llmcells.MissingKeyError, match="ANTHROPIC_API_KEY"):
        _submit(["k"], "anthropic:claude-haiku-4-5")
    assert llmcells.jobs().empty                              # nothing written, nothing sent
    monkeypatch.setenv("ANTHROPIC_API_KEY", "invalid-key")    # the simulator answers 401
    job = _submit(["k1", "k2"], "anthropic:claude-haiku-4-5")
    df = job.wait()
    assert job.parts()[0]["state"] == "failed" and "rejected the API key" in job.parts()[0]["error"]
    assert set(df.status) == {"error"} and "invalid-key" not in " ".join(df.error)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    df = job.retry_failed(via="provider").wait()
    assert set(df.status) == {"ok"}


def test_responses_api_models_go_to_v1_responses(via_env, home):
    job = _submit(["r1", "r2"], "openai-responses:gpt-4.1-mini")
    df = job.wait()
    assert set(df.status) == {"ok"} and df.text.str.startswith("Simulated answer").all()
    (sim_job,) = control(via_env).jobs.values()
    assert {api for _, _, api in sim_job.requests} == {"responses"}


def test_gemini_file_route_above_the_inline_limit(via_env, home, monkeypatch):
    from llmcells.batchjobs import google_jobs

    monkeypatch.setattr(google_jobs, "INLINE_BYTES", 2_000)     # ~20 MB in real life
    control(via_env).inject("out_of_order", provider="google")
    prompts = [f"f{i} " + "y" * 200 for i in range(12)]
    job = llmcells.run(llmcells.batch(prompts, ["google:gemini-2.5-flash"], via="provider",
                                      system="Answer briefly.", max_tokens=50, display=False))
    (sim_job,) = control(via_env).jobs.values()
    assert sim_job.meta.get("file_route") and len(sim_job.requests) == 12
    assert sim_job.requests[0][1]["systemInstruction"] == {"parts": [{"text": "Answer briefly."}],
                                                           "role": "user"}
    assert sim_job.requests[0][1]["generationConfig"] == {"maxOutputTokens": 50}
    df = job.wait()
    assert set(df.status) == {"ok"} and len(df) == 12
    models.set_simulator(via_env.url)
    try:
        live = llmcells.run(llmcells.ask(prompts[3], "gemini", system="Answer briefly.", max_tokens=50,
                                         display=False))
    finally:
        models.set_simulator(None)
    assert df.text[3] == live.text


def test_batch_faults_and_timings_over_http(sim):
    import urllib.error
    import urllib.request

    def post(name: str, body) -> int:
        req = urllib.request.Request(f"{sim.url}/_sim/batches/{name}", method="POST",
                                     data=json.dumps(body).encode())
        try:
            return urllib.request.urlopen(req, timeout=5).status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert post("config", {"run_s": 7}) == 200 and control(sim).settings.run_s == 7
    assert post("faults", {"fault": "expire", "provider": "anthropic", "times": 2}) == 200
    assert [(f.fault, f.provider, f.times) for f in control(sim).faults] == [("expire", "anthropic", 2)]
    assert post("faults", {"fault": "melt"}) == 400
    assert post("config", {"nope": 1}) == 400
    assert post("reset", {}) == 200 and control(sim).faults == [] and control(sim).settings.run_s == 2.0
