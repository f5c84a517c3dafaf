#!/usr/bin/env python
"""What a second row costs plain transformers `generate` on this CPU: the embedded
SmolLM2-135M unquantised in float32, the same prompt as 1 row and as 2 rows, 64 forced new
tokens, greedy, repetition penalty 1.1; median of 3 after a warm-up (the yardstick for the
Chat tab's Compare pair, which answers base and tuned as one batch of two rows).

    .venv/bin/python bench/generate_rows.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    import torch

    from workbench import chat, hardware, models
    from workbench.config import Preset
    preset = Preset()
    tok = models.load_tokenizer(preset.model.name_or_path)
    model = models.load_model(preset.model, None, quantize=False, dtype="float32")
    ids = tok.apply_chat_template(chat.build_messages("Tell me about the history of Rome.", None),
                                  add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)["input_ids"]
    kwargs = dict(max_new_tokens=64, min_new_tokens=64, do_sample=False,
                  repetition_penalty=1.1, pad_token_id=tok.pad_token_id or tok.eos_token_id)
    times: dict[int, list[float]] = {1: [], 2: []}
    with torch.no_grad():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        for _ in range(3):
            for rows in times:
                batch = ids.repeat(rows, 1)
                start = time.perf_counter()
                model.generate(input_ids=batch, attention_mask=torch.ones_like(batch), **kwargs)
                times[rows].append(time.perf_counter() - start)
    print(f"CPU {hardware.cpu_info().label}, threads {torch.get_num_threads()}")
    for rows, got in times.items():
        print(f"{rows} row(s): median {statistics.median(got):.2f} s "
              f"({', '.join(f'{t:.2f}' for t in got)})")
    print(f"2 rows / 1 row: {statistics.median(times[2]) / statistics.median(times[1]):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
