"""data.mix: general rows mixed into training (workbench/data/mix.py), its preset field and
the shipped general set (data/general_mix.jsonl), which must stay apart from the held-out
probe (data/general_probe.jsonl)."""

import json
from pathlib import Path

import pytest

from workbench import data, presets
from workbench.config import DataCfg, Preset
from workbench.data import mix
from workbench.errors import DataError, PresetError
from workbench.evaluate import normalise

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, n: int, fmt: str = "alpaca") -> str:
    with path.open("w") as f:
        for i in range(n):
            row = ({"text": f"plain text {i}"} if fmt == "text" else
                   {"instruction": f"question {i}?", "output": f"answer {i}."})
            f.write(json.dumps(row) + "\n")
    return str(path)


# -- the preset field ------------------------------------------------------------------------

def test_mix_field_validates_and_defaults_to_empty():
    assert Preset.from_dict({}).data.mix == []
    assert Preset.from_dict({"data": {"mix": None}}).data.mix == []
    p = Preset.from_dict({"data": {"mix": [{"path": " g.jsonl ", "fraction": "0.5"}]}})
    assert p.data.mix == [{"path": "g.jsonl", "fraction": 0.5}]
    p = Preset().with_overrides(["data.mix=[{path: a.jsonl, fraction: 1}]"])
    assert p.data.mix == [{"path": "a.jsonl", "fraction": 1.0}]
    assert Preset.from_dict(p.to_dict()).data.mix == p.data.mix   # round trip


@pytest.mark.parametrize("value, message", [
    (3, "data.mix: expected a list"),
    (["g.jsonl"], "data.mix[0]: expected {path: FILE, fraction: NUMBER}"),
    ([{"path": "g.jsonl"}], "data.mix[0].fraction: missing"),
    ([{"path": "g.jsonl", "fraction": 0}], "data.mix[0].fraction: must be above 0"),
    ([{"path": "g.jsonl", "fraction": 11}], "data.mix[0].fraction: 11 is out of range"),
    ([{"path": "g.jsonl", "fraction": "half"}], "data.mix[0].fraction: expected a number"),
    ([{"path": "", "fraction": 1}], "data.mix[0].path: expected a dataset file name"),
    ([{"path": "g.jsonl", "fractoin": 1}], "data.mix[0].fractoin: unknown key (did you mean "
                                          "fraction?)"),
])
def test_mix_field_errors_name_the_entry(value, message):
    with pytest.raises(PresetError) as err:
        Preset.from_dict({"data": {"mix": value}})
    assert message in str(err.value)


def test_every_builtin_preset_loads():
    for name in presets.builtin_names():
        assert isinstance(presets.load(name).data.mix, list)


# -- mixing ------------------------------------------------------------------------------------

def test_wanted_is_fraction_of_user_rows_rounded_half_up():
    assert [mix.wanted(0.5, n) for n in (5, 7, 40, 72)] == [3, 4, 20, 36]
    assert mix.wanted(2.0, 10) == 20


def test_load_samples_seeded_and_repeats_when_short(tmp_path):
    general = _write(tmp_path / "g.jsonl", 10)
    cfg = DataCfg(path="unused", seed=7, mix=[{"path": general, "fraction": 0.5}])
    parts = mix.load(cfg, user_rows=8)
    assert len(parts[0].rows) == 4 and parts[0].available == 10
    assert mix.load(cfg, user_rows=8)[0].rows == parts[0].rows          # same seed, same rows
    other = mix.load(DataCfg(path="unused", seed=8, mix=cfg.mix), user_rows=8)
    assert other[0].rows != parts[0].rows
    big = mix.load(DataCfg(path="unused", mix=[{"path": general, "fraction": 2.5}]), 10)
    questions = [r["messages"][0]["content"] for r in big[0].rows]
    assert len(questions) == 25 and len(set(questions)) == 10           # 2 full passes + 5
    assert "the file holds 10, so rows repeat" in mix.summary(big)


