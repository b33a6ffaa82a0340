"""Gemini CLI adapter: `gemini -p PROMPT -o stream-json` as a subprocess, its JSON lines turned
into the common event stream.

The CLI gets llmcells' own base URL and key, a private HOME whose settings.json selects API-key
auth (without it a base URL makes headless mode fail with "Invalid auth method"), turns off usage
statistics, telemetry and auto-update, and sets the CLI's attempts to one, so that llmcells' one
retry policy applies and a re-asked answer is never spliced onto a broken one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from ..errors import IncompleteStreamError, LLMError
from ..models import ModelSpec
from ..types import Event, Finish, PartDelta, PartStart, Request, ResponseInfo, Usage, UsageUpdate
from . import _agents
from ._common import count
from .base import ClientOptions, Provider

#: the CLI's built-in tools, all turned off for a plain answer (tools=False)
_TOOLS = ("run_shell_command", "write_file", "replace", "read_file", "read_many_files",
          "list_directory", "glob", "search_file_content", "grep_search", "web_fetch",
          "google_web_search", "save_memory", "write_todos", "activate_skill", "enter_plan_mode",
          "exit_plan_mode", "ask_user", "codebase_investigator", "cli_help")


def _settings(tools: bool) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True, "maxAttempts": 1,
                    "checkpointing": {"enabled": False}},
    }
    if not tools:
        settings["tools"] = {"exclude": list(_TOOLS)}
        settings["mcp"] = {"allowed": []}
    return settings


def _make_home(tools: bool) -> Any:
    def make(folder: str) -> None:
        os.makedirs(os.path.join(folder, ".gemini"), exist_ok=True)
        with open(os.path.join(folder, ".gemini", "settings.json"), "w") as f:
            json.dump(_settings(tools), f)
    return make


def _usage(stats: dict[str, Any]) -> Usage:
    """The `result` event's stats: input_tokens sums the answers' promptTokenCount (cached
    included), output_tokens their candidatesTokenCount (thoughts left out) and total_tokens
    their totalTokenCount (thoughts included); the CLI gives no thoughts count of its own, so
    the thoughts, billed as output, are the rest of the total."""
    cached, inp, out = (count(stats, name) for name in ("cached", "input_tokens", "output_tokens"))
    if stats.get("thoughts") is not None:
        thoughts = count(stats, "thoughts")
    else:
        thoughts = max(count(stats, "total_tokens") - inp - out, 0)
    return Usage(input_tokens=inp, cached_input_tokens=cached, output_tokens=out + thoughts,
                 reasoning_tokens=thoughts)


async def _stream(client: _agents.AgentClient, request: Request) -> AsyncIterator[Event]:
    spec = request.spec
    opts = _agents.options(request)
    home = client.home(("gemini", opts.tools), _make_home(opts.tools))
    env = _agents.clean_env(HOME=home, GEMINI_API_KEY=client.api_key,
                            GOOGLE_GEMINI_BASE_URL=client.base_url,
                            GEMINI_CLI_TRUST_WORKSPACE="true", GEMINI_CLI_NO_RELAUNCH="true",
                            NO_COLOR="1")
    # --prompt=TEXT, --model=NAME: a prompt or a name that starts with "-" ("--yolo") must not be
    # read as an option
    argv = [client.path, f"--prompt={_agents.prompt_text(request)}", "-o", "stream-json",
            f"--model={spec.name}"]
    if opts.tools:
        argv += ["--approval-mode", "yolo"]
    t0 = time.monotonic()
    proc = _agents.Process(argv, env, opts.cwd)
    await proc.start()
    info: dict[str, Any] = {"cli": "gemini", "version": client.version, "cwd": opts.cwd,
                            "tools": opts.tools, "system_prompt": _agents.SYSTEM_NOTE}
    tool_calls = 0
    finished = shown = False
    try:
        async for msg in proc.lines():
            kind = msg.get("type")
            if kind == "init":
                info["session_id"] = msg.get("session_id")
                yield ResponseInfo(response_model=msg.get("model") or None, agent=dict(info))
            elif kind == "message" and msg.get("role") == "assistant":
                text = msg.get("content") or ""
                if text:
                    if not shown:
                        yield PartStart(_agents.TEXT_PART, "text")
                    shown = True
                    yield PartDelta(_agents.TEXT_PART, text)
            elif kind == "tool_use":
                tool_calls += 1
            elif kind == "error":
                raise _error(spec, msg.get("message") or json.dumps(msg), proc)
            elif kind == "result":
                stats = msg.get("stats") or {}
                if msg.get("status") != "success":
                    err = msg.get("error") or {}
                    raise _error(spec, err.get("message") or json.dumps(err), proc)
                yield UsageUpdate(_usage(stats))
                models = list((stats.get("models") or {}).keys())
                duration = stats.get("duration_ms")
                wall = time.monotonic() - t0
                info.update(tool_calls=stats.get("tool_calls", tool_calls), duration_ms=duration,
                            wall_s=round(wall, 3))
                if duration is not None:  # the CLI's own start-up: process time not in the run
                    info["startup_s"] = round(max(wall - duration / 1000, 0), 3)
                yield ResponseInfo(response_model=models[0] if len(models) == 1 else None,
                                   agent=dict(info))
                finished = True
        rc = await proc.wait()
        if not finished:
            tail = proc.stderr_tail()
            status = _agents.status_in(" ".join(proc.stderr[-30:]))
            if status is not None:
                raise _agents.api_error(spec, status, tail)
            raise _agents.ended_early(spec, rc, tail, shown)
        yield Finish("stop")
    finally:
        await proc.stop()


def _error(spec: ModelSpec, message: str, proc: _agents.Process) -> LLMError:
    """The error the CLI's result reports: its HTTP status from the message, else from the
    stack the CLI printed (`status: 503`); a broken stream is an incomplete answer."""
    readable = _readable(message)
    status = _agents.status_in(message) or _agents.status_in(" ".join(proc.stderr[-40:]))
    if status is None and "overloaded" in readable.lower():
        status = 503
    if status is None and any(s in readable.lower() for s in ("stream ended", "disconnected")):
        return IncompleteStreamError(f"Gemini CLI: the answer broke off: {readable}",
                                     provider=spec.provider)
    return _agents.api_error(spec, status, readable)


def _readable(message: str) -> str:
    """The innermost "message" of the JSON the CLI wraps API errors in, else message."""
    import re

    found = re.findall(r'\\*"message\\*"\s*:\s*\\*"([^"\\]+)', message)
    return found[-1] if found else message


class GeminiCliProvider(Provider):
    """Gemini CLI (npm @google/gemini-cli) as a subprocess."""

    name = "gemini_cli"

    def make_client(self, options: ClientOptions) -> _agents.AgentClient:
        """The CLI's path and version plus where to send requests; ConfigError if not installed."""
        path = _agents.which("gemini")
        if path is None:
            raise _agents.missing("gemini-cli")
        return _agents.AgentClient("gemini-cli", path, _agents.version_of(path),
                                   options.base_url, options.api_key)

    def stream(self, client: _agents.AgentClient, request: Request) -> AsyncIterator[Event]:
        """Run the CLI once; Finish only after its `result` line says success."""
        return _agents.limited(request.spec.provider, _stream(client, request))

    def map_error(self, exc: BaseException, spec: ModelSpec) -> LLMError | None:
        """LLMErrors pass through; anything else is not this adapter's."""
        return exc if isinstance(exc, LLMError) else None


ADAPTER = GeminiCliProvider()
