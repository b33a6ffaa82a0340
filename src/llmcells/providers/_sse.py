"""Server-sent events read from a streamed httpx response in one pass, each event's data parsed as JSON.

The openai and anthropic SDKs decode SSE line by line in Python, through four generators per
event (half of what their streamed request path costs on a 32-event answer), and the openai SDK
fails a call on an event without data (`retry: 3000`, `event: keepalive`). Here the bytes are
split into events where a blank line ends them, the usual event (one `data:` line, with or without
an `event:` line before it) is taken whole, and any other is read field by field as the SSE
specification says: CR, LF or CRLF end a line, comments and unknown fields are ignored, `data:`
lines join with LF, an event with no data is not dispatched, a byte order mark at the start is
dropped, and an event the body ends in the middle of is dropped.

What an event means (the end of the stream, an error, an event to skip) is the adapter's: it
passes `read(name, data, response)`, which returns the event's JSON, SKIP or END, or raises its
SDK's error. An SDK that reads more than SSE (google-genai also takes raw JSON lines, and the
event the body ends in) is matched with `other=` and `last=True`.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from typing import Any

from .._log import swallowed

#: read() results: SKIP drops the event, END ends the stream there (the rest of the body is read
#: for at most DRAIN_S, so that the connection can be used again, then the response is closed)
SKIP = object()
END = object()

#: how long the body's rest may take after END (the openai SDK's own wait after [DONE])
DRAIN_S = 0.1

_BOM = b"\xef\xbb\xbf"

Reader = Callable[[str | None, bytes, Any], Any]

#: other=: called with each line that is no SSE field (not data, event, id, retry or a comment),
#: and with None at the body's end; bytes it returns are dispatched as an event's data
Lines = Callable[[bytes | None], bytes | None]


class EventStream:
    """The events of one streamed response: an async iterator of what `read(name, data,
    response)` makes of each (name: the event's `event:` field or None; data: its non-empty
    `data:` lines joined with LF, as bytes), with the response as `response` and `close()`, in
    the place of the SDK's stream.

    other: what the adapter makes of lines that are no SSE field (see `Lines`); by default they
    are ignored, as SSE says. last=True: an event the body ends in the middle of (no blank line
    after it) is dispatched too; by default it is dropped, as SSE and the openai and anthropic
    SDKs drop it."""

    def __init__(self, response: Any, read: Reader, *, other: Lines | None = None,
                 last: bool = False) -> None:
        self.response = response
        self._read = read
        self._other = other
        self._last = last
        self._chunks = response.aiter_bytes()
        self._ready: deque[tuple[str | None, bytes]] = deque()
        self._pending: list[bytes] = []  # the start of an event that no blank line has ended yet
        self._start = True  # nothing read yet: a byte order mark may come first
        self._head = b""  # the body's first bytes while they may still be a byte order mark
        self._cr = False  # the last chunk ended with CR: an LF first in the next one belongs to it
        self._over = False

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Any:
        ready = self._ready
        while True:
            while not ready:
                if self._over:
                    raise StopAsyncIteration
                try:
                    chunk = await self._chunks.__anext__()
                except StopAsyncIteration:
                    self._over = True
                    self._end()
                    continue
                if chunk:
                    self._feed(chunk)
            name, data = ready.popleft()
            item = self._read(name, data, self.response)
            if item is SKIP:
                continue
            if item is END:
                await self._drain()
                raise StopAsyncIteration
            return item

    def _feed(self, chunk: bytes) -> None:
        if self._start:  # (a byte order mark may come in pieces)
            head = self._head = self._head + chunk
            if len(head) < 3 and _BOM.startswith(head):
                return
            self._start = False
            chunk = head[3:] if head.startswith(_BOM) else head
        if self._cr:  # the CR that ended the last chunk was a line's end: this LF is its pair
            self._cr = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._cr = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if not chunk:
            return  # (the LF of a CRLF cut after its CR: an empty piece would hide the line end)
        pending = self._pending
        if pending:
            if b"\n\n" not in chunk and not (pending[-1].endswith(b"\n") and chunk.startswith(b"\n")):
                pending.append(chunk)  # still inside one event (joined once, when it ends)
                return
            chunk = b"".join(pending) + chunk
            pending.clear()
        blocks = chunk.split(b"\n\n")
        tail = blocks.pop()
        if tail:
            pending.append(tail)
        ready = self._ready
        for block in blocks:
            if block[:6] == b"data: " and len(block) > 6 and b"\n" not in block:
                ready.append((None, block[6:]))  # the usual event: one data line
                continue
            if block[:7] == b"event: ":
                first, _, rest = block.partition(b"\n")
                if rest[:6] == b"data: " and len(rest) > 6 and b"\n" not in rest:
                    ready.append((first[7:].decode("utf-8", "replace"), rest[6:]))
                    continue
            if block:
                self._fields(block)

    def _end(self) -> None:
        """At the body's end: the event it ends in, and what other= still holds (see __init__)."""
        if self._last and self._pending:
            block = b"".join(self._pending)
            self._pending.clear()
            self._fields(block)
        if self._other is not None:
            rest = self._other(None)
            if rest:
                self._ready.append((None, rest))

    def _fields(self, block: bytes) -> None:
        """The events in block (lines that a blank line ended), read field by field."""
        name: str | None = None
        data: list[bytes] = []
        for line in block.split(b"\n"):
            if not line:  # a blank line inside the block: an event ends here
                if data:
                    self._ready.append((name, b"\n".join(data)))
                name, data = None, []
                continue
            if line[:1] == b":":
                continue  # a comment
            field, colon, value = line.partition(b":")
            if colon and value[:1] == b" ":
                value = value[1:]
            if field == b"data":
                if value:  # (an empty data line: JSON never is one)
                    data.append(value)
            elif field == b"event":
                name = value.decode("utf-8", "replace") or None
            elif self._other is not None and field not in (b"id", b"retry"):
                whole = self._other(line)
                if whole is not None:
                    if data:  # the event before it comes first
                        self._ready.append((name, b"\n".join(data)))
                        name, data = None, []
                    self._ready.append((None, whole))
            # (id, retry and unknown fields say nothing about the answer)
        if data:
            self._ready.append((name, b"\n".join(data)))

    async def _drain(self) -> None:
        """Read the body's rest (briefly), then close the response."""
        self._over = True
        self._ready.clear()
        try:
            async with asyncio.timeout(DRAIN_S):
                async for _ in self._chunks:
                    pass
        except TimeoutError:
            pass  # a server that holds the body open after its end: the connection is dropped
        except Exception as exc:  # a broken rest: the answer is whole already
            swallowed("reading the rest of a finished stream", exc)
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the body's iterator and the response (the connection goes back to the pool
        only when the body was read to its end)."""
        self._over = True
        self._ready.clear()
        try:
            if not getattr(self._chunks, "ag_running", False):  # (never while it reads)
                await self._chunks.aclose()
        finally:
            await self.response.aclose()


def json_of(data: bytes) -> Any:
    """An event's data as JSON; data that is not UTF-8, or nested deeper than Python's parser
    can go, raises the same error as broken JSON."""
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(f"not UTF-8: {exc.reason}", data.decode("utf-8", "replace"),
                                   exc.start) from None
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply to read", "", 0) from None
