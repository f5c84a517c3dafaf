"""Quantisation quality of a preset's model as a Markdown table for bench/README.md.

    .venv/bin/python bench/quant_compare.py [PRESET] [--max-tokens N] [--all-rows]
                                            [--json OUT.json]

Runs workbench.quant.compare (none / int8 / nf4 / fp4, with and without double quant):
per-variant storage bits, measured footprint, quantise and load seconds, relative weight
error ||W - deq(q(W))|| / ||W|| (mean and max over the linear weights) and perplexity on the
preset's eval split; then the NF4-vs-FP4 verdict, the per-decoder-layer mean error of each
variant, and the machine it ran on. Timings depend on the machine's load: say so next to
them when pasting.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def markdown(result: dict) -> str:
    def num(x, fmt):
        return "-" if x is None else format(x, fmt)
    ev = result["eval"]
    out = [f"Model `{Path(result['model']).name}`, compute dtype {result['dtype']}, "
           f"{result['device']}; perplexity on {ev['tokens']} scored tokens "
           f"({ev.get('tokens_fed')} fed) of {ev['source']}.", "",
           "| variant | bits/weight | footprint (MB) | quantise s | load s | mean rel. error "
           "| max rel. error | perplexity | vs none |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["table"]:
        load = num(r["load_seconds"], ".1f") + (" (cached)" if r["load_cached"] else "")
        out.append(f"| {r['variant']} | {r['bits_per_param']:.3f} | "
                   f"{r['footprint_bytes'] / 1e6:.1f} | {r['quantize_seconds']:.1f} | {load} | "
                   f"{num(r['mean_rel_error'], '.5f')} | {num(r['max_rel_error'], '.4f')} | "
                   f"{num(r['perplexity'], '.3f')} | "
                   f"{num(r['perplexity_change_pct'], '+.2f')}% |")
    out += ["", result["nf4_vs_fp4"]["verdict"] + ".", ""]
    per_layer = defaultdict(lambda: defaultdict(list))
    for layer in result["layers"]:
        for v, e in layer["errors"].items():
            per_layer[layer["layer"]][v].append(e)
    variants = [r["variant"] for r in result["table"]]
    out += ["Mean relative weight error per decoder layer:", "",
            "| layer | " + " | ".join(variants) + " |",
            "|---:|" + "---:|" * len(variants)]
    for idx in sorted(per_layer):
        errs = per_layer[idx]
        out.append(f"| {idx} | " + " | ".join(
            f"{sum(errs[v]) / len(errs[v]):.4f}" for v in variants) + " |")
    out += ["", f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores; total "
            f"{result['seconds']:.0f} s."]
    return "\n".join(out)


def main() -> int:
    from workbench.quant import compare as quant
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", nargs="?", default="cpu-demo")
    parser.add_argument("--max-tokens", type=int, default=quant.DEFAULT_MAX_TOKENS)
    parser.add_argument("--all-rows", action="store_true",
                        help="perplexity on all rows, not only the eval split")
    parser.add_argument("--json", help="also write the whole result here")
    args = parser.parse_args()
    result = quant.compare(args.preset, max_tokens=args.max_tokens,
                           eval_rows="all" if args.all_rows else "eval",
                           progress=lambda f, m: print(f"[{100 * f:3.0f}%] {m}",
                                                       file=sys.stderr, flush=True))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
