"""Chats: a conversation with one model that keeps its history (`llmcells.Chat`), can be forked,
trimmed, saved as plain JSON and loaded again, and refuses, before sending, a conversation
longer than the model's context.

    chat = llmcells.Chat(model="claude", system="Be brief.", tools=[get_weather])
    r = await chat.send("What's the weather in Paris?")   # streams into a card
    chat.save("trip.json"); chat = llmcells.Chat.load("trip.json")
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from ._loop import Pending, import_pandas
from .errors import ConfigError
from .types import Message, Result, Usage

log = logging.getLogger("llmcells")

#: the version of the JSON Chat.save writes; Chat.load reads this one and every older one
FORMAT_VERSION = 1
# (the context window and the token estimate are checked by calls.py for every request)
from .calls import ANSWER_ROOM, estimate_tokens  # noqa: E402
from .pricing import context_window  # noqa: E402,F401


class Chat:
    """A conversation with one model: send() streams each answer into a card and keeps the
    history. messages and usage (summed over every request, tool turns included) say where it
    stands; cost_usd its cost; fork() copies it; trim(last=N) keeps the last N exchanges;
    save(path) / Chat.load(path) write and read plain JSON.

    model: an alias or provider:model id (default: the first compare model), or a chain,
    "claude|chatgpt" (or fallback=[...]): when a model fails before its first token the next one
    answers, and the conversation goes on with whichever answered. system: the system prompt. tools: functions the model may call (see llmcells.tools). context_window: override
    the model's context size in tokens (default: genai-prices' figure, when it has one).
    """

    def __init__(self, model: str | None = None, system: str | None = None,
                 tools: Sequence[Callable[..., Any]] | None = None, *, name: str | None = None,
                 messages: Sequence[Message] = (), max_turns: int | None = None,
                 tool_timeout: float | None = None, temperature: float | None = None,
                 max_tokens: int | None = None, context_window: int | None = None,
                 fallback: Sequence[str] | str | None = None, fallback_on: Any = None):
        from .calls import check_options
        from .config import settings
        from .fallback import resolve_chain, split

        # a wrong option is one line now, not a TypeError at the first send
        check_options(temperature=temperature, max_tokens=max_tokens, system=system)
        self.model = model or settings.compare_models[0]
        resolve_chain(self.model)  # an unknown model is one clear line now, not at the first send
        if fallback:
            resolve_chain("|".join(split(fallback)))
        self.fallback, self.fallback_on = fallback, fallback_on
        self.system = system
        self.tools = list(tools or [])
        if self.tools:
            from .tools import toolset

            toolset(self.tools)  # checked now
        self.name = name
        self.messages: list[Message] = list(messages)
        self.max_turns, self.tool_timeout = max_turns, tool_timeout
        self.temperature, self.max_tokens = temperature, max_tokens
        self.context_window = context_window
        self.usage = Usage()
        self.cost_usd = 0.0
        self.requests = 0          # model requests made (a tool call's turns each count)
        self.tool_names: list[str] = [getattr(t, "__name__", str(t)) for t in self.tools]
        self.last: Result | None = None

    # ----- where it stands ---------------------------------------------------------------------

    @property
    def turns(self) -> int:
        """Exchanges so far: the user messages that started one."""
        return sum(1 for m in self.messages if m.role == "user")

    def __repr__(self) -> str:
        cost = "?" if math.isnan(self.cost_usd) else f"${self.cost_usd:.6f}"
        return (f"<Chat {self.name or ''}{' ' if self.name else ''}with {self.model}: {self.turns} turns, "
                f"{self.usage.total_tokens} tokens, {cost}>")

    # ----- sending -----------------------------------------------------------------------------

    def check_context(self, prompt: str = "") -> None:
        """Raise ConfigError when the conversation plus prompt would not fit the model's context."""
        from .fallback import split

        window = self.context_window or context_window(split(self.model)[0])
        if not window:
            return
        need = estimate_tokens([*self.messages, Message("user", prompt)], self.system) + ANSWER_ROOM
        if need > window:
            alone = estimate_tokens([Message("user", prompt)], self.system) + ANSWER_ROOM
            if alone > window:
                raise ConfigError(
                    f"This prompt alone is about {alone:,} tokens with room for the answer, more than "
                    f"{self.model}'s context of {window:,}; nothing was sent. Shorten it.")
            keep = max(1, self.turns // 2)
            raise ConfigError(
                f"This conversation is about {need:,} tokens, more than {self.model}'s context of "
                f"{window:,}; nothing was sent. Keep the latest exchanges with chat.trim(last={keep}) "
                "(or start a new Chat).")

    def send(self, prompt: str, *, display: bool | str | None = None, markdown: bool = True,
             timeout: float | None = None, params: dict[str, Any] | None = None) -> Pending[Result]:
        """Send prompt with the whole history; `await` it (or llmcells.run it) for the Result.
        The exchange joins the history when the answer is complete (status "ok")."""
        from .api import ask

        self.check_context(prompt)
        inner = ask(prompt, self.model, system=self.system, history=list(self.messages),
                    temperature=self.temperature, max_tokens=self.max_tokens, timeout=timeout,
                    display=display, params=params, markdown=markdown,
                    tools=self.tools or None, max_turns=self.max_turns,
                    tool_timeout=self.tool_timeout, fallback=getattr(self, "fallback", None),
                    fallback_on=getattr(self, "fallback_on", None))

        async def go(coro: Coroutine[Any, Any, Result]) -> Result:
            from . import otel

            with otel.parent("chat_turn", model=self.model, turn=len(self.messages) // 2 + 1):
                result = await coro
            self._absorb(prompt, result)
            return result

        return Pending(lambda: go(inner._coroutine()), "chat message",
                       ends_cancelled=inner.ends_cancelled)

    def _absorb(self, prompt: str, result: Result) -> None:
        if result is None:
            return
        self.last = result
        self.usage = self.usage + result.usage
        if not result.cached:
            self.cost_usd += result.cost_usd if result.cost_usd == result.cost_usd else math.nan
        self.requests += getattr(result, "turns", 1) or 1
        if not result.ok:
            return  # a failed or cut answer is not part of the conversation
        if result.messages:
            self.messages = list(result.messages)
        else:
            self.messages = [*self.messages, Message("user", prompt), Message("assistant", result.text)]

    # ----- shaping ---------------------------------------------------------------------------

    def fork(self, name: str | None = None) -> "Chat":
        """A new Chat with the same settings and a copy of the history (usage starts at zero)."""
        other = copy.copy(self)
        other.messages = list(self.messages)
        other.tools = list(self.tools)
        other.name = name
        other.usage, other.cost_usd, other.requests, other.last = Usage(), 0.0, 0, None
        return other

    def trim(self, last: int) -> "Chat":
        """Keep only the last `last` exchanges (an exchange starts at a user message, so tool calls
        stay with their results); returns the chat."""
        if isinstance(last, bool) or not isinstance(last, int) or last < 0:
            raise ConfigError(f"trim(last=...) takes a whole number of exchanges, not {last!r}.")
        starts = [i for i, m in enumerate(self.messages) if m.role == "user"]
        if last == 0:
            self.messages = []
        elif len(starts) > last:
            self.messages = self.messages[starts[-last]:]
        return self

    # ----- files -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The chat as plain JSON-ready data (what save writes)."""
        return {"llmcells_chat": FORMAT_VERSION, "model": self.model, "system": self.system,
                "name": self.name, "tools": self.tool_names,
                "messages": [m.to_dict() for m in self.messages],
                "usage": self.usage.as_dict(),
                "cost_usd": None if math.isnan(self.cost_usd) else self.cost_usd,
                "requests": self.requests,
                "options": {"temperature": self.temperature, "max_tokens": self.max_tokens,
                            "max_turns": self.max_turns, "tool_timeout": self.tool_timeout}}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the chat to path as JSON (model, system prompt, history, tool names, usage)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # a missing folder is made
            tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise ConfigError(f"Cannot save the chat to {path}: {exc.strerror or exc}.") from None
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, tools: Sequence[Callable[..., Any]] | None = None) -> "Chat":
        """A chat saved with save(). Functions can't be saved: pass the tools again (tools=...);
        a saved chat that used tools and gets none says which ones it used."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"No chat file at {path}.") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} is not a chat file llmcells can read ({exc}).") from None
        except RecursionError:
            raise ConfigError(f"{path} is not a chat file llmcells can read (nested too deeply).") from None
        return cls.from_dict(data, tools=tools, where=str(path))

    @classmethod
    def from_dict(cls, data: Any, tools: Sequence[Callable[..., Any]] | None = None,
                  where: str = "the data") -> "Chat":
        if not isinstance(data, dict):
            raise ConfigError(f"{where} is not a saved chat (no JSON object).")
        version = data.get("llmcells_chat", data.get("version"))
        if version is None:
            raise ConfigError(f"{where} is not a saved chat (no llmcells_chat version field).")
        if not isinstance(version, int) or version < 1:
            raise ConfigError(f"{where}: unknown chat format version {version!r}.")
        if version > FORMAT_VERSION:
            raise ConfigError(f"{where} was written by a newer llmcells (chat format {version}; this "
                              f"one reads up to {FORMAT_VERSION}): upgrade llmcells to load it.")
        _check_chat(data, where)
        options = data.get("options") or {}
        messages = [Message.from_dict(m) for m in data.get("messages") or ()]
        saved_tools = list(data.get("tools") or ())
        chat = cls(model=data.get("model"), system=data.get("system"), tools=tools,
                   name=data.get("name"), messages=messages,
                   max_turns=options.get("max_turns"), tool_timeout=options.get("tool_timeout"),
                   temperature=options.get("temperature"), max_tokens=options.get("max_tokens"))
        if saved_tools and not tools:
            chat.tool_names = saved_tools
            log.warning("This chat used the tools %s; pass them again with Chat.load(path, tools=[...]) "
                        "for the model to call them.", ", ".join(saved_tools))
        usage = data.get("usage") or {}
        chat.usage = Usage(**{k: int(v) for k, v in usage.items() if k in Usage().as_dict()})
        cost = data.get("cost_usd")
        chat.cost_usd = math.nan if cost is None else float(cost)
        chat.requests = int(data.get("requests") or 0)
        return chat


_ROLES = ("user", "assistant", "tool")
_OPTIONAL_TEXT = ("model", "system", "name")
_NUMBERS = ("temperature", "max_tokens", "max_turns", "tool_timeout")


def _check_chat(data: dict[str, Any], where: str) -> None:
    """Raise ConfigError, one line naming the first problem, unless data's fields have the
    types a saved chat has: a file is input from elsewhere, and a wrong type would otherwise
    fail later, far from the file, or load a history no provider accepts."""
    def bad(field: str, problem: str) -> ConfigError:
        return ConfigError(f"{where}: {field} {problem}; it is not a chat llmcells saved.")

    for key in _OPTIONAL_TEXT:
        if data.get(key) is not None and not isinstance(data[key], str):
            raise bad(key, f"is {type(data[key]).__name__}, not text")
    tools = data.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, str) for t in tools)):
        raise bad("tools", "is not a list of tool names")
    for key, kinds in (("usage", dict), ("options", dict)):
        if data.get(key) is not None and not isinstance(data[key], kinds):
            raise bad(key, f"is {type(data[key]).__name__}, not an object")
    for key, value in (data.get("usage") or {}).items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise bad(f"usage.{key}", f"is {value!r}, not a token count")
    for key in _NUMBERS:
        value = (data.get("options") or {}).get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise bad(f"options.{key}", f"is {value!r}, not a number")
    cost = data.get("cost_usd")
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, (int, float))):
        raise bad("cost_usd", f"is {cost!r}, not a number")
    requests = data.get("requests")
    if requests is not None and (isinstance(requests, bool) or not isinstance(requests, int)):
        raise bad("requests", f"is {requests!r}, not a whole number")
    messages = data.get("messages")
    if messages is None:
        return
    if not isinstance(messages, list):
        raise bad("messages", f"is {type(messages).__name__}, not a list")
    for i, m in enumerate(messages):
        at = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad(at, f"is {type(m).__name__}, not an object")
        if m.get("role") not in _ROLES:
            raise bad(f"{at}.role", f"is {m.get('role')!r}, not one of {', '.join(_ROLES)}")
        content = m.get("content")
        if not isinstance(content, str):
            raise bad(f"{at}.content", "is missing" if content is None else
                      f"is {type(content).__name__}, not text")
        calls = m.get("tool_calls")
        if calls is not None:
            if m["role"] != "assistant" or not isinstance(calls, list) or not all(
                    isinstance(c, dict) and isinstance(c.get("id"), str) and isinstance(c.get("name"), str)
                    and isinstance(c.get("arguments", "{}"), str) for c in calls):
                raise bad(f"{at}.tool_calls", "is not a list of calls (id, name, arguments) of an assistant message")
        if m["role"] == "tool" and not isinstance(m.get("tool_call_id"), str):
            raise bad(f"{at}.tool_call_id", "is missing (a tool message answers a call)")
        for key in ("name", "tool_call_id"):
            if m.get(key) is not None and not isinstance(m[key], str):
                raise bad(f"{at}.{key}", f"is {type(m[key]).__name__}, not text")


def all_chats() -> dict[str, Chat]:
    """The session's named chats (--chat NAME), by name."""
    from .session import session

    return dict(session.chats)


def send_named(name: str, model: str, prompt: str, options: dict[str, Any],
               explicit_model: bool = False) -> Pending[Result]:
    """The magics' `--chat NAME`: send prompt in the session's chat NAME, starting it on model
    when new. An existing chat keeps its model unless -m names another; --tools and --system, when
    given, replace the chat's."""
    from .session import session

    chat = session.chats.get(name)
    if chat is None:
        chat = session.chats[name] = Chat(model=model, name=name, system=options.get("system"),
                                          tools=options.get("tools"))
    else:
        if explicit_model:
            chat.model = model
        if options.get("system") is not None:
            chat.system = options["system"]
        if options.get("tools"):
            chat.tools = list(options["tools"])
            chat.tool_names = [getattr(t, "__name__", str(t)) for t in chat.tools]
    if options.get("temperature") is not None:
        chat.temperature = options["temperature"]
    if options.get("max_tokens") is not None:
        chat.max_tokens = options["max_tokens"]
    return chat.send(prompt, display=options.get("display"), markdown=options.get("markdown", True),
                     timeout=options.get("timeout"))


def chats_frame() -> Any:
    """The session's named chats: model, exchanges, requests, tokens and cost (a DataFrame)."""
    pd = import_pandas()

    from .session import session

    rows = [{"chat": name, "model": c.model, "turns": c.turns, "requests": c.requests,
             "messages": len(c.messages), "input_tokens": c.usage.input_tokens,
             "output_tokens": c.usage.output_tokens, "cost_usd": c.cost_usd,
             "tools": ", ".join(c.tool_names)} for name, c in session.chats.items()]
    if not rows:
        print("No named chats yet: start one with --chat NAME on %%chatgpt, %%claude or %%gemini.")
    return pd.DataFrame(rows, columns=["chat", "model", "turns", "requests", "messages",
                                       "input_tokens", "output_tokens", "cost_usd", "tools"])
