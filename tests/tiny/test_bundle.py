"""The reproducibility bundle on the tiny model: `launch.py bundle RUN` writes the folder and
its .zip, and `bundle --check` re-runs the bundle's standalone train.py (workbench not
importable) and finds the run's logged losses within 1%."""

import json
import os
import re
import subprocess
import sys
import zipfile

import pytest

from workbench import cli, runs, train
from workbench.config import Preset
from workbench.export import bundle


@pytest.fixture
def tiny_run(tiny_model_dir):
    preset = Preset().with_overrides([
        f"model.name_or_path={tiny_model_dir}", "data.path=data/identity.jsonl",
        "quantization.mode=nf4", "quantization.compute_dtype=float32", "train.max_steps=3",
        "train.batch_size=2", "train.max_length=128", "train.logging_steps=1",
        "train.eval_steps=50", "train.save_steps=50", "lora.r=4",
        "data.mix=[{path: data/general_mix.jsonl, fraction: 0.5}]"])  # as cpu-demo mixes
    run = runs.create(preset, "tiny-bundle")
    assert train.train(run)["state"] == "completed"
    return run


def test_bundle_then_check_reproduces_the_losses(tiny_run, tiny_model_dir, capsys):
    assert cli.main(["bundle", tiny_run.name, "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    out = tiny_run / "bundle"
    assert rep["path"] == str(out)
    names = {p.name for p in out.iterdir()}
    assert {"preset.yaml", "bundle.json", "environment.json", "metrics.jsonl", "adapter",
            "train.py", "README.md", "data", "base"} <= names
    assert not re.search(r"^\s*(import|from)\s+workbench", (out / "train.py").read_text(),
                         re.MULTILINE)
    # the data: copied (small), with its sha256 and row count
    (f,) = rep["data"]["files"]
    assert f["bundled"] == "data/identity.jsonl" and f["rows"] == 72
    assert f["sha256"] == bundle.file_sha256(out / f["bundled"])
    # data.mix's general file travels too: the run trained on its rows as well
    ((g,),) = [m["files"] for m in rep["data"]["mix"]]
    assert rep["data"]["mix"][0]["fraction"] == 0.5
    assert g["bundled"] == "data/general_mix.jsonl"
    assert g["sha256"] == bundle.file_sha256(out / g["bundled"])
    assert rep["data"]["train_examples"] + rep["data"]["eval_examples"] == 72 + 36
    # the base: the tiny folder is small, so bundled, each file with its sha256
    assert rep["base"]["kind"] == "folder" and rep["base"]["bundled"] == "base"
    assert rep["base"]["files"]["model.safetensors"] == bundle.file_sha256(
        tiny_model_dir / "model.safetensors")
    env = json.loads((out / "environment.json").read_text())
    assert env["cpu_capability"] and env["world_size"] == 1 and "gpu" in env
    assert env["packages"]["trl"] and env["packages"]["transformers"]
    with zipfile.ZipFile(rep["zip"]) as z:
        assert "bundle/train.py" in z.namelist() and "bundle/adapter/adapter_config.json" \
            in z.namelist()

    assert cli.main(["bundle", "--check", str(out), "--steps", "3"]) == 0
    text = capsys.readouterr().out
    assert "REPRODUCED: 3 logged losses" in text, text

    # the check's guard: where workbench can be imported, the script refuses to run
    with_workbench = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.run([sys.executable, "train.py", "--no-workbench"], cwd=out,
                          env=with_workbench,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "workbench is importable" in proc.stderr


def test_compare_flags_a_loss_off_by_more_than_one_percent():
    recorded = {1: 3.0, 2: 2.0, 3: 1.5}
    same = bundle.compare(recorded, {1: 3.0, 2: 2.01, 3: 1.5}, 3)
    assert same["ok"] and abs(same["max_rel_diff"] - 0.005) < 1e-9
    off = bundle.compare(recorded, {1: 3.0, 2: 2.1, 3: 1.5}, 3)
    assert not off["ok"] and [r["ok"] for r in off["rows"]] == [True, False, True]
    missing = bundle.compare(recorded, {1: 3.0}, 2)
    assert not missing["ok"] and missing["rows"][1]["reproduced"] is None
    assert "NOT REPRODUCED: 1 of 3" in bundle.check_table(
        {**off, "steps": 3, "error": None, "seconds": 1.0})


def test_check_refuses_a_folder_that_is_no_bundle(tmp_path):
    assert cli.main(["bundle", "--check", str(tmp_path)]) == 2
