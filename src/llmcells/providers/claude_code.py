"""Claude Code adapter: the `claude` CLI through the official `claude-agent-sdk` (which bundles
it), its raw Anthropic stream events turned into the common event stream.

The CLI gets llmcells' own base URL and key, the privacy switches (no telemetry, error reports,
auto-update or other non-essential traffic), a private CLAUDE_CONFIG_DIR per session, its own
retries at zero and no non-streaming fallback, so llmcells' one retry policy applies and an
answer that broke mid-stream is reported as broken, never silently re-asked and spliced.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

from ..errors import ConfigError, IncompleteStreamError, LLMError
from ..models import ModelSpec
from ..types import Event, Finish, PartDelta, PartStart, Request, ResponseInfo, UsageUpdate
from . import _agents
from .anthropic import map_usage, merge_usage
from .base import ClientOptions, Provider
from .._log import swallowed
from .._loop import note_send

#: the switches that keep the CLI to one streamed request per answer and nothing else
PRIVACY_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1", "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_MAX_RETRIES": "0", "CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK": "1",
}


def _sdk() -> Any:
    try:
        import claude_agent_sdk
    except ImportError:
        raise _agents.missing("claude-code") from None
    return claude_agent_sdk


def cli_path() -> str | None:
    """The `claude` CLI the SDK bundles (else one on PATH)."""
    sdk = _sdk()
    bundled = os.path.join(os.path.dirname(sdk.__file__), "_bundled", "claude")
    return bundled if os.path.exists(bundled) else _agents.which("claude")


#: with tools off, every tool that reads or lists a file, runs a command or fetches a URL is
#: denied by the CLI's own permission rules: tools=[] takes them from the model, but the CLI
#: itself still reads a file or folder that the prompt mentions as `@path` (anywhere the
#: process may read: ~/.ssh, /etc/passwd) and sends it with the prompt, and these rules are
#: what stop that
_NO_FILES = json.dumps({"permissions": {"deny": [
    "Read", "Bash", "Glob", "Grep", "LS", "NotebookRead", "WebFetch", "WebSearch", "Edit", "Write",
    "NotebookEdit"]}})


def _env(client: _agents.AgentClient, home: str) -> dict[str, str]:
    # The SDK starts the CLI with this process's environment plus these; blank out the user's
    # own provider, cloud and llmcells variables (keys, tokens, other servers, a service's
    # token) so they never reach the CLI.
    env = {k: "" for k in os.environ if k.upper().startswith(_agents.PRIVATE_PREFIXES)}
    env.update(PRIVACY_ENV, CLAUDE_CONFIG_DIR=home, ANTHROPIC_API_KEY=client.api_key)
    if client.base_url:
        env["ANTHROPIC_BASE_URL"] = client.base_url
    return env


def _options(client: _agents.AgentClient, request: Request, opts: _agents.AgentOptions) -> Any:
    sdk = _sdk()
    system: dict[str, Any] = {"type": "preset", "preset": "claude_code"}
    if request.system:
        system["append"] = request.system
    home = client.home("claude", lambda folder: None)
    kwargs: dict[str, Any] = dict(
        model=request.spec.name, include_partial_messages=True, env=_env(client, home),
        cwd=opts.cwd, cli_path=client.path, system_prompt=system, setting_sources=[],
        stderr=lambda line: None)
    if opts.tools:
        # The agent's own tools, with permission to use them unasked, inside cwd.
        kwargs.update(tools={"type": "preset", "preset": "claude_code"},
                      permission_mode="bypassPermissions")
    else:
        kwargs.update(tools=[], max_turns=1, settings=_NO_FILES)
    return sdk.ClaudeAgentOptions(**kwargs)


async def _stream(client: _agents.AgentClient, request: Request) -> AsyncIterator[Event]:
    sdk = _sdk()
    spec = request.spec
    opts = _agents.options(request)
    agent = sdk.ClaudeSDKClient(_options(client, request, opts))
    info: dict[str, Any] = {"cli": "claude", "version": client.version, "cwd": opts.cwd,
                            "tools": opts.tools, "system_prompt": _agents.SYSTEM_NOTE}
    finished = False
    started = 0          # message_start events seen (one per model request)
    shown = thought = False    # the answer's part and the reasoning's part started
    seen: dict[str, int] = {}
    tool_calls = 0
    streamed: list[str] = []   # the answer as streamed
    final: list[str] = []      # the answer as the CLI's assistant messages give it
    try:
        note_send()  # an interrupt before this starts no CLI; after it, the CLI ran
        await agent.connect()
        await agent.query(_agents.prompt_text(_no_system(request)))
        async for msg in agent.receive_response():
            if isinstance(msg, sdk.StreamEvent):
                event = msg.event
                kind = event.get("type")
                if kind == "message_start":
                    started += 1
                    if started > 1 and not opts.tools:
                        # With tools off there is one request per answer: a second one is the
                        # CLI asking again, whose text must not be spliced onto the first.
                        raise IncompleteStreamError(
                            "Claude Code asked the API again after a broken answer; the first, "
                            "partial answer is kept.", provider=spec.provider)
                    message = event.get("message") or {}
                    info["session_id"] = msg.session_id
                    seen = {}
                    yield ResponseInfo(response_model=message.get("model") or None,
                                       response_id=message.get("id") or None, agent=dict(info))
                    if started > 1 and shown:
                        yield PartDelta(_agents.TEXT_PART, "\n\n")  # a new turn of a tool-using run
                elif kind == "content_block_start":
                    if (event.get("content_block") or {}).get("type") == "tool_use":
                        tool_calls += 1
                elif kind == "content_block_delta":
                    delta = event.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        if not shown:
                            yield PartStart(_agents.TEXT_PART, "text")
                        shown = True
                        streamed.append(delta["text"])
                        yield PartDelta(_agents.TEXT_PART, delta["text"])
                    elif delta.get("type") == "thinking_delta" and delta.get("thinking"):
                        if not thought:
                            yield PartStart(_agents.REASONING_PART, "reasoning")
                        thought = True
                        yield PartDelta(_agents.REASONING_PART, delta["thinking"])
                elif kind == "message_delta" and started == 1 and event.get("usage"):
                    yield UsageUpdate(map_usage(merge_usage(seen, event["usage"])))
            elif isinstance(msg, sdk.AssistantMessage):
                final.extend(b.text for b in msg.content if isinstance(b, sdk.TextBlock))
            elif isinstance(msg, sdk.ResultMessage):
                if not opts.tools and not msg.is_error and "".join(final) != "".join(streamed):
                    # The CLI asked again without streaming after a broken stream (its fallback,
                    # normally switched off): what was shown is not the answer it reports.
                    raise IncompleteStreamError(
                        "Claude Code re-asked the API after a broken stream; the streamed part is "
                        "kept.", provider=spec.provider)
                info.update(session_id=msg.session_id, turns=msg.num_turns, tool_calls=tool_calls,
                            cli_cost_usd=msg.total_cost_usd, duration_ms=msg.duration_ms,
                            duration_api_ms=msg.duration_api_ms)
                if msg.duration_ms is not None and msg.duration_api_ms is not None:
                    info["startup_s"] = round(max(msg.duration_ms - msg.duration_api_ms, 0) / 1000, 3)
                if msg.usage:
                    # The result's usage covers every turn of the run.
                    yield UsageUpdate(map_usage(merge_usage({}, msg.usage)))
                models = list((msg.model_usage or {}).keys())
                yield ResponseInfo(response_model=models[0] if len(models) == 1 else None,
                                   agent=dict(info))
                if msg.is_error:
                    detail = "; ".join(msg.errors or []) or (msg.result or msg.subtype)
                    raise _agents.api_error(spec, msg.api_error_status
                                            or _agents.status_in(detail), detail)
                finished = True
                yield Finish(msg.stop_reason or "end_turn")
        if not finished:
            raise IncompleteStreamError("Claude Code ended before its result.", provider=spec.provider)
    finally:
        if not finished:
            # interrupt() stops a running answer in milliseconds; closing alone takes seconds.
            try:
                await asyncio.wait_for(asyncio.shield(agent.interrupt()), 1.0)
            except BaseException as exc:  # not connected yet, or already ended: nothing to stop
                swallowed("interrupting Claude Code", exc)
        try:
            await asyncio.wait_for(asyncio.shield(agent.disconnect()), 5.0)
        except BaseException as exc:
            swallowed("disconnecting from Claude Code", exc)


def _no_system(request: Request) -> Request:
    """request without its system text (Claude Code takes it as an appended system prompt)."""
    from dataclasses import replace

    return replace(request, system=None)


class ClaudeCodeProvider(Provider):
    """Claude Code through `claude_agent_sdk.ClaudeSDKClient`."""

    name = "claude_code"

    def make_client(self, options: ClientOptions) -> _agents.AgentClient:
        """The CLI's path and version plus where to send requests; ConfigError if not installed."""
        path = cli_path()
        if path is None:
            raise _agents.missing("claude-code")
        return _agents.AgentClient("claude-code", path, _agents.version_of(path),
                                   options.base_url, options.api_key)

    def stream(self, client: _agents.AgentClient, request: Request) -> AsyncIterator[Event]:
        """One answer from the CLI; Finish only after its successful result message."""
        return _agents.limited(request.spec.provider, _stream(client, request))

    def map_error(self, exc: BaseException, spec: ModelSpec) -> LLMError | None:
        """LLMErrors pass through; the SDK's own errors become one line."""
        if isinstance(exc, LLMError):
            return exc
        sdk = __import__("sys").modules.get("claude_agent_sdk")
        if sdk is not None and isinstance(exc, sdk.ClaudeSDKError):
            if isinstance(exc, getattr(sdk, "CLINotFoundError", ())):
                return _agents.missing("claude-code")
            return _agents.api_error(spec, None, str(exc))
        return None


__all__ = ["ADAPTER", "ConfigError"]
ADAPTER = ClaudeCodeProvider()
