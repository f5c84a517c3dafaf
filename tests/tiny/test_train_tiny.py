"""The real pipeline on a tiny random Llama: SFTTrainer steps in NF4 and bf16, the run
folder, merge verification, side-by-side answers, stop/kill/resume of detached jobs."""

import json
import os
import signal
import time

import pytest
import torch
from safetensors.torch import load_file

from workbench import chat, runs, train
from workbench.runs import jobs
from workbench.export import merge
from workbench.config import Preset


def tiny_preset(model_dir, *more):
    return Preset().with_overrides([
        f"model.name_or_path={model_dir}", "data.path=data/identity.jsonl",
        "train.max_steps=3", "train.batch_size=2", "train.max_length=128",
        "train.logging_steps=1", "train.eval_steps=2", "train.save_steps=2",
        "lora.r=4", "generation.max_new_tokens=8", *more])


@pytest.mark.parametrize("mode", ["nf4", "none"])
def test_lora_moves_and_base_stays(tiny_model_dir, mode):
    preset = tiny_preset(tiny_model_dir, f"quantization.mode={mode}")
    run = runs.create(preset, f"tiny-{mode}")
    trainer = train.build_trainer(preset, run, time.monotonic(), log=lambda m: None)
    params = dict(trainer.model.named_parameters())
    lora_before = {n: p.detach().clone() for n, p in params.items() if "lora_" in n}
    base_before = {n: p.detach().clone() for n, p in params.items()
                   if "lora_" not in n and not p.requires_grad}
    assert lora_before and base_before
    assert all(params[n].requires_grad for n in lora_before)
    trainer.train()
    moved = [n for n, before in lora_before.items()
             if not torch.equal(before, params[n].detach())]
    assert any("lora_B" in n for n in moved), "training must change the LoRA weights"
    unchanged = [n for n, before in base_before.items() if torch.equal(before, params[n].detach())]
    assert len(unchanged) == len(base_before), "the frozen base must not change"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_adapters_follow_the_compute_dtype(tiny_model_dir, dtype):
    """trl stores a quantised base's LoRA weights in bfloat16 whatever the compute dtype;
    under float32 compute that made every LoRA matmul emulated bfloat16 on AVX2 CPUs.
    Float32 compute gets float32 adapters (and says so); bfloat16 keeps trl's choice."""
    preset = tiny_preset(tiny_model_dir, "quantization.mode=nf4",
                         f"quantization.compute_dtype={dtype}")
    run = runs.create(preset, f"tiny-adapters-{dtype}")
    lines = []
    trainer = train.build_trainer(preset, run, time.monotonic(), log=lines.append)
    lora = {n: p.dtype for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in n for n in lora)
    assert set(lora.values()) == {getattr(torch, dtype)}, lora
    said = [line for line in lines if line.startswith("LoRA weights kept in float32")]
    assert len(said) == (dtype == "float32"), lines


def test_run_folder_merge_and_compare(tiny_model_dir):
    preset = tiny_preset(tiny_model_dir, "quantization.mode=nf4")
    run = runs.create(preset, "tiny-full")
    final = train.train(run)
    assert final["state"] == "completed", final
    st = runs.status(run)
    assert st["step"] == 3 and st["max_steps"] == 3 and st["ended_at"]
    m = runs.metrics(run)
    assert [r["step"] for r in m if "loss" in r] == [1, 2, 3]
    assert any("eval_loss" in r for r in m)
    for r in m:
        assert {"step", "epoch", "elapsed_s", "eta_s"} <= set(r)
    adapter = run / "adapter"
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["peft_type"] == "LORA"
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in weights.items())
    assert runs.last_complete_checkpoint(run).name == "checkpoint-3"
    assert "completed at step 3: adapter saved" in (run / "train.log").read_text()

    report = merge.merge(run)
    assert report["ok"] and report["max_abs_logit_diff"] <= report["tolerance"]
    merged = run / "merged"
    assert (merged / "model.safetensors").exists() and (merged / "merge_report.json").exists()
    assert not any(p.name.startswith(".merged-") for p in run.iterdir())
    from transformers import AutoModelForCausalLM
    plain = AutoModelForCausalLM.from_pretrained(merged)
    assert not any("lora" in n for n, _ in plain.named_parameters())

    result = chat.compare_once(run, "Who are you?")
    assert set(result) >= {"prompt", "base", "tuned"}
    assert isinstance(result["base"], str) and isinstance(result["tuned"], str)
    assert result["base"] or result["tuned"]


