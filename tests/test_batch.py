"""Batch runs on the simulator: faults, rate limits, resume after an interrupt, cache, budget."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import pandas as pd
import pytest

import llmcells
from llmcells import batches as batch_module
from llmcells.config import settings
from llmcells.errors import ConfigError
from llmcells.pricing import clear_prices, set_price

MODELS = ["chatgpt", "claude", "gemini"]


def run_batch(*args, **kwargs):
    kwargs.setdefault("display", False)
    return llmcells.run(llmcells.batch(*args, **kwargs))


@pytest.mark.slow
def test_thousand_calls_with_injected_faults_lose_no_rows(simulated, roomy_quotas):
    settings.update(retry_initial_wait=0.01, retry_max_wait=0.5, max_attempts=8)
    simulated.configure(ttft=0.0, tokens_per_s=100000, output_tokens=8)
    simulated.inject("429", times=40, retry_after=0.05)
    simulated.inject("500", times=40)
    simulated.inject("529", times=20)
    prompts = [f"question {i}" for i in range(334)]
    frame = run_batch(prompts, MODELS, concurrency=64)
    assert len(frame) == 334 * 3
    assert set(zip(frame.prompt_id, frame.model)) == {(i, m) for i in range(334) for m in
                                                       ["openai:gpt-6-luna", "anthropic:claude-haiku-5-5",
                                                        "google:gemini-3.5-flash-lite"]}
    # Faults land on whichever requests come next, so a call may meet several in a row: it is ok
    # after its retries, or an error once it has used every attempt on faults, nothing else.
    ok, failed = frame[frame.status == "ok"], frame[frame.status != "ok"]
    assert len(ok) >= 990
    assert set(failed.status) <= {"error"} and (failed.attempts == 8).all(), \
        failed[["model", "attempts", "error_kind", "error", "latency_s"]].to_string()
    assert set(failed.error_kind) <= {"rate_limited", "server_error", "overloaded"}
    faults = Counter(q.fault for q in simulated.requests if q.fault)
    assert faults == {"429": 40, "500": 40, "529": 20}
    # every fault cost exactly one attempt: retried where it could be, recorded where not
    assert (ok.attempts - 1).sum() + failed.attempts.sum() == 100
    assert len(simulated.requests) == frame.attempts.sum()
    ledger = llmcells.usage(batch_id=frame.attrs["batch_id"])
    assert len(ledger) == 1002 and set(ledger.call_id) == set(frame.call_id)
    assert (ledger.set_index("call_id").loc[frame.call_id, "status"].values == frame.status.values).all()


def test_failures_are_rows_and_never_abort(simulated):
    simulated.inject("401", provider="anthropic", times=None)
    frame = run_batch(["a", "b"], MODELS)
    by_model = frame.groupby("model")["status"].agg(set).to_dict()
    assert by_model == {"openai:gpt-6-luna": {"ok"}, "anthropic:claude-haiku-5-5": {"error"},
                        "google:gemini-3.5-flash-lite": {"ok"}}
    assert set(frame[frame.status == "error"].error_kind) == {"authentication"}


def test_per_provider_request_limit_is_respected(simulated):
    simulated.configure(ttft=0.0, tokens_per_s=100000, output_tokens=5)
    frame = run_batch([f"p{i}" for i in range(30)], ["chatgpt", "claude"], concurrency=32,
                      limits={"openai": {"rps": 10}})
    assert frame.status.eq("ok").all()
    starts = sorted(q.time for q in simulated.requests if q.provider == "openai")
    assert len(starts) == 30
    worst = max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts)
    assert worst <= 10, f"{worst} openai requests within one second"
    assert starts[-1] - starts[0] >= 1.9  # 30 requests at 10/s take two seconds at least
    anthropic = sorted(q.time for q in simulated.requests if q.provider == "anthropic")
    assert anthropic[-1] - anthropic[0] < 1.0  # the other provider was not held back


def test_a_paced_calls_latency_and_ttft_leave_out_its_wait_in_the_gate(simulated):
    """A call held back by its provider's rate limit read as slow: its latency and TTFT counted
    the seconds it queued (59 s for the calls of a 56-call batch at Anthropic's 50 a minute),
    and costs()' latency percentiles with them."""
    simulated.configure(ttft=0.05, tokens_per_s=2000, output_tokens=5)
    frame = run_batch([f"p{i}" for i in range(8)], ["chatgpt"], concurrency=8,
                      limits={"openai": {"rps": 2}})
    assert frame.status.eq("ok").all()
    starts = sorted(q.time for q in simulated.requests if q.provider == "openai")
    assert starts[-1] - starts[0] >= 2.5  # paced: 8 requests at 2 a second
    assert frame.latency_s.max() < 1.5 and frame.ttft_s.max() < 1.2, frame[["latency_s", "ttft_s"]]


def test_adaptive_backoff_slows_down_on_429(simulated):
    settings.update(retry_initial_wait=0.01, retry_max_wait=1.0, max_attempts=8)
    simulated.configure(ttft=0.0, tokens_per_s=100000, output_tokens=5)
    simulated.inject("429", provider="openai", times=10, retry_after=0.3)
    frame = run_batch([f"p{i}" for i in range(40)], ["chatgpt"], concurrency=16)
    assert frame.status.eq("ok").all()


def _interrupt_after(sim, n: int) -> None:
    """A Ctrl-C (SIGINT) once the simulator has received n more requests: with 4 in flight, at
    least n - 4 calls have ended by then (a timer raced the SDK's and pandas' first imports)."""
    start = len(sim.requests)

    def watch() -> None:
        while len(sim.requests) < start + n:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()


def test_interrupted_batch_resumes_with_exactly_the_missing_calls(simulated):
    simulated.configure(ttft=0.15, tokens_per_s=2000, output_tokens=5)
    prompts = [f"item {i}" for i in range(40)]
    _interrupt_after(simulated, 8)
    with pytest.raises(KeyboardInterrupt):
        run_batch(prompts, ["claude"], concurrency=4, batch_id="resume-me")
    partial = batch_module.last_frame
    done_first = int((partial.status == "ok").sum())
    assert 0 < done_first < 40
    assert set(partial.status) <= {"ok", "cancelled", "not run"}
    simulated.configure(ttft=0.0)
    before = len(simulated.requests)
    frame = run_batch(prompts, ["claude"], concurrency=4, batch_id="resume-me")
    made = len(simulated.requests) - before
    assert made == 40 - done_first
    assert frame.status.eq("ok").all() and len(frame) == 40
    assert int(frame.resumed.sum()) == done_first
    # the same prompts, texts and all, as if never interrupted
    assert frame.prompt.tolist() == prompts
    assert (frame.text.str.len() > 0).all()


def test_the_same_batch_run_again_after_an_interrupt_resumes_without_being_told(simulated):
    """docs/batches.md: "Interrupted? Run the same cell again: only the missing calls are made."
    With neither batch_id nor resume=True, the re-run made every call anew (billed twice). A batch
    run to its end is made anew when run again, as before."""
    simulated.configure(ttft=0.15, tokens_per_s=2000, output_tokens=5)
    prompts = [f"again {i}" for i in range(40)]
    _interrupt_after(simulated, 8)
    with pytest.raises(KeyboardInterrupt):
        run_batch(prompts, ["chatgpt"], concurrency=4)
    done_first = int((batch_module.last_frame.status == "ok").sum())
    assert 0 < done_first < 40
    simulated.configure(ttft=0.0)
    before = len(simulated.requests)
    frame = run_batch(prompts, ["chatgpt"], concurrency=4)
    assert len(simulated.requests) - before == 40 - done_first
    assert frame.status.eq("ok").all() and int(frame.resumed.sum()) == done_first
    before = len(simulated.requests)
    assert not run_batch(prompts, ["chatgpt"], concurrency=4).resumed.any()  # finished: anew
    assert len(simulated.requests) - before == 40


def test_resume_true_finds_the_batch_by_its_contents(simulated):
    simulated.inject("500", provider="google", times=None)
    settings.update(retry_initial_wait=0.01, retry_max_wait=0.1, max_attempts=2)
    first = run_batch(["x", "y"], ["claude", "gemini"])
    assert Counter(first.status) == {"ok": 2, "error": 2}
    simulated.clear_faults()
    before = len(simulated.requests)
    again = run_batch(["x", "y"], ["claude", "gemini"], resume=True)
    assert len(simulated.requests) - before == 2  # only the failed ones
    assert again.status.eq("ok").all() and again.attrs["batch_id"] == first.attrs["batch_id"]


#: a model that takes a temperature (the default Claude doesn't: see data/models.toml)
SAMPLED = "google:gemini-3.1-flash-lite"


def test_cache_answers_identical_requests_and_keeps_samples_independent(simulated):
    prompts = ["p1", "p2"]
    # (a model that takes a temperature: the samples differ)
    first = run_batch(prompts, [SAMPLED], repeat=3, temperature=1.0, cache=True)
    assert len(simulated.requests) == 6 and not first.cached.any()
    for _, group in first.groupby("prompt_id"):
        assert group.text.nunique() == 3  # different samples differ
    second = run_batch(prompts, [SAMPLED], repeat=3, temperature=1.0, cache=True)
    assert len(simulated.requests) == 6  # nothing sent
    assert second.cached.all() and (second.cost_usd == 0).all()
    assert second.text.tolist() == first.text.tolist()
    cached_rows = llmcells.usage(batch_id=second.attrs["batch_id"])
    assert cached_rows.cached.sum() == 6
    # a fourth sample is a new request
    third = run_batch(prompts, [SAMPLED], repeat=4, temperature=1.0, cache=True)
    assert len(simulated.requests) == 8 and third.cached.sum() == 6


def test_cache_is_off_unless_asked(simulated):
    run_batch(["same"], ["claude"])
    run_batch(["same"], ["claude"])
    assert len(simulated.requests) == 2


def test_max_cost_stops_launching_in_time(simulated):
    clear_prices()
    set_price("openai:pricey", input=0.0, output=10_000.0)  # $0.01 per output token
    try:
        simulated.configure(ttft=0.05, tokens_per_s=2000, output_tokens=10)
        frame = run_batch([f"p{i}" for i in range(50)], ["openai:pricey"], concurrency=4,
                          max_tokens=10, max_cost=1.0)
    finally:
        clear_prices()
    spent = frame.cost_usd.fillna(0).sum()
    assert spent <= 1.0 + 1e-9
    assert spent >= 0.6  # it did not stop far too early
    assert (frame.status == "skipped").sum() > 0 and frame.attrs["stopped"].startswith("budget")
    assert len(simulated.requests) == int((frame.status == "ok").sum())


def test_a_batch_that_sends_nothing_has_the_columns_of_one_that_did(simulated):
    """A budget too small for the first call: every row is skipped, and the frame still has the
    answer's columns (text, tokens, cost, latency...) in the usual order, NaN, so code written
    for a batch that ran (frame.cost_usd.sum(), frame[["text", ...]]) works on it too."""
    full = run_batch(["p0"], ["chatgpt"])
    frame = run_batch([f"p{i}" for i in range(3)], ["chatgpt"], max_cost=0.0)
    assert set(frame.status) == {"skipped"} and frame.attrs["stopped"].startswith("budget")
    assert list(frame.columns) == list(full.columns)
    assert frame.cost_usd.sum() == 0 and frame.text.isna().all() and frame.input_tokens.isna().all()
    assert frame.model.tolist() == ["openai:gpt-6-luna"] * 3 and frame["sample"].tolist() == [0, 0, 0]


def test_max_cost_with_an_unpriced_model_sends_nothing(simulated):
    # an unknown price (NaN) would drop out of the spent sum and let the batch spend without
    # limit; as with provider jobs, the batch is refused before anything is sent
    clear_prices()
    with pytest.warns(llmcells.pricing.PriceWarning):
        with pytest.raises(ConfigError, match="max_cost"):
            run_batch(["p1", "p2", "p3"], ["openai:unpriced-model-for-max-cost"], max_cost=0.01)
    assert len(simulated.requests) == 0
    set_price("openai:unpriced-model-for-max-cost", input=1.0, output=1.0)
    try:
        frame = run_batch(["p1"], ["openai:unpriced-model-for-max-cost"], max_cost=1.0)
    finally:
        clear_prices()
    assert frame.status.tolist() == ["ok"]


def test_dataframe_with_template_keeps_the_input_columns(simulated):
    df = pd.DataFrame({"city": ["Lyon", "Oslo"], "n": [2, 3]}, index=["a", "b"])
    frame = run_batch(df, ["claude", "gemini"], template="Give {n} facts about {city}.")
    assert len(frame) == 4
    assert frame.prompt_id.tolist() == ["a", "a", "b", "b"]
    assert frame.city.tolist() == ["Lyon", "Lyon", "Oslo", "Oslo"]
    assert frame.prompt.iloc[0] == "Give 2 facts about Lyon."
    assert {"text", "status", "input_tokens", "output_tokens", "cost_usd", "latency_s", "ttft_s"} <= set(frame.columns)


def test_an_input_column_named_like_an_answer_column_is_kept_beside_it(simulated):
    """A DataFrame column named like a column of the answer (text, model, status, error,
    prompt, prompt_id...) is kept as input_<name>, not overwritten by the answer's value; a
    scorer's row still reads it under its own name."""
    df = pd.DataFrame({"text": ["Cats sleep.", "Rain is wet."], "model": ["m1", "m2"],
                       "prompt": ["P1", "P2"], "prompt_id": [7, 8]}, index=["a", "b"])
    seen = []

    def saw(result, row):
        seen.append((row["text"], row["model"]))
        return 1.0

    frame = run_batch(df, ["claude"], template="Summarise: {text} ({prompt})", score=saw)
    assert frame.input_text.tolist() == ["Cats sleep.", "Rain is wet."]
    assert frame.input_model.tolist() == ["m1", "m2"]
    assert frame.input_prompt.tolist() == ["P1", "P2"]
    assert frame.input_prompt_id.tolist() == [7, 8]
    assert frame.prompt_id.tolist() == ["a", "b"]
    assert frame.prompt.tolist() == ["Summarise: Cats sleep. (P1)", "Summarise: Rain is wet. (P2)"]
    assert frame.text.str.startswith("Simulated answer").all()
    assert set(frame.model) == {"anthropic:claude-haiku-5-5"}
    assert sorted(seen) == [("Cats sleep.", "m1"), ("Rain is wet.", "m2")]


def test_series_and_bad_input(simulated):
    frame = run_batch(pd.Series(["a", "b"], index=[10, 20]), "claude")
    assert frame.prompt_id.tolist() == [10, 20]
    with pytest.raises(llmcells.ConfigError, match="template"):
        llmcells.batch(pd.DataFrame({"x": [1]}), ["claude"])
    with pytest.raises(llmcells.ConfigError, match="concurrency"):
        llmcells.batch(["a"], ["claude"], concurrency=0)
    with pytest.raises(llmcells.ConfigError, match="not text"):
        llmcells.batch(["a", 3], ["claude"])


def test_compare_repeat_uses_the_cache_with_sample_indices(simulated):
    c1 = llmcells.run(llmcells.compare("q", [SAMPLED], repeat=2, temperature=1, cache=True, display=False))
    c2 = llmcells.run(llmcells.compare("q", [SAMPLED], repeat=2, temperature=1, cache=True, display=False))
    assert [r.text for r in c1] == [r.text for r in c2] and c1[0].text != c1[1].text
    assert all(r.cached for r in c2) and len(simulated.requests) == 2


def test_an_alias_and_its_id_are_one_model(simulated):
    frame = run_batch(["a"], ["claude", "anthropic:claude-haiku-5-5"])
    assert frame.model.tolist() == ["anthropic:claude-haiku-5-5"] and len(simulated.requests) == 1


def test_terminal_progress_says_what_was_done(simulated, capsys):
    simulated.inject("401", provider="anthropic", times=None)
    frame = run_batch(["a", "b"], ["chatgpt", "claude"], display="text", batch_id="shown")
    err = capsys.readouterr().err
    assert "batch shown: 4/4 done · 2 failed · 0 in flight" in err and "calls/s" in err
    assert len(frame) == 4


def test_notebook_progress_widget_ends_with_the_totals(simulated, monkeypatch):
    from llmcells.display import progress

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, *a, **k: shown.append(obj))
    bars = []
    real = progress.NotebookProgress

    def spy(total, batch_id):
        bar = real(total, batch_id)
        bars.append(bar)
        return bar

    monkeypatch.setattr(progress, "NotebookProgress", spy)
    run_batch(["a", "b", "c"], ["claude"], display="notebook", batch_id="nb")
    (bar,) = bars
    assert shown[0] is bar.box and shown[1]["text/plain"].startswith("batch nb: ")  # its copy
    assert "3/3 done · 0 failed" in bar.box.static_bundle()["text/plain"]
    assert bar.bar.value == 3 and bar.bar.bar_style == "success"
    assert "3/3 done · 0 failed" in bar.label.value


