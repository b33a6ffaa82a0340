"""The ledger's columns and its SQLite files: the schema, and rows committed to a local file.

Both ledgers stand on this module: ledger.py's default ledger (`$LLMCELLS_HOME/ledger.sqlite`)
and ledger_pg.py's journal (the rows kept locally while the PostgreSQL server can't be reached)
are SQLite files of the same `calls` table, written by `record_local`.

- WAL mode and a busy timeout so that several processes can write one file at once; a row is
  committed before `record_local` returns, so a finished call survives a SIGKILL right after.
- `record_local` never raises: a file that can't be written warns once (`LedgerWarning`) and its
  rows wait in memory (`unsaved`), written with the next rows once the file works again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sqlite3
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

from .errors import redact

#: how long a write waits for another process's lock (milliseconds)
BUSY_TIMEOUT_MS = 10_000


#: attempts of a statement still locked out after the busy timeout
LOCK_RETRIES = 5


#: (name, SQL type, pandas kind) of each column. Order = DataFrame column order.
SCHEMA: list[tuple[str, str, str]] = [
    ("ts", "REAL NOT NULL", "ts"),
    ("call_id", "TEXT NOT NULL UNIQUE", "str"),
    ("group_id", "TEXT", "str"),
    ("batch_id", "TEXT", "str"),
    ("session_id", "TEXT", "str"),
    ("cell", "INTEGER", "nullable_int"),
    ("provider", "TEXT", "str"),
    ("model", "TEXT", "str"),
    ("response_model", "TEXT", "str"),
    ("status", "TEXT", "str"),
    ("error_kind", "TEXT", "str"),
    ("error", "TEXT", "str"),
    ("input_tokens", "INTEGER NOT NULL DEFAULT 0", "int"),
    ("cached_input_tokens", "INTEGER NOT NULL DEFAULT 0", "int"),
    ("cache_write_tokens", "INTEGER NOT NULL DEFAULT 0", "int"),
    ("cache_write_1h_tokens", "INTEGER NOT NULL DEFAULT 0", "int"),
    ("output_tokens", "INTEGER NOT NULL DEFAULT 0", "int"),
    ("reasoning_tokens", "INTEGER NOT NULL DEFAULT 0", "int"),
    ("cost_usd", "REAL", "float"),
    ("price_source", "TEXT", "str"),
    # price provenance (pricing.PriceBasis): enough to re-derive cost_usd by hand
    ("service_tier", "TEXT", "str"),
    ("processing", "TEXT NOT NULL DEFAULT 'live'", "str"),
    ("price_version", "TEXT", "str"),
    ("price_data_date", "TEXT", "str"),
    ("price_provider", "TEXT", "str"),
    ("price_model", "TEXT", "str"),
    ("price_rates", "TEXT", "str"),
    ("latency_s", "REAL", "float"),
    ("ttft_s", "REAL", "float"),
    ("tokens_per_s", "REAL", "float"),
    ("attempts", "INTEGER NOT NULL DEFAULT 0", "int"),
    ("cached", "INTEGER NOT NULL DEFAULT 0", "bool"),
    ("sample", "INTEGER NOT NULL DEFAULT 0", "int"),
    ("simulated", "INTEGER NOT NULL DEFAULT 0", "bool"),
    ("prompt_hash", "TEXT", "str"),
    ("prompt_preview", "TEXT", "str"),
    ("prompt_text", "TEXT", "str"),
    ("output_text", "TEXT", "str"),
    # scoring and replay: "answer" or "judge"; replayed calls cost 0 and keep the original's figures
    ("purpose", "TEXT", "str"),
    ("replayed", "INTEGER NOT NULL DEFAULT 0", "bool"),
    ("original_cost_usd", "REAL", "float"),
    ("original_latency_s", "REAL", "float"),
    # rich requests: how many files went with the prompt and their bytes (never their content)
    ("attachments", "INTEGER NOT NULL DEFAULT 0", "int"),
    ("attachment_bytes", "INTEGER NOT NULL DEFAULT 0", "int"),
    # who and where (a shared ledger gathers many people's and machines' calls): the OS user,
    # the host name, configure(project=...), and the notebook or script when known
    ("user", "TEXT", "str"),
    ("host", "TEXT", "str"),
    ("project", "TEXT", "str"),
    ("path", "TEXT", "str"),
]


#: the column names, in table order (a row is a tuple in this order)
COLUMNS: list[str] = [c for c, _, _ in SCHEMA]


#: column -> its pandas kind
KINDS = {c: k for c, _, k in SCHEMA}


#: costs()' columns after the group keys, in order (both ledgers give the same frame)
COST_COLUMNS = ["calls", "cost_usd", "input_tokens", "output_tokens", "latency_p50",
                 "latency_p95", "ttft_p50", "errors", "error_rate", "unpriced_calls",
                 "cached_input_tokens", "reasoning_tokens"]


_INDEXES = {"ts": "ts", "model": "model", "group_id": "group_id", "batch_id": "batch_id"}


#: the `calls` table
CREATE = "CREATE TABLE IF NOT EXISTS calls (\n  " + ",\n  ".join(
    f"{c} {t}" for c, t, _ in SCHEMA) + "\n)"


#: one row in COLUMNS order (a call_id already there is left alone)
INSERT = f"INSERT OR IGNORE INTO calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


#: the `llmcells` logger
log = logging.getLogger("llmcells")


class LedgerWarning(UserWarning):
    """The usage ledger could not be written or read; calls still run."""


#: held around every use of a writer connection and of unsaved
lock = threading.RLock()


#: one writer connection per file
conns: dict[str, sqlite3.Connection] = {}     # one writer connection per ledger path


#: rows that could not be written yet, per file
unsaved: dict[str, list[tuple]] = {}          # rows that could not be written, per path


#: files whose outage has been warned about (cleared once written again)
warned: set[str] = set()


def _is_locked(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg)


def with_retry(fn):
    """Run fn(), retrying a few times when another process holds the lock past busy_timeout."""
    for attempt in range(LOCK_RETRIES):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc) or attempt == LOCK_RETRIES - 1:
                raise
            time.sleep(0.05 * (2 ** attempt))


def _open(p: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(p), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

        def setup():
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            # NORMAL in WAL mode: a committed row survives a process crash (SIGKILL); only an
            # OS crash / power cut can lose the last commits.
            conn.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints (copying the WAL into the database, with an fsync) are run by the
            # writer thread, never inside a commit made on the event loop (see write_now).
            conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.execute(CREATE)
            have = {r[1] for r in conn.execute("PRAGMA table_info(calls)")}
            for c, t, _ in SCHEMA:          # an older ledger: add the columns it lacks
                if c not in have:
                    t = t.replace("NOT NULL UNIQUE", "").replace("NOT NULL", "")
                    conn.execute(f"ALTER TABLE calls ADD COLUMN {c} {t}")
            for name, col in _INDEXES.items():
                conn.execute(f"CREATE INDEX IF NOT EXISTS calls_{name} ON calls ({col})")
            return mode

        with_retry(setup)
        conn.execute("PRAGMA busy_timeout=0")  # between writes: see waiting
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def waiting(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """conn waiting up to busy_timeout for another process's lock while the block runs.

    A writer connection otherwise never waits: write_now, on the event loop, gives up at once
    and hands the row to the writer thread, which writes it here (under lock, like write_now,
    so the two never change the setting under each other).
    """
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        yield conn
    finally:
        try:
            conn.execute("PRAGMA busy_timeout=0")
        except sqlite3.Error as exc:
            log.debug("ledger: resetting busy_timeout: %s", one_line_error(exc))


def writer(p: Path) -> sqlite3.Connection:
    """The writer connection of the file p, opened (and its table made) on first use."""
    key = str(p)
    conn = conns.get(key)
    if conn is None:
        conn = conns[key] = _open(p)
    return conn


def drop(key: str) -> None:
    """Close the writer connection of a file (it reopens on next use)."""
    conn = conns.pop(key, None)
    if conn is not None:
        try:
            conn.close()
        except sqlite3.Error:
            pass


def close() -> None:
    """Close every ledger connection (they reopen on next use)."""
    with lock:
        for key in list(conns):
            drop(key)


def advice(exc: BaseException) -> str:
    """What to do about a ledger that can't be written, by the kind of failure."""
    text = str(exc).lower()
    code = getattr(exc, "errno", None) or getattr(getattr(exc, "__cause__", None), "errno", None)
    if code == errno.ENOSPC or "full" in text:
        return "The disk is full: free some space"
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) or "readonly" in text or "read-only" in text \
            or "permission" in text or "unable to open" in text:
        return "The folder is not writable: set LLMCELLS_HOME to a writable folder"
    if "locked" in text or "busy" in text:
        return "Another program holds it locked: close it, or wait"
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return "The file is damaged: Move the file away to start a new ledger"
    return "Check the file and its folder"


