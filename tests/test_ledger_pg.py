"""The shared ledger in PostgreSQL (ledger_pg.py) against a real server started from the Debian
package: writes from several processes, an outage mid-run, migrations, roles, and the same
answers as the SQLite ledger."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
import warnings
from pathlib import Path

import pytest

import llmcells
from llmcells import ledger, ledger_sqlite

sys.path.insert(0, str(Path(__file__).parent))
import pg_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

if pg_server.binaries() is None and not os.environ.get("LLMCELLS_REQUIRE_POSTGRES"):
    pytest.skip("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin "
                "(apt-get install postgresql)", allow_module_level=True)
psycopg = pytest.importorskip("psycopg", reason="the postgres extra is not installed")


@pytest.fixture(scope="module")
def server():
    s = pg_server.PgServer().start()
    yield s
    s.destroy()


@pytest.fixture
def dsn(server, request):
    """A fresh database, set as the ledger for this test."""
    name = "t_" + uuid.uuid4().hex[:10]
    url = server.new_db(name)
    llmcells.configure(ledger=url)
    yield url
    llmcells.configure(ledger=None)
    from llmcells import ledger_pg

    ledger_pg.close()


def _server_rows(url: str, sql: str = "SELECT count(*), count(DISTINCT call_id) FROM llmcells_calls"):
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchone()


def _asks(n: int, model: str = "chatgpt") -> list:
    async def go():
        return [await llmcells.ask(f"hello {i}", model=model, display=False) for i in range(n)]

    return llmcells.run(go())


def test_rows_go_to_postgres_with_who_and_where(simulated, dsn):
    llmcells.configure(project="alpha")
    results = _asks(3)
    assert all(r.ok for r in results)
    assert _server_rows(dsn) == (3, 3)
    assert not (ledger.path()).exists()   # nothing went to the local SQLite ledger
    df = llmcells.usage()
    assert list(df["call_id"]) == [r.call_id for r in results][::-1]  # newest first
    assert set(df["project"]) == {"alpha"}
    assert df["user"].iloc[0] and df["host"].iloc[0]
    by_project = llmcells.costs(by="project", include_simulated=True)
    assert list(by_project["project"]) == ["alpha"] and by_project["calls"].iloc[0] == 3
    by_user = llmcells.costs(by="user", include_simulated=True)
    assert by_user["calls"].sum() == 3
    assert llmcells.costs(by="project").empty   # simulated calls are not real spend
    left = llmcells.costs(by="project")          # and say so, as the SQLite ledger does
    assert left.attrs["simulated_left_out"] == 3 and "3 simulated calls left out" in left.attrs["note"]
    assert llmcells.costs(by="project", include_simulated=True).attrs["simulated_left_out"] == 0


def test_costs_on_the_server_match_the_sqlite_ledger(simulated, dsn, monkeypatch):
    _asks(4, "chatgpt")
    _asks(3, "claude")
    cols = ", ".join(f'"{c}"' for c in ledger.COLUMNS)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(f"SELECT {cols} FROM llmcells_calls").fetchall()
    assert len(rows) == 7
    pg = llmcells.costs(by=["model", "day"], include_simulated=True)
    filtered = llmcells.costs(by="model", include_simulated=True, model="claude")
    llmcells.configure(ledger=None)          # the same rows in SQLite
    ledger.insert_rows(rows)
    lite = llmcells.costs(by=["model", "day"], include_simulated=True)
    import pandas as pd

    pd.testing.assert_frame_equal(pg, lite, check_exact=False, rtol=1e-9)
    assert list(filtered["model"]) == list(llmcells.costs(by="model", include_simulated=True,
                                                          model="claude")["model"])


_WRITER = textwrap.dedent("""
    import sys, llmcells
    import httpx, openai  # noqa: F401  (imported before the simulator's threads start)
    llmcells.simulate()
    llmcells.configure(ledger=sys.argv[1], project=sys.argv[2])
    async def go():
        for i in range(100):
            r = await llmcells.ask(f"{sys.argv[2]} {i}", model="chatgpt", display=False)
            assert r.ok, r.error
    llmcells.run(go())
    print("done")
