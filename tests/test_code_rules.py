"""Rules the code keeps, checked by reading it, in every module of src/llmcells: an exception
llmcells lets go on purpose, or answers with a fallback, always leaves a DEBUG line on the
`llmcells` logger (llmcells._log.swallowed), never silence."""

from __future__ import annotations

import ast
from pathlib import Path

import llmcells

SRC = Path(llmcells.__file__).parent
BROAD = {"Exception", "BaseException"}


def _broad(node: ast.expr | None) -> bool:
    if node is None:
        return True  # a bare `except:`
    if isinstance(node, ast.Name):
        return node.id in BROAD
    if isinstance(node, ast.Tuple):
        return any(_broad(e) for e in node.elts)
    return False


#: calls that leave a word: llmcells._log.swallowed / quietly, a logger's methods, warnings.warn
SPEAKS = {"swallowed", "quietly", "debug", "info", "warning", "error", "exception", "critical", "warn"}


def _silent(handler: ast.ExceptHandler) -> bool:
    """A handler that neither raises, nor logs or warns, nor hands the exception on (uses the
    name it bound): whatever it does instead, a fallback value or nothing, it does in silence."""
    for node in ast.walk(ast.Module(body=handler.body, type_ignores=[])):
        if isinstance(node, ast.Raise):
            return False
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in SPEAKS:
            return False
        if handler.name and isinstance(node, ast.Name) and node.id == handler.name:
            return False
    return True


def _silent_handlers(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and _broad(node.type) and _silent(node):
            lines.append(node.lineno)
        if isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                call = item.context_expr
                if (isinstance(call, ast.Call) and getattr(call.func, "attr", getattr(call.func, "id", None)) == "suppress"
                        and any(_broad(a) for a in call.args)):
                    lines.append(node.lineno)
    return sorted(lines)


def test_the_rule_finds_a_silent_handler():
    code = "try:\n    f()\nexcept Exception:\n    pass\nwith contextlib.suppress(BaseException):\n    g()\n"
    assert _silent_handlers(ast.parse(code)) == [3, 5]
    noted = "try:\n    f()\nexcept Exception as exc:\n    swallowed('f', exc)\n"
    assert _silent_handlers(ast.parse(noted)) == []
    # a fallback value is silent too, unless the handler says so, raises or hands exc on
    fallback = "try:\n    x = f()\nexcept Exception:\n    x = None\n"
    assert _silent_handlers(ast.parse(fallback)) == [3]
    for ok in ("    swallowed('f (None instead)', exc)\n    x = None\n", "    raise Bad() from exc\n",
               "    result.error = str(exc)\n", "    log.debug('f fell back', exc_info=False)\n"):
        assert _silent_handlers(ast.parse(f"try:\n    f()\nexcept Exception as exc:\n{ok}")) == [], ok


def test_no_exception_is_swallowed_in_silence():
    found = [f"{path.relative_to(SRC.parent)}:{line}"
             for path in sorted(SRC.rglob("*.py"))
             for line in _silent_handlers(ast.parse(path.read_text(encoding="utf-8")))]
    assert not found, ("broad except handlers that let an exception go (or fall back) without a "
                       "word; call llmcells._log.swallowed(what, exc) there:\n" + "\n".join(found))


def test_a_swallowed_exception_leaves_its_type_and_never_its_text(caplog):
    from llmcells._log import quietly, swallowed

    def observer(_):
        raise RuntimeError("Incorrect API key provided: sk-proj-abcdefghijklmnopqrstuvwxyz")

    with caplog.at_level("DEBUG", logger="llmcells"):
        swallowed("reading a header", ValueError("sk-ant-api03-secret"))
        quietly(observer, 1)  # an observer's failure never reaches the call
    lines = [r.getMessage() for r in caplog.records if r.name == "llmcells"]
    assert lines == ["reading a header failed (ValueError); let go",
                     "test_a_swallowed_exception_leaves_its_type_and_never_its_text.<locals>.observer "
                     "failed (RuntimeError); let go"]
    assert "sk-" not in caplog.text
