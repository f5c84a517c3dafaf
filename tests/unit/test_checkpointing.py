"""`train.gradient_checkpointing: auto` (workbench/train/checkpointing.py): the rule, the
preset field that allows it, the dropdown that shows it, and turning it on in a built
trainer. No model is loaded: the estimate is arithmetic on SmolLM2-135M's shape.

    .venv/bin/python -m pytest tests/unit/test_checkpointing.py
"""

from types import SimpleNamespace

import pytest
from datasets import Dataset

from workbench.config import Preset, field_path_meta
from workbench.errors import PresetError
from workbench.train import checkpointing, memory
from workbench.train.memory import ModelShape
from workbench.ui import widgets

SMOL = ModelShape.from_config({
    "model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
    "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
    "tie_word_embeddings": True, "head_dim": 64}, name="smollm2-135m")
GIB = 1 << 30


def preset(value="auto", batch=4, max_length=512) -> Preset:
    return Preset.from_dict({"quantization": {"mode": "nf4", "compute_dtype": "float32"},
                             "lora": {"r": 8, "dropout": 0.0},
                             "train": {"gradient_checkpointing": value, "batch_size": batch,
                                       "max_length": max_length}})


def decide(p, seq_len, total=24 * GIB):
    return checkpointing.decide(p, seq_len, device="cpu", shape=SMOL, total_memory=total)


def test_threshold_is_1_gib_or_a_sixteenth_of_the_machine():
    assert checkpointing.threshold(8 * GIB) == GIB
    assert checkpointing.threshold(24 * GIB) == int(1.5 * GIB)
    assert checkpointing.threshold(80 * GIB) == 5 * GIB


def test_auto_turns_it_on_for_long_rows_and_off_for_short_ones():
    long_rows = decide(preset(), 384)            # LLaMA-Factory's benchmark job: 4 x 384
    assert long_rows.auto and long_rows.on
    assert long_rows.saved_bytes >= checkpointing.threshold(24 * GIB)
    assert "auto → on" in long_rows.reason and "4 × 384 tokens" in long_rows.reason
    short = decide(preset(), 96)                 # cpu-demo's identity rows are this short
    assert short.auto and not short.on and short.saved_bytes < GIB
    assert "auto → off" in short.reason


def test_the_saving_it_weighs_is_the_estimates_own():
    p = preset()
    off = memory.estimate_for_preset(p, shape=SMOL, seq_len=384, device="cpu",
                                     gradient_checkpointing=False)
    on = memory.estimate_for_preset(p, shape=SMOL, seq_len=384, device="cpu",
                                    gradient_checkpointing=True)
    assert decide(p, 384).saved_bytes == off.total_bytes - on.total_bytes > 0


def test_a_larger_machine_needs_a_larger_saving():
    p = preset()
    saved = decide(p, 384).saved_bytes
    assert decide(p, 384, total=16 * (saved + GIB)).on is False   # a sixteenth > saved
    assert decide(p, 384, total=16 * (saved - 1)).on is True


@pytest.mark.parametrize("value", [True, False])
def test_an_explicit_value_is_left_alone(value):
    for seq_len in (32, 4096):
        choice = decide(preset(value), seq_len)
        assert choice.on is value and not choice.auto and choice.reason == "set in the preset"


def test_the_estimate_of_an_auto_preset_decides_the_same_way_and_says_so():
    long_est = memory.estimate_for_preset(preset(), shape=SMOL, seq_len=384, device="cpu")
    short_est = memory.estimate_for_preset(preset(), shape=SMOL, seq_len=96, device="cpu")
    total = memory.device_memory()[1]
    assert long_est.settings["gradient_checkpointing"] is decide(preset(), 384, total).on
    assert short_est.settings["gradient_checkpointing"] is False
    assert any(n.startswith("gradient checkpointing auto → ") for n in long_est.notes)
    assumed = memory.estimate_for_preset(preset(), shape=SMOL, device="cpu")  # max_length
    assert any("at train.max_length: training decides at the data's longest padded batch"
               in n for n in assumed.notes)
    assert not any("at train.max_length" in n for n in long_est.notes)


