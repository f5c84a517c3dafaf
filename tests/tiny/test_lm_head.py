"""workbench.train.lm_head: on a CPU, trl's fused LM head scores only the positions with a
label; the loss, its gradients and the logged per-token figures are those of the full
path (masked positions contribute zero either way)."""

import pytest
import torch

from workbench.train import lm_head


def _run(model, batch):
    model.zero_grad()
    out = model(**batch, fused_lm_head=True)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads


@pytest.fixture
def patched_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    lm_head.restore()
    yield model
    lm_head.restore()


def test_compact_path_gives_the_same_loss_and_gradients(patched_model, monkeypatch):
    from trl.trainer import utils as trl_utils
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, patched_model.config.vocab_size, (3, 24), generator=g)
    labels = ids.clone()
    labels[:, :15] = -100          # the prompt: not trained
    labels[1, 20:] = -100          # padding at the end of the second row
    attention = torch.ones_like(ids)
    attention[1, 20:] = 0
    batch = {"input_ids": ids, "attention_mask": attention, "labels": labels}

    scored = []
    real_mm = torch.mm

    def counting_mm(a, b, *args, **kw):
        scored.append(a.shape[0])
        return real_mm(a, b, *args, **kw)

    full, full_grads = _run(patched_model, batch)
    assert lm_head.score_only_trained_positions()
    assert trl_utils._use_triton(torch.device("cpu")) is True
    monkeypatch.setattr(torch, "mm", counting_mm)
    compact, compact_grads = _run(patched_model, batch)
    monkeypatch.undo()
    # the LM head's tiles held only the positions with a label (8 + 4 + 8 after the shift)
    n_trained = int((labels[:, 1:] != -100).sum())
    assert scored and max(scored) == n_trained < ids.numel()

    torch.testing.assert_close(compact.loss, full.loss, rtol=1e-6, atol=1e-6)
    for name in ("log_probs", "entropy"):
        torch.testing.assert_close(getattr(compact, name), getattr(full, name),
                                   rtol=1e-5, atol=1e-6)
    assert torch.equal(compact.is_top1, full.is_top1)
    assert compact_grads.keys() == full_grads.keys() and full_grads
    for name, grad in full_grads.items():
        torch.testing.assert_close(compact_grads[name], grad, rtol=1e-5, atol=1e-6)


def test_switch_is_idempotent_and_can_be_turned_off(monkeypatch):
    from trl.trainer import utils as trl_utils
    original = trl_utils._use_triton
    try:
        assert lm_head.score_only_trained_positions()
        once = trl_utils._use_triton
        assert lm_head.score_only_trained_positions() and trl_utils._use_triton is once
        lm_head.restore()
        assert trl_utils._use_triton is original
        monkeypatch.setenv("WORKBENCH_LM_HEAD", "full")
        assert not lm_head.score_only_trained_positions()
        assert trl_utils._use_triton is original
    finally:
        lm_head.restore()
