"""ask / compare through the real SDKs against the simulator: results, retries, timeouts,
faults, cancellation, and the private loop's interrupt handling."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time

import pytest

import llmcells
from llmcells import _loop, api
from llmcells.config import settings

MODELS = ["chatgpt", "claude", "gemini"]


def _fast_retries():
    settings.update(retry_initial_wait=0.01, retry_max_wait=2.0)


def test_base_url_env_vars_are_honoured(fresh_sim, monkeypatch):
    for name, value in fresh_sim.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-000000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-000000")
    monkeypatch.setenv("GOOGLE_API_KEY", "AIzaTest000000000000")
    comparison = llmcells.run(llmcells.compare("hi", models=MODELS, display=False))
    assert [r.status for r in comparison] == ["ok", "ok", "ok"], [r.error for r in comparison]
    providers = [r.provider for r in comparison]
    assert providers == ["openai", "anthropic", "google"]
    for r in comparison:
        assert r.text.strip() and r.usage.output_tokens > 0 and r.usage.input_tokens > 0
        assert r.response_model and r.response_model in r.model
        assert not r.simulated  # reached by base URL, not by llmcells.simulate()
    seen = {(q.provider, q.model) for q in fresh_sim.requests}
    assert seen == {("openai", "gpt-6-luna"), ("anthropic", "claude-haiku-5-5"),
                    ("google", "gemini-3.5-flash-lite")}


def test_text_and_usage_match_what_the_server_sent(simulated):
    simulated.set_model("gpt-6-luna", text="Alpha beta gamma delta.")
    r = llmcells.run(llmcells.ask("hello there", "chatgpt", display=False))
    assert r.ok and r.text == "Alpha beta gamma delta."
    assert r.usage.output_tokens >= 4 and r.simulated
    assert r.latency_s >= r.ttft_s > 0 and r.attempts == 1


def test_three_one_second_streams_take_about_one_second(simulated):
    for model in ("gpt-6-luna", "claude-haiku-5-5", "gemini-3.5-flash-lite"):
        simulated.set_model(model, ttft=0.2, tokens_per_s=50, output_tokens=40)  # 0.2 + 0.8 s
    t0 = time.monotonic()
    comparison = llmcells.run(llmcells.compare("hi", MODELS, display=False))
    wall = time.monotonic() - t0
    assert all(r.ok for r in comparison)
    slowest = max(r.latency_s for r in comparison)
    assert slowest >= 0.9
    assert wall < slowest + 0.6, f"wall {wall:.2f}s vs slowest {slowest:.2f}s: not concurrent"


@pytest.mark.parametrize("model", MODELS + ["openai-responses:gpt-6-luna"])
def test_rate_limit_is_retried_honouring_retry_after(simulated, model):
    _fast_retries()
    spec = llmcells.models.resolve(model)
    simulated.inject("429", provider=spec.provider, retry_after=0.3)
    r = llmcells.run(llmcells.ask("hi", model, display=False))
    assert r.ok, r.error
    assert r.attempts == 2
    times = [q.time for q in simulated.requests]
    assert len(times) == 2 and times[1] - times[0] >= 0.28


@pytest.mark.parametrize("fault,kind", [("500", "server_error"), ("529", "overloaded"), ("drop", "connection")])
@pytest.mark.parametrize("model", MODELS)
def test_transient_faults_are_retried(simulated, model, fault, kind):
    _fast_retries()
    spec = llmcells.models.resolve(model)
    simulated.inject(fault, provider=spec.provider, times=1)
    r = llmcells.run(llmcells.ask("hi", model, display=False))
    assert r.ok and r.attempts == 2, (r.status, r.error_kind, r.error)
    # and when it never recovers, the error says what it was
    simulated.inject(fault, provider=spec.provider, times=None)
    r = llmcells.run(llmcells.ask("hi", model, display=False))
    assert (r.status, r.error_kind, r.attempts) == ("error", kind, settings.max_attempts)
    assert "\n" not in r.error


@pytest.mark.parametrize("fault,kind", [("401", "authentication"), ("404", "model_not_found"),
                                        ("400", "bad_request")])
@pytest.mark.parametrize("model", MODELS + ["openai-responses:gpt-6-luna"])
def test_client_errors_are_not_retried(simulated, model, fault, kind):
    spec = llmcells.models.resolve(model)
    simulated.inject(fault, provider=spec.provider)
    r = llmcells.run(llmcells.ask("hi", model, display=False))
    assert (r.status, r.error_kind, r.attempts) == ("error", kind, 1), r.error
    assert len(simulated.requests) == 1
    assert "\n" not in r.error and len(r.error) < 300


@pytest.mark.parametrize("typo, meant", [("openai:gpt-6-lune", "gpt-6-luna"),
                                         ("anthropic:claude-haiku-5-6", "claude-haiku-5-5"),
                                         ("google:gemini-3.5-flsh-lite", "gemini-3.5-flash-lite")])
def test_a_404_for_a_mistyped_model_names_the_model_it_is_close_to(simulated, typo, meant):
    """The provider's 404 said only "Unknown model 'gpt-6-lune' ... check the name"; it now names
    the known model (never a shut-down one) the name is a slip of, and nothing close, nothing."""
    simulated.inject("404", provider=llmcells.models.resolve(typo).provider)
    r = llmcells.run(llmcells.ask("hi", typo, display=False))
    assert r.error_kind == "model_not_found" and f"(did you mean {meant}?)" in r.error, r.error
    simulated.inject("404", provider="openai")
    r = llmcells.run(llmcells.ask("hi", "openai:totally-new-thing", display=False))
    assert r.error_kind == "model_not_found" and "did you mean" not in r.error, r.error


@pytest.mark.parametrize("model", ["chatgpt", "claude", "gemini"])
def test_a_404_for_a_model_llmcells_knows_keeps_the_providers_sentence(simulated, model):
    """A 404 for the default model itself (a key whose project may not use it) read "Unknown
    model 'gpt-6-luna' ... (did you mean gpt-5.6-luna?)": advice to use another model, with the
    provider's own sentence ("... or you do not have access to it") dropped."""
    spec = llmcells.models.resolve(model)
    simulated.inject("404", provider=spec.provider)
    r = llmcells.run(llmcells.ask("hi", model, display=False))
    assert r.error_kind == "model_not_found" and "did you mean" not in r.error, r.error
    assert r.error.startswith(f"{spec.label} did not find {spec.name}, a model llmcells knows: "
                              "check that your key's project may use it.")
    assert f"said: " in r.error and spec.name in r.error.partition("said: ")[2]  # the provider's words


