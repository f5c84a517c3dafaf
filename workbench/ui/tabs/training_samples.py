"""The sample timeline on the Training tab: the watch prompts' answers at each eval step
(the run's samples.jsonl, written by workbench/train/samples.py), a step × prompt table
that grows while the run trains.

It listens to the Training tab's poll (which asks only while the tab is on screen) and
to the run picker; the file is read again, and the table redrawn, only when its size or
mtime changed (`shown`), so a poll costs one stat() and nothing in the browser.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import gradio as gr

from workbench.ui import widgets
from workbench.ui.i18n import m, t

STEPS_SHOWN = 12        # the newest eval steps; older ones stay in samples.jsonl
ANSWER_CHARS = 240      # a cell shows this much of an answer (the whole one on hover)
PROMPT_CHARS = 80
# inline: the page's stylesheet (ui/app.py) is shared; these rules are the table's alone
_CELL = "padding:4px 8px;border:1px solid var(--border-color-primary);vertical-align:top"
_TABLE = "border-collapse:collapse;font-size:13px;width:100%"

# the train.watch_prompts widget (a YAML list in a text box, config.py's list kind)
WATCH_FIELD = {"lines": 2, "placeholder": t("samples.placeholder")}


def build() -> tuple[gr.HTML, gr.State]:
    """The timeline's box and what it last showed; create where it should appear."""
    return (gr.HTML(timeline_html([]), elem_id="train-samples"), gr.State(None))


def wire(box: gr.HTML, shown: gr.State, run: gr.Dropdown) -> None:
    """`shown`: the file_stamp of the table on screen. The Training tab's poll updates it
    (a State, nothing in the page) and so does picking a run; the box is redrawn from its
    change event, so a poll that finds samples.jsonl as it was touches nothing in the page."""
    read_kw = dict(api_visibility="private", concurrency_limit=None, show_progress="hidden")
    run.change(file_stamp, [run, gr.State(None)], [shown], **read_kw)
    shown.change(draw, [shown], [box], **read_kw)


def file_stamp(selected, shown):
    """[run, size, mtime] of the selected run's samples.jsonl (None, None: not written yet),
    or gr.skip() when it is what `shown` holds (or cannot be read now)."""
    found = stamp(selected)
    return gr.skip() if found is None or found == shown else found


def stamp(selected) -> list | None:
    """[run, size, mtime] of a run's samples.jsonl ([run, None, None]: not written yet);
    None without a run, or while the run cannot be read (being deleted: the next poll
    tries again)."""
    from workbench import runs
    if not selected:
        return None
    try:
        st = os.stat(Path(runs.find(selected)) / runs.SAMPLES_FILE)
    except OSError:
        return [selected, None, None]  # no samples yet
    except Exception:  # noqa: BLE001 - a run being deleted: the next poll tries again
        widgets.log.warning("reading the sample timeline failed", exc_info=True)
        return None
    return [selected, st.st_size, st.st_mtime_ns]


def draw(stamp):
    """The table for the run a file_stamp names."""
    from workbench import runs
    if not stamp or stamp[1] is None:
        return timeline_html([])
    try:
        return timeline_html(runs.samples(runs.find(stamp[0])))
    except Exception:  # noqa: BLE001 - a run being deleted: the next poll tries again
        widgets.log.warning("reading the sample timeline failed", exc_info=True)
        return gr.skip()


def timeline_html(records: list[dict]) -> str:
    """A step × prompt table of the answers (newest STEPS_SHOWN steps, in step order)."""
    head = f"<div class='wb-samples'><b>{m('samples.title')}</b> · {m('samples.explain')}"
    prompts, by_step = [], {}
    for r in records:
        prompt, step = r.get("prompt"), r.get("step")
        if not isinstance(prompt, str) or not isinstance(step, int):
            continue
        if prompt not in prompts:
            prompts.append(prompt)
        by_step.setdefault(step, {})[prompt] = str(r.get("answer", ""))
    if not by_step:
        return f"{head}<p><i>{m('samples.none')}</i></p></div>"
    steps = sorted(by_step)[-STEPS_SHOWN:]
    cells = "".join(f"<th style='{_CELL};text-align:left' title='{html.escape(p)}'>"
                    f"{html.escape(_cut(p, PROMPT_CHARS))}</th>" for p in prompts)
    rows = [f"<tr><th style='{_CELL}'>{m('train.step')}</th>{cells}</tr>"]
    for step in steps:
        answers = by_step[step]
        tds = "".join(
            f"<td style='{_CELL}' title='{html.escape(answers.get(p, ''))}'>"
            f"{html.escape(_cut(answers.get(p, ''), ANSWER_CHARS)) or '–'}</td>"
            for p in prompts)
        rows.append(f"<tr><td style='{_CELL};text-align:right'>{step}</td>{tds}</tr>")
    older = len(by_step) - len(steps)
    more = f"<p><i>{older} {m('samples.older')}</i></p>" if older else ""
    return (f"{head}<div style='overflow-x:auto;margin-top:6px'><table style='{_TABLE}'>"
            f"{''.join(rows)}</table></div>{more}</div>")


def _cut(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 1] + "…"
