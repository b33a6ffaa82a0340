"""Tools through the real SDKs against the simulator, for each provider path: one call, two
parallel calls (concurrency shown by timing), a tool that raises, bad arguments, a timeout,
max_turns, an interrupt while a tool runs, usage summed over the turns with one ledger row per
request; and schemas from type hints and docstrings."""

from __future__ import annotations

import _thread
import asyncio
import json
import threading
import time
from typing import Literal

import pytest

import llmcells
from llmcells import ledger
from llmcells.tools import as_tool

PATHS = ["chatgpt", "openai-responses:gpt-6-luna", "claude", "gemini"]
MARKS = {"chatgpt": "tool_call_id", "openai-responses:gpt-6-luna": "function_call_output",
         "claude": "tool_result", "gemini": "functionResponse"}


def get_weather(city: str, unit: str = "C") -> dict:
    """Today's weather in a city.

    Args:
        city: the city's name
        unit: C or F
    """
    return {"city": city, "temp": 21 if unit == "C" else 70, "unit": unit}


def ask(prompt, model, **kw):
    return llmcells.run(llmcells.ask(prompt, model=model, display=False, **kw))


def rows(group_id):
    return ledger.usage(group_id=group_id)


@pytest.mark.parametrize("model", PATHS)
def test_a_schema_with_tools_runs_the_tools_then_reads_the_answer(simulated, model):
    """schema= with tools= checked every turn against the schema: the first turn, which only
    asks for a tool, failed as "does not match the schema" and no tool ever ran."""
    from pydantic import BaseModel

    class Weather(BaseModel):
        city: str
        temp_c: float

    r = ask('Weather? call get_weather({"city": "Paris"})', model, tools=[get_weather], schema=Weather)
    assert r.ok, r.error
    assert r.turns == 2 and [t.name for t in r.tool_calls] == ["get_weather"]
    assert isinstance(r.data, Weather)


@pytest.mark.parametrize("model", PATHS)
def test_one_tool_call_round_trip(simulated, model):
    r = ask('Weather? call get_weather({"city": "Paris"})', model, tools=[get_weather])
    assert r.ok, r.error
    want = json.dumps(get_weather("Paris"), separators=(",", ":"))
    assert r.text == f"Tool results: get_weather -> {want}"  # byte for byte, through the wire
    assert [(t.name, json.loads(t.arguments), t.result, t.error) for t in r.tool_calls] == [
        ("get_weather", {"city": "Paris"}, want, None)]
    assert r.turns == 2
    assert [m.role for m in r.messages] == ["user", "assistant", "tool", "assistant"]
    assert r.messages[1].tool_calls[0].name == "get_weather"
    # the second request carries the call and its result in the provider's own format
    reqs = simulated.requests
    assert len(reqs) == 2
    assert "tools" in json.dumps(reqs[0].body) and MARKS[model] in json.dumps(reqs[1].body)
    assert want.replace('"', '\\"') in json.dumps(reqs[1].body) or want in json.dumps(reqs[1].body)
    if model == "gemini":  # the call's thought signature goes back with it
        import base64

        parts = [p for c in reqs[1].body["contents"] for p in c["parts"] if "functionCall" in p]
        assert base64.b64decode(parts[0]["thoughtSignature"]) == b"sig:get_weather:0"


@pytest.mark.parametrize("thinking", ["adaptive", "enabled"])
@pytest.mark.parametrize("model", ["claude", "bedrock:us.anthropic.claude-haiku-5-5"])
def test_claudes_thinking_goes_back_at_the_head_of_its_tool_call_turn(simulated, model, thinking):
    """With thinking on, Claude thinks (a signed thinking block) before its tool calls; the next
    request must start that assistant turn with the block, unchanged, or the API answers 400
    ("a final `assistant` message must start with a thinking block")."""
    params = {"thinking": {"type": thinking, **({"budget_tokens": 2048} if thinking == "enabled" else {})}}
    r = ask('Weather? call get_weather({"city": "Paris"})', model, tools=[get_weather],
            params=params, max_tokens=4096)
    assert r.ok, r.error
    assert r.turns == 2 and r.reasoning == "I should call get_weather."  # every turn's reasoning
    sent = simulated.requests[-1].body["messages"]
    turn = next(m for m in sent if m["role"] == "assistant")
    assert [b["type"] for b in turn["content"]] == ["thinking", "tool_use"]
    assert turn["content"][0]["thinking"] == "I should call get_weather."
    assert turn["content"][0]["signature"]


