"""LoRA tab: rank, alpha, dropout, target modules (discovered from the model's linear
layers, plus all-linear), bias, rsLoRA, DoRA; the number and share of trainable parameters,
recounted whenever a setting that changes it changes.

The model is read on the `meta` device (shapes only, no weights, no memory), so counting
is instant once transformers is imported; the count is the exact one PEFT reports for
LoRA (r x (in + out) per adapted layer), plus DoRA's magnitude vector and trained biases.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from workbench.train import lora as core_lora
from workbench.errors import PresetError
from workbench.ui import widgets
from workbench.ui.i18n import m


@dataclass
class LoraTab:
    targets: gr.Dropdown
    count: gr.Markdown
    count_inputs: list  # r, targets, bias, dora


def build(ctx) -> LoraTab:
    # every field is registered in ctx (presets, Start); the count needs only four of them
    with gr.Row():
        r = ctx.field("lora.r")
        ctx.field("lora.alpha")
        ctx.field("lora.dropout")
    targets = ctx.field("lora.target_modules")
    with gr.Row():
        bias = ctx.field("lora.bias")
        ctx.field("lora.use_rslora")
        dora = ctx.field("lora.use_dora")
    count = gr.Markdown(m("lora.pending"), elem_id="lora-count")
    return LoraTab(targets, count, [r, targets, bias, dora])


def wire(ctx, tab: LoraTab, lora_tab_item: gr.Tab) -> None:
    """Cross-tab: the model widgets live in the Quantization tab."""
    name = ctx.fields["model.name_or_path"]
    trust = ctx.fields["model.trust_remote_code"]
    r, targets, bias, dora = tab.count_inputs
    # an error shows in the count only: the target list keeps the user's choice
    widgets.on([lora_tab_item.select, name.change, trust.change, r.change, targets.input,
                bias.change, dora.change],
               count_and_discover, [name, trust, r, targets, bias, dora],
               [tab.count, tab.targets], tab.count, concurrency_id="model-info",
               concurrency_limit=1, show_progress="minimal", trigger_mode="always_last")


def model_info(name_or_path: str, trust_remote_code: bool = False) -> dict:
    return core_lora.model_info(name_or_path, trust_remote_code)


def trainable_params(info: dict, r: int, targets, bias: str = "none",
                     use_dora: bool = False) -> tuple[int, int, list[str]]:
    """(trainable, total with the adapters, target names not in this model)."""
    return core_lora.trainable_params(info, r, widgets.from_target_list(targets), bias,
                                      use_dora)


def count_and_discover(name, trust, r, targets, bias, use_dora):
    """(count Markdown, target dropdown update with the model's layer names)."""
    if not name:
        raise PresetError("model.name_or_path: choose a base model first")
    info = model_info(str(name), bool(trust))
    choices = [widgets.ALL_LINEAR, *info["names"]]
    chosen = widgets.to_target_list(targets)
    choices += [c for c in chosen if c not in choices]
    targets_update = gr.update(choices=choices)
    if not chosen:
        return f"⚠ {m('lora.target_modules.help')}", targets_update
    trainable, total, missing = trainable_params(info, int(r or 1), chosen, bias, use_dora)
    share = 100 * trainable / total if total else 0.0
    text = (f"**{m('lora.trainable')}: {trainable:,}** {m('lora.params')} "
            f"({share:.3f}% {m('lora.of_total')} {total:,})\n\n"
            f"{m('lora.targets_found')}: " + ", ".join(f"`{n}`" for n in info["names"]))
    if missing:
        text += "\n\n⚠ " + ", ".join(f"`{n}`" for n in missing) + " ?"
    return text, targets_update
