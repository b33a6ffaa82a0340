"""Every request llmcells sends is one the provider's SDK would send itself.

Each shape (plain, system, history, tool turns, schema, attachments, service tiers, sampling, and
the provider batch lines) is built by make_plan, sent by the real adapter through the real SDK
client over an injected httpx MockTransport, and the captured JSON body is checked against the
SDK's own request types: openai's chat and responses create params, anthropic's
MessageCreateParams (TypedDicts: every key must be declared, every required key present, every
Literal value one of its choices) and google-genai's pydantic request types (extra="forbid").
Only what a test puts in `params=` may add keys; none of these shapes does.
"""

from __future__ import annotations

import asyncio
import collections.abc
import json
import math
import types as pytypes
import typing
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import httpx2
import pydantic
import pytest
from typing_extensions import NotRequired, ReadOnly, Required, is_typeddict

import llmcells
from llmcells.calls import make_plan
from llmcells.providers import ClientOptions, get_provider
from llmcells.types import Message, ToolCall

# ----- a structural check of a JSON value against an SDK TypedDict -------------------------------

_WRAPPERS = {Required, NotRequired, ReadOnly, typing.Required, typing.NotRequired}
_SEQUENCES = {list, tuple, collections.abc.Iterable, collections.abc.Sequence, typing.Iterable,
              typing.List, typing.Sequence}


