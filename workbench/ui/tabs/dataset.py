"""Dataset tab: pick a sample from data/ or upload a file; see the detected format, the
column mapping (role -> column dropdowns), placeholders, how many rows are kept and
dropped, a preview of the normalised rows, and errors with the file and line. Below:
the token analysis with the preset's tokenizer (histogram of row lengths coloured by
max_length, truncation report, quality checks, suggested max_length with buttons that set
the Training tab's max_length) and one row rendered exactly as the trainer sees it, trained
tokens highlighted. Widgets: every `data.*` Preset field.

The analysis (handlers in dataset_analysis.py) is one streaming pass, kept in a
gr.State, so moving max_length redraws the report without reading the file again. It runs
by itself after a load when it is fast (tokenizer ready, small file) and something it
depends on changed; otherwise the "Analyse tokens" button starts it, with progress.
Errors land in the tab as text.
Tests: tests/unit/test_ui_dataset.py, tests/browser/test_dataset_tab.py

Long because the mapping, placeholder and preview widgets are wired to each other; the
token analysis, which is separable, already lives in dataset_analysis.py.
"""

from __future__ import annotations

import hashlib
import html
import shutil
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from workbench import paths
from workbench.config import COLUMN_ROLES
from workbench.ui import widgets
from workbench.ui.i18n import HEADER_CLASS, m, t
from workbench.ui.tabs.dataset_analysis import (  # noqa: F401 - handlers wired here
    ANALYSIS_OUTPUTS, FITS, HIGHLIGHT_COLORS, OVER, analyse, auto_analyse, empty_histogram,
    error_html, histogram_frame, render, rerender, suggestion, view)

SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
PREVIEW_ROWS = 20
PREVIEW_CHARS = 300
# settings besides data.* that change the analysis: tokenizer, masking, dropping
ANALYSIS_KEYS = ["model.name_or_path", "model.trust_remote_code",
                 "train.completion_only_loss", "train.packing"]


@dataclass
class DatasetTab:
    path: gr.Dropdown
    upload: gr.File
    summary: gr.Markdown
    preview: gr.Dataframe
    inputs: list  # the data.* widgets the summary depends on, in `INSPECT_KEYS` order
    columns: gr.Textbox
    mapping: gr.Accordion
    roles: list  # one dropdown per COLUMN_ROLES entry
    placeholders: gr.Textbox
    placeholder_table: gr.Dataframe
    placeholder_apply: gr.Button
    analyse: gr.Button
    status: gr.Markdown
    histogram: gr.BarPlot
    report: gr.Markdown
    apply_p95: gr.Button
    apply_p99: gr.Button
    checks: gr.Markdown
    row: gr.Number
    show_row: gr.Button
    row_info: gr.Markdown
    rendered: gr.HighlightedText
    stats: gr.State
    notice: gr.Markdown | None = None  # errors of the upload and the small actions
    placeholder_row: gr.Row | None = None  # the table and its button, hidden when empty
    mix: gr.Textbox | None = None  # data.mix, and what it adds (mix_markdown)
    mix_info: gr.Markdown | None = None

    @property
    def load_outputs(self) -> list:
        return [self.summary, self.preview, *self.roles, self.columns, self.mapping,
                self.placeholder_table, self.row, self.placeholder_row]

    @property
    def view_outputs(self) -> list:
        return [self.histogram, self.report, self.checks]

    @property
    def analysis_outputs(self) -> list:
        return [self.stats, self.status, *self.view_outputs, self.row, self.row_info,
                self.rendered]


INSPECT_KEYS = ["data.path", "data.format", "data.columns", "data.placeholders",
                "data.max_samples", "data.seed"]


def uploads_dir() -> Path:
    path = paths.home() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def path_choices(current: str | None = None) -> list[tuple[str, str]]:
    """(label, value) for the dataset dropdown: the samples, then the user's uploads."""
    out = []
    for p in paths.training_samples():
        if p.suffix.lower() in SUFFIXES:
            out.append((f"{p.name} · {t('dataset.sample')}", f"data/{p.name}"))
    for p in sorted(uploads_dir().glob("*")):
        if p.suffix.lower() in SUFFIXES:
            out.append((f"{p.name} · {t('dataset.upload_folder')}", str(p)))
    if current and current not in [v for _, v in out]:
        out.append((current, current))
    return out


