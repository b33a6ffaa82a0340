"""Amazon Bedrock's wire format for Claude: `POST /model/{id}/invoke` (JSON) and
`/model/{id}/invoke-with-response-stream` (AWS event stream: binary frames with a prelude,
headers and CRC32s, each `chunk` event carrying the base64 JSON of one Anthropic stream event,
the last with Bedrock's `amazon-bedrock-invocationMetrics`),
SigV4 checked for presence, Bedrock's errors (`ThrottlingException`, 429, `x-amzn-errortype`),
and `GET /foundation-models` (the control plane's model list).

A Bedrock request is served as the Anthropic Messages request it carries (sim/anthropic.py does
the answer, tools, schema and faults); `EventStreamResponse` turns what that writes into
Bedrock's bytes.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import struct
import time
import uuid
from typing import Any
from urllib.parse import unquote

from ..registry import PROVIDERS
from .anthropic import url_source
from .common import compact
from .http11 import Request, Response

_PATH = re.compile(r"^/model/(?P<model>[^/]+)/(?P<op>invoke|invoke-with-response-stream)$")
#: Bedrock in the registry: the form of its Claude ids (an optional inference profile,
#: "anthropic.", the name, a version) and each model's own id
_ROW = PROVIDERS["bedrock"]
_MODEL = re.compile(_ROW.route_pattern)
EVENT_STREAM_TYPE = "application/vnd.amazon.eventstream"
#: the only `anthropic_version` Bedrock takes in a Claude body
BEDROCK_VERSION = "bedrock-2023-05-31"
_ERROR_NAMESPACE = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
# simulator fault (anthropic's error reply status) -> (status, Bedrock exception, message)
_ERRORS = {
    400: (400, "ValidationException", "The simulator was asked to reject this request."),
    401: (403, "UnrecognizedClientException", "The security token included in the request is invalid."),
    404: (404, "ResourceNotFoundException", "The requested model was not found."),
    429: (429, "ThrottlingException", "Too many requests, please wait before trying again."),
    500: (500, "InternalServerException", "The system encountered an unexpected error during "
                                          "processing. Try your request again."),
    529: (503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
}
# an Anthropic in-stream error type -> the ResponseStream exception event that carries it
_STREAM_ERRORS = {"overloaded_error": "serviceUnavailableException",
                  "rate_limit_error": "throttlingException"}


# ----- the event stream's binary framing (what botocore.eventstream parses) -----------------------


def _header(name: str, value: str) -> bytes:
    """One string header: name length, name, type 7 (string), value length, value."""
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack("!B", len(raw_name)) + raw_name + b"\x07" + struct.pack("!H", len(raw_value)) + raw_value


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total length, headers length, CRC32 of those 8 bytes),
    headers, payload, and the CRC32 of everything before it."""
    raw_headers = b"".join(_header(k, v) for k, v in headers.items())
    prelude = struct.pack("!II", 12 + len(raw_headers) + len(payload) + 4, len(raw_headers))
    head = prelude + struct.pack("!I", binascii.crc32(prelude))
    body = head + raw_headers + payload
    return body + struct.pack("!I", binascii.crc32(body))


def chunk_frame(event: bytes, pad: str = "") -> bytes:
    """A `chunk` event: {"bytes": base64 of the event's JSON, "p": padding}, as Bedrock sends it
    (the padding hides the length of the text)."""
    payload = {"bytes": base64.b64encode(event).decode(), "p": pad}
    return frame({":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"},
                 compact(payload).encode())


def exception_frame(kind: str, message: str) -> bytes:
    """An exception event in the stream (e.g. "throttlingException")."""
    return frame({":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"},
                 compact({"message": message}).encode())


# ----- requests -------------------------------------------------------------------------------------


def handles(req: Request) -> bool:
    """True for the requests this module answers."""
    return bool(_PATH.match(req.path)) or req.path == "/foundation-models"


def base_model(model_id: str) -> str:
    """Anthropic's name of the model of a Bedrock id (`us.anthropic.claude-haiku-5-5` ->
    `claude-haiku-5-5`), as Bedrock's answers name it."""
    match = _MODEL.match(model_id)
    return match.group("model") if match else model_id


def invalid_id(model_id: str) -> bool:
    """True for an id of a Claude model the simulator knows, in a form Bedrock doesn't have:
    `anthropic.claude-haiku-5-5` (the model's id is `anthropic.claude-haiku-5-5`), or
    `anthropic.claude-haiku-4-5-v1:0` (its id is dated). A name the catalog doesn't list (a
    test's made-up one) is taken in any form."""
    from . import catalog

    match = _MODEL.match(model_id)
    if match is None:
        return False
    name = match.group("model")
    if not catalog.known("anthropic", name):
        return False
    return model_id[model_id.index("anthropic."):] != _ROW.route_id(name)


