"""The HTTP service's gate: what a request must pass before any handler sees it (its connection:
how many a client holds open and how long its head may take; its Host and Origin, the token,
the client's rate and concurrency, the body's type, size and encoding), the Policy that sets
it, and the scrubbing of what goes back (keys, URL credentials, local paths).

serve.py builds the app behind it; docs/security.md says what it guards against.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import math
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

from fastapi.responses import JSONResponse

from .errors import redact

#: the largest request body accepted, in bytes
MAX_BODY = 1_000_000
#: requests a client may make per minute (a token bucket of this size, refilled evenly)
RATE_PER_MINUTE = 120
#: requests a client may have running at once
MAX_CONCURRENT = 8
#: connections a client may hold open at once (idle, still sending a request's head, or busy)
MAX_CONNECTIONS = 64
#: seconds a connection may take to send a request's head, counted from when it opened or its
#: last response ended (a request's head is a few hundred bytes; nginx allows 60 s)
HEAD_TIMEOUT = 10.0


@dataclass
class Policy:
    """What the service lets its clients do (set from `serve`'s options)."""

    token: str | None = None                      # None: no token (loopback only, --no-token)
    bound_host: str = "127.0.0.1"
    allow_hosts: tuple[str, ...] = ()              # more Host names accepted ("*": any)
    allow_origins: tuple[str, ...] = ()            # cross-origin pages allowed ("*": any)
    allow_agents: bool = False
    expose_prompts: bool = False
    max_body: int = MAX_BODY
    max_timeout: float | None = None               # None: the configured llmcells timeout
    rate_per_minute: float = RATE_PER_MINUTE       # 0: no rate limit
    max_concurrent: int = MAX_CONCURRENT           # 0: no concurrency limit
    max_connections: int = MAX_CONNECTIONS         # open connections per client; 0: no limit
    head_timeout: float = HEAD_TIMEOUT             # seconds to send a request's head
    hosts: frozenset[str] = field(init=False, default=frozenset())

    def __post_init__(self) -> None:
        names = {host_name(h) for h in (*self.allow_hosts, self.bound_host)}
        self.hosts = frozenset(names | {"localhost"})


# ----- what goes back -------------------------------------------------------------------------

#: absolute paths under the usual roots (and ~/...), where the text is not the model's own
_PATH = re.compile(r"(?<![\w/.:~-])(?:~/|/(?:home|Users|root|tmp|var|etc|private|opt|usr|mnt|srv|"
                   r"work|run|proc|dev|Volumes|nix|snap|media|lib|bin|sbin|data)(?=/|\b))"
                   r"[^\s'\"<>|,;()\[\]{}]*|\b[A-Za-z]:\\[^\s'\"<>|,;]*")
#: what may follow a folder in a path (the rest of the path; a colon that ends it is the text's)
_PATH_TAIL = r"(?:[^\s'\"<>|,;()\[\]{}:]|:(?![\s]|$))*"
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s@'\"]+@", re.I)
_QUERY_SECRET = re.compile(r"([?&](?:key|api[_-]?key|token|access_token|sig|signature|password)=)"
                           r"[^&\s'\"]+", re.I)


@functools.cache
def _local_prefixes() -> re.Pattern[str]:
    """This machine's own folders (the service's working and home folders do not change), each
    with the rest of the path that follows it."""
    seen = [os.environ.get("LLMCELLS_HOME"), str(Path.home()), os.getcwd(), tempfile.gettempdir(),
            sys.prefix]
    folders = sorted({p.rstrip("/\\") for p in seen if p and len(p.rstrip("/\\")) > 1},
                     key=len, reverse=True)
    if not folders:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile("(?:" + "|".join(map(re.escape, folders)) + r")(?![\w.-])" + _PATH_TAIL)


def scrub(text: str) -> str:
    """text without keys (redact), URL credentials or secrets in a query, or local paths."""
    text = redact(text)
    text = _local_prefixes().sub("<path>", text)
    text = _USERINFO.sub(r"\1", text)
    text = _QUERY_SECRET.sub(r"\1***", text)
    return _PATH.sub("<path>", text)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one error shape: {"error": one scrubbed line}."""
    line = (scrub(str(message)).splitlines() or ["error"])[0][:500]
    return JSONResponse({"error": line}, status_code=status, headers=headers)


# ----- the gate ---------------------------------------------------------------------------------


def host_name(host: str) -> str:
    """A Host header's name, without port or brackets, lower case, without a final dot."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def ip_of(host: str) -> Any:
    """host as an ip_address, or None when it is a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    host = host_name(host)
    if host == "localhost":
        return True
    ip = ip_of(host)
    return ip is not None and ip.is_loopback


def client_of(address: str | None) -> str:
    """The client a connection's address counts as, for the per-client limits: every loopback
    address is one client (a local process may connect from any of 127.0.0.0/8, so counting
    127.0.0.2 apart from 127.0.0.1 gave it 16 million fresh buckets and connection caps), an
    IPv6 address counts by its /64 (what one host is given), an IPv4-mapped one as its IPv4."""
    ip = ip_of(address or "")
    if ip is None:
        return address or "?"
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.version == 6:
        return str(ipaddress.IPv6Network((int(ip), 64), strict=False))
    return str(ip)


def digest(token: str) -> bytes:
    """The token's sha256: compared with hmac.compare_digest, it takes the same time whatever
    the length of what a client sent."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class _Limits:
    """Per-client token buckets (rate) and counts of requests running (concurrency)."""

    def __init__(self, per_minute: float, concurrent: int) -> None:
        self.capacity, self.rate = float(per_minute), per_minute / 60.0
        self.concurrent = concurrent
        self.buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when)
        self.running: dict[str, int] = {}

    def take(self, client: str) -> float:
        """0 when client may make a request now (one token taken), else seconds to wait."""
        if not self.rate:
            return 0.0
        now = time.monotonic()
        tokens, when = self.buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - when) * self.rate)
        if tokens < 1:
            self.buckets[client] = (tokens, now)
            return (1 - tokens) / self.rate
        self.buckets[client] = (tokens - 1, now)
        if len(self.buckets) > 10_000:  # forget clients whose buckets are full again
            self.buckets = {c: b for c, b in self.buckets.items()
                            if b[0] + (now - b[1]) * self.rate < self.capacity}
        return 0.0

    def enter(self, client: str) -> bool:
        if self.concurrent and self.running.get(client, 0) >= self.concurrent:
            return False
        self.running[client] = self.running.get(client, 0) + 1
        return True

    def leave(self, client: str) -> None:
        left = self.running.get(client, 1) - 1
        if left > 0:
            self.running[client] = left
        else:
            self.running.pop(client, None)


