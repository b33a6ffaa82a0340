"""What the provider batch APIs refuse: a create request that doesn't fit the SDK's batch type,
and input lines without `custom_id`, `method`, `url` or `body`, or whose request the live API
would refuse (sim/validate.py). Structural problems are a 400 for the whole batch; OpenAI judges
each line's request during validation, so those make the job fail with one error per line.
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import catalog, validate
from .schema import check as check_type
from .validate import Refusal

_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _batch_type(provider: str) -> Any:
    validate.sdk_import(provider)
    with validate.SDK_IMPORT:
        if provider == "openai":
            from openai.types.batch_create_params import BatchCreateParams
            return BatchCreateParams
        from anthropic.types.messages.batch_create_params import BatchCreateParams as Anthropic
        return Anthropic


def _request_refusal(api: str, body: Any, path_model: str | None = None) -> Refusal | None:
    """The live API's refusal of one batch request (a retired model included)."""
    provider = validate.PROVIDER_OF[api]
    model = path_model or (str(body.get("model", "")) if isinstance(body, dict) else "")
    if model and catalog.status(provider, model) == "retired":
        return retired(provider, model)
    if not isinstance(body, dict):
        return validate.check(api, body, path_model, "")
    module = {"openai": "openai", "anthropic": "anthropic", "google": "google"}[provider]
    from importlib import import_module

    text = import_module(f"llmcells.sim.{module}").parse(api, body, path_model).text
    return validate.check(api, body, path_model, text)


def retired(provider: str, model: str) -> Refusal:
    """The 404 each API gives for a model it has shut down."""
    if provider == "openai":
        return Refusal(404, f"The model `{model}` does not exist or you do not have access to it.", "model",
                       "model_not_found")
    if provider == "anthropic":
        return Refusal(404, f"model: {model}")
    return Refusal(404, f"models/{model} is not found for API version v1beta, or is not supported for "
                        "batchGenerateContent. Call ModelService.ListModels to see the list of available "
                        "models and their supported methods.")


def create(provider: str, body: Any, *, strict: bool = True, files: dict[str, Any] | None = None,
           model: str | None = None) -> Refusal | None:
    """The refusal of a batch create request (None when the API would take it). Without
    `strict`, only what the simulator can't run at all (no requests, no custom_id) is refused."""
    if not isinstance(body, dict):
        return validate.check("chat" if provider == "openai" else "messages" if provider == "anthropic"
                              else "generate", body, None, "")
    if provider == "openai":
        problems = check_type(body, _batch_type("openai"))
        return validate._word("openai", validate._first(problems)) if problems else None
    if provider == "anthropic":
        return _anthropic(body, strict)
    return _google(body, strict, files or {}, model)


def _anthropic(body: dict[str, Any], strict: bool) -> Refusal | None:
    items = body.get("requests")
    if not isinstance(items, list) or not items:
        return Refusal(400, "requests: List should have at least 1 item after validation, not 0")
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "custom_id" not in item:
            return Refusal(400, f"requests.{i}.custom_id: Field required")
        if "params" not in item:
            return Refusal(400, f"requests.{i}.params: Field required")
        cid = item["custom_id"]
        if not isinstance(cid, str) or not _CUSTOM_ID.match(cid):
            return Refusal(400, f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        if cid in seen:
            return Refusal(400, f"Duplicate custom_id {cid!r}: custom_id values must be unique within a batch.")
        seen.add(cid)
    if not strict:
        return None
    problems = check_type(body, _batch_type("anthropic"))
    if problems:
        return validate._word("anthropic", validate._first(problems))
    for i, item in enumerate(items):
        refusal = _request_refusal("messages", item["params"])
        if refusal is not None and refusal.status != 404:  # a retired model: the line errors later
            refusal.message = f"requests.{i}.params.{refusal.message}" if ":" in refusal.message.split(" ")[0] \
                else f"requests.{i}.params: {refusal.message}"
            refusal.status = 400
            return refusal
    return None


def _google(body: dict[str, Any], strict: bool, files: dict[str, Any], model: str | None) -> Refusal | None:
    batch = body.get("batch")
    if not isinstance(batch, dict):
        return Refusal(400, "* BatchGenerateContentRequest.batch: batch is not specified")
    source = batch.get("inputConfig") or batch.get("input_config") or {}
    if source.get("fileName") or source.get("file_name"):
        found = files.get(source.get("fileName") or source.get("file_name"))
        if found is None:
            return None  # the batch module says which file is missing
        items = []
        for n, line in enumerate(found[1].decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                return Refusal(400, f"Invalid JSON on line {n} of the input file.")
            if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
                return Refusal(400, f"Line {n} of the input file has no request.")
            items.append(item["request"])
    else:
        listed = (source.get("requests") or {}).get("requests") or []
        if any(not isinstance(it, dict) or not isinstance(it.get("request"), dict) for it in listed):
            return Refusal(400, "* BatchGenerateContentRequest.batch.input_config.requests.requests.request: "
                                "request is not specified")
        items = [it["request"] for it in listed]
    if not strict:
        return None
    if model and catalog.status("google", model) == "retired":
        return retired("google", model)
    for request in items:
        refusal = _request_refusal("generate", request, model)
        if refusal is not None:
            return refusal
    return None


def openai_lines(content: bytes, endpoint: str) -> tuple[list[dict[str, Any]], Refusal | None]:
    """The input file's lines, or the 400 for a line the batch can't be made of."""
    lines: list[dict[str, Any]] = []
    seen: set[str] = set()
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return [], Refusal(400, "The input file is not valid UTF-8.", "input_file_id", "invalid_file_format")
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            return [], Refusal(400, f"Line {n}: the line is not valid JSON.", "input_file_id", "invalid_json_line")
        if not isinstance(item, dict):
            return [], Refusal(400, f"Line {n}: expected a JSON object.", "input_file_id", "invalid_json_line")
        for name in ("custom_id", "method", "url", "body"):
            if name not in item:
                return [], Refusal(400, f"Line {n}: Missing required parameter: '{name}'.", name,
                                   "missing_required_parameter")
        if not isinstance(item["custom_id"], str) or not isinstance(item["body"], dict):
            return [], Refusal(400, f"Line {n}: 'custom_id' must be a string and 'body' an object.",
                               "custom_id", "invalid_type")
        if item["method"] != "POST":
            return [], Refusal(400, f"Line {n}: Invalid value for 'method': only POST is supported.", "method",
                               "invalid_value")
        if item["url"] != endpoint:
            return [], Refusal(400, f"Line {n}: The url '{item['url']}' does not match the batch's endpoint "
                                    f"'{endpoint}'.", "url", "mismatched_endpoint")
        if item["custom_id"] in seen:
            return [], Refusal(400, f"Line {n}: The custom_id '{item['custom_id']}' is not unique in the batch.",
                               "custom_id", "duplicate_custom_id")
        seen.add(item["custom_id"])
        lines.append(item)
    if not lines:
        return [], Refusal(400, "The input file is empty.", "input_file_id", "empty_file")
    return lines, None


def openai_bodies(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The batch's validation errors: one per line whose request the live API would refuse."""
    errors = []
    for n, item in enumerate(lines, 1):
        api = "responses" if item["url"].endswith("/responses") else "chat"
        refusal = _request_refusal(api, item["body"])
        if refusal is not None:
            errors.append({"code": refusal.code or "invalid_request", "line": n,
                           "message": refusal.message,
                           "param": f"body.{refusal.param}" if refusal.param else None})
    return errors
