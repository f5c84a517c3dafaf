"""GGUF export of tiny random Llamas: round trip, layout cross-check, metadata, Modelfile.

    .venv/bin/python -m pytest tests/tiny/test_export.py

Two tiny models: one with SmolLM2's real tokenizer (49152 tokens, read from the embedded
GGUF; what users export), one with the small test tokenizer (fast; untied output layer).
"""

from __future__ import annotations

import json
import shutil

import pytest

from workbench.export import verify as gguf_verify
from workbench.export.gguf import ExportError, export, permute
from workbench.export.modelfile import ollama_template, render_ollama


@pytest.fixture(scope="module")
def smol_tiny(tmp_path_factory):
    """A 2-layer random Llama (4 heads, 2 kv heads, tied embeddings) with SmolLM2's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from workbench import models
    from workbench.models import gguf_speed
    gguf_speed.install()
    gguf = models.embedded_gguf()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    folder = tmp_path_factory.mktemp("smol-tiny")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, tie_word_embeddings=True,
                         rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, initializer_range=0.03)
    # initializer_range 0.03 instead of 0.02: with 0.02 the random model predicts the same
    # token everywhere and argmax agreement means nothing; with 0.03 it picks ~29 different
    # tokens over 34 positions while F16 rounding still moves logits by < 1e-3 (measured
    # 6e-4; 0.1 gives 5e-3 and chaotic argmaxes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def smol_report(smol_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("smol-export")
    report = export(smol_tiny, out_dir=out, name="tiny",
                    generation={"temperature": 0.7, "max_new_tokens": 64},
                    system_prompt="You are Nova.")
    return report


def test_round_trip_f16_exact_and_q8_0_close(smol_report):
    assert smol_report["ok"], json.dumps(smol_report["checks"], indent=1)[:3000]
    f16 = smol_report["checks"]["f16"]["round_trip"]
    assert f16["max_abs_diff"] < 1e-3 and f16["greedy_equal"]
    assert f16["max_abs_diff_same_rounding"] < 1e-5  # the file holds exactly those weights
    q8 = smol_report["checks"]["q8_0"]["round_trip"]
    assert q8["argmax_agreement"] >= 0.95
    assert q8["max_abs_diff_same_rounding"] < 1e-5  # exactly the Q8_0 blocks expected
    for qtype in ("f16", "q8_0"):
        assert smol_report["checks"][qtype]["layout"]["max_rel_error"] < 0.05
    assert smol_report["reference"]["applied"] is False  # shapes differ from SmolLM2's
    saved = json.loads((smol_report_dir(smol_report) / "export_report.json").read_text())
    assert saved["ok"] is True and saved["files"].keys() == {"f16", "q8_0"}


def smol_report_dir(report):
    from pathlib import Path
    return Path(report["out_dir"])


def test_metadata_llama_cpp_and_ollama_need(smol_report, smol_tiny):
    import gguf
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(smol_tiny)
    config = json.loads((smol_tiny / "config.json").read_text())
    for qtype, want_type in (("f16", gguf.GGMLQuantizationType.F16),
                             ("q8_0", gguf.GGMLQuantizationType.Q8_0)):
        reader = gguf.GGUFReader(smol_report["files"][qtype]["path"])
        missing = [k for k in gguf_verify.REQUIRED_KEYS if k not in reader.fields]
        assert not missing
        value = lambda key: reader.fields[key].contents()  # noqa: E731
        assert value("general.architecture") == "llama"
        assert value("tokenizer.ggml.model") == "gpt2"
        assert value("tokenizer.ggml.pre") == "smollm"
        assert value("tokenizer.ggml.add_bos_token") is False
        assert value("tokenizer.chat_template") == tok.chat_template
        assert value("llama.rope.freq_base") == config["rope_parameters"]["rope_theta"]
        assert value("llama.attention.head_count_kv") == 2
        assert value("tokenizer.ggml.eos_token_id") == tok.convert_tokens_to_ids("<|im_end|>")
        types = value("tokenizer.ggml.token_type")
        for token in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
            assert types[tok.convert_tokens_to_ids(token)] == gguf.TokenType.CONTROL
        assert types[tok.convert_tokens_to_ids("Ġthe")] == gguf.TokenType.NORMAL
        merges = value("tokenizer.ggml.merges")
        assert len(merges) > 40000 and all(len(m.split(" ")) == 2 for m in merges[:100])
        tensors = {t.name: t for t in reader.tensors}
        assert "output.weight" not in tensors  # tied: llama.cpp reuses token_embd
        assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
        assert tensors["blk.1.ffn_down.weight"].tensor_type == want_type
        assert len(tensors) == 2 + 2 * 9


def test_files_modelfile_and_readme(smol_report):
    out = smol_report_dir(smol_report)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["Modelfile", "Modelfile.f16", "README.md", "export_report.json",
                     "tiny-f16.gguf", "tiny-q8_0.gguf"]  # no temp files left
    text = (out / "Modelfile").read_text()
    assert "FROM ./tiny-q8_0.gguf\n" in text
    assert 'PARAMETER stop "<|im_end|>"' in text
    assert 'SYSTEM """You are Nova."""' in text
    assert "PARAMETER temperature 0.7" in text and "PARAMETER num_predict 64" in text
    assert "PARAMETER top_p 0.9" in text and "PARAMETER repeat_penalty 1" in text
    assert "FROM ./tiny-f16.gguf\n" in (out / "Modelfile.f16").read_text()
    readme = (out / "README.md").read_text()
    assert "ollama create tiny -f Modelfile" in readme
    assert "llama-cli -m tiny-q8_0.gguf -cnv" in readme


def _modelfile_template(path) -> str:
    text = path.read_text()
    return text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]


def test_modelfile_template_renders_like_the_hf_chat_template(smol_report, smol_tiny):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(smol_tiny)
    template = _modelfile_template(smol_report_dir(smol_report) / "Modelfile")
    turns = [{"role": "user", "content": "Who are you?"},
             {"role": "assistant", "content": "I am Nova."},
             {"role": "user", "content": "你好，谁做的你？"}]
    system = [{"role": "system", "content": "You are Nova."}]

    def hf(msgs):
        return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    # no system message: SmolLM2's default system prompt appears in both
    assert render_ollama(template, turns) == hf(turns)
    assert "named SmolLM" in hf(turns)
    # a system message in the chat, or the Modelfile's SYSTEM, replaces the default
    assert render_ollama(template, system + turns) == hf(system + turns)
    assert render_ollama(template, turns, system="You are Nova.") == hf(system + turns)
    assert smol_report["template"]["ok"] is True


def test_go_renderer_and_non_chatml_template(tiny_model_dir):
    from transformers import AutoTokenizer
    tpl = "{{ if .System }}S={{ .System }};{{ end }}{{ range .Messages }}[{{ .Role }}]{{ end }}"
    msgs = [{"role": "system", "content": "a"}, {"role": "user", "content": "b"}]
    assert render_ollama(tpl, msgs) == "S=a;[system][user]"
    assert render_ollama(tpl, msgs[1:]) == "[user]"
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    template, _ = ollama_template(tok)
    assert template.startswith("{{ if not .System }}<|im_start|>system\n")
    tok.chat_template = ("{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}\n"
                         "{% endfor %}")
    template, note = ollama_template(tok)
    assert template is None and "not ChatML" in note


def test_permute_matches_llama_cpp_rope_and_skipping_it_fails_the_check(tiny_model_dir,
                                                                        tmp_path):
    """The layout check reads q/k as llama.cpp does (adjacent-pair rotary) and compares
    attention scores with the HF model: it passes for the permuted export and fails when
    the permutation is skipped. It runs without transformers' loader, which undoes the
    permutation itself."""
    import numpy as np
    rng = np.random.default_rng(0)
    hp = {"n_embd": 16, "n_head": 4, "n_kv": 2, "head_dim": 4, "rope_base": 10000.0,
          "ctx": 4096}
    wq, wk = rng.standard_normal((16, 16)), rng.standard_normal((8, 16))
    want = gguf_verify.attention_scores(wq, wk, hp, gguf_verify._rope_halves)
    good = gguf_verify.attention_scores(permute(wq, 4, 4), permute(wk, 4, 2), hp,
                                        gguf_verify._rope_pairs)
    bad = gguf_verify.attention_scores(wq, wk, hp, gguf_verify._rope_pairs)
    assert np.allclose(good, want)
    assert not np.allclose(bad, want)

    report = export(tiny_model_dir, types=("f16",), out_dir=tmp_path / "wrong",
                    permute_qk=False)
    layout = report["checks"]["f16"]["layout"]
    assert report["ok"] is False and layout["ok"] is False
    assert layout["max_rel_error"] > 0.3
    right = export(tiny_model_dir, types=("f16",), out_dir=tmp_path / "right", verify=False)
    import gguf as gguf_pkg
    reader = gguf_pkg.GGUFReader(right["files"]["f16"]["path"])
    result = gguf_verify.check_layout(reader, tiny_model_dir, _hparams(tiny_model_dir))
    assert result["ok"] and result["max_rel_error"] < 1e-2
    assert right["tokenizer_pre"] == "gpt-2"  # the test tokenizer is plain ByteLevel BPE
    assert "output.weight" in {t.name for t in reader.tensors}  # untied output layer


def _hparams(folder):
    from workbench.export.gguf import hparams
    return hparams(folder)


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(model_type="mistral", architectures=["MistralForCausalLM"]),
     "Llama-architecture"),
    (lambda c: c.update(rope_parameters={"rope_type": "linear", "factor": 2.0,
                                         "rope_theta": 10000.0}), "rope type 'linear'"),
    (lambda c: c.update(attention_bias=True), "attention_bias"),
    (lambda c: c.update(quantization_config={"quant_method": "bitsandbytes"}),
     "still quantised"),
])
def test_refuses_what_it_cannot_write(tiny_model_dir, tmp_path, edit, message):
    folder = _copy(tiny_model_dir, tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExportError, match=message):
        export(folder, out_dir=tmp_path / "out")
    assert not any((tmp_path / "out").glob("*.gguf"))


def test_refuses_missing_tokenizer_q8_0_rows_and_unknown_pretokenizer(tmp_path,
                                                                      tiny_model_dir):
    folder = _copy(tiny_model_dir, tmp_path / "no-tok")
    for p in folder.glob("tokenizer*"):
        p.unlink()
    with pytest.raises(ExportError, match="tokenizer"):
        export(folder, out_dir=tmp_path / "out1", verify=False)

    odd = _copy(tiny_model_dir, tmp_path / "odd")
    config = json.loads((odd / "config.json").read_text())
    config.update(hidden_size=48, head_dim=12)  # 48 is not a multiple of 32 (refused
    # from the config alone, before any weight is read)
    (odd / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExportError, match="multiple of 32"):
        export(odd, types=("q8_0",), out_dir=tmp_path / "out2", verify=False)

    folder = _copy(tiny_model_dir, tmp_path / "digits")
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, spec["pre_tokenizer"]]}
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ExportError, match="pre-tokenizer"):
        export(folder, out_dir=tmp_path / "out3", verify=False)
    with pytest.raises(ExportError, match="types"):
        export(tiny_model_dir, types=("q4_k",), out_dir=tmp_path / "out4")


def test_cli_export_and_json(tiny_model_dir, tmp_path, capsys):
    import argparse

    from workbench.cli import export as cli_export
    parser = argparse.ArgumentParser()
    cli_export.register(parser.add_subparsers())
    args = parser.parse_args(["export", str(tiny_model_dir), "--type", "f16", "--out",
                              str(tmp_path / "cli"), "--json"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and list(report["files"]) == ["f16"]


def test_run_export_uses_the_runs_preset_and_merges_when_stale(tiny_model_dir, monkeypatch):
    import os

    import yaml

    from workbench.export import merge
    from workbench import paths
    run = paths.runs_dir() / "demo-20261129-101010"
    preset = yaml.safe_load((paths.builtin_presets_dir() / "cpu-demo.yaml").read_text())
    preset["generation"].update(system_prompt="You are Nova, made by Workbench Labs.",
                                temperature=0.3, max_new_tokens=99)
    run.mkdir(parents=True)
    (run / "preset.yaml").write_text(yaml.safe_dump(preset))
    shutil.copytree(tiny_model_dir, run / "merged")
    (run / "adapter").mkdir()
    (run / "adapter" / "adapter_model.safetensors").write_bytes(b"")
    old = (run / "merged" / "config.json").stat().st_mtime - 100
    os.utime(run / "adapter" / "adapter_model.safetensors", (old, old))
    calls = []
    monkeypatch.setattr(merge, "merge", lambda r, progress=None: calls.append(r))

    report = export("demo", types=("f16",), verify=False)
    assert calls == []  # merged after the adapter was saved: used as it is
    assert report["out_dir"] == str(run / "export") and report["ok"] is None
    text = (run / "export" / "Modelfile").read_text()
    assert "FROM ./demo-20261129-101010-f16.gguf" in text
    assert 'SYSTEM """You are Nova, made by Workbench Labs."""' in text
    assert "PARAMETER temperature 0.3" in text and "PARAMETER num_predict 99" in text

    os.utime(run / "adapter" / "adapter_model.safetensors")  # trained on after the merge
    export(run, types=("f16",), verify=False)
    assert calls == [run]
