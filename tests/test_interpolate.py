"""`{name}` interpolation: substitutes references, leaves everything else exactly as written."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmcells.errors import ConfigError
from llmcells.interpolate import interpolate, missing_names

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


@given(st.text(max_size=200).filter(lambda t: "{{" not in t))
def test_never_raises_and_unknown_names_never_change_text(text):
    assert interpolate(text, {}) == text
    interpolate(text, NS)


@pytest.mark.parametrize("text,expected", [
    ("{{topic}}", "{topic}"),                     # the escape, as str.format
    ("{{ topic }} is {topic}", "{ topic } is tides"),
    ('{{"a": {n}}}', '{"a": 3}'),                 # JSON around a reference
    ("a {{ b", "a { b"),
    ('{"a": {"b": 1}}', '{"a": {"b": 1}}'),      # JSON's closing }} is not an escape
])
def test_doubled_braces_escape_as_in_str_format(text, expected):
    assert interpolate(text, NS) == expected
    assert interpolate(text, NS, strict=True) == expected


@pytest.mark.parametrize("text,named", [
    ("Tell me about {topc}.", "{topc}: no variable 'topc' (did you mean 'topic'?)"),
    ("{nobody}", "{nobody}: no variable 'nobody'"),
    ("{obj.missing}", "{obj.missing}: obj has no such attribute or item"),
    ("{items[9]}", "{items[9]}: items has no such attribute or item"),
])
def test_strict_names_an_unknown_reference_in_one_line(text, named):
    with pytest.raises(ConfigError) as err:
        interpolate(text, NS, strict=True, hint="Or add --no-interpolate.")
    message = str(err.value)
    assert message.startswith(named), message
    assert message.endswith("nothing was sent. Or add --no-interpolate.") and "\n" not in message


@pytest.mark.parametrize("text", [
    "echo ${HOME} and $HOME",                     # shell, JavaScript template literals
    r"$\frac{a}{b}$ and x^{n} and x_{i}",        # LaTeX
    "```python\nprint(f'{value}')\n```",         # a code block
    "inline `f'{value}'` code",
    '{"name": "x", "values": [1, 2]}',
    "def f():\n    return {k: v for k, v in d.items()}",
    "{topic:>10}",
])
def test_strict_leaves_what_reads_as_something_else(text):
    assert interpolate(text, NS, strict=True) == interpolate(text, NS)


def test_missing_names_lists_what_strict_would_refuse():
    assert missing_names("Summarise: {txt} ({text}) ${HOME} {{lit}}", ["text"]) == ["txt"]


def test_strict_leaves_a_value_whose_str_fails_as_written():
    class Boom:
        def __str__(self):
            raise RuntimeError("no")

    assert interpolate("{boom} and {topic}", {**NS, "boom": Boom()}, strict=True) == "{boom} and tides"
