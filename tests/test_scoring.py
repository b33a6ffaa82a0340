"""Scoring: the built-in scorers on known answers, a judge on the simulator, a raising scorer,
scores in compare / batch frames and tables, and the repeat intervals against a hand computation."""

from __future__ import annotations

import math
import sys

import pandas as pd
import pytest

import llmcells
from llmcells import scoring
from llmcells.display import scores as score_display
from llmcells.display.terminal import table_text
from llmcells.scoring import column, mean_interval, parse_judgement, summarize, t_quantile
from llmcells.types import CallInfo, Result

MODELS = ["chatgpt", "claude", "gemini"]


def R(text: str, **kw) -> Result:
    return Result(text=text, model=kw.pop("model", "openai:gpt-6-luna"), **kw)


# ----- built-in scorers on known answers ----------------------------------------------------------


def test_exact():
    s = llmcells.exact("42")
    assert s(R("42")) == 1.0 and s(R("  42\n")) == 1.0
    assert s(R("42.")) == 0.0 and s(R("The answer is 42.")) == 0.0
    assert llmcells.exact("Paris")(R("paris")) == 0.0
    assert llmcells.exact("Paris", case=False)(R(" PARIS ")) == 1.0
    by_row = llmcells.exact(column("expected"))
    assert by_row(R("7"), {"expected": 7}) == 1.0 and by_row(R("8"), {"expected": 7}) == 0.0
    assert llmcells.exact(lambda row: row["a"] + row["b"])(R("ab"), {"a": "a", "b": "b"}) == 1.0
    with pytest.raises(KeyError, match="no column 'expected'"):
        by_row(R("7"), {"prompt": "x"})


def test_contains():
    assert llmcells.contains("paris")(R("The capital is Paris.")) == 1.0
    assert llmcells.contains("Paris", case=True)(R("the capital is paris")) == 0.0
    both = llmcells.contains("paris", "france")
    assert both(R("Paris, France")) == 1.0 and both(R("Paris, Texas")) == 0.0
    either = llmcells.contains("paris", "lyon", any=True)
    assert either(R("Lyon")) == 1.0 and either(R("Nice")) == 0.0
    assert llmcells.contains(column("city"))(R("It is Rome."), {"city": "rome"}) == 1.0
    with pytest.raises(llmcells.ConfigError):
        llmcells.contains()


def test_regex():
    assert llmcells.regex(r"\b4\d\b")(R("about 42 or so")) == 1.0
    assert llmcells.regex(r"\b4\d\b")(R("about 142")) == 0.0
    assert llmcells.regex(r"\d+", full=True)(R(" 42 ")) == 1.0
    assert llmcells.regex(r"\d+", full=True)(R("42 apples")) == 0.0
    assert llmcells.regex(r"^yes$", flags=2)(R("YES")) == 1.0  # re.IGNORECASE
    with pytest.raises(llmcells.ConfigError, match="not a valid regular expression"):
        llmcells.regex("(")


def test_json_valid():
    s = llmcells.json_valid()
    assert s(R('{"a": 1}')) == 1.0
    assert s(R('Here:\n```json\n{"a": [1, 2]}\n```\nDone.')) == 1.0
    value, note = s(R("{'a': 1}"))
    assert value == 0.0 and note.startswith("not JSON")


#: a model's answer of brackets nested deeper than Python's JSON parser can go
DEEP = "[" * 100_000 + "]" * 100_000


def test_an_answer_nested_too_deeply_scores_as_not_json_and_fails_its_schema():
    """json.loads raises RecursionError on it, which escaped the scorers (a ValueError was
    caught) and failed the call that the answer belonged to."""
    from llmcells.structured import output_schema, validate

    value, note = llmcells.json_valid()(R(DEEP))
    assert value == 0.0 and note == "not JSON: nested too deeply to read"
    value, note = llmcells.matches_schema({"type": "array"})(R(DEEP))
    assert value == 0.0 and note == "not JSON: nested too deeply to read"
    with pytest.raises(ValueError, match="^not JSON: nested too deeply to read$"):
        validate(DEEP, output_schema({"type": "object", "properties": {"a": {"type": "string"}}}))


