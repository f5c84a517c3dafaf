"""Dataset inspection: token statistics, truncation report, suggested max_length, quality
checks, column mapping suggestions, multi-file data, the CLI and the streaming pass.

Uses the committed tiny test tokenizer (ChatML template) and, for the large-file test, a
word-level tokenizer built in memory; no model is loaded.
Run: python -m pytest tests/unit/test_inspect_data.py
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

from workbench import data
from workbench.cli import data as datacli
from workbench.data import stats as datastats
from workbench.train import preview as inspect_data
from workbench.config import Preset
from workbench.errors import DataError


# the committed test tokenizer (tests/tiny.py's TOKENIZER_DIR; not imported from there:
# with tests/tiny/ collected, `tests.tiny` can name that folder instead)
TOKENIZER_DIR = Path(__file__).resolve().parents[1] / "assets" / "tiny_tokenizer"


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(TOKENIZER_DIR)


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return str(path)


def preset(path, **overrides) -> Preset:
    return Preset().with_overrides({"data.path": str(path), **overrides})


def summary(path, tok, max_length=None, **overrides) -> dict:
    return inspect_data.stats(preset(path, **overrides), tokenizer=tok).summary(max_length)


def qa(i, answer=None):
    return {"instruction": f"Question number {i}?", "output": answer or f"Answer {i}."}


def length(tok, msgs, **kw) -> int:
    return len(tok.apply_chat_template(msgs, tokenize=True, return_dict=True, **kw)["input_ids"])


# -- quality checks -----------------------------------------------------------------------

def test_duplicates_name_the_repeat_and_the_first(tmp_path, tok):
    rows = [qa(1), qa(2), qa(1), qa(3), qa(2), qa(1), dict(qa(3), id="x9")]
    checks = summary(jsonl(tmp_path / "d.jsonl", rows), tok)["checks"]
    # rows 3 and 6 repeat row 1, 5 repeats 2; 7 differs only in a column the model never sees
    assert checks["duplicates"] == {"count": 4, "examples": [3, 5, 6, 7],
                                    "same_as": [1, 2, 1, 4]}


def test_empty_answers_dropped_and_mid_conversation(tmp_path, tok):
    rows = [qa(1), qa(2, "   "), qa(3), {"instruction": "q", "output": ""},
            {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": " "},
                          {"role": "user", "content": "b"}, {"role": "assistant", "content": "ok"}]}]
    info = summary(jsonl(tmp_path / "e.jsonl", rows[:4]), tok)
    assert info["checks"]["empty_answers"] == {"count": 2, "dropped": 2, "examples": [2, 4]}
    assert info["drop_examples"] == {"empty answer": [2, 4]} and info["rows"] == 2
    mid = summary(jsonl(tmp_path / "m.jsonl", [rows[4]]), tok)["checks"]["empty_answers"]
    assert mid == {"count": 1, "dropped": 0, "examples": [1]}


def test_placeholders_found_counted_and_filled(tmp_path, tok):
    rows = [qa(1, "I am {{name}} by {{ author }}."), qa(2), qa(3, "{{name}} here")]
    path = jsonl(tmp_path / "p.jsonl", rows)
    p = summary(path, tok)["checks"]["placeholders"]
    assert p == {"count": 2, "examples": [1, 3], "names": {"author": 1, "name": 2},
                 "suggested": {"author": "", "name": ""}}
    filled = summary(path, tok, **{"data.placeholders": {"name": "Nova", "author": "WL"}})
    assert filled["checks"]["placeholders"]["count"] == 0


def test_answer_exceeds_max_length(tmp_path, tok):
    long = " ".join(["word"] * 60)
    path = jsonl(tmp_path / "a.jsonl", [qa(1), qa(2, long), qa(3)])
    info = summary(path, tok, max_length=32)
    assert info["checks"]["answer_exceeds_max_length"] == {"count": 1, "examples": [2]}
    assert summary(path, tok, max_length=4096)["checks"]["answer_exceeds_max_length"][
        "count"] == 0


# -- token statistics and truncation ---------------------------------------------------------

def test_token_counts_follow_the_chat_template(tmp_path, tok):
    rows = [qa(i, "ok " * i) for i in range(1, 21)]
    info = summary(jsonl(tmp_path / "t.jsonl", rows), tok)
    want = sorted(length(tok, [{"role": "user", "content": r["instruction"]},
                               {"role": "assistant", "content": r["output"]}]) for r in rows)
    assert info["tokens"]["min"] == want[0] and info["tokens"]["max"] == want[-1]
    assert info["tokens"]["p95"] == want[math.ceil(0.95 * 20) - 1]
    assert info["tokens"]["median"] == (want[9] + want[10]) / 2
    assert info["sequences"] == 20 and info["loss_on"] == "answers"
    assert info["max_length"] == 512 and info["truncated_rows"] == 0


def test_truncation_counts_lost_tokens_and_fully_masked_rows(tmp_path, tok):
    short = {"instruction": "Hi", "output": "Hello there."}
    long_prompt = {"instruction": "Please " * 80, "output": "Sure."}
    long_answer = {"instruction": "Hi", "output": "yes " * 80}
    info = summary(jsonl(tmp_path / "t.jsonl", [short, long_prompt, long_answer]), tok,
                   max_length=64)
    msgs = [{"role": "user", "content": long_answer["instruction"]}]
    prompt = length(tok, msgs, add_generation_prompt=True)
    full = length(tok, msgs + [{"role": "assistant", "content": long_answer["output"]}])
    lost_long_answer = full - 64
    p_prompt = length(tok, [{"role": "user", "content": long_prompt["instruction"]}],
                      add_generation_prompt=True)
    full_lp = length(tok, [{"role": "user", "content": long_prompt["instruction"]},
                           {"role": "assistant", "content": "Sure."}])
    assert prompt < 64 < full and p_prompt > 64
    assert info["truncated_rows"] == 2 and info["truncated_examples"] == [2, 3]
    assert info["fully_masked_rows"] == 1 and info["fully_masked_examples"] == [2]
    assert info["dropped_sequences"] == 1
    assert info["trained_tokens_lost"] == lost_long_answer + (full_lp - p_prompt)


def test_longest_sequence_is_the_longest_row_cut_at_max_length(tmp_path, tok):
    """What the memory estimate uses for the padded length once the data is analysed."""
    rows = [qa(i, "ok " * i) for i in range(1, 21)]
    path = jsonl(tmp_path / "t.jsonl", rows)
    stats = inspect_data.stats(preset(path), tokenizer=tok)
    longest = stats.summary()["tokens"]["max"]
    assert stats.longest_sequence(512) == longest < 512
    assert stats.longest_sequence(longest - 5) == longest - 5
    packed = inspect_data.stats(preset(path, **{"train.packing": True}), tokenizer=tok)
    assert packed.longest_sequence(512) == 512  # packing fills every sequence


def test_suggested_max_length_rounds_up_to_16():
    import numpy as np
    lengths = np.array(list(range(1, 101)), dtype=np.int32)  # 95% of rows are <= 95
    assert datastats.suggest(lengths, 0.95) == 96 and datastats.suggest(lengths, 0.99) == 112
    assert datastats.suggest(np.array([3], dtype=np.int32), 0.95) == 16


def test_suggestion_keeps_the_share_of_rows_whole(tmp_path, tok):
    rows = [qa(i, "tok " * (i * 3)) for i in range(1, 41)]
    stats = inspect_data.stats(preset(jsonl(tmp_path / "s.jsonl", rows)), tokenizer=tok)
    s = stats.summary()["suggested_max_length"]
    assert s["p95"] % 16 == 0 and s["p99"] % 16 == 0 and s["p95"] <= s["p99"]
    assert stats.summary(s["p95"])["truncated_rows"] <= 0.05 * 40
    assert stats.summary(s["p99"])["truncated_rows"] == 0
    assert stats.summary(s["p95"] - 16)["truncated_rows"] > 0.05 * 40


def test_histogram_frame_marks_bins_past_max_length(tmp_path, tok):
    rows = [qa(i, "w " * (i * 2)) for i in range(1, 31)]
    stats = inspect_data.stats(preset(jsonl(tmp_path / "h.jsonl", rows)), tokenizer=tok)
    frame = stats.histogram(96)
    assert list(frame.columns) == ["from", "to", "rows", "label", "over_max_length"]
    assert frame["rows"].sum() == 30 and (frame["from"] % 16 == 0).all()
    assert frame.loc[frame["from"] >= 96, "over_max_length"].all()
    assert not frame.loc[frame["from"] < 96, "over_max_length"].any()
    checks = stats.checks_frame(96)
    assert set(checks["check"]) == {"duplicates", "empty_answers", "placeholders",
                                    "answer_exceeds_max_length"}


def test_text_rows_train_every_token_with_eos(tmp_path, tok):
    info = summary(jsonl(tmp_path / "x.jsonl", [{"text": "one two"}, {"text": "three"}]), tok)
    assert info["loss_on"] == "all tokens" and info["format"] == "text"
    want = [len(tok(t + tok.eos_token)["input_ids"]) for t in ("one two", "three")]
    assert info["tokens"]["max"] == max(want) and info["trained_tokens"] == sum(want)


def test_max_samples_limits_the_rows_measured(tmp_path, tok):
    path = jsonl(tmp_path / "m.jsonl", [qa(i) for i in range(50)])
    info = summary(path, tok, **{"data.max_samples": 10})
    assert info["rows"] == 50 and info["rows_used"] == 10 and info["sequences"] == 10


# -- mapping and multi-file data ----------------------------------------------------------

@pytest.mark.parametrize("columns,want", [
    (["question", "answer"], {"instruction": "question", "output": "answer"}),
    (["Query", "Response", "id"], {"instruction": "Query", "output": "Response"}),
    (["prompt", "response"], {"prompt": "prompt", "completion": "response"}),
    (["prompt", "chosen", "rejected"], {"prompt": "prompt", "completion": "chosen"}),
    (["conversation"], {"messages": "conversation"}),
    (["instruction", "context", "response", "system_prompt"],
     {"instruction": "instruction", "output": "response", "input": "context",
      "system": "system_prompt"}),
    (["content"], {"text": "content"}),
    (["foo", "bar"], {}),
])
def test_suggest_mapping(columns, want):
    assert data.suggest_mapping(columns) == want


def test_suggested_mapping_loads_and_is_in_the_error_hint(tmp_path):
    path = jsonl(tmp_path / "q.jsonl", [{"question": "Who?", "answer": "Nova."}])
    with pytest.raises(DataError, match=r"\{instruction: question, output: answer\}"):
        data.load(path)
    cfg = preset(path, **{"data.columns": data.suggest_mapping(["question", "answer"])}).data
    assert data.load(cfg).rows[0]["messages"][-1]["content"] == "Nova."


def test_several_files_load_as_one_with_row_ranges(tmp_path, tok):
    a = jsonl(tmp_path / "a.jsonl", [qa(1), qa(2)])
    b = jsonl(tmp_path / "b.jsonl", [qa(3), qa(1), qa(4)])
    info = summary(f"{a},{b}", tok)
    assert info["rows"] == 5 and info["files"] == [a, b]
    assert info["ranges"] == [{"file": a, "first": 1, "last": 2},
                              {"file": b, "first": 3, "last": 5}]
    assert info["checks"]["duplicates"]["examples"] == [4]  # row 4 = b's 2nd = row 1


# -- rendering (trl's path; tests/tiny checks it against a real trainer) --------------------

def test_render_row_marks_prompt_masked_and_answer_trained(tmp_path, tok):
    path = jsonl(tmp_path / "r.jsonl", [qa(1), qa(2, "Blue.")])
    r = inspect_data.render_row(preset(path), 2, tokenizer=tok)
    assert r["row"] == 2 and r["where"].endswith("row 2 (line 2)")
    assert "".join(t["text"] for t in r["tokens"]) == r["text"]
    trained = "".join(t["text"] for t in r["tokens"] if t["trained"])
    assert trained == "Blue.<|im_end|>\n"
    assert r["text"].endswith("<|im_start|>assistant\nBlue.<|im_end|>\n")
    spans = inspect_data.highlighted(r)
    assert spans[-1] == ("Blue.<|im_end|>\n", "trained") and spans[0][1] == "masked"
    assert datacli.marked(spans).endswith("⟧Blue.<|im_end|>\n")


def test_render_row_errors_name_the_row(tmp_path, tok):
    path = jsonl(tmp_path / "r.jsonl", [qa(1), qa(2, " ")])
    with pytest.raises(DataError, match=r"row 2 is dropped while loading \(empty answer\)"):
        inspect_data.render_row(preset(path), 2, tokenizer=tok)
    with pytest.raises(DataError, match="no row 9: the data has 2 rows"):
        inspect_data.render_row(preset(path), 9, tokenizer=tok)


def test_render_shows_truncated_tokens(tmp_path, tok):
    path = jsonl(tmp_path / "r.jsonl", [qa(1, "yes " * 50)])
    r = inspect_data.render_row(preset(path, **{"train.max_length": 48}), 1, tokenizer=tok)
    assert r["truncated"] and not r["dropped"] and r["trained_tokens_lost"] > 0
    assert sum(not t["cut"] for t in r["tokens"]) == 48
    assert inspect_data.highlighted(r)[-1][1] == "truncated"


# -- CLI ---------------------------------------------------------------------------------

def cli(argv):
    parser = argparse.ArgumentParser()
    from workbench.cli import data as cli_data
    cli_data.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_inspect_json_fields(tmp_path, tok, capsys, monkeypatch):
    monkeypatch.setattr(inspect_data, "tokenizer_for", lambda preset: tok)
    path = jsonl(tmp_path / "c.jsonl", [qa(1, "I am {{name}}."), qa(2), qa(2)])
    assert cli(["data", "inspect", path, "--set", "train.max_length=32", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    for key in ("format", "rows", "dropped", "columns", "files", "max_length",
                "truncated_rows", "fully_masked_rows", "histogram"):
        assert key in info
    assert set(info["tokens"]) >= {"min", "median", "p95", "max"}
    assert set(info["suggested_max_length"]) >= {"p95", "p99"}
    assert info["max_length"] == 32
    checks = info["checks"]
    assert checks["duplicates"]["count"] == 1 and checks["duplicates"]["examples"] == [3]
    assert checks["placeholders"]["examples"] == [1]
    assert set(checks) == {"duplicates", "empty_answers", "placeholders",
                           "answer_exceeds_max_length"}


def test_cli_inspect_and_render_text(tmp_path, tok, capsys, monkeypatch):
    monkeypatch.setattr(inspect_data, "tokenizer_for", lambda preset: tok)
    path = jsonl(tmp_path / "c.jsonl", [qa(1, "I am {{name}}."), qa(2)])
    assert cli(["data", "inspect", path]) == 0
    out = capsys.readouterr().out
    assert "min " in out and "p95" in out and "truncated rows:" in out
    assert "suggested max_length:" in out and "data.placeholders={name: ...}" in out
    assert cli(["data", "render", path, "--row", "2"]) == 0
    out = capsys.readouterr().out
    assert "⟦<|im_start|>system" in out and "⟧Answer 2.<|im_end|>" in out
    assert cli(["data", "render", path, "--row", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["tokens"][-1]["trained"] is True and {"id", "text", "trained"} <= set(r["tokens"][0])


def test_a_broken_file_is_reported_before_the_tokenizer_loads(tmp_path, monkeypatch):
    monkeypatch.setattr(inspect_data, "tokenizer_for", lambda preset: pytest.fail("loaded"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "q", "output": "a"}\n{oops\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2, column 2: invalid JSON"):
        inspect_data.inspect(preset(bad))
    with pytest.raises(DataError, match="file not found"):
        cli(["data", "inspect", str(tmp_path / "missing.jsonl")])


def test_cli_inspect_no_tokens_needs_no_tokenizer(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(inspect_data, "tokenizer_for", lambda preset: pytest.fail("loaded"))
    path = jsonl(tmp_path / "c.jsonl", [qa(1)])
    assert cli(["data", "inspect", path, "--no-tokens", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 1


# -- streaming a large file ----------------------------------------------------------------

def _word_tokenizer():
    """A word-level tokenizer with the ChatML template: the real chat-template and
    batch-tokenising path without a vocabulary file."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from workbench.models import CHATML_TEMPLATE
    vocab = {"[UNK]": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    vocab.update({w: i + 3 for i, w in enumerate("the of and to in a is it you that".split())})
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens(["<|im_start|>", "<|im_end|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>",
                                  pad_token="<|im_end|>", unk_token="[UNK]")
    tok.chat_template = CHATML_TEMPLATE
    return tok


def _big_jsonl(path, megabytes: float) -> int:
    line = json.dumps({"instruction": "Explain the thing in a few words " * 8, "input": "",
                       "output": "It is the way of the world, and so on " * 20}) + "\n"
    n = int(megabytes * 1e6) // len(line)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(line.replace("thing", f"thing {i}", 1))
    return n


@pytest.mark.slow
def test_large_jsonl_streams_with_bounded_memory(tmp_path):
    """20 MB of alpaca rows: one pass, progress to the last byte, memory flat. (The
    allocator keeps ~15 MB after the first batches whatever the file size, hence the
    warm-up pass before measuring.)"""
    import psutil
    path = tmp_path / "big.jsonl"
    n = _big_jsonl(path, 20)
    size = path.stat().st_size
    tok = _word_tokenizer()
    proc = psutil.Process()
    _big_jsonl(tmp_path / "warm.jsonl", 1.5)
    inspect_data.stats(preset(tmp_path / "warm.jsonl"), tokenizer=tok)
    base, peak, seen = proc.memory_info().rss, 0, []

    def progress(done, total):
        nonlocal peak
        peak = max(peak, proc.memory_info().rss)
        seen.append((done, total))

    info = inspect_data.stats(preset(path), tokenizer=tok, progress=progress).summary()
    assert info["rows"] == n and info["checks"]["duplicates"]["count"] == 0
    assert len(seen) > 10 and seen[-1] == (size, size)
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    growth = peak - base  # holding these rows would take ~35 MB (data.load: 1.7x the file)
    assert growth < size / 2, f"RSS grew {growth / 1e6:.0f} MB reading a {size / 1e6:.0f} MB file"
