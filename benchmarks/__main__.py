"""`python -m benchmarks [--quick] [--only NAME ...]`: run every benchmark, print one table.

The exit code is 0 whenever every benchmark ran, whether or not its targets were met (a
benchmark reports; it does not gate); 1 if one of them crashed (its row says so).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import sys
import time
import traceback

from . import BENCHMARKS
from . import _common as C


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller runs (under a minute in all)")
    ap.add_argument("--only", nargs="*", metavar="NAME",
                    help="run only these (e.g. overhead batch): module names without bench_")
    ap.add_argument("-v", "--verbose", action="store_true", help="show each benchmark's own output")
    args = ap.parse_args(argv)

    groups: list[tuple[str, list[dict]]] = []
    crashed = False
    t_all = time.perf_counter()
    for title, module in BENCHMARKS:
        if args.only and module.removeprefix("bench_") not in args.only:
            continue
        print(f"running {module} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        out = io.StringIO()
        try:
            mod = importlib.import_module(f".{module}", __package__)
            with contextlib.redirect_stdout(sys.stdout if args.verbose else out):
                rows = mod.main(["--quick"] if args.quick else [])
            if module == "bench_ledger":
                for r in rows:
                    r.setdefault("op", "<")
        except Exception:
            crashed = True
            traceback.print_exc()
            rows = [{"name": f"{module} CRASHED (see stderr)", "value": float("nan"), "unit": "-",
                     "target": None, "ok": False}]
        print(f"  {module}: {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
        groups.append((f"{title} ({module}.py)", rows))
    print()
    C.print_table([], groups=groups)
    missed = [r["name"] for _, rs in groups for r in rs if r.get("target") is not None and not r["ok"]]
    print(f"\n{'quick' if args.quick else 'full'} run, {time.perf_counter() - t_all:.0f} s; "
          f"targets missed: {len(missed)}" + (f" ({'; '.join(missed)})" if missed else ""))
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