""")


def test_two_processes_write_at_once_and_a_third_reads_all(dsn, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, dsn, name], env={
                 **env, "LLMCELLS_HOME": str(tmp_path / name)}, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True) for name in ("p1", "p2")]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
    reader = ("import sys, llmcells\n"
              "llmcells.configure(ledger=sys.argv[1])\n"
              "df = llmcells.usage()\n"
              "print(len(df), df['call_id'].nunique(), sorted(df['project'].value_counts().items()))\n")
    out = subprocess.run([sys.executable, "-c", reader, dsn], env={
        **env, "LLMCELLS_HOME": str(tmp_path / "p3")}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "200 200 [('p1', 100), ('p2', 100)]"


def test_server_stopped_and_restarted_mid_run_loses_nothing(simulated, dsn, server):
    first = _asks(5)
    server.stop()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        during = _asks(6)
        df = llmcells.usage()          # the journal's rows still show, with a warning
    behind = [str(w.message) for w in seen if issubclass(w.category, ledger.LedgerWarning)]
    assert sum("copied up once it answers again" in m for m in behind) == 1  # one warning
    assert any("may be incomplete" in m for m in behind)
    assert set(df["call_id"]) == {r.call_id for r in during}  # the journal's rows still show
    server.start()
    import time

    from llmcells import ledger_pg

    time.sleep(ledger_pg._RETRY_S)     # the server is tried again at most this often
    after = _asks(4)                   # the first write once it is back copies the journal up
    assert _server_rows(dsn) == (15, 15)
    with psycopg.connect(dsn) as conn:
        ids = {r[0] for r in conn.execute("SELECT call_id FROM llmcells_calls")}
    assert ids == {r.call_id for r in first + during + after}
    with sqlite3.connect(ledger_pg.backend(dsn).journal()) as j:
        assert j.execute("SELECT count(*) FROM calls").fetchone()[0] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", ledger.LedgerWarning)   # back: no more warnings
        assert len(llmcells.usage()) == 15


def test_a_busy_kernel_copies_the_journal_up_soon_after_the_server_is_back(simulated, dsn, server,
                                                                           monkeypatch):
    """Each row written while the server was away pushed the next try back by _RETRY_S, so a
    kernel writing more often than that never tried the server again: every row of a long batch
    stayed in the journal, and usage() said "can't be reached" with the server up."""
    import time

    from llmcells import ledger_pg

    monkeypatch.setattr(ledger_pg, "_RETRY_S", 0.5)
    first = _asks(1)
    server.stop()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ledger.LedgerWarning)
        during = _asks(2)
        server.start()
        after, deadline = [], time.monotonic() + 6
        while ledger_pg.backend(dsn)._pending() and time.monotonic() < deadline:
            after += _asks(1)
            time.sleep(0.1)  # a call every ~0.1-0.2 s: more often than _RETRY_S
    assert ledger_pg.backend(dsn)._pending() == [], "the journal was never copied up"
    with psycopg.connect(dsn) as conn:
        ids = {r[0] for r in conn.execute("SELECT call_id FROM llmcells_calls")}
    assert ids == {r.call_id for r in first + during + after}


def test_a_wrong_password_says_so_not_that_the_server_cant_be_reached(simulated, server):
    """A server that refuses the password answers: "can't be reached ... copied up once it
    answers again" sent the user looking for a network fault that wasn't there."""
    db, user = "t_" + uuid.uuid4().hex[:10], "pw_" + uuid.uuid4().hex[:8]
    server.new_db(db)
    server.sql(f"CREATE ROLE {user} LOGIN PASSWORD 'right-pass-7'")
    hba = server.data / "pg_hba.conf"  # this role alone signs in with a password (the rest: trust)
    hba.write_text(f"host all {user} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    server.sql("SELECT pg_reload_conf()")
    llmcells.configure(ledger=server.dsn(db, user=user, password="wrong-pass-7"))
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            r = _asks(1)[0]
        lines = [str(w.message) for w in seen if issubclass(w.category, ledger.LedgerWarning)]
        assert r.ok and len(lines) == 1, lines
        assert "refused the connection" in lines[0] and "check the URL's user and password" in lines[0]
        assert "can't be reached" not in lines[0] and "wrong-pass-7" not in lines[0]
    finally:
        llmcells.configure(ledger=None)
        from llmcells import ledger_pg

        ledger_pg.close()


def test_a_server_restart_between_calls_is_no_outage(simulated, dsn, server):
    """The kernel's connection died with the restart (as when the server ends an idle session):
    the next row goes up on a new connection, not to the journal with a warning."""
    from llmcells import ledger_pg

    first = _asks(1)
    server.stop()
    server.start()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ledger.LedgerWarning)
        after = _asks(1)
        assert len(llmcells.usage()) == 2
    assert ledger_pg.backend(dsn)._pending() == []
    with psycopg.connect(dsn) as conn:
        ids = {r[0] for r in conn.execute("SELECT call_id FROM llmcells_calls")}
    assert ids == {r.call_id for r in first + after}


