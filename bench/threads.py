"""Training speed under CPU load, by thread setting (issue 9, item 2).

    .venv/bin/python bench/threads.py [--preset cpu-demo] [--steps 5] [--repeats 2]
                                      [--loads 0 2] [--variants default one passive]

Each measurement is a fresh `launch.py dryrun PRESET --steps N` process (the real trainer
on the real data; the first step is left out of its median s/step). "load K" starts K
busy processes (`python -c "while True: pass"`) before it and stops them after. The
variants are environment settings of the training process:

- auto: no setting, so the product chooses (runs.threads: a short spin count when other
  processes keep the cores busy as the command starts, else torch's default);
- default: what torch does by itself (one thread per core, OpenMP's default wait policy),
  made explicit as GOMP_SPINCOUNT=300000, since without a setting the product now chooses;
- one: OMP_NUM_THREADS=1 (one thread);
- passive: OMP_WAIT_POLICY=PASSIVE (threads sleep at a barrier instead of spinning);
- half: OMP_NUM_THREADS = cores // 2;
- spin10k, spin1k: GOMP_SPINCOUNT=10000 / 1000 (libgomp's threads spin that many rounds at
  a barrier, then sleep; its default without a policy is 300000, PASSIVE is 0).

Runs are interleaved (variant by variant inside each repeat) so that a change in the
machine's background load spreads over all of them. Prints a markdown table of median
s/step and writes bench/results/threads.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORES = os.cpu_count() or 1
VARIANTS = {
    "auto": {},
    "default": {"GOMP_SPINCOUNT": "300000"},
    "one": {"OMP_NUM_THREADS": "1"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "half": {"OMP_NUM_THREADS": str(max(1, CORES // 2))},
    "spin10k": {"GOMP_SPINCOUNT": "10000"},
    "spin1k": {"GOMP_SPINCOUNT": "1000"},
}


def busy(k: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(k)]


def one_run(preset: str, steps: int, env_extra: dict) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = Path(fh.name)
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(PYTHONUNBUFFERED="1", **env_extra)
    cmd = [sys.executable, str(ROOT / "launch.py"), "dryrun", preset, "--steps", str(steps),
           "--json-out", str(out)]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"dry run failed ({env_extra})\n{proc.stdout[-2000:]}"
                         f"{proc.stderr[-2000:]}")
    result = json.loads(out.read_text())
    out.unlink()
    chosen = result.get("threads") or {}
    return {"seconds_per_step": result["seconds_per_step"], "wall": round(wall, 1),
            "spin_count": chosen.get("spin_count"), "busy_cores": chosen.get("busy_cores")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--loads", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--variants", nargs="+", default=["default", "one", "passive"],
                    choices=sorted(VARIANTS))
    args = ap.parse_args()
    import torch
    cpu = torch.backends.cpu.get_cpu_capability()
    results: dict = {"cpu": cpu, "cores": CORES, "preset": args.preset, "steps": args.steps,
                     "load_before": os.getloadavg()[0], "runs": []}
    out = ROOT / "bench" / "results" / "threads.json"
    out.parent.mkdir(exist_ok=True)
    one_run(args.preset, 2, {})  # warm-up: caches, not measured
    for load in args.loads:
        for rep in range(args.repeats):
            for name in args.variants:
                procs = busy(load)
                try:
                    r = one_run(args.preset, args.steps, VARIANTS[name])
                finally:
                    for p in procs:
                        p.kill()
                        p.wait()
                r.update(load=load, variant=name, repeat=rep)
                print(json.dumps(r), flush=True)
                results["runs"].append(r)
                out.write_text(json.dumps(results, indent=1))
    print(f"\nCPU {cpu}, {CORES} cores, {args.preset} dry run of {args.steps} steps, "
          f"median s/step of {args.repeats} runs each (load before: "
          f"{results['load_before']:.2f})\n")
    print("| variant | " + " | ".join(f"{k} busy processes" for k in args.loads) + " |")
    print("|---|" + "---:|" * len(args.loads))
    for name in args.variants:
        cells = []
        for load in args.loads:
            xs = [r["seconds_per_step"] for r in results["runs"]
                  if r["variant"] == name and r["load"] == load]
            cells.append(f"{statistics.median(xs):.2f} s ({', '.join(f'{x:.1f}' for x in xs)})")
        setting = json.dumps(VARIANTS[name]) if VARIANTS[name] else "the product chooses"
        print(f"| {name} ({setting}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
