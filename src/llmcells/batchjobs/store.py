"""The job store: provider batch jobs, their parts and requests, in `jobs.sqlite` under LLMCELLS_HOME.

Everything needed to find a job again after a restart is written before each create call: the
job, its parts (one provider job each) with a tag to reconcile by, every request with the
inputs that rebuild its row and its plan, and the bytes of its attachments (once per job and
content). Results are kept here on first collection, so a frame can be rebuilt after the
provider's own files are gone.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ..config import home

_lock = threading.RLock()
_conns: dict[Path, sqlite3.Connection] = {}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL,
    created REAL NOT NULL,
    estimate REAL,
    options TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS parts (
    job_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    provider TEXT NOT NULL,
    model_id TEXT NOT NULL,
    provider_job_id TEXT,
    tag TEXT NOT NULL,
    state TEXT NOT NULL,
    counts TEXT NOT NULL DEFAULT '{}',
    requests INTEGER NOT NULL,
    estimate REAL,
    created REAL,
    submitted REAL,
    expires REAL,
    finished REAL,
    error TEXT,
    collected INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, part)
);
CREATE TABLE IF NOT EXISTS requests (
    job_id TEXT NOT NULL,
    call_key TEXT NOT NULL,
    row INTEGER NOT NULL,
    part INTEGER,
    model TEXT NOT NULL,
    sample INTEGER NOT NULL,
    prompt TEXT NOT NULL,
    request TEXT NOT NULL,
    inputs TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    result TEXT,
    PRIMARY KEY (job_id, call_key)
);
CREATE INDEX IF NOT EXISTS requests_part ON requests (job_id, part);
CREATE TABLE IF NOT EXISTS attachments (
    job_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job_id, sha256)
);
"""
PART_FIELDS = ("job_id", "part", "provider", "model_id", "provider_job_id", "tag", "state", "counts",
               "requests", "estimate", "created", "submitted", "expires", "finished", "error",
               "collected")


def _conn() -> sqlite3.Connection:
    path = home() / "jobs.sqlite"
    conn = _conns.get(path)
    if conn is None:
        conn = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        _conns[path] = conn
    return conn


def _tx(fn: Any) -> Any:
    with _lock:
        conn = _conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            out = fn(conn)
            conn.execute("COMMIT")
            return out
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def create_job(job_id: str, batch_id: str, estimate: float | None, options: dict[str, Any],
               parts: list[dict[str, Any]], requests: list[dict[str, Any]],
               blobs: dict[str, bytes] | None = None) -> None:
    """Write a new job, its parts, its requests and its attachments' bytes (sha256 -> bytes) in
    one transaction."""
    def go(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?)",
                     (job_id, batch_id, time.time(), estimate, json.dumps(options)))
        add_parts(parts, conn)
        conn.executemany("INSERT OR IGNORE INTO attachments VALUES (?, ?, ?)",
                         [(job_id, sha, data) for sha, data in (blobs or {}).items()])
        conn.executemany(
            "INSERT INTO requests (job_id, call_key, row, part, model, sample, prompt, request, inputs)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(job_id, r["call_key"], r["row"], r["part"], r["model"], r["sample"], r["prompt"],
              json.dumps(r["request"]), json.dumps(r["inputs"], default=_shown)) for r in requests])
    _tx(go)


