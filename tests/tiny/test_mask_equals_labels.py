"""The rendered view is what training does: for every sample dataset and every format, the
trained flags shown for each row equal the labels != -100 that a real SFTTrainer (built by
train.build_trainer on the tiny model, with the preset's settings) holds in its prepared
train_dataset, sequence by sequence; the token statistics agree with it too.

    .venv/bin/python -m pytest tests/tiny/test_mask_equals_labels.py
"""

from __future__ import annotations

import json
import string
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.train import preview as inspect_data
from workbench import paths, train
from workbench.config import Preset

SAMPLES = [p.name for p in paths.training_samples()]
TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return str(path)


def _extra_formats(folder) -> dict[str, str]:
    """Formats the shipped samples do not cover: sharegpt with tool calls, messages, text,
    prompt/completion given as message lists."""
    folder.mkdir(parents=True, exist_ok=True)
    sharegpt = [{"conversations": [
        {"from": "human", "value": "What's the weather in Paris?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather",
                                                       "arguments": {"city": "Paris"}})},
        {"from": "observation", "value": json.dumps({"temp_c": 18, "sky": "cloudy"})},
        {"from": "gpt", "value": "It is 18 °C and cloudy in Paris."},
        {"from": "human", "value": "And in Oslo?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather",
                                                       "arguments": {"city": "Oslo"}})},
        {"from": "observation", "value": json.dumps({"temp_c": 4, "sky": "snow"})},
        {"from": "gpt", "value": "4 °C with snow in Oslo."}],
        "system": "You are a weather bot.", "tools": json.dumps(TOOLS)},
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}],
         "tools": json.dumps(TOOLS)}]
    messages = [{"messages": [{"role": "system", "content": "Be brief."},
                              {"role": "user", "content": "2+2?"},
                              {"role": "assistant", "content": "4"},
                              {"role": "user", "content": "你好吗？"},
                              {"role": "assistant", "content": "我很好 😀 thanks"}]},
                {"messages": [{"role": "user", "content": "Name a colour"},
                              {"role": "assistant", "content": "  Teal.\n\n"}]}]
    text = [{"text": "Plain text rows train on every token."},
            {"text": "A second, longer document " * 12}]
    pc = [{"prompt": [{"role": "user", "content": "Capital of Japan?"}],
           "completion": [{"role": "assistant", "content": "Tokyo."}]},
          {"prompt": "Opposite of hot?", "completion": "Cold."}]
    return {"sharegpt_tools": _jsonl(folder / "tools.jsonl", sharegpt),
            "messages": _jsonl(folder / "messages.jsonl", messages),
            "text": _jsonl(folder / "text.jsonl", text),
            "prompt_completion_lists": _jsonl(folder / "pc.jsonl", pc)}


def _preset(model_dir, path, **train_kw) -> Preset:
    overrides = {"model.name_or_path": str(model_dir), "data.path": path,
                 "data.eval_fraction": 0.0, "quantization.mode": "none",
                 "quantization.compute_dtype": "float32"}
    overrides.update({f"train.{k}": v for k, v in train_kw.items()})
    return Preset().with_overrides(overrides)


def assert_matches_trainer(preset: Preset, tmp_path) -> dict:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    trainer = train.build_trainer(preset, run, time.monotonic(), lambda msg: None)
    prepared = trainer.train_dataset
    renders = inspect_data.render_rows(preset, tokenizer=trainer.processing_class)
    seqs = [s for r in renders for s in r["sequences"]]
    kept = [s for s in seqs if not s["dropped"]]
    assert len(kept) == len(prepared)
    for s, row in zip(kept, prepared):
        inside = [t for t in s["tokens"] if not t["cut"]]
        assert [t["id"] for t in inside] == row["input_ids"]
        assert [t["trained"] for t in inside] == [lab != -100 for lab in row["labels"]]
        assert "".join(t["text"] for t in s["tokens"]) == s["text"]
    # the combined view marks exactly the tokens some sequence trains
    for r in renders:
        for s in r["sequences"]:
            for j, t in enumerate(s["tokens"]):
                if t["trained"]:
                    assert r["tokens"][j]["trained"] and r["tokens"][j]["id"] == t["id"]
        assert "".join(text for text, _ in inspect_data.highlighted(r)) == r["text"]
    # the streaming statistics agree with what the trainer kept
    summary = inspect_data.stats(preset, tokenizer=trainer.processing_class).summary()
    trained = sum(lab != -100 for row in prepared for lab in row["labels"])
    assert summary["sequences"] == len(seqs)
    assert summary["sequences"] - summary["dropped_sequences"] == len(prepared)
    assert summary["trained_tokens"] - summary["trained_tokens_lost"] == trained
    assert summary["truncated_rows"] == sum(r["truncated"] for r in renders)
    assert summary["fully_masked_rows"] == sum(r["dropped"] for r in renders)
    assert summary["tokens"]["max"] == max(r["length"] for r in renders)
    return summary


