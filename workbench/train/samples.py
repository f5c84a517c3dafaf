"""The sample timeline: at each eval step the model in training answers a few watch prompts.

    train.watch_prompts: [Who are you?, What is the capital of France?]

Empty, the watch prompts are the first DEFAULT_COUNT held-out questions of the data (the
eval split, so answers the run never trained on; none without an eval split). At every
step that is a multiple of train.eval_steps (the steps with an eval loss, whether or not
there is an eval split) the callback generates a short greedy answer (NEW_TOKENS tokens,
the preset's repetition penalty, as Chat answers at temperature 0) to each and appends one
line per prompt to the run's samples.jsonl:

    {"step": 20, "epoch": 1.25, "prompt": "Who are you?", "answer": "I am ...",
     "time": "2026-12-01T03:10:02+00:00"}

Only the main process (rank 0) generates and writes (the others go on to the next step
and wait for it there; with FSDP or DeepSpeed, where no process holds all the weights,
there is no timeline); each line is flushed as it is written, so a run that
fails keeps the lines before the failure; a resume drops the lines after its checkpoint,
as it does for metrics.jsonl. Generating inside the trainer leaves training as it was:
eval mode (no dropout) under no_grad, with the KV cache on (gradient checkpointing turns
it off for training, and does not run in eval mode), the prompts in one batch padded on
the left by hand (the training tokenizer keeps its padding side), then train mode again.
Greedy decoding draws no random numbers, so the training's random stream is unchanged
(tests/tiny/test_samples.py: the same losses with and without the timeline).
A failure while generating is logged and ends the timeline, never the training.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from workbench import runs
from workbench.config import Preset

DEFAULT_COUNT = 3   # watch prompts taken from the eval split when none are given
NEW_TOKENS = 32     # a short answer: enough to see what changed, cheap on a CPU


def watch_messages(preset: Preset, eval_rows) -> list[tuple[str, list[dict]]]:
    """(prompt text, chat messages) to watch: the preset's watch_prompts (with the
    generation section's system prompt, as Chat sends them), or, when it is empty, the
    first DEFAULT_COUNT distinct questions of the eval rows (their own system message and
    earlier turns kept)."""
    given = preset.train.watch_prompts
    if given:
        system = preset.generation.system_prompt.strip()
        head = [{"role": "system", "content": system}] if system else []
        return [(p, head + [{"role": "user", "content": p}]) for p in given]
    out, seen = [], set()
    for row in eval_rows if eval_rows is not None else []:
        messages = row.get("prompt") or _before_first_answer(row.get("messages"))
        users = [m["content"] for m in messages or [] if m.get("role") == "user"]
        if not users or not users[-1].strip() or users[-1] in seen:
            continue  # a text row (no question), or one already watched
        seen.add(users[-1])
        out.append((users[-1], [{"role": m["role"], "content": m["content"]}
                                for m in messages]))
        if len(out) == DEFAULT_COUNT:
            break
    return out


def _before_first_answer(messages) -> list[dict]:
    out = []
    for m in messages or []:
        if m.get("role") == "assistant":
            break
        out.append(m)
    return out


def sharded(args) -> bool:
    """Whether FSDP or DeepSpeed split the weights across processes (from the training
    arguments, or the variables `accelerate launch` sets from its config file)."""
    import os
    flags = ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED")
    return bool(getattr(args, "fsdp", None) or getattr(args, "deepspeed", None)
                or any(os.environ.get(f, "").lower() in ("1", "true") for f in flags))


@contextlib.contextmanager
def generating(model, args=None):
    """Eval mode and no_grad (and the trainer's mixed precision) around generate();
    train mode again afterwards, whatever happened."""
    import torch
    was_training = model.training
    dtype = (torch.bfloat16 if getattr(args, "bf16", False) else
             torch.float16 if getattr(args, "fp16", False) else None)
    device = getattr(model, "device", torch.device("cpu")).type
    model.eval()
    try:
        with torch.no_grad(), (torch.autocast(device, dtype=dtype) if dtype
                               else contextlib.nullcontext()):
            yield
    finally:
        if was_training:
            model.train()


def answers(model, tokenizer, conversations: list[list[dict]], *,
            repetition_penalty: float = 1.0, max_new_tokens: int = NEW_TOKENS) -> list[str]:
    """One greedy answer to each conversation, in one batch (call inside `generating`).
    The rows are left-padded here, as Chat does, so the tokenizer's padding side (right,
    for training) is never changed."""
    import torch
    rows = []
    for messages in conversations:
        if getattr(tokenizer, "chat_template", None):
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                tokenize=True, return_dict=True)["input_ids"]
        else:  # a base model without a chat template: the question as plain text
            ids = tokenizer(messages[-1]["content"])["input_ids"]
        rows.append(list(ids[0]) if ids and isinstance(ids[0], list) else list(ids))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (
        tokenizer.eos_token_id)
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    out = model.generate(input_ids=input_ids.to(model.device),
                         attention_mask=attention.to(model.device),
                         max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                         top_p=None, top_k=None, use_cache=True,
                         repetition_penalty=repetition_penalty, pad_token_id=pad,
                         eos_token_id=tokenizer.eos_token_id)
    # a cut multi-byte character decodes as U+FFFD: not part of the answer
    return [tokenizer.decode(row[width:], skip_special_tokens=True).strip().rstrip("\ufffd")
            for row in out]


def make_callback(preset: Preset, run: Path, tokenizer, eval_rows, log):
    """The TrainerCallback that writes samples.jsonl, or None when nothing is watched."""
    from transformers import TrainerCallback

    from workbench.train import is_main_process
    watch = watch_messages(preset, eval_rows)
    if not watch:
        return None
    every = preset.train.eval_steps
    penalty = preset.generation.repetition_penalty
    log(f"sample timeline: {len(watch)} watch prompt(s) answered every {every} steps "
        f"into {runs.SAMPLES_FILE}")

    class SampleCallback(TrainerCallback):
        def __init__(self):
            self.watch = watch

        def on_train_begin(self, args, state, control, **kw):
            if self.watch and sharded(args):
                self.watch = []
                log("note: no sample timeline with FSDP or DeepSpeed: the weights are "
                    "split across the processes, so one process cannot answer alone")
            # a resume redoes the steps after its checkpoint: their lines go
            if is_main_process() and (Path(run) / runs.SAMPLES_FILE).exists():
                runs.trim_metrics(run, state.global_step, runs.SAMPLES_FILE)

        def on_step_end(self, args, state, control, model=None, **kw):
            if (not self.watch or model is None or state.global_step % every
                    or not is_main_process()):
                return
            t0 = time.monotonic()
            try:
                with generating(model, args):
                    texts = answers(model, tokenizer, [m for _, m in self.watch],
                                    repetition_penalty=penalty)
                for (prompt, _), text in zip(self.watch, texts):
                    runs.append_sample(run, {
                        "step": state.global_step, "epoch": round(state.epoch or 0.0, 4),
                        "prompt": prompt, "answer": text, "time": runs.now_iso()})
            except Exception as exc:  # noqa: BLE001 - the timeline is never worth the run
                self.watch = []
                log(f"warning: sample timeline stopped at step {state.global_step}: "
                    f"{type(exc).__name__}: {str(exc)[:200]}")
                return
            log(f"samples at step {state.global_step}: {len(self.watch)} answers in "
                f"{time.monotonic() - t0:.1f} s")

    return SampleCallback()