def build(ctx) -> DatasetTab:
    with gr.Row(equal_height=False):
        path = ctx.field("data.path", kind="Dropdown", choices=path_choices(),
                         allow_custom_value=True, scale=3)
        upload = gr.File(label=t("dataset.upload"), file_types=list(SUFFIXES),
                         type="filepath", file_count="single", scale=2, height=160,
                         elem_id="dataset-upload")
    notice = gr.Markdown(elem_id="dataset-notice")
    with gr.Row():
        fmt = ctx.field("data.format")
        eval_fraction = ctx.field("data.eval_fraction")
        max_samples = ctx.field("data.max_samples")
        seed = ctx.field("data.seed")
    with gr.Row(equal_height=False):
        mix = ctx.field("data.mix", scale=2)
        mix_info = gr.Markdown(elem_id="dataset-mix-info")
    with gr.Accordion(t("dataset.advanced"), open=False, elem_id="dataset-mapping") as mapping:
        gr.Markdown(m("dataset.mapping.explain"))
        roles = []
        for chunk in (COLUMN_ROLES[:5], COLUMN_ROLES[5:]):
            with gr.Row():
                for role in chunk:
                    roles.append(gr.Dropdown(
                        choices=[], value=None, label=t(f"dataset.role.{role}"),
                        allow_custom_value=True, min_width=120,
                        elem_id=f"dataset-role-{role}"))
        with gr.Row():
            # one way to map columns: the dropdowns above write this box, which shows the
            # mapping a preset saves (two editable ways to say one thing confused people)
            columns = ctx.field("data.columns", interactive=False,
                                info=t("dataset.columns.readonly"))
            placeholders = ctx.field("data.placeholders")
        # shown only when the data has {{...}} placeholders: empty, it was a phantom row
        with gr.Row(equal_height=False, visible=False,
                    elem_id="dataset-placeholder-row") as placeholder_row:
            placeholder_table = gr.Dataframe(
                pd.DataFrame(columns=["{{…}}", "="]), label=t("dataset.placeholder_table"),
                interactive=True, static_columns=[0], scale=3, max_height=220,
                elem_id="dataset-placeholder-table")
            placeholder_apply = gr.Button(t("dataset.placeholder_apply"), scale=1,
                                          size="md", elem_id="dataset-placeholder-apply")
    summary = gr.Markdown(elem_id="dataset-summary")
    preview = gr.Dataframe(preview_frame([]), label=t("dataset.preview"), interactive=False,
                           wrap=True, max_height=420, elem_id="dataset-preview",
                           elem_classes=[HEADER_CLASS])  # role names in the page's language

    gr.Markdown(f"### {m('dataset.tokens_heading')}")
    with gr.Row(elem_classes=["wb-actions"]):
        analyse = gr.Button(t("dataset.analyse"), variant="primary", size="md", scale=0,
                            min_width=200,
                            elem_id="dataset-analyse")
        status = gr.Markdown(m("dataset.not_analysed"), elem_id="dataset-status")
    with gr.Row(equal_height=False):
        histogram = gr.BarPlot(empty_histogram(), x="label", y="rows", color="fits",
                               color_map={FITS: "#2563eb", OVER: "#dc2626"},
                               label=t("dataset.histogram"),
                               # axis titles as m() markers: Gradio translates a plot's
                               # label, not its axes; the page script does (SVG text)
                               x_title=m("dataset.hist.x"), y_title=m("dataset.hist.y"),
                               color_title="max_length", x_label_angle=-45,
                               scale=3, elem_id="dataset-histogram")
        with gr.Column(scale=2):
            report = gr.Markdown(elem_id="dataset-report")
            with gr.Row():
                apply_p95 = gr.Button(t("dataset.apply_p95"), size="sm",
                                      elem_id="dataset-apply-p95")
                apply_p99 = gr.Button(t("dataset.apply_p99"), size="sm",
                                      elem_id="dataset-apply-p99")
    checks = gr.Markdown(elem_id="dataset-checks")

    gr.Markdown(f"### {m('dataset.render_heading')}")
    with gr.Row(elem_classes=["wb-actions"]):
        row = gr.Number(value=1, label=t("dataset.row"), info=t("dataset.row.help"),
                        precision=0, minimum=1, scale=0, min_width=220, elem_id="dataset-row")
        show_row = gr.Button(t("dataset.show_row"), scale=0, min_width=160,
                             elem_id="dataset-show-row")
        row_info = gr.Markdown(elem_id="dataset-row-info")
    rendered = gr.HighlightedText(label=t("dataset.rendered"), color_map=HIGHLIGHT_COLORS,
                                  show_legend=True, show_inline_category=False,
                                  combine_adjacent=False, elem_id="dataset-rendered")
    stats = gr.State(None)
    ctx.data_stats, ctx.data_status = stats, status
    tab = DatasetTab(path, upload, summary, preview,
                     [path, fmt, columns, placeholders, max_samples, seed], columns, mapping,
                     roles, placeholders, placeholder_table, placeholder_apply, analyse,
                     status, histogram, report, apply_p95, apply_p99, checks, row, show_row,
                     row_info, rendered, stats, notice, placeholder_row, mix, mix_info)
    del eval_fraction  # a Preset field shown here; nothing in the tab depends on it

    widgets.on(upload.upload, on_upload, [upload], [path], notice)
    widgets.on([box.input for box in roles], mapping_text, [*roles, columns], [columns],
               notice)
    widgets.on(placeholder_apply.click, apply_placeholders, [placeholder_table, placeholders],
               [placeholders], notice)
    return tab


