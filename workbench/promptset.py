"""The Chat tab's prompt set and blind A/B pairs, without the page: which prompts, the
table prompt × base × runs with reference marks, its CSV, and two hidden answers.

Answers come from `workbench.evaluate.evaluate` (one loaded base per base, adapters
switched, greedy and short), with perplexity off and nothing saved: this module only
chooses the prompts and shapes what comes back.

A prompt file is a prompt set (`prompt`, optional `reference`, as `launch.py eval` reads
it) or any training file the Dataset tab reads (alpaca, sharegpt, messages ...): then
each row's first user turn is the prompt (its system turn kept) and there is no
reference. Typed prompts are one per line.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

from workbench import evaluate, paths, runs
from workbench.errors import DataError, WorkbenchError, plain
from workbench.evaluate import PromptItem

__all__ = ["DEFAULT_LIMIT", "BASE", "prompt_files", "load", "typed", "answer_table",
           "table_csv", "match_summary", "base_source", "blind_pair"]

DEFAULT_LIMIT = 5   # prompts answered by default: ~8 s an answer on a 2-core CPU
BASE = "base"       # the base model among the page's sources
MARKS = {True: "✓", False: "✗", None: ""}


def prompt_files() -> list[Path]:
    """The files in data/ the page offers: the shipped prompt sets first, then the
    training samples."""
    sets = [paths.samples_dir() / name for name in paths.PROMPT_SETS]
    return [p for p in sets if p.is_file()] + paths.training_samples()


def load(path: str | Path, limit: int | None = DEFAULT_LIMIT) -> list[PromptItem]:
    """The first `limit` prompts of a prompt set or training file (see the module notes)."""
    try:
        items = evaluate.read_prompts(path)
    except DataError as exc:
        if "\"prompt\" must be non-empty text" not in str(exc) and \
                "expected an object" not in str(exc):
            raise
        items = _from_training_file(path, exc)
    return items[:limit] if limit else items


def _from_training_file(path, first_error: DataError) -> list[PromptItem]:
    from workbench import data
    try:
        loaded = data.load(str(path))
    except WorkbenchError:
        raise first_error from None
    items = []
    for i, row in enumerate(loaded.rows, 1):
        msgs = row.get("messages") or []
        user = next((m["content"] for m in msgs if m.get("role") == "user"), "")
        system = next((m["content"] for m in msgs[:1] if m.get("role") == "system"), "")
        if isinstance(user, str) and user.strip():
            items.append(PromptItem(user.strip(), [], system if isinstance(system, str)
                                    else "", f"row {i}"))
    if not items:
        raise first_error
    return items


def typed(text: str, limit: int | None = None) -> list[PromptItem]:
    """Prompts typed one per line (blank lines skipped)."""
    items = [PromptItem(line.strip(), where=f"line {i}")
             for i, line in enumerate(str(text or "").splitlines(), 1) if line.strip()]
    return items[:limit] if limit else items


def base_source(run_ref) -> str:
    """The name a run's base model has among A/B sources: base:<model folder or id>."""
    preset = runs.load_preset(runs.find(run_ref))
    name = str(preset.model.name_or_path).rstrip("/\\")
    return f"{BASE}:{Path(name).name or name}"


def _mark(text: str, flag) -> str:
    return f"{MARKS[flag]} {text}".strip() if flag is not None else text


def answer_table(report: dict) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) for an evaluate() report: prompt, reference, one column per base
    model (runs that share a base share it) and one per run; an answer is marked ✓ or ✗
    where the prompt has a reference (no prompt with one: no reference column)."""
    bases: dict[str, int] = {}   # base column name -> index of the first run on it
    for i, r in enumerate(report["runs"]):
        bases.setdefault(f"{BASE}:{Path(str(r['model']).rstrip('/')).name}"
                         f" ({r['quantization']})", i)
    headers = ["prompt", "reference", *bases, *(r["run"] for r in report["runs"])]
    rows = []
    for k, first in enumerate(report["runs"][0]["answers"]):
        ref = first["reference"] or []
        row = [first["prompt"], " | ".join(ref)]
        for i in bases.values():
            a = report["runs"][i]["answers"][k]
            row.append(_mark(a["base"], a["base_match"]))
        for r in report["runs"]:
            a = r["answers"][k]
            row.append(_mark(a["tuned"], a["tuned_match"]))
        rows.append(row)
    if not any(row[1] for row in rows):
        headers.pop(1)
        for row in rows:
            row.pop(1)
    return headers, rows


def match_summary(report: dict) -> list[tuple[str, int, int, int]]:
    """(run, its matches, the base's matches, prompts with a reference) per run that has
    prompts with a reference."""
    out = []
    for r in report["runs"]:
        known = sum(a["tuned_match"] is not None for a in r["answers"])
        if not known:
            continue
        base = sum(bool(a["base_match"]) for a in r["answers"])
        tuned = sum(bool(a["tuned_match"]) for a in r["answers"])
        out.append((r["run"], tuned, base, known))
    return out


def table_csv(headers: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buf.getvalue()


def blind_pair(sources: list[str], item: PromptItem, *, rng: random.Random | None = None,
               progress=None, max_new_tokens: int = evaluate.MAX_NEW_TOKENS) -> dict:
    """Two answers to `item` from two of `sources` (run names, or BASE for the base of the
    run it is paired with), picked at random and in random order: {"prompt", "sources":
    [A, B] (a base as base:<model>), "answers": [A's, B's]}."""
    rng = rng or random.Random()
    chosen = list(dict.fromkeys(s for s in sources if s))
    if len(chosen) < 2:
        raise WorkbenchError("blind A/B: choose two or more sources (the base and runs)")
    first, second = rng.sample(chosen, 2)
    if first == BASE:
        first, second = second, first
    run_refs = [s for s in (first, second) if s != BASE]
    report = evaluate.evaluate(run_refs, [item], save=False, perplexity=False,
                               progress=progress, max_new_tokens=max_new_tokens)
    found = {r["run"]: r["answers"][0] for r in report["runs"]}
    pair = []
    for source in (first, second):
        if source == BASE:
            pair.append((base_source(first), found[runs.find(first).name]["base"]))
        else:
            pair.append((source, found[runs.find(source).name]["tuned"]))
    if pair[0][0] == pair[1][0]:
        raise WorkbenchError(f"blind A/B: {plain(pair[0][0], 60)} twice; choose different "
                             "sources")
    rng.shuffle(pair)
    return {"prompt": item.prompt, "sources": [s for s, _ in pair],
            "answers": [a for _, a in pair]}
