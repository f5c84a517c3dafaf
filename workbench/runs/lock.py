"""One heavy job at a time: train, resume, dry run, merge, export, quantisation compare,
"load and measure" and prompt-set evaluation (eval), whoever starts them (the page, the
script API or the CLI).

The lock is WORKBENCH_HOME/heavy.lock, held with `fcntl.flock` by the process that does the
heavy work, for as long as it runs; the file says who holds it, as JSON: pid, kind, what
(the run or preset), started_at. Why flock rather than a file created with O_EXCL: the
kernel drops a flock when its holder dies, however it dies (kill -9, out of memory, power
loss), so a stale lock cannot block anyone; the pid in the file names the holder in
messages, and a lock whose recorded pid is gone is free to take (that is how a stale lock
is detected and taken over). The file itself is never deleted (deleting a flock'd file lets
two processes lock two different files of the same name); a release empties it.

Who holds it:
- a CLI command (`cli.main` wraps the commands in HEAVY_COMMANDS in `held`), for its
  whole run;
- a child the app starts (`jobs.spawn`): the server takes the lock *before* starting it
  (so a busy machine refuses at once, with nothing created), passes the locked file to the
  child (its descriptor, named in FD_ENV) and closes its own copy; the child adopts it, so
  the lock lives exactly as long as the child, and a detached training job keeps it after
  the server stops.
A second request gets `Busy`: one line naming what runs, its pid and how to stop it.

Chat is not a heavy job here: it lives in the server process (workbench/chat.py), never
takes this lock and never blocks one. The page refuses to chat while a heavy job holds the
lock (the two would compete for memory), and starting training from the page drops the
chat model first (chat.release()); so the app never holds both at once.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

from workbench import paths
from workbench.errors import RunError, plain

LOCK_FILE = "heavy.lock"
FD_ENV = "WORKBENCH_HEAVY_LOCK_FD"
# launch.py commands that load a model: (command, subcommand or None) -> kind
HEAVY_COMMANDS = {("train", None): "train", ("resume", None): "resume",
                  ("dryrun", None): "dryrun", ("merge", None): "merge",
                  ("export", None): "export", ("quant", "compare"): "quant compare",
                  ("quant", "measure"): "quant measure", ("eval", None): "eval"}
# options of those commands that take a value (to find the subject in an argv)
_VALUE_OPTIONS = {"--set", "--steps", "--type", "--name", "--out", "--variants",
                  "--max-tokens", "--json-out", "--base", "--grace", "--prompts",
                  "--max-new-tokens"}
# how long an acquirer waits for a holder that has just taken the lock to say who it is
# (or for a reader's momentary check to end) before calling the lock busy
SETTLE_S = 2.0
# how long to wait for a training job that has written its last state (stopped, completed,
# failed) to exit and so release the lock: a Resume clicked right after Stop is not refused
FINISH_S = 30.0


class Busy(RunError):
    """Another heavy job holds the lock: one line saying which and how to stop it."""


def lock_path() -> Path:
    return paths.home() / LOCK_FILE


def job_of(argv: list[str]) -> tuple[str, str] | None:
    """(kind, subject) of a launch.py command line when it is a heavy job, else None. The
    subject is the run or preset it works on (train --run-dir: that run)."""
    if not argv:
        return None
    command = argv[0]
    sub = argv[1] if command == "quant" and len(argv) > 1 else None
    kind = HEAVY_COMMANDS.get((command, sub))
    if kind is None:
        return None
    rest = argv[2:] if sub else argv[1:]
    subject, skip = "", False
    for i, arg in enumerate(rest):
        if skip:
            skip = False
            continue
        if arg == "--run-dir" and i + 1 < len(rest):
            return kind, subject_name(rest[i + 1])
        if arg in _VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-") and not subject:
            subject = arg
    return kind, subject_name(subject)


def subject_name(ref) -> str:
    """How a job's subject is named in messages: a run folder by its name, the page's own
    temporary preset as "the page's settings", anything else as given (escaped, short)."""
    text = str(ref or "")
    if not text:
        return "?"
    path = Path(text)
    try:
        if path.is_absolute() and path.parent.resolve() == (paths.home() / "tmp").resolve():
            return "the page's settings"
    except OSError:
        pass
    return plain(path.name if ("/" in text or os.sep in text) else text, 80)


def describe(info: dict) -> str:
    """The one line a refused request gets, from what the lock file says."""
    kind, what = info.get("kind"), plain(str(info.get("what") or "?"), 80)
    pid = info.get("pid")
    if not kind or not isinstance(pid, int):
        return ("another heavy job is running (see WORKBENCH_HOME/heavy.lock): wait for it "
                "to finish; one heavy job runs at a time")
    since = str(info.get("started_at") or "")[11:16]
    at = f"pid {pid}" + (f", since {since}" if since else "")
    if kind in ("train", "resume"):
        return (f"training run {what} is still running ({at}): stop it from the Training "
                f"tab or with `python launch.py stop {what}`, or wait for it to finish; "
                "one heavy job runs at a time")
    label = {"dryrun": f"a dry run of {what}", "merge": f"a merge of run {what}",
             "export": f"a GGUF export of {what}",
             "quant compare": f"a quantisation comparison of {what}",
             "quant measure": f"\"load and measure\" of {what}"}.get(kind, f"{kind} {what}")
    return (f"{label} is running ({at}): wait for it to finish or end it (`kill {pid}`); "
            "one heavy job runs at a time")


def _open() -> int:
    path = lock_path()
    return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)


def _read(fd: int) -> dict:
    try:
        data = os.pread(fd, 65536, 0)
        info = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


def _pid_start(pid: int) -> str | None:
    """When `pid` started (clock ticks since boot, from /proc), to tell a reused pid from
    the holder; None where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _finishing(info: dict) -> bool:
    """A training job whose run says it has ended: its process is only exiting."""
    if info.get("kind") not in ("train", "resume"):
        return False
    from workbench import runs
    what = str(info.get("what") or "")
    if not runs.RUN_NAME_RE.fullmatch(what):
        return False
    state = runs.read_json(paths.runs_dir() / what / "status.json").get("state")
    return state in ("completed", "stopped", "failed")


