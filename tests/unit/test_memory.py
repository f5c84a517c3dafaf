"""Unit tests for the memory estimator (workbench/memory.py): parameter counts of the named
sizes, the quantisation arithmetic, the QLoRA paper's 65B headline, monotonicity, the
preset mapping and the `memory` CLI. Pure arithmetic: runs in milliseconds, no torch.

    .venv/bin/python -m pytest tests/unit/test_memory.py
"""

import argparse
import json
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.train import memory
from workbench.config import Preset
from workbench.errors import ModelError, PresetError, WorkbenchError
from workbench.train.memory import NAMED, ModelShape, estimate

SMOL_CONFIG = {  # config.json of SmolLM2-135M (the embedded model), the fields we read
    "model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
    "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
    "tie_word_embeddings": True, "head_dim": 64}
SMOL = ModelShape.from_config(SMOL_CONFIG, name="smollm2-135m")

PAPER_QLORA = dict(r=64, targets="all-linear", batch_size=1, seq_len=512,
                   gradient_checkpointing=True, optimizer="paged_adamw_32bit",
                   quant_type="nf4", double_quant=True, compute_dtype="bfloat16")


@pytest.mark.parametrize("name,expected", [
    ("llama-7b", 6.74e9), ("llama-13b", 13.02e9), ("llama-33b", 32.53e9),
    ("llama-65b", 65.29e9), ("llama3-8b", 8.03e9), ("llama3-70b", 70.55e9)])
def test_named_sizes_have_the_published_parameter_counts(name, expected):
    assert NAMED[name].params == pytest.approx(expected, rel=0.002)


def test_smollm2_shape_from_config_dict_and_object():
    assert SMOL.params == pytest.approx(134.5e6, rel=0.002)   # tied: one 49152x576 matrix
    obj = ModelShape.from_config(SimpleNamespace(**SMOL_CONFIG, text_config=None))
    assert obj.params == SMOL.params and obj.kv_heads == 3 and obj.tied


def test_from_config_names_the_missing_field():
    with pytest.raises(ModelError, match="hidden_size"):
        ModelShape.from_config({"vocab_size": 10})


def test_bits_per_parameter_of_4bit_storage():
    assert memory.bits_per_param("nf4", double_quant=False) == 4.5      # 4 + 32/64
    assert memory.bits_per_param("fp4", double_quant=True) == pytest.approx(
        4 + 8 / 64 + 32 / (64 * 256))
    assert memory.bits_per_param("nf4", double_quant=True) == pytest.approx(4.127, abs=1e-3)
    with pytest.raises(PresetError):
        memory.bits_per_param("int3")


@pytest.mark.parametrize("dq,bits", [(False, 4.5), (True, 4.127)])
def test_qlora_weights_use_those_bits_and_leave_embeddings_16bit(dq, bits):
    shape = NAMED["llama-7b"]
    est = estimate(shape, "qlora", double_quant=dq)
    quantised = est.breakdown["weights"] + est.breakdown["quant_constants"]
    assert quantised == pytest.approx(shape.linear_params * bits / 8, rel=1e-3)
    # embeddings + lm_head (untied) + norms stay in bf16
    assert est.breakdown["non_quantized"] == shape.other_params * 2
    assert shape.other_params == 2 * 32000 * 4096 + 4096 * 65


def test_lora_parameter_count_is_r_times_in_plus_out():
    # the classic LoRA figure: LLaMA-7B, r 8 on q_proj and v_proj = 4.19M parameters
    est = estimate(NAMED["llama-7b"], "lora", r=8, targets=["q_proj", "v_proj"])
    assert est.params["trainable"] == 32 * 2 * 8 * (4096 + 4096) == 4_194_304
    est = estimate(SMOL, "qlora", r=8)   # all-linear on the embedded model
    ins, outs = 576 * 6 + 1536, 576 + 192 + 192 + 576 + 1536 + 1536 + 576
    assert est.params["trainable"] == 30 * 8 * (ins + outs) == 2_442_240


