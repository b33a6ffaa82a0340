"""The one home of usage records: every call, in SQLite under LLMCELLS_HOME, read back with pandas.

- One table, `calls`, in `$LLMCELLS_HOME/ledger.sqlite`; WAL mode and a busy timeout so that
  several processes (notebooks, scripts) can write at once; every row is committed as soon as it
  is recorded, so a finished call survives even a SIGKILL right after.
- `record()` never raises and never blocks a call for long: if the database can't be written
  (corrupt file, read-only folder, disk full) it warns once and keeps the rows in memory, so that
  `usage()` still shows this session's calls; they are written as soon as the database works again.
- `usage()` and `costs()` return typed DataFrames; pandas is imported on first use.
- The columns and the writing of SQLite files live in ledger_sqlite.py (ledger_pg.py's journal
  is such a file too); a shared ledger in PostgreSQL is ledger_pg.py, imported only when named.

ts is the time a call started, stored as epoch seconds (REAL) and returned as a UTC datetime.
"""

from __future__ import annotations

import concurrent.futures
import gc
import hashlib
import queue
import math
import os
import sqlite3
import threading
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from . import ledger_sqlite
from .config import getenv, settings
from .errors import ConfigError, redact
from ._log import swallowed
# the columns and the SQLite files, shared with ledger_pg (its journal); re-exported here, where
# the rest of llmcells has always found them
from .ledger_sqlite import COLUMNS, LedgerWarning, close, log, one_line_error
from .ledger_sqlite import COST_COLUMNS as _COST_COLUMNS
from .ledger_sqlite import INSERT as _INSERT
from .ledger_sqlite import KINDS as _KINDS
from .ledger_sqlite import conns as _conns
from .ledger_sqlite import insert_many as _insert_many
from .ledger_sqlite import lock as _lock
from .ledger_sqlite import printable as _printable
from .ledger_sqlite import query as _query
from .ledger_sqlite import query_memory as _query_memory
from .ledger_sqlite import record_local as _record_local
from .ledger_sqlite import unsaved as _unsaved
from .ledger_sqlite import waiting as _waiting
from .ledger_sqlite import warn_once as _warn_once
from .ledger_sqlite import warned as _warned
from .ledger_sqlite import with_retry as _with_retry
from .ledger_sqlite import writer as _writer
from ._loop import import_pandas

if TYPE_CHECKING:
    import pandas as pd

    from .types import Result

__all__ = ["record", "usage", "costs", "path", "session_id", "insert_rows", "row_from_result",
           "prompt_hash", "close", "LedgerWarning", "COLUMNS", "COST_KEYS"]

SESSION_ID = uuid.uuid4().hex
_FILENAME = "ledger.sqlite"
_PREVIEW_CHARS = 80
_ERROR_CHARS = 500

# ----- column order of usage() and costs(): what people read first, ids last ----------------
#: usage(): time, model, status, tokens, cost, latency ... ids and texts last (COLUMNS is the
#: table's storage order and is left alone)
_READ_FIRST = ["ts", "model", "status", "input_tokens", "output_tokens", "cost_usd", "latency_s",
               "ttft_s", "tokens_per_s", "provider", "response_model", "error_kind", "error",
               "cached_input_tokens", "cache_write_tokens", "reasoning_tokens", "attempts",
               "cached", "sample", "simulated", "cell", "price_source", "prompt_preview"]
USAGE_COLUMNS: list[str] = _READ_FIRST + [c for c in COLUMNS if c not in _READ_FIRST]
#: costs(): after the group keys


def _reading_order(df: "pd.DataFrame") -> "pd.DataFrame":
    return df[[c for c in USAGE_COLUMNS if c in df.columns]]
# ----- end of column order ---------------------------------------------------------------------







# ----- connections ---------------------------------------------------------------------------------



def path() -> Path:
    """Where the ledger lives: $LLMCELLS_HOME/ledger.sqlite (resolved anew on every use)."""
    from .config import home

    return home() / _FILENAME


def _path_noraise() -> Path:
    try:
        return path()
    except OSError:                  # the home folder can't be created: record() will warn
        base = Path(os.environ.get("LLMCELLS_HOME") or Path.home() / ".llmcells").expanduser()
        return base / _FILENAME


def session_id() -> str:
    """This Python process's session id (the session_id column of its rows)."""
    return SESSION_ID






















