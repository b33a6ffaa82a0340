"""Overhead over the raw SDKs: the same streamed calls through llmcells and through each SDK.

    python benchmarks/bench_overhead.py           # 1,000 calls per variant, best of 2 rounds
    python benchmarks/bench_overhead.py --quick   # 200 calls per variant, 1 round

The simulator runs in its own process (`python -m llmcells.sim`) with no time to first token and
no delay between tokens (32-token answers), so the client's own work is all that is left to
measure. Calls go round-robin to openai:gpt-6-luna, anthropic:claude-haiku-5-5 and
google:gemini-3.5-flash-lite, 32 in flight.

- raw: each provider's official async SDK, used as a careful user would: one client per
  provider, `asyncio.gather` under a semaphore of 32; OpenAI `chat.completions.create(stream=True,
  stream_options={"include_usage": True})`, Anthropic `messages.create(stream=True)` (the raw
  event stream, as llmcells' adapter uses it; the `messages.stream()` helper does more work),
  Gemini `aio.models.generate_content_stream`; every chunk is iterated and text and usage kept.
- llmcells: what a user writes for many concurrent calls from a script: `asyncio.gather` of
  `await llmcells.ask(prompt, model=..., display=False)` under the same semaphore, inside one
  `llmcells.run(...)`; every call priced and written to the ledger (a temporary LLMCELLS_HOME).
- llmcells without the ledger write (`ledger.write_now` and `ledger.write` replaced by no-ops),
  to show its share.
- sequential, per provider: calls one after another (as a notebook user makes them), through
  `await llmcells.ask(..., display=False)` and through the raw async client, in the same process,
  on the same event loop, against the same simulator: SEQUENTIAL per round and variant, in blocks
  of BLOCK calls that alternate between the variants. The ratio is the median of the blocks'
  ratios (each llmcells block against the raw block run just before it), and the extra CPU the
  median of their differences: a slow spell of the machine falls on both sides of a pair.
- llmcells reads each streamed event as the JSON the server sent, skipping the pydantic model the
  typed SDK call builds per event (half of the openai SDK's CPU per streamed call, more than half
  of google-genai's): OpenAI and Anthropic through the SDK's own `client.post(...,
  cast_to=object)`, Gemini through the SDK's request converter and its API client's
  `async_request_streamed` (what `generate_content_stream` calls under its models). The same
  path written by hand is measured too ("the same SDK path by hand"), so that what the engine
  itself adds (pricing, the ledger row, events, Result) stays visible. (For Gemini, llmcells
  goes one step under that method, to its API client's `_async_request`: the method reads the
  body line by line and dumps each chunk back into a string for its caller to parse again.
  The by-hand path keeps the public method, so llmcells' Gemini figure can come out below it.)
  The three providers' bodies llmcells reads with its own SSE reader (one pass over the bytes,
  the usual event taken whole), where the by-hand path keeps the SDK's stream class and its
  line-by-line decoder: a fourth variant, the by-hand path with llmcells' reader (for Gemini,
  also one step under the public method), shows what is left of llmcells' own
  CPU once that saving is set aside (the engine's pieces alone).
- sequential, fresh process: FRESH_CALLS Anthropic calls in a row in a new process per variant
  (raw SDK, llmcells), as a script makes them, the simulator named by ANTHROPIC_BASE_URL; timed
  from the import to the last answer, first call included, FRESH_PAIRS pairs (median ratio).
  llmcells' processes share one LLMCELLS_HOME, as runs of a user's script do (from the second
  on, its price file spares loading genai-prices); a third variant gets a new home each time.

Figures: process CPU time per call (time.process_time, all threads; the simulator is another
process), llmcells' extra CPU per call, and the ratio of walls. With no simulated latency the
client is CPU-bound on one event loop, so the wall difference divided by the number of calls is
the time each call adds to the loop (not multiplied by the concurrency: the calls overlap only in
waiting, not in CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

try:
    from . import _common as C
except ImportError:  # run as a script
    import _common as C

CONCURRENCY = 32


def _prompts(n: int, tag: str) -> list[tuple[str, str]]:
    return [(C.MODELS[i % 3], f"Summarise item {tag}-{i} in one sentence.") for i in range(n)]


# ----- raw SDKs ---------------------------------------------------------------------------------


def _raw_clients(url: str):
    import anthropic
    import openai
    from google import genai
    from google.genai import types as gt

    return {
        "openai": openai.AsyncOpenAI(base_url=url + "/v1", api_key=C.SIM_KEY, max_retries=0),
        "anthropic": anthropic.AsyncAnthropic(base_url=url, api_key=C.SIM_KEY, max_retries=0),
        "google": genai.Client(api_key=C.SIM_KEY, http_options=gt.HttpOptions(base_url=url)),
    }


async def _raw_call(clients, model: str, prompt: str) -> tuple[str, object]:
    provider, name = model.split(":", 1)
    parts: list[str] = []
    usage = None
    if provider == "openai":
        stream = await clients["openai"].chat.completions.create(
            model=name, messages=[{"role": "user", "content": prompt}], stream=True,
            stream_options={"include_usage": True})
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    parts.append(choice.delta.content)
            if chunk.usage is not None:
                usage = chunk.usage
    elif provider == "anthropic":
        stream = await clients["anthropic"].messages.create(
            model=name, max_tokens=1024, messages=[{"role": "user", "content": prompt}], stream=True)
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                parts.append(event.delta.text)
            elif event.type == "message_delta":
                usage = event.usage
    else:
        stream = await clients["google"].aio.models.generate_content_stream(model=name, contents=prompt)
        async for chunk in stream:
            if chunk.text:
                parts.append(chunk.text)
            if chunk.usage_metadata is not None:
                usage = chunk.usage_metadata
    return "".join(parts), usage


def _our_reader(stream, provider: str, client):
    """stream's body read by llmcells' SSE reader (with the adapter's rules for its events), in
    place of the SDK's stream class: what llmcells does under its engine."""
    import functools

    from llmcells.providers import anthropic as ours_anthropic
    from llmcells.providers import openai as ours_openai
    from llmcells.providers._sse import EventStream

    read = (ours_openai._read_event if provider == "openai"
            else functools.partial(ours_anthropic._read_event, client))
    return EventStream(stream.response, read)


async def _raw_post_call(clients, model: str, prompt: str, reader: bool = False) -> tuple[str, object]:
    """The request llmcells makes, written by hand: for OpenAI and Anthropic the SDK's own
    `client.post(..., cast_to=object)`, for Gemini the SDK's request converter and API client;
    each event read as the JSON the server sent (no pydantic model per event). reader=True reads
    the bodies with llmcells' SSE reader instead of the SDK's stream class (Gemini's: its line
    reader), as the adapters do."""
    import anthropic
    import openai

    provider, name = model.split(":", 1)
    parts: list[str] = []
    usage = None
    if provider == "openai":
        stream = await clients["openai"].post(
            "/chat/completions", cast_to=object, stream=True, stream_cls=openai.AsyncStream[object],
            body={"model": name, "messages": [{"role": "user", "content": prompt}], "stream": True,
                  "stream_options": {"include_usage": True}})
        if reader:
            stream = _our_reader(stream, provider, clients["openai"])
        async for chunk in stream:
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta")
                if delta and delta.get("content"):
                    parts.append(delta["content"])
            if chunk.get("usage"):
                usage = chunk["usage"]
    elif provider == "anthropic":
        stream = await clients["anthropic"].post(
            "/v1/messages", cast_to=object, stream=True, stream_cls=anthropic.AsyncStream[object],
            body={"model": name, "max_tokens": 1024, "stream": True,
                  "messages": [{"role": "user", "content": prompt}]})
        if reader:
            stream = _our_reader(stream, provider, clients["anthropic"])
        async for event in stream:
            kind = event.get("type")
            if kind == "content_block_delta" and event["delta"].get("type") == "text_delta":
                parts.append(event["delta"]["text"])
            elif kind == "message_delta":
                usage = event.get("usage")
    else:
        # google-genai's own request path under generate_content_stream (its converter and its
        # API client), each chunk read as JSON: what llmcells' Gemini adapter does
        from google.genai import _common as gc
        from google.genai import models as gm
        from google.genai import types as gt

        api = clients["google"].aio._api_client
        params = gt._GenerateContentParameters(model=name, contents=prompt)
        body = gm._GenerateContentParameters_to_mldev(api, params, None, params)
        path = "{model}:streamGenerateContent?alt=sse".format_map(body.pop("_url"))
        body.pop("config", None)
        body = gc.encode_unserializable_types(gc.convert_to_dict(body))
        if reader:  # the body read as the adapter reads it (llmcells' reader, for SSE)
            from llmcells.providers import google as ours_google

            response = await api._async_request(http_request=api._build_request("post", path, body, None),
                                                http_options=None, stream=True)
            chunks = (chunk async for _, chunk in ours_google._chunks(response))
        else:
            chunks = (json.loads(piece.body)
                      async for piece in await api.async_request_streamed("post", path, body, None))
        async for chunk in chunks:
            for candidate in (chunk.get("candidates") or ())[:1]:
                for part in (candidate.get("content") or {}).get("parts") or ():
                    if part.get("text"):
                        parts.append(part["text"])
            if chunk.get("usageMetadata"):
                usage = chunk["usageMetadata"]
    return "".join(parts), usage


async def _gather(call, jobs) -> list:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(model: str, prompt: str):
        async with sem:
            return await call(model, prompt)

    return await asyncio.gather(*(one(m, p) for m, p in jobs))


def _run_raw(url: str, jobs, warm) -> tuple[float, float]:
    async def go() -> tuple[float, float]:
        clients = _raw_clients(url)
        await _gather(lambda m, p: _raw_call(clients, m, p), warm)  # connections, lazy imports
        c0, t0 = time.process_time(), time.perf_counter()
        out = await _gather(lambda m, p: _raw_call(clients, m, p), jobs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert all(text for text, _ in out)
        await clients["openai"].close()
        await clients["anthropic"].close()
        await clients["google"].aio.aclose()
        return wall, cpu

    return asyncio.run(go())


# ----- llmcells ---------------------------------------------------------------------------------


def _no_write(result, **kwargs):
    import concurrent.futures

    done: concurrent.futures.Future = concurrent.futures.Future()
    done.set_result(None)
    return done


def _run_llmcells(jobs, ledger: bool = True) -> tuple[float, float]:
    import llmcells
    from llmcells import ledger as ledger_module

    async def go():
        return await _gather(lambda m, p: llmcells.ask(p, model=m, display=False), jobs)

    saved = ledger_module.write, ledger_module.write_now
    if not ledger:
        # both ways a row is written: on the calling thread when the ledger is free at once
        # (write_now, the common case), else through the writer thread (write)
        ledger_module.write = _no_write
        ledger_module.write_now = lambda result, **kwargs: True
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        out = llmcells.run(go())
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        ledger_module.write, ledger_module.write_now = saved
    bad = [r for r in out if not r.ok]
    assert not bad, (len(bad), bad[0].error)
    return wall, cpu


SEQUENTIAL = 150
BLOCK = 25  # sequential calls per block; the variants' blocks alternate


def _sequential(url: str, model: str, n: int) -> dict[str, list[tuple[float, float]]]:
    """{"raw": [(wall, cpu) per block], "raw-post": [...], "raw-post-reader": [...],
    "llmcells": [...]}: n calls in a row
    to one model per variant, in blocks of BLOCK that alternate between the variants, all on the
    same event loop (llmcells' own; the raw clients are made on it). Block i of each variant ran
    next to block i of the others, so a slower spell of the machine (a neighbour, the simulator)
    falls on all of them alike and a ratio of blocks cancels it."""
    import llmcells

    blocks = max(1, n // BLOCK)

    async def go() -> dict[str, list[tuple[float, float]]]:
        clients = _raw_clients(url)
        variants = {
            "raw": lambda p: _raw_call(clients, model, p),
            "raw-post": lambda p: _raw_post_call(clients, model, p),
            "raw-post-reader": lambda p: _raw_post_call(clients, model, p, reader=True),
            "llmcells": lambda p: llmcells.ask(p, model, display=False),
        }
        for call in variants.values():  # connections, lazy imports, the ledger
            await call("warm up")
        out: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
        for b in range(blocks):
            for name, call in variants.items():
                prompts = [f"Summarise item seq-{name}-{b}-{i} in one sentence." for i in range(BLOCK)]
                c0, t0 = time.process_time(), time.perf_counter()
                for p in prompts:
                    got = await call(p)
                    assert (got.ok and got.text) if name == "llmcells" else got[0], got
                out[name].append((time.perf_counter() - t0, time.process_time() - c0))
        await clients["openai"].close()
        await clients["anthropic"].close()
        await clients["google"].aio.aclose()
        return out

    return llmcells.run(go())


def _paired(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> tuple[float, float]:
    """(median of the blocks' wall ratios a/b, median of their CPU differences a-b per call, ms)."""
    return (C.median([x[0] / y[0] for x, y in zip(a, b)]),
            C.median([(x[1] - y[1]) / BLOCK * 1000 for x, y in zip(a, b)]))


FRESH_MODEL = "anthropic:claude-haiku-5-5"
FRESH_CALLS = 50
FRESH_PAIRS = 9        # a fresh process's wall moves by 10-20% with the machine: the median needs pairs
FRESH_PAIRS_QUICK = 5


def _fresh_child(variant: str, calls: int) -> None:
    """One variant's sequential calls in this fresh process, as a script makes them: the SDK or
    llmcells imported here, the simulator named by the environment (ANTHROPIC_BASE_URL). Prints
    the wall and CPU from the import to the last answer (the first call included)."""
    t0, c0 = time.perf_counter(), time.process_time()
    name = FRESH_MODEL.split(":", 1)[1]
    if variant == "raw":
        import anthropic

        async def go() -> None:
            client = anthropic.AsyncAnthropic(max_retries=0)
            for i in range(calls):
                stream = await client.messages.create(
                    model=name, max_tokens=1024, stream=True,
                    messages=[{"role": "user", "content": f"Summarise item fresh-{i} in one sentence."}])
                parts = [e.delta.text async for e in stream
                         if e.type == "content_block_delta" and e.delta.type == "text_delta"]
                assert parts
            await client.close()

        asyncio.run(go())
    else:
        import llmcells

        async def go() -> None:
            for i in range(calls):
                r = await llmcells.ask(f"Summarise item fresh-{i} in one sentence.", FRESH_MODEL,
                                       display=False)
                assert r.ok and r.text, r.error

        llmcells.run(go())
    print(json.dumps({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}))


def _fresh(url: str, home: str, pairs: int = FRESH_PAIRS) -> dict[str, list[tuple[float, float, float]]]:
    """{variant: [(calls wall, calls CPU, process wall)]}: `pairs` rounds of fresh processes,
    raw, llmcells, and llmcells in a new LLMCELLS_HOME, each making FRESH_CALLS sequential calls.

    llmcells' processes share one home, as a user's runs of a script do: from the second on, the
    price file there has the model's price, and genai-prices is not loaded. In a new home every
    time (the first run on a machine) it is."""
    import compileall
    import os
    import subprocess
    import tempfile

    # Bytecode as an install leaves it (pip compiles a wheel's modules): with
    # PYTHONDONTWRITEBYTECODE set and a source checkout, every child would compile llmcells anew
    # while the SDKs' bytecode sits in site-packages.
    compileall.compile_dir(str(C._SRC / "llmcells"), quiet=1)
    env = {k: v for k, v in os.environ.items() if k not in C.PROVIDER_VARS}
    env.update(C.sim_env(url))
    env["LLMCELLS_HOME"] = home
    env["PYTHONPATH"] = str(C._SRC) + os.pathsep + str(C.ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out: dict[str, list[tuple[float, float, float]]] = {"raw": [], "llmcells": [], "new-home": []}
    for _ in range(pairs):
        for variant in out:
            with tempfile.TemporaryDirectory(prefix="llmcells-bench-home-") as new_home:
                child_env = dict(env, LLMCELLS_HOME=new_home) if variant == "new-home" else env
                t = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_overhead",
                                       "--fresh-child", "raw" if variant == "raw" else "llmcells"],
                                      capture_output=True, text=True, env=child_env,
                                      cwd=str(C.ROOT), timeout=600)
                whole = time.perf_counter() - t
            if proc.returncode != 0:
                raise RuntimeError(f"fresh child {variant} failed: {proc.stderr[-3000:]}")
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            out[variant].append((got["wall"], got["cpu"], whole))
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 calls, one round")
    ap.add_argument("--calls", type=int, default=None)
    ap.add_argument("--fresh-child", metavar="VARIANT", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.fresh_child:
        _fresh_child(args.fresh_child, FRESH_CALLS)
        return []
    n = args.calls or (200 if args.quick else 1000)
    rounds = 1 if args.quick else 2

    from llmcells import models

    with C.temp_home() as home, C.SimProcess(ttft=0.0, tps=0.0, output_tokens=32) as sim:
        models.set_simulator(sim.url)
        try:
            warm = _prompts(3 * CONCURRENCY // 2, "warm")
            _run_llmcells(warm)  # SDK imports, clients, connections, pricing data, the ledger
            best: dict[str, tuple[float, float]] = {}
            for r in range(rounds):
                jobs = _prompts(n, f"r{r}")
                for name, fn in (("raw", lambda: _run_raw(sim.url, jobs, warm)),
                                 ("llmcells", lambda: _run_llmcells(jobs)),
                                 ("no-ledger", lambda: _run_llmcells(jobs, ledger=False))):
                    wall, cpu = fn()
                    b = best.get(name)
                    best[name] = (min(wall, b[0]), min(cpu, b[1])) if b else (wall, cpu)
            sim_cpu = sim.cpu_s()
            seq = {model: _sequential(sim.url, model, SEQUENTIAL * rounds if not args.quick else 75)
                   for model in C.MODELS}
            fresh = _fresh(sim.url, home, FRESH_PAIRS_QUICK if args.quick else FRESH_PAIRS)
        finally:
            models.set_simulator(None)
    (rw, rc), (lw, lc), (nw, nc) = best["raw"], best["llmcells"], best["no-ledger"]
    per = lambda x: x / n * 1000  # noqa: E731
    how = f"{n:,} calls, {CONCURRENCY} in flight, best of {rounds}"
    rows = [
        C.row("raw SDKs: CPU per call", per(rc), "ms", note=f"{how}; wall {rw:.3f} s "
              f"({n / rw:,.0f} calls/s); llmcells.ask wall {lw:.3f} s, without ledger {nw:.3f} s; "
              f"simulator process CPU in all {sim_cpu:.1f} s"),
        C.row("llmcells.ask (gather in llmcells.run): CPU per call", per(lc), "ms"),
        C.row("llmcells extra CPU per call over raw SDK", per(lc - rc), "ms", 1.0, "<"),
        C.row("  of which the ledger write", per(lc - nc), "ms"),
        C.row("llmcells extra wall per call over raw SDK", per(lw - rw), "ms", 1.0, "<"),
        C.row("wall ratio llmcells / raw SDK", lw / rw, "ratio", 1.05, "<="),
    ]
    for model, got in seq.items():
        m = len(got["raw"]) * BLOCK
        per_call = {k: sum(w for w, _ in v) / m * 1000 for k, v in got.items()}
        ratio, extra = _paired(got["llmcells"], got["raw"])
        by_hand, engine = _paired(got["llmcells"], got["raw-post"])
        _, pieces = _paired(got["llmcells"], got["raw-post-reader"])
        rows += [
            C.row(f"{model}: sequential call, llmcells / the same SDK path by hand", by_hand, "ratio",
                  note=f"{model}: the SDK's request path by hand (JSON events) {per_call['raw-post']:.2f} "
                       f"ms per call, {per_call['raw-post-reader']:.2f} ms with llmcells' SSE reader"),
            C.row(f"{model}: llmcells' own CPU per call over the SDK path by hand", engine, "ms", 0.3,
                  "<=", note=f"{model}: the engine, pricing and the ledger, less what llmcells' SSE "
                             f"reader saves on the SDK's stream class; over the path by hand with "
                             f"that reader too: {pieces:.2f} ms (the engine's pieces alone)"),
            C.row(f"{model}: sequential call, llmcells / raw SDK", ratio, "ratio", 1.05, "<=",
                  note=f"{model}: {m} calls in a row per variant, in alternating blocks of {BLOCK}: "
                       f"raw {per_call['raw']:.2f} ms, llmcells {per_call['llmcells']:.2f} ms per call; "
                       f"median of the {len(got['raw'])} blocks' ratios"),
            C.row(f"{model}: sequential call, extra CPU", extra, "ms", 0.5, "<"),
        ]
    med = lambda v, k: C.median([x[k] for x in v])  # noqa: E731
    fr, fl, fn = fresh["raw"], fresh["llmcells"], fresh["new-home"]
    rows += [
        C.row(f"{FRESH_MODEL}: {FRESH_CALLS} sequential calls, fresh process, llmcells / raw SDK",
              C.median([a[0] / b[0] for a, b in zip(fl, fr)]), "ratio", 1.05, "<=",
              note=f"{len(fresh['raw'])} pairs of fresh processes (raw, then llmcells), the simulator "
                   f"named by ANTHROPIC_BASE_URL; from the import to the last answer, first call "
                   f"included: raw {med(fr, 0):.3f} s wall / {med(fr, 1):.3f} s CPU, llmcells "
                   f"{med(fl, 0):.3f} s / {med(fl, 1):.3f} s; whole process (interpreter start "
                   f"included): raw {med(fr, 2):.3f} s, llmcells {med(fl, 2):.3f} s"),
        C.row(f"{FRESH_MODEL}: fresh process, llmcells / raw SDK, CPU (import to last answer)",
              C.median([a[1] / b[1] for a, b in zip(fl, fr)]), "ratio",
              note="the CPU ratio is less moved than the wall by other processes on the machine"),
        C.row(f"{FRESH_MODEL}: fresh process, llmcells / raw SDK, whole process wall",
              C.median([a[2] / b[2] for a, b in zip(fl, fr)]), "ratio"),
        C.row(f"{FRESH_MODEL}: fresh process in a new LLMCELLS_HOME, llmcells / raw SDK",
              C.median([a[0] / b[0] for a, b in zip(fn, fr)]), "ratio",
              note="a new home for every process (the first run on a machine): no price file, so "
                   f"genai-prices is loaded; {med(fn, 0):.3f} s wall / {med(fn, 1):.3f} s CPU, "
                   f"CPU ratio {C.median([a[1] / b[1] for a, b in zip(fn, fr)]):.3f}"),
    ]
    C.print_table(rows)
    return rows


if __name__ == "__main__":
    main()
    sys.exit(0)
