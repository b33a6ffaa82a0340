"""The command line: `python -m llmcells demo | ask | compare | usage | costs | keys | serve`.

Every mistake a user can make here ends in one line on stderr and exit status 2 (argument
errors also show the subcommand's usage line), never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections.abc import Sequence

from . import registry
from ._log import swallowed
from ._loop import import_pandas

DEMO_PROMPT = "In two sentences, why do notebooks suit exploring language models?"
KEYS = "OPENAI_API_KEY, ANTHROPIC_API_KEY, GOOGLE_API_KEY"


class UserError(Exception):
    """A mistake on the command line: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D102 - argparse's hook
        # the usage of THIS (sub)command, then one line; never the top level's usage
        from .errors import with_suggestion  # --temprature: "(did you mean --temperature?)"

        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {with_suggestion(message, self)}\n")


def _parser() -> tuple[_Parser, dict[str, _Parser]]:
    from ._version import __version__

    p = _Parser(prog="llmcells", description=(
        "Ask ChatGPT, Claude and Gemini, compare them, and see what each call cost. "
        f"ask and compare call the real services and need their API keys ({KEYS}); add "
        "--simulate to answer from the built-in simulator instead. demo runs anywhere: providers "
        "without a key are simulated, and it says which."))
    p.add_argument("--version", action="version", version=f"llmcells {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    subs: dict[str, _Parser] = {}

    def call_options(sp: argparse.ArgumentParser, many: bool) -> None:
        sp.add_argument("-m", "--model", action="append", dest="models", metavar="MODEL",
                        help=("alias or provider:model; repeat for several (default: chatgpt, "
                              "claude, gemini)" if many else "alias or provider:model (one; use "
                              "compare for several; default: chatgpt)"))
        sp.add_argument("-s", "--system", help="system prompt")
        sp.add_argument("-t", "--temperature", type=float, help="sampling temperature, 0 to 2")
        sp.add_argument("--max-tokens", type=int, help="the longest answer, in tokens")
        sp.add_argument("--timeout", type=float, help="seconds for the whole call")
        sp.add_argument("--simulate", action="store_true",
                        help="answer from the built-in simulator (no key, no network, no cost)")
        sp.add_argument("--quiet", action="store_true", help="print only the answer(s)")
        sp.add_argument("-a", "--attach", action="append", metavar="FILE",  # [rich requests]
                        help="attach a file or an http(s) URL (repeat for several)")
        sp.add_argument("--schema", metavar="FILE.json", help="answer as JSON matching this JSON Schema")

    subs["demo"] = demo = sub.add_parser(
        "demo", help="compare the three providers; those without a key are simulated",
        description="Compare the three providers on one prompt. Providers without an API key "
                    "answer from the built-in simulator (the output says which).")
    call_options(demo, True)
    demo.add_argument("prompt", nargs="?", default=DEMO_PROMPT,
                      help=f"the prompt (default: {DEMO_PROMPT!r})")
    for name, many, what, keys in (("ask", False, "Ask one model", "its API key"),
                                   ("compare", True, "Ask several models", "their API keys")):
        subs[name] = sp = sub.add_parser(
            name, help=f"{what.lower()} (needs {keys}, or --simulate)",
            description=f"{what} one prompt. Calls the real "
                        f"{'services: each' if many else 'service: the'} provider's API key "
                        f"must be set ({KEYS}), unless --simulate is given.")
        call_options(sp, many)
        sp.add_argument("prompt", help="the prompt; - reads it from stdin")
    for name, what in (("usage", "the last calls in the usage ledger"),
                       ("costs", "calls, tokens and cost grouped by model, day, ...")):
        subs[name] = sp = sub.add_parser(name, help=f"show {what}", description=f"Show {what}.")
        sp.add_argument("--session", action="store_true", help="only this process's calls")
        if name == "costs":
            sp.add_argument("--by", default="model",
                            help="model, provider, day, cell, group, batch, status, session, "
                                 "purpose, replayed, user, host, project, path; several with "
                                 "commas (model,day)")
            sp.add_argument("--simulated", action="store_true",
                            help="count simulated calls too (left out of real spend by default)")
        else:
            sp.add_argument("--limit", type=int, default=20, help="the last N calls (default 20)")
    sub.add_parser("keys", add_help=False, help="keys [list|set|unset PROVIDER]: which providers "
                                                "have a key; store one (see keys --help)")
    sub.add_parser("serve", add_help=False, help="serve the engine over HTTP, behind a token "
                                                 "printed at start (see serve --help and "
                                                 "docs/security.md; needs pip install "
                                                 "'llmcells[serve]')")
    return p, subs


# ----- tables ------------------------------------------------------------------------------------

def _fmt_cell(col: str, v) -> str:
    from .display import _format as F

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    try:
        pd = import_pandas()

        if v is pd.NA or v is pd.NaT:
            return "–"
    except ImportError:
        pass
    if col in ("cost_usd", "cost"):
        return F.fmt_cost(float(v))
    if col in ("latency_s", "ttft_s", "latency_p50", "latency_p95", "ttft_p50"):
        return F.fmt_seconds(float(v))
    if col == "tokens_per_s":
        return f"{float(v):.0f}"
    if col == "error_rate":
        return f"{float(v):.0%}"
    if col == "ts":
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, int) or (hasattr(v, "is_integer") and isinstance(v, float) and v.is_integer()
                              and col.endswith(("tokens", "calls", "errors"))):
        return f"{int(v):,}"
    s = F.terminal_safe(" ".join(str(v).split()))  # an error column quotes providers
    return s if len(s) <= 50 else s[:49] + "…"


