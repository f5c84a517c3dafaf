"""Datasets: read .json / .jsonl / .csv / .parquet files, detect their format and normalise
every row to the forms TRL's SFTTrainer takes.

    >>> from workbench import data
    >>> loaded = data.load(DataCfg(path="data/identity.jsonl"))
    >>> loaded.format, len(loaded.rows), loaded.dropped
    ('alpaca', 72, 0)
    >>> train_rows, eval_rows = data.split(loaded.rows, 0.1, seed=42)
    >>> train = data.to_examples(train_rows, completion_only=True)

CLI: `python launch.py data inspect data/identity.jsonl [--json]`.

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
Tests: python -m pytest tests/unit/test_data.py
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from workbench.config import DATA_FORMATS, DataCfg
from workbench.datafiles import kind, read_rows, resolve_files
from workbench.errors import DataError

# format -> (required roles, optional roles), in detection order: the first match wins.
FORMATS = {
    "messages": (["messages"], ["system"]),
    "sharegpt": (["conversations"], ["system"]),
    "alpaca": (["instruction", "output"], ["input", "system", "history"]),
    "prompt_completion": (["prompt", "completion"], ["system"]),
    "text": (["text"], []),
}
ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
         "function_call": "assistant", "system": "system", "tool": "tool",
         "observation": "tool"}
MIN_EVAL_ROWS = 5
# Common column names and the role they probably mean, for the "no format" hint.
_HINTS = {"question": "instruction", "query": "instruction", "answer": "output",
          "response": "output"}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}")


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
    scan = _Scan(cfg)
    rows = list(scan.rows())
    if not rows:
        raise scan.nothing_left()
    if cfg.max_samples and len(rows) > cfg.max_samples:
        keep = sorted(random.Random(cfg.seed).sample(range(len(rows)), cfg.max_samples))
        rows = [rows[i] for i in keep]
    return LoadedData(scan.format, rows, scan.dropped, dict(scan.drop_reasons),
                      scan.columns, scan.files, sorted(scan.unfilled))


def inspect(path_or_cfg: DataCfg | str | Path, preview: int = 5) -> dict:
    """Summary of a dataset without keeping its rows: format, rows, dropped, drop_reasons,
    columns, files, answers (assistant turns), unfilled_placeholders, preview."""
    cfg = _as_cfg(path_or_cfg)
    scan = _Scan(cfg)
    count, answers, first = 0, 0, []
    for row in scan.rows():
        count += 1
        answers += 1 if "text" in row else sum(
            m["role"] == "assistant" and bool(m["content"].strip()) for m in row["messages"])
        if len(first) < preview:
            first.append(row)
    if not count:
        raise scan.nothing_left()
    return {"format": scan.format, "rows": count, "dropped": scan.dropped,
            "drop_reasons": dict(scan.drop_reasons), "columns": scan.columns,
            "files": scan.files, "answers": answers, "max_samples": cfg.max_samples,
            "unfilled_placeholders": sorted(scan.unfilled), "preview": first}


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
            if m["role"] == "assistant" and m["content"].strip() and _has_prompt(msgs[:i]):
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


def register_cli(subparsers) -> None:
    """Add `data inspect FILE [--format F] [--json]` to the CLI."""
    parser = subparsers.add_parser("data", help="Look at dataset files.")
    sub = parser.add_subparsers(dest="data_command", required=True)
    p = sub.add_parser("inspect", help="Detect a dataset's format, count and preview its rows.")
    p.add_argument("file", help="dataset file (.json, .jsonl, .csv, .parquet); several: a,b")
    p.add_argument("--format", default="auto", choices=DATA_FORMATS, help="force a format")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_cli_inspect)


def _cli_inspect(args) -> int:
    info = inspect(DataCfg(path=args.file, format=args.format))
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return 0
    reasons = ", ".join(f"{k}: {v}" for k, v in info["drop_reasons"].items())
    print(", ".join(info["files"]))
    print(f"  format:  {info['format']}")
    print(f"  rows:    {info['rows']} usable, {info['dropped']} dropped"
          + (f" ({reasons})" if reasons else ""))
    print(f"  answers: {info['answers']}")
    print(f"  columns: {', '.join(info['columns'])}")
    if info["unfilled_placeholders"]:
        print(f"  unfilled placeholders: {', '.join(info['unfilled_placeholders'])} "
              "(set them in data.placeholders)")
    print("  preview:")
    for n, row in enumerate(info["preview"], 1):
        turns = ([("text", row["text"])] if "text" in row
                 else [(m["role"], m["content"]) for m in row["messages"]])
        for j, (role, content) in enumerate(turns):
            flat = " ".join(content.split())
            flat = flat if len(flat) <= 100 else flat[:99] + "…"
            print(f"    {f'[{n}]' if j == 0 else '':<5}{role}: {flat}")
    return 0


# -- the scan: files -> raw rows -> normalised rows ----------------------------------------

class _Scan:
    """One pass over the files; yields kept rows and counts what it drops and why."""

    def __init__(self, cfg: DataCfg):
        self.cfg = cfg
        self.cols = dict(cfg.columns or {})
        self.format: str | None = None
        self.dropped, self.total = 0, 0
        self.drop_reasons: dict[str, int] = {}
        self.columns: list[str] = []
        self.files: list[str] = []
        self.unfilled: set[str] = set()

    def rows(self) -> Iterator[dict]:
        files = resolve_files(self.cfg.path)  # all checked before reading any
        self.files = [name for name, _ in files]
        seen = set()
        for name, path in files:
            fmt = None
            for where, raw in read_rows(path, name):
                at = f"{name}: {where}"
                if not isinstance(raw, dict):
                    raise DataError(f"{at}: expected an object of columns like "
                                    f'{{"instruction": ..., "output": ...}}, got {kind(raw)}')
                for key in raw:
                    if key not in seen:
                        seen.add(key)
                        self.columns.append(key)
                if fmt is None:
                    fmt = self._detect(raw, name)
                self.total += 1
                raw = _fill(raw, self.cfg.placeholders or {}, self.unfilled)
                row = _normalise(fmt, raw, self.cols, at)
                reason = _drop_reason(row)
                if reason:
                    self.dropped += 1
                    self.drop_reasons[reason] = self.drop_reasons.get(reason, 0) + 1
                    continue
                yield row

    def _detect(self, raw: dict, name: str) -> str:
        col = lambda role: self.cols.get(role, role)  # noqa: E731
        forced = self.cfg.format
        if forced and forced != "auto":
            missing = [col(r) for r in FORMATS[forced][0] if col(r) not in raw]
            if missing:
                raise DataError(
                    f"{name}: data.format is {forced} but the first row has no "
                    f"{', '.join(repr(m) for m in missing)} column (columns found: "
                    f"{', '.join(raw) or 'none'}); map yours with data.columns, "
                    f"e.g. {{{FORMATS[forced][0][-1]}: your_column}}")
            fmt = forced
        else:
            fmt = next((f for f, (req, _) in FORMATS.items()
                        if all(col(r) in raw for r in req)), None)
            if fmt is None:
                expected = "; ".join(
                    f"{f} ({', '.join(req + [o + '?' for o in opt])})"
                    for f, (req, opt) in FORMATS.items())
                hint = {_HINTS[k]: k for k in raw if k in _HINTS}
                example = ("{" + ", ".join(f"{r}: {c}" for r, c in hint.items()) + "}"
                           if hint else "{output: answer}")
                raise DataError(
                    f"{name}: no recognisable format; columns found in the first row: "
                    f"{', '.join(raw) or 'none'}. Expected one of: {expected}. Map your "
                    f"columns with data.columns, e.g. {example}")
        if self.format is None:
            self.format = fmt
        elif fmt != self.format:
            raise DataError(f"{name}: is {fmt} but {self.files[0]} is {self.format}; files "
                            "listed together must share one format")
        return fmt

    def nothing_left(self) -> DataError:
        where = ", ".join(self.files)
        if not self.total:
            return DataError(f"{where}: no rows found (the file has no data rows)")
        reasons = ", ".join(f"{k}: {v}" for k, v in self.drop_reasons.items())
        return DataError(f"{where}: no usable rows: all {self.total} rows were dropped "
                         f"({reasons})")


def _as_cfg(x) -> DataCfg:
    if isinstance(x, DataCfg):
        return x
    if isinstance(x, dict):
        from workbench.config import Preset
        return Preset.from_dict({"data": x}).data
    return DataCfg(path=str(x))




# -- normalisation -----------------------------------------------------------------------

def _normalise(fmt: str, raw: dict, cols: dict, at: str) -> dict:
    def get(role, required=False):
        col = cols.get(role, role)
        if required and col not in raw:
            mapped = f" (the {role} column)" if col != role else ""
            raise DataError(f"{at}: missing field '{col}'{mapped}")
        return raw.get(col)

    def label(role):
        return f"field '{cols.get(role, role)}'"

    if fmt == "text":
        return {"text": _text(get("text", True), at, label("text"))}
    if fmt == "alpaca":
        msgs = []
        history = _maybe_json(get("history"))
        if history is not None and history != "" and not isinstance(history, list):
            raise DataError(f"{at}: {label('history')} should be a list of [user, answer] "
                            f"pairs, got {kind(history)}")
        for j, pair in enumerate(history or [], 1):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                raise DataError(f"{at}: {label('history')} item {j} should be a [user, answer]"
                                f" pair, got {kind(pair)}")
            where = f"{label('history')} item {j}"
            msgs += [_msg("user", _text(pair[0], at, where)),
                     _msg("assistant", _text(pair[1], at, where))]
        prompt = [_text(get("instruction", True), at, label("instruction")),
                  _text(get("input"), at, label("input"))]
        msgs += [_msg("user", "\n\n".join(p for p in prompt if p.strip())),
                 _msg("assistant", _text(get("output", True), at, label("output")))]
    elif fmt in ("sharegpt", "messages"):
        role = "conversations" if fmt == "sharegpt" else "messages"
        msgs = _messages(get(role, True), at, label(role))
    else:  # prompt_completion: each side is text or a list of messages
        msgs = []
        for role, default in (("prompt", "user"), ("completion", "assistant")):
            value = _maybe_json(get(role, True))
            msgs += (_messages(value, at, label(role)) if isinstance(value, list)
                     else [_msg(default, _text(value, at, label(role)))])
    return {"messages": _with_system(msgs, _text(get("system"), at, label("system")),
                                     raw.get("tools"))}


def _with_system(msgs: list[dict], system: str, tools: Any) -> list[dict]:
    """Top-level system text and tool specs go first in the system message: TRL would pass
    a `tools` column to the chat template, but SmolLM2's template ignores tools."""
    tools = _maybe_json(tools)
    parts = [system] if system.strip() else []
    if tools not in (None, "", [], {}):
        spec = tools if isinstance(tools, str) else json.dumps(tools, ensure_ascii=False)
        parts.append("You can call these tools:\n" + spec)
    if not parts:
        return msgs
    if msgs and msgs[0]["role"] == "system":
        parts.append(msgs[0]["content"])
        msgs = msgs[1:]
    return [_msg("system", "\n\n".join(parts))] + msgs


