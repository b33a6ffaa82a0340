"""Azure OpenAI's wire format: OpenAI's bodies and events at Azure's deployment URLs, with its
`api-key` header, `?api-version=`, its headers and its error bodies (429 with `retry-after-ms`)."""

from __future__ import annotations

import re
import sys
import uuid
from typing import Any

from . import catalog, openai
from .common import Plan, Prompt, Reply, compact

PROVIDER = "openai"  # the wire format of the bodies and events
ROUTE = "azure"      # the name faults, the request log and prices know this route by
_DEPLOYMENT = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")
_RESPONSES = ("/openai/responses", "/openai/v1/responses")
_MODELS = ("/openai/models", "/openai/v1/models")
#: the form of a dated data-plane api-version: "2024-10-21", "2025-04-01-preview"
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")

refuse = openai.refuse
_SAFE = {"filtered": False, "severity": "safe"}
#: the content-filter verdict Azure puts on a prompt (and on the first streamed chunk)
PROMPT_FILTER = [{"prompt_index": 0, "content_filter_results": {
    "hate": _SAFE, "jailbreak": {"filtered": False, "detected": False}, "self_harm": _SAFE,
    "sexual": _SAFE, "violence": _SAFE}}]


def stream(plan: Plan) -> Any:
    """OpenAI's stream; on Chat Completions Azure first sends a chunk with no choices and no
    model, only the prompt's content-filter results."""
    fmt = openai.stream(plan)
    if plan.api == "chat":
        first = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                 "prompt_filter_results": PROMPT_FILTER}
        opening = fmt.open
        fmt.open = lambda: [b"data: " + compact(first).encode() + b"\n\n", *opening()]
    return fmt


def route(method: str, path: str) -> tuple[Any, str, str, str | None] | None:
    """(this module, internal api, logged api, deployment) for an Azure OpenAI inference URL."""
    if method != "POST":
        return None
    match = _DEPLOYMENT.match(path)
    if match:
        return sys.modules[__name__], "chat", "chat", match.group(1)
    if path in _RESPONSES:
        return sys.modules[__name__], "responses", "responses", None
    return None


def api_key(req: Any) -> str:
    """Azure's `api-key` header, or an Entra ID bearer token."""
    bearer = req.headers.get("authorization", "")
    return req.headers.get("api-key") or (bearer[7:].strip() if bearer.lower().startswith("bearer ") else "")


def precheck(req: Any) -> Reply | None:
    """Azure refuses a request without `?api-version=` (404) or with one not of a version's form
    (400 "API version not supported") before anything else; the v1 API (`/openai/v1/...`) takes
    none, or "preview"."""
    version = req.query.get("api-version")
    if req.path.startswith("/openai/v1/"):
        ok = version in (None, "", "preview")
    elif not version:
        body = {"error": {"code": "404", "message": "Resource not found"}}
        return Reply(404, headers(False), compact(body).encode())
    else:
        ok = bool(_VERSION.match(version))
    if ok:
        return None
    body = {"error": {"code": "BadRequest", "message": "API version not supported"}}
    return Reply(400, headers(False), compact(body).encode())


def parse(api: str, body: dict[str, Any], path_model: str | None = None) -> Prompt:
    """The prompt; on a deployment URL the deployment is the model, whatever the body says."""
    prompt = openai.parse(api, body, path_model)
    if path_model:
        prompt.model = path_model
    return prompt


def headers(stream: bool) -> dict[str, str]:
    """The headers Azure's gateway sends (request ids, region, the rate-limit counters)."""
    return {
        "content-type": openai.SSE_TYPE if stream else openai.JSON_TYPE,
        "apim-request-id": str(uuid.uuid4()),
        "x-request-id": str(uuid.uuid4()),
        "x-ms-region": "Sweden Central",
        "x-ms-rai-invoked": "true",
        "azureml-model-session": "d001-20260101000000",
        "x-ratelimit-limit-requests": "1000",
        "x-ratelimit-limit-tokens": "1000000",
        "x-ratelimit-remaining-requests": "999",
        "x-ratelimit-remaining-tokens": "999900",
        "strict-transport-security": "max-age=31536000; includeSubDomains; preload",
    }


def rate_headers(provider: str, input_tokens: int = 0) -> dict[str, str]:
    """The rate-limit headers are among headers() already."""
    return {}


_ERRORS = {
    "401": (401, "401", "Access denied due to invalid subscription key or wrong API endpoint. Make "
                        "sure to provide a valid key for an active subscription and use a correct "
                        "regional API endpoint for your resource."),
    "400": (400, None, "Invalid request: the simulator was asked to reject this request."),
    "500": (500, None, "The server had an error while processing your request. Sorry about that!"),
    "529": (503, None, "The service is temporarily unable to process your request. Please try again later."),
}


def error(fault: str, model: str, *, api: str, stream: bool, key: str = "",
          retry_after: float | None = None) -> Reply:
    """The HTTP error answer for a fault name, as Azure words it."""
    hdrs = headers(False)
    if fault == "404":
        status, fields = 404, {"code": "DeploymentNotFound",
                               "message": "The API deployment for this resource does not exist. If you "
                                          "created the deployment within the last 5 minutes, please "
                                          "wait a moment and try again."}
    elif fault == "429":
        delay = retry_after if retry_after is not None else 6
        status, fields = 429, {"code": "429", "message": (
            "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
            "2025-04-01-preview have exceeded token rate limit of your current AIServices S0 pricing "
            f"tier. Please retry after {delay:g} seconds.")}
        hdrs["retry-after"] = f"{delay:g}"
        hdrs["retry-after-ms"] = str(int(delay * 1000))
        hdrs["x-ratelimit-remaining-requests"] = "0"
    else:
        status, code, message = _ERRORS.get(fault, _ERRORS["500"])
        fields = {"code": code, "message": message} if code else {
            "message": message, "type": "server_error" if status >= 500 else "invalid_request_error",
            "param": None, "code": None}
    return Reply(status, hdrs, compact({"error": fields}).encode())


def complete(plan: Plan) -> Reply:
    """A non-streamed answer."""
    reply = openai.complete(plan)
    return Reply(200, headers(False), reply.body)


def listing(method: str, path: str, key: str) -> Reply | None:
    """GET /openai/models: the models the resource may deploy (as the OpenAI list)."""
    if method != "GET" or path not in _MODELS:
        return None
    if not key:
        return error("401", "", api="models", stream=False)
    data = [{"id": m.id, "object": "model", "created": 0, "owned_by": "system",
             "capabilities": {"chat_completion": True}, "lifecycle_status": "generally-available"}
            for m in catalog.listed("openai")]
    return Reply(200, headers(False), compact({"data": data, "object": "list"}).encode())
