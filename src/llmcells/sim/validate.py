"""What the strict simulator refuses, and how each API words the refusal.

A request body is checked against the SDK's own request type (`schema.check`: required fields,
unknown fields, allowed values, JSON types), then against the documented rules the types can't
express: value ranges, roles, the model's context window and output cap, reasoning models'
fixed sampling parameters, and attachments (base64, media type, size). The first problem found
becomes one `Refusal`, worded as that API words it; `error_body` gives each API's error body.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import typing
from dataclasses import dataclass
from typing import Any

from .. import _imports
from . import catalog
from .schema import Problem, check as check_type, json_name
from .text import count_prompt_tokens

PROVIDER_OF = {"chat": "openai", "responses": "openai", "messages": "anthropic",
               "generate": "google", "stream": "google"}


@dataclass
class Refusal:
    """A request the real API would refuse: HTTP status, message and (OpenAI) param and code."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None


# ----- the SDK request types ------------------------------------------------------------------


# Importing a submodule (openai.types.chat...) holds that submodule's import lock while its
# package is imported; if another thread (llmcells' warm-up, a call) is importing the package,
# which imports the submodule too, Python sees a deadlock and one import fails ("partially
# initialized module 'httpx' has no attribute 'URL'"). So the package is imported first, on its
# own, under the lock every llmcells import outside the main thread takes: the simulator's
# threads, the warm-up and the client builder take turns.
SDK_IMPORT = _imports.import_lock


def sdk_import(package: str) -> None:
    """Import an SDK's top-level package (before any of its submodules)."""
    import importlib

    with SDK_IMPORT:
        importlib.import_module(package)


def request_type(api: str) -> Any:
    """The SDK type a request body of `api` must fit (imported on first use: the SDKs are big)."""
    found = _request_types.get(api)
    if found is not None:  # no lock: it is held for a whole SDK's import (another provider's,
        return found       # by the warm-up), and a request of a type in hand must not wait for it
    sdk_import({"chat": "openai", "responses": "openai", "messages": "anthropic"}.get(api, "google.genai"))
    with SDK_IMPORT:
        found = _request_types[api] = _request_type(api)
    return found


_request_types: dict[str, Any] = {}  # api -> its request type, once imported


def _request_type(api: str) -> Any:
    if api == "chat":
        from openai.types.chat.completion_create_params import CompletionCreateParams
        return CompletionCreateParams
    if api == "responses":
        from openai.types.responses.response_create_params import ResponseCreateParams
        return ResponseCreateParams
    if api == "messages":
        from anthropic.types.message_create_params import MessageCreateParams
        return MessageCreateParams
    return _gemini_request()


def warm_up() -> None:
    """Import the SDK request types in a background thread, so the first strict request does
    not wait for them (the three SDKs' types take a second or two to import)."""
    def load() -> None:
        try:  # first, on its own: google-genai's import brings it (see _imports.LEGACY_HTTPX)
            sdk_import(_imports.LEGACY_HTTPX)
        except ImportError as exc:
            from .._log import swallowed

            swallowed("importing the old httpx ahead", exc)
        for api in ("chat", "responses", "messages", "generate"):
            try:
                request_type(api)
            except ImportError as exc:  # an SDK that isn't installed: its requests aren't checked
                from .._log import swallowed

                swallowed(f"importing the request type of {api}", exc)

    threading.Thread(target=load, name="llmcells-sim-types", daemon=True).start()


def _gemini_request() -> Any:
    """The REST body of generateContent: google-genai's types for every part of it, under the
    top-level names its converter writes (`_GenerateContentParameters_to_mldev`), in either JSON
    spelling (the REST API takes camelCase and snake_case alike)."""
    from google.genai import types as g

    fields = {"contents": list[g.Content], "systemInstruction": g.Content, "tools": list[g.Tool],
              "toolConfig": g.ToolConfig, "safetySettings": list[g.SafetySetting],
              "generationConfig": g.GenerationConfig, "cachedContent": str,
              "labels": dict[str, str], "model": str, "serviceTier": str}
    snake = {re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), k): v for k, v in fields.items()}
    return typing.TypedDict("GenerateContentRequest", {**fields, **snake}, total=False)


