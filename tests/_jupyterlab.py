"""A throwaway JupyterLab server on loopback, for the browser smoke test.

The server gets its own config, runtime, settings and workspaces folders, a random token, a
private LLMCELLS_HOME and no provider keys; lab extensions and kernelspecs still come from the
environment it runs in (the data path is left alone).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PROVIDER_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY",
                 "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL",
                 "GOOGLE_GENAI_USE_VERTEXAI")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """`with JupyterLab(tmp) as lab:` starts the server and waits for `/api/status`; leaving the
    block stops it (SIGTERM to its process group, then SIGKILL) whatever happened."""

    def __init__(self, base: Path, *, startup_timeout: float = 60.0):
        self.base = Path(base)
        self.root = self.base / "notebooks"
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.log_path = self.base / "jupyterlab.log"
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def page(self, path: str) -> str:
        return f"{self.url}/{path.lstrip('/')}?token={self.token}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARS}
        for name in ("config", "runtime", "notary"):
            (self.base / name).mkdir(parents=True, exist_ok=True)
        env["JUPYTER_CONFIG_DIR"] = str(self.base / "config")
        env["JUPYTER_RUNTIME_DIR"] = str(self.base / "runtime")
        env["LLMCELLS_HOME"] = str(self.base / "llmcells-home")
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        env.pop("JUPYTER_TOKEN", None)
        return env

    def _settings(self) -> Path:
        """User settings that keep the page quiet: no news prompt, no update check."""
        settings = self.base / "user-settings"
        notif = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        notif.parent.mkdir(parents=True, exist_ok=True)
        notif.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        return settings

    def start(self) -> "JupyterLab":
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root}",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.open_browser=False",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            f"--LabApp.user_settings_dir={self._settings()}",
            f"--LabApp.workspaces_dir={self.base / 'workspaces'}",
            "--LabApp.extension_manager=readonly",  # no PyPI look-ups
            "--ServerApp.terminals_enabled=False",
            f"--NotebookNotary.data_dir={self.base / 'notary'}",  # not ~/.local/share/jupyter
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # containers often run tests as root
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, env=self._env(), cwd=self.root, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.page("api/status"), timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"JupyterLab did not answer within {self.startup_timeout:.0f} s:\n{self.log()}")

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def _kernel_pids(self) -> list[int]:
        """Kernels this server started: their command line names a file in our runtime dir."""
        marker = str(self.base / "runtime").encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if marker in (entry / "cmdline").read_bytes():
                        pids.append(int(entry.name))
                except OSError:
                    pass
        return pids

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:  # a clean shutdown first: the server stops its kernels too
                req = urllib.request.Request(self.page("api/shutdown"), method="POST", data=b"")
                urllib.request.urlopen(req, timeout=5).close()
                proc.wait(timeout=10)
            except Exception:
                pass
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                if proc.poll() is not None:
                    break
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    pass
        # kernels run in their own sessions: make sure none outlives the server
        for pid in self._kernel_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "JupyterLab":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
