"""Training speed and memory of the built-in presets, measured against the estimate.

    .venv/bin/python bench/train_bench.py [--presets cpu-demo lora-bf16 int8-lora]
                                          [--steps 8] [--repeats 3] [--markdown]

Each measurement is a fresh process running `launch.py dryrun PRESET` (the real training
code on the real data: K steps, nothing kept), so peak RSS belongs to that run alone. One
unmeasured warm-up run per preset first fills the caches (embedded import, quantised
weights). Figures are medians over --repeats runs, because the machine is shared and
noisy. glibc keeps freed blocks mapped, which makes RSS overstate live memory; the runs set
MALLOC_MMAP_THRESHOLD_ so RSS follows what is really in use.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_run(preset: str, steps: int, sets: list[str]) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = Path(fh.name)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(ROOT / "launch.py"), "dryrun", preset, "--steps", str(steps),
           "--json-out", str(out), *[a for s in sets for a in ("--set", s)]]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{preset}: dry run failed\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    result = json.loads(out.read_text())
    out.unlink()
    return result


def measure(preset: str, steps: int, repeats: int, sets: list[str]) -> dict:
    one_run(preset, 2, sets)  # warm-up: caches, not measured
    rs = [one_run(preset, steps, sets) for _ in range(repeats)]
    med = lambda key: statistics.median(r[key] for r in rs)  # noqa: E731
    est = rs[0]["estimate"] or {}
    return {"preset": preset, "repeats": repeats, "steps": steps,
            "seconds_per_step": med("seconds_per_step"),
            "tokens_per_second": med("tokens_per_second"),
            "peak_bytes": med("peak_bytes"), "padded_length": med("padded_length"),
            "estimate_bytes": est.get("total_bytes"),
            "all_seconds_per_step": [r["seconds_per_step"] for r in rs],
            "all_peak_bytes": [r["peak_bytes"] for r in rs]}


def markdown(rows: list[dict]) -> str:
    lines = ["| preset | s/step | tokens/s | peak RSS growth | estimate | estimate / measured |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        mib = lambda b: f"{b / 2**20:,.0f} MiB" if b else "?"  # noqa: E731
        ratio = (f"{r['estimate_bytes'] / r['peak_bytes']:.2f}"
                 if r["estimate_bytes"] and r["peak_bytes"] else "?")
        lines.append(f"| {r['preset']} | {r['seconds_per_step']:.2f} | "
                     f"{r['tokens_per_second']:.0f} | {mib(r['peak_bytes'])} | "
                     f"{mib(r['estimate_bytes'])} | {ratio} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=["cpu-demo", "lora-bf16", "int8-lora"])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    rows = []
    for preset in args.presets:
        row = measure(preset, args.steps, args.repeats, args.set)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.markdown:
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
