"""The shared ledger: the `calls` rows in PostgreSQL, with a local SQLite journal while it is away.

Selected by `LLMCELLS_LEDGER=postgresql://user@host/db` or `configure(ledger=...)`; ledger.py
hands it rows to write and queries to answer (`record`, `insert`, `query`, `costs`). It never
imports ledger.py: the columns and the journal's SQLite writes are ledger_sqlite.py's. psycopg 3
(the `postgres` extra) is imported only here.

- Schema: table `llmcells_calls` (call_id the primary key: ids are random UUIDs, unique across
  machines) and `llmcells_schema` (the version). `migrate()` brings an empty database or an
  older version up to `VERSION`, in one transaction, under an advisory lock (many kernels may
  start at once).
- Same promise as SQLite: a call counts as finished once its row is committed, on the server or,
  while the server can't be reached, in `$LLMCELLS_HOME/ledger-journal-<digest>.sqlite` (one per
  database: its rows only ever go to the server they were meant for). The journal is
  copied up (INSERT ... ON CONFLICT DO NOTHING, then deleted locally) as soon as the server
  answers again, so no row is lost or doubled. One LedgerWarning says the ledger is behind;
  while rows wait, usage() adds them from the journal, and usage() and costs() warn that the
  server's figures may be incomplete.
- A connection that died while idle (a server restart) is replaced at once, not taken for an
  outage; a role that may not read (an insert-only writer) gets a ConfigError from usage() and
  costs(), not the warning that the ledger is behind.
- The DSN's password is never shown: `Shared.hide()` (mask(), and the password itself taken out)
  is used in every message.
- A forked child (multiprocessing, os.fork) opens its own connection: the one it inherited
  is the parent's session, and is left untouched.
"""

from __future__ import annotations

import os
import re
import threading
import time
import warnings
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Sequence

from . import ledger_sqlite as lite
from ._log import swallowed
from .errors import ConfigError
from ._loop import import_pandas

TABLE = "llmcells_calls"
VERSION = 3
_JOURNAL = "ledger-journal-{}.sqlite"   # one per database: {} a digest of the masked DSN
_REFUSED = "ledger-refused-{}.sqlite"   # rows the server refused, kept beside the journal
_RETRY_S = 2.0                # while the server is away, try it again at most this often
#: libpq's words for a server that refused the user or password (SQLSTATE 28P01 / 28000)
_AUTH_FAILED = "authentication failed"
_CONNECT_TIMEOUT_S = 3
#: A server that accepts the connection but never answers (a table locked by a long migration, a
#: hung backend, a dead link) must not hold the ledger's writer, or a notebook's usage(), for ever:
#: a statement gives up after STATEMENT_TIMEOUT_MS, a wait for a lock after LOCK_TIMEOUT_MS, and
#: TCP keepalives find a vanished peer. A write that gives up goes to the journal, as in an outage.
STATEMENT_TIMEOUT_MS = 60_000
LOCK_TIMEOUT_MS = 5_000
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 15, "keepalives_interval": 5,
               "keepalives_count": 3}
_LOCK_ID = 0x6C6C6D63         # pg_advisory_xact_lock key of migrations ("llmc")

_SQL_TYPES = {"REAL": "double precision", "INTEGER": "bigint", "TEXT": "text"}
#: the columns of schema version 1 (the ledger before who-and-where)
_V1_COLUMNS = [c for c in lite.COLUMNS if c not in ("user", "host", "project", "path")]


def _q(col: str) -> str:
    return f'"{col}"'


def _coldef(col: str) -> str:
    sql = dict((c, t) for c, t, _ in lite.SCHEMA)[col]
    base, _, rest = sql.partition(" ")
    rest = rest.replace("UNIQUE", "").strip()
    if col == "call_id":
        rest = "PRIMARY KEY"
    return f"{_q(col)} {_SQL_TYPES[base]} {rest}".strip()


_COSTS_INCLUDE = ("status, simulated, cached, input_tokens, output_tokens, cached_input_tokens, "
                  "reasoning_tokens, cost_usd, latency_s, ttft_s")