def warn_once(p: Path | str, exc: BaseException, *, reading: bool = False) -> None:
    """One warning per outage of a ledger file (a new one after it has worked again), shown as one
    line that names no llmcells source line (the write happens on the ledger's own thread)."""
    key = str(p)
    with lock:
        if key in warned:
            return
        warned.add(key)
    what = "read" if reading else "write"
    warnings.warn_explicit(
        f"llmcells could not {what} the usage ledger at {p} ({one_line_error(exc)}). {advice(exc)}; "
        + ("calls still run." if reading else "calls still run, and their rows are kept in memory "
                                              "and written once the ledger works again."),
        LedgerWarning, filename="llmcells", lineno=0, module="llmcells.ledger")


def one_line_error(exc: BaseException) -> str:
    """exc as one short line, keys removed."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return redact(text)[:200]


def _write(p: Path, rows: Sequence[tuple]) -> None:
    """Insert rows in one transaction (with the unsaved ones first); raises sqlite3/OS errors."""
    key = str(p)
    conn = writer(p)
    pending = unsaved.get(key) or []
    todo = [*pending, *rows]

    def go():
        if len(todo) == 1:
            conn.execute(INSERT, todo[0])          # autocommit: committed on return
        else:
            insert_many(conn, todo)

    try:
        with waiting(conn):
            with_retry(go)
    except (sqlite3.Error, OSError):
        drop(key)                                   # reopen next time (the file may be fixed)
        raise
    if pending:
        unsaved.pop(key, None)


def insert_many(conn: sqlite3.Connection, rows: list) -> None:
    """Insert rows in one transaction, rolled back whole on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(INSERT, rows)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def printable(text: Any) -> str | None:
    """text as a string that can be stored as UTF-8 (a lone surrogate replaced); None stays."""
    return None if text is None else str(text).encode("utf-8", "replace").decode("utf-8")


