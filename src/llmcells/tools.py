"""Tools: Python functions a model can call (`tools=[f, g]` on ask and compare), and the
multi-turn loop that runs them: ask the model, run the calls it makes, send the results back,
until it answers in text or max_turns requests were made.

- A tool's JSON schema comes from its signature and type hints (a pydantic model of the
  parameters) and its docstring (description, and each parameter's from an Args / :param section).
- Each model request is one inner call of the pipeline: its own attempts under the retry
  policy, its own ledger row, grouped under the call's group_id (an ask's first call_id).
- The calls of one turn run concurrently: async tools as tasks on the loop, sync tools each in
  its own daemon thread; each has a timeout. A tool that raises, times out, is unknown or gets
  arguments that don't validate sends the model a one-line error as its result.
- An interrupt cancels the running async tools and ends the call at once. A sync tool can't be
  killed: its thread is left to finish on its own, and nothing waits for it.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import logging
import math
import threading
import time
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .errors import ConfigError, LLMCellsWarning
from .session import session
from .types import LIMIT_REASONS, CallObserver, Message, Result, ToolCall, ToolRun, Usage
from ._log import swallowed

log = logging.getLogger("llmcells")

#: the most model requests one call with tools makes
MAX_TURNS = 8
#: seconds a tool may run before its call gets a timeout error
TOOL_TIMEOUT = 60.0
#: characters of a tool's result shown in a card or a hook record
PREVIEW = 80


@dataclass
class Tool:
    """One tool: the function, the name and description the model sees, the JSON schema of its
    arguments and the pydantic model that checks them."""

    fn: Callable[..., Any]
    name: str
    description: str
    parameters: dict[str, Any]
    model: Any
    is_async: bool

    def declaration(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


@dataclass
class ToolSet:
    """The tools of one call and how to run them."""

    tools: dict[str, Tool]
    max_turns: int = MAX_TURNS
    timeout: float = TOOL_TIMEOUT

    def declarations(self) -> list[dict[str, Any]]:
        return [t.declaration() for t in self.tools.values()]

    @property
    def names(self) -> list[str]:
        return list(self.tools)


def _strip_titles(schema: Any) -> Any:
    """pydantic's schema without its generated "title" entries (noise to the model)."""
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items()
                if not (k == "title" and isinstance(v, str))}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


class ToolHintWarning(LLMCellsWarning):
    """A tool function has parameters without type hints: the model is told they take any value."""


#: (module, qualname) of the tool functions already warned of (the same set as session.tool_hints_warned)
_warned_unhinted: set[tuple[str, str]] = session.tool_hints_warned


def _warn_unhinted(fn: Callable[..., Any], name: str, unhinted: list[str]) -> None:
    """One warning per function (not per call) naming its parameters without type hints."""
    key = (getattr(fn, "__module__", "") or "", getattr(fn, "__qualname__", name))
    if not unhinted or key in _warned_unhinted:
        return
    _warned_unhinted.add(key)
    import warnings

    warnings.warn(f"Tool {name}: {', '.join(unhinted)} {'has' if len(unhinted) == 1 else 'have'} no "
                  f"type hint, so the model is told any value will do; add hints such as "
                  f"({unhinted[0]}: str) for better-formed calls.", ToolHintWarning, stacklevel=3)


def as_tool(fn: Callable[..., Any]) -> Tool:
    """A Tool from a plain function, sync or async: schema from its type hints (pydantic),
    descriptions from its docstring. Raises ConfigError for what can't be a tool."""
    if isinstance(fn, Tool):
        return fn
    if not callable(fn):
        raise ConfigError(f"A tool must be a function, not {type(fn).__name__}.")
    import docstring_parser
    from pydantic import ConfigDict, Field, create_model

    name = getattr(fn, "__name__", None) or type(fn).__name__
    try:
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
    except (TypeError, ValueError, NameError) as exc:
        raise ConfigError(f"Tool {name}: can't read its signature ({exc}).") from None
    doc = docstring_parser.parse(inspect.getdoc(fn) or "")
    described = {p.arg_name: p.description for p in doc.params}
    fields: dict[str, Any] = {}
    for pname, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ConfigError(f"Tool {name}: *args and **kwargs can't be described to a model; "
                              "name every parameter.")
        default = ... if p.default is p.empty else p.default
        fields[pname] = (hints.get(pname, Any), Field(default, description=described.get(pname)))
    try:
        model = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
        schema = _strip_titles(model.model_json_schema())
    except Exception as exc:
        raise ConfigError(f"Tool {name}: its type hints don't make a JSON schema ({exc}).") from None
    schema.setdefault("properties", {})
    _warn_unhinted(fn, name, [p for p in sig.parameters if p not in hints])
    description = "\n\n".join(d for d in (doc.short_description, doc.long_description) if d) or name
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None))
    return Tool(fn, name, description, schema, model, is_async)


