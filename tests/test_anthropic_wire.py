"""Claude's adapters (Anthropic, Amazon Bedrock, Vertex AI) against what today's wire sends:
errors inside a stream. Each goes through the real SDK client over an injected httpx
MockTransport."""

from __future__ import annotations

import asyncio
import json

from llmcells.errors import BadRequestError, ServerError

from test_adapters_unit import ANTHROPIC_BLOCK, ANTHROPIC_START, _anthropic_text, _collect, _serve, _sse, _text


# ----- errors inside a 200 stream ------------------------------------------------------------------


def _midstream(error_type: str, message: str):
    stream = _sse(ANTHROPIC_START, ANTHROPIC_BLOCK, _anthropic_text("Hel"), named=True) + (
        b"event: error\ndata: " + json.dumps({"type": "error", "error": {"type": error_type, "message": message},
                                               "request_id": "req_1"}).encode() + b"\n\n")
    return asyncio.run(_collect("anthropic", _serve(stream)))


def test_an_error_event_has_no_http_status_of_its_own():
    """The stream's 200 is not the error's status: none is shown ("server error (200)") or kept."""
    events, _, mapped = _midstream("api_error", "Internal server error")
    assert _text(events) == "Hel"
    assert isinstance(mapped, ServerError) and mapped.status_code is None
    assert mapped.message == "Anthropic had a server error: Internal server error"


def test_an_invalid_request_error_event_is_a_bad_request():
    _, _, mapped = _midstream("invalid_request_error", "messages: text content blocks must be non-empty")
    assert isinstance(mapped, BadRequestError) and not mapped.retryable
    assert mapped.message.endswith("messages: text content blocks must be non-empty")
