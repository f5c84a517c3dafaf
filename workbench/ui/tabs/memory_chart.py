"""The Quantization tab's memory chart: stacked bars (base weights / LoRA / gradients /
optimizer / activations) for full fine-tuning, LoRA and the chosen quantised method, and the
line saying whether it fits this machine. Pure arithmetic (workbench.train.memory) on the
model's shape (workbench.models.shape_for): no weights are loaded.
"""

from __future__ import annotations

import dataclasses
import functools

import gradio as gr
import pandas as pd

from workbench.config import Preset
from workbench.errors import ModelError
from workbench.train import memory
from workbench.ui import widgets
from workbench.ui.i18n import m, request_lang, text
from workbench.units import fmt_bytes

# every setting the memory estimate depends on (alpha, the outlier threshold... do not)
ESTIMATE_KEYS = ["model.name_or_path", "quantization.mode", "quantization.double_quant",
                 "quantization.compute_dtype", "lora.r", "lora.target_modules",
                 "lora.dropout", "train.batch_size", "train.max_length",
                 "train.gradient_checkpointing", "train.optimizer"]
# chart components: (i18n key, Estimate.breakdown keys summed into it, colour)
COMPONENTS = [("qmem.weights", ("weights", "quant_constants", "non_quantized"), "#64748b"),
              ("qmem.lora", ("lora",), "#16a34a"),
              ("qmem.gradients", ("gradients",), "#d97706"),
              ("qmem.optimizer", ("optimizer",), "#dc2626"),
              ("qmem.activations", ("activations", "logits"), "#2563eb")]
GB = 1e9
LANGS = ("en", "zh")


def lang_of(request: gr.Request | None) -> str:
    """The page language for data inside plots (the m() markers cannot reach them): the
    language switch's choice (its cookie), else the browser's language."""
    return request_lang(request)


@functools.lru_cache(maxsize=8)
def model_shape(name: str):
    """The model's shape (models.shape_for: config.json, a GGUF header or a named size;
    never loads weights, never imports a GGUF), cached for the page's redraws."""
    from workbench import models
    return models.shape_for(name, offline_only=True)


def estimate_preset(values: dict) -> Preset:
    """A Preset holding the estimate's settings ({dotted key: widget value})."""
    sections = {}
    for dotted, value in values.items():
        section, key = dotted.split(".", 1)
        sections.setdefault(section, {})[key] = value
    return dataclasses.replace(Preset(), **{s: widgets.to_section(s, v)
                                            for s, v in sections.items()})


def estimates(preset: Preset, shape: memory.ModelShape, device: str | None = None,
              seq_len: int | None = None) -> list:
    """[(method, Estimate, is the chosen one)] for full, LoRA and the quantised method
    (int8 when chosen, else QLoRA with the chosen 4-bit type). seq_len: the padded length
    of the longest batch when the data has been analysed, else train.max_length."""
    mode = preset.quantization.mode
    chosen = memory.METHOD_OF_MODE[mode]
    methods = ["full", "lora", "int8" if mode == "int8" else "qlora"]
    return [(meth, memory.estimate_for_preset(preset, shape=shape, method=meth, device=device,
                                              seq_len=seq_len),
             meth == chosen) for meth in methods]


def data_length(stats, max_length) -> int | None:
    """The longest padded batch of the analysed data (the Dataset tab's pass), or None
    when the data has not been analysed: the estimate then assumes max_length."""
    if stats is None or not hasattr(stats, "longest_sequence"):
        return None
    try:
        return stats.longest_sequence(int(max_length))
    except (TypeError, ValueError):  # an emptied max_length box while typing
        return None


def method_label(method: str, settings: dict, chosen: bool, lang: str = "en") -> str:
    s = settings
    label = text(f"qmem.method.{method}", lang)
    if method == "qlora":
        label += f" {s['quant_type']}" + (" + DQ" if s["double_quant"] else "")
    return label + (" ★" if chosen else "")


# Gradio 6.31 redraws a plot's data but not its colours or order when only the value
# changes, so both are set once, for every label either language can show
def color_map() -> dict[str, str]:
    return {text(key, lang): colour for lang in LANGS for key, _, colour in COMPONENTS}


def method_order() -> list[str]:
    """Every x label, in the order of the bars: full, LoRA, then the quantised method."""
    kinds = [("full", None, None), ("lora", None, None), ("int8", None, None)] + [
        ("qlora", q, dq) for q in ("nf4", "fp4") for dq in (True, False)]
    out = []
    for lang in LANGS:
        for meth, quant_type, dq in kinds:
            settings = {"quant_type": quant_type, "double_quant": dq}
            for chosen in (False, True):
                out.append(method_label(meth, settings, chosen, lang))
    return out


