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

    assert session.front_end.detect_mode(False) == "none"
    monkeypatch.setattr(display, "detect_mode", lambda d: "patched")
    assert session.front_end.detect_mode(False) == "patched"