_HEADS = {"ts": "time", "input_tokens": "in", "output_tokens": "out", "cost_usd": "cost",
          "latency_s": "latency", "ttft_s": "TTFT", "tokens_per_s": "tok/s",
          "latency_p50": "p50", "latency_p95": "p95", "ttft_p50": "TTFT p50",
          "error_rate": "err %", "unpriced_calls": "unpriced"}
_LEFT = {"ts", "model", "status", "error", "provider", "day", "cell", "group_id", "batch_id",
         "session_id"}


def format_table(frame, cols: Sequence[str]) -> str:
    """An aligned plain-text table of frame's cols, numbers formatted (dollars, seconds, 1,234)."""
    cols = [c for c in cols if c in frame.columns]
    rows = [[_fmt_cell(c, v) for c, v in zip(cols, rec)]
            for rec in frame[cols].itertuples(index=False, name=None)]
    heads = [_HEADS.get(c, c) for c in cols]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(heads)]

    def line(cells):
        return "  ".join(c.ljust(w) if col in _LEFT else c.rjust(w)
                         for c, w, col in zip(cells, widths, cols)).rstrip()

    return "\n".join([line(heads)] + [line(r) for r in rows])


USAGE_COLS = ["ts", "model", "status", "input_tokens", "output_tokens", "cost_usd", "latency_s",
              "ttft_s", "error"]
COSTS_COLS = ["calls", "cost_usd", "input_tokens", "output_tokens", "latency_p50", "ttft_p50",
              "errors"]
DEMO_COLS = ["model", "status", "latency_s", "ttft_s", "tokens_per_s", "input_tokens",
             "output_tokens", "cost_usd"]


# ----- commands ----------------------------------------------------------------------------------

def _ledger(args) -> int:
    from . import ledger
    from .errors import LLMError

    try:
        if args.command == "usage":
            if args.limit is not None and args.limit < 1:
                raise UserError("--limit must be at least 1.")
            frame = ledger.usage(session=args.session, limit=args.limit)  # newest first
            cols = list(USAGE_COLS)
            if not frame["error"].notna().any():
                cols.remove("error")
            simulated = frame["simulated"].fillna(False).astype(bool)
            if simulated.any():
                # a simulated call's cost is a list price never billed: say which rows those are
                frame = frame.assign(simulated=simulated.map({True: "yes", False: ""}))
                cols.insert(cols.index("model") + 1, "simulated")
        else:
            from .ledger import _KEY_SYNONYMS, COST_KEYS

            valid = ", ".join(COST_KEYS)
            keys = [k.strip() for k in args.by.split(",") if k.strip()]
            if not keys:
                raise UserError(f"--by needs a key: {valid}.")
            for k in keys:
                if _KEY_SYNONYMS.get(k.lower(), k.lower()) not in COST_KEYS:
                    raise UserError(f"--by {k}: not a key to group by; use {valid} "
                                    "(several with commas: --by model,day).")
            frame = ledger.costs(by=keys, session=args.session, include_simulated=args.simulated)
            cols = [c for c in frame.columns if c not in COSTS_COLS[1:] and c != "calls"]
            cols = cols[: len(keys)] + COSTS_COLS
            if "simulated" in frame.columns:  # costs() groups simulated calls apart when both kinds are in
                frame = frame.assign(simulated=frame["simulated"].map({True: "yes", False: "no"}))
                cols.insert(len(keys), "simulated")
            if not len(frame) and not args.simulated and len(ledger.usage(session=args.session)):
                print("No real calls recorded yet (only simulated ones: --simulated counts them).")
                return 0
    except LLMError as err:
        raise UserError(str(err)) from None
    print(format_table(frame, cols) if len(frame) else "No calls recorded yet.")
    return 0


