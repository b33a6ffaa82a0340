"""Codex adapter: `codex exec --json` as a subprocess, its JSON lines turned into the common
event stream.

Codex ignores OPENAI_BASE_URL, so the adapter defines its own model provider on the command line
(llmcells' base URL, the Responses API, the CLI's own retries at zero) and uses a private
CODEX_HOME with the user's config ignored. `exec --json` reports the answer as one whole message
(no deltas), so the answer arrives in one piece.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from ..errors import IncompleteStreamError, LLMError
from ..models import ModelSpec
from ..types import Event, Finish, Request, ResponseInfo, TextDelta, Usage, UsageUpdate
from . import _agents
from .base import ClientOptions, Provider

DEFAULT_BASE = "https://api.openai.com/v1"
#: item types that are the agent using a tool
_TOOL_ITEMS = {"command_execution", "file_change", "mcp_tool_call", "web_search"}


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _usage(raw: dict[str, Any]) -> Usage:
    return Usage(input_tokens=int(raw.get("input_tokens") or 0),
                 cached_input_tokens=int(raw.get("cached_input_tokens") or 0),
                 cache_write_tokens=int(raw.get("cache_write_input_tokens") or 0),
                 output_tokens=int(raw.get("output_tokens") or 0),
                 reasoning_tokens=int(raw.get("reasoning_output_tokens") or 0))


def argv_for(client: _agents.AgentClient, request: Request, opts: _agents.AgentOptions) -> list[str]:
    """The codex command line for request."""
    base = client.base_url or DEFAULT_BASE
    provider = ("{name=\"llmcells\",base_url=" + _toml(base) + ",env_key=\"OPENAI_API_KEY\","
                "wire_api=\"responses\",request_max_retries=0,stream_max_retries=0}")
    argv = [client.path, "exec", "--json", "--skip-git-repo-check", "--ephemeral",
            "--ignore-user-config", "-c", 'model_provider="llmcells"',
            "-c", f"model_providers.llmcells={provider}", "-c", "features.plugins=false",
            # no analytics and no OTel metrics (otherwise sent to ab.chatgpt.com)
            "-c", "analytics.enabled=false", "-c", 'otel.metrics_exporter="none"',
            "-m", request.spec.name]
    argv += ["--sandbox", "workspace-write"] if opts.tools else ["--sandbox", "read-only"]
    return [*argv, "--", _agents.prompt_text(request)]


async def _stream(client: _agents.AgentClient, request: Request) -> AsyncIterator[Event]:
    spec = request.spec
    opts = _agents.options(request)
    home = client.home("codex", lambda folder: None)
    env = _agents.clean_env(CODEX_HOME=home, OPENAI_API_KEY=client.api_key, NO_COLOR="1")
    t0 = time.monotonic()
    proc = _agents.Process(argv_for(client, request, opts), env, opts.cwd)
    await proc.start()
    info: dict[str, Any] = {"cli": "codex", "version": client.version, "cwd": opts.cwd,
                            "tools": opts.tools, "system_prompt": _agents.SYSTEM_NOTE}
    tool_calls = turns = messages = 0
    finished = False
    problem = ""
    try:
        async for msg in proc.lines():
            kind = msg.get("type")
            if kind == "thread.started":
                info["session_id"] = msg.get("thread_id")
                yield ResponseInfo(response_model=spec.name, agent=dict(info))
            elif kind == "turn.started":
                turns += 1
            elif kind == "item.completed":
                item = msg.get("item") or {}
                itype = item.get("type")
                if itype == "agent_message" and item.get("text"):
                    # Each message of a multi-step run is its own paragraph.
                    yield TextDelta(("\n\n" if messages else "") + item["text"])
                    messages += 1
                elif itype in _TOOL_ITEMS:
                    tool_calls += 1
            elif kind == "error":
                problem = msg.get("message") or problem
            elif kind == "turn.failed":
                err = msg.get("error") or {}
                message = err.get("message") or problem or json.dumps(msg)
                if _agents.status_in(message) is None and "disconnected" in message:
                    raise IncompleteStreamError(f"Codex: the answer broke off: {message}",
                                                provider=spec.provider)
                raise _agents.api_error(spec, _agents.status_in(message), message)
            elif kind == "turn.completed":
                yield UsageUpdate(_usage(msg.get("usage") or {}))
                info.update(turns=turns, tool_calls=tool_calls, wall_s=round(time.monotonic() - t0, 3))
                yield ResponseInfo(agent=dict(info))
                finished = True
        rc = await proc.wait()
        if not finished:
            detail = problem or proc.stderr_tail()
            status = _agents.status_in(detail)
            if status is not None:
                raise _agents.api_error(spec, status, detail)
            raise IncompleteStreamError(
                f"Codex ended (exit {rc}) before the turn completed: {detail or 'no message'}",
                provider=spec.provider)
        yield Finish("stop")
    finally:
        await proc.stop()


class CodexProvider(Provider):
    """OpenAI Codex (npm @openai/codex) as a subprocess."""

    name = "codex"

    def make_client(self, options: ClientOptions) -> _agents.AgentClient:
        """The CLI's path and version plus where to send requests; ConfigError if not installed."""
        path = _agents.which("codex")
        if path is None:
            raise _agents.missing("codex")
        return _agents.AgentClient("codex", path, _agents.version_of(path), options.base_url,
                                   options.api_key)

    def stream(self, client: _agents.AgentClient, request: Request) -> AsyncIterator[Event]:
        """Run the CLI once; Finish only after `turn.completed`."""
        return _stream(client, request)

    def map_error(self, exc: BaseException, spec: ModelSpec) -> LLMError | None:
        """LLMErrors pass through; anything else is not this adapter's."""
        return exc if isinstance(exc, LLMError) else None


ADAPTER = CodexProvider()
