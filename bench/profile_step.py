#!/usr/bin/env python
"""Where one training step's time goes (issue 9, item 6): torch.profiler over a few real
steps of a preset (real data, real trainer, nothing kept), top operators by self CPU time.

    .venv/bin/python bench/profile_step.py cpu-demo [--steps 3] [--set key=value ...]

The first step (warm-up) is left out. Prints the resolved compute dtype and CPU kind.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", nargs="?", default="cpu-demo")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--rows", type=int, default=25, help="operators to list")
    args = parser.parse_args()

    import torch
    from transformers import TrainerCallback

    from workbench import hardware, paths, presets, train
    preset = presets.load(args.preset, args.set).with_overrides(
        {"train.max_steps": args.steps + 1, "train.logging_steps": 1,
         "train.save_steps": 10 ** 5, "train.eval_steps": 10 ** 5})
    choice = hardware.resolve_compute_dtype(preset.quantization.compute_dtype)
    print(f"{choice.reason} [{choice.capability}], threads {torch.get_num_threads()}")
    scratch = Path(tempfile.mkdtemp(prefix="profile-", dir=paths.cache_dir()))
    try:
        run = scratch  # a scratch folder the trainer writes its status into
        (run / "preset.yaml").write_text(presets.to_yaml(preset), encoding="utf-8")
        trainer = train.build_trainer(preset, run, time.monotonic(), log=print)
        prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        times = []

        class Profile(TrainerCallback):
            def on_step_begin(self, a, state, c, **kw):
                self.t = time.perf_counter()
                if state.global_step == 1:
                    prof.__enter__()

            def on_step_end(self, a, state, c, **kw):
                times.append(time.perf_counter() - self.t)
        trainer.add_callback(Profile())
        trainer.train()
        prof.__exit__(None, None, None)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"step times: {', '.join(f'{t:.2f}' for t in times)} s")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
