"""The sample timeline (issue 11 item 3) on the tiny random Llama: a run with eval steps
writes samples.jsonl at those steps, answering the first held-out questions by default;
generating inside the trainer leaves training exactly as it was (same losses, dropout on);
a run that fails keeps the lines it wrote; only rank 0 writes; a resume drops the lines
after its checkpoint; `runs show` prints them; the Training tab's table shows them."""

import json
import time
from types import SimpleNamespace

import pytest

from workbench import cli, runs, train
from workbench.config import Preset
from workbench.errors import PresetError
from workbench.train import samples


def tiny_preset(model_dir, *more):
    return Preset().with_overrides([
        f"model.name_or_path={model_dir}", "data.path=data/identity.jsonl",
        "quantization.mode=none", "train.max_steps=2", "train.batch_size=2",
        "train.max_length=128", "train.logging_steps=1", "train.eval_steps=1",
        "train.save_steps=100", "lora.r=4", *more])


def test_eval_steps_write_the_held_out_questions_answers(tiny_model_dir, capsys):
    preset = tiny_preset(tiny_model_dir)
    run = runs.create(preset, "tiny-samples")
    assert train.train(run)["state"] == "completed"
    _, eval_ds, _ = train.build_datasets(preset)
    expected = [p for p, _ in samples.watch_messages(preset, eval_ds)]
    assert len(expected) == samples.DEFAULT_COUNT
    got = runs.samples(run)
    assert [(r["step"], r["prompt"]) for r in got] == [
        (step, p) for step in (1, 2) for p in expected]
    for r in got:
        assert set(r) == {"step", "epoch", "prompt", "answer", "time"}
        assert isinstance(r["answer"], str) and r["time"]
    # the prompts are questions of the eval split, never of the training rows
    train_ds, _, _ = train.build_datasets(preset)
    trained = {m["content"] for row in train_ds for m in row["prompt"]}
    assert not set(expected) & trained

    assert cli.main(["runs", "show", run.name]) == 0
    out = capsys.readouterr().out
    assert f"{run.name}: completed, step 2/2" in out
    assert out.count("--- step 1 ---") == 1 and out.count("--- step 2 ---") == 1
    assert all(f"Q: {p}" in out for p in expected)
    assert f"A: {got[-1]['answer']}" in out
    assert cli.main(["runs", "show", run.name, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == got


def _losses(model_dir, with_samples: bool) -> list[float]:
    preset = tiny_preset(model_dir, "train.gradient_checkpointing=true",
                         "train.watch_prompts=[Who are you?, What is your name?]")
    run = runs.create(preset, "tiny-same")
    trainer = train.build_trainer(preset, run, time.monotonic(), log=lambda m: None)
    if not with_samples:
        trainer.remove_callback(next(c for c in trainer.callback_handler.callbacks
                                     if type(c).__name__ == "SampleCallback"))
    from transformers import TrainerCallback
    modes = []

    class Probe(TrainerCallback):  # runs after the timeline's callback at each step
        def on_step_end(self, args, state, control, model=None, **kw):
            modes.append(model.training)
    trainer.add_callback(Probe())
    trainer.train()
    assert modes == [True] * 2, "train mode must be back after the samples"
    assert len(runs.samples(run)) == (4 if with_samples else 0)
    return [r["loss"] for r in runs.metrics(run) if "loss" in r]


def test_generating_leaves_training_as_it_was(tiny_model_dir):
    """Same losses with and without the timeline, with LoRA dropout and gradient
    checkpointing on: eval mode, no_grad and the KV cache are all undone."""
    with_samples = _losses(tiny_model_dir, True)
    assert len(with_samples) == 2  # step 2 trains after the samples of step 1
    assert with_samples == _losses(tiny_model_dir, False)


def test_a_failed_run_keeps_what_it_wrote(tiny_model_dir, monkeypatch):
    make = train.make_callback

    def failing_at_step_2(run, started):
        cb = make(run, started)
        step_end = cb.on_step_end

        def on_step_end(args, state, control, **kw):
            step_end(args, state, control, **kw)
            if state.global_step == 2:
                raise RuntimeError("disk on fire at step 2")
        cb.on_step_end = on_step_end
        return cb
    monkeypatch.setattr(train, "make_callback", failing_at_step_2)
    preset = tiny_preset(tiny_model_dir, "train.watch_prompts=[Who are you?]")
    run = runs.create(preset, "tiny-fails")
    final = train.train(run)
    assert final["state"] == "failed" and "disk on fire" in final["error"]
    lines = (run / runs.SAMPLES_FILE).read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1]


def test_a_failing_generation_ends_the_timeline_not_the_run(tmp_path, monkeypatch):
    def broken(*a, **kw):
        raise ValueError("no generation today")
    monkeypatch.setattr(samples, "answers", broken)
    said = []
    preset = Preset().with_overrides(["train.watch_prompts=[Who are you?]"])
    cb = samples.make_callback(preset, tmp_path, None, None, log=said.append)
    model = SimpleNamespace(training=True, eval=lambda: None, train=lambda: None)
    for step in (20, 40):  # no exception reaches the trainer, and no second try
        cb.on_step_end(None, SimpleNamespace(global_step=step, epoch=1.0), None, model=model)
    assert said[-1].startswith("warning: sample timeline stopped at step 20: ValueError")
    assert not (tmp_path / runs.SAMPLES_FILE).exists()


def _callback(tmp_path, prompts="[Who are you?]"):
    preset = Preset().with_overrides([f"train.watch_prompts={prompts}"])
    return samples.make_callback(preset, tmp_path, None, None, log=lambda m: None)


def test_only_rank_0_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(samples, "answers", lambda *a, **kw: ["hello"])
    model = SimpleNamespace(training=True, eval=lambda: None, train=lambda: None)
    state = SimpleNamespace(global_step=20, epoch=1.0)
    monkeypatch.setenv("RANK", "1")
    _callback(tmp_path).on_step_end(None, state, None, model=model)
    assert not (tmp_path / runs.SAMPLES_FILE).exists()
    monkeypatch.setenv("RANK", "0")
    _callback(tmp_path).on_step_end(None, state, None, model=model)
    assert [(r["step"], r["prompt"], r["answer"]) for r in runs.samples(tmp_path)] == [
        (20, "Who are you?", "hello")]


def test_a_resume_drops_the_lines_after_its_checkpoint(tmp_path):
    for step in (2, 4, 6):
        runs.append_sample(tmp_path, {"step": step, "prompt": "q", "answer": f"a{step}"})
    with open(tmp_path / runs.SAMPLES_FILE, "a", encoding="utf-8") as fh:
        fh.write('{"step": 8, "prompt": "q", "ans')  # killed mid-line
    _callback(tmp_path).on_train_begin(None, SimpleNamespace(global_step=4), None)
    assert [r["answer"] for r in runs.samples(tmp_path)] == ["a2", "a4"]


def test_watch_prompts_are_checked():
    assert Preset().train.watch_prompts == []
    assert Preset().with_overrides(["train.watch_prompts=Who are you?"]).train.watch_prompts \
        == ["Who are you?"]
    for bad in ("[1, 2]", "['', x]", "{a: b}", "[" + ", ".join(["q"] * 11) + "]"):
        with pytest.raises(PresetError, match="train.watch_prompts: expected a list"):
            Preset().with_overrides([f"train.watch_prompts={bad}"])


def test_the_training_tab_table():
    from workbench.ui.i18n import MARKER_RE
    from workbench.ui.tabs.training_samples import STEPS_SHOWN, timeline_html
    assert "samples.none" in timeline_html([])
    records = [{"step": s, "prompt": p, "answer": f"<b>{p} at {s}</b>"}
               for s in range(2, 2 * (STEPS_SHOWN + 3), 2) for p in ("Who?", "Où?")]
    page = timeline_html(records)
    assert page.count("<tr>") == 1 + STEPS_SHOWN   # the header and the newest steps
    assert "Who? at 4" not in page and f"Who? at {2 * (STEPS_SHOWN + 2)}" in page
    assert "<b>Who?" not in page and "&lt;b&gt;Who? at" in page
    assert {"samples.title", "samples.older", "train.step"} <= set(MARKER_RE.findall(page))


def test_no_timeline_when_the_weights_are_sharded(tmp_path, monkeypatch):
    """FSDP / DeepSpeed (set by `accelerate launch`): rank 0 alone cannot generate."""
    monkeypatch.setattr(samples, "answers", lambda *a, **kw: ["hello"])
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    cb = _callback(tmp_path)
    cb.on_train_begin(None, SimpleNamespace(global_step=0), None)
    model = SimpleNamespace(training=True, eval=lambda: None, train=lambda: None)
    cb.on_step_end(None, SimpleNamespace(global_step=20, epoch=1.0), None, model=model)
    assert not (tmp_path / runs.SAMPLES_FILE).exists()
