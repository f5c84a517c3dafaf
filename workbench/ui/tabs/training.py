"""Training tab: the train settings, Start and Stop, and a live view of a run (progress
with step/total, elapsed and ETA; loss and learning-rate plots; the tail of the log), the
list of runs with their state, and Resume for a stopped or failed run.

Training runs in its own process (`workbench.runs.jobs`); this tab only starts it and
reads its run folder. While the tab shows, the page asks what changed in the run folders
(POLL_SCRIPT, training_view.live) and writes it in place; on page load
the view attaches to the running job (or the newest run), so a reload or a second browser
tab sees the same run.
Widgets: every `train.*` and `distributed.*` Preset field (with the number of GPUs).

"Dry run" trains 5 steps of the page's settings in its own process (`launch.py dryrun`
through jobs.spawn, nothing kept; progress from its log, figures from its result file)
and shows the measured speed, peak memory and ETA beside the estimate.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from workbench.presets import check_name
from workbench.ui import guide, shared, widgets
from workbench.ui.i18n import m, t, text
from workbench.ui.tabs import training_samples
from workbench.ui.tabs.training_view import (MIN_REDRAW_SECONDS, POLL_SECONDS, draw_controls,
                                             live, poll, view)

DRY_RUN_STEPS = 5
LIVE_API = "train_live"

# The Training tab's poll, in the page: every POLL_SECONDS while the tab is on screen (and
# the browser tab visible) it asks training_view.live, a plain POST to a queue-less
# endpoint, which is not a Gradio event in the page. It writes the parts that changed (the
# progress box, the charts, the log, the runs list, the strip) into their .wb-live boxes
# itself, then waits MIN_REDRAW_SECONDS; only when the controls or the sample table changed
# does it click the hidden #train-refresh, whose one event redraws those. Every Gradio
# event costs the browser work on all the components it knows (updating their loading
# status), ~0.1-0.2 s of script on a 2-core machine, even when nothing changed.
POLL_SCRIPT = """<script>
(() => {
  const EVERY_MS = %(every)d, MIN_REDRAW_MS = %(min_redraw)d;
  let known = null, lastWrite = 0, asking = false;
  function write(part, inner) {
    document.querySelectorAll('.wb-live[data-wb-part="' + part + '"]').forEach((box) => {
      const old = box.querySelector("pre");
      const follow = !old || old.scrollTop + old.clientHeight >= old.scrollHeight - 4;
      box.innerHTML = inner;
      const pre = box.querySelector("pre");
      if (pre && follow) pre.scrollTop = pre.scrollHeight;  // the log: its end, as it grows
    });
  }
  setInterval(async () => {
    const box = document.getElementById("train-progress");
    const refresh = document.getElementById("train-refresh");
    if (asking || document.hidden || !box || !refresh || box.offsetParent === null) return;
    if (Date.now() - lastWrite < MIN_REDRAW_MS) return;
    asking = true;
    try {
      const picker = document.querySelector("#train-run input");
      const url = new URL("gradio_api/run/%(api)s", document.baseURI);
      const resp = await fetch(url, {method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({data: [picker ? picker.value : "", known]})});
      if (!resp.ok) return;
      const answer = (await resp.json()).data[0];
      known = answer.known;
      const parts = Object.entries(answer.parts || {});
      parts.forEach(([part, inner]) => write(part, inner));
      if (parts.length) lastWrite = Date.now();
      if (answer.redraw) refresh.click();
    } catch (err) { /* the server is restarting: the next tick asks again */ }
    finally { asking = false; }
  }, EVERY_MS);
})();
</script>
""" % {"every": POLL_SECONDS * 1000, "min_redraw": MIN_REDRAW_SECONDS * 1000,
       "api": LIVE_API}

# the train.* fields in rows of four, most used first
LAYOUT = [["train.epochs", "train.max_steps", "train.learning_rate", "train.lr_scheduler"],
          ["train.batch_size", "train.grad_accum", "train.max_length", "train.warmup_ratio"],
          ["train.optimizer", "train.max_grad_norm", "train.seed", "train.logging_steps"],
          ["train.eval_steps", "train.save_steps", "train.watch_prompts"],
          ["train.completion_only_loss", "train.gradient_checkpointing", "train.packing"]]
DISTRIBUTED = ["distributed.processes", "distributed.launcher", "distributed.accelerate_config"]


@dataclass
class TrainingTab:
    settings: gr.Accordion
    run_name: gr.Textbox
    start: gr.Button
    stop: gr.Button
    resume: gr.Button
    run: gr.Dropdown
    notice: gr.Markdown
    progress: gr.HTML
    charts: gr.HTML  # the loss chart (training and eval loss) and the learning-rate chart
    log: gr.HTML
    runs_table: gr.HTML
    refresh: gr.Button  # hidden; POLL_SCRIPT clicks it when the run folders changed
    shown: gr.State
    dry_run: gr.Button | None = None
    dry_result: gr.Markdown | None = None
    action_note: gr.Markdown | None = None  # why Start/Stop/Resume are on or off
    to_chat: gr.Button | None = None         # a finished run: compare it in Chat
    load_settings: gr.Button | None = None   # a run's own settings into every tab
    start_here: gr.HTML | None = None        # the page's "start here" strip (ui/guide.py)

    @property
    def view_outputs(self) -> list:
        return [self.progress, self.charts, self.log,
                self.runs_table, self.run, self.start, self.stop, self.resume,
                self.action_note, self.to_chat, self.load_settings, self.start_here,
                self.shown]


def build(ctx) -> TrainingTab:
    with gr.Accordion(t("train.settings"), open=True) as settings:
        fields = {}
        for row in LAYOUT:
            with gr.Row():
                for dotted in row:
                    fields[dotted] = ctx.field(dotted, **(
                        training_samples.WATCH_FIELD if dotted == "train.watch_prompts"
                        else {}))
        with gr.Row():  # distributed.*: how many processes, beside the GPUs there are
            for dotted in DISTRIBUTED:
                fields[dotted] = ctx.field(dotted)
            gr.Markdown(gpu_note(), elem_id="train-gpus")
    with gr.Row(elem_classes=["wb-actions"]):
        run_name = gr.Textbox(label=t("train.run_name"), info=t("train.run_name.help"),
                              value=ctx.initial_name or "run", max_length=64, scale=3,
                              elem_id="train-run-name")
        start = gr.Button(t("train.start"), variant="primary", scale=1, elem_id="train-start")
        stop = gr.Button(t("train.stop"), variant="stop", scale=1, interactive=False,
                         elem_id="train-stop")
        dry = gr.Button(t("dry.button"), variant="secondary", scale=1, elem_id="train-dry-run")
    notice = gr.Markdown(elem_id="train-notice")
    action_note = gr.Markdown(elem_id="train-action-note")
    dry_result = gr.Markdown(elem_id="train-dry-result")
    progress = gr.HTML(elem_id="train-progress")
    # the charts (SVG drawn on the server, training_view.charts_html), the log, the progress
    # box and the runs list are HTML the page's poll rewrites in place
    charts = gr.HTML(elem_id="train-charts")
    log = gr.HTML(elem_id="train-log", elem_classes=["wb-log"])
    samples_box, samples_shown = training_samples.build()  # the answers at each eval step
    with gr.Row(elem_classes=["wb-actions"]):
        run = gr.Dropdown(label=t("train.run"), choices=[], scale=3, elem_id="train-run")
        resume = gr.Button(t("train.resume"), scale=1, interactive=False,
                           elem_id="train-resume")
        load_settings = gr.Button(t("train.load_settings"), scale=1, visible=False,
                                  elem_id="train-load-settings")
        to_chat = gr.Button(t("train.to_chat"), variant="primary", scale=1, visible=False,
                            elem_id="train-to-chat")
    runs_table = gr.HTML(elem_id="train-runs")
    refresh = gr.Button(visible="hidden", elem_id="train-refresh")
    shown = gr.State(None)
    tab = TrainingTab(settings, run_name, start, stop, resume, run, notice, progress,
                      charts, log,
                      runs_table, refresh, shown, dry, dry_result, action_note, to_chat,
                      load_settings, ctx.start_here)

    # polling and picking a run only read the run folders: cheap, no queue limit
    read_kw = dict(api_visibility="private", concurrency_limit=None, show_progress="hidden")
    # the page's poll (POLL_SCRIPT) asks `live` and writes what changed (progress, charts,
    # log, runs list, strip) itself; when the controls or the sample table changed, it
    # clicks `refresh`, whose one event hands their keys to States whose change events
    # redraw them
    gr.api(live, api_name=LIVE_API, queue=False, concurrency_limit=None,
           api_visibility="undocumented")
    controls_key = gr.State(None)
    refresh.click(poll, [run, controls_key, samples_shown], [controls_key, samples_shown],
                  **read_kw)
    controls_key.change(draw_controls, [controls_key], tab.view_outputs[4:11], **read_kw)
    training_samples.wire(samples_box, samples_shown, run)
    run.input(view, [run, gr.State(None)], tab.view_outputs, **read_kw)
    widgets.on(stop.click, stop_run, [run], [notice], notice)
    widgets.on(resume.click, resume_run, [run], [run, notice], notice)
    return tab


def wire(ctx, tab: TrainingTab, demo: gr.Blocks) -> None:
    """Start needs every tab's widgets; page load attaches to the running job."""
    widgets.on(tab.start.click, start_run, [tab.run_name, *ctx.field_list()],
               [tab.run, tab.notice, tab.settings], tab.notice)
    demo.load(view, [gr.State(None), gr.State(None)], tab.view_outputs,
              api_visibility="private", concurrency_limit=None, show_progress="hidden")
    widgets.on(tab.dry_run.click, dry_run, ctx.field_list(), [tab.dry_result], tab.dry_result,
               concurrency_id="model", concurrency_limit=1)


