"""Chat tab, below the conversation: "Prompt set" and "Blind A/B" (issue 11 item 4).

Prompt set: a prompt file (the shipped general probe, a file in data/, an upload) or prompts
typed one per line, and one or more runs; the first N prompts (a small default: an answer
takes seconds on a CPU) are answered by the base and by each run from one loaded base
(`workbench.evaluate` through `workbench.promptset`, perplexity off, nothing saved); a
table prompt × base × runs with ✓/✗ where there is a reference, and its CSV to download.

Blind A/B: two of the chosen sources (the base, runs) answer the same prompt (typed here,
else a random one of the prompt set above); the answers are shown as A and B in random
order, the names kept on the server (gr.State) until the vote; A / B / tie / both bad is
appended to WORKBENCH_HOME/votes.jsonl (`workbench.votes`), the sources are revealed and
the leaderboard is redrawn.

Both load a model, like Compare: refused while a heavy job runs (shared.refuse_if_busy),
the chat model dropped first, the heavy lock held while answering (kind "eval"), one at a
time with Compare (concurrency_id "model"). Errors stay in the status line beside them.
"""

from __future__ import annotations

import os
import queue
import random
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import gradio as gr
import pandas as pd

from workbench import evaluate, fsio, promptset, votes
from workbench.errors import WorkbenchError
from workbench.ui import shared, widgets
from workbench.ui.i18n import m, t, text
from workbench.ui.tabs.memory_chart import lang_of

BOARD_COLUMNS = [f"ab.col.{c}" for c in ("source", "games", "wins", "losses", "ties",
                                          "both_bad", "win_rate", "interval", "bt")]
VOTE_KEYS = ("a", "b", "tie", "both_bad")
MAX_TOKENS = 1024  # the longest answer one may ask for (as `launch.py eval` allows)


@dataclass
class ChatEval:
    runs: gr.Dropdown
    start: gr.Button
    status: gr.Markdown
    sources: gr.Dropdown
    new_pair: gr.Button
    ab_status: gr.Markdown
    board: gr.Dataframe
    board_note: gr.Markdown


def file_choices() -> list[tuple[str, str]]:
    """data/NAME for each file promptset offers (relative: no server path on the page)."""
    return [(f"data/{p.name}", f"data/{p.name}") for p in promptset.prompt_files()]


def build(ctx) -> ChatEval:
    files = file_choices()
    with gr.Accordion(t("ceval.heading"), open=False, elem_id="ceval"):
        gr.Markdown(m("ceval.explain"))
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                file = gr.Dropdown(choices=files, value=files[0][1] if files else None,
                                   label=t("ceval.file"), elem_id="ceval-file")
                typed = gr.Textbox(label=t("ceval.typed"), lines=3,
                                   placeholder=t("ceval.typed.placeholder"),
                                   elem_id="ceval-typed")
            upload = gr.File(label=t("ceval.upload"), type="filepath", scale=2, height=150,
                             file_types=[".jsonl", ".json", ".csv", ".parquet"],
                             elem_id="ceval-upload")
        with gr.Row(equal_height=True, elem_classes=["wb-actions"]):
            runs = gr.Dropdown(choices=[], multiselect=True, label=t("ceval.runs"), scale=3,
                               elem_id="ceval-runs")
            limit = gr.Number(value=promptset.DEFAULT_LIMIT, precision=0, scale=1,
                              label=t("ceval.limit"), info=t("ceval.limit.help"),
                              elem_id="ceval-limit")
            tokens = gr.Number(value=evaluate.MAX_NEW_TOKENS, precision=0, scale=1,
                               label=t("ceval.tokens"), info=t("ceval.tokens.help"),
                               elem_id="ceval-tokens")
            start = gr.Button(t("ceval.start"), variant="primary", scale=1,
                              elem_id="ceval-start")
        status = gr.Markdown(elem_id="ceval-status")
        table = gr.Dataframe(pd.DataFrame(columns=[text("ceval.col.prompt")]),
                             label=t("ceval.table"), interactive=False,
                             wrap=True, max_height=480, elem_id="ceval-table")
        download = gr.File(label=t("ceval.csv"), interactive=False, visible=False,
                           elem_id="ceval-csv")

    with gr.Accordion(t("ab.heading"), open=False, elem_id="ab"):
        gr.Markdown(m("ab.explain"))
        with gr.Row(equal_height=True, elem_classes=["wb-actions"]):
            sources = gr.Dropdown(choices=[], multiselect=True, label=t("ab.sources"),
                                  scale=3, elem_id="ab-sources")
            ab_prompt = gr.Textbox(label=t("ab.prompt"), placeholder=t("ab.prompt.placeholder"),
                                   scale=3, elem_id="ab-prompt")
            new_pair = gr.Button(t("ab.new"), variant="primary", scale=1, elem_id="ab-new")
        ab_status = gr.Markdown(elem_id="ab-status")
        shown_prompt = gr.Markdown(elem_id="ab-shown-prompt")
        with gr.Row(equal_height=True):
            answer_a = gr.Textbox(label=t("ab.answer_a"), lines=5, interactive=False,
                                  elem_id="ab-answer-a")
            answer_b = gr.Textbox(label=t("ab.answer_b"), lines=5, interactive=False,
                                  elem_id="ab-answer-b")
        with gr.Row(elem_classes=["wb-actions"]):
            buttons = [gr.Button(t(f"ab.vote.{k}"), interactive=False, elem_id=f"ab-vote-{k}")
                       for k in VOTE_KEYS]
        reveal = gr.Markdown(elem_id="ab-reveal")
        board_note = gr.Markdown(elem_id="ab-board-note")
        board = gr.Dataframe(pd.DataFrame(columns=[text(k) for k in BOARD_COLUMNS]),
                             label=t("ab.board"),
                             interactive=False, elem_id="ab-board")
    pair = gr.State(None)  # the hidden sources live on the server until the vote

    widgets.on(start.click, run_prompt_set, [file, upload, typed, runs, limit, tokens],
               [status, table, download], status, concurrency_id="model",
               concurrency_limit=1, show_progress="hidden")
    widgets.on(new_pair.click, make_pair,
               [sources, ab_prompt, file, upload, typed, limit, tokens],
               [ab_status, shown_prompt, answer_a, answer_b, reveal, pair, *buttons],
               ab_status, concurrency_id="model", concurrency_limit=1,
               show_progress="hidden")
    for key, button in zip(VOTE_KEYS, buttons):
        widgets.on(button.click, _voter(key), [pair],
                   [reveal, pair, *buttons, board_note, board], reveal)
    return ChatEval(runs, start, status, sources, new_pair, ab_status, board, board_note)


