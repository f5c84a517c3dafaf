"""Merge tab: pick a completed run; "Merge" folds its adapter into an unquantised copy of
the base, verifies the merged model against base + adapter (max logit difference) and
shows the result and the output folder. Refused while a training job is running.
(Issue 6 adds GGUF export and the adapter spectrum below the result.)"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from workbench.ui import shared, widgets
from workbench.ui.i18n import m, t


@dataclass
class MergeTab:
    run: gr.Dropdown
    merge: gr.Button
    result: gr.Markdown


def build(ctx) -> MergeTab:
    gr.Markdown(m("merge.explain"))
    with gr.Row(elem_classes=["wb-actions"]):
        run = gr.Dropdown(label=t("merge.run"), choices=[], scale=3, elem_id="merge-run")
        button = gr.Button(t("merge.button"), variant="primary", scale=1,
                           elem_id="merge-button")
    result = gr.Markdown(elem_id="merge-result")
    run.input(widgets.guard(show_report), [run], [result], api_visibility="private")
    button.click(widgets.guard(merge_run), [run], [result], concurrency_id="model",
                 concurrency_limit=1, api_visibility="private")
    return MergeTab(run, button, result)


def wire(ctx, tab: MergeTab, tab_item: gr.Tab) -> None:
    tab_item.select(widgets.guard(refresh), [tab.run], [tab.run, tab.result],
                    api_visibility="private", concurrency_limit=None)


def refresh(selected):
    """Completed runs with an adapter, newest first; keep the choice if it still exists."""
    names = shared.run_names(shared.completed_with_adapter)
    value = selected if selected in names else (names[0] if names else None)
    return gr.update(choices=names, value=value), show_report(value)


def show_report(name) -> str:
    from workbench import merge
    if not name:
        return m("merge.none")
    rep = merge.report(shared.find_run(name))
    return report_markdown(rep) if rep else ""


def merge_run(name) -> str:
    from workbench import merge
    shared.refuse_if_busy("merging")
    rep = merge.merge(shared.find_run(name))
    return report_markdown(rep)


def report_markdown(rep: dict) -> str:
    ok = bool(rep.get("ok"))
    diff = rep.get("max_abs_logit_diff")
    lines = [f"### {'✓' if ok else '✗'} {m('merge.ok' if ok else 'merge.bad')}", "",
             f"- {m('merge.diff')}: **{diff:.2e}** ({m('merge.tolerance')} "
             f"{rep.get('tolerance')})" if isinstance(diff, (int, float)) else "",
             f"- {m('merge.folder')}: `{html.escape(shared.display_path(rep['path']))}`"
             if rep.get("path") else ""]
    return "\n".join(line for line in lines if line is not None)


def api_merge(run: str) -> dict:
    """Merge a run and return its verification report; `folder` is the merged model's
    folder relative to WORKBENCH_HOME. (Not `path`: gradio_client would take a result
    key named path for a file to download.)"""
    from workbench import merge, paths
    shared.refuse_if_busy("merging")
    rep = dict(merge.merge(shared.find_run(run)))
    path = rep.pop("path", None)
    if path:
        try:
            rep["folder"] = str(Path(path).relative_to(paths.home()))
        except ValueError:
            rep["folder"] = Path(path).name
    return rep
