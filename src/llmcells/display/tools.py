"""How a call's tool calls read in a card or a terminal: one line per call (name, arguments,
duration, a short preview of the result or the error), and the whole exchange as one text."""

from __future__ import annotations

from typing import Any

#: characters of a tool's arguments and result shown on its line
ARGS_CHARS = 60
RESULT_CHARS = 80


def _cut(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tool_line(run: Any) -> str:
    """`🔧 get_weather({"city":"Paris"}) · 0.50 s → {"temp":21}` (✗ and the error when it failed)."""
    head = f"🔧 {run.name}({_cut(run.arguments, ARGS_CHARS)}) · {run.duration_s:.2f} s"
    if run.error is not None:
        return f"{head} ✗ {_cut(run.error, RESULT_CHARS)}"
    return f"{head} → {_cut(run.result, RESULT_CHARS)}"


def tool_markdown(run: Any) -> str:
    """tool_line as a Markdown quote of its own; code spans keep the JSON from being read as
    Markdown."""
    def code(text: str, limit: int) -> str:
        return "`" + _cut(text, limit).replace("`", "'") + "`"

    head = f"> 🔧 {code(f'{run.name}({_cut(run.arguments, ARGS_CHARS)})', ARGS_CHARS + 40)} · {run.duration_s:.2f} s"
    if run.error is not None:
        return f"\n\n{head} ✗ {code(run.error, RESULT_CHARS)}\n\n"
    return f"\n\n{head} → {code(run.result, RESULT_CHARS)}\n\n"


def transcript(result: Any, markdown: bool = True) -> str:
    """The answer with a line for every tool call, in the order they happened (result.text when
    the call used no tools)."""
    runs = {getattr(r, "id", None): r for r in getattr(result, "tool_calls", ()) or ()
            if hasattr(r, "duration_s")}
    if not runs:
        return result.text or ""
    messages = list(getattr(result, "messages", ()) or ())
    start = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1) + 1
    parts: list[str] = []
    for m in messages[start:]:
        if m.role != "assistant":
            continue
        if m.content:
            parts.append(m.content)
        for call in m.tool_calls:
            run = runs.get(call.id)
            if run is not None:
                parts.append(tool_markdown(run).strip() if markdown else tool_line(run))
    return "\n\n".join(parts)
