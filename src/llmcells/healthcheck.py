"""Health: is each configured provider reachable, is its key accepted, which models does it list?

`await llmcells.health()` checks every built-in provider and every added endpoint at once,
through each official SDK's free model-list call (`client.models.list()`; never a paid
completion), each under a hard deadline so that a host that accepts and never answers costs
`timeout` seconds, not the SDK's read timeout. The result feeds fallback ordering: a provider
found down (unreachable, or its key refused) is tried last in a chain for the next
`session.DOWN_TTL_S` seconds.

The agent CLIs (claude-code:, gemini-cli:, codex:) get a row each: installed or not, and their
version. `register_check(name, check)` adds a row of another kind: `check(timeout)` is a
coroutine returning one row dict with the same columns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .session import session
from ._log import swallowed
from ._loop import import_pandas
from .capabilities import caps_of

if TYPE_CHECKING:
    import pandas as pd

    from .models import ModelSpec
    from ._loop import Pending

COLUMNS = ["provider", "endpoint", "key_present", "reachable", "key_accepted", "latency_s",
           "n_models", "models", "simulated", "error"]
DEFAULT_TIMEOUT_S = 3.0

_last: dict[str, tuple[float, bool]] = session.health  # provider -> (checked at, down)
_extra_checks: dict[str, Callable[[float], Awaitable[dict[str, Any]]]] = {}


def register_check(name: str, check: Callable[[float], Awaitable[dict[str, Any]]]) -> None:
    """Add a row to every health check (e.g. an agent CLI): `await check(timeout)` returns a
    dict with COLUMNS' keys; it runs under the same deadline as the others."""
    _extra_checks[name] = check


def _targets() -> list[tuple[str, "ModelSpec"]]:
    from .models import PROVIDERS, endpoints, resolve
    from .registry import caps

    # A provider without a model-list call in its profile (an agent CLI) is not listed here:
    # the agents' rows come from _agent_rows.
    out = [(p, resolve(f"{p}:health-check")) for p in PROVIDERS if caps(p).model_list]
    out += [(name, resolve(f"{name}:health-check")) for name in endpoints()]
    return out


def _agent_rows() -> list[dict[str, Any]]:
    """One row per agent CLI: is it installed (its version), is the key of the API it calls set,
    and is it routed to the simulator. Nothing is sent: running a CLI costs a paid request."""
    from .providers._agents import available
    from .models import key_status, simulated_providers
    from .registry import PROVIDERS

    keys, simulated = key_status(), set(simulated_providers())
    rows = []
    for cli in available():
        row = PROVIDERS[cli["agent"]]
        api = row.price_as or row.name
        rows.append({
            "provider": cli["agent"], "endpoint": cli["path"] or "not installed",
            "key_present": cli["agent"] in simulated or bool(keys.get(api)),
            "reachable": cli["installed"], "key_accepted": None, "latency_s": None,
            "n_models": 0, "models": f"{cli['label']} {cli['version'] or ''}".strip(),
            "simulated": cli["agent"] in simulated,
            "error": None if cli["installed"] else f"not installed: {cli['install']}"})
    return rows


async def _list_models(model_list: str, client: Any, provider: Any = None) -> list[str]:
    """The model names of the free list call of this kind (registry.Caps.model_list), or
    the adapter's own list call where it has one (a cloud route such as Bedrock)."""
    if hasattr(provider, "list_models"):
        return await provider.list_models(client)
    if hasattr(client, "aio"):  # google-genai: the Gemini API's list, or Vertex AI's publisher models
        pager = await client.aio.models.list(config={"page_size": 100})
        return [str(m.name).rsplit("/", 1)[-1] for m in pager.page]
    page = await client.models.list()
    return [m.id for m in page.data]


def _build(adapter: Any, model_list: str, options: Any) -> Any:
    """The SDK client, with its lazily imported models resource loaded now (off the loop)."""
    client = adapter.make_client(options)
    client.aio.models if hasattr(client, "aio") else getattr(client, "models", None)  # noqa: B018
    return client


async def _close(client: Any) -> None:
    try:
        if hasattr(client, "aio"):
            await client.aio.aclose()
        else:
            await client.close()
    except Exception as exc:
        swallowed("closing a health check's client", exc)


