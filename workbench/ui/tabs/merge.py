"""Merge tab: pick a completed run; "Merge" runs `launch.py merge RUN` as a child process
(runs.jobs.spawn: it loads the full-precision base, never inside the web server), which
folds the adapter into an unquantised copy of the base and verifies the merged model
against base + adapter (max logit difference); the tab shows the child's progress lines,
then the result (read from its result file) and the output folder. Refused while a
training job is running.

Below it (issue 6):
- "Export GGUF" (F16 / Q8_0 / both) runs `launch.py export RUN --type T` as a child
  process the same way, shows elapsed time and the child's last message (from
  <run>/export/export.log) while it works, then the verification report it wrote to its
  result file (✓ / ✗ with the numbers), the output folder and the Ollama / llama.cpp
  commands. The last report of a run (`<run>/export/export_report.json`) is shown again
  when the run is picked.
- "What the adapter learned": `workbench.export.spectrum` (SVD of the small LoRA factors,
  base weights read one tensor at a time: cheap, so it runs in the server) drawn as the
  effective rank per layer and module against r, the update's size relative to the base
  weight, a one-line verdict and the full table.

Long because one tab holds three tools (merge, GGUF export, adapter spectrum), each with
the Markdown or plot frames it shows; apart, one page would be spread over three files.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from workbench import paths
from workbench.ui import shared, widgets
from workbench.ui.i18n import m, t

EXPORT_TYPES = [("F16", "f16"), ("Q8_0", "q8_0"), ("F16 + Q8_0", "both")]
POLL_SECONDS = 1.0
# The Llama module names, always in every plot frame: Gradio 6.31 draws no colour series
# that was missing from a plot's first data, so the series set is fixed up front.
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
R_SERIES = "r"
VERDICT_KEYS = {"too_large": "spec.too_large", "too_small": "spec.too_small",
                "ok": "spec.ok", "untrained": "spec.untrained", "empty": "spec.untrained"}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class MergeTab:
    run: gr.Dropdown
    merge: gr.Button
    result: gr.Markdown
    export_type: gr.Radio
    export: gr.Button
    export_status: gr.Markdown
    export_result: gr.Markdown
    verdict: gr.Markdown
    rank_plot: gr.LinePlot
    norm_plot: gr.LinePlot
    table: gr.Markdown
    downloads_button: gr.Button | None = None
    downloads: gr.File | None = None
    downloads_note: gr.Markdown | None = None

    @property
    def detail_outputs(self) -> list:
        return [self.export_status, self.export_result, self.verdict, self.rank_plot,
                self.norm_plot, self.table]


def build(ctx) -> MergeTab:
    gr.Markdown(m("merge.explain"))
    with gr.Row(elem_classes=["wb-actions"]):
        run = gr.Dropdown(label=t("merge.run"), choices=[], scale=3, elem_id="merge-run")
        button = gr.Button(t("merge.button"), variant="primary", scale=1,
                           elem_id="merge-button")
    result = gr.Markdown(elem_id="merge-result")

    gr.Markdown(f"### {m('export.heading')}\n{m('export.explain')}")
    with gr.Row(elem_classes=["wb-actions"]):
        export_type = gr.Radio(EXPORT_TYPES, value="both", label=t("export.type"),
                               info=t("export.type.help"), scale=3, elem_id="export-type")
        export_btn = gr.Button(t("export.button"), variant="primary", scale=1,
                               elem_id="export-button")
    export_status = gr.Markdown(elem_id="export-status")
    export_result = gr.Markdown(elem_id="export-result")
    with gr.Row(elem_classes=["wb-actions"]):
        downloads_button = gr.Button(t("download.button"), scale=1, min_width=220,
                                     elem_id="download-button")
        downloads = gr.File(label=t("download.files"), file_count="multiple",
                            interactive=False, scale=3, elem_id="download-files")
    downloads_note = gr.Markdown(elem_id="download-note")

    gr.Markdown(f"### {m('spec.heading')}\n{m('spec.explain')}")
    verdict = gr.Markdown(elem_id="spec-verdict")
    with gr.Row(equal_height=True):
        colors = _color_map()
        rank_plot = gr.LinePlot(None, x="layer", y="effective_rank", color="module",
                                color_map=colors, label=t("spec.rank_plot"),
                                x_title="layer", y_title="effective rank", color_title="",
                                elem_id="spec-rank-plot")
        norm_plot = gr.LinePlot(None, x="layer", y="relative_norm_pct", color="module",
                                color_map=colors, label=t("spec.norm_plot"),
                                x_title="layer", y_title="|ΔW| / |W| (%)", color_title="",
                                elem_id="spec-norm-plot")
    with gr.Accordion(t("spec.table"), open=False):
        table = gr.Markdown(max_height=420, elem_id="spec-table")

    tab = MergeTab(run, button, result, export_type, export_btn, export_status,
                   export_result, verdict, rank_plot, norm_plot, table, downloads_button,
                   downloads, downloads_note)
    widgets.on(downloads_button.click, prepare_downloads, [run], [downloads, downloads_note],
               downloads_note, concurrency_id="model", concurrency_limit=1)
    # another run chosen: nothing of the previous run's (its files, export, verdict and
    # plots) stays on the page while this run's are read; one chain, so the clearing
    # never lands after them
    cleared = run.input(
        lambda: (None, "", "", m("spec.reading"), None, None, ""), None,
        [downloads, downloads_note, export_result, verdict, rank_plot, norm_plot, table],
        api_visibility="private", show_progress="hidden", queue=False)
    shown = widgets.on(cleared, show_report, [run], [result], result)
    widgets.on(shown, details, [run], tab.detail_outputs, export_status)
    widgets.on(button.click, merge_run, [run], [result], result, concurrency_id="model",
               concurrency_limit=1)
    widgets.on(export_btn.click, export_run, [run, export_type],
               [export_status, export_result], export_status, concurrency_id="model",
               concurrency_limit=1)
    return tab


def wire(ctx, tab: MergeTab, tab_item: gr.Tab) -> None:
    shown = widgets.on(tab_item.select, refresh, [tab.run], [tab.run, tab.result],
                       tab.result, concurrency_limit=None)
    widgets.on(shown, details, [tab.run], tab.detail_outputs, tab.export_status)


def _color_map() -> dict:
    palette = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#d97706", "#0891b2", "#db2777"]
    return {**dict(zip(MODULES, palette)), R_SERIES: "#6b7280"}


def refresh(selected):
    """Completed runs with an adapter, newest first; keep the choice if it still exists."""
    names = shared.run_names(shared.completed_with_adapter)
    value = selected if selected in names else (names[0] if names else None)
    return gr.update(choices=names, value=value), show_report(value)


def show_report(name) -> str:
    from workbench.export import merge
    if not name:
        return m("merge.none")
    rep = merge.report(shared.find_run(name))
    return report_markdown(rep) if rep else ""


def merge_run(name):
    """Merge in a child process (`launch.py merge RUN` through jobs.spawn: it loads the
    full-precision base, which the web server never holds); yields its progress lines,
    then the verification report it wrote to its result file."""
    shared.refuse_if_busy("merging")
    run = shared.find_run(name)
    started = time.monotonic()
    yield shared.working(m("merge.button"), started)
    with shared.job("merge", ["merge", str(run)]) as child:
        for line in shared.job_lines(child):
            yield shared.working(m("merge.button"), started, line)
        rep = shared.job_result(child)
    yield report_markdown(rep)


def report_markdown(rep: dict) -> str:
    ok = bool(rep.get("ok"))
    diff = rep.get("max_abs_logit_diff")
    lines = [f"### {'✓' if ok else '✗'} {m('merge.ok' if ok else 'merge.bad')}", "",
             f"- {m('merge.diff')}: **{diff:.2e}** ({m('merge.tolerance')} "
             f"{rep.get('tolerance')})" if isinstance(diff, (int, float)) else "",
             f"- {m('merge.folder')}: `{html.escape(show_path(rep['path']))}`"
             if rep.get("path") else ""]
    return "\n".join(line for line in lines if line is not None)


def details(name):
    """What the page shows below the merge result for a run: its last export report and
    the adapter spectrum (status, export, verdict, rank plot, norm plot, table)."""
    if not name:
        return "", "", "", None, None, ""
    run = shared.find_run(name)
    return ("", last_export_markdown(run), *spectrum_view(name))


# -- GGUF export ----------------------------------------------------------------------------

def export_argv(run: Path, qtype: str) -> list[str]:
    return ["export", str(run), "--type", qtype]


def export_run(name, qtype, poll: float = POLL_SECONDS):
    """Export in a child process (jobs.spawn); yields (status line, result) every `poll`
    seconds while it runs, with its last progress line from <run>/export/export.log, and
    once at the end with the report it wrote to its result file. Refused while a training
    run holds the memory."""
    shared.refuse_if_busy("exporting")
    run = shared.find_run(name)
    qtype = qtype if qtype in {v for _, v in EXPORT_TYPES} else "both"
    out_dir = run / "export"
    out_dir.mkdir(exist_ok=True)
    first = m("export.merging_first") if not (run / "merged" / "config.json").exists() \
        else m("export.working")
    log_path = out_dir / "export.log"
    t0 = time.monotonic()
    with shared.job("export", export_argv(run, qtype), log=log_path) as child:
        while child.poll() is None:
            yield (f"**{first}…** {shared.duration(time.monotonic() - t0)} "
                   f"{_last_line(log_path)}", "")  # no older report meanwhile
            time.sleep(poll)
        report = child.read_result()
        failure = child.error() if report is None or "error" in report else None
    took = shared.duration(time.monotonic() - t0)
    if failure is not None:
        yield (f"✗ {m('export.failed')} ({took})",
               f"**{m('train.error')}:** {html.escape(widgets.clean_message(failure))}")
        return
    mark = "✓" if report.get("ok") else "✗"
    yield f"{mark} {m('export.done')} ({took})", export_markdown(report)


# the child's progress messages (export.py's say()) and progress bars; warnings the
# libraries print are not shown while it runs (they stay in <run>/export/export.log)
_PROGRESS = re.compile(r"^(merg|load|read|convert|writ|verif|round trip|check|reference|"
                       r"export)|\d+%\|", re.I)


def _last_line(log_path: Path) -> str:
    """The child's last progress message (progress bars end lines with \\r), short."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
    except OSError:
        return ""
    parts = [p.strip() for p in re.split(r"[\r\n]+", _ANSI.sub("", text))
             if _PROGRESS.search(p.strip())]
    if not parts:
        return ""
    line = widgets.clean_message(parts[-1])[:120].replace("`", "'")
    return f"· `{line}`"


