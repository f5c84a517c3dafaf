"""Durable file writes, in one place: `atomic_write` (status.json, presets, reports, the
hardware cache, a job's result), `commit` (a file or folder written under a `temp_name`,
such as a GGUF file or the merged model, fsync'd and renamed into place) and `clean_stale_temps` (what
a killed writer left behind).

Why each step (issue 13: two processes writing status.json through one fixed temporary
name lost writes and raised FileNotFoundError):
- a unique temporary name in the target's own folder (`mkstemp`), so two writers never
  share a file and `os.replace` stays a rename within one filesystem;
- `fsync` of the file before the rename, so after a power loss the name points at the
  whole new content or the whole old one, never at an empty file;
- `fsync` of the folder after the rename, so the rename itself survives a power loss.

Temporary names are `.<name>.<pid>.<random>.tmp` (a hidden file, the writer's pid inside),
so `clean_stale_temps` can tell a live writer's file from one a dead process left.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

# .<name>.<pid>.<random>.tmp: name may contain dots, pid is the digits before the random
# part (mkstemp's random characters are letters, digits and '_')
_TEMP_RE = re.compile(r"\A\..+\.(\d+)\.[A-Za-z0-9_]+\.tmp\Z")
# a temporary file younger than this is never removed, whatever its pid says (a writer in
# another PID namespace sharing the folder, a pid read before the writer existed)
STALE_AFTER_S = 10.0


def temp_prefix(name: str) -> str:
    """The prefix of this process's temporary names for `name` (see the module doc)."""
    return f".{name}.{os.getpid()}."


def atomic_write(path: str | os.PathLike, data: bytes | str, *, encoding: str = "utf-8",
                 mode: int | None = None) -> Path:
    """Write `data` to `path` so that readers see the old content or the new, never a
    mixture, and so that it survives a power loss once this returns. The folder is made
    when missing; `mode` sets the file's permission bits (default: 0o666 less umask, as a
    plain open would give)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode(encoding) if isinstance(data, str) else bytes(data)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fchmod(fh.fileno(), _mode(mode))
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)
    return path


def _read_umask() -> int:
    """The process umask, read without changing it where Linux says it (os.umask can only
    be read by setting it, which a thread creating a file at that moment would feel)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


_UMASK = _read_umask()  # at import, before the app starts threads


def _mode(mode: int | None) -> int:
    return (0o666 & ~_UMASK) if mode is None else mode


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename or a new file in `folder` durable (a no-op where folders cannot be
    opened, as on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(folder: str | os.PathLike) -> None:
    """fsync every file and folder under `folder` (and itself): call it before renaming a
    folder written under a temporary name into place."""
    folder = Path(folder)
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                _fsync_file(Path(root, name))
            except OSError:
                continue
        fsync_dir(root)


def temp_name(name: str) -> str:
    """A unique hidden name for writing `name` (a file or a folder) before a rename into
    place, for writers that need a path rather than `atomic_write`'s bytes (the GGUF
    writer, the merged model's folder): it matches the temporary-name pattern, so
    `clean_stale_temps` removes it after a killed writer."""
    return f".{name}.{os.getpid()}.{time.time_ns():x}.tmp"


def commit(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move a finished temporary file or folder into place durably: fsync its content,
    rename, fsync the folder."""
    tmp, path = Path(tmp), Path(path)
    if tmp.is_dir():
        fsync_tree(tmp)
    else:
        _fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class folder_lock:
    """`with folder_lock(folder):` writers of one folder take turns (a flock on the folder,
    dropped by the kernel if the holder dies), for read-modify-write of a file in it (a
    run's status.json). A no-op where a folder cannot be opened or locked."""

    def __init__(self, folder: str | os.PathLike):
        self.folder, self.fd = folder, None

    def __enter__(self):
        import fcntl
        try:
            self.fd = os.open(self.folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except (OSError, ImportError):
            if self.fd is not None:
                os.close(self.fd)
            self.fd = None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # drops the flock
            self.fd = None


def pid_alive(pid) -> bool:
    """Whether process `pid` runs; a zombie (exited, not reaped yet) counts as dead."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def temp_owner(name: str) -> int | None:
    """The pid in a temporary name made here, or None for any other name."""
    m = _TEMP_RE.match(name)
    return int(m.group(1)) if m else None


def clean_stale_temps(folder: str | os.PathLike, *, now: float | None = None) -> list[Path]:
    """Remove the temporary files (and folders) in `folder` whose writer is dead and that
    are older than STALE_AFTER_S; returns what was removed. Never raises: a folder that is
    missing or unreadable is skipped."""
    removed = []
    now = time.time() if now is None else now
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        pid = temp_owner(entry.name)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER_S:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed
