"""Heavy work in child processes: `spawn`, the one way to start one, and training jobs.

Everything that loads a model (train, resume, dry run, merge, "load and measure", the
quantisation comparison, GGUF export) runs as `python launch.py COMMAND ...` in a process
of its own, started by `spawn`. So the web server never holds a model (the page stays
responsive, and an out-of-memory kill takes only the child), and the page and the CLI run
the same code. This module is the only one in workbench/ that calls subprocess.

The contract with a child:
- its command line is a launch.py command (`command` builds it, once); its environment
  comes from `child_env` (this WORKBENCH_HOME, unbuffered output);
- its stdout and stderr go to a log file: progress for people to read (the page tails it),
  never parsed for results;
- with `result=FILE`, spawn adds `--json-out FILE` and the child writes its result there
  as JSON, or {"error": "..."} on a user error (cli.main does that for every command);
- it runs in a session of its own, so `Job.stop` ends it with its helpers, and a detached
  job (training) outlives the page and the server.

Training (`start`, `resume`) is a detached job whose log is RUN/train.log and whose result
is the run folder itself. `start` creates the folder (runs.create: preset.yaml only); the
child writes status.json with its own pid, and start/resume return once it has, so a
caller reads the child's state, never a guess.

One heavy job at a time (runs.lock): `spawn` takes the heavy lock for a heavy command
before it starts the child and hands it over, so a second job is refused before anything
is created, and the lock then lives exactly as long as the child.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

from workbench import fsio, paths, runs
from workbench.config import Preset
from workbench.errors import RunError
from workbench.runs import lock

LAUNCH = paths.PROJECT_ROOT / "launch.py"
# how long start/resume wait for the child to record its pid before returning anyway
# (the readers then say "starting" until it does)
RECORD_TIMEOUT_S = 60.0
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # progress bars redraw with \r: each frame a line
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Job:
    """A child process started by `spawn`: its log, its result file, and how to end it."""

    def __init__(self, kind: str, argv: list[str], proc: subprocess.Popen, log: Path,
                 result: Path | None, detached: bool, offset: int, run: Path | None = None):
        self.kind, self.argv, self.proc = kind, argv, proc
        self.log, self.result_path, self.detached = log, result, detached
        self.offset = offset  # where this job's output starts in its log (train.log grows)
        self.run = run        # the run folder a training job trains

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout)

    def stop(self, grace: float = 10.0) -> None:
        """End the child and everything it started: SIGTERM, then SIGKILL after `grace`."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(grace)
        except (OSError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                self.proc.kill()
            self.proc.wait()

    def lines(self, poll: float = 0.2) -> Iterator[str]:
        """The lines this job writes to its log, as they are written, until it exits.

        Closing the iterator early (the page went away, the event was cancelled) ends the
        child, unless it is detached: nothing keeps loading a model that nobody waits for.
        """
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        try:
            with open(self.log, "rb") as fh:
                fh.seek(self.offset)
                while True:
                    ended = self.proc.poll() is not None  # before reading: nothing lost
                    chunk = fh.read(65536)
                    if chunk:
                        pending += decoder.decode(chunk)
                        *complete, pending = _LINE_BREAK.split(pending)
                        yield from complete
                    elif ended:
                        break
                    else:
                        time.sleep(poll)
            pending += decoder.decode(b"", final=True)
            if pending:
                yield pending
        finally:
            if not self.detached:
                self.stop()

    def read_result(self) -> dict | None:
        """What the child wrote to its result file (None: nothing, or not a JSON object)."""
        if self.result_path is None:
            return None
        data = runs.read_json(self.result_path)
        return data if isinstance(data, dict) and data else None

    def error(self) -> str:
        """Why the job failed, in one line: the result file's "error", else the last
        `error: ...` line of its log, else its last lines."""
        data = self.read_result() or {}
        if data.get("error"):
            return str(data["error"])
        try:
            with open(self.log, "rb") as fh:
                fh.seek(max(self.offset, fh.seek(0, os.SEEK_END) - 16_000))
                text = fh.read().decode("utf-8", errors="replace")
        except OSError:
            text = ""
        lines = [ln.strip() for ln in _LINE_BREAK.split(_ANSI.sub("", text)) if ln.strip()]
        errors = [ln.removeprefix("error:").strip() for ln in lines if ln.startswith("error:")]
        if errors:
            return errors[-1]
        return " / ".join(lines[-3:]) or f"{self.kind} ended without a result"


_jobs: list[Job] = []  # reaped in reap() so finished children never linger as zombies
_jobs_lock = threading.Lock()  # the page's handlers run in several threads


def child_env(**extra: str) -> dict:
    """The environment of a `launch.py` child: this WORKBENCH_HOME and unbuffered output.
    How its threads wait at a barrier the child decides itself when it starts, from how
    busy the machine is then (runs.threads), as a command started in a terminal does."""
    return dict(os.environ, WORKBENCH_HOME=str(paths.home()), PYTHONUNBUFFERED="1",
                GRADIO_ANALYTICS_ENABLED="False", **extra)


def command(argv: list[str]) -> list[str]:
    """The child's command line for a launch.py command (tests replace it with a stand-in
    child; everything else about spawning stays real)."""
    return [sys.executable, str(LAUNCH), *argv]


def spawn(kind: str, argv: list[str], *, log: str | os.PathLike,
          result: str | os.PathLike | None = None, detached: bool = False,
          env: dict | None = None, run: Path | None = None,
          held: lock.HeavyLock | None = None) -> Job:
    """Start `launch.py ARGV` in a process of its own; its output goes to `log`.

    `kind` names the job in messages. With `result`, the child gets `--json-out RESULT`
    (a stale file of that name is removed first, so what is read afterwards is this
    job's). A detached job's log is appended to (train.log holds every attempt of a run);
    another job's log is its own and starts empty. `env` adds variables to child_env.

    A heavy command (lock.HEAVY_COMMANDS) first takes the heavy lock (lock.Busy, one line,
    when another heavy job runs; `held`: a lock the caller took already) and hands it to
    the child."""
    if held is None:
        job = lock.job_of(list(argv))
        held = lock.acquire(*job) if job is not None else None
    try:
        return _spawn(kind, argv, log=log, result=result, detached=detached, env=env,
                      run=run, held=held)
    finally:
        if held is not None:
            held.release()  # a no-op once handed to the child; else the spawn failed


def _spawn(kind, argv, *, log, result, detached, env, run, held) -> Job:
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = list(argv)
    if result is not None:
        result = Path(result)
        result.unlink(missing_ok=True)
        argv += ["--json-out", str(result)]
    extra = dict(env or {})
    if held is not None:
        extra[lock.FD_ENV] = str(held.fd)
    with open(log, "ab" if detached else "wb") as fh:
        offset = fh.tell()
        proc = subprocess.Popen(command(argv), cwd=paths.PROJECT_ROOT,
                                stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                env=child_env(**extra), start_new_session=True,
                                pass_fds=(held.fd,) if held is not None else ())
    if held is not None:
        held.hand_to(proc.pid)
    job = Job(kind, argv, proc, log, result, detached, offset, run)
    reap()
    with _jobs_lock:
        _jobs.append(job)
    return job


def run_group(cmd: list[str], *, env: dict, echo) -> int:
    """Run a launcher (torchrun, accelerate launch) and its worker processes to the end,
    from a training process (train.distributed.supervise): its output, as it comes, goes
    to `echo(text)` (so it reaches train.log from a terminal too); returns its exit code.
    It stays in this process's group, so stopping the job (Job.stop) reaches it, and the
    launcher ends its workers."""
    proc = subprocess.Popen(cmd, cwd=paths.PROJECT_ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=child_env(**env))
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        while chunk := proc.stdout.read1(65536):
            echo(decoder.decode(chunk))
        return proc.wait()
    except BaseException:  # Ctrl-C or a signal here: the launcher ends its workers
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    finally:
        proc.stdout.close()


def stop_attached(grace: float = 2.0) -> None:
    """End every child this process started that is not detached (a merge, an export, a
    measurement the page waits for), at once: SIGTERM, SIGKILL after `grace` seconds. The
    server calls it as it shuts down; detached training jobs keep running."""
    with _jobs_lock:
        attached = [job for job in _jobs if not job.detached and job.poll() is None]
    for job in attached:
        try:
            os.killpg(job.pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    for job in attached:
        try:
            job.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            job.stop(grace=0.0)
    reap()


def reap() -> None:
    """Forget children that have ended (polling them reaps the zombie)."""
    with _jobs_lock:
        _jobs[:] = [job for job in _jobs if job.poll() is None]


# -- training jobs -----------------------------------------------------------------------

def active() -> Path | None:
    """The run that is training now, if any (dead processes count as not running)."""
    reap()
    for job in list(_jobs):  # started here and not taken over yet: status.json cannot say so
        if job.run is not None and job.poll() is None:
            raw = runs.read_json(job.run / "status.json")
            if raw.get("pid") != job.pid:  # (once it has, its status.json is the truth,
                return job.run             # even while a finished child is exiting)
    for info in runs.list_runs():
        if info["state"] == "running":
            return Path(info["path"])
    return None


def orphans() -> list[str]:
    """Runs whose status.json says running although their process is gone (killed, power
    loss): the readers report them failed; the app names them at start-up."""
    out = []
    for info in runs.list_runs():
        raw = runs.read_json(Path(info["path"]) / "status.json")
        if raw.get("state") == "running" and info["state"] != "running":
            out.append(info["name"])
    return out


def _refuse_if_busy() -> None:
    busy = active()
    if busy is not None:
        raise RunError(f"run {busy.name} is still training: stop it or wait for it to finish "
                       "before starting another")
    lock.check_free()  # a merge, export, dry run ... from the page or the CLI


def _train_job(kind: str, run: Path, argv: list[str],
               held: lock.HeavyLock | None = None) -> Job:
    """Start the training child and wait until it has taken the run folder over (its pid
    in status.json); a child that ends first raises its error."""
    job = spawn(kind, argv, log=run / "train.log", detached=True, run=run, held=held)
    deadline = time.monotonic() + RECORD_TIMEOUT_S
    while time.monotonic() < deadline:
        ended = job.poll() is not None  # before reading: a quick child still counts
        if runs.read_json(run / "status.json").get("pid") == job.pid:
            return job
        if ended:
            raise RunError(f"{kind} of run {run.name} did not start: {job.error()}")
        time.sleep(0.05)
    return job


def start(preset: Preset, name: str) -> Path:
    """Create a run folder for `preset` and train it in a detached process."""
    _refuse_if_busy()
    preset = Preset.from_dict(preset.to_dict())  # validate before anything is written
    held = lock.acquire("train", name)  # before the folder: a refused start leaves nothing
    try:
        run = runs.create(preset, name)
        held.update(what=run.name)
        _train_job("train", run, ["train", "--run-dir", str(run)], held)
    finally:
        held.release()  # a no-op once the child has it
    return run


def resume(run_ref) -> Path:
    """Continue a stopped or failed run from its last complete checkpoint, detached."""
    run = runs.find(run_ref)
    st = runs.status(run)
    if st["state"] not in ("stopped", "failed"):
        raise RunError(f"run {run.name} is {st['state']}: only a stopped or failed run can "
                       "be resumed")
    _refuse_if_busy()
    _train_job("resume", run, ["resume", str(run)])
    return run


def stop(run_ref, *, force: bool = False, grace: float = 0.0) -> Path:
    """Ask the run to stop at its next step (it saves its adapter and says `stopped`).

    With force, the process is killed after `grace` seconds if it has not stopped; the
    readers then report it stopped (a stop was requested), without its adapter saved."""
    run = runs.find(run_ref)
    st = runs.status(run)
    if st["state"] != "running":
        raise RunError(f"run {run.name} is {st['state']}, not running")
    runs.request_stop(run)
    if force:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and runs.status(run)["state"] == "running":
            time.sleep(0.5)
        now = runs.status(run)
        pid = now.get("pid") or next((j.pid for j in list(_jobs) if j.run == run), None)
        if now["state"] == "running" and runs.pid_alive(pid):
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    return run


def write_result(path: str | os.PathLike | None, data: dict) -> None:
    """A child's side of the contract: its result as JSON in the file spawn named."""
    if path:
        fsio.atomic_write(path, json.dumps(data, indent=1, ensure_ascii=False, default=str))


def run_program(argv: list[str], *, cwd: str | os.PathLike, env: dict, stdout=None) -> int:
    """Run a program that is not a launch.py command (a reproducibility bundle's own
    train.py, with an environment where workbench is not importable) in the foreground and
    wait for it; its output goes to `stdout` (default: this console). Returns its exit code.
    The caller holds whatever lock the work needs (bundle --check holds the heavy lock)."""
    return subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                          stderr=subprocess.STDOUT if stdout is not None else None).returncode
