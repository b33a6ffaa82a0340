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


_STOP = {"a", "an", "the", "to", "of", "in", "on", "for", "and", "or", "is", "are", "be", "how",
         "what", "why", "when", "with", "do", "does", "i", "you", "me", "my", "your", "it", "this",
         "that", "as", "by", "at", "from", "two", "three", "into", "about", "can", "please",
         "explain", "write", "describe", "give", "tell", "list", "show", "make", "summarise",
         "summarize", "new", "short", "sentence", "sentences", "one", "some", "few", "which"}
_HEADINGS = ["In short", "The gist", "Key points", "A quick answer", "Overview", "What matters"]
_TABLE_HEADS = [("Step", "What to do"), ("Aspect", "Note"), ("Option", "Trade-off"),
                ("Term", "Meaning")]
_NOTES = ["keep it small", "measure first", "check the output", "compare two runs",
          "write it down", "repeat with new data", "look at the edge cases", "ask a colleague"]
_CODE_TEMPLATES = [
    "def {name}(items):\n    return [x for x in items if {word!r} in x]\n",
    "{name} = {{\"topic\": {word!r}, \"tokens\": {n}}}\nprint({name})\n",
    "import statistics\n{name} = statistics.mean([{a}, {b}, {c}])\n",
]
_FILLER_WORDS = ["context", "latency", "cost", "tokens"]


def _words(prompt: str) -> list[str]:
    """The prompt's content words, in order, without repeats (for the echo and the headings)."""
    seen: list[str] = []
    for w in re.findall(r"[A-Za-z][A-Za-z0-9'-]*", prompt or ""):
        lw = w.lower().strip("'-")
        if len(lw) > 2 and lw not in _STOP and lw not in seen:
            seen.append(lw)
    return seen


def _echo(prompt: str, limit: int = 90, max_words: int = 8) -> str:
    words = (prompt or "").split()
    p = " ".join(words[:max_words]) + (" …" if len(words) > max_words else "")
    return p if len(p) <= limit else p[: limit - 1].rstrip() + "…"


def _structured(model: str, rng: random.Random, prompt: str) -> str:
    """A Markdown answer shaped like a real one: an opening paragraph that echoes the prompt, a
    heading, a short list, a code block and a small table (about 60-95 stream tokens); which
    pieces and words vary with the seed (so with the prompt), always the same for one seed."""
    words = _words(prompt)
    words += [w for w in _FILLER_WORDS if w not in words]
    topic = words[0]
    echo = _echo(prompt, 60).rstrip(".!?:; ")
    asked = f"You asked: \u201c{echo}\u201d. " if echo else ""
    opening = f"Simulated answer from {model}: {asked}{_sentence(rng)}"
    heading = f"### {rng.choice(_HEADINGS)}: {topic}"
    picks = rng.sample(_BULLETS, 3)
    bullets = [f"- **{words[i].capitalize()}**: {picks[i].lower()}." for i in range(3)]
    name = re.sub(r"[^a-z0-9_]", "_", topic)[:20] or "value"
    if name[0].isdigit():
        name = "v_" + name
    code = rng.choice(_CODE_TEMPLATES).format(name=name, word=topic, n=rng.randint(10, 99),
                                              a=rng.randint(1, 9), b=rng.randint(1, 9),
                                              c=rng.randint(1, 9))
    head = rng.choice(_TABLE_HEADS)
    rows = [f"| {words[i]} | {note} |" for i, note in enumerate(rng.sample(_NOTES, 2))]
    table = "\n".join([f"| {head[0]} | {head[1]} |", "|---|---|", *rows])
    return (f"{opening}\n\n{heading}\n\n" + "\n".join(bullets)
            + f"\n\n```python\n{code}```\n\n{table}\n")


def seed_for(model: str, prompt: object, salt: int | None = None) -> int:
    """A stable seed from the model name, the prompt and an optional per-request salt."""
    blob = json.dumps([model, prompt, salt], sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


def answer_tokens(model: str, seed: int, length: int | None = None, prompt: str = "") -> list[str]:
    """The streamed tokens of a generated answer.

    Without `length`, a whole structured Markdown answer (opening paragraph echoing `prompt`,
    heading, list, code block, table, closing sentence). With `length` the answer is exactly that
    many tokens: the structured answer cut short, or extended with more sentences.
    """
    rng = random.Random(seed)
    text = _structured(model, rng, prompt)
    tokens = split_tokens(text)
    if length is None:
        return tokens
    while len(tokens) < length:
        text += _block(rng)
        tokens = split_tokens(text)
    return tokens[:length]


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
