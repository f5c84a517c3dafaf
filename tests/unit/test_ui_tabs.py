"""Each tab's handlers called directly (no browser, no model): run folders are written by
hand the way the training process writes them, and model-bound calls are faked."""

import json
import os
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest
import yaml

from workbench import paths, presets, runs
from workbench.config import Preset
from workbench.errors import RunError
from workbench.ui import app, widgets
from workbench.ui.i18n import field_keys, render
from workbench.ui.tabs import chat, dataset, lora, merge, quantization, training

from tests.children import fake_children


def make_run(name="demo-20250101-120000", state="completed", step=10, max_steps=10,
             pid=None, metrics=None, adapter=True, log="\x1b[Astep 10 done\n") -> Path:
    """A run folder as the training process leaves it."""
    run = paths.runs_dir() / name
    run.mkdir(parents=True)
    (run / "preset.yaml").write_text(presets.to_yaml(presets.load("cpu-demo")), "utf-8")
    runs.write_status(run, state=state, step=step, max_steps=max_steps,
                      pid=pid if pid is not None else os.getpid(),
                      started_at="2025-01-01T12:00:00+00:00", phase="training")
    for rec in metrics if metrics is not None else [
            {"step": 5, "loss": 2.0, "learning_rate": 2e-4, "elapsed_s": 10, "eta_s": 10},
            {"step": 10, "loss": 1.5, "eval_loss": 1.7, "learning_rate": 1e-4,
             "elapsed_s": 20, "eta_s": 0}]:
        runs.append_metrics(run, rec)
    (run / "train.log").write_text(log, "utf-8")
    if adapter:
        (run / "adapter").mkdir()
        (run / "adapter" / "adapter_model.safetensors").write_bytes(b"x")
    return run


def rendered(value) -> str:
    return render(value if isinstance(value, str) else str(value))


def chart_points(charts: str, chart_id: str) -> dict[str, list[tuple[float, float]]]:
    """The points of each series of one SVG chart (training_view.charts_html), read back
    from each dot's tooltip ("name · Step x: y") and checked against the dot's place:
    a larger y is drawn higher."""
    import xml.etree.ElementTree as ET
    box = ET.fromstring(charts).find(f".//div[@id='{chart_id}']")
    out = {}
    for group in box.iter("g"):
        dots = [(float(c.get("cy")), c.find("title").text) for c in group.iter("circle")]
        name = render(dots[0][1].split(" · ")[0])
        pts = [(float(tip.rsplit(": ", 1)[0].rsplit(" ", 1)[1]), float(tip.rsplit(": ", 1)[1]))
               for _, tip in dots]
        for (cy_a, _), (cy_b, _), a, b in zip(dots, dots[1:], pts, pts[1:]):
            assert (a[1] - b[1]) * (cy_b - cy_a) >= 0, (a, b)  # SVG's y grows downwards
        out[name] = pts
    return out


# -- Dataset --------------------------------------------------------------------------

def test_dataset_inspect_shows_format_counts_and_preview():
    summary, preview = dataset.inspect("data/identity.jsonl", "auto", "", "", 0, 42)
    text = rendered(summary)
    assert "alpaca" in text and "rows kept" in text and "0** dropped" in text
    assert isinstance(preview, pd.DataFrame) and {"user", "assistant"} <= set(preview.columns)
    assert preview["assistant"].str.contains("Nova").any()


