"""The per-call shortcuts give what they stand for: environment reads, the finish stage's plan copy, the front end's module and the cached per-call lookups."""

from __future__ import annotations

import dataclasses
import os

import pytest

from llmcells import config, otel
from llmcells.calls import make_plan
from llmcells.config import getenv


@pytest.mark.parametrize("value", ["x", "", "caf\u00e9", "a=b,c=d", "\udcff-raw-byte"])
def test_getenv_reads_what_os_environ_reads(monkeypatch, value):
    name = "LLMCELLS_TEST_GETENV"
    monkeypatch.delenv(name, raising=False)
    assert getenv(name) is None and getenv(name, "d") == "d" == os.environ.get(name, "d")
    monkeypatch.setenv(name, value)
    assert getenv(name) == os.environ.get(name) == value
    assert getenv(name, "d") == value
    monkeypatch.delenv(name)
    assert getenv(name) is None


def test_getenv_with_a_stand_in_environ(monkeypatch):
    """A test (or a tool) that replaces os.environ with a plain mapping is read through it."""
    monkeypatch.setattr(os, "environ", {"LLMCELLS_TEST_GETENV": "stand-in"})
    assert getenv("LLMCELLS_TEST_GETENV") == "stand-in"
    assert getenv("LLMCELLS_TEST_MISSING", "d") == "d"


def test_routes_and_home_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(config.ROUTE_ENV, "claude=bedrock")
    assert config.routes()["claude"] == "bedrock"
    monkeypatch.delenv(config.ROUTE_ENV)
    assert "claude" not in config.routes()
    monkeypatch.setenv("LLMCELLS_HOME", str(tmp_path / "h"))
    assert config.home() == tmp_path / "h"


def test_otel_follows_the_environment_on_every_call(monkeypatch):
    monkeypatch.setattr(config.settings, "otel", None)
    for name in (*otel._ENV_ON, "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    assert otel.enabled() is False
    monkeypatch.setenv("OTEL_SERVICE_NAME", "svc")
    assert otel.enabled() is otel.installed()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert otel.enabled() is False
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "none")
    assert otel.enabled() is False


def test_the_finish_stage_copy_is_dataclasses_replace(simulated):
    from llmcells.finish import _own_copy

    plan = make_plan("hello", "openai:gpt-6-luna")
    plan.keep = (print,)
    copy = _own_copy(plan)
    expected = dataclasses.replace(plan, keep=list(plan.keep))
    assert type(copy) is type(expected)
    assert {f.name: getattr(copy, f.name) for f in dataclasses.fields(copy)} == \
        {f.name: getattr(expected, f.name) for f in dataclasses.fields(expected)}
    assert copy.keep == [print] and copy.keep is not plan.keep and plan.keep == (print,)
    copy.keep.append(len)
    assert plan.keep == (print,)


def test_the_front_end_reads_the_display_module_each_time(monkeypatch):
    from llmcells import display
    from llmcells.session import session

    assert session.front_end.detect_mode("text") == "terminal"
    monkeypatch.setattr(display, "detect_mode", lambda d: "patched")
    assert session.front_end.detect_mode("text") == "patched"
    # display=False is "none" for sure: answered without asking the display module
    assert session.front_end.detect_mode(False) == "none"


def test_rate_limit_headers_read_alike_from_raw_bytes_and_from_a_mapping():
    """httpx's raw header pairs (the per-call path, names remembered) and a plain mapping give
    the same limits, whatever the names' case, twice in a row, and other headers are ignored."""
    import httpx2

    from llmcells import quotas

    pairs = [("Date", "Mon"), ("X-RateLimit-Limit-Requests", "500"),
             ("x-ratelimit-remaining-requests", "499.0"), ("x-ratelimit-reset-requests", "1m30s"),
             ("x-ratelimit-reset-tokens", "6ms"), ("x-ratelimit-limit-tokens", "not a number"),
             ("x-ratelimit-something-else", "1"),
             ("anthropic-ratelimit-output-tokens-remaining", "10"),
             ("Anthropic-RateLimit-Input-Tokens-Reset", "2030-01-01T00:00:00Z"),
             ("anthropic-ratelimit-tokens-reset", "garbled")]
    want = {"requests_limit": 500, "requests_remaining": 499, "requests_reset_at": 1000.0 + 90,
            "tokens_reset_at": 1000.0 + 0.006, "output_tokens_remaining": 10,
            "input_tokens_reset_at": 1893456000.0}
    for _ in range(2):
        assert quotas.from_headers(httpx2.Headers(pairs), now=1000.0) == want
        assert quotas.from_headers(dict(pairs), now=1000.0) == want
        response = httpx2.Response(200, headers=pairs)
        assert quotas.from_headers(response, now=1000.0) == want
    assert quotas.from_headers(httpx2.Headers([("content-type", "x")])) is None


