"""Dataset tab: pick a sample from data/ or upload a file; see the detected format, how
many rows are kept and dropped, a preview of the normalised rows, and errors with the file
and line. Widgets: every `data.*` Preset field. (Issue 4 adds the mapping controls, the
rendered view and token statistics below the preview.)"""

from __future__ import annotations

import hashlib
import html
import shutil
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from workbench import paths
from workbench.ui import widgets
from workbench.ui.i18n import m, t

SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
PREVIEW_ROWS = 20
PREVIEW_CHARS = 300


@dataclass
class DatasetTab:
    path: gr.Dropdown
    upload: gr.File
    summary: gr.Markdown
    preview: gr.Dataframe
    inputs: list  # the data.* widgets the summary depends on, in `INSPECT_KEYS` order


INSPECT_KEYS = ["data.path", "data.format", "data.columns", "data.placeholders",
                "data.max_samples", "data.seed"]


def uploads_dir() -> Path:
    path = paths.home() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def path_choices(current: str | None = None) -> list[tuple[str, str]]:
    """(label, value) for the dataset dropdown: the samples, then the user's uploads."""
    out = []
    for p in sorted(paths.samples_dir().glob("*")):
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
    with gr.Row():
        fmt = ctx.field("data.format")
        eval_fraction = ctx.field("data.eval_fraction")
        max_samples = ctx.field("data.max_samples")
        seed = ctx.field("data.seed")
    with gr.Accordion(t("dataset.advanced"), open=False):
        with gr.Row():
            columns = ctx.field("data.columns")
            placeholders = ctx.field("data.placeholders")
    summary = gr.Markdown(elem_id="dataset-summary")
    preview = gr.Dataframe(label=t("dataset.preview"), interactive=False, wrap=True,
                           max_height=420, elem_id="dataset-preview")
    tab = DatasetTab(path, upload, summary, preview,
                     [path, fmt, columns, placeholders, max_samples, seed])

    upload.upload(widgets.guard(on_upload), [upload], [path], api_visibility="private")
    for comp in tab.inputs:
        comp.change(inspect, tab.inputs, [summary, preview], api_visibility="private",
                    concurrency_limit=4)
    return tab


def on_upload(file_path: str | None):
    """Keep the uploaded file in WORKBENCH_HOME/uploads (the training process reads it
    later; Gradio's temp copy may vanish) and select it."""
    if not file_path:
        return gr.skip()
    src = Path(file_path)
    if src.suffix.lower() not in SUFFIXES:
        from workbench.errors import DataError
        raise DataError(f"{src.name}: unsupported file type; use .json, .jsonl, .csv or "
                        ".parquet")
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


def inspect(path, fmt, columns_text, placeholders_text, max_samples, seed):
    """(summary Markdown, preview DataFrame). A broken file is shown here, in the tab,
    with its file and line, rather than as a passing toast."""
    from workbench import data
    try:
        cfg = widgets.to_section("data", {
            "path": path or "", "format": fmt, "columns": columns_text,
            "placeholders": placeholders_text, "max_samples": max_samples, "seed": seed})
        info = data.inspect(cfg, preview=PREVIEW_ROWS)
    except Exception as exc:  # noqa: BLE001 - shown in the tab, page keeps working
        return (f"<div class='wb-error'>⚠ {widgets.error_text(exc)}</div>",
                pd.DataFrame())
    return summary_markdown(info), preview_frame(info.get("preview", []))


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
    return pd.DataFrame.from_records(records).fillna("") if records else pd.DataFrame()


def _short(text) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"
