"""Several training processes (issue 12 item 1) on the tiny model: torchrun with 2 CPU
processes (gloo), stopped, then resumed with 2 processes under the accelerate launcher with
a CPU config; and the accelerate configs shipped in presets/accelerate/ (checked, not run:
they need GPUs)."""

import threading
import time
from pathlib import Path

import pytest

from workbench import paths, presets, runs, train
from workbench.config import Preset
from workbench.errors import WorkbenchError
from workbench.train import distributed, dryrun, memory

EXAMPLES = paths.PROJECT_ROOT / "presets" / "accelerate"


def tiny(model_dir, *more) -> Preset:
    return Preset().with_overrides([
        f"model.name_or_path={model_dir}", "data.path=data/identity.jsonl",
        "data.eval_fraction=0", "train.max_length=64", "train.logging_steps=1",
        "train.save_steps=2", "train.watch_prompts=[]", "lora.r=4",
        # dropout draws different masks in each process: off, so losses compare
        "lora.dropout=0", "quantization.mode=nf4", *more])


def loss_rows(run: Path) -> list[dict]:
    return [r for r in runs.metrics(run) if "loss" in r]


def only_rank0_wrote(run: Path) -> None:
    steps = [r["step"] for r in loss_rows(run)]
    assert steps == sorted(set(steps)), f"duplicate metric rows: {steps}"
    adapters = [p for p in run.rglob("adapter_model.safetensors")
                if "checkpoints" not in p.parts]
    assert adapters == [run / "adapter" / "adapter_model.safetensors"]


def test_two_processes_stop_resume_and_match_one_process(tiny_model_dir):
    """torchrun: 2 processes, stopped; resumed with 2 processes under accelerate (a CPU
    config file) to the end. One test, so the suite pays for two launches, not three."""
    # one process, global batch 2: the reference loss at the first logged step
    one = runs.create(tiny(tiny_model_dir, "train.batch_size=2", "train.max_steps=1"), "one")
    assert train.train(one)["state"] == "completed"
    assert runs.status(one)["world_size"] == 1
    reference = loss_rows(one)[0]["loss"]

    # two processes of batch 1 (the same global batch), stopped after a step or two
    preset = tiny(tiny_model_dir, "train.batch_size=1", "train.max_steps=8",
                  "distributed.processes=2")
    run = runs.create(preset, "ddp")
    result = {}
    worker = threading.Thread(target=lambda: result.update(train.train(run)))
    worker.start()
    deadline = time.monotonic() + 300
    while worker.is_alive() and time.monotonic() < deadline:
        if (runs.read_json(run / "status.json").get("step") or 0) >= 1:
            runs.request_stop(run)
            break
        time.sleep(0.05)
    worker.join(300)
    st = runs.status(run)
    assert result["state"] == "stopped", (result, (run / "train.log").read_text()[-3000:])
    assert st["world_size"] == 2 and st["launcher"] == "torchrun"
    stopped_at = st["step"]
    assert 1 <= stopped_at < 8
    assert runs.last_complete_checkpoint(run).name == f"checkpoint-{stopped_at}"
    first = loss_rows(run)[0]
    assert first["step"] == 1
    assert abs(first["loss"] - reference) <= 0.05 * reference, (first["loss"], reference)

    # resumed with two processes to the end, started by accelerate this time
    (run / "preset.yaml").write_text(presets.to_yaml(preset.with_overrides([
        "distributed.launcher=accelerate",
        "distributed.accelerate_config=presets/accelerate/multi-cpu.yaml"])))
    final = train.train(run, resume=True)
    assert final["state"] == "completed", (run / "train.log").read_text()[-3000:]
    st = runs.status(run)
    assert st["step"] == 8 and st["world_size"] == 2 and st["launcher"] == "accelerate"
    assert [r["step"] for r in loss_rows(run)] == list(range(1, 9))
    only_rank0_wrote(run)
    log = (run / "train.log").read_text()
    assert "distributed: 2 processes on the CPU through torchrun (DDP, gloo)" in log
    assert ("distributed: 2 processes on the CPU through accelerate launch (MULTI_GPU, "
            "multi-cpu.yaml)") in log
    assert f"resuming from checkpoint-{stopped_at}" in log


# -- checked before anything starts (no processes) -------------------------------------

def acc(config: str | None, mode: str = "nf4", processes: int = 2) -> Preset:
    over = ["distributed.launcher=accelerate", f"distributed.processes={processes}",
            f"quantization.mode={mode}"]
    if config:
        over.append(f"distributed.accelerate_config={config}")
    return Preset().with_overrides(over)


