"""GGUF export: a merged model (or a run) -> files llama.cpp, Ollama and LM Studio run.

    python launch.py export RUN [--type f16|q8_0|both] [--json]
    >>> report = export("runs/cpu-demo-20261129-101010")   # merges first when needed

Pure Python: only the `gguf` package writes the file, so nothing needs compiling. Writes
`<run>/export/<name>-f16.gguf` and/or `<name>-q8_0.gguf` (each through a temporary file and
one rename), an Ollama `Modelfile` (ChatML template, system prompt, stop token, the preset's
generation settings), a README.md with the commands, and `export_report.json` from
`workbench.gguf_verify` (round trip through transformers' GGUF loader, an independent
check of the q/k layout against llama.cpp's rotary convention, and for the embedded base a
per-tensor comparison with the GGUF that llama.cpp itself produced).

What it cannot write correctly it refuses with an ExportError before writing anything:
architectures other than Llama, rope scaling, biases, tokenizers that are not byte-level
BPE or whose pre-tokenizer llama.cpp would not reproduce, Q8_0 with rows not divisible by 32.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from hashlib import sha256
from pathlib import Path

from workbench import fsio
from workbench.errors import WorkbenchError
from workbench.export.modelfile import (IM_END, modelfile_text, ollama_tag, ollama_template,
                                 readme_text, template_check)

TYPES = ("f16", "q8_0")


class ExportError(WorkbenchError):
    """The model cannot be exported correctly (the message says why and what to do)."""


# llama.cpp names the pre-tokenizer (the regex that splits text before BPE) by hashing the
# token ids of this text (convert_hf_to_gguf.py, get_vocab_base_pre). Only hashes of
# Llama-architecture tokenizers are listed; values copied from llama.cpp.
CHKTXT = ('\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\U0001f680 (normal) '
          '\U0001f636\u200d\U0001f32b\ufe0f (multiple emojis concatenated) \u2705 '
          '\U0001f999\U0001f999 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 '
          '\u1780\u17b6\u1793\u17cb\u178f\u17c2\u1796\u17b7\u179f\u17c1\u179f\u17a2\u17b6'
          '\u1785\U0001f601 ?\u6211\u60f3\u5728apple\u5de5\u4f5c1314151\u5929\uff5e '
          '------======= \u043d\u0435\u0449\u043e \u043d\u0430 \u0411\u044a\u043b\u0433'
          '\u0430\u0440\u0441\u043a\u0438 \'\'\'\'\'\'```````""""......!!!!!!?????? '
          'I\'ve been \'told he\'s there, \'RE you sure? \'M not sure I\'ll make it, '
          '\'D you like some tea? We\'Ve a\'lL')
KNOWN_PRE = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
}


# -- source, config and refusals ----------------------------------------------------------

def _find_run(ref) -> Path:
    from workbench import runs
    return runs.find(ref)


def resolve_source(source, progress=None) -> tuple[Path, Path | None]:
    """(merged model folder, run folder or None) for a run name/folder or a model folder."""
    path = Path(source).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        run = path.parent if path.name == "merged" and (path.parent / "preset.yaml").exists() \
            else None
        return path, run
    run = _find_run(source)
    merged, adapter = run / "merged", run / "adapter" / "adapter_model.safetensors"
    # merge when there is no merged model, or when training continued after the merge
    stale = (merged / "config.json").is_file() and adapter.is_file() and \
        adapter.stat().st_mtime > (merged / "config.json").stat().st_mtime
    if stale or not (merged / "config.json").is_file():
        from workbench.export import merge
        merge.merge(run, progress=progress)
    return merged, run


