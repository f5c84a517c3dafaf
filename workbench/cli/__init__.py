"""The headless command line: everything the app does, from the same preset files.

    python launch.py                          # the app (same as `launch.py ui`)
    python launch.py train PRESET [--set section.key=value ...] [--name NAME]
    python launch.py resume RUN | stop RUN | merge RUN
    python launch.py chat RUN --prompt TEXT [--json]
    python launch.py eval RUN [RUN ...] [--prompts FILE] [--json]
    python launch.py votes [--json]
    python launch.py data inspect FILE [--json]
    python launch.py presets list | show NAME | validate PATH
    python launch.py runs list [--json] | runs show RUN [--json]

A user error (bad preset, missing file, wrong run state) prints one `error: ...` line on
stderr and exits 2, without a traceback. Heavy libraries load only in the commands that
need them, so `--help` and the app's start are quick.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
from pathlib import Path

from workbench.errors import WorkbenchError

__all__ = ["main", "build_parser"]

# The command table: the modules of this package that add subcommands through
# register(subparsers), in the order `--help` lists them (train ... runs come first, below).
COMMAND_MODULES = ["ui", "data", "memory", "dryrun", "quant", "export", "adapter", "eval",
                   "votes", "bundle"]


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=1, ensure_ascii=False, default=str))


# -- train / resume / stop / merge / chat ------------------------------------------------

def cmd_train(args) -> int:
    from workbench import presets, runs, train
    from workbench.runs import lock
    if args.run_dir:  # a job the app started (runs.jobs): the folder holds preset.yaml
        run = Path(args.run_dir)
    else:
        if not args.preset:
            raise WorkbenchError("train: give a PRESET (a name from `presets list` or a "
                                 "YAML path)")
        preset = presets.load(args.preset, args.set)
        name = args.name or Path(args.preset).stem
        run = runs.create(preset, name)
        held = lock.current()
        if held is not None:  # the heavy lock names the run, not the preset, from now on
            held.update(what=run.name)
        print(f"run folder: {run}", flush=True)
    final = train.train(run)
    print(f"run: {run}")
    return 0 if final.get("state") in ("completed", "stopped") else 1


def cmd_resume(args) -> int:
    from workbench import runs, train
    run = runs.find(args.run)
    st = runs.status(run)
    # nobody writes status.json for a job about to resume (runs.jobs): "running" here is
    # another process training this run
    if st["state"] == "running":
        raise WorkbenchError(f"run {run.name} is still running (pid {st.get('pid')})")
    if st["state"] == "completed":
        raise WorkbenchError(f"run {run.name} already completed; nothing to resume")
    final = train.train(run, resume=True)
    print(f"run: {run}")
    return 0 if final.get("state") in ("completed", "stopped") else 1


def cmd_stop(args) -> int:
    from workbench.runs import jobs
    run = jobs.stop(args.run, force=args.force, grace=args.grace)
    print(f"stop requested: {run.name} stops at its next step and saves its adapter")
    return 0


def cmd_merge(args) -> int:
    from workbench.export import merge
    from workbench.runs.jobs import write_result
    rep = merge.merge(args.run, progress=lambda m: print(m, file=sys.stderr, flush=True))
    write_result(args.json_out, rep)
    if args.json:
        _print_json(rep)
    else:
        print(f"merged: {rep['path']}\nverification: max |logit difference| "
              f"{rep['max_abs_logit_diff']:.2e} (tolerance {rep['tolerance']}), "
              f"argmax agreement {100 * rep['argmax_agreement']:.1f}%")
    return 0


def cmd_chat(args) -> int:
    """Not a heavy job (runs.lock): it takes no lock, but waits its turn like the page's
    chat, refused while a heavy job holds the memory."""
    from workbench import chat, runs
    from workbench.runs import lock
    lock.check_free()
    gen = runs.load_preset(runs.find(args.run)).generation
    if args.max_new_tokens:
        gen.max_new_tokens = args.max_new_tokens
    result = chat.compare_once(args.run, args.prompt, gen)
    if args.json:
        _print_json(result)
    else:
        print(f"prompt: {result['prompt']}\n\n--- base ---\n{result['base']}\n\n"
              f"--- tuned ({result['run']}) ---\n{result['tuned']}")
    return 0


# -- presets / runs ----------------------------------------------------------------------

def cmd_presets(args) -> int:
    from workbench import presets
    if args.action == "list":
        for p in presets.list_presets():
            print(f"{p['name']:<16} {p['kind']:<8} {p['description']}")
    elif args.action == "show":
        if not args.target:
            raise WorkbenchError("presets show: give a preset NAME")
        path = presets.find(args.target)
        preset = presets.load(args.target)
        print(presets.to_yaml(preset, presets.description(path.read_text(encoding="utf-8"))),
              end="")
    else:
        if not args.target:
            raise WorkbenchError("presets validate: give a PATH")
        presets.load(args.target)
        print(f"ok: {args.target} is a valid preset")
    return 0


def cmd_runs(args) -> int:
    from workbench import runs
    if args.action == "show":
        return _show_run(args)
    rows = runs.list_runs()
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no runs yet: start one with `python launch.py train cpu-demo`")
    for r in rows:
        steps = f"{r['step']}/{r['max_steps'] or '?'}"
        extra = f"  {r['error']}" if r["state"] == "failed" and r.get("error") else ""
        print(f"{r['name']:<40} {r['state']:<10} step {steps:<10}{extra}")
    return 0


def _show_run(args) -> int:
    """One run: its state, and the watch prompts' answers at each eval step (samples.jsonl)."""
    from workbench import runs
    if not args.target:
        raise WorkbenchError("runs show: give a RUN (a name from `launch.py runs`)")
    run = runs.find(args.target)
    st, samples = runs.status(run), runs.samples(run)
    if args.json:
        _print_json({"run": run.name, "status": st, "samples": samples})
        return 0
    print(f"{run.name}: {st.get('state')}, step {st.get('step')}/{st.get('max_steps') or '?'}"
          + (f"\nerror: {st['error']}" if st.get("error") else ""))
    if not samples:
        print("no samples yet: the watch prompts (train.watch_prompts) are answered at "
              "each eval step (train.eval_steps)")
    step = None
    for s in samples:
        if s.get("step") != step:
            step = s.get("step")
            print(f"\n--- step {step} ---")
        print(f"Q: {s.get('prompt')}\nA: {s.get('answer')}")
    return 0


