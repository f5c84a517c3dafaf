"""`launch.py bundle RUN` and `launch.py bundle --check DIR`: a run as a reproducibility
bundle, and the proof that its standalone script trains the same losses
(workbench.export.bundle)."""

from __future__ import annotations

import json
import sys

from workbench.errors import WorkbenchError


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=1, ensure_ascii=False, default=str))


def cmd_bundle(args) -> int:
    from workbench.export import bundle
    if args.check:
        if args.run or args.out:
            raise WorkbenchError("bundle --check DIR: give only the bundle folder (and "
                                 "--steps K), not a RUN or --out")
        from workbench.runs import lock
        with lock.held("bundle check", lock.subject_name(args.check)):
            # in --json mode the script's output goes to stderr: stdout holds the JSON
            report = bundle.check(args.check, args.steps,
                                  stdout=sys.stderr if args.json else None)
        if args.json:
            _print_json(report)
        else:
            print(bundle.check_table(report))
        return 0 if report["ok"] else 1
    if not args.run:
        raise WorkbenchError("bundle: give a RUN (see `launch.py runs`), or --check DIR")
    if args.steps is not None:
        raise WorkbenchError("bundle: --steps goes with --check DIR")
    rep = bundle.make(args.run, args.out,
                      progress=None if args.json else (lambda m: print(m, flush=True)))
    if args.json:
        _print_json(rep)
    else:
        data, base = rep["data"], rep["base"]
        print(f"bundle: {rep['path']}\nzip: {rep['zip']} ({rep['zip_bytes']:,} bytes)\n"
              f"data: {len(data['files'])} file(s), "
              f"{'copied' if data['copied'] else 'named by path (over 50 MB)'}\n"
              f"base: {base['name']} ({base['kind']}, "
              f"{'bundled' if base['bundled'] else 'named by path'})\n"
              f"check it: python launch.py bundle --check {rep['path']}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("bundle", help="write a run's reproducibility bundle (folder + "
                              ".zip), or --check one by re-running its standalone script")
    p.add_argument("run", nargs="?", help="run name or folder")
    p.add_argument("--out", help="bundle folder (default: <run>/bundle); the .zip goes next "
                   "to it")
    p.add_argument("--check", metavar="DIR", help="re-run the bundle's train.py (workbench "
                   "not importable) and compare its losses with metrics.jsonl")
    p.add_argument("--steps", type=int, default=None, metavar="K",
                   help="with --check: how many steps to re-run (default 6, at most the "
                   "run's last logged step)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_bundle)
