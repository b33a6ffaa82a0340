"""Turning what users attach (paths, URLs, bytes, PIL images, matplotlib figures, DataFrames) into
`Attachment`s, and checking them against each provider's documented limits before anything is sent.

matplotlib, PIL and pandas are imported only when the object given is one of theirs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import mimetypes
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError, LLMCellsWarning
from .registry import MB, AttachLimits as Limits  # Limits: the registry's, under its old name here
from .registry import row
from .types import Attachment
from ._loop import import_pandas

__all__ = ["Attachment", "attachment", "attachments", "check_limits", "LIMITS", "Limits",
           "table_rows", "describe"]

#: the most DataFrame rows sent as a table before it is cut (settable: llmcells.attachments.TABLE_ROWS)
TABLE_ROWS = 500
#: how a DataFrame is sent: "csv", or "markdown" (needs tabulate; falls back to CSV without it)
TABLE_FORMAT = "csv"

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp"}
TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".csv", ".tsv", ".json", ".jsonl", ".py", ".r", ".sql",
                 ".yaml", ".yml", ".toml", ".ini", ".cfg", ".xml", ".html", ".htm", ".css", ".js",
                 ".ts", ".sh", ".tex", ".rst", ".log", ".ipynb", ".c", ".h", ".cpp", ".java", ".go",
                 ".rs", ".rb", ".jl"}
_MAGIC = [(b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
          (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"), (b"%PDF-", "application/pdf")]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def from_bytes(data: bytes, media_type: str | None = None, name: str = "") -> Attachment:
    """An Attachment of raw bytes; the media type is sniffed from the bytes when not given."""
    data = bytes(data)
    media_type = (media_type or _sniff(data) or "").lower()
    if not media_type:
        raise ConfigError(f"Cannot tell what kind of file {name or 'these bytes'} is: "
                          "give a media type, e.g. attach=(data, 'image/png').")
    return Attachment(media_type=media_type, data=data, name=name, size=len(data), sha256=_digest(data))


def _sniff(data: bytes) -> str | None:
    for magic, media_type in _MAGIC:
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def from_path(path: str | Path) -> Attachment:
    """An Attachment of a file: images, PDF and text-like files by their suffix (or content)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"No such file to attach: {path}.")
    data = p.read_bytes()
    suffix = p.suffix.lower()
    media_type = IMAGE_TYPES.get(suffix) or ("application/pdf" if suffix == ".pdf" else None)
    if media_type is None and suffix in TEXT_SUFFIXES:
        media_type = "text/markdown" if suffix in (".md", ".markdown") else \
            "text/csv" if suffix == ".csv" else "text/plain"
    media_type = media_type or _sniff(data)
    if media_type is None:
        try:
            data.decode("utf-8")
            media_type = "text/plain"
        except UnicodeDecodeError:
            guess = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
            raise ConfigError(f"Cannot attach {p.name} ({guess}): attach images (PNG, JPEG, GIF, "
                              "WebP), PDF or text files.") from None
    return Attachment(media_type=media_type, data=data, name=p.name, size=len(data),
                      sha256=_digest(data))


