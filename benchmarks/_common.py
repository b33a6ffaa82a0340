"""Shared helpers for the benchmarks: rows, the table, a simulator in its own process.

A row is a dict {name, value, unit, target, ok} (the convention of bench_ledger.py), with two
optional keys: `op` (how value compares to target: "<", "<=", ">=", ">"; default "<") and
`note` (a short remark printed under the table). `target=None` means "reported, no target";
such a row's `ok` is True and its verdict prints as "-".
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
_SRC = ROOT / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

SIM_KEY = "sim-key-not-secret"
PROVIDER_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY",
                 "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL",
                 "GOOGLE_GENAI_USE_VERTEXAI")
#: one model per provider, the way a user names them
MODELS = ["openai:gpt-6-luna", "anthropic:claude-haiku-5-5", "google:gemini-3.5-flash-lite"]

#: per-minute limits a high tier advertises (`python -m llmcells.sim --rate-limit`)
HIGH_TIER = ["openai:requests=1000000", "openai:tokens=1000000000", "anthropic:requests=1000000",
             "anthropic:tokens=1000000000", "anthropic:input-tokens=1000000000",
             "anthropic:output-tokens=1000000000"]

_OPS = {"<": lambda v, t: v < t, "<=": lambda v, t: v <= t,
        ">": lambda v, t: v > t, ">=": lambda v, t: v >= t}


def row(name: str, value: float, unit: str, target: float | None = None, op: str = "<",
        note: str | None = None) -> dict[str, Any]:
    ok = True if target is None else bool(_OPS[op](value, target))
    r = {"name": name, "value": value, "unit": unit, "target": target, "ok": ok, "op": op}
    if note:
        r["note"] = note
    return r


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        a = abs(v)
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 100:
            return f"{v:.1f}"
        if a >= 1:
            return f"{v:.3f}"
        return f"{v:.4f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def fmt_target(r: dict[str, Any]) -> str:
    if r.get("target") is None:
        return "-"
    return f"{r.get('op', '<')} {fmt_value(r['target'])}"


def verdict(r: dict[str, Any]) -> str:
    if r.get("target") is None:
        return "-"
    return "yes" if r["ok"] else "no"


def print_table(rows: list[dict[str, Any]], *, file=None, groups: list[tuple[str, list]] | None = None) -> None:
    """One table: name, figure, unit, target, meets?"""
    file = file or sys.stdout
    groups = groups if groups is not None else [("", rows)]
    all_rows = [r for _, rs in groups for r in rs]
    w = max([len("benchmark")] + [len(r["name"]) for r in all_rows]) + 2
    head = f"{'benchmark':<{w}}{'figure':>12}  {'unit':<10}{'target':<12}{'meets?':<6}"
    print(head, file=file)
    print("-" * len(head), file=file)
    notes = []
    for title, rs in groups:
        if title:
            print(f"[{title}]", file=file)
        for r in rs:
            print(f"{r['name']:<{w}}{fmt_value(r['value']):>12}  {r['unit']:<10}"
                  f"{fmt_target(r):<12}{verdict(r):<6}", file=file)
            if r.get("note"):
                notes.append(f"  - {r['name']}: {r['note']}")
    if notes:
        print("\nnotes:", file=file)
        for n in notes:
            print(n, file=file)
    file.flush()


def sim_env(url: str) -> dict[str, str]:
    """Environment variables pointing the three SDKs (and llmcells) at a simulator."""
    return {"OPENAI_BASE_URL": url + "/v1", "ANTHROPIC_BASE_URL": url, "GOOGLE_GEMINI_BASE_URL": url,
            "OPENAI_API_KEY": SIM_KEY, "ANTHROPIC_API_KEY": SIM_KEY, "GOOGLE_API_KEY": SIM_KEY}


@contextlib.contextmanager
def temp_home() -> Iterator[str]:
    """A temporary LLMCELLS_HOME (the ledger and the store), restored afterwards."""
    old = os.environ.get("LLMCELLS_HOME")
    with tempfile.TemporaryDirectory(prefix="llmcells-bench-") as tmp:
        os.environ["LLMCELLS_HOME"] = tmp
        try:
            yield tmp
        finally:
            try:
                from llmcells import ledger

                ledger.close()
            except Exception:
                pass
            if old is None:
                os.environ.pop("LLMCELLS_HOME", None)
            else:
                os.environ["LLMCELLS_HOME"] = old


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (Linux /proc; psutil elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        import psutil

        t = psutil.Process(pid).cpu_times()
        return t.user + t.system


class SimProcess:
    """`python -m llmcells.sim --port N` in its own process, so its CPU is not counted as ours."""

    def __init__(self, ttft: float = 0.0, tps: float = 0.0, output_tokens: int | None = 32):
        self.port = free_port()
        cmd = [sys.executable, "-m", "llmcells.sim", "--port", str(self.port),
               "--ttft", str(ttft), "--tps", str(tps)]
        if output_tokens is not None:
            cmd += ["--output-tokens", str(output_tokens)]
        # A high tier's per-minute limits in the headers: the simulator's default (a modest tier,
        # 50 Anthropic requests a minute) would make a batch's gate pace thousands of calls over
        # minutes, as it should against such a limit; the raw SDKs ignore the headers.
        for limit in HIGH_TIER:
            cmd += ["--rate-limit", limit]
        env = dict(os.environ)
        env["PYTHONPATH"] = str(_SRC) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"simulator exited: {self.proc.stderr.read()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("simulator did not start listening within 30 s")

    def cpu_s(self) -> float:
        return proc_cpu_s(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> "SimProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def print_rows(rows: list[dict[str, Any]]) -> None:
    print_table(rows)


def exit_code(rows: list[dict[str, Any]]) -> int:
    """Standalone runs: 0 whatever the targets (a benchmark reports; it does not gate)."""
    return 0


__all__ = ["row", "print_table", "sim_env", "temp_home", "SimProcess", "median", "MODELS",
           "SIM_KEY", "PROVIDER_VARS", "proc_cpu_s", "free_port", "ROOT", "urllib"]
