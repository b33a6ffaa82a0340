"""Fuzzing the magics through a real InteractiveShell (simulator on, --no-display): random option
lines and cell bodies either give a Result (in `_llm`) or one UsageError line; never any other
exception, and the shell stays usable. And interpolate() never raises, whatever the namespace
holds."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, event, given, settings as hsettings, strategies as st
from IPython.core.error import UsageError

from llmcells import magics
from llmcells.config import settings
from llmcells.interpolate import interpolate
from llmcells.comparison import Comparison
from llmcells.types import Result

FUZZ = hsettings(deadline=None, max_examples=60, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow, HealthCheck.data_too_large])

MAGICS = ["chatgpt", "claude", "gemini", "compare"]
WEIRD = ["ñandú", "模型", "🙂", "Ω≈ç", "\u200b", "\u202e", "a\u0301", "\x00", "\t", "\\", "'", '"',
         "''", '""', "'unbalanced", 'un"balanced', "{", "}", "{x}", "=", ":", "--", "-", "---x"]
MODELS = ["chatgpt", "claude", "gemini", "openai:gpt-6-sol", "openai-responses:gpt-6-luna",
          "anthropic:claude-sonnet-4-6", "google:gemini-3.5-flash", "gemini:gemini-3.5-flash-lite",
          "gpt-4o", "openia:gpt-4o", "chatgtp", "google:", ":x", "a:b:c", "模型", "'claude'",
          '"claude"', "x" * 500]
NUMBERS = ["0", "0.5", "1", "2", "2.0001", "-1", "1e400", "nan", "inf", "-inf", "abc", "", "1_0",
           "0x10", "３", "10000000000000000000000"]


def _option() -> st.SearchStrategy[str]:
    text = st.one_of(st.sampled_from(WEIRD), st.text(min_size=1, max_size=12),
                     st.text(alphabet="ab ", min_size=1000, max_size=3000))
    quoted = text.map(lambda t: '"' + t.replace('"', "'") + '"')
    return st.one_of(
        st.tuples(st.sampled_from(["-m", "--model"]), st.sampled_from(MODELS)).map(" ".join),
        st.tuples(st.sampled_from(["-s", "--system"]), st.one_of(quoted, text)).map(" ".join),
        st.tuples(st.sampled_from(["-t", "--temperature", "--max-tokens", "--timeout"]),
                  st.sampled_from(NUMBERS + ["5", "64", "0.001"])).map(" ".join),
        st.tuples(st.sampled_from(["-n", "--repeat"]),
                  st.sampled_from(["0", "1", "2", "-3", "x", "1.5"])).map(" ".join),
        st.tuples(st.sampled_from(["-o", "--out"]),
                  st.sampled_from(["answer", "ñame", "1x", "class", "a-b", "_", "'q'", "x" * 300,
                                   ""])).map(" ".join),
        st.tuples(st.sampled_from(["-f", "--format"]),
                  st.sampled_from(["markdown", "text", "code", "json", "yaml", ""])).map(" ".join),
        st.sampled_from(["-c", "--continue", "--no-interpolate", "--no-display", "--help", "-h",
                         "--bogus", "-x", "--model", "-t", "--", "-", "-mclaude", "--model=claude",
                         "--temperature=0.3", "-n2"]),
        st.sampled_from(MODELS),             # positional: models for %%compare, junk elsewhere
        text,
    )


option_lines = st.lists(_option(), max_size=6).map(" ".join)

VALID_MODELS = MODELS[:8]
valid_lines = st.lists(st.one_of(
    st.sampled_from(VALID_MODELS),                                   # %%compare positionals
    st.sampled_from(VALID_MODELS).map(lambda m: f"-m {m}"),
    st.sampled_from(WEIRD[:6] + ["Be terse.", "Réponds en français", "{topic}"]).map(
        lambda t: f'-s "{t}"'),
    st.floats(0, 2).map(lambda t: f"-t {t!r}"),
    st.integers(1, 64).map(lambda n: f"--max-tokens {n}"),
    st.integers(1, 3).map(lambda n: f"-n {n}"),
    st.sampled_from(["markdown", "text", "code", "json"]).map(lambda f: f"-f {f}"),
    st.sampled_from(["-c", "--no-interpolate", "-o answer", "--timeout 30"]),
), max_size=5).map(" ".join)

bodies = st.one_of(
    st.sampled_from(["", " ", "\n\t\n", "Say hi.", '{"a": [1, {"b": null}]}', "{topic}",
                     "{topic.upper}", "{rows[1]}", "{rows[99]}", "{cfg['k']}", "{{topic}}",
                     "{topic:>10}", "{boom}", "{boom.attr}", "{bad_str}", "{}", "{0}", "{!r}",
                     "def f():\n    return {k: v for k, v in d.items()}", "é" * 50, "🙂" * 20,
                     "\x00\x01", "x" * 100_000, "{topic} " * 2000]),
    st.text(max_size=300),
    st.lists(st.sampled_from(["{", "}", "{topic}", "[", "]", "'", '"', "\\", "json", " ", "\n",
                              "{rows[0]}", "{cfg[\"k\"]}", "{boom}", "{bad_str}"]),
             max_size=30).map("".join),
)


class Boom:
    """An object every use of which fails."""

    @property
    def attr(self):
        raise RuntimeError("attribute blew up")

    def __getitem__(self, key):
        raise RuntimeError("index blew up")

    def __str__(self):
        raise RuntimeError("str blew up")

    __repr__ = __str__


class BadStr:
    def __str__(self):
        return 42  # not a str: str() raises TypeError


NAMESPACE = {"topic": "tides", "rows": [10, 20], "cfg": {"k": "v"}, "boom": Boom(),
             "bad_str": BadStr()}


@pytest.fixture
def ip(shell, simulated):
    settings.update(retry_initial_wait=0.01, retry_max_wait=0.2, timeout=20)
    simulated.configure(output_tokens=8)
    shell.user_ns.update(NAMESPACE)
    yield shell
    magics.conversations.clear()


def _note(what: str) -> None:
    """Count outcomes in hypothesis' statistics (--hypothesis-show-statistics)."""
    try:
        event(what)
    except Exception:  # outside a @given test
        pass