def test_a_tool_call_turn_without_its_thinking_is_refused_as_the_api_does(simulated):
    """The strict simulator refuses, as the API does, a thinking request whose last tool-call
    turn does not start with its thinking block (or carries an altered one)."""
    import httpx

    tool_use = {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "21"}]}
    body = {"model": "claude-haiku-5-5", "max_tokens": 4096, "thinking": {"type": "adaptive"},
            "messages": [{"role": "user", "content": "Weather in Paris?"},
                         {"role": "assistant", "content": [tool_use]}, result]}
    headers = {"x-api-key": "sim-key", "anthropic-version": "2026-10-21"}
    url = llmcells.models.simulator_url() + "/v1/messages"
    refused = httpx.post(url, json=body, headers=headers)
    assert refused.status_code == 400, refused.text
    assert "must start with a thinking block" in refused.json()["error"]["message"]
    body["messages"][1]["content"] = [{"type": "thinking", "thinking": "altered", "signature": "c2ln"}, tool_use]
    altered = httpx.post(url, json=body, headers=headers)
    assert altered.status_code == 400 and "Invalid `signature`" in altered.json()["error"]["message"]


@pytest.mark.parametrize("model", PATHS)
def test_usage_is_summed_over_turns_with_one_ledger_row_per_request(simulated, model):
    r = ask('call get_weather({"city": "Oslo"})', model, tools=[get_weather])
    df = rows(r.group_id)
    assert len(df) == r.turns == 2
    assert set(df.status) == {"ok"}
    assert r.call_id in set(df.call_id)
    assert r.usage.input_tokens == df.input_tokens.sum() > 0
    assert r.usage.output_tokens == df.output_tokens.sum() > 0
    assert r.cost_usd == pytest.approx(df.cost_usd.sum())
    by_group = llmcells.costs(by="group", include_simulated=True)
    assert by_group.calls.sum() == 2
    assert by_group.cost_usd.sum() == pytest.approx(df.cost_usd.sum())


@pytest.mark.parametrize("model", PATHS)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_two_parallel_calls_run_concurrently(simulated, model, kind):
    spans = []

    def slow_a(x: int) -> int:
        """Slow A."""
        t = time.monotonic(); time.sleep(0.5); spans.append((t, time.monotonic()))  # noqa: E702
        return x + 1

    def slow_b(x: int) -> int:
        """Slow B."""
        t = time.monotonic(); time.sleep(0.5); spans.append((t, time.monotonic()))  # noqa: E702
        return x + 2

    async def aslow_a(x: int) -> int:
        """Slow A."""
        t = time.monotonic(); await asyncio.sleep(0.5); spans.append((t, time.monotonic()))  # noqa: E702
        return x + 1

    async def aslow_b(x: int) -> int:
        """Slow B."""
        t = time.monotonic(); await asyncio.sleep(0.5); spans.append((t, time.monotonic()))  # noqa: E702
        return x + 2

    tools = [slow_a, slow_b] if kind == "sync" else [aslow_a, aslow_b]
    a, b = (t.__name__ for t in tools)
    r = ask(f'call {a}({{"x": 1}}) and call {b}({{"x": 1}})', model, tools=tools)
    assert r.ok, r.error
    assert r.text == f"Tool results: {a} -> 2; {b} -> 3"
    assert len(spans) == 2
    wall = max(e for _, e in spans) - min(s for s, _ in spans)
    assert wall < 0.8, f"two 0.5 s tools took {wall:.2f} s together"
    assert len(simulated.requests) == 2  # both calls came in one turn


@pytest.mark.parametrize("model", PATHS)
def test_a_tool_that_raises_sends_a_short_error(simulated, model):
    def lookup(key: str) -> str:
        """Look a key up."""
        raise KeyError(f"no such key {key}")

    r = ask('call lookup({"key": "k1"})', model, tools=[lookup])
    assert r.ok, r.error
    assert r.tool_calls[0].error == "KeyError: 'no such key k1'"
    assert r.text == "Tool results: lookup -> Error: KeyError: 'no such key k1'"


@pytest.mark.parametrize("model", ["chatgpt", "claude"])
def test_bad_arguments_and_a_timeout_are_tool_errors(simulated, model):
    async def wait(seconds: float) -> str:
        """Wait."""
        await asyncio.sleep(seconds)
        return "done"

    r = ask('call get_weather({"town": 3}) call wait({"seconds": 5})', model,
            tools=[get_weather, wait], tool_timeout=0.3)
    assert r.ok, r.error
    bad, slow = r.tool_calls
    assert bad.error.startswith("bad arguments for get_weather: ") and "city" in bad.error
    assert slow.error == "wait did not finish within 0.3 s" and slow.duration_s < 1
    assert "wait -> Error: wait did not finish within 0.3 s" in r.text


