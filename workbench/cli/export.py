"""`launch.py export RUN`: GGUF files + Ollama Modelfile, verified (workbench.export.gguf)."""

from __future__ import annotations

import argparse
import json

from workbench.export.gguf import TYPES, export
from workbench.runs.jobs import write_result
from workbench.units import fmt_bytes

# -- CLI ----------------------------------------------------------------------------------

def _print_report(report: dict) -> None:
    mark = {True: "OK", False: "FAILED", None: "not verified"}[report["ok"]]
    print(f"export {report['name']}: {mark}")
    for t, f in report["files"].items():
        check = (report.get("checks") or {}).get(t, {})
        rt = check.get("round_trip", {})
        nums = (f"max|dlogit| {rt['max_abs_diff']:.3g}, argmax {rt['argmax_agreement']:.1%}, "
                f"greedy {'same' if rt['greedy_equal'] else 'differs'}") if rt else ""
        print(f"  {t}: {f['path']} ({fmt_bytes(f['bytes'])}, {f['seconds']} s) "
              f"{'ok' if check.get('ok') else 'FAILED' if check else ''} {nums}")
    ref = report.get("reference") or {}
    if ref.get("applied"):
        print(f"  reference GGUF: min q/k correlation {ref['min_corr_qk']:.5f} "
              f"({'ok' if ref['ok'] else 'FAILED'})")
    if report.get("verify_error"):
        print(f"  verification could not run: {report['verify_error']}")
    print(f"  run it: {report['ollama']}")
    print(f"  details: {report['readme']}")


def cmd_export(args) -> int:
    types = TYPES if args.type == "both" else (args.type,)
    report = export(args.run, types=types, name=args.name, out_dir=args.out,
                    progress=None if args.json else (lambda m: print(m, flush=True)))
    write_result(args.json_out, report)
    if args.json:
        print(json.dumps(report, indent=1, ensure_ascii=False, default=str))
    else:
        _print_report(report)
    return 0 if report["ok"] else 1


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a run (or merged model folder) to GGUF "
                              "for llama.cpp / Ollama / LM Studio, verified")
    p.add_argument("run", help="run name or folder, or a merged model folder")
    p.add_argument("--type", choices=["f16", "q8_0", "both"], default="both")
    p.add_argument("--name", help="file name stem (default: the run's name)")
    p.add_argument("--out", help="output folder (default: <run>/export)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--json-out", help=argparse.SUPPRESS)  # the app's job reads this file
    p.set_defaults(func=cmd_export)
