"""The "start here" strip at the top of the page: three steps for a first run, each shown
as done, in progress or next, from what the run folders say.

1. Pick data: the sample already works (it teaches the model the name "Nova").
2. Start training: about N minutes on this machine, from what was measured here (the
   newest dry run's ETA, else the newest finished run's time); without a measurement it
   says how to get one instead of guessing.
3. Compare in Chat: the tuned model against the base.

Read-only and cheap (the run folders' status files and one small cache file), so it is
redrawn on page load, whenever a tab is chosen, and by the Training tab's poll (from the
run list that poll has read anyway) when it changed.
"""

from __future__ import annotations

import html
import json

from workbench import fsio, paths
from workbench.ui.i18n import m

DRY_RUN_FILE = "last_dryrun.json"  # in WORKBENCH_HOME/cache: the page's newest dry run


def remember_dry_run(result: dict) -> None:
    """Keep the newest dry run's ETA for step 2's "about N minutes" (best effort)."""
    keep = {k: result.get(k) for k in ("eta_seconds", "full_run_steps", "seconds_per_step")}
    try:
        fsio.atomic_write(paths.cache_dir() / DRY_RUN_FILE, json.dumps(keep))
    except OSError:
        pass


def expected_seconds(all_runs: list[dict]) -> tuple[float | None, str]:
    """(seconds a first training takes here, where the figure comes from) or (None, "")."""
    try:
        data = json.loads((paths.cache_dir() / DRY_RUN_FILE).read_text(encoding="utf-8"))
        if isinstance(data.get("eta_seconds"), (int, float)) and data["eta_seconds"] > 0:
            return float(data["eta_seconds"]), "guide.from_dry_run"
    except (OSError, ValueError, AttributeError):
        pass
    from workbench import runs
    for info in all_runs:
        if info.get("state") != "completed":
            continue
        records = runs.metrics(info["path"])
        elapsed = next((r["elapsed_s"] for r in reversed(records)
                        if isinstance(r.get("elapsed_s"), (int, float))), None)
        if elapsed:
            return float(elapsed), "guide.from_last_run"
    return None, ""


def minutes(seconds: float) -> str:
    return f"{max(1, round(seconds / 60))}"


def steps(all_runs: list[dict]) -> list[tuple[str, str, str]]:
    """[(state, title, detail)] for the three steps; state is done, now or next."""
    running = next((r for r in all_runs if r.get("state") == "running"), None)
    finished = next((r for r in all_runs if r.get("state") == "completed"
                     and r.get("has_adapter")), None)
    data = ("done", m("guide.data"), m("guide.data.detail"))
    if running:
        step, total = running.get("step") or 0, running.get("max_steps") or "?"
        train = ("now", m("guide.train"),
                 f"{m('guide.training')} <b>{html.escape(running['name'])}</b>: "
                 f"{m('train.step')} {step} / {total}")
    else:
        seconds, source = expected_seconds(all_runs)
        when = (f"{m('guide.about')} {minutes(seconds)} {m('guide.minutes')} ({m(source)})"
                if seconds else m("guide.no_estimate"))
        train = ("done" if finished else "next", m("guide.train"),
                 f"{m('guide.train.detail')} {when}")
    if finished and not running:
        chat = ("next", m("guide.chat"),
                f"{m('guide.chat.ready')} <b>{html.escape(finished['name'])}</b>")
    else:
        chat = ("later", m("guide.chat"), m("guide.chat.detail"))
    return [data, train, chat]


MARK = {"done": "✓", "now": "▶", "next": "→", "later": "·"}


def guide_html(all_runs: list[dict] | None = None) -> str:
    """The strip as the page holds it: in a shared.live_box, so that the Training tab's poll
    can move its step count in place (training_view.live)."""
    from workbench.ui import shared
    return shared.live_box("guide", guide_inner(all_runs))


def guide_inner(all_runs: list[dict] | None = None) -> str:
    if all_runs is None:
        from workbench import runs
        all_runs = runs.list_runs()
    items = []
    for n, (state, title, detail) in enumerate(steps(all_runs), 1):
        items.append(f"<li class='wb-step wb-step-{state}'><span class='wb-step-mark'>"
                     f"{MARK[state]}</span><b>{n}. {title}</b><br><small>{detail}</small>"
                     "</li>")
    return (f"<div class='wb-guide' id='start-here-steps'><b>{m('guide.title')}</b>"
            f"<ol>{''.join(items)}</ol></div>")