def hparams(folder: Path) -> dict:
    """The Llama hyper-parameters GGUF needs, refusing what this exporter cannot write."""
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{folder / 'config.json'}: cannot read: {exc}") from None
    where = f"{folder / 'config.json'}"
    arch = cfg.get("architectures") or []
    if cfg.get("model_type") != "llama" or arch not in ([], ["LlamaForCausalLM"]):
        raise ExportError(f"{where}: model_type {cfg.get('model_type')!r} {arch}: GGUF export "
                          "supports Llama-architecture models (LlamaForCausalLM) only")
    if cfg.get("quantization_config"):
        raise ExportError(f"{where}: the weights are still quantised; export a merged "
                          "full-precision model (merge the run first)")
    rope = dict(cfg.get("rope_scaling") or {}, **(cfg.get("rope_parameters") or {}))
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in (None, "default"):
        raise ExportError(f"{where}: rope type {rope_type!r} is not implemented by this "
                          "exporter (only the default rotary embedding); nothing was written")
    for key in ("attention_bias", "mlp_bias"):
        if cfg.get(key):
            raise ExportError(f"{where}: {key}=true is not supported by this exporter")
    if cfg.get("hidden_act", "silu") != "silu":
        raise ExportError(f"{where}: hidden_act {cfg.get('hidden_act')!r}: llama.cpp's "
                          "Llama graph uses silu")
    n_head = int(cfg["num_attention_heads"])
    head_dim = int(cfg.get("head_dim") or cfg["hidden_size"] // n_head)
    if head_dim * n_head != int(cfg["hidden_size"]):
        raise ExportError(f"{where}: head_dim {head_dim} x {n_head} heads != hidden_size "
                          f"{cfg['hidden_size']}: not supported by this exporter")
    return {"n_layer": int(cfg["num_hidden_layers"]), "n_embd": int(cfg["hidden_size"]),
            "n_ff": int(cfg["intermediate_size"]), "n_head": n_head,
            "n_kv": int(cfg.get("num_key_value_heads") or n_head), "head_dim": head_dim,
            "eps": float(cfg.get("rms_norm_eps", 1e-6)),
            "rope_base": float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0))),
            "ctx": int(cfg.get("max_position_embeddings", 2048)),
            "vocab": int(cfg["vocab_size"]),
            "tied": bool(cfg.get("tie_word_embeddings", False))}


def _check_q8_0(hp: dict) -> None:
    rows = {"hidden_size": hp["n_embd"], "intermediate_size": hp["n_ff"]}
    bad = {k: v for k, v in rows.items() if v % 32}
    if bad:
        raise ExportError(f"Q8_0 packs rows in blocks of 32 values, but {bad} is not a "
                          "multiple of 32; export --type f16 instead")


