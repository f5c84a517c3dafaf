"""Prompt-set evaluation: what tuning changed and what it cost, for one or more runs.

    python launch.py eval RUN [RUN ...] [--prompts FILE] [--json]
    >>> from workbench import evaluate
    >>> rep = evaluate.evaluate(["identity"], "data/general_probe.jsonl")
    >>> rep["runs"][0]["kept_general"]          # {"kept": 15, "of": 16}

A prompt set is a .jsonl (or .csv) file of rows {"prompt", optional "reference" (a string or
a list of acceptable answers; in a CSV cell, alternatives separated by "|"), optional
"system", optional "answer" (a whole model answer, for perplexity)}. `data/general_probe.jsonl` is the shipped one (general questions the embedded
base answers correctly; bench/check_probe.py checks it).

For each base model (runs that share model and quantisation share it) the base is loaded
ONCE, the way the runs trained it; every run's adapter is loaded onto it under its own name
(PeftModel.load_adapter) and switched with set_adapter; the base answers with the adapters
off (disable_adapter). On a CPU, where chat's lean LoRA layers apply, those do the switching
instead (models.lean_lora_for_answers). Answers are greedy and short (MAX_NEW_TOKENS),
prompts in batches.

Per run the report holds:
- answers: per prompt {prompt, reference, base, tuned, base_match, tuned_match};
- match_rate: the share of prompts with a reference that the tuned model matches
  (base_match_rate likewise for the base);
- kept_general {kept, of}: of the prompts the base answers correctly, how many the run
  still answers correctly (forgetting);
- perplexity {eval: {base, tuned}, general: {base, tuned}}: on the run's eval split (made
  into examples as training makes them, answer tokens only with completion_only_loss:
  quant.compare.eval_items, the trainer's split and masking) and on the general probe's
  questions with their "answer" (else their first reference) as the assistant's turn, in
  chat form (answer tokens only): a short sentence, as the model answers, scores the
  model's knowledge rather than its surprise at a one-word reply.

A reference matches when, both normalised (lowercase, accents, punctuation and symbols
dropped, whitespace collapsed), the answer equals it or contains it as whole words.
"""

from __future__ import annotations

import gc
import json
import time
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from workbench import fsio, paths, runs
from workbench.errors import (DataError, RunError, WorkbenchError, describe, path_text,
                              plain)
from workbench.models.answer_lora import ALL, answering

__all__ = ["PromptItem", "DEFAULT_PROMPTS", "MAX_NEW_TOKENS", "read_prompts", "normalise",
           "matches", "generate_answers", "general_items", "evaluate", "save_report"]

DEFAULT_PROMPTS = paths.samples_dir() / "general_probe.jsonl"
MAX_NEW_TOKENS = 48
MAX_PROMPTS = 1000
BATCH = 16              # prompts per generate() call
PPL_MAX_TOKENS = 4096   # tokens scored per perplexity measurement, at most


@dataclass
class PromptItem:
    prompt: str
    references: list[str] = field(default_factory=list)
    system: str = ""
    where: str = ""
    answer: str = ""


# -- the prompt set ------------------------------------------------------------------------

def read_prompts(path: str | Path | None = None) -> list[PromptItem]:
    """The prompt set in `path` (default: the shipped general probe); a bad row is a
    DataError naming the file and the row's line."""
    from workbench.data import files
    spec = str(path) if path is not None else str(DEFAULT_PROMPTS)
    items: list[PromptItem] = []
    for name, real in files.resolve_files(spec):
        shown_name = path_text(name)  # a long path keeps its end: the file name
        for where, raw in files.read_rows(real, name):
            items.append(_prompt_item(raw, f"{shown_name}: {where}", real.suffix.lower()))
            if len(items) > MAX_PROMPTS:
                raise DataError(f"{shown_name}: more than {MAX_PROMPTS} prompts; "
                                "evaluate a smaller set")
    if not items:
        raise DataError(f"{path_text(spec)}: no prompts (expected rows with a \"prompt\")")
    return items


def _prompt_item(raw, where: str, suffix: str) -> PromptItem:
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected an object with \"prompt\", got "
                        f"{type(raw).__name__}")
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        keys = ", ".join(plain(k, 30) for k in list(raw)[:8]) or "none"
        raise DataError(f"{where}: \"prompt\" must be non-empty text (columns: {keys})")
    ref = raw.get("reference")
    if ref is None or ref == "":
        refs = []
    elif isinstance(ref, str):
        refs = [r.strip() for r in ref.split("|")] if suffix == ".csv" else [ref.strip()]
    elif isinstance(ref, list) and ref and all(isinstance(r, str) and r.strip() for r in ref):
        refs = [r.strip() for r in ref]
    else:
        raise DataError(f"{where}: \"reference\" must be text or a list of texts")
    refs = [r for r in refs if r]
    system, answer = raw.get("system") or "", raw.get("answer") or ""
    if not isinstance(system, str):
        raise DataError(f"{where}: \"system\" must be text")
    if not isinstance(answer, str):
        raise DataError(f"{where}: \"answer\" must be text")
    return PromptItem(prompt.strip(), refs, system.strip(), where, answer.strip())