# -- actions ----------------------------------------------------------------------------

def start_run(run_name, *values):
    """Validate every tab into a Preset and start training it in its own process."""
    from workbench import chat
    from workbench.runs import jobs
    preset = widgets.to_preset(values)
    name = check_name((run_name or "").strip() or "run")
    chat.release()  # the chat model would compete with training for memory
    run = jobs.start(preset, name)
    return (gr.update(choices=shared.run_names(), value=run.name),
            f"✓ {m('train.started')}: **{html.escape(run.name)}**",
            gr.update(open=False))  # make room for the progress, plots and log


def stop_run(selected):
    """Stop the selected run, which must be the one training (the button says so)."""
    from workbench.errors import RunError
    from workbench.runs import jobs
    active = shared.active_run_name()
    if not active:
        raise RunError(m("train.note.nothing"))
    if selected and selected != active:
        raise RunError(f"{m('train.note.select')} ({active})")
    run = jobs.stop(shared.find_run(active))
    return f"■ {m('train.stop_requested')} (**{html.escape(Path(run).name)}**)"


def resume_run(selected):
    from workbench.runs import jobs
    run = jobs.resume(shared.find_run(selected))
    return (gr.update(choices=shared.run_names(), value=Path(run).name),
            f"✓ {m('train.resumed')}: **{html.escape(Path(run).name)}**")