def test_matches_schema_pydantic_and_json_schema():
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int

    s = llmcells.matches_schema(Person)
    assert s(R('{"name": "Ada", "age": 36}')) == 1.0
    value, note = s(R('{"name": "Ada", "age": "old"}'))
    assert value == 0.0 and note.startswith("age:")
    j = llmcells.matches_schema({"type": "object", "required": ["name"],
                                 "properties": {"name": {"type": "string"}}})
    assert j(R('{"name": "Ada"}')) == 1.0
    value, note = j(R('{"age": 3}'))
    assert value == 0.0 and "'name' is a required property" in note
    assert j(R("nope"))[0] == 0.0
    with pytest.raises(llmcells.ConfigError):
        llmcells.matches_schema("not a schema")


def test_max_words():
    assert llmcells.max_words(3)(R("one two three"))[0] == 1.0
    value, note = llmcells.max_words(3)(R("one two three four"))
    assert value == 0.0 and note == "4 words > 3"


def test_scorer_names_are_unique_columns():
    def polite(r):
        return "please" in r.text

    bound = scoring.prepare([llmcells.exact("a"), llmcells.exact("b"), polite, lambda r: 1,
                             llmcells.contains("x", name="has x")])
    assert [b.name for b in bound] == ["exact", "exact_2", "polite", "custom", "has_x"]
    assert [b.row for b in bound] == [True, True, False, False, True]
    with pytest.raises(llmcells.ConfigError, match="score= takes scorers"):
        scoring.prepare(["exact"])


def test_parse_judgement():
    assert parse_judgement("Score: 8 — clear and correct.") == (8.0, "clear and correct.")
    assert parse_judgement("**Score:** 7/10 - fine") == (7.0, "fine")
    assert parse_judgement("score=3: wrong number\nmore text") == (3.0, "wrong number")
    value, note = parse_judgement("I like it")
    assert math.isnan(value) and "no 'Score: N'" in note
    value, note = parse_judgement("Score: 11 — great")
    assert math.isnan(value) and "outside 1-10" in note


# ----- scoring through compare, on the simulator ------------------------------------------------


def compare(*args, **kwargs):
    kwargs.setdefault("display", False)
    return llmcells.run(llmcells.compare(*args, **kwargs))


def test_a_raising_scorer_gives_nan_and_never_breaks_the_call(simulated):
    def broken(result):
        raise ValueError("cannot score this\nsecond line")

    async def broken_async(result):
        raise RuntimeError("async too")

    c = compare("What is 6 * 7?", MODELS, score=[broken, broken_async, llmcells.contains("4")])
    for r in c:
        assert r.ok and r.text
        assert math.isnan(r.scores["broken"]) and math.isnan(r.scores["broken_async"])
        assert r.score_notes["broken"] == "ValueError: cannot score this"
        assert r.score_notes["broken_async"] == "RuntimeError: async too"
        assert r.scores["contains"] in (0.0, 1.0)
    frame = c.to_frame()
    assert {"score_broken", "score_broken_async", "score_contains", "score_notes"} <= set(frame.columns)
    assert frame["score_broken"].isna().all()


def test_failed_calls_are_not_scored(simulated):
    simulated.inject("401", provider="anthropic", times=None)
    c = compare("What is 2 + 2?", MODELS, score=llmcells.contains("4"))
    bad = c["claude"]
    assert bad.status == "error" and math.isnan(bad.scores["contains"])
    assert bad.score_notes["contains"] == "no answer (error)"
    assert c["chatgpt"].scores["contains"] == 1.0