def from_url(url: str) -> Attachment:
    """An Attachment that points at a URL; llmcells never fetches it, the provider does."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    suffix = Path(path).suffix.lower()
    media_type = IMAGE_TYPES.get(suffix) or ("application/pdf" if suffix == ".pdf" else None) \
        or mimetypes.guess_type(path)[0] or "application/octet-stream"
    return Attachment(media_type=media_type, url=url, name=Path(path).name or url, size=0,
                      sha256=_digest(url.encode()))


def _figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _image_png(img: Any) -> tuple[bytes, str]:
    fmt = (getattr(img, "format", None) or "PNG").upper()
    fmt = fmt if fmt in ("PNG", "JPEG", "GIF", "WEBP") else "PNG"
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue(), f"image/{fmt.lower()}"


def table_rows(frame: Any, limit: int | None = None, fmt: str | None = None,
               name: str = "table") -> Attachment:
    """A pandas DataFrame or Series as a CSV (or Markdown) text attachment; above `limit` rows
    (default TABLE_ROWS) it is cut, with a note in the text and a one-line warning.
    fmt: "csv" or "markdown" (default TABLE_FORMAT)."""
    pd = import_pandas()

    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    fmt = fmt or TABLE_FORMAT
    if fmt not in ("csv", "markdown"):
        raise ConfigError(f"A table goes as 'csv' or 'markdown', not {fmt!r}.")
    limit = TABLE_ROWS if limit is None else int(limit)
    total = len(frame)
    shown = frame.head(limit) if total > limit else frame
    if fmt == "markdown":
        text = _markdown(shown)
    else:
        text = shown.to_csv()
    if total > limit:
        text += (f"\n[Note: this table has {total} rows; only the first {limit} are included.]\n")
        warnings.warn(f"{name}: sent the first {limit} of {total} rows "
                      "(raise llmcells.attachments.TABLE_ROWS to send more).", LLMCellsWarning, stacklevel=3)
    data = text.encode("utf-8")
    return Attachment(media_type="text/markdown" if fmt == "markdown" else "text/csv", data=data,
                      name=f"{name}.{'md' if fmt == 'markdown' else 'csv'}", size=len(data),
                      sha256=_digest(data))


def _markdown(frame: Any) -> str:
    """A pipe table (without tabulate, which pandas' to_markdown needs)."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    index = frame.index.name or ""
    head = [index, *map(str, frame.columns)]
    lines = ["| " + " | ".join(map(cell, head)) + " |", "|" + "---|" * len(head)]
    for label, values in zip(frame.index, frame.itertuples(index=False, name=None)):
        lines.append("| " + " | ".join(cell(v) for v in (label, *values)) + " |")
    return "\n".join(lines) + "\n"


def attachment(obj: Any, name: str | None = None) -> Attachment:
    """One Attachment from a path, URL, (bytes, media_type), bytes, PIL image, matplotlib Figure,
    pandas DataFrame or Series, or an Attachment."""
    if isinstance(obj, Attachment):
        return obj
    if isinstance(obj, Path):
        return from_path(obj)
    if isinstance(obj, str):
        if obj.startswith(("http://", "https://")):
            return from_url(obj)
        return from_path(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return from_bytes(bytes(obj), None, name or "")
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], (bytes, bytearray)):
        return from_bytes(bytes(obj[0]), str(obj[1]) if obj[1] else None, name or "")
    module = type(obj).__module__ or ""
    if module.startswith("matplotlib"):
        fig = obj.figure if hasattr(obj, "figure") and not hasattr(obj, "savefig") else obj
        if hasattr(fig, "savefig"):
            return from_bytes(_figure_png(fig), "image/png", name or "figure.png")
    if module.startswith("PIL"):
        data, media_type = _image_png(obj)
        return from_bytes(data, media_type, name or f"image.{media_type.split('/')[1]}")
    if module.startswith("pandas"):
        return table_rows(obj, name=name or "table")
    raise ConfigError(f"Cannot attach a {type(obj).__name__}: attach a path, a URL, bytes with a "
                      "media type, a PIL image, a matplotlib figure or a DataFrame.")


def attachments(value: Any) -> tuple[Attachment, ...]:
    """Attachments from one item or a list of them (None: none)."""
    if value is None:
        return ()
    if isinstance(value, (list, Sequence)) and not isinstance(value, (str, bytes, bytearray, tuple)):
        return tuple(attachment(v) for v in value)
    if isinstance(value, tuple) and not (len(value) == 2 and isinstance(value[0], (bytes, bytearray))):
        return tuple(attachment(v) for v in value)
    return (attachment(value),)


# ----- provider limits ---------------------------------------------------------------------------

def _derived_limits() -> dict[str, Limits]:
    """{api label: limits}, derived from the registry's capability profiles: "openai-chat",
    "openai-responses" where a provider's APIs differ, else the provider's name."""
    from .registry import PROVIDERS

    out: dict[str, Limits] = {}
    for r in PROVIDERS.values():
        for api, lim in (r.caps.attachments if r.caps else ()):
            out[f"{r.name}-{api}" if api else r.name] = lim
    return out


#: every provider API's attachment limits, for reading; the profiles in registry.py are the truth
LIMITS: dict[str, Limits] = _derived_limits()


def limits_for(spec: Any) -> Limits:
    """The limits of spec's provider API, from its capability profile (an OpenAI-compatible
    endpoint: OpenAI's); an UnsupportedError when the provider takes no attachments."""
    from .capabilities import caps_of, require

    # a cloud route's model takes its maker's limits (vertex:claude-* as anthropic:claude-*)
    lim = caps_of(spec).limits(getattr(spec, "api", "") or "")
    if lim is None:
        require(spec, attach=True)  # raises the one clear line
    assert lim is not None
    route = row(spec.provider)
    if route is not None and (getattr(spec, "maker", None) or route.route_of) in route.inline_attachments:
        # the cloud fetches no URLs for this maker's models (Claude on Bedrock and on Vertex AI:
        # base64 sources only, a URL source is a 400): images and PDFs must be attached files
        lim = dataclasses.replace(lim, label=f"{lim.label} on {route.label}", image_urls=False,
                                  pdf_urls=False)
    return lim


