"""Quantisation quality: what NF4, FP4 and int8 (with and without double quant) cost on a
model and its data: storage, load and quantise time, per-layer weight error, perplexity.

    >>> from workbench import quant
    >>> r = quant.compare("cpu-demo")      # a preset name/path, a Preset or a model folder
    >>> r["table"]        # per variant: bits/param, footprint, load/quantise s, errors, ppl
    >>> r["layers"]       # per linear weight: layer, module, {variant: relative error}
    >>> r["nf4_vs_fp4"]["verdict"]
    >>> quant.table_frame(r), quant.layer_errors_frame(r)    # pandas, for the app

    python launch.py quant compare cpu-demo [--json] [--no-perplexity] [--max-tokens N]
    python bench/quant_compare.py cpu-demo  # the same as a Markdown table

Callers use workbench.quant, which forwards these names here and holds the tables and the
CLI. Tests: tests/tiny/test_quant_quality.py, tests/e2e/test_quant_embedded.py.

Weight errors come from bitsandbytes' own quantise/dequantise functions applied to each
linear weight of the unquantised checkpoint, one tensor at a time, in the dtype the loader
casts to first: the same calls Linear4bit/Linear8bitLt make while loading, so the errors
equal those of the loaded model's weights (a test checks it) without loading six models.
Perplexity needs the real thing: each variant is loaded through models.load_model, as
training and chat load it.

Long because the two measurements (weight error, perplexity) and the verdict that weighs
them belong together: split, each half would need the other's tables to make sense.
"""

from __future__ import annotations

from workbench.errors import PresetError
from workbench.quant import (BLOCKSIZE, DEFAULT_VARIANTS, torch_dtype,
                            variant, variant_bits)

DEFAULT_MAX_TOKENS = 1024
SAMPLE_TEXT = (
    "The river town woke slowly. Fishing boats came back before sunrise, and the market "
    "filled with baskets of silver fish, bread still warm from the ovens, and the voices of "
    "traders calling out their prices. Children ran between the stalls while their parents "
    "argued about the weather, the harvest and the new bridge that the council had promised "
    "for years. By noon the square was quiet again; the shopkeepers closed their shutters, "
    "and the old clock on the church tower struck twelve, as it had every day for two "
    "hundred years. In the afternoon a light rain began to fall, and the town went on with "
    "its work: letters were written, bread was baked for the evening, and the ferry carried "
    "travellers across the wide brown water to the villages on the other side.")


def _source(preset_or_model):
    """(Preset, label, has_data): a Preset as is, a model (folder, .gguf, embedded:, Hub id)
    with the default Preset and no dataset, else a preset name or YAML path."""
    from pathlib import Path

    from workbench import presets
    from workbench.config import Preset
    if isinstance(preset_or_model, Preset):
        return preset_or_model, "preset", True
    text = str(preset_or_model)
    p = Path(text).expanduser()
    if text.startswith("embedded:") or (p.is_dir() and (p / "config.json").is_file()) or (
            p.is_file() and p.suffix.lower() == ".gguf"):
        return Preset().with_overrides({"model.name_or_path": text}), text, False
    return presets.load(text), text, True


