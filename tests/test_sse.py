"""The SSE reader under the adapters: its events match the openai SDK's own decoder on any stream,
cut into chunks anywhere, and with Gemini's options google-genai's own reading; the usual events
take a shortcut that gives the same."""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from llmcells.providers._sse import END, SKIP, EventStream


class _Chunks(httpx2.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    async def __aiter__(self):
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


def _response(chunks: list[bytes]) -> httpx2.Response:
    return httpx2.Response(200, stream=_Chunks(chunks), request=httpx2.Request("POST", "http://sim/v1"))


def _as_pair(name, data, response):
    return name, data.decode()


def _read_all(chunks: list[bytes], read=_as_pair) -> list:
    async def go():
        return [item async for item in EventStream(_response(chunks), read)]

    return asyncio.run(go())


def _sdk_events(raw: bytes) -> list[tuple[str | None, str]]:
    """The openai SDK's own decoder over the same bytes: the oracle."""
    from openai._streaming import SSEDecoder

    return [(sse.event, sse.data) for sse in SSEDecoder().iter_bytes(iter([raw])) if sse.data]


def _cut(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(raw) + 1) for c in cuts})
    edges = [0, *points, len(raw)]
    return [raw[a:b] for a, b in zip(edges, edges[1:])]


_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), min_size=1, max_size=12)
# (no empty data line: the reader drops one, where the SDK's decoder adds an LF to the data;
# the test of the odd events below covers it)
_line = st.one_of(
    st.tuples(st.just("data"), st.sampled_from([": ", ":", ":  "]), _text).filter(
        lambda line: (line[1] + line[2]) != ": "),
    st.tuples(st.just("event"), st.sampled_from([": ", ":"]), st.sampled_from(["message_start", "ping", "x"])),
    st.tuples(st.sampled_from(["id", "retry"]), st.just(": "), st.sampled_from(["7", "3000"])),
    st.tuples(st.just(""), st.just(": "), st.sampled_from(["ping", "keep-alive"])),  # a comment
)
_newline = st.sampled_from(["\n", "\r\n", "\r"])
_event = st.tuples(st.lists(st.tuples(_line, _newline), min_size=1, max_size=4), _newline)


@settings(max_examples=300, deadline=None)
@example(events=[([(("data", ": ", "0"), "\r\n"), (("data", ":", "1"), "\r\n")], "\r\n")],
         cuts=[16, 17])  # CR | LF | CRLF: the LF alone in its chunk
@given(events=st.lists(_event, min_size=1, max_size=6), cuts=st.lists(st.integers(0, 300), max_size=10))
def test_the_events_are_the_sdk_decoders_however_the_body_is_cut(events, cuts):
    """Any mix of line ends (CR, LF, CRLF), cut into chunks anywhere."""
    raw = "".join("".join(f"{field}{sep}{value}{end}" for (field, sep, value), end in lines) + blank
                  for lines, blank in events).encode()
    assert _read_all(_cut(raw, cuts)) == _sdk_events(raw)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 1000])
def test_the_usual_events_and_the_odd_ones_whatever_the_chunking(size):
    raw = (b'\xef\xbb\xbfdata: {"a": 1}\n\n'               # a byte order mark first
           b': ping\r\n\r\n'                               # a comment
           b'retry: 3000\n\nid: 7\n\nevent: keepalive\n\n'  # events without data
           b'data:\n\ndata: \n\n'                          # empty data
           b'event: content_block_delta\r\ndata: {"b": 2}\r\n\r\n'
           b'data:{"c":\ndata: 3}\n\n\n\n'                 # two data lines; extra blank lines
           b'data: {"d": 4}\r\rdata: {"cut": ')             # CR endings; an event cut off
    chunks = [raw[i:i + size] for i in range(0, len(raw), size)]
    assert _read_all(chunks) == [(None, '{"a": 1}'), ("content_block_delta", '{"b": 2}'),
                                 (None, '{"c":\n3}'), (None, '{"d": 4}')]


def test_a_cr_at_a_chunks_end_and_the_lf_after_it_are_one_line_end():
    chunks = [b'data: {"a": 1}\r', b'\n\r', b'\ndata: {"b": 2}\r\n\r\n']
    assert _read_all(chunks) == [(None, '{"a": 1}'), (None, '{"b": 2}')]
    # the LF alone in its chunk, then the blank line: the event still ends there
    assert _read_all([b'data: 1\r\ndata: 2\r', b'\n', b'\r\n']) == [(None, "1\n2")]


