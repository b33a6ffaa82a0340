"""A 10,000-call job live (at tier-1 rate limits) versus via="provider" (batch APIs), in the simulator.

    python benchmarks/bench_provider_jobs.py           # 10,000 calls (3,334 prompts x 3 models)
    python benchmarks/bench_provider_jobs.py --quick   # 150 calls (50 x 3)

Both runs plan the same batch (prompts x [gpt-6-luna, claude-haiku-5-5, gemini-3.5-flash-lite]),
each in a fresh child process against one simulator process (no time to first token, 32-token
answers), so that each child's peak RSS (VmHWM) is its own.

- live: `llmcells.batch(...)` with per-provider client rate limits at published tier-1 levels
  (OpenAI 500 RPM, Anthropic 50 RPM, Gemini 1,000 RPM), time-compressed by COMPRESS (one real
  minute = one simulated second), so the slowest provider sets the wall time. "Real-time
  equivalent" is the wall times COMPRESS.
- provider: `llmcells.batch(..., via="provider")`, then `job.wait()`: upload/create, poll,
  collect. The simulator's batch clock is a setting (validate 1 s, run 10 s, finalize 1 s), not a
  measurement of the providers' turnaround (up to 24 h by their terms), so the rows report the
  client's own work: submitting and collecting.

Cost at list prices: the sum of cost_usd of each run (standard prices live, batch prices for
the provider job), from genai-prices.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request

try:
    from . import _common as C
except ImportError:  # run as a script
    import _common as C

COMPRESS = 60.0
TIER1_RPM = {"openai": 500, "anthropic": 50, "google": 1000}


def _peak_rss_kb() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _child(mode: str, calls: int) -> None:
    import time

    import llmcells

    n_prompts = -(-calls // len(C.MODELS))
    prompts = [f"Classify the sentiment of review {i}: 'fine, I guess'." for i in range(n_prompts)]
    limits = {p: {"rps": rpm * COMPRESS / 60.0} for p, rpm in TIER1_RPM.items()}
    t = time.perf_counter()
    if mode == "live":
        df = llmcells.run(llmcells.batch(prompts, models=C.MODELS, concurrency=64, limits=limits,
                                         display=False))
        submit = collect = None
    else:
        job = llmcells.run(llmcells.batch(prompts, models=C.MODELS, via="provider", display=False))
        submit = time.perf_counter() - t
        t1 = time.perf_counter()
        df = job.wait()
        collect = time.perf_counter() - t1
    wall = time.perf_counter() - t
    print(json.dumps({"calls": len(df), "ok": int((df["status"] == "ok").sum()), "wall": wall,
                      "submit": submit, "wait": collect, "cost": float(df["cost_usd"].sum()),
                      "maxrss_kb": _peak_rss_kb()}))


def _run(mode: str, url: str, calls: int, home: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in C.PROVIDER_VARS}
    env.update(C.sim_env(url), LLMCELLS_HOME=os.path.join(home, mode))
    os.makedirs(env["LLMCELLS_HOME"], exist_ok=True)
    env["PYTHONPATH"] = str(C._SRC) + os.pathsep + str(C.ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_provider_jobs", "--child", mode,
                           "--calls", str(calls)], capture_output=True, text=True, env=env,
                          cwd=str(C.ROOT), timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} child failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="150 calls instead of 10,000")
    ap.add_argument("--calls", type=int, default=None)
    ap.add_argument("--child", metavar="MODE", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    calls = args.calls or (150 if args.quick else 10_000)
    if args.child:
        _child(args.child, calls)
        return []

    with C.temp_home() as home, C.SimProcess(ttft=0.0, tps=0.0, output_tokens=32) as sim:
        run_s = 1.0 if args.quick else 10.0
        req = urllib.request.Request(sim.url + "/_sim/batches/config", method="POST",
                                     data=json.dumps({"validate_s": 1.0, "run_s": run_s,
                                                      "finalize_s": 1.0}).encode())
        urllib.request.urlopen(req, timeout=10).read()
        live = _run("live", sim.url, calls, home)
        prov = _run("provider", sim.url, calls, home)
    n = live["calls"]
    per_model = n / len(C.MODELS)
    floor = max(per_model / (rpm * COMPRESS / 60.0) for rpm in TIER1_RPM.values())
    rows = [
        C.row(f"provider jobs {n:,} calls: live wall at tier-1 limits (x{COMPRESS:g} compressed)",
              live["wall"], "s",
              note=f"the rate limits alone need {floor:.0f} s here, i.e. {floor:.0f} min of real time "
                   f"(Anthropic's 50 RPM); above that, this machine's CPU; {live['ok']:,} ok"),
        C.row("provider jobs: via='provider' wall, submit + wait + collect", prov["wall"], "s",
              note=f"submit {prov['submit']:.2f} s; wait+collect {prov['wait']:.2f} s, of which the "
                   f"simulator's batch clock {run_s + 2:g} s; {prov['ok']:,} ok"),
        C.row("provider jobs: cost at list prices, live", live["cost"], "USD"),
        C.row("provider jobs: cost at list prices, via='provider'", prov["cost"], "USD",
              note=f"{prov['cost'] / live['cost'] * 100:.0f}% of live" if live["cost"] else ""),
        C.row("provider jobs: peak RSS, live client", live["maxrss_kb"] / 1024, "MiB"),
        C.row("provider jobs: peak RSS, via='provider' client", prov["maxrss_kb"] / 1024, "MiB"),
    ]
    C.print_table(rows)
    return rows


if __name__ == "__main__":
    main()
    sys.exit(0)
