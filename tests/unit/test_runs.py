"""Run folders: status with pid liveness, metrics, checkpoints, stop requests, CLI errors."""

import json
import os
import subprocess
import sys

import pytest

from workbench import cli, runs
from workbench.config import Preset
from workbench.errors import RunError
from workbench.train import effective_optimizer, oom_advice, prepare_run


def test_prepare_run_writes_preset_and_status():
    run = prepare_run(Preset().with_overrides(["lora.r=4"]), "demo")
    assert run.parent == runs.paths.runs_dir() and run.name.startswith("demo-")
    assert runs.load_preset(run).lora.r == 4
    st = runs.status(run)
    assert st["state"] == "running" and st["pid"] == os.getpid()
    assert runs.find("demo") == run and runs.find(run.name) == run and runs.find(str(run)) == run


def test_dead_pid_reads_as_failed():
    run = prepare_run(Preset(), "ghost")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    runs.write_status(run, pid=proc.pid)
    st = runs.status(run)
    assert st["state"] == "failed" and "resume" in st["error"]
    assert [r["state"] for r in runs.list_runs() if r["name"] == run.name] == ["failed"]


def test_metrics_skip_a_half_written_line():
    run = prepare_run(Preset(), "m")
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
    run = prepare_run(Preset(), "ck")
    _fake_checkpoint(run, 5)
    _fake_checkpoint(run, 10)
    _fake_checkpoint(run, 15, complete=False)
    assert runs.last_complete_checkpoint(run).name == "checkpoint-10"
    assert [(s, ok) for s, _, ok in runs.checkpoints(run)] == [(5, True), (10, True), (15, False)]


def test_log_tail_keeps_last_progress_frame():
    run = prepare_run(Preset(), "log")
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
    prepare_run(Preset(), "listed")
    assert cli.main(["runs", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"].startswith("listed-")


def test_stop_request_and_wrong_state():
    run = prepare_run(Preset(), "s")
    from workbench.runs import jobs
    jobs.stop(run)  # our own pid is alive, so the run counts as running
    assert runs.stop_requested(run)
    runs.write_status(run, state="completed")
    with pytest.raises(RunError, match="completed, not running"):
        jobs.stop(run)


def test_reconcile_writes_failed_for_dead_processes():
    from workbench.runs import jobs
    run = prepare_run(Preset(), "dead")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    runs.write_status(run, pid=proc.pid)
    alive = prepare_run(Preset(), "alive")  # our own pid: still running
    assert jobs.reconcile() == [run.name]
    raw = json.loads((run / "status.json").read_text())
    assert raw["state"] == "failed" and raw["ended_at"]
    assert json.loads((alive / "status.json").read_text())["state"] == "running"
