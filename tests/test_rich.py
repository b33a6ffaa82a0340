"""Rich requests through the real SDKs against the simulator: attachments (PNG, PDF, text,
figures, PIL images, DataFrames, URLs) arrive intact in each provider's wire format, checked by
sha256 on the server side; structured output round-trips into Result.data; invalid JSON ends as
invalid_output with the text kept; over-limit and unsupported files send nothing."""

from __future__ import annotations

import hashlib
import io
import sqlite3
import warnings

import pytest
from pydantic import BaseModel

import llmcells
from llmcells import attachments as att
from llmcells.errors import ConfigError

PATHS = ["chatgpt", "openai-responses:gpt-6-luna", "claude", "gemini"]

PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>"
       b"endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")
TEXT = "Quarterly notes\nrevenue: 12.5\nünïcödé ✓ and a tab\tthere\n"


class Person(BaseModel):
    name: str
    age: int


def _png(width: int = 64, height: int = 48) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def files(tmp_path):
    png, pdf, txt = tmp_path / "chart.png", tmp_path / "report.pdf", tmp_path / "notes.txt"
    png.write_bytes(_png())
    pdf.write_bytes(PDF)
    txt.write_text(TEXT, encoding="utf-8")
    return [png, pdf, txt]


def ask(prompt, model, **kw):
    return llmcells.run(llmcells.ask(prompt, model, display=False, **kw))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----- attachments arrive intact -------------------------------------------------------------------


@pytest.mark.parametrize("model", PATHS)
def test_png_pdf_and_text_arrive_intact(simulated, files, model):
    r = ask("What is in the attached files?", model, attach=files)
    assert r.ok, r.error
    got = simulated.requests[-1].attachments
    assert sorted(a["sha256"] for a in got) == sorted(sha(p.read_bytes()) for p in files)
    assert sorted(a["media_type"] for a in got) == ["application/pdf", "image/png", "text/plain"]
    # the simulator answers a question about the files by naming their types and sizes
    assert "image/png" in r.text and f"{len(PDF)} bytes" in r.text
    assert r.attachments_count == 3 and r.attachments_bytes == sum(p.stat().st_size for p in files)


@pytest.mark.parametrize("model", PATHS)
def test_native_wire_shapes(simulated, files, model):
    ask("Describe the attached files.", model, attach=files[:2])
    body = simulated.requests[-1].body
    spec = llmcells.models.resolve(model)
    flat = repr(body)
    if spec.provider == "anthropic":
        kinds = [b["type"] for b in body["messages"][-1]["content"]]
        assert kinds == ["image", "document", "text"]
    elif spec.provider == "google":
        parts = body["contents"][-1]["parts"]
        assert [next(iter(p)) for p in parts] == ["inlineData", "inlineData", "text"]
    elif spec.api == "responses":
        kinds = [p["type"] for p in body["input"][-1]["content"]]
        assert kinds == ["input_text", "input_image", "input_file"]
    else:
        kinds = [p["type"] for p in body["messages"][-1]["content"]]
        assert kinds == ["text", "image_url", "file"]
        assert "data:image/png;base64," in flat


@pytest.mark.parametrize("model", PATHS)
def test_a_url_is_passed_through_never_fetched(simulated, model):
    url = "https://example.invalid/charts/q3.png"
    r = ask("What does the attached image show?", model, attach=url)
    assert r.ok, r.error
    got = simulated.requests[-1].attachments
    assert [a["url"] for a in got] == [url]


def test_a_matplotlib_figure_and_a_pil_image(simulated):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([1, 2, 3], [3, 1, 2])
    img = Image.new("RGB", (10, 10), "blue")
    a_fig, a_img = att.attachment(fig), att.attachment(img)
    plt.close(fig)
    assert a_fig.media_type == "image/png" and a_fig.data.startswith(b"\x89PNG")
    assert a_img.media_type == "image/png"
    r = ask("What is in the attached images?", "claude", attach=[a_fig, a_img])
    assert r.ok
    got = [a["sha256"] for a in simulated.requests[-1].attachments]
    assert got == [a_fig.sha256, a_img.sha256]


