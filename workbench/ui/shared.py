"""Small helpers the tabs share: run choices, the one-job-at-a-time check, and how paths
and durations are shown. Everything here reads the run folders, never session state,
so a reloaded page or a second browser tab sees the same truth."""

from __future__ import annotations

import os
from pathlib import Path

from workbench import paths
from workbench.errors import RunError


def run_names(filter_fn=None) -> list[str]:
    """Run folder names, newest first, optionally filtered on the list_runs() dict."""
    from workbench import runs
    return [r["name"] for r in runs.list_runs() if filter_fn is None or filter_fn(r)]


def completed_with_adapter(r: dict) -> bool:
    return r.get("state") == "completed" and bool(r.get("has_adapter", True))


def with_adapter(r: dict) -> bool:
    return bool(r.get("has_adapter", r.get("state") == "completed"))


def active_run_name() -> str | None:
    from workbench import jobs
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