# -- matching ------------------------------------------------------------------------------

def normalise(text: str) -> str:
    """Lowercase, accents dropped, punctuation and symbols made spaces, spaces collapsed."""
    text = unicodedata.normalize("NFKD", str(text).casefold())
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Mn":
            continue
        out.append(" " if cat[0] in "PSZC" else ch)
    return " ".join("".join(out).split())


def matches(answer: str, references: list[str]) -> bool | None:
    """Whether the answer matches one of the references (None without references): equal
    after normalising, or containing it as whole words ("4" is not in "14")."""
    refs = [normalise(r) for r in references]
    refs = [r for r in refs if r]
    if not refs:
        return None
    ans = f" {normalise(answer)} "
    return any(f" {r} " in ans for r in refs)


# -- generation and perplexity -------------------------------------------------------------

def _messages(item: PromptItem) -> list[dict]:
    from workbench.chat import build_messages
    return build_messages(item.prompt, None, item.system)


def generate_answers(model, tokenizer, items: list[PromptItem],
                     max_new_tokens: int = MAX_NEW_TOKENS, batch: int = BATCH) -> list[str]:
    """Greedy answers to the prompts from `model` as it stands (adapter on or off), in
    left-padded batches."""
    import torch

    from workbench.chat import generation_kwargs
    from workbench.config import GenerationCfg
    gen = GenerationCfg(max_new_tokens=max_new_tokens, temperature=0.0,
                        repetition_penalty=1.0)
    kwargs = generation_kwargs(gen, tokenizer)
    pad = kwargs["pad_token_id"]
    if pad is None:
        pad = kwargs["pad_token_id"] = tokenizer.eos_token_id
    rows = []
    for item in items:
        ids = tokenizer.apply_chat_template(_messages(item), add_generation_prompt=True,
                                            tokenize=True, return_dict=True)["input_ids"]
        rows.append(list(ids[0]) if ids and isinstance(ids[0], list) else list(ids))
    out: list[str] = []
    dev = next(model.parameters()).device
    for start in range(0, len(rows), batch):
        group = rows[start:start + batch]
        width = max(len(r) for r in group)
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in group])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in group])
        with torch.no_grad():
            seqs = model.generate(input_ids=input_ids.to(dev), attention_mask=mask.to(dev),
                                  **kwargs)
        for seq in seqs[:, width:].tolist():
            out.append(tokenizer.decode(seq, skip_special_tokens=True).strip())
    return out


def general_items(tokenizer, items: list[PromptItem]) -> list[tuple[str, str]]:
    """(prompt, full text) pairs for perplexity: each question with its "answer" (else its
    first reference) as the assistant's turn, rendered with the chat template (the answer
    alone is scored)."""
    out = []
    for item in items:
        reply = item.answer or (item.references[0] if item.references else "")
        if not reply:
            continue
        msgs = _messages(item)
        prompt = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(
            msgs + [{"role": "assistant", "content": reply}], tokenize=False)
        out.append((prompt, full))
    return out


def _adapter(model, switch, name: str | None):
    """The model with adapter `name` on (None: the base) for what runs inside: through the
    lean LoRA layers' switch where chat's CPU path applies, else PEFT's own switching."""
    return answering(model, switch, ALL if name else None, name)


def _perplexity(model, switch, batches, adapter: str | None) -> float | None:
    from workbench.quant import compare as qcompare
    if not batches:
        return None
    with _adapter(model, switch, adapter) as current:
        ppl = qcompare.measure_perplexity(current, batches)[0]
    return round(ppl, 4) if ppl == ppl else None  # NaN: nothing scored


# -- the evaluation ------------------------------------------------------------------------

def _base_key(preset) -> str:
    return json.dumps([preset.model.name_or_path, bool(preset.model.trust_remote_code),
                       asdict(preset.quantization)], sort_keys=True, default=str)


def _rate(flags: list) -> float | None:
    flags = [f for f in flags if f is not None]
    return round(sum(flags) / len(flags), 4) if flags else None


