"""The HTTP layer under every adapter's SDK client: one response hook, shared by the three SDKs.

It refuses an HTML page served in place of the API (a captive portal or proxy), drops a kept-alive
connection after a body framed by Content-Length (junk past that length would break the next
request on it), rewrites the SSE that google-genai cannot parse (unless the adapter reads the body
itself), and lets an adapter find the httpx response of its call so it can close it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import zlib
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from html import unescape
from typing import Any

import httpx2
from .._log import swallowed
from .._loop import note_send

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)
_HTML_PEEK = 64 * 1024  # enough for a portal page's <title>, without reading a huge body

# The responses of the call being sent in this task, for adapters whose SDK keeps them private.
_captured: ContextVar[list[httpx2.Response] | None] = ContextVar("llmcells_responses", default=None)

# Set while an adapter sends a request whose SSE body it reads itself (google.py's lane, with
# _sse.EventStream): google-genai's rewrite is then not made.
_read_here: ContextVar[bool] = ContextVar("llmcells_sse_read_here", default=False)


class NotTheApiError(httpx2.TransportError):
    """A successful answer that is an HTML page (a captive portal or a proxy), not the API."""

    def __init__(self, host: str, title: str | None, request: httpx2.Request | None = None) -> None:
        self.host, self.title = host, title
        named = f' ("{title}")' if title else ""
        super().__init__(f"{host} answered with an HTML page{named} instead of the API",
                         request=request)


class StreamErrorEvent(Exception):
    """An error object inside a Gemini SSE stream (`data: {"error": {...}}`), raised where the
    body is read, so that every generator above ends with it (google-genai would raise it from
    its own top generator and leave the ones below suspended)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
        self.code = error.get("code") if isinstance(error.get("code"), int) else 0
        super().__init__(str(error.get("message") or "error event in the stream"))


# ----- the TLS context -------------------------------------------------------------------------------

_tls: dict[tuple[str | None, str | None], Any] = {}


def tls_context() -> Any:
    """One TLS context for every SDK client, made as httpx makes its own (so SSL_CERT_FILE and
    SSL_CERT_DIR still count): loading the CA bundle takes about 20 ms, once per client otherwise."""
    where = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    context = _tls.get(where)
    if context is None:
        context = _tls[where] = httpx2.create_ssl_context()
    return context


# ----- installing the hook -------------------------------------------------------------------------


def guard(client: httpx2.AsyncClient, *, gemini: bool = False) -> httpx2.AsyncClient:
    """client with the llmcells response hook added (once); returns client.

    gemini=True also rewrites SSE bodies into the one form google-genai reads, for the bodies it
    reads itself (the adapter's own reading, `body_read_here`, and the other SDKs' streams are
    read by _sse.EventStream, which takes any SSE).
    """
    hook = _gemini_hook if gemini else _hook
    hooks = client.event_hooks
    if hook not in hooks["response"]:
        client.event_hooks = {"request": [*hooks["request"], _send_hook],
                              "response": [*hooks["response"], hook]}
    return client


async def _send_hook(request: httpx2.Request) -> None:
    """The last point before a request goes to the transport: an interrupted run sends nothing
    more, and the run's record gets the time this request began sending (see _loop.Scope)."""
    note_send()


@contextlib.contextmanager
def body_read_here() -> Iterator[None]:
    """While the block sends a request (in this task), its SSE body is left as the server sent
    it: the adapter reads it itself, not google-genai."""
    token = _read_here.set(True)
    try:
        yield
    finally:
        _read_here.reset(token)


@contextlib.contextmanager
def capture_responses() -> Iterator[list[httpx2.Response]]:
    """Collect the httpx responses that arrive (in this task) while the block runs."""
    found: list[httpx2.Response] = []
    token = _captured.set(found)
    try:
        yield found
    finally:
        _captured.reset(token)


async def _hook(response: httpx2.Response) -> None:
    await _check(response, gemini=False)


async def _gemini_hook(response: httpx2.Response) -> None:
    await _check(response, gemini=True)


