"""Coding-agent CLIs (Claude Code, Gemini CLI, Codex) as models: which are installed, the
`%%agent` magic and the agent options of the generated magics, and the line a card shows.

The adapters live in `providers/claude_code.py`, `providers/gemini_cli.py` and
`providers/codex.py`; nothing here imports them or starts a CLI until asked.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

from .registry import PROVIDERS, agents

__all__ = ["available", "card_note", "status"]


def _path(name: str) -> str | None:
    from .providers import _agents

    if name == "claude-code":
        found = importlib.util.find_spec("claude_agent_sdk")
        if found is None or not found.origin:
            return None
        bundled = os.path.join(os.path.dirname(found.origin), "_bundled", "claude")
        return bundled if os.path.exists(bundled) else _agents.which("claude")
    return _agents.which({"gemini-cli": "gemini", "codex": "codex"}[name])


def available() -> list[dict[str, Any]]:
    """One dict per agent CLI: name, label, installed, version, path, and how to install it."""
    from .providers import _agents

    out = []
    for row in agents():
        path = _path(row.name)
        out.append({"agent": row.name, "label": row.label, "installed": path is not None,
                    "version": _agents.version_of(path) if path else None, "path": path,
                    "install": row.install})
    return out


def status(provider: str) -> str:
    """For `%llmcells models`: "" for an API provider; an agent's CLI version, or how to
    install it."""
    row = PROVIDERS.get(provider)
    if row is None or row.kind != "agent":
        return ""
    from .providers import _agents

    path = _path(provider)
    return f"{row.label} {_agents.version_of(path)}".strip() if path else f"missing: {row.install}"


def card_note(result: Any) -> str | None:
    """The card's line about an agent's run (None for a plain API call): the CLI and its
    version, the resolved model, turns and tool calls, session id, start-up overhead, and that
    the agent adds its own system prompt."""
    info = getattr(result, "agent", None)
    if not info:
        return None
    parts = [f"{info.get('cli', 'agent')} {info.get('version') or ''}".strip()]
    if result.response_model:
        parts.append(f"model {result.response_model}")
    turns, tools = info.get("turns"), info.get("tool_calls")
    if turns is not None:
        parts.append(f"{turns} turn{'s' if turns != 1 else ''}")
    if tools is not None:
        parts.append(f"{tools} tool call{'s' if tools != 1 else ''}")
    if info.get("session_id"):
        parts.append(f"session {str(info['session_id'])[:8]}")
    if info.get("startup_s") is not None:
        parts.append(f"start-up {info['startup_s']:.2f} s")
    if info.get("cli_cost_usd") is not None:
        parts.append(f"CLI's own cost ${info['cli_cost_usd']:.4f}")
    parts.append("tools on" if info.get("tools") else "tools off")
    parts.append("adds its own system prompt")
    return " · ".join(parts)


# ----- magics ---------------------------------------------------------------------------------------


def agent_arguments(func: Callable) -> Callable:
    """The options only agent magics take: --cwd and --allow-tools (--tools VAR is for Python
    functions the model may call, on every magic)."""
    from IPython.core.magic_arguments import argument

    func = argument("--allow-tools", action="store_true",
                    help="let the agent use its own tools (read and write files, run commands) "
                         "in its working folder, without asking")(func)
    return argument("--cwd", metavar="DIR",
                    help="the agent's working folder (default: a fresh temporary folder)")(func)


def params_from(args: Any) -> dict[str, Any] | None:
    """The agent params (cwd, tools) of a parsed magic line; None when there are none."""
    cwd, tools = getattr(args, "cwd", None), getattr(args, "allow_tools", False)
    if cwd is None and not tools:
        return None
    params: dict[str, Any] = {"tools": bool(tools)}
    if cwd:
        from .magics import _unquote

        params["cwd"] = _unquote(cwd)
    return params


def agent_magic() -> Callable:
    """`%%agent [MODEL] [--cwd DIR] [--allow-tools]`: send the cell to one agent CLI."""
    from IPython.core.magic_arguments import argument

    from .magics import _call_options, _fail

    def agent(self: Any, line: str = "", cell: str | None = None) -> None:
        __tracebackhide__ = True
        args = self._args(magic_func, line)
        if args is None:
            return
        model = args.agent or args.model or _default()
        row = PROVIDERS.get(model.partition(":")[0].strip().lower())
        if row is None or row.kind != "agent":
            raise _fail("%%agent takes an agent: claude-code[:MODEL], gemini-cli[:MODEL] or "
                        f"codex[:MODEL], not {model!r}.")
        self._single(magic_func, model, line, cell)

    agent.__name__ = agent.__qualname__ = "agent"
    agent.__doc__ = """Send the cell to a coding-agent CLI (Claude Code, Gemini CLI or Codex);
        the answer streams into a card with its tokens, cost and the agent's own report.

        Example::

            %%agent codex:gpt-5.5-codex --cwd ./project --allow-tools
            List the files here and say what the project does.

        The first word is the agent (default: the first installed of claude-code, gemini-cli,
        codex). Without --allow-tools the agent gives a plain answer; with it, it may read and
        write files and run commands in --cwd (default: a fresh temporary folder) without
        asking. To compare agents, use %%compare claude-code gemini-cli codex.
        """
    func = argument("agent", nargs="?", default=None, metavar="AGENT",
                    help="claude-code[:MODEL], gemini-cli[:MODEL] or codex[:MODEL]")(agent)
    magic_func = _call_options(agent_arguments(func))
    return magic_func


def _default() -> str:
    for item in available():
        if item["installed"]:
            return item["agent"]
    return "claude-code"
