"""build_app(): the Workbench page. A preset bar above six tabs (Dataset, Quantization,
LoRA, Training, Merge, Chat); each tab module builds its own widgets and returns a small
dataclass of handles, and the cross-tab events are wired here once every tab exists.

Every Preset field has exactly one widget (checked at build time), so "Save preset" and
"Start training" capture every tab, and loading a preset fills every tab.

The script API (gradio_client) is a small set of named endpoints with plain arguments:
/start, /stop, /status, /runs, /merge, /compare, /save_preset, /presets. The page's own
events are private. Run it: `python launch.py` (see workbench/ui/server.py).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field

import gradio as gr

from workbench import presets
from workbench.config import Preset
from workbench.ui import guide, preset_about, shared, widgets
from workbench.ui.i18n import field_keys, language_switch_html, m, t, text
from workbench.ui.tabs import chat, dataset, lora, merge, quantization, training

DEFAULT_PRESET = "cpu-demo"
CSS = """
.wb-header h1 {margin-bottom: 0}
.wb-header p {margin-top: 2px; color: var(--body-text-color-subdued)}
.wb-header {align-items: flex-start}
.wb-progress {padding: 10px 12px; border: 1px solid var(--border-color-primary);
  border-radius: var(--radius-lg); background: var(--block-background-fill)}
