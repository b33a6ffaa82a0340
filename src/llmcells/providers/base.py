"""The one interface every provider adapter implements.

An adapter turns a Request into an async stream of events through its official SDK, and maps
that SDK's exceptions to llmcells errors. It knows nothing of display, pricing, the ledger or
retries: the engine and the pipeline do those.

The events (types.py): the response's parts, each a piece of answer text, visible reasoning or
a tool call, addressed by an index the adapter gives it (unique within the response):
PartStart(index, kind, id, name) when a part begins, PartDelta(index, text) for each piece of
text or of a tool call's JSON arguments (with id or name if they come late), PartEnd(index) when
it is complete; plus UsageUpdate, ResponseInfo and, last, Finish. The engine folds them in one
place: text deltas into the answer, reasoning into Result.reasoning, and each tool-call part
into a ToolCall when it ends, or at Finish if it never does. Adapters do not join argument
fragments or invent ids: the engine names a call without an id `call_N` (N: its position among
the response's tool calls) and gives a call without arguments "{}".

Client construction is kept apart (`make_client`) so tests can inject an httpx transport, and
so one client per (endpoint, key) is reused for the life of the private event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ..errors import LLMError
from ..models import ModelSpec
from ..types import Event, Request


@dataclass(frozen=True)
class ClientOptions:
    """What a client is built from. Equal options share one client."""

    base_url: str | None
    api_key: str
    connect_timeout: float = 5.0
    read_timeout: float = 600.0
    http_client: Any = None  # an httpx2.AsyncClient to use instead of the SDK's own (tests)


class Provider(ABC):
    """A provider adapter. Subclasses implement make_client, stream and map_error."""

    #: the adapter's name: "openai", "anthropic" or "google"
    name: str = ""

    @abstractmethod
    def make_client(self, options: ClientOptions) -> Any:
        """Build the SDK's async client, with the SDK's own retries off."""

    def finish_client(self, client: Any) -> None:
        """Load what only some requests use (run on the client-building thread after the
        clients queued before it, so that a first call waits only for make_client)."""

    @abstractmethod
    def stream(self, client: Any, request: Request) -> AsyncIterator[Event]:
        """Send request and yield events until the provider's terminal event.

        Raises IncompleteStreamError if the stream ends without a terminal event, and
        SDK exceptions (mapped by map_error) otherwise.
        """

    @abstractmethod
    def map_error(self, exc: BaseException, spec: ModelSpec) -> LLMError | None:
        """The llmcells error for an SDK exception, or None if exc is not this SDK's."""
