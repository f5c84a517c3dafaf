"""Dataset loading: formats, file types, error messages, dropping, examples, split, CLI.

Run: python -m pytest tests/unit/test_data.py
"""

from __future__ import annotations

import argparse
import csv
import json

import pytest

from workbench import data, paths
from workbench.config import DataCfg
from workbench.errors import DataError, path_text

SAMPLES = ["identity.jsonl", "alpaca_sample.jsonl", "sharegpt_sample.json",
           "prompt_completion_sample.csv"]


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def write_csv(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


def S(text):
    return {"role": "system", "content": text}


def load(path, **kw):
    return data.load(DataCfg(path=str(path), **kw))


def error(path, **kw) -> str:
    with pytest.raises(DataError) as e:
        load(path, **kw)
    return str(e.value)


# -- formats and file types -----------------------------------------------------------------

def test_alpaca_jsonl_with_input_system_history(tmp_path):
    f = jsonl(tmp_path / "a.jsonl", [
        {"instruction": "Translate", "input": "hello", "output": "bonjour"},
        {"instruction": "And now?", "output": "merci", "system": "Be brief.",
         "history": [["Say thanks", "thanks"]]},
    ])
    got = load(f)
    assert got.format == "alpaca" and got.dropped == 0 and got.files == [str(f)]
    assert got.columns == ["instruction", "input", "output", "system", "history"]
    assert got.rows[0] == {"messages": [U("Translate\n\nhello"), A("bonjour")]}
    assert got.rows[1] == {"messages": [S("Be brief."), U("Say thanks"), A("thanks"),
                                        U("And now?"), A("merci")]}


def test_alpaca_json_array_csv_and_parquet_agree(tmp_path):
    rows = [{"instruction": "Q1", "input": "", "output": "A1"},
            {"instruction": "Q2", "input": "x", "output": "A2"}]
    (tmp_path / "a.json").write_text(json.dumps(rows), encoding="utf-8")
    write_csv(tmp_path / "a.csv", ["instruction", "input", "output"],
              [list(r.values()) for r in rows])
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    want = [{"messages": [U("Q1"), A("A1")]}, {"messages": [U("Q2\n\nx"), A("A2")]}]
    for name in ("a.json", "a.csv", "a.parquet"):
        got = load(tmp_path / name)
        assert (got.format, got.rows) == ("alpaca", want), name


def test_sharegpt_roles_system_and_tools(tmp_path):
    tools = [{"name": "weather", "parameters": {"city": "string"}}]
    f = tmp_path / "s.json"
    f.write_text(json.dumps([{
        "system": "You are helpful.", "tools": json.dumps(tools),
        "conversations": [
            {"from": "human", "value": "Weather in Paris?"},
            {"from": "function_call", "value": '{"name": "weather"}'},
            {"from": "observation", "value": "sunny"},
            {"from": "gpt", "value": "It is sunny."}]}]), encoding="utf-8")
    got = load(f)
    assert got.format == "sharegpt"
    msgs = got.rows[0]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "assistant"]
    assert msgs[0]["content"].startswith("You are helpful.")
    assert '"weather"' in msgs[0]["content"] and "tools" in msgs[0]["content"]


def test_sharegpt_in_parquet_with_list_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    conv = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]
    pq.write_table(pa.Table.from_pylist([{"conversations": conv}]), tmp_path / "s.parquet")
    assert load(tmp_path / "s.parquet").rows == [{"messages": [U("hi"), A("hello")]}]


def test_messages_format_with_text_parts(tmp_path):
    f = jsonl(tmp_path / "m.jsonl", [
        {"messages": [S("sys"), U("hi"), A("hello")]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}, A("a")]},
    ])
    got = load(f)
    assert got.format == "messages"
    assert got.rows == [{"messages": [S("sys"), U("hi"), A("hello")]},
                        {"messages": [U("q"), A("a")]}]


def test_prompt_completion_strings_and_message_lists(tmp_path):
    f = write_csv(tmp_path / "pc.csv", ["prompt", "completion"], [["2+2?", "4"]])
    assert load(f).rows == [{"messages": [U("2+2?"), A("4")]}]
    g = jsonl(tmp_path / "pc.jsonl", [{"prompt": [S("s"), U("q")], "completion": [A("a")]}])
    got = load(g)
    assert got.format == "prompt_completion"
    assert got.rows == [{"messages": [S("s"), U("q"), A("a")]}]


