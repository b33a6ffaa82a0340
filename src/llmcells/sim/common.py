"""What the provider wire formatters share: the parsed prompt, the answer plan, JSON helpers."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import string
import time
from dataclasses import dataclass, field
from typing import Any

_ALNUM = string.ascii_letters + string.digits


@dataclass
class Prompt:
    """What a provider request asks for, in provider-neutral terms."""

    model: str
    stream: bool
    text: str                       # all prompt text, for the token count
    key: Any                        # what the answer's hash is derived from
    max_tokens: int | None = None
    temperature: float | None = None
    include_usage: bool = False     # OpenAI Chat: stream_options.include_usage
    rich: Any = None                # rich.Rich: attachments and schema (set by the server)
    latest: str = ""                # the latest user turn's own text: what the answer quotes
    service_tier: str | None = None  # OpenAI: the tier that serves the request (served_tier)


_NOT_THE_USERS = re.compile(r"<system-reminder>.*?</system-reminder>", re.S)


def users_text(blocks: list[str]) -> str:
    """The user's own words among a user turn's text blocks: agent CLIs put a billing header
    block ("x-anthropic-billing-header: ...") and `<system-reminder>` sections next to them."""
    kept = [_NOT_THE_USERS.sub("", b).strip() for b in blocks
            if not b.lstrip().startswith("x-anthropic-billing-header")]
    return " ".join(k for k in kept if k)


@dataclass
class Plan:
    """The answer to send for one request, decided before the first byte goes out."""

    api: str
    model: str
    tokens: list[str]
    truncated: bool                 # stopped by the request's max tokens
    input_tokens: int               # uncached prompt tokens
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    include_usage: bool = False
    thinking: bool = False          # Claude with thinking on: a tool-call turn thinks first
    service_tier: str = "default"   # OpenAI: the tier the answer says served it
    created: int = field(default_factory=lambda: int(time.time()))
    rng: random.Random = field(default_factory=random.Random)

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def prompt_total(self) -> int:
        """All prompt tokens, cached and cache-written ones included."""
        return self.input_tokens + self.cached_tokens + self.cache_write_tokens

    def ident(self, n: int = 24) -> str:
        """A random id suffix (ids need not be reproducible, answers do)."""
        return "".join(self.rng.choice(_ALNUM) for _ in range(n))

    def padding(self, low: int = 2, high: int = 16) -> str:
        return "".join(self.rng.choice(_ALNUM) for _ in range(self.rng.randint(low, high)))


def compact(obj: Any) -> str:
    """JSON as OpenAI and Anthropic send it: no spaces."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def as_text(content: Any) -> str:
    """The text of a message content: a string, or a list of parts with a `text` field."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(as_text(part) for part in content)
    if isinstance(content, dict):
        for key in ("text", "content", "parts"):
            if key in content:
                return as_text(content[key])
    return ""


@dataclass
class Reply:
    """A complete (non-streamed) HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes


# A captive portal's page (answered with 200 in place of the API) and a proxy's 502 page.
_PORTAL = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Welcome to Guest Wi-Fi</title>
<style>body { font-family: sans-serif; margin: 4em; }</style></head>
<body>
<h1>Welcome to Guest Wi-Fi</h1>
<p>Please accept the terms of use to continue browsing.</p>
<form method="post" action="/portal/accept"><button type="submit">Accept and connect</button></form>
</body>
</html>
"""
_BAD_GATEWAY = """<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


def html_page(status: int) -> Reply:
    """An HTML page where the API's answer should be: a captive portal's welcome page (200) or a
    reverse proxy's error page (any other status)."""
    page = _PORTAL if status == 200 else _BAD_GATEWAY.replace("502 Bad Gateway", f"{status} Bad Gateway")
    return Reply(status, {"content-type": "text/html; charset=utf-8", "cache-control": "no-cache"},
                 page.encode())


def api_key(req: Any) -> str:
    """The key from whichever header (or `?key=`) the client used; "" when there is none."""
    bearer = req.headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        bearer = bearer[7:].strip()
    return (bearer or req.headers.get("x-api-key") or req.headers.get("x-goog-api-key")
            or req.query.get("key") or "")


def sign_thinking(thought: str) -> str:
    """The simulator's signature of a Claude thinking text (the real API's is opaque too):
    sim/tools.py signs the thinking it sends, sim/validate.py checks what comes back."""
    return base64.b64encode(b"sim-thinking:" + hashlib.sha256(thought.encode()).digest()[:12]).decode()