def test_tool_timeout_is_a_hard_deadline_for_a_tool_that_swallows_its_cancellation(simulated, caplog):
    """An async tool that ignores its cancellation and returns late: the call goes on at the
    deadline with a timeout error for that tool, its late result is never used, and the stuck
    tool is reported once on the logger (it ran 20 s against a 2 s limit before)."""
    async def stubborn(seconds: float) -> str:
        """Will not stop."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                await asyncio.sleep(end - time.monotonic())
            except asyncio.CancelledError:
                pass  # swallowed
        return "late result"

    ask("warm up", "claude")  # (a first call imports the SDK: not what is timed here)
    t0 = time.monotonic()
    with caplog.at_level("WARNING", logger="llmcells"):
        r = ask('call stubborn({"seconds": 3})', "claude", tools=[stubborn], tool_timeout=0.4)
        took = time.monotonic() - t0
        time.sleep(1.0)  # (the report comes 0.5 s after the deadline)
    assert r.ok, r.error
    (run,) = r.tool_calls
    assert run.error == "stubborn did not finish within 0.4 s" and not run.result
    assert "late result" not in r.text and "stubborn -> Error: stubborn did not finish" in r.text
    assert took < 2.5, took  # (3 s without the hard deadline)
    reports = [m for m in caplog.messages if "stubborn" in m and "still running" in m]
    assert len(reports) == 1, caplog.messages


def test_a_tool_still_stuck_when_the_loop_stops_is_not_reported_again_by_asyncio(tmp_path):
    """%unload_ext stops llmcells' loop while a tool that swallowed its cancellation still runs:
    llmcells has already said once that its result will be ignored, so asyncio's "Task was
    destroyed but it is pending!" (with the task's repr) must not follow in the cell's output."""
    from conftest import run_script

    script = """
import asyncio, gc, time
import llmcells
from llmcells import _loop
llmcells.simulate()
async def stubborn(seconds: float) -> str:
    \"\"\"Will not stop.\"\"\"
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            await asyncio.sleep(end - time.monotonic())
        except asyncio.CancelledError:
            pass
    return "late result"
r = llmcells.run(llmcells.ask('call stubborn({"seconds": 5})', "claude", tools=[stubborn],
                              tool_timeout=0.3, display=False))
print(r.tool_calls[0].error)
_loop.stop()   # what %unload_ext does
gc.collect()
"""
    out = run_script(script, tmp_path)
    assert "stubborn did not finish within 0.3 s" in out.stdout
    assert "Task was destroyed" not in out.stderr and "late result" not in out.stdout + out.stderr


@pytest.mark.parametrize("model", PATHS)
def test_max_turns_is_reached(simulated, model):
    r = ask('always call get_weather({"city": "Rome"})', model, tools=[get_weather], max_turns=3)
    assert not r.ok and r.error_kind == "max_turns" and "max_turns=3" in r.error
    assert r.turns == 3 and len(simulated.requests) == 3
    assert len(r.tool_calls) == 2  # the third request's calls are not run: nothing would read them
    assert len(rows(r.group_id)) == 3


@pytest.mark.parametrize("model", ["chatgpt", "openai-responses:gpt-6-luna", "claude"])
def test_a_call_cut_off_by_max_tokens_runs_no_tool_and_sends_nothing_more(simulated, model):
    """The output limit ends the turn while the model writes a call's arguments (stop_reason
    max_tokens, finish_reason length, an incomplete response): the arguments are cut-off JSON.
    The loop ran the tool as "bad arguments" and sent the model that error, a billed request
    that the same limit cuts again, up to max_turns."""
    ran = []

    def get_weather(city: str) -> str:
        """Today's weather in a city."""
        ran.append(city)
        return "sunny"

    city = "Llanfair pwllgwyngyll gogery chwyrn drobwll llantysilio gogo goch " * 3
    r = ask(f'call get_weather({{"city": "{city}"}})', model, tools=[get_weather], max_tokens=16)
    assert (r.status, r.error_kind) == ("incomplete", "incomplete"), (r.status, r.error)
    assert r.error == ("The answer reached max_tokens while calling get_weather: the call was cut "
                       "off, so no tool ran; raise max_tokens=... and ask again.")
    assert ran == [] and r.tool_calls == [] and r.turns == 1
    assert len(simulated.requests) == 1 and len(rows(r.group_id)) == 1
    assert r.finish_reason in ("length", "max_output_tokens", "max_tokens")
    assert [m.role for m in r.messages] == ["user"]  # no call left without its result
    again = ask(f'call get_weather({{"city": "{city}"}})', model, tools=[get_weather], max_tokens=400)
    assert again.ok and ran == [city], (again.error, ran)  # the same call, with room: it runs