def toolset(tools: Any, max_turns: int = MAX_TURNS, timeout: float = TOOL_TIMEOUT) -> ToolSet | None:
    """The ToolSet for a call's tools= option (None when there are none); checks everything."""
    if tools is None:
        return None
    if isinstance(tools, ToolSet):
        return tools
    if callable(tools) or isinstance(tools, Tool):
        tools = [tools]
    if isinstance(tools, dict):
        tools = list(tools.values())
    if not isinstance(tools, (list, tuple)):
        raise ConfigError(f"tools must be a list of functions, not {type(tools).__name__}.")
    if not tools:
        return None
    if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
        raise ConfigError(f"max_turns must be a whole number of 1 or more, not {max_turns!r}.")
    try:
        ok = float(timeout) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"tool_timeout must be a positive number of seconds, not {timeout!r}.")
    built: dict[str, Tool] = {}
    for fn in tools:
        t = as_tool(fn)
        if t.name in built:
            raise ConfigError(f"Two tools are named {t.name}; give each tool its own name.")
        built[t.name] = t
    return ToolSet(built, max_turns, float(timeout))


def from_namespace(name: str, namespace: dict[str, Any]) -> list[Any]:
    """The tools held by variable name (the magics' --tools VAR): a list of functions, or one."""
    if name not in namespace:
        raise ConfigError(f"no variable {name!r} in the notebook; set it to a list of functions, "
                          f"e.g. {name} = [get_weather].")
    value = namespace[name]
    tools = [value] if callable(value) else value
    toolset(tools)  # checked now: one line for a bad tool
    return list(tools)


# ----- running the calls of one turn ---------------------------------------------------------------


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        from pydantic import TypeAdapter

        return TypeAdapter(type(value)).dump_json(value).decode()
    except Exception as exc:
        swallowed("dumping a tool's result with pydantic (json.dumps instead)", exc)
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except Exception as exc:
            swallowed("dumping a tool's result as JSON (its repr instead)", exc)
            return repr(value)


def preview(text: str, limit: int = PREVIEW) -> str:
    """text on one line, cut to about limit characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short_error(exc: BaseException) -> str:
    from .errors import redact

    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return redact(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)[:300]


def _in_thread(fn: Callable[..., Any], kwargs: dict[str, Any]) -> asyncio.Future:
    """fn(**kwargs) in a daemon thread of its own: an abandoned one never holds up the loop, an
    executor's shutdown or the interpreter's exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def settle(value: Any, exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)

    def hand_back(value: Any, exc: BaseException | None) -> None:
        try:
            loop.call_soon_threadsafe(settle, value, exc)
        except RuntimeError as exc:  # the loop closed meanwhile (unloaded, or its script ended)
            swallowed("handing a tool's late result to its closed event loop", exc)

    def work() -> None:
        try:
            value = fn(**kwargs)
        except BaseException as exc:  # noqa: BLE001 (handed to the loop as the tool's error)
            hand_back(None, exc)
        else:
            hand_back(value, None)

    threading.Thread(target=work, name="llmcells-tool", daemon=True).start()
    return future


async def run_tool(toolset_: ToolSet, call: ToolCall, turn: int) -> ToolRun:
    """Run one call; every failure becomes the run's short error, never an exception (except
    cancellation)."""
    run = ToolRun(id=call.id, name=call.name, arguments=call.arguments_json, turn=turn)
    t0 = time.monotonic()
    tool = toolset_.tools.get(call.name)
    try:
        if tool is None:
            raise LookupError(f"no tool named {call.name!r}; the tools are: {', '.join(toolset_.names)}")
        try:
            raw = json.loads(call.arguments_json or "{}")
            args = tool.model.model_validate(raw if raw is not None else {})
        except Exception as exc:
            run.error = f"bad arguments for {call.name}: " + _validation_text(exc)
            return run
        kwargs = {k: getattr(args, k) for k in type(args).model_fields}
        work = asyncio.ensure_future(tool.fn(**kwargs)) if tool.is_async else _in_thread(tool.fn, kwargs)
        value = await _within(work, toolset_.timeout, call.name)
        run.result = _as_text(value)
    except asyncio.CancelledError:
        run.error = "cancelled"
        raise
    except TimeoutError:
        run.error = f"{call.name} did not finish within {toolset_.timeout:g} s"
    except Exception as exc:
        run.error = _short_error(exc)
    finally:
        run.duration_s = time.monotonic() - t0
    return run


