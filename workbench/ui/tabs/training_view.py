"""How the Training tab draws a run's state: the progress box (state, step / total,
elapsed, ETA, the error of a failed run), the list of runs, and the line that says why
Start, Stop and Resume are on or off. Pure functions of what the run folders say."""

from __future__ import annotations

import html
from datetime import datetime

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
