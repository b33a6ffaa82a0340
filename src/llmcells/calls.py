"""Building a call from its options: the one place call options are checked and defaults filled in.

`make_plan` turns user-level options (ask, compare, batch and the magics all pass the same ones)
into a `CallPlan` for the engine. Bad input raises one `ConfigError` line and nothing is sent.
"""

from __future__ import annotations

import functools
import math
import operator
import os
import time
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Any

from . import attachments, capabilities, lifecycle
from .config import settings
from .engine import CallPlan
from .errors import ConfigError, ContextWindowError
from .pricing import context_window
from .models import ModelSpec, resolve
from .types import CallInfo, Message, Request

#: the most samples per model compare() (and `-n` in magics) takes
MAX_REPEAT = 100


def new_call_id() -> str:
    """A new call id: a version 7 UUID (RFC 9562) in hex, 32 characters: the Unix time in
    milliseconds, then 74 random bits (os.urandom), without building a UUID object per call.

    Ids made later sort later, so each ledger row's call_id goes in at the end of the ledger's
    unique index (the shared ledger's primary key) instead of at a random page of it: 7 to 18 us
    less per commit, about a tenth of it (benchmarks/bench_ledger.py)."""
    b = bytearray((time.time_ns() // 1_000_000 % (1 << 48)).to_bytes(6, "big") + os.urandom(10))
    b[6] = (b[6] & 0x0F) | 0x70  # version 7
    b[8] = (b[8] & 0x3F) | 0x80  # the RFC 9562 variant
    return b.hex()


def check_options(*, temperature: float | None = None, max_tokens: int | None = None,
                  timeout: float | None = None, repeat: int | None = None,
                  repeat_cap: int | None = MAX_REPEAT, system: Any = None,
                  params: Any = None) -> None:
    """Raise ConfigError for an option out of range or of the wrong kind (the message names the
    option and what it takes)."""
    if system is not None and not isinstance(system, str):
        raise ConfigError(f"system must be text, not {type(system).__name__}.")
    if params is not None and not isinstance(params, Mapping):
        raise ConfigError("params must be a dict of the provider's request fields, e.g. "
                          f"params={{'top_p': 0.9}}, not {type(params).__name__}.")
    if temperature is not None:
        try:
            ok = 0.0 <= float(temperature) <= 2.0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"temperature must be between 0 and 2, not {_show(temperature)}.")
    if max_tokens is not None and (_whole(max_tokens) or 0) < 1:
        raise ConfigError(f"max_tokens must be a positive whole number, not {max_tokens}.")
    if timeout is not None:
        try:
            ok = float(timeout) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"timeout must be a positive number of seconds, not {_show(timeout)}.")
    if repeat is not None:
        if (_whole(repeat) or 0) < 1:
            raise ConfigError(f"repeat must be 1 or more, not {repeat}.")
        if repeat_cap is not None and repeat > repeat_cap:  # every sample is a request, shown in its own card
            raise ConfigError(f"repeat is at most {repeat_cap} samples per model, not {repeat}; "
                              "use llmcells.batch(..., repeat=N) for more.")


