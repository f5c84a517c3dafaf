"""`launch.py dryrun PRESET`: train a few steps, measure, keep nothing (workbench.train.dryrun)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from workbench.runs.jobs import write_result
from workbench.train.dryrun import dry_run
from workbench.units import fmt_bytes

def cmd_dryrun(args) -> int:
    from workbench import presets
    preset = presets.load(args.preset, args.set)
    # with --json, stdout carries the JSON alone: progress and whatever else prints go to
    # stderr, so `dryrun --json > result.json` is a JSON file
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    with quiet:
        res = dry_run(preset, args.steps, progress=lambda m: print(m, flush=True))
    write_result(args.json_out, res)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    est = res.get("estimate") or {}
    mfu = (f"{100 * res['mfu']:.1f}% ({res['achieved_flops'] / 1e9:,.1f} of "
           f"{res['peak_flops'] / 1e9:,.1f} GFLOP/s)" if res.get("mfu") else "?")
    print(f"\ndry run of {args.preset} on {res['device']} ({res['steps']} steps):\n"
          f"  compute dtype      {res['dtype_reason']} [{res['cpu_capability']}]\n"
          f"  threads            {(res.get('threads') or {}).get('reason', '?')}\n"
          f"  checkpointing      {'on' if res['gradient_checkpointing'] else 'off'}"
          f"{' (auto)' if res['gradient_checkpointing_requested'] == 'auto' else ''}\n"
          f"  seconds per step   {res['seconds_per_step']}\n"
          f"  tokens per second  {res['tokens_per_second']}\n"
          f"  peak memory        {fmt_bytes(res['peak_bytes'])} ({res['peak_kind']})\n"
          f"  estimate           {fmt_bytes(est.get('total_bytes'))}\n"
          f"  FLOP utilisation   {mfu}\n"
          f"  whole run          {res['full_run_steps']} steps, about "
          f"{res['eta_seconds'] / 60:.1f} min")
    world = res.get("world_size") or 1
    if world > 1:  # measured in one process: what each of the run's processes needs
        print(f"  processes          {world} (distributed.processes): the figures above are "
              f"per process; the whole run reads {world} batches a step")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("dryrun", help="train a few steps to measure speed and memory "
                              "(nothing is kept)")
    p.add_argument("preset")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--json", action="store_true")
    p.add_argument("--json-out", help=argparse.SUPPRESS)  # the app's job reads this file
    p.set_defaults(func=cmd_dryrun)
