"""The public `ask` and `compare`: build the calls, open their display, run them through the call pipeline.

Each returns a `Pending`: nothing is sent until it is awaited or passed to `llmcells.run()`, and
its display opens in the thread that does so (the notebook's, so that cards land in the cell).
"""

from __future__ import annotations

import uuid
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

from . import fallback as _fallback  # (ask's `fallback` is a parameter)
from . import replay
from ._loop import Pending, one_line_interrupt
from .attachments import attachments
from .calls import MAX_REPEAT, check_options, make_plan
from .session import current_cell
from .config import settings
from ._log import quietly
from .engine import CallPlan
from .pipeline import run_plans
from .errors import ConfigError
from .models import resolve
from .quotas import daily_caps
from .repair import repair_results
from .session import session
from .comparison import Comparison
from .types import CallObserver, Message, Result

#: the Result (or Comparison) of the last call that finished, for `_llm` and post-mortems
last: Result | Comparison | None = None

__all__ = ["ask", "compare", "last", "MAX_REPEAT"]


def _display(kind: str, plans: Sequence[CallPlan], display: bool | str | None, prompt: str,
             markdown: bool):
    front = session.front_end
    mode = front.detect_mode(display)
    if mode == "none":
        return None
    return front.open_display(kind, [p.info for p in plans], mode, prompt=prompt, markdown=markdown)


def _observers(handle: Any, n: int) -> list[CallObserver | None]:
    return list(handle.observers) if handle is not None else [None] * n


@one_line_interrupt
def ask(prompt: str, model: str | None = None, *, system: str | None = None,
        temperature: float | None = None, max_tokens: int | None = None,
        timeout: float | None = None, display: bool | str | None = None,
        history: Sequence[Message] = (), params: dict[str, Any] | None = None,
        api: str | None = None, cache: bool | None = None, markdown: bool = True,
        refresh: bool = False, fallback: Sequence[str] | str | None = None,
        fallback_on: Sequence[str] | str | None = None,
        limits: dict[str, Any] | None = None, attach: Any = None, schema: Any = None,
        repair: int = 0, tools: Sequence[Any] | None = None, max_turns: int | None = None,
        tool_timeout: float | None = None) -> Pending[Result]:
    """Ask one model; `await` it (or `llmcells.run(...)` it) for a Result.

    model: an alias (chatgpt, claude, gemini) or provider:model id; default: the first of the
    configured compare models. history: earlier messages of the conversation. params: extra
    provider-specific request fields. api: "responses" to use OpenAI's Responses API.
    cache: answer identical requests from the local store (default: settings.cache).
    markdown: render the finished answer as Markdown in a notebook (False: plain text).
    refresh: make the call anew even if replay (or the cache) has its answer.
    model="claude|chatgpt" (or fallback=["chatgpt"]): a chain, the next model answers when one
    fails before its first token (fallback_on= adds error kinds; see fallback.py).
    limits: daily caps, e.g. {"google": {"rpd": 250}} (see quotas.py).
    attach: a file or a list of them (paths, URLs, bytes, PIL images, matplotlib figures,
    DataFrames; see llmcells.attachments). schema: a pydantic model class, a JSON Schema dict,
    {"field": type} or a concise string, "name, age int, tags list[str]": the answer is
    validated into Result.data. repair=1 re-asks once when it does not match.
    tools: Python functions the model may call (their schemas come from type hints and
    docstrings); the model's calls are run and answered until it answers in text, at most
    max_turns (8) requests; each tool runs at most tool_timeout (60) seconds. See llmcells.tools.
    A failed call does not raise: the Result's status and error say what happened.
    """
    files = attachments(attach)  # once, whichever model of a chain answers
    plan = _fallback.chain_plan(
        lambda m: make_plan(prompt, m, system=system, temperature=temperature,
                            max_tokens=max_tokens, timeout=timeout, history=history,
                            params=params, api=api, cache=cache, attach=files, schema=schema,
                            repair=repair, tools=tools, max_turns=max_turns,
                            tool_timeout=tool_timeout),
        model or settings.compare_models[0], fallback, fallback_on)
    plan.limits = daily_caps(limits) or None
    if refresh:
        replay.refresh([plan])

    async def go(handle: Any) -> Result:
        global last
        results: list[Result | None] = []
        try:
            await run_plans([plan], _observers(handle, 1), results)
            await repair_results([plan], results)  # [rich requests hook] repair=1
        finally:
            last = results[0] if results and results[0] else last
            if handle is not None:
                quietly(handle.close, [r for r in results if r])
        return results[0]

    def start() -> Coroutine[Any, Any, Result]:
        plan.cell = current_cell()
        return go(_display("ask", [plan], display, prompt, markdown))

    return Pending(start, "ask", ends_cancelled=True)


