"""The input boundary (issue 13): every reader of user input returns, or raises the user
error (WorkbenchError) with one short printable line, and writes nothing.

Property tests (hypothesis) drive each reader with generated and mutated input: data files
of each format (.jsonl, .json, .csv, .parquet), preset YAML files, `--set` overrides,
Preset.from_dict, data and preset paths, and the CLI's `data inspect` / `presets validate`.
Each checks the contract (`holds`): the call returns a value the CLI can print, or raises a
WorkbenchError whose message and `error:` line are one line of at most 300 characters with
no control characters; and the sandbox holding the inputs (also the temp folder, TMPDIR)
and WORKBENCH_HOME are unchanged.
The budget is fixed (EXAMPLES, 10,000 inputs; `database=None`, so nothing is stored);
measure it with

    .venv/bin/python -m pytest tests/unit/test_input_boundary.py --hypothesis-show-statistics

Below them, one explicit test per class of failure issue 13 found, and the `--json` test:
stdout parses as JSON for every command with the flag that runs without a model.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import tempfile
import threading
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from workbench import data, errors, paths, presets
from workbench.cli import build_parser, main
from workbench.config import SECTIONS, DataCfg, Preset, iter_fields
from workbench.errors import DataError, PresetError, WorkbenchError, error_line

# examples per property test; the sum is the budget (≥ 10,000)
EXAMPLES = {"jsonl": 1700, "json": 800, "csv": 900, "parquet": 250, "parquet_bytes": 800,
            "yaml": 1500, "set": 2290, "from_dict": 600, "paths": 1100, "cli": 60}
assert sum(EXAMPLES.values()) >= 10_000


def budget(name: str):
    # BOUNDARY_SCALE=0.1 for a quick look, =10 for a long hunt; the suite runs at 1
    n = max(1, round(EXAMPLES[name] * float(os.environ.get("BOUNDARY_SCALE", "1"))))
    return settings(max_examples=n, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


# -- the contract -------------------------------------------------------------------------

UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def assert_one_line(text: str) -> None:
    assert text, "an empty message"
    assert len(text) <= errors.MAX_MESSAGE, f"{len(text)} characters: {text[:120]}"
    assert not UNSAFE.search(text), f"a control character in {text!r}"
    text.encode("utf-8")  # no lone surrogate: printing it cannot raise


ROUND_TRIPPED: set[str] = set()


def printable_result(result) -> None:
    """What a reader returns must be printable by the CLI (`--json` and plain)."""
    if isinstance(result, Preset):
        if repr(result) in ROUND_TRIPPED:  # most are the default preset: once is enough
            return
        text = presets.to_yaml(result)
        text.encode("utf-8")
        assert presets.parse_yaml(text, "again.yaml") == result, "a valid preset round-trips"
        ROUND_TRIPPED.add(repr(result))
    elif result is not None:
        json.dumps(result, ensure_ascii=False, default=str).encode("utf-8")


class Box:
    """The tmp folder the inputs are written to; with WORKBENCH_HOME, what must not change."""

    def __init__(self, root: Path):
        self.root = root

    def folder(self) -> Path:
        # one folder, files overwritten: a fresh folder per example would spend more time
        # in mkdir and rmdir than in the readers
        path = self.root / "in"
        path.mkdir(exist_ok=True)
        return path

    def write(self, name: str, content: bytes) -> Path:
        path = self.folder() / name
        path.unlink(missing_ok=True)  # on ext4, truncating a file flushes it: 5x slower
        path.write_bytes(content)
        return path

    def snapshot(self) -> dict:
        """Every path under the sandbox and WORKBENCH_HOME with its size and mtime."""
        out: dict = {}

        def walk(folder: str) -> None:
            with os.scandir(folder) as entries:
                for e in entries:
                    st_ = e.stat(follow_symlinks=False)
                    out[e.path] = (st_.st_size, st_.st_mtime_ns)
                    if e.is_dir(follow_symlinks=False):
                        walk(e.path)
        for base in (str(self.root), os.environ["WORKBENCH_HOME"]):
            out[base] = os.path.isdir(base)
            if out[base]:
                walk(base)
        return out


def holds(box: Box, call, printed: bool = True) -> object:
    """Run one reader call under the contract; returns its result (None after an error).
    `printed`: the result is what the CLI prints, so it must encode."""
    before = box.snapshot()
    try:
        result = call()
    except WorkbenchError as exc:
        assert_one_line(str(exc))
        assert_one_line(error_line(exc))
        assert error_line(exc).startswith("error: ")
        result = None
    else:
        if printed:
            printable_result(result)
    after = box.snapshot()
    assert after == before, f"wrote: {sorted(set(after) ^ set(before))[:5]}"
    return result


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    """The sandbox: inputs in in/, odd files in special/, and tmp/ as the temp folder
    (TMPDIR), so a temp file a reader writes shows in the snapshot too."""
    root = tmp_path_factory.mktemp("boundary")
    special = root / "special"
    special.mkdir()
    os.mkfifo(special / "fifo.jsonl")
    os.mkfifo(special / "fifo.yaml")
    (special / "folder.jsonl").mkdir()
    (special / "loop.jsonl").symlink_to(special / "loop.jsonl")
    (special / "ok.jsonl").write_text('{"text": "hi"}\n')
    (root / "tmp").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(root / "tmp"))
        mp.setattr(tempfile, "tempdir", str(root / "tmp"))
        yield Box(root)


# -- strategies ---------------------------------------------------------------------------

NASTY = ["", " ", "\n", "\r\n", "\x00", "\x1b[2J\x1b[31m", "\u2028", "\ud800", "a\udfffb",
         "\ufeff", "\u202e", "\nerror: fake", "{{name}}", "{{ x }}", "9" * 5000,
         "-" + "9" * 1200, "1e400", "-1e400", "1" + "0" * 400 + ".0", "NaN", "Infinity",
         "[" * 150, "{" * 150, "[[" * 60 + "]]" * 60, "\\", '"', ",", "~nosuchuser/x", "é",
         "日本語", "🙂", "a" * 400, '[["q", "a"]]', '[{"role": "user", "content": "x"}]',
         '{"a": ' * 120 + "1" + "}" * 120, "[1e400]", "[" + "1" * 5000 + "]", '["\\ud800"]',
         "!!int abc", "2001-13-45"]
ROLES = ["user", "assistant", "system", "human", "gpt", "tool", "bot", "", "USER", None, 3]


def pick(values: list):
    """sampled_from by index: hypothesis prints a strategy's repr in its statistics, and
    these lists hold strings thousands of characters long."""
    return st.integers(0, len(values) - 1).map(lambda i: values[i])


nasty = pick(NASTY)
text = st.one_of(st.text(max_size=12), nasty,
                 st.builds(lambda a, b, c: a + b + c, st.text(max_size=4), nasty,
                           st.text(max_size=4)))
key = st.one_of(st.sampled_from(["instruction", "input", "output", "system", "history",
                                 "conversations", "messages", "prompt", "completion", "text",
                                 "tools", "role", "content", "from", "value", "type"]), text)
scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), text,
                   pick([10 ** 400, -(10 ** 1001), 2 ** 64]))
value = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(key, inner, max_size=3)), max_leaves=4)
message = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(ROLES), "content": st.one_of(text, value)}),
    st.fixed_dictionaries({"from": st.sampled_from(ROLES), "value": st.one_of(text, value)}),
    st.fixed_dictionaries({"role": st.sampled_from(ROLES), "content": st.lists(
        st.fixed_dictionaries({"type": st.sampled_from(["text", "image"]), "text": text}),
        max_size=3)}),
    value)
field = st.one_of(text, text, value)
messages = st.one_of(st.lists(message, max_size=3), field)
row = st.one_of(
    st.fixed_dictionaries({"instruction": field, "output": field}, optional={
        "input": field, "system": field, "tools": field,
        "history": st.one_of(st.lists(st.lists(field, min_size=2, max_size=2), max_size=3),
                             field)}),
    st.fixed_dictionaries({"conversations": messages}, optional={"system": field,
                                                                 "tools": field}),
    st.fixed_dictionaries({"messages": messages}, optional={"system": field}),
    st.fixed_dictionaries({"prompt": st.one_of(field, messages),
                           "completion": st.one_of(field, messages)}),
    st.fixed_dictionaries({"text": field}),
    st.dictionaries(key, field, max_size=4),
    value)


def _dump(obj, ascii_only: bool) -> bytes:
    # ensure_ascii=False writes a lone surrogate as such: surrogatepass makes it bad UTF-8
    return json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


RAW_LINES = [b"[" * n + b"]" * n for n in (99, 100, 101, 950, 5000)] + [
    b'{"text": ' + b"9" * 5000 + b"}", b'{"text": 1e400}', b'{"text": -1e999}',
    b'{"text": "\\ud800"}', b'{"a\\nerror: x": "y"}', b'{"text": NaN}', b"{oops", b"\xff\xfe",
    b'{"instruction": "q", "output": "a", "history": ' + b"[" * 200 + b"]" * 200 + b"}",
    b'{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}], '
    b'"tools": ' + b"[" * 90 + b"]" * 90 + b"}", b"\x00" * 10, b"\xef\xbb\xbf{}", b""]
line = st.one_of(st.builds(_dump, row, st.booleans()), pick(RAW_LINES),
                 st.binary(max_size=40))


@st.composite
def mutated(draw, content: bytes) -> bytes:
    """`content` with a few bytes replaced, inserted or deleted."""
    out = bytearray(content)
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(out)))
        op = draw(st.sampled_from(["insert", "replace", "delete"]))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if op == "insert":
            out[pos:pos] = chunk
        elif op == "replace":
            out[pos:pos + len(chunk)] = chunk
        else:
            del out[pos:pos + len(chunk)]
    return bytes(out)


def contract_for(box: Box, name: str, content: bytes, **cfg):
    path = box.write(name, content)
    holds(box, lambda: data.inspect(DataCfg(path=str(path), **cfg)))


# -- property tests: data files -------------------------------------------------------------

@budget("jsonl")
@given(lines=st.lists(line, max_size=3), mutate=st.booleans(), data_=st.data())
def test_jsonl_files_hold_the_contract(box, lines, mutate, data_):
    content = b"\n".join(lines) + b"\n"
    if mutate:
        content = data_.draw(mutated(content))
    contract_for(box, "x.jsonl", content)


@budget("json")
@given(rows=st.one_of(st.lists(row, max_size=3), row), ascii_only=st.booleans(),
       raw=st.one_of(st.none(), pick(RAW_LINES)), data_=st.data())
def test_json_files_hold_the_contract(box, rows, ascii_only, raw, data_):
    content = raw if raw is not None else _dump(rows, ascii_only)
    if data_.draw(st.booleans()):
        content = data_.draw(mutated(content))
    contract_for(box, "x.json", content)


cell = st.one_of(text, nasty, st.builds(lambda v: json.dumps(v), value))


@budget("csv")
@given(header=st.lists(key, min_size=1, max_size=4),
       cells=st.lists(st.lists(cell, max_size=4), max_size=3), data_=st.data())
def test_csv_files_hold_the_contract(box, header, cells, data_):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(cells)
    content = buf.getvalue().encode("utf-8", "surrogatepass")
    if data_.draw(st.booleans()):
        content = data_.draw(mutated(content))
    columns = data_.draw(st.one_of(st.just({}), st.dictionaries(
        st.sampled_from(["output", "instruction", "history", "messages", "text"]),
        st.sampled_from(header), max_size=2)))
    contract_for(box, "x.csv", content, columns=columns)


def _arrow_column(draw):
    import pyarrow as pa
    n = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["text", "binary", "int", "float", "messages", "nested",
                                 "null", "timestamp", "map", "json"]))
    if kind == "text":
        vals = draw(st.lists(st.one_of(st.none(), text), min_size=n, max_size=n))
        vals = [v if v is None or not re.search("[\ud800-\udfff]", v) else "x" for v in vals]
        return pa.array(vals, pa.string())
    if kind == "json":
        return pa.array([json.dumps(v) for v in draw(st.lists(value, min_size=n, max_size=n))])
    if kind == "binary":
        return pa.array(draw(st.lists(st.binary(max_size=10), min_size=n, max_size=n)))
    if kind == "int":
        return pa.array(draw(st.lists(st.integers(-2**63, 2**63 - 1), min_size=n, max_size=n)))
    if kind == "float":
        return pa.array(draw(st.lists(st.floats(), min_size=n, max_size=n)))
    if kind == "messages":
        msg = st.fixed_dictionaries({"from": st.sampled_from(["human", "gpt", "bot"]),
                                     "value": st.text(max_size=10)})
        return pa.array(draw(st.lists(st.lists(msg, max_size=3), min_size=n, max_size=n)))
    if kind == "nested":
        depth = draw(st.sampled_from([1, 3, 50, 101, 150]))
        t = pa.string()
        for _ in range(depth):
            t = pa.list_(t)
        return pa.array([None] * n, t)
    if kind == "null":
        return pa.array([None] * n)
    if kind == "timestamp":
        return pa.array(draw(st.lists(st.integers(0, 2**40), min_size=n, max_size=n)),
                        pa.timestamp("s"))
    return pa.array([[("k", "v")]] * n, pa.map_(pa.string(), pa.string()))


@st.composite
def arrow_table(draw):
    import pyarrow as pa
    names = draw(st.lists(key.map(lambda k: re.sub("[\ud800-\udfff]", "?", k)),
                          min_size=1, max_size=4, unique=True))
    cols = [_arrow_column(draw) for _ in names]
    n = min(len(c) for c in cols)
    return pa.table({name: c.slice(0, n) for name, c in zip(names, cols)})


def _parquet_bytes(table, compression="snappy", row_group_size=None) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=compression, row_group_size=row_group_size,
                   data_page_size=256)
    return sink.getvalue().to_pybytes()


@budget("parquet")
@given(table=arrow_table(), compression=st.sampled_from(["none", "snappy", "zstd"]))
def test_parquet_tables_hold_the_contract(box, table, compression):
    contract_for(box, "x.parquet", _parquet_bytes(table, compression))


def _sample_parquet() -> bytes:
    import pyarrow as pa
    n = 200
    table = pa.table({
        "conversations": [[{"from": "human", "value": f"q{i}"},
                           {"from": "gpt", "value": "a" * (i % 40)}] for i in range(n)],
        "system": [f"system {i}" for i in range(n)]})
    return _parquet_bytes(table, "none", row_group_size=50)


SAMPLE_PARQUET = {c: None for c in ("none",)}


@budget("parquet_bytes")
@given(data_=st.data())
def test_damaged_parquet_bytes_hold_the_contract(box, data_):
    if SAMPLE_PARQUET["none"] is None:
        SAMPLE_PARQUET["none"] = _sample_parquet()
    good = SAMPLE_PARQUET["none"]
    # damage the pages (the footer is the last part) more often than the footer
    end = data_.draw(st.sampled_from([len(good) * 9 // 10, len(good)]))
    start = data_.draw(st.integers(4, end - 1))
    chunk = data_.draw(st.binary(min_size=1, max_size=24))
    content = good[:start] + chunk + good[start + len(chunk):]
    contract_for(box, "x.parquet", content)


# -- property tests: presets, --set, from_dict ----------------------------------------------

PRESET_TEXT = (paths.builtin_presets_dir() / "cpu-demo.yaml").read_text(encoding="utf-8")
DOTTED = [f"{s}.{k}" for s, k, _ in iter_fields()]
YAML_SNIPPETS = [
    "!!int abc", "!!float ''", "!!bool maybe", "!!timestamp bad", "2001-13-45", "!!int",
    "!!binary '%%%'", "!!set {a, b}", "!!omap [a, b]", "!!python/object:os.system x",
    "&a [*a]", "*undefined", "[" * 40 + "]" * 40, "{a: " * 40 + "1" + "}" * 40,
    "9" * 1500, "-" + "9" * 5000, "1.0e400", "-.inf", ".nan", "0x", "0b", "0o9", "1:99:aa",
    "!!str 1", "[1, 2", "{a: 1", "'unterminated", "\t- tab", "a: b: c", "? [a]\n: 1",
    "\x00", "\x1b[31m", "\u2028", '"\\ud800"', '"\\x1b"', "~", "null", "[]", "{}",
    "[q_proj, v_proj]", "{name: Nova}", "{output: answer}", "1e-3", "'10'", "true", "0",
]
BOMB = ('a: &a ["x","x","x","x","x","x","x","x","x"]\n'
        + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n"
                  for p, c in zip("abcdefgh", "bcdefghi")))
yaml_value = st.one_of(pick(YAML_SNIPPETS), text)


@st.composite
def preset_yaml(draw) -> bytes:
    how = draw(st.sampled_from(["edit", "dump", "text", "bytes", "snippet"]))
    if how == "edit":  # the real preset with lines replaced by bad ones
        lines = PRESET_TEXT.splitlines()
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(lines) - 1))
            indent = draw(st.sampled_from(["", "  "]))
            k = draw(st.one_of(st.sampled_from([d.split(".")[1] for d in DOTTED]), text))
            lines[i] = f"{indent}{k}: {draw(yaml_value)}"
        body = "\n".join(lines) + "\n"
    elif how == "dump":
        raw = draw(st.dictionaries(st.one_of(st.sampled_from(list(SECTIONS)), key),
                                   st.one_of(st.dictionaries(key, value, max_size=4), value),
                                   max_size=4))
        try:  # libyaml's emitter when there is one: the pure-Python one is slow
            body = yaml.dump(raw, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                             allow_unicode=draw(st.booleans()))
        except (yaml.YAMLError, UnicodeEncodeError):  # libyaml cannot write a surrogate
            body = ""
    elif how == "text":
        body = draw(st.text(max_size=80))
    elif how == "snippet":
        body = draw(pick(["", "# only a comment\n", BOMB, "---\n", "{}", "a: 1\n---\nb: 2\n"]
                         + YAML_SNIPPETS))
    else:
        return draw(mutated(PRESET_TEXT.encode()))
    return body.encode("utf-8", "surrogatepass")


@budget("yaml")
@given(content=preset_yaml(), overrides=st.lists(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(DOTTED), yaml_value), max_size=2))
def test_preset_files_hold_the_contract(box, content, overrides):
    path = box.write("p.yaml", content)
    # one call checks both: the overrides apply only once the file has loaded
    holds(box, lambda: presets.load(str(path), overrides or None))


override = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.one_of(st.sampled_from(DOTTED), text), yaml_value),
    text, st.sampled_from(["=", ".=", "a.b", "train.=1", "=1", ".x=1", "train.max_steps"]))


@budget("set")
@given(overrides=st.lists(override, min_size=1, max_size=3))
def test_set_overrides_hold_the_contract(box, overrides):
    holds(box, lambda: Preset().with_overrides(overrides))


def _deep(n: int):
    v: object = "x"
    for _ in range(n):
        v = [v]
    return v


ODD = [b"bytes", (1, 2), {1, 2}, frozenset(), float("inf"), float("nan"), object(),
       "\ud800", "a\nb", -0.0, 2 ** 31]
# built, not sampled: hypothesis reprs sampled values, and repr(10 ** 5000) raises, as does
# the repr of a list 3000 deep
huge = st.builds(lambda k: -(10 ** k) if k % 2 else 10 ** k, st.sampled_from([1001, 5000]))
DEEP = {n: _deep(n) for n in (50, 3000)}  # built once; the readers never change a value
deep = st.builds(lambda n, wrap: {"k": DEEP[n]} if wrap else DEEP[n],
                 st.sampled_from([50, 3000]), st.booleans())
py_value = st.recursive(st.one_of(scalar, st.sampled_from(ODD), huge, deep),
                        lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(key, st.integers()), inner,
                                                 max_size=3)), max_leaves=5)


@budget("from_dict")
@given(raw=st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(list(SECTIONS)), key, st.integers()),
                    st.one_of(st.dictionaries(st.one_of(st.sampled_from(
                        [d.split(".")[1] for d in DOTTED]), key), py_value, max_size=3),
                        py_value), max_size=3),
    py_value), as_dict=st.dictionaries(st.sampled_from(DOTTED), py_value, max_size=3))
def test_from_dict_and_dict_overrides_hold_the_contract(box, raw, as_dict):
    holds(box, lambda: Preset.from_dict(raw, "page"))
    holds(box, lambda: Preset().with_overrides(as_dict))


# -- property tests: paths and names -------------------------------------------------------

@budget("paths")
@given(name=st.one_of(
    text, st.builds(lambda t: "~" + t + "/x.jsonl", text),
    pick(["~nosuchuser/x.jsonl", "~/nope.jsonl", "~", "a\x00b.jsonl", "x" * 5000,
                     ("d/" * 3000) + "x.jsonl", "a.jsonl,b.csv", ",", " , ", "~nosuchuser",
                     "special/fifo.jsonl", "special/folder.jsonl", "special/loop.jsonl",
                     "special/ok.jsonl,special/fifo.jsonl", "special/fifo.yaml",
                     "x.txt", ".jsonl", "/", "/dev/null.jsonl", "/dev/zero", "\udc80.jsonl",
                     "cpu-demo", "cpu-demo\n", "../presets/cpu-demo", "\n"])))
def test_paths_and_names_hold_the_contract(box, name):
    cwd = os.getcwd()
    os.chdir(box.root)  # relative names find special/ (a FIFO, a folder, a symlink loop)
    try:
        holds(box, lambda: data.inspect(DataCfg(path=name)))
        holds(box, lambda: presets.load(name))
        holds(box, lambda: paths.resolve_data_path(name, DataError), printed=False)
    finally:
        os.chdir(cwd)


# -- property test: the command line ------------------------------------------------------

@budget("cli")
@given(lines=st.lists(line, min_size=1, max_size=4), content=preset_yaml())
def test_cli_prints_json_or_one_error_line(box, lines, content, capsys):
    folder = box.folder()
    box.write("x.jsonl", b"\n".join(lines))
    box.write("p.yaml", content)
    for argv in (["data", "inspect", str(folder / "x.jsonl"), "--no-tokens", "--json"],
                 ["data", "inspect", str(folder / "x.jsonl"), "--no-tokens"],
                 ["presets", "validate", str(folder / "p.yaml")]):
        capsys.readouterr()
        before = box.snapshot()
        rc = main(argv)
        out, err = capsys.readouterr()
        assert box.snapshot() == before
        assert rc in (0, 2), (argv, rc, err)
        if rc == 2:
            assert out == "" and err.count("\n") == 1 and err.startswith("error: ")
            assert_one_line(err.rstrip("\n"))
        else:
            assert err == ""
            if "--json" in argv:
                json.loads(out)
            assert not any(l.startswith("error:") for l in out.splitlines())


# == explicit tests: one per class of failure in issue 13 ==================================

def error_of(call, kind=WorkbenchError) -> str:
    with pytest.raises(kind) as info:
        call()
    msg = str(info.value)
    assert_one_line(msg)
    return msg


def load_file(path: Path):
    return lambda: data.load(DataCfg(path=str(path)))


def write_preset(tmp_path, body: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize("snippet, what", [
    ("!!int abc", "'abc' is not a valid !!int"), ("!!float ''", "'' is not a valid !!float"),
    ("!!bool maybe", "'maybe' is not a valid !!bool"),
    ("!!timestamp bad", "'bad' is not a valid !!timestamp"),
    ("2001-13-45", "month must be in 1..12")])
def test_yaml_constructor_errors_name_the_line(tmp_path, snippet, what):
    path = write_preset(tmp_path, f"train:\n  max_steps: 10\n  seed: {snippet}\n")
    msg = error_of(lambda: presets.load(str(path)), PresetError)
    assert "p.yaml: line 3, column 9: invalid YAML" in msg and what in msg
    # in --set the value stays text and the field's check names it
    msg = error_of(lambda: Preset().with_overrides([f"train.seed={snippet}"]), PresetError)
    assert msg.startswith("--set: train.seed: expected a number")


def test_huge_numbers_say_the_limit(tmp_path):
    big = "9" * 5000
    (tmp_path / "a.jsonl").write_text('{"text": %s}\n' % big)
    assert "limited to 1000 digits" in error_of(load_file(tmp_path / "a.jsonl"))
    (tmp_path / "b.json").write_text('[{"instruction": "q", "output": %s}]' % big)
    assert "b.json: a number of 5,000 digits" in error_of(load_file(tmp_path / "b.json"))
    (tmp_path / "c.csv").write_text(f'instruction,output,history\nq,a,"[[1, {big}]]"\n')
    msg = error_of(load_file(tmp_path / "c.csv"))
    assert "row 1 (line 2): field 'history'" in msg and "1000 digits" in msg
    (tmp_path / "d.jsonl").write_text('{"text": 1e400}\n')
    assert "1e400 is too large" in error_of(load_file(tmp_path / "d.jsonl"))
    path = write_preset(tmp_path, f"lora:\n  r: {big}\n")
    assert "line 2: a number of 5,000 characters" in error_of(lambda: presets.load(str(path)))
    path = write_preset(tmp_path, "train:\n  learning_rate: 1.0e400\n")
    assert "out of range" in error_of(lambda: presets.load(str(path)))
    assert "out of range" in error_of(lambda: Preset().with_overrides(["lora.r=1e400"]))
    assert "digits" in error_of(lambda: Preset.from_dict({"lora": {"r": 10 ** 5000}}))


def test_deep_nesting_says_the_limit(tmp_path):
    for n in (950, 1000, 100_000):
        (tmp_path / "a.jsonl").write_text('{"text": %s}\n' % ("[" * n + "]" * n))
        assert "nested more than 100 levels" in error_of(load_file(tmp_path / "a.jsonl"))
    (tmp_path / "b.json").write_text("[" * 5000 + "]" * 5000)
    assert "nested more than 100 levels" in error_of(load_file(tmp_path / "b.json"))
    deep = "[" * 2000 + "]" * 2000
    (tmp_path / "c.csv").write_text(f'instruction,output,history\nq,a,"{deep}"\n')
    assert "field 'history': nested more" in error_of(load_file(tmp_path / "c.csv"))
    path = write_preset(tmp_path, "train: " + "[" * 1000 + "]" * 1000 + "\n")
    assert "nested more than 32 levels" in error_of(lambda: presets.load(str(path)))
    # a deep value from the app (not YAML) is echoed to a bounded depth
    assert "got [[[...]]]" in error_of(lambda: Preset.from_dict({"lora": {
        "target_modules": _deep(5000)}}))
    # within the limit, a deep value is an ordinary shape error
    (tmp_path / "d.jsonl").write_text('{"messages": %s}\n' % ("[" * 99 + "]" * 99))
    assert "should be an object" in error_of(load_file(tmp_path / "d.jsonl"))


def test_damaged_parquet_pages_are_a_data_error(tmp_path):
    good = _sample_parquet()
    path = tmp_path / "x.parquet"
    path.write_bytes(good)
    assert data.load(DataCfg(path=str(path))).format == "sharegpt"
    damaged = bytearray(good)
    mid = len(good) // 2
    damaged[mid:mid + 64] = b"\xff" * 64  # a page in the middle; the footer is intact
    path.write_bytes(bytes(damaged))
    msg = error_of(load_file(path), DataError)
    assert "x.parquet" in msg and ("damaged Parquet data" in msg or "row " in msg)


def test_binary_tools_cell_is_a_data_error(tmp_path):
    import pyarrow as pa
    table = pa.table({"conversations": [[{"from": "human", "value": "q"},
                                         {"from": "gpt", "value": "a"}]],
                      "tools": pa.array([b"\x00\x01"], pa.binary())})
    (tmp_path / "t.parquet").write_bytes(_parquet_bytes(table))
    msg = error_of(load_file(tmp_path / "t.parquet"), DataError)
    assert "row 1: field 'tools' should be a list of tool specs or JSON text, got bytes" in msg


def test_lone_surrogate_is_refused_and_the_cli_prints_one_line(tmp_path, capsys):
    path = tmp_path / "s.jsonl"
    path.write_text('{"instruction": "q", "output": "a\\ud800b"}\n')
    msg = error_of(load_file(path), DataError)
    assert "field 'output' contains a lone surrogate \\ud800 at character 1" in msg
    assert main(["data", "inspect", str(path), "--no-tokens"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "lone surrogate" in err
    key = tmp_path / "k.jsonl"
    key.write_text('{"text": "hi", "\\udc00": 1}\n')
    assert "a column name contains a lone surrogate" in error_of(load_file(key))


def test_no_such_user_in_a_path(tmp_path, monkeypatch):
    msg = error_of(load_file(Path("~nosuchuser/x.jsonl")), DataError)
    assert msg.startswith("~nosuchuser/x.jsonl: '~nosuchuser' names no user")
    assert "names no user" in error_of(lambda: presets.load("~nosuchuser/p.yaml"), PresetError)
    monkeypatch.setenv("WORKBENCH_HOME", "~nosuchuser/wb")
    assert "names no user" in error_of(paths.home)


def test_multi_line_messages_become_one_line(tmp_path, capsys):
    assert str(WorkbenchError("first\nerror: second\r\n")) == "first\\nerror: second"
    long = WorkbenchError("x" * 1000)
    assert len(str(long)) == 300 and str(long).endswith("…")
    path = tmp_path / "c.jsonl"
    path.write_text('{"a\\nerror: forged": 1, "\\u001b[2Jb": 2}\n')
    msg = error_of(load_file(path))
    assert "a\\nerror: forged" in msg and "\\x1b[2Jb" in msg
    (tmp_path / "h.csv").write_text('"x\nerror: forged",text\n1,hi\n')
    assert main(["data", "inspect", str(tmp_path / "h.csv"), "--no-tokens"]) == 0
    out = capsys.readouterr().out
    assert "x\\nerror: forged" in out and not any(
        l.startswith("error:") for l in out.splitlines())
    # a library message that ends in a newline (pyarrow's does) is cut to its first line
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really PAR1")
    assert "not a readable Parquet file" in error_of(load_file(tmp_path / "bad.parquet"))


def test_alias_bomb_is_refused_with_a_short_line(tmp_path):
    # the 263-byte preset of issue 13 (each level multiplies by 9)
    bomb = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
            'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n'
            'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n'
            'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n')
    path = write_preset(tmp_path, bomb)
    msg = error_of(lambda: presets.load(str(path)), PresetError)
    assert "more than 100,000 values" in msg
    path = write_preset(tmp_path, "data:\n  placeholders: &p {x: [*p]}\n")
    assert "a loop" in error_of(lambda: presets.load(str(path)), PresetError)
    # a few aliases are fine
    path = write_preset(tmp_path, "lora: {target_modules: &m [q_proj, v_proj]}\n"
                                  "data: {placeholders: {a: &n Nova, b: *n}}\n")
    assert presets.load(str(path)).data.placeholders == {"a": "Nova", "b": "Nova"}


def test_empty_preset_file_is_an_error(tmp_path):
    for body in ("", "\n\n", "# just a comment\n", "---\n"):
        path = write_preset(tmp_path, body)
        assert "empty preset file" in error_of(lambda: presets.load(str(path)), PresetError)
    assert presets.load(str(write_preset(tmp_path, "{}\n"))) == Preset()


def _finishes(call, seconds: float = 10.0):
    """Run call in a thread: a reader that blocks (a FIFO) fails the test instead of
    hanging the suite."""
    out: dict = {}

    def run():
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - reported below
            out["exc"] = exc
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the reader blocked"
    return out.get("exc")


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "x.jsonl"
    os.mkfifo(fifo)
    exc = _finishes(load_file(fifo))
    assert isinstance(exc, DataError) and "not a regular file" in str(exc)
    exc = _finishes(lambda: main(["data", "inspect", str(fifo), "--no-tokens"]))
    assert exc is None
    yaml_fifo = tmp_path / "p.yaml"
    os.mkfifo(yaml_fifo)
    exc = _finishes(lambda: presets.load(str(yaml_fifo)))
    assert isinstance(exc, PresetError) and "not a regular file" in str(exc)
    # a FIFO among the user presets is skipped, not read
    os.mkfifo(paths.user_presets_dir() / "jam.yaml")
    assert _finishes(presets.list_presets) is None
    assert "jam" not in presets.user_names()


def test_render_row_zero_says_rows_start_at_one(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) + "\n"
                            for i in range(30)))
    for row in ("0", "-3"):
        assert main(["data", "render", str(path), "--row", row]) == 2
        err = capsys.readouterr().err
        assert "rows are numbered from 1" in err and "1 rows" not in err


def test_main_prints_one_capped_escaped_line(capsys, monkeypatch):
    def boom(args):
        raise DataError("x.jsonl: bad\nerror: forged line\x1b[2J " + "y" * 1000)
    monkeypatch.setattr("workbench.cli.cmd_runs", boom)
    assert main(["runs"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: x.jsonl: bad\\nerror: forged")
    assert "\\x1b[2J" in err and len(err.rstrip("\n")) == 300 and err.rstrip().endswith("…")


def test_preset_names_are_matched_whole():
    with pytest.raises(PresetError, match="preset name"):
        presets.check_name("probe-nl\n")
    assert presets.check_name("probe-nl") == "probe-nl"


def test_valid_input_still_loads(tmp_path):
    """The limits leave ordinary data alone: numbers, nesting of a few levels, unicode."""
    path = tmp_path / "ok.jsonl"
    rows = [{"conversations": [{"from": "human", "value": "日本語 🙂 " + str(10 ** 50)},
                               {"from": "gpt", "value": "réponse"}],
             "tools": [{"name": "f", "parameters": {"type": "object", "properties": {
                 "x": {"type": "number", "default": 1.5e300}}}}]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    loaded = data.load(DataCfg(path=str(path)))
    assert loaded.rows[0]["messages"][0]["role"] == "system"
    assert "1.5e+300" in loaded.rows[0]["messages"][0]["content"]
    p = Preset().with_overrides(["train.learning_rate=1e-3", "lora.r=16",
                                 "data.placeholders={name: Nova, n: 3}"])
    assert p.train.learning_rate == 1e-3 and p.data.placeholders == {"name": "Nova", "n": "3"}


# == --json: stdout is JSON for every command with the flag ================================

# commands whose --json run needs a model or a trained run: checked on their error path
# (stdout stays empty, stderr is one line), since a run without a model is what this suite
# can afford
NEEDS_A_MODEL = {"merge", "chat", "dryrun", "quant compare", "quant measure", "export",
                 "eval"}


def json_commands() -> set[str]:
    """Every (sub)command of the parser that takes --json, as 'data inspect'."""
    found = set()

    def walk(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{prefix} {name}".strip())
            elif "--json" in action.option_strings:
                found.add(prefix)
    walk(build_parser(), "")
    return found


def test_json_output_parses_for_every_command_with_the_flag(tmp_path, capsys):
    from tests.unit.test_adapter import write_adapter
    sample = tmp_path / "d.jsonl"
    sample.write_text('{"instruction": "q", "output": "a"}\n')
    runs_ok = {
        "runs": ["runs", "list", "--json"],
        "data inspect": ["data", "inspect", str(sample), "--no-tokens", "--json"],
        "memory": ["memory", "cpu-demo", "--json"],
        "adapter": ["adapter", "inspect", str(write_adapter(tmp_path / "adapter", rank_k=2)),
                    "--json"],
        "votes": ["votes", "--json"],  # no votes yet: an empty leaderboard, still JSON
    }
    # the rest, and data render (it needs a tokenizer), on input that fails early
    failing = {"merge": ["merge", "no-such-run", "--json"],
               "chat": ["chat", "no-such-run", "--prompt", "hi", "--json"],
               "dryrun": ["dryrun", "no-such-preset", "--json"],
               "quant compare": ["quant", "compare", "no-such-preset", "--json"],
               "quant measure": ["quant", "measure", "no-such-preset", "--json"],
               "export": ["export", "no-such-run", "--json"],
               "eval": ["eval", "no-such-run", "--json"],
               "data render": ["data", "render", str(tmp_path / "none.jsonl"), "--row", "1",
                               "--json"],
               "bundle": ["bundle", "no-such-run", "--json"]}
    commands = json_commands()
    assert set(failing) - {"data render", "bundle"} == NEEDS_A_MODEL
    unknown = commands - set(runs_ok) - set(failing)
    assert not unknown, f"classify these --json commands here: {unknown}"
    for name in sorted(commands & set(runs_ok)):
        capsys.readouterr()
        assert main(runs_ok[name]) == 0, name
        out, _ = capsys.readouterr()
        json.loads(out)
    for name in sorted(commands & set(failing)):
        capsys.readouterr()
        assert main(failing[name]) == 2, name
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and err.startswith("error: "), (name, err)
