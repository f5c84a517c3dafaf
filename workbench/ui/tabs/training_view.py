"""How the Training tab draws a run's state: the progress box (state, step / total,
elapsed, ETA, the error of a failed run), the loss and learning-rate charts (SVG drawn
here), the list of runs, and the line that says why Start, Stop and Resume are on or off.
Pure functions of what the run folders say."""

from __future__ import annotations

import hashlib
import html
from datetime import datetime
from pathlib import Path

import gradio as gr

from workbench.ui import shared, svg_chart, widgets
from workbench.ui.i18n import m
from workbench.ui.tabs.training_log import log_html, readable_log

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


def runs_html(all_runs: list[dict]) -> str:
    """The newest RUNS_SHOWN runs as a table (HTML: the poll writes it in place)."""
    if not all_runs:
        return ""
    head = "".join(f"<th>{m(key)}</th>" for key in
                   ("col.run", "col.state", "col.step", "col.started", "col.merged"))
    rows = []
    for r in all_runs[:RUNS_SHOWN]:
        state = r.get("state") or "?"
        label = m(f"state.{state}") if state in STATE_CLASS else html.escape(state)
        started = html.escape((r.get("started_at") or "")[:19].replace("T", " "))
        steps = html.escape(f"{r.get('step') or 0} / {r.get('max_steps') or '?'}")
        rows.append(f"<tr><td>{html.escape(r['name'])}</td><td>{label}</td><td>{steps}</td>"
                    f"<td>{started}</td><td>{'✓' if r.get('merged') else ''}</td></tr>")
    return (f"<div class='wb-runs'><b>{m('train.runs')}</b><table><thead><tr>{head}</tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table></div>")


# the files a run's view is drawn from; the poll redraws only when one of them changed
WATCHED = ("status.json", "metrics.jsonl", "train.log", "samples.jsonl")
CLOCK_SECONDS = 15  # elapsed / remaining times move on at least this often while a run runs
POLL_SECONDS = 4.0  # the page asks `live` this often while the Training tab shows
MIN_REDRAW_SECONDS = 8.0  # after a change was written, the page asks again after this long
# the two charts, while their run runs, at most this often (a run's end or another run at
# once); they are SVG drawn here, written by the page like the other parts
PLOT_SECONDS = 30.0
# the parts the poll writes into the page itself (no Gradio event)
LIVE_PARTS = ("progress", "log", "list", "guide", "plots")


def folder_key() -> str:
    """The poll's cheap half (`live` reads nothing else while it is unchanged): a short key
    of the size and mtime of every run's WATCHED files, plus a CLOCK_SECONDS clock while the
    newest run is running (its elapsed and remaining times move on)."""
    import os
    import time

    from workbench import paths, runs
    files, newest = [], (0, None)
    try:
        folders = sorted(e.path for e in os.scandir(paths.runs_dir()) if e.is_dir())
    except OSError:
        folders = []
    for folder in folders:
        for name in WATCHED:
            try:
                st = os.stat(os.path.join(folder, name))
            except OSError:
                files.append(f"{folder}/{name}:-")
                continue
            files.append(f"{folder}/{name}:{st.st_size}:{st.st_mtime_ns}")
            if name == "status.json" and st.st_mtime_ns > newest[0]:
                newest = (st.st_mtime_ns, folder)
    live = newest[1] is not None and runs.read_json(
        Path(newest[1]) / "status.json").get("state") == "running"
    if live:
        files.append(f"clock:{int(time.time() // CLOCK_SECONDS)}")
    return _digest("\n".join(files))


def _digest(text: str) -> str:
    """16 hex digits that change when `text` does (folder_key, and each part `live` sent)."""
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


# -- the live view, in parts ------------------------------------------------------------------
# What the view shows falls into parts that change at different rates: the progress box, the
# log, the runs list and the "start here" strip (step counts) at every step; the charts when
# metrics.jsonl grows (every logging_steps); the run picker and the buttons when a run starts
# or ends; the sample table at an evaluation. The page's poll (training.POLL_SCRIPT) asks
# `live` every POLL_SECONDS: a plain request outside Gradio's events, which returns the
# LIVE_PARTS that changed as HTML (the charts as SVG), and the page writes them in place.
# Only when the controls or the sample table changed does the page click #train-refresh,
# whose one Gradio event (`poll`) hands their keys to States, whose change events redraw
# them. On a 2-core machine every Gradio event, even one that changes nothing, costs the
# browser CPU time that the training needs: Gradio's page moves every output through its
# pending/complete states; and a Vega chart's redraw cost it ~0.4 s of CPU in a burst that
# stalled both training threads (bench/README.md, "The app's own cost").

