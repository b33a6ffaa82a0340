"""Replay: what a re-run costs in time once its answers are recorded, and how a big replay file loads.

    python benchmarks/bench_replay.py           # 300 calls, a 20,000-answer file
    python benchmarks/bench_replay.py --quick   # 90 calls, a 5,000-answer file

The simulator runs in this process with a realistic 0.4 s to first token and 60 tokens/s (so a
fresh call takes about a second). The same calls (30 distinct prompts x the three models,
repeated with sample indexes) are made once with replay on, recording them, then again: the
second run makes no request. Figures: wall time of both runs, the mean latency of a replayed call,
and the time to load a replay file of many answers and look one up (what the first replayed call
of a new kernel pays).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

try:
    from . import _common as C
except ImportError:  # run as a script
    import _common as C


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    calls = 90 if args.quick else 300
    file_size = 5_000 if args.quick else 20_000

    import llmcells
    from llmcells import replay
    from llmcells.config import settings

    rows = []
    with C.temp_home() as home:
        sim = llmcells.simulate(ttft=0.4, tokens_per_s=60, output_tokens=30)
        settings.update(replay=True, replay_path=os.path.join(home, "replay.jsonl"))
        prompts = [f"Question number {i}: what is it about?" for i in range(30)]
        repeat = max(1, calls // (len(prompts) * 3))

        async def one_run():
            sem = asyncio.Semaphore(32)

            async def one(p):
                async with sem:
                    return await llmcells.compare(p, C.MODELS, repeat=repeat, display=False)
            return await asyncio.gather(*(one(p) for p in prompts))

        settings.update(replay=False)  # warm up (SDK imports, clients) outside the figures
        llmcells.run(llmcells.compare("warm up", C.MODELS, display=False))
        settings.update(replay=True)
        t = time.perf_counter()
        first = llmcells.run(one_run())
        fresh_wall = time.perf_counter() - t
        n = sum(len(c) for c in first)
        before = len(sim.requests)
        t = time.perf_counter()
        second = llmcells.run(one_run())
        replay_wall = time.perf_counter() - t
        replayed = [r for c in second for r in c]
        assert len(sim.requests) == before and all(r.replayed for r in replayed)
        lat = sum(r.latency_s for r in replayed) / len(replayed)
        rows += [
            C.row(f"{n} calls, recorded (fresh)", fresh_wall, "s"),
            C.row(f"the same {n} calls replayed", replay_wall, "s", target=1.0,
                  note="no request reaches the simulator on the second run"),
            C.row("latency of a replayed call (mean)", lat * 1000, "ms", target=5.0),
        ]

        # a big file: load it and look up one answer (a new kernel's first replayed call)
        big = os.path.join(home, "big.jsonl")
        entry = json.loads(open(settings.replay_path).readline())
        with open(big, "w") as f:
            for i in range(file_size):
                f.write(json.dumps({**entry, "key": f"{i:064x}"}, sort_keys=True) + "\n")
        settings.update(replay_path=big)
        replay._books.clear()
        size_mb = os.path.getsize(big) / 1e6
        t = time.perf_counter()
        book = replay._book()
        hit = book.get(f"{file_size - 1:064x}")
        load = time.perf_counter() - t
        assert hit is not None
        t = time.perf_counter()
        for i in range(1000):
            book.get(f"{i:064x}")
        lookup = (time.perf_counter() - t) / 1000
        rows += [
            C.row(f"load a {file_size:,}-answer replay file ({size_mb:.1f} MB)", load, "s", target=0.5),
            C.row("look up one answer in it (file unchanged)", lookup * 1e6, "µs", target=100.0),
        ]
        settings.update(replay=False, replay_path=None)
        llmcells.simulate(False)
    return rows


if __name__ == "__main__":
    C.print_table(main(sys.argv[1:]))