def last_export_markdown(run: Path) -> str:
    path = Path(run) / "export" / "export_report.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return export_markdown(report)


def show_path(path) -> str:
    """A path as the page shows it. When the app serves only this computer: the real
    absolute path (what a user pastes into a terminal). Served to others (--listen): the
    path inside the Workbench folder (runs/...), never the server's own layout."""
    real = Path(path).resolve()
    if shared.serves_only_this_computer():
        return str(real)
    try:
        return str(real.relative_to(paths.home().resolve()))
    except (ValueError, OSError):
        return widgets.clean_message(shared.display_path(path))


def _mark(ok) -> str:
    return "–" if ok is None else ("✓" if ok else "✗")


def _num(x, fmt: str) -> str:
    return format(x, fmt) if isinstance(x, (int, float)) else "–"


def ollama_tag(name: str) -> str:
    # the same tag the export README uses (workbench.modelfile.readme_text)
    return re.sub(r"[^a-z0-9._-]+", "-", str(name).lower()).strip("-.") or "model"


def export_markdown(rep: dict) -> str:
    ok = rep.get("ok")
    head = ("export.ok" if ok else "export.bad" if ok is False else "export.unverified")
    lines = [f"### {_mark(ok)} {m(head)}", "",
             f"| {m('export.col.type')} | {m('export.col.size')} "
             f"| max \\|Δlogit\\| | {m('export.col.same_rounding')} "
             f"| {m('export.col.argmax')} | {m('export.col.greedy')} "
             f"| {m('export.col.layout')} | {m('export.col.check')} |",
             "|---|---:|---:|---:|---:|---|---:|---|"]
    checks = rep.get("checks") or {}
    for qtype, f in (rep.get("files") or {}).items():
        c = checks.get(qtype, {})
        rt, lay = c.get("round_trip") or {}, c.get("layout") or {}
        greedy = rt.get("greedy_equal")
        greedy_txt = "–" if greedy is None else (
            f"✓ {m('export.same')}" if greedy else
            f"✗ {m('export.differs')} ({rt.get('greedy_equal_prompts')}/{rt.get('prompts')})")
        size = f"{f.get('bytes', 0) / 1e6:.1f} MB"
        lines.append(
            f"| **{qtype.upper()}** | {size} "
            f"| {_num(rt.get('max_abs_diff'), '.3g')} "
            f"| {_num(rt.get('max_abs_diff_same_rounding'), '.2g')} "
            f"| {_num(rt.get('argmax_agreement'), '.1%')} | {greedy_txt} "
            f"| {_num(lay.get('max_rel_error'), '.1e')} | {_mark(c.get('ok'))} |")
    lines.append("")
    ref = rep.get("reference") or {}
    if ref.get("applied"):
        lines.append(f"- {_mark(ref.get('ok'))} {m('export.reference')}: "
                     f"{m('export.min_corr')} **{_num(ref.get('min_corr_qk'), '.5f')}** "
                     f"(≥ {ref.get('threshold')})")
    elif ref:
        lines.append(f"- – {m('export.reference')}: {m('export.not_applied')} "
                     f"({html.escape(str(ref.get('why', '')))})")
    tmpl = rep.get("template") or {}
    if "ok" in tmpl:
        lines.append(f"- {_mark(tmpl['ok'])} {m('export.template')}")
    sample = next((c["round_trip"].get("sample") for c in checks.values()
                   if (c.get("round_trip") or {}).get("sample")), None)
    if sample:
        lines.append(f"- {m('export.sample')} “{html.escape(sample.get('prompt', ''))}”: "
                     f"{m('export.merged')} “{html.escape(sample.get('merged', '')[:160])}” · "
                     f"GGUF “{html.escape(sample.get('gguf', '')[:160])}”")
    out_dir = rep.get("out_dir")
    if out_dir:
        lines.append(f"- {m('merge.folder')}: `{html.escape(show_path(out_dir))}`")
    names = [Path(f.get("path", "")).name for f in (rep.get("files") or {}).values()]
    if names:
        lines.append(f"- {m('export.col.file')}: "
                     + ", ".join(f"`{html.escape(n)}`" for n in names) + " · Modelfile · "
                     "README.md · export_report.json")
    lines += ["", run_commands(rep)]
    return "\n".join(lines)