#: version -> the statements that bring the previous version to it
MIGRATIONS: dict[int, list[str]] = {
    1: [f"CREATE TABLE {TABLE} ({', '.join(_coldef(c) for c in _V1_COLUMNS)})",
        f"CREATE INDEX {TABLE}_ts ON {TABLE} (ts)",
        f"CREATE INDEX {TABLE}_model ON {TABLE} (model)",
        f"CREATE INDEX {TABLE}_group ON {TABLE} (group_id)",
        f"CREATE INDEX {TABLE}_batch ON {TABLE} (batch_id)"],
    2: [f"ALTER TABLE {TABLE} ADD COLUMN {_coldef(c)}" for c in ("user", "host", "project", "path")]
       + [f"CREATE INDEX {TABLE}_project ON {TABLE} (project)",
          # costs(by=["model", "day"]) read from one index, in group order, without the table:
          # the UTC day as a stored column, and what costs() sums carried in the index
          f"ALTER TABLE {TABLE} ADD COLUMN day bigint GENERATED ALWAYS AS "
          "(floor(ts / 86400)::bigint) STORED",
          f"CREATE INDEX {TABLE}_model_day ON {TABLE} (model, day) INCLUDE ({_COSTS_INCLUDE})"],
    # costs(by="user") and costs(by="project") from an index too: without one, a million rows
    # are sorted by the key on disk first (about 1.1 s against 0.55 s; bench_ledger_pg.py)
    3: [f"DROP INDEX IF EXISTS {TABLE}_project",
        f'CREATE INDEX {TABLE}_user ON {TABLE} ("user") INCLUDE ({_COSTS_INCLUDE})',
        f"CREATE INDEX {TABLE}_project ON {TABLE} (project) INCLUDE ({_COSTS_INCLUDE})"],
}


def mask(dsn: str) -> str:
    """dsn with its password replaced by ***, in URL form or key=value form."""
    from .config import mask_dsn

    return mask_dsn(dsn)


def _passwords(dsn: str) -> list[str]:
    """The password of dsn as written and as decoded (URL or key=value form): libpq quotes it in
    some errors (a % that starts no escape, say), where mask() can't recognise it."""
    from urllib.parse import unquote

    found = re.findall(r"://[^:/@\s]*:([^@\s]*)@", dsn)
    found += [v.strip("'") for v in re.findall(r"(?i)password\s*=\s*('[^']*'|\S+)", dsn)]
    found += [unquote(p) for p in found]
    return sorted({p for p in found if p}, key=len, reverse=True)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError("A PostgreSQL ledger needs psycopg 3: pip install 'llmcells[postgres]'.") \
            from None
    return psycopg


