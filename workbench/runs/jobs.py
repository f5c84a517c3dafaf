"""Detached training jobs: start, stop, resume, and find the running one.

A job is `python launch.py train --run-dir RUN` (or `resume RUN`) in its own process and
session, with its output in RUN/train.log: the same code path as the CLI. The web server
only starts it and then reads the run folder, so closing the page, reloading it or
restarting the server never touches the job. One job at a time on a machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from workbench import paths, runs
from workbench.config import Preset
from workbench.errors import RunError

LAUNCH = paths.PROJECT_ROOT / "launch.py"
_children: list[subprocess.Popen] = []  # reaped in active() so they never linger as zombies


def active() -> Path | None:
    """The run that is training now, if any (dead processes count as not running)."""
    for proc in list(_children):
        if proc.poll() is not None:
            _children.remove(proc)
    for info in runs.list_runs():
        if info["state"] == "running":
            return Path(info["path"])
    return None


def reconcile() -> list[str]:
    """Record `failed` in status.json for runs whose process died without saying so.

    Readers already report such runs as failed (pid liveness); the app calls this at
    start-up so the files say it too. Returns the names of the runs it marked."""
    marked = []
    for info in runs.list_runs():
        run = Path(info["path"])
        raw = runs.read_json(run / "status.json")
        if raw.get("state") == "running" and info["state"] == "failed":
            runs.write_status(run, state="failed", error=info["error"], phase="done",
                              ended_at=raw.get("updated_at") or runs.now_iso())
            marked.append(run.name)
    return marked


def _refuse_if_busy() -> None:
    busy = active()
    if busy is not None:
        raise RunError(f"run {busy.name} is still training: stop it or wait for it to finish "
                       "before starting another")


def child_env(**extra: str) -> dict:
    """The environment of a `launch.py` child: this WORKBENCH_HOME, unbuffered output."""
    return dict(os.environ, WORKBENCH_HOME=str(paths.home()), PYTHONUNBUFFERED="1",
                GRADIO_ANALYTICS_ENABLED="False", **extra)


def _spawn(run: Path, argv: list[str]) -> subprocess.Popen:
    env = child_env()
    with open(run / "train.log", "ab") as logf:
        proc = subprocess.Popen([sys.executable, str(LAUNCH), *argv], cwd=paths.PROJECT_ROOT,
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    _children.append(proc)
    runs.write_status(run, pid=proc.pid)
    return proc


def start(preset: Preset, name: str) -> Path:
    """Create a run folder for `preset` and train it in a detached process."""
    from workbench.train import prepare_run
    _refuse_if_busy()
    preset = Preset.from_dict(preset.to_dict())  # validate before anything is written
    run = prepare_run(preset, name)
    _spawn(run, ["train", "--run-dir", str(run)])
    return run


def resume(run_ref) -> Path:
    run = runs.find(run_ref)
    st = runs.status(run)
    if st["state"] not in ("stopped", "failed"):
        raise RunError(f"run {run.name} is {st['state']}: only a stopped or failed run can "
                       "be resumed")
    _refuse_if_busy()
    runs.write_status(run, state="running", phase="starting", pid=os.getpid(), error=None)
    _spawn(run, ["resume", str(run)])
    return run


def stop(run_ref, *, force: bool = False, grace: float = 0.0) -> Path:
    """Ask the run to stop at its next step (it saves its adapter and says `stopped`).

    With force, the process is killed after `grace` seconds if it has not stopped."""
    run = runs.find(run_ref)
    st = runs.status(run)
    if st["state"] != "running":
        raise RunError(f"run {run.name} is {st['state']}, not running")
    runs.request_stop(run)
    if force:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and runs.status(run)["state"] == "running":
            time.sleep(0.5)
        pid = st.get("pid")
        if runs.status(run)["state"] == "running" and runs.pid_alive(pid):
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            runs.write_status(run, state="stopped", phase="done", ended_at=runs.now_iso(),
                              error="killed before it could save; resume continues from the "
                                    "last checkpoint")
    return run
