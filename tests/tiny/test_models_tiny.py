"""Loading the tiny random model for real (none / nf4 / fp4 / int8 on CPU), tokenizer fixes,
LoRA target discovery, and the GGUF import's cache discipline with a stand-in loader.

    .venv/bin/python -m pytest tests/tiny/test_models_tiny.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from workbench import models
from workbench.config import ModelCfg, QuantizationCfg
from workbench.errors import ModelError

LLAMA_LINEARS = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]


def _load(path, mode, **kw):
    return models.load_model(ModelCfg(name_or_path=str(path)), QuantizationCfg(mode=mode), **kw)


def test_load_none_is_bf16_eval_on_cpu(tiny_model_dir):
    model = models.load_model(ModelCfg(name_or_path=str(tiny_model_dir)),
                              QuantizationCfg(mode="none", compute_dtype="bfloat16"))
    assert not model.training
    assert model.dtype == torch.bfloat16
    assert next(model.parameters()).device.type == models.device() == "cpu"
    assert isinstance(model.model.layers[0].self_attn.q_proj, torch.nn.Linear)
    assert models.linear_module_names(model) == LLAMA_LINEARS


@pytest.mark.parametrize("cpu, dtype", [(("AVX2", False, False), torch.float32),
                                        (("AVX512", True, False), torch.bfloat16)])
def test_auto_dtype_loads_what_the_cpu_computes_natively(tiny_model_dir, monkeypatch, cpu,
                                                         dtype):
    from workbench import hardware
    monkeypatch.setattr(hardware, "cuda_state", lambda: (False, False, ""))
    monkeypatch.setattr(hardware, "cpu_info", lambda: hardware.CpuInfo(*cpu))
    assert _load(tiny_model_dir, "none").dtype == dtype


def test_dtype_override_and_unquantised_load(tiny_model_dir):
    model = _load(tiny_model_dir, "nf4", quantize=False, dtype="float32")
    assert model.dtype == torch.float32
    assert type(model.model.layers[0].mlp.up_proj) is torch.nn.Linear


@pytest.mark.parametrize("mode", ["nf4", "fp4", "int8"])
def test_quantised_load_runs_and_is_smaller(tiny_model_dir, mode, caplog):
    import bitsandbytes as bnb
    full = _load(tiny_model_dir, "none")
    quant = _load(tiny_model_dir, mode)
    layer = quant.model.layers[0].self_attn.q_proj
    assert isinstance(layer, bnb.nn.Linear8bitLt if mode == "int8" else bnb.nn.Linear4bit)
    assert models.footprint_bytes(quant) < models.footprint_bytes(full)
    assert models.linear_module_names(quant) == LLAMA_LINEARS
    ids = torch.tensor([[1, 200, 300, 400, 2]])
    with torch.no_grad():
        a, b = full(ids).logits.float(), quant(ids).logits.float()
    assert torch.isfinite(b).all()
    if mode == "int8":  # bitsandbytes warns on every int8 forward; we let it through once
        with torch.no_grad():
            quant(ids), quant(ids)
        assert len([r for r in caplog.records if "MatMul8bitLt" in r.getMessage()]) <= 1
    # quantisation perturbs the logits a little, not beyond recognition
    assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.9


def test_linear_names_skip_peft_adapters(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    model = _load(tiny_model_dir, "none")
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    assert models.linear_module_names(peft_model) == LLAMA_LINEARS


def test_load_model_names_missing_model():
    with pytest.raises(ModelError, match="no-such-dir"):
        models.load_model(ModelCfg(name_or_path="./no-such-dir"), QuantizationCfg())


def test_tokenizer_pad_and_template(tiny_model_dir):
    tok = models.load_tokenizer(str(tiny_model_dir))
    assert tok.pad_token == tok.eos_token == "<|im_end|>"
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [0, 1, 2]
    text = tok.apply_chat_template([{"role": "user", "content": "你好"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained "
                    "by Hugging Face<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n"
                    "<|im_start|>assistant\n")
    assert tok.decode(tok(text)["input_ids"]) == text  # byte-level: Chinese round-trips


def test_tokenizer_fallbacks(tiny_model_dir, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(tiny_model_dir, bare)
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((bare / "tokenizer_config.json").read_text())
    for key in ("chat_template", "pad_token"):
        cfg.pop(key, None)
    (bare / "tokenizer_config.json").write_text(json.dumps(cfg))
    tok = models.load_tokenizer(str(bare))
    assert tok.pad_token == "<|im_end|>"  # eos stands in
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n"  # plain ChatML fallback


# -- GGUF import: cache discipline, with the tiny model standing in for a dequantised GGUF --

@pytest.fixture
def fake_gguf(tmp_path, tiny_model_dir, monkeypatch):
    """A .gguf path whose 'import' yields the tiny model; counts the loads."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    path = tmp_path / "Tiny-Test.Q4_0.gguf"
    path.write_bytes(b"GGUF not really")
    calls = []

    def fake_load(gguf):
        calls.append(gguf)
        return (AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                AutoTokenizer.from_pretrained(tiny_model_dir))
    monkeypatch.setattr(models.sources, "_load_gguf", fake_load)
    return path, calls