# ----- rows ----------------------------------------------------------------------------------------


def prompt_hash(prompt: str, system: str | None = None) -> str:
    """sha256 hex of the system text and the prompt (system, a NUL, then the prompt)."""
    return hashlib.sha256(f"{system or ''}\x00{prompt or ''}".encode("utf-8", "replace")).hexdigest()


def _preview(text: str | None, n: int = _PREVIEW_CHARS) -> str:
    one = " ".join((text or "").split())
    return one if len(one) <= n else one[: n - 1] + "…"


def _num(x: Any) -> float | None:
    if x is None:
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) or math.isinf(x) else x


def row_from_result(result: "Result", *, prompt: str, system: str | None = None,
                    store_text: bool | None = None) -> tuple:
    """The ledger row of one Result, as a tuple in COLUMNS order."""
    if store_text is None:
        store_text = bool(settings.store_text)
    u = result.usage
    error = redact(result.error)[:_ERROR_CHARS] if result.error else None
    ts = result.started_at if result.started_at else time.time()
    return (
        float(ts),
        result.call_id or uuid.uuid4().hex,
        result.group_id,
        result.batch_id,
        SESSION_ID,
        result.cell,
        result.provider,
        result.model,
        result.response_model,
        result.status,
        result.error_kind,
        error,
        int(u.input_tokens or 0),
        int(u.cached_input_tokens or 0),
        int(u.cache_write_tokens or 0),
        int(getattr(u, "cache_write_1h_tokens", 0) or 0),
        int(u.output_tokens or 0),
        int(u.reasoning_tokens or 0),
        _num(result.cost_usd),
        result.price_source,
        *_provenance(result),
        _num(result.latency_s),
        _num(result.ttft_s),
        _num(result.tokens_per_s),
        int(result.attempts or 0),
        1 if result.cached else 0,
        int(result.sample or 0),
        1 if result.simulated else 0,
        prompt_hash(prompt, system),
        _preview(prompt),
        (prompt if system is None else f"[system] {system}\n\n{prompt}") if store_text else None,
        result.text if store_text else None,
        getattr(result, "purpose", None) or "answer",
        1 if getattr(result, "replayed", False) else 0,
        _num((result.original or {}).get("cost_usd")) if getattr(result, "original", None) else None,
        _num((result.original or {}).get("latency_s")) if getattr(result, "original", None) else None,
        int(getattr(result, "attachments_count", 0) or 0),
        int(getattr(result, "attachments_bytes", 0) or 0),
        *_origin(),
    )


_ORIGIN: tuple | None = None


def _origin() -> tuple:
    """user, host, project and path of this process's rows (user, host and path found once)."""
    global _ORIGIN
    if _ORIGIN is None:
        import getpass
        import socket
        import sys

        try:
            user = getpass.getuser()
        except Exception as exc:          # no user name in the environment or the passwd file
            swallowed("reading the user name (none recorded)", exc)
            user = None
        # Jupyter's server names the notebook of a kernel; a script is its own path
        where = os.environ.get("JPY_SESSION_NAME") or None
        if where is None and sys.argv and sys.argv[0] and os.path.isfile(sys.argv[0]) \
                and "ipykernel" not in sys.argv[0]:
            where = os.path.abspath(sys.argv[0])
        _ORIGIN = (user, socket.gethostname() or None, where)
    user, host, where = _ORIGIN
    return (user, host, settings.project, where)


def _provenance(result: "Result") -> tuple:
    """service_tier, processing and the price basis columns of a Result."""
    b = getattr(result, "price_basis", None)
    tier = getattr(result, "service_tier", None)
    processing = getattr(result, "processing", None) or "live"
    if b is None:
        return (tier, processing, None, None, None, None, None)
    return (tier, processing, b.version, b.data_date, b.provider, b.model, b.rates_json)






def record(result: "Result", *, prompt: str, system: str | None = None) -> None:
    """Record one finished (or failed, or cancelled) call; committed before returning.

    Safe from any thread. Never raises and never drops the row: a database problem warns once
    and keeps the row in memory (usage() still shows it); text that can't be stored as UTF-8 is
    stored with replacement characters, and said so once.
    """
    _record_rows([_row_or_fallback(result, prompt, system)])


