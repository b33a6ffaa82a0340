"""The command line: `python -m llmcells demo | ask | compare | usage | costs`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

DEMO_PROMPT = "In two sentences, why do notebooks suit exploring language models?"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmcells", description=(
        "Ask ChatGPT, Claude and Gemini, compare them, and see what each call cost. "
        "Providers without a key (OPENAI_API_KEY, ANTHROPIC_API_KEY, GOOGLE_API_KEY) run on the "
        "built-in simulator."))
    sub = p.add_subparsers(dest="command", required=True)

    def call_options(sp: argparse.ArgumentParser, many: bool) -> None:
        sp.add_argument("-m", "--model", action="append", dest="models",
                        help="alias or provider:model" + (" (repeat for several)" if many else ""))
        sp.add_argument("-s", "--system", help="system prompt")
        sp.add_argument("-t", "--temperature", type=float)
        sp.add_argument("--max-tokens", type=int)
        sp.add_argument("--timeout", type=float, help="seconds for the whole call")
        sp.add_argument("--simulate", action="store_true", help="use the simulator for every provider")
        sp.add_argument("--quiet", action="store_true", help="print only the answer(s)")
        sp.add_argument("-a", "--attach", action="append", metavar="FILE",  # [rich requests]
                        help="attach a file or an http(s) URL (repeat for several)")
        sp.add_argument("--schema", metavar="FILE.json", help="answer as JSON matching this JSON Schema")

    demo = sub.add_parser("demo", help="compare the three providers (simulated where no key is set)")
    call_options(demo, True)
    demo.add_argument("prompt", nargs="?", default=DEMO_PROMPT)
    for name, many in (("ask", False), ("compare", True)):
        sp = sub.add_parser(name, help=f"{name} with a prompt (use - to read it from stdin)")
        call_options(sp, many)
        sp.add_argument("prompt")
    for name in ("usage", "costs"):
        sp = sub.add_parser(name, help=f"show the ledger's {name} table")
        sp.add_argument("--by", default="model", help="costs: model, provider, day, cell, group...")
        sp.add_argument("--session", action="store_true", help="only this process's calls")
        sp.add_argument("--limit", type=int, default=20, help="usage: the last N calls")
    return p


def _route_to_simulator(force: bool) -> list[str]:
    """Send providers without a key to the simulator; returns the simulated providers."""
    from . import models
    from ._simulation import simulate

    missing = [p for p, has in models.key_status().items() if force or not has]
    if models.vertex_enabled() and not force and "google" in missing:
        missing.remove("google")
    if missing:
        simulate(providers=missing)
    return missing


def _table(frame) -> str:
    cols = [c for c in ("model", "status", "latency_s", "ttft_s", "tokens_per_s", "input_tokens",
                        "output_tokens", "cost_usd", "error") if c in frame.columns]
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_colwidth", 60,
                           "display.float_format", "{:.6g}".format):
        return frame[cols].to_string(index=False)


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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import llmcells
    from .errors import LLMError

    if args.command in ("usage", "costs"):
        frame = (llmcells.usage(session=args.session).tail(args.limit) if args.command == "usage"
                 else llmcells.costs(by=args.by, session=args.session))
        print(frame.to_string(index=False) if len(frame) else "No calls recorded yet.")
        return 0

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    # The demo runs wherever it can: providers without a key go to the simulator. Real work
    # (ask, compare) only uses the simulator when asked, so a missing key is an error, not a fake.
    simulated = _route_to_simulator(args.simulate) if args.command == "demo" or args.simulate else []
    if simulated and not args.quiet:
        print(f"(simulated: {', '.join(simulated)} — set their API keys to use the real services)\n")
    options = dict(system=args.system, temperature=args.temperature, max_tokens=args.max_tokens,
                   timeout=args.timeout, display=False if args.quiet else "terminal")
    try:
        options.update(_rich_options(args))  # [rich requests] -a and --schema
        if args.command == "ask":
            model = args.models[0] if args.models else None
            result = llmcells.run(llmcells.ask(prompt, model, **options))
            if args.quiet:
                print(result.text)
            return 0 if result.ok else 1
        comparison = llmcells.run(llmcells.compare(prompt, args.models, **options))
    except LLMError as err:
        print(f"llmcells: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nllmcells: interrupted.", file=sys.stderr)
        return 130
    if args.quiet:
        for r in comparison:
            print(f"## {r.model}\n{r.text}\n")
    elif args.command == "demo":
        print("\nRecorded in the usage ledger (llmcells.usage(), python -m llmcells usage):")
        print(_table(llmcells.usage(group_id=comparison.group_id)))
    return 0 if all(r.ok for r in comparison) else 1


if __name__ == "__main__":
    sys.exit(main())
