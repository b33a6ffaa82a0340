"""Coding-agent CLIs (Claude Code, Gemini CLI, Codex) as models: which are installed, and the
line a card shows about an agent's run.

The adapters live in `providers/claude_code.py`, `providers/gemini_cli.py` and
`providers/codex.py` (with what finds the CLIs, `providers/_agents.py`); the `%%agent` magic and
the agent options of the generated magics are in magics.py.
"""

from __future__ import annotations

from typing import Any

from .providers._agents import available, status  # noqa: F401  (the agents' own names)

__all__ = ["available", "card_note", "status"]


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
