"""Deterministic answer text, its split into streamed tokens, and a rough prompt token count."""

from __future__ import annotations

import hashlib
import json
import random
import re

_SUBJECTS = ["The simulator", "This answer", "A careful reader", "The notebook", "Each request",
             "The model", "A short example", "The result", "Your question", "The output"]
_VERBS = ["shows", "explains", "suggests", "describes", "returns", "highlights", "compares",
          "summarises", "illustrates", "measures"]
_OBJECTS = ["a deterministic reply", "the streaming behaviour", "how tokens arrive one by one",
            "the cost of every call", "a plausible paragraph", "the usage report",
            "several useful details", "the main idea in plain words", "a simple pattern",
            "the expected latency"]
_TAILS = ["", " in a few steps", " without any network access", " for testing purposes",
          " quite clearly", " with stable wording", " at a steady pace", " as expected"]
_BULLETS = ["Keep prompts short", "Compare several models", "Check the token counts",
            "Measure the first token latency", "Record every request", "Retry on rate limits"]
_CODE = ['print("hello from the simulator")', "total = sum(range(10))",
         "answer = {'tokens': 42}", "for i in range(3):\n    print(i)"]

_TOKEN_RE = re.compile(r"\s*\S+|\s+$")
_MAX_PIECE = 6  # long words are streamed in pieces, like real sub-word tokens


def split_tokens(text: str) -> list[str]:
    """Split text into stream deltas (one per token); their concatenation is exactly `text`."""
    tokens: list[str] = []
    for match in _TOKEN_RE.finditer(text):
        piece = match.group()
        word = piece.lstrip()
        lead = piece[: len(piece) - len(word)]
        if len(word) <= _MAX_PIECE + 2:
            tokens.append(piece)
            continue
        parts = [word[i:i + _MAX_PIECE] for i in range(0, len(word), _MAX_PIECE)]
        tokens.append(lead + parts[0])
        tokens.extend(parts[1:])
    return tokens


def count_prompt_tokens(text: str) -> int:
    """A simple, deterministic stand-in for a tokenizer: words * 4/3, rounded, plus 3."""
    return round(len(text.split()) * 4 / 3) + 3


def _sentence(rng: random.Random) -> str:
    return f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}{rng.choice(_TAILS)}."


def _block(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.15:
        return "\n\n```python\n" + rng.choice(_CODE) + "\n```\n\n" + _sentence(rng)
    if kind < 0.3:
        items = rng.sample(_BULLETS, 3)
        return "\n\n" + "\n".join(f"- {item}" for item in items) + "\n\n" + _sentence(rng)
    return " " + _sentence(rng)


def seed_for(model: str, prompt: object, salt: int | None = None) -> int:
    """A stable seed from the model name, the prompt and an optional per-request salt."""
    blob = json.dumps([model, prompt, salt], sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


def answer_tokens(model: str, seed: int, length: int | None = None) -> list[str]:
    """The streamed tokens of a generated answer.

    With `length` the answer is exactly that many tokens (cut mid-sentence if need be);
    otherwise it ends at a sentence boundary after roughly 40-80 tokens.
    """
    rng = random.Random(seed)
    target = length if length is not None else rng.randint(40, 64)
    text = f"Simulated answer from {model}: {_sentence(rng)}"
    tokens = split_tokens(text)
    while len(tokens) < target:
        text += _block(rng)
        tokens = split_tokens(text)
    return tokens[:target] if length is not None else tokens


def filler(n_chars: int, seed: int = 0) -> str:
    """Deterministic prose of exactly n_chars characters (for very large answers: answer_tokens
    re-splits its text as it grows, which is too slow for megabytes)."""
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < n_chars:
        sentence = _sentence(rng) + (" " if rng.random() < 0.9 else "\n\n")
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)[:n_chars]
