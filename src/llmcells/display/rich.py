"""HTML for what a rich request adds to a card: the attachments (image thumbnails, file chips with
name and size) and, once a schema'd answer is validated, its fields as a small table."""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any
from .._log import swallowed

#: images up to this size are shown as they are; larger ones are shrunk first (PIL)
_INLINE_BYTES = 150_000
_THUMB_PX = 64


def _size(n: int) -> str:
    return f"{n / 1048576:.1f} MB" if n >= 100_000 else f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} B"


def _thumbnail(a: Any) -> str | None:
    """A data: URL of a small version of an image attachment (None when it can't be made)."""
    if a.url:
        return None
    data, media_type = a.data or b"", a.media_type
    if len(data) > _INLINE_BYTES:
        try:
            from PIL import Image

            img = Image.open(io.BytesIO(data))
            img.thumbnail((_THUMB_PX * 4, _THUMB_PX))
            buf = io.BytesIO()
            img.convert("RGB").save(buf, "JPEG", quality=70)
            data, media_type = buf.getvalue(), "image/jpeg"
        except Exception as exc:  # no PIL, or an image PIL can't read: a chip is enough
            swallowed("making an attachment's thumbnail", exc)
            return None
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def attachments_html(items: Any) -> str:
    """Thumbnails for images, chips (name, size) for every file."""
    if not items:
        return ""
    cells = []
    for a in items:
        label = html.escape(f"{a.name or a.media_type} · {a.url or _size(a.size)}")
        thumb = _thumbnail(a) if a.kind == "image" else None
        img = (f'<img src="{thumb}" style="max-height:{_THUMB_PX}px;display:block;margin-bottom:2px">'
               if thumb else "")
        # styled by the theme's stylesheet (style.py), or inline in the static copy (static.py)
        cells.append(f'<span class="llmcells-chip">{img}{label}</span>')
    return f'<div class="llmcells-attachments">{"".join(cells)}</div>'


def fields_html(result: Any) -> str:
    """The validated answer's top-level fields as a two-column table ("" without data)."""
    data = getattr(result, "data", None)
    if data is None or getattr(result, "schema_mode", None) is None:
        return ""
    values = data if isinstance(data, dict) else data.model_dump(mode="json")
    rows = "".join(
        f'<tr><td style="padding:1px 8px 1px 0;font-weight:600">{html.escape(str(k))}</td>'
        f'<td style="padding:1px 0">{html.escape(v if isinstance(v, str) else json.dumps(v, default=str))}</td></tr>'
        for k, v in values.items())
    return f'<table class="llmcells-fields" style="font-size:12px;margin-top:6px">{rows}</table>'


def card_extras(info: Any, result: Any) -> str:
    """Everything a card shows below the answer for a rich request ("" for a plain one); never
    raises (a card must paint its answer whatever the extras do)."""
    try:
        return attachments_html(getattr(info, "attachments", ())) + fields_html(result)
    except Exception:
        import logging

        logging.getLogger("llmcells").debug("painting a card's attachments or fields failed")
        return ""
