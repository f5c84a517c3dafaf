"""One heavy job at a time (issue 13 item 5), across the page, the script API and the CLI:
runs.lock's flock'd WORKBENCH_HOME/heavy.lock, held by the process doing the work. Every
job here is a stand-in (a small script, or a CLI command whose work is replaced), so no
model loads."""

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from workbench import cli, paths, runs
from workbench.config import Preset
from workbench.errors import RunError
from workbench.runs import jobs, lock

ROOT = Path(__file__).resolve().parents[2]

# a training child: takes the run folder over (its pid in status.json), trains a while
TRAINER = """
import os, sys, time
from pathlib import Path
from workbench import runs
run = Path(sys.argv[sys.argv.index('--run-dir') + 1])
runs.write_status(run, state="running", phase="training", pid=os.getpid())
time.sleep(float(os.environ.get("TRAIN_S", "2")))
runs.write_status(run, state="completed", phase="done")
"""

# the CLI with its heavy work replaced by a wait: the real cli.main and its lock
CLI = """
import os, sys, time
from pathlib import Path
import workbench.cli as c
def work(args):
    print("working", flush=True)
    time.sleep(float(os.environ.get("WORK_S", "2")))
    return 0
c.cmd_merge = work
go = os.environ.get("GO_FILE")
if go:
    c.build_parser()  # every import done before the start signal
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.001)
sys.exit(c.main(sys.argv[1:]))
"""


def _fake_trainer(monkeypatch, seconds=2.0):
    monkeypatch.setenv("TRAIN_S", str(seconds))
    monkeypatch.setattr(jobs, "command", lambda argv: [sys.executable, "-c", TRAINER, *argv])


def _cli(argv, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT), **env))


def _wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_started_at_once_from_the_page_and_the_cli_exactly_one_runs(monkeypatch):
    """The script API's /start (training.api_start, through jobs.start and spawn) and a
    CLI `merge` are let go at the same instant: one runs, the other gets one line naming
    it."""
    from workbench.ui.tabs import training
    _fake_trainer(monkeypatch, seconds=3.0)
    made = runs.create(Preset(), "done")  # the CLI merges this (a stand-in merge)
    go = paths.home() / "go"
    proc = _cli(["merge", made.name], GO_FILE=str(go), WORK_S="3")
    outcome = {}

    def page():
        while not go.exists():
            time.sleep(0.001)
        try:
            outcome["page"] = training.api_start("cpu-demo", "race")
        except RunError as exc:
            outcome["page_error"] = str(exc)
    thread = threading.Thread(target=page)
    thread.start()
    assert proc.stdout.readline().strip() == "ready"  # the CLI child waits for `go` too
    go.write_text("")
    thread.join(60)
    out, err = proc.communicate(timeout=60)
    page_ran = "page" in outcome
    cli_ran = proc.returncode == 0
    assert page_ran != cli_ran, (outcome, proc.returncode, err)
    if page_ran:
        line = _one_error_line(err)
        assert proc.returncode == 2 and "working" not in out
        # (named "race" when read in the instant before its folder was made)
        assert re.search(r"training run race(-[\d-]+)? is still running \(pid \d+", line)
        assert "launch.py stop race" in line
        assert runs.wait_for(runs.find(outcome["page"]["run"]), timeout=30)["state"] == \
            "completed"
    else:
        assert out.strip() == "working"
        text = outcome["page_error"]
        assert "\n" not in text and f"a merge of run {made.name} is running (pid {proc.pid}" \
            in text
        assert [r["name"] for r in runs.list_runs()] == [made.name]  # nothing was created


def test_the_page_refuses_early_while_the_cli_works(monkeypatch):
    from workbench.ui import shared
    from workbench.ui.tabs import training
    monkeypatch.setattr(jobs, "command", lambda argv: pytest.fail("started a child"))
    made = runs.create(Preset(), "done")
    proc = _cli(["merge", made.name], WORK_S="3")
    try:
        _wait_until(lambda: proc.stdout.readline().strip() == "working")
        assert lock.holder()["pid"] == proc.pid
        for attempt in (lambda: training.api_start("cpu-demo", "blocked"),
                        lambda: shared.refuse_if_busy("exporting"),
                        lambda: shared.job("export", ["export", made.name]).__enter__(),
                        lambda: jobs.start(Preset(), "blocked")):
            with pytest.raises(lock.Busy) as info:
                attempt()
            assert str(info.value) == (
                f"a merge of run {made.name} is running (pid {proc.pid}, since "
                f"{lock.holder()['started_at'][11:16]}): wait for it to finish or end it "
                f"(`kill {proc.pid}`); one heavy job runs at a time")
        assert [r["name"] for r in runs.list_runs()] == [made.name]
    finally:
        proc.wait(30)
    assert lock.holder() is None  # released at exit