def run_commands(rep: dict) -> str:
    """The commands that run the export in Ollama and llama.cpp, from its folder."""
    files, mfs = rep.get("files") or {}, rep.get("modelfiles") or {}
    if not files:
        return ""
    main = "q8_0" if "q8_0" in files else next(iter(files))
    tag = ollama_tag(rep.get("name", "model"))
    gguf_name = Path(files[main]["path"]).name
    modelfile = Path(mfs.get(main, "Modelfile")).name
    folder = show_path(rep.get("out_dir", "."))
    where = "" if shared.serves_only_this_computer() else f" ({m('export.on_server')})"
    return "\n".join([
        f"**{m('export.run_it')}**{where}", "", "```bash", f"cd {shlex.quote(folder)}",
        "# Ollama", f"ollama create {tag} -f {modelfile}", f"ollama run {tag}",
        "# llama.cpp", f"llama-cli -m {gguf_name} -cnv", "```"])


# -- downloads --------------------------------------------------------------------------------

def download_files(run: Path) -> list[Path]:
    """What a run offers to download: the GGUF files, their Modelfiles and README from
    export/, and the merged model as one zip (made, or remade when the merged folder is
    newer than it)."""
    out = []
    export = run / "export"
    if export.is_dir():
        out += sorted(export.glob("*.gguf"))
        out += sorted(p for p in export.iterdir() if p.name.startswith("Modelfile"))
        out += [p for p in (export / "README.md",) if p.is_file()]
    merged = run / "merged"
    if (merged / "config.json").is_file():
        out.append(merged_zip(run))
    return out