def test_text_format_and_numbers_as_text(tmp_path):
    f = jsonl(tmp_path / "t.jsonl", [{"text": "Once upon a time"}, {"text": 42}])
    got = load(f)
    assert got.format == "text" and got.rows == [{"text": "Once upon a time"}, {"text": "42"}]


def test_jsonl_content_in_a_json_file_and_bom(tmp_path):
    f = tmp_path / "lines.json"
    f.write_bytes(b"\xef\xbb\xbf" + b'{"text": "a"}\n{"text": "b"}\n')
    assert load(f).rows == [{"text": "a"}, {"text": "b"}]
    g = tmp_path / "bom.csv"
    g.write_bytes(b"\xef\xbb\xbfprompt,completion\nq,a\n")
    assert load(g).columns == ["prompt", "completion"]


# -- overrides ------------------------------------------------------------------------------

def test_column_mapping_and_forced_format(tmp_path):
    f = jsonl(tmp_path / "qa.jsonl", [{"question": "Q", "answer": "A", "text": "ignored"}])
    # auto would pick "text"; the mapping plus a forced format reads question/answer
    assert load(f).format == "text"
    got = load(f, format="alpaca", columns={"instruction": "question", "output": "answer"})
    assert got.format == "alpaca" and got.rows == [{"messages": [U("Q"), A("A")]}]
    # a mapping alone is enough when no other format matches first
    g = jsonl(tmp_path / "qa2.jsonl", [{"q": "Q", "a": "A"}])
    assert load(g, columns={"prompt": "q", "completion": "a"}).format == "prompt_completion"


def test_placeholders_fill_all_strings_and_report_unfilled(tmp_path):
    f = jsonl(tmp_path / "p.jsonl", [
        {"conversations": [{"from": "human", "value": "Who is {{name}}?"},
                           {"from": "gpt", "value": "I am {{ name }} by {{author}}, {{x}}."}]}])
    got = load(f, placeholders={"name": "Nova", "author": "Workbench Labs"})
    assert got.rows[0]["messages"] == [U("Who is Nova?"),
                                       A("I am Nova by Workbench Labs, {{x}}.")]
    assert got.unfilled_placeholders == ["x"]


def test_several_files_load_as_one(tmp_path):
    a = jsonl(tmp_path / "a.jsonl", [{"instruction": "1", "output": "one"}])
    b = write_csv(tmp_path / "b.csv", ["instruction", "output"], [["2", "two"]])
    got = load(f"{a}, {b}")
    assert got.files == [str(a), str(b)] and len(got.rows) == 2
    t = jsonl(tmp_path / "t.jsonl", [{"text": "x"}])
    msg = error(f"{a},{t}")
    assert "t.jsonl" in msg and "text" in msg and "alpaca" in msg


def test_max_samples_is_a_seeded_subset_in_file_order(tmp_path):
    f = jsonl(tmp_path / "t.jsonl", [{"text": f"row {i}"} for i in range(50)])
    one = load(f, max_samples=10, seed=1).rows
    assert one == load(f, max_samples=10, seed=1).rows
    assert one != load(f, max_samples=10, seed=2).rows
    nums = [int(r["text"].split()[1]) for r in one]
    assert len(nums) == 10 and nums == sorted(nums)


# -- dropping empty rows --------------------------------------------------------------------

def test_empty_rows_are_dropped_and_counted(tmp_path):
    f = jsonl(tmp_path / "d.jsonl", [
        {"instruction": "ok", "output": "fine"},
        {"instruction": "q", "output": "   "},
        {"instruction": "", "input": " ", "output": "a"},
        {"instruction": "", "output": ""},
        {"instruction": "q2", "output": None},
    ])
    got = load(f)
    assert len(got.rows) == 1 and got.dropped == 4
    assert got.drop_reasons == {"empty answer": 2, "empty prompt": 1, "empty row": 1}


def test_conversations_without_answers_are_dropped_and_trailing_turns_trimmed(tmp_path):
    f = jsonl(tmp_path / "m.jsonl", [
        {"messages": [U("only a question")]},
        {"messages": [U("q"), A("a"), U("unanswered")]},
    ])
    got = load(f)
    assert got.drop_reasons == {"no answer": 1}
    assert got.rows == [{"messages": [U("q"), A("a")]}]


