"""Run folders: who writes what, status with pid liveness, metrics, checkpoints, stop
requests, CLI errors; jobs.spawn and its result files."""

import json
import os
import subprocess
import sys

import pytest

from workbench import cli, runs
from workbench.config import Preset
from workbench.errors import RunError
from workbench.runs import jobs
from workbench.train import effective_optimizer, oom_advice


def test_create_writes_only_the_preset():
    run = runs.create(Preset().with_overrides(["lora.r=4"]), "demo")
    assert run.parent == runs.paths.runs_dir() and run.name.startswith("demo-")
    assert runs.load_preset(run).lora.r == 4
    assert [p.name for p in run.iterdir()] == ["preset.yaml"]  # status.json is the trainer's
    assert runs.find("demo") == run and runs.find(run.name) == run and runs.find(str(run)) == run
    assert runs.create(Preset(), "demo") != run  # same second: a folder of its own


def test_a_folder_without_status_is_starting_then_never_started(monkeypatch):
    run = runs.create(Preset(), "fresh")
    assert runs.status(run)["state"] == "failed"  # no job was started for it
    (run / "train.log").write_text("", "utf-8")  # what jobs.spawn creates
    st = runs.status(run)
    assert st["state"] == "running" and st["phase"] == "starting" and st["pid"] is None
    assert st["started_at"] and [r["state"] for r in runs.list_runs()] == ["running"]
    monkeypatch.setattr(runs, "STARTING_GRACE_S", 0.0)
    st = runs.status(run)
    assert st["state"] == "failed" and "never started" in st["error"]


def test_dead_pid_reads_as_failed():
    run = runs.create(Preset(), "ghost")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    runs.write_status(run, state="running", pid=proc.pid)
    st = runs.status(run)
    assert st["state"] == "failed" and "resume" in st["error"]
    assert [r["state"] for r in runs.list_runs() if r["name"] == run.name] == ["failed"]
    runs.request_stop(run)  # a stop was asked for (stop --force kills): it reads stopped
    st = runs.status(run)
    assert st["state"] == "stopped" and "killed before it could save" in st["error"]


def test_metrics_skip_a_half_written_line():
    run = runs.create(Preset(), "m")
    runs.append_metrics(run, {"step": 1, "loss": 2.0})
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"step": 2, "lo')
    assert runs.metrics(run) == [{"step": 1, "loss": 2.0}]


def _fake_checkpoint(run, step, complete=True):
    folder = run / "checkpoints" / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"x" * 10)
    (folder / "scheduler.pt").write_bytes(b"x")
    if complete:
        (folder / "optimizer.pt").write_bytes(b"x")
    return folder


def test_last_complete_checkpoint_skips_half_written():
    run = runs.create(Preset(), "ck")
    _fake_checkpoint(run, 5)
    _fake_checkpoint(run, 10)
    _fake_checkpoint(run, 15, complete=False)
    assert runs.last_complete_checkpoint(run).name == "checkpoint-10"
    assert [(s, ok) for s, _, ok in runs.checkpoints(run)] == [(5, True), (10, True), (15, False)]


def test_log_tail_keeps_last_progress_frame():
    run = runs.create(Preset(), "log")
    (run / "train.log").write_text("a\nstep 1/3\rstep 2/3\rstep 3/3\nb\n", encoding="utf-8")
    assert runs.log_tail(run, 3) == "step 3/3\nb\n" or runs.log_tail(run, 3).endswith("step 3/3\nb\n")


def test_unknown_run_is_a_clear_error():
    with pytest.raises(RunError, match="run 'nope' not found"):
        runs.find("nope")


def test_paged_optimizer_falls_back_on_cpu_with_a_note():
    assert effective_optimizer("paged_adamw_32bit", cuda=False)[0] == "adamw_torch"
    assert "CUDA" in effective_optimizer("paged_adamw_32bit", cuda=False)[1]
    assert effective_optimizer("paged_adamw_32bit", cuda=True) == ("paged_adamw_32bit", None)


