"""The Dataset tab's token analysis and rendered row (handlers and the text they show);
the tab's layout and wiring are in dataset.py.

`analyse` makes one streaming pass with the preset's tokenizer (workbench.inspect_data /
datastats) and returns a DataStats kept in a gr.State; `view` redraws the histogram,
truncation report and checks at another max_length from it; `render` shows one row as the
trainer sees it (gr.HighlightedText spans: trained / masked / truncated).
Every handler takes every Preset field's widget value (`*values`, field_keys() order) and
returns errors as text for the tab, never raises.
Tests: tests/unit/test_ui_dataset.py
"""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from workbench.ui import widgets
from workbench.ui.i18n import field_keys, m

AUTO_ANALYSE_BYTES = 20 << 20  # analyse by itself after a load up to this size
FITS, OVER = "≤ max_length", "> max_length"
HIGHLIGHT_COLORS = {"trained": "green", "masked": "gray", "truncated": "red"}
CHECKS = ["duplicates", "empty_answers", "placeholders", "answer_exceeds_max_length"]
ANALYSIS_OUTPUTS = 8  # len(DatasetTab.analysis_outputs)


def error_html(exc: BaseException) -> str:
    return f"<div class='wb-error'>⚠ {widgets.error_text(exc)}</div>"


# -- token analysis ----------------------------------------------------------------------

def _preset(values):
    return widgets.to_preset(list(values), field_keys())


def tokenizer_ready(preset) -> bool:
    """True when loading the preset's tokenizer is quick: already loaded, a local model
    folder, or an embedded/.gguf model imported before (no 30 s import)."""
    from workbench import models
    from workbench.train import preview
    name = preset.model.name_or_path
    return (preview.tokenizer_loaded(name, preset.model.trust_remote_code)
            or models.is_ready(name))


def analysis_key(preset) -> str:
    """What an analysis depends on: the data settings and files (size, time), the
    tokenizer and the masking settings. The same key: the kept result still holds."""
    import json
    from workbench.data.files import resolve_files
    files = []
    for name, path in resolve_files(preset.data.path):
        st = path.stat()
        files.append([name, st.st_size, st.st_mtime_ns])
    train = preset.train
    return json.dumps([preset.to_dict()["data"], files, preset.model.name_or_path,
                       preset.model.trust_remote_code, train.completion_only_loss,
                       train.packing], sort_keys=True, default=str)


def auto_analyse(stats, *values, progress=gr.Progress()):
    """After a load or a model change: keep the analysis when nothing it depends on
    changed; analyse again when that is quick; otherwise clear it and leave the button
    to the user."""
    from workbench.data.files import resolve_files
    skip = [gr.skip()] * ANALYSIS_OUTPUTS
    try:
        preset = _preset(values)
        key = analysis_key(preset)
    except Exception:  # noqa: BLE001 - the summary above already shows the problem
        return (None, m("dataset.not_analysed"), empty_histogram(), "", "", *skip[:3])
    if stats is not None and getattr(stats, "wb_key", None) == key:
        return skip
    size = sum(p.stat().st_size for _, p in resolve_files(preset.data.path))
    if size <= AUTO_ANALYSE_BYTES and tokenizer_ready(preset):
        return analyse(*values, progress=progress)
    return (None, m("dataset.not_analysed"), empty_histogram(), "", "", *skip[:3])


def analyse(*values, progress=gr.Progress()):
    """One pass over the data with the preset's tokenizer -> (stats, status, histogram,
    report, checks, row, row info, rendered row). Errors go to the status line."""
    import time
    from workbench.train import preview as inspect_data
    started = time.monotonic()
    try:
        preset = _preset(values)

        def tokenizer():
            progress(None, desc=m("dataset.loading_tokenizer"))
            return inspect_data.tokenizer_for(preset)

        def on_bytes(done, total):
            progress(done / total if total else 1.0, desc=m("dataset.reading"))
        progress(0.0, desc=m("dataset.reading"))
        key = analysis_key(preset)
        stats = inspect_data.stats(preset, tokenizer, on_bytes, preview=1)
        stats.wb_key = key
        first = (stats.info.get("preview_rows") or [1])[0]
        info, highlights = _render(preset, first)
    except Exception as exc:  # noqa: BLE001 - shown in the tab, page keeps working
        return (None, error_html(exc), empty_histogram(), "", "", gr.skip(), "", None)
    status = (f"✓ {m('dataset.analysed')} {stats.info.get('rows', 0)} {m('dataset.rows')} "
              f"· {time.monotonic() - started:.1f} s")
    return (stats, status, *view(stats, preset.train.max_length), gr.update(value=first),
            info, highlights)


def view(stats, max_length):
    """(histogram, truncation report, checks table) at max_length, from the kept pass."""
    if stats is None:
        return empty_histogram(), "", ""
    try:
        L = int(max_length or stats.max_length)
        summary = stats.summary(L)
        return (histogram_update(stats, L), report_markdown(summary),
                checks_markdown(summary))
    except Exception as exc:  # noqa: BLE001 - e.g. an emptied max_length box
        return gr.skip(), error_html(exc), gr.skip()


def empty_histogram() -> pd.DataFrame:
    # both colour series from the start: Gradio draws no series its first data lacked;
    # labels as wide as real ones, since the first data sets the room under the axis
    return pd.DataFrame({"label": ["   0–  15", "  16–  31"], "rows": [0, 0],
                         "fits": [FITS, OVER]})


