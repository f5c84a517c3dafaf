"""`launch.py quant compare PRESET`: none / int8 / nf4 / fp4 quality (workbench.quant.compare);
`launch.py quant measure PRESET`: the model loaded as configured, its footprint
(workbench.train.measure)."""

from __future__ import annotations

import argparse

from workbench.errors import PresetError
from workbench.runs.jobs import write_result
from workbench.units import fmt_bytes

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
            f"{r['footprint_bytes'] / 1e6:>8.1f}MB{'' if r['footprint_measured'] else '*'}"
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
    from workbench.quant import DEFAULT_VARIANTS
    from workbench.quant.compare import compare
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
    write_result(args.json_out, result)
    print(json.dumps(result, indent=1, default=str) if args.json else format_table(result))
    return 0


def _cmd_measure(args) -> int:
    """Load the preset's model as training will and print what it takes
    (workbench.train.measure; the app's "Load and measure" runs this in a child)."""
    import json

    from workbench import presets
    from workbench.train.measure import load_and_measure
    preset = presets.load(args.preset, args.set)
    print(f"loading {preset.model.name_or_path} ({preset.quantization.mode})", flush=True)
    res = load_and_measure(preset.model, preset.quantization)
    write_result(args.json_out, res)
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(measure_text(res))
    return 0


def measure_text(res: dict) -> str:
    full = res["full16_bytes"]
    share = f"{100 * res['measured_bytes'] / full:.0f}% of " if full else ""
    return (f"model {res['model']} ({res['mode']}): {fmt_bytes(res['measured_bytes'])} "
            f"loaded ({share}{fmt_bytes(full)} in 16-bit), load time {res['seconds']:.1f} s")


def register(subparsers) -> None:
    from workbench.quant import VARIANTS
    from workbench.quant.compare import DEFAULT_MAX_TOKENS
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
    c.add_argument("--json-out", help=argparse.SUPPRESS)  # the app's job reads this file
    c.set_defaults(func=_cmd_compare)

    c = sub.add_parser("measure", help="load the model as the preset says (quantised or "
                       "not) and measure its footprint against 16-bit")
    c.add_argument("preset", help="preset name or YAML path")
    c.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a preset value, e.g. --set quantization.mode=int8")
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    c.add_argument("--json-out", help=argparse.SUPPRESS)  # the app's job reads this file
    c.set_defaults(func=_cmd_measure)
