"""Run folders: the contract between the training process and everything else.

    <WORKBENCH_HOME>/runs/<name>-<YYYYmmdd-HHMMSS>/
        preset.yaml      the exact resolved preset
        status.json      state (running | completed | failed | stopped), pid, phase, step,
                         max_steps, started_at, updated_at, ended_at, error
        metrics.jsonl    one JSON object per log (loss or eval_loss, learning_rate, ...)
        samples.jsonl    the watch prompts' answers at each eval step (train/samples.py)
        checkpoints/     Trainer checkpoints (checkpoint-N/)
        adapter/         the final PEFT adapter (adapter_config.json + adapter_model.safetensors)
        train.log        what the process printed
        STOP             present when a stop was requested (the trainer honours it)

Who writes what (this module is the one writer API, so the rules live in one place):
- `create` makes the folder and its preset.yaml: the CLI's `train PRESET` and `jobs.start`;
- `write_status`, `append_metrics`, `append_sample`, `trim_metrics`, checkpoints/ and
  adapter/: only the training process (workbench.train, rank 0), which records its own
  pid in status.json;
- `request_stop` writes STOP: `jobs.stop`, from any process;
- train.log is the training process's output (jobs.spawn points it there);
- merged/ and export/ are derived artefacts with their own reports (export/);
  eval/<timestamp>.json are `launch.py eval` reports (workbench.evaluate).
Every file here is written whole (fsio.atomic_write: a unique temporary name, fsync, rename);
`clean_stale_temps` removes what a killed writer left.

A run reference (`find`) is a run name or a run folder inside WORKBENCH_HOME/runs; a folder
anywhere else is refused, so a request can never make the app read or write (STOP) outside
its home.

Everything else reads, and `status` says what the files mean when the writer could not:
- no status.json yet, but a train.log written in the last STARTING_GRACE_S seconds: a job
  was started and its process has not taken the folder over yet ("running", phase
  "starting", no pid); later, or without a train.log, it never started ("failed");
- "running" with a dead pid (kill -9, power loss): "failed", or "stopped" when a stop had
  been requested (`jobs.stop --force` kills a run that does not stop in time).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from workbench import fsio, paths
from workbench.errors import RunError, path_text, shown

STATES = ("running", "completed", "failed", "stopped")
STOP_FILE = "STOP"
SAMPLES_FILE = "samples.jsonl"
# how long a started job may take to write its first status.json (Python start-up and the
# CLI's imports: about a second, much longer only on a machine under heavy load)
STARTING_GRACE_S = 120.0
_CHECKPOINT_RE = re.compile(r"\Acheckpoint-(\d+)\Z")
# a run folder's name: the run name (presets.NAME_RE) and -YYYYmmdd-HHMMSS[-n]
RUN_NAME_RE = re.compile(r"\A[A-Za-z0-9._-]{1,128}\Z")


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def new_run_dir(name: str, parent: Path | None = None) -> Path:
    """A fresh, unique, empty folder <parent>/<name>-<YYYYmmdd-HHMMSS> (parent: runs/)."""
    from workbench.presets import check_name
    check_name(name)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(parent) if parent is not None else paths.runs_dir()
    base.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        path = base / (f"{name}-{stamp}" if n == 1 else f"{name}-{stamp}-{n}")
        try:
            path.mkdir()  # not exist_ok: two starts in the same second get two folders
            return path
        except FileExistsError:
            n += 1


_FOLDER_RE = re.compile(r"(.+)-\d{8}-\d{6}(?:-\d+)?")


def base_name(folder_name: str) -> str:
    """The name a run was started with: its folder name without what new_run_dir added
    (-YYYYmmdd-HHMMSS, and -N for a second start in the same second)."""
    m = _FOLDER_RE.fullmatch(folder_name)
    return m.group(1) if m else folder_name


def create(preset, name: str, *, parent: Path | None = None) -> Path:
    """A new run folder holding the exact preset (preset.yaml) and nothing else.

    No status.json: the training process writes the first one, with its own pid, when it
    takes the folder over (`status` reads a just-started folder as "starting"). `parent`
    puts the folder elsewhere than runs/ (the dry run's scratch folder)."""
    from workbench.presets import to_yaml
    run = new_run_dir(name, parent)
    fsio.atomic_write(run / "preset.yaml", to_yaml(
        preset, f"run {run.name}: the exact preset this run was trained with"))
    return run


def _is_run(folder: Path) -> bool:
    return folder.is_dir() and (folder / "preset.yaml").is_file()


def find(name_or_path: str | os.PathLike) -> Path:
    """A run by name (exact folder name, or the newest run with that prefix) or by its
    folder, which must be inside WORKBENCH_HOME/runs: a folder anywhere else is refused,
    whoever asks (a request, a page, the CLI)."""
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if not isinstance(name_or_path, str) or not name_or_path:
        raise RunError(f"run {shown(name_or_path)}: give a run name (see `launch.py runs`)")
    text = name_or_path
    root = paths.runs_dir()
    if RUN_NAME_RE.fullmatch(text) and text not in (".", ".."):
        folder = root / text
        if _inside(folder, root) and _is_run(folder):
            return folder
        matches = sorted((p for p in root.iterdir() if p.name.startswith(f"{text}-")
                          and RUN_NAME_RE.fullmatch(p.name) and _inside(p, root)
                          and _is_run(p)), key=lambda p: p.name)
        if matches:
            return matches[-1]
    else:
        folder = paths.expand(text, RunError)
        if not _inside(folder, root):
            raise RunError(f"{path_text(text)}: not a run of this Workbench; runs are the "
                           f"folders in {path_text(root)} (give the run's name)")
        if _is_run(folder):
            return folder.resolve()
    known = ", ".join(p.name for p in sorted(root.iterdir())[-5:]
                      if RUN_NAME_RE.fullmatch(p.name)) or "none yet"
    raise RunError(f"run {shown(text)} not found in {path_text(root)} (recent runs: "
                   f"{known})")


def _inside(folder: Path, root: Path) -> bool:
    """Whether `folder`, symbolic links followed, is a folder directly in `root`."""
    try:
        return folder.resolve().parent == root.resolve()
    except (OSError, RuntimeError, ValueError):
        return False


# -- status ---------------------------------------------------------------------------

pid_alive = fsio.pid_alive  # the one check, shared with the temp-file cleanup


# The app polls every run folder every two seconds while a run trains: files are parsed
# again only when their size or mtime changed (issue 9: the app's own cost while training).
_READ_CACHE: dict[tuple[str, str], tuple[tuple[int, int, int], object]] = {}
_READ_LOCK = threading.Lock()


def _cached(path: Path, kind: str, parse):
    """parse(path), reused while the file's (size, mtime) stays the same."""
    try:
        st = os.stat(path)
    except OSError:
        _READ_CACHE.pop((str(path), kind), None)
        return parse(path)
    # the inode too: a file replaced whole (fsio.atomic_write) within one clock tick can
    # keep its size and mtime, never its inode
    stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
    key = (str(path), kind)
    with _READ_LOCK:
        hit = _READ_CACHE.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    value = parse(path)
    with _READ_LOCK:
        if len(_READ_CACHE) > 512:  # many runs listed: start over rather than grow
            _READ_CACHE.clear()
        _READ_CACHE[key] = (stamp, value)
    return value


def _read_json_file(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def read_json(path: Path) -> dict:
    """A JSON file as a dict ({} when missing or half-written); a fresh copy each call."""
    return dict(_cached(Path(path), "json", _read_json_file))


def status(run: str | os.PathLike) -> dict:
    """status.json as the truth is (see the module docstring): a just-started job reads as
    "running"/"starting", one that never started or whose process is gone as "failed" (or
    "stopped" when a stop had been requested)."""
    run = Path(run)
    st = read_json(run / "status.json")
    if not st:
        st = _without_status(run)
    elif st.get("state") == "running" and not pid_alive(st.get("pid")):
        if stop_requested(run):
            st = dict(st, state="stopped", error=st.get("error") or "killed before it could "
                      "save; resume continues from the last checkpoint")
        else:
            st = dict(st, state="failed", error=st.get("error") or "the training process "
                      "ended without saving its state (killed or crashed); resume it to "
                      "continue from the last checkpoint")
    st.setdefault("step", 0)
    st.setdefault("max_steps", None)
    return st


def _without_status(run: Path) -> dict:
    """What a folder without a readable status.json is: starting, or never started."""
    log = run / "train.log"
    try:
        started = log.stat().st_mtime
    except OSError:
        return {"state": "failed", "error": "status.json is missing or unreadable"}
    since = datetime.fromtimestamp(started, timezone.utc).astimezone().isoformat(
        timespec="seconds")
    if (run / "status.json").exists():  # there but unreadable: never a state to trust
        return {"state": "failed", "error": "status.json is unreadable", "started_at": since}
    if time.time() - started < STARTING_GRACE_S:
        return {"state": "running", "phase": "starting", "pid": None, "started_at": since}
    return {"state": "failed", "started_at": since,
            "error": f"the training process never started (see {log})"}


def write_status(run: Path, **fields) -> dict:
    """Merge fields into status.json atomically and durably (only the training process
    calls this). Writers of one run take turns (a flock on the run folder), so two
    processes merging fields at once lose neither's."""
    run = Path(run)
    with fsio.folder_lock(run):
        st = _read_json_file(run / "status.json")  # fresh: never the cached copy here
        st.update(fields)
        st["updated_at"] = now_iso()
        fsio.atomic_write(run / "status.json", json.dumps(st, indent=1))
    return st


def metrics(run: str | os.PathLike) -> list[dict]:
    """Every complete line of metrics.jsonl (a half-written last line is skipped)."""
    return list(_cached(Path(run) / "metrics.jsonl", "metrics", _read_metrics))


def _read_metrics(path: Path) -> list[dict]:
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    except OSError:
        pass
    return out


def append_metrics(run: Path, record: dict) -> None:
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def trim_metrics(run: Path, upto_step: int, name: str = "metrics.jsonl") -> None:
    """Drop the records after `upto_step` (a resume redoes those steps), atomically."""
    kept = [m for m in _read_metrics(Path(run) / name) if m.get("step", 0) <= upto_step]
    fsio.atomic_write(Path(run) / name, "".join(json.dumps(m) + "\n" for m in kept))


def samples(run: str | os.PathLike) -> list[dict]:
    """samples.jsonl: the watch prompts' answers at each eval step (train/samples.py),
    {step, prompt, answer, time} per line; a half-written last line is skipped."""
    return list(_cached(Path(run) / SAMPLES_FILE, "samples", _read_metrics))


def append_sample(run: Path, record: dict) -> None:
    """One line, flushed when the file closes: a run that fails keeps what it wrote."""
    with open(Path(run) / SAMPLES_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def clean_stale_temps() -> int:
    """Remove the temporary files (and half-written folders) that killed writers left in
    the folders Workbench writes to: WORKBENCH_HOME, its presets/, cache/, tmp/, and each
    run folder with its export/ and eval/. The app calls it at start-up, heavy commands
    when they start; returns how many were removed."""
    home = paths.home(create=False)
    folders = [home, home / "presets", home / "cache", home / "tmp", home / "runs"]
    try:
        run_folders = [p for p in (home / "runs").iterdir() if p.is_dir()]
    except OSError:
        run_folders = []
    for run in run_folders:
        folders += [run, run / "export", run / "eval"]
    return sum(len(fsio.clean_stale_temps(f)) for f in folders)


def log_tail(run: str | os.PathLike, n: int = 40) -> str:
    path = Path(run) / "train.log"
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64_000))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    # progress bars redraw with \r: keep only the last frame of each line
    lines = [line.rsplit("\r", 1)[-1] for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines[-n:])


def list_runs() -> list[dict]:
    """All runs, newest first: name, path, state, step, max_steps, started_at, preset."""
    out = []
    for folder in paths.runs_dir().iterdir():
        if not (folder.is_dir() and (folder / "preset.yaml").exists()):
            continue
        st = status(folder)
        out.append({"name": folder.name, "path": str(folder), "state": st.get("state"),
                    "step": st.get("step"), "max_steps": st.get("max_steps"),
                    "started_at": st.get("started_at"), "error": st.get("error"),
                    "merged": (folder / "merged" / "merge_report.json").exists(),
                    "has_adapter": has_adapter(folder)})
    out.sort(key=lambda r: (r["started_at"] or "", r["name"]), reverse=True)
    return out


def has_adapter(run: Path) -> bool:
    return (Path(run) / "adapter" / "adapter_model.safetensors").exists()


def load_preset(run: str | os.PathLike):
    from workbench.presets import load
    return load(str(Path(run) / "preset.yaml"))


# -- checkpoints ----------------------------------------------------------------------

def _checkpoint_complete(folder: Path) -> bool:
    """A checkpoint counts only when every file resume needs is there and readable."""
    needed = ["trainer_state.json", "adapter_model.safetensors", "adapter_config.json"]
    if not all((folder / f).is_file() and (folder / f).stat().st_size > 0 for f in needed):
        return False
    if not ((folder / "optimizer.pt").is_file() and (folder / "scheduler.pt").is_file()):
        return False
    try:
        json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except ValueError:
        return False
    return True


def checkpoints(run: str | os.PathLike) -> list[tuple[int, Path, bool]]:
    """(step, folder, complete) for every checkpoint, oldest first."""
    folder = Path(run) / "checkpoints"
    out = []
    if folder.is_dir():
        for p in folder.iterdir():
            m = _CHECKPOINT_RE.match(p.name)
            if m and p.is_dir():
                out.append((int(m.group(1)), p, _checkpoint_complete(p)))
    return sorted(out)


def last_complete_checkpoint(run: str | os.PathLike) -> Path | None:
    done = [p for _, p, ok in checkpoints(run) if ok]
    return done[-1] if done else None


def request_stop(run: str | os.PathLike) -> None:
    (Path(run) / STOP_FILE).write_text(now_iso(), encoding="utf-8")


def stop_requested(run: Path) -> bool:
    return (run / STOP_FILE).exists()


def wait_for(run: Path, states=("completed", "failed", "stopped"), timeout: float = 600.0,
             poll: float = 0.5) -> dict:
    """Block until the run reaches one of `states` (for scripts and tests)."""
    deadline = time.monotonic() + timeout
    while True:
        st = status(run)
        if st.get("state") in states:
            return st
        if time.monotonic() > deadline:
            raise RunError(f"run {run.name}: still {st.get('state')} after {timeout:.0f} s")
        time.sleep(poll)
