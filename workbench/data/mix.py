"""data.mix: general instruction rows mixed into training, a guard against forgetting.

Training a small model on a few dozen rows of one kind (an identity set) can make it answer
everything with them ("What is the capital of France?" -> "I'm Nova"). Mixing in general
question/answer rows keeps the model practising what it knew. The preset says which files
and how much:

    data: {path: data/identity.jsonl, mix: [{path: data/general_mix.jsonl, fraction: 0.5}]}

Fraction: each entry adds round(fraction × U) rows of its file, where U is the number of
the user's rows that training uses (after data.max_samples). fraction 0.5 on 72 rows adds
36; 1.0 as many general rows as the user's. The rows are a seeded sample of the file (seed:
data.seed and the entry's place in the list), in file order; when more are asked than the
file holds, the whole file is repeated and the rest sampled. They are split into train and
eval with data.eval_fraction and data.seed, like the user's rows, and made into examples the
same way (answers only with train.completion_only_loss), so the eval loss of a mixed run
covers both. The user's rows alone are what `eval` scores as the run's eval split
(workbench.quant.compare.eval_items): the mix does not hide forgetting on the user's data.

    >>> parts = mix.load(preset.data, user_rows=72)
    >>> mix.summary(parts)
    '+ 36 general rows from general_mix.jsonl (fraction 0.5)'

Tests: python -m pytest tests/unit/test_mix.py
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import PurePath

from workbench.config import DataCfg
from workbench.errors import DataError, plain

__all__ = ["Part", "wanted", "load", "add", "summary", "info"]


@dataclass
class Part:
    """One data.mix entry as loaded: its file, fraction, how many usable rows the file
    holds, and the rows mixed in (normalised, as data.load returns them)."""
    path: str
    fraction: float
    available: int
    rows: list[dict] = field(default_factory=list)
    train: int = 0   # of `rows`, how many go to train and to eval
    eval: int = 0

    @property
    def name(self) -> str:
        return PurePath(self.path).name


def wanted(fraction: float, user_rows: int) -> int:
    """How many general rows an entry adds: round(fraction × user rows), halves rounded up
    (Python's round() would send 0.5 × 5 to 2 and 0.5 × 7 to 4)."""
    return int(fraction * user_rows + 0.5)


def load(cfg: DataCfg, user_rows: int, user_format: str | None = None) -> list[Part]:
    """The rows each data.mix entry of `cfg` adds to `user_rows` user rows. A file that
    cannot be read is a DataError naming the entry; so is a plain-text mix file for
    conversational user data (or the reverse), which one trainer cannot take together."""
    from workbench import data
    parts = []
    for i, entry in enumerate(cfg.mix or []):
        where = f"data.mix[{i}] ({plain(entry['path'], 80)})"
        try:
            loaded = data.load(DataCfg(path=entry["path"], seed=cfg.seed))
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
        if user_format is not None and (loaded.format == "text") != (user_format == "text"):
            raise DataError(f"{where}: is {loaded.format} but your data is {user_format}; "
                            "mix plain text with plain text and conversations with "
                            "conversations")
        n = wanted(entry["fraction"], user_rows)
        rows = [loaded.rows[j] for j in _pick(len(loaded.rows), n, cfg.seed + i)]
        tr, ev = data.split(rows, cfg.eval_fraction, cfg.seed)
        parts.append(Part(entry["path"], entry["fraction"], len(loaded.rows), rows,
                          len(tr), len(ev)))
    return parts


def add(train_rows: list, eval_rows: list, cfg: DataCfg, parts: list[Part]) -> tuple[list, list]:
    """The user's split rows with each part's rows, split the same way, appended (train
    and eval)."""
    from workbench import data
    train_rows, eval_rows = list(train_rows), list(eval_rows)
    for part in parts:
        tr, ev = data.split(part.rows, cfg.eval_fraction, cfg.seed)
        train_rows += tr
        eval_rows += ev
    return train_rows, eval_rows


def summary(parts: list[Part]) -> str:
    """One line per part: '+ 36 general rows from general_mix.jsonl (fraction 0.5)'; a
    part that needs more rows than its file holds says so."""
    lines = []
    for p in parts:
        line = f"+ {len(p.rows)} general rows from {plain(p.name, 80)} (fraction {p.fraction:g}"
        if len(p.rows) > p.available:
            line += f"; the file holds {p.available}, so rows repeat"
        lines.append(line + ")")
    return "\n".join(lines)


def info(parts: list[Part]) -> list[dict]:
    """The parts as plain data for JSON reports and the run's records."""
    return [{"path": p.path, "fraction": p.fraction, "rows": len(p.rows),
             "available": p.available, "train": p.train, "eval": p.eval} for p in parts]


def _pick(n: int, k: int, seed: int) -> list[int]:
    """k indices into n rows, in file order: whole passes when k > n, then a seeded
    sample without repeats."""
    if n <= 0 or k <= 0:
        return []
    full, rest = divmod(k, n)
    chosen = sorted(random.Random(seed).sample(range(n), rest))
    return sorted(list(range(n)) * full + chosen)