def test_the_field_takes_true_false_or_auto_and_names_itself_otherwise():
    assert Preset().train.gradient_checkpointing == "auto"
    assert preset(True).train.gradient_checkpointing is True
    with pytest.raises(PresetError, match=r"train\.gradient_checkpointing: expected true or "
                                          r"false, or auto, got 'maybe'"):
        preset("maybe")
    with pytest.raises(PresetError, match=r"train\.packing: expected true or false, got 'auto'"):
        Preset.from_dict({"train": {"packing": "auto"}})


def test_the_page_shows_it_as_auto_on_off_and_reads_it_back():
    meta = field_path_meta("train", "gradient_checkpointing")
    kind, kwargs = widgets.widget_spec("train.gradient_checkpointing", meta)
    assert kind == "Dropdown" and kwargs["choices"] == ["auto", "on", "off"]
    assert kwargs["value"] == "auto"
    keys = ["train.gradient_checkpointing", "train.packing"]
    for value, shown in ((True, "on"), (False, "off"), ("auto", "auto")):
        values = widgets.from_preset(preset(value), keys)
        assert values == [shown, False]
        assert widgets.to_preset(values, keys).train.gradient_checkpointing == value


def test_longest_batch_reads_the_tokenised_rows_capped_at_max_length():
    ds = Dataset.from_dict({"input_ids": [[1] * 40, [1] * 300, [1] * 12]})
    assert checkpointing.longest_batch(ds, 512, packing=False) == 300
    assert checkpointing.longest_batch(ds, 256, packing=False) == 256
    assert checkpointing.longest_batch(ds.select([0, 2]), 512, packing=False) == 40
    assert checkpointing.longest_batch(ds, 512, packing=True) == 512


class FakeModel:
    def __init__(self):
        self.input_grads = 0

    def enable_input_require_grads(self):
        self.input_grads += 1


def fake_trainer(rows: int):
    return SimpleNamespace(
        train_dataset=Dataset.from_dict({"input_ids": [[1] * rows] * 3}),
        args=SimpleNamespace(activation_checkpointing=False, gradient_checkpointing=False),
        model=FakeModel())


def test_apply_turns_a_built_trainer_on_as_trl_would_and_logs_why(monkeypatch):
    monkeypatch.setattr(memory, "device_memory", lambda: ("ram", 24 * GIB, 20 * GIB))
    monkeypatch.setattr(memory, "shape_for", lambda name: SMOL)
    lines = []
    trainer = fake_trainer(384)
    choice = checkpointing.apply(trainer, preset(), None, False, lines.append)
    assert choice.on and trainer.args.activation_checkpointing is True
    assert trainer.args.gradient_checkpointing is True and trainer.model.input_grads == 1
    assert any(line.startswith("gradient checkpointing: auto → on") for line in lines)
    trainer, lines = fake_trainer(64), []
    assert not checkpointing.apply(trainer, preset(), None, False, lines.append).on
    assert trainer.args.activation_checkpointing is False and trainer.model.input_grads == 0
    assert lines and "auto → off" in lines[0]
    trainer, lines = fake_trainer(384), []                     # explicit: nothing touched
    assert not checkpointing.apply(trainer, preset(False), None, False, lines.append).on
    assert trainer.args.activation_checkpointing is False and lines == []


def test_a_model_the_estimator_cannot_read_trains_without_it(monkeypatch):
    def unreadable(name):
        raise ValueError("no config.json")
    monkeypatch.setattr(memory, "shape_for", unreadable)
    choice = checkpointing.decide(preset(), 384, device="cpu", total_memory=24 * GIB)
    assert choice.auto and not choice.on and "no memory estimate" in choice.reason