.wb-progress-head {margin-bottom: 8px}
.wb-bar {height: 10px; border-radius: 5px; background: var(--neutral-200); overflow: hidden}
.wb-bar-fill {height: 100%; background: var(--color-accent); transition: width .5s}
.wb-bar-fill.wb-ok {background: #16a34a} .wb-bar-fill.wb-bad {background: #dc2626}
.wb-bar-fill.wb-stop {background: #d97706}
.wb-state {padding: 1px 8px; border-radius: 10px; font-size: .85em; color: white}
.wb-state.wb-run {background: var(--color-accent)} .wb-state.wb-ok {background: #16a34a}
.wb-state.wb-bad {background: #dc2626} .wb-state.wb-stop {background: #d97706}
.wb-error {color: #b91c1c; margin-top: 6px; white-space: pre-wrap}
.wb-log-label {font-size: var(--block-label-text-size); color: var(--block-label-text-color);
  margin-bottom: 4px}
.wb-log-text {font-family: var(--font-mono); font-size: 12px; max-height: 16em; min-height: 8em;
  overflow-y: auto; margin: 0; padding: 8px 10px; white-space: pre-wrap;
  border: 1px solid var(--border-color-primary); border-radius: var(--radius-lg);
  background: var(--block-background-fill)}
.wb-runs table {border-collapse: collapse; width: 100%; margin-top: 6px; font-size: 14px;
  border: 0}
.wb-runs tr {border: 0}
.wb-runs th, .wb-runs td {text-align: left; padding: 4px 10px; border: 0;
  border-bottom: 1px solid var(--border-color-primary)}
.wb-runs th {font-weight: 600; color: var(--body-text-color-subdued)}
.wb-charts {display: flex; gap: 12px; flex-wrap: wrap}
.wb-charts > .wb-chart-loss {flex: 3 1 360px; min-width: 0}
.wb-charts > .wb-chart-lr {flex: 2 1 240px; min-width: 0}
.wb-chart {padding: 8px 10px; border: 1px solid var(--border-color-primary);
  border-radius: var(--radius-lg); background: var(--block-background-fill); height: 100%;
  box-sizing: border-box}
.wb-chart-head {display: flex; justify-content: space-between; flex-wrap: wrap; gap: 4px 12px;
  font-size: var(--block-label-text-size); color: var(--block-label-text-color)}
.wb-chart-key {margin-left: 12px; white-space: nowrap}
.wb-chart-key i {display: inline-block; width: 10px; height: 10px; border-radius: 2px;
  margin-right: 5px}
.wb-chart-svg {display: block; width: 100%; height: auto}
.wb-chart-svg text {fill: var(--body-text-color); font-size: 12px; font-family: var(--font)}
.wb-chart-svg .wb-chart-tick, .wb-chart-svg .wb-chart-empty {
  fill: var(--body-text-color-subdued)}
.wb-chart-grid {stroke: var(--border-color-primary)}
.wb-chart-axis {stroke: var(--body-text-color-subdued)}
.wb-chart-frame {fill: none; stroke: var(--border-color-primary); stroke-dasharray: 4 4}
#preset-bar, .wb-actions {align-items: flex-end}
.wb-actions > button, #preset-bar > button {margin-bottom: 4px}
.wb-inline {width: fit-content; min-width: 200px}
.wb-guide {padding: 8px 12px; border: 1px solid var(--border-color-primary);
  border-radius: var(--radius-lg); background: var(--block-background-fill)}
.wb-guide ol {display: flex; gap: 18px; margin: 6px 0 0 0; padding: 0; list-style: none}
.wb-step {flex: 1; padding: 6px 10px; border-radius: var(--radius-md);
  border: 1px solid var(--border-color-primary)}
.wb-step-mark {display: inline-block; width: 1.4em; font-weight: bold}
.wb-step-done {opacity: .75} .wb-step-done .wb-step-mark {color: #16a34a}
.wb-step-now, .wb-step-next {border-color: var(--color-accent); border-width: 2px}
.wb-step-next .wb-step-mark, .wb-step-now .wb-step-mark {color: var(--color-accent)}
.wb-step-later {opacity: .6}
"""


@dataclass
class Ctx:
    """What the tabs share while the page is built: the preset shown first and the one
    widget of every Preset field."""
    initial: Preset
    initial_name: str = ""
    fields: dict = field(default_factory=dict)
    start_here: gr.HTML | None = None  # the "start here" strip; the Training view redraws it
    # the Dataset tab's analysis and its status line: the memory estimate uses its lengths
    data_stats: gr.State | None = None
    data_status: gr.Markdown | None = None

    def field(self, dotted: str, **overrides):
        """Build the widget of a Preset field, showing the initial preset's value."""
        if dotted in self.fields:
            raise ValueError(f"two widgets for {dotted}")
        value = widgets.from_preset(self.initial, [dotted])[0]
        comp = widgets.field(dotted, **{"value": value, **overrides})
        self.fields[dotted] = comp
        return comp

    def field_list(self) -> list:
        return [self.fields[k] for k in field_keys()]


@dataclass
class PresetBar:
    choose: gr.Dropdown
    save_name: gr.Textbox
    save: gr.Button
    delete: gr.Button
    reset: gr.Button
    notice: gr.Markdown


def preset_choices() -> list[tuple[str, str]]:
    # a choice label may hold one t() key (Gradio translates one per string)
    return [(f"{p['name']} · {t('preset.' + p['kind'])}", p["name"])
            for p in presets.list_presets()]


def _initial_preset() -> tuple[str, Preset]:
    names = presets.builtin_names()
    name = DEFAULT_PRESET if DEFAULT_PRESET in names else (names[0] if names else None)
    return (name, presets.load(name)) if name else ("", Preset())


def build_app() -> gr.Blocks:
    initial_name, initial = _initial_preset()
    ctx = Ctx(initial, initial_name)
    with gr.Blocks(title="Workbench", analytics_enabled=False) as demo:
        # the script API first, so its names win: plain arguments, JSON results, no
        # server paths
        guard = widgets.guard
        gr.api(guard(training.api_start), api_name="start")
        gr.api(guard(training.api_stop), api_name="stop")
        gr.api(guard(training.api_status), api_name="status", concurrency_limit=None)
        gr.api(guard(api_runs), api_name="runs", concurrency_limit=None)
        gr.api(guard(merge.api_merge), api_name="merge", concurrency_id="model",
               concurrency_limit=1)
        gr.api(guard(chat.api_compare), api_name="compare", concurrency_id="model",
               concurrency_limit=1)
        gr.api(guard(api_save_preset), api_name="save_preset")
        gr.api(guard(api_presets), api_name="presets", concurrency_limit=None)
        with gr.Row(elem_classes=["wb-header"]):
            gr.Markdown(f"# {m('app.title')}\n{m('app.tagline')}", scale=4)
            # English | 中文: the page script (i18n.page_head) switches every label at
            # once, Gradio's included, and remembers the choice
            gr.HTML(language_switch_html(), elem_id="language-switch", scale=0,
                    min_width=150)
        ctx.start_here = gr.HTML(guide.guide_html(), elem_id="start-here")
        bar = _build_preset_bar(initial_name)
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab(t("tab.dataset"), id="dataset", elem_id="tab-dataset") as tab_data:
                data_tab = dataset.build(ctx)
            with gr.Tab(t("tab.quantization"), id="quantization",
                        elem_id="tab-quantization") as tab_quant:
                quant_tab = quantization.build(ctx)
            with gr.Tab(t("tab.lora"), id="lora", elem_id="tab-lora") as tab_lora:
                lora_tab = lora.build(ctx)
            with gr.Tab(t("tab.training"), id="training", elem_id="tab-training") as tab_train:
                train_tab = training.build(ctx)
            with gr.Tab(t("tab.merge"), id="merge", elem_id="tab-merge") as tab_merge:
                merge_tab = merge.build(ctx)
            with gr.Tab(t("tab.chat"), id="chat", elem_id="tab-chat") as tab_chat:
                chat_tab = chat.build(ctx)
        missing = set(field_keys()) - set(ctx.fields)
        if missing:
            raise RuntimeError(f"no widget for Preset fields: {sorted(missing)}")

        # cross-tab wiring, now that every widget exists
        lora.wire(ctx, lora_tab, tab_lora)
        training.wire(ctx, train_tab, demo)
        # the estimate reads LoRA and Training widgets, so it is wired after them
        quantization.wire(ctx, quant_tab, demo)
        merge.wire(ctx, merge_tab, tab_merge)
        chat.wire(ctx, chat_tab, tab_chat)
        _wire_preset_bar(ctx, bar, train_tab)
        dataset.wire(ctx, data_tab, demo)
        # the "start here" strip follows the runs: on load, whenever a tab is chosen
        gr.on([demo.load, *(item.select for item in (tab_data, tab_quant, tab_lora,
                                                      tab_train, tab_merge, tab_chat))],
              guide.guide_html, None, ctx.start_here, api_visibility="private",
              concurrency_limit=None, show_progress="hidden")
        # (while the Training tab polls, its view redraws the strip when a run moves)
        # a finished run: straight to Chat with it, or its settings into every tab
        widgets.on(train_tab.to_chat.click, open_in_chat, [train_tab.run],
                   [tabs, chat_tab.run, chat_tab.compare, chat_tab.status], chat_tab.status)
        widgets.on(train_tab.load_settings.click, load_run_settings, [train_tab.run],
                   [*ctx.field_list(), train_tab.run_name, bar.notice], bar.notice)

    return demo


def _build_preset_bar(initial_name: str) -> PresetBar:
    with gr.Row(elem_id="preset-bar"):
        choose = gr.Dropdown(label=t("preset.choose"), info=t("preset.choose.help"),
                             choices=preset_choices(), value=initial_name or None, scale=3,
                             elem_id="preset-choose")
        save_name = gr.Textbox(label=t("preset.save_name"),
                               placeholder=t("preset.save_name.placeholder"), max_length=64,
                               scale=2, elem_id="preset-save-name")
        save = gr.Button(t("preset.save"), size="md", scale=1, elem_id="preset-save")
        reset = gr.Button(t("preset.reset"), size="md", scale=0, min_width=90,
                          elem_id="preset-reset")
        # built-in presets cannot be deleted: the button is off while one is chosen
        delete = gr.Button(t("preset.delete"), size="md", scale=0, min_width=90,
                           variant="stop", elem_id="preset-delete",
                           interactive=can_delete(initial_name))
    notice = gr.Markdown(preset_notice(initial_name, m("preset.shown")) if initial_name
                         else "", elem_id="preset-notice")
    return PresetBar(choose, save_name, save, delete, reset, notice)


def _wire_preset_bar(ctx: Ctx, bar: PresetBar, train_tab) -> None:
    fields = ctx.field_list()
    load_outputs = [*fields, train_tab.run_name, bar.notice]
    # errors go to the notice only: the selector and the fields keep what they show
    widgets.on([bar.choose.input, bar.reset.click], load_preset, [bar.choose], load_outputs,
               bar.notice)
    widgets.on(bar.save.click, save_preset, [bar.save_name, bar.choose, *fields],
               [bar.choose, bar.notice], bar.notice)
    # the browser asks first; a cancelled confirm sends no name and changes nothing
    widgets.on(bar.delete.click, delete_preset, [bar.choose], [bar.choose, bar.notice],
               bar.notice, js=confirm_delete_js())
    # .change: the user's choice, and the value a save or delete sets
    bar.choose.change(delete_button, bar.choose, bar.delete, queue=False,
                      show_progress="hidden", api_visibility="private")


# -- preset bar handlers ------------------------------------------------------------------

def load_preset(name):
    """Every field's value from the preset, the run name, and a notice."""
    if not name:
        raise presets.PresetError("choose a preset first")
    preset = presets.load(name)
    return [*widgets.from_preset(preset), name, preset_notice(name, m("preset.loaded"))]


def preset_notice(name: str, what: str) -> str:
    """'Loaded: **cpu-demo** — what the preset is for' (its description)."""
    info = next((p for p in presets.list_presets() if p["name"] == name), None)
    if info is None or not info["description"]:
        return f"{what}: **{html.escape(name)}**"
    about = (m(preset_about.key(name)) if info["kind"] == "builtin"  # both languages
             else html.escape(info["description"]))
    return f"{what}: **{html.escape(name)}** — {about}"


def save_preset(new_name, selected, *values):
    """Save every tab's values as a user preset (overwrites only the user preset that is
    selected now, never a built-in)."""
    name = presets.check_name((new_name or "").strip() or (selected or ""))
    preset = widgets.to_preset(values)
    presets.save(name, preset, overwrite=name == selected and name in presets.user_names())
    return (gr.update(choices=preset_choices(), value=name),
            f"✓ {m('preset.saved')}: **{html.escape(name)}**")


def can_delete(name) -> bool:
    """Only a user preset can be deleted (a built-in one is read-only)."""
    return bool(name) and name in presets.user_names() and name not in presets.builtin_names()


def delete_button(name):
    """The Delete button for the preset now chosen: on for a user preset, off otherwise."""
    return gr.update(interactive=can_delete(name))


def confirm_delete_js() -> str:
    """The click's browser side: confirm() in the page's language; the name when the user
    agrees, null when not (the server then changes nothing)."""
    asks = {lang: text("preset.delete_confirm", lang) for lang in ("en", "zh")}
    return ("(name) => {\n"
            "  if (!name) return null;\n"
            "  const lang = window.workbenchLanguage ? window.workbenchLanguage.get() : 'en';\n"
            f"  const asks = {json.dumps(asks, ensure_ascii=False)};\n"
            "  const ask = (asks[lang] || asks.en).replace('{name}', name);\n"
            "  return window.confirm(ask) ? name : null;\n"
            "}")


def delete_preset(selected):
    if not selected:  # the confirm was cancelled
        return gr.skip(), gr.skip()
    presets.delete(presets.check_name(selected))
    fallback, _ = _initial_preset()
    return (gr.update(choices=preset_choices(), value=fallback or None),
            f"{m('preset.deleted')}: **{html.escape(selected)}**")


def open_in_chat(run):
    """The Chat tab, with `run` chosen (Compare ready unless training runs)."""
    names, compare, reason = chat.refresh(run)
    return gr.Tabs(selected="chat"), names, compare, reason


def load_run_settings(run):
    """Every field from the run's own preset.yaml (what it was trained with)."""
    from workbench import runs
    folder = shared.find_run(run)
    preset = runs.load_preset(folder)
    return [*widgets.from_preset(preset), runs.base_name(folder.name),
            f"{m('train.loaded_run')}: **{html.escape(folder.name)}**"]


# -- script API ---------------------------------------------------------------------------

def api_runs() -> list[dict]:
    """Every run, newest first: name, state, step, max_steps, started_at, merged."""
    from workbench import runs
    keep = ("name", "state", "step", "max_steps", "started_at", "merged", "has_adapter")
    return [{k: r.get(k) for k in keep} for r in runs.list_runs()]


def api_save_preset(name: str, base: str = DEFAULT_PRESET,
                    overrides: list[str] | None = None, overwrite: bool = False) -> dict:
    """Save a user preset: `base` (a preset name, never a path) with `section.key=value`
    overrides."""
    preset = presets.load(base, list(overrides or []), names_only=True)
    path = presets.save(name, preset, overwrite=overwrite)
    return {"name": path.stem, "kind": "user"}


def api_presets() -> list[dict]:
    return [{k: p[k] for k in ("name", "kind", "description")}
            for p in presets.list_presets()]

