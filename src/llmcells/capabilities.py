"""What each model accepts: its provider's capability profile (`registry.Caps`, declared on its
registry row) and its model's sampling facts (`data/models.toml`), with the checks that follow:
`require` refuses, before sending, what the provider can't take, and a sampling parameter the
model refuses is left out, with a note.

Nothing here imports an SDK, so `%load_ext` and the simulator can read it for free.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from . import registry
from .errors import UnsupportedError

#: the sampling parameters llmcells knows of (what the `sampling` key may name)
SAMPLING = ("temperature", "top_p", "top_k")


@dataclass(frozen=True)
class Profile:
    """One model's capabilities: the sampling parameters it accepts (None: any), those it accepts
    only with certain params (sampling_if / sampling_also), the fields a Chat Completions request
    with tools needs, and the max_tokens to send when none is given (None: the API needs none)."""

    model: str
    sampling: frozenset[str] | None = None
    why: str = "doesn't accept it"
    sampling_if: dict[str, Any] = field(default_factory=dict)
    sampling_also: frozenset[str] = frozenset()
    chat_tools_need: dict[str, Any] = field(default_factory=dict)
    max_tokens: int | None = None

    def accepts(self, name: str, params: dict[str, Any] | None = None) -> bool:
        """Whether the model takes sampling parameter name, given the user's params."""
        if self.sampling is None or name in self.sampling:
            return True
        params = params or {}
        return bool(self.sampling_if) and name in self.sampling_also and all(
            params.get(k) == v for k, v in self.sampling_if.items())


@cache
def _rows() -> tuple[dict[str, Any], ...]:
    raw = tomllib.loads(resources.files("llmcells").joinpath("data/models.toml").read_text("utf-8"))
    return tuple(raw.get("model", ()))


def _key(provider: str, name: str) -> str:
    r = registry.row(provider)  # a synonym (openai-responses) counts as its provider
    return f"{r.name if r is not None else provider}:{name}"


@cache
def profile(provider: str, name: str) -> Profile:
    """The capability profile of model name of provider (every matching row, in file order)."""
    model = _key(provider, name)
    merged: dict[str, Any] = {}
    for row in _rows():
        if fnmatch.fnmatchcase(model, row["match"]):
            merged.update({k: v for k, v in row.items() if k != "match"})
    sampling = merged.get("sampling")
    return Profile(model=model, sampling=None if sampling is None else frozenset(sampling),
                   why=merged.get("why", "doesn't accept it"),
                   sampling_if=dict(merged.get("sampling_if") or {}),
                   sampling_also=frozenset(merged.get("sampling_also") or ()),
                   chat_tools_need=dict(merged.get("chat_tools_need") or {}),
                   max_tokens=merged.get("max_tokens"))


def of(spec: Any) -> Profile:
    """The capability profile of a resolved ModelSpec (a cloud route's model: its maker's profile,
    e.g. vertex:claude-* as anthropic:claude-*, an Azure deployment as the model it serves,
    bedrock:us.anthropic.claude-* as anthropic:claude-*)."""
    maker = getattr(spec, "maker", None)
    if maker:
        return profile(maker, getattr(spec, "price_model", None) or spec.name)
    return profile(*registry.routed_model(spec.provider, spec.name))


def left_out(spec: Any, name: str) -> str:
    """The note for a sampling parameter left out of spec's request."""
    p = of(spec)
    return f"sent without {name}: {spec.name} {p.why}"


def fit_temperature(spec: Any, temperature: float | None,
                    params: dict[str, Any] | None) -> tuple[float | None, list[str]]:
    """(temperature to send, notes): None and a note when spec's model refuses a temperature.

    Only the `temperature=` option is checked: what the user puts in params= is sent as given.
    """
    if temperature is None or of(spec).accepts("temperature", params):
        return temperature, []
    return None, [left_out(spec, "temperature")]


#: the fewest output tokens OpenAI's Responses API takes: it refuses a smaller max_output_tokens
#: with a 400 ("Expected a value >= 16"), on OpenAI and on Azure alike
RESPONSES_MIN_OUTPUT = 16


def fit_max_tokens(spec: Any, max_tokens: int | None) -> tuple[int | None, list[str]]:
    """(max_tokens to send, notes): a limit below the Responses API's least is sent as that
    least, with a note, rather than refused after sending (an endpoint's server may differ:
    its limit is sent as given)."""
    if (max_tokens is None or max_tokens >= RESPONSES_MIN_OUTPUT or getattr(spec, "api", None) != "responses"
            or registry.row(spec.provider) is None):
        return max_tokens, []
    return RESPONSES_MIN_OUTPUT, [f"sent max_tokens {RESPONSES_MIN_OUTPUT}, not {max_tokens}: the "
                                  f"Responses API takes no fewer"]


def caps_of(spec: Any) -> registry.Caps:
    """The provider capability profile of a resolved ModelSpec (an endpoint's: ENDPOINT_CAPS; a
    cloud route's model: its maker's, as Vertex serves both Claude and Gemini)."""
    return registry.caps(getattr(spec, "maker", None) or spec.provider)


def structured_mode(spec: Any) -> str:
    """How spec's provider takes a schema: "native", "instructions" or "none"."""
    return caps_of(spec).structured


def _unsupported(spec: Any, what: str, hint: str = "") -> UnsupportedError:
    return UnsupportedError(f"{spec.provider}: {what} by this provider; nothing was sent"
                            f"{'. ' + hint if hint else '.'}", provider=spec.provider)


def require(spec: Any, *, attach: bool = False, schema: bool = False, tools: bool = False,
            params: dict[str, Any] | None = None) -> None:
    """Raise one UnsupportedError line when spec's provider can't take what the call asks for
    (attachments, a schema, function tools, a service tier), as its profile declares. Called once,
    when the call is planned (calls.make_plan), so nothing is dropped silently on the way."""
    c = caps_of(spec)
    agent = getattr(registry.row(spec.provider), "kind", "") == "agent"
    if attach and c.limits(getattr(spec, "api", "") or "") is None:
        raise _unsupported(spec, "attachments aren't supported",
                           "Put the text in the prompt, or use an API model." if agent else "")
    if schema and c.structured == "none":
        raise _unsupported(spec, "structured output (schema=) isn't supported")
    if tools and not c.tools:
        raise _unsupported(spec, "function tools (tools=) aren't supported",
                           "An agent's own tools are params={'tools': True}." if agent else "")
    tier = (params or {}).get("service_tier")
    # compared without case: google-genai's ServiceTier is a case-insensitive enum
    if tier is not None and c.service_tiers and str(tier).lower() not in c.service_tiers:
        raise UnsupportedError(f"{spec.provider}: service_tier {tier!r} isn't one it takes "
                               f"({', '.join(c.service_tiers)}); nothing was sent.",
                               provider=spec.provider)
