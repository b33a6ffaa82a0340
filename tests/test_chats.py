"""Chats against the simulator through the real SDKs: history kept and sent, save / load in a
new process, fork, trim, the context check before sending, file versions, tools in a chat, and
the magics' --chat NAME and %llmcells chats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import llmcells
from llmcells import Chat

SRC = str(Path(__file__).resolve().parents[1] / "src")


def send(chat, prompt):
    return llmcells.run(chat.send(prompt, display=False))


def _user_texts(req):
    body = req.body
    if "messages" in body:
        return [m for m in body["messages"] if m.get("role") in ("user", "assistant")]
    return body["contents"]


@pytest.mark.parametrize("model", ["chatgpt", "claude", "gemini", "openai-responses:gpt-6-luna"])
@pytest.mark.slow
def test_round_trip_save_load_in_a_new_process_send_again(simulated, tmp_path, model):
    chat = Chat(model=model, system="Be brief.")
    r1 = send(chat, "first question")
    assert r1.ok and chat.turns == 1 and [m.role for m in chat.messages] == ["user", "assistant"]
    path = chat.save(tmp_path / "c.json")
    saved = json.loads(path.read_text())
    assert saved["llmcells_chat"] == 1 and saved["model"] == model and saved["system"] == "Be brief."

    child = textwrap.dedent(f"""
        import json, llmcells
        from llmcells import models
        models.set_simulator({simulated.url!r})
        chat = llmcells.Chat.load({str(path)!r})
        r = llmcells.run(chat.send("second question", display=False))
        chat.save({str(path)!r})
        print(json.dumps({{"ok": r.ok, "turns": chat.turns, "text": r.text}}))
    """)
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["ok"] and got["turns"] == 2
    # the second request carried the whole history: question 1, answer 1, question 2
    body = json.dumps(simulated.requests[-1].body, ensure_ascii=False)
    assert "first question" in body and "second question" in body
    assert json.dumps(r1.text, ensure_ascii=False)[1:-1] in body
    assert "Be brief." in body
    again = Chat.load(path)
    assert again.turns == 2 and again.messages[-1].content == got["text"]
    assert again.usage.input_tokens > r1.usage.input_tokens  # usage totals kept across processes
    assert again.requests == 2


def test_fork_and_trim(simulated):
    chat = Chat(model="claude")
    for q in ("one", "two", "three"):
        send(chat, q)
    fork = chat.fork()
    send(fork, "four")
    assert chat.turns == 3 and fork.turns == 4
    assert fork.usage.total_tokens > 0 and fork.requests == 1
    chat.trim(last=1)
    assert [m.content for m in chat.messages if m.role == "user"] == ["three"]
    send(chat, "again")
    msgs = simulated.requests[-1].body["messages"]
    assert [m["content"] for m in msgs if m["role"] == "user"] == ["three", "again"]


def test_a_conversation_longer_than_the_context_is_refused_before_sending(simulated):
    chat = Chat(model="claude", context_window=3000)
    send(chat, "word " * 500)
    n = len(simulated.requests)
    with pytest.raises(llmcells.ConfigError, match=r"trim\(last=\d+\)") as err:
        chat.send("word " * 1000)
    assert "nothing was sent" in str(err.value)
    with pytest.raises(llmcells.ConfigError, match="This prompt alone .* Shorten it"):
        chat.send("word " * 3000)
    assert len(simulated.requests) == n
    chat.trim(last=0)
    assert send(chat, "word " * 1000).ok


def test_the_context_window_comes_from_the_price_data():
    from llmcells.chats import context_window

    assert context_window("claude") >= 100_000


def test_a_failed_answer_does_not_join_the_history(simulated):
    chat = Chat(model="chatgpt")
    send(chat, "hello")
    simulated.inject("400", provider="openai", times=1)
    r = send(chat, "broken")
    assert not r.ok and chat.turns == 1


def test_files_from_other_versions(tmp_path):
    old = tmp_path / "v1.json"  # the oldest format, with only the fields it requires
    old.write_text(json.dumps({"llmcells_chat": 1, "model": "claude",
                               "messages": [{"role": "user", "content": "hi"},
                                            {"role": "assistant", "content": "hello"}]}))
    chat = Chat.load(old)
    assert chat.turns == 1 and chat.usage.total_tokens == 0
    newer = tmp_path / "v9.json"
    newer.write_text(json.dumps({"llmcells_chat": 9, "model": "claude", "messages": []}))
    with pytest.raises(llmcells.ConfigError, match="newer llmcells"):
        Chat.load(newer)
    other = tmp_path / "x.json"
    other.write_text(json.dumps({"model": "claude"}))
    with pytest.raises(llmcells.ConfigError, match="not a saved chat"):
        Chat.load(other)
    with pytest.raises(llmcells.ConfigError, match="No chat file"):
        Chat.load(tmp_path / "missing.json")


@pytest.mark.parametrize("change, named", [
    ({"messages": "hi"}, "messages is str, not a list"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role is 'robot'"),
    ({"messages": [{"role": "user"}]}, "messages[0].content is missing"),
    ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content is int, not text"),
    ({"messages": ["hi"]}, "messages[0] is str, not an object"),
    ({"messages": [{"role": "tool", "content": "21"}]}, "messages[0].tool_call_id is missing"),
    ({"messages": [{"role": "assistant", "content": "", "tool_calls": "f()"}]}, "messages[0].tool_calls"),
    ({"model": ["claude"]}, "model is list, not text"),
    ({"tools": "get_weather"}, "tools is not a list"),
    ({"usage": {"input_tokens": "many"}}, "usage.input_tokens is 'many'"),
    ({"options": {"temperature": "hot"}}, "options.temperature is 'hot'"),
    ({"cost_usd": "1$"}, "cost_usd is '1$'"),
])
def test_a_malformed_chat_file_is_refused_in_one_line_naming_the_problem(tmp_path, change, named):
    """A chat file is input from elsewhere: a wrong type, an unknown role or missing content is
    refused with llmcells' own error, one line saying which field is wrong (a string in
    `messages` raised a raw AttributeError; a bad role or a missing content loaded silently)."""
    path = tmp_path / "bad.json"
    data = {"llmcells_chat": 1, "model": "claude", "messages": [{"role": "user", "content": "hi"}]}
    path.write_text(json.dumps({**data, **change}))
    with pytest.raises(llmcells.ConfigError) as info:
        Chat.load(path)
    message = str(info.value)
    assert named in message and str(path) in message and "\n" not in message, message


def test_save_makes_missing_folders_or_says_in_one_line_it_cannot(tmp_path):
    chat = Chat(model="claude", messages=[llmcells.Message("user", "hi")])
    path = chat.save(tmp_path / "new" / "deeper" / "c.json")
    assert Chat.load(path).messages == chat.messages
    assert not list(path.parent.glob("*.tmp"))
    (tmp_path / "a-file").write_text("")
    with pytest.raises(llmcells.ConfigError) as info:
        chat.save(tmp_path / "a-file" / "c.json")  # its folder would be a file
    message = str(info.value)
    assert message.startswith(f"Cannot save the chat to {tmp_path / 'a-file' / 'c.json'}: ")
    assert ".tmp" not in message and "\n" not in message


def test_a_chat_with_tools_keeps_the_calls_in_its_history(simulated, tmp_path):
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    chat = Chat(model="claude", tools=[add])
    r = send(chat, 'call add({"a": 2, "b": 3})')
    assert r.text == "Tool results: add -> 5"
    assert [m.role for m in chat.messages] == ["user", "assistant", "tool", "assistant"]
    assert chat.requests == 2
    path = chat.save(tmp_path / "t.json")
    loaded = Chat.load(path, tools=[add])
    assert loaded.messages == chat.messages
    send(loaded, "and now?")
    body = json.dumps(simulated.requests[-1].body)
    assert "tool_use" in body and "tool_result" in body


def test_magics_chat_name_and_the_chats_list(simulated, shell):
    shell.user_ns["my_tools"] = []
    shell.run_cell_magic("claude", "--chat trip --no-display", "Plan a trip.")
    shell.run_cell_magic("claude", "--chat trip --no-display", "Shorter, please.")
    shell.run_cell_magic("chatgpt", "--chat other --no-display", "Hello.")
    body = simulated.requests[-2].body
    assert [m["content"] for m in body["messages"] if m["role"] == "user"] == ["Plan a trip.", "Shorter, please."]
    df = shell.run_line_magic("llmcells", "chats")
    assert list(df.chat) == ["trip", "other"]
    assert list(df.turns) == [2, 1] and (df.input_tokens > 0).all()


def test_magics_tools_var(simulated, shell):
    def shout(text: str) -> str:
        """Upper-case text."""
        return text.upper()

    shell.user_ns["tl"] = [shout]
    shell.run_cell_magic("gemini", "--tools tl --no-display -o out", 'call shout({"text": "hey"})')
    assert shell.user_ns["out"].text == "Tool results: shout -> HEY"
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="no variable 'nope'"):
        shell.run_cell_magic("gemini", "--tools nope --no-display", "hi")


def test_reset_forgets_named_chats(simulated, shell, capsys):
    shell.run_cell_magic("claude", "--chat a --no-display", "Hi.")
    shell.run_line_magic("llmcells", "reset")
    assert "Forgot the named chats too." in capsys.readouterr().out
    from llmcells.session import session

    assert session.chats == {}


def test_a_chat_with_a_model_chain_moves_on_and_keeps_one_history(simulated):
    """Chat(model="claude|chatgpt"): while Claude is overloaded ChatGPT answers; the next message
    carries the whole history, whichever model answered before."""
    simulated.set_down("claude-haiku-5-5", "overloaded")
    llmcells.configure(retry_initial_wait=0.01, max_attempts=2)
    chat = llmcells.Chat(model="claude|chatgpt")
    first = llmcells.run(chat.send("What is a p-value?", display=False))
    assert first.ok and first.model == "openai:gpt-6-luna"
    assert [a["error_kind"] for a in first.attempts_by_model][:1] == ["overloaded"]
    simulated.set_down("claude-haiku-5-5", None)
    second = llmcells.run(chat.send("And a confidence interval?", display=False))
    assert second.ok and second.model == "anthropic:claude-haiku-5-5"
    sent = [r.body["messages"] for r in simulated.requests if r.provider == "anthropic"][-1]
    assert [m["content"] for m in sent][:3] == ["What is a p-value?", first.text,
                                                 "And a confidence interval?"]
    with pytest.raises(llmcells.ConfigError):
        llmcells.Chat(model="claude|no-such-model")
