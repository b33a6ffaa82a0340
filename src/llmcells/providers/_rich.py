"""Attachments and output schemas in each provider's native request shape (no SDK imports here).

The adapters' request builders call these for the last user message (where attachments go) and
for the structured-output fields; text files always go in as text.
"""

from __future__ import annotations

from typing import Any

from ..attachments import text_block
from ..structured import strict_schema
from ..types import Request


def _last_user(request: Request) -> int:
    for i in range(len(request.messages) - 1, -1, -1):
        if request.messages[i].role == "user":
            return i
    return -1


def contents(request: Request, part: Any) -> list[Any]:
    """Each message's content, the last user one built by `part(text, attachments)`."""
    last = _last_user(request) if request.attachments else -1
    return [part(m.content, request.attachments) if i == last else m.content
            for i, m in enumerate(request.messages)]


# ----- OpenAI Chat Completions ---------------------------------------------------------------------


def chat_parts(text: str, files: Any) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    for a in files:
        if a.kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": a.data_url()}})
        elif a.kind == "pdf":
            parts.append({"type": "file", "file": {"filename": a.name or "document.pdf",
                                                   "file_data": a.data_url()}})
        else:
            parts.append({"type": "text", "text": text_block(a)})
    return parts


def chat_schema(request: Request) -> dict[str, Any]:
    s = request.schema
    if s is None or request.extra.get("schema_mode") != "native":
        return {}
    return {"response_format": {"type": "json_schema", "json_schema": {
        "name": s.name, "schema": strict_schema(s.json_schema), "strict": True}}}


# ----- OpenAI Responses ------------------------------------------------------------------------------


def responses_parts(text: str, files: Any) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "input_text", "text": text}]
    for a in files:
        if a.kind == "image":
            parts.append({"type": "input_image", "image_url": a.data_url(), "detail": "auto"})
        elif a.kind == "pdf":
            if a.url:
                parts.append({"type": "input_file", "file_url": a.url})
            else:
                parts.append({"type": "input_file", "filename": a.name or "document.pdf",
                              "file_data": a.data_url()})
        else:
            parts.append({"type": "input_text", "text": text_block(a)})
    return parts


def responses_schema(request: Request) -> dict[str, Any]:
    s = request.schema
    if s is None:
        return {}
    return {"text": {"format": {"type": "json_schema", "name": s.name,
                                "schema": strict_schema(s.json_schema), "strict": True}}}


# ----- Anthropic ---------------------------------------------------------------------------------------


def anthropic_parts(text: str, files: Any) -> list[dict[str, Any]]:
    # Anthropic advises putting images and documents before the question.
    parts: list[dict[str, Any]] = []
    for a in files:
        if a.kind in ("image", "pdf"):
            source = ({"type": "url", "url": a.url} if a.url else
                      {"type": "base64", "media_type": a.media_type, "data": a.base64()})
            block: dict[str, Any] = {"type": "image" if a.kind == "image" else "document",
                                     "source": source}
            if a.kind == "pdf" and a.name:
                block["title"] = a.name
            parts.append(block)
        else:
            parts.append({"type": "text", "text": text_block(a)})
    parts.append({"type": "text", "text": text})
    return parts


def anthropic_schema(request: Request) -> dict[str, Any]:
    s = request.schema
    if s is None:
        return {}
    return {"output_config": {"format": {"type": "json_schema", "schema": strict_schema(s.json_schema)}}}


# ----- Gemini ------------------------------------------------------------------------------------------


def gemini_parts(text: str, files: Any) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for a in files:
        if a.kind in ("image", "pdf"):
            if a.url:
                parts.append({"file_data": {"file_uri": a.url, "mime_type": a.media_type}})
            else:
                parts.append({"inline_data": {"data": a.data, "mime_type": a.media_type}})
        else:
            parts.append({"text": text_block(a)})
    parts.append({"text": text})
    return parts


def gemini_schema(request: Request) -> dict[str, Any]:
    s = request.schema
    if s is None:
        return {}
    return {"response_mime_type": "application/json", "response_json_schema": s.json_schema}


def attach_to_last_user(out: list[dict[str, Any]], request: Request, part: Any) -> list[dict[str, Any]]:
    """out (messages already in the provider's shape, tool turns included) with the request's
    attachments added to the last plain user message, as `part(text, attachments)` builds them."""
    if not request.attachments:
        return out
    for item in reversed(out):
        if item.get("role") != "user":
            continue
        if isinstance(item.get("content"), str):            # OpenAI chat / Responses, Anthropic
            item["content"] = part(item["content"], request.attachments)
            return out
        parts = item.get("parts")
        if isinstance(parts, list) and len(parts) == 1 and isinstance(parts[0], dict) \
                and set(parts[0]) == {"text"}:               # Gemini
            built = part(parts[0]["text"], request.attachments)
            item["parts"] = built if isinstance(built, list) else [{"text": built}]
            return out
    return out