def media_type(response: httpx2.Response) -> str:
    """The response's media type, lower case, without its parameters ("" when none is given)."""
    return response.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _check(response: httpx2.Response, *, gemini: bool) -> None:
    found = _captured.get()
    if found is not None:
        found.append(response)
    if response.has_redirect_location:
        return  # httpx follows it (or the SDK reports the status); the final answer is checked
    media = media_type(response)
    if response.is_success and media in _HTML_TYPES:
        url = response.request.url
        raise NotTheApiError(f"{url.host}:{url.port}" if url.port else url.host,
                             await _html_title(response), request=response.request)
    fix_sse = (gemini and response.status_code == 200 and media == "text/event-stream"
               and not _read_here.get())
    # A body framed by Content-Length may be followed by bytes the server should not have sent;
    # h11 keeps them, and the next request on that connection would read them as its answer.
    # Real streams are chunked, so this closes only after errors and odd proxies: one reconnect.
    fixed_length = ("content-length" in response.headers
                    and response.extensions.get("http_version", b"HTTP/1.1") == b"HTTP/1.1")
    if fix_sse and not _decodable(response):
        fix_sse = False  # httpx decodes it above this layer: the rewrite would read compressed bytes
    if fix_sse or fixed_length:
        decoder = _decoder(response) if fix_sse else None
        response.stream = _Body(response, fix_sse=fix_sse, drop_connection=fixed_length,
                                decoder=decoder)


_OURS = ("", "identity", "gzip", "x-gzip", "deflate")  # the Content-Encodings _decoder handles


def _decodable(response: httpx2.Response) -> bool:
    """Whether the SSE rewrite can read the body's lines: no Content-Encoding, or one _decoder
    decodes. Any other (br or zstd, when httpx has their packages; a list of codings) httpx
    decodes after the rewrite has read the body, so the rewrite must let it through as it is:
    it took the compressed bytes for lines, rejoined them with LF and dropped some, and the
    stream could no longer be decoded."""
    return response.headers.get("content-encoding", "").strip().lower() in _OURS


def _decoder(response: httpx2.Response) -> Any:
    """For an SSE body to rewrite: a decompressor for its gzip or deflate Content-Encoding
    (the header is then dropped, so httpx does not decode it again), or None. The rewrite reads
    lines, and a compressed body has none: without this, it held every event of a gzip stream
    until the last one."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
    elif encoding == "deflate":
        decoder = zlib.decompressobj()
    else:  # identity (see _decodable for the encodings httpx decodes itself)
        return None
    del response.headers["content-encoding"]
    return decoder


async def _html_title(response: httpx2.Response) -> str | None:
    """The page's <title>, read from at most the first 64 KB of the body."""
    head = b""
    chunks = response.aiter_bytes()
    try:
        async for chunk in chunks:
            head += chunk
            if len(head) >= _HTML_PEEK or _TITLE.search(head):
                break
    except httpx2.HTTPError:
        pass
    finally:
        await chunks.aclose()  # never leave the generator for garbage collection to close
    return html_title(head)


def html_title(body: bytes | str | None) -> str | None:
    """The text of an HTML page's <title>, on one line and short, or None."""
    if not body:
        return None
    raw = body.encode("utf-8", "replace") if isinstance(body, str) else body
    m = _TITLE.search(raw)
    if not m:
        return None
    title = " ".join(unescape(m.group(1).decode("utf-8", "replace")).split())
    return (title[:77] + "…" if len(title) > 80 else title) or None


def is_html(response: Any) -> bool:
    """True when an httpx response is an HTML page."""
    headers = getattr(response, "headers", None)
    try:
        media = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    except AttributeError:
        return False
    return media in _HTML_TYPES


# ----- the body wrapper ----------------------------------------------------------------------------


class _Body(httpx2.AsyncByteStream):
    """The response body as the SDK reads it, with the fixes `_check` decided on."""

    def __init__(self, response: httpx2.Response, *, fix_sse: bool, drop_connection: bool,
                 decoder: Any = None) -> None:
        self._response = response
        self._inner = response.stream
        self._decoder = decoder  # a zlib decompressor: the body is decoded here, chunk by chunk
        self._sse = _SseFixer() if fix_sse else None
        self._drop = drop_connection
        self._it: AsyncIterator[bytes] | None = None

    @property
    def elapsed(self) -> Any:
        """httpx reads the response's elapsed time from its stream."""
        return getattr(self._inner, "elapsed", None)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        inner = self._it = self._inner.__aiter__()
        try:
            async for chunk in inner:
                if self._decoder is not None:
                    try:
                        chunk = self._decoder.decompress(chunk)
                    except zlib.error as exc:
                        raise httpx2.DecodingError(str(exc)) from None
                if self._sse is not None:
                    chunk = self._sse.feed(chunk)
                if chunk:
                    yield chunk
                if self._sse is not None and self._sse.error is not None:
                    raise StreamErrorEvent(self._sse.error)
            if self._decoder is not None:
                rest = self._decoder.flush()
                if rest:
                    yield self._sse.feed(rest) if self._sse is not None else rest
            if self._sse is not None:
                tail = self._sse.flush()
                if tail:
                    yield tail
        finally:
            await _aclose(inner)

    async def aclose(self) -> None:
        if self._drop:
            # Before the connection goes back to the pool, so no other request can take it:
            # httpcore then finds the socket closed and opens a new one.
            stream = self._response.extensions.get("network_stream")
            if stream is not None:
                try:
                    await stream.aclose()
                except Exception as exc:
                    swallowed("dropping a connection", exc)
        if self._it is not None and not getattr(self._it, "ag_running", False):
            await _aclose(self._it)
        await self._inner.aclose()


