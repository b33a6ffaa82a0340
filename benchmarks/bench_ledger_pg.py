"""The shared ledger in PostgreSQL: the cost of a write per call against SQLite, and
`costs(by=["model", "day"])` over a million rows grouped on the server (target < 1 s).

    python benchmarks/bench_ledger_pg.py           # 1,000,000 rows, 500 writes
    python benchmarks/bench_ledger_pg.py --quick   # 20,000 rows, 100 writes

A PostgreSQL server is started from the Debian package's binaries (/usr/lib/postgresql/*/bin,
as tests/pg_server.py does) in a temporary folder on loopback, with its default durability
(fsync on). Writes: `ledger.record()` of one finished call, committed before it returns, one
after another, into SQLite under a temporary LLMCELLS_HOME and then into PostgreSQL. The million
rows are made by the server with generate_series (set-up, not measured), then analysed; the figure is
the best of 3 runs of costs().
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

try:
    from . import _common as C
except ImportError:  # run as a script
    import _common as C  # type: ignore[no-redef]

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


_MODELS = ["openai:gpt-4.1-mini", "openai:gpt-4o-mini", "anthropic:claude-haiku-4-5",
           "anthropic:claude-sonnet-4-5", "google:gemini-2.5-flash", "google:gemini-2.5-pro",
           "ollama:llama3.2"]
_FILL = f"""
INSERT INTO llmcells_calls (ts, call_id, session_id, provider, model, response_model, status,
    input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cost_usd, latency_s,
    ttft_s, attempts, simulated, cached, purpose, "user", host, project)
SELECT extract(epoch FROM now()) - 30 * 86400 + i * (30 * 86400.0 / %s), md5(i::text),
       'bench', split_part(m, ':', 1), m, split_part(m, ':', 2),
       CASE WHEN i %% 33 = 0 THEN 'error' ELSE 'ok' END,
       (random() * 5000)::int, (random() * 2000)::int, 0, 0,
       CASE WHEN m LIKE 'ollama:%%' THEN NULL ELSE random() / 100 END,
       0.3 + random() * 20, 0.1 + random() * 2, 1, 0, 0, 'answer',
       'user' || (i %% 12), 'host' || (i %% 5), 'project' || (i %% 4)
FROM generate_series(1, %s) AS i,
     LATERAL (SELECT (ARRAY{_MODELS!r})[1 + i %% 7] AS m) AS pick
"""


def _result(i: int):
    from llmcells.types import Result, Usage

    return Result(text="hello", model="openai:gpt-4.1-mini", provider="openai",
                  call_id=f"{i:032x}", usage=Usage(input_tokens=12, output_tokens=32),
                  cost_usd=0.0001, latency_s=0.2, ttft_s=0.05, started_at=time.time())


def _writes(n: int, offset: int) -> float:
    """Seconds per committed ledger.record() (the median of blocks of 50)."""
    import uuid

    from llmcells import ledger

    ledger.record(_result(offset), prompt="warm-up")  # connection and schema
    per = []
    for b in range(n // 50):
        t = time.perf_counter()
        for i in range(50):
            r = _result(0)
            r.call_id = uuid.uuid4().hex
            ledger.record(r, prompt=f"hello {i}")
        per.append((time.perf_counter() - t) / 50)
    return C.median(per)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    import pg_server

    if pg_server.binaries() is None:
        return [C.row("PostgreSQL not installed: skipped", math.nan, "", note="apt-get install postgresql")]
    n_rows, n_writes = (20_000, 100) if args.quick else (1_000_000, 500)
    import psycopg

    import llmcells
    from llmcells import ledger, ledger_pg

    server = pg_server.PgServer()
    rows_out = []
    try:
        server.start()
        dsn = server.new_db("bench")
        with C.temp_home():
            lite = _writes(n_writes, 1)
            llmcells.configure(ledger=dsn)
            pg = _writes(n_writes, 2)
            rows_out += [
                C.row("one committed ledger write, SQLite", lite * 1000, "ms"),
                C.row("one committed ledger write, PostgreSQL (loopback)", pg * 1000, "ms"),
                C.row("PostgreSQL write against SQLite", pg / lite, "x")]
            # a million rows, made by the server (generate_series): 7 models over 30 days
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"TRUNCATE {ledger_pg.TABLE}")
                t = time.perf_counter()
                conn.execute(_FILL, (n_rows, n_rows))
                conn.execute(f"VACUUM ANALYZE {ledger_pg.TABLE}")
                load = time.perf_counter() - t
            for by in (["model", "day"], "user", "project", "model"):
                best = math.inf
                for _ in range(3):
                    t = time.perf_counter()
                    frame = llmcells.costs(by=by)
                    best = min(best, time.perf_counter() - t)
                rows_out.append(C.row(f"costs(by={by!r}) over {n_rows:,} rows, on the server", best,
                                      "s", 1.0, note=f"{len(frame)} groups"))
            llmcells.configure(ledger=None)
            ledger_pg.close()
            rows_out.append(C.row(f"making {n_rows:,} rows on the server (set-up)", load, "s"))
    finally:
        server.destroy()
    return rows_out


if __name__ == "__main__":
    C.print_table(main(sys.argv[1:]))
