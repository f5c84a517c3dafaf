"""The Hugging Face model card (README.md) that `merge` and `export` write into a run's
merged/ folder: YAML front matter (base_model, library_name, license, tags, datasets) and
what the model is: the training setup (quantisation, LoRA, trainer settings, hardware,
time), the losses, the merge check and the latest `eval` report of the run when there is one.

    >>> card_text(run)            # the text; write(run, folder) puts it in folder/README.md

base_model and license are named only where they are known: the embedded model is
HuggingFaceTB/SmolLM2-135M-Instruct (apache-2.0), a Hub id is itself; a local folder or
.gguf has no Hub id, so the card names its path in the text instead.
"""

from __future__ import annotations

from pathlib import Path

from workbench import fsio, runs
from workbench.errors import WorkbenchError

# embedded name -> (Hub id of the model it was converted from, its license)
KNOWN_BASES = {"embedded:smollm2-135m-instruct": ("HuggingFaceTB/SmolLM2-135M-Instruct",
                                                  "apache-2.0")}
LICENSES = {"HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0",
            "HuggingFaceTB/SmolLM2-360M-Instruct": "apache-2.0",
            "HuggingFaceTB/SmolLM2-1.7B-Instruct": "apache-2.0"}


def base_model(name: str) -> tuple[str | None, str | None]:
    """(Hub id, license) of a preset's model.name_or_path, None where unknown."""
    if name in KNOWN_BASES:
        return KNOWN_BASES[name]
    from workbench.export.bundle import base_entry
    try:
        is_hub = not name.startswith("embedded:") and base_entry(name)["kind"] == "hub"
    except (WorkbenchError, OSError):
        is_hub = False
    return (name, LICENSES.get(name)) if is_hub else (None, None)


def latest_eval(run: Path) -> tuple[Path, dict] | None:
    """The newest eval/*.json of the run and this run's entry in it."""
    for path in sorted((Path(run) / "eval").glob("*.json"), reverse=True):
        report = runs.read_json(path)
        entry = next((r for r in report.get("runs") or [] if r.get("run") == Path(run).name),
                     None)
        if entry is not None:
            return path, entry
    return None


def _data(preset) -> list[dict]:
    from workbench.export.bundle import data_files
    try:
        return data_files(preset)
    except (WorkbenchError, OSError):
        return [{"name": preset.data.path, "sha256": None}]