def dry_run(progress=gr.Progress(), *values):
    """Train DRY_RUN_STEPS steps of the page's settings in its own process (`launch.py
    dryrun`), showing its progress, then the measured figures beside the estimate."""
    shared.refuse_if_busy("a dry run")
    preset = widgets.to_preset(values)
    yaml_path = shared.temp_preset(preset, "dryrun-")
    progress(0, desc=text("dry.starting"))
    yield f"{m('dry.starting')}"
    try:
        argv = ["dryrun", str(yaml_path), "--steps", str(DRY_RUN_STEPS)]
        # glibc then returns freed memory, so the measured peak RSS follows live tensors
        with shared.job("dryrun", argv, env={"MALLOC_MMAP_THRESHOLD_": "65536"}) as child:
            for line in shared.job_lines(child):
                progress(None, desc=line[:80])
                yield f"{m('dry.running')} · `{html.escape(line[:120])}`"
            result = shared.job_result(child)
    finally:
        yaml_path.unlink(missing_ok=True)
    guide.remember_dry_run(result)  # the "start here" strip quotes its ETA
    yield dry_run_markdown(result)


def gpu_note() -> str:
    """The number of GPUs, beside the processes field (one process per GPU)."""
    from workbench.train import distributed
    n = distributed.gpu_count()
    return f"{m('dist.gpus')} **{n}**" if n else f"{m('dist.gpus')} {m('dist.cpu_only')}"