#: paths that may take the token from the query string: what a browser opens by URL
_BROWSER_PATHS = ("/docs", "/openapi.json")
#: the liveness probe: no token, and nothing said
LIVENESS_PATH = "/livez"


class Guard:
    """ASGI middleware, before any handler, in this order: Host (DNS rebinding), Origin
    (cross-site pages; CORS for the allowed ones), the liveness probe, the token (constant time),
    the client's rate, the body's declared type and size, the client's concurrency (a body still
    being read counts), then the body itself (size also when chunked, UTF-8). Pure ASGI, not BaseHTTPMiddleware, so that streamed responses and
    disconnects pass through. The body is read here, whole, and handed on."""

    def __init__(self, app: Any, policy: Policy):
        self.app, self.policy = app, policy
        self.digest = digest(policy.token) if policy.token is not None else None
        self.limits = _Limits(policy.rate_per_minute, policy.max_concurrent)
        bound = ip_of(host_name(policy.bound_host))
        self.wildcard = bound is not None and bound.is_unspecified

    def host_ok(self, host: str | None) -> bool:
        if host is None:
            return False
        name = host_name(host)
        if "*" in self.policy.allow_hosts or name in self.policy.hosts or is_loopback(name):
            return True
        # bound to every address: an IP literal is the machine's own (a rebinding page always
        # comes by a name), names need --allow-host
        return self.wildcard and ip_of(name) is not None

    def origin_ok(self, origin: str, host: str) -> bool:
        allowed = self.policy.allow_origins
        if "*" in allowed or origin.rstrip("/") in allowed:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()

    def token_ok(self, headers: dict[str, str], scope: Any) -> bool:
        if self.digest is None:
            return True
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            given = ""
            if scope["method"] == "GET" and scope["path"] in _BROWSER_PATHS:
                query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
                given = (query.get("token") or [""])[0]
        # sha256 digests, so that the comparison takes the same time whatever the length
        return hmac.compare_digest(digest(given.strip()), self.digest)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def answer(response: Any) -> None:
            await response(scope, receive, send)

        send = _with_headers(send, _NO_STORE, replace=True)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host")
        if not self.host_ok(host):
            return await answer(error_response(403, "This Host is not served here (start the service with "
                                            "--allow-host NAME to serve a name)."))
        origin = headers.get("origin")
        cors: list[tuple[bytes, bytes]] = []
        if origin is not None:
            if not self.origin_ok(origin, host or ""):
                return await answer(error_response(403, "Cross-origin requests are refused (start the service "
                                                "with --allow-origin ORIGIN to allow a page)."))
            cors = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
            if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
                return await answer(_preflight(cors))
        if cors:
            send = _with_headers(send, cors)
        if scope["path"] == LIVENESS_PATH and scope["method"] in ("GET", "HEAD"):
            return await answer(JSONResponse({"status": "ok"}))
        client = client_of((scope.get("client") or ("?",))[0])
        # One take per request, from one of the client's two buckets: a wrong or missing token
        # spends from its own, so tokens can't be guessed fast, and guesses (or a web page's
        # no-cors requests, or another local process: every loopback address is one client)
        # can't spend the token holder's rate. (A second take for a wrong token let it through
        # whenever the bucket refilled to one between the two.)
        authorized = self.token_ok(headers, scope)
        wait = self.limits.take(client if authorized else f"{client} without the token")
        if wait:
            return await answer(error_response(429, f"Too many requests from this client; retry in "
                                            f"{math.ceil(wait)} s.",
                                       {"retry-after": str(math.ceil(wait))}))
        if not authorized:
            return await answer(error_response(401, "Missing or wrong token: send 'Authorization: "
                                            "Bearer <token>' (printed when the service started).",
                                       {"www-authenticate": "Bearer"}))
        has_body = scope["method"] in ("POST", "PUT", "PATCH")
        if has_body:
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                return await answer(error_response(415, "Send the body as JSON, with Content-Type: "
                                                "application/json."))
            length = headers.get("content-length", "")
            if length.strip().isdigit() and int(length) > self.policy.max_body:
                return await answer(error_response(413, f"The body is over {self.policy.max_body} bytes."))
        # counted from here, before the body is read: a body sent slowly holds a connection and
        # up to max_body bytes, so it is a request running too
        if not self.limits.enter(client):
            return await answer(error_response(429, f"This client already has {self.limits.concurrent} "
                                            "requests running; retry in 1 s.", {"retry-after": "1"}))
        try:
            if has_body:
                body = await self.read_body(receive)
                if body is None:
                    return await answer(error_response(413, f"The body is over {self.policy.max_body} bytes."))
                try:
                    body.decode("utf-8")
                except UnicodeDecodeError:
                    return await answer(error_response(422, "The body is not valid UTF-8."))
                receive = _replay(body, receive)
            await self.app(scope, receive, send)
        finally:
            self.limits.leave(client)

    async def read_body(self, receive: Any) -> bytes | None:
        """The whole body, or None once it passes the limit (chunked bodies too)."""
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)  # the client left; the handler will see it
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.policy.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    """A receive() that gives the body read already, then the connection's own messages."""
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replay