def test_dataset_errors_stay_in_the_tab_with_file_and_line(tmp_path):
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"instruction": "hi", "output": "yo"}\n{not json\n', "utf-8")
    summary, preview = dataset.inspect(str(bad), "auto", "", "", 0, 42)
    assert "broken.jsonl" in summary and "line 2" in summary
    assert str(tmp_path) not in summary  # no server paths
    assert preview.empty


def test_dataset_bad_mapping_text_is_a_readable_error():
    summary, _ = dataset.inspect("data/identity.jsonl", "auto", "[x", "", 0, 42)
    assert "data.columns" in summary


def test_upload_is_kept_in_workbench_home(tmp_path):
    src = tmp_path / "mine.jsonl"
    src.write_text('{"text": "hello"}\n', "utf-8")
    update = dataset.on_upload(str(src))
    kept = Path(update["value"])
    assert kept.parent == paths.home() / "uploads" and kept.read_text() == src.read_text()
    assert str(kept) in [v for _, v in update["choices"]]
    src.write_text('{"text": "other"}\n', "utf-8")  # same name, new content: not overwritten
    assert dataset.on_upload(str(src))["value"] != str(kept)


# -- Quantization -----------------------------------------------------------------------

def test_measure_reports_footprint_next_to_16_bit(monkeypatch):
    """The tab loads nothing itself: a child (`launch.py quant measure`) gets the settings
    as a preset file and writes the figures to its result file."""
    calls = fake_children(monkeypatch, {
        "model": "embedded:smollm2-135m-instruct", "mode": "nf4",
        "measured_bytes": 100 * 10**6, "full16_bytes": 400 * 10**6, "seconds": 1.5},
        lines=["loading embedded:smollm2-135m-instruct (nf4)"])
    outs = list(quantization.measure("embedded:smollm2-135m-instruct", False, "nf4", True,
                                     "bfloat16", 6.0))
    argv = calls[0]["argv"]
    assert argv[:2] == ["quant", "measure"] and "--json-out" in argv
    sent = yaml.safe_load(calls[0]["preset"])
    assert sent["model"]["name_or_path"] == "embedded:smollm2-135m-instruct"
    assert sent["quantization"]["mode"] == "nf4" and sent["quantization"]["double_quant"]
    assert any("loading embedded" in rendered(o) for o in outs[:-1])  # progress from the log
    text = rendered(outs[-1])
    assert "100.0 MB" in text and "400.0 MB" in text and "25%" in text and "1.5 s" in text
    assert not list((paths.home() / "tmp").iterdir())


def test_load_and_measure_loads_as_configured(monkeypatch):
    """The measuring code the child runs (workbench.train.measure), with the loader faked."""
    from workbench import models
    from workbench.train import lora as core_lora
    from workbench.train.measure import load_and_measure
    seen = {}

    def fake_load(model_cfg, quant_cfg, quantize=True):
        seen.update(mode=quant_cfg.mode, quantize=quantize, name=model_cfg.name_or_path)
        return object()
    monkeypatch.setattr(models, "load_model", fake_load)
    monkeypatch.setattr(models, "footprint_bytes", lambda model: 100 * 10**6)
    monkeypatch.setattr(core_lora, "model_info", lambda name, trust=False: {"total": 200 * 10**6})
    preset = Preset().with_overrides(["model.name_or_path=embedded:smollm2-135m-instruct",
                                      "quantization.mode=nf4"])
    res = load_and_measure(preset.model, preset.quantization)
    assert seen == {"mode": "nf4", "quantize": True, "name": "embedded:smollm2-135m-instruct"}
    assert res["measured_bytes"] == 100 * 10**6 and res["full16_bytes"] == 400 * 10**6
    assert res["mode"] == "nf4" and res["seconds"] >= 0


def test_measure_refuses_while_training(monkeypatch):
    from workbench.runs import jobs
    monkeypatch.setattr(jobs, "spawn", lambda *a, **k: pytest.fail("started"))
    make_run(state="running", pid=os.getpid())
    with pytest.raises(RunError, match="still running"):
        list(quantization.measure("embedded:smollm2-135m-instruct", False, "nf4", True,
                                  "bfloat16", 6.0))


# -- LoRA ---------------------------------------------------------------------------------

def shape_info(shape):
    linears = [(n, i, o, False) for n, i, o in shape.linears()] * shape.layers
    return {"names": sorted({n for n, *_ in linears}), "linears": linears,
            "total": shape.params, "bias_total": 0}


def test_trainable_count_matches_the_memory_estimate():
    from workbench.train import memory
    shape = memory.NAMED["llama-7b"]
    for targets in ("all-linear", ["q_proj", "v_proj"]):
        trainable, total, missing = lora.trainable_params(shape_info(shape), 64, targets)
        expected = memory.estimate(shape, "qlora", r=64, targets=targets).params["trainable"]
        assert trainable == expected and total == shape.params + trainable and missing == []


def test_dora_and_bias_add_parameters():
    info = {"names": ["q_proj"], "linears": [("q_proj", 10, 20, True)], "total": 1000,
            "bias_total": 50}
    assert lora.trainable_params(info, 2, "all-linear")[0] == 2 * 30
    assert lora.trainable_params(info, 2, "all-linear", use_dora=True)[0] == 2 * 30 + 20
    assert lora.trainable_params(info, 2, "all-linear", bias="lora_only")[0] == 60 + 20
    assert lora.trainable_params(info, 2, "all-linear", bias="all")[0] == 60 + 50


def test_count_and_discover_offers_the_models_layers(monkeypatch):
    info = {"names": ["down_proj", "q_proj"], "total": 1000, "bias_total": 0,
            "linears": [("q_proj", 10, 10, False), ("down_proj", 20, 10, False)]}
    monkeypatch.setattr(lora, "model_info", lambda name, trust=False: info)
    text, update = lora.count_and_discover("m", False, 4, ["q_proj"], "none", False)
    assert update["choices"] == ["all-linear", "down_proj", "q_proj"]
    assert "80" in render(text) and "q_proj" in text
    text, _ = lora.count_and_discover("m", False, 4, ["o_proj"], "none", False)
    assert "o_proj" in text and "⚠" in text  # a layer this model does not have


# -- Training -------------------------------------------------------------------------------

def all_values(**changes):
    values = dict(zip(field_keys(), widgets.from_preset(presets.load("cpu-demo"))))
    values.update(changes)
    return list(values.values())


def test_start_builds_the_preset_from_every_tab(monkeypatch):
    from workbench.runs import jobs
    started = {}

    def fake_start(preset, name):
        started.update(preset=preset, name=name)
        return make_run(name=f"{name}-20250101-120000", state="running")
    monkeypatch.setattr(jobs, "start", fake_start)
    update, notice, settings = training.start_run("my-run",
                                                  *all_values(**{"train.max_steps": 3}))
    assert settings["open"] is False
    assert started["name"] == "my-run" and started["preset"].train.max_steps == 3
    assert update["value"] == "my-run-20250101-120000" and "my-run" in notice


def test_second_start_is_refused_naming_the_running_run():
    make_run(name="busy-20250101-120000", state="running", pid=os.getpid())
    with pytest.raises(gr.Error, match="busy-20250101-120000"):
        widgets.guard(training.start_run)("again", *all_values())


def test_bad_run_name_is_refused():
    with pytest.raises(gr.Error, match="name"):
        widgets.guard(training.start_run)("../escape", *all_values())


def test_view_shows_progress_plots_log_and_runs():
    make_run(name="old-20240101-120000", state="failed", adapter=False,
             metrics=[]).joinpath("status.json")
    run = make_run(name="live-20250101-120000", state="running", step=5, max_steps=20,
                   pid=os.getpid())
    out = training.view(None, None)
    (progress, charts, log, table, run_dd, start, stop, resume, note, to_chat,
     load_settings, start_here, shown) = out
    text = rendered(progress)
    assert "live-20250101-120000" in text and "Step 5 / 20" in text and "running" in text
    # training and eval loss on one chart, one series each, on the same step axis
    assert chart_points(charts, "train-plot-loss") == {
        "Training loss": [(5, 2.0), (10, 1.5)], "Eval loss": [(10, 1.7)]}
    assert chart_points(charts, "train-plot-learning-rate") == {
        "Learning rate": [(5, 2e-4), (10, 1e-4)]}
    assert "step 10 done" in log and "\x1b" not in log
    assert "old-20240101-120000" in table and "failed" in rendered(table)
    assert run_dd["value"] == run.name  # attaches to the running job
    assert start["interactive"] is False and stop["interactive"] is True
    # the note says why Start is off and names the run Stop ends
    assert "train.note.busy" in note and "live-20250101-120000" in note
    assert to_chat["visible"] is False
    assert "Step 5 / 20" in rendered(start_here)  # the strip follows the running run
    # the next poll with nothing new skips the plots (no flicker)
    again = training.view(run.name, shown)
    assert all(isinstance(again[i], type(gr.skip())) for i in (1, 2, 3, 11))
    # a finished run selected while another trains: Stop is off (it would stop the other)
    out = training.view("old-20240101-120000", None)
    assert out[6]["interactive"] is False and "train.note.select" in out[8]
    assert "train.no_points" in out[1]  # no metrics: the charts' empty frames say why
    with pytest.raises(Exception, match="train.note.select"):
        training.stop_run("old-20240101-120000")


def test_finished_run_offers_chat_and_its_settings():
    make_run(name="done-20250101-120000")
    out = training.view(None, None)
    start, stop, note, to_chat, load_settings = out[5], out[6], out[8], out[9], out[10]
    assert start["interactive"] is True and stop["interactive"] is False
    assert to_chat["visible"] is True and load_settings["visible"] is True
    assert "train.note.finished" in note
    tabs, names, compare, reason = app.open_in_chat("done-20250101-120000")
    assert names["value"] == "done-20250101-120000" and compare["interactive"] is True
    values = app.load_run_settings("done-20250101-120000")
    assert len(values) == len(field_keys()) + 2 and values[-2] == "done"
    assert "done-20250101-120000" in values[-1]
    with pytest.raises(Exception, match="nothing to stop|train.note.nothing"):
        training.stop_run("done-20250101-120000")


def test_view_without_runs_says_what_to_do():
    progress, *_rest, shown = training.view(None, None)
    assert "Start training" in rendered(progress)


def test_view_survives_a_broken_runs_folder(monkeypatch):
    from workbench import runs as core_runs

    def broken():
        raise PermissionError(f"{paths.runs_dir()}: permission denied")
    monkeypatch.setattr(core_runs, "list_runs", broken)
    progress, *_rest, shown = training.view(None, None)
    assert "permission denied" in progress and str(paths.home()) not in progress
    assert shown is None  # the next poll starts afresh


def test_dead_process_is_shown_as_failed_and_resumable():
    make_run(name="dead-20250101-120000", state="running", pid=2**22 + 12345)
    out = training.view("dead-20250101-120000", None)
    progress, resume, note = out[0], out[7], out[8]
    assert "failed" in rendered(progress) and resume["interactive"] is True
    assert "train.note.resume" in note


def test_stop_asks_the_running_job_to_stop():
    run = make_run(name="live-20250101-120000", state="running", pid=os.getpid())
    notice = training.stop_run(None)
    assert (run / runs.STOP_FILE).exists() and run.name in notice


def test_resume_selects_the_resumed_run(monkeypatch):
    from workbench.runs import jobs
    run = make_run(name="halt-20250101-120000", state="stopped")
    monkeypatch.setattr(jobs, "resume", lambda r: Path(r))
    update, notice = training.resume_run(run.name)
    assert update["value"] == run.name and "halt" in notice


def test_api_status_has_no_server_paths():
    make_run(name="live-20250101-120000", state="completed")
    st = training.api_status("")
    assert st["run"] == "live-20250101-120000" and st["state"] == "completed"
    assert st["loss"] == 1.5 and st["eval_loss"] == 1.7
    assert str(paths.home()) not in json.dumps(st)


# -- Merge ----------------------------------------------------------------------------------

def test_merge_lists_completed_runs_and_shows_the_report(monkeypatch):
    from workbench.export import merge as core_merge
    make_run(name="a-20250101-120000", state="completed")
    make_run(name="b-20250101-130000", state="failed", adapter=False)
    run_update, text = merge.refresh(None)
    assert run_update["choices"] == ["a-20250101-120000"]
    report = {"ok": True, "max_abs_logit_diff": 1.2e-5, "tolerance": 0.01,
              "path": str(paths.runs_dir() / "a-20250101-120000" / "merged")}
    monkeypatch.setattr(core_merge, "merge", lambda *a, **k: pytest.fail("merged in the "
                                                                          "server"))
    calls = fake_children(monkeypatch, report, lines=["applying the adapter"])
    outs = list(merge.merge_run("a-20250101-120000"))
    assert calls[0]["argv"][:2] == ["merge", str(paths.runs_dir() / "a-20250101-120000")]
    assert any("applying the adapter" in rendered(o) for o in outs[:-1])
    text = rendered(outs[-1])
    assert "✓" in text and "1.20e-05" in text and "merged" in text


def test_merge_refuses_during_training():
    make_run(name="a-20250101-120000", state="completed")
    make_run(name="live-20250101-130000", state="running", pid=os.getpid())
    with pytest.raises(RunError, match="live-20250101-130000"):
        list(merge.merge_run("a-20250101-120000"))


def test_merge_failure_shows_the_childs_error(monkeypatch):
    make_run(name="a-20250101-120000", state="completed")
    fake_children(monkeypatch, fail="merge verification failed for a: logits differ")
    with pytest.raises(gr.Error, match="merge verification failed for a"):
        list(widgets.guard(merge.merge_run)("a-20250101-120000"))


# -- Chat -------------------------------------------------------------------------------------

class FakeComparer:
    def __init__(self):
        self.calls = []

    def compare(self, prompt, history_base, history_tuned, gen):
        self.calls.append((prompt, history_base, history_tuned, gen))
        yield "I am", ""
        yield "I am SmolLM.", ""
        yield "I am SmolLM.", "I'm Nova"
        yield "I am SmolLM.", "I'm Nova, made by Workbench Labs."


def gen_values():
    return widgets.from_preset(Preset(), chat.GEN_KEYS)


def test_compare_streams_both_sides_over_several_turns(monkeypatch):
    from workbench import chat as core_chat
    fake = FakeComparer()
    monkeypatch.setattr(core_chat, "get_comparer", lambda run: fake)
    make_run(name="a-20250101-120000")
    steps = list(chat.compare_stream("a-20250101-120000", "Who are you?", [], [],
                                     *gen_values()))
    base, tuned, prompt_box, status = steps[0]
    assert prompt_box == "" and base[-1] == {"role": "user", "content": "Who are you?"}
    assert "chat.generating" in status
    base, tuned, _, _ = steps[-2]
    assert "chat.done" in steps[-1][3]  # then the time both answers took
    assert base[-1]["content"] == "I am SmolLM." and "Nova" in tuned[-1]["content"]
    # second turn: each side continues its own conversation
    as_chatbot = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]}
                  for m in tuned]
    list(chat.compare_stream("a-20250101-120000", "And your maker?", base, as_chatbot,
                             *gen_values()))
    prompt, hist_base, hist_tuned, gen = fake.calls[-1]
    assert hist_base == [("Who are you?", "I am SmolLM.")]
    assert hist_tuned == [("Who are you?", "I'm Nova, made by Workbench Labs.")]
    assert gen.max_new_tokens == Preset().generation.max_new_tokens


