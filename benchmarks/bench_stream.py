"""Long answers: a 2 MB answer in 20,000 events through llmcells against the adapter alone, and
the worst stall another stream on the same loop sees meanwhile.

    python benchmarks/bench_stream.py           # each provider, best of 2
    python benchmarks/bench_stream.py --quick   # Anthropic only, once

The simulator runs in its own process and sends the answer as fast as it can (no time to first
token, no delay between events): 20,000 deltas of 100 characters each. Figures:

- adapter alone: the provider adapter's event stream iterated on a plain asyncio loop, pieces
  kept in a list (the least any client must do);
- llmcells: `llmcells.run(llmcells.ask(..., display=False))` of the same request: the engine,
  pricing and the ledger row included;
- worst stall: while the 2 MB answer streams, a second call on llmcells' loop streams a short
  answer at 50 tokens/s; the longest gap between two of its deltas, against the simulator's own
  20 ms between them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

try:
    from . import _common as C
except ImportError:  # run as a script
    import _common as C

EVENTS = 20_000
PIECE = " " * 95 + "word"  # one delta of 100 characters (the simulator keeps leading blanks with a word)
BIG = "openai:gpt-6-sol", "anthropic:claude-sonnet-4-6", "google:gemini-3.8-flash"  # (none retiring)
TICK = "anthropic:claude-haiku-5-5"
#: room for the whole answer within every BIG model's output cap (the simulator, like the API,
#: refuses more than a model's cap)
MAX_TOKENS = 32_000


def _configure(sim_url: str) -> None:
    import json
    import urllib.request

    def post(path: str, body: dict) -> None:
        req = urllib.request.Request(sim_url + path, data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"}, method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    for model in BIG:
        post("/_sim/config", {"model": model.split(":", 1)[1], "text": PIECE * EVENTS, "ttft": 0,
                              "tokens_per_s": 0})
    post("/_sim/config", {"model": TICK.split(":", 1)[1], "ttft": 0.0, "tokens_per_s": 50,
                          "output_tokens": 150})


def _adapter_alone(url: str, model_id: str) -> float:
    from llmcells.calls import make_plan
    from llmcells.models import SIMULATOR_KEY
    from llmcells.providers import ClientOptions, get_provider

    async def go() -> float:
        plan = make_plan("Write a long answer.", model_id, max_tokens=MAX_TOKENS)
        provider = get_provider(plan.spec.adapter)
        client = provider.make_client(ClientOptions(base_url=plan.spec.base_url, api_key=SIMULATOR_KEY))
        t0 = time.perf_counter()
        pieces = []
        async for event in provider.stream(client, plan.request):
            text = getattr(event, "text", None)
            if text:
                pieces.append(text)
        wall = time.perf_counter() - t0
        assert len("".join(pieces)) >= len(PIECE) * EVENTS * 0.99
        closing = getattr(getattr(client, "aio", None), "aclose", None) or client.close
        await closing()
        return wall

    return asyncio.run(go())


def _through_llmcells(model_id: str) -> float:
    import llmcells

    t0 = time.perf_counter()
    r = llmcells.run(llmcells.ask("Write a long answer.", model_id, max_tokens=MAX_TOKENS, display=False))
    wall = time.perf_counter() - t0
    assert r.ok and len(r.text) >= len(PIECE) * EVENTS * 0.99, (r.status, r.error, len(r.text))
    return wall


def _stall(model_id: str) -> tuple[float, float]:
    """(worst gap between the ticking stream's deltas while the big answer streams, the same
    with nothing else running)."""
    import llmcells
    from llmcells.calls import make_plan
    from llmcells.pipeline import run_plans
    from llmcells.types import CallObserver

    class Ticks(CallObserver):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_text(self, delta: str) -> None:
            self.times.append(time.perf_counter())

    def worst(plans) -> float:
        ticks = Ticks()
        llmcells.run(run_plans(plans, [None] * (len(plans) - 1) + [ticks]))
        gaps = [b - a for a, b in zip(ticks.times, ticks.times[1:])]
        return max(gaps) if gaps else float("nan")

    alone = worst([make_plan("tick", TICK)])
    busy = worst([make_plan("Write a long answer.", model_id, max_tokens=MAX_TOKENS), make_plan("tick", TICK)])
    return busy, alone


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="Anthropic only, one round")
    args = ap.parse_args(argv)
    models = [BIG[1]] if args.quick else list(BIG)
    rounds = 1 if args.quick else 2
    from llmcells import models as model_registry

    rows: list[dict] = []
    with C.temp_home(), C.SimProcess(ttft=0.0, tps=0.0) as sim:
        _configure(sim.url)
        model_registry.set_simulator(sim.url)
        try:
            import llmcells

            llmcells.run(llmcells.compare("warm up", [TICK, "chatgpt", "gemini"], display=False))  # imports, clients
            for model_id in models:
                raw = min(_adapter_alone(sim.url, model_id) for _ in range(rounds))
                ours = min(_through_llmcells(model_id) for _ in range(rounds))
                busy, alone = _stall(model_id)
                rows += [
                    C.row(f"{model_id}: 2 MB answer, llmcells / adapter alone", ours / raw, "ratio", 1.2, "<=",
                          note=f"{model_id}: {EVENTS:,} events of {len(PIECE)} characters; adapter alone "
                               f"{raw:.2f} s, llmcells {ours:.2f} s (best of {rounds})"),
                    C.row(f"{model_id}: worst stall of another stream meanwhile", busy * 1000, "ms",
                          note=f"{model_id}: the other stream's worst gap alone {alone * 1000:.0f} ms "
                               "(the simulator sends a delta every 20 ms)"),
                ]
        finally:
            model_registry.set_simulator(None)
    C.print_table(rows)
    return rows


if __name__ == "__main__":
    main()
    sys.exit(0)
