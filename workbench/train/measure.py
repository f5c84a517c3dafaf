"""Load and measure: the base model loaded exactly as training will load it (quantised or
not), and the memory its weights really take, next to the same model in 16-bit.

    python launch.py quant measure cpu-demo [--json]

The Quantization tab's "Load and measure" runs that command in a child process (through
runs.jobs.spawn) and shows the result, so the web server never holds the model. It sits
in train/, beside the memory estimate (memory.py) and the dry run (dryrun.py) that it
complements, because the 16-bit size counts parameters on the meta device with
train.lora.model_info, which quant/ (a lower layer) may not import.
"""

from __future__ import annotations

import gc
import time


def load_and_measure(model_cfg, quant_cfg) -> dict:
    """{model, mode, measured_bytes, full16_bytes, seconds}: load the model with these
    settings, measure its footprint, let it go."""
    from workbench import models
    from workbench.train.lora import model_info
    t0 = time.perf_counter()
    model = models.load_model(model_cfg, quant_cfg, quantize=quant_cfg.mode != "none")
    try:
        seconds = time.perf_counter() - t0
        measured = models.footprint_bytes(model)
    finally:
        del model
        gc.collect()
    total = model_info(model_cfg.name_or_path, model_cfg.trust_remote_code)["total"]
    return {"model": model_cfg.name_or_path, "mode": quant_cfg.mode,
            "measured_bytes": int(measured), "full16_bytes": int(total) * 2,
            "seconds": round(seconds, 3)}