def _row_or_fallback(result: "Result", prompt: str, system: str | None) -> tuple:
    try:
        return row_from_result(result, prompt=prompt, system=system)
    except Exception as exc:  # a strange Result must still leave a row
        log.debug("building a ledger row failed: %s", one_line_error(exc))
        return row_from_result(result, prompt=_printable(prompt), system=_printable(system),
                               store_text=False)








def _record_rows(rows: list[tuple]) -> None:
    shared = _shared()
    if shared is not None:       # PostgreSQL, or its local journal while it is unreachable
        shared.record(rows)
        return
    _record_local(_path_noraise(), rows)




# ----- the writer thread: rows written off the event loop, in group commits ------------------


_queue: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()
_writer_thread: threading.Thread | None = None
_writer_lock = threading.Lock()
_STOP = ("stop",)  # queued by stop(): the writer commits what came before it, then ends


#: rows committed since the last checkpoint of the WAL, and how many make the writer run one
_since_checkpoint = 0
_CHECKPOINT_ROWS = 1000


_direct_keys: dict[tuple[str, str], str] = {}  # ($LLMCELLS_HOME, $HOME) -> the ledger's key in _conns


def _direct_key() -> str:
    """The ledger's key in _conns, without the stat that home() makes on every use: write_now
    only uses a connection that a write through the writer thread has opened, home and all."""
    given = (getenv("LLMCELLS_HOME") or "", getenv("HOME") or "")
    key = _direct_keys.get(given)
    if key is None:
        key = _direct_keys[given] = str(_path_noraise())
    return key


def write_now(result: "Result", *, prompt: str, system: str | None = None) -> bool:
    """Commit result's row on the calling thread if that can be done at once: the ledger is
    open, nothing is waiting to be written, and no other thread or process holds it. True when
    committed (it would survive a SIGKILL); False when it must go through `write()` instead.

    About 0.1 ms, against about twice that for the round trip to the writer thread: the engine
    tries this first, so that a call costs no more than its commit.
    """
    global _since_checkpoint
    if _shared() is not None or not _lock.acquire(blocking=False):
        return False
    try:
        key = _direct_key()
        conn = _conns.get(key)
        if conn is None or _unsaved.get(key) or not _queue.empty():
            return False
        row = row_from_result(result, prompt=prompt, system=system)
        conn.execute(_INSERT, row)  # autocommit: committed on return (busy_timeout is 0 here)
    except Exception as exc:  # busy, unencodable text, a broken file: the writer thread deals
        log.debug("direct ledger write not possible: %s", one_line_error(exc))
        return False
    finally:
        _lock.release()
    _warned.discard(key)
    _since_checkpoint += 1
    if _since_checkpoint >= _CHECKPOINT_ROWS:
        _queue.put(None)  # wake the writer thread for a checkpoint
        _ensure_writer()
    return True


def write(result: "Result", *, prompt: str, system: str | None = None,
          after: Any = None) -> "concurrent.futures.Future[None]":
    """Record result on the ledger's writer thread; the returned future is done once the row is
    committed (and `after()`, if given, has run). Rows that arrive while one commit runs are
    committed together, so many concurrent calls cost one commit, not one each."""
    fut: concurrent.futures.Future[None] = concurrent.futures.Future()
    _queue.put((result, prompt, system, after, fut))
    _ensure_writer()
    return fut


def _ensure_writer() -> None:
    global _writer_thread
    if _writer_thread is None or not _writer_thread.is_alive():
        with _writer_lock:
            if _writer_thread is None or not _writer_thread.is_alive():
                _writer_thread = threading.Thread(target=_serve, name="llmcells-ledger", daemon=True)
                _writer_thread.start()


def _checkpoint() -> None:
    """Copy the WAL into the database file (PASSIVE: never waits for readers or writers)."""
    global _since_checkpoint
    with _lock:
        conn = _conns.get(str(_path_noraise()))
        if conn is None:
            return
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            _since_checkpoint = 0
        except sqlite3.Error as exc:
            log.debug("ledger checkpoint: %s", one_line_error(exc))


