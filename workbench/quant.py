"""Quantisation: the bitsandbytes config a preset's `quantization` section asks for.

    >>> bnb_config(QuantizationCfg(mode="nf4"))      # BitsAndBytesConfig(load_in_4bit=...)
    >>> bnb_config(QuantizationCfg(mode="none"))     # None: load 16-bit weights
    >>> torch_dtype("bf16")                          # torch.bfloat16

bitsandbytes 0.50 runs all three modes (nf4, fp4, int8) on a CPU as well as on CUDA.
"""

from __future__ import annotations

from workbench.errors import PresetError

_DTYPE_ALIASES = {
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "float32": "float32", "fp32": "float32", "float": "float32",
}


def _get(cfg, key: str, default=None):
    """Read a field from a QuantizationCfg or a plain dict (callers hold either)."""
    if isinstance(cfg, dict):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def torch_dtype(name):
    """'bfloat16' | 'bf16' | 'float16' | 'fp16' | 'float32' | 'fp32' (or a torch.dtype);
    'auto' is what this machine computes fastest (workbench.hardware)."""
    import torch
    if isinstance(name, torch.dtype):
        return name
    key = _DTYPE_ALIASES.get(str(name).strip().lower().removeprefix("torch."))
    if str(name).strip().lower() == "auto":
        from workbench.hardware import resolve_compute_dtype
        key = resolve_compute_dtype("auto").dtype
    if key is None:
        raise PresetError(f"quantization.compute_dtype: {name!r} is not one of "
                          "auto, bfloat16, float16, float32")
    return getattr(torch, key)


def bnb_config(quant_cfg):
    """BitsAndBytesConfig for mode int8 / nf4 / fp4; None for mode none (or no cfg)."""
    mode = (_get(quant_cfg, "mode", "none") or "none") if quant_cfg is not None else "none"
    if mode == "none":
        return None
    from transformers import BitsAndBytesConfig
    compute = torch_dtype(_get(quant_cfg, "compute_dtype", "auto"))
    if mode == "int8":
        return BitsAndBytesConfig(load_in_8bit=True,
                                  llm_int8_threshold=float(_get(quant_cfg, "int8_threshold", 6.0)))
    if mode in ("nf4", "fp4"):
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=mode,
            bnb_4bit_use_double_quant=bool(_get(quant_cfg, "double_quant", True)),
            bnb_4bit_compute_dtype=compute)
    raise PresetError(f"quantization.mode: {mode!r} is not one of none, int8, nf4, fp4")




# == Quantisation quality: compare none / int8 / nf4 / fp4 on a model and its data ========
# The measuring lives in workbench/quantlab.py (compare, weight_errors, eval_items, ...),
# reached as quant.compare etc. and imported on first use; the tables and the CLI are here.
#
#   >>> r = compare("cpu-demo")              # a preset name/path, a Preset or a model folder
#   >>> table_frame(r), layer_errors_frame(r)   # pandas frames for the app
#   python launch.py quant compare cpu-demo [--json] [--no-perplexity] [--max-tokens N]

_QUANTLAB = {"compare", "nf4_vs_fp4", "variant_bits", "weight_errors", "eval_items",
             "token_batches", "measure_perplexity", "VARIANTS", "DEFAULT_VARIANTS",
             "DEFAULT_MAX_TOKENS", "SAMPLE_TEXT"}


