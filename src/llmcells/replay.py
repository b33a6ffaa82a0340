"""Replay: every answer recorded in a small JSONL file, and played back for the same request, so
that re-running a notebook (after a restart, or on another machine) costs nothing.

    %llmcells replay on                    # or llmcells.configure(replay=True)
    %llmcells replay path=results.jsonl    # the file that travels with the notebook
    %%compare --refresh ...                # this cell: new calls (their answers replace the old)
    %llmcells replay refresh               # every call new (and re-recorded) until `replay on`
    %llmcells replay off

A request is recorded under the same key as the batch cache (`store.request_key`: provider,
model, endpoint, system prompt, temperature, max tokens, parameters, messages and the sample
index), so a changed prompt, parameter, model, temperature or system prompt is a new request.
A replayed call is marked `replayed` (the card says so), costs $0 in the ledger and `costs()`,
and keeps the original call's cost and latency in `Result.original` and the ledger's
`original_cost_usd` / `original_latency_s` columns. Only successful answers are recorded.

The file is JSON Lines, one answer per line with sorted keys, appended as calls finish (safe
from several kernels at once); a re-recorded request adds a line and the last one wins.
`compact()` rewrites it with one line per request.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ._log import quietly
from .config import settings
from .errors import LLMCellsWarning
from .engine import result_for
from .session import session
from .types import CallObserver, Result, Usage

#: the replay file when no path was given: beside the notebook (the kernel's working folder)
DEFAULT_FILE = "llmcells-replay.jsonl"

_lock = threading.RLock()
# The refresh marks and the open files' indexes live in the session (session.reset() forgets
# them): session.replay_refresh_all (`replay refresh`: make every call anew, and re-record it),
# session.replay_refresh_ids (calls, by call_id, to make anew once: `--refresh`) and
# session.replay_books (a file's index, by path).
_refresh_ids: set[str] = session.replay_refresh_ids
_books: "dict[Path, _Book]" = session.replay_books


def path() -> Path:
    """The replay file in use (relative paths are relative to the working folder)."""
    return Path(settings.replay_path or DEFAULT_FILE).expanduser().absolute()


def enabled() -> bool:
    return bool(settings.replay)


class _Book:
    """The recorded answers of one file, by key; re-read when another process appends."""

    def __init__(self, file: Path):
        self.file = file
        self.entries: dict[str, dict[str, Any] | bytes] = {}  # bytes: a line not parsed yet
        self.offset = 0
        self.ident: tuple[int, int] | None = None

    def sync(self) -> None:
        try:
            st = self.file.stat()
        except FileNotFoundError:
            self.entries.clear()
            self.offset, self.ident = 0, None
            return
        ident = (st.st_dev, st.st_ino)
        if ident != self.ident or st.st_size < self.offset:  # replaced or rewritten: read anew
            self.entries.clear()
            self.offset, self.ident = 0, ident
        if st.st_size == self.offset:
            return
        with open(self.file, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1  # only whole lines: another process may be mid-write
        for line in chunk[:end].splitlines():
            # Index by key without parsing the whole line (a big file loads ~10x faster); lines
            # are parsed when replayed. With sorted keys the first `"key": "` is the real one
            # (quotes inside strings are escaped); a damaged line is skipped at get().
            i = line.find(b'"key": "')
            j = line.find(b'"', i + 8) if i >= 0 else -1
            if j > i:
                self.entries[line[i + 8:j].decode("utf-8", "replace")] = line
        self.offset += end

    def get(self, key: str) -> dict[str, Any] | None:
        self.sync()
        entry = self.entries.get(key)
        if isinstance(entry, bytes):
            try:
                entry = json.loads(entry)
                if entry.get("key") != key:
                    raise ValueError("key mismatch")
            except (ValueError, AttributeError, RecursionError):
                self.entries.pop(key, None)  # a damaged line: a miss, never fatal
                return None
            self.entries[key] = entry
        return entry

    def append(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n").encode()
        self.file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _flock(fd)
            os.write(fd, line)  # one write of a whole line, under an exclusive lock
        finally:
            os.close(fd)


def _flock(fd: int) -> None:
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
    except (ImportError, OSError):
        pass


def _book() -> _Book:
    p = path()
    book = _books.get(p)
    if book is None:
        book = _books[p] = _Book(p)
    return book


def key(plan: Any) -> str:
    """The key plan's answer is recorded under (the batch cache's: no port, no call id)."""
    from .store import request_key

    return request_key(plan.request, plan.info.sample)


def _wants_new(plan: Any) -> bool:
    return session.replay_refresh_all or plan.info.call_id in _refresh_ids


def refresh(plans: Iterable[Any]) -> None:
    """Make these calls anew (no replay, no cache) and record their answers over the old ones."""
    with _lock:
        for plan in plans:
            plan.cache = False
            _refresh_ids.add(plan.info.call_id)


def lookup(plan: Any) -> dict[str, Any] | None:
    """The recorded answer of plan's request, or None (replay off, refresh, or not recorded)."""
    if not enabled() or _wants_new(plan):
        return None
    try:
        with _lock:
            return _book().get(key(plan))
    except OSError:  # an unreadable file is a miss, not a failed call
        return None