LOG_LINES = 20


def read_parts(selected, views: bool = True) -> dict:
    """Each part of the view, read from the run folders: a value that changes exactly when
    what the part shows changes. `selected` not among the runs: the running one, else the
    newest. `views=False`: only the run shown and the controls' key, none of the HTML (the
    log, metrics and charts are not read)."""
    from workbench import runs
    from workbench.ui import guide
    all_runs = runs.list_runs()
    names = [r["name"] for r in all_runs]
    active = next((r["name"] for r in all_runs if r["state"] == "running"), None)
    moved = selected not in names  # the picker must show another run (or none)
    if moved:
        selected = active or (names[0] if names else None)
    info = next((r for r in all_runs if r["name"] == selected), None)
    st = runs.status(Path(info["path"])) if info is not None else {}
    state = st.get("state")
    parts = {"log": (selected, None),
             "controls": (selected, tuple(names), active, state,
                          state == "completed" and bool(info and info.get("has_adapter")),
                          info is not None, moved)}
    if not views:
        return parts
    if info is None:
        records, log_text = [], ""
        progress = f"<div class='wb-progress'>{m('train.no_run')}</div>"
    else:
        run = Path(info["path"])
        records = runs.metrics(run)
        log_text = widgets.clean_message(readable_log(
            shared.ANSI_RE.sub("", runs.log_tail(run, LOG_LINES))))
        progress = progress_html(selected, st, records)
    return {**parts, "progress": progress, "log": (selected, log_text),
            "plots": charts_html(records), "list": runs_html(all_runs),
            "guide": guide.guide_inner(all_runs)}  # its step 2 follows a run's step count


def live_inner(parts: dict) -> dict[str, str]:
    """The inner HTML of each LIVE_PARTS part (what shared.live_box wraps)."""
    return {"progress": parts["progress"], "log": log_html(parts["log"][1]),
            "list": parts["list"], "guide": parts["guide"], "plots": parts["plots"]}


def draw_controls(key) -> list:
    """The run picker, Start, Stop, Resume, the note on why, Compare in Chat, Load settings.
    The picker's value is set only when the run it held is gone (or it held none): a key
    read while the user picked a run, or while Start selected the new one, names the run
    picked before, and must not pick it again."""
    selected, names, active, state, finished, has_info, moved = key
    picker = gr.update(choices=list(names), value=selected) if moved else \
        gr.update(choices=list(names))
    return [picker,
            gr.update(interactive=active is None),
            # Stop stops the run it names: only the selected run, only while it runs
            gr.update(interactive=active is not None and selected == active),
            gr.update(interactive=active is None and state in ("stopped", "failed")),
            action_note(active, selected, state),
            gr.update(visible=finished), gr.update(visible=has_info)]


def view(selected, shown):
    """Everything the tab shows about a run, read from its folder (page load, a run picked):
    [progress, charts, log, runs list, the seven controls, the strip, parts].
    Parts unchanged since `shown` are skipped, so charts do not flicker. A failure shows in
    the progress box (a toast at every poll would bury the page); the next call tries again."""
    try:
        parts = read_parts(selected)
    except Exception as exc:  # noqa: BLE001 - shown in the page, polling goes on
        widgets.log.error("reading the run folder failed", exc_info=True)
        return [shared.live_box("progress", _error_box(exc)), *[gr.skip()] * 11, None]
    shown = shown or {}
    boxes = {part: shared.live_box(part, inner) for part, inner in live_inner(parts).items()}

    def changed(part):
        return shown.get(part) != parts[part]
    skip = gr.skip()
    return [boxes["progress"] if changed("progress") else skip,
            boxes["plots"] if changed("plots") else skip,
            boxes["log"] if changed("log") else skip,
            boxes["list"] if changed("list") else skip,
            *(draw_controls(parts["controls"]) if changed("controls") else [skip] * 7),
            boxes["guide"] if changed("guide") else skip,
            parts]


