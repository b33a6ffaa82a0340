"""The models the simulator knows: their names, limits and lifecycle, as the model lists and the
request checks read them.

Context windows follow genai-prices' data; output caps and release dates the providers' model
pages. A model not listed here is still answered (tests use made-up names), with its provider's
usual limits; a model that `llmcells.lifecycle` says is retired is refused as the real API does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import lifecycle


@dataclass(frozen=True)
class SimModel:
    """One model of one provider, as the simulator serves it."""

    provider: str
    id: str
    display: str
    context: int            # input tokens the model takes
    max_output: int         # the largest max_tokens / max_output_tokens it accepts
    created: str            # release date (YYYY-MM-DD)
    reasoning: bool = False  # OpenAI: a reasoning model (sampling parameters fixed at defaults)
    temperature_with_effort_none: bool = False  # ...except with reasoning effort "none"

    @property
    def status(self) -> str:
        """"active", "retiring" or "retired", from the lifecycle table."""
        return status(self.provider, self.id)


MODELS = [
    SimModel("openai", "gpt-6-luna", "GPT-6 Luna", 1_050_000, 128_000, "2026-09-10", True, True),
    SimModel("openai", "gpt-6-sol", "GPT-6 Sol", 1_050_000, 128_000, "2026-09-10", True, True),
    SimModel("openai", "gpt-5.5-codex", "GPT-5.5 Codex", 400_000, 128_000, "2026-06-18", True),
    SimModel("openai", "gpt-5-codex", "GPT-5 Codex", 400_000, 128_000, "2025-09-15", True),
    SimModel("openai", "gpt-5-mini", "GPT-5 mini", 400_000, 128_000, "2025-08-07", True),
    SimModel("openai", "o4-mini", "o4-mini", 200_000, 100_000, "2025-04-16", True),
    SimModel("openai", "gpt-4.1", "GPT-4.1", 1_047_576, 32_768, "2025-04-14"),
    SimModel("openai", "gpt-4.1-mini", "GPT-4.1 mini", 1_047_576, 32_768, "2025-04-14"),
    SimModel("openai", "gpt-4.1-nano", "GPT-4.1 nano", 1_047_576, 32_768, "2025-04-14"),
    SimModel("openai", "gpt-4o-mini", "GPT-4o mini", 128_000, 16_384, "2024-07-18"),
    SimModel("anthropic", "claude-haiku-5-5", "Claude Haiku 5.5", 1_000_000, 64_000, "2026-10-28"),
    SimModel("anthropic", "claude-sonnet-5-5", "Claude Sonnet 5.5", 1_000_000, 64_000, "2026-10-28"),
    SimModel("anthropic", "claude-sonnet-4-6", "Claude Sonnet 4.6", 1_000_000, 64_000, "2026-02-17"),
    SimModel("anthropic", "claude-haiku-4-5", "Claude Haiku 4.5", 200_000, 64_000, "2025-10-01"),
    SimModel("anthropic", "claude-sonnet-4-5", "Claude Sonnet 4.5", 200_000, 64_000, "2025-09-29"),
    SimModel("anthropic", "claude-opus-4-1", "Claude Opus 4.1", 200_000, 32_000, "2025-08-05"),
    SimModel("google", "gemini-3.5-flash-lite", "Gemini 3.5 Flash-Lite", 1_048_576, 65_536, "2026-10-01"),
    SimModel("google", "gemini-3.5-flash", "Gemini 3.5 Flash", 1_048_576, 65_536, "2026-08-20"),
    SimModel("google", "gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", 1_048_576, 65_536, "2025-07-22"),
    SimModel("google", "gemini-2.5-flash", "Gemini 2.5 Flash", 1_048_576, 65_536, "2025-06-17"),
    SimModel("google", "gemini-2.5-pro", "Gemini 2.5 Pro", 1_048_576, 65_536, "2025-06-17"),
]
_BY_ID = {(m.provider, m.id): m for m in MODELS}
# The usual limits of a model the table doesn't list.
_DEFAULTS = {"openai": (1_047_576, 128_000), "anthropic": (200_000, 64_000), "google": (1_048_576, 65_536)}
_OPENAI_REASONING = re.compile(r"^(o\d|gpt-5|gpt-6)")


def base_id(model: str) -> str:
    """The model id without a date suffix or a `models/` prefix."""
    return lifecycle.base_name(model)


def known(provider: str, model: str) -> bool:
    """True for a model the table lists (by its name without a date suffix)."""
    return (provider, base_id(model)) in _BY_ID


def find(provider: str, model: str) -> SimModel:
    """The catalog entry of a model (a made-up one with its provider's usual limits if unknown)."""
    found = _BY_ID.get((provider, base_id(model)))
    if found is not None:
        return found
    context, output = _DEFAULTS.get(provider, (1_000_000, 64_000))
    reasoning = provider == "openai" and bool(_OPENAI_REASONING.match(model))
    return SimModel(provider, model, model, context, output, "2025-01-01", reasoning)


def status(provider: str, model: str) -> str:
    """The lifecycle status of a model ("active" when the lifecycle table doesn't list it)."""
    return lifecycle.lookup(f"{provider}:{base_id(model)}").status()


def listed(provider: str) -> list[SimModel]:
    """The models a provider's model list shows: OpenAI and Gemini drop shut-down models,
    Anthropic keeps them (with lifecycle "retired") as its catalogue's record."""
    models = [m for m in MODELS if m.provider == provider]
    return models if provider == "anthropic" else [m for m in models if m.status != "retired"]