def _refused_unsent(sim, prompts, **options) -> str:
    """The ConfigError line of a batch refused before sending (checked: no request reached sim)."""
    before = len(sim.requests)
    with pytest.raises(ConfigError) as err:
        llmcells.batch(prompts, "chatgpt", **options)
    assert len(sim.requests) == before
    return str(err.value)


def test_a_template_naming_a_missing_column_is_refused_before_anything_is_sent(fresh_sim):
    import pandas as pd

    frame = pd.DataFrame({"text": ["a", "b"], "lang": ["fr", "de"]})
    message = _refused_unsent(fresh_sim, frame, template="Summarise in {lang}: {txt}")
    assert "{txt}, which is not a column (did you mean {text}?)" in message, message
    assert "the columns are: text, lang" in message and "Nothing was sent" in message
    with pytest.raises(ConfigError, match=r"\{item\}, which is not a name"):
        llmcells.batch(["a"], "chatgpt", template="Translate: {item}")
    # escaped braces are not references
    rows = batch_module._prompt_rows(frame, '{{"text": "{text}"}}')
    assert [prompt for _, prompt, _ in rows] == ['{"text": "a"}', '{"text": "b"}']


def test_a_template_column_missing_in_some_rows_is_refused_before_anything_is_sent(fresh_sim):
    """A NaN or None under a template's column was sent as the word "nan" ("Sentiment of: nan"),
    and paid for. The batch is now refused, naming the column and the rows, with nothing sent;
    a column the template doesn't read may hold anything."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"review": ["great", None, np.nan, "fine"], "note": [None] * 4},
                         index=["a", "b", "c", "d"])
    message = _refused_unsent(fresh_sim, frame, template="Sentiment of: {review}")
    assert "{review}, which is missing (NaN or None) in 2 rows (index 'b', 'c')" in message, message
    assert "df.dropna(subset=['review'])" in message and "Nothing was sent" in message
    rows = batch_module._prompt_rows(frame.fillna({"review": ""}), "Sentiment of: {review}")
    assert [prompt for _, prompt, _ in rows][1:3] == ["Sentiment of: ", "Sentiment of: "]


def test_a_gate_keeps_window_entries_only_for_the_limits_it_has():
    """A gate without a per-minute, per-second or token limit keeps no window entries (nothing
    prunes them: a batch's gate would hold one per request); with rpm only, only the minute."""
    import asyncio

    from llmcells.batchrun import ProviderGate, RateLimit
    from llmcells.calls import make_plan

    plans = [make_plan(f"hi {i}", "openai:gpt-6-luna") for i in range(20)]

    async def go(gate):
        for plan in plans:
            await gate.acquire(plan)
            gate.release(plan, None)
        return gate

    free = asyncio.run(go(ProviderGate(RateLimit(), 4)))
    assert (free.minute.entries, free.second.entries, free.tokens.entries) == ([], [], [])
    per_minute = asyncio.run(go(ProviderGate(RateLimit(rpm=10_000), 4)))
    assert len(per_minute.minute.entries) == 20
    assert (per_minute.second.entries, per_minute.tokens.entries) == ([], [])


def test_a_batch_frame_is_what_from_records_makes_of_its_rows():
    """The frame built from rows kept as tuples is the frame of the rows as dicts: the columns
    in the order first seen (a score column that only a later row has too), NaN where a row
    lacks one, the same dtypes; and rows not run say so."""
    import math

    from llmcells.batchrun import Job, Tally, _frame
    from llmcells.calls import make_plan
    from llmcells.types import Result, Usage

    jobs = []
    for i in range(6):
        plan = make_plan(f"p{i}", "openai:gpt-6-luna")
        result = None
        if i != 2:
            result = Result(text=f"t{i}", model=plan.spec.id, provider="openai",
                            usage=Usage(3, 0, 0, 5), cost_usd=math.nan if i == 1 else 0.5,
                            latency_s=None if i == 3 else 1.0, ttft_s=0.1,
                            status="error" if i == 4 else "ok", error="boom" if i == 4 else None)
            if i == 5:
                result.scores["exact"] = 1.0
                result.score_notes["exact"] = "ok"
        inputs = {"prompt_id": i, "prompt": f"p{i}", **({"extra": True} if i == 3 else {})}
        jobs.append(Job(i, plan, f"k{i}", inputs, result, resumed=i == 0))
    tally = Tally(total=6)
    rows = []
    for job in jobs:
        row = dict(job.inputs)
        if job.result is not None:
            row.update({k: v for k, v in job.result.to_row().items() if k != "group_id"})
        else:
            row.update(model=job.plan.spec.id, provider="openai", sample=0, status="not run",
                       error_kind="interrupted",
                       error="Not run: the batch was interrupted; resume it.")
        rows.append({**row, "resumed": job.resumed, "batch_id": "b1"})
    frame = _frame(jobs, "b1", tally)
    pd.testing.assert_frame_equal(frame, pd.DataFrame.from_records(rows))
    assert list(frame.columns[-3:]) == ["extra", "score_exact", "score_notes"]
    assert math.isnan(frame.loc[0, "score_exact"]) and frame.loc[5, "score_exact"] == 1.0
    assert frame.attrs == {"batch_id": "b1", "stopped": None}