def test_unknown_target_module_is_a_preset_error():
    with pytest.raises(PresetError, match="lora.target_modules"):
        estimate(SMOL, "lora", targets=["c_attn"])


def test_paper_65b_full_finetuning_needs_more_than_780_gb():
    est = estimate(NAMED["llama-65b"], "full", batch_size=1, seq_len=512,
                   gradient_checkpointing=True)
    assert est.total_bytes > 780e9
    # 16-bit weights + 16-bit grads + 2 fp32 Adam states = 12 bytes per parameter
    fixed = sum(est.breakdown[k] for k in ("weights", "non_quantized", "gradients", "optimizer"))
    assert fixed == 12 * NAMED["llama-65b"].params


def test_paper_65b_qlora_fits_under_48_gb():
    est = estimate(NAMED["llama-65b"], "qlora", **PAPER_QLORA)
    assert est.total_bytes < 48e9
    assert est.breakdown["weights"] > 30e9        # the 4-bit base is most of it
    # bf16 adapters (as the paper's qlora.py and TRL do), fp32 paged AdamW states
    assert est.breakdown["lora"] == 2 * est.params["trainable"]
    assert est.breakdown["optimizer"] == 8 * est.params["trainable"]
    assert any("page" in n for n in est.notes)    # the paged optimizer is explained


def test_compare_methods_orders_full_lora_qlora():
    res = memory.compare_methods(NAMED["llama-7b"], batch_size=1, seq_len=512)
    assert list(res) == ["full", "lora", "qlora"]
    totals = [res[m].total_bytes for m in res]
    assert totals[0] > totals[1] > totals[2]


def test_to_dict_is_json_and_totals_the_breakdown():
    d = json.loads(json.dumps(estimate(SMOL, "qlora").to_dict()))
    assert d["total_bytes"] == sum(d["breakdown"].values())
    assert set(d["breakdown"]) == {"weights", "quant_constants", "non_quantized", "lora",
                                   "gradients", "optimizer", "activations", "logits"}


def test_bad_method_and_optimizer_are_preset_errors():
    with pytest.raises(PresetError, match="--method"):
        estimate(SMOL, "qlora8")
    with pytest.raises(PresetError, match="train.optimizer"):
        estimate(SMOL, "lora", optimizer="adam")


@pytest.mark.parametrize("optimizer", ["paged_adamw_32bit", "paged_adamw_8bit", "adamw_8bit"])
def test_bitsandbytes_optimizers_fall_back_on_cpu(optimizer):
    cpu = estimate(SMOL, "qlora", optimizer=optimizer, device="cpu")
    assert cpu.settings["optimizer"] == "adamw_torch" and "CUDA" in cpu.notes[0]
    assert estimate(SMOL, "qlora", optimizer=optimizer).settings["optimizer"] == optimizer


def test_lora_activations_follow_measured_saved_tensors():
    # bytes per token per layer of a SmolLM2 layer, measured with saved_tensors_hooks on a
    # CPU (bf16 base, batch 4 x 100): 38.6 KB with bf16 adapters, 49.1 KB with fp32 adapters
    # under bf16 autocast (the trainer's setting), 52.7 KB for an fp32 base + bf16 adapters
    def per_token_layer(**kw):
        one = estimate(SMOL, "lora", batch_size=4, seq_len=100, device="cpu", **kw)
        two = estimate(ModelShape(**{**SMOL.__dict__, "layers": 31}), "lora", batch_size=4,
                       seq_len=100, device="cpu", **kw)
        return (two.breakdown["activations"] - one.breakdown["activations"]) / 400
    assert per_token_layer(lora_dtype="bfloat16") == pytest.approx(38.6e3, rel=0.03)
    assert per_token_layer(lora_dtype="float32") == pytest.approx(49.1e3, rel=0.03)
    assert per_token_layer(compute_dtype="float32", lora_dtype="bfloat16") == pytest.approx(
        52.7e3, rel=0.03)