def _serve() -> None:
    global _since_checkpoint
    while True:
        batch = [_queue.get()]
        while True:
            try:
                batch.append(_queue.get_nowait())
            except queue.Empty:
                break
        stopping = any(item is _STOP for item in batch)
        # None: only a checkpoint request; _STOP: end once this batch is committed
        batch = [item for item in batch if item is not None and item is not _STOP]
        try:
            if batch:
                _record_rows([_row_or_fallback(r, prompt, system) for r, prompt, system, _, _ in batch])
                _since_checkpoint += len(batch)
            if _since_checkpoint >= _CHECKPOINT_ROWS:
                _checkpoint()
        except BaseException as exc:  # never let the writer die with callers waiting
            log.debug("ledger writer: %s", one_line_error(exc))
        for _, _, _, after, fut in batch:
            if after is not None:
                try:
                    after()
                except Exception as exc:
                    log.debug("after a ledger write: %s", one_line_error(exc))
            fut.set_result(None)
        if stopping:
            return


def stop(timeout: float = 5.0) -> None:
    """Commit the rows handed over so far, then end the writer thread (`%unload_ext llmcells`);
    the next write starts it again."""
    global _writer_thread
    with _writer_lock:
        thread, _writer_thread = _writer_thread, None
    if thread is not None and thread.is_alive():
        _queue.put(_STOP)
        thread.join(timeout)


_COST_INDEX = COLUMNS.index("cost_usd")


def insert_rows(rows: Iterable[dict[str, Any] | tuple]) -> int:
    """Bulk insert (benchmarks, imports): dicts keyed by COLUMNS (missing keys get defaults) or
    tuples in COLUMNS order. Raises on database errors. Returns the number of rows given."""
    defaults = {"ts": None, "input_tokens": 0, "cached_input_tokens": 0, "cache_write_tokens": 0,
                "cache_write_1h_tokens": 0, "processing": "live", "output_tokens": 0, "reasoning_tokens": 0, "attempts": 0, "cached": 0,
                "sample": 0, "simulated": 0, "session_id": SESSION_ID, "replayed": 0,
                "attachments": 0, "attachment_bytes": 0}
    defaults.update(zip(("user", "host", "project", "path"), _origin()))
    tuples = []
    now = time.time()
    for r in rows:
        if isinstance(r, dict):
            d = {**defaults, **r}
            if d["ts"] is None:
                d["ts"] = now
            if not d.get("call_id"):
                d["call_id"] = uuid.uuid4().hex
            d["cost_usd"] = _num(d.get("cost_usd"))
            tuples.append(tuple(d.get(c) for c in COLUMNS))
        else:
            t = list(r)
            t[_COST_INDEX] = _num(t[_COST_INDEX])   # NaN: NULL on both backends, as SQLite makes it
            tuples.append(tuple(t))
    shared = _shared()
    if shared is not None:       # straight to the server (raises when it can't be written)
        shared.insert(tuples)
        return len(tuples)
    with _lock:
        p = path()
        conn = _writer(p)
        with _waiting(conn):
            _insert_many(conn, tuples)
        try:            # fold the big transaction into the main file: reads through WAL are slower
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
    return len(tuples)


# ----- reading -------------------------------------------------------------------------------------


def _since_epoch(since: Any) -> float:
    if isinstance(since, timedelta):
        return time.time() - since.total_seconds()
    if isinstance(since, datetime):
        return since.timestamp()              # a naive datetime is local time, as datetime.now()
    if isinstance(since, date):
        return datetime(since.year, since.month, since.day).timestamp()
    if isinstance(since, (int, float)) and not isinstance(since, bool):
        return float(since)
    if isinstance(since, str):
        s = since.strip()
        if s.lower() == "today":
            return datetime.combine(date.today(), datetime.min.time()).timestamp()
        try:
            return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
        pd = import_pandas()

        try:                                  # "1h", "30min", "2 days": that long ago
            return time.time() - pd.Timedelta(s).total_seconds()
        except (ValueError, TypeError):
            pass
        raise ConfigError(f"since={since!r}: give a datetime, a timedelta, an ISO date/time "
                          "('2025-06-01') or a duration ('1h', '7 days').")
    raise ConfigError(f"since={since!r}: give a datetime, a timedelta, an ISO date or a duration.")


def _model_names(model: str | Sequence[str]) -> list[str]:
    from .models import aliases
    from .registry import PREFIXES, parse_id

    names = [model] if isinstance(model, str) else list(model)
    al = aliases()
    out: list[str] = []
    for n in names:
        n = str(n).strip()
        cands = [n]
        if n in al:
            cands.append(al[n])
        for c in list(cands):
            pre, rest = parse_id(c)
            if pre in PREFIXES and PREFIXES[pre] != pre:
                cands.append(f"{PREFIXES[pre]}:{rest}")
        out.extend(x for x in cands if x not in out)
    return out


