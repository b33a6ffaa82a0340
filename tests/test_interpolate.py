"""`{name}` interpolation: substitutes references, leaves everything else exactly as written."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmcells.interpolate import interpolate

NS = {
    "topic": "tides",
    "n": 3,
    "items": ["a", "b", "c"],
    "cfg": {"lang": "fr", "nested": {"k": 1}},
    "obj": SimpleNamespace(name="Ada", inner=SimpleNamespace(value=42), _secret="no"),
}


@pytest.mark.parametrize("text,expected", [
    ("Tell me about {topic}.", "Tell me about tides."),
    ("{n} items: {items[0]}, {items[-1]}", "3 items: a, c"),
    ("{cfg['lang']} / {cfg[\"nested\"]['k']}", "fr / 1"),
    ("Hello {obj.name}, {obj.inner.value}", "Hello Ada, 42"),
    ("{ topic }", "tides"),
])
def test_references_are_substituted(text, expected):
    assert interpolate(text, NS) == expected


@pytest.mark.parametrize("text", [
    '{"name": "x", "values": [1, 2]}',           # JSON
    "def f():\n    return {k: v for k, v in d.items()}",  # code braces
    "Missing {nobody} stays",                     # unknown name
    "{topic:>10}",                                # a format spec is not a reference
    "{{topic}}",                                  # doubled braces stay as written
    "{items[9]} out of range",                    # failing index
    "{obj.missing}",                              # failing attribute
    "{obj._secret}",                              # private attributes are not reached
    "{items[n]}",                                 # only literal indexes, nothing evaluated
    "{topic.__class__}",
    "{",
    "}{",
    "function() { return 1; }",
    "\\{topic\\}",
])
def test_everything_else_is_left_exactly_as_written(text):
    assert interpolate(text, NS) == text


def test_json_containing_a_reference_only_changes_the_reference():
    text = '{"q": "{topic}", "n": {n}}'
    assert interpolate(text, NS) == '{"q": "tides", "n": 3}'


@given(st.text(max_size=200))
def test_never_raises_and_unknown_names_never_change_text(text):
    assert interpolate(text, {}) == text
    interpolate(text, NS)