def test_compare_needs_a_prompt_and_refuses_during_training(monkeypatch):
    with pytest.raises(Exception, match="chat.empty"):
        list(chat.compare_stream("x", "  ", [], [], *gen_values()))
    make_run(name="live-20250101-130000", state="running", pid=os.getpid())
    with pytest.raises(RunError, match="still running"):
        list(chat.compare_stream("live-20250101-130000", "hi", [], [], *gen_values()))


def test_chat_lists_runs_with_an_adapter():
    make_run(name="a-20250101-120000")
    make_run(name="b-20250101-130000", state="failed", adapter=False)
    runs_update, compare, reason = chat.refresh(None)
    assert runs_update["choices"] == ["a-20250101-120000"]
    assert compare["interactive"] is True and reason == ""


def test_chat_disables_compare_with_the_reason_while_training():
    make_run(name="a-20250101-120000")
    make_run(name="live-20250101-130000", state="running", pid=os.getpid())
    _, compare, reason = chat.refresh(None)
    assert compare["interactive"] is False
    assert "chat.busy" in reason and "live-20250101-130000" in reason
    assert chat.idle()[0]["interactive"] is False  # a finished compare does not re-enable it


# -- preset bar -----------------------------------------------------------------------------

def test_load_fills_every_field_and_the_run_name():
    out = app.load_preset("lora-bf16")
    assert len(out) == len(field_keys()) + 2
    assert widgets.to_preset(out[:-2]) == presets.load("lora-bf16") and out[-2] == "lora-bf16"


