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
call is in the note, for scale. Every call is priced, written to the ledger and kept in the
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
    args = ap.parse_args(argv)
    calls = args.calls or (500 if args.quick else 5000)
    if args.child:
        _child(args.child, calls)
        return []

    with C.temp_home() as home, C.SimProcess(ttft=0.0, tps=0.0, output_tokens=32) as sim:
        env = {k: v for k, v in os.environ.items() if k not in C.PROVIDER_VARS}
        env["LLMCELLS_HOME"] = home
        env["PYTHONPATH"] = str(C._SRC) + os.pathsep + str(C.ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        sim0 = sim.cpu_s()
        proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_batch", "--child", sim.url,
                               "--calls", str(calls)], capture_output=True, text=True, env=env,
                              cwd=str(C.ROOT), timeout=1800)
        sim_cpu = sim.cpu_s() - sim0
        if proc.returncode != 0:
            raise RuntimeError(f"batch child failed: {proc.stderr[-3000:]}")
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    n = out["calls"]
    rows = [
        C.row(f"batch {n:,} calls, 3 models, concurrency {CONCURRENCY}: throughput", n / out["wall"],
              "calls/s", note=f"wall {out['wall']:.2f} s, {out['ok']:,} ok; simulator process CPU "
                              f"{sim_cpu / n * 1000:.2f} ms/call (warm-up included)"),
        C.row("batch: peak RSS of the process", out["maxrss_kb"] / 1024, "MiB"),
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