def test_optimizer_choice_changes_state_size():
    opt = {o: estimate(NAMED["llama-7b"], "full", optimizer=o).breakdown["optimizer"]
           for o in memory.OPTIMIZERS}
    assert opt["adamw_torch"] > opt["adamw_8bit"] > opt["adafactor"] > opt["sgd"] == 0


def test_logits_dominate_without_the_fused_head_on_a_big_vocab():
    full = estimate(SMOL, "qlora", batch_size=4, seq_len=512, lm_head="full")
    assert full.breakdown["logits"] == 4 * 512 * 49152 * (2 + 8)
    assert full.breakdown["logits"] > full.breakdown["weights"]


def test_cpu_head_counts_the_larger_of_trls_tiles_and_whole_logits():
    """On a CPU training may take whole fp32 logits (train.lm_head) while they are small:
    auto counts whichever of that and trl's tiles holds more; CUDA keeps the tiles."""
    from workbench.train import lm_head
    assert memory.PLAIN_MAX_LOGITS == lm_head.PLAIN_MAX_LOGITS
    big_vocab = ModelShape("v128k", 128256, 2048, 8192, 16, 32, 8)
    kw = dict(batch_size=1, seq_len=384, device="cpu")

    def logits(shape, head, **extra):
        return estimate(shape, "qlora", lm_head=head, **{**kw, **extra}).breakdown["logits"]
    hidden = 384 * 2048 * 4
    assert logits(big_vocab, "plain") == 384 * 128256 * memory.PLAIN_LOGIT_BYTES + hidden
    assert logits(big_vocab, "auto") == logits(big_vocab, "plain") > logits(big_vocab, "fused")
    assert logits(big_vocab, "auto", device="cuda") == logits(big_vocab, "fused", device="cuda")
    # past the size limit the plain head is not used: its count stops growing
    cap = memory.PLAIN_MAX_LOGITS // 128256 * 128256 * memory.PLAIN_LOGIT_BYTES
    assert logits(big_vocab, "plain", batch_size=64) == cap + 64 * hidden
    with pytest.raises(PresetError, match="lm_head: 'tiles'"):
        logits(SMOL, "tiles")


@settings(max_examples=60, deadline=None)
@given(method=st.sampled_from(memory.METHODS), device=st.sampled_from(["cpu", "cuda"]),
       layers=st.integers(2, 40), hidden_heads=st.sampled_from([(64, 1), (576, 9), (4096, 32)]),
       kv_div=st.sampled_from([1, 3]), batch=st.integers(1, 16), seq=st.integers(1, 4096),
       r=st.integers(1, 256), ckpt=st.booleans(), dropout=st.sampled_from([0.0, 0.05]),
       optimizer=st.sampled_from(memory.OPTIMIZERS), dq=st.booleans(),
       dtype=st.sampled_from(["bfloat16", "float32"]))
