"""Codex adapter: `codex app-server` (JSON-RPC over stdio) as a subprocess, one thread and one
turn per call, its notifications turned into the common event stream.

Codex ignores OPENAI_BASE_URL, so the adapter defines its own model provider on the command line
(llmcells' base URL, the Responses API, the CLI's own retries at zero), turns off plugins,
analytics and OTel metrics, and uses a private CODEX_HOME. `app-server` streams the answer as
deltas (`codex exec --json` would give it only as one whole message).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from ..errors import IncompleteStreamError, LLMError, ProviderError
from ..models import ModelSpec
from ..types import Event, Finish, PartDelta, PartStart, Request, ResponseInfo, Usage, UsageUpdate
from . import _agents
from ._common import count
from .base import ClientOptions, Provider

DEFAULT_BASE = "https://api.openai.com/v1"
#: item types that are the agent using a tool
_TOOL_ITEMS = {"commandExecution", "fileChange", "mcpToolCall", "webSearch", "dynamicToolCall"}


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _usage(raw: dict[str, Any]) -> Usage:
    return Usage(input_tokens=count(raw, "inputTokens"),
                 cached_input_tokens=count(raw, "cachedInputTokens"),
                 cache_write_tokens=count(raw, "cacheWriteInputTokens"),
                 output_tokens=count(raw, "outputTokens"),
                 reasoning_tokens=count(raw, "reasoningOutputTokens"))


def argv_for(client: _agents.AgentClient) -> list[str]:
    """The `codex app-server` command line: llmcells' own provider, nothing else switched on."""
    base = client.base_url or DEFAULT_BASE
    provider = ("{name=\"llmcells\",base_url=" + _toml(base) + ",env_key=\"OPENAI_API_KEY\","
                "wire_api=\"responses\",request_max_retries=0,stream_max_retries=0}")
    return [client.path, "app-server", "-c", 'model_provider="llmcells"',
            "-c", f"model_providers.llmcells={provider}", "-c", "features.plugins=false",
            # no analytics and no OTel metrics (otherwise sent to ab.chatgpt.com)
            "-c", "analytics.enabled=false", "-c", 'otel.metrics_exporter="none"']


def thread_params(request: Request, opts: _agents.AgentOptions) -> dict[str, Any]:
    """thread/start's params: the model, the folder, the sandbox, never asking for approval."""
    params: dict[str, Any] = {
        "model": request.spec.name, "cwd": opts.cwd, "approvalPolicy": "never", "ephemeral": True,
        # tools off: a read-only sandbox (Codex has no switch that removes its shell tool)
        "sandbox": "workspace-write" if opts.tools else "read-only",
    }
    if request.system:
        params["developerInstructions"] = request.system
    return params


def turn_params(thread_id: str, request: Request) -> dict[str, Any]:
    """turn/start's params: the prompt (earlier turns, if any, as a transcript before it)."""
    from dataclasses import replace

    text = _agents.prompt_text(replace(request, system=None))
    return {"threadId": thread_id, "input": [{"type": "text", "text": text}]}


def _turn_error(spec: ModelSpec, error: dict[str, Any]) -> LLMError:
    message = str(error.get("message") or "the turn failed")
    info = error.get("codexErrorInfo")
    status = None
    if isinstance(info, dict):
        for value in info.values():
            if isinstance(value, dict) and value.get("httpStatusCode"):
                status = int(value["httpStatusCode"])
    status = status or _agents.status_in(message)
    if status is None and "disconnected" in message:
        return IncompleteStreamError(f"Codex: the answer broke off: {_agents.one_line(message)}",
                                     provider=spec.provider)
    return _agents.api_error(spec, status, message.split(", url:")[0])


