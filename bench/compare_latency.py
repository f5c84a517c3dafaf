#!/usr/bin/env python
"""How fast the Chat tab's Compare shows both answers (issue 14, item 2).

    .venv/bin/python bench/compare_latency.py [PRESET] [--repeats 3] [--tokens 64]

Loads the preset's base model once (as chat does: same quantisation, the run's adapter on
top; the adapter here is a freshly initialised LoRA of the preset's shape, saved into a
run folder that is removed afterwards, so no training is needed: speed does not depend on its values), then
times, for the same prompt and settings, the median over `--repeats` of:

- one side alone: the tuned answer streamed by itself;
- before: the old Compare, the base answer streamed in full, then the tuned one;
- after: `Comparer.compare`, both rows in one mixed-adapter batch.

Each line: seconds to the first text of the base side, of the tuned side, and to the end.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", nargs="?", default="cpu-demo")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model

    from workbench import chat, hardware, models, presets, runs
    preset = presets.load(args.preset).with_overrides(
        {"generation.max_new_tokens": args.tokens})
    choice = hardware.resolve_compute_dtype(preset.quantization.compute_dtype)
    print(f"CPU {hardware.cpu_info().capability}, threads {torch.get_num_threads()},"
          f" {choice.reason}; {args.tokens} new tokens, repeats {args.repeats}", flush=True)

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

        def one_side():
            for text in comparer._stream(msgs, gen, True):
                yield "", text

        def before():  # what Compare did until this change: base in full, then tuned
            base_text = ""
            for base_text in comparer._stream(msgs, gen, False):
                yield base_text, ""
            for text in comparer._stream(msgs, gen, True):
                yield base_text, text

        def after():
            return comparer.compare(PROMPT, gen=gen)

        timed(after())  # warm-up: first calls pay one-off costs
        rows = {}
        for name, make in (("one side alone", one_side), ("before (sequential)", before),
                           ("after (one batch)", after)):
            samples = [timed(make()) for _ in range(args.repeats)]
            rows[name] = [statistics.median(s[i] for s in samples if s[i] is not None)
                          if any(s[i] is not None for s in samples) else None
                          for i in range(3)]

        def fmt(v):
            return "   -  " if v is None else f"{v:6.2f}"
        print(f"{'':22} {'base first':>10} {'tuned first':>11} {'total':>7}")
        for name, (fb, ft, total) in rows.items():
            print(f"{name:22} {fmt(fb):>10} {fmt(ft):>11} {fmt(total):>7}")
        alone = rows["one side alone"][2]
        print(f"after / one side alone: {rows['after (one batch)'][2] / alone:.2f}x; "
              f"before / one side alone: {rows['before (sequential)'][2] / alone:.2f}x")
    finally:
        shutil.rmtree(run, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