def _messages(items: Any, at: str, label: str) -> list[dict]:
    items = _maybe_json(items)
    if not isinstance(items, list):
        raise DataError(f"{at}: {label} should be a list of messages, got {kind(items)}")
    out = []
    for i, m in enumerate(items, 1):
        where = f"{label} item {i}"
        if not isinstance(m, dict):
            raise DataError(f'{at}: {where} should be an object like {{"role": "user", '
                            f'"content": "..."}}, got {kind(m)}')
        if "role" in m or "content" in m:
            role, content = m.get("role"), m.get("content")
        elif "from" in m or "value" in m:
            role, content = m.get("from"), m.get("value")
        else:
            raise DataError(f"{at}: {where} has neither role/content nor from/value "
                            f"(keys: {', '.join(m) or 'none'})")
        mapped = ROLES.get(role.strip().lower()) if isinstance(role, str) else None
        if mapped is None:
            raise DataError(f"{at}: {where}: unknown role {role!r} (expected one of "
                            f"{', '.join(ROLES)})")
        if isinstance(content, list) and all(isinstance(p, dict) for p in content):
            # multimodal-style parts: keep the text ones, refuse images & co.
            if any(p.get("type", "text") != "text" for p in content):
                raise DataError(f"{at}: {where}: only text content is supported")
            content = "".join(str(p.get("text") or "") for p in content)
        out.append(_msg(mapped, _text(content, at, f"{where} content")))
    return out


