"""`python -m llmcells.sim --port N [--ttft S] [--tps N] [--loose] [--rate-limit P:NAME=N]`: run the
simulator until Ctrl-C."""

from __future__ import annotations

import argparse
import threading

from ..models import SIMULATOR_KEY
from .ratelimits import set_limits
from .simulator import Simulator


def main(argv: list[str] | None = None) -> None:
    """Start a simulator, print how to point the SDKs at it, and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m llmcells.sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    parser.add_argument("--ttft", type=float, default=0.05, help="seconds before the first token")
    parser.add_argument("--tps", type=float, default=200.0, help="tokens per second")
    parser.add_argument("--output-tokens", type=int, default=None, help="fixed answer length")
    parser.add_argument("--loose", action="store_true",
                        help="answer any well-formed request (by default, refuse what the real APIs refuse)")
    parser.add_argument("--rate-limit", action="append", default=[], metavar="PROVIDER:NAME=N",
                        help="the per-minute limit the headers advertise, e.g. anthropic:requests=4000 "
                             "(repeatable; the defaults are a modest paid tier's)")
    args = parser.parse_args(argv)
    for item in args.rate_limit:
        provider, _, rest = item.partition(":")
        name, _, value = rest.partition("=")
        if not (provider and name and value.isdigit()):
            parser.error(f"--rate-limit {item!r}: use PROVIDER:NAME=N, e.g. anthropic:requests=4000")
        set_limits(provider, **{name: int(value)})
    sim = Simulator(args.host, args.port, ttft=args.ttft, tokens_per_s=args.tps,
                    output_tokens=args.output_tokens, strict=not args.loose).start()
    print(f"llmcells simulator listening on {sim.url} ({'loose' if args.loose else 'strict'})")
    print("export these to use it:")
    env = {**sim.env(), "OPENAI_API_KEY": SIMULATOR_KEY, "ANTHROPIC_API_KEY": SIMULATOR_KEY,
           "GOOGLE_API_KEY": SIMULATOR_KEY}
    for name, value in env.items():
        print(f"export {name}={value}")
    print("Ctrl-C to stop.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
