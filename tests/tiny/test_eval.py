"""`launch.py eval` on a tiny random Llama: two runs answered from one loaded base, the
report's shape, eval/<timestamp>.json in each run, stdout that is only the JSON, and one
`error:` line for a bad prompt file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import runs
from workbench.config import Preset

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = [{"prompt": "What is the capital of France?", "reference": "Paris"},
           {"prompt": "What is 2 + 2?", "reference": ["4", "four"], "system": "Be brief."},
           {"prompt": "Who are you?"}]


@pytest.fixture
def two_runs(tiny_model_dir, tmp_path):
    """Two runs on the tiny base, each with its own random adapter (no training needed)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    preset = Preset().with_overrides([
        f"model.name_or_path={tiny_model_dir}", "quantization.mode=none",
        "data.path=data/identity.jsonl", "train.max_length=128"])
    made = []
    for i, name in enumerate(["eval-a", "eval-b"]):
        run = runs.create(preset, name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(10 + i)
            model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                   LoraConfig(r=4, lora_alpha=64, target_modules="all-linear",
                                              init_lora_weights=False))
        model.save_pretrained(run / "adapter")
        made.append(run)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    return made, prompts


def check_shape(rep, folders):
    assert [r["run"] for r in rep["runs"]] == [f.name for f in folders]
    assert rep["prompts"]["count"] == 3 and rep["prompts"]["with_reference"] == 2
    for r in rep["runs"]:
        assert len(r["answers"]) == 3
        for a in r["answers"]:
            assert set(a) == {"prompt", "reference", "base", "tuned", "base_match",
                              "tuned_match"}
            assert isinstance(a["base"], str) and isinstance(a["tuned"], str)
        assert r["answers"][2]["base_match"] is None  # no reference
        assert r["match_rate"] is None or 0 <= r["match_rate"] <= 1
        assert set(r["kept_general"]) == {"kept", "of"}
        assert 0 <= r["kept_general"]["kept"] <= r["kept_general"]["of"] <= 2
        for part in ("eval", "general"):
            for side in ("base", "tuned"):
                assert r["perplexity"][part][side] > 1, (part, side, r["perplexity"])
    # one base: its answers are the same for both runs
    assert ([a["base"] for a in rep["runs"][0]["answers"]]
            == [a["base"] for a in rep["runs"][1]["answers"]])
    for f in folders:  # the same report saved in each run
        saved = list((f / "eval").glob("*.json"))
        assert len(saved) == 1
        assert json.loads(saved[0].read_text())["runs"] == rep["runs"]
        assert str(saved[0]) in rep["saved"]


# launch.py run as `python launch.py ...` would run it, with models.load_model counted
COUNTING_LAUNCH = """
import atexit, os, runpy, sys
from workbench import models
real, loads = models.load_model, []
def counting(*a, **kw):
    loads.append(1)
    return real(*a, **kw)
models.load_model = counting
atexit.register(lambda: open(os.environ["LOADS_FILE"], "w").write(str(len(loads))))
sys.argv = ["launch.py", *sys.argv[1:]]
runpy.run_path("launch.py", run_name="__main__")
"""