def wire(ctx, tab: DatasetTab, demo: gr.Blocks) -> None:
    """Events that read other tabs' widgets (the model, train.max_length): called by
    app.py once every tab exists."""
    every = ctx.field_list()
    max_length = ctx.fields["train.max_length"]
    private = {"api_visibility": "private"}
    analysis = dict(fn=analyse, inputs=every, outputs=tab.analysis_outputs, **private,
                    concurrency_id="dataset-analysis", concurrency_limit=1)
    auto = dict(analysis, fn=auto_analyse, inputs=[tab.stats, *every])
    data_triggers = [c.change for c in tab.inputs]
    # one listener for every data widget: a preset load changes six at once
    gr.on([demo.load, *data_triggers], on_data, tab.inputs, tab.load_outputs,
          trigger_mode="always_last", concurrency_limit=4, **private).then(**auto)
    gr.on([ctx.fields[k].change for k in ANALYSIS_KEYS], **auto, trigger_mode="always_last")
    tab.analyse.click(**analysis)
    mix_inputs = [*tab.inputs, tab.mix]
    gr.on([demo.load, *[c.change for c in mix_inputs]], mix_markdown, mix_inputs,
          [tab.mix_info], trigger_mode="always_last", **private)
    max_length.change(view, [tab.stats, max_length], tab.view_outputs, **private).then(
        rerender, [tab.row, tab.rendered, *every], [tab.row_info, tab.rendered],
        concurrency_id="dataset-analysis", concurrency_limit=1, **private)
    for button, q in ((tab.apply_p95, "p95"), (tab.apply_p99, "p99")):
        widgets.on(button.click, suggestion, [tab.stats, gr.State(q)], [max_length],
                   tab.notice)
    gr.on([tab.show_row.click, tab.row.submit], render, [tab.row, *every],
          [tab.row_info, tab.rendered], concurrency_id="dataset-analysis",
          concurrency_limit=1, **private)


def on_upload(file_path: str | None):
    """Keep the uploaded file in WORKBENCH_HOME/uploads (the training process reads it
    later; Gradio's temp copy may vanish) and select it."""
    if not file_path:
        return gr.skip()
    src = Path(file_path)
    if src.suffix.lower() not in SUFFIXES:
        from workbench.data.files import unsupported_type
        from workbench.errors import DataError
        raise DataError(unsupported_type(src.name, src.suffix))
    dest = uploads_dir() / src.name
    if dest.exists() and _digest(dest) != _digest(src):
        dest = dest.with_name(f"{src.stem}-{_digest(src)[:8]}{src.suffix}")
    if not dest.exists():
        shutil.copyfile(src, dest)
    return gr.update(choices=path_choices(str(dest)), value=str(dest))


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- load: format, mapping, preview ------------------------------------------------------

def _data_cfg(path, fmt, columns_text, placeholders_text, max_samples, seed):
    return widgets.to_section("data", {
        "path": path or "", "format": fmt, "columns": columns_text,
        "placeholders": placeholders_text, "max_samples": max_samples, "seed": seed})


def inspect(path, fmt, columns_text, placeholders_text, max_samples, seed):
    """(summary Markdown, preview DataFrame). A broken file is shown here, in the tab,
    with its file and line, rather than as a passing toast."""
    summary, preview, _, _ = _inspect(path, fmt, columns_text, placeholders_text,
                                      max_samples, seed)
    return summary, preview


