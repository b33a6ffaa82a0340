"""Drift guard: what the installed SDKs say a provider may send, against what the adapters read.

Every stream event type, stop or finish reason, status and usage field that an SDK's own types
declare must be either read by its adapter (`READS`) or left alone on purpose (`IGNORES`, with
why). An SDK upgrade that adds one fails here, not in a user's notebook.
"""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest

from llmcells.providers import anthropic as anthropic_adapter
from llmcells.providers import google as google_adapter
from llmcells.providers import openai as openai_adapter


def literals(tp: Any) -> set[str]:
    """The values of a Literal (inside Optional, Union, Annotated or a TypeAlias)."""
    origin = get_origin(tp)
    if origin is Literal:
        return {v for v in get_args(tp) if isinstance(v, str)}
    return {v for arg in get_args(tp) for v in literals(arg)} if origin is not None else set()


def union_types(tp: Any) -> set[str]:
    """The `type` Literal of every model of a (discriminated) union of SDK models."""
    out: set[str] = set()
    for arm in get_args(tp):
        if get_origin(arm) is not None:
            out |= union_types(arm)
        elif hasattr(arm, "model_fields") and "type" in arm.model_fields:
            out |= literals(arm.model_fields["type"].annotation)
    return out


def fields(*models: Any) -> set[str]:
    return {name for m in models for name in m.model_fields}


def _sdk_sets() -> dict[tuple[str, str], set[str]]:
    from anthropic.types import MessageDeltaUsage, RawContentBlockDelta, RawMessageStreamEvent
    from anthropic.types import StopReason
    from anthropic.types import Usage as AnthropicUsage
    from google.genai import types as gt
    from openai.types.chat.chat_completion_chunk import ChatCompletionChunk, ChoiceDelta
    from openai.types.completion_usage import CompletionTokensDetails, CompletionUsage, PromptTokensDetails
    from openai.types.responses import Response, ResponseStatus, ResponseStreamEvent, ResponseUsage
    from openai.types.responses.response_usage import InputTokensDetails

    chunk_choice = ChatCompletionChunk.model_fields["choices"].annotation
    choice_cls = get_args(chunk_choice)[0]
    return {
        ("anthropic", "events"): union_types(RawMessageStreamEvent),
        ("anthropic", "deltas"): union_types(RawContentBlockDelta),
        ("anthropic", "stop_reasons"): literals(StopReason),
        ("anthropic", "usage"): fields(AnthropicUsage, MessageDeltaUsage),
        ("openai", "responses_events"): union_types(ResponseStreamEvent),
        ("openai", "responses_status"): literals(ResponseStatus),
        ("openai", "incomplete_reasons"): literals(
            Response.model_fields["incomplete_details"].annotation.__args__[0].model_fields["reason"].annotation),
        ("openai", "responses_usage"): fields(ResponseUsage),
        ("openai", "responses_input_details"): fields(InputTokensDetails),
        ("openai", "chat_finish_reasons"): literals(choice_cls.model_fields["finish_reason"].annotation),
        ("openai", "chat_delta"): fields(ChoiceDelta),
        ("openai", "chat_usage"): fields(CompletionUsage),
        ("openai", "chat_prompt_details"): fields(PromptTokensDetails),
        ("openai", "chat_completion_details"): fields(CompletionTokensDetails),
        ("google", "finish_reasons"): {e.value for e in gt.FinishReason},
        ("google", "usage"): fields(gt.GenerateContentResponseUsageMetadata),
        ("google", "candidate"): fields(gt.Candidate),
    }


ADAPTERS = {"anthropic": anthropic_adapter, "openai": openai_adapter, "google": google_adapter}
SETS = _sdk_sets()


