"""Provider batch jobs through the real SDKs against the simulator's batch APIs.

The big test submits 3 x 1,000 requests in a child process, SIGKILLs it while it waits,
reattaches from a second process, collects, and collects again; the others cover the faults
(validation failure, expiry with partial output, cancel, transient 404) and retry_failed; the
last ones attachments and schemas, checked in the request lines the simulator received.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

import llmcells
from llmcells import models
from llmcells.sim import Simulator, rich
from llmcells.sim.batches import control

SRC = str(Path(__file__).resolve().parents[1] / "src")
MODELS = ["openai:gpt-6-luna", "anthropic:claude-haiku-5-5", "google:gemini-3.5-flash-lite"]


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


@pytest.mark.slow
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
    from llmcells.pricing import cost
    from llmcells.types import Usage

    def batch_cost(provider, model, usage):
        return cost(provider, model, usage, processing="batch")

    usage = Usage(input_tokens=10_000, output_tokens=2_000)
    for provider, model in [("anthropic", "claude-haiku-5-5"), ("google", "gemini-3.5-flash-lite")]:
        value, source = batch_cost(provider, model, usage)
        assert source.endswith("(batch)")            # genai-prices has a batch variant
        assert value == pytest.approx(cost(provider, model, usage)[0] / 2)
    value, source = batch_cost("google", "gemini-2.0-flash", usage)   # no batch variant
    assert source.endswith("50% batch rule")
    assert value == pytest.approx(cost("google", "gemini-2.0-flash", usage)[0] / 2)


def _submit(prompts, model, **kw):
    return llmcells.run(llmcells.batch(prompts, [model], via="provider", display=False, **kw))


def test_costs_in_the_frame_are_batch_prices(via_env, home):
    job = _submit([f"p{i}" for i in range(20)], "anthropic:claude-haiku-5-5")
    df = job.wait()
    from llmcells.pricing import cost
    from llmcells.types import Usage

    for _, row in df.iterrows():
        full, _ = cost("anthropic", "claude-haiku-5-5",
                       Usage(input_tokens=row.input_tokens, output_tokens=row.output_tokens))
        assert row.cost_usd == pytest.approx(full / 2)


def test_max_cost_is_checked_before_anything_is_sent(via_env, home, capsys):
    with pytest.raises(llmcells.ConfigError, match=r"over max_cost=\$0\.000001; nothing was sent"):
        _submit([f"p{i}" for i in range(50)], "openai:gpt-6-luna", max_cost=0.000001)  # (not $1e-06)
    assert control(via_env).jobs == {} and control(via_env).files == {}


def test_max_cost_says_when_the_answers_could_cost_more_than_it(via_env, home):
    """max_cost is checked against an estimate of 400 output tokens an answer, while each
    Anthropic line allows 16,000: a job passed the check and cost 1.5 times the cap. The
    check now says how far the answers could go, and a small max_tokens bounds them."""
    import warnings

    from llmcells.errors import LLMCellsWarning

    prompts = [f"m{i}" for i in range(20)]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _submit(prompts, "anthropic:claude-haiku-5-5", max_cost=0.05).wait()
    said = [str(w.message) for w in seen if issubclass(w.category, LLMCellsWarning)]
    assert len(said) == 1 and "can't be stopped once sent" in said[0], said
    assert "up to $" in said[0] and "if every answer runs to its max_tokens" in said[0]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _submit([p + " short" for p in prompts], "anthropic:claude-haiku-5-5", max_cost=0.05,
                max_tokens=50).wait()
    assert not [w for w in seen if issubclass(w.category, LLMCellsWarning)]


def test_validation_failure_then_retry_live(via_env, home):
    control(via_env).inject("validation_failure", provider="openai")
    job = _submit([f"v{i}" for i in range(10)], "openai:gpt-6-luna")
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
    job = _submit([f"e{i}" for i in range(20)], "openai:gpt-6-luna")
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
    job = _submit([f"c{i}" for i in range(30)], "anthropic:claude-haiku-5-5")
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
    job = _submit([f"g{i}" for i in range(5)], "google:gemini-3.5-flash-lite")
    job.status()
    assert "not visible yet" in (job.parts()[0]["error"] or "")
    df = job.wait()
    assert set(df.status) == {"ok"}


@pytest.mark.slow
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
    job = _submit(["a", "b"], "openai:gpt-6-luna")
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
    job = _submit(["batch one"], "openai:gpt-6-luna")
    submitted = job.parts()[0]["submitted"]
    job.wait()
    usage = llmcells.usage()
    assert sorted(usage.processing) == ["batch", "live"]
    batch = usage[usage.processing == "batch"].iloc[0]
    assert pd_isna(batch.ttft_s)
    assert batch.ts.timestamp() == pytest.approx(submitted, abs=0.01) and batch.ts.timestamp() >= t0
    assert 0 <= batch.latency_s <= time.time() - submitted      # finish = submit + latency_s


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pd_isna(x) -> bool:
    import pandas as pd

    return bool(pd.isna(x))


def test_missing_key_and_a_refused_create(via_env, home, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(llmcells.MissingKeyError, match="ANTHROPIC_API_KEY"):
        _submit(["k"], "anthropic:claude-haiku-5-5")
    assert llmcells.jobs().empty                              # nothing written, nothing sent
    monkeypatch.setenv("ANTHROPIC_API_KEY", "invalid-key")    # the simulator answers 401
    job = _submit(["k1", "k2"], "anthropic:claude-haiku-5-5")
    df = job.wait()
    assert job.parts()[0]["state"] == "failed" and "rejected the API key" in job.parts()[0]["error"]
    assert set(df.status) == {"error"} and "invalid-key" not in " ".join(df.error)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    df = job.retry_failed(via="provider").wait()
    assert set(df.status) == {"ok"}


def _jobs_of(sim, provider: str) -> int:
    return sum(1 for j in control(sim).jobs.values() if j.provider == provider)


@pytest.mark.parametrize("model,provider", [("anthropic:claude-haiku-5-5", "anthropic"),
                                            ("openai:gpt-6-luna", "openai")])
def test_a_create_answered_500_after_the_job_was_made_is_found_not_made_twice(via_env, home, model,
                                                                                provider):
    """A 500 (or a timeout) after the POST doesn't say whether the job exists. The part was
    failed at once, the job ran unseen (and billed), and retry_failed() made a second one."""
    control(via_env).inject("create_then_500", provider=provider)
    job = _submit([f"c{i}" for i in range(3)], model)
    assert "not created yet" in job.parts()[0]["error"] and job.parts()[0]["state"] == "creating"
    df = job.wait()
    assert set(df.status) == {"ok"} and len(df) == 3
    assert _jobs_of(via_env, provider) == 1, "the job was created a second time"


def test_a_failed_gemini_batch_says_why(via_env, home):
    """google-genai's BatchJob keeps no `error` of the operation: every row read "Gemini
    reported the batch as failed.", with Gemini's reason dropped (and ".;" after it)."""
    control(via_env).inject("validation_failure", provider="google")
    df = _submit(["g1", "g2"], "google:gemini-3.5-flash-lite").wait()
    assert set(df.status) == {"error"}
    assert df.error.str.contains("Gemini: The simulator was asked to fail this batch").all(), list(df.error)
    assert not df.error.str.contains(r"\.;").any()


