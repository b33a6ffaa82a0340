"""`python -m llmcells serve` started as a real process on a free loopback port, for the service's
tests: its URL, its start-up lines and log, and a stop that checks no key reached the log."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

import llmcells

KEYS = {"OPENAI_API_KEY": "sk-test-serve-openai-0000", "ANTHROPIC_API_KEY": "sk-ant-test-serve-0000",
        "GOOGLE_API_KEY": "AIzaTestServe0000000000"}


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Service:
    """One service process; `url`, `log()` (everything it printed so far), `stop()`."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, *, host: str = "127.0.0.1"):
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "w+")
        env = {**os.environ, **KEYS, **env, "PYTHONPATH": str(Path(llmcells.__file__).parents[1])}
        self.proc = subprocess.Popen([sys.executable, "-m", "llmcells", "serve", "--host", host,
                                      "--port", str(self.port), *args],
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/livez", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(check=False)
                raise RuntimeError("the service did not start: " + self.log())
            time.sleep(0.2)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self, check: bool = True) -> str:
        """Stop the process; with check, assert that no key is in what it printed."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        text = self.log()
        self._log.close()
        if check:
            for key in KEYS.values():
                assert key not in text  # keys never in the logs
        return text
