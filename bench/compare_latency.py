#!/usr/bin/env python
"""How fast the Chat tab's Compare shows both answers (issue 14, item 2), and how chat
compares with plain transformers `generate` (issue 9, item 5).

    .venv/bin/python bench/compare_latency.py [PRESET] [--repeats 3] [--tokens 64] [--exact]

Loads the preset's base model once (as chat does: same quantisation, the run's adapter on
top; the adapter here is a freshly initialised LoRA of the preset's shape, saved into a
run folder that is removed afterwards, so no training is needed: speed does not depend on its values), then
times, for the same prompt and settings, the median over `--repeats` of:

- one side alone: the tuned answer streamed by itself;
- before: the old Compare, the base answer streamed in full, then the tuned one;
- after: `Comparer.compare`, both rows in one mixed-adapter batch.

- plain: the same base model unquantised, in float32, no adapter, plain `generate` with a
  TextIteratorStreamer (what a user would write without Workbench): the yardstick;
- the base side alone (adapter off) and the tuned side alone, as `chat RUN` answers.

Each line: seconds to the first text of the base side, of the tuned side, to the end, and
tokens/s. With `--exact` every answer is forced to exactly `--tokens` new tokens
(`min_new_tokens`), so tokens/s = tokens / seconds to the end; without it the answers may
stop early and tokens/s is left out.
Prints the CPU kind and thread count first; nothing is kept.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT = "Write a short story about a robot who learns to paint."


def timed(stream) -> tuple[float | None, float | None, float]:
    """(first base text, first tuned text, end) in seconds for a stream of (base, tuned)."""
    t0 = time.perf_counter()
    first = [None, None]
    for pair in stream:
        for i, text in enumerate(pair):
            if text and first[i] is None:
                first[i] = time.perf_counter() - t0
    return first[0], first[1], time.perf_counter() - t0


def plain_stream(model, tokenizer, messages: list[dict], kwargs: dict):
    """Plain transformers: chat template, generate in a thread, TextIteratorStreamer."""
    import threading

    import torch
    from transformers import TextIteratorStreamer
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)

    def work():
        with torch.no_grad():
            model.generate(**inputs, streamer=streamer, **kwargs)
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    text = ""
    for piece in streamer:
        text += piece
        yield "", text
    thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", nargs="?", default="cpu-demo")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--exact", action="store_true",
                        help="force exactly --tokens new tokens per answer (for tokens/s)")
    parser.add_argument("--packed", action="store_true",
                        help="keep the 4-bit weights packed (chat before it unpacked them)")
    args = parser.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model

    from workbench import chat, hardware, models, presets, runs
    preset = presets.load(args.preset).with_overrides(
        {"generation.max_new_tokens": args.tokens})
    choice = hardware.resolve_compute_dtype(preset.quantization.compute_dtype)
    print(f"CPU {hardware.cpu_info().capability}, threads {torch.get_num_threads()},"
          f" {choice.reason}; {args.tokens} new tokens{' (exact)' if args.exact else ''},"
          f" 4-bit weights {'packed' if args.packed else 'unpacked once'},"
          f" repeats {args.repeats}", flush=True)
    if args.exact:
        plain_kwargs = chat.generation_kwargs

        def exact_kwargs(gen, tokenizer):
            return {**plain_kwargs(gen, tokenizer), "min_new_tokens": args.tokens}
        chat.generation_kwargs = exact_kwargs

    if args.packed:
        models.unpack_4bit_for_answers = lambda model, **kw: 0
    run = runs.create(preset, "compare-bench")  # chat opens runs from runs/ only
    try:
        base = models.load_model(preset.model, preset.quantization)
        lora = LoraConfig(r=preset.lora.r, lora_alpha=preset.lora.alpha,
                          target_modules=preset.lora.target_modules, task_type="CAUSAL_LM")
        get_peft_model(base, lora).save_pretrained(run / "adapter")
        del base
        comparer = chat.Comparer(run)
        gen = preset.generation
        msgs = chat.build_messages(PROMPT, None, gen.system_prompt)
        plain = models.load_model(preset.model, None, quantize=False, dtype="float32")
        plain_kwargs_now = chat.generation_kwargs(gen, comparer.tokenizer)

        def side(adapter: bool):
            def stream():
                for text in comparer._stream(msgs, gen, adapter):
                    yield ("", text) if adapter else (text, "")
            return stream

        def before():  # what Compare did until this change: base in full, then tuned
            base_text = ""
            for base_text in comparer._stream(msgs, gen, False):
                yield base_text, ""
            for text in comparer._stream(msgs, gen, True):
                yield base_text, text

        def after():
            return comparer.compare(PROMPT, gen=gen)

        def plain_generate():
            return plain_stream(plain, comparer.tokenizer, msgs, plain_kwargs_now)

        timed(after())  # warm-up: first calls pay one-off costs
        timed(plain_generate())
        rows = {}
        cases = (("plain generate, fp32", plain_generate), ("base side alone", side(False)),
                 ("tuned side alone", side(True)), ("before (sequential)", before),
                 ("after (one batch)", after))
        samples = {name: [] for name, _ in cases}
        for _ in range(args.repeats):  # interleaved, so a noisy moment hits every case
            for name, make in cases:
                samples[name].append(timed(make()))
        for name, got in samples.items():
            rows[name] = [statistics.median(s[i] for s in got if s[i] is not None)
                          if any(s[i] is not None for s in got) else None
                          for i in range(3)]

        def fmt(v):
            return "   -  " if v is None else f"{v:6.2f}"
        print(f"{'':22} {'base first':>10} {'tuned first':>11} {'total':>7} {'tokens/s':>8}")
        for name, (fb, ft, total) in rows.items():
            answers = 2 if name.startswith(("before", "after")) else 1
            rate = f"{answers * args.tokens / total:8.1f}" if args.exact else "      - "
            print(f"{name:22} {fmt(fb):>10} {fmt(ft):>11} {fmt(total):>7} {rate}")
        plain_total = rows["plain generate, fp32"][2]
        for name in ("base side alone", "tuned side alone"):
            print(f"{name} / plain generate: {rows[name][2] / plain_total:.2f}x to the end, "
                  f"{(rows[name][0] or rows[name][1]) / (rows['plain generate, fp32'][1]):.2f}x"
                  " to the first text")
        alone = rows["tuned side alone"][2]
        print(f"after / one side alone: {rows['after (one batch)'][2] / alone:.2f}x; "
              f"before / one side alone: {rows['before (sequential)'][2] / alone:.2f}x")
    finally:
        shutil.rmtree(run, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