def tokenizer_vocab(folder: Path, vocab_size: int, tokenizer_pre: str | None = None) -> dict:
    """Everything GGUF stores about the tokenizer (llama.cpp's 'gpt2' BPE layout)."""
    import gguf
    from transformers import AutoTokenizer
    try:
        tok = AutoTokenizer.from_pretrained(folder)
    except Exception as exc:
        raise ExportError(f"{folder}: cannot load the tokenizer ({type(exc).__name__}: "
                          f"{exc}); a GGUF needs the tokenizer files next to config.json") \
            from None
    backend = getattr(tok, "backend_tokenizer", None)
    spec = json.loads(backend.to_str()) if backend is not None else {}
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or "ByteLevel" not in json.dumps(spec.get("pre_tokenizer")):
        raise ExportError(f"{folder}: the tokenizer is not a byte-level BPE (GPT-2 style); "
                          "this exporter writes only that kind")
    pre = tokenizer_pre or _detect_pre(tok, spec, folder)
    vocab = tok.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise ExportError(f"{folder}: the tokenizer has ids up to {max(vocab.values())} but "
                          f"the model's vocab_size is {vocab_size}")
    reverse = {i: t for t, i in vocab.items()}
    added = dict(tok.added_tokens_decoder)
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:  # the embedding matrix is larger than the vocabulary
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:  # special tokens must be CONTROL, or llama.cpp prints them as text
            tokens.append(added[i].content)
            types.append(gguf.TokenType.CONTROL if added[i].special
                         else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    template = tok.chat_template
    if isinstance(template, dict):
        template = template.get("default")
    ids = {k: getattr(tok, f"{k}_token_id", None) for k in ("bos", "eos", "unk", "pad")}
    return {"tokenizer": tok, "tokens": tokens, "types": [int(t) for t in types],
            "merges": merges, "pre": pre, "ids": ids, "chat_template": template}


def _detect_pre(tok, spec: dict, folder: Path) -> str:
    """llama.cpp's name for the pre-tokenizer: by its hash when known; a tokenizer that is
    nothing but GPT-2's ByteLevel regex gets 'gpt-2' (the same regex in llama.cpp)."""
    chkhsh = sha256(str(tok.encode(CHKTXT)).encode()).hexdigest()
    if chkhsh in KNOWN_PRE:
        return KNOWN_PRE[chkhsh]
    pre = spec.get("pre_tokenizer") or {}
    if (pre.get("type") == "ByteLevel" and pre.get("use_regex", True)
            and not pre.get("add_prefix_space") and not spec.get("normalizer")):
        return "gpt-2"
    raise ExportError(f"{folder}: llama.cpp does not know this tokenizer's pre-tokenizer "
                      f"(hash {chkhsh[:16]}...), so it would split text differently from "
                      "training; nothing was written (pass tokenizer_pre=NAME if you know "
                      "llama.cpp's name for it)")


# -- writing ------------------------------------------------------------------------------

def permute(w, n_head: int, n_head_kv: int | None = None):
    """llama.cpp's q/k row order (convert_hf_to_gguf.py LlamaModel.permute): HF rotates the
    two halves of each head, llama.cpp rotates adjacent pairs, so rows are interleaved."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def iter_tensors(folder: Path):
    """(name, float32 numpy array) for each tensor in the folder's safetensors files."""
    from workbench.models import weights
    if not weights.tensor_index(folder):
        raise ExportError(f"{folder}: no .safetensors weights")
    for key, tensor in weights.iter_tensors(folder):
        yield key, tensor.float().numpy()


def write_gguf(folder: Path, path: Path, qtype: str, hp: dict, vocab: dict, *, name: str,
               permute_qk: bool = True, say=None) -> None:
    """Write one GGUF file through a temporary name. `permute_qk=False` exists only so the
    tests can prove the layout check catches a missing permutation."""
    import gguf
    import numpy as np
    file_type = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
    tmp = path.with_name(fsio.temp_name(path.name))
    writer = gguf.GGUFWriter(tmp, "llama")
    try:
        writer.add_type("model")
        writer.add_name(name)
        writer.add_file_type(int(file_type[qtype]))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        writer.add_context_length(hp["ctx"])
        writer.add_embedding_length(hp["n_embd"])
        writer.add_block_count(hp["n_layer"])
        writer.add_feed_forward_length(hp["n_ff"])
        writer.add_head_count(hp["n_head"])
        writer.add_head_count_kv(hp["n_kv"])
        writer.add_layer_norm_rms_eps(hp["eps"])
        writer.add_rope_freq_base(hp["rope_base"])
        writer.add_rope_dimension_count(hp["head_dim"])
        writer.add_vocab_size(hp["vocab"])
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(vocab["pre"])
        writer.add_token_list(vocab["tokens"])
        writer.add_token_types(vocab["types"])
        writer.add_token_merges(vocab["merges"])
        for key, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                         ("unk", writer.add_unk_token_id), ("pad", writer.add_pad_token_id)):
            if vocab["ids"][key] is not None:
                add(int(vocab["ids"][key]))
        writer.add_add_bos_token(False)  # written explicitly: Ollama assumes true if absent
        writer.add_add_space_prefix(False)
        if vocab["chat_template"]:
            writer.add_chat_template(vocab["chat_template"])

        names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, hp["n_layer"])
        written = set()
        for hf_name, data in iter_tensors(folder):
            if hf_name.endswith("rotary_emb.inv_freq") or (hf_name == "lm_head.weight"
                                                           and hp["tied"]):
                continue  # computed at run time / the same matrix as the embedding
            new = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if new is None:
                raise ExportError(f"{folder}: tensor {hf_name} has no llama.cpp equivalent")
            if permute_qk and new.endswith("attn_q.weight"):
                data = permute(data, hp["n_head"], hp["n_head"])
            elif permute_qk and new.endswith("attn_k.weight"):
                data = permute(data, hp["n_head"], hp["n_kv"])
            if data.ndim == 1:  # norms stay float32, as llama.cpp keeps them
                writer.add_tensor(new, data.astype(np.float32))
            elif qtype == "f16":
                writer.add_tensor(new, data.astype(np.float16))
            else:
                q8 = gguf.GGMLQuantizationType.Q8_0
                writer.add_tensor(new, gguf.quants.quantize(data, q8), raw_dtype=q8)
            written.add(new)
        expected = {"token_embd.weight", "output_norm.weight"} | (
            set() if hp["tied"] else {"output.weight"}) | {
            f"blk.{i}.{t}.weight" for i in range(hp["n_layer"])
            for t in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                      "ffn_gate", "ffn_up", "ffn_down")}
        if expected - written:
            raise ExportError(f"{folder}: tensors missing: {sorted(expected - written)[:5]}")
        if say:
            say(f"writing {path.name}")
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        fsio.commit(tmp, path)
    finally:
        writer.close()
        if tmp.exists():
            tmp.unlink()


# -- the whole export ---------------------------------------------------------------------

