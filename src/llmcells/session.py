"""The session's mutable state in one object: aliases, endpoints, user prices, rate limits, the
simulator switch, conversations, SDK clients (the calls' and the provider jobs'), quotas seen,
daily caps, health, hook callbacks, replay's refresh marks and open files, and the warnings
given once (retiring models, unknown prices, tools without type hints), with one `reset()`.

Modules keep short names for these containers (`models._aliases is session.aliases`), so
`reset()` changes them in place and never rebinds them.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from .registry import PROVIDERS


def _default_aliases() -> dict[str, str]:
    return {row.alias: row.default_id for row in PROVIDERS.values() if row.alias}  # (a route has none)


@dataclass
class Session:
    """What one Python process has set up since llmcells was imported."""

    aliases: dict[str, str] = field(default_factory=_default_aliases)
    endpoints: dict[str, Any] = field(default_factory=dict)         # name -> models.Endpoint
    prices: dict[str, Any] = field(default_factory=dict)            # model id -> user price (set_price)
    rate_limits: dict[str, Any] = field(default_factory=dict)       # provider -> batches.RateLimit
    conversations: dict[str, list] = field(default_factory=dict)    # model id -> [Message, ...]
    chats: dict[str, Any] = field(default_factory=dict)             # name -> chats.Chat (--chat NAME)
    clients: dict[Any, Any] = field(default_factory=dict)           # (adapter, ClientOptions) -> SDK client
    rate_limits_seen: dict[Any, Any] = field(default_factory=dict)  # (provider, model) -> headers (quota())
    daily_caps: dict[str, Any] = field(default_factory=dict)        # provider -> {"rpd": .., "tpd": ..}
    reserved: dict[Any, set] = field(default_factory=dict)          # daily-cap slots (call ids) held by calls in flight
    health: dict[str, Any] = field(default_factory=dict)            # provider -> (checked at, down)
    job_clients: dict[Any, Any] = field(default_factory=dict)       # (adapter, base url, key) -> provider-jobs SDK client
    hooks: dict[str, list] = field(default_factory=dict)            # event -> callbacks (llmcells.on)
    hook_failures: set[int] = field(default_factory=set)            # id() of callbacks whose failure was reported
    replay_refresh_ids: set[str] = field(default_factory=set)       # call ids to make anew once (--refresh)
    replay_books: dict[Any, Any] = field(default_factory=dict)      # replay file path -> its index (replay._Book)
    lifecycle_warned: set[str] = field(default_factory=set)         # models already warned of as retiring
    price_warned: set[tuple] = field(default_factory=set)           # price warnings given (one per model and kind)
    tool_hints_warned: set[tuple] = field(default_factory=set)      # tool functions warned of for missing type hints
    batches_interrupted: set[str] = field(default_factory=set)      # batch ids interrupted, not run to their end since
    keyring_keys: dict[str, str] = field(default_factory=dict)      # provider -> key found in the OS keyring (a lookup can be slow)
    replay_refresh_all: bool = False                                # `replay refresh`: every call anew
    simulator_url: str | None = None
    simulated_providers: frozenset[str] | None = None               # None: every built-in provider
    # The front end that ask, compare, batch and provider jobs open (cards, text, progress):
    # llmcells.display, set by the package when it is imported (this layer can't import it).
    # It keeps across reset().
    front_end: Any = None

    def reset(self) -> None:
        """Back to a fresh session: default aliases, no endpoints, prices, limits, conversations,
        SDK clients, keys read from the keyring, hook callbacks, replay refresh marks or warnings
        given, and the real APIs instead of the simulator. Settings are apart
        (`llmcells.settings`); threads are stopped by `%unload_ext llmcells`, not here."""
        self.aliases.clear()
        self.aliases.update(_default_aliases())
        for container in (self.endpoints, self.prices, self.rate_limits, self.conversations,
                          self.chats, self.clients, self.rate_limits_seen, self.daily_caps,
                          self.reserved, self.health, self.job_clients, self.hook_failures,
                          self.replay_refresh_ids, self.replay_books, self.lifecycle_warned,
                          self.price_warned, self.tool_hints_warned, self.batches_interrupted,
                          self.keyring_keys):
            container.clear()
        for callbacks in self.hooks.values():  # emptied in place: the event names stay
            callbacks.clear()
        self.replay_refresh_all = False
        self.simulator_url = None
        self.simulated_providers = None


#: the one session of this process
session = Session()


def current_cell() -> int | None:
    """The IPython execution count of the running cell, when there is one."""
    if "IPython" not in sys.modules:  # a plain script: no cell (and no 70 ms IPython import)
        return None
    from IPython import get_ipython

    ip = get_ipython()
    return getattr(ip, "execution_count", None) if ip is not None else None


#: how long a health check's "down" verdict holds (fallback chains try those providers last)
DOWN_TTL_S = 600.0


def known_down() -> set[str]:
    """Providers the last health check (within DOWN_TTL_S) found unreachable or refusing the key."""
    now = time.monotonic()
    return {p for p, (at, down) in session.health.items() if down and now - at < DOWN_TTL_S}