async def _stream(client: _agents.AgentClient, request: Request) -> AsyncIterator[Event]:
    spec = request.spec
    opts = _agents.options(request)
    home = client.home("codex", lambda folder: None)
    env = _agents.clean_env(CODEX_HOME=home, OPENAI_API_KEY=client.api_key, NO_COLOR="1")
    t0 = time.monotonic()
    proc = _agents.Process(argv_for(client), env, opts.cwd, stdin=True)
    await proc.start()
    info: dict[str, Any] = {"cli": "codex", "version": client.version, "cwd": opts.cwd,
                            "tools": opts.tools, "system_prompt": _agents.SYSTEM_NOTE}
    tool_calls = turns = 0
    item = None          # the agent message being streamed
    shown = False
    finished = False
    try:
        await proc.send({"id": 1, "method": "initialize",
                         "params": {"clientInfo": {"name": "llmcells", "version": "1"}}})
        await proc.send({"method": "initialized"})
        await proc.send({"id": 2, "method": "thread/start", "params": thread_params(request, opts)})
        async for msg in proc.lines():
            method = msg.get("method")
            if "id" in msg and method is None:  # a response to one of our requests
                if msg.get("error"):
                    err = msg["error"]
                    raise ProviderError(f"Codex refused the request: "
                                        f"{_agents.one_line(err.get('message') or err)}",
                                        provider=spec.provider)
                if msg["id"] == 2:
                    result = msg.get("result") or {}
                    thread_id = result["thread"]["id"]
                    info["session_id"] = thread_id
                    yield ResponseInfo(response_model=result.get("model") or spec.name, agent=dict(info))
                    await proc.send({"id": 3, "method": "turn/start",
                                     "params": turn_params(thread_id, request)})
                continue
            if "id" in msg:  # a request from the server (an approval): never granted
                await proc.send({"id": msg["id"], "error": {"code": -32601,
                                                            "message": "llmcells does not approve"}})
                continue
            params = msg.get("params") or {}
            if method == "item/agentMessage/delta":
                delta = params.get("delta") or ""
                if delta:
                    if not shown:
                        yield PartStart(_agents.TEXT_PART, "text")
                    elif params.get("itemId") != item:
                        # each message of a multi-step run: a paragraph
                        yield PartDelta(_agents.TEXT_PART, "\n\n")
                    item = params.get("itemId")
                    shown = True
                    yield PartDelta(_agents.TEXT_PART, delta)
            elif method == "item/started":
                if (params.get("item") or {}).get("type") in _TOOL_ITEMS:
                    tool_calls += 1
            elif method == "turn/started":
                turns += 1
            elif method == "thread/tokenUsage/updated":
                total = (params.get("tokenUsage") or {}).get("total") or {}
                yield UsageUpdate(_usage(total))
            elif method == "turn/completed":
                turn = params.get("turn") or {}
                info.update(turns=turns, tool_calls=tool_calls, wall_s=round(time.monotonic() - t0, 3))
                if turn.get("durationMs") is not None:  # start-up: process time outside the turn
                    info["duration_ms"] = turn["durationMs"]
                    info["startup_s"] = round(max(time.monotonic() - t0 - turn["durationMs"] / 1000, 0), 3)
                yield ResponseInfo(agent=dict(info))
                status = turn.get("status")
                if status != "completed":
                    raise _turn_error(spec, turn.get("error") or {"message": f"the turn {status}"})
                finished = True
                break
        if not finished:
            rc = await proc.wait()
            detail = proc.stderr_tail()
            raise _agents.ended_early(spec, rc, detail, shown)
        yield Finish("stop")
    finally:
        await proc.stop()  # the app-server would wait for more requests: SIGTERM ends it


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
        """One thread, one turn; Finish only after `turn/completed` says completed."""
        return _agents.limited(request.spec.provider, _stream(client, request))

    def map_error(self, exc: BaseException, spec: ModelSpec) -> LLMError | None:
        """LLMErrors pass through; anything else is not this adapter's."""
        return exc if isinstance(exc, LLMError) else None


ADAPTER = CodexProvider()