def test_a_ledger_of_a_newer_llmcells_keeps_the_rows_and_says_to_upgrade(simulated, dsn):
    """A teammate's newer llmcells moved the schema on: this one's calls are not lost on the
    ledger's thread (where its ConfigError was swallowed), but kept in the journal with one
    warning saying to upgrade, and copied up once the ledger can be used."""
    from llmcells import ledger_pg

    _asks(1)
    ledger_pg.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO llmcells_schema (version) VALUES (%s)", (ledger_pg.VERSION + 1,))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        kept = _asks(2)
    said = [str(w.message) for w in seen if issubclass(w.category, ledger.LedgerWarning)]
    assert len(said) == 1 and "upgrade llmcells" in said[0]
    b = ledger_pg.backend(dsn)
    assert {r[1] for r in b._pending()} == {r.call_id for r in kept}
    with pytest.raises(llmcells.ConfigError, match="upgrade llmcells"):
        llmcells.usage()
    with psycopg.connect(dsn, autocommit=True) as conn:   # (as if this llmcells were upgraded)
        conn.execute("DELETE FROM llmcells_schema WHERE version > %s", (ledger_pg.VERSION,))
    assert b.sync() == 0
    assert _server_rows(dsn) == (3, 3)


def test_rows_kept_for_one_database_never_go_to_another(simulated, server, dsn):
    """Rows waiting for an unreachable ledger stay in its own journal: configuring another
    ledger afterwards does not copy them into that one."""
    from llmcells import ledger_pg

    port = pg_server._free_port()      # nothing listens there
    away = f"postgresql://bob@127.0.0.1:{port}/team_a"
    llmcells.configure(ledger=away)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ledger.LedgerWarning)
        waiting = _asks(2)
    assert ledger_pg.backend(away).sync() == 2
    llmcells.configure(ledger=dsn)
    mine = _asks(1)
    with psycopg.connect(dsn) as conn:
        ids = {r[0] for r in conn.execute("SELECT call_id FROM llmcells_calls")}
    assert ids == {mine[0].call_id}
    assert ledger_pg.backend(away).sync() == 2   # still waiting for their own server
    assert {r.call_id for r in waiting} == {r[1] for r in ledger_pg.backend(away)._pending()}


def test_batch_with_the_server_stopped_mid_batch(simulated, dsn, server):
    import threading

    from llmcells import ledger_pg

    simulated.configure(ttft=0.05)
    with psycopg.connect(dsn, autocommit=True) as conn:
        ledger_pg.migrate(conn)        # the outage thread counts rows from the start
    stop_at = threading.Event()

    def outage():
        import time

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if _server_rows(dsn)[0] >= 10:
                break
            time.sleep(0.02)
        server.stop()
        time.sleep(1.0)
        server.start()
        stop_at.set()

    t = threading.Thread(target=outage)
    t.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ledger.LedgerWarning)
        frame = llmcells.run(llmcells.batch([f"q{i}" for i in range(60)], ["chatgpt"],
                                            concurrency=2, display=False))
    t.join()
    assert stop_at.is_set() and len(frame) == 60

    assert ledger_pg.backend(dsn).sync() == 0     # the journal copied up once it is back
    assert _server_rows(dsn) == (60, 60)


