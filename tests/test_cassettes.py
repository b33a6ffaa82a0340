"""Replay the real recorded provider responses (tests/fixtures/cassettes) through the adapters.

Each case serves one recorded interaction from an httpx MockTransport injected into the SDK client
that `make_client` builds, runs the adapter's `stream()` (or maps the error it raises) and compares
with values read by hand from the recording. Every cassette file is used by at least one case.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from llmcells.errors import AuthenticationError, LLMError, ModelNotFoundError
from llmcells.models import ModelSpec
from llmcells.providers import ClientOptions, get_provider
from llmcells.types import Finish, Message, Request, ResponseInfo, Usage, UsageUpdate

from _parts import fold

# ----- replaying ---------------------------------------------------------------------------------

# Hop-by-hop or length headers that no longer describe the body once it is replayed.
_DROP_HEADERS = {"content-length", "transfer-encoding", "connection"}


def load_interactions(cassettes_dir: Path, number: str) -> list[dict[str, Any]]:
    (path,) = sorted(cassettes_dir.glob(f"{number}_*.yaml"))
    return yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"]


def _route(path: str) -> str:
    """What must match between recorded and sent paths: Gemini from "models/" on (the SDK
    defaults to /v1 while the recordings use /v1beta or Vertex paths); others without /v1."""
    if "/models/" in path:
        return "models/" + path.split("/models/", 1)[1]
    return path.removeprefix("/v1")


def _response(interaction: dict[str, Any]) -> httpx2.Response:
    recorded = interaction["response"]
    if "parsed_body" in recorded:
        body = json.dumps(recorded["parsed_body"]).encode()
    else:
        body = recorded["body"]["string"]
        body = body if isinstance(body, bytes) else body.encode("utf-8")  # !!binary stays bytes (gzip)
    headers = [(name, value) for name, values in recorded["headers"].items()
               if name.lower() not in _DROP_HEADERS for value in values]
    return httpx2.Response(recorded["status"]["code"], headers=headers, content=body)


class Replay:
    """An httpx handler serving recorded interactions in order, matched by method and path."""

    def __init__(self, interactions: list[dict[str, Any]]):
        self.pending = list(interactions)
        self.sent: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.sent.append(request)
        for i, it in enumerate(self.pending):
            recorded = httpx2.URL(it["request"]["uri"])
            if (it["request"]["method"].upper() == request.method
                    and _route(recorded.path) == _route(request.url.path)):
                return _response(self.pending.pop(i))
        raise AssertionError(f"no recorded interaction for {request.method} {request.url.path}")

    def client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self))


# ----- the cases ---------------------------------------------------------------------------------


@dataclass
class Case:
    file: str                       # cassette number, e.g. "01"
    index: int                      # which interaction of the file
    adapter: str                    # openai / anthropic / google
    model: str                      # model name as requested
    prompt: str
    api: str = "chat"
    text: str | None = None         # the exact answer
    text_start: str = ""            # or: how it starts / ends / how long (long answers)
    text_end: str = ""
    text_len: int | None = None
    reasoning_start: str = ""
    usage: Usage = field(default_factory=Usage)
    response_model: str | None = None
    response_id: str | None = None
    finish: str | None = None
    error: type[LLMError] | None = None
    status_code: int | None = None
    system: str | None = None


PROVIDER_OF = {"openai": "openai", "anthropic": "anthropic", "google": "google"}
PYTHON_Q = "How many letters are in the word Python? Answer in one word with no formatting."

CASES: dict[str, Case] = {
    # --- OpenAI Chat Completions
    "01-chat-answer-after-tool": Case(
        "01", 1, "openai", "gpt-4o-mini", "What is 1231 * 2331?",
        text="The result of \\( 1231 \\times 2331 \\) is \\( 2,869,461 \\).",
        usage=Usage(input_tokens=87, output_tokens=26),
        response_model="gpt-4o-mini-2024-07-18", response_id="chatcmpl-BWlJCN7VZTtSHROczp0AbrjFGhRMA",
        finish="stop"),
    "01-chat-tool-call-turn": Case(
        "01", 0, "openai", "gpt-4o-mini", "What is 1231 * 2331?", text="",
        usage=Usage(input_tokens=54, output_tokens=20),
        response_model="gpt-4o-mini-2024-07-18", finish="tool_calls"),
    "02-chat-2026-obfuscation": Case(
        "02", 1, "openai", "gpt-4o-mini", "What is the capital of the UK? Use the tool, then answer.",
        text="The capital of the UK is London.", usage=Usage(input_tokens=78, output_tokens=9),
        response_model="gpt-4o-mini-2024-07-18", response_id="chatcmpl-Dx0Xq5Xx9rHB2ehcHZCRDsnuymUXc",
        finish="stop"),
    "02-chat-tool-call-turn": Case(
        "02", 0, "openai", "gpt-4o-mini", "What is the capital of the UK? Use the tool, then answer.",
        text="", usage=Usage(input_tokens=53, output_tokens=15), finish="tool_calls"),
    "03-chat-without-usage-chunk": Case(
        "03", 3, "openai", "gpt-5.1", PYTHON_Q, system="You are a text parser.",
        text="six", usage=Usage(), response_model="gpt-5.1-2025-11-13", finish="stop"),
    "03-chat-with-usage-chunk": Case(
        "03", 7, "openai", "gpt-5.1", PYTHON_Q, system="You are a text parser.",
        text="six", usage=Usage(input_tokens=33, output_tokens=10),
        response_model="gpt-5.1-2025-11-13", finish="stop"),
    "03-chat-gpt35-no-usage": Case(
        "03", 27, "openai", "gpt-3.5-turbo", PYTHON_Q, system="You are a text parser.",
        text="Six", usage=Usage(), response_model="gpt-3.5-turbo-0125", finish="stop"),
    "03-responses-stream": Case(
        "03", 17, "openai", "gpt-5.1", PYTHON_Q, api="responses", system="You are a text parser.",
        text="six", usage=Usage(input_tokens=33, output_tokens=11),
        response_model="gpt-5.1-2025-11-13",
        response_id="resp_084003240a4a517f006a5eb79531888198a839b9300e4e2a27", finish="completed"),
    "03-chat-404-model": Case(
        "03", 8, "openai", "does-not-exist", "Model does not exist.",
        error=ModelNotFoundError, status_code=404),
    "03-chat-401-key": Case(
        "03", 9, "openai", "gpt-5.1", "Invalid API key.", error=AuthenticationError, status_code=401),
    "03-responses-400-model-not-found": Case(
        "03", 18, "openai", "does-not-exist-nr-test", PYTHON_Q, api="responses",
        error=ModelNotFoundError, status_code=400),
    # --- OpenAI Responses
    "04-responses-pong": Case(
        "04", 0, "openai", "gpt-5.5", "Reply with exactly: pong", api="responses",
        text="pong", usage=Usage(input_tokens=11, output_tokens=5),
        response_model="gpt-5.5-2026-04-23",
        response_id="resp_00592e63e61b66660169fab1b9f8e481a2b321356198d7ac1b", finish="completed"),
    "05-responses-instructions": Case(
        "05", 0, "openai", "gpt-4o-mini", "What is the capital of Minas Gerais?", api="responses",
        system="You are a helpful assistant.",
        text="The capital of Minas Gerais is Belo Horizonte.", usage=Usage(input_tokens=25, output_tokens=10),
        response_model="gpt-4o-mini-2024-07-18", finish="completed"),
    # --- Anthropic
    "06-anthropic-text": Case(
        "06", 0, "anthropic", "claude-haiku-4-5-20251001", "Say just hello",
        text="Hello", usage=Usage(input_tokens=10, output_tokens=4),
        response_model="claude-haiku-4-5-20251001", response_id="msg_01T8kTq7cYyYJeQ5DxcVUc6D",
        finish="end_turn"),
    "07-anthropic-thinking-gzip": Case(
        "07", 0, "anthropic", "claude-haiku-4-5-20251001", "Two names for a pet pelican, be brief",
        text='1. **Pouch** - references their iconic bill pouch\n2. **Pelé** - playful take on "pelican"',
        reasoning_start="The user wants two names for a pet pelican",
        usage=Usage(input_tokens=46, output_tokens=133),
        response_model="claude-haiku-4-5-20251001", finish="end_turn"),
    "08-anthropic-sonnet45": Case(
        "08", 0, "anthropic", "claude-sonnet-4-5", "What is 1+1? Answer with just the number.",
        text="2", usage=Usage(input_tokens=20, output_tokens=5),
        response_model="claude-sonnet-4-5-20250929", finish="end_turn"),
    "09-anthropic-404-model": Case(
        "09", 0, "anthropic", "claude-sonet-4-5", "hello", error=ModelNotFoundError, status_code=404),
    # --- Gemini
    "10-gemini-usage-thoughts": Case(
        "10", 0, "google", "gemini-2.5-flash", "Count from 1 to 30, one number per line, digits only.",
        text="\n".join(str(i) for i in range(1, 31)),
        usage=Usage(input_tokens=18, output_tokens=80 + 35, reasoning_tokens=35),
        response_model="gemini-2.5-flash", response_id="ru1garvBEoOiqtsP2fznmQw", finish="STOP"),
    "11-gemini-include-thoughts": Case(
        "11", 0, "google", "gemini-2.5-pro", "How do I cross the street?",
        system="You are a helpful assistant.",
        text_start="This is a great question! Safely crossing the street is all about being aware",
        text_end="to **stay alert and be predictable**. Always assume a driver might not see you.",
        text_len=1938, reasoning_start="**Clarifying User Goals**\n\nI'm currently focused on defining",
        usage=Usage(input_tokens=34, output_tokens=469 + 787, reasoning_tokens=787),
        response_model="gemini-2.5-pro", finish="STOP"),
    "12-gemini35-stream": Case(
        "12", 15, "google", "gemini-3.5-flash", PYTHON_Q, text="six",
        usage=Usage(input_tokens=18, output_tokens=1 + 139, reasoning_tokens=139),
        response_model="gemini-3.5-flash", response_id="mSczauHULtzM-sAPmZSniA0", finish="STOP"),
    "12-gemini35-stream-again": Case(
        "12", 16, "google", "gemini-3.5-flash", PYTHON_Q, text="six",
        usage=Usage(input_tokens=18, output_tokens=1 + 190, reasoning_tokens=190), finish="STOP"),
    "12-vertex-stream-body": Case(  # a Vertex AI body: first chunk has no counts at all
        "12", 11, "google", "gemini-3.5-flash", PYTHON_Q, text="six",
        usage=Usage(input_tokens=18, output_tokens=1 + 196, reasoning_tokens=196), finish="STOP"),
    "12-gemini-404-model": Case(
        "12", 17, "google", "does-not-exist", "Model does not exist.",
        error=ModelNotFoundError, status_code=404),
    "12-gemini-400-api-key-invalid": Case(
        "12", 18, "google", "gemini-3.5-flash", "Invalid API key.",
        error=AuthenticationError, status_code=400),
    "12-vertex-404-model": Case(
        "12", 13, "google", "does-not-exist", "Model does not exist.",
        error=ModelNotFoundError, status_code=404),
    "12-vertex-401": Case(
        "12", 14, "google", "gemini-3.5-flash", "Invalid API key.", error=AuthenticationError,
        status_code=401),
}

FAKE_KEY = "sk-test-FAKEKEY1234567890"


def _spec(case: Case) -> ModelSpec:
    return ModelSpec(PROVIDER_OF[case.adapter], case.adapter, case.model, case.model, api=case.api)


async def _run(case: Case, interactions: list[dict[str, Any]]):
    replay = Replay([interactions[case.index]])
    adapter = get_provider(case.adapter)
    http_client = replay.client()
    client = adapter.make_client(ClientOptions(base_url=None, api_key=FAKE_KEY, http_client=http_client))
    request = Request(spec=_spec(case), messages=[Message("user", case.prompt)], system=case.system)
    events: list[Any] = []
    error: BaseException | None = None
    try:
        async for event in adapter.stream(client, request):
            events.append(event)
    except Exception as exc:  # noqa: BLE001 - the error cases look at it
        error = exc
    finally:
        await http_client.aclose()
    return replay, events, error


# anthropic warns (DeprecationWarning) when a request names a model it lists as deprecated (08).
@pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_replay(case: Case, cassettes_dir: Path):
    interactions = load_interactions(cassettes_dir, case.file)
    replay, events, error = asyncio.run(_run(case, interactions))
    assert len(replay.sent) == 1, "the adapter must make exactly one request (SDK retries are off)"
    sent = json.loads(replay.sent[0].content)
    assert sent.get("model", case.model) == case.model
    adapter = get_provider(case.adapter)

    if case.error is not None:
        assert error is not None, f"expected {case.error.__name__}, got events {events}"
        mapped = adapter.map_error(error, _spec(case))
        assert isinstance(mapped, case.error), (type(error), error, mapped)
        assert mapped.status_code == case.status_code
        assert mapped.provider == case.adapter
        message = mapped.message
        assert "\n" not in message and len(message) <= 300
        assert FAKE_KEY not in message and "DEADBEEF" not in message
        assert "***" not in message  # our own wording must survive errors.redact() intact
        if case.error is ModelNotFoundError:
            assert case.model in message
        return

    assert error is None, f"unexpected {type(error).__name__}: {error}"
    text, reasoning, _ = fold(events)
    if case.text is not None:
        assert text == case.text
    else:
        assert text.startswith(case.text_start) and text.endswith(case.text_end)
        assert len(text) == case.text_len
    assert reasoning.startswith(case.reasoning_start)
    if not case.reasoning_start:
        assert reasoning == ""
    usages = [e.usage for e in events if isinstance(e, UsageUpdate)]
    final_usage = usages[-1] if usages else Usage()
    assert final_usage == case.usage
    infos = [e for e in events if isinstance(e, ResponseInfo)]
    assert infos, "ResponseInfo must be sent"
    if case.response_model:
        assert infos[0].response_model == case.response_model
    if case.response_id:
        assert infos[0].response_id == case.response_id
    assert isinstance(events[-1], Finish) and events[-1].reason == case.finish
    assert sum(isinstance(e, Finish) for e in events) == 1


def test_request_bodies(cassettes_dir: Path):
    """What each adapter sends: streaming flags, system prompt and token limits in each API's place."""
    async def sent_body(case: Case, **request_kw: Any) -> dict[str, Any]:
        replay = Replay([load_interactions(cassettes_dir, case.file)[case.index]])
        adapter = get_provider(case.adapter)
        async with replay.client() as http_client:
            client = adapter.make_client(ClientOptions(base_url=None, api_key=FAKE_KEY, http_client=http_client))
            request = Request(spec=_spec(case), messages=[Message("user", case.prompt)], **request_kw)
            async for _ in adapter.stream(client, request):
                pass
        return json.loads(replay.sent[0].content)

    chat = asyncio.run(sent_body(CASES["03-chat-with-usage-chunk"], system="S", temperature=0.7,
                                 max_tokens=500, extra={"params": {"seed": 7, "custom_field": 1}}))
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert chat["messages"][0] == {"role": "system", "content": "S"}
    # gpt-5.1 is a reasoning model: it refuses a temperature, so none is sent (data/models.toml)
    assert chat["max_completion_tokens"] == 500 and "temperature" not in chat
    assert chat["seed"] == 7 and chat["custom_field"] == 1  # named and unknown params both reach the body

    responses = asyncio.run(sent_body(CASES["04-responses-pong"], system="S", max_tokens=64))
    assert responses["stream"] is True and responses["instructions"] == "S"
    assert responses["max_output_tokens"] == 64

    claude = asyncio.run(sent_body(CASES["06-anthropic-text"], system="S",
                                   extra={"default_max_tokens": 1234}))
    assert claude["stream"] is True and claude["system"] == "S" and claude["max_tokens"] == 1234

    gemini = asyncio.run(sent_body(CASES["10-gemini-usage-thoughts"], system="S", max_tokens=99,
                                   temperature=0.2))
    assert gemini["systemInstruction"]["parts"][0]["text"] == "S"
    assert gemini["generationConfig"]["maxOutputTokens"] == 99
    assert gemini["generationConfig"]["temperature"] == 0.2