def test_checks_back_off_whatever_the_base_url(via_env, home):
    """Any base URL holding 127.0.0.1 (a local proxy in front of the real API, here the
    simulator named by the SDKs' variables) was polled every 0.25 s for the job's whole life:
    the checks now grow from 0.25 s to 30 s; only the simulator's own jobs stay fast."""
    from llmcells.batchjobs.core import POLL_MAX_S

    job = _submit(["b1"], "openai:gpt-6-luna")
    parts = job.parts()
    waits = [job._poll(parts, n) for n in range(20)]
    assert waits[0] == 0.25 and waits == sorted(waits) and waits[-1] == POLL_MAX_S == 30.0
    assert sum(waits[:10]) < 30  # a job that ends in seconds is still seen within seconds
    job.wait()


def test_a_create_refused_429_is_tried_again_not_failed(via_env, home):
    control(via_env).inject("create_429", provider="anthropic")
    df = _submit(["r1", "r2"], "anthropic:claude-haiku-5-5").wait()
    assert set(df.status) == {"ok"} and _jobs_of(via_env, "anthropic") == 1


def test_a_refused_openai_create_leaves_no_input_file(via_env, home):
    """Each try of a create uploads its input file; one the API refused (a 4xx: no batch was
    made) stayed in the account's files for good."""
    control(via_env).inject("create_429", provider="openai")
    df = _submit(["f1", "f2"], "openai:gpt-6-luna").wait()
    assert set(df.status) == {"ok"}
    [batch] = [j for j in control(via_env).jobs.values() if j.provider == "openai"]
    inputs = [fid for fid, f in control(via_env).files.items() if f[0].endswith(".jsonl")
              and f[0].startswith("llmcells-")]
    assert len(inputs) == 1, inputs   # the refused try's file was deleted


