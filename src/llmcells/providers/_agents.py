"""What the three agent-CLI adapters share: finding a CLI and its version, a clean environment,
private config homes, the per-call options (cwd, tools), and running a CLI as a process group
whose JSON lines are read as they come, and which is always gone when the call ends.
"""

from __future__ import annotations

import asyncio
import importlib.util
import atexit
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, IncompleteStreamError, LLMError, ProviderError, kind_of_status
from ..models import ModelSpec
from ..registry import PROVIDERS, agents
from ..types import Request
from ._common import api_error as answer_error, one_line
from .._log import swallowed
from .._loop import note_send

log = logging.getLogger("llmcells")

#: what every agent is told about its own system prompt (shown on the card)
SYSTEM_NOTE = "the agent adds its own system prompt and tool definitions to every request"

#: the indexes of an agent's two parts, its answer and its visible reasoning: each is one part
#: over all the turns of a run (the agent's own tool calls are its business, not parts)
TEXT_PART, REASONING_PART = 0, 1

#: the variables no CLI gets from this process, since they could point it at the user's own keys,
#: accounts, settings or servers: every provider's and cloud's, and llmcells' own (a service's
#: token); the adapters set the ones they need themselves
PRIVATE_PREFIXES = ("ANTHROPIC_", "CLAUDE_", "OPENAI_", "CODEX_", "GEMINI_", "GOOGLE_", "VERTEX",
                    "AZURE_", "AWS_", "LLMCELLS_")
_OPTIONS = {"cwd", "tools"}


# ----- finding a CLI ------------------------------------------------------------------------------


def which(command: str) -> str | None:
    """The CLI's path: on PATH, or next to this Python (an `npm install -g --prefix <venv>`)."""
    found = shutil.which(command)
    if found:
        return found
    here = Path(sys.executable).parent / command
    return str(here) if here.exists() and os.access(here, os.X_OK) else None


_versions: dict[str, str] = {}


def version_of(path: str) -> str:
    """The CLI's version: from its npm package.json when there is one (instant), else from
    `CLI --version` (cached per path)."""
    if path in _versions:
        return _versions[path]
    version = ""
    real = Path(os.path.realpath(path))
    for parent in list(real.parents)[:4]:
        pkg = parent / "package.json"
        if pkg.is_file():
            try:
                version = str(json.loads(pkg.read_text()).get("version") or "")
            except (OSError, ValueError):
                version = ""
            break
    if not version:
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=15,
                                 stdin=subprocess.DEVNULL).stdout
            m = re.search(r"\d+\.\d+[\w.\-]*", out)
            version = m.group(0) if m else out.strip()[:40]
        except (OSError, subprocess.SubprocessError):
            version = ""
    _versions[path] = version
    return version


def missing(provider: str) -> ConfigError:
    """The one-line error for an agent CLI that is not installed (nothing was sent)."""
    row = PROVIDERS[provider]
    return ConfigError(f"{row.label} is not installed: {row.install} (then run the cell again).",
                       provider=provider)


# ----- environment and folders --------------------------------------------------------------------


_made: list[str] = []


def private_dir(prefix: str) -> str:
    """A fresh private folder, removed when Python exits."""
    path = tempfile.mkdtemp(prefix=f"llmcells-{prefix}-")
    _made.append(path)
    return path


@atexit.register
def _cleanup() -> None:
    for path in _made:
        shutil.rmtree(path, ignore_errors=True)


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any provider or agent variable, plus values."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(PRIVATE_PREFIXES)}
    env.update({k: v for k, v in values.items() if v is not None})
    return env


@dataclass
class AgentClient:
    """What an agent call needs besides the request: the CLI, its version, where to send the
    requests (base URL and key), and the session's private config home(s)."""

    provider: str
    path: str
    version: str
    base_url: str | None
    api_key: str
    homes: dict[Any, str] = field(default_factory=dict)

    def home(self, key: Any, make: Any) -> str:
        """The private config home for key (made once per session by make(folder))."""
        if key not in self.homes:
            folder = private_dir(f"{self.provider}-home")
            make(folder)
            self.homes[key] = folder
        return self.homes[key]


@dataclass
class AgentOptions:
    """The per-call options of an agent, from `params=`: cwd (default: a fresh temporary folder)
    and tools (default False: a plain answer)."""

    cwd: str
    tools: bool


def options(request: Request) -> AgentOptions:
    """The agent options of request; a ConfigError for an unknown one or a missing folder."""
    params = dict(request.extra.get("params") or {})
    unknown = sorted(set(params) - _OPTIONS)
    if unknown:
        raise ConfigError(f"{request.spec.label} takes params cwd= and tools=, not "
                          f"{', '.join(unknown)}.", provider=request.spec.provider)
    cwd = params.get("cwd")
    if cwd:
        cwd = os.path.abspath(os.path.expanduser(str(cwd)))
        if not os.path.isdir(cwd):
            raise ConfigError(f"cwd {cwd!r} is not a folder.", provider=request.spec.provider)
    else:
        cwd = private_dir("agent-cwd")
    return AgentOptions(cwd=cwd, tools=bool(params.get("tools", False)))


def prompt_text(request: Request) -> str:
    """The request as one prompt for a CLI that takes a single message: the system text and any
    earlier turns first, as a plain transcript."""
    parts = []
    if request.system:
        parts.append(f"Instructions: {request.system}")
    earlier = request.messages[:-1]
    if earlier:
        parts.append("Conversation so far:\n" + "\n".join(f"{m.role}: {m.content}" for m in earlier))
    if parts:
        parts.append(f"user: {request.prompt}" if earlier else request.prompt)
        return "\n\n".join(parts)
    return request.prompt


# ----- errors ---------------------------------------------------------------------------------------