def test_save_captures_every_tab_and_refuses_builtin_names():
    update, notice = app.save_preset("mine", "cpu-demo", *all_values(**{"lora.r": 32}))
    assert presets.load("mine").lora.r == 32 and update["value"] == "mine"
    assert ("mine", "mine") in [(v, v) for _, v in update["choices"]]
    with pytest.raises(gr.Error, match="read-only"):
        widgets.guard(app.save_preset)("cpu-demo", "cpu-demo", *all_values())
    with pytest.raises(gr.Error, match="already exists"):
        widgets.guard(app.save_preset)("mine", "cpu-demo", *all_values())
    app.save_preset("mine", "mine", *all_values(**{"lora.r": 4}))  # re-save the selected one
    assert presets.load("mine").lora.r == 4


def test_the_log_reads_as_plain_lines():
    # issue 14: the page showed the trainer's raw output, library warnings included
    from workbench.ui.tabs.training_log import readable_log
    raw = "\n".join([
        "data: alpaca format, 72 rows (0 dropped), 65 train / 7 eval examples",
        "/x/.venv/lib/python3.11/site-packages/transformers/training_args.py:1541: "
        "FutureWarning: `gradient_checkpointing` is deprecated",
        "  warnings.warn(f\"`{old}` is deprecated\", FutureWarning)",
        "Tokenizing train dataset: 100%|██████████| 65/65 [00:00<00:00, 649.53 examples/s]",
        "{'loss': '3.613', 'grad_norm': '2.094', 'learning_rate': '0.0009738', "
        "'epoch': '0.2941'}",
        " 17%|█▋        | 5/30 [02:32<10:57, 26.28s/it]",
        "                                              ",
        "{'eval_loss': '1.034', 'eval_runtime': '35.56', 'epoch': '1.765'}",
        " 20%|██        | 6/30 [02:37<07:43, 19.31s/it]"])
    assert readable_log(raw).split("\n") == [
        "data: alpaca format, 72 rows (0 dropped), 65 train / 7 eval examples",
        "Tokenizing train dataset: 65/65",
        "loss 3.613 · learning rate 0.0009738 · epoch 0.29",
        "eval loss 1.034 · epoch 1.76",
        "step 6/30"]
    assert readable_log("Traceback (most recent call last):\n  File x") == \
        "Traceback (most recent call last):\n  File x"  # errors stay whole


