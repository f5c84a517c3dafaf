"""The Chat tab's compare: both answers in one batch (adapter off for one row, on for the
other) must be exactly the answers each side gives alone, stream together, and stop."""

import threading

import pytest

from workbench import chat, runs
from workbench.config import Preset


@pytest.fixture(scope="module")
def comparer(tiny_model_dir, tmp_path_factory):
    """A run folder whose adapter moves the answers (random LoRA B, no training needed)."""
    import os

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    home = tmp_path_factory.mktemp("chat-home")
    old = os.environ.get("WORKBENCH_HOME")
    os.environ["WORKBENCH_HOME"] = str(home)
    preset = Preset().with_overrides([
        f"model.name_or_path={tiny_model_dir}", "quantization.mode=nf4",
        "generation.max_new_tokens=12", "generation.repetition_penalty=1.0"])
    run = runs.create(preset, "pair")
    torch.manual_seed(1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, lora_alpha=64, target_modules="all-linear",
                                      init_lora_weights=False))
    model.save_pretrained(run / "adapter")
    yield chat.Comparer(run)
    if old is None:
        os.environ.pop("WORKBENCH_HOME", None)
    else:
        os.environ["WORKBENCH_HOME"] = old


def test_pair_equals_each_side_alone(comparer):
    # different histories make the two rows different lengths: the left padding must not
    # change either answer
    hist_base = [("hello", "hi there")]
    hist_tuned = [("hello there, who is this?", "someone else entirely")]
    alone_base = comparer.answer("Who are you?", adapter=False, history=hist_base)
    alone_tuned = comparer.answer("Who are you?", adapter=True, history=hist_tuned)
    assert alone_base != alone_tuned, "the test adapter must change the answer"
    frames = list(comparer.compare("Who are you?", hist_base, hist_tuned))
    assert frames[-1] == (alone_base, alone_tuned)


def test_pair_streams_both_sides_together(comparer):
    frames = list(comparer.compare("Tell me a story"))
    # the tuned side shows text long before the base side has finished (interleaved)
    first_tuned = next(i for i, (_, tuned) in enumerate(frames) if tuned)
    last_base_change = max(i for i in range(1, len(frames))
                           if frames[i][0] != frames[i - 1][0])
    assert first_tuned < last_base_change, frames[:5]


def test_stop_event_ends_the_generation(comparer):
    stop = threading.Event()
    frames = []
    for frame in comparer.compare("Tell me a story", stop=stop):
        frames.append(frame)
        if len(frames) == 2:
            stop.set()
    full = list(comparer.compare("Tell me a story"))
    assert len(frames) < len(full)
    assert not comparer.lock.locked()


def test_unpacking_the_4bit_weights_changes_no_answer(comparer, monkeypatch):
    """On a CPU where bitsandbytes dequantises at every call (no AVX512-BF16 kernel), chat
    unpacks the 4-bit weights once instead of at every token (issue 9, item 5): the same
    values that matmul unpacks, so the same logits. The kernel check is pinned so the test
    does not depend on the CPU it runs on."""
    import bitsandbytes as bnb
    import torch

    from workbench import models
    from workbench.models import loading

    def is_4bit(comparer_):
        return any(isinstance(x, bnb.nn.Linear4bit) for x in comparer_.model.modules())
    monkeypatch.setattr(loading, "has_own_cpu_kernel", lambda layer: False)
    monkeypatch.setenv("WORKBENCH_HOME", str(comparer.run.parent.parent))  # the run's home
    unpacked = chat.Comparer(comparer.run)
    assert not is_4bit(unpacked)
    monkeypatch.setattr(models, "unpack_4bit_for_answers", lambda model, **kw: 0)
    packed = chat.Comparer(comparer.run)
    assert is_4bit(packed)
    # packed: PEFT's LoRA layers over 4-bit ones; unpacked: lean LoRA over plain Linear
    assert packed.switch is None and unpacked.switch is not None
    ids = comparer.tokenizer("Who are you? Tell me a story.", return_tensors="pt").input_ids
    for adapter in (True, False):
        assert torch.equal(packed.logits(ids, adapter=adapter),
                           unpacked.logits(ids, adapter=adapter)), adapter
    assert not torch.equal(unpacked.logits(ids, adapter=True),
                           unpacked.logits(ids, adapter=False))
    assert list(packed.compare("Tell me a story"))[-1] == \
        list(unpacked.compare("Tell me a story"))[-1]


def test_lean_lora_only_for_plain_lora(tiny_model_dir):
    """The lean layers replace PEFT only where the adapter is plain LoRA on plain Linear
    layers; DoRA (a magnitude vector) and 4-bit base layers keep PEFT's own forward."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from workbench import models

    def peft(**kw):
        return get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                              LoraConfig(r=4, target_modules="all-linear", **kw)).eval()
    assert models.lean_lora_for_answers(peft(use_dora=True)) is None
    assert models.lean_lora_for_answers(peft(modules_to_save=["lm_head"])) is None
    plain = peft()
    switch = models.lean_lora_for_answers(plain)
    assert switch is not None and switch.rows is None
    kinds = {type(m).__name__ for m in switch.model.modules()}
    assert "LeanLoRA" in kinds and not any(k.startswith("Lora") or k == "Linear4bit"
                                           for k in kinds), kinds


def test_unpacking_is_skipped_when_it_would_not_fit_or_has_a_kernel(comparer, monkeypatch):
    """The unpacked copy costs the compute dtype's size per weight: not done when that is
    more than the allowed share of the free RAM, nor where bitsandbytes has its own CPU
    inference kernel (AVX512-BF16)."""
    import bitsandbytes as bnb

    from workbench import models
    from workbench.models import loading
    base = models.load_model(comparer.preset.model, comparer.preset.quantization)
    monkeypatch.setattr(loading, "has_own_cpu_kernel", lambda layer: True)
    assert models.unpack_4bit_for_answers(base) == 0
    monkeypatch.setattr(loading, "has_own_cpu_kernel", lambda layer: False)
    assert models.unpack_4bit_for_answers(base, share=1e-9) == 0
    assert any(isinstance(x, bnb.nn.Linear4bit) for x in base.modules())
    added = models.unpack_4bit_for_answers(base)
    assert added > 0 and not any(isinstance(x, bnb.nn.Linear4bit) for x in base.modules())
