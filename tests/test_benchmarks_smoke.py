"""`python -m benchmarks --quick` runs every benchmark and prints a row for each.

The fast tier runs one benchmark (the ledger's, a few seconds) through the same runner and
table; the slow tier runs them all (minutes). Timing targets are not asserted here: on a busy
CI machine they measure the machine. The exit code says only whether every benchmark ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


#: a row each benchmark must print (the start of its name)
EXPECTED = {
    "bench_concurrency.py": ["compare 3 models (0.5/1/2 s): wall / slowest latency",
                             "%%compare in a kernel: request->reply / slowest latency",
                             "%%compare in a kernel: wall inside the cell"],
    "bench_overhead.py": ["llmcells extra CPU per call over raw SDK", "wall ratio llmcells / raw SDK",
                          "  of which the ledger write"],
    "bench_display.py": ["llmcells card: update messages, max in any 1 s",
                         "llmcells card: CPU on the loop thread",
                         "naive widget (value per token): update messages"],
    "bench_startup.py": ["%load_ext llmcells over bare IPython", "import llmcells (fresh process)",
                         "heavy modules in sys.modules after load_ext"],
    "bench_batch.py": ["batch 501 calls, 3 models, concurrency 64: throughput",
                       "batch: peak RSS of the process", "batch: llmcells process CPU per call"],
    "bench_ledger.py": ["usage() 10,000 rows", "costs(by='model') 10,000 rows"],
    "bench_pricing.py": ["pricing per call: speed-up before / after",
                         "budget estimate error, claude-sonnet-4-6: after (learns cache)"],
    "bench_agents.py": ["claude-code ", "gemini-cli ", "codex "],
    "bench_replay.py": ["the same 90 calls replayed", "latency of a replayed call (mean)",
                        "load a 5,000-answer replay file"],
    "bench_attachments.py": ["chat: 5 MB image, llmcells", "gemini: 10,000-row DataFrame, llmcells",
                             "chat: preparation share of that call"],
    "bench_provider_jobs.py": ["provider jobs 150 calls: live wall at tier-1 limits",
                               "provider jobs: via='provider' wall, submit + wait + collect",
                               "provider jobs: cost at list prices, via='provider'",
                               "provider jobs: peak RSS, via='provider' client"],
    "bench_serve.py": ["direct ask, 50 concurrent: throughput", "POST /v1/generate, 50 concurrent: throughput",
                       "service: median latency added over a direct ask"],
    "bench_tools.py": ["tool round trip: llmcells - raw SDK", "two 0.5 s sync tools in one turn: wall",
                       "stream end with a 1 s hook + a raising hook, minus without"],
    "bench_otel.py": ["OTel per call, on the call's path", "OTel per call, all CPU",
                      "imports of opentelemetry by llmcells during a compare, tracing off"],
    "bench_ledger_pg.py": ["one committed ledger write, SQLite",
                           "one committed ledger write, PostgreSQL",
                           "costs(by=['model', 'day']) over 20,000 rows, on the server",
                           "costs(by='user') over 20,000 rows, on the server",
                           "costs(by='project') over 20,000 rows, on the server"],
}


def _quick(tmp_path, *only: str, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items()
           if not k.endswith(("_API_KEY", "_BASE_URL")) and k != "GOOGLE_GENAI_USE_VERTEXAI"}
    env["LLMCELLS_HOME"] = str(tmp_path / "home")  # never the user's ledger
    cmd = [sys.executable, "-m", "benchmarks", "--quick", *(["--only", *only] if only else [])]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "CRASHED" not in proc.stdout, proc.stdout
    return proc.stdout


def test_one_benchmark_runs_and_reports_through_the_runner(tmp_path):
    out = _quick(tmp_path, "ledger")
    _check(out, {"bench_ledger.py": EXPECTED["bench_ledger.py"]})
    assert not any(section in out for section in EXPECTED if section != "bench_ledger.py")


@pytest.mark.slow
@pytest.mark.kernel  # bench_concurrency starts a real Jupyter kernel
@pytest.mark.timeout(900)  # every benchmark once: five minutes on a busy two-core machine
def test_quick_suite_runs_and_reports_every_benchmark(tmp_path):
    _check(_quick(tmp_path, timeout=840), EXPECTED)


def _check(out: str, expected: dict[str, list[str]]) -> None:
    lines = out.splitlines()
    for section, names in expected.items():
        assert any(section in line for line in lines), f"no section for {section}:\n{out}"
        for name in names:
            rows = [line for line in lines if line.startswith(name)]
            assert rows, f"no row {name!r}:\n{out}"
            # name, figure, unit, target, meets? (yes / no / - when there is no target)
            assert rows[0].split()[-1] in ("yes", "no", "-"), rows[0]
    assert "targets missed:" in out