@pytest.mark.parametrize("model", PATHS)
def test_an_interrupt_while_tools_run_ends_the_call_within_a_second(simulated, model):
    state = {}

    async def long_async(n: int) -> str:
        """Takes long."""
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise
        return "never"

    def long_sync(n: int) -> str:
        """Takes long, in a thread."""
        time.sleep(3)
        return "late"

    prompt = 'call long_async({"n": 1}) call long_sync({"n": 2})'
    timer = threading.Timer(0.6, _thread.interrupt_main)
    t0 = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        ask(prompt, model, tools=[long_async, long_sync])
    took = time.monotonic() - t0
    timer.cancel()
    assert took < 0.6 + 1.0, took
    assert state.get("cancelled") is True
    last = llmcells.api.last
    assert last.status == "cancelled" and last.turns == 1
    assert len(simulated.requests) == 1


def test_schema_from_hints_and_docstring():
    def search(query: str, limit: int = 5, kind: Literal["web", "news"] = "web") -> list[str]:
        """Search the web.

        Args:
            query: what to look for
            limit: how many results
        """
        return []

    t = as_tool(search)
    assert t.name == "search" and t.description == "Search the web."
    p = t.parameters
    assert p["required"] == ["query"]
    assert p["properties"]["query"] == {"type": "string", "description": "what to look for"}
    assert p["properties"]["limit"]["type"] == "integer" and p["properties"]["limit"]["default"] == 5
    assert p["properties"]["kind"]["enum"] == ["web", "news"]


def test_bad_tools_are_one_clear_line():
    def f(*args):
        """Varargs."""

    with pytest.raises(llmcells.ConfigError, match="name every parameter"):
        llmcells.ask("hi", tools=[f])
    with pytest.raises(llmcells.ConfigError, match="list of functions"):
        llmcells.ask("hi", tools=3)
    with pytest.raises(llmcells.ConfigError, match="max_turns"):
        llmcells.ask("hi", tools=[get_weather], max_turns=0)


def test_compare_with_tools(simulated):
    c = llmcells.run(llmcells.compare('call get_weather({"city": "Lima"})', models=PATHS,
                                      tools=[get_weather], display=False))
    assert [r.ok for r in c] == [True] * 4
    assert len({r.text for r in c}) == 1
    df = ledger.usage(group_id=c.group_id)
    assert len(df) == 8


@pytest.mark.parametrize("model", PATHS)
def test_each_request_has_its_own_retries(simulated, model):
    provider = "google" if model == "gemini" else "anthropic" if model == "claude" else "openai"

    def flaky(n: int) -> int:
        """Makes the next model request fail once (a 500)."""
        simulated.inject("500", provider=provider, times=1)
        return n * 2

    llmcells.configure(retry_initial_wait=0.01)
    r = ask('call flaky({"n": 21})', model, tools=[flaky])
    assert r.ok and r.text == "Tool results: flaky -> 42"
    assert r.attempts == 2  # the first request, and one retry of the second
    df = rows(r.group_id).sort_values("ts")
    assert list(df.attempts) == [1, 2] and len(simulated.requests) == 3


@pytest.mark.parametrize("model", PATHS)
def test_a_turn_is_never_sent_again_once_its_tokens_were_shown(simulated, model):
    provider = "google" if model == "gemini" else "anthropic" if model == "claude" else "openai"

    def cutter(n: int) -> int:
        """Makes the next model request break after a few tokens."""
        simulated.inject("cut", provider=provider, times=1, after_tokens=2)
        return n

    r = ask('call cutter({"n": 1})', model, tools=[cutter])
    assert r.status == "incomplete" and r.text and "Tool results: cutter -> 1".startswith(r.text)
    assert len(simulated.requests) == 2  # never re-sent
    assert list(rows(r.group_id).sort_values("ts").status) == ["ok", "incomplete"]


