"""Replay in one process, on the simulator: recorded answers come back at $0 for the same request
only, with the original figures kept; refresh makes new calls; the file is small JSON Lines."""

from __future__ import annotations

import json

import pytest

import llmcells
from llmcells import replay
from llmcells.config import settings
from llmcells.calls import make_plan
from llmcells.session import session


@pytest.fixture
def replaying(simulated, tmp_path):
    settings.update(replay=True, replay_path=str(tmp_path / "replay.jsonl"))
    yield simulated
    session.reset()  # the refresh marks and the file's index


def ask(prompt, model="chatgpt", **kw):
    kw.setdefault("display", False)
    return llmcells.run(llmcells.ask(prompt, model, **kw))


def compare(prompt, models, **kw):
    kw.setdefault("display", False)
    return llmcells.run(llmcells.compare(prompt, models, **kw))


def test_off_by_default(simulated):
    assert settings.replay is False
    ask("hello")
    ask("hello")
    assert len(simulated.requests) == 2


def test_a_repeated_request_is_replayed_at_no_cost(replaying, tmp_path):
    first = ask("Name three rivers.")
    assert len(replaying.requests) == 1 and not first.replayed and first.cost_usd > 0
    second = ask("Name three rivers.")
    assert len(replaying.requests) == 1, "no new request"
    assert second.replayed and second.text == first.text and second.usage == first.usage
    assert second.cost_usd == 0.0 and second.price_source == "replay"
    assert second.original["cost_usd"] == pytest.approx(first.cost_usd)
    assert second.original["latency_s"] == pytest.approx(first.latency_s)
    assert second.original["call_id"] == first.call_id
    assert second.latency_s < 0.5
    # the ledger: $0, marked replayed, the original figures in their own columns
    u = llmcells.usage().set_index("call_id")
    row = u.loc[second.call_id]
    assert bool(row.replayed) and row.cost_usd == 0.0
    assert row.original_cost_usd == pytest.approx(first.cost_usd)
    assert row.original_latency_s == pytest.approx(first.latency_s)
    assert not bool(u.loc[first.call_id, "replayed"])
    assert llmcells.costs(by="replayed", include_simulated=True).set_index("replayed").loc[True, "cost_usd"] == 0.0
    # the card's metrics line says so
    from llmcells.display._format import metrics_line

    assert "↺ replayed (originally" in metrics_line(second) and "$0 ·" in metrics_line(second)
    # one JSON line per answer, sorted keys, no secrets
    lines = (tmp_path / "replay.jsonl").read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["text"] == first.text and entry["model"] == "openai:gpt-6-luna"
    assert list(entry) == sorted(entry) and "sim-key" not in lines[0]


@pytest.mark.parametrize("change", [
    dict(prompt="Name four rivers."), dict(model="claude"), dict(temperature=0.7),
    dict(system="Answer in French."), dict(max_tokens=20), dict(params={"top_p": 0.5}),
])
def test_any_change_to_the_request_is_a_new_request(replaying, change):
    base = dict(prompt="Name three rivers.", model="openai:gpt-4.1")  # (takes a temperature)
    ask(**base)
    ask(**base)
    assert len(replaying.requests) == 1
    changed = ask(**{**base, **change})
    assert len(replaying.requests) == 2 and not changed.replayed
    again = ask(**{**base, **change})
    assert len(replaying.requests) == 2 and again.replayed


def test_samples_are_recorded_apart(replaying):
    first = compare("Name a colour.", ["openai:gpt-4.1"], repeat=3, temperature=1.0)
    assert len(replaying.requests) == 3
    texts = [r.text for r in first]
    assert len(set(texts)) == 3  # temperature > 0: three different samples
    again = compare("Name a colour.", ["openai:gpt-4.1"], repeat=3, temperature=1.0)
    assert len(replaying.requests) == 3 and [r.text for r in again] == texts
    more = compare("Name a colour.", ["openai:gpt-4.1"], repeat=4, temperature=1.0)
    assert len(replaying.requests) == 4 and [r.replayed for r in more] == [True] * 3 + [False]


def test_refresh_makes_new_calls_and_records_them(replaying):
    ask("Name three rivers.")
    replaying.set_model("gpt-6-luna", text="Nile, Amazon, Danube.")
    fresh = ask("Name three rivers.", refresh=True)
    assert len(replaying.requests) == 2 and not fresh.replayed and fresh.text == "Nile, Amazon, Danube."
    again = ask("Name three rivers.")
    assert again.replayed and again.text == "Nile, Amazon, Danube."
    # `replay refresh`: every call anew, until `replay on`
    print(replay.command(["refresh"]))
    ask("Name three rivers.")
    c = compare("Name three rivers.", ["chatgpt", "gemini"])
    assert len(replaying.requests) == 5 and not any(r.replayed for r in c)
    replay.command(["on"])
    c = compare("Name three rivers.", ["chatgpt", "gemini"])
    assert len(replaying.requests) == 5 and all(r.replayed for r in c)