def test_every_cassette_is_replayed(cassettes_dir: Path):
    files = sorted(p.name.split("_", 1)[0] for p in cassettes_dir.glob("*.yaml"))
    assert files, "no cassettes found"
    covered = {case.file for case in CASES.values()}
    assert set(files) <= covered, f"cassettes without a replay case: {sorted(set(files) - covered)}"


def test_gzip_cassette_really_is_gzip(cassettes_dir: Path):
    """07 must keep its Content-Encoding so the SDK's httpx decompresses it (checked above)."""
    recorded = load_interactions(cassettes_dir, "07")[0]["response"]
    assert recorded["headers"]["Content-Encoding"] == ["gzip"]
    assert gzip.decompress(recorded["body"]["string"]).startswith(b"event: message_start")


def test_cassettes_are_the_copies_their_provenance_note_names(cassettes_dir: Path):
    """tests/fixtures/README.md lists each file's git blob SHA in its source repository: the copies
    kept here must still be those bytes (a cassette edited by hand would no longer be a recording)."""
    import hashlib
    import re

    note = (cassettes_dir.parent / "README.md").read_text()
    listed = dict(re.findall(r"^\| \d\d \| (\S+\.yaml) \|.*\| ([0-9a-f]{40}) \|$", note, re.M))
    files = sorted(p.name for p in cassettes_dir.glob("*.yaml"))
    assert sorted(listed) == files
    for name in files:
        data = (cassettes_dir / name).read_bytes()
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        assert blob == listed[name], name