def _linear_names(path, trust: bool) -> tuple[list[str], int, int]:
    """(names, other params, buffer bytes): the modules transformers replaces with bnb
    layers, i.e. every nn.Linear except those it keeps in 16-bit (output embeddings, tied
    weights, the last module), found on a weightless meta-device copy of the model."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust)
    with torch.device("meta"):
        meta = AutoModelForCausalLM.from_config(config, trust_remote_code=trust)
    try:
        from transformers.quantizers.base import get_keys_to_not_convert
        skip = set(get_keys_to_not_convert(meta))
    except Exception:  # older/newer transformers: keep at least the output embeddings out
        out = meta.get_output_embeddings()
        skip = {n for n, m in meta.named_modules() if m is out}
    names = [n for n, m in meta.named_modules() if isinstance(m, torch.nn.Linear)
             and not any(n == s or n.endswith("." + s) or s.endswith("." + n) for s in skip)]
    other = sum(p.numel() for n, p in meta.named_parameters()
                if n.removesuffix(".weight") not in names)
    buffers = sum(b.numel() * b.element_size() for b in meta.buffers())
    return names, other, buffers


def _roundtrip(w32, mode: str, dq: bool, dt, dev):
    """(dequantised weight, seconds spent quantising, packed bytes, constants bytes)."""
    import time

    import torch
    w = w32.to(device=dev, dtype=dt)
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    if mode == "none":
        return w, time.perf_counter() - t0, w.numel() * w.element_size(), 0
    import bitsandbytes.functional as F
    if mode == "int8":  # what Int8Params._quantize stores: fp16 cast, row-wise absmax int8
        cb, scb, _ = F.int8_vectorwise_quant(w.to(torch.float16))
        sync()
        seconds = time.perf_counter() - t0
        return F.int8_vectorwise_dequant(cb, scb), seconds, cb.numel(), scb.numel() * 4
    q, state = F.quantize_4bit(w, blocksize=BLOCKSIZE, quant_type=mode, compress_statistics=dq)
    sync()
    seconds = time.perf_counter() - t0
    consts = [state.absmax, state.code]
    if state.nested:
        consts += [state.state2.absmax, state.state2.code, state.offset]
    return (F.dequantize_4bit(q, state), seconds, q.numel() * q.element_size(),
            sum(t.numel() * t.element_size() for t in consts))


def weight_errors(model_path, variants=DEFAULT_VARIANTS, *, dtype="bfloat16", trust=False,
                  device=None, progress=None) -> dict:
    """Per linear weight, ||W - deq(q(W))|| / ||W|| for each variant, W being the checkpoint's
    weight (float32 from the embedded import); plus per variant the seconds spent quantising
    (no cache involved) and the bytes the quantised weights and their constants take."""
    import re

    import torch

    from workbench import models
    from workbench.models import weights
    path = models.resolve(str(model_path))
    dt, dev = torch_dtype(dtype), device or models.device()
    names, other_params, buffer_bytes = _linear_names(path, trust)
    where = weights.tensor_index(path)
    stats = {v: {"seconds": 0.0, "packed": 0, "constants": 0, "params": 0, "rows": 0}
             for v in variants}
    for v in variants:  # first calls pay one-off setup; keep it out of the timings
        _roundtrip(torch.randn(BLOCKSIZE, BLOCKSIZE), *variant(v), dt, dev)
    layers, missing = [], []
    for i, name in enumerate(names):
        key = name + ".weight"
        if key not in where:
            missing.append(key)
            continue
        w32 = weights.read_tensor(where, key).to(torch.float32)
        norm = w32.norm().item() or 1.0
        errors = {}
        for v in variants:
            deq, seconds, packed, consts = _roundtrip(w32, *variant(v), dt, dev)
            errors[v] = (deq.float().cpu() - w32).norm().item() / norm
            s = stats[v]
            s["seconds"] += seconds
            s["packed"] += packed
            s["constants"] += consts
            s["params"] += w32.numel()
            s["rows"] += w32.shape[0]
        m = re.search(r"\.(\d+)\.", name)
        layers.append({"name": name, "layer": int(m.group(1)) if m else -1,
                       "module": name.rsplit(".", 1)[-1], "params": w32.numel(),
                       "errors": errors})
        if progress:
            progress((i + 1) / len(names), f"weight error: {name}")
    return {"layers": layers, "stats": stats, "missing": missing, "path": str(path),
            "other_params": other_params, "buffer_bytes": buffer_bytes}


def eval_items(preset, tokenizer, has_data: bool = True,
               rows: str = "eval") -> tuple[list[tuple[str, str]], str]:
    """([(prompt, full text)], where they come from). From the eval split of the preset's
    dataset (all rows if the split is empty or rows="all"; the base model has seen none of
    them, and more tokens give a less noisy score) made into examples as training makes them and
    rendered with the chat template; with train.completion_only_loss only the answer (full
    minus prompt) is scored, as in training, so boilerplate such as a default system prompt
    repeated in every row does not swamp the score. SAMPLE_TEXT (all scored) without data."""
    from workbench import data
    if not has_data:
        return [("", SAMPLE_TEXT)], "built-in sample text (no dataset)"
    loaded = data.load(preset.data)
    _, held = data.split(loaded.rows, preset.data.eval_fraction, preset.data.seed)
    if rows == "all" or not held:
        held, what = loaded.rows, "all rows" if rows == "all" else "all rows (eval split empty)"
    else:
        what = "eval split"
    items = []
    for ex in data.to_examples(held, preset.train.completion_only_loss):
        if "text" in ex:
            items.append(("", ex["text"]))
        elif "prompt" in ex:
            prompt = tokenizer.apply_chat_template(ex["prompt"], tokenize=False,
                                                   add_generation_prompt=True)
            items.append((prompt, tokenizer.apply_chat_template(
                ex["prompt"] + ex["completion"], tokenize=False)))
        else:
            items.append(("", tokenizer.apply_chat_template(ex["messages"], tokenize=False)))
    scored = "answers" if any(p for p, _ in items) else "all tokens"
    return items, f"{what} of {preset.data.path} ({len(held)} rows, {scored} scored)"


def token_batches(tokenizer, items, max_tokens: int, max_length: int = 512,
                  batch_tokens: int = 2048) -> list:
    """Tokenise (prompt, full) items, each cut at max_length, in order until max_tokens fed
    in all; right-padded batches of about batch_tokens: [(input_ids, attention_mask,
    labels)], labels -100 on padding and on prompt tokens (prompt "" = score everything)."""
    import torch
    seqs, total = [], 0
    for prompt, full in items:
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        ids = ids[:min(max_length, max_tokens - total)]
        skip = (len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
                if prompt and full.startswith(prompt) else 0)
        if len(ids) > max(skip, 1):  # something left to predict
            seqs.append((ids, skip))
            total += len(ids)
        if total >= max_tokens:
            break
    batches, group = [], []
    for item in seqs + [None]:
        width = max([len(x) for x, _ in group] + [len(item[0]) if item else 0])
        if group and (item is None or width * (len(group) + 1) > batch_tokens):
            w = max(len(x) for x, _ in group)
            input_ids = torch.full((len(group), w), tokenizer.pad_token_id or 0)
            mask = torch.zeros((len(group), w), dtype=torch.long)
            labels = torch.full((len(group), w), -100)
            for j, (x, skip) in enumerate(group):
                input_ids[j, :len(x)] = torch.tensor(x)
                mask[j, :len(x)] = 1
                labels[j, skip:len(x)] = torch.tensor(x[skip:])
            batches.append((input_ids, mask, labels))
            group = []
        if item is not None:
            group.append(item)
    return batches


def measure_perplexity(model, batches):
    """(exp(mean next-token loss over the scored tokens), tokens scored, the per-token
    losses as a 1-D float tensor in a fixed order, for paired comparisons)."""
    import math

    import torch
    losses = []
    dev = next(model.parameters()).device
    with torch.inference_mode():
        for input_ids, mask, labels in batches:
            logits = model(input_ids=input_ids.to(dev), attention_mask=mask.to(dev)).logits
            target = labels[:, 1:].to(dev).reshape(-1)
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]), target,
                ignore_index=-100, reduction="none")
            losses.append(nll[target != -100].cpu())
    losses = torch.cat(losses) if losses else torch.zeros(0)
    ppl = math.exp(losses.mean().item()) if len(losses) else float("nan")
    return ppl, len(losses), losses


def _is_cached(path, quant_cfg, dtype) -> bool:
    """Will load_model take this variant from its CPU cache of quantised weights?"""
    from workbench import models
    return models.is_quantized_cached(path, quant_cfg, dtype)


def compare(preset_or_model_dir, modes=DEFAULT_VARIANTS, eval_texts=None, progress=None, *,
            perplexity: bool = True, max_tokens: int = DEFAULT_MAX_TOKENS,
            eval_rows: str = "eval") -> dict:
    """Compare storing the model's linear weights as `modes` (names from VARIANTS).

    Returns {"model", "dtype", "device", "eval", "table", "layers", "nf4_vs_fp4", "notes",
    "seconds"}; see the module notes above and bench/README.md. progress(fraction, message)
    is called as it goes. perplexity=False skips loading the variants: footprints are then
    computed from the quantised tensors instead of measured. Perplexity is scored on up to
    max_tokens tokens of eval_texts (all scored), else of eval_items(rows=eval_rows)."""
    import gc
    import time

    from workbench import models
    started = time.perf_counter()
    report = progress or (lambda f, m: None)
    modes = list(dict.fromkeys(modes))
    for v in modes:
        variant(v)
    if max_tokens < 2:
        raise PresetError(f"quant compare: max_tokens {max_tokens} must be at least 2")
    preset, label, has_data = _source(preset_or_model_dir)
    q, trust = preset.quantization, preset.model.trust_remote_code
    share = 0.3 if perplexity else 1.0  # rough split of the progress bar
    w = weight_errors(preset.model.name_or_path, modes, dtype=q.compute_dtype, trust=trust,
                      progress=lambda f, m: report(share * f, m))
    notes = [f"{len(w['missing'])} linear weights not found under their module names in "
             f"the checkpoint, left out: {w['missing'][:3]}"] if w["missing"] else []
    rows, ev, losses = [], {"source": None, "texts": 0, "tokens": 0}, {}
    batches = None
    if perplexity:
        tokenizer = models.load_tokenizer(preset.model.name_or_path, trust)
        if eval_texts is None:
            items, ev["source"] = eval_items(preset, tokenizer, has_data, eval_rows)
        else:
            items, ev["source"] = [("", t) for t in eval_texts], "given texts"
        batches = token_batches(tokenizer, items, max_tokens, preset.train.max_length)
        ev["texts"] = sum(len(b[0]) for b in batches)
        ev["tokens_fed"] = sum(int(b[1].sum()) for b in batches)
        if not batches:
            from workbench.errors import DataError
            raise DataError(f"quant compare: nothing to score in {ev['source']}")
    dt_bytes = torch_dtype(q.compute_dtype).itemsize
    for i, v in enumerate(modes):
        mode, dq = variant(v)
        s = w["stats"][v]
        row = {"variant": v, "mode": mode, "double_quant": dq,
               "bits_per_param": round(variant_bits(v, q.compute_dtype, s["params"] / max(
                   s["rows"], 1)), 4),
               "storage_bits_per_param": round(8 * (s["packed"] + s["constants"])
                                               / max(s["params"], 1), 4),
               "footprint_bytes": w["other_params"] * dt_bytes + w["buffer_bytes"] + s["packed"],
               "footprint_measured": False, "constants_bytes": s["constants"],
               "quantize_seconds": round(s["seconds"], 3), "load_seconds": None,
               "load_cached": None, "mean_rel_error": None, "max_rel_error": None,
               "perplexity": None, "perplexity_change_pct": None}
        errs = [layer["errors"][v] for layer in w["layers"]]
        if errs:
            row["mean_rel_error"], row["max_rel_error"] = sum(errs) / len(errs), max(errs)
        if perplexity:
            report(share + (1 - share) * i / len(modes), f"loading {v} and measuring perplexity")
            qcfg = type(q)(mode=mode, double_quant=dq, compute_dtype=q.compute_dtype,
                           int8_threshold=q.int8_threshold)
            row["load_cached"] = _is_cached(models.resolve(preset.model.name_or_path), qcfg,
                                            q.compute_dtype)
            t0 = time.perf_counter()
            model = models.load_model(preset.model, qcfg)
            row["load_seconds"] = round(time.perf_counter() - t0, 2)
            # measured before any forward: on AVX512-BF16 CPUs the first 4-bit forward
            # repacks the weights into another layout
            row["footprint_bytes"] = models.footprint_bytes(model)
            row["footprint_measured"] = True
            row["perplexity"], ev["tokens"], losses[v] = measure_perplexity(model, batches)
            del model
            gc.collect()
        rows.append(row)
    base = next((r["perplexity"] for r in rows if r["variant"] == "none"), None)
    for r in rows:
        if base and r["perplexity"] is not None:
            r["perplexity_change_pct"] = round(100 * (r["perplexity"] / base - 1), 3)
    report(1.0, "done")
    notes += [
        "footprint_bytes is model.get_memory_footprint() (parameters and buffers), which "
        "does not count the quantisation constants (constants_bytes) that bnb keeps beside "
        "the packed weights." if perplexity else "footprint_bytes computed from the "
        "quantised tensors (perplexity off: no variant loaded).",
        "int8 weight error: the row-wise absmax int8 weight LLM.int8 stores (fp16 cast, "
        "int8_vectorwise_quant). The outlier threshold acts on activations at run time "
        "(outlier input columns multiply in 16-bit), so it changes perplexity, not this.",
        f"none = the checkpoint's weights cast to {q.compute_dtype}, the compute dtype.",
        "quantize_seconds: bitsandbytes quantising every linear weight on "
        f"{models.device()}, no cache; load_seconds: models.load_model, which on a CPU "
        "reuses a cache of quantised weights when load_cached is true."]
    return {"model": w["path"], "source": label, "dtype": q.compute_dtype,
            "device": models.device(), "eval": ev, "table": rows, "layers": w["layers"],
            "nf4_vs_fp4": nf4_vs_fp4(rows, w["layers"], losses), "notes": notes,
            "seconds": round(time.perf_counter() - started, 1)}


def nf4_vs_fp4(rows, layers, losses=None) -> dict:
    """Does NF4 beat FP4 here? Compared pairwise at equal double-quant setting, on mean
    weight error, matrices where its error is lower, and perplexity (when measured). With
    the per-token losses, a perplexity difference counts only when clear: the mean paired
    per-token loss difference beyond two standard errors (tokens treated as independent,
    which they are not quite: a rough guard against reading noise as a result)."""
    by = {r["variant"]: r for r in rows}
    pairs, parts = [], []
    for suffix in ("", "-dq"):
        n, f = by.get("nf4" + suffix), by.get("fp4" + suffix)
        if not n or not f or n["mean_rel_error"] is None:
            continue
        wins = sum(layer["errors"]["nf4" + suffix] < layer["errors"]["fp4" + suffix]
                   for layer in layers)
        pair = {"nf4": n["variant"], "fp4": f["variant"],
                "weight_error": [n["mean_rel_error"], f["mean_rel_error"]],
                "nf4_lower_error": n["mean_rel_error"] < f["mean_rel_error"],
                "matrices_nf4_lower": wins, "matrices": len(layers),
                "perplexity": [n["perplexity"], f["perplexity"]], "nf4_lower_perplexity": None}
        if n["perplexity"] is not None and f["perplexity"] is not None:
            pair["nf4_lower_perplexity"] = n["perplexity"] < f["perplexity"]
            pair["perplexity_clear"] = True
            d = (losses or {}).get(n["variant"]), (losses or {}).get(f["variant"])
            if d[0] is not None and d[1] is not None and len(d[0]) > 1:
                diff = d[0] - d[1]
                se = (diff.std() / len(diff) ** 0.5).item()
                pair["loss_diff"], pair["loss_diff_se"] = diff.mean().item(), se
                pair["perplexity_clear"] = abs(pair["loss_diff"]) > 2 * se
        pairs.append(pair)
        text = (f"{pair['nf4']} vs {pair['fp4']}: mean weight error {pair['weight_error'][0]:.4f}"
                f" vs {pair['weight_error'][1]:.4f} (NF4 lower in {wins}/{len(layers)} matrices)")
        if pair["nf4_lower_perplexity"] is not None:
            text += f", perplexity {n['perplexity']:.3f} vs {f['perplexity']:.3f}"
            if "loss_diff" in pair:
                text += (f" ({'clear' if pair['perplexity_clear'] else 'within noise'}: "
                         f"per-token loss difference {pair['loss_diff']:+.4f} "
                         f"± {2 * pair['loss_diff_se']:.4f})")
        parts.append(text)
    if not pairs:
        return {"pairs": [], "nf4_beats_fp4": None, "verdict": "NF4 vs FP4: not compared "
                "(include both nf4 and fp4 variants)"}
    def summary(flags, what):
        return (f"lower {what}" if all(flags) else f"higher {what}" if not any(flags)
                else f"mixed {what}")
    err = [p["nf4_lower_error"] for p in pairs]
    measured = [p for p in pairs if p["nf4_lower_perplexity"] is not None]
    ppl = [p["nf4_lower_perplexity"] for p in measured if p["perplexity_clear"]]
    wins = err + ppl
    beats = all(wins) if all(wins) or not any(wins) else None
    head = {True: "NF4 beats FP4 on this model and data",
            False: "NF4 does not beat FP4 on this model and data",
            None: "mixed result for NF4 vs FP4"}[beats]
    found = [summary(err, "weight error")]
    if measured:
        found.append(summary(ppl, "perplexity") if ppl else
                     "no clear perplexity difference")
    return {"pairs": pairs, "nf4_beats_fp4": beats,
            "verdict": f"{head} ({', '.join(found)}): " + "; ".join(parts)}