def wire(ctx, tab: ChatEval, tab_item: gr.Tab) -> None:
    widgets.on(tab_item.select, refresh, [tab.runs, tab.sources],
               [tab.runs, tab.sources, tab.start, tab.new_pair, tab.status, tab.board_note,
                tab.board], tab.status, concurrency_limit=None)


def refresh(selected_runs, selected_sources, request: gr.Request | None = None):
    """The runs with an adapter; the sources (base + runs, default: base and the newest
    run); both buttons off, with the reason, while training; the leaderboard."""
    names = shared.run_names(shared.with_adapter)
    chosen = [r for r in selected_runs or [] if r in names] or names[:2]
    choices = [(t("ab.base_choice"), promptset.BASE), *((n, n) for n in names)]
    picked = [s for s in selected_sources or [] if s == promptset.BASE or s in names]
    picked = picked or [promptset.BASE, *names[:1]]
    training = shared.active_run_name()
    if training:
        reason = widgets.error_markup(f"{m('ceval.busy')}: {training}")
    else:
        reason = "" if names else m("chat.no_runs")
    note, frame = board_view(lang_of(request))
    return (gr.update(choices=names, value=chosen), gr.update(choices=choices, value=picked),
            gr.update(interactive=not training), gr.update(interactive=not training),
            reason, note, frame)


def _prompts(file, upload, typed_text, limit):
    limit = int(limit or 0)
    if limit < 0:
        raise WorkbenchError(f"{m('ceval.limit')}: {limit} is below 0 (0 = all prompts)")
    if typed_text and typed_text.strip():
        return promptset.typed(typed_text, limit or None)
    path = upload or file
    if not path:
        raise WorkbenchError(m("ceval.no_file"))
    return promptset.load(path, limit or None)


def _answering(work, head: str):
    """Run work(progress) in a thread; yield the status line while it runs (the last
    progress message, the time so far); return (work's result, seconds)."""
    messages: queue.Queue = queue.Queue()
    result: dict = {}

    def run():
        try:
            result["value"] = work(messages.put)
        except BaseException as exc:  # noqa: BLE001 - raised in the handler below
            result["error"] = exc
        finally:
            messages.put(None)

    started, line = time.monotonic(), ""
    threading.Thread(target=run, daemon=True).start()
    while True:
        try:
            msg = messages.get(timeout=1.0)
        except queue.Empty:
            yield shared.working(head, started, line)
            continue
        if msg is None:
            break
        line = msg
        yield shared.working(head, started, line)
    if "error" in result:
        raise result["error"]
    return result["value"], time.monotonic() - started


def _shaped(gen, shape):
    """Yield shape(line, first) for each status line of _answering; return its result."""
    first = True
    while True:
        try:
            line = next(gen)
        except StopIteration as done:
            return done.value
        yield shape(line, first)
        first = False


def _with_model(what: str, fn):
    """work(progress) for _answering: refuse while a heavy job runs, drop the chat model,
    hold the heavy lock while answering."""
    from workbench import chat
    from workbench.runs import lock
    shared.refuse_if_busy(what)

    def work(progress):
        chat.release()  # never two bases in memory
        with lock.acquire("eval", what):
            return fn(progress)
    return work


def _tokens(value) -> int:
    """The longest answer, checked: 1 to MAX_TOKENS tokens."""
    try:
        tokens = int(value)
    except (TypeError, ValueError):
        tokens = 0
    if not 1 <= tokens <= MAX_TOKENS:
        raise WorkbenchError(f"{m('ceval.tokens')}: {value} is out of range; allowed 1 to "
                             f"{MAX_TOKENS}")
    return tokens


