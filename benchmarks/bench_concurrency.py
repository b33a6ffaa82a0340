"""Concurrency: a compare over three models is as slow as its slowest model, not their sum.

    python benchmarks/bench_concurrency.py           # 3 timed runs, plus the kernel
    python benchmarks/bench_concurrency.py --quick   # 1 timed run, plus the kernel

The simulator (in this process) is set per model so that each answer takes 0.5, 1.0 and 2.0 s
(time to first token + 40 more tokens at a fixed rate). Figures:

- API: `llmcells.run(llmcells.compare(..., display=False))`: wall / the slowest model's own
  latency (its Result.latency_s, measured in the same run), median of the timed runs; and
  wall / the nominal 2.0 s.
- Kernel: a real ipykernel (jupyter_client) started with the simulator's environment; after
  `%load_ext llmcells` and one warm-up cell (SDK imports), a `%%compare --no-display` cell is
  timed from execute_request to execute_reply in this process, and inside the kernel from
  pre_run_cell to post_run_cell (IPython events).

The first compare of a session also imports the three SDKs (off the loop): a warm-up compare
of models the simulator answers at once pays for it, and is reported apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

try:
    from . import _common as C
except ImportError:  # run as a script
    import _common as C

#: model -> (ttft, tokens/s); each answer is 41 tokens: ttft + 40 / tps = the latency
LATENCIES = {"gpt-6-luna": 0.5, "claude-haiku-5-5": 1.0, "gemini-3.5-flash-lite": 2.0}
N_TOKENS = 41
#: the warm-up compare (SDK imports, clients) uses other (priced) models the simulator answers at once
WARM = ["openai:gpt-6-sol", "anthropic:claude-sonnet-4-6", "google:gemini-3.8-flash"]
#: the cold-kernel compare: three 1-second streams, the first calls of a fresh kernel
COLD = ["openai:gpt-6-astra", "anthropic:claude-opus-5", "google:gemini-3.7-flash"]  # (none shut down)


def _configure(sim) -> None:
    for name, lat in LATENCIES.items():
        ttft = lat * 0.2
        tps = (N_TOKENS - 1) / (lat - ttft)
        sim.set_model(name, ttft=ttft, tokens_per_s=tps, output_tokens=N_TOKENS)
    for model in WARM:
        sim.set_model(model.split(":", 1)[1], ttft=0.0, tokens_per_s=0, output_tokens=5)
    for model in COLD:
        sim.set_model(model.split(":", 1)[1], ttft=0.2, tokens_per_s=(N_TOKENS - 1) / 0.8,
                      output_tokens=N_TOKENS)


def _api(sim, runs: int) -> tuple[list[dict], list[str]]:
    import llmcells
    from llmcells import models

    models.set_simulator(sim.url)
    try:
        prompt = "Explain a p-value to a new analyst in one paragraph."
        t = time.perf_counter()
        c = llmcells.run(llmcells.compare(prompt, models=WARM, display=False))
        cold = time.perf_counter() - t
        assert all(r.ok for r in c.results), [(r.model, r.error) for r in c.results]
        ratios, walls, slowest = [], [], []
        for i in range(runs):
            t = time.perf_counter()
            c = llmcells.run(llmcells.compare(f"{prompt} ({i})", models=C.MODELS, display=False))
            wall = time.perf_counter() - t
            assert all(r.ok for r in c.results), [(r.model, r.error) for r in c.results]
            s = max(r.latency_s for r in c.results)
            walls.append(wall)
            slowest.append(s)
            ratios.append(wall / s)
        k = ratios.index(C.median(ratios))
        per_model = ", ".join(f"{r.model.split(':')[1]} {r.latency_s:.3f} s" for r in c.results)
        rows = [
            C.row("compare 3 models (0.5/1/2 s): wall / slowest latency", ratios[k], "ratio", 1.05, "<=",
                  note=f"median of {runs}: wall {walls[k]:.3f} s, slowest model {slowest[k]:.3f} s; "
                       f"last run per model: {per_model}"),
            C.row("compare 3 models: wall / nominal 2.0 s", walls[k] / max(LATENCIES.values()), "ratio"),
            C.row("first compare of a session (SDK imports; instant answers)", cold, "s"),
        ]
        return rows, []
    finally:
        models.set_simulator(None)


def _ok(k, code: str, **kw) -> tuple[float, dict]:
    """(request->reply seconds, reply content) of code, which must succeed."""
    seconds, content = k.timed(code, **kw)
    if content["status"] != "ok":
        raise RuntimeError(f"{content.get('ename')}: {content.get('evalue')} in {code[:80]!r}")
    return seconds, content


_HOOKS = """
import time as _t
_bench = {}
def _bench_pre(info):
    _bench['t0'] = _t.perf_counter()