def problems(value: Any, tp: Any, path: str = "body") -> list[str]:
    """What in value the type tp does not declare or allow ([] when it fits).

    pydantic's TypeAdapter checks an `Iterable[...]` field only when it is iterated, and ignores
    a TypedDict's unknown keys, so the walk is done here: unknown keys, missing required keys,
    Literal values, and scalar types, all the way down."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any or tp is object:
        return []
    if origin is typing.Annotated or origin in _WRAPPERS:
        return problems(value, args[0], path)
    if origin is Union or isinstance(tp, pytypes.UnionType):
        # The arm that fits best: first one whose problems lie deeper than this value (it has
        # the right kind), then the fewest problems.
        ranked = []
        for arm in args:
            found = problems(value, arm, path)
            if not found:
                return []
            ranked.append((any(p.startswith(path + ":") for p in found), len(found), found))
        return min(ranked, key=lambda r: r[:2])[2] if ranked else [f"{path}: fits none of {tp}"]
    if origin is Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {args}"]
    if tp is type(None):
        return [] if value is None else [f"{path}: expected null"]
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: expected an object ({tp.__name__})"]
        hints = get_type_hints(tp, include_extras=True)
        out = [f"{path}: unknown key {k!r} ({tp.__name__})" for k in value if k not in hints]
        # (the SDKs' TypedDicts are total=False with Required[...] keys, written as strings, which
        # __required_keys__ misses: read Required from the resolved hints)
        required = {k for k, h in hints.items() if get_origin(h) in (Required, typing.Required)}
        required |= {k for k in tp.__required_keys__ if get_origin(hints.get(k)) not in (NotRequired, typing.NotRequired)}
        out += [f"{path}: missing required key {k!r} ({tp.__name__})" for k in sorted(required) if k not in value]
        for k, v in value.items():
            if k in hints:
                out += problems(v, hints[k], f"{path}.{k}")
        return out
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        # a response model the SDK also takes as a param (a content block from an earlier
        # answer): its declared fields only, as for a TypedDict (these models allow extras)
        if not isinstance(value, dict):
            return [f"{path}: expected an object ({tp.__name__})"]
        fields = {(f.alias or name): f for name, f in tp.model_fields.items()}
        out = [f"{path}: unknown key {k!r} ({tp.__name__})" for k in value if k not in fields]
        out += [f"{path}: missing required key {k!r} ({tp.__name__})"
                for k, f in fields.items() if f.is_required() and k not in value]
        for k, v in value.items():
            if k in fields:
                out += problems(v, fields[k].annotation, f"{path}.{k}")
        return out
    if origin in _SEQUENCES or getattr(origin, "__name__", "") == "SequenceNotStr":
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        item = args[0] if args else Any
        return [p for i, v in enumerate(value) for p in problems(v, item, f"{path}[{i}]")]
    if origin in (dict, collections.abc.Mapping, typing.Dict) or tp is dict:
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        item = args[1] if len(args) == 2 else Any
        return [p for k, v in value.items() for p in problems(v, item, f"{path}.{k}")]
    if tp is str:
        return [] if isinstance(value, str) else [f"{path}: expected a string"]
    if tp is bool:
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean"]
    if tp is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{path}: expected an integer"]
    if tp is float:
        return [] if isinstance(value, (int, float)) and not isinstance(value, bool) else [f"{path}: expected a number"]
    # anything else (a pydantic model, a file type): pydantic's own validation
    from pydantic import TypeAdapter, ValidationError

    try:
        TypeAdapter(tp).validate_python(value)
    except (ValidationError, TypeError) as exc:
        return [f"{path}: {str(exc).splitlines()[0]}"]
    return []


def test_the_checker_reports_unknown_and_missing_keys_and_bad_literals():
    from anthropic.types.message_create_params import MessageCreateParamsStreaming

    good = {"model": "m", "max_tokens": 5, "stream": True,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    assert problems(good, MessageCreateParamsStreaming) == []
    bad = {**good, "temperature": 0.2, "messages": [{"role": "robot", "content": "hi"}]}
    del bad["max_tokens"]
    found = problems(bad, MessageCreateParamsStreaming)
    assert any("unknown key 'temperature'" in p for p in found)
    assert any("missing required key 'max_tokens'" in p for p in found)
    assert any("'robot' is not one of" in p for p in found)
    deep = {**good, "messages": [{"role": "user", "content": [{"type": "text", "text": "x", "bogus": 1}]}]}
    assert any("unknown key 'bogus'" in p for p in problems(deep, MessageCreateParamsStreaming))


# ----- the SDK types of each request -------------------------------------------------------------


def _openai_chat(stream: bool):
    from openai.types.chat import completion_create_params as p

    return p.CompletionCreateParamsStreaming if stream else p.CompletionCreateParamsNonStreaming


def _openai_responses(stream: bool):
    from openai.types.responses import response_create_params as p

    return p.ResponseCreateParamsStreaming if stream else p.ResponseCreateParamsNonStreaming


def _anthropic(stream: bool):
    from anthropic.types import message_create_params as p

    return p.MessageCreateParamsStreaming if stream else p.MessageCreateParamsNonStreaming


def gemini_problems(body: dict[str, Any], path: str = "body") -> list[str]:
    """A streamGenerateContent body (camelCase, as sent) against google-genai's types: contents
    as types.Content, generationConfig as types.GenerationConfig, and every other top-level key
    a GenerateContentConfig field the SDK lifts out of the config (systemInstruction, tools...),
    validated as that field's type. The SDK's models forbid unknown keys."""
    from google.genai import types as gt
    from pydantic import ConfigDict, TypeAdapter, ValidationError

    lifted = {(f.alias or name): f.annotation for name, f in gt.GenerateContentConfig.model_fields.items()}
    declared = {"contents": list[gt.Content], "generationConfig": gt.GenerationConfig, **lifted}
    out = []
    for key, value in body.items():
        if key not in declared:
            out.append(f"{path}: unknown key {key!r}")
            continue
        try:  # (a lifted field's type may name PIL.Image: allowed, never matched by JSON)
            adapter = (TypeAdapter(declared[key]) if isinstance(declared[key], type)
                       else TypeAdapter(declared[key], config=ConfigDict(arbitrary_types_allowed=True)))
            adapter.validate_json(json.dumps(value))
        except ValidationError as exc:
            out += [f"{path}.{key}: {e['loc']} {e['msg']}" for e in exc.errors()]
    if "contents" not in body:
        out.append(f"{path}: missing contents")
    return out


# ----- the shapes --------------------------------------------------------------------------------

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15"
       b"\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def weather(city: str, days: int = 1) -> str:
    """The forecast for a city."""
    return f"sunny in {city}"


TOOL_HISTORY = [Message("user", "Weather in Oslo?"),
                Message("assistant", "", tool_calls=(ToolCall("call_1", "weather", '{"city": "Oslo"}'),)),
                Message("tool", "sunny", tool_call_id="call_1", name="weather"),
                Message("assistant", "It is sunny.")]

SHAPES: dict[str, dict[str, Any]] = {
    "plain": {},
    "system": {"system": "Answer in one sentence."},
    "history": {"history": [Message("user", "Hi"), Message("assistant", "Hello!")]},
    "sampling": {"temperature": 0.3, "max_tokens": 64},
    "tools": {"tools": [weather]},
    "tool-turns": {"tools": [weather], "history": TOOL_HISTORY},
    "schema": {"schema": {"city": str, "population": int}},
    "attachments": {"attach": [(PNG, "image/png"), (PDF, "application/pdf"), (b"a,b\n1,2\n", "text/csv"),
                               "https://example.com/cat.png"]},
    "everything": {"system": "Be brief.", "history": TOOL_HISTORY, "tools": [weather],
                   "schema": {"city": str}, "attach": [(PNG, "image/png")], "temperature": 0.2,
                   "max_tokens": 100},
}
#: each route's service tier, passed as the user passes it (params=)
TIERS = {"openai": {"service_tier": "flex"}, "anthropic": {"service_tier": "standard_only"},
         "google": {"service_tier": "flex"}}
#: routes: (model, SDK type of its body) ; a temperature-taking model on each provider, and the defaults
ROUTES = {
    "openai:gpt-4.1": _openai_chat,
    "openai:gpt-6-luna": _openai_chat,
    "openai-responses:gpt-6-luna": _openai_responses,
    "openai-responses:gpt-4.1": _openai_responses,
    "anthropic:claude-haiku-5-5": _anthropic,
    "google:gemini-3.5-flash-lite": None,
    "google:gemini-3.1-flash-lite": None,
}
CASES = [(model, shape) for model in ROUTES for shape in [*SHAPES, "tier"]]


def _plan(model: str, shape: str):
    kw = dict(SHAPES.get(shape, {}))
    if shape == "tier":
        kw["params"] = TIERS[model.split(":")[0].replace("openai-responses", "openai")]
    plan = make_plan("What is the weather like?", model, **kw)
    if plan.tools is not None:  # what tools.run_call adds to each request
        plan.request.extra["tools"] = plan.tools.declarations()
    return plan


async def _sent_body(request) -> dict[str, Any]:
    """The JSON body the adapter sends for request, through the SDK's client."""
    seen: list[httpx2.Request] = []

    def handler(req: httpx2.Request) -> httpx2.Response:
        seen.append(req)
        return httpx2.Response(400, json={"error": {"message": "captured", "type": "invalid_request_error"}})

    spec = request.spec
    adapter = get_provider(spec.adapter)
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
        client = adapter.make_client(ClientOptions(base_url="http://sdk.test/v1" if spec.adapter == "openai"
                                                   else "http://sdk.test", api_key="sk-test-0000000",
                                                   http_client=http))
        with pytest.raises(Exception):
            async for _ in adapter.stream(client, request):
                pass
    assert len(seen) == 1
    return json.loads(seen[0].content)