def test_judge_on_the_simulator_grades_against_a_reference(simulated):
    judge = llmcells.judge("openai:gpt-4.1", rubric="Is the number right?", reference="42")
    c = compare("What is 6 * 7? Answer with the number only.", MODELS, score=judge)
    texts = {r.model: r.text for r in c}
    # what the simulated models answer (fixed by a hash of model and question)
    assert texts == {"openai:gpt-6-luna": "42", "anthropic:claude-haiku-5-5": "The answer is 42.",
                     "google:gemini-3.5-flash-lite": "The answer is 45."}
    assert [r.scores["judge"] for r in c] == [10.0, 8.0, 2.0]
    assert c["gemini"].score_notes["judge"] == "does not match the reference answer."
    # the judge saw the question, the reference and the answer
    graded = [q for q in simulated.requests if q.model == "gpt-4.1"]
    assert len(graded) == 3
    bodies = [q.body["messages"][-1]["content"] for q in graded]
    assert all("<reference>\n42\n</reference>" in b and "What is 6 * 7?" in b for b in bodies)
    assert sum("<answer>\nThe answer is 42.\n</answer>" in b for b in bodies) == 1
    # recorded under the same group, with purpose "judge", priced, and apart in costs()
    usage = llmcells.usage(group_id=c.group_id)
    assert sorted(usage.purpose) == ["answer"] * 3 + ["judge"] * 3
    judged = usage[usage.purpose == "judge"]
    assert set(judged.model) == {"openai:gpt-4.1"} and (judged.cost_usd > 0).all()
    by = llmcells.costs(by=["group", "purpose"], group_id=c.group_id,
                        include_simulated=True).set_index("purpose")
    assert by.loc["judge", "calls"] == 3 and by.loc["answer", "calls"] == 3
    assert by.loc["judge", "cost_usd"] == pytest.approx(judged.cost_usd.sum())


def test_the_judge_can_be_told_what_to_say(simulated):
    simulated.set_model("gpt-4.1", text="Score: 7 — clear, but a little long.")
    c = compare("Explain overfitting.", ["chatgpt", "gemini"], score=llmcells.judge("openai:gpt-4.1"))
    assert [r.scores["judge"] for r in c] == [7.0, 7.0]
    assert c[0].score_notes["judge"] == "clear, but a little long."
    simulated.set_model("gpt-4.1", text="It is a fine answer.")
    c = compare("Explain overfitting.", ["chatgpt"], score=llmcells.judge("openai:gpt-4.1"))
    assert math.isnan(c[0].scores["judge"]) and "no 'Score: N'" in c[0].score_notes["judge"]


def test_the_judge_never_grades_its_own_answer_unless_asked(simulated):
    c = compare("Explain overfitting.", ["chatgpt", "claude"], score=llmcells.judge("claude"))
    own = c["claude"]
    assert math.isnan(own.scores["judge"]) and "judge's own answer" in own.score_notes["judge"]
    assert 1 <= c["chatgpt"].scores["judge"] <= 10
    graded = [q for q in simulated.requests if q.model == "claude-haiku-5-5"]
    assert len(graded) == 2  # its answer, and one grading call (not of itself)
    c = compare("Explain overfitting.", ["claude"], score=llmcells.judge("claude", allow_self=True))
    assert 1 <= c[0].scores["judge"] <= 10


def test_a_failed_judge_call_is_nan_with_a_reason(simulated):
    simulated.inject("401", model="gpt-4.1", times=None)
    c = compare("What is 1 + 1?", ["chatgpt"], score=[llmcells.judge("openai:gpt-4.1"), llmcells.contains("2")])
    r = c[0]
    assert r.ok and r.scores["contains"] == 1.0
    assert math.isnan(r.scores["judge"]) and r.score_notes["judge"].startswith("judge call failed:")