def _clean(row: tuple) -> tuple:
    """row with every text that can't be encoded as UTF-8 (a lone surrogate) made encodable."""
    return tuple(printable(v) if isinstance(v, str) else v for v in row)


_warned_text = False


def record_local(p: Path, rows: list[tuple]) -> None:
    """Commit rows to the SQLite file p (or keep them in memory, warning once)."""
    global _warned_text
    with lock:
        key = str(p)
        try:
            try:
                _write(p, rows)
            except UnicodeEncodeError:
                rows = [_clean(r) for r in rows]
                if not _warned_text:
                    _warned_text = True
                    warnings.warn_explicit(
                        "llmcells: some prompt or answer text was not valid Unicode (an unpaired "
                        "surrogate); it is stored in the ledger with replacement characters.",
                        LedgerWarning, filename="llmcells", lineno=0, module="llmcells.ledger")
                _write(p, rows)
        except Exception as exc:
            unsaved.setdefault(key, []).extend(rows)
            warn_once(p, exc)
        else:
            warned.discard(key)  # working again: a later outage warns again


def query(conn: sqlite3.Connection, where: str, args: list[Any], limit: int | None,
          cols: Sequence[str] = COLUMNS) -> list[tuple]:
    """The cols of the rows matching where: in table order, or with limit the newest that many,
    oldest first."""
    sql = f"SELECT {', '.join(cols)} FROM calls{where}"
    if limit is not None:
        sql += " ORDER BY ts DESC, rowid DESC LIMIT ?"
        rows = conn.execute(sql, [*args, int(limit)]).fetchall()
        rows.reverse()
        return rows
    # Table order (rowid) is insertion order, which is nearly always ts order; ledger.usage sorts by ts
    # in numpy when it is not (much cheaper than an SQL sort of every row).
    return conn.execute(sql, args).fetchall()


def query_memory(rows: list[tuple], where: str, args: list[Any], limit: int | None,
                 cols: Sequence[str] = COLUMNS) -> list[tuple]:
    """Apply the same SQL filter to rows held in memory (an in-memory SQLite table)."""
    mem = sqlite3.connect(":memory:")
    try:
        mem.execute(CREATE)
        mem.executemany(INSERT, rows)
        return query(mem, where, args, limit, cols)
    finally:
        mem.close()
