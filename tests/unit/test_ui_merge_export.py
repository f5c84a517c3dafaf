"""Merge tab, issue 6: GGUF export (a real `launch.py export` child process) and the
adapter spectrum, on a tiny random Llama trained for 2 steps (a few seconds on a CPU)."""

import os
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from workbench import paths, runs, train
from workbench.config import Preset
from workbench.errors import RunError
from workbench.runs import jobs
from workbench.ui.i18n import render
from workbench.ui.tabs import merge, quantization


@pytest.fixture
def tiny_run(tiny_model_dir):
    preset = Preset().with_overrides([
        f"model.name_or_path={tiny_model_dir}", "data.path=data/identity.jsonl",
        "train.max_steps=2", "train.batch_size=2", "train.max_length=128",
        "train.logging_steps=1", "data.eval_fraction=0", "train.save_steps=2",
        "lora.r=4", "quantization.mode=none", "generation.max_new_tokens=8"])
    run = runs.create(preset, "tiny-export")
    assert train.train(run)["state"] == "completed"
    return run


def test_spectrum_rows_plots_and_verdict(tiny_run):
    frame = merge.spectrum_frame(merge._spectrum(tiny_run))
    # the tiny model has 2 layers and LoRA on every linear layer: 2 x 7 rows
    assert len(frame) == 14 and set(frame["layer"]) == {0, 1}
    assert set(frame["module"]) == set(merge.MODULES)
    assert (frame["r"] == 4).all() and frame["effective_rank"].between(0, 4).all()
    assert frame["relative_norm_pct"].notna().all()  # the base is the tiny model folder

    verdict, ranks, norms, table = merge.spectrum_view(tiny_run.name)
    text = render(verdict)
    assert any(word in text for word in ("larger than needed", "too small", "about right",
                                         "not learned"))
    assert "median effective rank" in text and "r = 4" in text
    # every module series plus r at every layer, from the first data on
    assert isinstance(ranks, pd.DataFrame)
    assert set(ranks["module"]) == set(merge.MODULES) | {"r"}
    assert (ranks.loc[ranks["module"] == "r", "effective_rank"] == 4).all()
    assert isinstance(norms, pd.DataFrame) and len(norms) == 14
    assert render(table).count("\n") == 15 and "q_proj" in table  # header, rule, 14 rows


def test_merge_and_measure_run_in_a_child_process(tiny_run, tiny_model_dir, monkeypatch):
    """The tab's handlers start `launch.py merge` / `launch.py quant measure` through
    jobs.spawn, and the web server's process loads no model for either."""
    from workbench import models
    from workbench.export import merge as core_merge
    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("loaded here"))
    monkeypatch.setattr(core_merge, "merge", lambda *a, **k: pytest.fail("merged here"))
    started, spawn = [], jobs.spawn

    def recording_spawn(kind, argv, **kw):
        started.append((kind, argv[:2]))
        return spawn(kind, argv, **kw)
    monkeypatch.setattr(jobs, "spawn", recording_spawn)

    outs = [render(o) for o in merge.merge_run(tiny_run.name)]
    assert "✓ Verified" in outs[-1] and "max logit difference" in outs[-1], outs
    assert any("applying the adapter" in o for o in outs[:-1])  # progress from its log
    assert (tiny_run / "merged" / "merge_report.json").is_file()

    outs = [render(o) for o in quantization.measure(str(tiny_model_dir), False, "none",
                                                   False, "float32", 6.0)]
    assert "Measured footprint" in outs[-1] and "Unquantised (16-bit)" in outs[-1], outs
    assert started == [("merge", ["merge", str(tiny_run)]),
                                        ("quant measure", ["quant", "measure"])]
    assert not list((paths.home() / "tmp").iterdir())