async def _check(name: str, spec: "ModelSpec", timeout: float) -> dict[str, Any]:
    from .errors import LLMError, MissingKeyError, redact
    from .models import api_key, route_credentials
    from .providers import ClientOptions, get_provider
    from .registry import row as registry_row

    row: dict[str, Any] = {"provider": name, "endpoint": spec.base_url or "default",
                           "key_present": True, "reachable": None, "key_accepted": None,
                           "latency_s": None, "n_models": None, "models": None,
                           "simulated": spec.simulated, "error": None}
    try:
        key = api_key(spec)
    except MissingKeyError:
        row.update(key_present=False, error="no key set (not checked)")
        return row
    cloud = getattr(registry_row(spec.provider), "credentials", "key") != "key"
    if cloud and not spec.simulated:  # [routes] a cloud's credential chain: configured or not
        row["key_present"] = route_credentials(spec.provider)
    client = None
    options = ClientOptions(base_url=spec.base_url, api_key=key, connect_timeout=timeout,
                            read_timeout=timeout)
    # The SDK's first import (a second or two) happens off the loop, before the deadline starts:
    # the deadline bounds the network, which is what can hang.
    adapter = await asyncio.to_thread(get_provider, spec.adapter)
    t0 = time.monotonic()
    try:
        model_list = caps_of(spec).model_list
        client = await asyncio.to_thread(_build, adapter, model_list, options)
        t0 = time.monotonic()
        async with asyncio.timeout(timeout):  # the hard deadline of the request
            names = await _list_models(model_list, client, adapter)
        row.update(reachable=True, key_accepted=True, latency_s=round(time.monotonic() - t0, 4),
                   n_models=len(names), models=names)
    except TimeoutError:
        row.update(reachable=False, error=f"no answer within {timeout:g} s")
    except Exception as exc:
        err = exc if isinstance(exc, LLMError) else adapter.map_error(exc, spec)
        kind = err.kind if err is not None else "error"
        message = err.message if err is not None else redact(str(exc))[:200]
        if kind == "missing_key":
            row["key_present"] = False
        # settings that stop any request (no key, no region) leave reachability unknown
        reached = None if kind in ("missing_key", "config") else kind not in ("connection", "timeout")
        row.update(reachable=reached,
                   latency_s=round(time.monotonic() - t0, 4) if reached else None,
                   key_accepted=False if kind == "authentication" else None, error=f"{kind}: {message}")
    finally:
        if client is not None:
            await _close(client)
    return row


async def check_all(timeout: float = DEFAULT_TIMEOUT_S) -> list[dict[str, Any]]:
    """Every row, checked concurrently (on the private loop, where the SDK clients live)."""
    targets = _targets()
    jobs = [_check(name, spec, timeout) for name, spec in targets]

    async def extra(name: str, check: Callable[[float], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(check(timeout), timeout)
        except Exception as exc:
            return {"provider": name, "reachable": False, "error": f"{type(exc).__name__}: {exc}"[:200]}

    jobs += [extra(n, c) for n, c in _extra_checks.items()]

    async def agents() -> list[dict[str, Any]]:
        try:  # finding a CLI and its version reads files, or runs `--version`: off the loop
            return await asyncio.wait_for(asyncio.to_thread(_agent_rows), timeout)
        except Exception as exc:
            return [{"provider": "agent CLIs", "reachable": False,
                     "error": f"{type(exc).__name__}: {exc}"[:200]}]

    *rows, agent_rows = await asyncio.gather(*jobs, agents())
    rows = [*rows, *agent_rows]
    now = time.monotonic()
    for row in rows:
        if row.get("key_present") is not False:
            _last[row["provider"]] = (now, row.get("reachable") is False or row.get("key_accepted") is False)
    return rows


def frame(rows: list[dict[str, Any]]) -> "pd.DataFrame":
    pd = import_pandas()

    return pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in rows], columns=COLUMNS)


def health(timeout: float = DEFAULT_TIMEOUT_S) -> "Pending[pd.DataFrame]":
    """Check every configured provider and endpoint; `await` it for a DataFrame with one row
    each: key_present, reachable, key_accepted, latency_s, n_models, models, simulated, error.
    Free model-list calls only, all at once, each within `timeout` seconds."""
    from ._loop import Pending

    async def go() -> "pd.DataFrame":
        return frame(await check_all(timeout))

    return Pending(go, "health check")