def _run(shell, magic: str, line: str, body: str, capsys) -> None:
    shell.user_ns.pop("_llm", None)
    try:
        shell.run_cell_magic(magic, line + " --no-display", body)
    except UsageError as err:
        _note("UsageError")
        message = str(err)
        assert message.strip(), "an empty UsageError"
        assert "\n" not in message.strip(), f"a multi-line UsageError: {message!r}"
        assert "Traceback" not in message
    else:
        out = shell.user_ns.get("_llm")
        if out is None:   # --help / -h: argparse printed the help and the magic stopped
            assert "usage:" in capsys.readouterr().out.lower()
            return
        assert isinstance(out, (Result, Comparison)), type(out)
        _note(type(out).__name__)
        results = out.results if isinstance(out, Comparison) else [out]
        assert results and all(isinstance(r, Result) for r in results)
        for r in results:
            assert r.status in ("ok", "error", "incomplete"), r.status
            if r.error:
                assert "\n" not in r.error, r.error


def _still_usable(shell) -> None:
    shell.run_cell_magic("claude", "--no-display", "still there?")
    assert shell.user_ns["_llm"].ok
    assert shell.run_cell("1 + 1").result == 2


@FUZZ
@given(magic=st.sampled_from(MAGICS), line=option_lines, body=bodies)
@pytest.mark.slow
def test_random_option_lines_and_bodies(ip, capsys, magic, line, body):
    _run(ip, magic, line, body, capsys)


@hsettings(FUZZ, max_examples=40)
@given(magic=st.sampled_from(MAGICS), line=valid_lines, body=bodies)
def test_mostly_valid_option_lines_and_random_bodies(ip, capsys, magic, line, body):
    _run(ip, magic, line, body, capsys)


@hsettings(FUZZ, max_examples=30)
@given(magic=st.sampled_from(MAGICS), line=st.text(max_size=80))
def test_any_text_as_the_option_line(ip, capsys, magic, line):
    _run(ip, magic, line, "Say hi.", capsys)