def _keep_waiting(info: dict, started: float, settle: float) -> bool:
    """Whether a held lock may be about to free: its holder has not said who it is yet
    (for `settle` seconds), or it is a training job that is exiting (for FINISH_S)."""
    waited = time.monotonic() - started
    if not (info and _alive(info)):
        return waited < settle
    return settle > 0 and waited < FINISH_S and _finishing(info)


def _alive(info: dict) -> bool:
    from workbench import runs
    pid = info.get("pid")
    if not runs.pid_alive(pid):
        return False
    start = info.get("pid_start")
    return start is None or _pid_start(pid) in (None, start)


_current: HeavyLock | None = None  # the lock this process holds for itself, if any


def current() -> HeavyLock | None:
    """The lock this process holds for its own heavy work (None in the server, which only
    hands locks on to its children)."""
    return _current if _current is not None and _current.fd is not None else None


class HeavyLock:
    """The held lock: `update` what it says, `hand_to` a child, `release` it."""

    def __init__(self, fd: int, info: dict):
        self.fd: int | None = fd
        self.info = info

    def _write(self) -> None:
        data = json.dumps(self.info, ensure_ascii=False).encode("utf-8")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        os.fsync(self.fd)

    def update(self, **fields) -> None:
        """Change what the lock says (the CLI's `train` names its run once it exists)."""
        if self.fd is None:
            return
        self.info.update(fields)
        self._write()

    def hand_to(self, pid: int) -> None:
        """The child `pid` was started with this lock's descriptor: record its pid and
        close ours, so the lock lives exactly as long as the child."""
        if self.fd is None:
            return
        self.info.update(pid=pid, pid_start=_pid_start(pid))
        try:
            self._write()
        finally:
            os.close(self.fd)
            self.fd = None

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        except OSError:
            pass
        finally:
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def holder(settle: float = SETTLE_S) -> dict | None:
    """What holds the lock now ({pid, kind, what, started_at}), or None when it is free.
    Reading takes the lock for an instant when it is free; a holder that has just taken it
    is given up to `settle` seconds to write its name, a training job that has ended up to
    FINISH_S to exit."""
    started = time.monotonic()
    while True:
        fd = _open()
        try:
            if _try_flock(fd):
                return None  # free (closing fd below drops the instant lock)
            info = _read(fd)
        finally:
            os.close(fd)
        if not _keep_waiting(info, started, settle):
            return info
        time.sleep(0.05)


def check_free() -> None:
    """Raise Busy when a heavy job runs (for early refusals: the page, before it builds
    anything)."""
    info = holder()
    if info is not None:
        raise Busy(describe(info))


def take(kind: str, what: str) -> HeavyLock:
    """`acquire`, and remember the lock as this process's own (`current`): for a process
    that does the heavy work itself (a CLI command)."""
    global _current
    _current = acquire(kind, what)
    return _current


def _adopt() -> HeavyLock | None:
    """The lock the server took for this process and passed down (FD_ENV), if any."""
    raw = os.environ.pop(FD_ENV, None)  # never inherited further down
    if not raw:
        return None
    try:
        fd = int(raw)
        mine, there = os.fstat(fd), os.stat(lock_path())
    except (ValueError, OSError):
        return None
    if (mine.st_dev, mine.st_ino) != (there.st_dev, there.st_ino) or not _try_flock(fd):
        return None  # (flock on the inherited description succeeds: it already holds it)
    os.set_inheritable(fd, False)
    held = HeavyLock(fd, _read(fd))
    held.update(pid=os.getpid(), pid_start=_pid_start(os.getpid()))
    return held


def acquire(kind: str, what: str, *, settle: float = SETTLE_S) -> HeavyLock:
    """Take the lock for this process, or raise Busy. A lock the server passed down to this
    process is adopted; a free lock is taken whatever its file says (a holder that died
    released it); a held one whose holder has not written its name yet is waited for up to
    `settle` seconds, and a training job that has ended (and is exiting) up to FINISH_S."""
    adopted = _adopt()
    if adopted is not None:
        adopted.update(kind=kind, what=what)
        return adopted
    from workbench.runs import now_iso
    started = time.monotonic()
    while True:
        fd = _open()
        try:
            if _try_flock(fd):
                held = HeavyLock(fd, {"pid": os.getpid(), "pid_start": _pid_start(os.getpid()),
                                      "kind": kind, "what": what, "started_at": now_iso()})
                held._write()
                return held
            info = _read(fd)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        if not _keep_waiting(info, started, settle):
            raise Busy(describe(info or {}))
        time.sleep(0.05)  # just taken (its holder is writing its name), a reader's instant,
        #                   or a training job that has ended and is exiting


@contextmanager
def held(kind: str, what: str):
    """The lock for this process while the block runs (`take`, then release): what
    `cli.main` wraps each heavy command in."""
    with take(kind, what) as taken:
        yield taken