def migrate(conn: Any, target: int = VERSION) -> int:
    """Bring the database of conn up to schema version target; returns the version found."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute("CREATE TABLE IF NOT EXISTS llmcells_schema (version integer NOT NULL)")
        row = conn.execute("SELECT max(version) FROM llmcells_schema").fetchone()
        found = row[0] or 0
        for v in range(found + 1, target + 1):
            for stmt in MIGRATIONS[v]:
                conn.execute(stmt)
            conn.execute("INSERT INTO llmcells_schema (version) VALUES (%s)", (v,))
    return found


class _StillDown(ConnectionError):
    """The server failed less than _RETRY_S ago: not tried again yet."""


class Shared:
    """One PostgreSQL ledger (by DSN) and its local journal."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.shown = mask(dsn)
        self.secrets = _passwords(dsn)
        self.lock = threading.RLock()
        self.conn: Any = None
        self.ready = False            # schema checked on this connection
        self.down_since: float | None = None
        self.next_try = 0.0
        self.warned = False
        self.unusable: ConfigError | None = None   # why the server can't be used, if it can't

    # ----- connection ------------------------------------------------------------------------

    def _connect(self) -> Any:
        if self.conn is not None and not self.conn.closed:
            return self.conn
        if time.monotonic() < self.next_try:
            if self.unusable is not None:
                raise self.unusable
            raise _StillDown(f"the shared ledger at {self.shown} was unreachable moments ago")
        try:
            psycopg = _psycopg()
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S,
                                   application_name="llmcells", **_KEEPALIVES)
            self._check_schema(conn)  # (a migration may take long: the limits come after it)
            # costs()' percentiles sort each group: in memory, not in temporary files; and no
            # JIT compilation, which costs seconds on a busy machine for a query of one pass
            conn.execute("SET work_mem = '128MB'")
            conn.execute("SET jit = off")
            conn.execute(f"SET statement_timeout = {int(STATEMENT_TIMEOUT_MS)}")
            conn.execute(f"SET lock_timeout = {int(LOCK_TIMEOUT_MS)}")
        except Exception as exc:
            self.next_try = time.monotonic() + _RETRY_S
            self.unusable = exc if isinstance(exc, ConfigError) else None
            raise
        self.conn, self.unusable = conn, None
        return conn

    def hide(self, text: str) -> str:
        """text (a server's or libpq's message) as it may be shown: no password in it."""
        text = mask(text)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def _use(self, work: Any) -> Any:
        """work(conn) on the server; once more on a new connection when the open one turns out
        dead (the server restarted, or closed an idle session): that is no outage, and must not
        send the row to the journal with a warning that the ledger is behind."""
        reused = self.conn is not None and not self.conn.closed
        conn = self._connect()
        try:
            return work(conn)
        except _psycopg().OperationalError:
            if not reused or not (conn.closed or getattr(conn, "broken", False)):
                raise  # a new connection, or a live one (a lock or statement timeout)
            self._drop("closing a dead ledger connection")
            return work(self._connect())

    def _check_schema(self, conn: Any) -> None:
        try:
            row = conn.execute("SELECT max(version) FROM llmcells_schema").fetchone()
            have = row[0] or 0
        except _psycopg().errors.UndefinedTable:
            have = 0
        if have < VERSION:
            try:
                migrate(conn)      # needs the rights to create tables: a writer role can't
            except _psycopg().errors.InsufficientPrivilege:
                raise ConfigError(
                    f"The shared ledger at {self.shown} has schema version {have}; this llmcells "
                    f"needs {VERSION}: run llmcells once as the database's owner to upgrade it."
                ) from None
        elif have > VERSION:
            raise ConfigError(f"The shared ledger at {self.shown} has schema version {have}; this "
                              f"llmcells knows up to {VERSION}: upgrade llmcells.")

    def _drop(self, what: str) -> None:
        """Close the server connection, if any, quietly (it reopens on next use)."""
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception as exc:
                swallowed(what, exc)
        self.conn = None

    def _lost(self, exc: BaseException) -> None:
        self._drop("closing a lost ledger connection")
        if not isinstance(exc, _StillDown):
            # (not tried this time: the next try stays where the last failure set it, or a
            # kernel writing more often than _RETRY_S would never try the server again)
            self.next_try = time.monotonic() + _RETRY_S
        if self.down_since is None:
            self.down_since = time.time()
        if not self.warned:
            self.warned = True
            refused = _AUTH_FAILED in str(exc).lower()  # (it answers: it won't take these credentials)
            unusable = isinstance(exc, ConfigError) or refused
            why = (f"can't be used ({self.hide(str(exc)).rstrip('.')})" if isinstance(exc, ConfigError)
                   else f"refused the connection ({self.hide(lite.one_line_error(exc))}): check the "
                        "URL's user and password" if refused
                   else f"can't be reached ({self.hide(lite.one_line_error(exc))})")
            warnings.warn_explicit(
                f"llmcells: the shared ledger at {self.shown} {why}; the ledger is behind: rows "
                f"are kept in {self.journal()} and copied up once it "
                + ("can be." if unusable else "answers again."),
                lite.LedgerWarning, filename="llmcells", lineno=0, module="llmcells.ledger")

    # ----- writing ---------------------------------------------------------------------------

    def journal(self) -> Path:
        """The local SQLite file holding rows not yet on the server."""
        from .config import home

        import hashlib

        return home() / _JOURNAL.format(hashlib.sha256(self.shown.encode()).hexdigest()[:16])

    def refused_file(self) -> Path:
        """The local SQLite file holding rows the server refused to store (see `_insert`)."""
        return self.journal().with_name(self.journal().name.replace(
            _JOURNAL.split("{")[0], _REFUSED.split("{")[0], 1))

    def _insert(self, conn: Any, rows: Sequence[tuple]) -> None:
        """Commit rows on the server in one transaction. Rows the server refuses as data (a
        constraint a changed schema adds, a value out of range) are then tried one by one, and
        those it still refuses are kept in `refused_file()` with one warning: one bad row must
        not hold every later row in the journal (where it was retried first, for ever)."""
        cols = ", ".join(_q(c) for c in lite.COLUMNS)
        sql = (f"INSERT INTO {TABLE} ({cols}) VALUES ({', '.join(['%s'] * len(lite.COLUMNS))}) "
               "ON CONFLICT DO NOTHING")
        rows = [_storable(r) for r in rows]
        errors = _psycopg().errors
        refusals = (errors.DataError, errors.IntegrityError)
        try:
            with conn.transaction():
                with conn.cursor() as cur:
                    cur.executemany(sql, rows)
            return
        except refusals:
            pass
        refused: list[tuple] = []
        reason = ""
        for row in rows:
            try:
                with conn.transaction():
                    conn.execute(sql, row)
            except refusals as exc:
                refused.append(row)
                reason = reason or lite.one_line_error(exc)
        if refused:
            self._set_aside(refused, reason)

    def _set_aside(self, rows: list[tuple], reason: str) -> None:
        lite.record_local(self.refused_file(), rows)
        warnings.warn_explicit(
            f"llmcells: the shared ledger at {self.shown} refused {len(rows)} row(s) "
            f"({self.hide(reason)}); they are kept in {self.refused_file()} and the other rows went up.",
            lite.LedgerWarning, filename="llmcells", lineno=0, module="llmcells.ledger")

    def record(self, rows: list[tuple]) -> None:
        """Commit rows on the server, or in the journal while it can't be reached. Never raises."""
        with self.lock:
            try:
                self._use(lambda conn: (self._upload(conn), self._insert(conn, rows)))
            except Exception as exc:  # a ConfigError too (no psycopg, a newer schema): the row
                # is written on the ledger's thread, where raising would lose it unseen
                self._lost(exc)
                lite.record_local(self.journal(), rows)
                return
            self._back()

    def insert(self, rows: list[tuple]) -> None:
        """Bulk insert (insert_rows); raises when the server can't be written."""
        with self.lock:
            try:
                self._use(lambda conn: self._insert(conn, rows))
            except Exception as exc:
                if self.hide(str(exc)) == str(exc):
                    raise
                raise ConnectionError(f"the shared ledger at {self.shown}: "
                                      f"{self.hide(lite.one_line_error(exc))}") from None

    def _back(self) -> None:
        if self.down_since is not None:
            lite.log.info("llmcells: the shared ledger at %s is reachable again", self.shown)
        self.down_since = None
        self.warned = False

    def _pending(self) -> list[tuple]:
        p = self.journal()
        if not p.exists():
            return []
        with lite.lock:
            conn = lite.writer(p)
            return conn.execute(f"SELECT {', '.join(_q(c) for c in lite.COLUMNS)} FROM calls"
                                ).fetchall()

    def _upload(self, conn: Any) -> int:
        """Copy the journal's rows up, then drop them locally (ON CONFLICT: a crash between the
        two only means they are offered again, never doubled)."""
        rows = self._pending()
        if not rows:
            return 0
        self._insert(conn, rows)
        ids = [r[1] for r in rows]
        with lite.lock:
            local = lite.writer(self.journal())
            local.execute("BEGIN IMMEDIATE")
            try:
                local.executemany("DELETE FROM calls WHERE call_id = ?", [(i,) for i in ids])
                local.execute("COMMIT")
            except BaseException:
                local.execute("ROLLBACK")
                raise
        lite.log.info("llmcells: copied %d journal rows up to %s", len(rows), self.shown)
        return len(rows)

    def sync(self, now: bool = True) -> int:
        """Copy the journal up if the server answers (now: even if it failed moments ago);
        returns how many rows still wait."""
        with self.lock:
            if now:
                self.next_try = 0.0
            try:
                self._use(self._upload)
                self._back()
            except ConfigError:
                raise
            except Exception as exc:
                self._lost(exc)
            return len(self._pending())

    # ----- reading ---------------------------------------------------------------------------

    def _read(self, sql: str, args: list[Any], *, quiet: bool = False) -> list[tuple] | None:
        """Rows of sql from the server; None (after one warning; quiet: none, for a read that
        another of the same call's reads warns of) when it can't be reached."""
        waiting = self.sync(now=False)
        with self.lock:
            try:
                rows = self._use(lambda conn: conn.execute(sql, args).fetchall())
            except ConfigError:
                raise
            except _psycopg().errors.InsufficientPrivilege as exc:
                # a role that may only insert (docs/shared-ledger.md): the server is there
                raise ConfigError(
                    f"The shared ledger at {self.shown} can't be read by this role "
                    f"({self.hide(lite.one_line_error(exc))}): read it as a role granted SELECT."
                ) from None
            except Exception as exc:
                self._lost(exc)
                rows = None
        if (rows is None or waiting) and not quiet:
            warnings.warn_explicit(
                f"llmcells: the shared ledger at {self.shown} is behind ("
                + (f"{waiting} rows still in the local journal" if rows is not None
                   else "it can't be reached") + "); these figures may be incomplete.",
                lite.LedgerWarning, filename="llmcells", lineno=0, module="llmcells.ledger")
        return rows

    def query(self, where: str, args: list[Any], limit: int | None,
              cols: Sequence[str]) -> list[tuple]:
        """usage()'s rows: the server's, plus any still in the journal, oldest first."""
        sql = f"SELECT {', '.join(_q(c) for c in cols)} FROM {TABLE}{_pg_where(where)}"
        args = list(args)
        if limit is not None:
            sql += " ORDER BY ts DESC LIMIT %s"
            args.append(int(limit))
        rows = self._read(sql, args) or []
        pending = self._pending()
        if pending:
            extra = lite.query_memory(pending, where, args[:len(args) - (limit is not None)],
                                         limit, cols)
            seen = {r[cols.index("call_id")] for r in rows} if "call_id" in cols else set()
            key = cols.index("call_id") if "call_id" in cols else None
            rows = [*rows, *(r for r in extra if key is None or r[key] not in seen)]
        rows.sort(key=lambda r: r[0])
        if limit is not None:
            rows = rows[-int(limit):] if limit > 0 else []
        return rows

    def costs(self, cols: list[str], *, include_simulated: bool, include_cached: bool,
              where: tuple[str, list[Any]]) -> Any:
        """costs(), grouped by the server: the same columns as the SQLite ledger's."""
        pd = import_pandas()

        clause, args = where
        clause = _pg_where(clause)
        extra = []
        if not include_simulated:
            extra.append("simulated = 0")
        if not include_cached:
            extra.append("cached = 0")
        if extra:
            clause = (clause + " AND " if clause else " WHERE ") + " AND ".join(extra)
        keys = list(cols)
        if include_simulated:
            kinds = self._read(f"SELECT count(DISTINCT simulated) FROM {TABLE}{clause}", list(args),
                               quiet=True)  # (the grouping read below says it, once)
            if kinds and kinds[0][0] > 1:
                keys.append("simulated")
        exprs = [_q(k) for k in keys]       # day: the stored UTC day number
        sql = (f"SELECT {', '.join(f'{e} AS {_q(k)}' for e, k in zip(exprs, keys))}, "
               "count(*), sum(CASE WHEN status IN ('error', 'incomplete') THEN 1 ELSE 0 END), "
               "sum(input_tokens), sum(output_tokens), sum(cached_input_tokens), "
               "sum(reasoning_tokens), sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END), "
               "sum(cached), sum(cost_usd), "
               "percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY latency_s), "
               "percentile_cont(0.5) WITHIN GROUP (ORDER BY ttft_s) "
               f"FROM {TABLE}{clause} GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}")
        rows = self._read(sql, list(args)) or []
        names = [*keys, "calls", "errors", "input_tokens", "output_tokens", "cached_input_tokens",
                 "reasoning_tokens", "unpriced_calls", "cached_calls", "cost_usd", "latency_p50",
                 "latency_p95", "ttft_p50"]
        # one sort of latency_s gives both of its percentiles (an array, NULLs when none)
        rows = [(*r[:-2], *((r[-2] or [None, None])[:2]), r[-1]) for r in rows]
        out = pd.DataFrame(rows, columns=names)
        if "day" in keys:
            epoch = date(1970, 1, 1)
            out["day"] = [None if d is None else epoch + timedelta(days=int(d)) for d in out["day"]]
        if "simulated" in keys:
            out["simulated"] = out["simulated"].astype(bool)
        for c in ("calls", "errors", "input_tokens", "output_tokens", "cached_input_tokens",
                  "reasoning_tokens", "unpriced_calls", "cached_calls"):
            out[c] = pd.to_numeric(out[c]).fillna(0).astype("int64")
        for c in ("cost_usd", "latency_p50", "latency_p95", "ttft_p50"):
            out[c] = pd.to_numeric(out[c]).astype("float64")
        out["error_rate"] = (out["errors"] / out["calls"]).astype("float64")
        out = out.sort_values("cost_usd", ascending=False, na_position="last", kind="stable")
        tail = ["cached_calls"] if include_cached else []
        return out[[*keys, *lite.COST_COLUMNS, *tail]].reset_index(drop=True)


    def simulated_count(self, where: tuple[str, list[Any]]) -> int:
        """How many simulated calls match where (what costs() leaves out by default)."""
        clause, args = where
        clause = _pg_where(clause)
        clause = (clause + " AND " if clause else " WHERE ") + "simulated = 1"
        rows = self._read(f"SELECT count(*) FROM {TABLE}{clause}", list(args))
        return int(rows[0][0]) if rows else 0