def test_shipped_accelerate_configs_validate():
    files = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    assert files == ["deepspeed-zero2.yaml", "deepspeed-zero3.yaml", "fsdp.yaml",
                     "multi-cpu.yaml", "multi-gpu.yaml"]
    for name in files:  # the installed accelerate reads every one
        distributed.read_accelerate_config(EXAMPLES / name)
    plan = distributed.check(acc("presets/accelerate/multi-cpu.yaml"), gpus=0)
    assert (plan.distributed_type, plan.backend) == ("MULTI_GPU", "gloo")
    for name, kind in (("multi-gpu.yaml", "MULTI_GPU"), ("fsdp.yaml", "FSDP")):
        plan = distributed.check(acc(f"presets/accelerate/{name}"), gpus=2)
        assert (plan.distributed_type, plan.backend) == (kind, "nccl")
        with pytest.raises(WorkbenchError, match=f"{kind} needs CUDA GPUs"):
            distributed.check(acc(f"presets/accelerate/{name}"), gpus=0)
    for name in ("deepspeed-zero2.yaml", "deepspeed-zero3.yaml"):
        if distributed.find_spec("deepspeed") is None:  # not pinned: said before launch
            with pytest.raises(WorkbenchError, match="needs the deepspeed package"):
                distributed.check(acc(f"presets/accelerate/{name}"), gpus=2)
        else:
            assert distributed.check(acc(f"presets/accelerate/{name}"),
                                     gpus=2).distributed_type == "DEEPSPEED"
    with pytest.raises(WorkbenchError, match="int8 cannot be sharded by FSDP"):
        distributed.check(acc("presets/accelerate/fsdp.yaml", mode="int8"), gpus=2)
    with pytest.raises(WorkbenchError, match="at most 2"):
        distributed.check(acc("presets/accelerate/multi-gpu.yaml", processes=4), gpus=2)


def test_accelerate_errors_name_the_file_or_package(tmp_path, monkeypatch):
    with pytest.raises(WorkbenchError, match="needs a config file"):
        distributed.check(acc(None), gpus=0)
    with pytest.raises(WorkbenchError, match="nope.yaml: no such file"):
        distributed.check(acc(str(tmp_path / "nope.yaml")), gpus=0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("distributed_type: MULTI_GPU\nuse_cpu: true\nbogus_key: 1\n")
    with pytest.raises(WorkbenchError, match=r"bad.yaml: not a valid accelerate config.*"
                                             r"bogus_key"):
        distributed.check(acc(str(bad)), gpus=0)
    bad.write_text("distributed_type: MULTI_CPU\nuse_cpu: true\n")
    with pytest.raises(WorkbenchError, match="MULTI_CPU starts one process"):
        distributed.check(acc(str(bad)), gpus=0)
    real = distributed.find_spec
    monkeypatch.setattr(distributed, "find_spec",
                        lambda name: None if name == "accelerate" else real(name))
    with pytest.raises(WorkbenchError, match="the accelerate package is not installed"):
        distributed.check(acc("presets/accelerate/multi-cpu.yaml"), gpus=0)


def test_fsdp_with_a_4bit_base_sets_the_storage_dtype(monkeypatch):
    from workbench.quant import bnb_config
    preset = acc("presets/accelerate/fsdp.yaml")
    assert distributed.quant_storage(preset, "bfloat16") is None  # not under FSDP
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert distributed.quant_storage(preset, "bfloat16") == "bfloat16"
    assert distributed.quant_storage(acc("x", mode="none"), "bfloat16") is None
    import torch
    cfg = bnb_config({**preset.to_dict()["quantization"], "quant_storage": "bfloat16"})
    assert cfg.bnb_4bit_quant_storage == torch.bfloat16
    assert bnb_config(preset.quantization).bnb_4bit_quant_storage == torch.uint8


def test_memory_and_dry_run_steps_are_per_process(tiny_model_dir):
    one = tiny(tiny_model_dir, "train.max_steps=-1", "train.epochs=1", "train.batch_size=2")
    two = one.with_overrides(["distributed.processes=2"])
    est1, est2 = (memory.estimate_for_preset(p, device="cpu") for p in (one, two))
    assert est2.total_bytes == est1.total_bytes  # each process holds the same
    assert est2.settings["world_size"] == 2 and est1.settings["world_size"] == 1
    assert any("per process: 2 processes" in n for n in est2.notes)
    assert dryrun.full_run_steps(one, 64) == 32 and dryrun.full_run_steps(two, 64) == 16


def test_the_launch_command_and_the_failed_rank(tmp_path):
    plan = distributed.check(Preset().with_overrides(["distributed.processes=3"]), gpus=0)
    cmd = distributed.command(plan, tmp_path, resume=True)
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node" in cmd
    assert cmd[-4:] == ["-m", "workbench.train.distributed", str(tmp_path), "--resume"]
    assert distributed.worker_env(plan, tmp_path)["OMP_NUM_THREADS"]
    assert not distributed.launch_needed(Preset())

    # a rank killed (kill -9 of rank 1, seen here): rank 0 then fails on the lost
    # connection; the launcher's report names rank 1 as the root cause
    (tmp_path / "rank0.txt").write_text("training failed: RuntimeError: Connection reset")
    assert distributed.failed_rank(tmp_path, TORCHRUN_REPORT) == (
        "rank 1: the process ended with exit code -9: Signal 9 (SIGKILL) received by PID "
        "20490 (killed: out of memory, or by hand)")
    # a rank that failed with an error of its own: that error
    (tmp_path / "rank1.txt").write_text("training failed: ValueError: boom")
    assert distributed.failed_rank(tmp_path, TORCHRUN_REPORT) == (
        "rank 1: training failed: ValueError: boom")
    assert distributed.failed_rank(tmp_path, "") == (
        "rank 0: training failed: RuntimeError: Connection reset")


# the end of torchrun's output after rank 1 of a run was killed with SIGKILL
TORCHRUN_REPORT = """\
workbench.train.distributed FAILED
-------------------------------------------------------
Failures:
[1]:
  time      : 2026-12-01_03:10:20
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 20489)  (SIGTERM)
  error_file: <N/A>
  traceback : Signal 15 (SIGTERM) received by PID 20489
-------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-01_03:10:20
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 20490)  (SIGKILL)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 20490
=======================================================
"""
