"""`launch.py eval` without a model: reference matching and reading prompt sets."""

import json

import pytest

from workbench import evaluate
from workbench.errors import DataError


def test_normalise():
    assert evaluate.normalise("  The CAPITAL is Paris!! ") == "the capital is paris"
    assert evaluate.normalise("Brasília, São Paulo") == "brasilia sao paulo"
    assert evaluate.normalise("H₂O") == "h2o"
    assert evaluate.normalise("6 × 7 = 42.") == "6 7 42"


@pytest.mark.parametrize("answer, refs, want", [
    ("The capital of France is Paris.", ["Paris"], True),
    ("paris", ["Paris"], True),                          # exact, case ignored
    ("It is PARIS!", ["paris"], True),
    ("2 + 2 = 4", ["4", "four"], True),
    ("Two plus two is four.", ["4", "four"], True),      # any of the references
    ("The answer is 14.", ["4"], False),                 # whole words only
    ("Parisian food is great", ["Paris"], False),
    ("It is in New Delhi.", ["New Delhi", "Delhi"], True),
    ("I am Mira.", [], None),                            # no reference: no verdict
    ("anything", ["", "  "], None),
    ("São Paulo", ["Sao Paulo"], True),
])
def test_matches(answer, refs, want):
    assert evaluate.matches(answer, refs) is want


def test_read_jsonl_and_csv(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "Who are you?"}\n\n'
                 '{"prompt": " 2+2? ", "reference": ["4", "four"], "system": "Be brief."}\n'
                 '{"prompt": "Capital of France?", "reference": "Paris", "extra": 1, '
                 '"answer": "It is Paris."}\n')
    items = evaluate.read_prompts(f)
    assert [(i.prompt, i.references, i.system) for i in items] == [
        ("Who are you?", [], ""), ("2+2?", ["4", "four"], "Be brief."),
        ("Capital of France?", ["Paris"], "")]
    assert items[2].answer == "It is Paris." and items[0].answer == ""
    c = tmp_path / "p.csv"
    c.write_text('prompt,reference\n"Capital of India?",New Delhi | Delhi\nWho are you?,\n')
    items = evaluate.read_prompts(c)
    assert [(i.prompt, i.references) for i in items] == [
        ("Capital of India?", ["New Delhi", "Delhi"]), ("Who are you?", [])]


@pytest.mark.parametrize("text, where, what", [
    ('{"prompt": "ok"}\n{"prompt": "bad",\n', "line 2", "invalid JSON"),
    ('{"prompt": "ok"}\n{"question": "no prompt"}\n', "line 2", '"prompt" must be'),
    ('{"prompt": "ok"}\n\n{"prompt": "x", "reference": 4}\n', "line 3", '"reference"'),
    ('{"prompt": "ok"}\n["a list"]\n', "line 2", "expected an object"),
    ('{"prompt": "ok", "system": ["x"]}\n', "line 1", '"system"'),
    ('{"prompt": "ok", "answer": 4}\n', "line 1", '"answer"'),
])
def test_bad_rows_name_file_and_line(tmp_path, text, where, what):
    f = tmp_path / "bad.jsonl"
    f.write_text(text)
    with pytest.raises(DataError) as e:
        evaluate.read_prompts(f)
    msg = str(e.value)
    assert "bad.jsonl" in msg and where in msg and what in msg, msg
    assert "\n" not in msg


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no prompts"):
        evaluate.read_prompts(tmp_path / "empty.jsonl")
    with pytest.raises(DataError, match="not found"):
        evaluate.read_prompts(tmp_path / "missing.jsonl")


def test_shipped_probe_is_valid():
    items = evaluate.read_prompts(None)
    assert 40 <= len(items) <= 80
    assert all(i.references for i in items)
    assert len({i.prompt for i in items}) == len(items)
    for line in evaluate.DEFAULT_PROMPTS.read_text(encoding="utf-8").splitlines():
        assert set(json.loads(line)) <= {"prompt", "reference", "system", "answer"}
    # the whole answers scored for perplexity match their references
    assert all(i.answer and evaluate.matches(i.answer, i.references) for i in items)
