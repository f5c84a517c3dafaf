"""`launch.py adapter inspect RUN`: what a LoRA adapter learned (workbench.export.spectrum)."""

from __future__ import annotations

import json

from workbench.export.spectrum import matrix, spectrum


def _print(result: dict) -> None:
    s = result["summary"]
    print(f"adapter {result['adapter']}: r={result['r']} alpha={result['alpha']} "
          f"scale={result['scale']:.4g}{' (rsLoRA)' if result['use_rslora'] else ''}")
    print(f"base: {result['base'] or '-'} ({result['base_note']})")
    grid = matrix(result)
    rel = matrix(result, "relative_norm")
    print(f"effective rank ({round(result['energy'] * 100)}% energy) by layer:")
    for j, module in enumerate(grid["modules"]):
        ranks = " ".join(f"{row[j]:>2}" if row[j] is not None else " -" for row in grid["values"])
        norms = [row[j] for row in rel["values"] if row[j] is not None]
        extra = f"  |dW|/|W| median {sorted(norms)[len(norms) // 2]:.2%}" if norms else ""
        print(f"  {module:<10} {ranks}{extra}")
    if s.get("modules"):
        print(f"median effective rank {s['median_effective_rank']:g} of r={s['r']}, "
              f"{s['modules']} modules")
    print(s["advice"])


def cmd_adapter(args) -> int:
    result = spectrum(args.run, base=args.base)
    if args.json:
        print(json.dumps(result, indent=1, ensure_ascii=False))
    else:
        _print(result)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("adapter", help="what a run's LoRA adapter learned: "
                              "singular values and effective rank per layer")
    p.add_argument("action", choices=["inspect"])
    p.add_argument("run", help="run name or folder, or an adapter folder")
    p.add_argument("--base", help="base model folder for |dW|/|W| (default: the run's)")
    p.add_argument("--json", action="store_true", help="print the full table as JSON")
    p.set_defaults(func=cmd_adapter)