def test_export_subprocess_report_paths_and_commands(tiny_run):
    steps = list(merge.export_run(tiny_run.name, "f16", poll=0.2))
    assert len(steps) >= 2 and "exporting" in render(steps[0][0])
    status, result = (render(x) for x in steps[-1])
    assert status.startswith("✓") and "Export finished" in status
    assert "✓ Verified" in result and "F16" in result and "tiny-export" in result
    assert "max \\|Δlogit\\|" in result and re.search(r"\| \d+\.\d% \|", result), result
    assert "ollama create tiny-export-" in result and "-f Modelfile" in result
    assert "ollama run tiny-export-" in result and "llama-cli -m " in result
    # served to this computer only (the default): the real folder, a command that works
    assert "WORKBENCH_HOME" not in result and f"cd {tiny_run.resolve() / 'export'}" in result
    gguf = list((tiny_run / "export").glob("*-f16.gguf"))
    assert len(gguf) == 1 and gguf[0].name in result
    # picking the run again shows the saved report
    assert "✓" in render(merge.last_export_markdown(tiny_run))
    assert runs.find(tiny_run.name) == tiny_run

    # downloads: the GGUF, its Modelfile and README, and the merged model as one zip
    import zipfile
    files, note = merge.prepare_downloads(tiny_run.name)
    names = [os.path.basename(f) for f in files]
    assert gguf[0].name in names and "Modelfile" in names and "README.md" in names
    zipped = next(f for f in files if f.endswith("-merged.zip"))
    with zipfile.ZipFile(zipped) as zf:
        assert f"{tiny_run.name}-merged/config.json" in zf.namelist()
        assert f"{tiny_run.name}-merged/model.safetensors" in zf.namelist()
    assert merge.prepare_downloads(tiny_run.name)[0] == files  # the zip is reused
    assert os.path.getmtime(zipped) == os.path.getmtime(merge.merged_zip(tiny_run))
    # offered from Gradio's upload folder (the only one it serves), as links to the files
    assert all(Path(f).parent.name == tiny_run.name and Path(f).parent.parent.name ==
               "downloads" for f in files), files
    assert os.path.samefile(next(f for f in files if f.endswith(".gguf")), gguf[0])
    assert os.path.samefile(zipped, tiny_run / "export" / f"{tiny_run.name}-merged.zip")
    assert f"✓ {len(files)}" in note


def test_paths_shown_to_other_computers_are_inside_the_workbench_folder(monkeypatch):
    report = {"ok": True, "name": "demo", "out_dir": str(paths.runs_dir() / "demo" / "export"),
              "files": {"f16": {"path": "/x/demo-f16.gguf", "bytes": 1}},
              "modelfiles": {"f16": "/x/Modelfile"}}
    monkeypatch.setenv("WORKBENCH_UI_HOST", "0.0.0.0")
    text = render(merge.export_markdown(report))
    assert str(paths.home()) not in text and "WORKBENCH_HOME" not in text
    assert "cd runs/demo/export" in text and "Workbench folder" in text
    monkeypatch.setenv("WORKBENCH_UI_HOST", "127.0.0.1")
    assert f"cd {paths.runs_dir().resolve() / 'demo' / 'export'}" in render(
        merge.export_markdown(report))


def test_downloads_need_a_merge_or_an_export():
    run = paths.runs_dir() / "a-20250101-120000"
    (run / "adapter").mkdir(parents=True)
    (run / "preset.yaml").write_text("{}\n", "utf-8")
    with pytest.raises(RunError, match="download.nothing"):
        merge.prepare_downloads(run.name)


def test_export_refused_while_training_and_failures_stay_readable(monkeypatch):
    run = paths.runs_dir() / "a-20250101-120000"
    (run / "adapter").mkdir(parents=True)
    (run / "preset.yaml").write_text("{}\n", "utf-8")
    live = paths.runs_dir() / "live-20250101-130000"
    live.mkdir()
    (live / "preset.yaml").write_text("{}\n", "utf-8")
    runs.write_status(live, state="running", pid=os.getpid(), step=1, max_steps=10)
    with pytest.raises(RunError, match="live-20250101-130000"):
        next(merge.export_run(run.name, "both"))
    runs.write_status(live, state="failed", pid=os.getpid(), step=1, max_steps=10)

    # a child that fails the way the CLI does: one `error:` line on stderr, exit 2
    script = ("import sys; print('error: ' + sys.argv[1] + '/config.json: model_type gpt2:"
              " GGUF export supports Llama only', file=sys.stderr); sys.exit(2)")
    monkeypatch.setattr(jobs, "command",
                        lambda argv: [sys.executable, "-c", script, argv[1]])
    status, result = (render(x) for x in list(merge.export_run(run.name, "f16", poll=0.1))[-1])
    assert status.startswith("✗ Export failed")
    assert "GGUF export supports Llama only" in result and str(paths.home()) not in result


def test_export_markdown_failed_check_and_reference():
    report = {"ok": False, "name": "Demo Run", "out_dir": str(paths.home() / "x" / "export"),
              "files": {"q8_0": {"path": "/x/demo-q8_0.gguf", "bytes": 150_000_000}},
              "modelfiles": {"q8_0": "/x/Modelfile"},
              "checks": {"q8_0": {"ok": False, "layout": {"ok": True, "max_rel_error": 0.01},
                                  "round_trip": {"max_abs_diff": 1.4, "argmax_agreement": 0.9,
                                                 "max_abs_diff_same_rounding": 0.0,
                                                 "greedy_equal": False,
                                                 "greedy_equal_prompts": 3, "prompts": 4}}},
              "reference": {"applied": True, "ok": False, "min_corr_qk": 0.05,
                            "threshold": 0.9}}
    text = render(merge.export_markdown(report))
    assert text.startswith("### ✗ Check failed")
    assert "1.4" in text and "90.0%" in text and "✗ differs (3/4)" in text
    assert "✗ Cross-check" in text and "0.05000" in text
    assert "ollama create demo-run -f Modelfile" in text and "demo-q8_0.gguf" in text