def test_training_failure_is_recorded_not_raised(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "hi", "output": "x"}\n{"instruction": ', encoding="utf-8")
    preset = tiny_preset(tiny_model_dir, f"data.path={bad}")
    run = runs.create(preset, "tiny-bad")
    final = train.train(run)
    assert final["state"] == "failed"
    assert "bad.jsonl" in final["error"] and "line 2" in final["error"]
    assert runs.status(run)["state"] == "failed"


def _wait_step(run, step, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = runs.status(run)
        if st["state"] != "running" or (st.get("step") or 0) >= step:
            return st
        time.sleep(0.3)
    raise AssertionError(f"run did not reach step {step}: {runs.status(run)}")


def test_detached_job_stop_then_resume(tiny_model_dir):
    preset = tiny_preset(tiny_model_dir, "train.max_steps=40", "train.save_steps=100",
                         "train.eval_steps=100")
    run = jobs.start(preset, "tiny-stop")
    assert jobs.active() == run
    with pytest.raises(Exception, match="still training"):
        jobs.start(preset, "second")
    st = _wait_step(run, 2)
    assert st["state"] == "running", (st, runs.log_tail(run))
    jobs.stop(run)
    st = runs.wait_for(run, timeout=120)
    assert st["state"] == "stopped", (st, runs.log_tail(run))
    stopped_at = st["step"]
    assert 2 <= stopped_at < 40 and runs.has_adapter(run)
    # the stop saved a checkpoint at that step, so resume continues from it
    assert runs.last_complete_checkpoint(run).name == f"checkpoint-{stopped_at}"
    jobs.resume(run)
    # resume returns once the child has recorded its own pid (nobody else writes status)
    child_pid = runs.status(run)["pid"]
    assert child_pid not in (None, os.getpid(), st["pid"])
    st = runs.wait_for(run, timeout=240)
    assert st["state"] == "completed" and st["step"] == 40, (st, runs.log_tail(run))
    assert st["pid"] == child_pid
    steps = [r["step"] for r in runs.metrics(run) if "loss" in r]
    assert steps == sorted(set(steps)), "no step is logged twice after a resume"


def test_sigkill_reads_failed_then_resume_finishes(tiny_model_dir):
    preset = tiny_preset(tiny_model_dir, "train.max_steps=30", "train.save_steps=3",
                         "train.eval_steps=100")
    run = jobs.start(preset, "tiny-kill")
    st = _wait_step(run, 7)
    assert st["state"] == "running", (st, runs.log_tail(run))
    os.kill(st["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while runs.status(run)["state"] == "running" and time.monotonic() < deadline:
        jobs.active()  # reaps the child, as the app's poll does
        time.sleep(0.2)
    st = runs.status(run)
    assert st["state"] == "failed" and "resume" in st["error"]
    assert jobs.active() is None
    assert runs.last_complete_checkpoint(run) is not None
    jobs.resume(run)
    st = runs.wait_for(run, timeout=240)
    assert st["state"] == "completed" and st["step"] == 30, (st, runs.log_tail(run))


def _lora_grads(trainer, batch):
    model = trainer.model
    model.train()
    model.zero_grad()
    model(**batch).loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()
            if p.requires_grad and p.grad is not None}


def test_evaluation_does_not_break_4bit_gradients(tiny_model_dir):
    """bitsandbytes repacks 4-bit weights for fast CPU inference on an eval-mode forward,
    and that packed kernel has no backward; after an evaluation the gradients must be the
    same as before it (they were not, before train.keep_4bit_trainable)."""
    preset = tiny_preset(tiny_model_dir, "quantization.mode=nf4", "lora.dropout=0.0")
    run = runs.create(preset, "tiny-eval-grads")
    trainer = train.build_trainer(preset, run, time.monotonic(), log=lambda m: None)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    before = _lora_grads(trainer, batch)
    trainer.evaluate()
    after = _lora_grads(trainer, batch)
    assert before.keys() == after.keys() and before
    for name in before:
        assert torch.allclose(before[name], after[name], atol=1e-6), name
