"""Vertex AI's wire format: Claude at `.../publishers/anthropic/models/{m}:streamRawPredict`
(`:rawPredict`) in Anthropic's bodies and events, Gemini at `.../publishers/google/models/{m}:
streamGenerateContent` (`:generateContent`) in Gemini's, both behind Google's bearer-token auth
(no token: 401 UNAUTHENTICATED) and Google's quota errors (429 RESOURCE_EXHAUSTED); Claude's
overload is Anthropic's 529."""

from __future__ import annotations

import json
import re
from typing import Any

from . import anthropic, catalog, google
from .common import Prompt, Reply

ROUTE = "vertex"
# The `anthropic_version` body field Vertex takes: "vertex-2023-10-16" only (Anthropic's Vertex AI
# page: it "must be set to vertex-2023-10-16"); the anthropic SDK's own default, its API version
# date, is refused as Vertex refuses it.
_ANTHROPIC_VERSION = re.compile(r"^vertex-2023-10-16$")
_PATH = re.compile(r"^/(v1|v1beta1)/projects/([^/]+)/locations/([^/]+)/publishers/(anthropic|google)"
                   r"/models/([^/:]+):(streamRawPredict|rawPredict|streamGenerateContent|generateContent)$")
_LIST = re.compile(r"^/(v1|v1beta1)/publishers/google/models$")


def route(method: str, path: str) -> tuple[Any, str, str, str | None] | None:
    """(formatter, internal api, logged api, model) for a Vertex AI prediction URL."""
    if method != "POST":
        return None
    match = _PATH.match(path)
    if match is None:
        return None
    publisher, model, verb = match.group(4), match.group(5), match.group(6)
    if publisher == "anthropic" and verb in ("streamRawPredict", "rawPredict"):
        return Claude, "messages", "messages", model
    if publisher == "google" and verb in ("streamGenerateContent", "generateContent"):
        return Gemini, "stream" if verb == "streamGenerateContent" else "generate", "gemini", model
    return None


def api_key(req: Any) -> str:
    """Vertex AI takes an OAuth bearer token only (an API key header is not auth here)."""
    bearer = req.headers.get("authorization", "")
    return bearer[7:].strip() if bearer.lower().startswith("bearer ") else ""


def _google_error(code: int, status: str, message: str, stream: bool = False) -> Reply:
    body = {"error": {"code": code, "message": message, "status": status}}
    return Reply(code, {"content-type": "application/json; charset=UTF-8", "vary": "Origin, X-Origin, Referer"},
                 (json.dumps(body, indent=2) + "\n").encode())


def _unauthenticated() -> Reply:
    return _google_error(401, "UNAUTHENTICATED",
                         "Request had invalid authentication credentials. Expected OAuth 2 access "
                         "token, login cookie or other valid authentication credential. See "
                         "https://developers.google.com/identity/sign-in/web/devconsole-project.")


def _quota(model: str) -> Reply:
    return _google_error(429, "RESOURCE_EXHAUSTED",
                         "Quota exceeded for aiplatform.googleapis.com/"
                         f"online_prediction_requests_per_base_model with base model: {model}. "
                         "Please submit a quota increase request. "
                         "https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai.")


