"""The test harness's own helpers (llmcells.testing), which the kernel and notebook tests read
their cells' output through."""

from __future__ import annotations

from nbformat.v4 import new_output

from llmcells.testing import output_text


def test_one_print_sent_in_two_stream_messages_reads_as_printed():
    """ipykernel's flush timer can fire between print()'s writes; the two pieces were read as
    "json:\\n {'a': 1}" and a notebook test that looked for "json: {'a': 1}" failed in CI."""
    outputs = [new_output("stream", name="stdout", text="json:"),
               new_output("stream", name="stdout", text=" {'a': 1}\n")]
    assert output_text(outputs) == "json: {'a': 1}\n"


def test_other_outputs_and_another_stream_stay_on_lines_of_their_own():
    outputs = [new_output("stream", name="stdout", text="a"),
               new_output("stream", name="stderr", text="warn"),
               new_output("display_data", data={"text/plain": "card", "text/html": "<b>card</b>"}),
               new_output("stream", name="stdout", text="b"),
               new_output("error", ename="ValueError", evalue="bad", traceback=[])]
    assert output_text(outputs).split("\n") == ["a", "warn", "card", "b", "ValueError: bad"]
