"""`launch.py eval RUN [RUN ...] [--prompts FILE] [--json]`: what tuning changed and what it
cost (workbench.evaluate): base and tuned answers to a prompt set with reference matches,
general answers kept, perplexity on the run's eval split and on the general probe.

A heavy command (runs.lock.HEAVY_COMMANDS): it loads a base model and runs for minutes, like
`quant compare`, so it holds the heavy lock and never runs beside training. With --json,
stdout is the one JSON document; progress (and anything a library prints) goes to stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _num(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def _clip(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _mark(flag) -> str:
    return {True: "✓", False: "✗", None: " "}[flag]


def format_report(rep: dict) -> str:
    p = rep["prompts"]
    lines = [f"prompt set: {p['path']} ({p['count']} prompts, {p['with_reference']} with a "
             f"reference); greedy, {rep['generation']['max_new_tokens']} new tokens; "
             f"{rep['base_loads']} base model(s) loaded", ""]
    for r in rep["runs"]:
        kg, ppl = r["kept_general"], r["perplexity"]
        lines += [f"== {r['run']} ({r['model']}, {r['quantization']})",
                  f"   matches       base {_pct(r['base_match_rate'])}, tuned "
                  f"{_pct(r['match_rate'])}",
                  f"   kept          {kg['kept']} of {kg['of']} answers the base gets right",
                  f"   perplexity    eval split: base {_num(ppl['eval']['base'])}, tuned "
                  f"{_num(ppl['eval']['tuned'])}   general: base "
                  f"{_num(ppl['general']['base'])}, tuned {_num(ppl['general']['tuned'])}",
                  "", f"   {'prompt':<34} {'base':<30}   {'tuned':<30}"]
        for a in r["answers"]:
            lines.append(f"   {_clip(a['prompt'], 34):<34} {_clip(a['base'], 30):<30} "
                         f"{_mark(a['base_match'])} {_clip(a['tuned'], 30):<30} "
                         f"{_mark(a['tuned_match'])}")
        lines.append("")
    lines += [f"saved: {path}" for path in rep.get("saved", [])]
    return "\n".join(lines)


def cmd_eval(args) -> int:
    from workbench import evaluate
    from workbench.runs import lock
    held = lock.current()
    if held is not None:  # name the runs in the lock, not "?"
        held.update(what=", ".join(lock.subject_name(r) for r in args.runs)[:120])
    if args.max_new_tokens is not None and not 1 <= args.max_new_tokens <= 1024:
        from workbench.errors import WorkbenchError
        raise WorkbenchError(f"--max-new-tokens: {args.max_new_tokens} is out of range; "
                             "allowed 1 to 1024")

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    # with --json, stdout carries the JSON alone: whatever else prints goes to stderr
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    with quiet:
        rep = evaluate.evaluate(args.runs, args.prompts, progress=progress,
                                max_new_tokens=args.max_new_tokens or evaluate.MAX_NEW_TOKENS)
    if args.json:
        print(json.dumps(rep, indent=1, ensure_ascii=False))
    else:
        print(format_report(rep))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="answer a prompt set with the base and each run; matches, forgetting, "
        "perplexity", description="Evaluate runs on a prompt set (JSONL/CSV: prompt, optional "
        "reference, optional system, optional answer; default: the shipped general probe). One base model is "
        "loaded per base; the report is also saved as eval/<timestamp>.json in each run.")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--prompts", metavar="FILE", help="prompt set (default: "
                   "data/general_probe.jsonl)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="longest answer in tokens (default 48)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON document")
    p.set_defaults(func=cmd_eval)
