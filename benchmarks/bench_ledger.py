"""Ledger speed: usage() and costs() over a ledger of 100,000 calls, and one call's commit into it.

    python benchmarks/bench_ledger.py           # 100,000 rows
    python benchmarks/bench_ledger.py --quick   # 10,000 rows

Importable: `main(argv=None) -> list[dict]` returns rows {name, value, unit, target, ok}.
The rows are inserted into a temporary LLMCELLS_HOME with ledger.insert_rows (one transaction);
each read figure is the best of 3 runs.

The commit rows: one row per transaction (`insert_rows([row])`, the commit a call makes), into
that ledger, with llmcells' call ids (time-ordered, `calls.new_call_id`) and, side by side, with
random version-4 ids (what call ids were before): COMMITS of each, in alternating blocks, CPU and
wall per commit (median of the blocks). A random id goes in at a random page of the unique index
on call_id; a time-ordered one at its end.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

# Runnable from a checkout without installing.
_SRC = Path(__file__).resolve().parents[1] / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

MODELS = [
    ("openai", "openai:gpt-4.1-mini", "gpt-4.1-mini-2025-04-14"),
    ("openai", "openai:gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    ("anthropic", "anthropic:claude-haiku-4-5", "claude-haiku-4-5-20251001"),
    ("anthropic", "anthropic:claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
    ("google", "google:gemini-2.5-flash", "gemini-2.5-flash"),
    ("google", "google:gemini-2.5-pro", "gemini-2.5-pro"),
    ("ollama", "ollama:llama3.2", "llama3.2"),
]
STATUSES = ["ok"] * 95 + ["error"] * 3 + ["cancelled", "incomplete"]


def _rows(n: int, seed: int = 0):
    rng = random.Random(seed)
    start = time.time() - 30 * 86400
    step = 30 * 86400 / n
    sessions = [uuid.uuid4().hex for _ in range(20)]
    for i in range(n):
        provider, model, answered = MODELS[i % len(MODELS)]
        status = rng.choice(STATUSES)
        inp = rng.randint(10, 5000)
        out = rng.randint(1, 2000) if status == "ok" else 0
        lat = rng.uniform(0.3, 20.0)
        ttft = rng.uniform(0.1, min(lat, 2.0))
        yield {
            "ts": start + i * step,
            "call_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "group_id": f"g{i // 3}" if i % 2 else None,
            "batch_id": f"b{i // 1000}" if i % 5 == 0 else None,
            "session_id": sessions[i % len(sessions)],
            "cell": i % 200 if i % 4 else None,
            "provider": provider,
            "model": model,
            "response_model": answered,
            "status": status,
            "error_kind": "rate_limited" if status == "error" else None,
            "error": "429 Too Many Requests" if status == "error" else None,
            "input_tokens": inp,
            "cached_input_tokens": inp // 4 if i % 3 == 0 else 0,
            "output_tokens": out,
            "reasoning_tokens": out // 3 if i % 7 == 0 else 0,
            "cost_usd": math.nan if provider == "ollama" else (inp * 1.0 + out * 5.0) / 1e6,
            "price_source": None if provider == "ollama" else "genai-prices 0.2.3",
            "latency_s": lat,
            "ttft_s": ttft,
            "tokens_per_s": out / (lat - ttft) if lat > ttft and out else None,
            "attempts": 1,
            "sample": 0,
            "prompt_hash": "%064x" % rng.getrandbits(256),
            "prompt_preview": f"Summarise document number {i} in three bullet points",
        }


def _best_of(fn, n: int = 3) -> float:
    best = math.inf
    for _ in range(n):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


COMMITS = 2000
BLOCK = 200


def _commits(ledger, n: int) -> list[dict]:
    """Per-commit CPU and wall of a call's row (ledger.write_now, the engine's commit), with
    time-ordered ids against random ones."""
    from llmcells.calls import new_call_id
    from llmcells.types import Result, Usage

    ids = {"time-ordered": new_call_id, "random (v4)": lambda: uuid.uuid4().hex}
    got: dict[str, list[tuple[float, float]]] = {k: [] for k in ids}
    for _ in range(COMMITS // BLOCK):
        for kind, make in ids.items():
            results = [Result(text="An answer of a few words.", model="anthropic:claude-haiku-5-5",
                              provider="anthropic", response_model="claude-haiku-5-5",
                              usage=Usage(input_tokens=12, output_tokens=32), cost_usd=0.0001,
                              latency_s=0.5, ttft_s=0.1, status="ok", attempts=1,
                              call_id=make(), started_at=time.time(),
                              price_source="genai-prices 0.2.5") for _ in range(BLOCK)]
            c, t = time.process_time(), time.perf_counter()
            for r in results:
                if not ledger.write_now(r, prompt="Summarise item 1 in one sentence."):
                    ledger.write(r, prompt="Summarise item 1 in one sentence.").result()
            got[kind].append(((time.process_time() - c) / BLOCK * 1e6,
                              (time.perf_counter() - t) / BLOCK * 1e6))
    out = []
    for kind, blocks in got.items():
        for i, what in ((0, "CPU"), (1, "wall")):
            v = sorted(b[i] for b in blocks)[len(blocks) // 2]
            out.append({"name": f"one call's commit into {n:,} rows, {kind} ids: {what}",
                        "value": round(v, 1), "unit": "us", "target": None, "ok": True})
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10,000 rows instead of 100,000")
    ap.add_argument("--rows", type=int, default=None, help="number of rows (overrides --quick)")
    args = ap.parse_args(argv)
    n = args.rows or (10_000 if args.quick else 100_000)
    scale = n / 100_000

    old_home = os.environ.get("LLMCELLS_HOME")
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="llmcells-bench-") as tmp:
        os.environ["LLMCELLS_HOME"] = tmp
        try:
            from llmcells import ledger

            t = time.perf_counter()
            ledger.insert_rows(_rows(n))
            setup = time.perf_counter() - t

            import pandas  # noqa: F401  (import time is not the figure measured)

            df = ledger.usage()
            assert len(df) == n, (len(df), n)
            figures = [
                (f"usage() {n:,} rows", lambda: ledger.usage(), 1.0 * max(scale, 0.1)),
                (f"costs(by='model') {n:,} rows", lambda: ledger.costs(by="model"),
                 1.0 * max(scale, 0.1)),
                (f"costs(by=['day','model']) {n:,} rows",
                 lambda: ledger.costs(by=["day", "model"]), 1.0 * max(scale, 0.1)),
                (f"usage(since='1 day') {n:,} rows", lambda: ledger.usage(since="1 day"),
                 0.2 * max(scale, 0.1)),
            ]
            results.append({"name": f"insert_rows {n:,} rows (setup)", "value": round(setup, 4),
                            "unit": "s", "target": None, "ok": True})
            for name, fn, target in figures:
                v = _best_of(fn)
                results.append({"name": name, "value": round(v, 4), "unit": "s",
                                "target": round(target, 3), "ok": v < target})
            results += _commits(ledger, n)  # (after the reads: they would read its rows in the WAL)
            ledger.close()
        finally:
            if old_home is None:
                os.environ.pop("LLMCELLS_HOME", None)
            else:
                os.environ["LLMCELLS_HOME"] = old_home

    for r in results:
        target = f"< {r['target']} {r['unit']}" if r["target"] is not None else "-"
        verdict = "" if r["target"] is None else ("OK" if r["ok"] else "MISSED")
        print(f"{r['name']:<62} {r['value']:>9.4f} {r['unit']}   target {target:<10} {verdict}")
    return results


if __name__ == "__main__":
    rows = main()
    sys.exit(0 if all(r["ok"] for r in rows) else 1)