@pytest.mark.parametrize("model", MODELS + ["openai-responses:gpt-6-luna"])
def test_mid_stream_error_keeps_partial_text_and_is_not_resent(simulated, model):
    _fast_retries()
    spec = llmcells.models.resolve(model)
    simulated.inject("midstream_error", provider=spec.provider, after_tokens=3)
    r = llmcells.run(llmcells.ask("hi", model, display=False))
    assert r.status == "error" and r.text, (r.status, r.error)
    assert r.attempts == 1 and len(simulated.requests) == 1


@pytest.mark.parametrize("fault", ["cut", "cut_mid_event"])
@pytest.mark.parametrize("model", MODELS + ["openai-responses:gpt-6-luna"])
def test_cut_stream_is_incomplete_with_partial_text(simulated, model, fault):
    spec = llmcells.models.resolve(model)
    simulated.inject(fault, provider=spec.provider, after_tokens=4)
    r = llmcells.run(llmcells.ask("hi", model, display=False))
    assert r.status == "incomplete", (r.status, r.error_kind, r.error)
    assert r.text and r.attempts == 1 and "partial" in r.error


@pytest.mark.parametrize("model", MODELS)
def test_slow_first_token_times_out(simulated, model):
    settings.update(ttft_timeout=0.5)
    spec = llmcells.models.resolve(model)
    simulated.inject("slow_first_token", provider=spec.provider, delay=5)
    t0 = time.monotonic()
    r = llmcells.run(llmcells.ask("hi", model, display=False))
    assert (r.status, r.error_kind) == ("error", "timeout")
    assert time.monotonic() - t0 < 2.0
    assert "ttft_timeout" in r.error


def test_total_timeout(simulated):
    simulated.set_model("gpt-6-luna", ttft=0.05, tokens_per_s=20, output_tokens=100)
    r = llmcells.run(llmcells.ask("hi", "chatgpt", timeout=0.5, display=False))
    assert (r.status, r.error_kind) == ("error", "timeout") and r.text  # partial text kept