def _bench_post(result):
    if (result.info.raw_cell or '').startswith('%%compare'):
        _bench['wall'] = _t.perf_counter() - _bench['t0']
get_ipython().events.register('pre_run_cell', _bench_pre)
get_ipython().events.register('post_run_cell', _bench_post)
"""


def _kernel(sim, home: str, runs: int) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in C.PROVIDER_VARS}
    env.update(C.sim_env(sim.url))
    env["LLMCELLS_HOME"] = home
    env["PYTHONPATH"] = str(C._SRC) + os.pathsep + env.get("PYTHONPATH", "")
    from llmcells.testing import Kernel

    t = time.perf_counter()
    k = Kernel(home, env=env)
    start = time.perf_counter() - t
    try:
        load, _ = _ok(k, "%load_ext llmcells")
        _ok(k, _HOOKS)
        cell = "%%compare --no-display " + " ".join(C.MODELS) + "\nExplain a p-value in one paragraph ({n})."
        warm, _ = _ok(k, cell.replace(" ".join(C.MODELS), " ".join(WARM)).replace("{n}", "warm-up"))
        ratios, res = [], []
        for i in range(runs):
            wall, _ = _ok(k, cell.replace("{n}", str(i)))
            _, content = _ok(k, "pass", user_expressions={
                "wall": "_bench['wall']",
                "slowest": "max(r.latency_s for r in _llm.results)",
                "ok": "all(r.ok for r in _llm.results)"})
            ue = {name: v["data"]["text/plain"] for name, v in content["user_expressions"].items()}
            if ue["ok"] != "True":
                raise RuntimeError("a model failed in the kernel compare")
            inner, slow = float(ue["wall"]), float(ue["slowest"])
            res.append((wall, inner, slow))
            ratios.append(wall / slow)
        j = ratios.index(C.median(ratios))
        wall, inner, slow = res[j]
        return [
            C.row("%%compare in a kernel: request->reply / slowest latency", wall / slow, "ratio", 1.05, "<=",
                  note=f"median of {runs}: execute_request->execute_reply {wall:.3f} s, slowest model "
                       f"{slow:.3f} s; warm-up cell (SDK imports) {warm:.3f} s; kernel start "
                       f"{start:.2f} s; %load_ext {load * 1000:.0f} ms (request->reply)"),
            C.row("%%compare in a kernel: wall inside the cell", inner, "s"),
            C.row("%%compare in a kernel: cell wall / slowest latency", inner / slow, "ratio", 1.05, "<="),
        ]
    finally:
        k.close()


def _cold_kernel(sim, home: str) -> list[dict]:
    """A fresh kernel: `%load_ext llmcells`, 3 s idle (the user typing), then the first %%compare
    of three 1-second streams. The warm-up started by %load_ext must have imported the SDKs."""
    from llmcells.testing import Kernel

    env = {k: v for k, v in os.environ.items() if k not in C.PROVIDER_VARS}
    env.update(C.sim_env(sim.url))
    env["PYTHONPATH"] = str(C._SRC) + os.pathsep + env.get("PYTHONPATH", "")
    k = Kernel(home, env=env)
    try:
        _ok(k, "%load_ext llmcells")
        _ok(k, _HOOKS)
        time.sleep(3.0)
        wall, _ = _ok(k, "%%compare --no-display " + " ".join(COLD) + "\nExplain a p-value in one paragraph.")
        _, content = _ok(k, "pass", user_expressions={
            "wall": "_bench['wall']", "slowest": "max(r.latency_s for r in _llm.results)",
            "ok": "all(r.ok for r in _llm.results)"})
        ue = {name: v["data"]["text/plain"] for name, v in content["user_expressions"].items()}
        if ue["ok"] != "True":
            raise RuntimeError("a model failed in the cold kernel compare")
        inner, slow = float(ue["wall"]), float(ue["slowest"])
        return [C.row("first %%compare of a fresh kernel (3 s after %load_ext): cell wall", inner, "s",
                      1.15, "<=", note=f"three 1-second streams; slowest model {slow:.3f} s; "
                                       f"execute_request->execute_reply {wall:.3f} s")]
    finally:
        k.close()


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one timed run instead of three")
    ap.add_argument("--no-kernel", action="store_true", help="skip the real-kernel part")
    args = ap.parse_args(argv)
    runs = 1 if args.quick else 3
    from llmcells.sim import Simulator

    rows: list[dict] = []
    with C.temp_home() as home:
        sim = Simulator(ttft=0.05, tokens_per_s=200).start()
        try:
            _configure(sim)
            api_rows, _ = _api(sim, runs)
            rows += api_rows
            if not args.no_kernel:
                rows += _kernel(sim, home, runs)
                rows += _cold_kernel(sim, home)
        finally:
            sim.stop()
    C.print_table(rows)
    return rows


if __name__ == "__main__":
    main()
    sys.exit(0)
