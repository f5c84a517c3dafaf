"""Dataset tab handlers, called directly with the tiny model's tokenizer: mapping controls,
token analysis (histogram frame, truncation report, checks), the apply-suggestion button
and the rendered row with its highlights. Errors stay in the tab.

Run: .venv/bin/python -m pytest tests/unit/test_ui_dataset.py
"""

from __future__ import annotations

import json

import gradio as gr
import pandas as pd
import pytest

from workbench import presets
from workbench.config import COLUMN_ROLES
from workbench.ui import widgets
from workbench.ui.i18n import render
from workbench.ui.tabs import dataset


def in_english(text: str) -> str:
    """What the page shows in English, without Markdown's bold marks."""
    return render(text, "en").replace("**", "")


def values(tiny_model_dir, *overrides):
    """Every field's widget value for cpu-demo with the tiny model."""
    preset = presets.load("cpu-demo").with_overrides(
        [f"model.name_or_path={tiny_model_dir}", *overrides])
    return widgets.from_preset(preset)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def analysed(tiny_model_dir, tmp_path_factory):
    """One analysis of the identity sample at max_length 64 (some rows are longer)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_HOME", str(tmp_path_factory.mktemp("home")))
        return dataset.analyse(*values(tiny_model_dir, "train.max_length=64"))


def test_analysis_shows_histogram_report_checks_and_first_row(analysed):
    stats, status, hist, report, checks, row, info, spans = analysed
    assert stats is not None and "dataset.analysed" in status and "72" in status
    frame = hist
    assert set(frame.columns) >= {"label", "rows", "fits"}
    assert frame["rows"].sum() == 72
    # bars past max_length are the other colour, and the bars keep token order
    over = frame[frame["from"] >= 64]
    assert len(over) and (over["fits"] == dataset.OVER).all()
    assert (frame[frame["from"] < 64]["fits"] == dataset.FITS).all()
    assert list(frame["label"]) == sorted(frame["label"])  # the plot sorts by label
    text = in_english(report)
    summary = stats.summary(64)
    assert f"{summary['truncated_rows']} rows truncated" in text
    lost = f"{summary['trained_tokens_lost']} / {summary['trained_tokens']} trained tokens lost"
    assert lost in text
    assert "rows lose every trained token" in text
    assert f"{summary['suggested_max_length']['p95']} (keeps whole 95%)" in text
    checks_text = in_english(checks)
    for name in ("exact duplicates", "empty or whitespace-only", "unfilled placeholders",
                 "longer than max_length"):
        assert name in checks_text
    assert row["value"] == 1
    assert "Row 1" in in_english(info) and "row 1 (line 1)" in info
    labels = [label for _, label in spans]
    assert labels == ["masked", "trained"]
    assert "Nova" in spans[1][0] and "<|im_start|>assistant" in spans[0][0]


def test_max_length_change_redraws_without_a_second_pass(analysed):
    stats = analysed[0]
    hist, report, _ = dataset.view(stats, 512)
    assert (hist["fits"] == dataset.FITS).all()
    assert "0 rows truncated" in in_english(report)
    hist, report, _ = dataset.view(stats, 32)
    assert "72 rows truncated" in in_english(report)
    # an emptied max_length box falls back to the preset's value, never an exception
    assert dataset.view(stats, None)[1]
    assert dataset.view(None, 64)[1] == ""


def test_apply_suggestion_sets_a_max_length_that_keeps_the_rows(analysed):
    stats = analysed[0]
    p95, p99 = dataset.suggestion(stats, "p95"), dataset.suggestion(stats, "p99")
    assert p95 % 16 == 0 and p95 <= p99
    lengths = stats.row_len
    assert (lengths <= p95).mean() >= 0.95 and (lengths <= p99).mean() >= 0.99
    assert stats.summary(p99)["truncated_rows"] <= 0.01 * len(lengths)
    with pytest.raises(gr.Error):
        dataset.suggestion(None, "p95")


def test_render_marks_truncated_tokens_and_bad_rows(tiny_model_dir):
    info, spans = dataset.render(7, *values(tiny_model_dir, "train.max_length=48"))
    assert "truncated" in [label for _, label in spans]
    assert "truncated at max_length" in in_english(info)
    info, spans = dataset.render(999, *values(tiny_model_dir))
    assert spans is None and "wb-error" in info and "no row 999" in info
    assert "72 rows" in info


def test_checks_count_rows_with_examples(tmp_path, tiny_model_dir):
    rows = [{"instruction": "Who are you?", "output": "I am {{name}}."},
            {"instruction": "Hi", "output": "Hello"},
            {"instruction": "Hi", "output": "Hello"},
            {"instruction": "Empty", "output": "   "},
            {"instruction": "Long", "output": "word " * 80}]
    path = write_jsonl(tmp_path / "checks.jsonl", rows)
    stats, status, hist, _, checks, *_ = dataset.analyse(
        *values(tiny_model_dir, f"data.path={path}", "train.max_length=32"))
    assert stats is not None, status
    # lengths of two and three digits: the padded labels still sort in token order
    assert hist["to"].max() > 100 and hist["from"].min() < 100
    assert list(hist["label"]) == sorted(hist["label"])
    table = {line.split("|")[1].strip(): line.split("|")[2:4]
             for line in in_english(checks).splitlines() if line.startswith("| ⚠")}
    dup = next(v for k, v in table.items() if "duplicates" in k)
    assert dup[0].strip() == "1" and dup[1].strip() == "3"
    empty = next(v for k, v in table.items() if "empty" in k)
    assert empty[0].strip() == "1" and empty[1].strip() == "4"
    ph = next(k for k in table if "placeholders" in k)
    assert "{{name}}" in ph and table[ph][1].strip() == "1"
    long = next(v for k, v in table.items() if "longer than max_length" in k)
    assert long[1].strip() == "5"


def test_placeholders_table_fills_the_preset_field(tmp_path):
    path = write_jsonl(tmp_path / "id.jsonl",
                       [{"instruction": "Name?", "output": "I am {{name}} by {{org}}."}])
    out = dataset.on_data(path, "auto", "", "", None, 42)
    table = out[2 + len(COLUMN_ROLES) + 2]
    assert list(table.iloc[:, 0]) == ["name", "org"]
    assert out[2 + len(COLUMN_ROLES) + 1]["open"] is True
    assert out[-1].visible is True  # the table is shown only when there are placeholders
    plain = write_jsonl(tmp_path / "plain.jsonl", [{"instruction": "Hi", "output": "Hello"}])
    assert dataset.on_data(plain, "auto", "", "", None, 42)[-1].visible is False
    table.iloc[0, 1] = "Nova"  # the user types one value; the empty one is not stored
    text = dataset.apply_placeholders(table, "")
    assert widgets.text_to_dict(text, "data.placeholders") == {"name": "Nova"}
    summary, preview = dataset.inspect(path, "auto", "", text, None, 42)
    assert "I am Nova by {{org}}." in preview.to_string()


def test_unrecognised_columns_get_a_suggested_mapping(tmp_path):
    csv = tmp_path / "qa.csv"
    csv.write_text("question,answer,id\nWho are you?,I am Nova.,1\nHi,Hello,2\n")
    out = dataset.on_data(str(csv), "auto", "", "", None, 42)
    summary, roles, columns_text = out[0], out[2:2 + len(COLUMN_ROLES)], out[2 + len(COLUMN_ROLES)]
    assert "no recognisable format" in summary and "qa.csv" in summary
    assert widgets.text_to_dict(columns_text, "data.columns") == {
        "instruction": "question", "output": "answer"}
    by_role = dict(zip(COLUMN_ROLES, roles))
    assert by_role["instruction"]["value"] == "question"
    assert set(by_role["output"]["choices"]) >= {"question", "answer", "id"}
    # the change event then inspects with the mapping: alpaca, dropdowns show it
    out = dataset.on_data(str(csv), "auto", columns_text, "", None, 42)
    assert "`alpaca`" in out[0]
    assert dict(zip(COLUMN_ROLES, out[2:12]))["output"]["value"] == "answer"
    assert out[12] == gr.skip() or out[12].get("__type__") == "update"


def test_role_dropdowns_write_the_column_mapping():
    chosen = {r: "" for r in COLUMN_ROLES}
    chosen.update(instruction="instruction", output="reply", system="sys")
    text = dataset.mapping_text(*[chosen[r] for r in COLUMN_ROLES], "{input: ctx}")
    # roles mapped to their own name are not stored; emptied roles are removed
    assert widgets.text_to_dict(text, "data.columns") == {"output": "reply", "system": "sys"}


def test_errors_stay_in_the_tab(tmp_path, tiny_model_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n{"instruction": \n')
    out = dataset.analyse(*values(tiny_model_dir, f"data.path={bad}"))
    assert out[0] is None and "wb-error" in out[1] and "bad.jsonl" in out[1]
    assert "line 2" in out[1]
    assert isinstance(out[2], pd.DataFrame) and set(out[2]["fits"]) == {dataset.FITS, dataset.OVER}
    out = dataset.analyse(*values(tiny_model_dir, "model.name_or_path=/no/such/model"))
    assert out[0] is None and "no such file or folder" in out[1]
    # the load step names the file and line too, and offers no analysis
    load = dataset.on_data(str(bad), "auto", "", "", None, 42)
    assert "line 2" in load[0] and "bad.jsonl" in load[0]
    gone = values(tiny_model_dir, f"data.path={tmp_path}/gone.jsonl")
    cleared = dataset.auto_analyse(None, *gone)
    assert cleared[0] is None and cleared[1] == dataset.m("dataset.not_analysed")


def test_auto_analysis_runs_only_when_quick(tiny_model_dir):
    vals = values(tiny_model_dir)
    out = dataset.auto_analyse(None, *vals)
    assert out[0] is not None  # a local model folder: quick
    # nothing changed (a second event of the same preset load): the result is kept
    assert all(o == gr.skip() for o in dataset.auto_analyse(out[0], *vals))
    # the masking changed: analysed again
    again = dataset.auto_analyse(out[0], *values(tiny_model_dir,
                                                 "train.completion_only_loss=false"))
    assert again[0] is not None and again[0] is not out[0]
    assert "loss on all tokens" in in_english(again[3])
    slow = values(tiny_model_dir, "model.name_or_path=embedded:smollm2-135m-instruct")
    # in a fresh WORKBENCH_HOME the embedded model is not imported yet: the old result
    # is cleared and the button waits for the user
    cleared = dataset.auto_analyse(out[0], *slow)
    assert cleared[0] is None and "not_analysed" in cleared[1]