def test_hooks_follow_every_request_and_tool_call_in_order(simulated):
    from llmcells import hooks

    seen = []
    for e in hooks.EVENTS:
        llmcells.on(e, lambda rec, e=e: seen.append((e, rec)))
    try:
        r = ask('call get_weather({"city": "Bern"})', "claude", tools=[get_weather])
        hooks.flush()
    finally:
        hooks.off()
    assert [e for e, _ in seen] == ["request", "finish", "tool_call", "request", "first_token", "finish"]
    tool = seen[2][1].tool_call
    assert tool["name"] == "get_weather" and json.loads(tool["arguments"]) == {"city": "Bern"}
    assert seen[-1][1].text == r.text
    assert {rec.group_id for _, rec in seen} == {r.group_id}


def test_a_scored_compare_still_shows_tool_calls(simulated):
    from llmcells.api import _observers  # noqa: F401  (the display wiring used by compare)
    from llmcells.scoring import start
    from llmcells.types import CallObserver

    class Seen(CallObserver):
        def __init__(self):
            self.runs = []

        def on_tool_call(self, run):
            self.runs.append(run.name)

    seen = Seen()
    (wrapped,) = start(llmcells.contains("Tool results")).wrap([seen])
    from llmcells.calls import make_plan
    from llmcells.pipeline import call as execute

    plan = make_plan('call get_weather({"city": "Nice"})', "claude", tools=[get_weather])
    r = llmcells.run(execute(plan, wrapped))
    assert r.ok and seen.runs == ["get_weather"]


def test_the_card_says_which_tool_is_called_and_shows_its_line_as_soon_as_it_has_run(simulated):
    """While the model writes a tool call the card's header and body say "calling get_weather…"
    (not "waiting for first token"), and each tool line is in the body before the next turn."""
    from llmcells.calls import make_plan
    from llmcells.display.notebook import Card
    from llmcells.pipeline import call as execute

    plan = make_plan('call get_weather({"city": "Oslo"})', "claude", tools=[get_weather])
    card = Card(plan.info, prompt="x")
    seen: list[tuple[str, str]] = []
    on_status, on_tool_call = card.on_status, card.on_tool_call

    def status(s, detail=None):
        on_status(s, detail)
        seen.append((card.status_label()[1], card.body.value))

    def tool_call(run):
        on_tool_call(run)
        card._paint_live()
        seen.append(("tool", card.body.value))

    card.on_status, card.on_tool_call = status, tool_call
    r = llmcells.run(execute(plan, card))
    assert r.ok
    calling = [body for label, body in seen if label == "⚙ calling get_weather…"]
    assert calling and "calling get_weather…" in calling[0], seen
    tool = [body for label, body in seen if label == "tool"]
    assert tool and "🔧" in tool[0] and "get_weather" in tool[0], seen
    # the next turn keeps the tool line in view: no "waiting…" placeholder over it
    after = [body for label, body in seen[seen.index(("tool", tool[0])) + 1:]]
    assert after and all("🔧" in body for body in after), after


def test_the_card_shows_each_tool_call_then_the_answer(simulated):
    from llmcells.calls import make_plan
    from llmcells.display.notebook import Card
    from llmcells.pipeline import call as execute

    def boom(x: int) -> int:
        """Fails."""
        raise ValueError("no <luck>")

    plan = make_plan('call get_weather({"city": "Paris"}) call boom({"x": 1})', "claude",
                     tools=[get_weather, boom])
    card = Card(plan.info, prompt="x")
    r = llmcells.run(execute(plan, card))
    body = card.body.value
    assert r.ok and body.count("🔧") == 2
    assert "<code>get_weather({&quot;city&quot;:&quot;Paris&quot;})</code>" in body
    assert "✗ <code>ValueError: no &lt;luck&gt;</code>" in body
    assert body.index("🔧") < body.index("Tool results:")


def test_a_tool_that_ends_after_its_loop_closed_leaves_no_thread_traceback(monkeypatch):
    """A sync tool runs in a thread of its own; when its event loop has closed by the time it
    returns (the extension unloaded, a script's loop ended), the result is dropped quietly.
    It used to print "Exception in thread llmcells-tool ... RuntimeError: Event loop is closed"
    into the user's output (seen in CI)."""
    from llmcells.tools import _in_thread

    failures: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))
    release, started = threading.Event(), []

    def slow_tool() -> str:
        started.append(threading.current_thread())
        release.wait(5)
        return "late"

    loop = asyncio.new_event_loop()

    async def start() -> None:
        _in_thread(slow_tool, {})  # abandoned: the loop closes before the tool returns

    loop.run_until_complete(start())
    loop.close()
    for _ in range(500):  # (the thread may not have begun yet)
        if started:
            break
        time.sleep(0.01)
    worker = started[0]
    release.set()
    worker.join(5)
    assert not worker.is_alive()
    assert failures == []