def _storable(row: tuple) -> tuple:
    """row as PostgreSQL text can hold it: a NUL character (which SQLite keeps, and a prompt
    read from a file may hold) becomes U+FFFD, as does a lone surrogate. The prompt's hash was
    taken from the text as sent, so replay and the cache still find it."""
    if not any(isinstance(v, str) and ("\x00" in v or not v.isascii()) for v in row):
        return row
    return tuple(lite.printable(v.replace("\x00", "\ufffd")) if isinstance(v, str) else v
                 for v in row)


def _pg_where(where: str) -> str:
    """ledger.py's SQLite WHERE clause in PostgreSQL: %s placeholders, strpos for instr, FALSE for
    an empty IN list."""
    out = where.replace("?", "%s").replace("instr(", "strpos(")
    return re.sub(r"(?<=WHERE )0\b|(?<=AND )0\b", "FALSE", out)


_backends: dict[str, Shared] = {}
_backends_lock = threading.Lock()


def backend(dsn: str) -> Shared:
    """The Shared ledger of dsn (one per DSN and process)."""
    b = _backends.get(dsn)
    if b is None:
        with _backends_lock:
            b = _backends.setdefault(dsn, Shared(dsn))
    return b


#: connections a forked child inherited: kept referenced, never used nor closed (closing one, even
#: by garbage collection, would end the parent's session on the socket both processes share)
_inherited: list[Any] = []


def _after_fork_in_child() -> None:
    """In a forked child: every ledger opens its own connection on next use, with fresh locks
    (a lock held by one of the parent's threads at the fork would never be released)."""
    global _backends_lock
    _backends_lock = threading.Lock()
    for b in _backends.values():
        if b.conn is not None:
            _inherited.append(b.conn)
        b.conn = None
        b.lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def close() -> None:
    """Close every server connection (they reopen on next use)."""
    for b in list(_backends.values()):
        with b.lock:
            b._drop("closing a ledger connection")