def test_assembled_stages_run_outside_in_and_may_skip_or_repeat_the_inner_ones():
    import asyncio

    from llmcells.pipeline import assemble

    seen: list[str] = []

    def stage(name, times=1):
        async def run(plan, observer, next):
            seen.append(f"{name}>")
            out = None
            for _ in range(times):
                out = await next(plan + name, observer)
            seen.append(f"<{name}")
            return out
        return run

    async def answer(plan, observer, next):
        seen.append("answer")
        return f"answered {plan}"

    async def core(plan, observer):
        seen.append(f"core {plan}")
        if plan.startswith("!"):
            raise ValueError(plan)
        return plan

    call = assemble([stage("a"), stage("b", times=2)], core)
    assert asyncio.run(call("", None)) == "ab"
    assert seen == ["a>", "b>", "core ab", "core ab", "<b", "<a"]
    seen.clear()
    assert asyncio.run(assemble([stage("a"), answer, stage("c")], core)("x", None)) == "answered xa"
    assert seen == ["a>", "answer", "<a"]
    with pytest.raises(ValueError, match="!a"):
        asyncio.run(assemble([stage("a")], core)("!", None))


def test_call_ids_are_time_ordered_uuid7_hex():
    import time
    import uuid

    from llmcells.calls import new_call_id

    before = time.time_ns() // 1_000_000
    ids = [new_call_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == 2000
    for i in ids[:200]:
        u = uuid.UUID(hex=i)
        assert len(i) == 32 and i == u.hex and u.version == 7 and u.variant == uuid.RFC_4122
        assert before <= int(i[:12], 16) <= after  # the Unix time in ms, first
    time.sleep(0.002)
    later = new_call_id()
    assert all(later > i for i in ids)  # made later, sorts later: the ledger's index grows at its end
    assert len(make_plan("hi", "openai:gpt-6-luna").info.call_id) == 32


def test_one_message_list_for_the_context_check_and_the_request(simulated):
    from llmcells.types import Message

    history = [Message("user", "earlier"), Message("assistant", "answer")]
    plan = make_plan("now", "anthropic:claude-haiku-5-5", history=history)
    assert [(m.role, m.content) for m in plan.request.messages] == \
        [("user", "earlier"), ("assistant", "answer"), ("user", "now")]
    assert len(history) == 2


def test_getenvs_reads_each_name_as_getenv(monkeypatch):
    from llmcells.config import getenvs

    monkeypatch.setenv("LLMCELLS_TEST_A", "a\u00e9")
    monkeypatch.delenv("LLMCELLS_TEST_B", raising=False)
    names = ("LLMCELLS_TEST_A", "LLMCELLS_TEST_B", "LLMCELLS_TEST_A")
    assert getenvs(names) == ("a\u00e9", None, "a\u00e9")
    assert getenvs(names, "") == ("a\u00e9", "", "a\u00e9") == tuple(os.environ.get(n, "") for n in names)
    monkeypatch.setattr(os, "environ", {"LLMCELLS_TEST_B": "b"})
    assert getenvs(names, "") == ("", "b", "")


def test_route_variable_read_anew_and_bad_pairs_still_refused(monkeypatch):
    from llmcells.errors import ConfigError

    monkeypatch.setattr(config.settings, "route", {})
    monkeypatch.setenv(config.ROUTE_ENV, "claude=bedrock, chatgpt=azure")
    first = config.routes()
    assert first == {"claude": "bedrock", "chatgpt": "azure"}
    first["claude"] = "changed"  # a caller's copy: the next call is not affected
    assert config.routes()["claude"] == "bedrock"
    monkeypatch.setattr(config.settings, "route", {"claude": "vertex"})
    assert config.routes() == {"claude": "vertex", "chatgpt": "azure"}
    for _ in range(2):
        monkeypatch.setenv(config.ROUTE_ENV, "claude")
        with pytest.raises(ConfigError, match="NAME=VALUE"):
            config.routes()


def test_lifecycle_rows_remembered_but_status_from_today():
    import datetime as dt

    from llmcells import lifecycle

    retiring = next(r for r in lifecycle.table().values() if r.retires is not None)
    row = lifecycle.lookup(retiring.model)
    assert row == retiring and lifecycle.lookup(retiring.model) is row
    assert row.status(retiring.retires - dt.timedelta(days=1)) == "retiring"
    assert row.status(retiring.retires) == "retired"
    assert lifecycle.lookup("openai:no-such-model") == lifecycle.Lifecycle(model="openai:no-such-model")
    assert lifecycle.lookup("openai:no-such-model").status() == "active"


def test_context_estimate_counts_tool_calls():
    from llmcells.calls import estimate_tokens
    from llmcells.types import Message, ToolCall

    plain = [Message("user", "x" * 35)]
    call = ToolCall(id="c1", name="get_weather", arguments_json='{"city": "Paris"}')
    with_tools = [Message("user", "x" * 35), Message("assistant", "", tool_calls=(call,))]
    assert estimate_tokens(plain) == 10 + 4
    assert estimate_tokens(with_tools) == -(-(35 + len(call.arguments_json) + len(call.name)) // 3.5) + 8
