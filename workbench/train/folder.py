"""The run folder as a training process takes it over: its pid and first fields in
status.json, on a resume the checkpoints and metrics made ready (train.train and the
supervisor of several processes, train.distributed), and train.log's copy of the output."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from workbench import runs


def take_over(run: Path, resume: bool, log, **fields) -> None:
    """This process takes the folder over: its own pid, on a first start the fields a
    fresh run begins with (runs.create wrote only preset.yaml), and on a resume the
    checkpoints and metrics made ready for the last complete checkpoint."""
    if runs.stop_requested(run):
        (run / runs.STOP_FILE).unlink()
    first = {} if "started_at" in runs.read_json(run / "status.json") else {
        "started_at": runs.now_iso(), "step": 0, "max_steps": None}
    runs.write_status(run, state="running", phase="loading model", pid=os.getpid(),
                      error=None, ended_at=None,
                      resumed_at=runs.now_iso() if resume else None, **first, **fields)
    if resume:
        set_aside_incomplete_checkpoints(run, log)
        checkpoint = runs.last_complete_checkpoint(run)
        runs.trim_metrics(run, int(checkpoint.name.split("-")[1]) if checkpoint else 0)


def set_aside_incomplete_checkpoints(run: Path, log) -> None:
    for step, folder, complete in runs.checkpoints(run):
        if not complete:
            target = folder.with_name(folder.name + f".incomplete-{int(time.time())}")
            folder.rename(target)
            log(f"checkpoint {folder.name} is incomplete; set aside as {target.name}")


class Tee:
    """Writes to the console and to train.log, for runs started from a terminal."""

    def __init__(self, stream, log):
        self.stream, self.log = stream, log

    def write(self, text):
        self.stream.write(text)
        self.log.write(text)
        return len(text)

    def flush(self):
        self.stream.flush()
        self.log.flush()

    def isatty(self):
        return self.stream.isatty()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def stdout_is(path: Path) -> bool:
    try:
        a, b = os.fstat(sys.stdout.fileno()), os.stat(path)
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
    except (OSError, ValueError, AttributeError):
        return False