# ----- wording ----------------------------------------------------------------------------------


def _openai_path(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _anthropic_path(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path)


def _gemini_path(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), str(part))
            out += f".{name}" if out else name
    return out


def _quote(values: list[Any]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _word(provider: str, p: Problem) -> Refusal:
    """A type problem as the API words it."""
    if provider == "openai":
        where = _openai_path(p.path)
        if p.kind == "missing":
            return Refusal(400, f"Missing required parameter: '{where}'.", where, "missing_required_parameter")
        if p.kind == "unknown" and len(p.path) == 1:
            return Refusal(400, f"Unrecognized request argument supplied: {p.name}")
        if p.kind == "unknown":
            return Refusal(400, f"Unknown parameter: '{where}'.", where, "unknown_parameter")
        if p.kind == "value":
            return Refusal(400, f"Invalid value: '{p.value}'. Supported values are: {_quote(p.allowed)}.",
                           where, "invalid_value")
        got = {"string": "a string", "integer": "an integer", "number": "a decimal", "boolean": "a boolean",
               "array": "an array", "object": "an object", "null": "null"}
        return Refusal(400, f"Invalid type for '{where}': expected {got.get(p.expected, p.expected)}, "
                            f"but got {got.get(json_name(p.value), 'a value')} instead.", where, "invalid_type")
    if provider == "anthropic":
        where = _anthropic_path(p.path)
        text = {"missing": "Field required", "unknown": "Extra inputs are not permitted",
                "value": "Input should be " + " or ".join(f"'{v}'" for v in p.allowed),
                "type": f"Input should be a valid {p.expected}"}[p.kind]
        return Refusal(400, f"{where}: {text}")
    where = _gemini_path(p.path)
    if p.kind == "unknown":
        parent = _gemini_path(p.path[:-1])
        at = f" at '{parent}'" if parent else ""
        return Refusal(400, f'Invalid JSON payload received. Unknown name "{p.name}"{at}: Cannot find field.')
    if p.kind == "missing":
        return Refusal(400, f"* GenerateContentRequest.{where}: {p.name} is not specified")
    if p.kind == "value":
        return Refusal(400, f"Invalid value at '{where}', \"{p.value}\"")
    kind = {"number": "TYPE_FLOAT", "integer": "TYPE_INT32", "string": "TYPE_STRING",
            "boolean": "TYPE_BOOL"}.get(p.expected, "TYPE_MESSAGE")
    return Refusal(400, f"Invalid value at '{where}' ({kind}), {_short(p.value)}")


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _range(provider: str, path: tuple[str | int, ...], value: Any, low: float | None,
           high: float | None) -> Refusal | None:
    """A number outside [low, high], as the API words it (None when it is inside)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    below, above = low is not None and value < low, high is not None and value > high
    if not (below or above):
        return None
    kind = "integer" if isinstance(value, int) and not isinstance(low if below else high, float) else "decimal"
    if provider == "openai":
        where = _openai_path(path)
        bound = low if below else high
        side = "below minimum" if below else "above maximum"
        sign = ">=" if below else "<="
        return Refusal(400, f"Invalid '{where}': {kind} {side} value. Expected a value {sign} {bound:g}, "
                            f"but got {value:g} instead.", where,
                       f"{kind}_{'below_min' if below else 'above_max'}_value")
    if provider == "anthropic":
        return Refusal(400, f"{_anthropic_path(path)}: Input should be "
                            f"{'greater' if below else 'less'} than or equal to {(low if below else high):g}")
    name = path[-1]
    return Refusal(400, f"Unable to submit request because it has a {name} value of {value:g} but the "
                        f"supported range is from {low if low is not None else 0:g} (inclusive) to "
                        f"{(high if high is not None else 0) + (1 if isinstance(high, int) else 0.0001):g} "
                        "(exclusive). Update the value and try again.")


# Documented ranges of numeric fields: path -> (low, high).
_RANGES = {
    "chat": {("temperature",): (0.0, 2.0), ("top_p",): (0.0, 1.0), ("presence_penalty",): (-2.0, 2.0),
             ("frequency_penalty",): (-2.0, 2.0), ("n",): (1, 128), ("top_logprobs",): (0, 20),
             ("max_tokens",): (1, None), ("max_completion_tokens",): (1, None)},
    "responses": {("temperature",): (0.0, 2.0), ("top_p",): (0.0, 1.0), ("top_logprobs",): (0, 20),
                  ("max_output_tokens",): (16, None)},
    "messages": {("max_tokens",): (1, None)},
    "google": {("generationConfig", "temperature"): (0.0, 2.0), ("generationConfig", "topP"): (0.0, 1.0),
               ("generationConfig", "candidateCount"): (1, 8),
               ("generationConfig", "maxOutputTokens"): (1, None),
               ("generationConfig", "presencePenalty"): (-2.0, 2.0),
               ("generationConfig", "frequencyPenalty"): (-2.0, 2.0)},
}


def _get(body: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = body
    for part in path:
        if not isinstance(node, dict):
            return None
        alt = re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), part)
        node = node.get(part, node.get(alt))
    return node


# ----- the checks ---------------------------------------------------------------------------------

# Per-attachment and per-request size limits (bytes), from each API's documentation.
ANTHROPIC_IMAGE_MAX = 5 * 1024 * 1024
ANTHROPIC_MIN_THINKING_BUDGET = 1024
ANTHROPIC_REQUEST_MAX = 32 * 1024 * 1024
OPENAI_IMAGE_MAX = 20 * 1024 * 1024
OPENAI_REQUEST_MAX = 50 * 1024 * 1024
GEMINI_REQUEST_MAX = 20 * 1024 * 1024
_MAGIC = {"image/png": (b"\x89PNG",), "image/jpeg": (b"\xff\xd8\xff",), "image/gif": (b"GIF87a", b"GIF89a"),
          "image/webp": (b"RIFF",), "application/pdf": (b"%PDF",)}
_GEMINI_MEDIA = re.compile(r"^(image|audio|video|text)/[\w.+-]+$|^application/(pdf|json|x-python|javascript)$")


def _b64(data: Any, urlsafe: bool = False) -> bytes | None:
    """The decoded bytes, or None when `data` is not base64."""
    if not isinstance(data, str):
        return None
    try:
        if urlsafe:
            data = data.replace("-", "+").replace("_", "/")
        return base64.b64decode(data + "=" * (-len(data) % 4) if urlsafe else data, validate=True)
    except (binascii.Error, ValueError):
        return None


def _mismatch(media_type: str, raw: bytes) -> bool:
    heads = _MAGIC.get(media_type)
    return heads is not None and not raw.startswith(heads)


def request_size(raw_size: int, provider: str) -> Refusal | None:
    """A body larger than the API takes (413 for OpenAI and Anthropic, 400 for Gemini)."""
    if provider == "anthropic" and raw_size > ANTHROPIC_REQUEST_MAX:
        return Refusal(413, f"Request exceeds the maximum allowed number of bytes. The maximum request "
                            f"size is {ANTHROPIC_REQUEST_MAX} bytes.", code="request_too_large")
    if provider == "openai" and raw_size > OPENAI_REQUEST_MAX:
        return Refusal(413, f"Request too large: {raw_size} bytes, the maximum is {OPENAI_REQUEST_MAX} bytes.",
                       code="request_too_large")
    if provider == "google" and raw_size > GEMINI_REQUEST_MAX:
        return Refusal(400, f"Request payload size exceeds the limit: {GEMINI_REQUEST_MAX} bytes.")
    return None


def _anthropic_rules(body: dict[str, Any], model: catalog.SimModel) -> Refusal | None:
    for i, m in enumerate(body.get("messages") or []):
        if m.get("role") == "system":
            # The SDK's MessageParam admits a "system" message, but the API takes the system
            # prompt only as the top-level `system` field (the `messages` field's own docs).
            return Refusal(400, 'messages: Unexpected role "system". The Messages API accepts a top-level '
                                '`system` parameter, not "system" as an input message role.')
        for j, block in enumerate(m.get("content") if isinstance(m.get("content"), list) else []):
            src = block.get("source") or {}
            if block.get("type") not in ("image", "document") or src.get("type") != "base64":
                continue
            where = f"messages.{i}.content.{j}.source"
            raw = _b64(src.get("data"))
            if raw is None:
                return Refusal(400, f"{where}.data: The {block['type']} data is not valid base64.")
            if block["type"] == "image" and len(raw) > ANTHROPIC_IMAGE_MAX:
                return Refusal(400, f"{where}.base64: image exceeds 5 MB maximum: {len(raw)} bytes > "
                                    f"{ANTHROPIC_IMAGE_MAX} bytes")
            if _mismatch(src.get("media_type", ""), raw):
                return Refusal(400, f"{where}.base64.data: Image does not match the provided media type "
                                    f"{src.get('media_type')}" if block["type"] == "image" else
                               f"{where}.base64.data: The PDF specified was not valid.")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens > model.max_output:
        return Refusal(400, f"max_tokens: {max_tokens} > {model.max_output}, which is the maximum allowed "
                            f"number of output tokens for {model.id}")
    budget = (body.get("thinking") or {}).get("budget_tokens")
    if isinstance(budget, int) and (body.get("thinking") or {}).get("type") == "enabled" \
            and budget < ANTHROPIC_MIN_THINKING_BUDGET:
        # the SDK's ThinkingConfigParam: "a budget_tokens of at least 1,024"; the API's schema
        # check names the union member ("enabled") in the path
        return Refusal(400, "thinking.enabled.budget_tokens: Input should be greater than or equal to "
                            f"{ANTHROPIC_MIN_THINKING_BUDGET}")
    if isinstance(budget, int) and isinstance(max_tokens, int) and budget >= max_tokens:
        return Refusal(400, "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                            "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
                            "#max-tokens-and-context-window-size")
    return _thinking_kept(body) if claude_thinks(body) else None


def claude_thinks(body: Any) -> bool:
    """Whether a Messages request has Claude's thinking on (enabled, or adaptive)."""
    thinking = body.get("thinking") if isinstance(body, dict) else None
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


_THINKING_FIRST = ("When `thinking` is enabled, a final `assistant` message must start with a thinking "
                   "block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We "
                   "recommend you include thinking blocks from previous turns. To avoid this "
                   "requirement, disable `thinking`. Please consult our documentation at "
                   "https://docs.claude.com/en/docs/build-with-claude/extended-thinking")


def _thinking_kept(body: dict[str, Any]) -> Refusal | None:
    """With thinking on, the assistant turn of the last tool calls starts with the thinking that
    came before them, unchanged (the API checks its signature)."""
    from .common import sign_thinking

    messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    for i in range(len(messages) - 1, -1, -1):
        content = messages[i].get("content")
        if messages[i].get("role") != "assistant" or not isinstance(content, list):
            continue
        blocks = [b for b in content if isinstance(b, dict)]
        if not any(b.get("type") == "tool_use" for b in blocks):
            return None  # the last assistant turn made no calls: nothing to keep
        first = blocks[0].get("type") if blocks else None
        if first not in ("thinking", "redacted_thinking"):
            return Refusal(400, f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, "
                                f"but found `{first}`. {_THINKING_FIRST}")
        for j, b in enumerate(blocks):
            if b.get("type") == "thinking" and b.get("signature") != sign_thinking(str(b.get("thinking"))):
                return Refusal(400, f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")
        return None
    return None


def _data_url(url: Any) -> tuple[str, bytes | None] | None:
    """(media type, decoded bytes or None when broken) of a base64 data URL; None for other URLs."""
    if not isinstance(url, str) or not url.startswith("data:"):
        return None
    head, _, data = url.partition(",")
    media = head[5:].split(";")[0]
    return media, (_b64(data) if head.endswith(";base64") else None)


def _openai_rules(api: str, body: dict[str, Any], model: catalog.SimModel) -> Refusal | None:
    parts: list[tuple[str, dict[str, Any]]] = []
    if api == "chat":
        for i, m in enumerate(body.get("messages") or []):
            for j, part in enumerate(m.get("content") if isinstance(m.get("content"), list) else []):
                parts.append((f"messages[{i}].content[{j}]", part))
    else:
        items = body.get("input") if isinstance(body.get("input"), list) else []
        for i, m in enumerate(items):
            for j, part in enumerate(m.get("content") if isinstance(m.get("content"), list) else []):
                parts.append((f"input[{i}].content[{j}]", part))
    for where, part in parts:
        kind = part.get("type")
        url = ((part.get("image_url") or {}).get("url") if kind == "image_url" else part.get("image_url")
               if kind == "input_image" else (part.get("file") or {}).get("file_data") if kind == "file"
               else part.get("file_data") if kind == "input_file" else None)
        found = _data_url(url)
        if kind == "input_file" and isinstance(url, str) and found is None:
            found = ("application/pdf", _b64(url))   # Responses takes the bare base64 too
        if found is None:
            continue
        media, raw = found
        if kind in ("image_url", "input_image"):
            if raw is None or media not in ("image/png", "image/jpeg", "image/gif", "image/webp") \
                    or len(raw) > OPENAI_IMAGE_MAX or _mismatch(media, raw):
                return Refusal(400, "You uploaded an unsupported image. Please make sure your image is below "
                                    "20 MB in size and is of one the following formats: ['png', 'jpeg', 'gif', "
                                    "'webp'].", f"{where}.image_url", "invalid_image_format")
        elif raw is None or _mismatch(media, raw):
            return Refusal(400, f"Invalid file data: '{where}.file_data'. Expected a base64-encoded data URL "
                                "with an application/pdf MIME type (e.g. 'data:application/pdf;base64,"
                                "SGVsbG8sIFdvcmxkIQ=='), but got an invalid value.", f"{where}.file_data",
                           "invalid_value")
    if model.reasoning and api == "chat" and body.get("max_tokens") is not None:
        return Refusal(400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                            "'max_completion_tokens' instead.", "max_tokens", "unsupported_parameter")
    if model.reasoning:
        effort = body.get("reasoning_effort") if api == "chat" else (body.get("reasoning") or {}).get("effort")
        free = model.temperature_with_effort_none and effort == "none"
        for name in ("temperature", "top_p"):
            value = body.get(name)
            if value is not None and value != 1 and not free:
                return Refusal(400, f"Unsupported value: '{name}' does not support {value:g} with this model. "
                                    "Only the default (1) value is supported.", name, "unsupported_value")
        # Reasoning models take no penalties at all (whatever the effort): the parameter itself
        # is refused, not its value.
        for name in ("presence_penalty", "frequency_penalty"):
            if api == "chat" and body.get(name) is not None:
                return Refusal(400, f"Unsupported parameter: '{name}' is not supported with this model.",
                               name, "unsupported_parameter")
        if api == "chat" and model.temperature_with_effort_none and effort != "none" and any(
                isinstance(t, dict) and t.get("type") == "function" for t in body.get("tools") or []):
            return Refusal(400, f"Function tools with reasoning_effort are not supported for {model.id} in "
                                "/v1/chat/completions. Please use /v1/responses instead, or set "
                                "reasoning_effort to 'none'.", "reasoning_effort", "unsupported_parameter")
    limit = body.get("max_completion_tokens") or body.get("max_tokens") if api == "chat" else None
    if isinstance(limit, int) and limit > model.max_output:
        name = "max_completion_tokens" if body.get("max_completion_tokens") else "max_tokens"
        return Refusal(400, f"{name} is too large: {limit}. This model supports at most {model.max_output} "
                            "completion tokens, whereas you provided " f"{limit}.", name, "invalid_value")
    return None


def _gemini_rules(body: dict[str, Any], model: catalog.SimModel) -> Refusal | None:
    for i, c in enumerate(body.get("contents") or []):
        if c.get("role") not in (None, "user", "model"):
            return Refusal(400, "Please use a valid role: user, model.")
        for j, part in enumerate(c.get("parts") or []):
            inline = part.get("inlineData") or part.get("inline_data")
            if not inline:
                continue
            where = f"contents[{i}].parts[{j}].inline_data"
            media = inline.get("mimeType") or inline.get("mime_type") or ""
            raw = _b64(inline.get("data"), urlsafe=True)
            if raw is None:
                return Refusal(400, f"Invalid value at '{where}.data' (TYPE_BYTES), Base64 decoding failed "
                                    f"for {_short(str(inline.get('data'))[:40])}")
            if not _GEMINI_MEDIA.match(media):
                return Refusal(400, f"Unsupported MIME type: {media}")
    generation = re.match(r"gemini-(\d+)", catalog.base_id(model.id))
    if generation is not None and int(generation.group(1)) >= 3:
        unsigned = _unsigned_call(body.get("contents") or [])
        if unsigned is not None:
            return unsigned
    thinking = _get(body, ("generationConfig", "thinkingConfig"))
    if isinstance(thinking, dict):
        level = thinking.get("thinkingLevel", thinking.get("thinking_level"))
        budget = thinking.get("thinkingBudget", thinking.get("thinking_budget"))
        if level is not None and budget is not None:
            return Refusal(400, "You can only set only one of thinking budget and thinking level.")
        if level is not None and generation is not None and int(generation.group(1)) < 3:
            # thinking levels came with Gemini 3; earlier models take only a budget
            return Refusal(400, "Thinking level is not supported for this model.")
    limit = _get(body, ("generationConfig", "maxOutputTokens"))
    if isinstance(limit, int) and limit > model.max_output:
        return Refusal(400, f"Unable to submit request because it has a maxOutputTokens value of {limit} but "
                            f"the supported range is from 1 (inclusive) to {model.max_output + 1} (exclusive). "
                            "Update the value and try again.")
    return None


#: the placeholder signatures Google documents for a history a client did not get from the model
_DUMMY_SIGNATURES = {b"context_engineering_is_the_way_to_go", b"skip_thought_signature_validator"}


def _unsigned_call(contents: list[Any]) -> Refusal | None:
    """Gemini 3's check of the current turn (every content after the last user text): each
    model step's first function call must carry the thoughtSignature it came with (the others
    of a step of parallel calls carry none)."""
    start = 0
    for i, c in enumerate(contents):
        if isinstance(c, dict) and c.get("role", "user") == "user" and any(
                isinstance(p, dict) and "text" in p for p in c.get("parts") or ()):
            start = i + 1
    for i in range(start, len(contents)):
        c = contents[i]
        if not isinstance(c, dict) or c.get("role") != "model":
            continue
        calls = [p for p in c.get("parts") or () if isinstance(p, dict)
                 and ("functionCall" in p or "function_call" in p)]
        if not calls:
            continue
        first = calls[0]
        signature = first.get("thoughtSignature", first.get("thought_signature"))
        if not signature:
            name = (first.get("functionCall") or first.get("function_call") or {}).get("name", "")
            return Refusal(400, "Function call is missing a thought_signature in functionCall parts. This "
                                "is required for tools to work correctly, and missing thought_signature "
                                "may lead to degraded model performance. Additional data, function call "
                                f"`default_api:{name}` , position {i + 1}. Please refer to "
                                "https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")
        raw = _b64(signature)
        if raw is None or (raw not in _DUMMY_SIGNATURES and not raw.startswith(b"sig:")):
            return Refusal(400, "Corrupted thought signature.")
    return None


def _context(provider: str, model: catalog.SimModel, text: str) -> Refusal | None:
    """A prompt longer than the model's context window, as each API refuses it."""
    tokens = max(count_prompt_tokens(text), len(text) // 4)
    if tokens <= model.context:
        return None
    if provider == "anthropic":
        return Refusal(400, f"prompt is too long: {tokens} tokens > {model.context} maximum")
    if provider == "openai":
        return Refusal(400, f"This model's maximum context length is {model.context} tokens. However, your "
                            f"messages resulted in {tokens} tokens. Please reduce the length of the messages.",
                       "messages", "context_length_exceeded")
    return Refusal(400, f"The input token count ({tokens}) exceeds the maximum number of tokens allowed "
                        f"({model.context}).")


# Anthropic API versions before this one still take the sampling parameters the SDK dropped
# (clients that pin an older `anthropic-version`, such as agent CLIs, send them).
ANTHROPIC_SAMPLING_REMOVED = "2026-10-21"
_ANTHROPIC_SAMPLING = {("temperature",): (0.0, 1.0), ("top_p",): (0.0, 1.0), ("top_k",): (0, None)}


def _anthropic_view(api: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[Any, dict[str, Any],
                                                                                     dict[tuple[str, ...], Any]]:
    """(request type, body to check against it, extra ranges) for the request's API version and
    betas: a request with `anthropic-beta` is checked against the SDK's beta type."""
    tp = request_type(api)
    if headers.get("anthropic-beta"):
        with SDK_IMPORT:
            from anthropic.types.beta.message_create_params import MessageCreateParams as Beta
        tp = Beta
    version = headers.get("anthropic-version") or ANTHROPIC_SAMPLING_REMOVED
    if version < ANTHROPIC_SAMPLING_REMOVED:
        return tp, {k: v for k, v in body.items() if k not in ("temperature", "top_p", "top_k")}, \
            _ANTHROPIC_SAMPLING
    return tp, body, {}


def from_agent_cli(headers: dict[str, str]) -> bool:
    """Whether a request comes from a provider's own coding-agent CLI: Codex sends an
    `originator` header; Gemini CLI's and Claude Code's user agents name them."""
    agent = headers.get("user-agent", "")
    return "originator" in headers or agent.startswith(("GeminiCLI", "claude-cli/"))


def check(api: str, body: Any, path_model: str | None, prompt_text: str,
          headers: dict[str, str] | None = None) -> Refusal | None:
    """The refusal a real API gives this request body (sent with these headers), or None when it
    would take it."""
    provider = PROVIDER_OF[api]
    if not isinstance(body, dict):
        return Refusal(400, {"openai": "We could not parse the JSON body of your request. (HINT: This likely "
                                       "means you aren't using your HTTP library correctly. The OpenAI API "
                                       "expects a JSON payload, but what was sent was not valid JSON.)",
                             "anthropic": "There was an error parsing the body of your request.",
                             "google": "Invalid JSON payload received."}[provider])
    tp, checked, ranges = request_type(api), body, {}
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    if provider == "anthropic":
        tp, checked, ranges = _anthropic_view(api, body, lowered)
    problems = check_type(checked, tp)
    # `stream` picks between the SDK's streaming and non-streaming types; either value is fine.
    if provider != "google":
        problems = [p for p in problems if p.path != ("stream",)]
    if from_agent_cli(lowered):
        # The providers' own CLIs are newer than the installed SDKs' request types (Codex sends
        # `client_metadata` and web-search tool fields the openai SDK doesn't declare yet), and
        # the live APIs take what they send: only the documented rules below apply to them.
        problems = []
    if problems:
        return _word(provider, _first(problems))
    model = catalog.find(provider, path_model or str(body.get("model", "")))
    for path, (low, high) in {**_RANGES["google" if provider == "google" else api], **ranges}.items():
        if provider == "google" and path == ("generationConfig", "maxOutputTokens"):
            high = model.max_output  # the range Gemini's message states is the model's own
        refusal = _range(provider, path, _get(body, path), low, high)
        if refusal is not None:
            return refusal
    rules = {"openai": lambda: _openai_rules(api, body, model),
             "anthropic": lambda: _anthropic_rules(body, model),
             "google": lambda: _gemini_rules(body, model)}[provider]
    return rules() or _context(provider, model, prompt_text)


def _first(problems: list[Problem]) -> Problem:
    """The problem the API names first: an unknown or missing top-level field, then the rest in
    the order of the body."""
    order = {"unknown": 0, "missing": 1, "value": 2, "type": 3}
    return min(problems, key=lambda p: (len(p.path) > 1, order[p.kind]))


# ----- error bodies ---------------------------------------------------------------------------------


def error_body(provider: str, refusal: Refusal, request_id: str) -> dict[str, Any]:
    """The JSON error body of a refusal, in the API's own shape."""
    if provider == "openai":
        return {"error": {"message": refusal.message, "type": "invalid_request_error",
                          "param": refusal.param, "code": refusal.code}}
    if provider == "anthropic":
        kind = "request_too_large" if refusal.status == 413 else "invalid_request_error"
        return {"type": "error", "error": {"type": kind, "message": refusal.message}, "request_id": request_id}
    status = {404: "NOT_FOUND", 413: "INVALID_ARGUMENT"}.get(refusal.status, "INVALID_ARGUMENT")
    return {"error": {"code": refusal.status, "message": refusal.message, "status": status}}
