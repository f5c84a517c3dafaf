"""Small helpers the tabs share: run choices, the one-job-at-a-time check, and how paths
and durations are shown. Everything here reads the run folders, never session state,
so a reloaded page or a second browser tab sees the same truth."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path

from workbench.runs import jobs
from workbench import paths
from workbench.config import Preset
from workbench.errors import RunError

ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # progress bars' cursor moves


def run_names(filter_fn=None) -> list[str]:
    """Run folder names, newest first, optionally filtered on the list_runs() dict."""
    from workbench import runs
    return [r["name"] for r in runs.list_runs() if filter_fn is None or filter_fn(r)]


def completed_with_adapter(r: dict) -> bool:
    return r.get("state") == "completed" and bool(r.get("has_adapter", True))


def with_adapter(r: dict) -> bool:
    return bool(r.get("has_adapter", r.get("state") == "completed"))


def active_run_name() -> str | None:
    from workbench.runs import jobs
    active = jobs.active()
    return Path(active).name if active else None


def refuse_if_busy(what: str) -> None:
    """Merge, chat and measuring load a model: refuse while training holds the memory."""
    running = active_run_name()
    if running:
        raise RunError(f"training run {running!r} is still running; {what} would compete "
                       "with it for memory. Wait until it finishes or stop it in the "
                       "Training tab.")


def find_run(name: str | None) -> Path:
    from workbench import runs
    if not name:
        raise RunError("choose a run first")
    return Path(runs.find(name))


def display_path(path: str | os.PathLike) -> str:
    """A path as the user should read it: under the home folder as ~/..., else as is."""
    p = Path(path)
    try:
        return "~/" + str(p.resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(p)


def duration(seconds) -> str:
    if seconds is None:
        return "–"
    try:
        s = int(round(float(seconds)))
    except (TypeError, ValueError):
        return "–"
    if s < 0:
        return "–"
    h, rem = divmod(s, 3600)
    mnt, sec = divmod(rem, 60)
    return f"{h}:{mnt:02d}:{sec:02d}" if h else f"{mnt}:{sec:02d}"


def home_label() -> str:
    return display_path(paths.home())


# -- work in its own process (dry run, quantisation comparison) --------------------------

def temp_preset(preset: Preset, prefix: str) -> Path:
    """The page's settings as a YAML file under WORKBENCH_HOME/tmp (the caller deletes it)."""
    from workbench.presets import to_yaml
    folder = paths.home() / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".yaml", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(to_yaml(preset))
    return Path(name)


def launch_lines(argv: list[str], stdout=None, env: dict | None = None):
    """Run `python launch.py ARGV` in its own process and yield its output lines as they
    come (stderr, plus stdout unless `stdout` is a file to write it to). A failure raises
    RunError with the command's `error:` line (or its last lines). Closing the generator
    (page closed, event cancelled) ends the process, so nothing keeps running unseen."""
    from workbench.ui.widgets import clean_message
    proc = subprocess.Popen([sys.executable, str(jobs.LAUNCH), *argv], cwd=paths.PROJECT_ROOT,
                            stdin=subprocess.DEVNULL, stdout=stdout or subprocess.PIPE,
                            stderr=subprocess.PIPE if stdout else subprocess.STDOUT,
                            text=True, errors="replace", env=jobs.child_env(**(env or {})),
                            start_new_session=True)
    tail: deque[str] = deque(maxlen=12)
    try:
        for raw in proc.stderr if stdout else proc.stdout:  # text mode: \r ends a line too
            line = ANSI_RE.sub("", raw).strip()
            if line:
                tail.append(line)
                yield line
        rc = proc.wait()
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
    if rc != 0:
        errors = [ln.removeprefix("error: ") for ln in tail if ln.startswith("error: ")]
        detail = errors[-1] if errors else " / ".join(list(tail)[-3:])
        raise RunError(f"{argv[0]} failed (exit code {rc}): {clean_message(detail)}")
