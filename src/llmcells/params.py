"""The generation parameters a caller across a trust boundary may set in `params`: an allowlist.

A notebook user's `params=` reaches the provider's request unchanged (any body field, and
`extra_headers`, `extra_body`, `timeout`, Gemini's `http_options`...). That is their own key and
machine. A client of the HTTP service is another party: it may set how the model generates
(max tokens, stop sequences, reasoning effort and budgets, sampling), in the providers' own names,
and nothing about where or how the request travels (transport, auth, base URLs, headers,
timeouts, `http_options`, or anything handed to the SDK client). `check_params` is applied where
a call crosses that boundary (serve.py); everything else is refused by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["GENERATION_PARAMS", "ParamsError", "check_params"]


class ParamsError(ValueError):
    """A params key or value that the allowlist refuses; `unknown` when the key is not allowed."""

    def __init__(self, message: str, key: str, *, unknown: bool) -> None:
        super().__init__(message)
        self.key, self.unknown = key, unknown


Check = Callable[[str, Any], Any]


def _number(lo: float, hi: float) -> Check:
    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not lo <= value <= hi:
            raise ValueError(f"{name} must be a number from {lo:g} to {hi:g}")
        return value
    return check


def _integer(lo: int, hi: int) -> Check:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"{name} must be a whole number from {lo} to {hi}")
        return value
    return check


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


def _one_of(*choices: str, fold: bool = False) -> Check:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or (value.lower() if fold else value) not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}")
        return value
    check.choices = choices  # type: ignore[attr-defined]  # (tests/test_sdk_drift.py reads them)
    return check


_STOP_ITEMS, _STOP_CHARS = 16, 200


def _stops(*, single: bool) -> Check:
    """A list of short strings (or one string, where the provider takes that)."""
    def check(name: str, value: Any) -> Any:
        items = [value] if single and isinstance(value, str) else value
        if not isinstance(items, list) or not 1 <= len(items) <= _STOP_ITEMS or not all(
                isinstance(s, str) and 0 < len(s) <= _STOP_CHARS for s in items):
            raise ValueError(f"{name} must be {'a string or ' if single else ''}a list of 1 to "
                             f"{_STOP_ITEMS} non-empty strings of at most {_STOP_CHARS} characters")
        return value
    return check


def _object(fields: Mapping[str, Check]) -> Check:
    """A JSON object whose keys are each allowed, and checked, by fields."""
    def check(name: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be an object with keys {', '.join(fields)}")
        for key, inner in value.items():
            if key not in fields:
                where = f"{name}.{str(key)[:60]}"
                raise ParamsError(f"params key {where!r} is not allowed (allowed in {name}: "
                                  f"{', '.join(fields)}).", where, unknown=True)
            fields[key](f"{name}.{key}", inner)
        return value
    check.fields = fields  # type: ignore[attr-defined]
    return check


_TOKENS = _integer(1, 1_000_000)
# The values each SDK's request types declare (tests/test_sdk_drift.py holds them to it).
_EFFORT = _one_of("none", "minimal", "low", "medium", "high", "xhigh", "max")  # openai ReasoningEffort

#: provider request fields a client may set, each with the check of its value. Names are the
#: providers' own (OpenAI Chat / Responses, Anthropic Messages, Gemini GenerateContentConfig).
GENERATION_PARAMS: dict[str, Check] = {
    # how much to write
    "max_tokens": _TOKENS,                       # Anthropic; OpenAI Chat (older models)
    "max_completion_tokens": _TOKENS,            # OpenAI Chat
    "max_output_tokens": _TOKENS,                # OpenAI Responses, Gemini
    # where to stop
    "stop": _stops(single=True),                 # OpenAI Chat
    "stop_sequences": _stops(single=False),      # Anthropic, Gemini
    # how hard to think
    "reasoning_effort": _EFFORT,                 # OpenAI Chat
    "reasoning": _object({"effort": _EFFORT,     # OpenAI Responses
                          "summary": _one_of("auto", "concise", "detailed")}),
    "thinking": _object({"type": _one_of("enabled", "disabled", "adaptive", "between_tools"),  # Anthropic
                         "budget_tokens": _TOKENS,
                         "display": _one_of("summarized", "omitted")}),
    "output_config": _object({"effort": _one_of("low", "medium", "high", "xhigh", "max")}),  # Anthropic
    "thinking_config": _object({"thinking_budget": _integer(-1, 1_000_000),  # Gemini
                                "include_thoughts": _boolean,
                                "thinking_level": _one_of("minimal", "low", "medium", "high",
                                                          "xhigh", fold=True)}),
    # sampling (a model that refuses one drops it with a note)
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "top_k": _integer(1, 1000),
    "seed": _integer(-(2 ** 63), 2 ** 63 - 1),
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
}


def check_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """params checked against GENERATION_PARAMS (a copy); ParamsError names the first key refused.

    An unknown key (transport, auth, base URLs, headers, timeouts, `http_options`, `extra_body`,
    agent options such as `tools` or `cwd`...) is refused by name, as is a value of the wrong
    kind for an allowed key.
    """
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ParamsError("params must be an object of generation parameters.", "params", unknown=False)
    out: dict[str, Any] = {}
    for key, value in params.items():
        check = GENERATION_PARAMS.get(key) if isinstance(key, str) else None
        if check is None:
            raise ParamsError(f"params key {str(key)[:60]!r} is not allowed: a client may set only "
                              f"generation parameters ({', '.join(GENERATION_PARAMS)}).",
                              str(key)[:60], unknown=True)
        try:
            check(key, value)
        except ParamsError:
            raise
        except ValueError as err:
            raise ParamsError(f"params: {err}.", key, unknown=False) from None
        out[key] = value
    return out