def _inspect(path, fmt, columns_text, placeholders_text, max_samples, seed):
    """(summary, preview, info or None, the data config or None)."""
    from workbench import data
    cfg = None
    try:
        cfg = _data_cfg(path, fmt, columns_text, placeholders_text, max_samples, seed)
        info = data.inspect(cfg, preview=PREVIEW_ROWS)
    except Exception as exc:  # noqa: BLE001 - shown in the tab, page keeps working
        return error_html(exc), preview_frame([]), None, cfg
    return summary_markdown(info), preview_frame(info.get("preview", [])), info, cfg


def on_data(path, fmt, columns_text, placeholders_text, max_samples, seed):
    """After any data.* change: summary, preview, the role dropdowns (choices = the
    file's columns, values = the mapping in effect), data.columns (a suggested mapping,
    only when detection fails and none is set yet), the mapping accordion (opened when
    the mapping needs the user), the placeholder table, the row box, and whether the
    placeholder table is shown (only when there are placeholders); the event chained after
    it clears or redoes the analysis."""
    from workbench import data
    summary, preview, info, cfg = _inspect(path, fmt, columns_text, placeholders_text,
                                           max_samples, seed)
    mapping = dict(cfg.columns or {}) if cfg is not None else {}
    columns_update, open_mapping = gr.skip(), gr.skip()
    if info is None:
        cols = raw_columns(cfg) if cfg is not None else []
        suggested = {r: c for r, c in data.suggest_mapping(cols).items() if r != c}
        if cols:
            open_mapping = gr.update(open=True)
        if suggested and not mapping and cfg is not None:
            # detection failed and the names are guessable: apply the guess (the change
            # event inspects again) and say so; the dropdowns show it for correction
            mapping = suggested
            columns_update = widgets.dict_to_text(suggested)
            summary += f"\n\n{m('dataset.mapping.suggested')}: `{html.escape(columns_update)}`"
        effective = {r: mapping.get(r) for r in COLUMN_ROLES}
    else:
        cols = list(info.get("columns", []))
        effective = effective_mapping(info["format"], mapping, cols)
    role_updates = [gr.update(choices=[""] + [str(c) for c in cols], value=effective[r] or "")
                    for r in COLUMN_ROLES]
    names = list((info or {}).get("unfilled_placeholders") or [])
    filled = dict(cfg.placeholders or {}) if cfg is not None else {}
    if names:
        open_mapping = gr.update(open=True)
    table = placeholder_frame(names, filled)
    rows = (info or {}).get("preview_rows") or [1]
    return (summary, preview, *role_updates, columns_update, open_mapping, table,
            gr.update(value=rows[0]), gr.Row(visible=bool(len(table))))


def mix_markdown(path, fmt, columns_text, placeholders_text, max_samples, seed, mix_text):
    """What data.mix adds (workbench/data/mix.py): one line per entry, '+ 20 general rows
    from general_mix.jsonl (fraction 0.5)'; empty without a mix; a problem as an error."""
    from workbench import data
    from workbench.data import mix
    try:
        cfg = _data_cfg(path, fmt, columns_text, placeholders_text, max_samples, seed)
        cfg.mix = widgets.to_section("data", {"mix": mix_text}).mix
        if not cfg.mix:
            return ""
        info = data.inspect(cfg, preview=0)
        rows = min(info["rows"], cfg.max_samples) if cfg.max_samples else info["rows"]
        parts = mix.load(cfg, rows, info["format"])
    except Exception as exc:  # noqa: BLE001 - shown in the tab, page keeps working
        return error_html(exc)
    lines = []
    for p in parts:
        repeat = f"; {m('dataset.mix.repeat')}" if len(p.rows) > p.available else ""
        lines.append(f"+ **{len(p.rows)}** {m('dataset.mix.rows_from')} "
                     f"`{html.escape(p.name)}` ({m('dataset.mix.fraction')} "
                     f"{p.fraction:g}{repeat})")
    return "\n\n".join(lines) + f"\n\n{m('dataset.mix.explain')}"


def effective_mapping(fmt: str, mapping: dict, columns: list) -> dict:
    """{role: column or None}: for the roles of the detected format, the column that is
    read (the mapped one, or the role's own name when present); other roles as mapped."""
    from workbench.data import FORMATS
    req, opt = FORMATS.get(fmt, ([], []))
    out = {}
    for role in COLUMN_ROLES:
        col = mapping.get(role, role)
        if role in req + opt:
            out[role] = col if col in columns else None
        else:
            out[role] = mapping.get(role)
    return out


