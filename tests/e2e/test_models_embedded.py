"""The embedded SmolLM2-135M: GGUF import into the cache, cache hits, fidelity to the GGUF.

    .venv/bin/python -m pytest tests/e2e/test_models_embedded.py    # ~1 min, once imported

The import itself runs in the session fixture `embedded_model_dir` (tests/conftest.py).
"""

from __future__ import annotations

import json
import time

import pytest
import torch

from workbench import models
from workbench.config import ModelCfg, QuantizationCfg

pytestmark = pytest.mark.e2e


def test_import_wrote_a_plain_hf_folder(embedded_model_dir):
    names = {p.name for p in embedded_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            models.MARKER} <= names
    assert not any(n.startswith(".") for n in names)
    config = json.loads((embedded_model_dir / "config.json").read_text())
    assert "quantization_config" not in config  # else transformers treats it as GGUF again
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30
    size = (embedded_model_dir / "model.safetensors").stat().st_size
    assert 500e6 < size < 560e6  # float32, tied embeddings stored once
    marker = json.loads((embedded_model_dir / models.MARKER).read_text())
    assert marker["dtype"] == "float32" and marker["source"].endswith(".gguf")
    temp = [p.name for p in embedded_model_dir.parent.iterdir() if p.name.startswith(".")]
    assert temp == []  # no temp folders left behind


def test_second_resolve_is_fast_and_does_not_reimport(embedded_home, monkeypatch):
    monkeypatch.setattr(models.sources, "_load_gguf",
                        lambda gguf: pytest.fail("re-imported although cached"))
    start = time.monotonic()
    path = models.resolve(models.EMBEDDED)
    tok = models.load_tokenizer(models.EMBEDDED)
    assert time.monotonic() - start < 5
    assert path == models.models_cache_dir() / "smollm2-135m-instruct"
    assert tok.pad_token == tok.eos_token == "<|im_end|>"
    assert "You are a helpful AI assistant named SmolLM" in tok.chat_template
    assert tok.model_max_length == 8192


def test_cached_model_generates_exactly_like_the_gguf(embedded_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.models import gguf_speed
    if gguf_speed.stock_get is not None:  # gguf's own reader, not the import's faster one
        from gguf import gguf_reader
        monkeypatch.setattr(gguf_reader.GGUFReader, "_get", gguf_speed.stock_get)
    gguf = models.embedded_gguf()
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                  dtype=torch.float32)
    direct_tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    cached = AutoModelForCausalLM.from_pretrained(embedded_model_dir, dtype=torch.float32,
                                                  use_safetensors=True)
    cached_tok = AutoTokenizer.from_pretrained(embedded_model_dir)
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    a = direct_tok.apply_chat_template(msgs, add_generation_prompt=True, return_dict=True,
                                       return_tensors="pt")
    b = cached_tok.apply_chat_template(msgs, add_generation_prompt=True, return_dict=True,
                                       return_tensors="pt")
    assert torch.equal(a["input_ids"], b["input_ids"])
    with torch.no_grad():
        assert torch.equal(direct(**a).logits, cached(**b).logits)  # bit for bit
        out_a = direct.generate(**a, max_new_tokens=8, do_sample=False)
        out_b = cached.generate(**b, max_new_tokens=8, do_sample=False)
    assert torch.equal(out_a, out_b)
    assert "Paris" in cached_tok.decode(out_b[0, b["input_ids"].shape[1]:])


def test_load_embedded_nf4_is_smaller_and_still_answers(embedded_home):
    tok = models.load_tokenizer(models.EMBEDDED)
    full = models.load_model(ModelCfg(), QuantizationCfg(mode="none"))
    nf4 = models.load_model(ModelCfg(), QuantizationCfg(mode="nf4"))
    assert models.footprint_bytes(nf4) < 0.7 * models.footprint_bytes(full)
    assert models.linear_module_names(nf4) == ["down_proj", "gate_proj", "k_proj", "o_proj",
                                               "q_proj", "up_proj", "v_proj"]
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_dict=True,
                                  return_tensors="pt")
    with torch.no_grad():
        # six tokens: "The capital of France is Paris"; nf4 on a CPU is slow, keep it short
        out = nf4.generate(**ids, max_new_tokens=6, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])
