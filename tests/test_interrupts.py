"""Interrupting llmcells at random moments, in a real kernel and in terminal IPython.

For each front end (the %%compare magic, `await llmcells.compare()`, `await llmcells.batch()`)
and each moment (before the first token, mid-stream, during a retry wait), the kernel is
interrupted at a random time: the cell must end within a second with KeyboardInterrupt, no task
may keep running or printing, the calls must be recorded as cancelled, and the next cell must
work. The figures go to test-output/interrupts.md.
"""

from __future__ import annotations

import os
import queue
import random
import re
import signal
import statistics
import sys
import time
from pathlib import Path

import pytest

jupyter_client = pytest.importorskip("jupyter_client")

TRIALS = int(os.environ.get("LLMCELLS_INTERRUPT_TRIALS", "20"))
OUT = Path(__file__).resolve().parents[1] / "test-output"
MOMENTS = {
    # fault or speed set before the cell, and when to interrupt (seconds after sending it)
    "before first token": ('sim.inject("slow_first_token", times=None, delay=30)', (0.3, 1.2)),
    "mid-stream": ("sim.configure(ttft=0.05, tokens_per_s=20, output_tokens=400)", (0.5, 1.5)),
    "retry wait": ('sim.inject("429", times=None, retry_after=20)', (0.4, 1.2)),
}
CELLS = {
    "%%compare": "%%compare chatgpt claude gemini\nTell me about tides.",
    "await compare": 'c = await llmcells.compare("Tell me about tides.")',
    "await batch": ('df = await llmcells.batch([f"q{i}" for i in range(12)], ["chatgpt", "claude"], '
                    "concurrency=4)"),
}
RESULTS: list[dict] = []