def _size(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= 100_000 else f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} bytes"


def check_limits(items: Iterable[Attachment], spec: Any) -> None:
    """Raise one ConfigError naming the file and the limit when spec's provider would refuse the
    attachments (a type it does not take, too many, too big); nothing is sent then."""
    items = list(items)
    if not items:
        return
    lim = limits_for(spec)
    where = f"{lim.label} ({spec.id})"
    if len(items) > lim.max_count:
        raise ConfigError(f"{len(items)} attachments: {where} takes at most {lim.max_count} per request.")
    total = 0
    for a in items:
        name = a.name or a.media_type
        if a.kind == "image":
            if a.media_type not in lim.image_types:
                raise ConfigError(f"{name}: {where} does not take {a.media_type} images "
                                  f"(it takes {', '.join(sorted(lim.image_types))}).")
            if a.url and not lim.image_urls:
                raise ConfigError(f"{name}: {where} does not take images by URL; attach the file.")
            cap = lim.max_image_bytes
        elif a.kind == "pdf":
            if a.url and not lim.pdf_urls:
                # (OpenAI's Responses API takes what its Chat Completions does not)
                other = ", or use api='responses'" if "Chat Completions" in lim.label else ""
                raise ConfigError(f"{name}: {where} does not take PDFs by URL; attach the file{other}.")
            cap = lim.max_pdf_bytes
        else:
            if a.url:
                raise ConfigError(f"{name}: {where} takes only images and PDFs by URL, not "
                                  f"{a.media_type}; attach the file itself.")
            if not a.media_type.startswith("text/") and a.media_type not in (
                    "application/json", "application/xml"):
                raise ConfigError(f"{name}: {where} does not take {a.media_type} files; attach "
                                  "images, PDF or text.")
            cap = lim.max_total_bytes
        if a.kind == "image" and lim.image_cap_base64 and not a.url and (a.size + 2) // 3 * 4 > cap:
            raise ConfigError(f"{name} is {_size(a.size)} ({_size((a.size + 2) // 3 * 4)} in base64): "
                              f"{where} takes at most {_size(cap)} of base64 per image; shrink it.")
        if a.size > cap:
            raise ConfigError(f"{name} is {_size(a.size)}: {where} takes at most {_size(cap)} "
                              f"per {a.kind} file.")
        total += a.size
    pdfs = sum(a.size for a in items if a.kind == "pdf")
    if lim.pdf_cap_total and pdfs > lim.max_pdf_bytes:
        raise ConfigError(f"The PDFs add up to {_size(pdfs)}: {where} takes at most "
                          f"{_size(lim.max_pdf_bytes)} of PDF per request.")
    if total > lim.max_total_bytes:
        raise ConfigError(f"The attachments add up to {_size(total)}: {where} takes at most "
                          f"{_size(lim.max_total_bytes)} per request.")


def describe(items: Sequence[Attachment]) -> str:
    """"chart.png (image/png, 41.2 KB), report.pdf (...)": for cards and messages."""
    return ", ".join(f"{a.name or '?'} ({a.media_type}, {a.url or _size(a.size)})" for a in items)


def text_block(a: Attachment) -> str:
    """How a text attachment goes into a prompt: its name, then its content."""
    return f"--- {a.name or 'attached file'} ({a.media_type}) ---\n{a.text}\n--- end of {a.name or 'file'} ---"


def row_attachments(prompts: Any, rows: Sequence[Any], attach: Any) -> list[tuple[Attachment, ...]]:
    """batch(): each prompt row's attachments: the same for every row, or, when attach names a
    column of the prompts DataFrame, that row's value (one item or a list; None: nothing)."""
    columns = getattr(prompts, "columns", None)
    if isinstance(attach, str) and columns is not None and attach in columns:
        return [attachments(v if not _missing(v) else None) for v in prompts[attach]]
    files = attachments(attach)
    return [files] * len(rows)


def _missing(value: Any) -> bool:
    try:
        return value is None or (isinstance(value, float) and value != value)
    except TypeError:
        return False