def test_failed_calls_are_not_recorded(replaying):
    replaying.inject("401", provider="openai", times=1)
    bad = ask("Name three rivers.")
    assert bad.status == "error"
    good = ask("Name three rivers.")
    assert good.ok and not good.replayed and len(replaying.requests) == 2


def test_judge_calls_replay_too(replaying):
    score = llmcells.judge("openai:gpt-4.1", reference="42")
    first = compare("What is 6 * 7?", ["chatgpt", "gemini"], score=score)
    n = len(replaying.requests)
    assert n == 4
    again = compare("What is 6 * 7?", ["chatgpt", "gemini"], score=score)
    assert len(replaying.requests) == n
    assert [r.scores["judge"] for r in again] == [r.scores["judge"] for r in first]
    judged = llmcells.usage(group_id=again.group_id)
    assert set(judged.purpose) == {"answer", "judge"} and (judged.cost_usd == 0).all()
    # the summary and the frontier use what the models cost, not what the replay did
    s = again.summary().set_index("model")
    assert s.loc["openai:gpt-6-luna", "cost_usd_mean"] == pytest.approx(first[0].cost_usd)


def test_the_file_is_read_again_when_another_process_appends(replaying, tmp_path):
    first = ask("Name three rivers.")
    other = tmp_path / "replay.jsonl"
    entry = json.loads(other.read_text().splitlines()[0])
    session.replay_books.clear()  # this process has not read the file yet
    key = replay.key(make_plan("Name two lakes.", "chatgpt"))
    with open(other, "a") as f:  # another kernel recorded an answer meanwhile
        f.write(json.dumps({**entry, "key": key, "text": "Superior, Victoria."}) + "\n")
        f.write('{"key": "broken line')  # and is half way through the next one
    r = ask("Name two lakes.")
    assert r.replayed and r.text == "Superior, Victoria." and len(replaying.requests) == 1
    assert ask("Name three rivers.").text == first.text


def test_compact_keeps_one_line_per_request(replaying, tmp_path):
    ask("Name three rivers.")
    ask("Name three rivers.", refresh=True)
    ask("Name two lakes.")
    path = tmp_path / "replay.jsonl"
    assert len(path.read_text().splitlines()) == 3
    assert replay.compact() == 2
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and [json.loads(x)["key"] for x in lines] == sorted(json.loads(x)["key"] for x in lines)
    assert ask("Name two lakes.").replayed


def test_the_simulator_port_is_not_part_of_the_key(simulated):
    from llmcells import models

    a = make_plan("hi", "chatgpt")
    models.set_simulator("http://127.0.0.1:1")
    b = make_plan("hi", "chatgpt")
    assert replay.key(a) == replay.key(b)


def test_the_magic_switch(replaying, shell, tmp_path, capsys):
    settings.update(replay=False)
    path = tmp_path / "nb.jsonl"
    shell.run_line_magic("llmcells", f"replay on path={path}")
    out = capsys.readouterr().out
    assert "Replay on" in out and str(path) in out and settings.replay
    shell.run_cell_magic("chatgpt", "--no-display -o r1", "Name three rivers.")
    shell.run_cell_magic("chatgpt", "--no-display -o r2", "Name three rivers.")
    assert shell.user_ns["r2"].replayed and len(replaying.requests) == 1
    shell.run_cell_magic("chatgpt", "--no-display --refresh -o r3", "Name three rivers.")
    assert not shell.user_ns["r3"].replayed and len(replaying.requests) == 2
    shell.run_line_magic("llmcells", "replay status")
    assert "holds 1 answer" in capsys.readouterr().out
    shell.run_line_magic("llmcells", "replay off")
    assert not settings.replay and "off" in capsys.readouterr().out


def test_batch_replays_and_refreshes(replaying):
    prompts = ["What is 2 + 2?", "What is 3 + 3?"]
    first = llmcells.run(llmcells.batch(prompts, ["chatgpt", "gemini"], display=False))
    assert len(replaying.requests) == 4 and not first.replayed.any()
    again = llmcells.run(llmcells.batch(prompts, ["chatgpt", "gemini"], display=False))
    assert len(replaying.requests) == 4 and again.replayed.all() and (again.cost_usd == 0).all()
    assert list(again.text) == list(first.text)
    assert list(again.original_cost_usd) == pytest.approx(list(first.cost_usd))
    fresh = llmcells.run(llmcells.batch(prompts, ["chatgpt", "gemini"], display=False, refresh=True))
    assert len(replaying.requests) == 8 and not fresh.replayed.any()
