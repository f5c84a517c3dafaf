"""Presets: every built-in loads, bad values name the field, names are checked."""

import pytest
import yaml

from workbench import presets
from workbench.config import Preset, iter_fields
from workbench.errors import PresetError


@pytest.mark.parametrize("name", presets.builtin_names())
def test_every_builtin_preset_loads_and_describes_itself(name):
    preset = presets.load(name)
    assert isinstance(preset, Preset)
    text = presets.find(name).read_text(encoding="utf-8")
    assert text.startswith(f"# {name}:"), "each preset opens with a comment on its purpose"
    # the YAML spells out every section, so nothing silently comes from code defaults
    raw = yaml.safe_load(text)
    assert set(raw) == {"model", "data", "quantization", "lora", "train", "generation"}


def test_builtin_set_and_paper_recipe():
    assert {"cpu-demo", "qlora-paper", "int8-lora", "lora-bf16"} <= set(presets.builtin_names())
    paper = presets.load("qlora-paper")
    assert (paper.quantization.mode, paper.quantization.double_quant) == ("nf4", True)
    # bf16 on a GPU or a native-bf16 CPU, float32 where bf16 is emulated (issue 9)
    assert paper.quantization.compute_dtype == "auto"
    assert (paper.lora.r, paper.lora.alpha, paper.lora.dropout) == (64, 16, 0.05)
    assert paper.lora.target_modules == "all-linear"
    assert paper.train.lr_scheduler == "constant" and paper.train.max_grad_norm == 0.3
    assert paper.train.optimizer == "paged_adamw_32bit"
    assert presets.load("int8-lora").quantization.int8_threshold == 6.0
    assert presets.load("lora-bf16").quantization.mode == "none"


@pytest.mark.parametrize("raw, expected", [
    ({"lora": {"rank": 8}}, "lora.rank: unknown key (did you mean lora.r?)"),
    ({"lorra": {}}, "lorra: unknown section (did you mean lora?)"),
    ({"train": {"batch_size": 0}}, "train.batch_size: 0 is out of range; allowed 1 to 4096"),
    ({"train": {"learning_rate": "fast"}}, "train.learning_rate: expected a number, got 'fast'"),
    ({"train": {"batch_size": 2.5}}, "train.batch_size: expected a whole number"),
    ({"quantization": {"mode": "nf5"}}, "quantization.mode: 'nf5' is not one of"),
    ({"quantization": {"double_quant": "yes"}}, "quantization.double_quant: expected true or false"),
    ({"lora": {"target_modules": []}}, "lora.target_modules: expected 'all-linear' or a non-empty list"),
    ({"data": {"columns": {"answer": "out"}}}, "data.columns.answer: unknown role"),
    ({"train": {"max_steps": 0}}, "train.max_steps: 0 would train nothing"),
    ({"data": "x"}, "data: expected a mapping"),
])
def test_bad_values_name_the_field(raw, expected):
    with pytest.raises(PresetError, match=None) as info:
        Preset.from_dict(raw)
    assert expected in str(info.value)


def test_overrides_parse_yaml_values_and_check_them():
    p = Preset().with_overrides(["train.max_steps=10", "lora.target_modules=[q_proj, v_proj]",
                                 "quantization.mode=fp4", "data.max_samples=null"])
    assert p.train.max_steps == 10 and p.lora.target_modules == ["q_proj", "v_proj"]
    assert p.quantization.mode == "fp4" and p.data.max_samples is None
    with pytest.raises(PresetError, match="expected section.key=value"):
        Preset().with_overrides(["max_steps"])
    with pytest.raises(PresetError, match=r"train.max_step: unknown key \(did you mean train.max_steps\?\)"):
        Preset().with_overrides(["train.max_step=3"])


def test_exponent_without_dot_is_a_number(tmp_path):
    """PyYAML (YAML 1.1) reads `1e-3` as text; users write it that way all the time."""
    assert Preset().with_overrides(["train.learning_rate=1e-3"]).train.learning_rate == 1e-3
    path = tmp_path / "p.yaml"
    path.write_text("train: {learning_rate: 5e-4, max_steps: '10'}\n")
    loaded = presets.load(str(path))
    assert loaded.train.learning_rate == 5e-4 and loaded.train.max_steps == 10


def test_roundtrip_yaml():
    p = Preset().with_overrides(["lora.r=16", "data.placeholders={name: Nova}"])
    text = presets.to_yaml(p, "my preset")
    assert text.startswith("# my preset\n")
    assert presets.parse_yaml(text, "x.yaml") == p


def test_invalid_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  batch_size: [1,\n", encoding="utf-8")
    with pytest.raises(PresetError, match=r"bad.yaml: line \d+, column \d+: invalid YAML"):
        presets.load(str(bad))


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("train: !!python/object/apply:os.system ['echo hacked']\n", encoding="utf-8")
    with pytest.raises(PresetError, match="invalid YAML"):
        presets.load(str(evil))


@pytest.mark.parametrize("name", ["../x", "/etc/x", "", "a" * 65, "a b", "..", "x/y"])
def test_bad_names_are_refused(name):
    with pytest.raises(PresetError, match="preset name"):
        presets.save(name, Preset())


def test_user_presets_save_list_load_delete():
    p = Preset().with_overrides(["lora.r=4"])
    path = presets.save("my-run_1.0", p)
    assert path.parent == presets.paths.user_presets_dir()
    names = {(x["name"], x["kind"]) for x in presets.list_presets()}
    assert ("my-run_1.0", "user") in names and ("cpu-demo", "builtin") in names
    assert presets.load("my-run_1.0").lora.r == 4
    with pytest.raises(PresetError, match="already exists"):
        presets.save("my-run_1.0", p)
    presets.delete("my-run_1.0")
    assert "my-run_1.0" not in presets.user_names()


def test_builtins_are_read_only():
    with pytest.raises(PresetError, match="read-only"):
        presets.save("cpu-demo", Preset())
    with pytest.raises(PresetError, match="cannot be deleted"):
        presets.delete("cpu-demo")


def test_every_field_has_help_and_label():
    for section, key, meta in iter_fields():
        assert meta["help"] and meta["label"], f"{section}.{key}"
        if meta["type"] in ("int", "float"):
            assert meta["min"] is not None and meta["max"] is not None, f"{section}.{key}"
