"""`Simulator`: the provider simulator run in a daemon thread with its own event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import threading
from typing import Any

from .server import SimServer
from .state import Fault, Settings, SimRequest, State


def _check_loopback(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ValueError(f"the simulator only binds to a loopback address, not {host!r}")


def _quiet_disconnects(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # Clients hanging up mid-stream is normal here; anything else is worth a log line.
    if isinstance(context.get("exception"), (ConnectionError, BrokenPipeError)):
        return
    loop.default_exception_handler(context)


class Simulator:
    """A loopback server that speaks the OpenAI, Anthropic and Gemini wire protocols.

    Point the SDKs at it with `env()` (or `base_url=sim.url + "/v1"` for OpenAI, `sim.url` for
    the others); any API key works except one starting with "invalid". Answers are
    deterministic per (model, prompt) unless temperature > 0. Strict (the default), it refuses
    what the real APIs refuse, with their status codes and error bodies (sim/validate.py), and
    answers a retired model with the API's 404; `strict=False` answers any well-formed body.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, ttft: float = 0.05,
                 tokens_per_s: float = 200.0, output_tokens: int | None = None,
                 strict: bool = True, warm_types: bool = True) -> None:
        self.host = _check_loopback(host)
        # strict checks a body against the SDK's request type: warm_types imports the three
        # SDKs' types at start, in a thread (a simulator of its own wants them ready; one in a
        # script's process would take the CPU from its first calls, for SDKs it may never use)
        self._warm_types = warm_types
        self.port = port
        self._state = State(Settings(ttft=ttft, tokens_per_s=tokens_per_s, output_tokens=output_tokens),
                            strict=strict)
        self._strict = strict  # what reset() goes back to
        self._server: SimServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> "Simulator":
        """Start serving in a daemon thread; returns once the port is listening."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_quiet_disconnects)
        pool = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="llmcells-sim-pool")
        loop.set_default_executor(pool)  # (getaddrinfo, to_thread): named, and stopped by stop()
        server = SimServer(self._state, self.host, self.port, warm_types=self._warm_types)

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self.port = loop.run_until_complete(server.start())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        thread = threading.Thread(target=run, name=f"llmcells-sim-{self.port}", daemon=True)
        thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        thread.name = f"llmcells-sim-{self.port}"  # the port it bound (0 asks for a free one)
        self._loop, self._server, self._thread, self._pool = loop, server, thread, pool
        return self

    def stop(self) -> None:
        """Close every connection and stop the server thread."""
        loop, server, thread, pool = self._loop, self._server, self._thread, self._pool
        if loop is None or server is None or thread is None:
            return
        self._loop = self._server = self._thread = self._pool = None
        try:
            asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout=5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            if pool is not None:
                pool.shutdown(wait=not thread.is_alive())

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL, e.g. "http://127.0.0.1:PORT"."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __repr__(self) -> str:
        """What a notebook shows for `llmcells.simulate()` ending a cell: where it serves, and how."""
        if self._server is None:
            return "<llmcells simulator (stopped)>"
        return f"<llmcells simulator at {self.url} ({'strict' if self.strict else 'loose'})>"

    def env(self) -> dict[str, str]:
        """The base-URL environment variables that point the three SDKs here."""
        return {"OPENAI_BASE_URL": self.url + "/v1", "ANTHROPIC_BASE_URL": self.url,
                "GOOGLE_GEMINI_BASE_URL": self.url}

    # --- behaviour --------------------------------------------------------------------------
    @property
    def strict(self) -> bool:
        """Whether requests the real APIs refuse are refused (True by default)."""
        return self._state.strict

    @strict.setter
    def strict(self, value: bool) -> None:
        self._state.strict = bool(value)

    def configure(self, *, ttft: float | None = None, tokens_per_s: float | None = None,
                  output_tokens: int | None = None) -> None:
        """Change the global defaults (None leaves a setting as it is)."""
        self._state.configure(ttft=ttft, tokens_per_s=tokens_per_s, output_tokens=output_tokens)

    def set_model(self, model: str, *, ttft: float | None = None, tokens_per_s: float | None = None,
                  output_tokens: int | None = None, text: str | None = None, reasoning_tokens: int = 0,
                  cached_input_tokens: int = 0, cache_write_tokens: int = 0,
                  delta_chars: int | None = None) -> None:
        """Override settings for one model name or glob ("gpt-*"); replaces earlier overrides
        for the same name. `text` fixes the answer; the token counts show up in each
        provider's own usage fields. `delta_chars` streams the answer in pieces of that many
        characters (one text event each): `text=llmcells.sim.text.filler(2_000_000),
        delta_chars=100` is a 2 MB answer in 20,000 events."""
        self._state.set_model(model, Settings(ttft, tokens_per_s, output_tokens, text, reasoning_tokens,
                                              cached_input_tokens, cache_write_tokens, delta_chars))

    def inject(self, fault: str, *, provider: str | None = None, model: str | None = None,
               times: int | None = 1, after_tokens: int = 3, retry_after: float | None = None,
               retry_after_ms: int | None = None, delay: float = 5.0) -> None:
        """Queue a fault for the next `times` matching requests (None: forever).

        The faults and what each does are listed in `llmcells.sim.state.FAULT_HELP`: HTTP errors
        ("401", "404", "400", "429" (with retry_after=3600 for a long wait), "500", "529"),
        HTML pages ("html200", "html502"), broken streams ("midstream_error", "cut",
        "cut_mid_event", "malformed", "reset_after_start", "drop_after_terminal", "drop"),
        odd but valid streams ("sse_comments", "sse_event_ping", "sse_no_space",
        "split_surrogate", "junk_after_body") and "slow_first_token".
        """
        self._state.inject(Fault(fault, provider, model, times, after_tokens, retry_after,
                                 retry_after_ms, delay))

    def set_down(self, model: str, how: str | None = "overloaded", *, provider: str | None = None) -> None:
        """Make a model permanently "overloaded" (529 / 503) or "rate_limited" (429), for
        fallback tests; how=None brings it back (drops every fault of that model)."""
        if how is None:
            with self._state.lock:
                self._state.faults[:] = [f for f in self._state.faults if f.model != model]
            return
        codes = {"overloaded": "529", "rate_limited": "429", "server_error": "500"}
        if how not in codes:
            raise ValueError(f"how is one of {', '.join(codes)}, not {how!r}")
        self._state.inject(Fault(codes[how], provider, model, None, retry_after=None))

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        self._state.clear_faults()

    def reset(self) -> None:
        """Back to the constructor's settings (strictness included): no faults, no model
        overrides, empty log."""
        self._state.reset()
        self._state.strict = self._strict
        from .ratelimits import reset_windows

        reset_windows()

    @property
    def requests(self) -> list[SimRequest]:
        """A snapshot of every request received so far."""
        return self._state.snapshot()