def histogram_frame(stats, max_length: int) -> pd.DataFrame:
    """DataStats.histogram with a `fits` column naming the colour of each bar, and labels
    padded with spaces to one width, so the plot's alphabetical order is token order."""
    frame = stats.histogram(max_length)
    frame["fits"] = [OVER if o else FITS for o in frame["over_max_length"]]
    width = len(str(int(frame["to"].max())))
    frame["label"] = [_pad(label, width) for label in frame["label"]]
    return frame


def _pad(label: str, width: int) -> str:
    return "–".join(part.rjust(width) if part[:1].isdigit() else part
                    for part in label.split("–"))


def histogram_update(stats, max_length: int) -> pd.DataFrame:
    # the value alone: Gradio 6 drops a plot's new value when other props change with it
    return histogram_frame(stats, max_length)


def report_markdown(s: dict) -> str:
    tok = s["tokens"]
    L = s["max_length"]
    loss = m("dataset.loss_answers") if s["loss_on"] == "answers" else m("dataset.loss_all")
    lines = [
        f"**{m('dataset.tokens_per_row')}:** min {tok['min']} · median {tok['median']:g} · "
        f"p95 {tok['p95']} · max {tok['max']} · {s['rows_used']} {m('dataset.rows')}, "
        f"{s['sequences']} {m('dataset.sequences')} · {loss}",
        "", f"**{m('dataset.at_max_length')} {L}:**", "",
        f"- {_count(s['truncated_rows'])} {m('dataset.truncated_rows')}"
        + _examples(s.get("truncated_examples")),
        f"- {_count(s['trained_tokens_lost'])} / {s['trained_tokens']} "
        f"{m('dataset.tokens_lost')}",
        f"- {_count(s['fully_masked_rows'])} {m('dataset.fully_masked')}"
        + _examples(s.get("fully_masked_examples")),
    ]
    sug = s.get("suggested_max_length") or {}
    lines.append("")
    if sug.get("p95"):
        lines.append(f"**{m('dataset.suggested')}:** {sug['p95']} ({m('dataset.keeps')} 95%) "
                     f"· {sug['p99']} ({m('dataset.keeps')} 99%)")
    if s.get("packing"):
        lines.append(f"\n\nℹ {m('dataset.packing_note')}")
    return "\n".join(lines)


def _count(n: int) -> str:
    return f"**{n}**" if not n else f"⚠ **{n}**"


def _examples(rows) -> str:
    if not rows:
        return ""
    return f" ({m('dataset.rows_e_g')} {', '.join(str(r) for r in rows)})"


def checks_markdown(s: dict) -> str:
    """The quality checks as a table: what, how many rows, example row numbers."""
    head = (f"| {m('dataset.check')} | {m('dataset.count')} | {m('dataset.example_rows')} |\n"
            "|---|---:|---|")
    lines = [f"**{m('dataset.checks')}**", "", head]
    for name in CHECKS:
        c = s["checks"].get(name) or {"count": 0, "examples": []}
        mark = "⚠" if c["count"] else "✓"
        examples = ", ".join(str(r) for r in c.get("examples", [])) or "–"
        extra = ""
        if name == "placeholders" and c.get("names"):
            extra = " " + ", ".join(html.escape("{{" + n + "}}") for n in c["names"])
        lines.append(f"| {mark} {m('dataset.check.' + name)}{extra} | {c['count']} | "
                     f"{examples} |")
    return "\n".join(lines)


def suggestion(stats, which: str):
    """The suggested max_length (p95 or p99) for the Training tab's widget."""
    if stats is None:
        raise gr.Error(m("dataset.analyse_first"))
    value = stats.summary()["suggested_max_length"][which]
    if not value:
        raise gr.Error(m("dataset.analyse_first"))
    return value


# -- one row as the trainer sees it ------------------------------------------------------

def render(row, *values, progress=gr.Progress()):
    """(row info Markdown, HighlightedText spans) for row number `row` (1-based)."""
    from workbench.train import preview as inspect_data
    try:
        preset = _preset(values)
        n = int(row or 1)
        if not inspect_data.tokenizer_loaded(preset.model.name_or_path,
                                             preset.model.trust_remote_code):
            progress(None, desc=m("dataset.loading_tokenizer"))
        return _render(preset, n)
    except Exception as exc:  # noqa: BLE001 - shown in the tab, page keeps working
        return error_html(exc), None


def rerender(row, shown, *values):
    """After a max_length change: the row on show again, cut at the new length (nothing
    when no row is shown yet, so no model is loaded for it)."""
    if not shown:
        return gr.skip(), gr.skip()
    return render(row, *values)


def _render(preset, n: int):
    from workbench.train import preview as inspect_data
    r = inspect_data.render_row(preset, n)
    spans = inspect_data.highlighted(r)
    loss = m("dataset.loss_answers") if r["loss_on"] == "answers" else m("dataset.loss_all")
    where = html.escape(widgets.clean_message(r["where"]))
    parts = [f"**{m('dataset.row')} {r['row']}** · {where}",
             f"{r['length']} {m('dataset.tokens')} · {r['trained_tokens']} "
             f"{m('dataset.trained_tokens')} · {loss}"]
    if r["truncated"]:
        parts.append(f"⚠ {m('dataset.row_truncated')} {r['max_length']}: "
                     f"{r['trained_tokens_lost']} {m('dataset.tokens_lost')}")
    if r["dropped"]:
        parts.append(f"⚠ {m('dataset.row_dropped')}")
    parts += [f"ℹ {html.escape(note)}" for note in r["notes"]]
    return " · ".join(parts[:2]) + ("\n\n" + "\n\n".join(parts[2:]) if parts[2:] else ""), spans