def test_all_rows_empty_is_an_error(tmp_path):
    f = write_csv(tmp_path / "e.csv", ["prompt", "completion"], [["", ""], ["q", " "]])
    msg = error(f)
    assert "e.csv" in msg and "no usable rows" in msg and "empty answer: 1" in msg


def test_empty_file_is_an_error(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    assert "empty.jsonl" in error(tmp_path / "empty.jsonl")


# -- bad input: each message names the file and the place --------------------------------

def test_invalid_json_line_names_line_and_column(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"text": "a"}\n\n{"text": "b",}\n', encoding="utf-8")
    msg = error(f)
    assert "bad.jsonl" in msg and "line 3" in msg and "column 14" in msg
    assert "invalid JSON" in msg


def test_invalid_json_array_names_line_and_column(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('[\n  {"text": "a"},\n  {"text" "b"}\n]', encoding="utf-8")
    msg = error(f)
    assert "bad.json" in msg and "line 3" in msg and "column 11" in msg


def test_non_utf8_names_byte_and_line(tmp_path):
    f = tmp_path / "latin.jsonl"
    first = '{"text": "fine"}\n'.encode()
    f.write_bytes(first + '{"text": "caf\xe9"}\n'.encode("latin-1"))
    msg = error(f)
    byte = len(first) + len('{"text": "caf')
    assert "latin.jsonl" in msg and "encoding" in msg and "UTF-8" in msg
    assert f"byte {byte}" in msg and "line 2" in msg
    g = tmp_path / "latin.csv"
    g.write_bytes(b"text\nok\ncaf\xe9\n")
    msg = error(g)
    assert "latin.csv" in msg and "byte 11" in msg and "line 3" in msg
    h = tmp_path / "latin.json"
    h.write_bytes(b'[\n{"text": "caf\xe9"}]')
    assert "line 2" in error(h) and "encoding" in error(h)


def test_utf16_file_says_encoding(tmp_path):
    f = tmp_path / "u16.csv"
    f.write_bytes("text\nhello\n".encode("utf-16"))
    msg = error(f)
    assert "u16.csv" in msg and "encoding" in msg and "UTF-16" in msg


def test_unrecognised_format_lists_columns_and_expected_formats(tmp_path):
    f = jsonl(tmp_path / "odd.jsonl", [{"question": "q", "answer": "a"}])
    msg = error(f)
    assert "odd.jsonl" in msg and "question, answer" in msg
    # a concrete mapping hint when one fits (the message stays within one short line)
    assert "look like alpaca" in msg and "{instruction: question, output: answer}" in msg
    g = jsonl(tmp_path / "odder.jsonl", [{"foo": "q", "bar": "a"}])
    msg = error(g)
    assert "odder.jsonl" in msg and "foo, bar" in msg
    for fmt in ("alpaca (instruction, output)", "sharegpt (conversations)", "messages, ",
                "prompt_completion (prompt, completion)", "text"):
        assert fmt in msg
    assert len(msg) <= 300 and not msg.endswith("…")


def test_forced_format_names_missing_column(tmp_path):
    f = jsonl(tmp_path / "t.jsonl", [{"text": "x"}])
    msg = error(f, format="alpaca")
    assert "t.jsonl" in msg and "'instruction'" in msg and "'output'" in msg


def test_wrong_shape_names_row_and_field(tmp_path):
    rows = [{"instruction": "q", "output": "a"}] * 6 + [{"instruction": "q", "output": ["a"]}]
    msg = error(jsonl(tmp_path / "shape.jsonl", rows))
    # the path as messages show it: a long one keeps its end (parallel workers' temp
    # folders are longer)
    assert msg == (f"{path_text(tmp_path / 'shape.jsonl')}: row 7 (line 7): field 'output' "
                   "should be text, got a list")
    msg = error(jsonl(tmp_path / "m.jsonl", [{"instruction": "q", "output": "a"},
                                             {"instruction": "q"}]))
    assert "m.jsonl: row 2 (line 2)" in msg and "missing field 'output'" in msg
    mapped = jsonl(tmp_path / "mapped.jsonl", [{"instruction": "q", "answer": {"x": 1}}])
    msg = error(mapped, columns={"output": "answer"})
    assert "row 1" in msg and "field 'answer' should be text, got an object" in msg


def test_wrong_shape_in_conversations_and_history(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps([{"conversations": [{"from": "human", "value": "q"},
                                                {"from": "bot", "value": "a"}]}]))
    msg = error(f)
    assert "c.json" in msg and "row 1" in msg and "'conversations' item 2" in msg
    assert "unknown role 'bot'" in msg
    g = jsonl(tmp_path / "h.jsonl", [{"instruction": "q", "output": "a", "history": [["x"]]}])
    assert "field 'history' item 1 should be a [user, answer] pair" in error(g)
    h = jsonl(tmp_path / "n.jsonl", [{"messages": "hello"}])
    assert "field 'messages' should be a list of messages, got text" in error(h)
    k = jsonl(tmp_path / "k.jsonl", [["not", "an", "object"]])
    assert "row 1 (line 1): expected an object" in error(k)


def test_a_spreadsheet_is_named_as_such_before_file_not_found(tmp_path):
    # issue 14: "C:/…/faq.xlsx" was "C:faq.xlsx: file not found"
    from workbench.data.files import resolve_files
    from workbench.ui import widgets
    for typed in ("C:/Users/ada/Documents/faq.xlsx", "C:\\Users\\ada\\faq.xlsx",
                  str(tmp_path / "faq.XLS")):
        with pytest.raises(DataError) as info:
            resolve_files(typed)
        msg = str(info.value)
        assert "spreadsheet files" in msg and "save it as CSV" in msg and "file not found" \
            not in msg, msg
    (tmp_path / "there.xlsx").write_bytes(b"PK")
    with pytest.raises(DataError, match="save it as CSV"):
        resolve_files(str(tmp_path / "there.xlsx"))
    # what the page shows keeps the path as the user typed it
    with pytest.raises(DataError) as info:
        resolve_files("C:/Users/ada/Documents/faq.xlsx")
    assert widgets.error_text(info.value).startswith("C:/Users/ada/Documents/faq.xlsx: ")


def test_file_level_problems(tmp_path):
    assert "nope.jsonl: file not found" in error(tmp_path / "nope.jsonl")
    (tmp_path / "x.txt").write_text("hi")
    assert "unsupported file type '.txt'" in error(tmp_path / "x.txt")
    (tmp_path / "obj.json").write_text('{"text": "a", "more": 1}')
    assert "single object" in error(tmp_path / "obj.json")
    write_csv(tmp_path / "wide.csv", ["prompt", "completion"], [["q", "a", "extra"]])
    msg = error(tmp_path / "wide.csv")
    assert "row 1 (line 2)" in msg and "3 cells" in msg
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    assert "bad.parquet: not a readable Parquet file" in error(tmp_path / "bad.parquet")


def test_failed_load_writes_nothing(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text("{oops\n", encoding="utf-8")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    error(f)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


# -- examples and split ---------------------------------------------------------------------

def test_to_examples_expands_every_assistant_turn():
    row = {"messages": [S("sys"), U("q1"), A("a1"), U("q2"), A(""), U("q3"), A("a3")]}
    got = data.to_examples([row, {"text": "plain"}], completion_only=True)
    assert got == [
        {"prompt": [S("sys"), U("q1")], "completion": [A("a1")]},
        {"prompt": [S("sys"), U("q1"), A("a1"), U("q2"), A(""), U("q3")],
         "completion": [A("a3")]},
        {"text": "plain"},
    ]
    full = data.to_examples([row], completion_only=False)
    assert full == [{"messages": row["messages"]}]
    assert full[0]["messages"] is not row["messages"]  # a copy: trainers may mutate


def test_split_is_deterministic_and_keeps_a_train_row():
    items = list(range(20))
    train, ev = data.split(items, 0.2, seed=3)
    assert (train, ev) == data.split(items, 0.2, seed=3)
    assert len(ev) == 4 and sorted(train + ev) == items and train == sorted(train)
    assert data.split(items, 0.2, seed=4) != (train, ev)
    assert data.split(items, 0.0, seed=3) == (items, [])
    assert data.split([1, 2, 3, 4], 0.5, seed=0) == ([1, 2, 3, 4], [])  # too few to hold out
    train, ev = data.split(list(range(5)), 0.5, seed=0)
    assert len(ev) == 2 and len(train) == 3
    train, ev = data.split(list(range(5)), 0.01, seed=0)
    assert len(ev) == 1  # a positive fraction holds out at least one row


# -- inspect and CLI ------------------------------------------------------------------------

def test_inspect_summarises_without_holding_rows(tmp_path):
    f = jsonl(tmp_path / "i.jsonl", [{"instruction": f"q{i}", "output": f"a{i}"}
                                     for i in range(8)] + [{"instruction": "q", "output": ""}])
    info = data.inspect(str(f))
    assert info["format"] == "alpaca" and info["rows"] == 8 and info["dropped"] == 1
    assert info["drop_reasons"] == {"empty answer": 1} and info["files"] == [str(f)]
    assert info["columns"] == ["instruction", "output"] and info["answers"] == 8
    assert len(info["preview"]) == 5 and info["preview"][0] == {"messages": [U("q0"), A("a0")]}
    assert data.inspect(DataCfg(path=str(f), format="alpaca"))["rows"] == 8
    json.dumps(info)  # the CLI prints it as JSON


def test_too_few_rows_are_warned_about(tmp_path, capsys):
    # issue 14: a 5-row dataset trained without a word of warning
    five = jsonl(tmp_path / "five.jsonl", [{"instruction": f"q{i}", "output": f"a{i}"}
                                          for i in range(5)])
    assert data.inspect(str(five))["few_rows"] == 5
    assert data.few_rows(20) is None and data.few_rows(19) == 19
    assert data.few_rows(500, max_samples=10) == 10  # what training will use
    assert cli(["data", "inspect", str(five), "--no-tokens"]) == 0
    assert "5 rows: too few to learn from reliably; 50+ is a good start" in \
        capsys.readouterr().out
    from workbench.ui.i18n import render
    from workbench.ui.tabs import dataset
    shown = render(dataset.summary_markdown(data.inspect(str(five))))
    assert "⚠ **5** rows: too few to learn from reliably" in shown
    assert "too few" not in render(dataset.summary_markdown(
        data.inspect(str(paths.samples_dir() / "identity.jsonl"))))


def cli(argv):
    parser = argparse.ArgumentParser()
    from workbench.cli import data as cli_data
    cli_data.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_inspect_human_and_json(tmp_path, capsys):
    f = write_csv(tmp_path / "c.csv", ["prompt", "completion"], [["Who?", "Nova."]])
    assert cli(["data", "inspect", str(f), "--no-tokens"]) == 0
    out = capsys.readouterr().out
    assert "prompt_completion" in out and "1 usable" in out and "Nova." in out
    assert cli(["data", "inspect", str(f), "--no-tokens", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 1
    with pytest.raises(DataError):
        cli(["data", "inspect", str(tmp_path / "missing.csv")])


# -- shipped samples ----------------------------------------------------------------------

@pytest.mark.parametrize("name", SAMPLES)
def test_shipped_samples_load(name):
    got = data.load(DataCfg(path=f"data/{name}"))  # relative: found in the project folder
    assert got.dropped == 0 and len(got.rows) >= 10
    assert data.to_examples(got.rows, completion_only=True)


def test_identity_sample_teaches_nova_in_english_and_chinese():
    rows = [json.loads(line) for line in
            (paths.samples_dir() / "identity.jsonl").read_text(encoding="utf-8").splitlines()]
    assert 60 <= len(rows) <= 90
    assert all(set(r) == {"instruction", "input", "output"} for r in rows)
    assert all("Nova" in r["output"] for r in rows)
    zh = [r for r in rows if any("\u4e00" <= ch <= "\u9fff" for ch in r["instruction"])]
    assert 0.25 <= len(zh) / len(rows) <= 0.4
    assert any(r["instruction"] == "Who are you?" for r in rows)
    assert sum("Workbench Labs" in r["output"] for r in rows) >= len(rows) // 2


def test_sharegpt_sample_has_system_and_multi_turn():
    rows = data.load(DataCfg(path="data/sharegpt_sample.json")).rows
    assert any(r["messages"][0]["role"] == "system" for r in rows)
    assert any(sum(m["role"] == "assistant" for m in r["messages"]) > 1 for r in rows)