def test_a_job_that_can_no_longer_be_checked_ends_the_wait_in_one_line(via_env, home):
    """A key revoked while the job runs: every check answers 401, and `await job` polled for
    ever. It now ends with one line that says the job runs on and how to collect it."""
    import time

    job = _submit(["w1", "w2"], "openai:gpt-6-luna")
    control(via_env).inject("retrieve_401", provider="openai", times=None)
    t0 = time.monotonic()
    with pytest.raises(llmcells.ConfigError, match="can't be followed: OpenAI rejected the API key") as err:
        job.wait()
    assert time.monotonic() - t0 < 10 and "keeps running at the provider" in str(err.value)
    assert f"llmcells.job('{job.id}')" in str(err.value) and "\n" not in str(err.value)
    control(via_env).faults.clear()          # the key mended: the same job is collected
    df = llmcells.job(job.id).wait()
    assert set(df.status) == {"ok"} and len(df) == 2


def test_results_that_fail_to_download_once_are_collected_on_the_next_check(via_env, home):
    """A 503 while the results were fetched ended `await job` with the SDK's traceback."""
    control(via_env).inject("results_503", provider="anthropic")
    df = _submit(["d1", "d2", "d3"], "anthropic:claude-haiku-5-5").wait()
    assert set(df.status) == {"ok"} and len(df) == 3
    assert len(_ledger(home)) == 3                      # once each


def test_responses_api_models_go_to_v1_responses(via_env, home):
    job = _submit(["r1", "r2"], "openai-responses:gpt-6-luna")
    df = job.wait()
    assert set(df.status) == {"ok"} and df.text.str.startswith("Simulated answer").all()
    (sim_job,) = control(via_env).jobs.values()
    assert {api for _, _, api in sim_job.requests} == {"responses"}