def test_gguf_import_writes_cache_once(fake_gguf):
    path, calls = fake_gguf
    first = models.resolve(str(path))
    assert first.parent == models.models_cache_dir() and first.name == models.gguf_slug(path)
    for name in ("config.json", "model.safetensors", "tokenizer.json", models.MARKER):
        assert (first / name).is_file(), name
    marker = json.loads((first / models.MARKER).read_text())
    assert marker["source"] == str(path) and marker["format"] == models.IMPORT_FORMAT
    assert models.resolve(str(path)) == first and len(calls) == 1  # no second import
    assert models.load_tokenizer(str(path)).chat_template
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temp leftovers


def test_import_failing_mid_write_leaves_no_half_cache(fake_gguf, monkeypatch):
    path, calls = fake_gguf
    from transformers import PreTrainedTokenizerBase
    real_save = PreTrainedTokenizerBase.save_pretrained

    def boom(self, *a, **k):  # weights are already on disk when the tokenizer save dies
        raise RuntimeError("disk full")
    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", boom)
    with pytest.raises(ModelError, match="could not import .*disk full"):
        models.resolve(str(path))
    assert list(models.models_cache_dir().iterdir()) == []
    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", real_save)
    final = models.resolve(str(path))  # a retry then imports cleanly
    assert (final / models.MARKER).is_file() and len(calls) == 2


def test_stale_temp_from_killed_import_is_cleaned(fake_gguf):
    path, calls = fake_gguf
    cache = models.models_cache_dir()
    slug = models.gguf_slug(path)
    # what a SIGKILLed import leaves: a temp folder named after a process that is gone
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = cache / f".{slug}.tmp-{dead}-deadbeef"
    (stale / "half").mkdir(parents=True)
    live = cache / f".{slug}.tmp-{os.getppid()}-cafecafe"  # a live process: left alone
    live.mkdir()
    final = models.resolve(str(path))
    assert not stale.exists() and live.exists() and (final / models.MARKER).is_file()


def test_outdated_import_format_is_rebuilt(fake_gguf):
    path, calls = fake_gguf
    final = models.resolve(str(path))
    marker = final / models.MARKER
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "format": -1}))
    assert models.resolve(str(path)) == final and len(calls) == 2
    assert json.loads(marker.read_text())["format"] == models.IMPORT_FORMAT


@pytest.mark.parametrize("mode", ["nf4", "int8"])
def test_quantised_weights_cached_on_cpu(tiny_model_dir, mode, monkeypatch):
    import bitsandbytes as bnb
    first = _load(tiny_model_dir, mode)
    [qdir] = (models.models_cache_dir() / "quantized").iterdir()
    assert (qdir / models.QUANT_MARKER).is_file() and mode in qdir.name

    def no_quantising(*a, **k):
        raise AssertionError("quantised again although cached")
    with monkeypatch.context() as mp:
        mp.setattr(bnb.nn.Params4bit, "_quantize", no_quantising)
        mp.setattr(bnb.nn.Int8Params, "_quantize", no_quantising)
        second = _load(tiny_model_dir, mode)
    assert second.name_or_path == str(tiny_model_dir)  # the source, not the cache
    assert models.footprint_bytes(second) == models.footprint_bytes(first)
    ids = torch.tensor([[1, 200, 300, 400, 2]])
    with torch.no_grad():
        assert torch.equal(first(ids).logits, second(ids).logits)
    # another quantisation setting is another cache entry (the first load used auto)
    other = "bfloat16" if first.dtype == torch.float32 else "float32"
    models.load_model(ModelCfg(name_or_path=str(tiny_model_dir)),
                      QuantizationCfg(mode=mode, compute_dtype=other))
    assert len(list((models.models_cache_dir() / "quantized").iterdir())) == 2