def test_a_dataframe_goes_as_csv_and_is_cut_with_a_note_and_a_warning(simulated, monkeypatch):
    import pandas as pd

    df = pd.DataFrame({"x": range(30), "y": [f"v{i}" for i in range(30)]})
    monkeypatch.setattr(att, "TABLE_ROWS", 10)
    with pytest.warns(UserWarning, match="first 10 of 30 rows"):
        a = att.attachment(df)
    assert a.media_type == "text/csv"
    assert a.text.count("\n") < 20 and "only the first 10 are included" in a.text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small = att.attachment(df.head(5))
    assert "only the first" not in small.text
    r = ask("Summarise the attached table.", "gemini", attach=small)
    assert r.ok
    assert simulated.requests[-1].attachments[0]["sha256"] == small.sha256
    assert "x,y" in repr(simulated.requests[-1].body)


def test_bytes_with_and_without_a_media_type():
    assert att.attachment((b"hello", "text/plain")).kind == "text"
    assert att.attachment(_png()).media_type == "image/png"   # sniffed
    assert att.attachment(PDF).media_type == "application/pdf"
    with pytest.raises(ConfigError, match="media type"):
        att.attachment(b"\x00\x01\x02")
    with pytest.raises(ConfigError, match="Cannot attach a"):
        att.attachment(object())
    with pytest.raises(ConfigError, match="No such file"):
        att.attachment("/no/such/file.png")
    assert "bytes" in repr(att.attachment(PDF)) and "%PDF" not in repr(att.attachment(PDF))


# ----- limits: checked before sending -------------------------------------------------------------


@pytest.mark.parametrize("model", PATHS)
def test_over_limit_attachments_send_nothing(simulated, model):
    spec = llmcells.models.resolve(model)
    cap = att.limits_for(spec).max_image_bytes
    big = att.Attachment("image/png", data=b"", name="huge.png", size=cap + 1, sha256="0")
    with pytest.raises(ConfigError, match=r"huge\.png is .* at most"):
        llmcells.ask("look", model, attach=big)
    many = [att.attachment((_png(2, 2), "image/png"))] * (att.limits_for(spec).max_count + 1)
    with pytest.raises(ConfigError, match="at most"):
        llmcells.ask("look", model, attach=many)
    assert simulated.requests == []


@pytest.mark.parametrize("model", PATHS)
def test_unsupported_attachments_send_nothing(simulated, model, tmp_path):
    blob = tmp_path / "data.bin"
    blob.write_bytes(b"\x00\xff\x00\xfe" * 10)
    with pytest.raises(ConfigError, match="data.bin"):
        llmcells.ask("look", model, attach=blob)
    odd = att.attachment((b"RIFF....", "audio/wav"))
    with pytest.raises(ConfigError, match="does not take audio/wav"):
        llmcells.ask("look", model, attach=odd)
    with pytest.raises(ConfigError):  # a compare with one refusing model sends nothing at all
        llmcells.compare("look", ["chatgpt", model], attach=odd)
    assert simulated.requests == []


def test_gemini_refuses_gif_the_others_take_it(simulated):
    gif = att.attachment((b"GIF89a" + b"\x00" * 20, None))
    with pytest.raises(ConfigError, match=r"Google Gemini .* does not take image/gif"):
        llmcells.ask("look", "gemini", attach=gif)
    assert simulated.requests == []
    assert ask("What is in the attached image?", "claude", attach=gif).ok


def test_chat_completions_takes_no_pdf_by_url_responses_does(simulated):
    url = "https://example.invalid/paper.pdf"
    with pytest.raises(ConfigError, match="api='responses'"):
        llmcells.ask("read", "chatgpt", attach=url)
    assert simulated.requests == []
    r = ask("Summarise the attached document.", "openai-responses:gpt-6-luna", attach=url)
    assert r.ok and simulated.requests[-1].attachments[0]["url"] == url


# ----- structured output ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", PATHS)
def test_a_pydantic_schema_round_trips_into_data(simulated, model):
    r = ask("Who wrote the first program?", model, schema=Person)
    assert r.ok, r.error
    assert isinstance(r.data, Person) and r.data.age == 42
    assert r.schema_mode == "native"
    body = simulated.requests[-1].body
    spec = llmcells.models.resolve(model)
    if spec.provider == "anthropic":
        assert body["output_config"]["format"]["type"] == "json_schema"
    elif spec.provider == "google":
        assert body["generationConfig"]["responseMimeType"] == "application/json"
        assert body["generationConfig"]["responseJsonSchema"]["properties"]["age"]["type"] == "integer"
    elif spec.api == "responses":
        assert body["text"]["format"]["strict"] is True
    else:
        assert body["response_format"]["json_schema"]["strict"] is True
        assert body["response_format"]["json_schema"]["schema"]["additionalProperties"] is False


