"""Training: a Preset and a run folder in, a LoRA adapter out, through trl's SFTTrainer.

This runs in the job process (the CLI's `train` / `resume`, or a detached process the UI
starts), never in the web server. It is the only writer of its run folder's status.json
(recording its own pid), metrics.jsonl, checkpoints/ and adapter/, through workbench.runs:

    python launch.py train cpu-demo --set train.max_steps=10

The steps: load the tokenizer and the (quantised) base model, load and normalise the data,
wrap the base with a LoRA adapter, train, save the adapter. A callback writes status.json
and metrics.jsonl as it goes and honours a stop request (the STOP file) at the next step.
Under torchrun / accelerate launch only rank 0 writes the run folder.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import traceback
from pathlib import Path

from workbench import runs
from workbench.config import Preset
from workbench.errors import WorkbenchError

__all__ = ["BNB_OPTIMIZERS", "is_main_process", "effective_optimizer", "oom_advice",
           "training_examples", "build_datasets", "lora_config", "sft_config", "make_callback",
           "train", "keep_4bit_trainable", "build_trainer", "lora", "memory", "preview",
           "dryrun", "measure", "distributed", "folder"]


BNB_OPTIMIZERS = ("paged_adamw_32bit", "paged_adamw_8bit", "adamw_8bit")


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def effective_optimizer(name: str, cuda: bool) -> tuple[str, str | None]:
    """The optimizer trl gets, and a note when a CUDA-only choice had to fall back."""
    if name in BNB_OPTIMIZERS and not cuda:
        return "adamw_torch", (f"note: {name} needs a CUDA GPU (bitsandbytes paged/8-bit "
                               "optimizers); using adamw_torch on this CPU instead")
    return name, None


def oom_advice(preset: Preset) -> str:
    t, q = preset.train, preset.quantization
    tips = [f"lower train.batch_size (now {t.batch_size}) and raise train.grad_accum to keep "
            "the same effective batch",
            f"lower train.max_length (now {t.max_length})"]
    if t.gradient_checkpointing is not True:  # off, or auto (which found it not needed)
        tips.append("set train.gradient_checkpointing to true")
    if q.mode in ("none", "int8"):
        tips.append("use quantization.mode nf4 (QLoRA)")
    return "ran out of memory: " + "; ".join(tips)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    text = str(exc).lower()
    return name == "OutOfMemoryError" or "out of memory" in text or "can't allocate memory" in text


# -- datasets -------------------------------------------------------------------------

def training_examples(preset: Preset) -> tuple[list, list, dict]:
    """(train examples, eval examples, info dict) from the preset's data section: what the
    trainer gets, and what a bundle records and its standalone script rebuilds."""
    from workbench import data
    from workbench.data import mix
    loaded = data.load(preset.data)
    # split whole conversations first, so turns of one conversation never land on both sides
    train_conv, eval_conv = data.split(loaded.rows, preset.data.eval_fraction, preset.data.seed)
    # data.mix: general rows added at a fraction, split like the user's (workbench/data/mix.py)
    parts = mix.load(preset.data, len(loaded.rows), loaded.format)
    train_conv, eval_conv = mix.add(train_conv, eval_conv, preset.data, parts)
    train_rows = data.to_examples(train_conv, preset.train.completion_only_loss)
    eval_rows = data.to_examples(eval_conv, preset.train.completion_only_loss)
    info = {"format": loaded.format, "rows": len(loaded.rows), "dropped": loaded.dropped,
            "train_examples": len(train_rows), "eval_examples": len(eval_rows),
            "mix": mix.info(parts), "mix_summary": mix.summary(parts)}
    return train_rows, eval_rows, info


def build_datasets(preset: Preset):
    """(train Dataset, eval Dataset | None, info dict) from the preset's data section."""
    from datasets import Dataset
    train_rows, eval_rows, info = training_examples(preset)
    train_ds = Dataset.from_list(train_rows)
    eval_ds = Dataset.from_list(eval_rows) if eval_rows else None
    return train_ds, eval_ds, info


