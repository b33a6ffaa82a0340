"""Claude on Amazon Bedrock: the real `AsyncAnthropicBedrock` client (SigV4 signing through
boto3's credential chain, its event-stream decoder) against the simulator's Bedrock wire format;
the route setting; Bedrock's own prices; health. No AWS account: made-up credentials."""

from __future__ import annotations

import base64
import json
import math
import warnings

import httpx
import pytest
from IPython.core.error import UsageError

import llmcells
from llmcells import healthcheck, models
from llmcells.errors import ConfigError

US = "us.anthropic.claude-haiku-5-5"
GLOBAL = "global.anthropic.claude-haiku-5-5"
REGIONAL = "anthropic.claude-haiku-5-5"


@pytest.fixture
def aws(monkeypatch, tmp_path):
    """Made-up AWS credentials and region in the environment (AWS's chain reads them), and no
    AWS files or instance metadata to find others in."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLETEST00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret-key-for-tests")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    _no_aws_elsewhere(monkeypatch, tmp_path)


def _no_aws_elsewhere(monkeypatch, tmp_path):
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK", "AWS_DEFAULT_REGION",
                "ANTHROPIC_BEDROCK_BASE_URL", "LLMCELLS_ROUTE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def bedrock(fresh_sim, aws, monkeypatch):
    """Bedrock pointed at the simulator by its base URL: not the simulator switch, so the call
    goes through AWS's credential chain as a real one does."""
    monkeypatch.setenv("ANTHROPIC_BEDROCK_BASE_URL", fresh_sim.url)
    return fresh_sim


def ask(prompt, model, **kw):
    return llmcells.run(llmcells.ask(prompt, model, display=False, **kw))


def _frames(raw: bytes) -> list:
    from botocore.eventstream import EventStreamBuffer

    buf = EventStreamBuffer()
    buf.add_data(raw)
    return list(buf)  # botocore checks both CRCs and the lengths of every frame


