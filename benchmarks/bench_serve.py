"""The HTTP service's cost: requests/s and added latency of POST /v1/generate over a direct ask.

    python benchmarks/bench_serve.py           # 1,000 calls per variant
    python benchmarks/bench_serve.py --quick   # 200 calls per variant

The simulator runs in its own process (50 ms to the first token, 32-token answers sent at once).
50 concurrent clients, each making calls one after another:

- direct: `await llmcells.ask(prompt, model, display=False)` in this process (one llmcells.run
  of 50 workers), every call recorded in a temporary ledger;
- service: `python -m llmcells serve` in its own process (same simulator, same kind of ledger),
  driven by 50 httpx.AsyncClient workers posting JSON to /v1/generate.

Figures: throughput of each, the median and p95 per-call latency (client wall, request to
answer), and the median latency the service adds. Both sides share the machine's cores with the
simulator, so on a busy machine the figures measure the machine too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

try:
    from . import _common as C
except ImportError:  # run as a script
    import _common as C

CLIENTS = 50
SEQUENTIAL = 60
MODELS = ["chatgpt", "claude", "gemini"]
TOKEN = "bench-serve-token"


def _p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(0.95 * len(s)))]


async def _workers(n: int, call, clients: int = CLIENTS) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    ok = 0
    counter = iter(range(n))

    async def worker() -> None:
        nonlocal ok
        for i in counter:
            t = time.perf_counter()
            good = await call(i)
            latencies.append(time.perf_counter() - t)
            ok += good
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - t0, latencies, ok


def _direct(n: int, clients: int = CLIENTS) -> tuple[float, list[float], int]:
    import llmcells

    async def call(i: int) -> bool:
        r = await llmcells.ask(f"Summarise item d-{i}.", MODELS[i % 3], display=False)
        return r.ok

    llmcells.run(_workers(10, call))  # warm-up: SDK imports, clients
    return llmcells.run(_workers(n, call, clients))


def _service(url: str, n: int, clients: int = CLIENTS) -> tuple[float, list[float], int]:
    import httpx

    async def go():
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits,
                                     headers={"authorization": f"Bearer {TOKEN}"}) as client:
            async def call(i: int) -> bool:
                r = await client.post("/v1/generate", json={"prompt": f"Summarise item s-{i}.",
                                                            "model": MODELS[i % 3]})
                return r.status_code == 200 and r.json()["status"] == "ok"

            await _workers(10, call)  # warm-up
            return await _workers(n, call, clients)

    return asyncio.run(go())


def _start_service(sim_url: str, home: str) -> tuple[subprocess.Popen, str]:
    import httpx

    port = C.free_port()
    env = {k: v for k, v in os.environ.items() if k not in C.PROVIDER_VARS}
    env.update(C.sim_env(sim_url), LLMCELLS_HOME=home,
               PYTHONPATH=str(C._SRC) + os.pathsep + env.get("PYTHONPATH", ""))
    # the token as a client of the real service sends it; no per-client limits, since all
    # 50 workers come from this one address
    proc = subprocess.Popen([sys.executable, "-m", "llmcells", "serve", "--port", str(port),
                             "--token", TOKEN, "--rate-limit", "0", "--max-concurrent", "0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited: {proc.stderr.read()[-2000:]}")
        try:
            httpx.get(url + "/livez", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the service did not start within 60 s")


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 calls per variant instead of 1,000")
    ap.add_argument("--calls", type=int, default=None)
    args = ap.parse_args(argv)
    n = args.calls or (200 if args.quick else 1000)
    with C.temp_home() as home, C.SimProcess(ttft=0.05, tps=0.0, output_tokens=32) as sim:
        saved = {k: os.environ.pop(k) for k in C.PROVIDER_VARS if k in os.environ}
        os.environ.update(C.sim_env(sim.url))
        try:
            d_wall, d_lat, d_ok = _direct(n)
            _, d1_lat, _ = _direct(SEQUENTIAL, 1)
        finally:
            for k in C.sim_env(sim.url):
                os.environ.pop(k, None)
            os.environ.update(saved)
        proc, url = _start_service(sim.url, os.path.join(home, "service"))
        try:
            s_wall, s_lat, s_ok = _service(url, n)
            _, s1_lat, _ = _service(url, SEQUENTIAL, 1)
        finally:
            proc.terminate()
            proc.wait(10)
    added = C.median(s_lat) - C.median(d_lat)
    rows = [
        C.row(f"direct ask, {CLIENTS} concurrent: throughput", n / d_wall, "calls/s",
              note=f"{d_ok}/{n} ok; latency median {C.median(d_lat) * 1000:.1f} ms, "
                   f"p95 {_p95(d_lat) * 1000:.1f} ms"),
        C.row(f"POST /v1/generate, {CLIENTS} concurrent: throughput", n / s_wall, "calls/s",
              note=f"{s_ok}/{n} ok; latency median {C.median(s_lat) * 1000:.1f} ms, "
                   f"p95 {_p95(s_lat) * 1000:.1f} ms"),
        C.row("service: median latency added over a direct ask", added * 1000, "ms",
              note=f"at {CLIENTS} clients the added latency is mostly queueing: latency ~ clients / "
                   "throughput"),
        C.row("service: median latency added, one client at a time",
              (C.median(s1_lat) - C.median(d1_lat)) * 1000, "ms",
              note=f"{SEQUENTIAL} sequential calls each: direct median {C.median(d1_lat) * 1000:.1f} ms, "
                   f"service {C.median(s1_lat) * 1000:.1f} ms"),
        C.row("service: throughput / direct", (n / s_wall) / (n / d_wall), "x"),
    ]
    C.print_table(rows)
    return rows


if __name__ == "__main__":
    main()
