"""Start-up: `%load_ext llmcells` over bare IPython, and `import llmcells`, in fresh processes.

    python benchmarks/bench_startup.py           # median of 5 fresh processes each
    python benchmarks/bench_startup.py --quick   # median of 3

- load_ext: a fresh `python -c` creates `InteractiveShell.instance()` (bare IPython, not timed),
  then times `run_line_magic("load_ext", "llmcells")`; it also lists which of openai, anthropic,
  google.genai, pandas and ipywidgets are in sys.modules afterwards (none should be: they load on
  first use).
- import: `import llmcells` timed in a fresh process; the slowest modules of
  `python -X importtime -c "import llmcells"` are listed in the note.
- a script's first compare: in a fresh process with keys for all three providers (the
  simulator, in its own process, answering each in 1 s), `import llmcells`, then
  `llmcells.run(llmcells.compare(...))` timed; against the time a fresh process takes to import
  the three SDKs and load what their first call loads (a client and the resource module it
  calls). Target: first compare <= SDK imports + 1 s + 0.2 s.
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

HEAVY = ["openai", "anthropic", "google.genai", "pandas", "ipywidgets", "httpx", "httpx2", "tenacity",
         "genai_prices", "pydantic"]
MUST_NOT = ["openai", "anthropic", "google.genai", "pandas", "ipywidgets"]

_LOAD_EXT = """
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
t = time.perf_counter()
shell.run_line_magic("load_ext", "llmcells")
dt = time.perf_counter() - t
print(json.dumps({"s": dt, "loaded": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)

_IMPORT = """
import json, time
t = time.perf_counter()
import llmcells
print(json.dumps({"s": time.perf_counter() - t}))
"""


_SDK_IMPORT = """
import json, time
t = time.perf_counter()
import openai, anthropic
from google import genai
# what the first raw-SDK call also loads: its client and the resource modules it calls
openai.AsyncOpenAI(api_key="k").chat.completions
anthropic.AsyncAnthropic(api_key="k").messages
genai.Client(api_key="k").aio.models
print(json.dumps({"s": time.perf_counter() - t}))
"""

_FIRST_COMPARE = """
import json, time
import llmcells
t = time.perf_counter()
c = llmcells.run(llmcells.compare("Explain a p-value in one paragraph.", display=False))
assert all(r.ok for r in c), [r.error for r in c]
print(json.dumps({"s": time.perf_counter() - t, "slowest": max(r.latency_s for r in c)}))
"""


def _first_compare(runs: int) -> list[dict]:
    with C.temp_home() as home, C.SimProcess(ttft=0.2, tps=40 / 0.8, output_tokens=41) as sim:
        env = {**_env(), **C.sim_env(sim.url), "LLMCELLS_HOME": home}
        sdk, first, slow = [], [], []
        for _ in range(runs):
            sdk.append(json.loads(_py(_SDK_IMPORT).stdout.strip().splitlines()[-1])["s"])
            out = subprocess.run([sys.executable, "-c", _FIRST_COMPARE], capture_output=True,
                                 text=True, env=env, check=True, timeout=120)
            got = json.loads(out.stdout.strip().splitlines()[-1])
            first.append(got["s"])
            slow.append(got["slowest"])
    s, f = C.median(sdk), C.median(first)
    return [C.row("a script's first compare - (SDK imports + 1 s stream)", f - s - 1.0, "s", 0.2, "<=",
                  note=f"median of {runs} fresh processes: first compare {f:.2f} s, the three SDK "
                       f"imports alone {s:.2f} s, slowest stream {C.median(slow):.2f} s")]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in C.PROVIDER_VARS}
    env["PYTHONPATH"] = str(C._SRC) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _py(code: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True,
                          env=_env(), check=True, timeout=120)


def _importtime_top(k: int = 6) -> str:
    err = _py("import llmcells", "-X", "importtime").stderr
    rows = []  # (depth, cumulative us, name), in the order printed (children before parents)
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3:
            continue
        name = parts[2][1:]
        rows.append((len(name) - len(name.lstrip()), int(parts[1]), name.strip()))
    at = max((i for i, r in enumerate(rows) if r[2] == "llmcells"), default=None)
    if at is None:
        return ""
    depth, total = rows[at][0], rows[at][1]
    children = []
    for d, cum, name in reversed(rows[:at]):
        if d <= depth:
            break
        if d == depth + 2:
            children.append((cum, name))
    top = sorted(children, reverse=True)[:k]
    return (f"-X importtime: llmcells cumulative {total / 1000:.0f} ms; biggest direct imports: "
            + ", ".join(f"{n} {c / 1000:.0f} ms" for c, n in top))


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="median of 3 processes instead of 5")
    args = ap.parse_args(argv)
    runs = 3 if args.quick else 5

    load, loaded = [], set()
    for _ in range(runs):
        out = json.loads(_py(_LOAD_EXT).stdout.strip().splitlines()[-1])
        load.append(out["s"])
        loaded.update(out["loaded"])
    imp = [json.loads(_py(_IMPORT).stdout.strip().splitlines()[-1])["s"] for _ in range(runs)]
    bad = [m for m in MUST_NOT if m in loaded]
    others = sorted(m for m in loaded if m not in MUST_NOT)
    rows = [
        C.row("%load_ext llmcells over bare IPython", C.median(load), "s", 0.15, "<=",
              note=f"median of {runs} fresh processes: " + ", ".join(f"{x * 1000:.0f}" for x in load)
                   + " ms"),
        C.row("import llmcells (fresh process)", C.median(imp), "s",
              note=f"median of {runs}; {_importtime_top()}"),
        C.row("heavy modules in sys.modules after load_ext", len(bad), "modules", 0, "<=",
              note=("none of " + ", ".join(MUST_NOT) if not bad else "loaded: " + ", ".join(bad))
                   + (f"; also loaded: {', '.join(others)}" if others else
                      "; nor httpx, httpx2, tenacity, genai_prices, pydantic")),
    ]
    rows += _first_compare(runs)
    C.print_table(rows)
    return rows


if __name__ == "__main__":
    main()
    sys.exit(0)