#: how long a timed-out async tool may take to stop once cancelled before it is reported
STUCK_REPORT_S = 0.5


async def _within(work: asyncio.Future, timeout: float, name: str) -> Any:
    """work's value, if it comes within timeout; otherwise TimeoutError at the deadline, hard:
    the tool is cancelled (a thread cannot be) and whatever it returns later is ignored. A tool
    still running after that (an async tool that swallows its cancellation, a thread) is
    reported once on the logger. An interrupt of the call cancels the tool too."""
    try:
        done, _ = await asyncio.wait({work}, timeout=timeout)
    except asyncio.CancelledError:
        work.cancel()
        raise
    if done:
        return work.result()
    work.cancel()
    work.add_done_callback(_ignore)  # its late result or error is nobody's
    if isinstance(work, asyncio.Task):
        # reported below on llmcells' logger; if the loop stops first (%unload_ext), asyncio
        # must not add "Task was destroyed but it is pending!" (as asyncio itself does for
        # the tasks it abandons)
        work._log_destroy_pending = False

    def report() -> None:
        if not work.done():
            log.warning("llmcells: the tool %s is still running %g s after its tool_timeout; "
                        "its result will be ignored.", name, timeout + STUCK_REPORT_S)

    asyncio.get_running_loop().call_later(STUCK_REPORT_S, report)
    raise TimeoutError