@pytest.mark.parametrize("provider, kind", list(SETS), ids=[f"{p}-{k}" for p, k in SETS])
def test_every_name_the_sdk_declares_is_read_or_deliberately_ignored(provider, kind):
    adapter = ADAPTERS[provider]
    declared = SETS[(provider, kind)]
    reads, ignores = adapter.READS.get(kind, set()), set(adapter.IGNORES.get(kind, {}))
    assert declared, f"found no {kind} in the SDK's types: the guard itself is broken"
    unknown = declared - reads - ignores
    assert not unknown, (f"{provider} SDK declares {sorted(unknown)} ({kind}): read them in "
                         f"providers/{provider}.py or add them to its IGNORES, with why")
    assert not reads & ignores, f"both read and ignored: {sorted(reads & ignores)}"
    # names the adapter claims that the SDK no longer declares are stale
    stale = (reads | ignores) - declared
    assert not stale, f"{provider} READS/IGNORES name {sorted(stale)} ({kind}), which the SDK no longer has"


def test_every_kind_the_adapters_list_is_checked():
    for provider, adapter in ADAPTERS.items():
        assert {k for p, k in SETS if p == provider} == set(adapter.READS) | set(adapter.IGNORES), provider


def test_the_special_endings_are_among_the_reads():
    """The reasons the adapters treat specially are ones they list as read."""
    assert set(anthropic_adapter._STOP_NOTES) <= anthropic_adapter.READS["stop_reasons"]
    assert set(openai_adapter._INCOMPLETE_NOTES) <= openai_adapter.READS["incomplete_reasons"]
    special = {*google_adapter._FINISH_ERRORS, *google_adapter._FINISH_NOTES, google_adapter._CONTINUATION}
    assert special <= google_adapter.READS["finish_reasons"]


def test_the_guard_catches_a_name_it_does_not_know(monkeypatch):
    """As an SDK upgrade would: a stop reason the adapter neither reads nor ignores."""
    monkeypatch.setitem(SETS, ("anthropic", "stop_reasons"), SETS[("anthropic", "stop_reasons")] | {"new_reason"})
    with pytest.raises(AssertionError, match="new_reason"):
        test_every_name_the_sdk_declares_is_read_or_deliberately_ignored("anthropic", "stop_reasons")


# ----- what params= may hold: the values the SDKs' request types declare ---------------------------


def _param_choices(*path: str) -> set[str]:
    from llmcells.params import GENERATION_PARAMS

    check = GENERATION_PARAMS[path[0]]
    for key in path[1:]:
        check = check.fields[key]
    return set(check.choices)


def _sdk_param_values() -> dict[tuple[str, ...], set[str]]:
    from anthropic.types import OutputConfigParam, ThinkingConfigParam
    from google.genai import types as gt
    from openai.types.shared import ReasoningEffort
    from openai.types.shared_params import Reasoning

    def declared(typed_dict: Any, key: str) -> set[str]:
        hints = get_type_hints(typed_dict, include_extras=True)
        return literals(hints[key]) if key in hints else set()

    arms = get_args(ThinkingConfigParam)
    return {
        ("reasoning_effort",): literals(ReasoningEffort),
        ("reasoning", "effort"): literals(ReasoningEffort),
        ("reasoning", "summary"): declared(Reasoning, "summary"),
        ("thinking", "type"): {v for arm in arms for v in declared(arm, "type")},
        ("thinking", "display"): {v for arm in arms for v in declared(arm, "display")},
        ("output_config", "effort"): declared(OutputConfigParam, "effort"),
        ("thinking_config", "thinking_level"):
            {e.value.lower() for e in gt.ThinkingLevel} - {"thinking_level_unspecified"},
    }


@pytest.mark.parametrize("path", list(_sdk_param_values()), ids=".".join)
def test_params_take_exactly_the_values_the_sdk_declares(path):
    """A value the SDK declares is not refused before sending, and one it doesn't declare is
    (an effort of "minimal" on Claude, "xhigh" on Gemini 3, thinking "between_tools")."""
    assert _param_choices(*path) == _sdk_param_values()[path]