@pytest.mark.parametrize("line", [
    "'", '"', "-s 'unbalanced", '-s "unbalanced', "-m \"claude", "--model=", "-t=", "\\",
    "-s \\", "-o ''", '-o ""', "-m ''", '-s ""', "-n 99999999999999999999999", "-t nan",
    "-t inf", "--timeout nan", "--timeout inf", "--max-tokens 99999999999999999999999",
    "-f", "-m", "--help", "-h", "--model claude --model gemini", "-c -c -c", "\x00",
])
@pytest.mark.parametrize("magic", MAGICS)
def test_tricky_option_lines(ip, capsys, magic, line):
    _run(ip, magic, line, "Say hi.", capsys)


@pytest.mark.parametrize("body", ["x" * 100_000, "{topic} and {boom} " * 5000,
                                  "🙂 " * 30_000 + "{rows[1]}"])
def test_huge_prompts(ip, capsys, simulated, body):
    _run(ip, "claude", "", body, capsys)
    r = ip.user_ns["_llm"]
    assert r.ok
    sent = simulated.requests[-1].body["messages"][-1]["content"]
    assert len(sent) >= len(body) - 20_000


def test_the_shell_stays_usable_after_the_fuzzing(ip, capsys):
    for magic in MAGICS:
        for line in ("--bogus", "-t 9", "-m openia:x", "'", "-s \"x"):
            _run(ip, magic, line, "hi", capsys)
    _still_usable(ip)
    ip.run_line_magic("llmcells", "reset")
    _still_usable(ip)


# ----- interpolate() -------------------------------------------------------------------------


class Weird:
    """Attributes and items that fail in every way an object can."""

    def __getattr__(self, name):
        if name == "loop":
            return self
        if name == "recursion":
            return self.recursion
        raise KeyError(name)  # not even an AttributeError

    def __getitem__(self, key):
        if key == 0:
            return Boom()
        raise SystemError("bad index")

    def __str__(self):
        return "weird"


class HugeStr:
    def __str__(self):
        return "h" * 1_000_000


class StrReturnsSubclass:
    class S(str):
        pass

    def __str__(self):
        return self.S("sub")


class FailingMapping(dict):
    def get(self, key, default=None):
        if key == "explode":
            raise RuntimeError("namespace lookup failed")
        return super().get(key, default)


WEIRD_NS = FailingMapping({
    **NAMESPACE, "weird": Weird(), "huge": HugeStr(), "sub": StrReturnsSubclass(), "nan": math.nan,
    "none": None, "nested": {"a": [{"b": Boom()}]}, "ints": list(range(5)), "text": "héllo",
})

names = st.sampled_from([*WEIRD_NS, "missing", "explode", "_private", "__class__"])
steps = st.one_of(st.sampled_from([".upper", ".attr", ".loop", ".recursion", ".__class__",
                                   "._x", ".missing", ".real", "[0]", "[-1]", "[99]", "['a']",
                                   "[\"b\"]", "[ 1 ]", "['']", "[" + "9" * 5000 + "]",
                                   "[-0]", "['\\x']"]),
                  st.text(max_size=4))
refs = st.tuples(names, st.lists(steps, max_size=4)).map(lambda t: "{" + t[0] + "".join(t[1]) + "}")
texts = st.lists(st.one_of(refs, st.sampled_from(["{", "}", "{{", "}}", " ", "{ ", " }", "\n",
                                                  "{{{", "json", '"'])),
                 max_size=12).map("".join)


@hsettings(deadline=None, max_examples=150, derandomize=True)
@given(text=texts)
def test_interpolate_never_raises_whatever_the_namespace_holds(text):
    out = interpolate(text, WEIRD_NS)
    assert isinstance(out, str)
    if "{" not in text:
        assert out == text


@pytest.mark.parametrize("text", ["{boom}", "{bad_str}", "{nested['a'][0]['b']}", "{weird[0]}",
                                  "{weird.recursion}", "{explode}", "{weird.anything}"])
def test_interpolate_leaves_unrenderable_references_as_written(text):
    assert interpolate(text, WEIRD_NS) == text
