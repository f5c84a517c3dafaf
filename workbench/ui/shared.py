"""Small helpers the tabs share: run choices, the one-job-at-a-time check, how paths and
durations are shown, and heavy work in a child process (`job`: runs.jobs.spawn with a
result file; `job_lines` for progress from its log; `job_result` for what it wrote).
Everything here reads the run folders, never session state, so a reloaded page or a
second browser tab sees the same truth."""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from workbench.runs import jobs
from workbench import paths
from workbench.config import Preset
from workbench.errors import RunError

ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # progress bars' cursor moves


def live_box(part: str, inner: str) -> str:
    """A part of the page that the Training tab's poll rewrites in place (training.POLL_SCRIPT
    sets the wrapper's innerHTML; Gradio's own render of the component is the wrapper)."""
    return f"<div class='wb-live' data-wb-part='{part}'>{inner}</div>"


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
    """Merge, chat, measuring ... load a model: refuse while training, or any other heavy
    job (runs.lock: a merge, export, dry run ... from this page, another one or the CLI),
    holds the memory. One line naming what runs and how to stop it."""
    running = active_run_name()
    if running:
        raise RunError(f"training run {running!r} is still running; {what} would compete "
                       "with it for memory. Wait until it finishes or stop it in the "
                       "Training tab.")
    from workbench.runs import lock
    lock.check_free()


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


UI_HOST_ENV = "WORKBENCH_UI_HOST"  # set by ui/server.py: the address the app listens on


def serves_only_this_computer() -> bool:
    """True when the app listens on the loopback address only (the default): the person
    at the page is at this computer, so it shows real paths and commands that work when
    pasted; with --listen it shows paths relative to the Workbench folder."""
    return os.environ.get(UI_HOST_ENV, "127.0.0.1") in ("127.0.0.1", "localhost", "::1")


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


# -- heavy work in its own process (runs.jobs.spawn) ----------------------------------

def temp_preset(preset: Preset, prefix: str) -> Path:
    """The page's settings as a YAML file under WORKBENCH_HOME/tmp (the caller deletes it)."""
    from workbench.presets import to_yaml
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".yaml", dir=_tmp_dir())
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(to_yaml(preset))
    return Path(name)


def _tmp_dir() -> Path:
    folder = paths.home() / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def job(kind: str, argv: list[str], *, log: Path | None = None, env: dict | None = None):
    """`launch.py ARGV` as a child process (jobs.spawn) with a result file, for one event.
    A heavy job takes the heavy lock first (runs.lock.Busy when another one runs).

    Its log is `log`, or a file under WORKBENCH_HOME/tmp; leaving the block (the handler
    finished, failed, or the page went away) ends the child if it still runs and deletes
    the temporary files, so nothing keeps running unseen."""
    from workbench import chat
    stem = _tmp_dir() / f"{kind.replace(' ', '-')}-{secrets.token_hex(6)}"
    own_log = log is None
    chat.release()  # a heavy job gets the memory: the page's chat model is dropped first
    child = jobs.spawn(kind, argv, log=stem.with_suffix(".log") if own_log else log,
                       result=stem.with_suffix(".json"), env=env)
    try:
        yield child
    finally:
        child.stop()
        child.result_path.unlink(missing_ok=True)
        if own_log:
            child.log.unlink(missing_ok=True)


def job_lines(child: jobs.Job):
    """The child's log lines as they come, without terminal codes or blank lines; closing
    this generator ends the child (Job.lines)."""
    for raw in child.lines():
        line = ANSI_RE.sub("", raw).strip()
        if line:
            yield line


def job_result(child: jobs.Job) -> dict:
    """The result the child wrote to its file, once it has ended. A missing result, or
    {"error": ...}, raises RunError with the child's message (its `error:` line)."""
    from workbench.ui.widgets import clean_message
    rc = child.wait()
    data = child.read_result()
    if data is not None and "error" not in data:
        return data
    raise RunError(f"{child.kind} failed (exit code {rc}): {clean_message(child.error())}")


def wait_for_result(kind: str, argv: list[str], **kw) -> dict:
    """Run a job to its end (no progress shown) and return its result (job_result)."""
    with job(kind, argv, **kw) as child:
        for _ in job_lines(child):
            pass
        return job_result(child)


def working(head: str, started: float, line: str = "") -> str:
    """What a running job shows: '**Merging…** 0:12 · `loading the base model`' (the
    child's last log line, short, without server paths)."""
    from workbench.ui.widgets import clean_message
    text = f"**{head}…** {duration(time.monotonic() - started)}"
    if line:
        text += f" · `{clean_message(line)[:120].replace('`', chr(39))}`"
    return text