def _resolve_models(args) -> list:
    """The ModelSpecs the command will call (validated before anything else happens)."""
    from . import models
    from .config import settings
    from .errors import LLMError

    if args.command == "ask":
        if args.models and len(args.models) > 1:
            raise UserError(f"ask takes one model, not {len(args.models)}: use "
                            f"`compare -m {' -m '.join(args.models)}` to ask several.")
        names = args.models or list(settings.compare_models)[:1]
    else:
        names = args.models or list(settings.compare_models)
    try:
        return [models.resolve(n) for n in names]
    except LLMError as err:
        raise UserError(str(err)) from None


def _route_to_simulator(specs, force: bool) -> list[str]:
    """Send the providers these calls use to the simulator: all of them with force (--simulate),
    else those without a key (demo). Returns the providers actually simulated."""
    from . import models
    from ._simulation import simulate

    has_key = models.key_status()
    used = []
    for s in specs:
        if s.provider in has_key and s.provider not in used:
            used.append(s.provider)
    sim = [p for p in used if force or not has_key[p]]
    if models.vertex_enabled() and not force and "google" in sim:
        sim.remove("google")
    if sim:
        simulate(providers=sim)
    return sim


#: adapter -> the SDK module to import ahead (its registry row's first sdk_modules entry)
_SDKS = {r.adapter: r.sdk_modules[0] for r in registry.PROVIDERS.values() if r.sdk_modules}


def _warm_up(specs) -> None:
    """Import the SDKs before the calls start: a cold `import anthropic` can take seconds, and
    done inside one call it would delay that call (and the others on the same loop), so the
    answers would not come back in the order of their own latencies."""
    import importlib

    for provider in dict.fromkeys(s.maker or s.adapter for s in specs):  # (a cloud route: its maker's SDK)
        try:
            importlib.import_module(_SDKS.get(provider, provider))
        except Exception as exc:  # the call itself says what is missing
            swallowed(f"importing the {provider} SDK early", exc)


def _price_lines(results, caught) -> list[str]:
    """One line per model whose calls happened but have no known price."""
    from .display._format import known

    messages = {}
    for w in caught:
        text = " ".join(str(w.message).split())
        for r in results:
            if r.model in text:
                messages.setdefault(r.model, text)
    lines, seen = [], set()
    for r in results:
        happened = r.usage is not None and (r.usage.input_tokens or r.usage.output_tokens)
        if happened and not known(r.cost_usd) and r.model not in seen:
            seen.add(r.model)
            lines.append("llmcells: " + messages.get(
                r.model, f"No price known for {r.model}; cost is NaN."))
    return lines


