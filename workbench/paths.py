"""Where things live: the project folder (built-in presets, sample data) and
WORKBENCH_HOME (default ~/.workbench) with runs/, presets/ (user presets) and cache/."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    """WORKBENCH_HOME, created on first use."""
    path = Path(os.environ.get("WORKBENCH_HOME") or Path.home() / ".workbench").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _home_sub(name: str) -> Path:
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    return _home_sub("runs")


def user_presets_dir() -> Path:
    return _home_sub("presets")


def cache_dir() -> Path:
    return _home_sub("cache")


def builtin_presets_dir() -> Path:
    return PROJECT_ROOT / "presets"


def samples_dir() -> Path:
    return PROJECT_ROOT / "data"


def resolve_data_path(path: str | os.PathLike) -> Path:
    """A dataset path as the user wrote it: absolute, relative to the current folder, or
    relative to the project folder (so presets can say data/identity.jsonl)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    candidate = PROJECT_ROOT / p
    return candidate if candidate.exists() else p