class Kernel:
    """A real ipykernel with its own LLMCELLS_HOME and no keys."""

    def __init__(self, home: Path):
        env = {k: v for k, v in os.environ.items()
               if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
        env["LLMCELLS_HOME"] = str(home)
        self.km, self.kc = jupyter_client.manager.start_new_kernel(kernel_name="python3", env=env)

    def execute(self, code: str, timeout: float = 60) -> tuple[dict, list[dict]]:
        """Run code; return the execute_reply and the iopub messages of that cell."""
        msg_id = self.kc.execute(code)
        reply = self._reply(msg_id, timeout)
        return reply, self.drain(msg_id)

    def _reply(self, msg_id: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_shell_msg(timeout=max(0.01, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    def drain(self, msg_id: str, quiet: float = 0.3) -> list[dict]:
        msgs = []
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=quiet)
            except queue.Empty:
                return msgs
            if msg["parent_header"].get("msg_id") == msg_id:
                msgs.append(msg)

    def value(self, expr: str):
        reply, msgs = self.execute(f"print(repr({expr}))")
        assert reply["content"]["status"] == "ok", reply["content"]
        out = "".join(m["content"].get("text", "") for m in msgs if m["msg_type"] == "stream")
        return eval(out.strip())

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    k = Kernel(tmp_path_factory.mktemp("interrupt-home"))
    try:
        reply, _ = k.execute("%load_ext llmcells\nimport llmcells, asyncio\nfrom llmcells import _loop\n"
                             "sim = llmcells.simulate(ttft=0.05, tokens_per_s=400)\n"
                             "llmcells.configure(retry_initial_wait=0.05)\n"
                             "async def _pending():\n"
                             "    me = asyncio.current_task()\n"
                             "    return len([t for t in asyncio.all_tasks() if t is not me])\n"
                             # The first call imports the three SDKs (1-2 s of CPU in threads that
                             # cannot be stopped); that one-off start-up is measured elsewhere.
                             'llmcells.run(llmcells.compare("warm up", display=False))\n')
        assert reply["content"]["status"] == "ok", reply["content"]
        yield k
    finally:
        k.close()
        _write_report()


def _write_report() -> None:
    if not RESULTS:
        return
    OUT.mkdir(exist_ok=True)
    lines = ["| front end | moment | trials | ended < 1 s | median s | max s | all cancelled | quiet after | next cell ok | traceback lines |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["front"], r["moment"]) for r in RESULTS})
    for front, moment in keys:
        rs = [r for r in RESULTS if (r["front"], r["moment"]) == (front, moment)]
        t = [r["seconds"] for r in rs]
        lines.append(f"| {front} | {moment} | {len(rs)} | {sum(x < 1 for x in t)} | "
                     f"{statistics.median(t):.2f} | {max(t):.2f} | {sum(r['cancelled'] for r in rs)} | "
                     f"{sum(r['quiet'] for r in rs)} | {sum(r['next_ok'] for r in rs)} | "
                     f"{max(r['tb_lines'] for r in rs)} |")
    (OUT / "interrupts.md").write_text("\n".join(lines) + "\n")


@pytest.mark.kernel
@pytest.mark.parametrize("moment", list(MOMENTS))
@pytest.mark.parametrize("front", list(CELLS))
def test_random_interrupts_in_a_real_kernel(kernel, front, moment):
    setup, (lo, hi) = MOMENTS[moment]
    rng = random.Random(f"{front}/{moment}")
    for trial in range(TRIALS):
        reply, _ = kernel.execute(f"sim.reset()\n{setup}")
        assert reply["content"]["status"] == "ok"
        rows_before = kernel.value("len(llmcells.usage())")
        msg_id = kernel.kc.execute(CELLS[front])
        time.sleep(rng.uniform(lo, hi))
        t0 = time.monotonic()
        kernel.km.interrupt_kernel()
        reply = kernel._reply(msg_id, timeout=10)
        seconds = time.monotonic() - t0
        content = reply["content"]
        # ipykernel turns SIGINT during an async cell into cancelling the cell's task, so an
        # `await` cell ends with CancelledError (ipykernel's own choice, see _cancel_on_sigint).
        expected = {"KeyboardInterrupt"} if front.startswith("%%") else {"CancelledError", "KeyboardInterrupt"}
        assert content["status"] == "error" and content["ename"] in expected, content
        msgs = kernel.drain(msg_id, quiet=0.1)
        tb = next((m["content"]["traceback"] for m in msgs if m["msg_type"] == "error"), [])
        # Nothing from the interrupted cell arrives once it has ended (no task still painting).
        time.sleep(0.4)
        late = kernel.drain(msg_id, quiet=0.1)
        quiet = not [m for m in late if m["msg_type"] in ("stream", "comm_msg", "display_data")]
        pending = kernel.value("_loop.submit(_pending()).result(timeout=5)")
        statuses = set(kernel.value(f"list(llmcells.usage().iloc[{rows_before}:]['status'])"))
        if front == "await batch":  # calls that finished before the interrupt stay ok
            cancelled = "cancelled" in statuses and statuses <= {"ok", "cancelled"}
        else:
            cancelled = statuses == {"cancelled"}
        kernel.execute("sim.reset()")
        reply, _ = kernel.execute('r = llmcells.run(llmcells.ask("again", "claude", display=False)); '
                                  'assert r.ok, r.error')
        next_ok = reply["content"]["status"] == "ok"
        RESULTS.append(dict(front=front, moment=moment, seconds=seconds, cancelled=cancelled,
                            quiet=quiet, next_ok=next_ok, tb_lines=len(tb)))
        assert seconds < 1.0, f"trial {trial}: the cell took {seconds:.2f} s to end"
        assert pending == 0, f"trial {trial}: {pending} tasks still running"
        assert cancelled, f"trial {trial}: the ledger says {statuses}"
        assert quiet, f"trial {trial}: output after the cell ended: {late}"
        assert next_ok, f"trial {trial}: the next cell failed"
        assert len(tb) <= 12, f"trial {trial}: a {len(tb)}-line traceback"


@pytest.mark.kernel
def test_ctrl_c_in_terminal_ipython(tmp_path):
    """Terminal IPython: Ctrl-C (SIGINT) during %%compare ends it, the prompt comes back."""
    import pty

    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(LLMCELLS_HOME=str(tmp_path), TERM="dumb", PYTHONUNBUFFERED="1")
    pid, fd = pty.fork()
    if pid == 0:  # the child: terminal IPython
        os.execvpe(sys.executable, [sys.executable, "-m", "IPython", "--simple-prompt", "--no-banner",
                                    "--colors=NoColor", "--HistoryManager.enabled=False"], env)
    buffer = b""

    def read_until(pattern: str, timeout: float = 30) -> str:
        nonlocal buffer
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = buffer.decode(errors="replace")
            match = re.search(pattern, text)
            if match:
                buffer = buffer[len(text[:match.end()].encode()):]
                return text[:match.end()]
            try:
                import select

                ready, _, _ = select.select([fd], [], [], 0.05)
                if ready:
                    buffer += os.read(fd, 65536)
            except OSError:
                break
        raise AssertionError(f"no {pattern!r} in {buffer.decode(errors='replace')[-500:]!r}")

    def send(line: str) -> None:
        os.write(fd, line.encode() + b"\n")

    try:
        read_until(r"In \[1\]: ")
        send("%load_ext llmcells")
        read_until(r"In \[2\]: ")
        send("sim = __import__('llmcells').simulate(ttft=0.05, tokens_per_s=400)")
        read_until(r"In \[3\]: ")
        # as in the kernel test: the first call's SDK imports are start-up, measured elsewhere
        send("c = __import__('llmcells').run(__import__('llmcells').compare('warm up', display=False))")
        read_until(r"In \[4\]: ")
        times = []
        prompt_no = 4
        for trial in range(TRIALS):
            send('sim.inject("slow_first_token", times=None, delay=30)')
            prompt_no += 1
            read_until(rf"In \[{prompt_no}\]: ")
            send("%%compare chatgpt claude gemini")
            send("Tell me about tides.")
            send("")
            send("")  # a cell magic's body ends at an empty line; the simple prompt wants two
            read_until(r"simulated|waiting|\n", timeout=5)
            time.sleep(0.8)
            t0 = time.monotonic()
            os.kill(pid, signal.SIGINT)
            prompt_no += 1
            out = read_until(rf"In \[{prompt_no}\]: ", timeout=10)
            times.append(time.monotonic() - t0)
            assert "KeyboardInterrupt" in out
            send("sim.reset()")
            prompt_no += 1
            read_until(rf"In \[{prompt_no}\]: ")
        send('print("statuses", sorted(set(__import__("llmcells").usage()["status"])))')
        prompt_no += 1
        out = read_until(rf"In \[{prompt_no}\]: ")
        assert "statuses ['cancelled', 'ok']" in out  # the warm-up call, then only cancelled ones
        send("%%claude")
        send("hello again")
        send("")
        send("")
        prompt_no += 1
        out = read_until(rf"In \[{prompt_no}\]: ", timeout=30)
        assert "anthropic:claude-haiku-4-5 · ok" in out
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
    OUT.mkdir(exist_ok=True)
    (OUT / "interrupts-terminal.md").write_text(
        f"terminal IPython, %%compare before first token: {len(times)} Ctrl-C, prompt back after "
        f"median {statistics.median(times):.2f} s, max {max(times):.2f} s\n")
    assert max(times) < 1.0, times