@pytest.mark.parametrize("name", SAMPLES)
def test_samples_mask_equals_trainer_labels(name, tiny_model_dir, tmp_path):
    assert_matches_trainer(_preset(tiny_model_dir, f"data/{name}"), tmp_path)


@pytest.mark.parametrize("fmt", ["sharegpt_tools", "messages", "text",
                                 "prompt_completion_lists"])
def test_other_formats_mask_equals_trainer_labels(fmt, tiny_model_dir, tmp_path):
    path = _extra_formats(tmp_path / "data")[fmt]
    summary = assert_matches_trainer(_preset(tiny_model_dir, path), tmp_path)
    if fmt == "text":
        assert summary["loss_on"] == "all tokens"


@pytest.mark.parametrize("name,max_length", [("data/sharegpt_sample.json", 64),
                                             ("data/alpaca_sample.jsonl", 96),
                                             ("sharegpt_tools", 128), ("text", 16)])
def test_truncation_and_dropping_match_the_trainer(name, max_length, tiny_model_dir,
                                                   tmp_path):
    path = _extra_formats(tmp_path / "data").get(name, name)
    summary = assert_matches_trainer(_preset(tiny_model_dir, path, max_length=max_length),
                                     tmp_path)
    assert summary["truncated_rows"] > 0 and summary["trained_tokens_lost"] > 0
    if name == "data/sharegpt_sample.json":  # the long prompts lose every answer token
        assert summary["dropped_sequences"] > 0


def test_loss_on_all_tokens_matches_the_trainer(tiny_model_dir, tmp_path):
    path = _extra_formats(tmp_path / "data")["sharegpt_tools"]
    preset = _preset(tiny_model_dir, path, completion_only_loss=False)
    summary = assert_matches_trainer(preset, tmp_path)
    assert summary["loss_on"] == "all tokens" and summary["sequences"] == summary["rows"]


# -- generated conversations ---------------------------------------------------------------

TEXT = st.text(alphabet=string.ascii_letters + " \n.,?!'{}" + "éßж中文😀", min_size=0,
               max_size=40)


@st.composite
def conversations(draw):
    msgs = []
    if draw(st.booleans()):
        msgs.append({"role": "system", "content": draw(TEXT)})
    for _ in range(draw(st.integers(1, 3))):
        msgs.append({"role": "user", "content": draw(TEXT.filter(str.strip))})
        if draw(st.integers(0, 4)) == 0:
            msgs.append({"role": "tool", "content": draw(TEXT)})
        msgs.append({"role": "assistant", "content": draw(TEXT)})
    return {"messages": msgs}


@pytest.fixture(scope="module")
def one_trainer(tiny_model_dir, tmp_path_factory):
    """A real trainer whose bound _prepare_dataset the generated data goes through."""
    tmp = tmp_path_factory.mktemp("gen")
    path = _jsonl(tmp / "seed.jsonl", [{"messages": [{"role": "user", "content": "hi"},
                                                     {"role": "assistant", "content": "yo"}]}])
    preset = _preset(tiny_model_dir, path, max_length=48)
    (tmp / "run" / "checkpoints").mkdir(parents=True)
    return preset, tmp, train.build_trainer(preset, tmp / "run", time.monotonic(),
                                            lambda m: None)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(conversations(), min_size=1, max_size=4))
def test_generated_conversations_match_the_trainer(one_trainer, rows):
    from datasets import Dataset

    from workbench import data
    preset, tmp, trainer = one_trainer
    preset = preset.with_overrides({"data.path": _jsonl(tmp / "gen.jsonl", rows)})
    try:
        loaded = data.load(preset.data)
    except Exception:  # every row dropped (e.g. only empty answers): nothing to compare
        return
    examples = data.to_examples(loaded.rows, completion_only=True)
    prepared = trainer._prepare_dataset(Dataset.from_list(examples), trainer.processing_class,
                                        trainer.args, False, None, "train")
    renders = inspect_data.render_rows(preset, tokenizer=trainer.processing_class)
    kept = [s for r in renders for s in r["sequences"] if not s["dropped"]]
    assert len(kept) == len(prepared)
    for s, row in zip(kept, prepared):
        inside = [t for t in s["tokens"] if not t["cut"]]
        assert [t["id"] for t in inside] == row["input_ids"]
        assert [t["trained"] for t in inside] == [lab != -100 for lab in row["labels"]]
    summary = inspect_data.stats(preset, tokenizer=trainer.processing_class).summary()
    trained = sum(lab != -100 for row in prepared for lab in row["labels"])
    assert summary["sequences"] - summary["dropped_sequences"] == len(prepared)
    assert summary["trained_tokens"] - summary["trained_tokens_lost"] == trained