def test_connection_refused_is_one_clear_line():
    _fast_retries()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llmcells.add_endpoint("nowhere", f"http://127.0.0.1:{port}/v1")
    r = llmcells.run(llmcells.ask("hi", "nowhere:some-model", display=False))
    assert (r.status, r.error_kind) == ("error", "connection")
    assert r.attempts == settings.max_attempts and "\n" not in r.error


def test_missing_key_sends_nothing_and_others_carry_on(fresh_sim, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", fresh_sim.url + "/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fresh_sim.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-000000")
    comparison = llmcells.run(llmcells.compare("hi", ["chatgpt", "claude"], display=False))
    ok, missing = comparison.results
    assert ok.ok
    assert (missing.status, missing.error_kind) == ("error", "missing_key")
    assert "ANTHROPIC_API_KEY" in missing.error
    assert {q.provider for q in fresh_sim.requests} == {"openai"}


@pytest.mark.parametrize("name, meant", [
    ("claude-haiku-5-5", "anthropic:claude-haiku-5-5"), ("gemini-3.5-flash-lite", "google:gemini-3.5-flash-lite"),
    ("gpt-6-luna", "openai:gpt-6-luna"), ("o3-mini", "openai:o3-mini"), ("chatgtp", "chatgpt"),
    ("claud", "claude"),
])
def test_a_model_named_without_its_provider_is_shown_the_id_it_likely_meant(name, meant):
    with pytest.raises(llmcells.ConfigError, match=f"Unknown model '{name}'. Did you mean {meant}[?]"):
        llmcells.ask("hi", name)


def test_a_retired_model_named_without_its_provider_is_told_it_is_retired_and_what_to_use():
    # not "Did you mean google:gemini-2.5-flash?", which only leads to the retirement line
    with pytest.raises(llmcells.ConfigError) as info:
        llmcells.ask("hi", "gemini-2.5-flash")
    assert str(info.value) == ("Unknown model 'gemini-2.5-flash': google:gemini-2.5-flash was retired "
                               "on 2026-12-01; use google:gemini-3.5-flash-lite.")


@pytest.mark.parametrize("name", ["us.anthropic.claude-opus-4-1-20250805-v1:0",
                                  "global.anthropic.claude-haiku-5-5",
                                  "anthropic.claude-haiku-5-5"])
def test_a_bedrock_model_id_without_its_route_is_shown_the_bedrock_id(name):
    # a Bedrock id's version suffix has a colon, so it used to read as an unknown provider
    with pytest.raises(llmcells.ConfigError, match=f"Did you mean bedrock:{name}[?]"):
        llmcells.ask("hi", name)


def test_an_unknown_model_of_no_known_family_gets_no_guess():
    with pytest.raises(llmcells.ConfigError) as info:
        llmcells.ask("hi", "llama3.2")
    assert "Did you mean" not in str(info.value) and "provider:model" in str(info.value)


def test_unknown_model_is_a_config_error_before_anything_is_sent():
    with pytest.raises(llmcells.ConfigError, match="Unknown model 'chatgtp'"):
        llmcells.ask("hi", "chatgtp")
    with pytest.raises(llmcells.ConfigError, match="Unknown provider"):
        llmcells.compare("hi", ["chatgpt", "openia:gpt-4o"])
    with pytest.raises(llmcells.ConfigError, match="temperature"):
        llmcells.ask("hi", "claude", temperature=3)
    with pytest.raises(llmcells.ConfigError, match="empty"):
        llmcells.ask("  ", "claude")


def test_one_failing_model_does_not_stop_the_others(simulated):
    simulated.inject("404", provider="anthropic")
    comparison = llmcells.run(llmcells.compare("hi", MODELS, display=False))
    assert [r.status for r in comparison] == ["ok", "error", "ok"]
    assert comparison["claude"].error_kind == "model_not_found"
    assert comparison.to_frame()["status"].tolist() == ["ok", "error", "ok"]


def test_await_from_another_running_loop(simulated):
    async def main():
        r = await llmcells.ask("hi", "claude", display=False)
        c = await llmcells.compare("hi", MODELS, display=False)
        return r, c

    r, c = asyncio.run(main())
    assert r.ok and all(x.ok for x in c)


def test_cancelling_the_await_cancels_the_requests(simulated):
    simulated.inject("slow_first_token", times=None, delay=10)

    async def main():
        task = asyncio.ensure_future(llmcells.compare("hi", MODELS, display=False))
        await asyncio.sleep(0.5)
        task.cancel()
        t0 = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - t0

    took = asyncio.run(main())
    assert took < 1.0
    assert _pending_tasks() == 0
    assert [r.status for r in api.last] == ["cancelled"] * 3


def _pending_tasks() -> int:
    _loop.get_loop()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        n = _loop.submit(_count_tasks()).result()
        if n == 0:
            return 0
        time.sleep(0.05)
    return n


async def _count_tasks() -> int:
    me = asyncio.current_task()
    return len([t for t in asyncio.all_tasks() if t is not me])


def test_ctrl_c_in_run_cancels_within_half_a_second(simulated):
    simulated.inject("slow_first_token", times=None, delay=10)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt, match="interrupted"):
        llmcells.run(llmcells.compare("hi", MODELS, display=False))
    took = time.monotonic() - t0 - 0.5
    assert took < 0.6, f"run() took {took:.2f}s to stop after Ctrl-C"
    assert _pending_tasks() == 0
    assert [r.status for r in api.last] == ["cancelled"] * 3
    # the loop is still usable
    simulated.clear_faults()
    assert llmcells.run(llmcells.ask("again", "claude", display=False)).ok


