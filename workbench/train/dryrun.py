"""Dry run: train K steps on the real data and settings, measure, keep nothing.

    python launch.py dryrun cpu-demo [--steps 5] [--json]

It answers "how long will this take and will it fit?" before a user commits to a run:
seconds per step, tokens per second, peak memory (RSS growth over the process baseline
on a CPU, `torch.cuda.max_memory_allocated` on a GPU) and the ETA for the whole run, next
to the memory estimate. It runs the same training code as a real run, in a scratch
folder under WORKBENCH_HOME/tmp/ that is deleted afterwards, so it never shows up as a run.
It always runs one process: with `distributed.processes` N, its figures are those of each
of the N processes (`world_size`, `per_process`), and the whole run counts N batches a step.
"""

from __future__ import annotations

import math
import shutil
import time

from workbench import paths, runs
from workbench.config import Preset
from workbench.errors import WorkbenchError


def rss_bytes() -> int:
    import psutil
    return psutil.Process().memory_info().rss


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def full_run_steps(preset: Preset, n_train: int) -> int:
    """Optimizer steps of the whole run, as transformers' Trainer counts them."""
    t = preset.train
    if t.max_steps > 0:
        return t.max_steps
    # each step of N processes (distributed.processes) reads N batches
    batches = math.ceil(n_train / (t.batch_size * preset.distributed.processes))
    per_epoch = max(batches // t.grad_accum, 1)
    return math.ceil(t.epochs * per_epoch)


def dry_run(preset: Preset, steps: int = 5, progress=None) -> dict:
    """Train `steps` steps of `preset` in a scratch folder and report what was measured."""
    import torch

    from workbench import train
    say = progress or (lambda msg: None)
    if steps < 2:
        raise WorkbenchError("dryrun: --steps must be at least 2 (the first step warms up)")
    # the baseline includes the libraries (~0.4 GB of code and import-time tables), so
    # the growth is what the model, data and training take, as the estimate counts it
    import bitsandbytes  # noqa: F401
    import datasets  # noqa: F401
    import peft  # noqa: F401
    import transformers  # noqa: F401
    import trl  # noqa: F401
    baseline = rss_bytes()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    probe = preset.with_overrides({
        "train.max_steps": steps, "train.logging_steps": 1,
        "train.save_steps": 10 ** 5, "train.eval_steps": 10 ** 5})
    # a run folder like any other (runs.create), in the scratch area: the training code
    # writes its status and metrics there as in a real run, and it never lists as a run
    scratch = runs.create(probe, "dryrun", parent=paths.home() / "tmp")
    try:
        say(f"training {steps} steps to measure")
        t0 = time.monotonic()
        trainer = train.build_trainer(probe, scratch, t0, log=say)
        n_train = len(trainer.train_dataset)
        checkpointing = bool(trainer.args.activation_checkpointing)  # auto: decided in there
        load_s = time.monotonic() - t0
        step_times: list[float] = []
        tokens: list[float] = []

        from transformers import TrainerCallback

        class Timer(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                self.t = time.monotonic()

            def on_step_end(self, args, state, control, **kw):
                step_times.append(time.monotonic() - self.t)

            def on_log(self, args, state, control, logs=None, **kw):
                if logs and "num_tokens" in logs:
                    tokens.append(float(logs["num_tokens"]))

        trainer.add_callback(Timer())
        flops_per_token = training_flops_per_token(trainer.model)
        # record the padded length of every batch: activations scale with it, not with
        # max_length, so the estimate beside the measurement uses what was really trained
        collate, lengths = trainer.data_collator, []

        def recording_collator(features):
            batch = collate(features)
            lengths.append(int(batch["input_ids"].shape[1]))
            return batch

        trainer.data_collator = recording_collator
        trainer.train()
    except WorkbenchError:
        raise
    except BaseException as exc:  # noqa: BLE001 - one readable line, as for real runs
        if train._is_oom(exc):
            raise WorkbenchError(train.oom_advice(preset)) from None
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    # the first step pays for warm-up (allocations, kernel selection): leave it out
    timed = step_times[1:] or step_times
    per_step = sorted(timed)[len(timed) // 2]
    tok_per_step = (tokens[-1] / len(step_times)) if tokens else None
    total = full_run_steps(preset, n_train)
    if cuda:
        peak = torch.cuda.max_memory_allocated()
        peak_kind = "cuda max_memory_allocated"
    else:
        peak = peak_rss_bytes() - baseline
        peak_kind = "peak RSS growth over the process baseline"
    from workbench import hardware
    from workbench.runs import threads
    choice = hardware.resolve_compute_dtype(preset.quantization.compute_dtype)
    tps = tok_per_step / per_step if tok_per_step else None
    peak_flops = hardware.matmul_peak_flops(choice.dtype) if not cuda else None
    achieved = flops_per_token * tps if tps else None
    result = {
        "compute_dtype": choice.dtype, "compute_dtype_requested": choice.requested,
        "dtype_reason": choice.reason, "dtype_warning": choice.warning,
        "cpu_capability": hardware.cpu_info().label, "bf16_slowdown": choice.bf16_slowdown,
        "threads": (chosen := threads.decided()) and chosen.to_dict(),
        "flops_per_token": int(flops_per_token),
        "achieved_flops": round(achieved) if achieved else None,
        "peak_flops": round(peak_flops) if peak_flops else None,
        "mfu": round(achieved / peak_flops, 4) if achieved and peak_flops else None,
        "mfu_formula": MFU_FORMULA,
        "steps": len(step_times), "seconds_per_step": round(per_step, 3),
        "tokens_per_second": round(tok_per_step / per_step, 1) if tok_per_step else None,
        "tokens_per_step": round(tok_per_step, 1) if tok_per_step else None,
        "load_seconds": round(load_s, 1), "peak_bytes": int(peak), "peak_kind": peak_kind,
        "device": "cuda" if cuda else "cpu", "full_run_steps": total,
        "eta_seconds": round(per_step * total + load_s, 1), "train_examples": n_train,
        "padded_length": max(lengths) if lengths else None,
        "gradient_checkpointing": checkpointing,
        "gradient_checkpointing_requested": preset.train.gradient_checkpointing,
        # measured in this one process: per-process figures of a run with world_size
        "world_size": preset.distributed.processes, "per_process": True,
    }
    # the estimate beside the measurement assumes what was trained (auto decided on the
    # whole data's longest batch, the timed steps may have shorter ones)
    result["estimate"] = _estimate(
        preset.with_overrides({"train.gradient_checkpointing": checkpointing}),
        result["padded_length"], result["device"])
    return result


MFU_FORMULA = ("MFU = achieved FLOP/s / peak; achieved = (4·P_frozen + 6·P_trainable) "
               "× tokens/s, P = weights of the linear layers a token passes (lm_head "
               "included, embedding lookup and attention scores left out), tokens counted "
               "with padding; peak = this machine's measured matmul FLOP/s in the compute "
               "dtype (cached)")


def training_flops_per_token(model) -> float:
    """Matmul FLOPs per token of one training step: a frozen weight costs a forward (2)
    and the input gradient (2); a trainable one also its weight gradient (2 more)."""
    import torch
    frozen = trainable = 0
    for module in model.modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        n = module.in_features * module.out_features  # shapes, not packed 4-bit storage
        if module.weight.requires_grad:
            trainable += n
        else:
            frozen += n
    return 4.0 * frozen + 6.0 * trainable


def _estimate(preset: Preset, seq_len: int | None, device: str) -> dict | None:
    try:
        from workbench.train import memory
        return memory.estimate_for_preset(preset, seq_len=seq_len, device=device).to_dict()
    except Exception as exc:  # noqa: BLE001 - the measurement stands without the estimate
        return {"error": str(exc)}