def test_cards_and_tables_show_scores(simulated):
    c = compare("What is 6 * 7?", MODELS, repeat=2, score=[llmcells.exact("42"), llmcells.contains("42")])
    infos = [CallInfo(call_id=r.call_id, model=r.model, model_id=r.model, provider=r.provider,
                      sample=r.sample) for r in c]
    text = table_text(infos, list(c))
    header = text.splitlines()[0]
    assert "exact" in header and "contains" in header
    assert "▲ 1" in text  # the best marked
    assert "per model, mean [95% interval]:" in text
    # the metrics line of a card ends with its scores
    from llmcells.display._format import metrics_line

    assert metrics_line(c["chatgpt"]).endswith("· exact 1 · contains 1]")
    from llmcells.display.notebook import metrics_table_html

    html = metrics_table_html(infos, list(c))
    assert ">exact</th>" in html and "▲ 1" in html and 'llmcells-summary"' in html


def test_compare_summary_has_intervals_per_model(simulated):
    c = compare("What is 6 * 7?", ["chatgpt", "claude"], repeat=3, score=llmcells.exact("42"))
    s = c.summary().set_index("model")
    assert list(s["calls"]) == [3, 3]
    assert s.loc["openai:gpt-6-luna", "score_exact_mean"] == 1.0
    lat = c.to_frame().query("model == 'openai:gpt-6-luna'")["latency_s"]
    mean, lo, hi = mean_interval(lat)
    assert s.loc["openai:gpt-6-luna", "latency_s_mean"] == pytest.approx(mean)
    assert s.loc["openai:gpt-6-luna", "latency_s_hi"] == pytest.approx(hi)


# ----- batch ---------------------------------------------------------------------------------------


def test_batch_scores_read_expected_answers_from_the_row(simulated):
    df = pd.DataFrame({"q": ["What is 6 * 7?", "What is 12 + 30?", "What is 50 - 8?"],
                       "expected": ["42", "42", "42"]})

    def right(result, row):
        return row["expected"] in result.text

    frame = llmcells.run(llmcells.batch(df, ["chatgpt", "gemini"], template="{q}", display=False,
                                        score=[right, llmcells.exact(column("expected"))]))
    assert {"score_right", "score_exact"} <= set(frame.columns)
    for row in frame.itertuples():
        assert row.score_right == float(row.expected in row.text)
        assert row.score_exact == float(row.text.strip() == row.expected)
    # resumed rows are scored too
    again = llmcells.run(llmcells.batch(df, ["chatgpt", "gemini"], template="{q}", display=False,
                                        resume=True, score=[right]))
    assert again["resumed"].all() and again["score_right"].tolist() == frame["score_right"].tolist()


# ----- intervals -----------------------------------------------------------------------------------


def test_t_interval_matches_a_hand_computation():
    # 1..5: mean 3, sd sqrt(2.5), se sqrt(0.5); t(0.975, 4) = 2.776445 -> half width 1.963243
    mean, lo, hi = mean_interval([1, 2, 3, 4, 5])
    assert mean == 3.0
    assert lo == pytest.approx(3 - 1.963243, abs=1e-5) and hi == pytest.approx(3 + 1.963243, abs=1e-5)
    # 0.1, 0.2, 0.4: mean 0.2333.., sd 0.152753, se 0.0881917; t(0.975, 2) = 4.302653
    mean, lo, hi = mean_interval([0.1, 0.2, 0.4])
    assert mean == pytest.approx(0.2333333)
    assert hi - mean == pytest.approx(4.302653 * 0.0881917, rel=1e-5)
    assert mean_interval([5.0])[0] == 5.0 and math.isnan(mean_interval([5.0])[1])
    assert math.isnan(mean_interval([])[0])
    assert mean_interval([1, float("nan"), 3])[0] == 2.0


def test_t_quantile_without_scipy_uses_the_table(monkeypatch):
    with_scipy = {df: t_quantile(0.975, df) for df in (1, 4, 9, 29, 35, 75, 150, 700, 5000)}
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # import fails as if not installed
    for df, value in with_scipy.items():
        assert t_quantile(0.975, df) == pytest.approx(value, abs=2e-3), df
    assert t_quantile(0.975, 4) == 2.776445
    with pytest.raises(RuntimeError, match="need scipy"):
        t_quantile(0.995, 4)


