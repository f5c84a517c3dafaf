"""Quantization tab (memory estimate chart, fit line, Compare quantisations) and the
Training tab's Dry run, handlers called directly. The model shape comes from the tiny
model's config.json or a named size; the children are small stand-in scripts started
through the real jobs.spawn (tests/children.py), except one real launch.py error, so the
tests stay fast."""

import json
import os
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest

from workbench.train import memory
from workbench import paths, presets
from workbench.errors import RunError
from workbench.ui import shared, widgets
from workbench.ui.i18n import field_keys, render, text
from workbench.ui.tabs import quantization as quant_tab
from workbench.ui.tabs import training

from tests.children import fake_children
from tests.unit.test_ui_tabs import make_run

PLENTY = ("ram", 64 * 10**9, 32 * 10**9)


def no_progress(*args, **kwargs):
    pass


def est_values(model, **changes):
    """The estimate's widget values, cpu-demo's settings with `changes` (dotted keys)."""
    all_values = dict(zip(field_keys(), widgets.from_preset(presets.load("cpu-demo"))))
    all_values.update({"model.name_or_path": str(model), **changes})
    return [all_values[k] for k in quant_tab.ESTIMATE_KEYS]


def chart_of(monkeypatch, model, device=PLENTY, **changes) -> tuple[pd.DataFrame, str]:
    monkeypatch.setattr(memory, "device_memory", lambda: device)
    chart, fits = quant_tab.update_estimate(None, *est_values(model, **changes))
    return chart, render(fits)


def totals(frame: pd.DataFrame) -> dict:
    return frame.groupby("method", sort=False)["GB"].sum().to_dict()


def test_chart_has_every_component_for_full_lora_and_the_chosen_method(monkeypatch,
                                                                        tiny_model_dir):
    frame, fits = chart_of(monkeypatch, tiny_model_dir)
    components = [text(k) for k, _, _ in quant_tab.COMPONENTS]
    methods = list(dict.fromkeys(frame["method"]))
    assert methods == ["Full 16-bit", "LoRA 16-bit", "QLoRA nf4 + DQ ★"]
    assert set(methods) <= set(quant_tab.method_order())
    assert len(frame) == 3 * len(components)  # zeros included: every colour from the start
    for method in methods:
        assert list(frame[frame["method"] == method]["component"]) == components
    full = frame[frame["method"] == "Full 16-bit"].set_index("component")["GB"]
    assert full[text("qmem.lora")] == 0 and full[text("qmem.optimizer")] > 0
    # the chart shows exactly what memory.estimate says, folded into five components
    preset = quant_tab.estimate_preset(dict(zip(quant_tab.ESTIMATE_KEYS,
                                                est_values(tiny_model_dir))))
    shape = memory.shape_for(str(tiny_model_dir))
    qlora = memory.estimate_for_preset(preset, shape=shape, method="qlora")
    assert totals(frame)["QLoRA nf4 + DQ ★"] == pytest.approx(qlora.total_bytes / 1e9,
                                                              abs=1e-3)
    assert "✓" in fits and "fits" in fits and "★" in fits


def test_rank_and_batch_size_change_the_bars(monkeypatch):
    base = totals(chart_of(monkeypatch, "llama-7b")[0])
    more_r = totals(chart_of(monkeypatch, "llama-7b", **{"lora.r": 64})[0])
    more_batch = totals(chart_of(monkeypatch, "llama-7b", **{"train.batch_size": 8})[0])
    chosen = "QLoRA nf4 + DQ ★"
    assert more_r[chosen] > base[chosen] and more_r["Full 16-bit"] == base["Full 16-bit"]
    assert more_batch[chosen] > base[chosen] and more_batch["Full 16-bit"] > base["Full 16-bit"]


def test_the_chosen_mode_moves_the_star(monkeypatch):
    int8 = chart_of(monkeypatch, "llama-7b", **{"quantization.mode": "int8"})[0]
    none = chart_of(monkeypatch, "llama-7b", **{"quantization.mode": "none"})[0]
    fp4 = chart_of(monkeypatch, "llama-7b", **{"quantization.mode": "fp4",
                                               "quantization.double_quant": False})[0]
    assert list(dict.fromkeys(int8["method"]))[-1] == "LoRA int8 ★"
    assert "LoRA 16-bit ★" in set(none["method"]) and "QLoRA nf4 + DQ" in set(none["method"])
    assert "QLoRA fp4 ★" in set(fp4["method"])