def test_delete_only_user_presets():
    app.api_save_preset("gone", "cpu-demo", ["train.max_steps=5"])
    update, _ = app.delete_preset("gone")
    assert "gone" not in presets.user_names() and update["value"] == "cpu-demo"
    with pytest.raises(gr.Error, match="built in"):
        widgets.guard(app.delete_preset)("cpu-demo")


def test_delete_is_off_for_built_in_presets_and_a_cancel_changes_nothing():
    app.api_save_preset("mine2", "cpu-demo")
    assert app.delete_button("cpu-demo")["interactive"] is False
    assert app.delete_button("mine2")["interactive"] is True
    assert app.delete_button(None)["interactive"] is False
    # the browser's confirm() sends null when the user says no
    assert all(isinstance(u, type(gr.skip())) for u in app.delete_preset(None))
    assert "mine2" in presets.user_names()
    js = app.confirm_delete_js()
    assert "confirm(" in js and "删除你的预设" in js and "Delete your preset" in js


def test_folder_key_changes_only_when_a_run_file_changed(monkeypatch):
    """Issue 9: the page's poll asks for folder_key (stats of the run folders) and redraws
    the view (13 components and two plots) only when it changed: a status, metrics, log or
    samples file, a new run, or, while a run runs, the CLOCK_SECONDS clock."""
    from workbench.ui.tabs import training_view
    clock = [1_000_000.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    run = make_run(name="live-20250101-120000", state="running", step=3, max_steps=10)
    first = training_view.folder_key()
    assert isinstance(first, str) and training_view.folder_key() == first  # nothing changed
    with open(run / "metrics.jsonl", "a") as fh:  # a new step's metrics line
        fh.write(json.dumps({"step": 4, "loss": 1.0}) + "\n")
    second = training_view.folder_key()
    assert second != first
    clock[0] += training_view.CLOCK_SECONDS  # elapsed time moves on while it runs
    third = training_view.folder_key()
    assert third != second
    runs.write_status(run, state="completed", step=10, max_steps=10, pid=os.getpid(),
                      started_at="2025-01-01T12:00:00+00:00", phase="training")
    done = training_view.folder_key()
    assert done != third
    clock[0] += 10 * training_view.CLOCK_SECONDS  # nothing runs: no clock
    assert training_view.folder_key() == done
    make_run(name="other-20250101-130000")  # a new run folder changes it
    assert training_view.folder_key() != done


def test_live_returns_only_the_parts_that_changed():
    """Issue 9: the page's poll asks `live` (a plain request, no Gradio event) and writes
    the parts it returns (progress, charts, log, runs list, strip) in place; only parts
    that changed come back, and `redraw` (a Gradio event for the controls and the sample
    table) is asked for only when one of those changed."""
    from workbench.ui.tabs import training_view
    run = make_run(name="done-20250101-120000")
    # as the page holds it: the picker shows the run
    first = json.loads(json.dumps(training_view.live(run.name, None)))
    parts, known = first["parts"], first["known"]
    assert set(parts) == set(training_view.LIVE_PARTS) and first["redraw"] is True
    assert "done-20250101-120000" in rendered(parts["progress"])
    assert "step 10 done" in parts["log"] and "\x1b" not in parts["log"]
    assert "done-20250101-120000" in parts["list"] and "completed" in rendered(parts["list"])
    assert "guide.title" in parts["guide"]
    assert chart_points(parts["plots"], "train-plot-loss")["Training loss"] == [(5, 2.0),
                                                                                (10, 1.5)]
    # nothing new on disk: nothing to write, no event
    assert training_view.live(run.name, known) == {"known": known, "parts": {},
                                                   "redraw": False}
    # a new step's metrics: the charts change (the run is not running: at once), the
    # progress box is as it was (a completed run shows its status.json, not its metrics)
    runs.append_metrics(run, {"step": 11, "loss": 1.2, "learning_rate": 5e-5})
    again = training_view.live(run.name, known)
    assert set(again["parts"]) == {"plots"} and again["redraw"] is False
    assert chart_points(again["parts"]["plots"], "train-plot-learning-rate")[
        "Learning rate"][-1] == (11, 5e-5)
    known = again["known"]
    # a new run: the list and the strip change, and the controls (its name joins the picker)
    make_run(name="new-20250101-130000", state="stopped")
    third = training_view.live(run.name, known)
    assert {"list"} <= set(third["parts"]) and third["redraw"] is True
    assert "plots" not in third["parts"]
    assert third["known"]["rare"]["controls"] != known["rare"]["controls"]
    # a text that could be markup is shown as text
    (run / "train.log").write_text("<img src=x onerror=alert(1)>\n", "utf-8")
    log = training_view.live(run.name, third["known"])["parts"]["log"]
    assert "<img" not in log and "&lt;img" in log


def test_poll_hands_out_only_the_keys_that_changed(monkeypatch):
    """The Gradio event behind `redraw`: the keys of the controls and the sample table,
    each skipped when as shown, so that only a changed key fires its redraw. It builds
    none of the view's HTML (the charts, the log), which `live` sends."""
    from workbench.ui.tabs import training_view
    for built in ("charts_html", "progress_html", "runs_html", "readable_log"):
        monkeypatch.setattr(training_view, built,
                            lambda *a, built=built, **k: pytest.fail(f"poll built {built}"))
    run = make_run(name="done-20250101-120000")
    controls, samples = training_view.poll(None, None, None)
    buttons = training_view.draw_controls(controls)
    assert buttons[0]["value"] == run.name and buttons[6]["visible"] is True
    assert samples == [run.name, None, None]  # no samples.jsonl yet
    assert training_view.poll(None, controls, samples) == [gr.skip()] * 2
    # a key read for a run the picker already shows never sets the picker: Start selects
    # the new run while a poll read with the run picked before may still be on its way
    picked = training_view.poll(run.name, None, None)[0]
    assert "value" not in training_view.draw_controls(picked)[0]
    runs.write_status(run, state="failed")
    again = training_view.poll(None, controls, samples)
    assert again[0] != gr.skip() and again[0][3] == "failed" and again[1] == gr.skip()


def test_live_redraws_a_running_runs_charts_at_most_every_plot_seconds(monkeypatch):
    """Issue 9: while the run runs, new chart points wait until PLOT_SECONDS after the
    charts were last written, while the progress box moves on at once. The run's end
    shows at once."""
    from workbench.ui.tabs import training_view
    clock = [1_000_000.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    run = make_run(name="live-20250101-120000", state="running", step=5, max_steps=20)
    first = training_view.live(run.name, None)  # the page shows the run
    assert "plots" in first["parts"] and first["known"]["plots_at"] == clock[0]
    runs.append_metrics(run, {"step": 15, "loss": 1.2, "learning_rate": 5e-5})
    runs.write_status(run, step=15)
    clock[0] += training_view.PLOT_SECONDS - 1
    soon = training_view.live(run.name, first["known"])
    assert "plots" not in soon["parts"] and soon["known"]["plots_waiting"] is True
    assert "Step 15 / 20" in rendered(soon["parts"]["progress"])
    clock[0] += 1  # nothing new on disk, but the waiting points are due now
    due = training_view.live(run.name, soon["known"])
    assert set(due["parts"]) == {"plots"} and due["known"]["plots_waiting"] is False
    assert (15, 1.2) in chart_points(due["parts"]["plots"], "train-plot-loss")["Training loss"]
    runs.append_metrics(run, {"step": 20, "loss": 1.1, "learning_rate": 0.0})
    runs.write_status(run, state="completed", step=20)
    clock[0] += 1  # ended: its last points at once
    end = training_view.live(run.name, due["known"])
    assert (20, 1.1) in chart_points(end["parts"]["plots"], "train-plot-loss")["Training loss"]
    assert training_view.live(run.name, end["known"])["parts"] == {}  # nothing new