def test_a_schema_and_params_in_the_same_request_object_both_reach_the_body(simulated):
    """params={'output_config': {'effort': ...}} beside schema= (Anthropic keeps both in
    output_config): the user's keys are merged into the object, not put in its place."""
    r = ask("Who wrote the first program?", "claude", schema=Person,
            params={"output_config": {"effort": "low"}})
    assert r.ok, r.error
    assert isinstance(r.data, Person)
    sent = simulated.requests[-1].body["output_config"]
    assert sent["effort"] == "low" and sent["format"]["type"] == "json_schema"


@pytest.mark.parametrize("model", PATHS)
def test_invalid_json_is_invalid_output_with_the_text_kept(simulated, model):
    simulated.inject("invalid_json")
    r = ask("Who?", model, schema=Person)
    assert r.status == "error" and r.error_kind == "invalid_output"
    assert r.text.startswith('{"name"') and r.data is None
    assert "\n" not in r.error and "Person" in r.error


def test_a_json_schema_dict_and_a_field_map_give_dicts(simulated):
    schema = {"type": "object", "properties": {"city": {"type": "string"},
                                               "population": {"type": "integer"}},
              "required": ["city", "population"]}
    r = ask("Largest city?", "claude", schema=schema)
    assert r.ok and r.data == {"city": "example city", "population": 42}
    r = ask("Largest city?", "gemini", schema={"city": str, "population": int})
    assert r.ok and r.data == {"city": "example city", "population": 42}


def test_a_concise_schema_string_as_in_simonw_llm(simulated):
    concise = "name: the full name, age int, tags list[str], score float, ok bool"
    r = ask("Who?", "claude", schema=concise)
    assert r.ok and r.data == {"name": "example name", "age": 42, "tags": ["example tags"],
                               "score": 1.5, "ok": True}, r.data
    sent = simulated.requests[-1].body["output_config"]["format"]["schema"]["properties"]
    assert sent["age"]["type"] == "integer" and sent["tags"]["items"] == {"type": "string"}
    assert sent["name"]["description"] == "the full name"
    # new lines separate the fields when there are any, so a description may hold commas
    r = ask("Who?", "chatgpt", schema="name: first, middle and last\nage int: in years")
    assert r.ok and r.data == {"name": "example name", "age": 42}
    c = llmcells.run(llmcells.compare("Who?", ["claude", "gemini"], schema="name, age int", display=False))
    assert [x.data for x in c] == [{"name": "example name", "age": 42}] * 2
    frame = llmcells.run(llmcells.batch(["Who?"], "gemini", schema="name, age int", display=False))
    assert frame.age.tolist() == [42]


@pytest.mark.parametrize("schema,message", [
    ("name, age integer", "the field 'age' has type 'integer' (did you mean int?)"),
    ("name age int", "'name age int' is not a field"),
    ("name, name int", "the field 'name' is there twice"),
    (" , ", "names no field"),
])
def test_a_concise_schema_typo_is_one_line(simulated, schema, message):
    with pytest.raises(ConfigError) as err:
        llmcells.ask("x", "claude", schema=schema)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert simulated.requests == []


def test_magics_take_a_concise_schema_in_quotes(simulated, shell):
    shell.run_cell_magic("claude", '--schema "name, age int" --no-display -o p', "Who?")
    assert shell.user_ns["p"].data == {"name": "example name", "age": 42}


def test_bad_schemas_are_one_line(simulated):
    with pytest.raises(ConfigError, match="schema must be"):
        llmcells.ask("x", "claude", schema=42)
    with pytest.raises(ConfigError, match="object"):
        llmcells.ask("x", "claude", schema={"type": "string"})
    with pytest.raises(ConfigError, match="repair needs a schema"):
        llmcells.ask("x", "claude", repair=1)
    assert simulated.requests == []


def test_repair_re_asks_once_with_the_validation_error(simulated):
    simulated.inject("invalid_json", times=1)
    r = ask("Who?", "claude", schema=Person, repair=1)
    assert r.ok and r.data == Person(name="example name", age=42)
    assert len(simulated.requests) == 2
    second = simulated.requests[1].body["messages"]
    assert second[-2]["role"] == "assistant" and "does not match the schema" in repr(second[-1])