def _ignore(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()  # (retrieved: no "exception was never retrieved" at exit)


def _validation_text(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            parts = [f"{'.'.join(map(str, e.get('loc', ()))) or 'arguments'}: {e.get('msg')}"
                     for e in errors()[:3]]
            return "; ".join(parts)[:300]
        except Exception as exc:
            swallowed("summing up a validation error", exc)
    return _short_error(exc)


def tool_message(run: ToolRun) -> Message:
    """The "tool" message that sends run's result (or its error) back to the model."""
    content = run.result if run.error is None else f"Error: {run.error}"
    return Message("tool", content, tool_call_id=run.id, name=run.name, is_error=run.error is not None)


# ----- the loop ------------------------------------------------------------------------------------


class _TurnObserver:
    """The call's observer seen through every turn: one on_start / on_sent / on_first_token, the
    text and retries of every turn, usage summed over the turns, and no per-turn on_finish (the
    loop sends one, with the whole call's Result)."""

    def __init__(self, outer: CallObserver) -> None:
        self.outer = outer
        self.started = self.sent = False
        self.t0: float | None = None
        self.ttft: float | None = None
        self.before = Usage()   # usage of the finished turns

    def __getattr__(self, name: str) -> Any:
        return getattr(self.outer, name)

    def on_start(self, info: Any) -> None:
        if not self.started:
            self.started = True
            self.outer.on_start(info)

    def on_sent(self, t0: float) -> None:
        if not self.sent:
            self.sent, self.t0 = True, t0
            self.outer.on_sent(t0)

    def on_status(self, status: str, detail: str | None = None) -> None:
        self.outer.on_status(status, detail)

    def on_retry(self, retry: Any) -> None:
        self.outer.on_retry(retry)

    def on_first_token(self, ttft_s: float) -> None:
        if self.ttft is None:
            self.ttft = time.monotonic() - (self.t0 or time.monotonic())
            self.outer.on_first_token(self.ttft)

    def on_text(self, delta: str) -> None:
        self.outer.on_text(delta)

    def on_usage(self, usage: Usage) -> None:
        self.outer.on_usage(self.before + usage)

    def on_finish(self, result: Result) -> None:
        self.before = self.before + result.usage


def _turn_plan(plan: Any, messages: list[Message], n: int, group_id: str) -> Any:
    """The engine plan of turn n: the conversation so far, a call id of its own, the call's group."""
    from .types import CallInfo

    request = replace(plan.request, messages=list(messages))
    request.extra = {**plan.request.extra}
    info = plan.info if n == 1 else CallInfo(**{**plan.info.__dict__, "call_id": uuid.uuid4().hex})
    info.group_id = group_id
    return replace(plan, request=request, info=info, tools=None, cache=False)


def _sum_cost(results: list[Result]) -> float:
    costs = [r.cost_usd for r in results]
    return math.nan if any(c is None or math.isnan(c) for c in costs) else sum(costs)


async def stage(plan: Any, observer: CallObserver, next: Any) -> Result:
    """The pipeline stage: a call with tools is a loop of model requests (each one inner call,
    with its own ledger row) and tool runs; any other call passes through."""
    if plan.tools is None:
        return await next(plan, observer)
    return await run_call(plan, observer, next)


async def run_call(plan: Any, observer: CallObserver | None, next: Any) -> Result:
    """One call with tools, whatever happens (a cancelled call returns its Result with status
    "cancelled"); next makes one model request."""
    from . import hooks
    from ._log import quietly

    tools_: ToolSet = plan.tools
    outer = observer or CallObserver()
    watcher = _TurnObserver(outer)
    group_id = plan.info.group_id or plan.info.call_id
    plan.request.extra["tools"] = tools_.declarations()
    messages = list(plan.request.messages)
    turns: list[Result] = []
    runs: list[ToolRun] = []
    started = time.monotonic()
    stop: tuple[str, str, str] | None = None   # (status, error_kind, error) that ends the loop early
    for n in range(1, tools_.max_turns + 1):
        r = await next(_turn_plan(plan, messages, n, group_id), watcher)
        turns.append(r)
        calls = [c for c in r.tool_calls if isinstance(c, ToolCall)]
        if not r.ok or not calls:
            if r.text or not calls:
                messages.append(Message("assistant", r.text))
            break
        if r.finish_reason in LIMIT_REASONS and not _whole_object(calls[-1].arguments_json):
            # The output limit cut the turn while it was calling: the last call's arguments are
            # cut-off JSON. Running the calls, or telling the model its arguments were bad, would
            # bill more turns that the same limit cuts again (Anthropic: retry with a higher
            # max_tokens). The turn's text stays; its calls, never answered, are left out.
            # (Gemini sends a call whole: at its limit, the calls it made still run.)
            if r.text:
                messages.append(Message("assistant", r.text))
            names = ", ".join(dict.fromkeys(c.name for c in calls))
            stop = ("incomplete", "incomplete",  # (as a cut answer is: status and kind)
                    f"The answer reached max_tokens while calling {names}: the call was cut off, "
                    "so no tool ran; raise max_tokens=... and ask again.")
            break
        messages.append(Message("assistant", r.text, tool_calls=tuple(calls)))
        if n == tools_.max_turns:
            stop = ("error", "max_turns",
                    f"The model still asked for tools after {n} requests (max_turns={n}); "
                    "raise max_turns=... or ask for an answer without tools.")
            break
        tasks = [asyncio.ensure_future(run_tool(tools_, c, n)) for c in calls]
        try:
            for task in asyncio.as_completed(tasks):
                done = await task
                quietly(getattr(outer, "on_tool_call", lambda _r: None), done)
                try:
                    hooks.tool_call(plan.info, done.name, done.arguments, done.duration_s,
                                    preview(done.result or ""), done.error)
                except Exception:
                    log.debug("a tool_call hook failed", exc_info=False)
        except asyncio.CancelledError:
            for t in tasks:
                t.cancel()
            # async tools get a moment to unwind; sync ones are never waited for
            await asyncio.wait(tasks, timeout=0.5)
            runs += [t.result() for t in tasks if t.done() and not t.cancelled() and t.exception() is None]
            stop = ("cancelled", "cancelled", "Cancelled while tools were running.")
            break
        finished = [t.result() for t in tasks]   # in the order the model asked
        runs += finished
        messages += [tool_message(x) for x in finished]
    result = _combine(turns, runs, messages, started, watcher, stop)
    quietly(outer.on_finish, result)
    return result


def _whole_object(arguments_json: str | None) -> bool:
    """Whether a call's arguments are a whole JSON object (none at all counts as {})."""
    try:
        return isinstance(json.loads(arguments_json or "{}"), dict)
    except (ValueError, RecursionError):
        return False


def _combine(turns: list[Result], runs: list[ToolRun], messages: list[Message], started: float,
             watcher: _TurnObserver, stop: tuple[str, str, str] | None) -> Result:
    """The call's Result: the first turn's identity, the last turn's status, the text and the
    reasoning of every turn, usage and cost summed over every turn."""
    first, last = turns[0], turns[-1]
    result = copy.copy(last)
    result.call_id, result.group_id, result.started_at = first.call_id, first.group_id, first.started_at
    result.usage = sum((r.usage for r in turns), Usage())
    result.cost_usd = _sum_cost(turns)
    # attempts: the first request and every retry of any turn (1 when nothing was retried)
    result.attempts = sum(r.attempts for r in turns) - (len(turns) - 1)
    result.turns = len(turns)
    result.tool_calls = runs
    result.messages = messages
    result.text = "\n\n".join(r.text for r in turns if r.text)
    result.reasoning = "\n\n".join(r.reasoning for r in turns if r.reasoning)  # (thinking before a call too)
    result.notes = list(dict.fromkeys(n for r in turns for n in r.notes))  # each note once
    result.ttft_s = watcher.ttft
    result.latency_s = time.monotonic() - (watcher.t0 or started)
    if stop is not None:
        result.status, result.error_kind, result.error = stop
    return result