def _msg(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def _text(value: Any, at: str, label: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # a number is a fine answer ("42")
    raise DataError(f"{at}: {label} should be text, got {kind(value)}")


def _maybe_json(value: Any) -> Any:
    """CSV (and some Parquet) files store lists as JSON text; read those back as lists."""
    if isinstance(value, str) and value.strip().startswith(("[", "{")):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return value
        return parsed if isinstance(parsed, (list, dict)) else value
    return value


def _has_prompt(msgs: list[dict]) -> bool:
    return any(m["role"] in ("user", "tool") and m["content"].strip() for m in msgs)


def _drop_reason(row: dict) -> str | None:
    """Why a normalised row teaches nothing, or None to keep it. Trailing turns after the
    last answer are trimmed in place (a question with no answer trains nothing)."""
    if "text" in row:
        return None if row["text"].strip() else "empty text"
    msgs = row["messages"]
    if not any(m["content"].strip() for m in msgs):
        return "empty row"
    last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
    if last is None:
        return "no answer"
    del msgs[last + 1:]
    if not msgs[last]["content"].strip():
        return "empty answer"
    if not _has_prompt(msgs[:last]):
        return "empty prompt"
    return None


def _fill(value: Any, mapping: dict, unfilled: set) -> Any:
    """Replace {{name}} in every string; remember names that have no value."""
    if isinstance(value, str):
        if "{{" not in value:
            return value

        def sub(m):
            if m.group(1) in mapping:
                return str(mapping[m.group(1)])
            unfilled.add(m.group(1))
            return m.group(0)
        return _PLACEHOLDER.sub(sub, value)
    if isinstance(value, list):
        return [_fill(v, mapping, unfilled) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, mapping, unfilled) for k, v in value.items()}
    return value