def test_gemini_file_route_above_the_inline_limit(via_env, home, monkeypatch):
    from llmcells.batchjobs import google_jobs

    monkeypatch.setattr(google_jobs, "INLINE_BYTES", 2_000)     # ~20 MB in real life
    control(via_env).inject("out_of_order", provider="google")
    prompts = [f"f{i} " + "y" * 200 for i in range(12)]
    job = llmcells.run(llmcells.batch(prompts, ["google:gemini-3.5-flash-lite"], via="provider",
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
        live = llmcells.run(llmcells.ask(prompts[3], "google:gemini-3.5-flash-lite", system="Answer briefly.", max_tokens=50,
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


# ----- attachments and schemas ------------------------------------------------------------------


class Person(BaseModel):
    name: str
    age: int


def _png(extra: int = 0) -> bytes:
    """A small PNG of its own size (a different one for each `extra`)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4 + extra, 3), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def _received(sim: Simulator) -> list[tuple[str, dict, str]]:
    """(custom id, request body, api) of every request line the simulator's batch APIs took."""
    return [r for j in control(sim).jobs.values() for r in j.requests]


def _sent_files(provider: str, api: str, body: dict) -> list[dict]:
    """The attachments the simulator found in one request line (with the sha256 of the bytes)."""
    return rich.inspect(provider, api, body).attachments


def _provider_of(api: str) -> str:
    return {"chat": "openai", "responses": "openai", "messages": "anthropic"}.get(api, "google")


RICH_MODELS = [*MODELS, "openai-responses:gpt-6-luna"]


def test_a_schema_on_every_provider_fills_the_field_columns(via_env, home):
    control(via_env).configure(run_s=0.3)
    job = llmcells.run(llmcells.batch(["Who wrote the first program?", "Who was Ada?"], RICH_MODELS,
                                      via="provider", schema=Person, display=False))
    df = job.wait()
    assert len(df) == 8 and set(df.status) == {"ok"}, df.error.tolist()
    assert df["name"].tolist() == ["example name"] * 8 and df["age"].tolist() == [42] * 8
    rows = _ledger(home)
    assert len(rows) == 8 and {r[2] for r in rows} == {"ok"}
    # each line asked for the schema the way the live adapter does
    for _, body, api in _received(via_env):
        if api == "chat":
            fmt = body["response_format"]["json_schema"]
            assert fmt["strict"] is True and fmt["schema"]["additionalProperties"] is False
        elif api == "responses":
            assert body["text"]["format"]["name"] == "Person"
        elif api == "messages":
            assert body["output_config"]["format"]["type"] == "json_schema"
        else:
            config = body["generationConfig"]
            assert config["responseMimeType"] == "application/json"
            assert config["responseJsonSchema"]["properties"]["age"]["type"] == "integer"


def test_an_answer_not_matching_the_schema_then_retry_live_with_repair(via_env, home):
    control(via_env).configure(run_s=0.3)
    via_env.inject("invalid_json", provider="anthropic", times=1)   # one line's JSON is cut
    job = _submit([f"Who is person {i}?" for i in range(3)], "anthropic:claude-haiku-5-5",
                  schema=Person)
    df = job.wait()
    bad = df[df.status != "ok"]
    assert len(bad) == 1 and bad.error_kind.tolist() == ["invalid_output"]
    assert bad.text.iloc[0].startswith('{"name"') and "Person" in bad.error.iloc[0]
    assert bad["age"].isna().all() and (df[df.status == "ok"]["age"] == 42).all()
    assert sorted(r[2] for r in _ledger(home)) == ["error", "ok", "ok"]   # the bad one is paid
    assert via_env.requests == []                                         # no live call yet
    # the live retry breaks once more and is repaired: asked again with the validation error
    via_env.inject("invalid_json", provider="anthropic", times=1)
    df = job.retry_failed(via="live", repair=1)
    assert set(df.status) == {"ok"} and (df["age"] == 42).all() and df["name"].notna().all()
    first, second = via_env.requests
    assert first.body["output_config"]["format"]["type"] == "json_schema"
    assert "does not match the schema" in repr(second.body["messages"][-1])
    assert len(_ledger(home, "processing = 'live'")) == 2
    assert job.to_frame()["age"].tolist() == [42, 42, 42]


def test_repair_with_a_provider_job_is_one_line(via_env, home):
    with pytest.raises(llmcells.ConfigError, match=r"retry_failed\(via='live', repair=1\)"):
        _submit(["q"], "anthropic:claude-haiku-5-5", schema=Person, repair=1)
    job = _submit(["q"], "anthropic:claude-haiku-5-5", schema=Person)
    with pytest.raises(llmcells.ConfigError, match="only via='live'"):
        job.retry_failed(via="provider", repair=1)
    assert len(control(via_env).jobs) == 1
    job.cancel()


def test_attachments_for_every_row_and_from_a_column_reach_the_lines(via_env, home, tmp_path):
    import pandas as pd

    control(via_env).configure(run_s=0.3)
    shared = tmp_path / "chart.png"
    shared.write_bytes(_png())
    question = "What is in the attached image?"
    job = _submit([f"{question} ({i})" for i in range(4)], "openai:gpt-6-luna", attach=shared)
    df = job.wait()
    lines = _received(via_env)
    assert len(lines) == 4
    assert {a["sha256"] for _, body, api in lines for a in _sent_files("openai", api, body)} == \
        {_sha(shared.read_bytes())}
    assert set(df.status) == {"ok"} and df.text.str.contains(f"{shared.stat().st_size} bytes").all()
    with sqlite3.connect(home / "jobs.sqlite") as conn:       # the bytes kept once, not per row
        assert conn.execute("SELECT COUNT(*) FROM attachments WHERE job_id = ?",
                            (job.id,)).fetchone() == (1,)
    with sqlite3.connect(home / "ledger.sqlite") as conn:
        assert set(conn.execute("SELECT attachments, attachment_bytes FROM calls")) == \
            {(1, shared.stat().st_size)}

    control(via_env).reset()
    control(via_env).configure(run_s=0.3)
    images = [_png(i) for i in range(3)]
    frame = pd.DataFrame({"q": [f"{question} Row {i}." for i in range(3)],
                          "img": [(data, "image/png") for data in images]})
    job = llmcells.run(llmcells.batch(frame, MODELS, template="{q}", attach="img", via="provider",
                                      display=False))
    df = job.wait()
    assert len(df) == 9 and set(df.status) == {"ok"}
    for row in df.itertuples():
        assert f"{len(images[row.prompt_id])} bytes" in row.text        # each row its own image
    lines = _received(via_env)
    assert len(lines) == 9
    for _, body, api in lines:
        (sent,) = _sent_files(_provider_of(api), api, body)
        row = int(re.search(r"Row (\d)", json.dumps(body)).group(1))
        assert sent["sha256"] == _sha(images[row]) and sent["media_type"] == "image/png"


def test_attachment_bytes_count_toward_the_split(via_env, home, monkeypatch):
    from llmcells.batchjobs import drivers

    monkeypatch.setitem(drivers.LIMITS, "anthropic", (100_000, 64 * 1024))     # 64 KB a batch
    big = (b"\x89PNG\r\n\x1a\n" + os.urandom(20_000), "image/png")            # ~27 KB in base64
    control(via_env).configure(run_s=0.3)
    control(via_env).inject("expire", provider="anthropic", times=3)         # 1 of 2 lines runs
    job = _submit([f"pic {i}" for i in range(6)], "anthropic:claude-haiku-5-5", attach=big)
    assert [p["requests"] for p in job.parts()] == [2, 2, 2]
    df = job.wait()
    assert (df.status == "expired").sum() == 3
    job.retry_failed(via="provider")                                          # split again
    assert [p["requests"] for p in job.parts()[3:]] == [2, 1]
    assert set(job.wait().status) == {"ok"}
    for sim_job in control(via_env).jobs.values():                            # as sent, under it
        assert len(json.dumps(sim_job.requests)) < 64 * 1024


def test_retry_via_provider_and_the_gemini_file_route_rebuild_attachments_and_schema(
        via_env, home, monkeypatch):
    import pandas as pd

    from llmcells.batchjobs import google_jobs

    monkeypatch.setattr(google_jobs, "INLINE_BYTES", 500)        # every Gemini job a file
    control(via_env).configure(run_s=0.3)
    control(via_env).inject("expire", provider="openai")         # half of OpenAI's lines run
    images = [_png(i) for i in range(4)]
    frame = pd.DataFrame({"q": [f"Who is in picture {i}?" for i in range(4)],
                          "img": [(data, "image/png") for data in images]})
    job = llmcells.run(llmcells.batch(frame, ["openai:gpt-6-luna", "google:gemini-3.5-flash-lite"],
                                      template="{q}", attach="img", schema=Person, via="provider",
                                      display=False))
    df = job.wait()
    assert (df.status == "ok").sum() == 6 and (df.status == "expired").sum() == 2
    expired = set(df[df.status == "expired"].prompt_id)
    (gemini,) = [j for j in control(via_env).jobs.values() if j.provider == "google"]
    assert gemini.meta.get("file_route") and len(gemini.requests) == 4
    job.retry_failed(via="provider")
    df = job.wait()
    assert set(df.status) == {"ok"} and (df["age"] == 42).all() and len(df) == 8
    assert df.img[0] == [f"<{len(images[0])} bytes>", "image/png"]   # the input, not its bytes
    retried = max(control(via_env).jobs.values(), key=lambda j: j.created)
    assert retried.provider == "openai" and len(retried.requests) == 2
    for sim_job in (gemini, retried):
        for _, body, api in sim_job.requests:
            (sent,) = _sent_files(sim_job.provider, api, body)
            row = int(re.search(r"picture (\d)", json.dumps(body)).group(1))
            assert sent["sha256"] == _sha(images[row]) and sent["media_type"] == "image/png"
            if sim_job is retried:                              # rebuilt from the job store
                assert row in expired and body["response_format"]["json_schema"]["name"] == "Person"
            else:
                assert body["generationConfig"]["responseJsonSchema"]["title"] == "Person"


REATTACH = textwrap.dedent("""
    import sys, llmcells
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int

    job = llmcells.run(llmcells.batch(["Who?", "Who else?", "And who?"], ["anthropic:claude-haiku-5-5"],
                                      via="provider", schema=Person, display=False))
    print("SUBMITTED", job.id, flush=True)
""")


@pytest.mark.slow
def test_a_new_process_reattaches_validates_and_adds_the_schema_columns(via_env, home, tmp_path):
    """The job is submitted by a process that had the pydantic class; this one never saw it."""
    control(via_env).configure(run_s=0.3)
    via_env.inject("invalid_json", provider="anthropic", times=1)
    script = tmp_path / "submit.py"
    script.write_text(REATTACH)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         env=_child_env(via_env, home), timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    job_id = out.stdout.split()[1]
    df = llmcells.job(job_id).wait()
    assert {"name", "age"} <= set(df.columns) and df.status.tolist().count("ok") == 2
    bad = df[df.status != "ok"]
    assert bad.error_kind.tolist() == ["invalid_output"] and bad["name"].isna().all()
    assert df[df.status == "ok"]["age"].tolist() == [42, 42]
    assert sorted(r[2] for r in _ledger(home)) == ["error", "ok", "ok"]


class _Failing:
    """A loopback proxy in front of the simulator whose batch endpoints answer 500 the first
    `times` times (a provider's bad minute); everything else goes through."""

    BATCH = re.compile(r"/batches")

    def __init__(self, target: str, times: int) -> None:
        import http.server
        import threading

        import httpx2

        self.left, self.failed, proxy = times, [], self
        upstream = httpx2.Client(base_url=target, timeout=30)

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if proxy.BATCH.search(self.path) and proxy.left > 0:
                    proxy.left -= 1
                    proxy.failed.append(f"{self.command} {self.path}")
                    payload = b'{"error": {"message": "internal error", "type": "server_error", "code": 500}}'
                    self.send_response(500)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                r = upstream.request(self.command, self.path, content=body, headers=headers)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = do_DELETE = _any

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.mark.parametrize("model", MODELS)
def test_a_batch_run_again_while_the_batch_endpoints_answer_500_creates_one_job(via_env, home,
                                                                                monkeypatch, model):
    """The process died between create and persist (its part left in "creating"); the batch is
    run again while the provider's batch endpoints answer 500 three times. The failed lookup is
    an error to try again, not "not found": one job, not two, and its rows are collected."""
    from llmcells.batchjobs import store

    prompts = [f"d{i} {model}" for i in range(4)]
    proxy = _Failing(via_env.url, times=0)
    try:
        for name, value in {"OPENAI_BASE_URL": proxy.url + "/v1", "ANTHROPIC_BASE_URL": proxy.url,
                            "GOOGLE_GEMINI_BASE_URL": proxy.url}.items():
            monkeypatch.setenv(name, value)
        job = _submit(prompts, model)
        job.wait()
        part = job.parts()[0]
        store.update_part(job.id, 0, provider_job_id=None, state="creating", collected=0,
                          created=part["created"] - 3)
        before = len(control(via_env).jobs)
        proxy.left = 3                           # the provider's bad minute starts
        again = _submit(prompts, model)          # the same batch: the same job
        assert again.id == job.id
        df = again.wait()
    finally:
        proxy.close()
    assert proxy.failed, "the proxy was not used"
    assert len(control(via_env).jobs) == before, "the job was created a second time"
    assert set(df.status) == {"ok"} and len(df) == 4
    assert llmcells.job(job.id).parts()[0]["provider_job_id"] == part["provider_job_id"]


def test_an_expired_gemini_job_counts_agree_with_its_rows(via_env, home):
    """Gemini's batchStats of an expired job count requests as done that came back without a
    result; once collected, the job's counts are its rows'."""
    control(via_env).inject("expire", provider="google")
    job = _submit([f"x{i}" for i in range(10)], "google:gemini-3.5-flash-lite")
    df = job.wait()
    status = job.status()
    ok = int((df.status == "ok").sum())
    assert int(status.iloc[0]["done"]) == ok, (status.to_dict("records"), df.status.tolist())
    assert int(status.iloc[0]["failed"]) == len(df) - ok


@pytest.mark.parametrize("model, note", [
    ("anthropic:claude-haiku-5-5", " (batch)"),          # genai-prices has its batch price
    ("anthropic:claude-opus-4-1", ", 50% batch rule"),   # it has none: the standard price halved
])
def test_reprice_of_a_batch_row_gives_the_cost_the_job_recorded(via_env, home, model, note):
    job = _submit([f"r{i} " + "word " * i for i in range(6)], model)
    df = job.wait()
    assert set(df.status) == {"ok"}
    frame = llmcells.usage(model=model)
    frame = frame[frame.processing == "batch"]
    assert len(frame) == 6 and frame.price_source.str.endswith(note).all()
    again = llmcells.reprice(frame)
    assert list(again.cost_usd) == list(frame.cost_usd)
    assert list(again.price_source) == list(frame.price_source)
    assert (frame.cost_usd > 0).all()


def test_reprice_of_a_job_frame_with_failed_rows_keeps_the_recorded_costs(via_env, home):
    """A failed row's response_model is NaN in a pandas-3 frame: reprice() of job.to_frame()
    raised AttributeError ('float' object has no attribute 'strip') when any row had failed."""
    control(via_env).inject("expire", provider="anthropic")      # half the lines never run
    df = _submit([f"x{i}" for i in range(6)], "anthropic:claude-haiku-5-5").wait()
    assert "ok" in set(df.status) and "expired" in set(df.status)
    again = llmcells.reprice(df)
    ok = df.status == "ok"
    assert list(again.cost_usd[ok]) == pytest.approx(list(df.cost_usd[ok]))


def test_max_cost_refuses_a_job_whose_price_is_unknown(via_env, home):
    from llmcells.pricing import PriceWarning

    with pytest.warns(PriceWarning), \
            pytest.raises(llmcells.ConfigError, match="No price is known for openai:gpt-made-up-9") as e:
        _submit([f"u{i}" for i in range(5)], "openai:gpt-made-up-9", max_cost=100.0)
    message = str(e.value)
    assert "nothing was sent" in message and "set_price" in message and "\n" not in message
    assert control(via_env).jobs == {} and control(via_env).files == {}


# ----- Gemini batch answers end as live calls do -----------------------------------------------------


def _gemini_file_line(key, response):
    from llmcells.batchjobs import google_jobs

    return google_jobs._from_file_line({"key": key, "response": response})


def test_a_gemini_batch_line_of_a_blocked_prompt_is_an_error():
    """A blocked prompt has no candidates at all: the row is an error saying so, not an empty ok."""
    item = _gemini_file_line("k1", {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                                    "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
                                    "modelVersion": "gemini-3.5-flash-lite"})
    assert item.status == "error" and item.error_kind == "bad_request"
    assert item.error.startswith("Gemini blocked the prompt (PROHIBITED_CONTENT)")


def test_a_batch_line_the_provider_failed_on_its_side_is_not_a_bad_request():
    """Every failed line was error_kind "bad_request", an Anthropic `api_error` or
    `overloaded_error`, an OpenAI 500 and a Gemini INTERNAL included: a filter on the kind
    said the user's requests were wrong, where retry_failed() may well get them through."""
    import json as _json

    from llmcells.batchjobs.drivers import line_error_kind
    from llmcells.batchjobs.google_jobs import _from_file_line

    assert line_error_kind(api_type="api_error") == "server_error"
    assert line_error_kind(api_type="overloaded_error") == "overloaded"
    assert line_error_kind(api_type="invalid_request_error") == "bad_request"
    assert line_error_kind(status=500) == "server_error" and line_error_kind(status=429) == "rate_limited"
    assert line_error_kind(status=400) == "bad_request"
    item = _from_file_line(_json.loads('{"key": "k", "error": {"code": 13, "message": "Internal error"}}'))
    assert item.status == "error" and item.error_kind == "server_error"
    item = _from_file_line({"key": "k", "error": {"code": 3, "message": "Invalid argument"}})
    assert item.error_kind == "bad_request"


def test_gemini_batch_lines_stopped_short_carry_the_live_calls_note_or_error():
    usage = {"promptTokenCount": 9, "candidatesTokenCount": 0, "totalTokenCount": 9}
    safety = _gemini_file_line("k1", {"candidates": [{"content": {"role": "model"}, "finishReason": "SAFETY"}],
                                      "usageMetadata": usage})
    assert safety.status == "ok" and safety.finish_reason == "SAFETY" and safety.note.startswith("blocked:")
    signature = _gemini_file_line("k2", {"candidates": [{"finishReason": "MISSING_THOUGHT_SIGNATURE"}],
                                         "usageMetadata": usage})
    assert signature.status == "error" and signature.error_kind == "bad_request"
    plain = _gemini_file_line("k3", {"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"},
                                                     "finishReason": "STOP"}], "usageMetadata": usage})
    assert plain.status == "ok" and plain.text == "Hi" and plain.note is None


def test_gemini_inline_batch_answers_end_as_live_calls_do():
    import asyncio
    import types

    from google.genai import types as gt

    from llmcells.batchjobs import google_jobs

    def answer(**fields):
        return gt.InlinedResponse(response=gt.GenerateContentResponse(**fields))

    dest = types.SimpleNamespace(file_name=None, inlined_responses=[
        answer(prompt_feedback=gt.GenerateContentResponsePromptFeedback(block_reason="SAFETY")),
        answer(candidates=[gt.Candidate(finish_reason="UNEXPECTED_TOOL_CALL",
                                        finish_message="Unexpected tool call: lookup")]),
        answer(candidates=[gt.Candidate(content=gt.Content(role="model", parts=[gt.Part(text="Hi")]),
                                        finish_reason="STOP")])])
    status = types.SimpleNamespace(raw=types.SimpleNamespace(dest=dest))
    blocked, unexpected, plain = asyncio.run(google_jobs.results(None, status, ["k1", "k2", "k3"]))
    assert blocked.status == "error" and "blocked the prompt (SAFETY)" in blocked.error
    assert unexpected.status == "ok" and unexpected.note == ("stopped: the model called a tool that was "
                                                             "not declared: Unexpected tool call: lookup")
    assert plain.status == "ok" and plain.text == "Hi" and plain.note is None


def test_a_batch_items_note_reaches_its_result_and_survives_the_store():
    from llmcells.batchjobs import core
    from llmcells.batchjobs.drivers import Item
    from llmcells.models import resolve

    item = Item("k1", "ok", text="", finish_reason="SAFETY", note="blocked: for safety reasons")
    result = core._result(item, {"sample": 0}, resolve("google:gemini-3.5-flash-lite"), "b1", "c1", 0.0, 1.0)
    assert result.ok and result.notes == ["blocked: for safety reasons"]
    restored = core._restore(json.loads(json.dumps(core._fields(result))),
                             {"model": "google:gemini-3.5-flash-lite", "sample": 0})
    assert restored.notes == ["blocked: for safety reasons"]