def test_fit_line_says_when_it_does_not_fit(monkeypatch):
    small_gpu = ("gpu", 16 * 10**9, 12 * 10**9)
    light = {"train.batch_size": 1, "train.gradient_checkpointing": True}
    _, fits = chart_of(monkeypatch, "llama-7b", device=small_gpu, **light)
    assert "GPU memory" in fits and "12.00 GB free" in fits
    # what the bars assume (issue 14): the Training tab's batch size × max length
    L = presets.load("cpu-demo").train.max_length
    assert f"For batch **1** × length **{L}** tokens" in fits
    zh = render(quant_tab.update_estimate(None, *est_values("llama-7b", **light))[1], "zh")
    assert f"按批大小 **1** × 长度 **{L}** 个 token" in zh
    assert "✗ Full 16-bit" in fits and "does not fit" in fits
    assert "✓ QLoRA" in fits and "do not fit" not in fits  # the chosen one fits
    _, fits = chart_of(monkeypatch, "llama-65b", device=small_gpu, **light)
    assert "✗ QLoRA" in fits and "gradient checkpointing" in fits


def test_the_fit_line_says_what_auto_checkpointing_became_at_that_length(monkeypatch):
    _, fits = chart_of(monkeypatch, "llama-7b")  # cpu-demo: auto; batch 4 x 512 tokens
    assert "Gradient checkpointing auto → on: batches of 4 × 512 tokens" in fits
    assert "--seq-len" not in fits  # the CLI's advice; the page says how to set the length
    _, fits = chart_of(monkeypatch, "llama-7b", **{"train.gradient_checkpointing": "off"})
    assert "Gradient checkpointing auto" not in fits


def test_analysed_data_sets_the_length_and_the_line_says_so(monkeypatch, tmp_path):
    """Issue 9: with the Dataset tab's analysis, the activations are sized for the data's
    longest batch, not max_length (cpu-demo's rows are far shorter than 512)."""
    from transformers import AutoTokenizer
    from workbench.train import preview as inspect_data
    from tests.unit.test_inspect_data import TOKENIZER_DIR
    rows = [{"instruction": f"Question {i}?", "output": "ok " * i} for i in range(1, 11)]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    stats = inspect_data.stats(presets.load("cpu-demo").with_overrides({"data.path": str(path)}),
                               tokenizer=AutoTokenizer.from_pretrained(TOKENIZER_DIR))
    longest = stats.summary()["tokens"]["max"]
    monkeypatch.setattr(memory, "device_memory", lambda: PLENTY)
    values = est_values("llama-7b")
    chart, fits = quant_tab.update_estimate_for_data(None, stats, *values)
    assert f"length **{longest}** tokens" in render(fits) and "longest batch" in render(fits)
    assert f"长度 **{longest}** 个 token" in render(fits, "zh")
    plain, plain_fits = quant_tab.update_estimate(None, *values)
    assert "analyse the data" in render(plain_fits)
    chosen = "QLoRA nf4 + DQ ★"
    assert totals(chart)[chosen] < totals(plain)[chosen]  # fewer activations
    preset = quant_tab.estimate_preset(dict(zip(quant_tab.ESTIMATE_KEYS, values)))
    want = memory.estimate_for_preset(preset, shape=memory.shape_for("llama-7b"),
                                      method="qlora", seq_len=longest)
    assert totals(chart)[chosen] == pytest.approx(want.total_bytes / 1e9, abs=1e-3)


def test_bad_values_show_beside_the_chart_not_as_a_crash(monkeypatch, tmp_path):
    chart, fits = quant_tab.update_estimate(None, *est_values("llama-7b", **{"lora.r": 0}))
    assert chart == gr.skip() and "lora.r" in fits and fits.startswith("⚠")
    chart, fits = quant_tab.update_estimate(None, *est_values(tmp_path / "nothing-here"))
    assert chart == gr.skip() and "⚠" in fits and str(tmp_path) not in fits


