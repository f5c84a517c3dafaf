"""Atomic, durable writes (issue 13 item 6): one helper (fsio.atomic_write) with unique
temporary names, fsync before the rename and of the folder after; status.json written by
two processes at once loses nothing; what killed writers leave is cleaned at start-up."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench import cli, fsio, presets, runs
from workbench.config import Preset
from workbench.runs import jobs

ROOT = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_atomic_write_replaces_whole_and_fsyncs_file_then_folder(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "report.json"
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"))
        real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", Path(src).name.startswith(".report.json.")))
        real_replace(src, dst)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    fsio.atomic_write(target, "first")
    assert calls == [("fsync", "file"), ("replace", True), ("fsync", "dir")]
    fsio.atomic_write(target, b"\x00second")
    assert target.read_bytes() == b"\x00second"
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]  # no temp left
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes, not 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "status.json"
    fsio.atomic_write(target, "old")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk")))
    with pytest.raises(OSError):
        fsio.atomic_write(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == [
        "status.json"]


def test_every_writer_goes_through_the_helper(monkeypatch, tmp_path):
    """status.json, metrics trimming, a run's preset.yaml, user presets and a job's result
    file: each through fsio.atomic_write."""
    written = []
    real = fsio.atomic_write
    monkeypatch.setattr(fsio, "atomic_write",
                        lambda path, data, **kw: written.append(Path(path).name) or
                        real(path, data, **kw))
    run = runs.create(Preset(), "w")
    runs.write_status(run, state="running")
    runs.append_metrics(run, {"step": 1, "loss": 1.0})
    runs.trim_metrics(run, 0)
    presets.save("mine", Preset())
    jobs.write_result(tmp_path / "result.json", {"ok": True})
    assert written == ["preset.yaml", "status.json", "metrics.jsonl", "mine.yaml",
                       "result.json"]


WRITER = r"""
import os, sys, time
from pathlib import Path
if os.environ.get("NO_FSYNC"):  # durability is tested above; here only the race matters
    os.fsync = lambda fd: None
from workbench import runs
run, key, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
errors = 0
while not (run / "go").exists():
    time.sleep(0.001)
for i in range(n):
    try:
        runs.write_status(run, **{key: i})
    except Exception as exc:
        errors += 1
        print(type(exc).__name__, exc, file=sys.stderr)
print(errors)
"""


def test_two_processes_writing_status_concurrently_lose_nothing():
    """Issue 13: with a fixed temporary name, two writers lost writes and raised
    FileNotFoundError 577 times in 1,500. Now each writes 1,500 times at once: no error,
    every read in between parses, and both last values are there."""
    n = 1500
    run = runs.create(Preset(), "race")
    runs.write_status(run, state="running")
    env = dict(os.environ, NO_FSYNC="1", PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(run), key, str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for key in ("a", "b")]
    time.sleep(0.5)  # both have started (imports) before they are let go together
    (run / "go").write_text("")
    unreadable = 0
    while any(p.poll() is None for p in procs):
        try:
            json.loads((run / "status.json").read_text(encoding="utf-8"))
        except ValueError:
            unreadable += 1
        time.sleep(0.002)  # read often, but leave the two cores to the writers
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert [o[0].strip() for o in outs] == ["0", "0"], [o[1][-2000:] for o in outs]
    assert unreadable == 0
    final = json.loads((run / "status.json").read_text(encoding="utf-8"))
    assert final["a"] == n - 1 and final["b"] == n - 1 and final["state"] == "running"
    assert sorted(p.name for p in run.iterdir()) == ["go", "preset.yaml", "status.json"]


def test_stale_temps_of_dead_writers_are_cleaned_at_start_up(monkeypatch):
    home = runs.paths.home()
    run = runs.create(Preset(), "stale")
    dead, old = _dead_pid(), time.time() - 3600
    made = {
        "dead": run / f".status.json.{dead}.abc123.tmp",
        "young": run / f".metrics.jsonl.{dead}.def456.tmp",  # a writer may still own it
        "alive": run / f".status.json.{os.getppid()}.ghi789.tmp",
        "mine": home / "presets" / f".x.yaml.{os.getpid()}.jkl000.tmp",
        "preset": home / "presets" / f".x.yaml.{dead}.mno111.tmp",
        "cache": home / "cache" / f".matmul_peak.json.{dead}.pqr222.tmp",
        "export": run / "export" / f".export_report.json.{dead}.stu333.tmp",
        "other": run / ".not-ours.tmp",
    }
    for key, path in made.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("partial")
        if key != "young":
            os.utime(path, (old, old))
    merged_tmp = run / f".merged.{dead}.1a2b.tmp"  # a killed merge's folder
    (merged_tmp / "sub").mkdir(parents=True)
    (merged_tmp / "sub" / "model.safetensors").write_text("half")
    os.utime(merged_tmp, (old, old))

    assert runs.clean_stale_temps() == 5
    gone = {k for k, p in made.items() if not p.exists()}
    assert gone == {"dead", "preset", "cache", "export"} and not merged_tmp.exists()
    assert (run / "preset.yaml").exists()

    # a heavy command cleans when it starts (the app does in server.run_app)
    again = run / f".status.json.{dead}.zzz999.tmp"
    again.write_text("partial")
    os.utime(again, (old, old))
    monkeypatch.setattr(cli, "cmd_merge", lambda args: 0)
    assert cli.main(["merge", run.name]) == 0
    assert not again.exists()


def test_temp_names_carry_the_writer_pid():
    name = Path(fsio.temp_name("merged")).name
    assert fsio.temp_owner(name) == os.getpid()
    assert fsio.temp_owner(".status.json.tmp") is None  # the old fixed name: not ours
    assert fsio.temp_owner(".a.b.c.12.x_Y9.tmp") == 12
    assert fsio.temp_owner(".a.12.x.tmp\n") is None
