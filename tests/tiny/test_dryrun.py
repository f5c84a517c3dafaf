"""Dry run on the tiny model: measured figures, the estimate beside them, nothing kept."""

import json

from workbench import cli, paths, runs
from workbench.train import dryrun
from workbench.config import Preset


def test_dry_run_measures_and_keeps_nothing(tiny_model_dir):
    preset = Preset().with_overrides([f"model.name_or_path={tiny_model_dir}",
                                      "train.batch_size=2", "train.max_length=128",
                                      "train.epochs=2", "lora.r=4"])
    res = dryrun.dry_run(preset, steps=3)
    assert res["steps"] == 3 and res["seconds_per_step"] > 0
    assert res["tokens_per_second"] > 0 and res["peak_bytes"] > 0
    # 72 identity rows, 10% held out -> 64 or 65 train examples, batch 2, 2 epochs
    assert res["full_run_steps"] == 2 * -(-res["train_examples"] // 2)
    assert res["eta_seconds"] >= res["seconds_per_step"] * res["full_run_steps"]
    assert "total_bytes" in res["estimate"], res["estimate"]
    assert runs.list_runs() == [], "a dry run is never kept as a run"
    assert not any((paths.home() / "tmp").iterdir())


def test_dryrun_cli_json(tiny_model_dir, tmp_path, capsys):
    preset = tmp_path / "p.yaml"
    preset.write_text(f"model: {{name_or_path: '{tiny_model_dir}'}}\n"
                      "train: {batch_size: 2, max_length: 64, max_steps: 7}\n")
    assert cli.main(["dryrun", str(preset), "--steps", "2", "--json"]) == 0
    captured = capsys.readouterr()
    res = json.loads(captured.out)  # stdout is the JSON alone; the progress went to stderr
    assert res["full_run_steps"] == 7 and res["steps"] == 2
    assert "training 2 steps to measure" in captured.err, captured.err
    # how the threads wait is chosen before torch loads; in this process it already had
    assert "already loaded" in res["threads"]["reason"]
    assert cli.main(["dryrun", str(preset), "--steps", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_dryrun_text_names_the_world_size(tiny_model_dir, tmp_path, capsys):
    """Issue 12: a dry run measures one process; with distributed.processes N the text says
    the figures are per process, as the JSON's world_size / per_process do."""
    preset = tmp_path / "p.yaml"
    preset.write_text(f"model: {{name_or_path: '{tiny_model_dir}'}}\n"
                      "train: {batch_size: 2, max_length: 64, max_steps: 8}\n")
    args = ["dryrun", str(preset), "--steps", "2"]
    assert cli.main(args + ["--set", "distributed.processes=2"]) == 0
    out = capsys.readouterr().out
    assert "processes          2 (distributed.processes)" in out and "per process" in out
    assert "reads 2 batches a step" in out
    assert cli.main(args) == 0
    assert "(distributed.processes)" not in capsys.readouterr().out