def test_embedded_shape_comes_from_the_gguf_header_without_importing(monkeypatch):
    from workbench import models
    monkeypatch.setattr(models, "resolve", lambda *a: pytest.fail("must not import"))
    quant_tab.model_shape.cache_clear()
    shape = quant_tab.model_shape(models.EMBEDDED)
    # SmolLM2-135M: the numbers of the imported config.json
    assert (shape.hidden, shape.intermediate, shape.layers, shape.heads, shape.kv_heads,
            shape.vocab, shape.tied) == (576, 1536, 30, 9, 3, 49152, True)


def test_chinese_page_gets_chinese_chart_labels(monkeypatch):
    class Req:
        headers = {"accept-language": "zh-CN,zh;q=0.9"}
    monkeypatch.setattr(memory, "device_memory", lambda: PLENTY)
    chart, _ = quant_tab.update_estimate(Req(), *est_values("llama-7b"))
    assert text("qmem.weights", "zh") in set(chart["component"])
    # colours and bar order are set once for both languages (see quantization.color_map)
    assert set(chart["component"]) <= set(quant_tab.color_map())
    assert set(chart["method"]) <= set(quant_tab.method_order())


# -- Compare quantisations ------------------------------------------------------------------

FAKE_RESULT = {
    "model": "/somewhere/model", "source": "preset", "dtype": "bfloat16", "device": "cpu",
    "eval": {"source": "eval split of data/identity.jsonl", "texts": 3, "tokens": 120},
    "table": [{"variant": v, "bits_per_param": b, "footprint_bytes": 10**6 * b,
               "load_seconds": 1.0, "quantize_seconds": 0.5, "mean_rel_error": e,
               "max_rel_error": 2 * e, "perplexity": 10 * (1 + e),
               "perplexity_change_pct": 100 * e}
              for v, b, e in (("none", 16, 0.0), ("nf4", 4.5, 0.09), ("fp4", 4.5, 0.11))],
    "layers": [{"name": f"model.layers.{i}.self_attn.q_proj", "layer": i, "module": "q_proj",
                "errors": {"none": 0.0, "nf4": 0.09 + i / 100, "fp4": 0.11 + i / 100}}
               for i in range(3)],
    "nf4_vs_fp4": {"verdict": "NF4 beats FP4 on this model and data: ..."}, "notes": []}


def all_field_values(**changes):
    values = dict(zip(field_keys(), widgets.from_preset(presets.load("cpu-demo"))))
    values.update(changes)
    return list(values.values())


def test_compare_runs_the_cli_and_shows_table_and_layer_plot(monkeypatch):
    calls = fake_children(monkeypatch, FAKE_RESULT,
                          lines=["[ 10%] weight error: model.layers.0.q_proj", "noise"])
    values = all_field_values(**{"quantization.compute_dtype": "float32"})
    outs = list(quant_tab.compare_quantizations(None, no_progress, False, *values))
    assert [o[0] for o in outs[:2]] and "10%" in outs[1][0]
    status, table, plot, shown = outs[-1]
    assert shown.visible is True  # the results column, hidden while empty
    assert calls[0]["argv"][:2] == ["quant", "compare"] and "--no-perplexity" in calls[0]["argv"]
    assert "--json-out" in calls[0]["argv"]  # the result comes back in a file, not stdout
    assert "compute_dtype: float32" in calls[0]["preset"]
    assert list(table[text("qcmp.col.variant")]) == ["none", "nf4", "fp4"]
    assert table[text("qcmp.col.footprint")].tolist() == [16.0, 4.5, 4.5]
    assert set(plot.columns) == {"layer", "variant", "error"} and len(plot) == 9
    assert "NF4 beats FP4" in render(status) and "/somewhere" not in status
    assert not list((paths.home() / "tmp").iterdir())  # temp preset, log and JSON removed


def test_compare_refuses_while_training_and_reports_cli_errors(monkeypatch):
    calls = fake_children(monkeypatch, fail="quant: bad")
    with pytest.raises(RunError, match="quant: bad"):
        list(quant_tab.compare_quantizations(None, no_progress, True, *all_field_values()))
    make_run(state="running", pid=os.getpid())
    with pytest.raises(RunError, match="still running"):
        list(quant_tab.compare_quantizations(None, no_progress, True, *all_field_values()))
    assert len(calls) == 1