def test_oom_advice_says_what_to_change():
    msg = oom_advice(Preset().with_overrides(["quantization.mode=none"]))
    assert "train.batch_size (now 4)" in msg and "gradient_checkpointing" in msg and "nf4" in msg


def test_cli_user_error_exits_2_with_one_line(capsys):
    assert cli.main(["train", "cpu-demo", "--set", "lora.rank=3"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --set: lora.rank: unknown key (did you mean lora.r?)"
    assert cli.main(["merge", "no-such-run"]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_presets_and_runs(capsys, tmp_path):
    assert cli.main(["presets", "list"]) == 0
    assert "cpu-demo" in capsys.readouterr().out
    assert cli.main(["presets", "show", "qlora-paper"]) == 0
    assert "r: 64" in capsys.readouterr().out
    bad = tmp_path / "p.yaml"
    bad.write_text("lora: {r: -1}\n")
    assert cli.main(["presets", "validate", str(bad)]) == 2
    assert "lora.r: -1 is out of range" in capsys.readouterr().err
    runs.create(Preset(), "listed")
    assert cli.main(["runs", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"].startswith("listed-")


def test_stop_request_and_wrong_state():
    run = runs.create(Preset(), "s")
    runs.write_status(run, state="running", pid=os.getpid())  # as a training process would
    jobs.stop(run)  # our own pid is alive, so the run counts as running
    assert runs.stop_requested(run)
    runs.write_status(run, state="completed")
    with pytest.raises(RunError, match="completed, not running"):
        jobs.stop(run)


def test_orphans_are_named_but_nothing_is_written():
    run = runs.create(Preset(), "dead")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    runs.write_status(run, state="running", pid=proc.pid)
    alive = runs.create(Preset(), "alive")
    runs.write_status(alive, state="running", pid=os.getpid())  # our own pid: still running
    before = (run / "status.json").read_text()
    assert jobs.orphans() == [run.name]
    assert (run / "status.json").read_text() == before  # status.json is the trainer's
    assert runs.status(run)["state"] == "failed"


# -- jobs.spawn: the one way to start a child ------------------------------------------

def test_spawn_result_comes_from_the_json_file_not_stdout(tmp_path):
    """A child prints a decoy JSON on stdout and writes its result to --json-out: the
    caller reads the file; the log holds the output for people."""
    script = ("import json, sys; print('{\"decoy\": 1}', flush=True); "
              "open(sys.argv[sys.argv.index('--json-out') + 1], 'w')"
              ".write(json.dumps({'answer': 42}))")
    job = _spawn_script(script, tmp_path, result=tmp_path / "out.json")
    assert list(job.lines()) == ['{"decoy": 1}']
    assert job.wait() == 0 and job.read_result() == {"answer": 42}
    assert job.argv[-2:] == ["--json-out", str(tmp_path / "out.json")]


def test_spawn_error_from_the_result_file_or_the_log(tmp_path):
    job = _spawn_script("import sys; print('working'); print('error: bad thing', "
                        "file=sys.stderr); sys.exit(2)", tmp_path, result=tmp_path / "r.json")
    assert job.wait() == 2 and job.read_result() is None and job.error() == "bad thing"
    job = _spawn_script("import json, sys; open(sys.argv[sys.argv.index('--json-out') + 1], "
                        "'w').write(json.dumps({'error': 'from the file'})); sys.exit(2)",
                        tmp_path, result=tmp_path / "r.json")
    job.wait()
    assert job.error() == "from the file"


def test_spawn_detached_log_appends_and_a_stale_result_is_removed(tmp_path):
    log, result = tmp_path / "train.log", tmp_path / "r.json"
    log.write_text("earlier attempt\n", "utf-8")
    result.write_text('{"stale": true}', "utf-8")
    job = _spawn_script("print('again')", tmp_path, log=log, result=result, detached=True)
    assert list(job.lines()) == ["again"]  # only this job's lines
    assert log.read_text() == "earlier attempt\nagain\n" and job.read_result() is None


def _spawn_script(script, tmp_path, *, log=None, result=None, detached=False):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jobs, "command", lambda argv: [sys.executable, "-c", script, *argv])
        return jobs.spawn("test", ["x"], log=log or tmp_path / "job.log", result=result,
                          detached=detached)


FAKE_TRAINER = """
import json, os, sys, time
from workbench import runs
run = runs.find(sys.argv[sys.argv.index('{kind}') + 1])
time.sleep(0.5)  # start-up: nobody has written status.json for this attempt yet
runs.write_status(run, state="running", phase="loading model", pid=os.getpid())
time.sleep(1.0)
runs.write_status(run, state="completed", phase="done")
"""


def test_resume_keeps_the_pid_the_child_wrote(monkeypatch):
    """jobs.resume writes nothing to status.json: it returns once the child has recorded
    its own pid, so a caller reads the child's state (and the pid is never the server's)."""
    run = runs.create(Preset(), "again")
    runs.write_status(run, state="stopped", pid=12345678, step=3, max_steps=10,
                      started_at=runs.now_iso())
    monkeypatch.setattr(jobs, "command", lambda argv: [
        sys.executable, "-c", FAKE_TRAINER.replace("{kind}", argv[0]), *argv])
    assert jobs.resume(run) == run
    st = runs.status(run)
    assert st["state"] == "running" and st["pid"] not in (os.getpid(), 12345678)
    assert runs.pid_alive(st["pid"]) and jobs.active() == run
    with pytest.raises(RunError, match="still training"):  # one training at a time
        jobs.start(Preset(), "second")
    assert runs.wait_for(run, timeout=30)["state"] == "completed"
    assert runs.status(run)["pid"] == st["pid"]


def test_start_creates_the_folder_and_the_child_takes_it_over(monkeypatch):
    monkeypatch.setattr(jobs, "command", lambda argv: [
        sys.executable, "-c", FAKE_TRAINER.replace("{kind}", "--run-dir"), *argv])
    run = jobs.start(Preset(), "fresh")
    assert runs.status(run)["pid"] not in (None, os.getpid())
    assert runs.wait_for(run, timeout=30)["state"] == "completed"


def test_a_child_that_dies_before_taking_over_is_an_error(monkeypatch):
    monkeypatch.setattr(jobs, "command", lambda argv: [
        sys.executable, "-c", "import sys; print('error: no such thing', file=sys.stderr); "
        "sys.exit(2)", *argv])
    with pytest.raises(RunError, match="did not start: no such thing"):
        jobs.start(Preset(), "broken")


def test_polled_reads_parse_a_file_again_only_when_it_changed(tmp_path, monkeypatch):
    """The app polls every 2 s while training (issue 9): unchanged files are not re-parsed,
    changed ones are read fresh."""
    from workbench import runs
    run = tmp_path / "r"
    run.mkdir()
    runs.append_metrics(run, {"step": 1, "loss": 2.0})
    parsed = []
    real = runs._read_metrics
    monkeypatch.setattr(runs, "_read_metrics", lambda p: parsed.append(p) or real(p))
    assert [m["step"] for m in runs.metrics(run)] == [1]
    assert [m["step"] for m in runs.metrics(run)] == [1]
    assert len(parsed) == 1
    runs.append_metrics(run, {"step": 2, "loss": 1.5})
    assert [m["step"] for m in runs.metrics(run)] == [1, 2] and len(parsed) == 2
    first = runs.metrics(run)
    first.append({"step": 99})  # callers get their own list
    assert len(runs.metrics(run)) == 2


def test_base_name_undoes_what_the_folder_name_added():
    assert runs.base_name("cpu-demo-20250101-120000") == "cpu-demo"
    assert runs.base_name("my-run-20250101-120000-2") == "my-run"
    assert runs.base_name("not-a-run-folder") == "not-a-run-folder"