def test_migrations_from_empty_and_from_the_previous_version(server):
    from llmcells import ledger_pg

    url = server.new_db("mig_" + uuid.uuid4().hex[:8])
    with psycopg.connect(url, autocommit=True) as conn:
        assert ledger_pg.migrate(conn, target=1) == 0          # empty -> version 1
        cols = [c for c in ledger_pg._V1_COLUMNS]
        conn.execute("INSERT INTO llmcells_calls (ts, call_id, model, status) VALUES "
                     "(1.5e9, 'old-row', 'openai:gpt-4.1-mini', 'ok')")
        have = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name='llmcells_calls'")}
        assert have == set(cols) and "project" not in have
    llmcells.configure(ledger=url)
    try:
        df = llmcells.usage()                           # opening it migrates 1 -> VERSION
        assert list(df["call_id"]) == ["old-row"] and df["project"].isna().all()
        with psycopg.connect(url) as conn:
            versions = [r[0] for r in conn.execute("SELECT version FROM llmcells_schema ORDER BY 1")]
            assert versions == list(range(1, ledger_pg.VERSION + 1))
            assert ledger_pg.migrate(conn) == ledger_pg.VERSION   # nothing left to do
    finally:
        llmcells.configure(ledger=None)
        ledger_pg.close()
    fresh = server.new_db("mig_" + uuid.uuid4().hex[:8])
    with psycopg.connect(fresh, autocommit=True) as conn:
        assert ledger_pg.migrate(conn) == 0                     # empty -> current in one go
        have = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name='llmcells_calls'")}
        assert have == set(ledger.COLUMNS) | {"day"}   # day: stored, for costs(by="day")


def test_migration_from_version_2_indexes_user_and_project(simulated, server):
    """Version 3 adds covering indexes for costs(by="user") and costs(by="project") to a
    version 2 ledger that already has rows; its rows keep their who-and-where."""
    from llmcells import ledger_pg

    url = server.new_db("mig_" + uuid.uuid4().hex[:8])
    with psycopg.connect(url, autocommit=True) as conn:
        assert ledger_pg.migrate(conn, target=2) == 0
        conn.execute('INSERT INTO llmcells_calls (ts, call_id, model, status, "user", project, '
                     "cost_usd, latency_s) VALUES (1.5e9, 'v2-a', 'openai:gpt-4.1-mini', 'ok', "
                     "'ann', 'alpha', 0.5, 1.0), (1.5e9, 'v2-b', 'openai:gpt-4.1-mini', 'ok', "
                     "'bob', 'alpha', 0.25, 3.0)")
        assert conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname = "
                            "'llmcells_calls_user'").fetchone()[0] == 0
    llmcells.configure(ledger=url)
    try:
        by_user = llmcells.costs(by="user")                     # opening it migrates 2 -> 3
        assert dict(zip(by_user["user"], by_user["cost_usd"])) == {"ann": 0.5, "bob": 0.25}
        by_project = llmcells.costs(by="project")
        assert list(by_project["project"]) == ["alpha"]
        assert by_project["calls"].iloc[0] == 2 and by_project["latency_p50"].iloc[0] == 2.0
        with psycopg.connect(url) as conn:
            assert [r[0] for r in conn.execute(
                "SELECT version FROM llmcells_schema ORDER BY 1")] == [1, 2, 3]
            indexes = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes "
                                        "WHERE tablename = 'llmcells_calls'").fetchall())
    finally:
        llmcells.configure(ledger=None)
        ledger_pg.close()
    for key in ("user", "project"):       # covering: costs() reads the index, not the table
        assert "INCLUDE (status" in indexes[f"llmcells_calls_{key}"], indexes


