"""How the Training tab draws a run's state: the progress box (state, step / total,
elapsed, ETA, the error of a failed run), the list of runs, and the line that says why
Start, Stop and Resume are on or off. Pure functions of what the run folders say."""

from __future__ import annotations

import html
import re
from datetime import datetime

import gradio as gr

from workbench.ui import shared, widgets
from workbench.ui.i18n import m

STATE_CLASS = {"running": "run", "completed": "ok", "failed": "bad", "stopped": "stop"}
RUNS_SHOWN = 12


def action_note(active: str | None, selected: str | None, state: str | None) -> str:
    """Why the buttons are on or off, naming the runs they act on."""
    if active:
        note = f"{m('train.note.busy')} **{html.escape(active)}** · {m('train.note.stop')}"
        if selected != active:
            note += f" · {m('train.note.select')}"
        return note
    if state == "completed":
        return f"✓ **{html.escape(selected)}** {m('train.note.finished')}"
    if state in ("stopped", "failed"):
        return f"**{html.escape(selected)}**: {m('train.note.resume')}"
    return ""


def progress_html(name: str, st: dict, records: list[dict]) -> str:
    state = st.get("state") or "failed"
    step, total = int(st.get("step") or 0), st.get("max_steps")
    pct = min(100.0, 100.0 * step / total) if total else (100.0 if state == "completed"
                                                          else 0.0)
    last = next((r for r in reversed(records) if "elapsed_s" in r), {})
    elapsed = last.get("elapsed_s")
    if state == "running":
        since = _seconds_since(st.get("started_at"))
        elapsed = since if since is not None else elapsed
    eta = last.get("eta_s") if state == "running" else None
    phase = st.get("phase") if state == "running" and st.get("phase") not in (
        None, "training") else None
    parts = [f"<b>{html.escape(name)}</b>",
             f"<span class='wb-state wb-{STATE_CLASS.get(state, 'bad')}'>"
             f"{m('state.' + state) if state in STATE_CLASS else html.escape(state)}</span>",
             f"{m('train.step')} {step} / {total if total else '?'}",
             f"{m('train.elapsed')} {shared.duration(elapsed)}"]
    if eta is not None:
        parts.append(f"{m('train.eta')} {shared.duration(eta)}")
    if phase:
        parts.append(f"<i>{html.escape(str(phase))}</i>")
    error = ""
    if state == "failed" and st.get("error"):
        error = (f"<div class='wb-error'>⚠ {html.escape(widgets.clean_message(st['error']))}"
                 "</div>")
    return (f"<div class='wb-progress'><div class='wb-progress-head'>{' · '.join(parts)}"
            f"</div><div class='wb-bar'><div class='wb-bar-fill wb-{STATE_CLASS.get(state)}' "
            f"style='width:{pct:.1f}%'></div></div>{error}</div>")