def test_an_openai_compatible_endpoint_gets_instructions(simulated):
    llmcells.add_endpoint("local", simulated.url + "/v1", api_key="k")
    r = ask("Who?", "local:some-model", schema=Person)
    body = simulated.requests[-1].body
    assert "response_format" not in body
    assert "JSON Schema" in body["messages"][0]["content"]
    assert r.schema_mode == "instructions"
    # the simulator answers plain text to a request without a native schema: it doesn't validate
    assert r.error_kind == "invalid_output"


def test_compare_with_a_schema_agrees_per_field(simulated):
    c = llmcells.run(llmcells.compare("Who?", ["chatgpt", "claude", "gemini"], schema=Person,
                                      display=False))
    table = c.agreement()
    assert list(table["field"]) == ["name", "age"] and table["agree"].all()
    assert all(isinstance(r.data, Person) for r in c)


# ----- keys, ledger, batch ---------------------------------------------------------------------------


def test_cache_keys_hash_the_bytes_and_the_schema(simulated):
    from llmcells.calls import make_plan
    from llmcells.store import request_key

    def key(**kw):
        return request_key(make_plan("look", "claude", **kw).request, 0)

    a, b = att.attachment((_png(4, 4), "image/png")), att.attachment((_png(5, 4), "image/png"))
    plain = key()
    assert len({plain, key(attach=a), key(attach=b), key(schema=Person)}) == 4
    assert key(attach=a) == key(attach=att.attachment((_png(4, 4), "image/png")))


def test_a_cached_answer_with_a_schema_has_data(simulated):
    first = ask("Who?", "claude", schema=Person, cache=True)
    again = ask("Who?", "claude", schema=Person, cache=True)
    assert again.cached and again.data == first.data and len(simulated.requests) == 1


def test_the_ledger_counts_attachments_never_their_content(simulated, files):
    ask("What is in the attached files?", "claude", attach=files)
    conn = sqlite3.connect(llmcells.ledger.path())
    n, size, text = conn.execute("SELECT attachments, attachment_bytes, prompt_text FROM calls").fetchone()
    assert n == 3 and size == sum(p.stat().st_size for p in files) and text is None
    dump = b"".join(str(r).encode() for r in conn.execute("SELECT * FROM calls"))
    assert b"revenue" not in dump and b"PDF" not in dump


@pytest.mark.slow
def test_batch_over_200_rows_with_a_schema_fills_the_field_columns(simulated, roomy_quotas):
    import pandas as pd

    df = pd.DataFrame({"bio": [f"Person number {i} lives here." for i in range(200)]})
    out = llmcells.run(llmcells.batch(df, ["chatgpt", "claude", "gemini"], template="Extract: {bio}",
                                      schema=Person, display=False))
    assert out.shape[0] == 600 and (out.status == "ok").all()
    assert out["name"].notna().all() and (out["age"] == 42).all()
    assert sorted(out.model.unique()) == sorted(llmcells.models.resolve(m).id
                                                for m in ["chatgpt", "claude", "gemini"])


def test_batch_takes_each_rows_attachment_from_a_column(simulated):
    import pandas as pd

    images = [att.attachment((_png(3 + i, 3), "image/png")) for i in range(4)]
    df = pd.DataFrame({"q": ["What is in the attached image?"] * 4, "img": images})
    out = llmcells.run(llmcells.batch(df, ["claude"], template="{q}", attach="img", display=False))
    assert (out.status == "ok").all()
    sent = sorted(r.attachments[0]["sha256"] for r in simulated.requests)
    assert sent == sorted(a.sha256 for a in images)


# ----- magics -----------------------------------------------------------------------------------------


def test_magics_attach_a_variable_and_a_schema(simulated, shell, files):
    shell.user_ns["pic"] = att.attachment(files[0])
    shell.user_ns["Person"] = Person
    shell.run_cell_magic("claude", f"-a pic -a {files[1]} --no-display -o r1",
                         "What is in the attached files?")
    r1 = shell.user_ns["r1"]
    assert r1.ok and r1.attachments_count == 2
    shell.run_cell_magic("claude", "--schema Person --no-display -o p", "Who?")
    assert shell.user_ns["p"].data == Person(name="example name", age=42)
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="no variable 'nope'"):
        shell.run_cell_magic("claude", "--schema nope --no-display", "Who?")
    with pytest.raises(UsageError, match="no variable 'nothing'"):
        shell.run_cell_magic("claude", "-a nothing --no-display", "Who?")


# ----- the card ---------------------------------------------------------------------------------------


