"""Quantization tab: the base model, and how its frozen weights are stored while training
(none / int8 / nf4 / fp4, double quant, compute dtype, int8 outlier threshold), each with a
plain explanation. Widgets: every `model.*` and `quantization.*` Preset field.

- Memory estimate: a stacked bar chart (base weights / LoRA / gradients / optimizer /
  activations) for the current settings next to full and LoRA fine-tuning, redrawn when a
  quantization, LoRA or training setting changes, and a line saying whether it fits in
  this machine's GPU memory or RAM. Pure arithmetic (`workbench.memory`) on the model's
  shape, read from its config.json (or a GGUF header): no weights are loaded.
- "Load and measure" loads the model exactly as configured, in its own process
  (`launch.py quant measure`), and reports its footprint.
- "Compare quantisations" runs `launch.py quant compare` in its own process (it loads
  several variants of the model) and shows the table and per-layer weight error plot.

"Load and measure" and "Compare quantisations" run through `shared.job` (runs.jobs.spawn):
progress from the child's log, the result from the JSON file it writes.
Tests: tests/unit/test_ui_quant.py, tests/browser/test_quant_tab.py.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from workbench.config import EMBEDDED_MODEL, Preset
from workbench.units import fmt_bytes
from workbench.ui import shared, widgets
from workbench.ui.i18n import m, t, text
from workbench.ui.tabs.memory_chart import (COMPONENTS, ESTIMATE_KEYS, color_map,  # noqa: F401
                                            estimate_frame,
                                            estimate_preset, estimates, fits_markdown,
                                            initial_frame, lang_of, method_label,
                                            method_order, model_shape, update_estimate,
                                            update_estimate_for_data)

MEASURE_KEYS = ["model.name_or_path", "model.trust_remote_code", "quantization.mode",
                "quantization.double_quant", "quantization.compute_dtype",
                "quantization.int8_threshold"]
PROGRESS_RE = re.compile(r"^\[\s*(\d+)%\]\s*(.*)$")  # `quant compare` progress lines


@dataclass
class QuantizationTab:
    measure: gr.Button
    result: gr.Markdown
    inputs: list
    chart: gr.BarPlot
    fits: gr.Markdown
    compare: gr.Button
    perplexity: gr.Checkbox
    compare_status: gr.Markdown
    compare_table: gr.Dataframe
    layer_plot: gr.LinePlot
    compare_results: gr.Column  # the table and the plot, shown once a comparison ends


def model_choices(current: str | None = None) -> list[str]:
    """The embedded model (and the preset's model, when it is another one); any local
    folder, .gguf file or Hub id can be typed in."""
    out = [EMBEDDED_MODEL]
    if current and current not in out:
        out.append(current)
    return out


def build(ctx) -> QuantizationTab:
    with gr.Row():
        name = ctx.field("model.name_or_path", kind="Dropdown", choices=model_choices(),
                         allow_custom_value=True, scale=3)
        trust = ctx.field("model.trust_remote_code", scale=1)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            gr.Markdown(f"### {m('quant.heading')}\n\n" + "\n".join(
                f"- **{mode}**: {m('quant.' + mode)}" for mode in ("nf4", "fp4", "int8",
                                                                   "none")))
            # plainer help than the field metadata's: written for people new to this
            with gr.Row():
                mode = ctx.field("quantization.mode", info=t("qhelp.mode"))
                double = ctx.field("quantization.double_quant",
                                   info=t("qhelp.double_quant"))
            with gr.Row():
                dtype = ctx.field("quantization.compute_dtype",
                                  info=t("qhelp.compute_dtype"))
                threshold = ctx.field("quantization.int8_threshold",
                                      info=t("qhelp.int8_threshold"))
            # what `auto` (or an explicit dtype) means on this machine, and why
            dtype_note = gr.Markdown(dtype_note_text(ctx.initial.quantization.compute_dtype),
                                     elem_id="quant-dtype-note")
            dtype.change(dtype_note_text, dtype, dtype_note, queue=False,
                         show_progress="hidden", api_visibility="private")
            measure_btn = gr.Button(t("quant.measure"), variant="secondary", size="md",
                                    elem_id="quant-measure", elem_classes=["wb-inline"])
            result = gr.Markdown(m("quant.not_measured"), elem_id="quant-result")
        with gr.Column(scale=4):
            # starts with every component (Gradio keeps the first data's colour series);
            # no block label: with one, Gradio 6.31 pushes the plot down and clips the
            # legend at the bottom, so a heading says what the chart is
            gr.Markdown(f"### {m('qmem.chart')}")
            chart = gr.BarPlot(initial_frame(ctx.initial), x="method", y="GB",
                               color="component", color_map=color_map(),
                               sort=method_order(), show_label=False,
                               x_title=" ", y_title="GB", color_title=" ",
                               y_axis_format=".2f", height=320, elem_id="quant-estimate")
            fits = gr.Markdown(m("qmem.pending"), elem_id="quant-fits")
    with gr.Accordion(t("qcmp.heading"), open=True):
        gr.Markdown(m("qcmp.explain"))
        with gr.Row(elem_classes=["wb-actions"]):
            perplexity = gr.Checkbox(True, label=t("qcmp.perplexity"),
                                     info=t("qcmp.perplexity.help"), scale=3,
                                     elem_id="quant-compare-ppl")
            compare_btn = gr.Button(t("qcmp.button"), variant="secondary", scale=1,
                                    elem_id="quant-compare")
        compare_status = gr.Markdown(elem_id="quant-compare-status")
        # hidden until a comparison fills them: empty, the table was headed "1 2 3"
        with gr.Column(visible=False, elem_id="quant-compare-results") as compare_results:
            compare_table = gr.Dataframe(
                pd.DataFrame(columns=[text(k) for k in TABLE_HEADERS.values()]),
                label=t("qcmp.table"), interactive=False, elem_id="quant-compare-table")
            gr.Markdown(f"#### {m('qcmp.plot')}")
            layer_plot = gr.LinePlot(None, x="layer", y="error", color="variant",
                                     show_label=False, x_title="layer",
                                     y_title="relative weight error", height=280,
                                     elem_id="quant-layer-errors")
    inputs = [name, trust, mode, double, dtype, threshold]
    widgets.on(measure_btn.click, measure, inputs, [result], result, concurrency_id="model",
               concurrency_limit=1)
    tab = QuantizationTab(measure_btn, result, inputs, chart, fits, compare_btn, perplexity,
                          compare_status, compare_table, layer_plot, compare_results)
    return tab


def wire(ctx, tab: QuantizationTab, demo: gr.Blocks) -> None:
    """The estimate reads LoRA and Training widgets; Compare needs every tab."""
    est_inputs = [ctx.fields[k] for k in ESTIMATE_KEYS]
    triggers = [demo.load] + [getattr(c, "input" if k == "lora.target_modules" else "change")
                              for k, c in zip(ESTIMATE_KEYS, est_inputs)]
    # a finished (or cleared) analysis of the data: its real padded length
    triggers.append(ctx.data_status.change)
    gr.on(triggers, update_estimate_for_data, [ctx.data_stats, *est_inputs],
          [tab.chart, tab.fits],
          api_visibility="private", concurrency_id="estimate", concurrency_limit=1,
          show_progress="hidden", trigger_mode="always_last")
    widgets.on(tab.compare.click, compare_quantizations, [tab.perplexity, *ctx.field_list()],
               [tab.compare_status, tab.compare_table, tab.layer_plot, tab.compare_results],
               tab.compare_status,
               concurrency_id="model", concurrency_limit=1)


# -- memory estimate ----------------------------------------------------------------------

def dtype_note_text(compute_dtype) -> str:
    """'auto → float32: this CPU (AVX2) has no native bfloat16; ...', plus any warning."""
    from workbench.hardware import resolve_compute_dtype
    try:
        choice = resolve_compute_dtype(compute_dtype or "auto")
    except Exception as exc:  # noqa: BLE001 - a note, never an error badge
        return f"⚠ {exc}"
    text = f"**{choice.reason}** ({choice.device}: {choice.capability})"
    return text + (f"\n\n⚠ {choice.warning}" if choice.warning else "")


def measure(name, trust, mode, double_quant, compute_dtype, int8_threshold):
    """Load the model with these settings and report its measured footprint. The loading
    happens in a child process (`launch.py quant measure`, through jobs.spawn), so the web
    server never holds the model; its result comes back in a JSON file."""
    model_cfg = widgets.to_section("model", {"name_or_path": name,
                                             "trust_remote_code": trust})
    quant_cfg = widgets.to_section("quantization", {
        "mode": mode, "double_quant": double_quant, "compute_dtype": compute_dtype,
        "int8_threshold": int8_threshold})
    shared.refuse_if_busy("loading a model")
    preset = dataclasses.replace(Preset(), model=model_cfg, quantization=quant_cfg)
    yaml_path = shared.temp_preset(preset, "measure-")
    started = time.monotonic()
    yield shared.working(m("quant.measure"), started)
    try:
        with shared.job("quant measure", ["quant", "measure", str(yaml_path)]) as child:
            for line in shared.job_lines(child):
                yield shared.working(m("quant.measure"), started, line)
            res = shared.job_result(child)
    finally:
        yaml_path.unlink(missing_ok=True)
    yield measure_markdown(res["mode"], res["measured_bytes"], res["full16_bytes"],
                           res["seconds"])


def measure_markdown(mode: str, measured: int, full16: int, seconds: float) -> str:
    share = f"{100 * measured / full16:.0f}%" if full16 else "–"
    return (f"**{m('quant.result')}** (`{mode}`)\n\n"
            f"- {m('quant.measured')}: **{fmt_bytes(measured)}** ({m('quant.saving')} "
            f"{share})\n"
            f"- {m('quant.unquantized')}: {fmt_bytes(full16)}\n"
            f"- {m('quant.took')}: {seconds:.1f} s")


# -- compare quantisations ----------------------------------------------------------------

TABLE_HEADERS = {"variant": "qcmp.col.variant", "bits_per_param": "qcmp.col.bits",
                 "footprint_bytes": "qcmp.col.footprint", "load_seconds": "qcmp.col.load",
                 "quantize_seconds": "qcmp.col.quantize", "mean_rel_error": "qcmp.col.mean",
                 "max_rel_error": "qcmp.col.max", "perplexity": "qcmp.col.ppl",
                 "perplexity_change_pct": "qcmp.col.ppl_change"}


def compare_quantizations(request: gr.Request | None, progress=gr.Progress(),
                          perplexity=True, *values):
    """Run `launch.py quant compare` on the page's settings (`values`: every field) in its
    own process (jobs.spawn); yield (status, table, layer plot, their column) as it goes:
    progress from the `[ 10%] ...` lines of its log, the result from the JSON file it
    writes; the column is shown with the result."""
    shared.refuse_if_busy("comparing quantisations")
    preset = widgets.to_preset(values)
    yaml_path = shared.temp_preset(preset, "quant-")
    argv = ["quant", "compare", str(yaml_path)]
    if not perplexity:
        argv.append("--no-perplexity")
    started = time.monotonic()
    progress(0, desc=text("qcmp.starting"))
    yield f"{m('qcmp.starting')}", gr.skip(), gr.skip(), gr.skip()
    try:
        with shared.job("quant compare", argv) as child:
            for line in shared.job_lines(child):
                match = PROGRESS_RE.match(line)
                if match:
                    pct, what = int(match.group(1)), match.group(2)
                    progress(pct / 100, desc=what)
                    yield (f"{pct}% · {widgets.clean_message(what)} · "
                           f"{shared.duration(time.monotonic() - started)}",
                           gr.skip(), gr.skip(), gr.skip())
            result = shared.job_result(child)
    finally:
        yaml_path.unlink(missing_ok=True)
    lang = lang_of(request)
    yield (compare_markdown(result, time.monotonic() - started),
           compare_table(table_frame(result), lang),
           layer_frame(layer_errors_frame(result)), gr.Column(visible=True))


def compare_table(frame: pd.DataFrame, lang: str = "en") -> pd.DataFrame:
    """The table as a person reads it: MB, rounded errors, headers in the page language."""
    f = frame.copy()
    f["footprint_bytes"] = (f["footprint_bytes"] / 1e6).round(1)
    for col, digits in (("bits_per_param", 3), ("mean_rel_error", 5), ("max_rel_error", 4),
                        ("perplexity", 3), ("perplexity_change_pct", 2),
                        ("load_seconds", 2), ("quantize_seconds", 2)):
        f[col] = pd.to_numeric(f[col], errors="coerce").round(digits)
    f = f.astype(object).where(f.notna(), None)  # not measured: an empty cell, not NaN
    return f.rename(columns={c: text(k, lang) for c, k in TABLE_HEADERS.items()})


def layer_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean relative error of each layer's linear weights, per variant (layer -1 = weights
    outside the numbered blocks, left out)."""
    f = frame[frame["layer"] >= 0]
    return (f.groupby(["layer", "variant"], sort=False, as_index=False)["error"].mean()
            .sort_values(["variant", "layer"], kind="stable").reset_index(drop=True))


def compare_markdown(result: dict, seconds: float) -> str:
    ev = result.get("eval") or {}
    where = (f"{m('qcmp.ppl_on')} {ev.get('tokens')} tokens · {ev.get('source')}"
             if ev.get("source") else m("qcmp.no_ppl"))
    verdict = (result.get("nf4_vs_fp4") or {}).get("verdict", "")
    return (f"✓ **{m('qcmp.done')}** ({shared.duration(seconds)}, {result.get('device')}, "
            f"{result.get('dtype')}) · {where}\n\n**NF4 vs FP4:** "
            f"{widgets.clean_message(verdict)}\n\n*{m('qcmp.how_to_read')}*")


# -- the comparison as frames for the app ------------------------------------------------------

TABLE_COLUMNS = ["variant", "bits_per_param", "footprint_bytes", "load_seconds",
                 "quantize_seconds", "mean_rel_error", "max_rel_error", "perplexity",
                 "perplexity_change_pct"]


def table_frame(result: dict):
    """One row per variant, the columns of TABLE_COLUMNS (pandas.DataFrame)."""
    import pandas as pd
    return pd.DataFrame([{c: r.get(c) for c in TABLE_COLUMNS} for r in result["table"]],
                        columns=TABLE_COLUMNS)


def layer_errors_frame(result: dict):
    """Long form for a line plot across layers: columns layer, module, name, variant, error;
    one row per (linear weight, variant), in model order."""
    import pandas as pd
    rows = [{"layer": layer["layer"], "module": layer["module"], "name": layer["name"],
             "variant": v, "error": e}
            for layer in result["layers"] for v, e in layer["errors"].items()]
    return pd.DataFrame(rows, columns=["layer", "module", "name", "variant", "error"])