@pytest.mark.parametrize("model, shape", CASES, ids=[f"{m}-{s}" for m, s in CASES])
def test_the_body_sent_is_one_the_sdk_declares(model, shape):
    plan = _plan(model, shape)
    body = asyncio.run(_sent_body(plan.request))
    sdk_type = ROUTES[model]
    found = gemini_problems(body) if sdk_type is None else problems(body, sdk_type(True))
    assert found == [], found
    if shape == "attachments":
        assert "cat.png" in json.dumps(body)  # (the shape did carry its attachments)


@pytest.mark.parametrize("model, shape", CASES, ids=[f"{m}-{s}" for m, s in CASES])
def test_the_provider_batch_line_is_one_the_sdk_declares(model, shape):
    plan = _plan(model, shape)
    request = plan.request
    if model.startswith("openai"):
        from llmcells.batchjobs import openai_jobs

        line = openai_jobs.line(None, request, "k1")
        assert set(line) == {"custom_id", "method", "url", "body"}
        found = problems(line["body"], ROUTES[model](False))
    elif model.startswith("anthropic"):
        from anthropic.types.messages import batch_create_params

        from llmcells.batchjobs import anthropic_jobs

        found = problems(anthropic_jobs.line(None, request, "k1"), batch_create_params.Request)
    else:
        from google.genai import types as gt
        from pydantic import ValidationError

        from llmcells.batchjobs import google_jobs

        line = google_jobs.line(None, request, "k1")
        try:  # the inline route: the SDK's own InlinedRequest (extra="forbid")
            gt.InlinedRequest.model_validate(line)
            found = []
        except ValidationError as exc:
            found = [f"{e['loc']} {e['msg']}" for e in exc.errors()]
        if not found:  # the file route: a REST GenerateContentRequest per line
            rest = google_jobs._rest(line)
            found = gemini_problems(rest["request"], "file line")
    assert found == [], found