def test_cli_two_runs_one_base_json_only(two_runs, _workbench_home, tmp_path):
    """One subprocess, the whole command: stdout is exactly one JSON document, the two runs
    are answered from one loaded base, and each run folder gets the report."""
    folders, prompts = two_runs
    loads = tmp_path / "loads"
    env = dict(os.environ, WORKBENCH_HOME=str(_workbench_home), LOADS_FILE=str(loads))
    proc = subprocess.run(
        [sys.executable, "-c", COUNTING_LAUNCH, "eval", folders[0].name, folders[1].name,
         "--prompts", str(prompts), "--json", "--max-new-tokens", "6"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads(proc.stdout)  # the whole of stdout is one JSON document
    assert loads.read_text() == "1" and rep["base_loads"] == 1
    check_shape(rep, folders)
    assert "base answers" in proc.stderr  # progress goes to stderr
    # the adapters are switched, not stacked: each run's answers are its own
    tuned = [[a["tuned"] for a in r["answers"]] for r in rep["runs"]]
    base = [a["base"] for a in rep["runs"][0]["answers"]]
    assert tuned[0] != base and tuned[1] != base and tuned[0] != tuned[1]
    eval_ppl = [r["perplexity"]["eval"] for r in rep["runs"]]
    assert eval_ppl[0]["base"] == eval_ppl[1]["base"]
    assert eval_ppl[0]["tuned"] != eval_ppl[1]["tuned"]


def test_bad_prompt_file_one_error_line(two_runs, tmp_path, capsys):
    from workbench import cli
    folders, _ = two_runs
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": 3}\n')
    assert cli.main(["eval", folders[0].name, "--prompts", str(bad)]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1, err
    assert lines[0].startswith("error: ") and "bad.jsonl" in lines[0] and "line 2" in lines[0]
    assert not (folders[0] / "eval").exists()


def test_answers_only_and_a_blind_pair(two_runs, tiny_model_dir):
    """The Chat tab's answers-only evaluation: typed prompts, perplexity off, nothing
    saved; a blind A/B pair whose answers are the ones its sources give."""
    import random

    from workbench import evaluate, promptset
    from workbench.evaluate import PromptItem
    folders, _ = two_runs
    items = promptset.typed("What is the capital of France?\nWho are you?")
    rep = evaluate.evaluate([f.name for f in folders], items, save=False, perplexity=False,
                            max_new_tokens=4)
    assert rep["prompts"] == {"path": "(given prompts)", "count": 2, "with_reference": 0}
    assert rep["base_loads"] == 1 and "saved" not in rep
    for r in rep["runs"]:
        assert r["perplexity"]["eval"] == {"base": None, "tuned": None,
                                           "source": "not measured"}
        assert r["perplexity"]["general"]["base"] is None
    assert not any((f / "eval").exists() for f in folders)

    item = PromptItem("Who are you?")
    base = promptset.base_source(folders[0])
    assert base == f"base:{tiny_model_dir.name}"
    single = evaluate.evaluate([folders[0].name], [item], save=False, perplexity=False,
                               max_new_tokens=8)
    want = {base: single["runs"][0]["answers"][0]["base"],
            folders[0].name: single["runs"][0]["answers"][0]["tuned"]}
    assert want[base] != want[folders[0].name]  # the adapter changes the answer
    seen = set()
    for seed in (0, 1):  # (random.Random: base first, then the run first)
        pair = promptset.blind_pair([promptset.BASE, folders[0].name], item,
                                    rng=random.Random(seed), max_new_tokens=8)
        assert pair["prompt"] == "Who are you?"
        assert sorted(pair["sources"]) == sorted(want)
        assert dict(zip(pair["sources"], pair["answers"])) == want  # greedy: the same
        seen.add(tuple(pair["sources"]))
    assert len(seen) == 2  # both orders occur
    # two runs: their tuned answers, the base not among the sources
    pair = promptset.blind_pair([f.name for f in folders], item, rng=random.Random(0),
                                max_new_tokens=8)
    assert sorted(pair["sources"]) == sorted(f.name for f in folders)


def test_lean_lora_layers_answer_as_peft(two_runs, monkeypatch):
    """On a CPU eval switches adapters through chat's lean LoRA layers: the report (answers
    and every perplexity) is the one PEFT's own switching gives."""
    from workbench import evaluate, models
    folders, prompts = two_runs
    used = []
    real = models.lean_lora_for_answers
    monkeypatch.setattr(models, "lean_lora_for_answers",
                        lambda model: used.append(real(model)) or used[-1])
    lean = evaluate.evaluate([f.name for f in folders], prompts, save=False, max_new_tokens=6)
    assert used and used[0] is not None
    monkeypatch.setattr(models, "lean_lora_for_answers", lambda model: None)
    peft = evaluate.evaluate([f.name for f in folders], prompts, save=False, max_new_tokens=6)
    assert [r["answers"] for r in lean["runs"]] == [r["answers"] for r in peft["runs"]]
    assert [r["perplexity"] for r in lean["runs"]] == [r["perplexity"] for r in peft["runs"]]