def evaluate(run_refs, prompts=None, *, max_new_tokens: int = MAX_NEW_TOKENS,
             progress=None, save: bool = True, perplexity: bool = True) -> dict:
    """Evaluate the runs on the prompt set (default: the general probe; a path, or a list
    of PromptItem: the page's typed prompts); see the module notes. progress(message)
    hears what it is doing. With save, the report is written to eval/<timestamp>.json in
    every run folder (report["saved"] lists them). perplexity=False answers only (the
    Chat tab's prompt set and blind A/B): every perplexity is None, "not measured"."""
    say = progress or (lambda m: None)
    started = time.perf_counter()
    folders = list(dict.fromkeys(runs.find(r) for r in run_refs))
    if not folders:
        raise RunError("eval: name at least one run")
    for run in folders:
        if not runs.has_adapter(run):
            raise RunError(f"run {run.name} has no adapter yet: train it (or let it finish) "
                           "before evaluating")
    given = isinstance(prompts, list)
    items = list(prompts) if given else read_prompts(prompts)
    if given and not items:
        raise DataError("no prompts: type or choose at least one")
    general = [] if not perplexity else items if prompts is None else read_prompts(None)
    presets = {run: runs.load_preset(run) for run in folders}
    from peft import PeftModel  # heavy imports only once the input is known to be good

    from workbench import models
    from workbench.quant import compare as qcompare
    groups: dict[str, list[Path]] = {}
    for run in folders:
        groups.setdefault(_base_key(presets[run]), []).append(run)

    results: dict[Path, dict] = {}
    loads = 0
    for members in groups.values():
        first = presets[members[0]]
        say(f"loading {first.model.name_or_path} ({first.quantization.mode}) for "
            f"{', '.join(r.name for r in members)}")
        tokenizer = models.load_tokenizer(first.model.name_or_path,
                                          trust_remote_code=first.model.trust_remote_code)
        base = models.load_model(first.model, first.quantization)
        loads += 1
        names = {run: f"run{i}" for i, run in enumerate(members)}
        model = PeftModel.from_pretrained(base, str(members[0] / "adapter"),
                                          adapter_name=names[members[0]])
        for run in members[1:]:
            model.load_adapter(str(run / "adapter"), adapter_name=names[run])
        model.eval()
        models.unpack_4bit_for_answers(model)  # on a CPU: once, not at every token
        switch = models.lean_lora_for_answers(model)  # as chat: None keeps PEFT's layers

        say(f"base answers ({len(items)} prompts)")
        with _adapter(model, switch, None) as current:
            base_answers = generate_answers(current, tokenizer, items, max_new_tokens)
        general_batches = qcompare.token_batches(
            tokenizer, general_items(tokenizer, general), PPL_MAX_TOKENS,
            first.train.max_length)
        base_general = _perplexity(model, switch, general_batches, None)
        for run in members:
            preset = presets[run]
            say(f"{run.name}: answers")
            with _adapter(model, switch, names[run]) as current:
                tuned = generate_answers(current, tokenizer, items, max_new_tokens)
            eval_batches, eval_source = [], "not measured"
            if perplexity:
                say(f"{run.name}: perplexity")
                try:
                    eval_pairs, eval_source = qcompare.eval_items(preset, tokenizer)
                    eval_batches = qcompare.token_batches(
                        tokenizer, eval_pairs, PPL_MAX_TOKENS, preset.train.max_length)
                except WorkbenchError as exc:  # the data file moved: report it, go on
                    eval_source = f"not measured: {describe(exc)}"
            results[run] = _run_report(
                run, preset, items, base_answers, tuned,
                {"eval": {"base": _perplexity(model, switch, eval_batches, None),
                          "tuned": _perplexity(model, switch, eval_batches, names[run]),
                          "source": eval_source},
                 "general": {"base": base_general,
                             "tuned": _perplexity(model, switch, general_batches,
                                                  names[run]),
                             "source": f"{plain(str(DEFAULT_PROMPTS.name), 80)} "
                                       "(questions with their answers)" if perplexity
                                       else "not measured"}})
        del model, base
        gc.collect()

    report = {"created_at": runs.now_iso(),
              "prompts": {"path": "(given prompts)" if given else str(prompts)
                          if prompts is not None else str(DEFAULT_PROMPTS), "count": len(items),
                          "with_reference": sum(bool(i.references) for i in items)},
              "generation": {"greedy": True, "max_new_tokens": max_new_tokens},
              "base_loads": loads,
              "runs": [results[r] for r in folders],
              "seconds": round(time.perf_counter() - started, 1)}
    if save:
        save_report(report, folders)
    return report


def _run_report(run: Path, preset, items, base_answers, tuned_answers, ppl) -> dict:
    answers = []
    for item, base, tuned in zip(items, base_answers, tuned_answers):
        answers.append({"prompt": item.prompt, "reference": item.references or None,
                        "base": base, "tuned": tuned,
                        "base_match": matches(base, item.references),
                        "tuned_match": matches(tuned, item.references)})
    known = [a for a in answers if a["base_match"]]
    return {"run": run.name, "path": str(run), "model": preset.model.name_or_path,
            "quantization": preset.quantization.mode, "answers": answers,
            "match_rate": _rate([a["tuned_match"] for a in answers]),
            "base_match_rate": _rate([a["base_match"] for a in answers]),
            "kept_general": {"kept": sum(bool(a["tuned_match"]) for a in known),
                             "of": len(known)},
            "perplexity": ppl}


def save_report(report: dict, folders: list[Path]) -> list[str]:
    """Write the report as eval/<timestamp>.json in each run folder (atomic writes)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    targets = []
    for run in folders:
        path, n = Path(run) / "eval" / f"{stamp}.json", 2
        while path.exists():
            path, n = Path(run) / "eval" / f"{stamp}-{n}.json", n + 1
        targets.append(path)
    report["saved"] = [str(p) for p in targets]
    text = json.dumps(report, indent=1, ensure_ascii=False)
    for path in targets:
        try:
            fsio.atomic_write(path, text + "\n")
        except OSError as exc:
            raise RunError(f"cannot save the report to {path_text(path)}: "
                           f"{describe(exc)}") from None
    return report["saved"]