def lora_config(preset: Preset):
    from peft import LoraConfig
    lc = preset.lora
    return LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                      target_modules=lc.target_modules, bias=lc.bias,
                      use_rslora=lc.use_rslora, use_dora=lc.use_dora, task_type="CAUSAL_LM")


def sft_config(preset: Preset, output_dir: Path, *, has_eval: bool, cuda: bool,
               text_only: bool = False, compute_dtype: str | None = None):
    """`compute_dtype`: the resolved dtype (default: resolve the preset's on this machine)."""
    from trl import SFTConfig

    from workbench.hardware import resolve_compute_dtype
    t, q = preset.train, preset.quantization
    optim, _ = effective_optimizer(t.optimizer, cuda)
    # bf16/fp16 mixed precision follows the resolved compute dtype (no bf16 autocast where
    # `auto` chose float32 because the CPU emulates bf16); on a CPU fp16 autocast is
    # unsupported, so float16 runs in float32 there.
    dtype = compute_dtype or resolve_compute_dtype(q.compute_dtype).dtype
    bf16 = dtype == "bfloat16"
    fp16 = dtype == "float16" and cuda
    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # transformers 5: a fraction < 1 means a ratio
        optim=optim,
        max_grad_norm=t.max_grad_norm,
        gradient_checkpointing=t.gradient_checkpointing is True,  # auto: checkpointing.apply
        packing=t.packing,
        # plain-text (language modelling) rows have no prompt to mask: every token is trained
        completion_only_loss=None if text_only else t.completion_only_loss,
        max_length=t.max_length,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=t.eval_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=3,
        seed=t.seed,
        data_seed=preset.data.seed,
        bf16=bf16,
        fp16=fp16,
        use_cpu=not cuda,
        report_to="none",
        dataloader_num_workers=0,
        dataset_num_proc=None,
        disable_tqdm=False,
    )


# -- the callback that keeps the run folder current ----------------------------------

def make_callback(run: Path, started: float):
    from transformers import TrainerCallback

    class RunFolderCallback(TrainerCallback):
        """Writes status.json / metrics.jsonl and honours the STOP file (rank 0 writes)."""

        def __init__(self):
            self.first_step = None
            self.t0 = None

        def on_train_begin(self, args, state, control, **kw):
            self.first_step = state.global_step
            self.t0 = time.monotonic()
            if is_main_process():
                runs.write_status(run, state="running", phase="training",
                                  step=state.global_step, max_steps=state.max_steps)

        def _eta(self, state) -> float | None:
            done = state.global_step - (self.first_step or 0)
            if done <= 0 or not state.max_steps:
                return None
            per_step = (time.monotonic() - self.t0) / done
            return round(per_step * max(0, state.max_steps - state.global_step), 1)

        def on_step_end(self, args, state, control, **kw):
            if is_main_process():
                runs.write_status(run, step=state.global_step, max_steps=state.max_steps,
                                  eta_s=self._eta(state),
                                  elapsed_s=round(time.monotonic() - started, 1))
            from workbench.train import distributed  # every rank stops at the same step
            if distributed.any_rank(runs.stop_requested(run)):
                # save a checkpoint at this step so a resume continues from here
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kw):
            if not is_main_process() or not logs:
                return
            record = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
            for key, value in logs.items():
                if isinstance(value, (int, float)):
                    record[key] = value
            record["elapsed_s"] = round(time.monotonic() - started, 1)
            record["eta_s"] = self._eta(state)
            runs.append_metrics(run, record)

    return RunFolderCallback()


# -- the entry point ------------------------------------------------------------------

def train(run: Path, *, resume: bool = False) -> dict:
    """Train the run's preset into its folder (train.log gets a copy of the output)."""
    run = Path(run)
    log_path = run / "train.log"
    from workbench.train import distributed, folder
    # a worker's output reaches train.log through its supervisor; a detached job's stdout
    # is train.log already
    if not is_main_process() or distributed.is_worker() or folder.stdout_is(log_path):
        return _train(run, resume=resume)
    with open(log_path, "a", encoding="utf-8") as log:
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = folder.Tee(out, log), folder.Tee(err, log)
        try:
            return _train(run, resume=resume)
        finally:
            sys.stdout, sys.stderr = out, err