def merged_zip(run: Path) -> Path:
    """<run>/export/<run>-merged.zip: the merged folder's files (stored, not compressed:
    safetensors do not shrink), written under a temporary name and renamed."""
    import zipfile

    merged = run / "merged"
    target = run / "export" / f"{run.name}-merged.zip"
    files = sorted(p for p in merged.rglob("*") if p.is_file())
    newest = max((p.stat().st_mtime for p in files), default=0)
    if target.is_file() and target.stat().st_mtime >= newest:
        return target
    target.parent.mkdir(exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for p in files:
                zf.write(p, f"{run.name}-merged/{p.relative_to(merged)}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def prepare_downloads(name):
    """(the files for the download box, a note): refused when there is nothing yet."""
    from workbench.errors import RunError
    run = shared.find_run(name)
    files = download_files(run)
    if not files:
        raise RunError(f"{m('download.nothing')} ({run.name})")
    from workbench.units import fmt_bytes
    total = sum(p.stat().st_size for p in files)
    return ([str(p) for p in servable(files, run.name)],
            f"✓ {len(files)} {m('download.ready')} ({fmt_bytes(total)})")


def servable(files: list[Path], run_name: str) -> list[Path]:
    """The files as Gradio may serve them: it sends only what is in its own upload folder
    (the server lists no folder of WORKBENCH_HOME in allowed_paths), so each file gets a
    hard link there (a copy when the folders are on different file systems)."""
    import shutil
    import tempfile
    upload = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")
    folder = Path(upload) / "downloads" / run_name
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for src in files:
        dst = folder / src.name
        try:
            if not (dst.exists() and os.path.samefile(src, dst)):
                dst.unlink(missing_ok=True)
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)
        except OSError as exc:
            from workbench.errors import RunError
            raise RunError(f"{src.name}: could not prepare it for download ({exc})") from None
        out.append(dst)
    return out


# -- what the adapter learned ---------------------------------------------------------------

_SPECTRUM_CACHE: dict = {}


def _spectrum(run: Path) -> dict:
    """adapter.spectrum for a run, cached while the adapter file is unchanged."""
    from workbench.export import spectrum as adapter
    weights = run / "adapter" / "adapter_model.safetensors"
    key = (str(run), weights.stat().st_mtime_ns if weights.exists() else None)
    if key not in _SPECTRUM_CACHE:
        if len(_SPECTRUM_CACHE) > 8:
            _SPECTRUM_CACHE.clear()
        _SPECTRUM_CACHE[key] = adapter.spectrum(run)
    return _SPECTRUM_CACHE[key]


def spectrum_view(name):
    """(verdict, effective-rank frame, relative-norm frame, table) for a run; an adapter
    that cannot be read gives its message in the verdict, never a broken tab."""
    try:
        result = _spectrum(shared.find_run(name))
    except Exception as exc:  # noqa: BLE001 - shown in the tab instead of the plots
        return f"✗ {widgets.error_text(exc)}", None, None, ""
    frame = spectrum_frame(result)
    return (verdict_markdown(result), rank_frame(result, frame), norm_frame(frame),
            table_markdown(frame))


def spectrum_frame(result: dict) -> pd.DataFrame:
    """One row per adapted layer and module."""
    rows = [{"layer": row["layer"] if row["layer"] is not None else -1,
             "module": row["module"], "r": row["r"],
             "effective_rank": row["effective_rank"],
             "relative_norm_pct": (100 * row["relative_norm"]
                                   if row.get("relative_norm") is not None else math.nan),
             "singular_values": row["singular_values"]}
            for row in result.get("table", [])]
    return pd.DataFrame(rows, columns=["layer", "module", "r", "effective_rank",
                                       "relative_norm_pct", "singular_values"])


def _full_series(frame: pd.DataFrame, y: str, extra: list[str] = ()) -> pd.DataFrame:
    """Every Llama module (and `extra`) at every layer, NaN where not adapted, so each
    plot's first data already has the whole series set."""
    layers = sorted(frame["layer"].unique())
    modules = MODULES + [x for x in frame["module"].unique() if x not in MODULES]
    have = {(row.layer, row.module): getattr(row, y) for row in frame.itertuples()}
    rows = [{"layer": int(layer), "module": mod, y: have.get((layer, mod), math.nan)}
            for mod in [*modules, *extra] for layer in layers]
    return pd.DataFrame(rows, columns=["layer", "module", y]).astype({y: float})


def rank_frame(result: dict, frame: pd.DataFrame) -> pd.DataFrame | None:
    if frame.empty:
        return None
    out = _full_series(frame, "effective_rank", [R_SERIES])
    r_by_layer = frame.groupby("layer")["r"].max()
    mask = out["module"] == R_SERIES
    out.loc[mask, "effective_rank"] = out.loc[mask, "layer"].map(r_by_layer).astype(float)
    return out


def norm_frame(frame: pd.DataFrame) -> pd.DataFrame | None:
    if frame.empty or frame["relative_norm_pct"].isna().all():
        return None
    return _full_series(frame, "relative_norm_pct")


def verdict_markdown(result: dict) -> str:
    s = result.get("summary") or {}
    key = VERDICT_KEYS.get(s.get("verdict"), "spec.ok")
    icon = {"too_large": "↓", "too_small": "↑", "ok": "✓"}.get(s.get("verdict"), "–")
    advice = s.get("advice", "")
    # the advice opens with the verdict the heading already says: keep what follows
    detail = advice.split(": ", 1)[1] if ": " in advice and s.get("verdict") in (
        "too_large", "too_small", "ok") else advice
    lines = [f"**{icon} {m(key)}**: {html.escape(detail)}"]
    if s.get("modules"):
        rel = s.get("median_relative_norm")
        lines += ["", f"{m('spec.median_rank')}: **{s['median_effective_rank']:g}** / r = "
                      f"{s['r']} · {m('spec.modules')}: {s['modules']}"
                  + (f" · {m('spec.median_norm')}: **{rel:.2%}**" if rel is not None else
                     f" · {m('spec.no_base')}")]
    return "\n".join(lines)


def table_markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return ""
    lines = [f"| {m('spec.col.layer')} | {m('spec.col.module')} | r "
             f"| {m('spec.col.rank')} | \\|ΔW\\| / \\|W\\| | {m('spec.col.sv')} |",
             "|---:|---|---:|---:|---:|---|"]
    for row in frame.itertuples():
        sv = ", ".join(f"{x:.3g}" for x in list(row.singular_values)[:4])
        rel = "–" if math.isnan(row.relative_norm_pct) else f"{row.relative_norm_pct:.2f}%"
        lines.append(f"| {row.layer} | {row.module} | {row.r} | {row.effective_rank} "
                     f"| {rel} | {sv}{' …' if len(row.singular_values) > 4 else ''} |")
    return "\n".join(lines)


def api_merge(run: str) -> dict:
    """Merge a run (in a child process, as merge_run) and return its verification report;
    `folder` is the merged model's folder relative to WORKBENCH_HOME. (Not `path`:
    gradio_client would take a result key named path for a file to download.)"""
    shared.refuse_if_busy("merging")
    rep = shared.wait_for_result("merge", ["merge", str(shared.find_run(run))])
    path = rep.pop("path", None)
    if path:
        try:
            rep["folder"] = str(Path(path).relative_to(paths.home()))
        except ValueError:
            rep["folder"] = Path(path).name
    return rep