class Claude:
    """Claude on Vertex AI: Anthropic's Messages format, the model in the URL."""

    PROVIDER = "anthropic"
    ROUTE = ROUTE
    api_key = staticmethod(api_key)
    stream = staticmethod(anthropic.stream)
    complete = staticmethod(anthropic.complete)
    headers = staticmethod(anthropic.headers)
    refuse = staticmethod(anthropic.refuse)

    @staticmethod
    def wire_body(body: Any, path_model: str | None) -> Any:
        """The body as the direct API would take it: `anthropic_version` checked and dropped,
        the URL's model put in (Vertex refuses a body that names a model)."""
        if not isinstance(body, dict):
            return body
        body = dict(body)
        version = body.pop("anthropic_version", None)
        if not isinstance(version, str) or not _ANTHROPIC_VERSION.match(version) or "model" in body:
            raise ValueError("not a Vertex AI Claude body")
        body["model"] = path_model or ""
        return body

    @staticmethod
    def precheck(req: Any) -> Reply | None:
        """Vertex refuses a body in the direct API's form (a `model` field, no `anthropic_version`),
        and an image or document by URL."""
        try:
            body = json.loads(req.body or b"{}")
            Claude.wire_body(body, "")
        except ValueError:
            return _google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument: "
                                 "`anthropic_version` is required and `model` goes in the URL.")
        where = anthropic.url_source(body)
        if where:  # Vertex AI fetches no URLs for Claude: images and documents come as base64
            return _google_error(400, "INVALID_ARGUMENT", f"{where}: URL sources are not supported; "
                                 "send the image or document as base64.")
        return None

    @staticmethod
    def parse(api: str, body: dict[str, Any], path_model: str | None = None) -> Prompt:
        prompt = anthropic.parse(api, Claude.wire_body(body, path_model)
                                 if "anthropic_version" in body else body, path_model)
        prompt.model = path_model or prompt.model
        return prompt

    @staticmethod
    def error(fault: str, model: str, *, api: str, stream: bool, key: str = "",
              retry_after: float | None = None) -> Reply:
        """Auth and quota are Google's answers; the model's own errors (529 overloaded) Anthropic's."""
        if fault == "401":
            return _unauthenticated()
        if fault == "429":
            return _quota(f"anthropic-{model}")
        if fault == "404":
            return _google_error(404, "NOT_FOUND", f"Publisher Model `projects/llmcells-sim/locations/"
                                 f"global/publishers/anthropic/models/{model}` was not found or your "
                                 "project does not have access to it.")
        return anthropic.error(fault, model, api=api, stream=stream, key=key, retry_after=retry_after)

    @staticmethod
    def rate_headers(provider: str, input_tokens: int = 0) -> dict[str, str]:
        """Vertex AI sends no rate-limit headers."""
        return {}


class Gemini:
    """Gemini on Vertex AI: Gemini's generateContent format under a project and location."""

    PROVIDER = "google"
    ROUTE = ROUTE
    api_key = staticmethod(api_key)
    parse = staticmethod(google.parse)
    refuse = staticmethod(google.refuse)

    # Vertex AI's answers: usageMetadata.trafficType (no serviceTier), createTime, and no
    # x-gemini-service-tier header
    @staticmethod
    def stream(plan: Any) -> Any:
        return google.stream(plan, vertex=True)

    @staticmethod
    def complete(plan: Any) -> Reply:
        return google.complete(plan, vertex=True)

    @staticmethod
    def headers(stream: bool) -> dict[str, str]:
        return google.headers(stream, vertex=True)

    @staticmethod
    def error(fault: str, model: str, *, api: str, stream: bool, key: str = "",
              retry_after: float | None = None) -> Reply:
        if fault == "401":
            return _unauthenticated()
        if fault == "429":
            return _quota(model)
        return google.error(fault, model, api=api, stream=stream, key=key, retry_after=retry_after)

    @staticmethod
    def rate_headers(provider: str, input_tokens: int = 0) -> dict[str, str]:
        """Vertex AI sends no rate-limit headers."""
        return {}


def listing(method: str, path: str, key: str) -> Reply | None:
    """GET .../publishers/google/models: the Gemini models (Vertex's publisher model list)."""
    if method != "GET" or not _LIST.match(path):
        return None
    if not key:
        return _unauthenticated()
    body = {"publisherModels": [{"name": f"publishers/google/models/{m.id}", "versionId": "001",
                                 "openSourceCategory": "PROPRIETARY", "launchStage": "GA"}
                                for m in catalog.listed("google")]}
    return Reply(200, {"content-type": "application/json; charset=UTF-8"},
                 (json.dumps(body, indent=2) + "\n").encode())