def test_summarize_by_hand_on_fixed_numbers():
    frame = pd.DataFrame({
        "model": ["a", "a", "a", "b", "b", "b", "b"],
        "status": ["ok", "ok", "ok", "ok", "ok", "ok", "error"],
        "score_exact": [1.0, 0.0, 1.0, 1.0, 1.0, 1.0, math.nan],
        "latency_s": [1.0, 2.0, 3.0, 0.5, 0.5, 0.5, 9.0],
        "cost_usd": [0.001, 0.001, 0.001, 0.002, 0.004, 0.006, 0.0],
    })
    s = summarize(frame).set_index("model")
    assert s.loc["a", "calls"] == 3 and s.loc["b", "calls"] == 4 and s.loc["b", "errors"] == 1
    # a, score: mean 2/3, sd 0.57735, se 0.333333, t(0.975, 2) 4.302653
    assert s.loc["a", "score_exact_mean"] == pytest.approx(2 / 3)
    assert s.loc["a", "score_exact_hi"] == pytest.approx(2 / 3 + 4.302653 / 3, rel=1e-5)
    # a, latency 1, 2, 3: mean 2, se 1/sqrt(3); low end clipped at 0
    assert s.loc["a", "latency_s_hi"] == pytest.approx(2 + 4.302653 / math.sqrt(3), rel=1e-5)
    assert s.loc["a", "latency_s_lo"] == 0.0
    # b, cost 0.002, 0.004, 0.006 (the failed call left out): mean 0.004, sd 0.002
    assert s.loc["b", "cost_usd_mean"] == pytest.approx(0.004)
    assert s.loc["b", "cost_usd_hi"] == pytest.approx(0.004 + 4.302653 * 0.002 / math.sqrt(3), rel=1e-5)
    assert s.loc["b", "latency_s_lo"] == s.loc["b", "latency_s_hi"] == 0.5  # no spread


def test_summary_rows_show_mean_and_interval():
    infos = [CallInfo(call_id=str(i), model="m", model_id="m", provider="p", sample=i) for i in range(3)]
    results = [Result(text="x", model="m", status="ok", latency_s=x, cost_usd=0.001,
                      scores={"judge": s}) for x, s in zip((1.0, 2.0, 3.0), (6.0, 8.0, 10.0))]
    rows = score_display.summary_rows(infos, results)
    assert rows[0] == ["model", "n", "judge", "latency", "cost"]
    half = 4.302653 * 2 / math.sqrt(3)
    assert rows[1][2] == f"8.00 [{8 - half:.2f}, {8 + half:.2f}]"


# ----- the magics, the card, the simulator's scripted answers --------------------------------------


def test_compare_magic_takes_score_var(simulated, shell):
    from IPython.core.error import UsageError

    shell.user_ns["checks"] = [llmcells.exact("42"), llmcells.max_words(2)]
    shell.run_cell_magic("compare", "chatgpt claude --no-display --score checks -o c",
                         "What is 6 * 7? Answer with the number only.")
    c = shell.user_ns["c"]
    assert [r.scores for r in c] == [{"exact": 1.0, "max_words": 1.0}, {"exact": 0.0, "max_words": 0.0}]
    n = len(simulated.requests)
    with pytest.raises(UsageError, match="--score nothing: no variable 'nothing'"):
        shell.run_cell_magic("compare", "chatgpt --score nothing", "What is 6 * 7?")
    with pytest.raises(UsageError, match="score= takes scorers"):
        shell.user_ns["bad"] = "exact"
        shell.run_cell_magic("compare", "chatgpt --score bad", "What is 6 * 7?")
    assert len(simulated.requests) == n  # nothing sent


