"""The documentation site: every ```python block of docs/ and the README runs on the simulator (each page's
blocks in order, as cells of one real IPython shell, in a fresh process with its own
LLMCELLS_HOME), the site builds with `mkdocs build --strict`, and the README keeps to its size.

A block that cannot run here says why in its fence: ```python title="not run: REASON".
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r'title="not run: [^"]{5,}"')


def blocks(page: Path) -> list[tuple[str, str]]:
    """(info string, code) of every fenced block of a page, in order."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(page.read_text(encoding="utf-8"))]


def runnable(page: Path) -> list[str]:
    return [code for info, code in blocks(page)
            if info.split(" ")[0] == "python" and not NOT_RUN.search(info)]


PAGES = sorted(p for p in [ROOT / "README.md", *DOCS.glob("*.md")] if runnable(p))

# All pages in one process (the SDKs are imported once), each in a fresh IPython shell with its
# own LLMCELLS_HOME and working folder and the session reset; each block is one cell. The
# simulator is on before the first block, so no block can reach a real provider whatever it
# says. A failing cell ends its page, with the error and the block.
_RUNNER = r"""
import json, os, sys
from IPython.core.interactiveshell import InteractiveShell

pages, base = json.loads(sys.stdin.read())
out = {}
for name, cells in pages.items():
    folder = os.path.join(base, name)
    os.makedirs(folder)
    os.chdir(folder)
    os.environ["LLMCELLS_HOME"] = os.path.join(folder, "home")
    InteractiveShell.clear_instance()
    ip = InteractiveShell.instance()
    ip.extension_manager.load_extension("llmcells")  # a new shell in a process that imported it
    # each page starts from the default settings too (a page may point the ledger elsewhere)
    ip.run_cell("import llmcells as _l\nfrom llmcells.config import Settings as _S, settings as _st\n"
                "vars(_st).update(vars(_S()))\n_l.session.reset()\n_l.simulate()")
    # Let the background warm-up finish its imports first: a batch started while it imports the
    # SDKs can see a partly imported httpx (a known race between the two, not the docs' concern).
    ip.run_cell("from llmcells import warmup as _w\nfor _t in list(_w._threads): _t.join(60)")
    out[name] = f"all {len(cells)} blocks ran"
    for n, cell in enumerate(cells, 1):
        r = ip.run_cell(cell)
        if not r.success:
            err = r.error_in_exec or r.error_before_exec
            out[name] = f"block {n} failed: {type(err).__name__}: {err}\n{cell}"
            break
print("RESULTS " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def page_results(tmp_path_factory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("docs")
    pages = {p.name: runnable(p) for p in PAGES}
    env = {k: v for k, v in os.environ.items()
           if not k.endswith(("_API_KEY", "_BASE_URL")) and k != "GOOGLE_GENAI_USE_VERTEXAI"}
    env.update(PYTHONPATH=str(ROOT / "src"), MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-c", _RUNNER], input=json.dumps([pages, str(base)]),
                          env=env, cwd=base, capture_output=True, text=True, timeout=280)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULTS ")]
    assert proc.returncode == 0 and line, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(line[0].removeprefix("RESULTS "))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_python_block_of_the_page_runs_on_the_simulator(page, page_results):
    assert page_results[page.name] == f"all {len(runnable(page))} blocks ran", page_results[page.name]


def test_blocks_that_do_not_run_say_why_and_the_fences_are_closed():
    for page in DOCS.glob("*.md"):
        text = page.read_text(encoding="utf-8")
        assert text.count("\n```") % 2 == 0, f"{page.name}: an unclosed code fence"
        for info, _ in blocks(page):
            if "not run" in info:
                assert NOT_RUN.search(info), f"{page.name}: {info!r} does not give its reason"


def test_the_docs_pages_and_the_nav_agree():
    nav = re.findall(r":\s*([\w-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert sorted(nav) == sorted(p.name for p in DOCS.glob("*.md"))


def test_the_readme_fits_and_its_test_command_is_the_fast_tier():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 250
    assert 'python -m pip install -e ".[test]" && python -m pytest' in readme
    assert "--all" in readme  # and says how to run everything


def test_install_lists_every_extra():
    """pyproject's extras once had three (cloud, otel, postgres) that Install did not name."""
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    listed = re.findall(r"^\| `([\w-]+)` \|", (DOCS / "install.md").read_text(), re.M)
    assert sorted(listed) == sorted(extras)


def test_the_site_builds_strictly(tmp_path):
    """Fails (never skips) where LLMCELLS_REQUIRE_DOCS=1, as in .ci/run."""
    try:
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
    except ImportError as err:
        if os.environ.get("LLMCELLS_REQUIRE_DOCS", "") not in ("", "0"):
            pytest.fail(f"{err}: pip install -e '.[docs]'")
        pytest.skip(f"{err.name} is not installed (pip install -e '.[docs]'); LLMCELLS_REQUIRE_DOCS=1 "
                    "makes this a failure")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "site" / "reference" / "index.html").is_file()
    assert "llmcells.api.ask" in (tmp_path / "site" / "reference" / "index.html").read_text()


def test_the_generated_magic_help_reads_right(shell):
    """`%%claude?` once said "a anthropic model name" (the text is generated per provider)."""
    from llmcells.registry import PROVIDERS

    for row in PROVIDERS.values():
        if row.kind == "route":  # a cloud route has no magic: an alias is pointed at it
            assert not row.alias and shell.find_cell_magic(row.name) is None
            continue
        doc = shell.find_cell_magic(row.alias).__doc__
        wrong = re.findall(r"\ba (?!one|[uU])[aeiouAEIOU]\w*", doc)  # "a one-line", "a user" are right
        assert not wrong, (row.alias, wrong)
        assert "a model name of this provider" in doc
