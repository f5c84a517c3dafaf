"""Datasets: read .json / .jsonl / .csv / .parquet files, detect their format and normalise
every row to the forms TRL's SFTTrainer takes.

    >>> from workbench import data
    >>> loaded = data.load(DataCfg(path="data/identity.jsonl"))
    >>> loaded.format, len(loaded.rows), loaded.dropped
    ('alpaca', 72, 0)
    >>> train_rows, eval_rows = data.split(loaded.rows, 0.1, seed=42)
    >>> train = data.to_examples(train_rows, completion_only=True)

CLI (workbench/datacli.py): `python launch.py data inspect data/identity.jsonl [--json]`,
`python launch.py data render data/identity.jsonl --row 3`. Token statistics, quality checks
and the rendered view are in workbench/datastats.py and workbench/inspect_data.py.

Formats (detected from the columns, or forced with data.format; data.columns renames them):
    alpaca             instruction, output, optional input, system, history [[user, answer], ...]
    sharegpt           conversations [{from: human|gpt|system|function_call|observation, value}],
                       optional system and tools (tools go into the system message)
    messages           messages [{role, content}]
    prompt_completion  prompt, completion (text, or lists of messages)
    text               text
A normalised row is {"messages": [{"role", "content"}, ...]} or {"text": str}.

The readers (workbench/datafiles.py) yield (place, raw row) one row at a time, so inspecting a
large .jsonl keeps memory bounded; only `load()` holds all rows. Loading never writes anything.
Rows are numbered 1, 2, ... in file order across all listed files, dropped rows included (the
numbers inspection reports and `data render --row` takes).
data.mix (workbench/data/mix.py) adds general rows at a fraction of the user's, a guard
against forgetting; train.build_datasets applies it after the split.
Tests: python -m pytest tests/unit/test_data.py
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from workbench.config import DataCfg
from workbench.data.files import kind, names_text, read_rows, resolve_files
from workbench.data.normalise import check_text, drop_reason, fill, has_prompt, normalise
from workbench.errors import DataError, WorkbenchError, describe, path_text

__all__ = ["FORMATS", "MIN_EVAL_ROWS", "FEW_ROWS", "few_rows", "LoadedData", "load", "inspect", "sample_indices",
           "suggest_mapping", "to_examples", "split", "Scan", "files", "normalise", "stats",
           "mix"]


# format -> (required roles, optional roles), in detection order: the first match wins.
FORMATS = {
    "messages": (["messages"], ["system"]),
    "sharegpt": (["conversations"], ["system"]),
    "alpaca": (["instruction", "output"], ["input", "system", "history"]),
    "prompt_completion": (["prompt", "completion"], ["system"]),
    "text": (["text"], []),
}
MIN_EVAL_ROWS = 5
FEW_ROWS = 20      # fewer rows to train on than this: warn (`few_rows` in inspect)
PROGRESS_ROWS = 1000
# Column names seen in public datasets, per role, most likely first (see suggest_mapping).
SYNONYMS = {
    "messages": ["messages", "conversation", "chat", "dialog", "dialogue", "turns"],
    "conversations": ["conversations", "conversation", "chat", "dialog", "dialogue"],
    "instruction": ["instruction", "question", "query", "problem", "task", "input_text",
                    "user", "human"],
    "output": ["output", "answer", "response", "reply", "solution", "target", "assistant",
               "gpt", "completion", "chosen"],
    "input": ["input", "context"],
    "system": ["system", "system_prompt", "system_message"],
    "history": ["history"],
    "prompt": ["prompt", "question", "query", "input", "source", "instruction"],
    "completion": ["completion", "response", "answer", "output", "chosen", "target"],
    "text": ["text", "content", "document", "body", "sentence", "passage"],
}


@dataclass
class LoadedData:
    format: str
    rows: list[dict]
    dropped: int = 0
    drop_reasons: dict[str, int] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    unfilled_placeholders: list[str] = field(default_factory=list)


# -- public API --------------------------------------------------------------------------

def load(cfg: DataCfg | str | Path) -> LoadedData:
    """Read, detect, normalise, drop empty rows, then cap at max_samples (a seeded sample
    that keeps file order). Raises DataError naming the file and place on bad input."""
    cfg = _as_cfg(cfg)
    scan = Scan(cfg)
    rows = list(scan.rows())
    if not rows:
        raise scan.nothing_left()
    keep = sample_indices(len(rows), cfg.max_samples, cfg.seed)
    if keep is not None:
        rows = [rows[i] for i in keep]
    return LoadedData(scan.format, rows, scan.dropped, dict(scan.drop_reasons),
                      scan.columns, scan.files, sorted(scan.unfilled))


def inspect(path_or_cfg: DataCfg | str | Path, preview: int = 5, *,
            on_row: Callable[[int, dict], None] | None = None,
            progress: Callable[[int, int], None] | None = None) -> dict:
    """Summary of a dataset in one streaming pass, without keeping its rows: format, rows,
    dropped, drop_reasons, drop_examples (first row numbers per reason), columns, files,
    ranges (row numbers per file), answers (assistant turns), unfilled_placeholders,
    preview (the first rows) and preview_rows (their row numbers).

    on_row(row number, row) sees every kept row (workbench.datastats counts tokens there);
    progress(bytes read, total bytes) is called every PROGRESS_ROWS rows and at the end."""
    cfg = _as_cfg(path_or_cfg)
    scan = Scan(cfg)
    count, answers, first, numbers = 0, 0, [], []
    for n, _, row, reason in scan.walk():
        if reason is not None:
            continue
        count += 1
        answers += 1 if "text" in row else sum(
            m["role"] == "assistant" and bool(m["content"].strip()) for m in row["messages"])
        if len(first) < preview:
            first.append(row)
            numbers.append(n)
        if on_row is not None:
            on_row(n, row)
        if progress is not None and count % PROGRESS_ROWS == 0:
            progress(scan.bytes_done, scan.bytes_total)
    if not count:
        raise scan.nothing_left()
    if progress is not None:
        progress(scan.bytes_total, scan.bytes_total)
    return {"format": scan.format, "rows": count, "dropped": scan.dropped,
            "drop_reasons": dict(scan.drop_reasons),
            "drop_examples": {k: list(v) for k, v in scan.drop_examples.items()},
            "columns": scan.columns, "files": scan.files, "ranges": scan.ranges,
            "answers": answers, "max_samples": cfg.max_samples,
            "few_rows": few_rows(count, cfg.max_samples),
            "unfilled_placeholders": sorted(scan.unfilled), "preview": first,
            "preview_rows": numbers}


def few_rows(rows: int, max_samples: int | None = None) -> int | None:
    """The number of rows training would use when it is too few to learn from reliably
    (under FEW_ROWS), else None."""
    used = min(rows, max_samples) if max_samples else rows
    return used if used < FEW_ROWS else None


def sample_indices(n: int, max_samples: int | None, seed: int) -> list[int] | None:
    """The indices (in file order) of the rows `load()` keeps when data.max_samples caps
    n usable rows, or None when all are kept."""
    if not max_samples or n <= max_samples:
        return None
    return sorted(random.Random(seed).sample(range(n), max_samples))


def suggest_mapping(columns: list[str]) -> dict[str, str]:
    """Guess data.columns {role: column} from column names (case-insensitive), for the
    first format whose required roles all find a column: ["question", "answer"] ->
    {"instruction": "question", "output": "answer"}; ["prompt", "chosen", "rejected"] ->
    {"prompt": "prompt", "completion": "chosen"}. Entries may map a role to a column of
    the same name. {} when no format fits."""
    lower = {}
    for c in columns:
        lower.setdefault(str(c).strip().lower(), c)
    for req, opt in FORMATS.values():
        used, found = set(), {}
        for role in req + opt:
            col = next((lower[n] for n in SYNONYMS.get(role, [role])
                        if n in lower and lower[n] not in used), None)
            if col is None and role in req:
                break
            if col is not None:
                found[role] = col
                used.add(col)
        else:
            return found
    return {}


def to_examples(rows: list[dict], completion_only: bool) -> list[dict]:
    """Normalised rows -> the dataset rows SFTTrainer takes.

    completion_only=True: conversational prompt/completion, one example per assistant turn,
    {"prompt": [messages before it], "completion": [{"role": "assistant", ...}]}, so every
    answer is trained and no prompt text is. (Not `assistant_only_loss`: that needs
    {% generation %} markers, which SmolLM2's template lacks.) completion_only=False:
    {"messages": [...]}. Text rows are {"text": ...} either way.
    """
    out = []
    for row in rows:
        if "text" in row:
            out.append({"text": row["text"]})
            continue
        msgs = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
        if not completion_only:
            out.append({"messages": msgs})
            continue
        for i, m in enumerate(msgs):
            if m["role"] == "assistant" and m["content"].strip() and has_prompt(msgs[:i]):
                out.append({"prompt": msgs[:i], "completion": [m]})
    return out


def split(examples: list, eval_fraction: float, seed: int) -> tuple[list, list]:
    """Hold out round(eval_fraction * n) items (at least 1) for eval, chosen with `seed`.

    Eval is empty when eval_fraction is 0 or there are fewer than MIN_EVAL_ROWS (5) items:
    the loss over one or two rows is noise, and holding them out would leave almost nothing
    to learn from. Train always keeps at least one item. Both parts keep the input order,
    and the same input and seed give the same split. Split rows before `to_examples` so the
    turns of one conversation do not land on both sides.
    """
    items = list(examples)
    if eval_fraction <= 0 or len(items) < MIN_EVAL_ROWS:
        return items, []
    n_eval = min(max(1, round(eval_fraction * len(items))), len(items) - 1)
    held = set(random.Random(seed).sample(range(len(items)), n_eval))
    return ([x for i, x in enumerate(items) if i not in held],
            [x for i, x in enumerate(items) if i in held])


# -- the scan: files -> raw rows -> normalised rows ----------------------------------------

class Scan:
    """One pass over the files; yields kept rows and counts what it drops and why.

    `walk()` yields (row number, place, row, drop reason) for every row, dropped ones with
    the row as normalised and their reason; `rows()` only the kept rows. While it runs,
    `bytes_done` / `bytes_total` tell how far it is, `ranges` which row numbers each file
    holds, and `drop_examples` the first row numbers dropped for each reason.
    """

    EXAMPLES = 10

    def __init__(self, cfg: DataCfg | str | Path):
        self.cfg = cfg = _as_cfg(cfg)
        self.cols = dict(cfg.columns or {})
        self.format: str | None = None
        self.dropped, self.total = 0, 0
        self.drop_reasons: dict[str, int] = {}
        self.drop_examples: dict[str, list[int]] = {}
        self.columns: list[str] = []
        self.files: list[str] = []
        self.ranges: list[dict] = []
        self.unfilled: set[str] = set()
        self.bytes_done, self.bytes_total = 0, 0
        self._at: str | None = None  # the row being read, for errors no check foresaw

    def rows(self) -> Iterator[dict]:
        return (row for _, _, row, reason in self.walk() if reason is None)

    def walk(self) -> Iterator[tuple[int, str, dict, str | None]]:
        """The boundary: whatever the files hold, rows come out or one DataError naming
        the file and the row (a failure no check foresaw included)."""
        self._at = None
        try:
            yield from self._walk()
        except WorkbenchError:
            raise
        except Exception as exc:
            at = self._at or ", ".join(path_text(f) for f in self.files) or "data.path"
            raise DataError(f"{at}: cannot read this row ({describe(exc)})") from None

    def _walk(self) -> Iterator[tuple[int, str, dict, str | None]]:
        files = resolve_files(self.cfg.path)  # all checked before reading any
        self.files = [name for name, _ in files]
        sizes = [path.stat().st_size for _, path in files]
        self.bytes_total = sum(sizes)
        seen = set()
        for i, (name, path) in enumerate(files):
            fmt = None
            before = sum(sizes[:i])
            self.ranges.append({"file": name, "first": self.total + 1, "last": self.total})

            def on_bytes(offset, before=before):
                self.bytes_done = before + offset
            shown_name = path_text(name)
            for where, raw in read_rows(path, name, on_bytes):
                self._at = at = f"{shown_name}: {where}"
                if not isinstance(raw, dict):
                    raise DataError(f"{at}: expected an object of columns like "
                                    f'{{"instruction": ..., "output": ...}}, got {kind(raw)}')
                for key in raw:
                    if key not in seen:
                        if not isinstance(key, str):
                            raise DataError(f"{at}: column names must be text, got "
                                            f"{kind(key)}")
                        check_text(key, at, "a column name")
                        seen.add(key)
                        self.columns.append(key)
                if fmt is None:
                    fmt = self._detect(raw, shown_name)
                self.total += 1
                self.ranges[-1]["last"] = self.total
                raw = fill(raw, self.cfg.placeholders or {}, self.unfilled)
                row = normalise(fmt, raw, self.cols, at)
                reason = drop_reason(row)
                if reason:
                    self.dropped += 1
                    self.drop_reasons[reason] = self.drop_reasons.get(reason, 0) + 1
                    examples = self.drop_examples.setdefault(reason, [])
                    if len(examples) < self.EXAMPLES:
                        examples.append(self.total)
                yield self.total, at, row, reason
            self.bytes_done = before + sizes[i]

    def _detect(self, raw: dict, name: str) -> str:
        col = lambda role: self.cols.get(role, role)  # noqa: E731
        forced = self.cfg.format
        if forced and forced != "auto":
            missing = [col(r) for r in FORMATS[forced][0] if col(r) not in raw]
            if missing:
                raise DataError(
                    f"{name}: data.format is {forced} but the first row has no "
                    f"{names_text(repr(m) for m in missing)} column (columns found: "
                    f"{names_text(raw)}); map yours with data.columns, "
                    f"e.g. {{{FORMATS[forced][0][-1]}: your_column}}")
            fmt = forced
        else:
            fmt = next((f for f, (req, _) in FORMATS.items()
                        if all(col(r) in raw for r in req)), None)
            if fmt is None:
                raise DataError(f"{name}: no recognisable format (columns: "
                                f"{names_text(raw, 8)}); "
                                f"{_format_hint(list(raw))}")
        if self.format is None:
            self.format = fmt
        elif fmt != self.format:
            raise DataError(f"{name}: is {fmt} but {path_text(self.files[0])} is "
                            f"{self.format}; files listed together must share one format")
        return fmt

    def nothing_left(self) -> DataError:
        where = ", ".join(path_text(f) for f in self.files)
        if not self.total:
            return DataError(f"{where}: no rows found (the file has no data rows)")
        reasons = ", ".join(f"{k}: {v}" for k, v in self.drop_reasons.items())
        return DataError(f"{where}: no usable rows: all {self.total} rows were dropped "
                         f"({reasons})")


def _format_hint(columns: list[str]) -> str:
    """What to do about columns no format recognises: the data.columns mapping that
    suggest_mapping finds, or else the formats and the columns each needs."""
    mapping = suggest_mapping(columns)
    hint = {r: c for r, c in mapping.items() if r != c}
    fmt = next((f for f, (req, _) in FORMATS.items() if all(r in mapping for r in req)), None)
    if hint and fmt:
        example = "{" + ", ".join(f"{r}: {names_text([c])}" for r, c in hint.items()) + "}"
        return f"they look like {fmt}: map them with data.columns, e.g. {example}"
    expected = ", ".join(f if req == [f] else f"{f} ({', '.join(req)})"
                         for f, (req, _) in FORMATS.items())
    return f"map them with data.columns, e.g. {{output: answer}}; formats: {expected}"


def _as_cfg(x) -> DataCfg:
    if isinstance(x, DataCfg):
        return x
    if isinstance(x, dict):
        from workbench.config import Preset
        return Preset.from_dict({"data": x}).data
    return DataCfg(path=str(x))