def _rate(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _eval_section(run: Path) -> list[str]:
    found = latest_eval(run)
    if found is None:
        return ["No prompt-set evaluation yet (`python launch.py eval RUN` adds one)."]
    path, e = found
    kept = e.get("kept_general") or {}
    lines = [f"From `eval/{path.name}` ({len(e.get('answers') or [])} prompts):", "",
             "| measure | base | tuned |", "|---|---|---|",
             f"| reference match rate | {_rate(e.get('base_match_rate'))} | "
             f"{_rate(e.get('match_rate'))} |"]
    for part, ppl in (e.get("perplexity") or {}).items():
        if isinstance(ppl, dict) and (ppl.get("base") is not None or ppl.get("tuned") is not None):
            fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            lines.append(f"| perplexity ({part}) | {fmt(ppl.get('base'))} | "
                         f"{fmt(ppl.get('tuned'))} |")
    if kept.get("of"):
        lines += ["", f"General questions the base answers and the tuned model still "
                      f"answers: {kept.get('kept')} of {kept.get('of')}."]
    return lines


def card_text(run_ref, merge_report: dict | None = None) -> str:
    import yaml
    run = runs.find(run_ref) if not isinstance(run_ref, Path) else run_ref
    preset = runs.load_preset(run)
    st = runs.status(run)
    hub_id, license_ = base_model(preset.model.name_or_path)
    q, lc, t = preset.quantization, preset.lora, preset.train
    files = _data(preset)
    meta = {"library_name": "transformers", "pipeline_tag": "text-generation"}
    if hub_id:
        meta["base_model"] = hub_id
    if license_:
        meta["license"] = license_
    meta["tags"] = ["workbench", "lora", "peft", "trl", "sft"] + (
        ["qlora", q.mode] if q.mode != "none" else [])
    meta["datasets"] = [f"{Path(f['name']).name}" + (f" (sha256:{f['sha256'][:16]})"
                                                    if f.get("sha256") else "") for f in files]
    dtype = st.get("compute_dtype") or {}
    metrics = runs.metrics(run)
    losses = [m["loss"] for m in metrics if "loss" in m]
    evals = [m["eval_loss"] for m in metrics if "eval_loss" in m]
    targets = lc.target_modules if isinstance(lc.target_modules, str) else \
        ", ".join(lc.target_modules)
    merged = merge_report or {}
    out = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip(), "---", "",
           f"# {run.name}", "",
           f"A LoRA fine-tune of `{preset.model.name_or_path}`"
           + (f" ([{hub_id}](https://huggingface.co/{hub_id}))" if hub_id else "")
           + ", trained with Workbench (trl SFTTrainer"
           + (f", QLoRA on a {q.mode} base" if q.mode != "none" else "")
           + "), its adapter merged into the unquantised base"
           + (f" in {merged['dtype']}" if merged.get("dtype") else "") + ".", "",
           "## Training setup", "",
           f"- Quantisation while training: {q.mode}"
           + (f", double quant {'on' if q.double_quant else 'off'}" if q.mode in ("nf4", "fp4")
              else "")
           + f", compute dtype {dtype.get('dtype') or q.compute_dtype}"
           + (f" ({dtype['reason']})" if dtype.get("reason") else ""),
           f"- LoRA: r {lc.r}, alpha {lc.alpha:g}, dropout {lc.dropout:g}, targets {targets}, "
           f"bias {lc.bias}" + (", rsLoRA" if lc.use_rslora else "")
           + (", DoRA" if lc.use_dora else ""),
           f"- Trainer: {t.epochs:g} epochs" + (f", max {t.max_steps} steps" if t.max_steps > 0
                                                else "")
           + f", batch {t.batch_size} x {t.grad_accum} accumulation, learning rate "
           f"{t.learning_rate:g} ({t.lr_scheduler}, warmup {t.warmup_ratio:g}), optimizer "
           f"{t.optimizer}, max length {t.max_length}, loss on "
           f"{'answers only' if t.completion_only_loss else 'every token'}"
           + (", packing" if t.packing else "") + f", seed {t.seed}",
           "- Data: " + ", ".join(f"`{Path(f['name']).name}`" + (f" (sha256 {f['sha256'][:16]}…)"
                                                                  if f.get("sha256") else "")
                                   for f in files)
           + f"; eval fraction {preset.data.eval_fraction:g}, data seed {preset.data.seed}",
           f"- Hardware: {dtype.get('device') or '?'} ({dtype.get('capability') or '?'}), "
           f"{int(st.get('world_size') or 1)} process(es)",
           f"- Time: {st.get('step')} steps in {st.get('elapsed_s')} s "
           f"({st.get('started_at')} to {st.get('ended_at')}), state {st.get('state')}", "",
           "## Results", ""]
    if losses:
        out.append(f"Training loss {losses[0]:.4f} at the first logged step, {losses[-1]:.4f} "
                   "at the last" + (f"; eval loss {evals[-1]:.4f} at the end." if evals
                                    else "."))
    if merged.get("max_abs_logit_diff") is not None:
        out.append(f"Merge check: the merged model's logits differ from base + adapter by at "
                   f"most {merged['max_abs_logit_diff']:.2e} (tolerance "
                   f"{merged.get('tolerance')}), argmax agreement "
                   f"{100 * merged.get('argmax_agreement', 0):.1f}%.")
    out += ["", "### Evaluation", ""] + _eval_section(run) + [
        "", "## Use", "", "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        'tokenizer = AutoTokenizer.from_pretrained("PATH_TO_THIS_FOLDER")',
        'model = AutoModelForCausalLM.from_pretrained("PATH_TO_THIS_FOLDER")', "```", "",
        "Settings as Workbench ran them: `preset.yaml` in the run folder; "
        "`python launch.py bundle RUN` makes a reproducibility bundle.", ""]
    return "\n".join(out)


def write(run: Path, folder: Path, merge_report: dict | None = None) -> Path:
    """Write the card as folder/README.md (atomically); returns its path."""
    if merge_report is None:
        merge_report = runs.read_json(Path(folder) / "merge_report.json") or None
    return fsio.atomic_write(Path(folder) / "README.md", card_text(run, merge_report))


def front_matter(text: str) -> dict:
    """The YAML front matter of a card (for checks without huggingface_hub)."""
    import yaml
    if not text.startswith("---\n"):
        return {}
    return yaml.safe_load(text.split("\n---", 2)[0][4:]) or {}