def test_the_card_shows_thumbnails_chips_and_the_fields_table(simulated, files):
    from llmcells.calls import make_plan
    from llmcells.display import open_display

    big = att.attachment((_png(1200, 900) + b"\x00" * 200_000, "image/png"))  # shrunk to a thumbnail
    plan = make_plan("Who is in the attached files?", "claude", attach=[*files, big], schema=Person)
    handle = open_display("ask", [plan.info], "notebook", prompt="p")
    card = handle.observers[0]
    result = llmcells.run(llmcells.ask("Who is in the attached files?", "claude",
                                       attach=[*files, big], schema=Person, display=False))
    card.on_finish(result)
    html = card.body.value
    assert html.count("<img") == 2 and "data:image/png;base64," in html and "data:image/jpeg" in html
    assert f"report.pdf · {len(PDF)} B" in html and "notes.txt" in html
    assert 'class="llmcells-fields"' in html and ">age<" in html and ">42<" in html
    handle.close([result])


def test_anthropic_counts_its_5_mb_image_limit_in_base64(simulated):
    four_mb = att.Attachment("image/png", data=b"", name="photo.png", size=4 * 1024 * 1024, sha256="0")
    with pytest.raises(ConfigError, match=r"photo\.png .* in base64"):
        llmcells.ask("look", "claude", attach=four_mb)
    att.check_limits([four_mb], llmcells.models.resolve("chatgpt"))  # OpenAI takes it
    assert simulated.requests == []


class Address(BaseModel):
    city: str
    zip: str | None = None


class Customer(BaseModel):
    name: str
    tags: list[str]
    address: Address
    vip: bool = False


@pytest.mark.parametrize("model", PATHS)
def test_a_nested_model_with_optional_fields_round_trips(simulated, model):
    r = ask("Extract the customer.", model, schema=Customer)
    assert r.ok, r.error
    assert isinstance(r.data, Customer) and isinstance(r.data.address, Address)
    assert r.data.tags and r.data.vip is True


