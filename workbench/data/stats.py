"""Token statistics and quality checks over a whole dataset, in one streaming pass.

    >>> stats = datastats.compute(preset, tokenizer, progress=print)   # one pass over the file
    >>> stats.summary(512)          # plain dict: tokens, truncation at 512, checks, suggestions
    >>> stats.summary(1024)         # another max_length: no second pass
    >>> stats.histogram(512)        # pandas DataFrame for a bar chart

The pass keeps no rows: per usable row its number and token length, per answer the length
of its training sequence and of the prompt before it (numpy int32), and one 8-byte hash
per row for the duplicate check. Sequences are tokenised in batches with the tokenizer's
batch API (the Rust tokenizer spreads a batch over the CPU cores), exactly as trl does one
by one: the chat template renders `prompt` (with the generation prompt) and `prompt +
completion`, the trained part starts where the two token lists diverge, and plain text gets
the eos token appended. tests/tiny/test_mask_equals_labels.py checks these numbers against
a real SFTTrainer's dataset.

Terms: a *row* is one usable row of the file (a conversation or a text); a *sequence* is
what the trainer trains on: with loss on answers only, one per answer (the conversation up
to it, the answer trained), otherwise one per row (every token trained). A row's length is
its whole conversation after the chat template, i.e. its longest sequence.
Tests: python -m pytest tests/unit/test_inspect_data.py
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from array import array
from typing import Callable

from workbench import data
from workbench.config import Preset
from workbench.data.normalise import PLACEHOLDER

BATCH = 512      # rows per tokenizer call
EXAMPLES = 10    # row numbers listed per check
MULTIPLE = 16    # suggested max_length is rounded up to this (the max_length field's step)


def compute(preset: Preset, tokenizer, progress: Callable[[int, int], None] | None = None,
            preview: int = 5) -> "DataStats":
    """One pass over preset.data: core summary (data.inspect's fields), per-row token
    counts with `tokenizer`, and the checks that do not depend on max_length.
    `tokenizer` may be a function returning one: it is then called at the first batch,
    so a broken file is reported before a model is imported."""
    started = time.monotonic()
    acc = _Accumulator(tokenizer)
    info = data.inspect(preset.data, preview, on_row=acc.add, progress=progress)
    acc.flush()
    stats = DataStats(info, acc, preset)
    stats.seconds = round(time.monotonic() - started, 2)
    return stats


def common_prefix_length(a: list[int], b: list[int]) -> int:
    """trl.data_utils.common_prefix_length, with a fast path for the usual exact prefix."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    i = 0
    while a[i] == b[i]:
        i += 1
    return i


def _batch_encoder(tokenizer, special: bool):
    """texts -> token id lists, as `tokenizer(texts, add_special_tokens=special)`: False
    is what apply_chat_template does after rendering, True what trl does for plain text.
    A fast tokenizer's Rust backend is called directly: the Python wrapper around it costs
    a third of the time on long files."""
    def slow(texts):
        return tokenizer(texts, add_special_tokens=special)["input_ids"]
    backend = getattr(tokenizer, "_tokenizer", None)
    if not getattr(tokenizer, "is_fast", False) or not hasattr(backend, "encode_batch"):
        return slow
    # one call through the wrapper sets the backend as the wrapper uses it (no padding,
    # no truncation, special tokens split as the tokenizer splits them)
    probe = ["a <x> " + (tokenizer.eos_token or "")]
    if [backend.encode_batch(probe, add_special_tokens=special)[0].ids] != slow(probe):
        return slow
    return lambda texts: [e.ids for e in backend.encode_batch(texts,
                                                              add_special_tokens=special)]


class _Accumulator:
    """Collects per-row numbers as rows stream by; tokenises in batches."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self.tok = self.encode = None
        self.row_num, self.row_len = array("i"), array("i")
        self.turn_row, self.turn_len, self.turn_prompt = array("i"), array("i"), array("i")
        self.hashes = array("Q")
        self.placeholder_rows: list[int] = []  # the first EXAMPLES; counts go on
        self.placeholders = 0
        self.placeholder_names: dict[str, int] = {}
        self.empty_turn_rows: list[int] = []
        self.empty_turns = 0
        self.text = False
        self.batch: list[dict] = []

    def add(self, n: int, row: dict) -> None:
        blob = json.dumps(row, ensure_ascii=False, sort_keys=True).encode()
        self.hashes.append(int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(),
                                          "little"))
        strings = [row["text"]] if "text" in row else [m["content"] for m in row["messages"]]
        names = {m.group(1) for s in strings if "{{" in s for m in PLACEHOLDER.finditer(s)}
        if names:
            self.placeholders += 1
            if len(self.placeholder_rows) < EXAMPLES:
                self.placeholder_rows.append(n)
            for name in names:
                self.placeholder_names[name] = self.placeholder_names.get(name, 0) + 1
        if "messages" in row and any(m["role"] == "assistant" and not m["content"].strip()
                                     for m in row["messages"]):
            # an empty answer mid-conversation: kept, but that turn trains nothing
            self.empty_turns += 1
            if len(self.empty_turn_rows) < EXAMPLES:
                self.empty_turn_rows.append(n)
        self.row_num.append(n)
        self.batch.append(row)
        if len(self.batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        rows, self.batch = self.batch, []
        if not rows:
            return
        if self.tok is None:
            tok = self._tokenizer
            self.tok = tok() if callable(tok) and not hasattr(tok, "apply_chat_template") else tok
            self.encode = _batch_encoder(self.tok, special="text" in rows[0])
        first = len(self.row_len)
        if "text" in rows[0]:
            self.text = True
            eos = self.tok.eos_token or ""
            # trl appends eos to plain text that does not end with it, then tokenises
            # with the tokenizer's own special tokens (a BOS where the model has one)
            texts = [r["text"] if r["text"].endswith(eos) else r["text"] + eos for r in rows]
            for i, ids in enumerate(self.encode(texts)):
                self._turn(first + i, len(ids), 0)
                self.row_len.append(len(ids))
            return
        prompts, fulls, owners = [], [], []
        for i, row in enumerate(rows):
            for ex in data.to_examples([row], completion_only=True):
                prompts.append(ex["prompt"])
                fulls.append(ex["prompt"] + ex["completion"])
                owners.append(first + i)
        lengths = [0] * len(rows)
        if fulls:
            p_ids = self.encode(self.tok.apply_chat_template(
                prompts, add_generation_prompt=True, tokenize=False))
            f_ids = self.encode(self.tok.apply_chat_template(fulls, tokenize=False))
            for owner, p, f in zip(owners, p_ids, f_ids):
                self._turn(owner, len(f), common_prefix_length(p, f))
                lengths[owner - first] = max(lengths[owner - first], len(f))
        self.row_len.extend(lengths)

    def _turn(self, row: int, length: int, prompt: int) -> None:
        self.turn_row.append(row)
        self.turn_len.append(length)
        self.turn_prompt.append(prompt)


class DataStats:
    """The result of one pass. `summary(max_length)` and `histogram(max_length)` are cheap,
    so a UI can move max_length without reading the file again."""

    def __init__(self, info: dict, acc: _Accumulator, preset: Preset):
        import numpy as np
        self.info = info
        self.max_length = preset.train.max_length
        self.packing = preset.train.packing
        self.text = acc.text
        # plain text has no prompt to mask: trl trains every token (train.sft_config)
        self.completion_only = preset.train.completion_only_loss and not acc.text
        self.row_num = np.frombuffer(acc.row_num, dtype=np.int32).copy()
        self.row_len = np.frombuffer(acc.row_len, dtype=np.int32).copy()
        self.turn_row = np.frombuffer(acc.turn_row, dtype=np.int32).copy()
        self.turn_len = np.frombuffer(acc.turn_len, dtype=np.int32).copy()
        self.turn_prompt = np.frombuffer(acc.turn_prompt, dtype=np.int32).copy()
        self.used = np.ones(len(self.row_len), dtype=bool)
        keep = data.sample_indices(len(self.row_len), preset.data.max_samples,
                                   preset.data.seed)
        if keep is not None:  # the trainer sees only data.max_samples rows
            self.used[:] = False
            self.used[keep] = True
        self.checks = {
            "duplicates": _duplicates(np.frombuffer(acc.hashes, dtype=np.uint64),
                                      self.row_num),
            "empty_answers": _empty_answers(info, acc),
            "placeholders": {
                "count": acc.placeholders, "examples": acc.placeholder_rows,
                "names": dict(sorted(acc.placeholder_names.items())),
                "suggested": {name: "" for name in sorted(acc.placeholder_names)}},
        }
        self.seconds = 0.0

    def sequences(self, max_length: int):
        """Per training sequence: (row index, length, tokens kept untrained in front)."""
        import numpy as np
        if self.completion_only:
            sel = self.used[self.turn_row]
            return self.turn_row[sel], self.turn_len[sel], self.turn_prompt[sel]
        rows = np.flatnonzero(self.used).astype(np.int32)
        return rows, self.row_len[rows], np.zeros(len(rows), dtype=np.int32)

    def longest_sequence(self, max_length: int | None = None) -> int:
        """The longest padded batch length training will see: a batch pads to its longest
        sequence, cut at max_length; packing fills every sequence to max_length."""
        L = int(max_length or self.max_length)
        _, lengths, _ = self.sequences(L)
        if self.packing or not len(lengths):
            return L
        return int(min(int(lengths.max()), L))

    def summary(self, max_length: int | None = None) -> dict:
        """Everything `data inspect --json` prints, at `max_length` (default: the preset's)."""
        import numpy as np
        L = int(max_length or self.max_length)
        lengths = self.row_len[self.used]
        nums = self.row_num[self.used]
        s_row, s_len, s_prompt = self.sequences(L)
        trained = (s_len - s_prompt).astype(np.int64)
        kept = np.clip(np.minimum(s_len, L) - s_prompt, 0, None).astype(np.int64)
        # trl drops sequences left with no trained token after truncation; packing
        # (bfd) truncates the same way but keeps them, contributing no loss
        dropped = (kept == 0) if not self.packing else np.zeros(len(kept), dtype=bool)
        alive = np.bincount(s_row[~dropped], minlength=len(self.row_len))
        fully = self.used & (alive == 0)
        truncated = lengths > L
        answer = self.turn_len - self.turn_prompt
        over = np.unique(self.turn_row[answer > L])
        out = dict(self.info)
        out.update({
            "rows_used": int(self.used.sum()),
            "sequences": int(len(s_len)),
            "loss_on": "answers" if self.completion_only else "all tokens",
            "tokens": _describe(lengths),
            "max_length": L,
            "truncated_rows": int(truncated.sum()),
            "truncated_examples": nums[truncated][:EXAMPLES].tolist(),
            "trained_tokens": int(trained.sum()),
            "trained_tokens_lost": int((trained - kept).sum()),
            "dropped_sequences": int(dropped.sum()),
            "fully_masked_rows": int(fully.sum()),
            "fully_masked_examples": self.row_num[fully][:EXAMPLES].tolist(),
            "suggested_max_length": {"p95": suggest(lengths, 0.95),
                                     "p99": suggest(lengths, 0.99), "multiple_of": MULTIPLE},
            "packing": self.packing,
            "checks": dict(self.checks, answer_exceeds_max_length={
                "count": int(len(over)), "examples": self.row_num[over][:EXAMPLES].tolist()}),
            "seconds": self.seconds,
        })
        return out

    def histogram(self, max_length: int | None = None, bins: int = 30):
        """Row lengths as a DataFrame: from, to (token range [from, to)), rows, label, and
        over_max_length (the bin starts at or past max_length). Bin edges are multiples of
        16, so a max_length that is one falls on an edge. The range covers the rows from
        the shortest to 1.1 x the 99th percentile, and max_length unless it is far off;
        a longer tail is counted in a last bin labelled "N+"."""
        import numpy as np
        import pandas as pd
        L = int(max_length or self.max_length)
        lengths = self.row_len[self.used]
        if not len(lengths):
            lengths = np.zeros(1, dtype=np.int32)
        lo, hi, p99 = int(lengths.min()), int(lengths.max()), _nearest_rank(lengths, 0.99)
        want = L + 1 if L <= 4 * p99 else 0
        top = max(hi + 1, want)
        overflow = top > max(math.ceil(1.1 * p99) + 1, want)
        if overflow:
            top = max(math.ceil(1.1 * p99) + 1, want)
        width = MULTIPLE * max(1, math.ceil((top - lo) / (bins * MULTIPLE)))
        start = (lo // width) * width
        edges = np.arange(start, top + width, width)
        edges = edges[: int(np.searchsorted(edges, top)) + 1]
        counts, _ = np.histogram(np.minimum(lengths, edges[-1] - 1), bins=edges)
        ends = edges[1:].copy()
        labels = [f"{a}–{b - 1}" for a, b in zip(edges[:-1], edges[1:])]
        if overflow:
            ends[-1], labels[-1] = hi + 1, f"{edges[-2]}+"
        return pd.DataFrame({
            "from": edges[:-1].astype(int), "to": ends.astype(int),
            "rows": counts.astype(int), "label": labels,
            "over_max_length": edges[:-1] >= L})

    def checks_frame(self, max_length: int | None = None):
        """The quality checks as a table: check, count, example rows."""
        import pandas as pd
        checks = self.summary(max_length)["checks"]
        return pd.DataFrame([
            {"check": name, "count": c["count"],
             "example rows": ", ".join(str(n) for n in c["examples"])}
            for name, c in checks.items()])


def suggest(lengths, q: float) -> int | None:
    """The smallest multiple of 16 that keeps a share q of the rows whole."""
    if not len(lengths):
        return None
    return max(MULTIPLE, MULTIPLE * math.ceil(_nearest_rank(lengths, q) / MULTIPLE))


def _describe(lengths) -> dict:
    import numpy as np
    if not len(lengths):
        return {"min": 0, "median": 0, "p95": 0, "max": 0, "mean": 0}
    return {"min": int(lengths.min()), "median": float(np.median(lengths)),
            "p95": _nearest_rank(lengths, 0.95), "max": int(lengths.max()),
            "mean": round(float(lengths.mean()), 1)}


def _nearest_rank(lengths, q: float) -> int:
    """The smallest length that a share q of the rows do not exceed."""
    import numpy as np
    k = max(1, math.ceil(q * len(lengths)))
    return int(np.partition(lengths, k - 1)[k - 1])


def _duplicates(hashes, row_num) -> dict:
    """Rows whose normalised content repeats an earlier row's exactly (columns the model
    never sees, such as an id, do not make rows different)."""
    import numpy as np
    order = np.argsort(hashes, kind="stable")  # stable: the first of equal rows comes first
    h = hashes[order]
    repeat = np.zeros(len(h), dtype=bool)
    repeat[1:] = h[1:] == h[:-1]
    run_start = np.maximum.accumulate(np.where(~repeat, np.arange(len(h)), 0))
    dup_idx, first_idx = order[repeat], order[run_start[repeat]]
    pick = np.argsort(dup_idx, kind="stable")[:EXAMPLES]
    return {"count": int(repeat.sum()), "examples": row_num[dup_idx[pick]].tolist(),
            "same_as": row_num[first_idx[pick]].tolist()}


def _empty_answers(info: dict, acc: _Accumulator) -> dict:
    """Rows dropped for an empty or whitespace-only answer, and kept conversations with an
    empty answer mid-way (that turn is skipped)."""
    dropped = info["drop_reasons"].get("empty answer", 0)
    examples = sorted(info["drop_examples"].get("empty answer", []) + acc.empty_turn_rows)
    return {"count": dropped + acc.empty_turns, "dropped": dropped,
            "examples": examples[:EXAMPLES]}
