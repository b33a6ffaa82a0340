"""Agent CLIs on the simulator: start-up to first token and memory per process, llmcells vs the
raw CLI side by side.

    python benchmarks/bench_agents.py           # median of 5 runs per CLI
    python benchmarks/bench_agents.py --quick   # median of 3

- llmcells: `llmcells.ask("...", model="claude-code:..." / "gemini-cli:..." / "codex:...")` on
  the simulator (first token after 0.05 s); the figure is Result.ttft_s, from the moment the
  call is sent (the CLI's process start included) to the first answer text.
- raw: the same CLI started by hand with the same flags and environment (Claude Code through
  `claude_agent_sdk.ClaudeSDKClient`, Gemini CLI as a subprocess, Codex's `app-server` driven
  over stdio), timed from start to the first answer text.
- memory: the peak resident memory of every process working in the call's folder (the CLI and
  whatever it started), sampled every 20 ms during an llmcells call.
- start-up overhead shown on the card: Claude Code's duration_ms - duration_api_ms; for Gemini CLI
  and Codex, wall time minus the run (turn) duration they report.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

try:
    from . import _common as C
except ImportError:  # run as a script
    import _common as C

AGENTS = {"claude-code": "claude-code:claude-sonnet-4-6", "gemini-cli": "gemini-cli:gemini-3.5-flash-lite",
          "codex": "codex:gpt-5.5-codex"}


def _rss_in(folder: str) -> int:
    """Resident memory (bytes) of every process whose working folder is folder."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{pid}/cwd") != folder:
                continue
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class _Peak(threading.Thread):
    def __init__(self, folder: str):
        super().__init__(daemon=True)
        self.folder, self.peak, self.done = folder, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, _rss_in(self.folder))


def _raw_ttft(agent: str, model: str, sim_url: str) -> float:
    """Seconds from starting the CLI by hand to its first answer text."""
    from llmcells.models import SIMULATOR_KEY, resolve
    from llmcells.providers import _agents, get_provider
    from llmcells.providers.base import ClientOptions
    from llmcells.types import Message, Request

    spec = resolve(model)
    client = get_provider(spec.adapter).make_client(ClientOptions(spec.base_url, SIMULATOR_KEY))
    request = Request(spec=spec, messages=[Message("user", "Say hello")])
    opts = _agents.AgentOptions(cwd=tempfile.mkdtemp(prefix="bench-agent-"), tools=False)
    if agent == "claude-code":
        from claude_agent_sdk import ClaudeSDKClient, StreamEvent

        from llmcells.providers import claude_code

        async def go() -> float:
            t0 = time.perf_counter()
            async with ClaudeSDKClient(claude_code._options(client, request, opts)) as c:
                await c.query("Say hello")
                first = None
                async for m in c.receive_response():
                    if first is None and isinstance(m, StreamEvent) and \
                            m.event.get("type") == "content_block_delta":
                        first = time.perf_counter() - t0
                return first if first is not None else float("nan")
        return asyncio.run(go())
    if agent == "gemini-cli":
        home = tempfile.mkdtemp(prefix="bench-gemini-home-")
        from llmcells.providers import gemini_cli

        gemini_cli._make_home(False)(home)
        env = _agents.clean_env(HOME=home, GEMINI_API_KEY=SIMULATOR_KEY, GOOGLE_GEMINI_BASE_URL=sim_url,
                                GEMINI_CLI_TRUST_WORKSPACE="true", GEMINI_CLI_NO_RELAUNCH="true")
        argv = [client.path, "-p", "Say hello", "-o", "stream-json", "-m", spec.name]
        marker = b'"role":"assistant"'
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=opts.cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        first = float("nan")
        assert proc.stdout is not None
        for line in proc.stdout:
            if marker in line:
                first = time.perf_counter() - t0
                break
        proc.stdout.read()
        proc.wait()
        return first
    return _raw_codex(client, request, opts)


def _raw_codex(client, request, opts) -> float:
    """`codex app-server` driven by hand: initialize, thread/start, turn/start, first delta."""
    import json

    from llmcells.models import SIMULATOR_KEY
    from llmcells.providers import _agents, codex

    env = _agents.clean_env(CODEX_HOME=tempfile.mkdtemp(prefix="bench-codex-home-"),
                            OPENAI_API_KEY=SIMULATOR_KEY)
    t0 = time.perf_counter()
    proc = subprocess.Popen(codex.argv_for(client), env=env, cwd=opts.cwd, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
    assert proc.stdin is not None and proc.stdout is not None

    def send(message: dict) -> None:
        proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()

    send({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "bench", "version": "1"}}})
    send({"method": "initialized"})
    send({"id": 2, "method": "thread/start", "params": codex.thread_params(request, opts)})
    first = float("nan")
    for line in proc.stdout:
        msg = json.loads(line)
        if msg.get("id") == 2 and "result" in msg:
            send({"id": 3, "method": "turn/start",
                  "params": codex.turn_params(msg["result"]["thread"]["id"], request)})
        elif msg.get("method") == "item/agentMessage/delta":
            first = time.perf_counter() - t0
            break
    proc.terminate()
    proc.wait()
    return first


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    runs = 3 if args.quick else 5

    import llmcells
    from llmcells import agents

    # the CLIs installed next to this Python (npm install -g --prefix <venv>) count as on PATH
    os.environ["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"
    rows = []
    installed = {a["agent"]: a for a in agents.available()}
    with C.temp_home():
        sim = llmcells.simulate(ttft=0.05, tokens_per_s=200, output_tokens=60)
        for agent, model in AGENTS.items():
            item = installed[agent]
            if not item["installed"]:
                rows.append(C.row(f"{agent}: not installed", float("nan"), "", note=item["install"]))
                continue
            ttfts, peaks, startups = [], [], []
            for _ in range(runs):
                cwd = tempfile.mkdtemp(prefix="bench-agent-")
                peak = _Peak(os.path.realpath(cwd))
                peak.start()
                r = llmcells.run(llmcells.ask("Say hello", model=model, display=False,
                                              params={"cwd": cwd}))
                peak.done.set()
                peak.join()
                if r.ok and r.ttft_s is not None:
                    ttfts.append(r.ttft_s)
                    peaks.append(peak.peak / 1e6)
                    if (r.agent or {}).get("startup_s") is not None:
                        startups.append(r.agent["startup_s"])
            raws = [_raw_ttft(agent, model, sim.url) for _ in range(runs)]
            label = f"{agent} {item['version']}"
            med = statistics.median(ttfts) if ttfts else float("nan")
            rows.append(C.row(f"{label}: start-up to first token, llmcells", med, "s",
                              note=f"{agent}: median of {len(ttfts)} ok runs of {runs}"))
            rows.append(C.row(f"{label}: start-up to first token, raw CLI", statistics.median(raws), "s"))
            rows.append(C.row(f"{label}: peak memory of the CLI's processes",
                              statistics.median(peaks) if peaks else float("nan"), "MB"))
            if startups:
                rows.append(C.row(f"{label}: start-up overhead shown on the card",
                                  statistics.median(startups), "s"))
    return rows


if __name__ == "__main__":
    C.print_table(main(sys.argv[1:]))