def dry_run_markdown(res: dict) -> str:
    from workbench.units import fmt_bytes
    est = (res.get("estimate") or {}).get("total_bytes")
    peak = res.get("peak_bytes")
    vs = f" · {m('dry.estimate')} {fmt_bytes(est)}" if est else ""
    if est and peak:
        vs += f" ({100 * (peak / est - 1):+.0f}%)"
    tps = res.get("tokens_per_second")
    return (f"**{m('dry.result')}** ({res.get('steps')} {m('dry.measured')}, "
            f"{res.get('device')})\n\n"
            f"- {m('dry.seconds_per_step')}: **{res.get('seconds_per_step')}**\n"
            f"- {m('dry.tokens_per_second')}: **{tps if tps is not None else '–'}**\n"
            f"- {m('dry.peak')}: **{fmt_bytes(peak or 0)}**{vs}\n"
            f"- {m('dry.eta')}: {res.get('full_run_steps')} {m('dry.steps')} "
            f"**{shared.duration(res.get('eta_seconds'))}** "
            f"({m('dry.load')} {res.get('load_seconds')} s)\n"
            + (f"- {m('dry.per_process')} **{res['world_size']}**\n"
               if (res.get("world_size") or 1) > 1 else "")
            + f"\n*{m('dry.explain')}*")


# -- script API (gradio_client) ---------------------------------------------------------

def api_start(preset: str = "cpu-demo", name: str = "", overrides: list[str] | None = None
              ) -> dict:
    """Start training a preset (a name, never a path) with `section.key=value` overrides."""
    from workbench import chat, presets
    from workbench.runs import jobs
    p = presets.load(preset, list(overrides or []), names_only=True)
    run_name = check_name(name.strip() or Path(preset).stem)
    chat.release()
    run = jobs.start(p, run_name)
    return api_status(run.name)


def api_stop(run: str = "") -> dict:
    from workbench.runs import jobs
    target = run or shared.active_run_name()
    stopped = jobs.stop(shared.find_run(target))
    return {"run": Path(stopped).name, "stop_requested": True}


def api_status(run: str = "") -> dict:
    """State of a run (default: the running one, else the newest), its progress and last
    metrics; no server paths."""
    from workbench import runs
    name = run or shared.active_run_name() or next(iter(shared.run_names()), None)
    if not name:
        return {"run": None, "state": None, "runs": []}
    folder = shared.find_run(name)
    st = runs.status(folder)
    records = runs.metrics(folder)
    losses = [r["loss"] for r in records if "loss" in r]
    evals = [r["eval_loss"] for r in records if "eval_loss" in r]
    last = next((r for r in reversed(records) if "elapsed_s" in r), {})
    return {"run": folder.name, "state": st.get("state"), "phase": st.get("phase"),
            "step": st.get("step"), "max_steps": st.get("max_steps"),
            "elapsed_s": last.get("elapsed_s"), "eta_s": last.get("eta_s"),
            "loss": losses[-1] if losses else None, "eval_loss": evals[-1] if evals else None,
            "metrics": len(records), "has_adapter": runs.has_adapter(folder),
            "error": widgets.clean_message(st["error"]) if st.get("error") else None}