def initial_frame(preset: Preset) -> pd.DataFrame:
    """The chart before the page has loaded: the preset's estimate, else zeros."""
    try:
        return estimate_frame(estimates(preset, model_shape(preset.model.name_or_path)))
    except Exception:  # noqa: BLE001 - the page load shows the reason beside the chart
        return pd.DataFrame([{"method": text(f"qmem.method.{meth}"), "component": text(key),
                              "GB": 0.0} for meth in ("full", "lora", "qlora")
                             for key, _, _ in COMPONENTS])


def estimate_frame(rows: list, lang: str = "en") -> pd.DataFrame:
    """Long form for the stacked bars: method, component, GB; every component of every
    method, zeros included, so each colour exists from the first drawing."""
    out = []
    for meth, est, chosen in rows:
        label = method_label(meth, est.settings, chosen, lang)
        for key, parts, _ in COMPONENTS:
            out.append({"method": label, "component": text(key, lang),
                        "GB": round(sum(est.breakdown[p] for p in parts) / GB, 4)})
    return pd.DataFrame(out, columns=["method", "component", "GB"])


def fits_markdown(rows: list, device: tuple[str, int, int], from_data: bool = False,
                  max_length: int | None = None) -> str:
    """Where training would run, how much is free, and whether each method fits.
    from_data: the length is the analysed data's longest padded batch (max_length the
    Training tab's), not max_length itself."""
    kind, total, free = device
    where = m("qmem.gpu") if kind == "gpu" else m("qmem.ram")
    first = rows[0][1].settings
    # what the bars assume: activations grow with both, and which length it is
    length_note = (f"{m('qmem.len_data')} {max_length}{m('qmem.len_data_end')}" if from_data
                   else m("qmem.len_max"))
    lines = [f"**{where}**: {fmt_bytes(free)} {m('qmem.free')} "
             f"({fmt_bytes(total)} {m('qmem.total')})", "",
             f"{m('qmem.for_batch')} **{first['batch_size']}** × {m('qmem.for_length')} "
             f"**{first['seq_len']}** {m('qmem.for_tokens')} {length_note}", ""]
    chosen_est = next(est for _, est, c in rows if c)
    auto = chosen_est.settings.get("gradient_checkpointing_auto")
    # what `auto` became at this length (the line above says which length it is)
    lines += [f"Gradient checkpointing {auto}", ""] if auto else []
    for meth, est, chosen in rows:
        ok = est.total_bytes <= free
        line = (f"{'✓' if ok else '✗'} {m('qmem.method.' + meth)}: {m('qmem.needs')} "
                f"{fmt_bytes(est.total_bytes)} · "
                f"{m('qmem.fits' if ok else 'qmem.no_fit')}")
        lines.append(f"- **{line}** ★" if chosen else f"- {line}")
    if chosen_est.total_bytes > free:
        lines += ["", f"⚠ {m('qmem.advice')}"]
    lines += ["", f"*{m('qmem.note')}*"]
    return "\n".join(lines)


def update_estimate(request: gr.Request | None, *values):
    """(chart, fit line) for the current settings (`values` in ESTIMATE_KEYS order),
    assuming batches of train.max_length tokens."""
    return update_estimate_for_data(request, None, *values)


def update_estimate_for_data(request: gr.Request | None, stats, *values):
    """(chart, fit line) for the current settings (`values` in ESTIMATE_KEYS order) and,
    when the Dataset tab has analysed the data (`stats`), its real padded length; a
    problem (an unreadable model, a value out of range while typing) shows in the line,
    the chart keeps its last bars. Gradio fills `request` (leading positional parameters
    are the only ones it fills)."""
    try:
        preset = estimate_preset(dict(zip(ESTIMATE_KEYS, values)))
        seq_len = data_length(stats, preset.train.max_length)
        rows = estimates(preset, model_shape(preset.model.name_or_path), seq_len=seq_len)
        lang = lang_of(request)
        return estimate_frame(rows, lang), fits_markdown(
            rows, memory.device_memory(), seq_len is not None, preset.train.max_length)
    except Exception as exc:  # noqa: BLE001 - shown beside the chart, never a toast storm
        if not isinstance(exc, (ModelError, ValueError)) and "Preset" not in type(exc).__name__:
            widgets.log.error("memory estimate failed", exc_info=True)
        return gr.skip(), f"⚠ {widgets.error_text(exc)}"


# -- load and measure ---------------------------------------------------------------------