def test_add_splits_mixed_rows_like_user_rows(tmp_path):
    user = _write(tmp_path / "u.jsonl", 40)
    general = _write(tmp_path / "g.jsonl", 30)
    cfg = DataCfg(path=user, eval_fraction=0.1, seed=3,
                  mix=[{"path": general, "fraction": 0.5}])
    loaded = data.load(cfg)
    tr, ev = data.split(loaded.rows, cfg.eval_fraction, cfg.seed)
    parts = mix.load(cfg, len(loaded.rows), loaded.format)
    tr2, ev2 = mix.add(tr, ev, cfg, parts)
    assert (len(tr2), len(ev2)) == (36 + 18, 4 + 2)
    assert tr2[:36] == tr and ev2[:4] == ev
    assert mix.info(parts) == [{"path": general, "fraction": 0.5, "rows": 20,
                                "available": 30, "train": 18, "eval": 2}]
    assert mix.summary(parts) == "+ 20 general rows from g.jsonl (fraction 0.5)"


def test_text_mix_for_conversations_is_refused(tmp_path):
    text = _write(tmp_path / "t.jsonl", 5, fmt="text")
    cfg = DataCfg(path="unused", mix=[{"path": text, "fraction": 1}])
    with pytest.raises(DataError, match=r"data.mix\[0\] \(.*t.jsonl\): is text but your "
                                        r"data is alpaca"):
        mix.load(cfg, 5, "alpaca")
    with pytest.raises(DataError, match=r"data.mix\[0\] \(missing.jsonl\)"):
        mix.load(DataCfg(path="unused", mix=[{"path": "missing.jsonl", "fraction": 1}]), 5)


def test_build_datasets_trains_on_the_mix(tmp_path):
    from workbench.train import build_datasets
    user = _write(tmp_path / "u.jsonl", 20)
    general = _write(tmp_path / "g.jsonl", 30)
    preset = Preset.from_dict({"data": {"path": user, "eval_fraction": 0.25, "mix": [
        {"path": general, "fraction": 1.0}]}})
    train_ds, eval_ds, info = build_datasets(preset)
    assert (len(train_ds), len(eval_ds)) == (15 + 15, 5 + 5)
    # masked like the user's rows: prompt/completion examples, the answer alone trained
    assert set(train_ds.column_names) == {"prompt", "completion"}
    assert info["mix"][0]["rows"] == 20 and info["mix_summary"].startswith("+ 20 general")


# -- the shipped general set -------------------------------------------------------------------

def test_general_mix_is_apart_from_the_held_out_probe():
    def prompts(name, key):
        return [json.loads(line)[key] for line in (ROOT / "data" / name).open()]
    probe = {normalise(p) for p in prompts("general_probe.jsonl", "prompt")}
    mixed = [normalise(q) for q in prompts("general_mix.jsonl", "instruction")]
    assert 100 <= len(mixed) <= 200 and len(set(mixed)) >= len(mixed) - 5
    assert not [q for q in mixed if q in probe or any(p in q for p in probe)]
    loaded = data.load(DataCfg(path=str(ROOT / "data" / "general_mix.jsonl")))
    assert loaded.dropped == 0 and len(loaded.rows) == len(mixed)


# -- the page: the data.mix box and the line saying what it adds ------------------------------

def test_dataset_tab_shows_what_the_mix_adds(tmp_path):
    from workbench.ui import widgets
    from workbench.ui.i18n import render
    from workbench.ui.tabs.dataset import mix_markdown
    user = _write(tmp_path / "u.jsonl", 40)
    general = _write(tmp_path / "g.jsonl", 30)
    text = widgets.from_preset(Preset.from_dict({"data": {"mix": [
        {"path": general, "fraction": 0.5}]}}), ["data.mix"])[0]
    assert widgets.to_section("data", {"mix": text}).mix == [{"path": general,
                                                              "fraction": 0.5}]
    assert widgets.to_section("data", {"mix": " "}).mix == []
    line = mix_markdown(user, "auto", "", "", None, 42, text)
    assert render(line).startswith("+ **20** general rows from `g.jsonl` (fraction 0.5)")
    assert "行通用数据" in render(line, "zh")
    assert "rows repeat" in render(mix_markdown(user, "auto", "", "", None, 42,
                                                f"[{{path: {general}, fraction: 2}}]"))
    assert mix_markdown(user, "auto", "", "", 10, 42, text).count("**5**") == 1  # max_samples
    assert mix_markdown(user, "auto", "", "", None, 42, "") == ""
    assert "data.mix[0].fraction: missing" in mix_markdown(user, "auto", "", "", None, 42,
                                                          f"[{{path: {general}}}]")
