"""Quantization tab: the base model, and how its frozen weights are stored while training
(none / int8 / nf4 / fp4, double quant, compute dtype, int8 outlier threshold), each with a
one-line explanation. "Load and measure" loads the model exactly that way and reports its
measured footprint next to the 16-bit size. Widgets: every `model.*` and `quantization.*`
Preset field. (Issue 5 adds the memory estimate and the quantisation comparison here.)"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

import gradio as gr

from workbench.config import EMBEDDED_MODEL
from workbench.ui import shared, widgets
from workbench.ui.i18n import m, t

MEASURE_KEYS = ["model.name_or_path", "model.trust_remote_code", "quantization.mode",
                "quantization.double_quant", "quantization.compute_dtype",
                "quantization.int8_threshold"]


@dataclass
class QuantizationTab:
    measure: gr.Button
    result: gr.Markdown
    inputs: list


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
    gr.Markdown(f"### {m('quant.heading')}\n\n" + "\n".join(
        f"- **{mode}**: {m('quant.' + mode)}" for mode in ("nf4", "fp4", "int8", "none")))
    with gr.Row():
        mode = ctx.field("quantization.mode")
        double = ctx.field("quantization.double_quant")
    with gr.Row():
        dtype = ctx.field("quantization.compute_dtype")
        threshold = ctx.field("quantization.int8_threshold")
    measure_btn = gr.Button(t("quant.measure"), variant="secondary", size="md",
                            elem_id="quant-measure", elem_classes=["wb-inline"])
    result = gr.Markdown(m("quant.not_measured"), elem_id="quant-result")
    inputs = [name, trust, mode, double, dtype, threshold]
    measure_btn.click(widgets.guard(measure), inputs, [result], concurrency_id="model",
                      concurrency_limit=1, api_visibility="private")
    return QuantizationTab(measure_btn, result, inputs)


def measure(name, trust, mode, double_quant, compute_dtype, int8_threshold) -> str:
    """Load the model with these settings and report its measured footprint."""
    from workbench import models
    from workbench.ui.tabs.lora import model_info
    model_cfg = widgets.to_section("model", {"name_or_path": name,
                                             "trust_remote_code": trust})
    quant_cfg = widgets.to_section("quantization", {
        "mode": mode, "double_quant": double_quant, "compute_dtype": compute_dtype,
        "int8_threshold": int8_threshold})
    shared.refuse_if_busy("loading a model")
    t0 = time.perf_counter()
    model = models.load_model(model_cfg, quant_cfg, quantize=quant_cfg.mode != "none")
    try:
        seconds = time.perf_counter() - t0
        measured = models.footprint_bytes(model)
    finally:
        del model
        gc.collect()
    full16 = model_info(model_cfg.name_or_path, model_cfg.trust_remote_code)["total"] * 2
    return measure_markdown(quant_cfg.mode, measured, full16, seconds)


def measure_markdown(mode: str, measured: int, full16: int, seconds: float) -> str:
    share = f"{100 * measured / full16:.0f}%" if full16 else "–"
    return (f"**{m('quant.result')}** (`{mode}`)\n\n"
            f"- {m('quant.measured')}: **{fmt_bytes(measured)}** ({m('quant.saving')} "
            f"{share})\n"
            f"- {m('quant.unquantized')}: {fmt_bytes(full16)}\n"
            f"- {m('quant.took')}: {seconds:.1f} s")


def fmt_bytes(n) -> str:
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
