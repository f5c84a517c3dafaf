"""`launch.py data ...`: look at a dataset before training on it.

    python launch.py data inspect FILE [--preset P] [--set section.key=value ...] [--json]
    python launch.py data inspect FILE --no-tokens        # format, rows and checks only (fast)
    python launch.py data render FILE --row N [--preset P] [--set ...] [--json]

`inspect` reads the file once (streaming, with a progress line for large files): format,
rows, drops, token counts with the preset's tokenizer after its chat template, what
max_length truncates, a suggested max_length, and the quality checks with row numbers.
`render` prints one row exactly as the trainer sees it, masked parts inside ⟦ ⟧ (dim on a
terminal), trained parts plain, and anything past max_length inside ⟪ ⟫.
FILE overrides the preset's data.path; without --preset the defaults apply
(the embedded model, max_length 512). Tests: python -m pytest tests/unit/test_inspect_data.py
"""

from __future__ import annotations

import json
import sys
import time

from workbench.config import DATA_FORMATS, Preset
from workbench.data.files import resolve_files
from workbench.errors import DataError, printable

BAR = 30


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="Look at dataset files.")
    sub = parser.add_subparsers(dest="data_command", required=True)
    p = sub.add_parser("inspect", help="Format, rows, token lengths, truncation and "
                       "quality checks of a dataset.")
    _common(p)
    p.add_argument("--no-tokens", action="store_true",
                   help="skip the token statistics (no tokenizer needed)")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("render", help="One row as the trainer sees it: chat template "
                       "applied, trained and masked tokens marked.")
    _common(p)
    p.add_argument("--row", type=int, required=True, help="row number (1 = first row)")
    p.set_defaults(func=cmd_render)


def _common(p) -> None:
    p.add_argument("file", help="dataset file (.json, .jsonl, .csv, .parquet); several: a,b")
    p.add_argument("--preset", help="preset name or YAML path (model, max_length, mapping)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a preset value, e.g. --set train.max_length=1024")
    p.add_argument("--format", default=None, choices=DATA_FORMATS, help="force a format")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def preset_from_args(args) -> Preset:
    from workbench import presets
    preset = presets.load(args.preset) if args.preset else Preset()
    extra = {"data.path": args.file}
    if args.format:
        extra["data.format"] = args.format
    # the file first, so a --set data.* from the user still wins
    return preset.with_overrides(extra).with_overrides(args.set)


def cmd_inspect(args) -> int:
    from workbench.train import preview as inspect_data
    preset = preset_from_args(args)
    # progress goes to stderr, so it never mixes with --json on stdout
    info = inspect_data.inspect(preset, tokens=not args.no_tokens, progress=_Progress())
    if preset.data.mix:  # what data.mix adds to these rows in training (data/mix.py)
        from workbench.data import mix
        cap = preset.data.max_samples
        parts = mix.load(preset.data, min(info["rows"], cap) if cap else info["rows"],
                         info["format"])
        info["mix"] = mix.info(parts)
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=1))
        return 0
    print_summary(info)
    if info.get("mix"):
        print("  data.mix (general rows mixed into training):")
        for line in mix.summary(parts).splitlines():
            print(f"    {printable(line)}")
    if "tokens" in info:
        print_tokens(info, preset)
    print_checks(info)
    return 0


def cmd_render(args) -> int:
    from workbench.train import preview as inspect_data
    if args.row < 1:  # checked here: a scan for row 0 stops at row 1 and miscounts the rows
        raise DataError(f"--row {args.row}: rows are numbered from 1 (`data inspect` shows "
                        "how many there are)")
    preset = preset_from_args(args)
    resolve_files(preset.data.path)  # a missing file is said before the tokenizer loads
    r = inspect_data.render_row(preset, args.row)
    if args.json:
        print(json.dumps(r, ensure_ascii=False, indent=1))
        return 0
    tty = sys.stdout.isatty()
    seqs = r["sequences"]
    print(f"{r['where']} · {r['length']} tokens · loss on {r['loss_on']} · "
          f"{r['trained_tokens']} trained · max_length {r['max_length']}")
    for i, s in enumerate(seqs, 1):
        state = ("dropped by the trainer (no trained token left)" if s["dropped"]
                 else "truncated" if s["truncated"] else "whole")
        print(f"  sequence {i}/{len(seqs)}: {s['length']} tokens, {s['trained_tokens']} "
              f"trained, {state}")
    for note in r["notes"]:
        print(f"  note: {note}")
    print("legend: ⟦masked: not trained⟧ trained ⟪past max_length: cut⟫")
    print("-" * 60)
    print(marked(inspect_data.highlighted(r), tty))
    print("-" * 60)
    return 0


def marked(spans, color: bool = False) -> str:
    """Spans from inspect_data.highlighted as text readable without colour."""
    out = []
    for text, label in spans:
        if label == "masked":
            out.append(f"\x1b[2m⟦{text}⟧\x1b[0m" if color else f"⟦{text}⟧")
        elif label == "truncated":
            out.append(f"\x1b[9;31m⟪{text}⟫\x1b[0m" if color else f"⟪{text}⟫")
        else:
            out.append(text)
    return "".join(out)


# -- printing ------------------------------------------------------------------------

