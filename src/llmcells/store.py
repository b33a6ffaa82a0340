"""The local result store: answers kept for the opt-in cache and for resuming batches.

One SQLite file (`store.sqlite` under LLMCELLS_HOME), one table of JSON payloads by key. Cache
keys hash everything that makes a request what it is, the sample index included, so repeated
samples at temperature > 0 stay independent. It never stores keys or headers.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .config import home
from .types import Request, Result, Usage

_lock = threading.Lock()
_connections: dict[Path, sqlite3.Connection] = {}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    batch_id TEXT,
    created REAL NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_batch ON results (batch_id);
"""


def _connect() -> sqlite3.Connection:
    path = home() / "store.sqlite"
    conn = _connections.get(path)
    if conn is None:
        conn = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        _connections[path] = conn
    return conn


def request_key(request: Request, sample: int) -> str:
    """A hash of everything that defines a request's answer, and the sample index."""
    spec = request.spec
    material = {
        "provider": spec.provider, "model": spec.name, "api": spec.api,
        # the simulator's port changes with every kernel; it is one endpoint all the same
        "base_url": "simulator" if spec.simulated else spec.base_url,
        "system": request.system, "temperature": request.temperature,
        "max_tokens": request.max_tokens, "params": request.extra.get("params"),
        "messages": [[m.role, m.content] for m in request.messages], "sample": sample,
    }
    if request.attachments:  # [rich requests] the bytes' hashes (only when present: old keys hold)
        material["attachments"] = [[a.media_type, a.sha256] for a in request.attachments]
    if request.schema is not None:
        material["schema"] = request.schema.json_schema
    blob = json.dumps(material, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


_KEPT = ("text", "reasoning", "response_model", "finish_reason", "ttft_s", "latency_s",
         "service_tier", "price_source")   # the price provenance travels with a kept answer


def _payload(result: Result) -> str:
    data = {k: getattr(result, k) for k in _KEPT}
    data["usage"] = result.usage.as_dict()
    data["cost_usd"] = None if result.cost_usd != result.cost_usd else result.cost_usd
    basis = getattr(result, "price_basis", None)
    data["price_basis"] = basis.as_dict() if basis is not None else None
    return json.dumps(data)


def _restore(payload: str) -> dict[str, Any]:
    data = json.loads(payload)
    data["usage"] = Usage(**data["usage"])
    if data.get("cost_usd") is None:
        data["cost_usd"] = float("nan")
    if data.get("price_basis") is not None:
        from .pricing import PriceBasis

        data["price_basis"] = PriceBasis.from_dict(data["price_basis"])
    return data


def put(key: str, result: Result, batch_id: str | None = None) -> None:
    """Keep an ok result under key."""
    with _lock:
        _connect().execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)",
                           (key, batch_id, time.time(), _payload(result)))


def put_many(items: list[tuple[str, Result]], batch_id: str | None = None) -> None:
    """Keep many ok results (key, result) in one transaction."""
    now = time.time()
    rows = [(key, batch_id, now, _payload(result)) for key, result in items]
    with _lock:
        conn = _connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def get(key: str) -> dict[str, Any] | None:
    """The fields of the result kept under key (text, usage, ...), or None."""
    with _lock:
        row = _connect().execute("SELECT payload FROM results WHERE key = ?", (key,)).fetchone()
    return _restore(row[0]) if row else None


def batch_done(batch_id: str) -> dict[str, dict[str, Any]]:
    """Every ok result of a batch, by its call key."""
    with _lock:
        rows = _connect().execute("SELECT key, payload FROM results WHERE batch_id = ?",
                                  (batch_id,)).fetchall()
    prefix = f"batch:{batch_id}:"
    return {k[len(prefix):]: _restore(p) for k, p in rows if k.startswith(prefix)}


def batch_key(batch_id: str, call_key: str) -> str:
    return f"batch:{batch_id}:{call_key}"


def cache_key(request: Request, sample: int) -> str:
    return "cache:" + request_key(request, sample)
