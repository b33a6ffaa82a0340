"""A real Jupyter kernel to drive from tests and benchmarks (jupyter_client, from the `test` extra).

    with Kernel(home) as k:
        k.ok("%load_ext llmcells")
        content, msgs = k.execute("%%claude\\nsay hi")

Every iopub message is kept with the time it was read, so tests can tell when updates arrived.
The kernel gets the caller's environment without provider keys or endpoints, and its own
LLMCELLS_HOME: it never touches a real API or the user's ledger.
"""

from __future__ import annotations

import os
import queue
import re
import time
from pathlib import Path
from typing import Any

PROVIDER_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY",
                 "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL",
                 "GOOGLE_GENAI_USE_VERTEXAI")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def kernel_env(home: Path | str, **extra: str) -> dict[str, str]:
    """This process's environment without provider keys or endpoints, with its own ledger home."""
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARS}
    env["LLMCELLS_HOME"] = str(home)
    env.update(extra)
    return env


def plain(traceback: list[str]) -> list[str]:
    """A traceback as the user reads it: colour codes removed, one entry per line."""
    return _ANSI.sub("", "\n".join(traceback)).strip("\n").splitlines()


def stream_text(msgs: list[dict]) -> str:
    """Everything the cell printed, joined (iopub may split one line across messages)."""
    return "".join(m["content"].get("text", "") for m in msgs if m["msg_type"] == "stream")


def output_text(outputs: list[dict]) -> str:
    """A cell's outputs (nbformat's) as text: each stream's text as printed, then the text/plain
    of each display or result and "ename: evalue" of each error, each on a line of its own.

    ipykernel sends one print() in several stream messages when its flush timer fires between
    the writes ("json:", then " {'a': 1}"), and each is saved as an output: consecutive pieces
    of one stream are joined as they are, never with a line break between them."""
    parts: list[str] = []
    stream = None  # the stream the last part came from
    for o in outputs:
        kind = o.get("output_type")
        if kind == "stream":
            if parts and stream == o.get("name"):
                parts[-1] += o.get("text", "")
            else:
                parts.append(o.get("text", ""))
            stream = o.get("name")
            continue
        stream = None
        if kind in ("display_data", "execute_result"):
            parts.append(o.get("data", {}).get("text/plain", ""))
        elif kind == "error":
            parts.append(f"{o.get('ename')}: {o.get('evalue')}")
    return "\n".join(parts)


class Kernel:
    """A real ipykernel (python3 kernelspec); every iopub message is kept with its arrival time."""

    def __init__(self, home: Path | str, env: dict[str, str] | None = None, startup_timeout: float = 60):
        import jupyter_client

        self.km, self.kc = jupyter_client.manager.start_new_kernel(
            kernel_name="python3", env=env or kernel_env(home), startup_timeout=startup_timeout)
        self.iopub: list[tuple[float, dict]] = []

    def __enter__(self) -> "Kernel":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def pid(self) -> int:
        return self.km.provisioner.pid

    def send(self, code: str, **kwargs: Any) -> str:
        """Start executing code (kwargs as jupyter_client's execute); returns its msg_id."""
        return self.kc.execute(code, **kwargs)

    def timed(self, code: str, timeout: float = 60, **kwargs: Any) -> tuple[float, dict]:
        """(seconds from execute_request to execute_reply, reply content) of code."""
        t0 = time.perf_counter()
        msg_id = self.send(code, **kwargs)
        _, reply = self.reply(msg_id, timeout)
        return time.perf_counter() - t0, reply["content"]

    def wait_started(self, msg_id: str, timeout: float = 10) -> float:
        """Wait until the kernel has begun the cell msg_id (its execute_input); the time it did.
        An interrupt sent before that is lost or lands in the kernel's own code, not the cell's."""
        deadline = time.monotonic() + timeout
        checked = 0  # messages already looked at: a long test's iopub holds thousands
        while time.monotonic() < deadline:
            for t, m in self.iopub[checked:]:
                if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "execute_input":
                    return t
            checked = len(self.iopub)
            self._read_iopub(0.01)
        raise AssertionError(f"the kernel did not begin the cell within {timeout} s{self._stacks()}")

    def interrupt(self) -> None:
        """Interrupt the kernel (SIGINT), as the notebook's stop button does."""
        self.km.interrupt_kernel()

    def reply(self, msg_id: str, timeout: float = 60) -> tuple[float, dict]:
        """(arrival time, execute_reply) of msg_id; iopub is read meanwhile, so that arrival
        times are those of the messages, not of a later drain."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self._read_iopub(0.0):
                pass
            try:
                msg = self.kc.get_shell_msg(timeout=0.005)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return time.monotonic(), msg
        raise AssertionError(f"no execute_reply within {timeout} s{self._stacks()}")

    def _stacks(self) -> str:
        """The kernel's thread stacks, when py-spy is installed (for a hung kernel)."""
        import shutil
        import subprocess

        if not shutil.which("py-spy"):
            return ""
        out = subprocess.run(["py-spy", "dump", "--pid", str(self.pid)], capture_output=True,
                             text=True, timeout=30)
        return "; the kernel's threads:\n" + out.stdout[-12000:]

    def _read_iopub(self, timeout: float) -> bool:
        try:
            msg = self.kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return False
        self.iopub.append((time.monotonic(), msg))
        return True

    def messages(self, msg_id: str, quiet: float = 0.3) -> list[tuple[float, dict]]:
        """Every iopub message of the cell msg_id (waits for its idle status, then `quiet` s)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = any(m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status"
                       and m["content"]["execution_state"] == "idle" for _, m in self.iopub)
            if done:
                break
            self._read_iopub(0.05)
        while self._read_iopub(quiet):
            pass
        return [(t, m) for t, m in self.iopub if m["parent_header"].get("msg_id") == msg_id]

    def late(self, msg_id: str, quiet: float = 0.1) -> list[dict]:
        """The messages of msg_id that the kernel published after the cell's `status: idle`.

        Judged by iopub's own order, not by arrival times: iopub and the shell reply travel on two
        sockets, so a message the cell sent before it ended can arrive after its execute_reply."""
        self.messages(msg_id, quiet)  # up to the idle status, then whatever follows within `quiet`
        out: list[dict] = []
        idle = False
        for _, m in self.iopub:
            if m["parent_header"].get("msg_id") != msg_id:
                continue
            if idle:
                out.append(m)
            elif m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                idle = True
        return out

    def execute(self, code: str, timeout: float = 60) -> tuple[dict, list[dict]]:
        """Run code; (execute_reply content, the cell's iopub messages).

        After a cell fails, ipykernel aborts (stop_on_error) every request that reaches it
        before its shell thread has queued the end of that abort, and on a loaded machine a
        request sent as soon as the error's reply arrives can be one of them. An aborted
        request never ran, so it is sent again, as a user clicking Run again would."""
        for _ in range(5):
            msg_id = self.send(code)
            _, reply = self.reply(msg_id, timeout)
            if reply["content"]["status"] != "aborted":
                break
            time.sleep(0.05)
        return reply["content"], [m for _, m in self.messages(msg_id)]

    def ok(self, code: str, timeout: float = 60) -> list[dict]:
        """Run code that must succeed; its iopub messages."""
        content, msgs = self.execute(code, timeout)
        assert content["status"] == "ok", f"{content.get('ename')}: {content.get('evalue')}"
        return msgs

    def value(self, expr: str) -> Any:
        """The value of a Python expression in the kernel (through its repr)."""
        return eval(stream_text(self.ok(f"print(repr({expr}))")).strip())

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