class _InterruptedWhileOpening:
    """The front end, with a Ctrl-C that lands while a call's display opens (the first one in a
    kernel imports the widgets, long enough for a user to press stop)."""

    def __init__(self, front):
        self.front, self.opened = front, 0

    def detect_mode(self, display):
        return self.front.detect_mode(display)

    def open_display(self, *args, **kwargs):
        self.opened += 1
        os.kill(os.getpid(), signal.SIGINT)
        return self.front.open_display(*args, **kwargs)


@pytest.mark.parametrize("front", ["compare", "ask", "chat"])
def test_ctrl_c_while_the_display_opens_ends_every_call_as_cancelled_sending_nothing(
        simulated, monkeypatch, capsys, front):
    """The run still starts, under its cancelled scope: its cards say "Cancelled.", its calls
    are in the ledger as cancelled, no request is sent, and the line says nothing was sent.
    (Closed unstarted, it left its cards waiting and its calls out of the ledger.)"""
    from llmcells.session import session

    monkeypatch.setattr(session, "front_end", _InterruptedWhileOpening(session.front_end))
    rows_before = len(llmcells.usage())
    calls = {"compare": lambda: llmcells.compare("hi", MODELS, display="text"),
             "ask": lambda: llmcells.ask("hi", "claude", display="text"),
             "chat": lambda: llmcells.Chat("gemini").send("hi", display="text")}
    n = 3 if front == "compare" else 1
    with pytest.raises(KeyboardInterrupt, match="interrupted before anything was sent"):
        llmcells.run(calls[front]())
    rows = llmcells.usage().iloc[::-1].iloc[rows_before:]
    assert list(rows["status"]) == ["cancelled"] * n and rows["cost_usd"].sum() == 0
    assert not simulated.requests
    assert capsys.readouterr().out.count("Cancelled.") == n
    assert _pending_tasks() == 0


def test_ctrl_c_while_another_run_prepares_does_not_start_it():
    """Only a run of the pipeline's calls, which ends them as cancelled, is started once
    interrupted; any other (a provider job's submission, a health check) is not."""
    ran = []

    async def work():
        ran.append(True)

    def start():
        os.kill(os.getpid(), signal.SIGINT)  # while it prepares
        return work()

    with pytest.raises(KeyboardInterrupt, match="interrupted before anything was sent"):
        llmcells.run(_loop.Pending(start, "job"))
    assert not ran and _pending_tasks() == 0


def test_ctrl_c_before_the_run_opens_nothing_and_sends_nothing(simulated, monkeypatch):
    from llmcells.session import session

    front = _InterruptedWhileOpening(session.front_end)
    monkeypatch.setattr(session, "front_end", front)
    rows_before = len(llmcells.usage())
    with pytest.raises(KeyboardInterrupt, match="interrupted before anything was sent"):
        with _loop.deferred_interrupts():
            os.kill(os.getpid(), signal.SIGINT)  # recorded, raised by the run
            llmcells.run(llmcells.compare("hi", MODELS, display="text"))
    assert front.opened == 0 and len(llmcells.usage()) == rows_before and not simulated.requests