def _signed_post(url: str, path: str, body: dict) -> httpx.Response:
    """A request signed as the SDK signs it (boto3's SigV4), sent by hand to read raw bytes."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    data = json.dumps(body).encode()
    request = AWSRequest(method="POST", url=url + path, data=data,
                         headers={"content-type": "application/json"})
    SigV4Auth(Credentials("AKIAEXAMPLETEST00001", "secret"), "bedrock", "us-east-1").add_auth(request)
    return httpx.post(url + path, content=data, headers=dict(request.prepare().headers), timeout=60)


BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
        "messages": [{"role": "user", "content": "Say hello"}]}


# ----- the wire ------------------------------------------------------------------------------------


def test_the_stream_is_aws_event_stream_framing_with_base64_anthropic_events(fresh_sim):
    r = _signed_post(fresh_sim.url, f"/model/{US}/invoke-with-response-stream", BODY)
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.amazon.eventstream"
    frames = _frames(r.content)
    assert frames and all(f.headers[":message-type"] == "event" and f.headers[":event-type"] == "chunk"
                          for f in frames)
    events = [json.loads(base64.b64decode(json.loads(f.payload)["bytes"])) for f in frames]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "ping" not in kinds
    assert events[0]["message"]["model"] == "claude-haiku-5-5"  # Anthropic's name, as Bedrock answers


def test_invoke_answers_json_and_an_unsigned_request_is_refused_403(fresh_sim):
    r = _signed_post(fresh_sim.url, f"/model/{US}/invoke", BODY)
    assert r.status_code == 200 and r.json()["content"][0]["type"] == "text"
    before = len(fresh_sim.requests)
    unsigned = httpx.post(fresh_sim.url + f"/model/{US}/invoke", json=BODY, timeout=60)
    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert len(fresh_sim.requests) == before  # refused before any answer was made
    no_version = _signed_post(fresh_sim.url, f"/model/{US}/invoke",
                              {k: v for k, v in BODY.items() if k != "anthropic_version"})
    assert no_version.status_code == 400 and no_version.headers["x-amzn-errortype"].startswith("ValidationException")


@pytest.mark.parametrize("change,message", [
    ({"anthropic_version": "2026-10-21"}, "Invalid API version"),  # the SDK's own default
    ({"model": US}, "extraneous key [model] is not permitted"),  # the model goes in the URL
    ({"stream": True}, "extraneous key [stream] is not permitted"),  # the URL says whether to stream
])
def test_bedrock_refuses_a_body_not_in_its_own_form(fresh_sim, change, message):
    """Bedrock's Claude body: anthropic_version "bedrock-2023-05-31", no model, no stream
    (docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages-request-response.html)."""
    r = _signed_post(fresh_sim.url, f"/model/{US}/invoke", {**BODY, **change})
    assert r.status_code == 400 and r.headers["x-amzn-errortype"].startswith("ValidationException")
    assert message in r.json()["message"]


@pytest.mark.parametrize("model_id", [
    "us.anthropic.claude-haiku-5-5-v1:0",  # from Sonnet 4.6 on, the id is the bare name
    "anthropic.claude-haiku-4-5-v1:0",     # before it, the id is dated
])
def test_bedrock_refuses_a_model_id_it_does_not_have(fresh_sim, model_id):
    """Bedrock answers 400 "The provided model identifier is invalid." for an id it doesn't
    have; a made-up model (a test's) is still answered in any form."""
    r = _signed_post(fresh_sim.url, f"/model/{model_id}/invoke", BODY)
    assert r.status_code == 400 and r.headers["x-amzn-errortype"].startswith("ValidationException")
    assert r.json()["message"] == "The provided model identifier is invalid."
    made_up = _signed_post(fresh_sim.url, "/model/anthropic.claude-haiku-4-9-v1:0/invoke", BODY)
    assert made_up.status_code == 200


def test_the_model_list_names_bedrocks_own_ids(fresh_sim):
    """GET /foundation-models lists each model by the id a route makes for it."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=fresh_sim.url + "/foundation-models")
    SigV4Auth(Credentials("AKIAEXAMPLETEST00001", "secret"), "bedrock", "us-east-1").add_auth(request)
    got = httpx.get(fresh_sim.url + "/foundation-models", headers=dict(request.prepare().headers), timeout=60)
    ids = {m["modelId"] for m in got.json()["modelSummaries"]}
    assert {"anthropic.claude-haiku-5-5", "anthropic.claude-sonnet-4-6",
            "anthropic.claude-haiku-4-5-20251001-v1:0"} <= ids, ids
    assert not any(i.startswith("anthropic.claude-haiku-5-5-") for i in ids)


def test_a_routed_alias_makes_bedrocks_id_for_each_generation(aws):
    """Claude 4.6 and later: the bare name; earlier models: their dated, versioned id; Opus 4.6:
    `-v1`; a dated name: `-v1:0`. (Each of them was `{name}-v1:0`, which Bedrock refuses.)"""
    llmcells.configure(route={"anthropic": "bedrock"})
    made = {name: models.resolve(f"anthropic:{name}").name for name in (
        "claude-haiku-5-5", "claude-sonnet-4-6", "claude-opus-4-6", "claude-haiku-4-5",
        "claude-haiku-4-5-20251001", "claude-opus-4-1")}
    assert made == {
        "claude-haiku-5-5": "us.anthropic.claude-haiku-5-5",
        "claude-sonnet-4-6": "us.anthropic.claude-sonnet-4-6",
        "claude-opus-4-6": "us.anthropic.claude-opus-4-6-v1",
        "claude-haiku-4-5": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "claude-haiku-4-5-20251001": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "claude-opus-4-1": "us.anthropic.claude-opus-4-1-20250805-v1:0",
    }
    assert models.resolve("claude").name == US == models.PROVIDERS["bedrock"].default_model


def test_a_wrong_model_id_is_one_line_not_retried(bedrock):
    r = ask("Say hello", "bedrock:us.anthropic.claude-haiku-5-5-v1:0")
    assert r.status == "error" and r.attempts == 1
    assert "The provided model identifier is invalid" in r.error and "\n" not in r.error
    assert "from Claude Sonnet 4.6 on (us.anthropic.claude-haiku-5-5)" in r.error  # what to write
    assert ask("Say hello", f"bedrock:{US}").ok


def test_the_sdk_sends_bedrocks_own_anthropic_version(bedrock, monkeypatch):
    """The installed anthropic SDK puts its API version date ("2026-10-21") in the body where
    Bedrock takes only "bedrock-2023-05-31"; the adapter sends Bedrock's."""
    import httpx2

    from llmcells.providers.bedrock import ADAPTER

    sent = []

    def handler(request):
        sent.append(json.loads(request.content))
        return httpx2.Response(400, json={"message": "stop"}, headers={"x-amzn-errortype": "ValidationException"})

    client = ADAPTER.make_client(models_options(httpx2.AsyncClient(transport=httpx2.MockTransport(handler))))
    spec = models.resolve(f"bedrock:{US}")
    llmcells.run(_drain(ADAPTER, client, spec))
    assert sent and sent[0]["anthropic_version"] == "bedrock-2023-05-31"
    assert "model" not in sent[0] and "stream" not in sent[0]


@pytest.mark.parametrize("stop_reason,action", [
    ("guardrail_intervened", "INTERVENED"),  # a stream that says so in its stop reason
    ("end_turn", "INTERVENED"),              # one that says so only in the guardrail action
])
def test_a_bedrock_guardrail_block_is_noted_not_passed_off_as_the_answer(aws, stop_reason, action):
    """A guardrail's canned message arrives as an ordinary answer; the result says it was blocked
    (it was an `ok` answer with no note)."""
    import httpx2

    from llmcells.providers.bedrock import ADAPTER
    from llmcells.sim.bedrock import chunk_frame
    from llmcells.types import Finish

    canned = "Sorry, the model cannot answer this question."
    events = [
        {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                              "model": "claude-haiku-5-5", "content": [],
                                              "usage": {"input_tokens": 11, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": canned}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": stop_reason}, "usage": {"output_tokens": 9}},
        {"type": "message_stop", "amazon-bedrock-guardrailAction": action,
         "amazon-bedrock-invocationMetrics": {"inputTokenCount": 11, "outputTokenCount": 9}},
    ]
    body = b"".join(chunk_frame(json.dumps(e).encode()) for e in events)

    def handler(request):
        return httpx2.Response(200, content=body,
                               headers={"content-type": "application/vnd.amazon.eventstream"})

    client = ADAPTER.make_client(models_options(httpx2.AsyncClient(transport=httpx2.MockTransport(handler))))
    spec = models.resolve(f"bedrock:{US}")

    async def finish():
        from llmcells.providers.base import Request
        from llmcells.types import Message

        return [e async for e in ADAPTER.stream(client, Request(spec=spec, messages=[Message("user", "hi")]))
                if isinstance(e, Finish)]

    [end] = llmcells.run(finish())
    assert end.reason == stop_reason
    assert end.note and "Bedrock guardrail intervened" in end.note and end.note.count("intervened") == 1


def models_options(http_client):
    from llmcells.providers.base import ClientOptions

    return ClientOptions(base_url="https://bedrock-runtime.us-east-1.amazonaws.com", api_key="",
                         http_client=http_client)


async def _drain(adapter, client, spec):
    from llmcells.providers.base import Request
    from llmcells.types import Message

    try:
        async for _ in adapter.stream(client, Request(spec=spec, messages=[Message("user", "hi")])):
            pass
    except Exception:  # noqa: BLE001 - only the request matters here
        pass


def test_throttling_is_bedrocks_ThrottlingException(fresh_sim):
    fresh_sim.inject("429", model=US)
    r = _signed_post(fresh_sim.url, f"/model/{US}/invoke-with-response-stream", BODY)
    assert r.status_code == 429 and r.headers["x-amzn-errortype"].startswith("ThrottlingException:")
    assert r.json() == {"message": "Too many requests, please wait before trying again."}


def test_a_midstream_error_is_an_exception_frame(fresh_sim):
    fresh_sim.inject("midstream_error", model=US, after_tokens=2)
    r = _signed_post(fresh_sim.url, f"/model/{US}/invoke-with-response-stream", BODY)
    last = _frames(r.content)[-1]
    assert last.headers[":message-type"] == "exception"
    assert last.headers[":exception-type"] == "serviceUnavailableException"


# ----- calls through llmcells ----------------------------------------------------------------------


def test_a_plain_call_is_signed_answered_and_priced_at_bedrocks_price(bedrock):
    r = ask("Say hello", f"bedrock:{US}")
    assert r.ok, r.error
    assert r.model == f"bedrock:{US}" and r.provider == "bedrock" and not r.simulated
    assert r.usage.output_tokens > 0
    sent = bedrock.requests[-1]
    assert sent.path == f"/model/{US}/invoke-with-response-stream"
    assert "x-amz-date" in sent.headers and sent.headers["authorization"] == "***"
    # us. is a regional (geographic) profile: genai-prices' aws price, 10% above Anthropic's own
    assert r.price_source.endswith(" (bedrock)") and r.price_basis.provider == "aws"
    assert r.price_basis.model == "regional.anthropic.claude-haiku-5-5"
    direct = llmcells.pricing.cost("anthropic", "claude-haiku-5-5", r.usage)[0]
    assert r.cost_usd == pytest.approx(direct * 1.1)


def test_a_global_profile_is_priced_as_global_though_the_answer_names_the_same_model(bedrock):
    r = ask("Say hello", f"bedrock:{GLOBAL}")
    assert r.ok and r.response_model == "claude-haiku-5-5"
    assert r.price_basis.model == "global.anthropic.claude-haiku-5-5"
    assert r.cost_usd == pytest.approx(llmcells.pricing.cost("anthropic", "claude-haiku-5-5", r.usage)[0])


def test_an_unknown_route_price_is_nan_with_one_warning_never_the_makers_price(bedrock):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = ask("one", "bedrock:anthropic.claude-haiku-4-9-v1:0")
        b = ask("two", "bedrock:anthropic.claude-haiku-4-9-v1:0")
    assert a.ok and b.ok and math.isnan(a.cost_usd) and math.isnan(b.cost_usd)
    lines = [str(w.message) for w in caught if "No price known" in str(w.message)]
    assert len(lines) == 1 and "bedrock:anthropic.claude-haiku-4-9-v1:0" in lines[0]


def test_streaming_shows_text_as_it_comes(bedrock):
    seen = []
    r = ask("Tell me a story", f"bedrock:{US}")
    assert r.ok and r.ttft_s is not None and r.ttft_s <= r.latency_s
    # the real SDK's typed stream reads the same bytes
    import anthropic

    async def typed():
        client = anthropic.AsyncAnthropicBedrock(base_url=bedrock.url, aws_region="us-east-1")
        # (this SDK's default anthropic_version is its API date, which Bedrock refuses)
        async with client.messages.stream(model=US, max_tokens=50,
                                          messages=[{"role": "user", "content": "hi"}],
                                          extra_body={"anthropic_version": "bedrock-2023-05-31"}) as s:
            async for text in s.text_stream:
                seen.append(text)
            return await s.get_final_message()

    final = llmcells.run(typed())
    assert len(seen) > 1 and final.usage.output_tokens == len(seen)
    assert "".join(seen) == final.content[0].text


def test_cache_tokens_come_back_in_usage(bedrock):
    bedrock.set_model(US, cached_input_tokens=40, cache_write_tokens=10)
    r = ask("Say hello", f"bedrock:{US}")
    assert r.ok and r.usage.cached_input_tokens == 40 and r.usage.cache_write_tokens == 10


def get_weather(city: str) -> dict:
    """The weather in a city."""
    return {"city": city, "temp_c": 21}


def test_tools_round_trip(bedrock):
    r = ask('Weather? call get_weather({"city": "Paris"})', f"bedrock:{US}", tools=[get_weather])
    assert r.ok, r.error
    assert r.text == 'Tool results: get_weather -> {"city":"Paris","temp_c":21}'
    assert r.turns == 2 and [t.name for t in r.tool_calls] == ["get_weather"]
    assert "tool_result" in json.dumps(bedrock.requests[-1].body)


def test_a_schema_answer_is_validated_into_data(bedrock):
    r = ask("Who wrote the first program?", f"bedrock:{US}", schema="name, age int")
    assert r.ok, r.error
    assert set(r.data) == {"name", "age"} if isinstance(r.data, dict) else r.data.age is not None
    assert bedrock.requests[-1].body["output_config"]["format"]["type"] == "json_schema"


def test_an_attachment_arrives_intact(bedrock, tmp_path):
    import hashlib

    note = tmp_path / "notes.txt"
    note.write_text("Bedrock carries the same content blocks.\n", encoding="utf-8")
    r = ask("What is in the attached file?", f"bedrock:{US}", attach=note)
    assert r.ok, r.error
    got = bedrock.requests[-1].attachments
    assert [a["sha256"] for a in got] == [hashlib.sha256(note.read_bytes()).hexdigest()]


def test_a_throttled_call_is_retried(bedrock):
    bedrock.inject("429", model=US, retry_after=0.05)
    r = ask("Say hello", f"bedrock:{US}")
    assert r.ok and r.attempts == 2


def test_a_fallback_chain_crosses_routes(bedrock, simulated):
    models.set_simulator(bedrock.url, providers=["anthropic"])  # claude: the simulator switch
    bedrock.inject("500", model=US, times=None)
    r = ask("Say hello", f"bedrock:{US}|claude")
    assert r.ok and r.model == "anthropic:claude-haiku-5-5"
    assert [q.api for q in bedrock.requests].count("bedrock") >= 1


def test_a_stream_broken_by_bedrock_keeps_its_partial_answer(bedrock):
    bedrock.inject("midstream_error", model=US, after_tokens=3)  # an exception frame
    r = ask("Say hello", f"bedrock:{US}")
    assert r.status == "error" and r.error_kind == "overloaded" and r.text
    bedrock.inject("cut_mid_event", model=US, after_tokens=3)  # a frame cut in half
    r = ask("Say hello", f"bedrock:{US}")
    assert r.status == "incomplete" and r.text


def test_no_credentials_is_one_clear_line(fresh_sim, monkeypatch, tmp_path):
    _no_aws_elsewhere(monkeypatch, tmp_path)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("ANTHROPIC_BEDROCK_BASE_URL", fresh_sim.url)
    r = ask("Say hello", f"bedrock:{US}")
    assert r.status == "error" and r.error_kind == "missing_key"
    assert r.error.startswith("No AWS credentials for Amazon Bedrock") and "\n" not in r.error
    assert fresh_sim.requests == []


def test_provider_batch_jobs_say_the_route_has_none(bedrock):
    with pytest.raises(ConfigError, match="has no provider batch API"):
        llmcells.run(llmcells.batch(["a", "b"], f"bedrock:{US}", via="provider", display=False))


# ----- the route setting ---------------------------------------------------------------------------


def test_the_route_setting_points_an_alias_at_bedrock(aws, monkeypatch):
    assert models.resolve("claude").provider == "anthropic"
    llmcells.configure(route={"claude": "bedrock"})
    spec = models.resolve("claude")
    assert (spec.provider, spec.adapter, spec.name) == ("bedrock", "bedrock", US)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert models.resolve("claude").name == "eu.anthropic.claude-haiku-5-5"
    llmcells.configure(route={"claude": "bedrock:global"})
    assert models.resolve("claude").name == GLOBAL
    llmcells.configure(route={"anthropic": "bedrock:regional"})  # a whole provider
    assert models.resolve("anthropic:claude-sonnet-5-5").name == "anthropic.claude-sonnet-5-5"
    assert models.resolve("chatgpt").provider == "openai"


def test_the_route_comes_from_the_environment_and_bad_routes_are_one_line(aws, monkeypatch):
    monkeypatch.setenv("LLMCELLS_ROUTE", "claude=bedrock")
    assert models.resolve("claude").provider == "bedrock"
    llmcells.configure(route="claude=anthropic-direct")
    with pytest.raises(ConfigError, match="not a cloud route"):
        models.resolve("claude")
    llmcells.configure(route={"chatgpt": "bedrock"})
    with pytest.raises(ConfigError, match="serves Claude models .*not OpenAI"):
        models.resolve("chatgpt")
    llmcells.configure(route={})
    monkeypatch.setenv("LLMCELLS_ROUTE", "claude")
    with pytest.raises(ConfigError, match="takes NAME=VALUE pairs"):
        models.resolve("claude")


def test_a_routed_alias_runs_unchanged_on_the_simulator(simulated, monkeypatch, tmp_path):
    _no_aws_elsewhere(monkeypatch, tmp_path)  # no AWS set-up at all: the simulator needs none
    llmcells.configure(route={"claude": "bedrock:global"})
    r = ask("Say hello", "claude")
    assert r.ok and r.model == f"bedrock:{GLOBAL}" and r.simulated
    assert simulated.requests[-1].path == f"/model/{GLOBAL}/invoke-with-response-stream"


def test_a_routed_magic_takes_another_claude_model_by_name(simulated, shell, monkeypatch, tmp_path):
    """`%%claude -m claude-opus-4-1` with claude routed to Bedrock: that model on Bedrock, by the
    route's id for it (it was refused as "a model of Anthropic, not of Amazon Bedrock")."""
    _no_aws_elsewhere(monkeypatch, tmp_path)
    llmcells.configure(route={"claude": "bedrock:global"})
    shell.run_cell_magic("claude", "-m claude-opus-4-1 --no-display", "Say hi.")
    r = shell.user_ns["_llm"]
    opus = "global.anthropic.claude-opus-4-1-20250805-v1:0"  # Bedrock's id of Opus 4.1 is dated
    assert r.ok and r.model == f"bedrock:{opus}", (r.model, r.error)
    assert simulated.requests[-1].path == f"/model/{opus}/invoke-with-response-stream"
    with pytest.raises(UsageError, match="'gpt-4o' is a model of OpenAI, not of Amazon Bedrock"):
        shell.run_cell_magic("claude", "-m gpt-4o --no-display", "Say hi.")


def test_a_routed_claude_keeps_claudes_capabilities(aws):
    from llmcells import capabilities

    llmcells.configure(route={"claude": "bedrock"})
    assert capabilities.of(models.resolve("claude")) == capabilities.of(models.resolve("anthropic:claude-haiku-5-5"))


# ----- health --------------------------------------------------------------------------------------


def test_health_shows_the_route_configured_reachable_and_its_models(bedrock):
    rows = {r["provider"]: r for r in llmcells.run(healthcheck.check_all(5.0))}
    row = rows["bedrock"]
    assert row["key_present"] is True and row["reachable"] is True, row
    assert "anthropic.claude-haiku-5-5" in row["models"]


def test_health_says_when_the_route_has_no_credentials(fresh_sim, monkeypatch, tmp_path):
    _no_aws_elsewhere(monkeypatch, tmp_path)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("ANTHROPIC_BEDROCK_BASE_URL", fresh_sim.url)
    row = {r["provider"]: r for r in llmcells.run(healthcheck.check_all(5.0))}["bedrock"]
    assert row["key_present"] is False and "No AWS credentials" in row["error"]


def test_health_says_not_checked_when_the_route_has_no_region(monkeypatch, tmp_path):
    """Settings that stop a request being made leave reachability unknown, not False."""
    _no_aws_elsewhere(monkeypatch, tmp_path)
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "ANTHROPIC_BEDROCK_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret-not-real")
    row = {r["provider"]: r for r in llmcells.run(healthcheck.check_all(5.0))}["bedrock"]
    assert row["reachable"] is None and row["error"].startswith("config: No AWS region"), row