# -- parser --------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="launch.py", description="Workbench: fine-tune small language models with "
        "QLoRA. With no command, starts the app.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a preset (headless)")
    p.add_argument("preset", nargs="?", help="built-in or user preset name, or a YAML path")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a preset value, e.g. --set train.max_steps=10")
    p.add_argument("--name", help="run name (default: the preset's name)")
    p.add_argument("--run-dir", help=argparse.SUPPRESS)  # used by the app's detached jobs
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("resume", help="continue a stopped or failed run")
    p.add_argument("run")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("stop", help="ask a running run to stop at its next step")
    p.add_argument("run")
    p.add_argument("--force", action="store_true", help="kill it if it has not stopped")
    p.add_argument("--grace", type=float, default=30.0, help="seconds to wait before --force")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("merge", help="merge a run's adapter into its base and verify it")
    p.add_argument("run")
    p.add_argument("--json", action="store_true")
    p.add_argument("--json-out", help=argparse.SUPPRESS)  # the app's job reads this file
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("chat", help="answer a prompt with the base and the tuned model")
    p.add_argument("run")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--json", action="store_true", help='print {"prompt","base","tuned"}')
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("presets", help="list, show or validate presets")
    p.add_argument("action", choices=["list", "show", "validate"])
    p.add_argument("target", nargs="?")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("runs", help="list runs, or show one with its answers during training")
    p.add_argument("action", choices=["list", "show"], nargs="?", default="list")
    p.add_argument("target", nargs="?", metavar="RUN", help="the run to show")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    for name in COMMAND_MODULES:
        importlib.import_module(f"workbench.cli.{name}").register(sub)
    return parser


def _command_key(args) -> tuple:
    """(command, subcommand or None), as runs.lock.HEAVY_COMMANDS names them."""
    command = getattr(args, "command", None)
    return command, getattr(args, "quant_command", None) if command == "quant" else None


@contextlib.contextmanager
def _heavy_lock(args):
    """A heavy command (runs.lock.HEAVY_COMMANDS) holds the heavy lock while it runs, so it
    never runs beside another one, whoever started that; a second one gets one `error:`
    line (runs.lock.Busy). Once it holds the lock, what killed writers left is cleaned."""
    from workbench.runs.lock import HEAVY_COMMANDS
    kind = HEAVY_COMMANDS.get(_command_key(args))
    if kind is None:
        yield
        return
    from workbench import runs
    from workbench.runs import lock
    subject = next((v for v in (getattr(args, k, None) for k in ("run_dir", "run", "preset"))
                    if v), "")
    with lock.held(kind, lock.subject_name(subject)):
        runs.clean_stale_temps()
        yield


def _choose_threads(args) -> None:
    """A command that runs a model chooses how its threads wait (runs.threads), before
    anything imports torch."""
    from workbench.runs.lock import HEAVY_COMMANDS
    key = _command_key(args)
    if key in HEAVY_COMMANDS or key == ("chat", None):
        from workbench.runs import threads
        threads.apply()


def main(argv: list[str] | None = None) -> int:
    from workbench.errors import error_line
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    # text that cannot be encoded (a file name with undecodable bytes, a non-UTF-8
    # terminal) prints as \udc80-style escapes instead of raising UnicodeEncodeError
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["ui", *argv]
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _choose_threads(args)
    try:
        with _heavy_lock(args):
            return int(args.func(args) or 0)
    except WorkbenchError as exc:  # one line, escaped and capped (errors.error_line)
        print(error_line(exc), file=sys.stderr)
        if getattr(args, "json_out", None):  # a job's caller reads its result file
            from workbench.runs.jobs import write_result
            write_result(args.json_out, {"error": str(exc)})
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