def test_run_refuses_to_nest_inside_the_loop():
    refused = asyncio.sleep(0)

    async def inner():
        llmcells.run(refused)

    with pytest.raises(RuntimeError, match="cannot be called from inside"):
        _loop.submit(inner()).result(timeout=5)
    # closed when refused, so no "coroutine 'sleep' was never awaited" warning at some later GC
    assert refused.cr_frame is None


def test_a_pending_call_can_only_be_awaited_once(simulated):
    pending = llmcells.ask("hi", "claude", display=False)
    assert llmcells.run(pending).ok
    with pytest.raises(RuntimeError, match="already awaited"):
        llmcells.run(pending)


def test_reading_a_pending_call_says_to_await_it(simulated):
    pending = llmcells.ask("hi", "claude", display=False)  # forgot the await
    with pytest.raises(AttributeError, match=r"this ask has not run yet, so it has no \.text: await it") as err:
        pending.text
    assert isinstance(err.value, llmcells.ConfigError)  # one line in a notebook, no traceback
    assert getattr(pending, "text", None) is None
    assert not hasattr(pending, "_repr_html_")  # IPython's probes get a plain AttributeError
    assert not simulated.requests
    assert llmcells.run(pending).text


def test_compare_takes_models_as_one_string_too(simulated):
    # compare("hi", "claude") once asked models 'c', 'l', 'a'...: "Unknown model 'c'"
    c = llmcells.run(llmcells.compare("hi", "claude, gemini", display=False))
    assert [r.model for r in c] == ["anthropic:claude-haiku-5-5", "google:gemini-3.5-flash-lite"]
    assert [r.model for r in llmcells.run(llmcells.compare("hi", "claude", display=False))] == [
        "anthropic:claude-haiku-5-5"]


def test_simulate_checks_its_options_and_names_providers_as_the_magics_do():
    from llmcells import _simulation, models

    before = models.simulator_url()
    with pytest.raises(llmcells.ConfigError, match=r"^simulate\(\) takes ttft, tokens_per_s, output_tokens, not 'tps'\.$"):
        llmcells.simulate(tps=80)  # not "Simulator.__init__() got an unexpected keyword argument"
    # a provider that is none once left every provider unsimulated, without a word
    with pytest.raises(llmcells.ConfigError, match=r"unknown provider 'opnai' \(did you mean openai\?\)"):
        llmcells.simulate(providers=["opnai"])
    assert models.simulator_url() == before  # nothing was switched
    assert _simulation._provider_names(["claude", "chatgpt", "gemini-cli"]) == [
        "anthropic", "openai", "gemini-cli"]
    assert _simulation._provider_names("openai, google") == ["openai", "google"]


def test_openai_compatible_endpoint_by_base_url(fresh_sim):
    llmcells.add_endpoint("local", fresh_sim.url + "/v1", api_key="local-key")
    r = llmcells.run(llmcells.ask("hi", "local:llama3.2", display=False))
    assert r.ok and r.model == "local:llama3.2" and r.provider == "local"
    assert fresh_sim.requests[-1].model == "llama3.2"



def test_a_result_keeps_its_fields_in_slots_and_still_takes_other_attributes():
    """A Result's ~45 fields live in slots, not an instance dict of its own (a batch holds
    thousands); an attribute that is not a field (a notebook card's mark) still works, and a
    Result pickles, copies and replaces as before."""
    import copy
    import dataclasses
    import pickle

    from llmcells.types import Result, Usage

    r = Result(text="hi", model="openai:gpt-6-luna", usage=Usage(3, 0, 0, 5), cost_usd=0.25)
    assert r.__dict__ == {}  # no field in the instance dict
    r.__dict__["_card_cell"] = 7
    r.note_for_test = "x"
    back = pickle.loads(pickle.dumps(r))
    assert type(back) is Result and back == r and back.note_for_test == "x"
    assert copy.deepcopy(r) == r and r.replace(text="yo").text == "yo"
    assert [f.name for f in dataclasses.fields(Result)][:3] == ["text", "model", "provider"]
    assert dataclasses.asdict(r)["usage"]["output_tokens"] == 5
    assert repr(r).startswith("Result(text='hi'")