def test_monotonic(method, device, layers, hidden_heads, kv_div, batch, seq, r, ckpt, dropout,
                   optimizer, dq, dtype):
    hidden, heads = hidden_heads
    shape = ModelShape("m", 1000, hidden, 3 * hidden, layers, heads, max(1, heads // kv_div))
    kw = dict(r=r, batch_size=batch, seq_len=seq, gradient_checkpointing=ckpt, dropout=dropout,
              optimizer=optimizer, double_quant=dq, compute_dtype=dtype, device=device)
    base = estimate(shape, method, **kw).total_bytes
    for key in ("batch_size", "seq_len", "r"):
        more = estimate(shape, method, **{**kw, key: kw[key] + 1}).total_bytes
        assert more >= base, key
    on = estimate(shape, method, **{**kw, "gradient_checkpointing": True}).total_bytes
    off = estimate(shape, method, **{**kw, "gradient_checkpointing": False}).total_bytes
    assert on <= off


def test_checkpointing_keeps_only_layer_inputs():
    off = estimate(NAMED["llama-7b"], "lora", batch_size=1, seq_len=2048)
    on = estimate(NAMED["llama-7b"], "lora", batch_size=1, seq_len=2048,
                  gradient_checkpointing=True)
    assert on.breakdown["activations"] < off.breakdown["activations"] / 4


# -- presets -------------------------------------------------------------------------------

def _preset(**sections):
    return Preset.from_dict(sections)


def test_preset_maps_quant_mode_to_method():
    qlora = memory.estimate_for_preset(_preset(quantization={"mode": "nf4"}), shape=SMOL,
                                       device="cpu")
    assert qlora.method == "qlora" and qlora.settings["quant_type"] == "nf4"
    fp4 = memory.estimate_for_preset(_preset(quantization={"mode": "fp4"}), shape=SMOL,
                                     device="cpu")
    assert fp4.settings["quant_type"] == "fp4"
    lora = memory.estimate_for_preset(_preset(quantization={"mode": "none"}), shape=SMOL,
                                      device="cpu")
    assert lora.method == "lora" and lora.settings["lora_dtype"] == "float32"
    int8 = memory.estimate_for_preset(
        _preset(quantization={"mode": "int8", "compute_dtype": "float32"}), shape=SMOL,
        device="cpu")
    assert int8.method == "int8" and int8.breakdown["non_quantized"] == SMOL.other_params * 4
    full = memory.estimate_for_preset(_preset(), shape=SMOL, method="full", device="cpu")
    assert full.method == "full" and full.params["trainable"] == SMOL.params


def test_preset_settings_and_observed_seq_len():
    p = _preset(lora={"r": 16}, train={"batch_size": 2, "max_length": 1024,
                                        "gradient_checkpointing": True,
                                        "optimizer": "adamw_8bit"})
    est = memory.estimate_for_preset(p, shape="llama-7b", device="cuda")
    s = est.settings
    assert (s["r"], s["batch_size"], s["seq_len"], s["optimizer"]) == (16, 2, 1024, "adamw_8bit")
    assert s["gradient_checkpointing"] and est.model == "llama-7b"
    short = memory.estimate_for_preset(p, shape="llama-7b", seq_len=96, device="cuda")
    assert short.settings["seq_len"] == 96
    assert short.breakdown["activations"] < est.breakdown["activations"]


def test_preset_model_folder_is_read_from_config_json(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(SMOL_CONFIG))
    p = _preset(model={"name_or_path": str(tmp_path)})
    est = memory.estimate_for_preset(p, device="cpu")
    assert est.params["total"] == SMOL.params


def test_unreadable_config_is_a_model_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="config.json"):
        memory.shape_for(str(tmp_path))


# -- device and CLI ------------------------------------------------------------------------

def test_device_memory():
    kind, total, available = memory.device_memory()
    assert kind in ("gpu", "ram") and total >= available > 0


def _cli(argv):
    parser = argparse.ArgumentParser(prog="launch.py")
    from workbench.cli import memory as cli_memory
    cli_memory.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))


def test_cli_json_for_a_named_size(home, capsys):
    rc = _cli(["memory", "qlora-paper", "--model", "llama-65b", "--device", "cuda",
               "--set", "train.batch_size=1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["method"] == "qlora" and out["model"] == "llama-65b"
    assert out["total_bytes"] == sum(out["breakdown"].values()) < 48e9


def test_cli_table_and_method_override(home, capsys):
    assert _cli(["memory", "--model", "llama-7b", "--method", "full", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "full on llama-7b" in text and "optimizer states" in text and "total" in text


def test_cli_user_errors(home):
    with pytest.raises(PresetError, match="--method"):
        _cli(["memory", "--model", "llama-7b", "--method", "qlora4"])
    with pytest.raises(PresetError, match="train.batch_size"):
        _cli(["memory", "--model", "llama-7b", "--set", "train.batch_size=0"])
    with pytest.raises(WorkbenchError, match="not found"):
        _cli(["memory", "no-such-preset", "--model", "llama-7b"])