def test_the_cli_is_refused_while_a_page_job_runs_and_the_child_holds_the_lock(monkeypatch):
    _fake_trainer(monkeypatch, seconds=3.0)
    run = jobs.start(Preset(), "held")
    child = runs.status(run)["pid"]
    info = lock.holder()
    assert info["pid"] == child and info["kind"] == "train" and info["what"] == run.name
    proc = _cli(["merge", run.name])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and out == ""
    line = _one_error_line(err)
    assert line == (f"error: training run {run.name} is still running (pid {child}, since "
                    f"{info['started_at'][11:16]}): stop it from the Training tab or with "
                    f"`python launch.py stop {run.name}`, or wait for it to finish; one "
                    "heavy job runs at a time")
    # the page's chat is refused too (it would compete for memory), and so is the CLI's
    with pytest.raises(RunError, match="still running"):
        cli.cmd_chat(type("A", (), {"run": run.name})())
    assert runs.wait_for(run, timeout=30)["state"] == "completed"
    _wait_until(lambda: lock.holder() is None)  # the child's exit released it


def test_a_killed_holder_leaves_a_lock_that_is_taken_over():
    """kill -9 of the holder: the file still names it, but its pid is gone and the kernel
    dropped the flock, so the next job takes the lock (and the file names the new one)."""
    proc = _cli(["merge", "whatever"], WORK_S="30")
    _wait_until(lambda: proc.stdout.readline().strip() == "working")
    assert lock.holder()["pid"] == proc.pid
    proc.kill()
    proc.wait()
    assert json.loads(lock.lock_path().read_text())["pid"] == proc.pid  # stale content
    assert lock.holder() is None
    with lock.held("dryrun", "cpu-demo") as held:
        assert lock.holder(settle=0)["pid"] == os.getpid() and held.info["kind"] == "dryrun"
        with pytest.raises(lock.Busy, match=r"a dry run of cpu-demo is running \(pid "):
            lock.acquire("merge", "x", settle=0)
    assert lock.lock_path().read_text() == ""  # a release empties the file


def test_every_heavy_command_is_known_and_others_are_not():
    assert lock.job_of(["train", "--run-dir", "/h/runs/demo-1"]) == ("train", "demo-1")
    assert lock.job_of(["train", "--set", "a.b=1", "cpu-demo"]) == ("train", "cpu-demo")
    assert lock.job_of(["resume", "r"]) == ("resume", "r")
    assert lock.job_of(["dryrun", "p", "--steps", "3"]) == ("dryrun", "p")
    assert lock.job_of(["merge", "r"]) == ("merge", "r")
    assert lock.job_of(["export", "r", "--type", "f16"]) == ("export", "r")
    assert lock.job_of(["quant", "compare", "--variants", "nf4", "p"]) == ("quant compare",
                                                                           "p")
    assert lock.job_of(["quant", "measure", "p"]) == ("quant measure", "p")
    for light in (["stop", "r"], ["runs"], ["chat", "r"], ["data", "inspect", "f"],
                  ["adapter", "inspect", "r"], ["memory", "p"], ["presets", "list"], []):
        assert lock.job_of(light) is None
    temp = str(paths.home() / "tmp" / "dryrun-abc.yaml")
    assert lock.job_of(["dryrun", temp]) == ("dryrun", "the page's settings")


def test_light_spawns_take_no_lock(tmp_path):
    with lock.held("merge", "x"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(jobs, "command", lambda argv: [sys.executable, "-c", "pass"])
            job = jobs.spawn("test", ["runs"], log=tmp_path / "job.log")
            assert job.wait(30) == 0
            with pytest.raises(lock.Busy):
                jobs.spawn("merge", ["merge", "r"], log=tmp_path / "m.log")


ENDING_TRAINER = """
import sys, time
import workbench.cli as c
from workbench import runs
def resume(args):
    run = runs.find(args.run)
    runs.write_status(run, state="stopped", phase="stopped")  # its last word
    print("stopped", flush=True)
    time.sleep(1.5)  # then a slow exit (saving, interpreter shutdown) with the lock held
    return 0
c.cmd_resume = resume
sys.exit(c.main(sys.argv[1:]))
"""


def test_a_training_job_that_has_ended_is_waited_for_not_refused():
    """Resume clicked right after Stop: the run already says "stopped" while its process
    exits; the next job waits for the lock instead of being refused."""
    run = runs.create(Preset(), "ending")
    proc = subprocess.Popen([sys.executable, "-c", ENDING_TRAINER, "resume", run.name],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdout.readline().strip() == "stopped"
    started = time.monotonic()
    assert proc.poll() is None and lock.holder(settle=0)["kind"] == "resume"
    with lock.acquire("merge", run.name) as held:  # waited for, not refused
        assert time.monotonic() - started > 0.5 and held.info["pid"] == os.getpid()
    proc.wait(30)