@one_line_interrupt
def compare(prompt: str, models: Sequence[str] | None = None, *, system: str | None = None,
            temperature: float | None = None, max_tokens: int | None = None,
            timeout: float | None = None, display: bool | str | None = None,
            repeat: int = 1, params: dict[str, Any] | None = None, api: str | None = None,
            histories: Mapping[str, Sequence[Message]] | None = None,
            cache: bool | None = None, markdown: bool = True, score: Any = None,
            refresh: bool = False, attach: Any = None, schema: Any = None,
            repair: int = 0, tools: Sequence[Any] | None = None, max_turns: int | None = None,
            tool_timeout: float | None = None) -> Pending[Comparison]:
    """Send one prompt to several models at once; `await` it for a Comparison.

    models: aliases or provider:model ids (default: chatgpt, claude, gemini; a string is split at
    commas and spaces, as the compare_models setting is), each may be a chain, "claude|chatgpt" (the next answers when one fails before its first token). repeat: samples
    per model (results are ordered model by model, samples in order). All calls run
    concurrently; a failing model never stops the others. histories: earlier messages of each
    model's conversation, keyed by model id (provider:model). score: a scorer or a list of
    them (see llmcells.scoring); each Result gets .scores, the frame a score_<name> column.
    refresh: make the calls anew even if replay (or the cache) has their answers.
    attach, schema, repair: as in ask(); with a schema, .agreement() tells per field whether
    the models agree.
    tools, max_turns, tool_timeout: as for ask, for every model.
    """
    if isinstance(models, str):  # compare("hi", "claude,gemini"): names, not letters
        models = models.replace(",", " ").split()
    models = list(models) if models else list(settings.compare_models)
    if not models:
        raise ConfigError("No models to compare.")
    check_options(repeat=repeat)
    group_id = uuid.uuid4().hex[:12]
    from .fallback import chain_plan, resolve_chain  # an entry may be a chain, "claude|chatgpt"

    chains = [resolve_chain(m, openai_api=api) for m in models]
    files = attachments(attach)  # once: a figure is rendered once for every model
    plans = [chain_plan(lambda m, k=k: make_plan(
                 prompt, resolve(m, openai_api=api), system=system, temperature=temperature,
                 max_tokens=max_tokens, timeout=timeout, params=params, group_id=group_id,
                 sample=k, history=(histories or {}).get(resolve(m).id, ()), cache=cache,
                 attach=files, schema=schema, repair=repair, tools=tools, max_turns=max_turns,
                 tool_timeout=tool_timeout),
                 "|".join(s.requested for s in chain))
             for chain in chains for k in range(int(repeat))]
    if refresh:
        replay.refresh(plans)
    from .scoring import start as start_scoring

    scoring = start_scoring(score, prompt=prompt, refresh=refresh)

    async def go(handle: Any) -> Comparison:
        global last
        results: list[Result | None] = []
        try:
            await run_plans(plans, scoring.wrap(_observers(handle, len(plans))), results)
            await repair_results(plans, results)  # [rich requests hook] repair=1
            await scoring.wait()  # judges still grading
        finally:
            scoring.cancel()
            done = [r for r in results if r]
            last = Comparison(results=done, group_id=group_id, prompt=prompt)
            if handle is not None:
                quietly(handle.close, done)
        return last

    def start() -> Coroutine[Any, Any, Comparison]:
        cell = current_cell()
        for p in plans:
            p.cell = cell
        return go(_display("compare", plans, display, prompt, markdown))

    return Pending(start, "compare", ends_cancelled=True)