def _calls(args) -> int:
    from . import api
    from ._loop import run
    from .errors import LLMError

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if not prompt.strip():
        raise UserError("The prompt is empty.")
    specs = _resolve_models(args)
    names = [s.requested for s in specs]
    # The demo runs wherever it can: providers without a key go to the simulator. Real work
    # (ask, compare) only uses the simulator when asked, so a missing key is an error, not a fake.
    simulated = (_route_to_simulator(specs, args.simulate)
                 if args.command == "demo" or args.simulate else [])
    if simulated and not args.quiet:
        hint = "" if args.simulate else " — set their API keys to use the real services"
        print(f"(simulated: {', '.join(simulated)}{hint})\n", flush=True)
    _warm_up(specs)
    options = dict(system=args.system, temperature=args.temperature, max_tokens=args.max_tokens,
                   timeout=args.timeout, display=False if args.quiet else "terminal")
    try:
        options.update(_rich_options(args))  # -a and --schema
    except LLMError as err:
        raise UserError(str(err)) from None
    from .pricing import PriceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PriceWarning)
        try:
            if args.command == "ask":
                results = [run(api.ask(prompt, names[0], **options))]
                comparison = None
            else:
                comparison = run(api.compare(prompt, names, **options))
                results = list(comparison)
        except LLMError as err:
            raise UserError(str(err)) from None
    from .display._format import terminal_safe  # answers and errors lose their control characters

    for line in _price_lines(results, caught):
        print(terminal_safe(line), file=sys.stderr)
    if args.quiet:
        if args.command == "ask":
            print(terminal_safe(results[0].text))
        else:
            for r in results:
                print(terminal_safe(f"## {r.model}\n{r.text}\n"))
    elif args.command == "demo" and comparison is not None:
        print("\nRecorded in the usage ledger (llmcells.usage(), python -m llmcells usage).")
    for r in results:
        if not r.ok and args.quiet:
            print(terminal_safe(f"llmcells: {r.model}: {r.error or r.status}"), file=sys.stderr)
    if all(r.ok for r in results):
        return 0
    # a missing key or model name is the user's to fix (status 2); a failed call is 1
    user = {"missing_key", "config", "model_not_found", "authentication"}
    return 2 if all(r.ok or r.error_kind in user for r in results) else 1


def _rich_options(args: argparse.Namespace) -> dict:
    """attach= and schema= from -a and --schema (a JSON Schema file)."""
    out: dict = {}
    if args.attach:
        out["attach"] = list(args.attach)
    if args.schema:
        import json

        from .errors import ConfigError

        try:
            with open(args.schema, encoding="utf-8") as f:
                out["schema"] = json.load(f)
        except (OSError, ValueError) as err:
            raise ConfigError(f"--schema {args.schema}: cannot read a JSON Schema from it ({err}).") from None
    return out


def _keys(argv: list[str]) -> int:
    """`llmcells keys set|list|unset`: the key is read with getpass (or one line from a pipe),
    never taken as an argument (it would stay in the shell's history) and never printed."""
    import getpass

    from . import keys
    from .errors import LLMError

    p = _Parser(prog="llmcells keys", description=(
        "Store API keys in the OS keyring (when the keyring package is installed) or else in a "
        "file under LLMCELLS_HOME readable only by you. An environment variable still wins."))
    # no action lists them, as `%llmcells keys` does
    sub = p.add_subparsers(dest="action", parser_class=_Parser)
    names = ", ".join(keys.providers())
    sub.add_parser("set", help="store a key (asked for, not shown)").add_argument("provider", help=names)
    sub.add_parser("list", help="which providers have a key, and where from (never the key)")
    sub.add_parser("unset", help="forget a stored key").add_argument("provider", help=names)
    args = p.parse_args(argv)
    try:
        if args.action in (None, "list"):
            for row in keys.status():
                print(f"{row['provider']:<10} {row['key']:<8} {row['from']}".rstrip())
            return 0
        provider = keys.provider_name(args.provider)
        if args.action == "unset":
            done = keys.unset_key(provider)
            print(f"Forgot the stored {provider} key." if done else f"No {provider} key was stored.")
        else:
            prompt = f"{provider} API key (typing is not shown): "
            key = getpass.getpass(prompt) if sys.stdin.isatty() else sys.stdin.readline()
            where = keys.set_key(provider, key)
            print(f"Stored the {provider} key in {where}.")
        env = [e for e in keys.providers()[provider] if os.environ.get(e)]
        if env:
            print(f"Note: {env[0]} is set in this environment, and it wins over a stored key.")
        return 0
    except LLMError as err:
        print(f"llmcells keys: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, EOFError):
        print("\nllmcells keys: nothing changed.", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["keys"]:  # its own parser: set / list / unset
        return _keys(argv[1:])
    if argv[:1] == ["serve"]:  # its own options and parser: serve.py
        try:
            from .serve import main as serve
        except ImportError as err:
            print(f"llmcells serve: {err}", file=sys.stderr)
            return 2
        return serve(argv[1:])
    parser, subs = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # an option the subcommand doesn't know: its usage, not the top level's
        subs[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command in ("usage", "costs"):
            return _ledger(args)
        return _calls(args)
    except UserError as err:  # (its text may quote a provider's)
        from .display._format import terminal_safe

        print(terminal_safe(f"llmcells {args.command}: {err}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nllmcells: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