def test_a_real_child_error_comes_back_as_its_message():
    with shared.job("quant measure", ["quant", "measure", "no-such-preset"]) as child:
        lines = list(shared.job_lines(child))
        assert json.loads(child.result_path.read_text())["error"].startswith(
            "preset 'no-such-preset' not found")  # cli.main wrote it into the result file
        with pytest.raises(RunError, match="quant measure failed .*'no-such-preset' not"):
            shared.job_result(child)
    assert any(line.startswith("error: preset 'no-such-preset'") for line in lines)
    assert not list((paths.home() / "tmp").iterdir())


def test_closing_the_progress_ends_the_child(monkeypatch):
    """The page went away mid-job: nothing keeps running unseen."""
    fake_children(monkeypatch, {"ok": True}, lines=["one", "two", "three"], pause=30)
    with shared.job("slow", ["slow"]) as child:
        lines = shared.job_lines(child)
        assert next(lines) == "one"
        lines.close()
        assert child.poll() is not None
    assert not list((paths.home() / "tmp").iterdir())


# -- Dry run ---------------------------------------------------------------------------------

DRY = {"steps": 5, "seconds_per_step": 0.42, "tokens_per_second": 812.5,
       "tokens_per_step": 341.2, "load_seconds": 3.1, "peak_bytes": 900 * 10**6,
       "peak_kind": "peak RSS growth", "device": "cpu", "full_run_steps": 60,
       "eta_seconds": 28.3, "train_examples": 80, "padded_length": 96,
       "estimate": {"total_bytes": 10**9}}


def test_dry_run_runs_the_cli_on_the_page_settings_and_shows_figures(monkeypatch):
    calls = fake_children(monkeypatch, DRY, lines=["training 5 steps to measure"],
                          echo_env=["MALLOC_MMAP_THRESHOLD_", "PYTHONUNBUFFERED",
                                    "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"])
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    values = all_field_values(**{"train.batch_size": 2})
    outs = list(training.dry_run(no_progress, *values))
    argv = calls[0]["argv"]
    assert argv[0] == "dryrun" and argv[argv.index("--steps") + 1] == "5"
    assert "--json-out" in argv
    assert "batch_size: 2" in calls[0]["preset"]
    assert Path(argv[1]).parent == paths.home() / "tmp" and not Path(argv[1]).exists()
    # the child's environment: child_env plus the dry run's allocator setting
    assert any("MALLOC_MMAP_THRESHOLD_=65536" in o for o in outs)
    assert any("PYTHONUNBUFFERED=1" in o for o in outs)
    # no thread setting from the app: the child chooses its own from the machine's load
    # when it starts (runs.threads), as a dry run from a terminal does
    assert any("GOMP_SPINCOUNT=None" in o for o in outs)
    assert any("OMP_WAIT_POLICY=None" in o for o in outs)
    assert any("training 5 steps" in o for o in outs)
    final = render(outs[-1])
    assert "0.42" in final and "812.5" in final and "900.0 MB" in final
    assert "1.00 GB" in final and "-10%" in final and "60 steps" in final and "0:28" in final


def test_dry_run_refuses_while_training(monkeypatch):
    from workbench.runs import jobs
    monkeypatch.setattr(jobs, "spawn", lambda *a, **k: pytest.fail("started"))
    make_run(state="running", pid=os.getpid())
    with pytest.raises(gr.Error, match="still running"):
        list(widgets.guard(training.dry_run)(no_progress, *all_field_values()))


def test_chart_language_follows_the_switch_before_the_browser():
    from types import SimpleNamespace

    from workbench.ui.i18n import STORAGE_KEY
    from workbench.ui.tabs import memory_chart
    english_browser = {"accept-language": "en-US,en;q=0.9"}
    chose_zh = SimpleNamespace(headers=english_browser, cookies={STORAGE_KEY: "zh"})
    assert memory_chart.lang_of(chose_zh) == "zh"
    assert memory_chart.lang_of(SimpleNamespace(headers=english_browser, cookies={})) == "en"