@pytest.mark.slow
def test_the_command_line_takes_attach_and_schema(simulated, files, tmp_path):
    import json
    import subprocess
    import sys

    schema = tmp_path / "book.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"title": {"type": "string"}},
                                  "required": ["title"]}))
    env = {"PATH": "/usr/bin:/bin", "LLMCELLS_HOME": str(tmp_path / "home"),
           "PYTHONPATH": ":".join(sys.path)}
    run = [sys.executable, "-m", "llmcells", "ask", "--simulate", "--quiet", "-m", "claude"]
    out = subprocess.run([*run, "-a", str(files[0]), "-a", str(files[2]), "What is in the attached files?"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and "image/png" in out.stdout and "text/plain" in out.stdout, out.stderr
    out = subprocess.run([*run, "--schema", str(schema), "A book?"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0 and json.loads(out.stdout) == {"title": "example title"}, out.stderr
    out = subprocess.run([*run[:-2], "-m", "gemini", "-a", str(tmp_path / "missing.png"), "x"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "No such file" in out.stderr


def test_replay_keeps_attachments_and_schemas_apart_and_fills_data(simulated, tmp_path, files):
    llmcells.configure(replay=True, replay_path=str(tmp_path / "replay.jsonl"))
    first = ask("Who is in the attached files?", "claude", attach=files[0], schema=Person)
    again = ask("Who is in the attached files?", "claude", attach=files[0], schema=Person)
    assert again.replayed and again.data == first.data and again.attachments_count == 1
    other = att.attachment((_png(9, 9), "image/png"))
    fresh = ask("Who is in the attached files?", "claude", attach=other, schema=Person)
    assert not fresh.replayed  # other bytes: another request
    assert len(simulated.requests) == 2


def test_a_table_as_markdown_and_its_row_limit_per_call():
    import pandas as pd

    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    md = att.table_rows(df, fmt="markdown")
    assert md.media_type == "text/markdown" and md.name == "table.md"
    assert md.text.splitlines() == ["|  | a | b |", "|---|---|---|", "| 0 | 1 | x |",
                                    "| 1 | 2 | y |", "| 2 | 3 | z |"]
    with pytest.warns(UserWarning, match="first 2 of 3 rows"):
        cut = att.table_rows(df, limit=2)
    assert "only the first 2 are included" in cut.text
    with pytest.raises(ConfigError, match="csv"):
        att.table_rows(df, fmt="xlsx")


def test_openai_counts_its_pdf_limit_over_all_the_pdfs_of_a_request(simulated):
    def pdf(name):
        return att.Attachment("application/pdf", data=b"", name=name, size=20 * 1024 * 1024, sha256=name)

    for model in ("chatgpt", "openai-responses:gpt-6-luna"):
        with pytest.raises(ConfigError, match="PDFs add up to 40.0 MB"):
            llmcells.ask("read", model, attach=[pdf("a.pdf"), pdf("b.pdf")])
    att.check_limits([pdf("a.pdf")], llmcells.models.resolve("chatgpt"))
    assert simulated.requests == []


def test_format_json_keeps_a_schema_answer_validated(simulated, shell):
    shell.user_ns["Person"] = Person
    shell.run_cell_magic("gemini", "--schema Person -f json --no-display -o pj", "Who?")
    assert isinstance(shell.user_ns["pj"].data, Person)


def test_batch_repairs_each_row_once(simulated):
    simulated.inject("invalid_json", times=1)
    out = llmcells.run(llmcells.batch([f"q{i}" for i in range(5)], ["claude"], schema=Person, repair=1,
                                      concurrency=1, display=False))
    assert (out.status == "ok").all() and (out["age"] == 42).all()
    assert len(simulated.requests) == 6 and sorted(out.attempts) == [1, 1, 1, 1, 2]
    # a repair that fails again: the row ends invalid_output, its text kept, asked only once more
    simulated.reset()
    simulated.inject("invalid_json", times=2)
    out = llmcells.run(llmcells.batch(["p0", "p1"], ["claude"], schema=Person, repair=1,
                                      concurrency=1, display=False))
    assert out.status.tolist() == ["error", "ok"] and out.error_kind[0] == "invalid_output"
    assert out.text[0].startswith('{"name"') and len(simulated.requests) == 3
    plain = llmcells.run(llmcells.batch(["q9"], ["claude"], schema=Person, display=False))
    assert plain.status.tolist() == ["ok"]


def test_provider_batch_jobs_refuse_repair_and_send_nothing(simulated):
    # attach= and schema= work with via="provider" (tests/test_provider_jobs.py); repair= cannot
    with pytest.raises(ConfigError, match="repair= needs via='live'"):
        llmcells.batch(["q"], ["claude"], schema=Person, repair=1, via="provider")
    assert simulated.requests == []


def test_the_strict_form_keeps_a_field_named_default_and_a_maps_values():
    """strict_schema took `default` out of `properties` itself (a field named so vanished,
    though still required) and closed a dict[str, int] to {} (it could only be answered {})."""
    from llmcells.structured import strict_schema

    class Scored(BaseModel):
        key: str
        default: int = 3
        scores: dict[str, int]

    out = strict_schema(Scored.model_json_schema())
    assert set(out["properties"]) == {"key", "default", "scores"} == set(out["required"])
    assert "default" not in out["properties"]["default"]          # the keyword, still dropped
    assert out["properties"]["scores"]["additionalProperties"] == {"type": "integer"}
    assert out["additionalProperties"] is False


def test_nan_and_infinity_are_not_json():
    """Python's json reads NaN and Infinity; JSON (RFC 8259) has neither."""
    from llmcells import structured
    from llmcells.scoring import json_valid
    from llmcells.types import Result

    schema = structured.output_schema({"type": "object", "properties": {"x": {"type": "number"}}})
    for text in ('{"x": NaN}', '{"x": Infinity}', "NaN"):
        with pytest.raises(ValueError, match="not JSON"):
            structured.validate(text, schema)
        r = Result(model="openai:x", provider="openai", call_id="c", text=text)
        assert json_valid()(r)[0] == 0.0
    assert structured.validate('{"x": 1.5}', schema) == {"x": 1.5}


def test_a_refusal_under_a_schema_is_a_refusal_not_a_mismatch():
    """A refused answer was checked against the schema and reported as "does not match", and
    repair= would have asked (and billed) again."""
    from llmcells import structured
    from llmcells.types import Result

    schema = structured.output_schema({"type": "object", "properties": {"x": {"type": "number"}}})
    r = Result(model="openai:x", provider="openai", call_id="c", text="I can't help with that.",
               status="ok", notes=["refused: the model declined to answer (its refusal is the text)"])
    structured.check_result(r, schema)
    assert (r.status, r.error_kind) == ("error", "refused") and r.text == "I can't help with that."
    assert r.error.startswith("The model refused, so there is no")
