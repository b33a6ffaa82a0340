"""Keeps the prices genai-prices' bundled data gave between processes, in one small JSON file
under the llmcells home, so that a fresh process prices its calls without loading genai-prices.

Loading genai-prices and its data costs a script's first call about 30 ms of CPU, more than the
rest of llmcells' own work for that call. The file (`$LLMCELLS_HOME/prices.json`) maps a lookup
(provider, model, base URL, service tier, processing) to what pricing derived for it: its price
levels and the UTC day they hold for (None when the price has no dates), or no levels for a model
genai-prices does not know. pricing writes an entry the first time it derives one from the
bundled data, and reads entries only while genai-prices is not loaded in the process (nothing can
have replaced its data then).

Entries are grouped by the identity of everything they were derived from (the size and
modification time of genai-prices' data module and of llmcells' pricing code, and llmcells'
version), and only the group of this process's identity is read: an upgrade or an edit starts a
new group. The file keeps the MAX_GROUPS groups written last, so that two environments sharing
one home (a notebook's and a script's) don't wipe each other's. A file that can't be read or
parsed counts as empty; one that can't be written is left alone. pricing checks every entry
again before use: this is a cache, never a source of prices.
"""

from __future__ import annotations

import atexit
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from ._log import swallowed
from .config import home

FILE_NAME = "prices.json"
#: entries kept at most per group, the ones kept last (a process reads the whole file: it stays
#: small, and a model seldom used is derived anew)
MAX_ENTRIES = 1024
#: groups (identities) kept in the file, the ones written last
MAX_GROUPS = 4
#: the format of the file; a change of it is a change of identity
FORMAT = 1
#: new entries a process writes at once; later ones are written when it exits
WRITES_AT_ONCE = 16

_writes = 0                     # entries this process has written at once
_pending: set[Path] = set()     # files with entries left for the exit

_lock = threading.Lock()
_files: dict[Path, "_File"] = {}


class _File:
    """The file of one llmcells home: its entries as read (or last written) and their identity."""

    def __init__(self, path: Path, identity: str) -> None:
        self.path, self.identity = path, identity
        self.entries: dict[str, Any] = _read(path, identity)
        self.writable = True


def identity(sources: Iterable[str], version: str) -> str:
    """The identity of what entries are derived from: each source file's size and modification
    time (a missing file counts as such), the version given and the file's FORMAT."""
    parts = [str(FORMAT), version]
    for source in sources:
        try:
            st = os.stat(source)
            parts.append(f"{source}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{source}:missing")
    return "|".join(parts)


def _key(parts: tuple) -> str:
    return json.dumps(parts, separators=(",", ":"))


def _file(ident: str) -> _File:
    path = home() / FILE_NAME
    with _lock:
        found = _files.get(path)
        if found is None or found.identity != ident:
            found = _files[path] = _File(path, ident)
        return found


def get(parts: tuple, ident: str) -> Any:
    """The entry kept for the lookup parts (a tuple of str and None), or None."""
    return _file(ident).entries.get(_key(parts))


def entries(ident: str) -> dict[str, Any]:
    """Every entry kept for this identity, by key (the JSON list of a lookup's parts)."""
    return dict(_file(ident).entries)


def keep(parts: tuple, entry: Any, ident: str) -> None:
    """Keep entry (JSON-able) for the lookup parts: in memory, and in the file unless it holds
    the same already. The first WRITES_AT_ONCE new entries of a process are written at once;
    after those (a repricing of many models), the rest once, when the process exits."""
    global _writes
    f = _file(ident)
    key = _key(parts)
    with _lock:
        if f.entries.get(key) == entry:
            return
        f.entries[key] = entry
        if not f.writable:
            return
        if _writes >= WRITES_AT_ONCE:
            if not _pending:
                atexit.register(flush)   # (flush unregisters itself: once per batch of entries)
            _pending.add(f.path)
            return
        _writes += 1
        _save(f)


def flush() -> None:
    """Write the entries kept since the last write (run at exit)."""
    atexit.unregister(flush)
    with _lock:
        for path in list(_pending):
            f = _files.get(path)
            if f is not None and f.writable:
                _save(f)
        _pending.clear()


def _save(f: _File) -> None:
    """Write f's entries to its file, beside the ones other processes wrote meanwhile (under _lock)."""
    groups = _groups(f.path)
    mine = groups.pop(f.identity, {}).get("entries", {})
    for key, entry in f.entries.items():   # this process's entries, as the newest
        mine.pop(key, None)
        mine[key] = entry
    if len(mine) > MAX_ENTRIES:
        mine = dict(list(mine.items())[-MAX_ENTRIES:])
    f.entries = mine
    kept = sorted(groups.items(), key=lambda kv: kv[1].get("written", 0))[-(MAX_GROUPS - 1):]
    groups = {**dict(kept), f.identity: {"written": time.time(), "entries": mine}}
    try:
        _write(f.path, {"format": FORMAT, "groups": groups})
    except OSError as exc:
        f.writable = False
        swallowed(f"writing the price file {f.path} (prices are derived anew each process)", exc)


def _groups(path: Path) -> dict[str, dict[str, Any]]:
    """The file's groups, {identity: {"written": epoch seconds, "entries": {...}}}; only
    well-formed ones, none for a missing or unreadable file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        swallowed(f"reading the price file {path} (read as empty)", exc)
        return {}
    groups = data.get("groups") if isinstance(data, dict) and data.get("format") == FORMAT else None
    if not isinstance(groups, dict):
        return {}
    return {k: g for k, g in groups.items() if isinstance(g, dict)
            and isinstance(g.get("entries"), dict) and isinstance(g.get("written", 0), (int, float))}


def _read(path: Path, ident: str) -> dict[str, Any]:
    """The entries of ident's group in the file at path."""
    return dict(_groups(path).get(ident, {}).get("entries", {}))


def _write(path: Path, data: dict[str, Any]) -> None:
    """Write data to path at once (a temporary file beside it, then a rename): a process reading
    it meanwhile sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=".prices-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
