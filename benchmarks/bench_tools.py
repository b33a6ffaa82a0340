"""Tools and hooks: a call with one tool call through llmcells vs the same two requests made by
hand with the raw openai SDK; two 0.5 s tools in one turn; a slow and a raising hook vs none.

    python benchmarks/bench_tools.py           # 20 rounds
    python benchmarks/bench_tools.py --quick   # 5 rounds

The simulator runs in this process (0.05 s to the first token, 400 tokens/s). Figures: median
wall time of a tool-call round trip (llmcells and raw SDK side by side), the wall time of the tool
phase with two 0.5 s tools (sync, in threads; async, on the loop), and how much a 1 s sync hook
plus a raising hook on every event move the end of a stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

try:
    from . import _common as C
except ImportError:  # run as a script
    import _common as C


def get_weather(city: str) -> dict:
    """Today's weather in a city."""
    return {"city": city, "temp": 21}


PROMPT = 'call get_weather({"city": "Paris"})'


async def _raw_round_trip(client) -> str:
    """The same exchange by hand: request, run the tool, send the result, read the answer."""
    from llmcells.tools import as_tool

    decl = as_tool(get_weather).declaration()
    tools = [{"type": "function", "function": decl}]
    messages = [{"role": "user", "content": PROMPT}]
    stream = await client.chat.completions.create(model="gpt-6-luna", messages=messages,
                                                  tools=tools, stream=True,
                                                  reasoning_effort="none")  # as llmcells sends: gpt-6-luna takes function tools on Chat only so
    calls: dict[int, dict] = {}
    async for chunk in stream:
        for ch in chunk.choices:
            for d in ch.delta.tool_calls or ():
                c = calls.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
                c["id"] = d.id or c["id"]
                if d.function and d.function.name:
                    c["name"] = d.function.name
                if d.function and d.function.arguments:
                    c["arguments"] += d.function.arguments
    messages.append({"role": "assistant", "content": None, "tool_calls": [
        {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
        for c in calls.values()]})
    for c in calls.values():
        out = get_weather(**json.loads(c["arguments"]))
        messages.append({"role": "tool", "tool_call_id": c["id"], "content": json.dumps(out)})
    stream = await client.chat.completions.create(model="gpt-6-luna", messages=messages,
                                                  tools=tools, stream=True,
                                                  reasoning_effort="none")  # as llmcells sends: gpt-6-luna takes function tools on Chat only so
    text = ""
    async for chunk in stream:
        for ch in chunk.choices:
            text += ch.delta.content or ""
    return text


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    rounds = 5 if args.quick else 20

    import openai

    import llmcells
    from llmcells import _loop, hooks

    rows = []
    with C.temp_home():
        sim = llmcells.simulate(ttft=0.05, tokens_per_s=400)
        llmcells.run(llmcells.ask(PROMPT, model="chatgpt", tools=[get_weather], display=False))  # warm
        ours, raw = [], []
        client = openai.AsyncOpenAI(api_key="sim", base_url=sim.url + "/v1", max_retries=0)

        async def raw_once() -> float:
            t = time.perf_counter()
            await _raw_round_trip(client)
            return time.perf_counter() - t

        for _ in range(rounds):
            t = time.perf_counter()
            r = llmcells.run(llmcells.ask(PROMPT, model="chatgpt", tools=[get_weather], display=False))
            ours.append(time.perf_counter() - t)
            assert r.ok and r.turns == 2
            raw.append(_loop.run(raw_once()))
        rows += [
            C.row("tool round trip (2 requests): llmcells, median", statistics.median(ours) * 1000, "ms"),
            C.row("tool round trip (2 requests): raw openai SDK, median", statistics.median(raw) * 1000, "ms"),
            C.row("tool round trip: llmcells - raw SDK", (statistics.median(ours) - statistics.median(raw)) * 1000,
                  "ms", target=50.0, note="llmcells adds the ledger rows, pricing and the schema"),
        ]

        # two 0.5 s tools in one turn
        for kind in ("sync", "async"):
            spans = []

            if kind == "sync":
                def slow_a(x: int) -> int:
                    """A."""
                    t = time.monotonic(); time.sleep(0.5); spans.append((t, time.monotonic()))  # noqa: E702
                    return x

                def slow_b(x: int) -> int:
                    """B."""
                    t = time.monotonic(); time.sleep(0.5); spans.append((t, time.monotonic()))  # noqa: E702
                    return x
            else:
                async def slow_a(x: int) -> int:
                    """A."""
                    t = time.monotonic(); await asyncio.sleep(0.5); spans.append((t, time.monotonic()))  # noqa: E702
                    return x

                async def slow_b(x: int) -> int:
                    """B."""
                    t = time.monotonic(); await asyncio.sleep(0.5); spans.append((t, time.monotonic()))  # noqa: E702
                    return x

            r = llmcells.run(llmcells.ask('call slow_a({"x": 1}) call slow_b({"x": 2})', model="claude",
                                          tools=[slow_a, slow_b], display=False))
            wall = max(e for _, e in spans) - min(s for s, _ in spans)
            rows.append(C.row(f"two 0.5 s {kind} tools in one turn: wall", wall, "s", target=0.6))

        # hooks: a 1 s sync hook and a raising hook on every event vs none
        from llmcells.calls import make_plan
        from llmcells.pipeline import call as execute
        from llmcells.types import CallObserver

        class Clock(CallObserver):
            def on_sent(self, t0):
                self.t0, self.last = t0, t0

            def on_text(self, delta):
                self.last = time.monotonic()

        sim.configure(ttft=0.05, tokens_per_s=100)

        def stream_end() -> float:
            clock = Clock()
            llmcells.run(execute(make_plan("steady", "claude"), clock))
            return clock.last - clock.t0

        base = statistics.median(stream_end() for _ in range(3))

        def slow(rec):
            time.sleep(1.0)

        def broken(rec):
            raise RuntimeError("a hook bug")

        import logging

        logging.getLogger("llmcells").setLevel(logging.ERROR)  # the one report is expected
        for e in hooks.EVENTS:
            llmcells.on(e, slow)
            llmcells.on(e, broken)
        hooked = statistics.median(stream_end() for _ in range(3))
        llmcells.off()
        rows.append(C.row("stream end with a 1 s hook + a raising hook, minus without", abs(hooked - base) * 1000,
                          "ms", target=50.0))
    return rows


if __name__ == "__main__":
    C.print_table(main())
