"""llmcells benchmarks, all against the built-in simulator: `python -m benchmarks [--quick]`.

Each bench_*.py module is also runnable on its own and has `main(argv) -> list[dict]` returning
rows {name, value, unit, target, ok} (plus optional `op` and `note`).
"""

#: (title, module) in the order they run
BENCHMARKS = [
    ("concurrency", "bench_concurrency"),
    ("overhead over the raw SDKs", "bench_overhead"),
    ("long answers", "bench_stream"),
    ("streaming display", "bench_display"),
    ("start-up", "bench_startup"),
    ("batch", "bench_batch"),
    ("ledger", "bench_ledger"),
    ("pricing", "bench_pricing"),
    ("replay", "bench_replay"),
    ("attachments", "bench_attachments"),
    ("provider batch jobs", "bench_provider_jobs"),
    ("HTTP service", "bench_serve"),
    ("agent CLIs", "bench_agents"),
    ("tools and hooks", "bench_tools"),
    ("OpenTelemetry", "bench_otel"),
    ("shared ledger (PostgreSQL)", "bench_ledger_pg"),
]