def _train(run: Path, *, resume: bool = False) -> dict:
    """Train the run's preset into its folder. Returns the final status.

    Failures never escape as tracebacks: the status says `failed` with a message that says
    what to change, and the traceback goes to train.log.
    """
    run = Path(run)
    preset = runs.load_preset(run)
    started = time.monotonic()
    main = is_main_process()
    from workbench.train import distributed, folder

    def log(msg: str) -> None:
        if main:  # one copy of each line, not one per process
            print(msg, flush=True)

    if distributed.launch_needed(preset):  # N workers run this again (distributed.py)
        try:
            return distributed.supervise(run, preset, resume=resume, log=log, take_over=(
                lambda **fields: folder.take_over(run, resume, log, **fields)))
        except WorkbenchError as exc:
            return _fail(run, main, str(exc))
    if main and not distributed.is_worker():
        folder.take_over(run, resume, log, world_size=1)
    elif main:  # rank 0 of a supervised group: the supervisor took the folder over
        runs.write_status(run, phase="loading model", world_size=distributed.world_size())
    checkpoint = runs.last_complete_checkpoint(run) if resume else None
    if resume:
        log(f"resuming from {checkpoint.name}" if checkpoint else
            "no complete checkpoint yet: training again from the start")
    try:
        trainer = build_trainer(preset, run, started, log)
        if main:
            runs.write_status(run, phase="training")
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        stopped = runs.stop_requested(run)
        if main:
            runs.write_status(run, phase="saving adapter")
        # every rank takes part (FSDP / DeepSpeed gather the weights); rank 0 writes
        trainer.save_model(str(run / "adapter"))
        if main:
            final = runs.write_status(
                run, state="stopped" if stopped else "completed", phase="done",
                step=trainer.state.global_step, ended_at=runs.now_iso(),
                elapsed_s=round(time.monotonic() - started, 1))
            log(f"{final['state']} at step {final['step']}: adapter saved to {run / 'adapter'}")
            return final
        return {"state": "completed"}
    except KeyboardInterrupt:
        msg = "interrupted (Ctrl-C); resume it to continue from the last checkpoint"
        return _fail(run, main, msg, state="stopped")
    except WorkbenchError as exc:
        return _fail(run, main, str(exc))
    except BaseException as exc:  # noqa: BLE001 - every failure must end in status.json
        traceback.print_exc(file=sys.stdout)
        if _is_oom(exc):
            return _fail(run, main, oom_advice(preset))
        first = (str(exc).strip().splitlines() or [""])[0][:400]
        return _fail(run, main, f"training failed: {type(exc).__name__}: {first} "
                                f"(details in {run / 'train.log'})")


def _fail(run: Path, main: bool, message: str, state: str = "failed") -> dict:
    from workbench.train import distributed
    distributed.record_error(message)  # for the supervisor, in a worker
    print(f"error: {message}", flush=True)
    if not main:
        return {"state": state, "error": message}
    return runs.write_status(run, state=state, phase="done", error=message,
                             ended_at=runs.now_iso())