def raw_columns(cfg, rows: int = 20) -> list[str]:
    """The column names of the first rows of each file, read without detecting a format
    (for the mapping dropdowns when detection fails)."""
    from workbench.data.files import read_rows, resolve_files
    cols: list[str] = []
    try:
        for name, file in resolve_files(cfg.path):
            for i, (_, raw) in enumerate(read_rows(file, name)):
                if i >= rows:
                    break
                if isinstance(raw, dict):
                    cols.extend(str(k) for k in raw if str(k) not in cols)
    except Exception:  # noqa: BLE001 - the summary already names the problem
        pass
    return cols


def mapping_text(*values) -> str:
    """The role dropdowns (COLUMN_ROLES order) and the current data.columns text -> the
    new data.columns text; a role left empty or mapped to its own name is not stored."""
    *chosen, current = values
    try:
        mapping = widgets.text_to_dict(current, "data.columns")
    except Exception:  # noqa: BLE001 - the dropdowns replace a broken text
        mapping = {}
    for role, col in zip(COLUMN_ROLES, chosen):
        col = (col or "").strip() if isinstance(col, str) else col
        if col and col != role:
            mapping[role] = col
        else:
            mapping.pop(role, None)
    return widgets.dict_to_text(mapping)


def placeholder_frame(names: list[str], filled: dict) -> pd.DataFrame:
    rows = [{"{{…}}": str(k), "=": str(v)} for k, v in filled.items()]
    rows += [{"{{…}}": n, "=": ""} for n in names if n not in filled]
    return pd.DataFrame(rows, columns=["{{…}}", "="])


def apply_placeholders(table, current: str) -> str:
    """The placeholder table -> data.placeholders text; rows with no value are left out
    (an empty value would blank the placeholder in every row)."""
    mapping = widgets.text_to_dict(current, "data.placeholders")
    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table or [])
    for rec in frame.itertuples(index=False):
        name, value = (str(x).strip() if x is not None else "" for x in (rec[0], rec[1]))
        name = name.strip("{} ")
        if name and value and value != "nan":
            mapping[name] = value
    return widgets.dict_to_text(mapping)


def summary_markdown(info: dict) -> str:
    rows = info.get("rows", 0)
    dropped = info.get("dropped", 0)
    reasons = ", ".join(f"{html.escape(str(k))}: {v}"
                        for k, v in (info.get("drop_reasons") or {}).items())
    files = ", ".join(html.escape(widgets.clean_message(f)) for f in info.get("files", []))
    cols = ", ".join(f"`{html.escape(str(c))}`" for c in info.get("columns", []))
    lines = [
        f"**{m('dataset.format')}:** `{html.escape(str(info.get('format')))}` · "
        f"**{rows}** {m('dataset.kept')} · **{dropped}** {m('dataset.dropped')}"
        + (f" ({reasons})" if reasons else ""),
        f"{m('dataset.files')}: {files} · {m('dataset.columns_found')}: {cols}",
    ]
    if info.get("few_rows"):
        lines.append(f"⚠ **{info['few_rows']}** {m('dataset.few_rows')}")
    unfilled = info.get("unfilled_placeholders") or []
    if unfilled:
        lines.append("⚠ " + ", ".join(html.escape("{{" + u + "}}") for u in unfilled)
                     + f" → {m('data.placeholders')}")
    return "\n\n".join(lines)


def preview_frame(rows: list[dict]) -> pd.DataFrame:
    """Normalised rows as a table: one column per role for conversations, text otherwise."""
    records = []
    for n, row in enumerate(rows, 1):
        if "text" in row:
            records.append({"#": n, "text": _short(row["text"])})
            continue
        rec: dict = {"#": n}
        for msg in row.get("messages", []):
            role = msg.get("role", "?")
            key = role if role not in rec else f"{role} ({sum(k.startswith(role) for k in rec) + 1})"
            rec[key] = _short(msg.get("content", ""))
        records.append(rec)
    if not records:  # real headers: an empty gr.Dataframe is headed "1 2 3"
        return pd.DataFrame(columns=["#", "user", "assistant"])
    return pd.DataFrame.from_records(records).fillna("")


def _short(text) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"