def test_skip_and_end_and_what_a_reader_raises_come_in_the_streams_order():
    raw = b'data: 1\n\ndata: 2\n\ndata: [DONE]\n\ndata: 3\n\n'
    response = _response([raw])

    def read(name, data, response):
        if data == b"[DONE]":
            return END
        return SKIP if data == b"2" else json.loads(data)

    async def go():
        return [item async for item in EventStream(response, read)]

    assert asyncio.run(go()) == [1]
    assert response.is_closed and response.stream.closed

    def failing(name, data, response):
        if data == b"2":
            raise ValueError("the error event")
        return json.loads(data)

    async def partial():
        got = []
        with pytest.raises(ValueError, match="the error event"):
            async for item in EventStream(_response([raw]), failing):
                got.append(item)
        return got

    assert asyncio.run(partial()) == [1]


def test_data_that_is_not_utf8_is_a_broken_event():
    from llmcells.providers._sse import json_of

    with pytest.raises(json.JSONDecodeError):
        json_of(b'{"a": "\xff"}')


def test_close_closes_the_body_and_the_response_before_the_end():
    response = _response([b'data: 1\n\n', b'data: 2\n\n'])

    async def go():
        stream = EventStream(response, lambda n, d, r: json.loads(d))
        first = await stream.__anext__()
        await stream.close()
        rest = [item async for item in stream]
        return first, rest

    assert asyncio.run(go()) == (1, [])
    assert response.is_closed and response.stream.closed


# ----- other= and last=: what google-genai reads besides SSE --------------------------------------


def test_other_gets_the_lines_that_are_no_field_and_last_keeps_the_event_the_body_ends_in():
    raw = (b'data: 1\n\nfoo bar\nid: 7\nretry: 10\n: a comment\nevent: x\ndata: 2\n'
           b'{"raw":\n  true}\n\ndata: 3')
    seen: list[bytes | None] = []

    def other(line):
        seen.append(line)
        return b"[9]" if line == b"  true}" else None

    async def go(**options):
        stream = EventStream(_response([raw[i:i + 4] for i in range(0, len(raw), 4)]), _as_pair, **options)
        return [item async for item in stream]

    # by default (SSE): the lines that are no field are ignored, the cut-off last event dropped
    assert asyncio.run(go()) == [(None, "1"), ("x", "2")]
    # other= sees those lines, and None at the end; what it returns comes in the stream's order
    # (the event before it first); last=True dispatches the event the body ends in
    assert asyncio.run(go(other=other, last=True)) == [(None, "1"), ("x", "2"), (None, "[9]"), (None, "3")]
    assert seen == [b"foo bar", b'{"raw":', b"  true}", None]


# google-genai's own reading of an SSE body, for the Gemini lane: "data: " lines (with the space)
# and raw JSON objects over several lines, any line ends, cut anywhere
_json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), _text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)),
    max_leaves=6)
_gemini_item = st.one_of(
    st.tuples(st.just("data"), st.dictionaries(_text, _json_value, max_size=3)),
    st.tuples(st.just("raw"), st.dictionaries(_text, _json_value, min_size=1, max_size=3)),
)


async def _genai_segments(raw: bytes, chunks: list[bytes]) -> list:
    from google.genai._api_client import HttpResponse

    response = HttpResponse({}, httpx2.Response(200, stream=_Chunks(chunks),
                                                request=httpx2.Request("POST", "http://sim/v1")))
    return [segment async for segment in response.async_segments()]


@settings(max_examples=200, deadline=None)
@given(items=st.lists(_gemini_item, min_size=1, max_size=5), ends=st.lists(_newline, min_size=1),
       blank_last=st.booleans(), cuts=st.lists(st.integers(0, 400), max_size=10))
def test_the_gemini_reading_is_google_genais_however_the_body_is_cut(items, ends, blank_last, cuts):
    from llmcells.providers.google import _RawJson, _read_event

    end = ends[0]
    parts = []
    for kind, value in items:
        if kind == "data":
            parts.append(f"data: {json.dumps(value)}{end}{end}")
        else:  # pretty-printed over several lines, as Gemini sends an error object
            parts.append(json.dumps(value, indent=2).replace("\n", end) + end)
    text = "".join(parts)
    if not blank_last and text.endswith(end + end):
        text = text[:-len(end)]  # the last event without its blank line: genai still reads it
    raw = text.encode()
    chunks = _cut(raw, cuts)

    async def ours():
        stream = EventStream(_response(chunks), _read_event, other=_RawJson(), last=True)
        return [item async for item in stream]

    assert asyncio.run(ours()) == asyncio.run(_genai_segments(raw, chunks))