_STATUS = re.compile(r"(?:\"code\\*\"\s*:\s*|status(?: code)?\s*:?\s*|unexpected status\s+)(\d{3})\b",
                     re.I)


def status_in(text: str) -> int | None:
    """The HTTP status an error message names, if any."""
    m = _STATUS.search(text or "")
    return int(m.group(1)) if m else None


def api_error(spec: ModelSpec, status: int | None, message: str) -> LLMError:
    """The llmcells error for an API error the CLI reported, by its HTTP status (the one table,
    errors.kind_of_status, worded as for the SDK adapters)."""
    return answer_error(spec, kind_of_status(status, message), one_line(message, 240), host=spec.label,
                        status=status)


def ended_early(spec: ModelSpec, rc: int, detail: str, shown: bool) -> LLMError:
    """The error for a CLI that exited before its final report: a broken answer when text was
    shown (the partial answer is kept), else the CLI's own last words (not a network fault, so
    not retried)."""
    what = f"{spec.label} exited (code {rc}) before it finished: {one_line(detail) or 'no message'}"
    if shown:
        return IncompleteStreamError(what, provider=spec.provider)
    return ProviderError(what, provider=spec.provider)


# ----- running a CLI ----------------------------------------------------------------------------------

#: how many processes of one agent CLI may run at once (each takes 200-260 MB)
PROCESSES_ENV = "LLMCELLS_AGENT_PROCESSES"
_slots: dict[tuple[int, str, int], asyncio.Semaphore] = {}


def max_processes() -> int:
    """The most processes of one agent CLI at once: $LLMCELLS_AGENT_PROCESSES, default 4."""
    try:
        return max(1, int(os.environ.get(PROCESSES_ENV, "4")))
    except ValueError:
        return 4


async def limited(provider: str, events: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """events, started only when fewer than max_processes() of this CLI run (a batch of 100
    calls must not start 100 CLIs)."""
    # keyed by the limit too: a changed LLMCELLS_AGENT_PROCESSES applies to the next calls
    key = (id(asyncio.get_running_loop()), provider, max_processes())
    sem = _slots.get(key)
    if sem is None:
        sem = _slots[key] = asyncio.Semaphore(key[2])
    async with sem:
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()  # type: ignore[attr-defined]


class Process:
    """A CLI run in its own process group; `lines()` yields its stdout's JSON objects. `stop()`
    ends the whole group: SIGTERM, then SIGKILL after a grace period."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, *, stdin: bool = False):
        self.argv, self.env, self.cwd, self.stdin = argv, env, cwd, stdin
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr: list[str] = []
        self._err_task: asyncio.Task | None = None

    async def start(self) -> None:
        note_send()  # an interrupt before this starts no CLI; after it, the CLI ran
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, env=self.env, cwd=self.cwd,
            stdin=asyncio.subprocess.PIPE if self.stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, limit=16 * 1024 * 1024)
        self._err_task = asyncio.ensure_future(self._read_stderr())

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.stderr.append(line)
                del self.stderr[:-200]  # keep the tail

    async def send(self, message: dict[str, Any]) -> None:
        """Write one JSON line to the CLI's stdin (JSON-RPC over stdio)."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        await self.proc.stdin.drain()

    async def lines(self) -> AsyncIterator[dict[str, Any]]:
        """The JSON objects the CLI prints, one per line (other lines are skipped)."""
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.strip()
            if not line.startswith(b"{"):
                continue
            try:
                yield json.loads(line)
            except (ValueError, RecursionError):
                log.debug("an agent CLI printed a line that is not JSON")

    async def wait(self) -> int:
        assert self.proc is not None
        rc = await self.proc.wait()
        if self._err_task is not None:
            try:
                await asyncio.wait_for(self._err_task, 1.0)
            except (TimeoutError, asyncio.CancelledError, Exception) as exc:
                swallowed("reading an agent CLI's stderr to its end", exc)
        return rc

    def stderr_tail(self) -> str:
        """The last meaningful line the CLI wrote to stderr (stack frames skipped)."""
        for line in reversed(self.stderr):
            s = line.strip()
            if s and not s.startswith(("at ", "}", "{")):
                return s
        return ""

    async def stop(self, grace: float = 1.0) -> None:
        """End the process group now (SIGTERM, then SIGKILL after grace seconds)."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
            except (TimeoutError, asyncio.CancelledError):
                pass
        # Children the CLI started may outlive it: the group goes either way.
        _signal_group(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), 2.0)
            except (TimeoutError, asyncio.CancelledError):
                pass
        if self._err_task is not None:
            self._err_task.cancel()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ----- which agent CLIs are installed (health, %llmcells models) ----------------------------------


def installed_path(name: str) -> str | None:
    if name == "claude-code":
        found = importlib.util.find_spec("claude_agent_sdk")
        if found is None or not found.origin:
            return None
        bundled = os.path.join(os.path.dirname(found.origin), "_bundled", "claude")
        return bundled if os.path.exists(bundled) else which("claude")
    return which({"gemini-cli": "gemini", "codex": "codex"}[name])


def available() -> list[dict[str, Any]]:
    """One dict per agent CLI: name, label, installed, version, path, and how to install it."""
    out = []
    for row in agents():
        path = installed_path(row.name)
        out.append({"agent": row.name, "label": row.label, "installed": path is not None,
                    "version": version_of(path) if path else None, "path": path,
                    "install": row.install})
    return out


def status(provider: str) -> str:
    """For `%llmcells models`: "" for an API provider; an agent's CLI version, or how to
    install it."""
    row = PROVIDERS.get(provider)
    if row is None or row.kind != "agent":
        return ""
    path = installed_path(provider)
    return f"{row.label} {version_of(path)}".strip() if path else f"missing: {row.install}"