def _shown(value: Any) -> str:
    """An input value JSON cannot hold, as the frame shows it: bytes (an attachment column's
    file, whose bytes are kept once in `attachments`) by their size, anything else as text."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    return str(value)


def add_parts(parts: list[dict[str, Any]], conn: sqlite3.Connection | None = None) -> None:
    """Insert parts (dicts with PART_FIELDS keys; missing ones are NULL)."""
    rows = [tuple(json.dumps(p.get(f) or {}) if f == "counts" else p.get(f, 0 if f == "collected" else None)
                  for f in PART_FIELDS) for p in parts]
    sql = f"INSERT INTO parts ({', '.join(PART_FIELDS)}) VALUES ({', '.join('?' * len(PART_FIELDS))})"
    if conn is not None:
        conn.executemany(sql, rows)
    else:
        _tx(lambda c: c.executemany(sql, rows))


def update_part(job_id: str, part: int, **values: Any) -> None:
    """Set some fields of one part (committed at once)."""
    if "counts" in values:
        values["counts"] = json.dumps(values["counts"] or {})
    names = ", ".join(f"{k} = ?" for k in values)
    with _lock:
        _conn().execute(f"UPDATE parts SET {names} WHERE job_id = ? AND part = ?",
                        (*values.values(), job_id, part))


def get_job(job_id: str) -> dict[str, Any] | None:
    with _lock:
        row = _conn().execute("SELECT id, batch_id, created, estimate, options FROM jobs WHERE id = ?",
                              (job_id,)).fetchone()
    if row is None:
        return None
    return {"id": row[0], "batch_id": row[1], "created": row[2], "estimate": row[3],
            "options": json.loads(row[4])}


def job_ids() -> list[str]:
    with _lock:
        return [r[0] for r in _conn().execute("SELECT id FROM jobs ORDER BY created DESC")]


def get_parts(job_id: str) -> list[dict[str, Any]]:
    with _lock:
        rows = _conn().execute(f"SELECT {', '.join(PART_FIELDS)} FROM parts WHERE job_id = ? ORDER BY part",
                               (job_id,)).fetchall()
    parts = [dict(zip(PART_FIELDS, r)) for r in rows]
    for p in parts:
        p["counts"] = json.loads(p["counts"] or "{}")
    return parts


def get_requests(job_id: str, part: int | None = None) -> list[dict[str, Any]]:
    """A job's requests in row order (or one part's)."""
    sql = ("SELECT call_key, row, part, model, sample, prompt, request, inputs, status, result "
           "FROM requests WHERE job_id = ?")
    args: tuple = (job_id,)
    if part is not None:
        sql += " AND part = ?"
        args += (part,)
    with _lock:
        rows = _conn().execute(sql + " ORDER BY row", args).fetchall()
    return [{"call_key": r[0], "row": r[1], "part": r[2], "model": r[3], "sample": r[4], "prompt": r[5],
             "request": json.loads(r[6]), "inputs": json.loads(r[7]), "status": r[8],
             "result": json.loads(r[9]) if r[9] else None} for r in rows]


def get_blobs(job_id: str, shas: Any) -> dict[str, bytes]:
    """The stored bytes of a job's attachments, by sha256 (those of `shas` that are there)."""
    wanted = sorted(set(shas))
    out: dict[str, bytes] = {}
    with _lock:
        conn = _conn()
        for i in range(0, len(wanted), 500):  # SQLite's limit on bound parameters
            chunk = wanted[i:i + 500]
            out.update(conn.execute(
                f"SELECT sha256, data FROM attachments WHERE job_id = ? AND sha256 IN "
                f"({', '.join('?' * len(chunk))})", (job_id, *chunk)).fetchall())
    return out


def part_costs(job_id: str) -> dict[int, float]:
    """The actual batch cost of each part, from its collected results."""
    with _lock:
        rows = _conn().execute(
            "SELECT part, SUM(json_extract(result, '$.cost_usd')) FROM requests WHERE job_id = ? "
            "AND json_extract(result, '$.processing') = 'batch' GROUP BY part", (job_id,)).fetchall()
    return {part: cost or 0.0 for part, cost in rows}


def set_results(job_id: str, results: list[tuple[str, str, dict[str, Any]]],
                only_if_not_ok: bool = True) -> None:
    """Keep (call_key, status, result fields) of collected requests; an ok result is never
    overwritten by a later failure of the same request."""
    cond = " AND status != 'ok'" if only_if_not_ok else ""
    _tx(lambda c: c.executemany(
        f"UPDATE requests SET status = ?, result = ? WHERE job_id = ? AND call_key = ?{cond}",
        [(status, json.dumps(fields, default=str), job_id, key) for key, status, fields in results]))


def assign(job_id: str, keys: list[str], part: int) -> None:
    """Move requests to a new part (a retry through the provider), pending again."""
    _tx(lambda c: c.executemany(
        "UPDATE requests SET part = ?, status = 'pending' WHERE job_id = ? AND call_key = ?",
        [(part, job_id, k) for k in keys]))
