"""A minimal HTTP/1.1 layer on asyncio streams: request parsing and response writing.

Only what the SDKs use: keep-alive, `Content-Length` (or chunked) request bodies, fixed-length
responses and chunked streaming responses that are flushed event by event.
"""

from __future__ import annotations

import array
import asyncio
import email.utils
import socket
import struct
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

MAX_HEAD = 64 * 1024


class ClientGone(Exception):
    """The client closed the connection (or sent something unusable); drop it quietly."""


@dataclass
class Request:
    """A parsed HTTP request."""

    method: str
    target: str
    path: str
    query: dict[str, str]
    version: str
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request; None when the client closed an idle keep-alive connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise ClientGone from exc
    except (asyncio.LimitOverrunError, ConnectionError) as exc:
        raise ClientGone from exc
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ", 2)
    except ValueError as exc:
        raise ClientGone from exc
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    try:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _read_chunked(reader)
        else:
            body = await reader.readexactly(int(headers.get("content-length") or 0))
    except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
        raise ClientGone from exc
    split = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
    return Request(method.upper(), target, split.path, query, version, headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers expected: just the final CRLF
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


class Response:
    """Writes one response to a connection; every write is drained so back-pressure and
    disconnects surface as `ClientGone` right away."""

    def __init__(self, writer: asyncio.StreamWriter, keep_alive: bool) -> None:
        self.writer = writer
        self.keep_alive = keep_alive
        self.started = False
        self.gone = False  # the client left, or the connection was dropped on purpose

    def _head(self, status: int, headers: dict[str, str]) -> bytes:
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        if status == 529:
            reason = "Site is overloaded"
        lines = [f"HTTP/1.1 {status} {reason}",
                 f"date: {email.utils.formatdate(usegmt=True)}",
                 "server: llmcells-sim",
                 f"connection: {'keep-alive' if self.keep_alive else 'close'}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _write(self, data: bytes) -> None:
        if self.writer.is_closing():
            self.gone = True
            raise ClientGone
        self.writer.write(data)
        try:
            await self.writer.drain()
        except ConnectionError as exc:
            self.gone = True
            raise ClientGone from exc

    async def send(self, status: int, headers: dict[str, str], body: bytes, trailing: bytes = b"") -> None:
        """A complete response with a `Content-Length`; `trailing` bytes follow the body in the
        same write, beyond the declared length (junk left on a kept-alive connection)."""
        self.started = True
        headers = {**headers, "content-length": str(len(body))}
        await self._write(self._head(status, headers) + body + trailing)

    async def send_truncated(self, status: int, headers: dict[str, str], body: bytes) -> None:
        """Promise the whole body, send half of it, then hang up."""
        self.started = True
        headers = {**headers, "content-length": str(len(body))}
        await self._write(self._head(status, headers) + body[: len(body) // 2])
        self.abort()

    async def start_chunked(self, status: int, headers: dict[str, str]) -> None:
        """Send the status line and headers now; the body follows with `chunk()`."""
        self.started = True
        await self._write(self._head(status, {**headers, "transfer-encoding": "chunked"}))

    async def start_fixed(self, status: int, headers: dict[str, str], length: int) -> None:
        """Send the status line and headers of a body of `length` bytes, sent later with `raw()`."""
        self.started = True
        await self._write(self._head(status, {**headers, "content-length": str(length)}))

    async def chunk(self, data: bytes) -> None:
        """Send (and flush) one chunk of a chunked body."""
        if data:
            await self._write(b"%x\r\n%s\r\n" % (len(data), data))

    async def end(self, trailing: bytes = b"") -> None:
        """Terminate a chunked body cleanly; `trailing` bytes follow in the same write."""
        await self._write(b"0\r\n\r\n" + trailing)

    async def raw(self, data: bytes) -> None:
        """Send bytes without chunk framing (used to break a chunk on purpose)."""
        await self._write(data)

    def abort(self) -> None:
        """Drop the connection at once, whatever was sent so far."""
        self.keep_alive = False
        self.gone = True
        self.writer.transport.abort()

    async def reset(self) -> None:
        """Drop the connection with a TCP reset (RST), as a crashed proxy or peer does.

        What was sent before still reaches the client: a reset discards the data still queued
        in the kernel, so this waits (up to 2 s) until the client has acknowledged all of it.
        The client's next read then fails with "connection reset by peer".
        """
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            await _acknowledged(sock)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:  # already closed: nothing to reset
                pass
        self.abort()


async def _acknowledged(sock: socket.socket, limit: float = 2.0) -> None:
    """Wait until the peer has acknowledged every byte sent on sock (Linux; elsewhere at once)."""
    try:
        import fcntl
        import termios
    except ImportError:
        return
    outq = getattr(termios, "TIOCOUTQ", None)
    if outq is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    buf = array.array("i", [0])
    while loop.time() < deadline:
        try:
            fcntl.ioctl(sock.fileno(), outq, buf)
        except (OSError, ValueError):
            return
        if buf[0] == 0:
            return
        await asyncio.sleep(0.002)
