"""Rich requests in the simulator: the attachments and output schema of a request in any of the
four wire formats, and the deterministic answer they call for (an instance of the schema, broken
JSON when the `invalid_json` fault is queued, or a description of the attachments)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

_ASKS_ABOUT_FILES = re.compile(r"\b(attach\w*|files?|images?|documents?|pdfs?)\b", re.I)


@dataclass
class Rich:
    """What a request carries besides text."""

    attachments: list[dict[str, Any]] = field(default_factory=list)  # media_type, size, sha256, url
    schema: dict[str, Any] | None = None
    invalid_json: bool = False


def _item(media_type: str | None, data: str | None = None, url: str | None = None) -> dict[str, Any]:
    if url and url.startswith("data:"):
        head, _, data = url.partition(",")
        media_type = media_type or head[5:].split(";")[0]
        url = None
    # google-genai sends bytes in URL-safe base64; the others in the standard alphabet.
    raw = base64.b64decode((data or "").replace("-", "+").replace("_", "/")) if data is not None else b""
    return {"media_type": media_type or "application/octet-stream", "size": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest() if url is None else None, "url": url}


def _chat(body: dict[str, Any], rich: Rich) -> None:
    for m in body.get("messages") or []:
        for part in (m.get("content") if isinstance(m.get("content"), list) else []):
            if part.get("type") == "image_url":
                rich.attachments.append(_item(None, url=(part.get("image_url") or {}).get("url")))
            elif part.get("type") == "file":
                rich.attachments.append(_item(None, url=(part.get("file") or {}).get("file_data")))
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        rich.schema = (fmt.get("json_schema") or {}).get("schema")


def _responses(body: dict[str, Any], rich: Rich) -> None:
    items = body.get("input") if isinstance(body.get("input"), list) else []
    for m in items:
        for part in (m.get("content") if isinstance(m.get("content"), list) else []):
            if part.get("type") == "input_image":
                rich.attachments.append(_item(None, url=part.get("image_url")))
            elif part.get("type") == "input_file":
                rich.attachments.append(_item("application/pdf",
                                              url=part.get("file_data") or part.get("file_url")))
    fmt = ((body.get("text") or {}).get("format")) or {}
    if fmt.get("type") == "json_schema":
        rich.schema = fmt.get("schema")


def _messages(body: dict[str, Any], rich: Rich) -> None:
    for m in body.get("messages") or []:
        for part in (m.get("content") if isinstance(m.get("content"), list) else []):
            if part.get("type") in ("image", "document"):
                src = part.get("source") or {}
                if src.get("type") == "base64":
                    rich.attachments.append(_item(src.get("media_type"), data=src.get("data")))
                elif src.get("type") == "url":
                    rich.attachments.append(_item("application/pdf" if part["type"] == "document"
                                                  else "image/*", url=src.get("url")))
    fmt = ((body.get("output_config") or {}).get("format")) or {}
    if fmt.get("type") == "json_schema":
        rich.schema = fmt.get("schema")


def _gemini(body: dict[str, Any], rich: Rich) -> None:
    for c in body.get("contents") or []:
        for part in c.get("parts") or []:
            inline = part.get("inlineData") or part.get("inline_data")
            if inline:
                rich.attachments.append(_item(inline.get("mimeType") or inline.get("mime_type"),
                                              data=inline.get("data")))
            ref = part.get("fileData") or part.get("file_data")
            if ref:
                rich.attachments.append(_item(ref.get("mimeType") or ref.get("mime_type"),
                                              url=ref.get("fileUri") or ref.get("file_uri")))
    config = body.get("generationConfig") or body.get("generation_config") or {}
    schema = config.get("responseJsonSchema") or config.get("response_json_schema") \
        or config.get("responseSchema")
    if schema:
        rich.schema = schema


_TEXT_FILE = re.compile(r"--- (?P<name>.*?) \((?P<type>[\w.+-]+/[\w.+-]+)\) ---\n(?P<body>.*?)\n--- end of (?P=name) ---",
                        re.S)


def _text_files(body: Any, rich: Rich) -> None:
    """Text attachments travel as text blocks (llmcells.attachments.text_block): find them."""
    for m in _TEXT_FILE.finditer(_all_text(body)):
        raw = m.group("body").encode("utf-8")
        rich.attachments.append({"media_type": m.group("type"), "size": len(raw),
                                 "sha256": hashlib.sha256(raw).hexdigest(), "url": None})


def _all_text(node: Any) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, dict):
        return "\n".join(_all_text(v) for k, v in node.items() if k in ("text", "content", "parts",
                                                                           "messages", "contents", "input"))
    if isinstance(node, list):
        return "\n".join(_all_text(v) for v in node)
    return ""


def inspect(provider: str, api: str, body: Any) -> Rich:
    """The attachments (with a sha256 of their decoded bytes) and schema of a request body."""
    rich = Rich()
    if not isinstance(body, dict):
        return rich
    try:
        {"chat": _chat, "responses": _responses, "messages": _messages}.get(api, _gemini)(body, rich)
        _text_files(body, rich)
    except (AttributeError, TypeError, ValueError):  # a body we don't understand: plain text
        pass
    return rich


# ----- answers ----------------------------------------------------------------------------------


def instance(schema: Any, defs: dict[str, Any] | None = None, name: str = "value") -> Any:
    """A deterministic value valid for schema (objects, arrays, enums, refs, anyOf...)."""
    if not isinstance(schema, dict):
        return None
    defs = defs if defs is not None else (schema.get("$defs") or schema.get("definitions") or {})
    if "$ref" in schema:
        return instance(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs, name)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return instance(options[0], defs, name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {k: instance(v, defs, k) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        n = max(int(schema.get("minItems", 1)), 1)
        return [instance(schema.get("items") or {"type": "string"}, defs, name) for _ in range(n)]
    if kind == "integer":
        return max(int(schema.get("minimum", 0)), 42 if "maximum" not in schema else 0)
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    fmt = schema.get("format")
    if fmt == "date":
        return "2024-01-01"
    if fmt == "date-time":
        return "2024-01-01T00:00:00Z"
    if fmt == "email":
        return "ada@example.com"
    return f"example {name}"


def answer(rich: Rich | None, prompt_text: str) -> str | None:
    """The answer a rich request gets, or None to answer as usual."""
    if rich is None:
        return None
    if rich.schema is not None:
        text = json.dumps(instance(rich.schema), ensure_ascii=False)
        return text[: max(len(text) // 2, 1)] if rich.invalid_json else text
    if rich.invalid_json:
        return '{"answer": "not closed'
    if rich.attachments and _ASKS_ABOUT_FILES.search(prompt_text or ""):
        listed = "; ".join(f"{a['media_type']}, {a['url'] or str(a['size']) + ' bytes'}"
                           for a in rich.attachments)
        return f"I received {len(rich.attachments)} attachment(s): {listed}."
    return None