def test_insert_only_writer_and_read_only_reader_roles(simulated, server):
    """The GRANTs of docs/shared-ledger.md: the writer adds rows and can read none; the reader
    reads and can add none."""
    from llmcells import ledger_pg

    name = "roles_" + uuid.uuid4().hex[:8]
    admin = server.new_db(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        ledger_pg.migrate(conn)
    doc = (ROOT / "docs" / "shared-ledger.md").read_text()
    grants = doc.split("```sql", 1)[1].split("```", 1)[0].replace("llmcells_db", name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(grants)
    writer = server.dsn(name, user="llmcells_writer", password="writer-secret-pw")
    reader = server.dsn(name, user="llmcells_reader", password="reader-secret-pw")
    llmcells.configure(ledger=writer)
    try:
        assert _asks(2)[0].ok
        # the writer asking for usage() is told its role can't read, in one line; the server
        # is not taken for away, so the next row goes straight up, not to the journal
        with warnings.catch_warnings():
            warnings.simplefilter("error", ledger.LedgerWarning)
            with pytest.raises(llmcells.ConfigError, match="can't be read by this role") as err:
                llmcells.usage()
            assert "writer-secret-pw" not in str(err.value) and "\n" not in str(err.value)
            assert _asks(1)[0].ok
        assert ledger_pg.backend(writer)._pending() == []
    finally:
        llmcells.configure(ledger=None)
        ledger_pg.close()
    assert _server_rows(admin) == (3, 3)
    with psycopg.connect(writer) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM llmcells_calls")
    with psycopg.connect(reader) as conn:
        assert conn.execute("SELECT count(*) FROM llmcells_calls").fetchone()[0] == 3
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM llmcells_calls")


def test_a_writer_role_meeting_an_older_schema_keeps_its_rows_until_the_owner_upgrades(
        simulated, server):
    """After an llmcells upgrade, a writer role may not migrate the tables: its calls wait in
    the journal, one warning says to run llmcells once as the owner, and they go up after."""
    from llmcells import ledger_pg

    name = "old_" + uuid.uuid4().hex[:8]
    admin = server.new_db(name)
    role = f"w_{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        ledger_pg.migrate(conn, target=ledger_pg.VERSION - 1)
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'w-secret-pw'")
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT ON llmcells_schema TO {role}")
        conn.execute(f"GRANT INSERT ON llmcells_calls TO {role}")
    writer = server.dsn(name, user=role, password="w-secret-pw")
    llmcells.configure(ledger=writer)
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            kept = _asks(1)
        said = [str(w.message) for w in seen if issubclass(w.category, ledger.LedgerWarning)]
        assert len(said) == 1 and "as the database's owner" in said[0]
        assert "w-secret-pw" not in said[0]
        b = ledger_pg.backend(writer)
        assert [r[1] for r in b._pending()] == [kept[0].call_id]
        with psycopg.connect(admin, autocommit=True) as conn:
            ledger_pg.migrate(conn)
        assert b.sync() == 0
    finally:
        llmcells.configure(ledger=None)
        ledger_pg.close()
    assert _server_rows(admin) == (1, 1)


def test_the_password_is_never_shown(simulated, tmp_path):
    from llmcells import ledger_pg

    assert ledger_pg.mask("postgresql://bob:s3cr3t@db:5432/x") == "postgresql://bob:***@db:5432/x"
    assert "s3cr3t" not in ledger_pg.mask("host=db password=s3cr3t user=bob")
    with pytest.raises(llmcells.ConfigError, match=r"mysql://bob:\*\*\*@db/x"):
        llmcells.configure(ledger="mysql://bob:s3cr3t@db/x")
    shown = llmcells.configure(ledger="postgresql://bob:s3cr3t@db/x")
    assert "s3cr3t" not in repr(shown) and "bob:***@db" in repr(shown)
    assert "s3cr3t" not in str(llmcells.configure().shown())
    port = pg_server._free_port()      # nothing listens there
    llmcells.configure(ledger=f"postgresql://bob:s3cr3t-pw@127.0.0.1:{port}/x")
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            r = _asks(1)[0]
            df = llmcells.usage()
        assert r.ok and list(df["call_id"]) == [r.call_id]     # kept in the journal, shown
        text = " ".join(str(w.message) for w in seen)
        assert "bob:***@127.0.0.1" in text and "s3cr3t" not in text
        # a % that starts no escape: libpq's error quotes the password itself
        llmcells.configure(ledger=f"postgresql://bob:s3cr%ZZt-pw@127.0.0.1:{port}/x")
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            r = _asks(1)[0]
        text = " ".join(str(w.message) for w in seen)
        assert r.ok and "percent-encoded" in text and "s3cr" not in text
        with pytest.raises(Exception) as err:
            ledger.insert_rows([ledger.row_from_result(r, prompt="hi")])
        assert "s3cr" not in str(err.value) and "s3cr" not in repr(err.value.__cause__)
    finally:
        llmcells.configure(ledger=None)


def test_costs_during_an_outage_warns_once(simulated, tmp_path):
    """costs(include_simulated=True) reads the server twice; each read warned that the ledger
    was behind, so one call said it twice."""
    port = pg_server._free_port()      # nothing listens there
    llmcells.configure(ledger=f"postgresql://bob@127.0.0.1:{port}/x")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _asks(1)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            llmcells.costs(include_simulated=True)
        behind = [w for w in seen if "is behind" in str(w.message)]
        assert len(behind) == 1, [str(w.message) for w in seen]
    finally:
        llmcells.configure(ledger=None)
        from llmcells import ledger_pg

        ledger_pg.close()


def test_an_old_sqlite_ledger_gains_the_new_columns(simulated):
    old = [c for c in ledger_sqlite.SCHEMA if c[0] not in ("user", "host", "project", "path")]
    ledger.path().parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(ledger.path()) as conn:
        conn.execute("CREATE TABLE calls (" + ", ".join(f"{c} {t}" for c, t, _ in old) + ")")
        conn.execute("INSERT INTO calls (ts, call_id, model, status) VALUES (1.5e9, 'old', 'm', 'ok')")
    llmcells.configure(project="beta")
    r = _asks(1)[0]
    df = llmcells.usage()
    assert list(df["call_id"]) == [r.call_id, "old"]  # newest first
    assert df["project"].iloc[0] == "beta" and df["project"].iloc[1] is None
    assert list(llmcells.costs(by="project", include_simulated=True)["calls"]) == [1, 1]


def test_a_forked_child_never_uses_its_parents_connection(simulated, dsn):
    """After os.fork() the child opens its own server connection: the inherited one belongs to
    the parent's session (a query from both would interleave on one socket, and the child closing
    it would end the parent's session)."""
    from llmcells import ledger_pg

    b = ledger_pg.backend(dsn)
    (row,) = [tuple(r) for r in _ledger_rows(1)]
    b.record([row])                               # the parent's connection is open
    parent_pid = b.conn.info.backend_pid
    pid = os.fork()
    if pid == 0:                                  # the child: write, close, leave
        code = 1
        try:
            (child_row,) = _ledger_rows(1)
            b.record([child_row])
            code = 0 if b.conn is not None and b.conn.info.backend_pid != parent_pid else 3
            ledger_pg.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", ledger.LedgerWarning)   # the parent's session is intact
        b.record([tuple(_ledger_rows(1)[0])])
    assert b.conn.info.backend_pid == parent_pid
    assert _server_rows(dsn) == (3, 3)


def _ledger_rows(n: int) -> list[tuple]:
    """n rows in COLUMNS order, as a call would leave them (the schema's defaults elsewhere)."""
    import time

    defaults = {c: (sql.split("DEFAULT ", 1)[1].strip("'") if "DEFAULT" in sql else None)
                for c, sql, _ in ledger_sqlite.SCHEMA}
    defaults = {c: int(v) if v is not None and v.isdigit() else v for c, v in defaults.items()}
    defaults.update(ts=time.time(), model="openai:gpt-6-luna", status="ok", simulated=1)
    return [tuple({**defaults, "call_id": uuid.uuid4().hex}[c] for c in ledger.COLUMNS)
            for _ in range(n)]


def test_an_unknown_cost_is_null_on_the_server_as_in_sqlite(dsn):
    """A NaN cost (price unknown) given to insert_rows is stored as NULL, as SQLite stores it:
    costs() counts the call as unpriced instead of summing to NaN."""
    import math

    (row,) = _ledger_rows(1)
    i = ledger.COLUMNS.index("cost_usd")
    ledger.insert_rows([(*row[:i], math.nan, *row[i + 1:])])
    assert _server_rows(dsn, "SELECT count(*), count(cost_usd) FROM llmcells_calls") == (1, 0)
    out = llmcells.costs(by="model", include_simulated=True)
    assert out["unpriced_calls"].iloc[0] == 1 and math.isnan(out["cost_usd"].iloc[0])


def test_a_nul_character_in_a_prompt_neither_loses_the_row_nor_blocks_the_others(simulated, dsn):
    """PostgreSQL text can't hold NUL, which SQLite keeps and a prompt read from a file may
    carry: the row went to the journal under a "can't be reached" warning, and every later row
    queued behind it there for ever. Now the NUL is stored as U+FFFD and nothing waits."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ledger.LedgerWarning)
        results = llmcells.run(llmcells.ask("read this: a\x00b", model="chatgpt", display=False)), *_asks(2)
    assert all(r.ok for r in results)
    assert _server_rows(dsn) == (3, 3)
    with psycopg.connect(dsn) as conn:
        (prompt,) = conn.execute("SELECT prompt_preview FROM llmcells_calls WHERE call_id = %s",
                                 (results[0].call_id,)).fetchone()
    assert prompt == "read this: a\ufffdb"


def test_a_row_the_server_refuses_is_set_aside_and_the_rest_go_up(simulated, dsn):
    """A row the server refuses as data (here a constraint a team's DBA added) is kept in a
    local file with one warning naming it; the rows before and after it reach the server, and
    the journal doesn't keep offering the bad one first."""
    from llmcells import ledger_pg

    _asks(1)  # the schema exists
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE llmcells_calls ADD CONSTRAINT no_secrets "
                     "CHECK (prompt_preview NOT LIKE '%%classified%%')")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        bad = llmcells.run(llmcells.ask("classified plans", model="chatgpt", display=False))
        after = _asks(3)
    assert bad.ok and all(r.ok for r in after)
    assert _server_rows(dsn) == (4, 4)
    lines = [str(w.message) for w in seen if issubclass(w.category, ledger.LedgerWarning)]
    refused = ledger_pg.backend(dsn).refused_file()
    assert len(lines) == 1 and "refused 1 row" in lines[0] and str(refused) in lines[0], lines
    assert "no_secrets" in lines[0]
    with sqlite3.connect(refused) as kept:
        assert kept.execute("SELECT call_id FROM calls").fetchall() == [(bad.call_id,)]
    assert ledger_pg.backend(dsn).sync() == 0  # nothing waits in the journal


def test_a_locked_table_sends_rows_to_the_journal_instead_of_hanging(simulated, dsn, monkeypatch):
    """A table held by another session (a long migration, a stuck transaction) made every
    write wait without end: the call never returned. A write now waits at most the lock
    timeout, its row goes to the journal, and it is copied up once the lock is gone."""
    import threading

    from llmcells import ledger_pg

    _asks(1)
    ledger_pg.close()
    monkeypatch.setattr(ledger_pg, "LOCK_TIMEOUT_MS", 300, raising=False)  # read when the connection opens
    locker = psycopg.connect(dsn)
    locker.execute("LOCK TABLE llmcells_calls IN ACCESS EXCLUSIVE MODE")
    got: list = []
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        t = threading.Thread(target=lambda: got.extend(_asks(2)), daemon=True)
        t.start()
        t.join(30)
    alive = t.is_alive()
    locker.rollback()
    locker.close()
    assert not alive, "the calls waited on the locked table"
    assert len(got) == 2 and all(r.ok for r in got)
    assert ledger_pg.backend(dsn).sync() == 0
    assert _server_rows(dsn) == (3, 3)
