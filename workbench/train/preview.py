"""What the model sees: a dataset row rendered through trl's own dataset preparation, token
by token, each marked trained or masked; plus the entry points the Dataset tab and the
`data inspect` / `data render` commands call.

    >>> from workbench import inspect_data
    >>> r = inspect_data.render_row(preset, 3)          # row 3 of preset.data.path
    >>> r["text"], r["tokens"][:2]                       # [{"id", "text", "trained", "cut"}]
    >>> inspect_data.highlighted(r)                      # [(text, "trained"|"masked"|...)]
    >>> stats = inspect_data.stats(preset, progress=cb)  # one streaming pass (datastats)
    >>> stats.summary(512), stats.histogram(512)

Same code path as training: the row goes through data.to_examples (as train.build_datasets
does) and then SFTTrainer._prepare_dataset, trl's own tokenisation, label building,
truncation and dropping, with the SFTConfig train.sft_config builds. _prepare_dataset is
called as a plain function on a stand-in for the trainer that holds the three attributes it
reads, set as SFTTrainer.__init__ sets them, so no model is loaded.
tests/tiny/test_mask_equals_labels.py checks the flags against a real SFTTrainer's labels.

Rows are numbered 1, 2, ... in file order across all listed files (dropped rows count), as
in error messages and the checks' example rows; data.max_samples is ignored here.
Tests: python -m pytest tests/unit/test_inspect_data.py tests/tiny/test_mask_equals_labels.py
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Callable

from workbench import data
from workbench.config import Preset
from workbench.errors import DataError

LABELS = {"trained": "trained", "masked": "masked", "cut": "truncated"}
_TOKENIZERS: dict = {}
_LOCK = threading.Lock()


def tokenizer_loaded(name_or_path: str, trust_remote_code: bool = False) -> bool:
    """Is this model's tokenizer already in memory (tokenizer_for returns at once)?"""
    return (name_or_path, bool(trust_remote_code)) in _TOKENIZERS


def tokenizer_for(preset: Preset):
    """The preset's tokenizer (workbench.models.load_tokenizer), kept for reuse."""
    key = (preset.model.name_or_path, preset.model.trust_remote_code)
    with _LOCK:
        if key not in _TOKENIZERS:
            from workbench import models
            _TOKENIZERS[key] = models.load_tokenizer(*key)
        return _TOKENIZERS[key]


def stats(preset: Preset, tokenizer=None, progress: Callable[[int, int], None] | None = None,
          preview: int = 5):
    """datastats.compute with the preset's tokenizer: a DataStats with .summary(max_length),
    .histogram(max_length) and .checks_frame(max_length)."""
    from workbench.data import stats as datastats
    return datastats.compute(preset, tokenizer or (lambda: tokenizer_for(preset)), progress,
                             preview)


def inspect(preset: Preset, *, tokens: bool = True, tokenizer=None, progress=None,
            preview: int = 5) -> dict:
    """The `data inspect --json` dict: data.inspect's fields, and with tokens the token
    statistics, truncation report, suggestions and checks (DataStats.summary) and a
    20-bin histogram [{from, to, rows}] of the row lengths."""
    if not tokens:
        return data.inspect(preset.data, preview, progress=progress)
    st = stats(preset, tokenizer, progress, preview)
    out = st.summary()
    hist = st.histogram(bins=20)
    out["histogram"] = hist[["from", "to", "rows"]].to_dict("records")
    return out


# -- trl's preparation ---------------------------------------------------------------------

class _TrainerView:
    """What SFTTrainer._prepare_dataset reads from `self`, set as SFTTrainer.__init__ does."""

    def __init__(self, tokenizer, args, sample: dict):
        if args.assistant_only_loss:  # train.sft_config never sets it
            raise NotImplementedError("assistant_only_loss is not supported here")
        self._tokenizer = tokenizer
        self.chat_template = None
        self.completion_only_loss = (
            args.completion_only_loss if args.completion_only_loss is not None
            else "prompt" in sample and "completion" in sample)


@contextlib.contextmanager
def _quiet():
    from datasets.utils.tqdm import (are_progress_bars_disabled, disable_progress_bars,
                                     enable_progress_bars)
    was_off = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_off:
            enable_progress_bars()


def trainer_args(preset: Preset, text_only: bool):
    """The SFTConfig training uses (train.sft_config); nothing is written to its folder."""
    from workbench import train
    out = Path(tempfile.gettempdir()) / "workbench-inspect"
    with warnings.catch_warnings():  # deprecation notes meant for the training log
        warnings.simplefilter("ignore", FutureWarning)
        return train.sft_config(preset, out, has_eval=False, cuda=False, text_only=text_only)


