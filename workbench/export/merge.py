"""Merge a run's LoRA adapter into its base model, and prove the merge is right.

    python launch.py merge RUN

Merging into 4-bit weights would round the update away, so the base is reloaded
*unquantised*. The adapter is applied, logits are taken on a few prompts, the adapter is
folded in (`merge_and_unload(safe_merge=True)`) and the logits are taken again: the
largest difference goes into `<run>/merged/merge_report.json`, and a difference above the
tolerance is an error (nothing is written then). The folder is written to a temporary
name (fsio.temp_name), its files fsync'd, then renamed, so a failed or killed merge (or a
power loss) never leaves half a model behind; a killed merge's temporary folder is removed
at the next start (runs.clean_stale_temps).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from workbench import fsio, runs
from workbench.errors import RunError

# float32 merge: the merged weight W + s*B@A differs from computing W x + s*B(A x) only by
# rounding, ~1e-5 relative; logits of this size (|logit| <= ~50) stay well inside 1e-2.
TOLERANCE = {"float32": 1e-2, "bfloat16": 0.5, "float16": 0.25}
VERIFY_PROMPTS = ["Who are you?", "What can you do?", "Write one sentence about the sea.",
                  "你是谁？"]


def merged_dir(run: Path) -> Path:
    return Path(run) / "merged"


def _verify_inputs(tokenizer, prompts: list[str]):
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True) for p in prompts]
    return tokenizer(texts, return_tensors="pt", padding=True)


def merge(run_ref, *, dtype: str = "float32", progress=None) -> dict:
    """Merge the run's adapter into the unquantised base; returns the merge report."""
    say = progress or (lambda msg: None)
    run = runs.find(run_ref)
    st = runs.status(run)
    if st["state"] == "running":
        raise RunError(f"run {run.name} is still training: merge it once it has finished")
    if not runs.has_adapter(run):
        raise RunError(f"run {run.name} has no adapter yet ({st['state']}): train or resume "
                       "it first")
    preset = runs.load_preset(run)
    import torch
    from peft import PeftModel

    from workbench import models
    t0 = time.monotonic()
    say("loading the unquantised base model")
    tokenizer = models.load_tokenizer(preset.model.name_or_path,
                                      trust_remote_code=preset.model.trust_remote_code)
    base = models.load_model(preset.model, preset.quantization, quantize=False,
                             dtype=getattr(torch, dtype))
    say("applying the adapter")
    model = PeftModel.from_pretrained(base, str(run / "adapter"))
    model.eval()
    inputs = _verify_inputs(tokenizer, VERIFY_PROMPTS)
    inputs = {k: v.to(base.device) for k, v in inputs.items()}
    mask = inputs["attention_mask"].bool()
    with torch.no_grad():
        before = model(**inputs).logits[mask].float()
    say("merging")
    merged = model.merge_and_unload(safe_merge=True)
    with torch.no_grad():
        after = merged(**inputs).logits[mask].float()
    diff = (before - after).abs().max().item()
    agree = (before.argmax(-1) == after.argmax(-1)).float().mean().item()
    tol = TOLERANCE[dtype]
    report = {"run": run.name, "base": preset.model.name_or_path, "dtype": dtype,
              "prompts": VERIFY_PROMPTS, "max_abs_logit_diff": diff, "tolerance": tol,
              "argmax_agreement": agree, "ok": diff <= tol,
              "merged_at": runs.now_iso()}
    if not report["ok"]:
        raise RunError(f"merge verification failed for {run.name}: logits differ by up to "
                       f"{diff:.4g} (tolerance {tol}); nothing was written")
    say("writing the merged model")
    out = merged_dir(run)
    tmp = out.with_name(fsio.temp_name("merged"))
    try:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        report["seconds"] = round(time.monotonic() - t0, 1)
        report["path"] = str(out)
        fsio.atomic_write(tmp / "merge_report.json", json.dumps(report, indent=1))
        from workbench.export import card  # the Hugging Face model card, README.md
        card.write(run, tmp, report)
        fsio.fsync_tree(tmp)  # every file on disk before the rename makes it the model
        if out.exists():
            old = out.with_name(fsio.temp_name("merged-old"))
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
        fsio.fsync_dir(run)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    say(f"merged model written to {out}")
    return report


def report(run_ref) -> dict | None:
    """The merge report of a run, or None when it has not been merged."""
    path = merged_dir(runs.find(run_ref)) / "merge_report.json"
    return runs.read_json(path) or None