def _generation(run: Path | None, generation) -> dict:
    from workbench.config import GenerationCfg
    gen = dataclasses.asdict(GenerationCfg())
    if generation is None and run is not None and (run / "preset.yaml").exists():
        from workbench import runs
        generation = runs.load_preset(run).generation
    if dataclasses.is_dataclass(generation):
        generation = dataclasses.asdict(generation)
    gen.update(generation or {})
    return gen


def export(source, *, types=TYPES, out_dir=None, name=None, system_prompt=None,
           generation=None, progress=None, verify: bool = True, reference="auto",
           tokenizer_pre: str | None = None, permute_qk: bool = True) -> dict:
    """Export a merged model folder or a run to GGUF; returns the export report (also
    written to `<out_dir>/export_report.json`). `system_prompt=None` takes the run's."""
    say = progress or (lambda msg: None)
    types = tuple(dict.fromkeys([types] if isinstance(types, str) else types))
    if not types or set(types) - set(TYPES):
        raise ExportError(f"types {types}: choose from {', '.join(TYPES)}")
    merged, run = resolve_source(source, progress)
    if run is not None:  # the model card, with the run's latest eval results (export.card)
        from workbench.export import card
        card.write(run, merged)
    hp = hparams(merged)
    if "q8_0" in types:
        _check_q8_0(hp)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name or (run or merged).name).strip("-.") \
        or "model"
    out = Path(out_dir) if out_dir else (run / "export" if run else
                                         merged.parent / f"{merged.name}-export")
    out.mkdir(parents=True, exist_ok=True)
    gen = _generation(run, generation)
    system = gen.get("system_prompt", "") if system_prompt is None else system_prompt
    say("reading the tokenizer")
    vocab = tokenizer_vocab(merged, hp["vocab"], tokenizer_pre)
    template, template_note = ollama_template(vocab["tokenizer"])
    stop = IM_END if template else vocab["tokenizer"].eos_token
    files, timings, modelfiles = {}, {}, {}
    for qtype in types:
        path = out / f"{name}-{qtype}.gguf"
        say(f"converting to {qtype.upper()}")
        t0 = time.monotonic()
        write_gguf(merged, path, qtype, hp, vocab, name=name, permute_qk=permute_qk, say=say)
        files[qtype], timings[qtype] = path, round(time.monotonic() - t0, 2)
    for qtype in files:  # Modelfile -> the smaller file; Modelfile.f16 when both exist
        mf = "Modelfile" if qtype == ("q8_0" if "q8_0" in files else "f16") \
            else f"Modelfile.{qtype}"
        fsio.atomic_write(out / mf, modelfile_text(files[qtype].name, template, system, gen,
                                                   stop))
        modelfiles[qtype] = mf
    if "Modelfile.f16" not in modelfiles.values() and (out / "Modelfile.f16").exists():
        (out / "Modelfile.f16").unlink()  # from an earlier export of both types
    tag = ollama_tag(name)
    report = {"ok": None, "source": str(merged), "run": str(run) if run else None,
              "name": name, "out_dir": str(out), "tokenizer_pre": vocab["pre"],
              "files": {t: {"path": str(p), "bytes": p.stat().st_size,
                            "seconds": timings[t]} for t, p in files.items()},
              "modelfiles": {t: str(out / m) for t, m in modelfiles.items()},
              "ollama": f"cd {out} && ollama create {tag} -f Modelfile && ollama run {tag}",
              "template": {"go": template, "note": template_note}}
    if template:
        report["template"].update(template_check(vocab["tokenizer"], template))
    if verify:
        from workbench.export import verify as gguf_verify
        say("verifying the exported files")
        try:
            report.update(gguf_verify.verify(merged, files, hp, tokenizer=vocab["tokenizer"],
                                             reference=reference, progress=say))
        except Exception as exc:  # noqa: BLE001 - unproven is reported as failed, not hidden
            report.update(ok=False, verify_error=f"{type(exc).__name__}: {exc}")
        report["ok"] = bool(report["ok"] and report["template"].get("ok", True))
    fsio.atomic_write(out / "README.md", readme_text(name, files, modelfiles, report["ok"]))
    report["readme"] = str(out / "README.md")
    fsio.atomic_write(out / "export_report.json",
                      json.dumps(report, indent=1, ensure_ascii=False, default=str))
    say("export " + ("verified" if report["ok"] else "FAILED verification"
                     if report["ok"] is False else "written (not verified)"))
    return report