def keep_4bit_trainable(model) -> int:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference during training.

    On a CPU with AVX512-BF16, a Linear4bit that runs a forward in eval mode without
    gradients (the trainer's evaluation) converts its weights, for good, to a packed layout
    whose kernel has no backward: every later training step then silently drops the
    gradient through the frozen base layers. Turning that fast path off keeps training
    correct; chat, which only generates, still uses it. Returns the layers changed."""
    changed = 0
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
            changed += 1
    return changed


def adapters_in_compute_dtype(model, dtype: str) -> int:
    """Undo trl's bfloat16 adapters where the compute is not bfloat16. Returns the tensors cast.

    trl's SFTTrainer stores the LoRA weights of a quantised base in bfloat16 whatever the
    compute dtype (the QLoRA paper's recipe for GPUs). Under float32 compute (`auto` on a CPU
    without native bfloat16) every LoRA matmul then ran in emulated bfloat16: measured on an
    AVX2 CPU, a rank-8 LoRA matmul took 6-46 ms instead of 0.4-4 ms, a third of the step.
    Under float16 (a GPU without bfloat16) bfloat16 may not run at all. Float32 adapters are
    what such runs get instead: full-precision updates, and the same math as the base's
    compute."""
    import torch
    if dtype == "bfloat16":
        return 0
    cast = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype == torch.bfloat16:
            param.data = param.data.to(torch.float32)
            cast += 1
    return cast


def build_trainer(preset: Preset, run: Path, started: float, log):
    """The SFTTrainer for a preset: (quantised) base + LoRA config + data + callback."""
    import torch
    from trl import SFTTrainer

    from workbench import hardware, models
    from workbench.runs import threads
    cuda = torch.cuda.is_available()
    hardware.measure_if_unknown()  # so the dtype line can say how much slower bf16 is
    choice = hardware.resolve_compute_dtype(preset.quantization.compute_dtype)
    log(f"compute dtype: {choice.reason} [{choice.device}: {choice.capability}]")
    if choice.warning:
        log(f"warning: {choice.warning}")
    if is_main_process():
        runs.write_status(run, compute_dtype=choice.to_dict(), threads=threads.report(log))
    optim, note = effective_optimizer(preset.train.optimizer, cuda)
    if note:
        log(note)
    if preset.train.packing and preset.train.completion_only_loss:
        log("note: packing with loss on answers only keeps the answer masks per row")
    train_ds, eval_ds, info = build_datasets(preset)
    log(f"data: {info['format']} format, {info['rows']} rows ({info['dropped']} dropped), "
        f"{info['train_examples']} train / {info['eval_examples']} eval examples")
    if info["mix_summary"]:
        log(f"data.mix: {info['mix_summary']}")
    tokenizer = models.load_tokenizer(preset.model.name_or_path,
                                      trust_remote_code=preset.model.trust_remote_code)
    log(f"loading {preset.model.name_or_path} ({preset.quantization.mode}) on "
        f"{'cuda' if cuda else 'cpu'}")
    from workbench.train import distributed
    quant = preset.quantization
    storage = distributed.quant_storage(preset, choice.dtype)
    if storage:  # FSDP shards flat parameters of one dtype: the 4-bit weights too
        quant = {**dataclasses.asdict(quant), "quant_storage": storage}
        log(f"FSDP with a 4-bit base: bnb_4bit_quant_storage={storage}, so FSDP can shard "
            "the quantised layers (FSDP-QLoRA)")
    from workbench.train import allocator, checkpointing  # less RSS under checkpointing
    allocator.memory_first(preset.train.gradient_checkpointing is True, cuda, log)
    model = models.load_model(preset.model, quant)
    keep_4bit_trainable(model)
    args = sft_config(preset, run / "checkpoints", has_eval=eval_ds is not None, cuda=cuda,
                      text_only="text" in train_ds.column_names, compute_dtype=choice.dtype)
    from workbench.train import lm_head  # on a CPU too, only the answers' positions,
    lm_head.score_only_trained_positions()  # and whole logits while they are small
    lm_head.plain_head_when_small()
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=lora_config(preset),
                         callbacks=[make_callback(run, started)])
    checkpointing.apply(trainer, preset, run, cuda, log)  # auto: on the tokenised data
    if adapters_in_compute_dtype(trainer.model, choice.dtype):
        log(f"LoRA weights kept in float32 (trl would store them in bfloat16, which "
            f"{choice.dtype} compute does not use)")
    from workbench.train import lora, samples  # samples: the watch prompts' answers
    timeline = samples.make_callback(preset, run, trainer.processing_class, eval_ds, log)
    if timeline is not None:
        trainer.add_callback(timeline)
    # counted from shapes: PEFT's count on a 4-bit base sees packed weights (2 per byte)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = lora.model_info(preset.model.name_or_path,
                            preset.model.trust_remote_code)["total"] + trainable
    log(f"LoRA r={preset.lora.r}: {trainable:,} trainable parameters "
        f"({100 * trainable / max(total, 1):.2f}% of {total:,})")
    return trainer