def _seconds_since(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        start = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return max(0.0, (datetime.now(start.tzinfo) - start).total_seconds())


def runs_markdown(all_runs: list[dict]) -> str:
    if not all_runs:
        return ""
    lines = [f"**{m('train.runs')}**", "",
             f"| {m('col.run')} | {m('col.state')} | {m('col.step')} | {m('col.started')} |"
             f" {m('col.merged')} |", "|---|---|---|---|---|"]
    for r in all_runs[:RUNS_SHOWN]:
        state = r.get("state") or "?"
        label = m(f"state.{state}") if state in STATE_CLASS else html.escape(state)
        started = (r.get("started_at") or "")[:19].replace("T", " ")
        steps = f"{r.get('step') or 0} / {r.get('max_steps') or '?'}"
        lines.append(f"| {html.escape(r['name'])} | {label} | {steps} | {started} | "
                     f"{'✓' if r.get('merged') else ''} |")
    return "\n".join(lines)


# -- the log as a person reads it ------------------------------------------------------------
# The run's train.log keeps everything the trainer printed; the page shows it without the
# library warnings, with the trainer's metric dicts as plain lines and each progress bar
# as "what: n/total" (the progress box above draws the bar itself).

_WARNING = re.compile(r"^\S+\.py:\d+: \w*Warning: ")
_BAR = re.compile(r"^\s*(?:(?P<what>.*?):\s*)?\d+%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)\b")
_METRIC = re.compile(r"^\s*(\{'[a-z_]+': .*\})\s*$")
METRIC_NAMES = {"loss": "loss", "eval_loss": "eval loss", "learning_rate": "learning rate",
                "epoch": "epoch", "train_loss": "average loss", "train_runtime": "seconds"}


def readable_log(text: str) -> str:
    """train.log's last lines for the page: library warnings (and their indented source
    line) left out, {'loss': '1.2', ...} as "loss 1.2 · learning rate 0.0002 · epoch 0.5",
    a progress bar as "Tokenizing train dataset: 65/65"; a bar without a name only when it
    is the last line (where the run is now)."""
    import ast
    lines = text.split("\n")
    out, in_warning = [], False
    for i, line in enumerate(lines):
        if _WARNING.match(line):
            in_warning = True
            continue
        if in_warning and line[:1].isspace():
            continue
        in_warning = False
        if not line.strip():  # what a progress bar left when it cleared itself
            continue
        metric = _METRIC.match(line)
        if metric:
            try:
                values = ast.literal_eval(metric.group(1))
            except (ValueError, SyntaxError):
                values = None
            if isinstance(values, dict):
                shown = [f"{METRIC_NAMES[k]} {_short(k, v)}" for k, v in values.items()
                         if k in METRIC_NAMES]
                if shown:
                    out.append(" · ".join(shown))
                continue
        bar = _BAR.match(line)
        if bar:
            what = (bar.group("what") or "").strip()
            if what:
                out.append(f"{what}: {bar.group('n')}/{bar.group('total')}")
            elif i == len(lines) - 1 or not any(x.strip() for x in lines[i + 1:]):
                out.append(f"step {bar.group('n')}/{bar.group('total')}")
            continue
        out.append(line)
    return "\n".join(out)


def _short(key: str, value) -> str:
    if key == "epoch":
        try:
            return f"{float(value):.2f}"
        except (TypeError, ValueError):
            pass
    return str(value)


# the files a run's view is drawn from; the poll redraws only when one of them changed
WATCHED = ("status.json", "metrics.jsonl", "train.log", "samples.jsonl")
CLOCK_SECONDS = 15  # elapsed / remaining times move on at least this often
MIN_REDRAW_SECONDS = 8.0  # while steps are shorter, redraw at most this often


def folder_stamp(_selected=None, old=None):
    """The poll's cheap half: {"files": the size and mtime of every run's WATCHED files,
    "clock": a CLOCK_SECONDS clock, "at": when it was last handed out}, or gr.skip() when
    nothing changed since `old` or the last redraw is less than MIN_REDRAW_SECONDS ago.
    Only when it changes does the page redraw its run view (a State's change event): on a
    2-core machine every redraw (13 components, two plots, a long page) costs the browser
    CPU time that the training needs (bench/README.md, "The app's own cost")."""
    import os
    import time

    from workbench import paths
    now = time.time()
    files = []
    try:
        folders = sorted(e.path for e in os.scandir(paths.runs_dir()) if e.is_dir())
    except OSError:
        folders = []
    for folder in folders:
        for name in WATCHED:
            try:
                st = os.stat(os.path.join(folder, name))
                files.append((folder, name, st.st_size, st.st_mtime_ns))
            except OSError:
                files.append((folder, name, None, None))
    stamp = {"files": files, "clock": int(now // CLOCK_SECONDS), "at": now}
    if old:
        same = old.get("files") == files and old.get("clock") == stamp["clock"]
        if same or now - old.get("at", 0) < MIN_REDRAW_SECONDS:
            return gr.skip()
    return stamp