def _show(value: Any) -> str:
    """A number as people write it (9, not 9.0); anything else as given."""
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _whole(value: Any) -> int | None:
    """value as an int when it is a whole number of any integer type (numpy's too), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_prompt(prompt: Any) -> str:
    """The prompt, if it is non-empty text; else a ConfigError saying what to do."""
    if not isinstance(prompt, str):
        raise ConfigError(f"The prompt must be text, not {type(prompt).__name__}.")
    if not prompt.strip():
        raise ConfigError("The prompt is empty: write something to ask.")
    return prompt


def rich_options(spec: ModelSpec, attach: Any, schema: Any, repair: Any,
                 system: str | None) -> tuple[tuple, Any, str | None]:
    """(attachments, OutputSchema, system prompt) for one model, checked against its provider's
    limits: one ConfigError naming the file and the limit, and nothing is sent. An endpoint
    without native structured output gets the schema as instructions in its system prompt."""
    files = attachments.attachments(attach)
    attachments.check_limits(files, spec)
    if repair not in (0, 1, None, False, True):
        raise ConfigError(f"repair must be 0 or 1 (re-ask once when the answer does not match the "
                          f"schema), not {repair}.")
    if schema is None:
        if repair:
            raise ConfigError("repair needs a schema: pass schema=... as well.")
        return files, None, system
    from .structured import instructions, is_native, output_schema

    output = output_schema(schema)
    if not is_native(spec):
        system = f"{system}\n\n{instructions(output)}" if system else instructions(output)
    return files, output, system


def magic_rich_options(attach: Sequence[str], schema: str | None, repair: bool,
                       namespace: dict[str, Any]) -> dict[str, Any]:
    """attach=, schema= and repair= from a magic's -a/--schema/--repair: each -a is a notebook
    variable's name, an http(s) URL or a path; --schema names a notebook variable or is a
    concise schema ("name, age int", see structured.concise_schema)."""
    out: dict[str, Any] = {}
    if attach:
        items = []
        for value in attach:
            if value.isidentifier() and value in namespace:
                items.append(namespace[value])
            elif value.isidentifier() and not Path(value).exists():
                raise ConfigError(f"-a {value}: no variable {value!r} in the notebook and no such file.")
            else:
                items.append(value)
        out["attach"] = attachments.attachments(items)
    if schema:
        if not schema.isidentifier():  # a concise schema, --schema "name, age int"
            out["schema"] = schema
        elif schema not in namespace:
            raise ConfigError(f"--schema {schema}: no variable {schema!r} in the notebook; set it to a "
                              "pydantic model class, a JSON Schema dict or {field: type}, or write "
                              "the fields in quotes: --schema \"name, age int\".")
        else:
            out["schema"] = namespace[schema]
    if repair:
        if not schema:
            raise ConfigError("--repair needs --schema.")
        out["repair"] = 1
    return out


#: below this many estimated tokens no model's context is looked up (every model takes more)
_SMALL_PROMPT_TOKENS = 4096


#: characters per token for the context estimate (English prose is about 4; code and other
#: languages run denser, so the estimate errs on the side of warning early)
CHARS_PER_TOKEN = 3.5
#: room kept for the answer when a model's context is checked
ANSWER_ROOM = 1024


def estimate_tokens(messages: Sequence[Message], system: str | None = None) -> int:
    """A rough token count of a conversation (characters / 3.5, plus a few per message)."""
    chars = len(system or "")
    for m in messages:
        chars += len(m.content)
        if m.tool_calls:
            chars += sum(len(c.arguments_json) + len(c.name) for c in m.tool_calls)
    return math.ceil(chars / CHARS_PER_TOKEN) + 4 * len(messages)


def check_context(spec: ModelSpec, messages: Sequence[Message], system: str | None) -> None:
    """Raise one ContextWindowError line when messages (and system) would not fit spec's window,
    estimated as `Chat` does it (the same helpers); a model whose window is unknown passes."""
    need = estimate_tokens(messages, system) + ANSWER_ROOM
    if need <= _SMALL_PROMPT_TOKENS:
        return
    window = _context_window(spec.id)
    if window and need > window:
        raise ContextWindowError(
            f"This prompt is about {need:,} tokens with room for the answer, more than "
            f"{spec.id}'s context window of {window:,}; nothing was sent. Shorten it.")


@functools.lru_cache(maxsize=256)
def _context_window(model_id: str) -> int | None:
    return context_window(model_id)


def _given(attach: Any) -> bool:
    """Whether attach= asks for any attachment (None and an empty list don't)."""
    return attach is not None and not (isinstance(attach, (list, tuple)) and not attach)


def make_plan(prompt: str, model: str | ModelSpec, *, system: str | None = None,
              temperature: float | None = None, max_tokens: int | None = None,
              timeout: float | None = None, history: Sequence[Message] = (),
              params: dict[str, Any] | None = None, api: str | None = None,
              group_id: str | None = None, sample: int = 0, cell: int | None = None,
              batch_id: str | None = None, cache: bool | None = None, attach: Any = None,
              schema: Any = None, repair: int = 0, tools: Any = None,
              max_turns: int | None = None, tool_timeout: float | None = None) -> CallPlan:
    """A CallPlan from user-level options, with settings filling what was not given.

    attach: what to send with the prompt (see llmcells.attachments); schema: the structure the
    answer must have (see llmcells.structured); repair: re-ask once when it does not validate.
    tools: functions the model may call (see tools.py), max_turns and tool_timeout their limits.
    """
    check_prompt(prompt)
    toolset = None
    if tools is not None:  # --- tools (tools.py checks them) ---
        from .tools import MAX_TURNS, TOOL_TIMEOUT, toolset as make_toolset

        toolset = make_toolset(tools, MAX_TURNS if max_turns is None else max_turns,
                               TOOL_TIMEOUT if tool_timeout is None else tool_timeout)
    check_options(temperature=temperature, max_tokens=max_tokens, timeout=timeout, system=system,
                  params=params)
    spec = model if isinstance(model, ModelSpec) else resolve(model, openai_api=api)
    lifecycle.check(spec)  # a retired model: one line naming the date and the replacement
    # What the provider can't take (attachments, a schema, tools...) is one line now, never a
    # silent drop or a refusal after sending: its profile in the registry says.
    capabilities.require(spec, attach=_given(attach), schema=schema is not None,
                         tools=toolset is not None, params=params)
    profile = capabilities.of(spec)
    extra: dict[str, Any] = {"default_max_tokens": settings.anthropic_default_max_tokens
                             or profile.max_tokens or 4096}
    if params:
        extra["params"] = dict(params)
    # A temperature the model refuses is left out (never a 400); the Result and the card say so.
    temperature, notes = capabilities.fit_temperature(
        spec, temperature if temperature is not None else settings.temperature, params)
    max_tokens, cut = capabilities.fit_max_tokens(
        spec, max_tokens if max_tokens is not None else settings.max_tokens)
    notes += cut
    if notes:
        extra["notes"] = notes
    files, output, system = rich_options(spec, attach, schema, repair,
                                         system if system is not None else settings.system)
    if output is not None:
        from .structured import is_native

        extra["schema_mode"] = "native" if is_native(spec) else "instructions"
        extra["repair"] = int(repair)
    messages = [*history, Message("user", prompt)]
    check_context(spec, messages, system)
    request = Request(spec=spec, messages=messages,
                      system=system,
                      temperature=temperature,
                      max_tokens=max_tokens,
                      extra=extra, attachments=files, schema=output)
    info = CallInfo(call_id=new_call_id(), model=spec.requested, model_id=spec.id,
                    provider=spec.provider, simulated=spec.simulated, group_id=group_id, sample=sample,
                    attachments=files)
    total = float(timeout) if timeout is not None else settings.timeout
    return CallPlan(request=request, info=info, timeout=total,
                    ttft_timeout=min(settings.ttft_timeout, total),
                    connect_timeout=settings.connect_timeout, cell=cell, batch_id=batch_id,
                    cache=bool(settings.cache if cache is None else cache) and toolset is None,
                    tools=toolset)