async def _aclose(it: Any) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        await aclose()


def _is_plain(chunk: bytes) -> bool:
    """Whether chunk is whole LF-ended lines, each "data: ..." or empty: what google-genai reads.

    Counted, not matched with a pattern (this runs for every chunk): each line starts at the
    chunk's start or after a LF, and the check passes only when every start is "data: " or an
    empty line. (Two empty lines in a row are counted once, and fail over to the rewrite.)
    """
    if not chunk.endswith(b"\n") or b"\r" in chunk or b"data: \n" in chunk:
        return False  # (an empty data line: JSON never ends a line with ": ")
    starts = (chunk.startswith(b"data: ") + chunk.count(b"\ndata: ")
              + chunk.startswith(b"\n") + chunk.count(b"\n\n"))
    return starts == chunk.count(b"\n")


class _SseFixer:
    """Rewrites an SSE byte stream into the subset google-genai parses.

    google-genai (3.x) reads an SSE line only if it starts with exactly "data: ", and treats
    every other non-empty line as raw JSON: a comment (": ping"), an "event:" or "id:" line, or
    "data:" with no space then fails as "Failed to parse response as JSON". Here comments, "id:"
    and "retry:" lines go, "event:" lines go (and with them whole "event: ping" events), empty
    "data:" lines go, "data:" gets its space, and a byte order mark at the start goes (SSE
    ignores one). Any other line (the raw JSON genai also accepts) passes unchanged.
    Lines are rejoined with LF; the split is on CR, LF or CRLF, as SSE defines. An error event
    (`data: {"error": ...}`) ends the stream: `error` holds its JSON.
    """

    def __init__(self) -> None:
        self._start = True  # nothing read yet: a byte order mark may come first
        self._partial = b""
        self._cr = False  # the last chunk ended with CR: a following LF belongs to it
        self._skipping = False  # inside an "event: ping" event
        self.error: dict[str, Any] | None = None  # an error event's JSON: the stream ends there

    def feed(self, chunk: bytes) -> bytes:
        """The rewritten lines that chunk completes."""
        if self._start and chunk:
            self._start = False
            if chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
        if not self._partial and not self._cr and not self._skipping and b'{"error"' not in chunk:
            plain = chunk.replace(b"\r\n", b"\n") if b"\r" in chunk else chunk
            if _is_plain(plain):
                return plain  # the usual chunk: whole "data: ..." lines, as the rewrite would give
        if self._cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._cr = chunk.endswith(b"\r")
        lines = (self._partial + chunk).splitlines(keepends=True)
        self._partial = b""
        if lines and not lines[-1].endswith((b"\n", b"\r")):
            self._partial = lines.pop()
        out: list[bytes] = []
        for line in lines:
            fixed = self._line(line.rstrip(b"\r\n"))
            if self.error is not None:
                break  # what came before the error event still goes through
            if fixed is not None:
                out.append(fixed)
        return b"".join(out)

    def flush(self) -> bytes:
        """The last line, if the body did not end with a line break."""
        line, self._partial = self._partial, b""
        fixed = self._line(line) if line else None
        return fixed[:-1] if fixed else b""

    def _line(self, line: bytes) -> bytes | None:
        if not line:
            skipped, self._skipping = self._skipping, False
            return None if skipped else b"\n"
        if self._skipping:
            return None
        if line.startswith(b":") or line.startswith((b"id:", b"retry:")) or line in (b"id", b"retry"):
            return None
        if line.startswith(b"event:") or line == b"event":
            self._skipping = line[6:].strip() == b"ping"
            return None
        if line.startswith(b"data:"):
            value = line[5:].lstrip(b" ")
            if not value:
                return None  # no event of any provider is empty
            if value.startswith(b'{"error"'):
                self.error = _json_object(value)
            return b"data: " + value + b"\n"
        return line + b"\n"


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