def _signed(req: Request) -> str | None:
    """The access key id of a SigV4-signed request ("" for a Bedrock API key), None when unsigned.

    Only presence and form are checked: the simulator knows no secret to check a signature with."""
    auth = req.headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and auth[7:].strip():
        return auth[7:].strip()
    match = re.match(r"AWS4-HMAC-SHA256 Credential=([^/,\s]+)/[^,]+, ?SignedHeaders=[^,]+, ?Signature=[0-9a-f]+$",
                     auth)
    if match and req.headers.get("x-amz-date"):
        return match.group(1)
    return None


def error_reply(status: int, message: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of Bedrock's error for a simulator error status."""
    status, kind, default = _ERRORS.get(status, _ERRORS[500])
    return status, {"content-type": "application/json", "x-amzn-requestid": str(uuid.uuid4()),
                    "x-amzn-errortype": kind + _ERROR_NAMESPACE}, compact({"message": message or default}).encode()


def _model_list() -> bytes:
    from . import catalog

    summaries = [{"modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{_ROW.route_id(m.id)}",
                  "modelId": _ROW.route_id(m.id), "modelName": m.display, "providerName": "Anthropic",
                  "inputModalities": ["TEXT", "IMAGE"], "outputModalities": ["TEXT"],
                  "responseStreamingSupported": True, "customizationsSupported": [],
                  "inferenceTypesSupported": ["INFERENCE_PROFILE"],
                  "modelLifecycle": {"status": "LEGACY" if m.status != "active" else "ACTIVE"}}
                 for m in catalog.listed("anthropic")]
    return compact({"modelSummaries": summaries}).encode()


def _refusal(body: Any) -> str | None:
    """Bedrock's ValidationException message for a body not in its Claude form, else None: it
    takes `anthropic_version` "bedrock-2023-05-31" only, no `model` or `stream` (the URL names
    the model and whether to stream), and no image or document by URL."""
    if not isinstance(body, dict) or "anthropic_version" not in body:
        return ("Malformed input request: #: required key [anthropic_version] not found, please "
                "reformat your input and try again.")
    if body["anthropic_version"] != BEDROCK_VERSION:
        return f"Invalid API version: {body['anthropic_version']}"
    extra = next((key for key in ("model", "stream") if key in body), None)
    if extra:
        return (f"Malformed input request: #: extraneous key [{extra}] is not permitted, please "
                "reformat your input and try again.")
    where = url_source(body)
    if where:  # Bedrock fetches no URLs: images and documents come as base64
        return (f"{where}: Input tag 'url' found using 'type' does not match any of the expected "
                "tags: 'base64'")
    return None


async def translate(req: Request, resp: Response, *,
                    strict: bool = True) -> tuple[Request, "EventStreamResponse", str] | None:
    """The Anthropic request a Bedrock request carries, the response that writes its answer as
    Bedrock's, and the model's Anthropic name; None when answered here (no signature, a bad
    body, a model id Bedrock doesn't have when strict, the model list)."""
    key = _signed(req)
    if key is None:  # as AWS answers a request without a signature
        await resp.send(403, {"content-type": "application/json", "x-amzn-errortype": "MissingAuthenticationTokenException",
                              "x-amzn-requestid": str(uuid.uuid4())},
                        compact({"message": "Missing Authentication Token"}).encode())
        return None
    if req.path == "/foundation-models":
        await resp.send(200, {"content-type": "application/json", "x-amzn-requestid": str(uuid.uuid4())},
                        _model_list())
        return None
    match = _PATH.match(req.path)
    assert match is not None
    model, stream = unquote(match.group("model")), match.group("op") != "invoke"
    try:
        body = json.loads(req.body or b"{}")
    except ValueError:
        body = None
    refusal = _refusal(body)
    if refusal is None and strict and invalid_id(model):
        refusal = "The provided model identifier is invalid."
    if refusal:
        await resp.send(*error_reply(400, refusal))
        return None
    # The Anthropic request inside: the SDK moved model and stream to the URL, and the betas
    # into the body.
    body.pop("anthropic_version")
    betas = body.pop("anthropic_beta", None)
    body = {"model": model, **body, "stream": stream}
    # the access key id stands for the key: one starting "invalid" is refused (403)
    headers = {**req.headers, "authorization": f"Bearer {key}"}
    if betas:
        headers["anthropic-beta"] = ",".join(betas)
    inner = dataclasses.replace(req, path="/v1/messages", headers=headers, body=compact(body).encode())
    return inner, EventStreamResponse(resp, model, stream), base_model(model)


# ----- responses ------------------------------------------------------------------------------------


class EventStreamResponse:
    """A Response that writes what sim/anthropic.py sends as Bedrock does: SSE events become
    event-stream frames, JSON errors Bedrock's, and the answer names Anthropic's model."""

    def __init__(self, resp: Response, model: str, stream: bool) -> None:
        self._resp = resp
        self._model = base_model(model)
        self._stream = stream
        self._pad = 0
        self._t0 = time.monotonic()
        self._first_ms: int | None = None
        self._usage: dict[str, int] = {}  # the answer's token counts, for invocationMetrics

    def __getattr__(self, name: str) -> Any:  # started, gone, keep_alive, abort, reset, end
        return getattr(self._resp, name)

    @staticmethod
    def _headers(headers: dict[str, str], content_type: str) -> dict[str, str]:
        # Bedrock sends no rate-limit headers, nor Anthropic's request id
        kept = {k: v for k, v in headers.items()
                if k.lower() == "retry-after" or k.lower().startswith("x-amzn")}
        return {"content-type": content_type, "x-amzn-requestid": str(uuid.uuid4()), **kept}

    def _renamed(self, data: dict[str, Any]) -> dict[str, Any]:
        message = data.get("message") if data.get("type") == "message_start" else data
        if isinstance(message, dict) and message.get("type") == "message" and "model" in message:
            message["model"] = self._model
        return data

    def _with_metrics(self, data: dict[str, Any]) -> dict[str, Any]:
        """A stream event as Bedrock sends it: its last, message_stop, carries Bedrock's own
        count of the call (`amazon-bedrock-invocationMetrics`)."""
        kind = data.get("type")
        usage = (data.get("message") or {}).get("usage") if kind == "message_start" else data.get("usage")
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if isinstance(v, int)})
        if self._first_ms is None:
            self._first_ms = int((time.monotonic() - self._t0) * 1000)
        if kind != "message_stop":
            return data
        metrics = {"inputTokenCount": self._usage.get("input_tokens", 0),
                   "outputTokenCount": self._usage.get("output_tokens", 0),
                   "invocationLatency": int((time.monotonic() - self._t0) * 1000),
                   "firstByteLatency": self._first_ms}
        for ours, theirs in (("cache_read_input_tokens", "cacheReadInputTokenCount"),
                             ("cache_creation_input_tokens", "cacheWriteInputTokenCount")):
            if self._usage.get(ours):
                metrics[theirs] = self._usage[ours]
        return {**data, "amazon-bedrock-invocationMetrics": metrics}

    def _frames(self, sse: bytes) -> bytes:
        out = []
        for line in sse.decode("utf-8", "replace").splitlines():
            if not line.startswith("data:"):
                continue
            text = line[5:].strip()
            try:
                data = json.loads(text)
            except ValueError:  # a malformed event is passed on as it is
                out.append(chunk_frame(text.encode()))
                continue
            if not isinstance(data, dict) or data.get("type") == "ping":
                continue  # Bedrock sends no pings
            if data.get("type") == "error":
                error = data.get("error") or {}
                out.append(exception_frame(_STREAM_ERRORS.get(error.get("type"), "internalServerException"),
                                           str(error.get("message") or "error")))
                continue
            self._pad = (self._pad + 7) % 23
            event = self._with_metrics(self._renamed(data))
            out.append(chunk_frame(compact(event).encode(), "abcdefghijklmnopqrstuvwxyz"[:self._pad]))
        return b"".join(out)

    async def send(self, status: int, headers: dict[str, str], body: bytes, trailing: bytes = b"") -> None:
        if status >= 400 and "json" in headers.get("content-type", ""):
            try:
                message = (json.loads(body).get("error") or {}).get("message")
            except (ValueError, AttributeError):
                message = None
            code, hdrs, payload = error_reply(status, message if status == 400 else None)
            await self._resp.send(code, {**hdrs, **self._headers(headers, hdrs["content-type"])}, payload)
            return
        if status == 200 and "json" in headers.get("content-type", ""):
            try:
                body = compact(self._renamed(json.loads(body))).encode()
            except ValueError:
                pass  # (the "malformed" fault's half body)
        await self._resp.send(status, self._headers(headers, headers.get("content-type", "application/json")),
                              body, trailing)

    async def send_truncated(self, status: int, headers: dict[str, str], body: bytes) -> None:
        await self._resp.send_truncated(status, self._headers(headers, "application/json"), body)

    async def start_chunked(self, status: int, headers: dict[str, str]) -> None:
        hdrs = self._headers(headers, EVENT_STREAM_TYPE)
        hdrs["x-amzn-bedrock-content-type"] = "application/json"
        await self._resp.start_chunked(status, hdrs)

    async def chunk(self, data: bytes) -> None:
        await self._resp.chunk(self._frames(data))

    async def raw(self, data: bytes) -> None:
        """A chunk cut on purpose (`cut_mid_event`): half of the event's frame."""
        _size, _, rest = data.partition(b"\r\n")
        whole = chunk_frame(rest or data)
        await self._resp.raw(b"%x\r\n" % (len(whole)) + whole[: len(whole) // 2])
