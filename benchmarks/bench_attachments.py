"""Preparing rich requests: the time from what the user attaches to the SDK's request arguments,
for a 5 MB image and a 10,000-row DataFrame, on each provider path, beside the raw SDK way and a
whole simulated call.

    python benchmarks/bench_attachments.py           # 7 runs of each, median
    python benchmarks/bench_attachments.py --quick   # 3 runs

Importable: `main(argv=None) -> list[dict]` returns rows {name, value, unit, target, ok}.

llmcells: `make_plan(prompt, model, attach=x)` (reading the file, hashing its bytes, checking the
provider's limits) plus the adapter's request builder (base64 / data URL in the native shape).
Raw SDK: what a user writing the SDK call by hand does: read the file (or `df.to_csv()`),
base64-encode it and build the same dict. The difference is llmcells' overhead (mostly the
sha256 that cache and resume keys need). The whole-call row is one `ask()` with the 5 MB image
on the in-process simulator (which decodes and hashes it too): preparation must not dominate it.

Anthropic takes at most 5 MB of base64 per image (about 3.75 MB of bytes): a 5 MB image is
refused before sending (that refusal is timed), and its image row uses a 3.5 MB image instead.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

_SRC = Path(__file__).resolve().parents[1] / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

PATHS = {"chat": "openai:gpt-6-luna", "responses": "openai-responses:gpt-6-luna",
         "anthropic": "anthropic:claude-haiku-5-5", "gemini": "google:gemini-3.5-flash-lite"}


def _image(path: Path, nbytes: int) -> Path:
    """A PNG of about nbytes (noise does not compress)."""
    from PIL import Image

    side = int((nbytes / 3) ** 0.5)
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(path, "PNG", compress_level=1)
    return path


def _kwargs(request):
    from llmcells.providers import anthropic, google, openai

    spec = request.spec
    if spec.adapter == "openai":
        return (openai.responses_body if spec.api == "responses" else openai.chat_body)(request)[0]
    if spec.adapter == "anthropic":
        return anthropic.message_body(request)[0]
    return {"contents": google.request_contents(request), "config": google.request_config(request)}


def _raw(path_key: str, data: bytes, media_type: str) -> dict:
    """The same request arguments written by hand for the SDK."""
    if path_key == "gemini":  # google-genai takes the bytes (it base64-encodes them itself)
        return {"contents": [{"role": "user", "parts": [{"inline_data": {"data": data, "mime_type": media_type}},
                                                        {"text": "What is this?"}]}]}
    b64 = base64.b64encode(data).decode()
    if path_key == "chat":
        return {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{b64}"}}]}]}
    if path_key == "responses":
        return {"input": [{"role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": f"data:{media_type};base64,{b64}"}]}]}
    return {"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": b64}},
        {"type": "text", "text": "What is this?"}]}]}


def _median(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    runs = 3 if args.quick else 7

    import pandas as pd

    from llmcells import models
    from llmcells.attachments import attachment
    from llmcells.calls import make_plan
    from llmcells.errors import ConfigError

    try:
        from _common import row  # run as a script
    except ImportError:
        from ._common import row

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("LLMCELLS_HOME", tmp)
        big = _image(Path(tmp) / "five.png", 5_000_000)
        smaller = _image(Path(tmp) / "three.png", 3_500_000)
        frame = pd.DataFrame({"id": range(10_000), "city": ["Lisbon", "Oslo", "Quito", "Hanoi"] * 2500,
                              "value": [i * 0.37 for i in range(10_000)]})
        import llmcells.attachments as att

        kept_rows, att.TABLE_ROWS = att.TABLE_ROWS, 10_000  # send the whole table
        print(f"image {big.stat().st_size / 1e6:.2f} MB, {smaller.stat().st_size / 1e6:.2f} MB; "
              f"DataFrame 10,000 rows -> {len(frame.to_csv()) / 1e6:.2f} MB of CSV")
        for key, model in PATHS.items():
            spec = models.resolve(model)
            image = big
            if key == "anthropic":
                t = time.perf_counter()
                try:
                    make_plan("What is this?", spec, attach=big)
                    refused = None
                except ConfigError as err:
                    refused = str(err)
                ms = (time.perf_counter() - t) * 1000
                rows.append(row(f"{key}: 5 MB image refused before sending", ms, "ms", None,
                                note=refused or "not refused"))
                image = smaller
            label = "5 MB" if image is big else "3.5 MB"
            prep = _median(lambda: _kwargs(make_plan("What is this?", spec, attach=image).request), runs)
            data = image.read_bytes()
            raw = _median(lambda: _raw(key, image.read_bytes(), "image/png"), runs)
            rows.append(row(f"{key}: {label} image, llmcells", prep * 1000, "ms", None))
            rows.append(row(f"{key}: {label} image, raw SDK", raw * 1000, "ms", None))
            table = _median(lambda: _kwargs(make_plan("Summarise", spec, attach=frame).request), runs)
            raw_table = _median(lambda: base64.b64encode(frame.to_csv().encode()), runs)
            rows.append(row(f"{key}: 10,000-row DataFrame, llmcells", table * 1000, "ms", None))
            rows.append(row(f"{key}: 10,000-row DataFrame, raw to_csv", raw_table * 1000, "ms", None))
            del data

        # a whole call with the 5 MB image, on the in-process simulator
        import llmcells
        from llmcells.sim import Simulator

        with Simulator(ttft=0.3, tokens_per_s=100, output_tokens=40) as sim:
            models.set_simulator(sim.url)
            llmcells.run(llmcells.ask("warm up", "chatgpt", display=False))
            plan_ms = _median(lambda: _kwargs(make_plan("What is this?", models.resolve("chatgpt"),
                                                        attach=big).request), runs) * 1000
            t = time.perf_counter()
            r = llmcells.run(llmcells.ask("What is in the attached image?", "chatgpt", attach=big,
                                          display=False))
            call_ms = (time.perf_counter() - t) * 1000
            models.set_simulator(None)
        rows.append(row("chat: whole call with the 5 MB image (simulator, 0.3 s TTFT)", call_ms, "ms", None,
                        note=f"status {r.status}; preparation is {plan_ms / call_ms:.0%} of it"))
        rows.append(row("chat: preparation share of that call", 100 * plan_ms / call_ms, "%", 25, "<"))
        att.TABLE_ROWS = kept_rows
    return rows


if __name__ == "__main__":
    from _common import print_table

    print_table(main(sys.argv[1:]))