def print_summary(info: dict) -> None:
    reasons = ", ".join(f"{k}: {v} (rows {_rows(info['drop_examples'].get(k, []))})"
                        for k, v in info["drop_reasons"].items())
    # names and text from the file are escaped: a newline or an escape code in a column
    # name or an answer cannot start a line of its own
    print(printable(", ".join(info["files"])))
    print(f"  format:  {info['format']}")
    print(f"  rows:    {info['rows']} usable, {info['dropped']} dropped"
          + (f" ({reasons})" if reasons else ""))
    if len(info.get("ranges", [])) > 1:
        for rg in info["ranges"]:
            print(f"           {printable(rg['file'])}: rows {rg['first']}–{rg['last']}")
    if info.get("few_rows"):
        print(f"  warning: {info['few_rows']} rows: too few to learn from reliably; 50+ is a "
              "good start")
    print(f"  answers: {info['answers']}")
    print(f"  columns: {printable(', '.join(info['columns']))}")
    if info["unfilled_placeholders"]:
        print(f"  unfilled placeholders: {', '.join(info['unfilled_placeholders'])} "
              "(set them in data.placeholders)")
    print("  preview:")
    for n, row in zip(info.get("preview_rows", []), info["preview"]):
        turns = ([("text", row["text"])] if "text" in row
                 else [(m["role"], m["content"]) for m in row["messages"]])
        for j, (role, content) in enumerate(turns):
            flat = printable(" ".join(content.split()))
            flat = flat if len(flat) <= 100 else flat[:99] + "…"
            print(f"    {f'[{n}]' if j == 0 else '':<7}{role}: {flat}")


def print_tokens(info: dict, preset: Preset) -> None:
    t, L = info["tokens"], info["max_length"]
    used = (f"{info['rows_used']} of {info['rows']} rows (data.max_samples)"
            if info["rows_used"] != info["rows"] else f"{info['rows']} rows")
    print(f"tokens per row ({preset.model.name_or_path}, after the chat template; {used}, "
          f"{info['sequences']} training sequences, loss on {info['loss_on']}):")
    print(f"  min {t['min']} · median {t['median']:g} · p95 {t['p95']} · max {t['max']}")
    hist = info.get("histogram") or []
    top = max((h["rows"] for h in hist), default=0)
    for h in hist:
        bar = "█" * (round(BAR * h["rows"] / top) if top else 0)
        mark = "  ← max_length" if h["from"] <= L < h["to"] else ""
        print(f"  {h['from']:>7}–{h['to'] - 1:<7} {bar:<{BAR}} {h['rows']}{mark}")
    print(f"at max_length {L}:")
    print(f"  truncated rows:      {info['truncated_rows']}"
          + (f" (rows {_rows(info['truncated_examples'])})" if info["truncated_rows"] else ""))
    print(f"  trained tokens lost: {info['trained_tokens_lost']} of {info['trained_tokens']}")
    print(f"  fully masked:        {info['fully_masked_rows']} rows, "
          f"{info['dropped_sequences']} sequences lose every trained token"
          + (" (the trainer drops them)" if not info["packing"] else " (packing keeps them)"))
    s = info["suggested_max_length"]
    print(f"suggested max_length: {s['p95']} keeps 95% of rows whole, {s['p99']} keeps 99% "
          f"(multiples of {s['multiple_of']})")
    print(f"({info['seconds']} s)")


def print_checks(info: dict) -> None:
    checks = info.get("checks")
    if not checks:
        return
    print("checks:")
    d = checks["duplicates"]
    print(f"  duplicate rows:      {d['count']}" + (
        " (" + ", ".join(f"{a} = {b}" for a, b in zip(d["examples"], d["same_as"])) + ")"
        if d["count"] else ""))
    e = checks["empty_answers"]
    print(f"  empty answers:       {e['count']}"
          + (f" ({e['dropped']} dropped; rows {_rows(e['examples'])})" if e["count"] else ""))
    p = checks["placeholders"]
    line = f"  unfilled {{{{...}}}}:     {p['count']} rows"
    if p["count"]:
        names = ", ".join(f"{{{{{k}}}}} ×{v}" for k, v in p["names"].items())
        mapping = ", ".join(f"{k}: ..." for k in p["suggested"])
        line += (f" ({names}; rows {_rows(p['examples'])}); fill them with "
                 f"--set 'data.placeholders={{{mapping}}}'")
    print(line)
    a = checks.get("answer_exceeds_max_length")
    if a is not None:
        print(f"  answer > max_length: {a['count']}"
              + (f" (rows {_rows(a['examples'])})" if a["count"] else ""))


def _rows(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers) + ("…" if len(numbers) >= 10 else "")


class _Progress:
    """A progress line on stderr for files that take more than a moment."""

    def __init__(self):
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.start < 2 or (now - self.last < 1 and done < total):
            return
        self.last, self.shown = now, True
        frac = done / total if total else 1.0
        bar = "#" * int(BAR * frac)
        end = "\n" if done >= total or not sys.stderr.isatty() else "\r"
        print(f"reading {bar:<{BAR}} {100 * frac:3.0f}% ({done / 1e6:.0f}/{total / 1e6:.0f} MB, "
              f"{now - self.start:.0f} s)", end=end, file=sys.stderr, flush=True)
