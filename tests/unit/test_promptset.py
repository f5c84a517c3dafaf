"""The Chat tab's prompt set without a model (workbench.promptset): which prompts a file or
the typed box gives, the table prompt × base × runs with reference marks, and its CSV."""

import csv
import io

import pytest

from workbench import paths, promptset
from workbench.errors import DataError


def test_prompt_files_put_the_probe_first_and_list_the_samples():
    files = promptset.prompt_files()
    assert files[0] == paths.samples_dir() / "general_probe.jsonl"
    assert paths.samples_dir() / "identity.jsonl" in files


def test_load_a_prompt_set_a_training_file_and_typed_prompts(tmp_path):
    probe = promptset.load(paths.samples_dir() / "general_probe.jsonl", 3)
    assert len(probe) == 3 and all(i.references for i in probe)
    assert len(promptset.load(paths.samples_dir() / "general_probe.jsonl", None)) > 3
    # a training file (alpaca): the first user turn of each row, no reference
    identity = promptset.load(paths.samples_dir() / "identity.jsonl", 2)
    assert [i.prompt for i in identity] == ["Who are you?", "What is your name?"]
    assert identity[0].references == []
    typed = promptset.typed("Who are you?\n\n  2+2?  \nlast", limit=2)
    assert [i.prompt for i in typed] == ["Who are you?", "2+2?"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": ""}\n')
    with pytest.raises(DataError, match="bad.jsonl"):
        promptset.load(bad)


def report(runs):
    """An evaluate() report for two prompts: one with a reference, one without."""
    out = []
    for name, model, tuned in runs:
        out.append({"run": name, "model": model, "quantization": "none", "match_rate": 0.5,
                    "answers": [
                        {"prompt": "Capital of France?", "reference": ["Paris"],
                         "base": "Paris.", "tuned": tuned, "base_match": True,
                         "tuned_match": tuned == "Paris"},
                        {"prompt": "Who are you?", "reference": None, "base": "A model.",
                         "tuned": f"I am {name}", "base_match": None, "tuned_match": None}]})
    return {"runs": out}


def test_table_has_one_base_column_per_base_and_marks():
    rep = report([("run-a", "/models/tiny", "Paris"), ("run-b", "/models/tiny", "Lyon")])
    headers, rows = promptset.answer_table(rep)
    assert headers == ["prompt", "reference", "base:tiny (none)", "run-a", "run-b"]
    assert rows[0] == ["Capital of France?", "Paris", "✓ Paris.", "✓ Paris", "✗ Lyon"]
    assert rows[1] == ["Who are you?", "", "A model.", "I am run-a", "I am run-b"]
    assert promptset.match_summary(rep) == [("run-a", 1, 1, 1), ("run-b", 0, 1, 1)]
    # two bases: two base columns
    headers, _ = promptset.answer_table(report([("a", "org/m1", "x"), ("b", "org/m2", "y")]))
    assert headers[2:4] == ["base:m1 (none)", "base:m2 (none)"]
    # no reference anywhere: no reference column
    rep = report([("run-a", "/models/tiny", "Paris")])
    for a in rep["runs"][0]["answers"]:
        a.update(reference=None, base_match=None, tuned_match=None)
    headers, rows = promptset.answer_table(rep)
    assert headers == ["prompt", "base:tiny (none)", "run-a"]
    assert rows[0] == ["Capital of France?", "Paris.", "Paris"]


def test_csv_round_trips_commas_quotes_and_newlines():
    headers = ["prompt", "run"]
    rows = [['say "hi", twice', "line one\nline two"]]
    text = promptset.table_csv(headers, rows)
    assert list(csv.reader(io.StringIO(text))) == [headers, *rows]
