"""State and lifetime: `session.reset()` forgets everything a session set up (hook callbacks,
replay's refresh marks and file indexes, every SDK client cache), and `%unload_ext llmcells` in a
real kernel leaves no llmcells thread and no llmcells event callback, after which `%load_ext`
works again and a call succeeds."""

from __future__ import annotations

import threading

import pytest

import llmcells
from llmcells import hooks, models, replay
from llmcells.calls import make_plan
from llmcells.config import settings
from llmcells.session import session
from llmcells.testing import Kernel


def _llmcells_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("llmcells") and t.is_alive())


# ----- reset(), in this process --------------------------------------------------------------------


def test_reset_forgets_hooks_replay_marks_and_every_client_cache(simulated, tmp_path):
    seen = []
    llmcells.on("finish", seen.append)
    settings.update(replay=True, replay_path=str(tmp_path / "replay.jsonl"))
    replay.command(["refresh"])
    replay.refresh([make_plan("again", "chatgpt")])
    r = llmcells.run(llmcells.ask("hello", "chatgpt", display=False))
    hooks.flush()
    assert r.ok and len(seen) == 1
    assert session.clients and session.replay_books and session.replay_refresh_all
    session.job_clients[("openai", None, "k")] = object()  # as a provider job's client would be

    session.reset()

    assert not any(session.hooks.values()) and not hooks.active()
    assert session.hooks.keys() == set(hooks.EVENTS)  # still every event: `on` works after
    assert not session.replay_refresh_all and not session.replay_refresh_ids and not session.replay_books
    assert not session.clients and not session.job_clients
    settings.update(replay=False)
    models.set_simulator(simulated.url)  # the switch was reset too: route to the simulator again
    assert llmcells.run(llmcells.ask("hello", "chatgpt", display=False)).ok
    hooks.flush()
    assert len(seen) == 1  # the callback was removed


def test_the_provider_jobs_client_cache_is_the_sessions(simulated):
    from llmcells.batchjobs import core
    from llmcells.models import resolve

    client = core._client(resolve("chatgpt"))
    assert client in session.job_clients.values()
    session.reset()
    assert not session.job_clients
    models.set_simulator(simulated.url)
    assert core._client(resolve("chatgpt")) is not client  # a new one after the reset


def test_stopped_threads_start_again_when_needed(simulated, tmp_path):
    from llmcells import _imports, _loop, ledger

    seen = []
    llmcells.on("finish", seen.append)
    assert llmcells.run(llmcells.ask("one", "chatgpt", display=False)).ok
    hooks.flush()
    _loop.stop()
    hooks.stop()
    ledger.stop()
    _imports.stop()
    stopped = ("llmcells-loop", "llmcells-hooks", "llmcells-ledger", "llmcells-clients")  # (-pool too)
    assert not [n for n in _llmcells_threads() if n.startswith(stopped)]  # (other tests' simulators may run)
    assert llmcells.run(llmcells.ask("two", "chatgpt", display=False)).ok
    hooks.flush()
    assert len(seen) == 2
    assert {"llmcells-loop", "llmcells-hooks"} <= set(_llmcells_threads())
    assert len(llmcells.usage()) == 2  # both rows committed, the one before the stop included


# ----- %unload_ext in a real kernel ----------------------------------------------------------------


CHECK = ("import threading\n"
         "print(repr((sorted(t.name for t in threading.enumerate() if t.name.startswith('llmcells')),"
         " sorted(f'{e}:{getattr(c, \"__module__\", \"\")}' for e, cs in get_ipython().events.callbacks.items()"
         " for c in cs if (getattr(c, '__module__', '') or '').startswith('llmcells')))))")


@pytest.mark.kernel
def test_unload_stops_every_thread_and_load_works_again(tmp_path):
    from llmcells.testing import stream_text

    replay_file = tmp_path / "replay.jsonl"
    with Kernel(tmp_path / "home") as k:
        k.ok("import threading\n_before = {t.name for t in threading.enumerate()}\n"
             "%load_ext llmcells\n"
             "import llmcells\n"
             "sim = llmcells.simulate()\n"
             "seen = []\n"
             "llmcells.on('finish', seen.append)\n"
             "async def on_request(r): seen.append(r.event)\n"
             "llmcells.on('request', on_request)")
        k.ok("df = llmcells.run(llmcells.batch(['a', 'b'], ['chatgpt', 'claude'], cache=True, display=False))\n"
             "assert (df.status == 'ok').all(), df.error.tolist()\n"
             "df = llmcells.run(llmcells.batch(['a', 'b'], ['chatgpt', 'claude'], cache=True, display=False))\n"
             "assert df.cached.all(), df.cached.tolist()\n"
             "assert len(llmcells.run(llmcells.health()))  # (its checks run in the loop's thread pool)",
             timeout=120)
        k.ok(f"%llmcells replay on path={replay_file}")
        k.ok("%%chatgpt\nName a river.", timeout=120)
        k.ok("r = llmcells.run(llmcells.ask('Name a sea.', 'chatgpt', display=False))\n"
             "assert r.ok and not r.replayed, r.error\n"
             "r = llmcells.run(llmcells.ask('Name a sea.', 'chatgpt', display=False))\n"
             "assert r.ok and r.replayed, r.error\n"
             "llmcells.hooks.flush()\n"
             "assert 'request' in seen and len(seen) >= 3, seen", timeout=120)
        threads, events = eval(stream_text(k.ok(CHECK)).strip())
        assert {"llmcells-loop", "llmcells-hooks", "llmcells-clients_0"} <= set(threads), threads
        assert any(t.startswith("llmcells-loop-pool") for t in threads), threads

        k.ok("%unload_ext llmcells", timeout=30)
        threads, events = eval(stream_text(k.ok(CHECK)).strip())
        assert threads == [] and events == [], (threads, events)
        k.ok("_after = {t.name for t in threading.enumerate()}\n"
             "assert _after <= _before, _after - _before  # none left, named llmcells or not")

        k.ok("%load_ext llmcells\n"
             "n = len(seen)\n"
             "r = llmcells.run(llmcells.ask('Name a lake.', 'claude', display=False))\n"
             "assert r.ok and not r.replayed, r.error\n"
             "llmcells.hooks.flush()\n"
             "assert len(seen) == n + 2, seen  # the hooks are kept across the reload\n"
             "assert len(llmcells.usage()) >= 5", timeout=120)
        k.ok("%%claude\nName a sea.", timeout=120)  # the magics too

        # each load warms up again: the clients the last one built went with the stopped loop
        k.ok("from llmcells.session import session\n"
             "llmcells.warmup.wait(60)\n"
             "assert session.clients\n"
             "%unload_ext llmcells\n"
             "assert not session.clients\n"
             "%load_ext llmcells\n"
             "llmcells.warmup.wait(60)\n"
             "assert session.clients, 'the warm-up built no client after the reload'", timeout=90)


def test_unload_removes_llmcells_event_callbacks_and_only_those():
    from IPython.core.events import EventManager, available_events

    from llmcells import magics

    class Shell:  # what unload reads of a shell: its events
        events = EventManager(None, available_events)

    def ours(*args): pass
    def theirs(*args): pass
    ours.__module__ = "llmcells.display.notebook"
    Shell.events.register("post_run_cell", ours)
    Shell.events.register("post_run_cell", theirs)
    magics.unload_ipython_extension(Shell())
    assert Shell.events.callbacks["post_run_cell"] == [theirs]