#: on every response: answers, ledger rows and the /docs page (whose URL, and so its schema's,
#: carries the token) are never kept by a browser's or proxy's cache, and the token in a URL is
#: never sent on as a Referer
_NO_STORE = [(b"cache-control", b"no-store"), (b"referrer-policy", b"no-referrer"),
             (b"x-content-type-options", b"nosniff")]


def _with_headers(send: Any, extra: list[tuple[bytes, bytes]], replace: bool = False) -> Any:
    """send, adding extra to the response's headers (with replace, instead of any of theirs)."""
    names = {k for k, _ in extra}

    async def sender(message: Any) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", [])
                    if not (replace and k.lower() in names)]
            message = {**message, "headers": [*kept, *extra]}
        await send(message)
    return sender


def _preflight(cors: list[tuple[bytes, bytes]]) -> Any:
    """The answer to an allowed origin's CORS preflight (no token: browsers send none with it)."""
    from starlette.responses import Response

    headers = {k.decode(): v.decode("latin-1") for k, v in cors}
    headers.update({"access-control-allow-methods": "GET, POST",
                    "access-control-allow-headers": "authorization, content-type",
                    "access-control-max-age": "600"})
    return Response(status_code=204, headers=headers)


def http_protocol(policy: Policy) -> type:
    """uvicorn's HTTP/1.1 protocol (h11) with a limit on what a connection may hold before the
    gate sees a request: at most policy.max_connections open connections per client address (one
    more is closed at once), and policy.head_timeout seconds to send each request's head.

    Why: uvicorn keeps a connection open for ever while its client sends a request's head byte
    by byte, or nothing at all, and the gate (Guard) sees a request only once its head is in. So,
    without a token, anyone who could reach the port could open connections until the server ran
    out of file descriptors (slowloris), and nobody could call it any more."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    open_by_client: dict[str, int] = {}

    class GuardedH11(H11Protocol):
        """H11Protocol, counted per client and with a deadline for each request's head."""

        counted: str | None = None
        deadline: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            client = client_of((self.client or ("?",))[0])
            if policy.max_connections and open_by_client.get(client, 0) >= policy.max_connections:
                transport.close()  # before any byte is read: this client has enough open
                return
            open_by_client[client] = open_by_client.get(client, 0) + 1
            self.counted = client
            self.await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self.stop_waiting()
            if self.counted is not None:
                left = open_by_client.get(self.counted, 1) - 1
                if left > 0:
                    open_by_client[self.counted] = left
                else:
                    open_by_client.pop(self.counted, None)
                self.counted = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.head_in():
                self.stop_waiting()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.head_in():  # (a pipelined request may have started already)
                self.await_head()

        def head_in(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        def await_head(self) -> None:
            self.stop_waiting()
            if policy.head_timeout and not self.transport.is_closing():
                self.deadline = self.loop.call_later(policy.head_timeout, self.too_slow)

        def stop_waiting(self) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

        def too_slow(self) -> None:
            self.deadline = None
            if not self.head_in():
                self.transport.close()

    return GuardedH11


class HideTokens(logging.Filter):
    """Access-log lines without the ?token= a browser URL carries, however its name is written:
    the query is read percent-decoded, so `?%74oken=` is the token too."""

    _FIELD = re.compile(r"([?&;])([^=&;\s]*)=([^&;\s]*)")

    @staticmethod
    def _hide(m: re.Match) -> str:
        name = m.group(2)
        return f"{m.group(1)}{name}=***" if unquote_plus(name).strip().lower() == "token" else m.group(0)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._FIELD.sub(self._hide, a) if isinstance(a, str) else a
                                for a in record.args)
        return True