def prepare(preset: Preset, tokenizer, examples: list[dict], max_length: int | None = None):
    """trl's preparation of `examples` (data.to_examples rows), as the trainer does it.
    Returns (full, kept) lists aligned with examples: full = rows prepared without
    truncation; kept = the rows the trainer keeps at max_length (None where trl drops it).
    Each row holds input_ids and labels (-100 = not trained), and text for plain text."""
    from datasets import Dataset
    from trl import SFTTrainer
    if not examples:
        return [], []
    args = trainer_args(preset, text_only="text" in examples[0])
    if max_length:
        args.max_length = int(max_length)
    view = _TrainerView(tokenizer, args, examples[0])
    ds = Dataset.from_list([dict(ex, _wb_ix=i) for i, ex in enumerate(examples)])
    no_trunc = copy.copy(args)
    no_trunc.max_length = None
    results = []
    with _quiet():
        for a in (no_trunc, args):
            # packing would merge rows; the per-row truncation it does is shown instead
            out = SFTTrainer._prepare_dataset(view, ds, tokenizer, a, False, None, "inspect")
            by_ix = {r["_wb_ix"]: r for r in out}
            results.append([by_ix.get(i) for i in range(len(examples))])
    return results[0], results[1]


# -- rendering -------------------------------------------------------------------------

def render_row(preset: Preset, row: int, tokenizer=None, max_length: int | None = None) -> dict:
    """Row number `row` (1-based, file order) as the trainer sees it; see render_rows."""
    return render_rows(preset, [row], tokenizer, max_length)[0]


def render_rows(preset: Preset, rows: list[int] | None = None, tokenizer=None,
                max_length: int | None = None) -> list[dict]:
    """Render rows (all usable rows when None). Each result:
    row, where, format, loss_on, max_length, truncated, dropped (trl drops every sequence
    of the row), length, trained_tokens, trained_tokens_lost, text, tokens (a list of
    {id, text, trained, cut}; cut: past max_length, never seen), combined (tokens/text
    show all sequences of the row at once), notes, sequences (each: text, tokens, length,
    trained_tokens, truncated, dropped). With loss on answers only a conversation trains as
    one sequence per answer; the combined view then marks every answer trained."""
    tokenizer = tokenizer or tokenizer_for(preset)
    L = int(max_length or preset.train.max_length)
    picked = _pick(preset, rows)
    examples, owner = [], []
    for k, (_, _, row) in enumerate(picked):
        for ex in data.to_examples([row], preset.train.completion_only_loss):
            examples.append(ex)
            owner.append(k)
    full, kept = prepare(preset, tokenizer, examples, L)
    out = []
    for k, (n, at, row) in enumerate(picked):
        idx = [i for i, o in enumerate(owner) if o == k]
        seqs = [_sequence(tokenizer, examples[i], full[i], kept[i], L) for i in idx]
        out.append(_combine(n, at, seqs, L, preset, "text" in row))
    return out


def highlighted(render: dict, sequence: int | None = None) -> list[tuple[str, str | None]]:
    """(text, label) spans for gr.HighlightedText: labels "trained", "masked" and
    "truncated" (past max_length). Adjacent tokens with the same label are merged. With
    `sequence` (0-based) one training sequence instead of the combined view."""
    tokens = render["tokens"] if sequence is None else render["sequences"][sequence]["tokens"]
    spans: list[tuple[str, str | None]] = []
    for t in tokens:
        label = LABELS["cut"] if t["cut"] else LABELS["trained" if t["trained"] else "masked"]
        if spans and spans[-1][1] == label:
            spans[-1] = (spans[-1][0] + t["text"], label)
        else:
            spans.append((t["text"], label))
    return spans


def _pick(preset: Preset, rows: list[int] | None) -> list[tuple[int, str, dict]]:
    wanted = None if rows is None else {int(r) for r in rows}
    last = max(wanted) if wanted else 0
    scan = data.Scan(preset.data)
    found: dict[int, tuple[int, str, dict]] = {}
    for n, at, row, reason in scan.walk():
        if wanted is not None and n not in wanted:
            if n > last:
                break  # a large file is read only as far as the rows asked for
            continue
        if reason is not None:
            if wanted is not None:
                raise DataError(f"{at}: row {n} is dropped while loading ({reason}), so the "
                                "trainer never sees it")
            continue
        found[n] = (n, at, row)
    if wanted is not None:
        missing = sorted(wanted - set(found))
        if missing:
            raise DataError(f"{', '.join(scan.files)}: no row {missing[0]}: the data has "
                            f"{scan.total} rows (numbered from 1)")
        return [found[r] for r in rows]
    if not found:
        raise scan.nothing_left()
    return list(found.values())


