"""Where things live: the project folder (built-in presets, sample data) and
WORKBENCH_HOME (default ~/.workbench) with runs/, presets/ (user presets) and cache/.

Paths a user types go through `expand` (`~user/...` with no such user, a NUL byte: one
clear error instead of RuntimeError or ValueError), and files a user names are opened with
`open_regular`, which refuses pipes, devices and sockets before reading a byte (a FIFO named
x.jsonl would otherwise block the reader forever)."""

from __future__ import annotations

import os
import stat as stat_module
from pathlib import Path
from typing import BinaryIO

from workbench.errors import WorkbenchError, path_text, plain

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def expand(path: str | os.PathLike, error: type[WorkbenchError] = WorkbenchError) -> Path:
    """Path(path).expanduser(), with the failures a typed path can cause as `error`."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if "\x00" in text:
        raise error(f"{path_text(text)}: a path cannot contain a NUL character")
    try:
        return Path(text).expanduser()
    except ValueError:  # ~name that cannot be encoded (a lone surrogate)
        raise error(f"{path_text(text)}: not a valid file name (it cannot be "
                    "encoded)") from None
    except RuntimeError:  # ~name where no user `name` exists (or no home folder at all)
        user = text[1:].split(os.sep, 1)[0]
        if not user:
            raise error(f"{path_text(text)}: cannot find your home folder for '~'; write "
                        "the path out in full") from None
        raise error(f"{path_text(text)}: '~{plain(user, 40)}' names no user on this "
                    "machine; write the path out in full") from None


def home(create: bool = True) -> Path:
    """WORKBENCH_HOME, created on first use (readers pass create=False: reading writes
    nothing)."""
    path = expand(os.environ.get("WORKBENCH_HOME") or "~/.workbench")
    if not create:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkbenchError(f"WORKBENCH_HOME {path_text(path)}: cannot create the folder "
                             f"({exc.strerror or exc}); set WORKBENCH_HOME to a folder you "
                             "can write") from None
    return path


def _home_sub(name: str, create: bool = True) -> Path:
    path = home(create) / name
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    return _home_sub("runs")


def user_presets_dir(create: bool = True) -> Path:
    return _home_sub("presets", create)


def cache_dir() -> Path:
    return _home_sub("cache")


def builtin_presets_dir() -> Path:
    return PROJECT_ROOT / "presets"


def samples_dir() -> Path:
    return PROJECT_ROOT / "data"


# files in data/ that are prompt sets for `eval`, not data to train on
PROMPT_SETS = ("general_probe.jsonl",)


def training_samples() -> list[Path]:
    """The sample datasets shipped in data/ (the prompt sets left out), sorted."""
    return sorted(p for p in samples_dir().iterdir()
                  if p.is_file() and p.name not in PROMPT_SETS
                  and p.suffix.lower() in (".json", ".jsonl", ".csv", ".parquet"))


def exists(path: Path) -> bool:
    """Path.exists() that says False, not raises, for a name too long or unreadable."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def resolve_data_path(path: str | os.PathLike,
                      error: type[WorkbenchError] = WorkbenchError) -> Path:
    """A dataset path as the user wrote it: absolute, relative to the current folder, or
    relative to the project folder (so presets can say data/identity.jsonl)."""
    p = expand(path, error)
    if p.is_absolute() or exists(p):
        return p
    candidate = PROJECT_ROOT / p
    return candidate if exists(candidate) else p


def file_stat(path: Path, name: str,
              error: type[WorkbenchError] = WorkbenchError) -> os.stat_result | None:
    """os.stat(path), or None when nothing is there; any other failure (no permission, a
    name too long) as `error` naming `name`."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:
        raise error(f"{path_text(name)}: cannot read it "
                    f"({getattr(exc, 'strerror', None) or exc})") from None


def not_regular(st: os.stat_result) -> str | None:
    """Why a file cannot be read as a file (a folder, a pipe, ...), or None."""
    if stat_module.S_ISREG(st.st_mode):
        return None
    if stat_module.S_ISDIR(st.st_mode):
        return "is a folder; choose a file inside it"
    return ("is not a regular file (a pipe, socket or device); save the content to a file "
            "and give that")


def open_regular(path: Path, name: str, error: type[WorkbenchError] = WorkbenchError,
                 max_bytes: int | None = None, what: str = "file") -> BinaryIO:
    """Open a user's file for reading bytes, refusing anything but a regular file (checked
    on the open file, so a pipe swapped in after a check still cannot block the read) and
    a file over `max_bytes`."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise error(f"{path_text(name)}: file not found") from None
    except (OSError, ValueError) as exc:
        raise error(f"{path_text(name)}: cannot open it "
                    f"({getattr(exc, 'strerror', None) or exc})") from None
    try:
        st = os.fstat(fd)
        why = not_regular(st)
        if why:
            raise error(f"{path_text(name)}: {why}")
        if max_bytes is not None and st.st_size > max_bytes:
            raise error(f"{path_text(name)}: {st.st_size:,} bytes; a {what} is at most "
                        f"{max_bytes:,} bytes")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