def run_prompt_set(file, upload, typed_text, run_names, limit, tokens,
                   request: gr.Request | None = None):
    """Yield (status, table, download) while the prompt set is answered."""
    tokens = _tokens(tokens)
    items = _prompts(file, upload, typed_text, limit)
    if not run_names:
        raise WorkbenchError(m("ceval.no_runs"))
    work = _with_model("a prompt set", lambda say: evaluate.evaluate(
        list(run_names), items, save=False, perplexity=False, progress=say,
        max_new_tokens=tokens))
    head = f"{m('ceval.answering')} {len(items)} × {len(run_names) + 1}"
    report, seconds = yield from _shaped(
        _answering(work, head), lambda line, first: (line, gr.skip(), gr.skip()))
    headers, rows = promptset.answer_table(report)
    lang = lang_of(request)
    headers = [text(f"ceval.col.{h}", lang) if h in ("prompt", "reference") else h
               for h in headers]
    csv_path = _csv_file(promptset.table_csv(headers, rows))
    summary = "; ".join(f"{run}: {tuned}/{known} ({m('ab.base_choice')} {base}/{known})"
                        for run, tuned, base, known in promptset.match_summary(report))
    status = (f"✓ {len(rows)} {m('ceval.done')} {shared.duration(seconds)}"
              + (f" · {m('ceval.matches')}: {_md(summary)}" if summary else ""))
    yield (status, pd.DataFrame(rows, columns=headers),
           gr.update(value=str(csv_path), visible=True))


def _csv_file(csv_text: str) -> Path:
    """The CSV where Gradio serves downloads from (its own temp folder: the server serves
    no folder of WORKBENCH_HOME)."""
    upload = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    path = Path(upload) / "downloads" / "prompt-set" / f"prompt-set-{stamp}.csv"
    return fsio.atomic_write(path, "\ufeff" + csv_text)  # BOM: Excel reads it as UTF-8


def make_pair(sources, typed_prompt, file, upload, typed_text, limit, tokens):
    """Yield (status, shown prompt, answer A, answer B, reveal, pair, 4 vote buttons)."""
    from workbench.evaluate import PromptItem
    tokens = _tokens(tokens)
    if typed_prompt and typed_prompt.strip():
        item = PromptItem(typed_prompt.strip())
    else:
        item = random.choice(_prompts(file, upload, typed_text, limit))
    work = _with_model("a blind A/B pair", lambda say: promptset.blind_pair(
        list(sources or []), item, progress=say, max_new_tokens=tokens))
    shown = f"**{m('ab.prompt')}:** {_md(item.prompt)}"
    off = [gr.update(interactive=False)] * len(VOTE_KEYS)

    def shape(line, first):
        if first:  # the old pair goes away as soon as a new one is asked for
            return (line, shown, "", "", "", None, *off)
        return (line, *[gr.skip()] * (5 + len(VOTE_KEYS)))

    pair, seconds = yield from _shaped(_answering(work, m("ab.answering")), shape)
    on = [gr.update(interactive=True)] * len(VOTE_KEYS)
    yield (f"✓ {m('ab.ready')} ({shared.duration(seconds)})", shown, pair["answers"][0],
           pair["answers"][1], "", pair, *on)


def _md(value: str) -> str:
    import html
    return html.escape(" ".join(str(value).split()))


def _voter(key: str):
    def vote(pair, request: gr.Request | None = None):
        return cast_vote(key, pair, lang_of(request))
    vote.__name__ = f"vote_{key}"
    return vote


def cast_vote(key: str, pair: dict | None, lang: str = "en"):
    """Record the vote, reveal the sources, redraw the leaderboard; the pair is spent."""
    if not pair:
        raise WorkbenchError(m("ab.no_pair"))
    a, b = pair["sources"]
    votes.record(pair["prompt"], a, b, key, answers=tuple(pair["answers"]))
    note, frame = board_view(lang)
    off = [gr.update(interactive=False)] * len(VOTE_KEYS)
    reveal = (f"✓ {m('ab.recorded')}: {m(f'ab.vote.{key}')} · A = **{_md(a)}**, "
              f"B = **{_md(b)}**")
    return (reveal, None, *off, note, frame)


def board_view(lang: str = "en"):
    """(note, table) of the leaderboard from votes.jsonl, headers in the page language."""
    board = votes.leaderboard(votes.read())
    rows = [[r["source"], r["games"], r["wins"], r["losses"], r["ties"], r["both_bad"],
             f"{100 * r['win_rate']:.0f}%", f"{100 * r['low']:.0f}–{100 * r['high']:.0f}%",
             "" if r["bt"] is None else f"{r['bt']:.0f}"] for r in board["rows"]]
    note = f"{m('ab.count')}: {board['votes']}. {m('ab.rates')}"
    if not board["bt_shown"]:
        note += (f" {m('ab.bt_after')} {board['min_votes_for_bt']} {m('ab.votes')} "
                 f"({m('ab.more')} {board['min_votes_for_bt'] - board['votes']}).")
    return note, pd.DataFrame(rows, columns=[text(k, lang) for k in BOARD_COLUMNS])