def live(selected: str | None = None, known: dict | None = None) -> dict:
    """The Training tab's poll, one plain request (training.POLL_SCRIPT, every POLL_SECONDS
    while the tab shows). `selected`: the run picker's value. `known`: what the page holds,
    as the last answer's "known" said (None at first): the folder_key it saw, the run, a
    digest of each live part, when the charts were last sent, and the keys of the controls
    and the sample table.

    Returns {"known": the new one, "parts": {part: inner HTML} of each LIVE_PARTS part that
    changed (the page writes them in its shared.live_box), "redraw": true when the controls
    or the sample table changed (the page then clicks #train-refresh)}. While a run runs,
    new chart points wait until PLOT_SECONDS after the charts were last sent; its end or
    another run's points are at once. With the run folders unchanged it only stats them."""
    import json
    import time

    from workbench.ui.tabs import training_samples
    known = dict(known) if isinstance(known, dict) else {}
    selected = selected or None
    key = folder_key()
    if key == known.get("key") and selected == known.get("selected") \
            and not known.get("plots_waiting"):
        return {"known": known, "parts": {}, "redraw": False}
    try:
        parts = read_parts(selected)
    except Exception as exc:  # noqa: BLE001 - shown in the progress box, polling goes on
        widgets.log.error("reading the run folder failed", exc_info=True)
        return {"known": {}, "parts": {"progress": _error_box(exc)}, "redraw": False}
    shown_run, now = parts["log"][0], time.time()
    plots_due = (known.get("plots_run") != shown_run  # another run: at once
                 or parts["controls"][3] != "running"  # ended (or never ran): at once
                 or now - float(known.get("plots_at") or 0) >= PLOT_SECONDS)
    digests, changed, waiting = dict(known.get("digests") or {}), {}, False
    for part, inner in live_inner(parts).items():
        digest = _digest(inner)
        if digests.get(part) == digest:
            continue
        if part == "plots" and not plots_due:
            waiting = True  # ask again though nothing changes on disk
            continue
        changed[part], digests[part] = inner, digest
    out = {"key": key, "selected": selected, "digests": digests, "plots_waiting": waiting,
           "plots_run": known.get("plots_run"), "plots_at": known.get("plots_at")}
    if "plots" in changed:
        out["plots_run"], out["plots_at"] = shown_run, now
    # the rare parts' keys, in their JSON form (the page hands them back as JSON)
    out["rare"] = json.loads(json.dumps(
        {"controls": parts["controls"], "samples": training_samples.stamp(shown_run)},
        default=str))
    return {"known": out, "parts": changed, "redraw": out["rare"] != known.get("rare")}


def poll(selected, controls_old, samples_old) -> list:
    """The Gradio event the page's poll fires when `live` said the controls or the sample
    table changed: their keys, each gr.skip() when as shown, so that only a changed key
    fires its redraw."""
    from workbench.ui.tabs import training_samples
    try:
        parts = read_parts(selected, views=False)  # the keys only: no HTML built to drop
    except Exception:  # noqa: BLE001 - `live` shows it in the progress box
        widgets.log.error("reading the run folder failed", exc_info=True)
        return [gr.skip()] * 2
    return [gr.skip() if parts["controls"] == controls_old else parts["controls"],
            training_samples.file_stamp(parts["log"][0], samples_old)]


def _error_box(exc) -> str:
    """A failure to read the run folders, in the progress box's place."""
    return f"<div class='wb-progress wb-error'>⚠ {widgets.error_text(exc)}</div>"


LOSS_SERIES = (("loss", "series.loss", "#2563eb"), ("eval_loss", "series.eval_loss",
                                                    "#f97316"))


def points(records: list[dict], key: str) -> list[tuple[float, float]]:
    """(step, value) of the metrics records that have a number for `key`, by step."""
    return sorted((r["step"], r[key]) for r in records
                  if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
                  and isinstance(r.get("step"), (int, float)))


def charts_html(records: list[dict]) -> str:
    """The loss chart (training and eval loss, one step axis) beside the learning-rate
    chart, as SVG (svg_chart); each with an empty frame until its first point."""
    loss = [svg_chart.Series(m(label), color, points(records, key))
            for key, label, color in LOSS_SERIES]
    lr = [svg_chart.Series(m("train.lr_plot"), "#2563eb", points(records, "learning_rate"))]
    common = dict(x_title=m("train.step"), empty=m("train.no_points"))
    return ("<div class='wb-charts'><div id='train-plot-loss' class='wb-chart-loss'>"
            + svg_chart.line_chart(loss, title=m("train.loss_plot"),
                                   y_title=m("train.loss_plot"), width=600, **common)
            + "</div><div id='train-plot-learning-rate' class='wb-chart-lr'>"
            + svg_chart.line_chart(lr, title=m("train.lr_plot"), y_title=m("train.lr_plot"),
                                   scientific=True, width=400, **common)
            + "</div></div>")