def _sequence(tokenizer, example: dict, full: dict, kept: dict | None, L: int) -> dict:
    ids = list(full["input_ids"])
    if "text" in example:
        text, special = full["text"], True  # trl appended the eos and tokenised with specials
    else:
        conv = example.get("messages") or example["prompt"] + example["completion"]
        text, special = tokenizer.apply_chat_template(conv, tokenize=False), False
    pieces = token_texts(tokenizer, text, ids, special)
    if kept is None:
        keep_from, keep_to, labels = 0, min(len(ids), L), None
    else:
        n = len(kept["input_ids"])
        # keep_start (the default) keeps the head; keep_end would keep the tail
        keep_from = 0 if ids[:n] == list(kept["input_ids"]) else len(ids) - n
        keep_to, labels = keep_from + n, kept["labels"]
    tokens = []
    for j, (tid, piece) in enumerate(zip(ids, pieces)):
        inside = keep_from <= j < keep_to
        trained = bool(labels is not None and inside and labels[j - keep_from] != -100)
        tokens.append({"id": int(tid), "text": piece, "trained": trained, "cut": not inside})
    would = sum(1 for lab in full["labels"] if lab != -100)
    got = sum(t["trained"] for t in tokens)
    return {"text": text, "tokens": tokens, "length": len(ids), "trained_tokens": got,
            "trained_tokens_lost": would - got, "truncated": len(ids) > L,
            "dropped": kept is None}


def _combine(n: int, at: str, seqs: list[dict], L: int, preset: Preset, text: bool) -> dict:
    last = seqs[-1]
    ids = [t["id"] for t in last["tokens"]]
    combined = all(ids[:s["length"]] == [t["id"] for t in s["tokens"]] for s in seqs)
    if combined and len(seqs) > 1:
        tokens = [dict(t) for t in last["tokens"]]
        for s in seqs[:-1]:
            for j, t in enumerate(s["tokens"]):
                tokens[j]["trained"] = tokens[j]["trained"] or t["trained"]
    else:
        tokens = last["tokens"]
    notes = []
    if len(seqs) > 1:
        notes.append(f"this conversation trains as {len(seqs)} sequences, one per answer "
                     "(earlier turns are masked context in later ones)")
    if not combined and len(seqs) > 1:
        notes.append("the chat template renders earlier turns differently in later "
                     "sequences, so the view shows the last sequence only; see each one")
    dropped = sum(s["dropped"] for s in seqs)
    if dropped:
        notes.append(f"{dropped} of {len(seqs)} sequence(s) lose every trained token at "
                     f"max_length {L}; the trainer drops them")
    if preset.train.packing:
        notes.append("packing is on: rows are packed together; truncation is as shown")
    completion_only = preset.train.completion_only_loss and not text
    return {"row": n, "where": at, "format": "text" if text else "conversation",
            "loss_on": "answers" if completion_only else "all tokens", "max_length": L,
            "truncated": any(s["truncated"] for s in seqs),
            "dropped": dropped == len(seqs), "length": last["length"],
            "trained_tokens": sum(s["trained_tokens"] for s in seqs),
            "trained_tokens_lost": sum(s["trained_tokens_lost"] for s in seqs),
            "text": last["text"], "tokens": tokens, "combined": combined or len(seqs) == 1,
            "notes": notes, "sequences": seqs}


def token_texts(tokenizer, text: str, ids: list[int], add_special_tokens: bool) -> list[str]:
    """The piece of `text` each token covers; the pieces join to `text` exactly. Uses the
    fast tokenizer's character offsets when re-tokenising gives the same ids (it should),
    else decodes token by token."""
    try:
        enc = tokenizer(text, add_special_tokens=add_special_tokens,
                        return_offsets_mapping=True)
    except (NotImplementedError, ValueError):  # slow tokenizers have no offsets
        enc = None
    if enc is not None and list(enc["input_ids"]) == list(ids):
        out, cursor = [], 0
        for _, end in enc["offset_mapping"]:
            end = max(end, cursor)  # tokens inside one character share its span
            out.append(text[cursor:end])
            cursor = end
        if out:
            out[-1] += text[cursor:]
        return out
    out, prev = [], ""
    for i in range(len(ids)):
        cur = tokenizer.decode(ids[:i + 1], skip_special_tokens=False,
                               clean_up_tokenization_spaces=False)
        if i < len(ids) - 1:
            cur = cur.rstrip("\ufffd")  # half a character: wait for the rest
        out.append(cur[len(prev):] if cur.startswith(prev) else "")
        prev = cur if cur.startswith(prev) else prev
    return out