def test_how_many_shapes_are_validated():
    """The count quoted in the docs: every route times every shape, live and as a batch line."""
    assert len(CASES) == len(ROUTES) * (len(SHAPES) + 1) == 70


# ----- what the issue must show ------------------------------------------------------------------

SAMPLING = {"temperature", "top_p", "top_k"}


def test_a_claude_call_given_a_temperature_succeeds_without_any_sampling_parameter(simulated):
    r = llmcells.run(llmcells.ask("Name a river.", model="claude", temperature=0.2, display=False))
    assert r.ok and r.text
    assert r.notes == ["sent without temperature: claude-haiku-5-5 doesn't accept it"]
    (sent,) = simulated.requests
    assert sent.provider == "anthropic" and not SAMPLING & set(sent.body)
    # a session default too (configure(temperature=...))
    llmcells.configure(temperature=0.7)
    r = llmcells.run(llmcells.ask("Name a lake.", model="claude", display=False))
    assert r.ok and not SAMPLING & set(simulated.requests[-1].body) and len(r.notes) == 1


def test_a_claude_judge_sends_no_sampling_parameter(simulated):
    c = llmcells.run(llmcells.compare("What is 6 * 7?", ["chatgpt"], score=llmcells.judge("claude"),
                                      display=False))
    assert not math.isnan(c[0].scores["judge"])  # graded
    graded = [q for q in simulated.requests if q.provider == "anthropic"]
    assert len(graded) == 1 and not SAMPLING & set(graded[0].body)


def test_what_params_holds_is_sent_as_given(simulated):
    r = llmcells.run(llmcells.ask("hi", model="claude", params={"temperature": 0.5}, display=False))
    assert simulated.requests[-1].body["temperature"] == 0.5 and r.notes == []


@pytest.mark.parametrize("params, line", [
    ({"candidate_cont": 2}, "params={'candidate_cont': ...} is not a Gemini request field "
                            "(did you mean candidate_count?)"),
    ({"temperature": "hot"}, "params 'temperature': Input should be a valid number"),
])
def test_gemini_params_its_sdk_refuses_say_which_key_and_nothing_is_sent(simulated, params, line):
    """A params= key or value google-genai's types refuse came back as "ValidationError: 1
    validation error for _GenerateContentParameters", naming no key. It now names the key (and
    the field it is close to), as a bad request that is never re-sent."""
    before = len(simulated.requests)
    r = llmcells.run(llmcells.ask("hi", model="gemini", params=params, display=False))
    assert r.status == "error" and r.error_kind == "bad_request" and r.attempts == 1
    assert line in r.error and "_GenerateContentParameters" not in r.error, r.error
    assert len(simulated.requests) == before


def test_gpt_6_luna_takes_a_temperature_only_with_reasoning_effort_none(simulated):
    llmcells.run(llmcells.ask("hi", model="chatgpt", temperature=0.4, display=False))
    assert "temperature" not in simulated.requests[-1].body
    r = llmcells.run(llmcells.ask("hi", model="chatgpt", temperature=0.4,
                                  params={"reasoning_effort": "none"}, display=False))
    assert simulated.requests[-1].body["temperature"] == 0.4 and r.notes == []


def test_gpt_6_luna_chat_tools_carry_reasoning_effort_none():
    body = asyncio.run(_sent_body(_plan("openai:gpt-6-luna", "tools").request))
    assert body["reasoning_effort"] == "none" and body["tools"]
    body = asyncio.run(_sent_body(_plan("openai:gpt-4.1", "tools").request))
    assert "reasoning_effort" not in body


def test_an_endpoint_model_keeps_its_temperature():
    llmcells.add_endpoint("local", "http://localhost:9/v1")
    plan = make_plan("hi", "local:llama3.2", temperature=0.3)
    assert plan.request.temperature == 0.3 and "notes" not in plan.request.extra
