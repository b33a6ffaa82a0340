"""Batch throughput: many calls over three models, 64 in flight, against a fast simulator.

    python benchmarks/bench_batch.py           # 5,000 calls (1,667 prompts x 3 models = 5,001)
    python benchmarks/bench_batch.py --quick   # 500 calls (167 x 3 = 501)

The simulator runs in its own process (`python -m llmcells.sim`, no time to first token, no
delay between tokens, 32-token answers) and the batch in a fresh child process, so that its peak
RSS (VmHWM of /proc/self/status) and its CPU time are this run's and llmcells' (plus the SDKs') only:

    df = llmcells.run(llmcells.batch(prompts, models=[openai, anthropic, google], concurrency=64,
                                     display=False))

Figures: calls/s (wall from submitting the batch to its DataFrame), peak RSS of the child, and
its CPU per call (utime + stime over the batch alone, imports excluded); the simulator's CPU per
call is in the note, for scale. Side by side: the peak RSS of another fresh child making the same
calls through the raw SDKs (one client per provider, a gather under the same concurrency; the
llmcells child also imports pandas for its DataFrame, about 44 MiB), the same with pandas
imported and the calls' DataFrame built (a raw user who wants a frame), and, in a fourth child, a
300-call batch against a gather of `ask()` of the same calls (alternating rounds, each after a
full garbage collection, the median of their wall ratios). The simulator advertises a high tier's
rate limits (`--rate-limit`): at its default 50 Anthropic requests a minute, the batch's gate
would rightly wait for the window. Every call is priced, written to the ledger and kept in the
local store (for resume), in a temporary LLMCELLS_HOME.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

try:
    from . import _common as C
except ImportError:  # run as a script
    import _common as C

CONCURRENCY = 64


def _child(url: str, calls: int) -> None:
    import resource
    import time

    import llmcells
    from llmcells import models

    models.set_simulator(url)
    n_prompts = -(-calls // len(C.MODELS))
    # warm-up: SDK imports, clients, pricing data, ledger and store schemas
    llmcells.run(llmcells.batch([f"warm-up {i}" for i in range(8)], models=C.MODELS,
                                concurrency=CONCURRENCY, display=False))
    prompts = [f"Classify the sentiment of review {i}: 'fine, I guess'." for i in range(n_prompts)]
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    df = llmcells.run(llmcells.batch(prompts, models=C.MODELS, concurrency=CONCURRENCY, display=False))
    wall = time.perf_counter() - t
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    print(json.dumps({"calls": len(df), "ok": int((df["status"] == "ok").sum()), "wall": wall,
                      "cpu": cpu, "maxrss_kb": _peak_rss_kb(ru1.ru_maxrss)}))


def _raw_child(url: str, calls: int, frame: bool = False) -> None:
    """The same calls through the raw SDKs (bench_overhead's careful user: one client per
    provider, a gather under a semaphore of CONCURRENCY), for the peak RSS side by side.

    frame=True: the same user who wants the answers as a DataFrame too, as a batch gives them:
    pandas imported at the start (a notebook's first cell), and after the gather a frame of
    one row per call (prompt, model, text, input and output tokens)."""
    import asyncio
    import resource
    import time

    if frame:
        import pandas as pd

    try:
        from . import bench_overhead as O
    except ImportError:
        import bench_overhead as O

    n_prompts = -(-calls // len(C.MODELS))
    jobs = [(m, f"Classify the sentiment of review {i}: 'fine, I guess'.")
            for i in range(n_prompts) for m in C.MODELS]

    async def go() -> tuple[int, float, float]:
        clients = O._raw_clients(url)
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(m: str, p: str):
            async with sem:
                return await O._raw_call(clients, m, p)

        await asyncio.gather(*(one(m, f"warm-up {i}") for i, m in enumerate(C.MODELS * 3)))
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t = time.perf_counter()
        out = await asyncio.gather(*(one(m, p) for m, p in jobs))
        if frame:
            df = pd.DataFrame({"prompt": [p for _, p in jobs], "model": [m for m, _ in jobs],
                               "text": [text for text, _ in out],
                               "input_tokens": [_tokens(u, "input") for _, u in out],
                               "output_tokens": [_tokens(u, "output") for _, u in out]})
            assert len(df) == len(jobs)
        wall = time.perf_counter() - t
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        return (sum(1 for text, _ in out if text), wall,
                (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime))

    ok, wall, cpu = asyncio.run(go())
    print(json.dumps({"calls": len(jobs), "ok": ok, "wall": wall, "cpu": cpu,
                      "maxrss_kb": _peak_rss_kb(0)}))


def _tokens(usage: object, kind: str) -> int | None:
    """input or output tokens from an OpenAI, Anthropic or Gemini usage object."""
    names = {"input": ("prompt_tokens", "input_tokens", "prompt_token_count"),
             "output": ("completion_tokens", "output_tokens", "candidates_token_count")}[kind]
    for name in names:
        value = getattr(usage, name, None)
        if value is not None:
            return value
    return None


SMALL = 300   # a batch the size of a notebook's, against a gather of ask() of the same calls
SMALL_ROUNDS = 11  # a round's wall moves by up to 25% with the machine: the median needs pairs
QUICK_ROUNDS = 5   # --quick: a smoke figure


def _small_child(url: str, rounds: int = SMALL_ROUNDS) -> None:
    """SMALL calls as one `batch` and as a gather of `ask()` (same concurrency), alternating,
    `rounds` times in one process: the median of the rounds' wall ratios.

    Each round starts with a full collection, untimed, as timeit keeps the collector out of its
    figures: a full collection costs 0.2-0.3 s in this process (the SDKs' and pandas' objects)
    and falls when the objects made since the last one pass a threshold, so without it the
    earlier rounds' debt lands on whichever round comes next and the median of a few pairs
    says which variant it fell on. A collection that a round's own objects call for still
    counts in that round (the collector stays on)."""
    import asyncio
    import gc
    import time

    import llmcells
    from llmcells import models

    models.set_simulator(url)
    n_prompts = SMALL // len(C.MODELS)
    llmcells.run(llmcells.batch([f"warm-up {i}" for i in range(8)], models=C.MODELS,
                                concurrency=CONCURRENCY, display=False))

    async def gather(prompts):
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(p, m):
            async with sem:
                return await llmcells.ask(p, model=m, display=False)

        return await asyncio.gather(*(one(p, m) for p in prompts for m in C.MODELS))

    walls: dict[str, list[float]] = {"batch": [], "ask": [], "batch_cpu": [], "ask_cpu": [],
                                     "batch_gc": [], "ask_gc": []}
    gc_time = _GcClock()
    for r in range(rounds):
        for name in ("ask", "batch"):
            prompts = [f"Classify review {name}-{r}-{i}: 'fine, I guess'." for i in range(n_prompts)]
            gc.collect()
            gc_time.total = 0.0
            t, c = time.perf_counter(), time.process_time()
            if name == "batch":
                out = llmcells.run(llmcells.batch(prompts, models=C.MODELS, concurrency=CONCURRENCY,
                                                  display=False))
                assert (out["status"] == "ok").all()
            else:
                out = llmcells.run(gather(prompts))
                assert all(x.ok for x in out)
            walls[name].append(time.perf_counter() - t)
            walls[name + "_cpu"].append(time.process_time() - c)
            walls[name + "_gc"].append(gc_time.total)
    print(json.dumps(walls))


class _GcClock:
    """The time Python's garbage collector spends, summed from its callbacks (all generations)."""

    def __init__(self) -> None:
        import gc

        self.total = 0.0
        self._t0 = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        import time

        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._t0


def _peak_rss_kb(fallback: int) -> int:
    """This process's own peak RSS. Not ru_maxrss: Linux carries that over from the parent at
    fork and keeps it across exec, so a child of a big process reports the parent's size."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return fallback


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="500 calls instead of 5,000")
    ap.add_argument("--calls", type=int, default=None)
    ap.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--raw-child", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--small-child", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--raw-frame-child", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    calls = args.calls or (500 if args.quick else 5000)
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else SMALL_ROUNDS)
    if args.child:
        _child(args.child, calls)
        return []
    if args.raw_child:
        _raw_child(args.raw_child, calls)
        return []
    if args.raw_frame_child:
        _raw_child(args.raw_frame_child, calls, frame=True)
        return []
    if args.small_child:
        _small_child(args.small_child, rounds)
        return []

    with C.temp_home() as home, C.SimProcess(ttft=0.0, tps=0.0, output_tokens=32) as sim:
        env = {k: v for k, v in os.environ.items() if k not in C.PROVIDER_VARS}
        env["LLMCELLS_HOME"] = home
        env["PYTHONPATH"] = str(C._SRC) + os.pathsep + str(C.ROOT) + os.pathsep + env.get("PYTHONPATH", "")

        def child(flag: str) -> dict:
            proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_batch", flag, sim.url,
                                   "--calls", str(calls), "--rounds", str(rounds)],
                                  capture_output=True, text=True, env=env,
                                  cwd=str(C.ROOT), timeout=1800)
            if proc.returncode != 0:
                raise RuntimeError(f"batch child {flag} failed: {proc.stderr[-3000:]}")
            return json.loads(proc.stdout.strip().splitlines()[-1])

        sim0 = sim.cpu_s()
        out = child("--child")
        sim_cpu = sim.cpu_s() - sim0
        raw = child("--raw-child")
        raw_frame = child("--raw-frame-child")
        small = child("--small-child")
    n = out["calls"]
    small_ratio = C.median([b / a for b, a in zip(small["batch"], small["ask"])])
    small_cpu = C.median([b / a for b, a in zip(small["batch_cpu"], small["ask_cpu"])])
    small_no_gc = C.median([(b - bg) / (a - ag) for b, a, bg, ag in
                            zip(small["batch_cpu"], small["ask_cpu"], small["batch_gc"], small["ask_gc"])])
    rows = [
        C.row(f"batch {n:,} calls, 3 models, concurrency {CONCURRENCY}: throughput", n / out["wall"],
              "calls/s", note=f"wall {out['wall']:.2f} s, {out['ok']:,} ok; simulator process CPU "
                              f"{sim_cpu / n * 1000:.2f} ms/call (warm-up included)"),
        C.row("batch: peak RSS of the process", out["maxrss_kb"] / 1024, "MiB"),
        C.row("raw SDKs (gather, same calls): peak RSS of the process", raw["maxrss_kb"] / 1024,
              "MiB", note=f"wall {raw['wall']:.2f} s, {raw['ok']:,} ok, CPU per call "
                          f"{raw['cpu'] / raw['calls'] * 1000:.2f} ms"),
        C.row("batch peak RSS / raw SDK gather", out["maxrss_kb"] / max(1, raw["maxrss_kb"]), "ratio",
              1.25, "<="),
        C.row("raw SDKs (gather, same calls) + pandas and their DataFrame: peak RSS",
              raw_frame["maxrss_kb"] / 1024, "MiB",
              note="the raw user who wants the answers as a frame, as batch() returns them: pandas "
                   "imported at the start, one row per call (prompt, model, text, tokens) after "
                   "the gather"),
        C.row("batch peak RSS / raw SDK gather + the same calls' DataFrame",
              out["maxrss_kb"] / max(1, raw_frame["maxrss_kb"]), "ratio",
              note="the row above without pandas is the target's; this one counts pandas on "
                   "both sides"),
        C.row(f"batch of {SMALL} calls: wall / a gather of ask() (same calls)", small_ratio, "ratio",
              1.05, "<=", note=f"median of {len(small['batch'])} alternating rounds in one process, each "
                               f"after a full garbage collection: batch "
                               f"{C.median(small['batch']):.3f} s, gather of ask() "
                               f"{C.median(small['ask']):.3f} s"),
        C.row(f"batch of {SMALL} calls: CPU / a gather of ask() (same calls)", small_cpu, "ratio",
              note=f"the process's CPU over the same rounds (less moved by other processes than the "
                   f"wall): batch {C.median(small['batch_cpu']):.3f} s, gather of ask() "
                   f"{C.median(small['ask_cpu']):.3f} s"),
        C.row(f"batch of {SMALL} calls: CPU less garbage collection / the same of a gather of ask()",
              small_no_gc, "ratio",
              note=f"the rows above with the collector's time taken out of each round (per round: "
                   f"batch {min(small['batch_gc']):.3f}-{max(small['batch_gc']):.3f} s, gather of "
                   f"ask() {min(small['ask_gc']):.3f}-{max(small['ask_gc']):.3f} s)"),
        C.row("batch: llmcells process CPU per call", out["cpu"] / n * 1000, "ms",
              note="the whole client process (llmcells + SDKs + httpx); see bench_overhead for the "
                   "share over the raw SDKs"),
    ]
    if out["ok"] != n:
        rows[0]["note"] += f"; {n - out['ok']} calls failed"
    C.print_table(rows)
    return rows


if __name__ == "__main__":
    main()
    sys.exit(0)
