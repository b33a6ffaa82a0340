"""The OpenAI adapter against what today's API sends: error answers (status, code, rate-limit
headers), Responses reasoning summaries and incomplete endings, and Chat Completions' filtered or
cut answers. Each goes through the real SDK client over an injected httpx MockTransport."""

from __future__ import annotations

import asyncio
import json

from llmcells.errors import AuthenticationError

from test_adapters_unit import _collect, _serve


def _error(status: int, error: dict, headers: dict | None = None, kind: str = "openai"):
    """The mapped error of an HTTP error answer with this `error` object."""
    handler = _serve(json.dumps({"error": error}).encode(), status,
                     {"content-type": "application/json", **(headers or {})})
    _, _, mapped = asyncio.run(_collect(kind, handler))
    return mapped


def test_a_403_model_not_found_is_access_denied_not_an_unknown_model():
    # What OpenAI answers for a model the project may not use (the model exists).
    mapped = _error(403, {"message": "Project `proj_abc` does not have access to model `gpt-4o-mini`",
                          "type": "invalid_request_error", "param": None, "code": "model_not_found"})
    assert isinstance(mapped, AuthenticationError) and mapped.kind == "authentication"
    assert mapped.message == ("OpenAI denied access: Project `proj_abc` does not have access to "
                              "model `gpt-4o-mini`")
    assert mapped.status_code == 403 and not mapped.retryable