def __getattr__(name):
    if name in _QUANTLAB:
        from workbench import quantlab
        return getattr(quantlab, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- tables for the app, and the CLI ------------------------------------------------------

TABLE_COLUMNS = ["variant", "bits_per_param", "footprint_bytes", "load_seconds",
                 "quantize_seconds", "mean_rel_error", "max_rel_error", "perplexity",
                 "perplexity_change_pct"]


def table_frame(result: dict):
    """One row per variant, the columns of TABLE_COLUMNS (pandas.DataFrame)."""
    import pandas as pd
    return pd.DataFrame([{c: r.get(c) for c in TABLE_COLUMNS} for r in result["table"]],
                        columns=TABLE_COLUMNS)


def layer_errors_frame(result: dict):
    """Long form for a line plot across layers: columns layer, module, name, variant, error;
    one row per (linear weight, variant), in model order."""
    import pandas as pd
    rows = [{"layer": layer["layer"], "module": layer["module"], "name": layer["name"],
             "variant": v, "error": e}
            for layer in result["layers"] for v, e in layer["errors"].items()]
    return pd.DataFrame(rows, columns=["layer", "module", "name", "variant", "error"])


def format_table(result: dict) -> str:
    def num(x, fmt):
        return "-" if x is None else format(x, fmt)
    ev = result["eval"]
    lines = [f"model {result['model']} ({result['dtype']}, {result['device']}); " + (
        f"perplexity on {ev['tokens']} scored tokens ({ev.get('tokens_fed')} fed) of "
        f"{ev['source']}" if ev["source"]
        else "perplexity not measured"), "",
             f"{'variant':<8} {'bits/w':>6} {'footprint':>10} {'load s':>8} {'quant s':>8} "
             f"{'mean err':>9} {'max err':>8} {'ppl':>9} {'ppl +%':>7}"]
    for r in result["table"]:
        load = num(r["load_seconds"], ".1f") + ("c" if r["load_cached"] else "")
        lines.append(
            f"{r['variant']:<8} {r['bits_per_param']:>6.3f} "
            f"{r['footprint_bytes'] / 2**20:>8.1f}MB{'' if r['footprint_measured'] else '*'}"
            f" {load:>8} {r['quantize_seconds']:>8.2f} {num(r['mean_rel_error'], '.5f'):>9} "
            f"{num(r['max_rel_error'], '.4f'):>8} {num(r['perplexity'], '.3f'):>9} "
            f"{num(r['perplexity_change_pct'], '+.2f'):>7}")
    lines += ["", "c = loaded from the cache of quantised weights; * = computed, not measured",
              result["nf4_vs_fp4"]["verdict"], *[f"note: {n}" for n in result["notes"]]]
    return "\n".join(lines)


def _cmd_compare(args) -> int:
    import json
    import sys

    from workbench import presets
    from workbench.quantlab import DEFAULT_VARIANTS, compare
    target = args.preset
    if args.set:
        target = presets.load(args.preset, args.set)
    modes = [m.strip() for m in args.variants.split(",") if m.strip()] if args.variants \
        else DEFAULT_VARIANTS
    if args.max_tokens < 2:
        raise PresetError(f"--max-tokens: {args.max_tokens} must be at least 2")

    shown = set()

    def progress(fraction, message):  # weight errors come per matrix: show every 10%
        key = int(10 * fraction) if message.startswith("weight error") else message
        if not args.quiet and key not in shown:
            shown.add(key)
            print(f"[{100 * fraction:3.0f}%] {message}", file=sys.stderr, flush=True)
    result = compare(target, modes, progress=progress, perplexity=not args.no_perplexity,
                     max_tokens=args.max_tokens, eval_rows="all" if args.all_rows else "eval")
    print(json.dumps(result, indent=1, default=str) if args.json else format_table(result))
    return 0


def register_cli(subparsers) -> None:
    from workbench.quantlab import DEFAULT_MAX_TOKENS, VARIANTS
    p = subparsers.add_parser("quant", help="compare quantisations of a model (quality, "
                              "size, speed)")
    sub = p.add_subparsers(dest="quant_command", required=True)
    c = sub.add_parser("compare", help="none / int8 / nf4 / fp4 (with and without double "
                       "quant): footprint, load time, per-layer weight error, perplexity")
    c.add_argument("preset", help="preset name or YAML path, or a model folder, .gguf file "
                   "or embedded:NAME (then perplexity uses a sample text)")
    c.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a preset value, e.g. --set quantization.compute_dtype=float32")
    c.add_argument("--variants", help="comma-separated subset of " + ",".join(VARIANTS))
    c.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                   help=f"tokens of eval text for perplexity (default {DEFAULT_MAX_TOKENS})")
    c.add_argument("--all-rows", action="store_true", help="score perplexity on all rows "
                   "of the dataset, not only its eval split (more tokens, less noise)")
    c.add_argument("--no-perplexity", action="store_true", help="quick: weight errors only, "
                   "no variant loaded")
    c.add_argument("--json", action="store_true", help="print the whole result as JSON")
    c.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    c.set_defaults(func=_cmd_compare)
