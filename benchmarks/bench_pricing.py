"""Pricing: the per-call cost of pricing a finished call, before (a full genai-prices calculation per
call) and after (rates resolved once per data, model, tier and day, then multiplied); and how far
a batch's budget estimate is from what its calls then cost.

    python benchmarks/bench_pricing.py           # 20,000 pricings per model; a 60-call batch
    python benchmarks/bench_pricing.py --quick   # 5,000; a 24-call batch

Importable: `main(argv=None) -> list[dict]` returns rows {name, value, unit, target, ok}.

"Before" is the previous engine's path, kept here verbatim: the (provider, model) lookup memoised,
then genai-prices' ModelInfo.calc_price on a genai Usage for every call. "After" is
pricing.price(), which the engine calls through pricing.price_result(). Both give the same cost
(checked below, relative difference < 1e-12).

Estimate error: a real llmcells.batch on the in-process simulator, Sonnet 4.6 answering with 40k
cached input tokens per call (the simulator adds them to the prompt's own tokens) and gpt-6-luna
without cache. For each finished call (in finishing order) the estimate the budget would have made
before launching it is compared with its recorded cost: the previous estimate (characters / 4,
no cache, mean output so far) and the new one (pricing.BatchEstimator: tokens per character, cache
shares and output learnt from the calls already finished).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

_SRC = Path(__file__).resolve().parents[1] / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

CASES = [
    ("openai", "gpt-4.1-mini-2025-04-14", "gpt-4.1-mini", "default"),
    ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5", None),
    ("google", "gemini-2.5-pro", "gemini-2.5-pro", None),
]


# ----- the previous path, verbatim -----------------------------------------------------------------

@functools.lru_cache(maxsize=2048)
def _old_resolve(provider: str, name: str):
    from genai_prices.data_snapshot import get_snapshot

    try:
        return get_snapshot().find_provider_model(name, None, provider, None)
    except LookupError:
        return None


def _old_cost(provider: str, name: str, usage) -> float:
    from genai_prices import Usage as GUsage

    prov, model_info = _old_resolve(provider, name)
    values = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    if usage.cached_input_tokens:
        values["cache_read_tokens"] = usage.cached_input_tokens
    if usage.cache_write_tokens:
        values["cache_write_tokens"] = usage.cache_write_tokens
    if usage.reasoning_tokens:
        values["output_reasoning_tokens"] = usage.reasoning_tokens
    return float(model_info.calc_price(GUsage(**values), prov).total_price)


def _best_us(fn, n: int, repeat: int = 3) -> float:
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e6


def pricing_rows(n: int) -> list[dict]:
    from benchmarks._common import row
    from llmcells import pricing
    from llmcells.types import Result, Usage
    from llmcells.models import ModelSpec

    usage = Usage(input_tokens=12_000, cached_input_tokens=4_000, cache_write_tokens=0,
                  output_tokens=800, reasoning_tokens=200)
    rows, befores, afters = [], [], []
    for provider, answered, name, tier in CASES:
        old = _old_cost(provider, name, usage)
        new, _ = pricing.price(provider, answered, usage, requested=name, service_tier=tier)
        assert abs(old - new) <= 1e-12 * max(old, 1e-12), (name, old, new)
        before = _best_us(lambda: _old_cost(provider, name, usage), n)
        after = _best_us(lambda: pricing.price(provider, answered, usage, requested=name,
                                               service_tier=tier), n)
        befores.append(before)
        afters.append(after)
        spec = ModelSpec(provider, provider, name, name)
        result = Result(usage=usage, response_model=answered, service_tier=tier,
                        started_at=time.time())
        hook = _best_us(lambda: pricing.price_result(result, spec), n)
        rows.append(row(f"price one call, {name}: before (genai-prices per call)", before, "us"))
        rows.append(row(f"price one call, {name}: after (rates x tokens)", after, "us",
                        note=None))
        rows.append(row(f"price one call, {name}: engine hook price_result", hook, "us"))
    rows.append(row("pricing per call: speed-up before / after (mean of 3 models)",
                    statistics.mean(befores) / statistics.mean(afters), "x", 5.0, ">="))
    rows.append(row("pricing per call after (mean of 3 models)", statistics.mean(afters), "us",
                    50.0, "<"))
    return rows


# ----- estimate error on finished calls ------------------------------------------------------------


def _old_estimate(plan, mean_output: dict[str, float]) -> float:
    """The previous batches._estimate_cost."""
    from llmcells.pricing import estimate_cost

    chars = sum(len(m.content) for m in plan.request.messages) + len(plan.request.system or "")
    out = plan.request.max_tokens or mean_output.get(plan.spec.id, 400.0)
    return estimate_cost(plan.spec.provider, plan.spec.name, chars // 4 + 8, int(out))


def estimate_rows(calls_per_model: int) -> list[dict]:
    import warnings

    import llmcells
    from benchmarks._common import row
    from llmcells import calls, ledger, pricing
    from llmcells.config import settings
    from llmcells.sim import Simulator

    warnings.simplefilter("ignore")
    rows = []
    with Simulator(ttft=0.0, tokens_per_s=20_000) as sim:
        sim.set_model("claude-sonnet-4-6*", cached_input_tokens=40_000, output_tokens=300)
        sim.set_model("gpt-6-luna*", output_tokens=250)
        from llmcells import models

        models.set_simulator(sim.url)
        try:
            prompts = [f"Question {i}: " + "explain the bias-variance trade-off " * (3 + i % 5)
                       for i in range(calls_per_model)]
            models_ = ["anthropic:claude-sonnet-4-6", "openai:gpt-6-luna"]
            frame = llmcells.run(llmcells.batch(prompts, models=models_, display=False,
                                                concurrency=1))
        finally:
            models.set_simulator(None)
    done = ledger.usage(batch_id=frame.attrs["batch_id"])
    by_hash = {ledger.prompt_hash(p, settings.system): p for p in prompts}
    for model_id in ("anthropic:claude-sonnet-4-6", "openai:gpt-6-luna"):
        finished = done[done["model"] == model_id]  # (not `calls`: that is the module used below)
        est = pricing.BatchEstimator()
        outputs: list[int] = []
        err_old, err_new = [], []
        for rec in finished.itertuples():
            plan = calls.make_plan(by_hash[rec.prompt_hash], model_id)
            mean = {model_id: statistics.mean(outputs)} if outputs else {}
            old, new = _old_estimate(plan, mean), est.estimate(plan)
            actual = rec.cost_usd
            err_old.append(abs(old - actual) / actual)
            err_new.append(abs(new - actual) / actual)
            r = llmcells.Result(status="ok", usage=llmcells.Usage(
                input_tokens=rec.input_tokens, cached_input_tokens=rec.cached_input_tokens,
                cache_write_tokens=rec.cache_write_tokens, output_tokens=rec.output_tokens,
                reasoning_tokens=rec.reasoning_tokens))
            est.learn(plan, r)
            outputs.append(rec.output_tokens)
        name = model_id.split(":", 1)[1]
        rows.append(row(f"budget estimate error, {name}: before (no cache), mean over calls",
                        100 * statistics.mean(err_old), "%"))
        rows.append(row(f"budget estimate error, {name}: after (learns cache), mean over calls",
                        100 * statistics.mean(err_new), "%", 10.0, "<"))
        rows.append(row(f"budget estimate error, {name}: after, from the 2nd call on",
                        100 * statistics.mean(err_new[1:]), "%", 5.0, "<",
                        note=f"{len(finished)} finished {name} calls on the simulator"))
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations and calls")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as home:
        os.environ["LLMCELLS_HOME"] = home
        rows = pricing_rows(5_000 if args.quick else 20_000)
        rows += estimate_rows(12 if args.quick else 30)
        from llmcells import ledger

        ledger.close()
    for r in rows:
        print(f"{r['name']:<78} {r['value']:>10.3f} {r['unit']}")
    return rows


if __name__ == "__main__":
    out = main()
    sys.exit(0 if all(r["ok"] for r in out) else 1)
