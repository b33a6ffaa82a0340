"""Scripted answers: the few kinds of prompt the simulator answers with meaning, not filler.

- A judge's grading prompt (llmcells.judge's format: `<answer>...</answer>`, optionally a
  `<reference>`, and "Score: N"): the reply is one line "Score: N — reason". With a reference,
  N is 10 when the answer is exactly the reference, 8 when it contains it, 2 otherwise; without
  one, N is derived from a hash of the answer (1-10). To make a judge say something else, fix
  its model's text with `Simulator.set_model(model, text="Score: 7 — ...")`.
- Arithmetic questions "What is A + B?" (also -, *, x): the model answers the number, right or
  a little off. Whether a model gets a question right is fixed by a hash of (model, question),
  so every model has its own, stable accuracy; some models answer with the number alone, others
  in a sentence ("The answer is 42.").

Everything is deterministic: the same model and prompt always give the same answer.
"""

from __future__ import annotations

import hashlib
import re

_ANSWER = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.S)
_REFERENCE = re.compile(r"<reference>\s*(.*?)\s*</reference>", re.S)
_ARITHMETIC = re.compile(r"what is\s+(-?\d+)\s*([-+*x×])\s*(-?\d+)\s*\?", re.I)


def _unit(*parts: str) -> float:
    """A stable number in [0, 1) from the parts."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def _norm(text: str) -> str:
    return " ".join(text.casefold().split()).strip(" .!")


def judge_reply(text: str) -> str | None:
    """"Score: N — reason" for a grading prompt, else None."""
    if "Score: N" not in text:
        return None
    answer = _ANSWER.search(text)
    if answer is None:
        return None
    got = answer.group(1)
    reference = _REFERENCE.search(text)
    if reference is not None:
        want = _norm(reference.group(1))
        if _norm(got) == want:
            return "Score: 10 — matches the reference answer exactly."
        if want and want in _norm(got):
            return "Score: 8 — contains the reference answer, with extra words."
        return "Score: 2 — does not match the reference answer."
    score = 1 + int(_unit("judge", got) * 10)
    return f"Score: {score} — a simulated grade, derived from the answer's text."


def accuracy(model: str) -> float:
    """The share of arithmetic questions this simulated model answers right (0.55 to 0.97)."""
    return 0.55 + 0.42 * _unit("accuracy", model)


def arithmetic_reply(model: str, text: str) -> str | None:
    """The model's answer to "What is A op B?", else None."""
    m = _ARITHMETIC.search(text)
    if m is None:
        return None
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    value = a + b if op == "+" else a - b if op == "-" else a * b
    question = m.group(0)
    if _unit("right", model, question) >= accuracy(model):
        value += 1 + int(_unit("off", model, question) * 3)  # a near miss
    return str(value) if _unit("terse", model) < 0.5 else f"The answer is {value}."


def scripted_answer(model: str, text: str) -> str | None:
    """The answer to a prompt the simulator understands (see the module), or None."""
    return judge_reply(text) or arithmetic_reply(model, text)