async def stage(plan: Any, observer: CallObserver, next: Any) -> Result:
    """The pipeline stage: with replay on, a recorded answer instead of a request ($0, marked
    replayed), and a new ok answer recorded once its ledger row is committed."""
    if not enabled():
        return await next(plan, observer)
    entry = lookup(plan)
    if entry is None:
        plan.keep.append(record)  # this call's own list (the finish stage made it)
        return await next(plan, observer)
    result = result_for(plan)
    result.text = entry.get("text") or ""
    result.reasoning = entry.get("reasoning") or ""
    result.response_model = entry.get("response_model")
    result.finish_reason = entry.get("finish_reason")
    result.usage = Usage(**{k: int(v) for k, v in (entry.get("usage") or {}).items()
                            if k in Usage.__dataclass_fields__})
    result.status, result.error, result.error_kind, result.attempts = "ok", None, None, 0
    result.replayed, result.cost_usd, result.price_source = True, 0.0, "replay"
    result.priced = True
    result.original = {k: entry.get(k) for k in ("cost_usd", "latency_s", "ttft_s", "call_id",
                                                  "recorded_at", "price_source")}
    if result.original["cost_usd"] is None:
        result.original["cost_usd"] = float("nan")
    result.latency_s = result.ttft_s = max(0.0, time.time() - result.started_at)
    quietly(observer.on_first_token, result.ttft_s)
    quietly(observer.on_text, result.text)
    quietly(observer.on_usage, result.usage)
    return result


def record(result: Result, plan: Any) -> None:
    """Keep an ok answer in the replay file (on the ledger's writer thread, after its row)."""
    try:
        if not enabled() or result.replayed or result.cached or not result.ok:
            return
        prompt = " ".join(plan.request.prompt.split())
        entry = {
            "key": key(plan), "model": result.model, "sample": result.sample,
            "prompt": prompt if len(prompt) <= 80 else prompt[:79] + "…",
            "text": result.text, "reasoning": result.reasoning or None,
            "response_model": result.response_model, "finish_reason": result.finish_reason,
            "usage": result.usage.as_dict(),
            "cost_usd": None if result.cost_usd != result.cost_usd else result.cost_usd,
            "price_source": result.price_source,
            "latency_s": result.latency_s, "ttft_s": result.ttft_s, "call_id": result.call_id,
            "recorded_at": round(result.started_at, 3),
        }
        with _lock:
            book = _book()
            book.append(entry)
            _refresh_ids.discard(result.call_id)
    except Exception as exc:  # recording must never fail a call
        _warn(exc)


_warned = False


def _warn(exc: BaseException) -> None:
    global _warned
    if not _warned:
        _warned = True
        import warnings

        warnings.warn(f"llmcells could not write the replay file {path()}: {exc}", LLMCellsWarning,
                      stacklevel=2)


def compact(file: str | os.PathLike | None = None) -> int:
    """Rewrite the replay file with one line per request (the latest), sorted by key, so that it
    diffs well; returns the number of lines kept."""
    p = Path(file).expanduser().absolute() if file else path()
    with _lock:
        book = _books.get(p) or _Book(p)
        book.sync()
        kept = {k: book.get(k) for k in list(book.entries)}
        lines = [json.dumps(kept[k], sort_keys=True, ensure_ascii=False) + "\n"
                 for k in sorted(kept) if kept[k] is not None]
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text("".join(lines), encoding="utf-8")
        os.replace(tmp, p)
        _books.pop(p, None)
    return len(lines)


def status() -> str:
    """One line: whether replay is on, its mode, the file and how many answers it holds."""
    if not enabled():
        return "Replay is off: every call goes to the provider. `%llmcells replay on` to record and replay."
    try:
        with _lock:
            book = _book()
            book.sync()
            n = len(book.entries)
    except OSError:
        n = 0
    mode = "refresh: every call is made anew and re-recorded" if session.replay_refresh_all else \
        "recorded answers are replayed at $0, new requests are recorded"
    return f"Replay on ({mode}); file {path()} holds {n} answer{'s' if n != 1 else ''}."


def command(words: list[str]) -> str:
    """`%llmcells replay on|off|refresh|compact|status [path=FILE]`: returns what to print."""
    state = None
    for word in words:
        w = word.strip()
        if w.lower().startswith("path="):
            value = w[5:].strip().strip("'\"")
            settings.update(replay_path=value or None)
            _books.clear()
            if state is None:
                state = "on"
        elif w.lower() in ("on", "off", "refresh", "compact", "status"):
            state = w.lower()
        else:
            from .errors import ConfigError

            raise ConfigError(f"replay takes on, off, refresh, compact, status or path=FILE, not {w!r}.")
    state = state or "status"
    if state == "on":
        settings.update(replay=True)
        session.replay_refresh_all = False
    elif state == "refresh":
        settings.update(replay=True)
        session.replay_refresh_all = True
    elif state == "off":
        settings.update(replay=False)
        session.replay_refresh_all = False
    elif state == "compact":
        return f"Compacted {path()}: {compact()} answers, one line each."
    return status()