def _filters(filters: dict[str, Any]) -> dict[str, Any]:
    """usage()'s filters with their defaults, checked (an unknown one is a TypeError)."""
    names = ("session", "since", "model", "status", "group_id", "batch_id")
    unknown = set(filters) - set(names)
    if unknown:
        raise TypeError(f"costs() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    return {"session": False, **{n: None for n in names[1:]}, **filters}


def _shared() -> Any:
    """The PostgreSQL ledger when LLMCELLS_LEDGER or configure(ledger=...) names one, else None
    (SQLite under LLMCELLS_HOME). ledger_pg is imported only then."""
    dsn = settings.ledger or getenv("LLMCELLS_LEDGER")
    if not dsn or not dsn.startswith(("postgresql://", "postgres://")):
        return None
    from . import ledger_pg

    return ledger_pg.backend(dsn)


def _where(*, session: bool, since: Any, model: Any, status: Any, group_id: Any,
           batch_id: Any) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []

    def in_(col: str, values: Any) -> None:
        vals = [values] if isinstance(values, str) or not isinstance(values, Iterable) else list(values)
        clauses.append(f"{col} IN ({', '.join('?' * len(vals))})" if vals else "0")
        args.extend(vals)

    if session:
        clauses.append("session_id = ?")
        args.append(SESSION_ID)
    if since is not None:
        clauses.append("ts >= ?")
        args.append(_since_epoch(since))
    if model is not None:
        names = _model_names(model)
        q = ", ".join("?" * len(names))
        # requested id or alias, the model as answered, or the bare model name of an id
        clauses.append(f"(model IN ({q}) OR response_model IN ({q}) OR "
                       f"substr(model, instr(model, ':') + 1) IN ({q}))")
        args.extend(names * 3)
    if status is not None:
        in_("status", status)
    if group_id is not None:
        in_("group_id", group_id)
    if batch_id is not None:
        in_("batch_id", batch_id)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args






def _frame(rows: list[tuple], cols: Sequence[str] = COLUMNS) -> "pd.DataFrame":
    """Typed DataFrame from rows in cols order, ts first (strings stay object dtype, None for
    missing)."""
    pd = import_pandas()
    import numpy as np  # (loaded by pandas)

    n = len(rows)
    if n:
        table = np.empty((n, len(cols)), dtype=object)
        table[:] = rows                                  # one C-level pass, no per-column zip
    else:
        table = np.empty((0, len(cols)), dtype=object)
    ts = table[:, 0].astype("float64")
    if n > 1 and not (ts[1:] >= ts[:-1]).all():
        order = np.argsort(ts, kind="stable")
        table, ts = table[order], ts[order]
    data: dict[str, Any] = {}
    for i, name in enumerate(cols):
        values = table[:, i]
        kind = _KINDS[name]
        if kind == "ts":
            us = np.round(ts * 1e6).astype("int64")
            data[name] = pd.to_datetime(us, unit="us", utc=True)
        elif kind == "int":
            data[name] = values.astype("int64")
        elif kind == "nullable_int":
            data[name] = pd.array(values, dtype="Int64")
        elif kind == "float":
            data[name] = values.astype("float64")              # None -> NaN
        elif kind == "bool":
            data[name] = values.astype("int64").astype(bool)
        else:
            data[name] = pd.Series(values, dtype=object, copy=False)   # no str inference pass
    return pd.DataFrame(data, columns=list(cols))


def usage(*, session: bool = False, since: Any = None, model: str | Sequence[str] | None = None,
          status: str | Sequence[str] | None = None, group_id: str | Sequence[str] | None = None,
          batch_id: str | Sequence[str] | None = None, limit: int | None = None,
          _columns: Sequence[str] | None = None) -> "pd.DataFrame":
    """Every recorded call as a DataFrame, newest first; simulated calls too (their `simulated`
    column is True), since this is the log of what ran, not of what was spent.

    Filters: session (only this Python process), since (datetime, timedelta, ISO string, or a
    duration like "1h"), model (requested id, alias, bare name or the model as answered; one or a
    list), status ("ok", "error", "cancelled", "incomplete"), group_id, batch_id, limit (the newest
    N calls). cost_usd is NaN where the price was unknown; ts is a UTC datetime.
    """
    where, args = _where(session=session, since=since, model=model, status=status,
                         group_id=group_id, batch_id=batch_id)
    p = _path_noraise()
    gc_was_on = gc.isenabled()
    gc.disable()        # building ~3M objects: the cyclic GC would rescan them again and again
    try:
        frame = _usage_frame(p, where, args, limit, _columns or COLUMNS)
        if _columns:  # (costs() and the like: any order will do)
            return frame
        return _reading_order(frame).iloc[::-1].reset_index(drop=True)  # the latest call on top
    finally:
        if gc_was_on:
            gc.enable()


def _usage_frame(p: Path, where: str, args: list[Any], limit: int | None,
                 cols: Sequence[str]) -> "pd.DataFrame":
    rows: list[tuple] = []
    shared = _shared()
    if shared is not None:       # the server's rows, and the journal's not yet copied up
        return _frame(shared.query(where, args, limit, cols), cols)
    if p.exists():
        try:
            conn = sqlite3.connect(str(p), timeout=ledger_sqlite.BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
            try:
                conn.execute(f"PRAGMA busy_timeout={ledger_sqlite.BUSY_TIMEOUT_MS}")
                rows = _with_retry(lambda: _query(conn, where, args, limit, cols))
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                _warn_once(p, exc, reading=True)
        except sqlite3.Error as exc:
            _warn_once(p, exc, reading=True)
    with _lock:
        pending = list(_unsaved.get(str(p)) or [])
    if pending:
        extra = _query_memory(pending, where, args, limit, cols)
        if extra:
            seen = {r[1] for r in rows}
            rows = sorted([*rows, *(r for r in extra if r[1] not in seen)], key=lambda r: r[0])
            if limit is not None:
                rows = rows[-int(limit):] if limit > 0 else []
    return _frame(rows, cols)


# ----- aggregation ---------------------------------------------------------------------------------

# by key -> (output column, how to compute it)
COST_KEYS = {
    "model": "model",
    "provider": "provider",
    "day": "day",
    "cell": "cell",
    "group": "group_id",
    "batch": "batch_id",
    "status": "status",
    "session": "session_id",
    "purpose": "purpose",
    "replayed": "replayed",
    "user": "user",
    "host": "host",
    "project": "project",
    "path": "path",
}
_KEY_SYNONYMS = {"group_id": "group", "batch_id": "batch", "session_id": "session", "date": "day",
                 "models": "model", "providers": "provider"}
_ERROR_STATUSES = ("error", "incomplete")


def costs(by: str | Sequence[str] = "model", *, include_simulated: bool = False,
          include_cached: bool = False, **filters: Any) -> "pd.DataFrame":
    """Calls, errors, tokens, cost and latency aggregated by one or more keys, costliest first.

    by: "model", "provider", "day" (UTC date), "cell", "group", "batch", "status", "session", or a
    list of them. filters: as for usage(). errors counts calls with status "error" or
    "incomplete". cost_usd sums the known costs; unpriced_calls counts calls whose price was
    unknown (cost_usd is NaN when no call of a group has a known price).

    Real spend only by default: simulated calls (priced at list price, never billed) and cached
    replays (which cost nothing) are left out. include_simulated=True adds them, grouped apart
    under a `simulated` column when both kinds are present; include_cached=True adds the
    replays, counted in a `cached_calls` column (their cost is 0). The frame's
    attrs["simulated_left_out"] says how many simulated calls were left out; when there are
    some, attrs["note"] says so, and in IPython that line is printed too.
    """
    pd = import_pandas()
    import numpy as np  # (loaded by pandas)

    keys = [by] if isinstance(by, str) else list(by)
    if not keys:
        raise ConfigError(f"costs(by=...) needs at least one key: {', '.join(COST_KEYS)}.")
    norm = []
    for k in keys:
        k2 = _KEY_SYNONYMS.get(str(k).strip().lower(), str(k).strip().lower())
        if k2 not in COST_KEYS:
            raise ConfigError(f"costs(by={k!r}): unknown key. Valid keys: {', '.join(COST_KEYS)}.")
        if k2 not in norm:
            norm.append(k2)
    cols = [COST_KEYS[k] for k in norm]
    shared = _shared()
    if shared is not None:       # grouped on the server
        where = _where(**_filters(filters))
        out = shared.costs(cols, include_simulated=include_simulated,
                           include_cached=include_cached, where=where)
        left_out = 0 if include_simulated else shared.simulated_count(where)
        out.attrs["simulated_left_out"] = left_out
        if left_out:
            _say_left_out(out, left_out)
        return out

    need = ["ts", "call_id", "status", "input_tokens", "output_tokens", "cached_input_tokens",
            "reasoning_tokens", "cost_usd", "latency_s", "ttft_s", "simulated", "cached"]
    need += [c for c in cols if c != "day" and c not in need]
    df = usage(**filters, _columns=need)
    keep = np.ones(len(df), dtype=bool)
    left_out = 0
    if not include_simulated:
        keep &= ~df["simulated"].to_numpy()
        left_out = int(df["simulated"].sum())
    if not include_cached:
        keep &= ~df["cached"].to_numpy()
    if not keep.all():
        df = df[keep].reset_index(drop=True)
    if include_simulated and df["simulated"].nunique() > 1:
        cols = [*cols, "simulated"]        # real and simulated spend are never summed together
    if "day" in cols:
        df["day"] = df["ts"].dt.floor("D")
    work = pd.DataFrame({c: df[c] for c in cols})
    work["calls"] = 1
    work["errors"] = df["status"].isin(_ERROR_STATUSES).astype("int64")
    for c in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens",
              "cost_usd", "latency_s", "ttft_s"):
        work[c] = df[c]
    work["unpriced_calls"] = df["cost_usd"].isna().astype("int64")
    work["cached_calls"] = df["cached"].astype("int64")

    g = work.groupby(cols, dropna=False, sort=False)
    out = g.agg(
        calls=("calls", "sum"),
        errors=("errors", "sum"),
        input_tokens=("input_tokens", "sum"),
        output_tokens=("output_tokens", "sum"),
        cached_input_tokens=("cached_input_tokens", "sum"),
        reasoning_tokens=("reasoning_tokens", "sum"),
        unpriced_calls=("unpriced_calls", "sum"),
        cached_calls=("cached_calls", "sum"),
    )
    out["cost_usd"] = g["cost_usd"].sum(min_count=1)
    # by position, not by label: a MultiIndex label holding NaN (no group_id) aligns with
    # nothing, so the percentiles of such a group were NaN; one sort gives both percentiles,
    # group by group in the order of `out` (quantile's own order, before any unstack)
    q_lat = g["latency_s"].quantile([0.5, 0.95]).to_numpy().reshape(-1, 2) if len(work) else None
    if q_lat is not None:
        out["latency_p50"] = q_lat[:, 0]
        out["latency_p95"] = q_lat[:, 1]
        out["ttft_p50"] = g["ttft_s"].median().to_numpy()
    else:
        out["latency_p50"] = out["latency_p95"] = out["ttft_p50"] = np.array([], dtype="float64")
    out["error_rate"] = (out["errors"] / out["calls"]).astype("float64")
    out = out.reset_index()
    if "day" in cols:
        out["day"] = [d.date() if not pd.isna(d) else None for d in out["day"]]
    for c in ("calls", "errors", "input_tokens", "output_tokens", "cached_input_tokens",
              "reasoning_tokens", "unpriced_calls", "cached_calls"):
        out[c] = out[c].astype("int64")
    for c in ("cost_usd", "latency_p50", "latency_p95", "ttft_p50", "error_rate"):
        out[c] = out[c].astype("float64")
    out = out.sort_values("cost_usd", ascending=False, na_position="last", kind="stable")
    extra = ["cached_calls"] if include_cached else []
    out = out[[*cols, *_COST_COLUMNS, *extra]].reset_index(drop=True)
    out.attrs["simulated_left_out"] = left_out
    if left_out:
        _say_left_out(out, left_out)
    return out


def _say_left_out(frame: "pd.DataFrame", n: int) -> None:
    """Say that n simulated calls are not in the costs: in frame.attrs["note"], and printed once
    (one line) when the costs are asked for in IPython, where a table of real spend alone can
    look as if the calls just made were lost."""
    import sys

    note = (f"costs: {n:,} simulated call{'s' if n != 1 else ''} left out (never billed); "
            "include_simulated=True (or %llmcells costs --simulated) counts them.")
    frame.attrs["note"] = note
    log.info(note)
    if "IPython" in sys.modules:
        from IPython import get_ipython

        if get_ipython() is not None:
            print(note)
