"""`train.gradient_checkpointing: auto`: on where the memory it saves is worth its time.

Checkpointing keeps only each layer's input and recomputes the rest during the backward
pass. Measured on a 2-core AVX2 CPU with 384-token rows (bench/README.md): about half the
peak memory, for 1.3-1.5x the step time. For short rows (cpu-demo's own identity data)
the activations are small and it would only cost time; for long rows they dominate the
peak (LLaMA-Factory's example turns it on always). `auto` decides from the estimate
(train/memory.py) at the data's real padded length, once the trainer has tokenised it:

    on  when it saves at least max(1 GiB, 1/16 of the device's memory)
    off otherwise

An explicit true or false is left alone. The memory estimate (CLI, Quantization tab)
applies the same rule at the length it assumes. Tests: tests/unit/test_checkpointing.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.config import AUTO
from workbench.units import fmt_bytes

MIN_SAVED = 1 << 30      # below this no machine's memory is worth 1.3-1.5x the time
SHARE = 16               # ...nor less than this share of the device's memory


@dataclass
class Choice:
    on: bool
    reason: str
    auto: bool = False
    seq_len: int | None = None
    saved_bytes: int | None = None

    def to_dict(self) -> dict:
        return {"on": self.on, "auto": self.auto, "reason": self.reason,
                "seq_len": self.seq_len, "saved_bytes": self.saved_bytes}


def threshold(total_memory: int) -> int:
    return max(MIN_SAVED, int(total_memory) // SHARE)


def decide(preset, seq_len: int, *, device: str | None = None, shape=None,
           method: str | None = None, total_memory: int | None = None) -> Choice:
    """On or off for `preset` with batches padded to `seq_len` tokens (module doc).
    device / total_memory: where training runs (default: this machine)."""
    value = preset.train.gradient_checkpointing
    if value != AUTO:
        return Choice(bool(value), "set in the preset", seq_len=seq_len)
    from workbench.train import memory
    if total_memory is None:
        total_memory = memory.device_memory()[1]
    kw = dict(shape=shape, method=method, seq_len=seq_len, device=device)
    try:
        off = memory.estimate_for_preset(preset, gradient_checkpointing=False, **kw)
        on = memory.estimate_for_preset(preset, gradient_checkpointing=True, **kw)
    except Exception as exc:  # noqa: BLE001 - a model the estimator cannot read: train on
        return Choice(False, f"auto → off: no memory estimate for this model ({exc})",
                      auto=True, seq_len=seq_len)
    saved, need = off.total_bytes - on.total_bytes, threshold(total_memory)
    batch = f"batches of {preset.train.batch_size} × {seq_len} tokens"
    if saved >= need:
        reason = (f"auto → on: {batch} would need about {fmt_bytes(off.total_bytes)}; "
                  f"checkpointing saves {fmt_bytes(saved)} (at least {fmt_bytes(need)}: 1 GiB "
                  f"and 1/{SHARE} of this machine's memory), for about 1.3-1.5x the step time")
    else:
        reason = (f"auto → off: {batch} are short; checkpointing would save only "
                  f"{fmt_bytes(saved)} (less than {fmt_bytes(need)}: 1 GiB and 1/{SHARE} of "
                  "this machine's memory), not worth 1.3-1.5x the step time")
    return Choice(saved >= need, reason, auto=True, seq_len=seq_len, saved_bytes=int(saved))


def longest_batch(dataset, max_length: int, packing: bool) -> int:
    """The longest padded batch a tokenised (trl) dataset gives: a batch pads to its longest
    sequence, cut at max_length; packing fills every sequence to max_length."""
    if packing or dataset is None or len(dataset) == 0:
        return int(max_length)
    try:  # arrow-native: no Python list per row on a large dataset
        import pyarrow.compute as pc
        longest = pc.max(pc.list_value_length(
            dataset.with_format("arrow")["input_ids"])).as_py()
    except Exception:  # noqa: BLE001 - another dataset kind: count row by row
        longest = max(len(ids) for ids in dataset["input_ids"])
    return int(min(int(longest or 0), int(max_length)))


def apply(trainer, preset, run, cuda: bool, log) -> Choice:
    """Decide `auto` on the trainer's tokenised data and turn checkpointing on when chosen;
    the choice goes to the log and to status.json (`run`: the run folder, or None).

    The trainer was built with it off (sft_config gives trl a bool), so what trl's __init__
    does for it is done here: PEFT needs the inputs to require gradients, or the
    recomputed layers would have nothing to differentiate. transformers reads
    args.activation_checkpointing (gradient_checkpointing is its old alias) at train()."""
    t = preset.train
    seq_len = longest_batch(trainer.train_dataset, t.max_length, t.packing)
    choice = decide(preset, seq_len, device="cuda" if cuda else "cpu")
    if not choice.auto:
        return choice
    log(f"gradient checkpointing: {choice.reason}")
    from workbench import runs
    from workbench.train import allocator, is_main_process
    if run is not None and is_main_process():
        runs.write_status(run, gradient_checkpointing=choice.to_dict())
    if choice.on:
        trainer.args.activation_checkpointing = True
        trainer.args.gradient_checkpointing = True
        if hasattr(trainer.model, "enable_input_require_grads"):
            trainer.model.enable_input_require_grads()
        allocator.memory_first(True, cuda, log)
    return choice
