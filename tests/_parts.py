"""Reads a provider adapter's part events back into answer text, reasoning and tool calls, for
the tests that run an adapter on its own (the engine's fold is tested in test_parts.py).

Stricter than the engine: a delta or an end for a part that never started, or a part started
twice, fails the test, since an adapter that sends one is wrong even where the engine copes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llmcells.engine import _ToolPart
from llmcells.types import Finish, PartDelta, PartEnd, PartStart, ToolCall


def fold(events: Iterable[Any]) -> tuple[str, str, list[ToolCall]]:
    """(text, reasoning, tool calls) of an adapter's events, by the engine's rules for tool calls."""
    kinds: dict[Any, Any] = {}
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    n = 0
    for e in events:
        if isinstance(e, PartStart):
            assert e.index not in kinds, f"part {e.index} started twice"
            if e.kind == "tool_call":
                kinds[e.index] = _ToolPart(e, n)
                n += 1
            else:
                assert e.kind in ("text", "reasoning"), e
                kinds[e.index] = e.kind
        elif isinstance(e, PartDelta):
            assert e.index in kinds, f"a delta for part {e.index}, which never started"
            kind = kinds[e.index]
            if kind == "text":
                text.append(e.text)
            elif kind == "reasoning":
                reasoning.append(e.text)
            else:
                kind.add(e)
        elif isinstance(e, PartEnd):
            assert e.index in kinds, f"the end of part {e.index}, which never started"
            kind = kinds.pop(e.index)
            if isinstance(kind, _ToolPart):
                calls.append(kind.call())
        elif isinstance(e, Finish):
            for index in sorted(kinds):
                if isinstance(kinds[index], _ToolPart):
                    calls.append(kinds[index].call())
            kinds.clear()
    return "".join(text), "".join(reasoning), calls


def text_of(events: Iterable[Any]) -> str:
    return fold(events)[0]


def reasoning_of(events: Iterable[Any]) -> str:
    return fold(events)[1]


def tool_calls_of(events: Iterable[Any]) -> list[ToolCall]:
    return fold(events)[2]


def text_pieces(events: Iterable[Any]) -> list[str]:
    """The answer's deltas one by one, as the adapter yielded them."""
    text_parts = {e.index for e in events if isinstance(e, PartStart) and e.kind == "text"}
    return [e.text for e in events if isinstance(e, PartDelta) and e.index in text_parts]