def test_a_card_paints_scores_and_the_replayed_badge(monkeypatch):
    import comm

    import llmcells.display.notebook as nb

    class Comm:
        comm_id = "x"

        def __init__(self, **kw):
            pass

        open = on_msg = close = send = lambda self, *a, **k: None

    monkeypatch.setattr(comm, "create_comm", lambda **kw: Comm())
    monkeypatch.setattr(nb, "show", lambda obj: None)
    info = CallInfo(call_id="c1", model="chatgpt", model_id="openai:gpt-6-luna", provider="openai")
    view = nb.NotebookDisplay("ask", [info])
    card = view.cards[0]
    r = Result(text="42", model="openai:gpt-6-luna", call_id="c1", latency_s=0.5, cost_usd=0.0,
               scores={"exact": 1.0, "judge": math.nan}, replayed=True,
               original={"latency_s": 1.25, "cost_usd": 0.00033})
    card.on_finish(r)
    assert "exact 1 · judge –" in card.footer.value and "replayed</span>" in card.header.value
    assert "↺ replayed (originally 1.25 s, $0.000330)" in card.footer.value
    r.scores["judge"], r.score_notes["judge"] = 9.0, "right, and alone"
    card.on_scores(r)  # the judge answered later
    assert "judge 9: right, and alone" in card.footer.value


def test_the_simulator_scripted_answers():
    from llmcells.sim.scripted import accuracy, arithmetic_reply, judge_reply

    assert arithmetic_reply("gpt-6-luna", "What is 6 * 7? Answer with the number only.") == "42"
    assert arithmetic_reply("claude-haiku-5-5", "What is 6 * 7?") == "The answer is 42."
    assert arithmetic_reply("gemini-3.5-flash-lite", "what is 6 x 7?") == "The answer is 44."  # one of its misses
    assert arithmetic_reply("m", "Tell me a story.") is None
    assert 0.55 <= accuracy("any-model") < 0.97
    right = sum(arithmetic_reply("gpt-6-luna", f"What is {i} + {i}?") == str(2 * i) for i in range(400))
    assert abs(right / 400 - accuracy("gpt-6-luna")) < 0.06
    j = llmcells.judge("openai:gpt-4.1", reference=column("expected"))
    prompt = j.prompt(R("The answer is 42."), {"prompt": "What is 6 * 7?", "expected": "42"})
    assert judge_reply(prompt) == "Score: 8 — contains the reference answer, with extra words."
    no_ref = llmcells.judge("openai:gpt-4.1").prompt(R("Paris"), {"prompt": "Capital of France?"})
    assert judge_reply(no_ref) == judge_reply(no_ref) and judge_reply(no_ref).startswith("Score: ")
    assert 1 <= parse_judgement(judge_reply(no_ref))[0] <= 10
    assert judge_reply("What is 6 * 7?") is None


def test_a_rubric_given_where_the_judge_model_goes_says_the_order(simulated):
    """judge("Is it polite?") read the rubric as a model name: "Unknown model 'Is it polite?'",
    with the list of aliases. It now says that the model comes first, and how to write it."""
    with pytest.raises(llmcells.ConfigError) as err:
        llmcells.judge("Is the answer correct and polite?")
    assert "judge() takes the judge's model first, then the rubric" in str(err.value)
    assert "judge(rubric='Is the answer correct and polite?')" in str(err.value)
    assert llmcells.judge("openai:gpt-6-luna").model == "openai:gpt-6-luna"


def test_a_comparison_prints_each_answer_under_its_model(simulated):
    """print(comparison) in a script dumped the dataclass (every field of every Result); it now
    reads like the terminal's blocks: a line per model with its status, then its answer."""
    c = llmcells.run(llmcells.compare("Say hi", ["chatgpt", "claude"], display=False))
    text = str(c)
    assert text.startswith(f"── {c[0].model} · ok\n{c[0].text.rstrip()}")
    assert f"\n\n── {c[1].model} · ok\n" in text and "Result(" not in text
