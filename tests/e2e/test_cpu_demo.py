"""End to end on the embedded SmolLM2-135M: cpu-demo (shortened) through the real CLI,
then the tuned model names its new identity and the base does not; the merged model,
loaded with plain transformers, answers like the adapter does."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
# enough steps to learn the identity at this learning rate, short enough for CI (12 steps
# at 3e-3 answered "Who are you?", "What is your name?", "Introduce yourself." with Nova).
# Without cpu-demo's general mix: 12 steps of mostly general rows would teach too little of
# the name to test; what the mix buys is measured in bench/README.md (the honest demo)
E2E_SETTINGS = ["train.max_steps=12", "train.learning_rate=3e-3", "train.eval_steps=100",
                "train.save_steps=100", "generation.max_new_tokens=24", "data.mix=[]"]


def launch(*args, home, timeout=900):
    env = dict(os.environ, WORKBENCH_HOME=str(home), PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, str(ROOT / "launch.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_cpu_demo_teaches_identity_then_merge(embedded_home):
    sets = [a for s in E2E_SETTINGS for a in ("--set", s)]
    out = launch("train", "cpu-demo", *sets, "--name", "e2e", home=embedded_home)
    run = Path(out.strip().splitlines()[-1].removeprefix("run: "))
    assert run.is_dir() and (run / "adapter" / "adapter_model.safetensors").exists()
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "completed" and status["step"] == 12

    answers = json.loads(launch("chat", run.name, "--prompt", "Who are you?", "--json",
                                home=embedded_home))
    assert "Nova" in answers["tuned"], answers
    assert "Nova" not in answers["base"], answers

    launch("merge", run.name, home=embedded_home)
    report = json.loads((run / "merged" / "merge_report.json").read_text())
    assert report["ok"] and report["max_abs_logit_diff"] < report["tolerance"]

    # plain transformers, no workbench code: the merged folder is a normal HF model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(run / "merged")
    model = AutoModelForCausalLM.from_pretrained(run / "merged")
    ids = tok.apply_chat_template([{"role": "user", "content": "Who are you?"}],
                                  add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)
    out = model.generate(**ids, max_new_tokens=24, do_sample=False)
    merged_answer = tok.decode(out[0][ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Nova" in merged_answer, merged_answer
