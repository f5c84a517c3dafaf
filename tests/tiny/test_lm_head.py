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


@pytest.mark.parametrize("softcap,scale,temperature", [(None, 1.0, 1.0), (30.0, 0.5, 0.7)])
def test_plain_head_matches_trls_tiles(softcap, scale, temperature):
    """plain_logprobs gives trl's tiled results: the log-probabilities and their gradient,
    the entropy, log(sum p^2), the mean logit and the top-1 flags."""
    from trl.kernels import ChunkedLogProbFunction
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(37, 16, generator=g)
    weight = torch.randn(300, 16, generator=g) * 0.5
    bias = torch.randn(300, generator=g) * 0.1
    targets = torch.randint(0, 300, (37,), generator=g)
    targets[0] = int((hidden[0] @ weight.t() + bias).argmax())  # one sure top-1
    outputs = ("entropy", "log_sum_sq_probs", "mean_logits", "is_top1")
    results = []
    for fn in (lambda *a: ChunkedLogProbFunction.apply(*a[:5], 64, *a[5:]),
               lm_head.plain_logprobs):
        h = hidden.clone().requires_grad_()
        got = fn(h, weight, bias, targets, temperature, softcap, scale, outputs)
        (-got[0].sum()).backward()
        results.append((got, h.grad))
    (tiled, tiled_grad), (plain, plain_grad) = results
    for a, b in zip(tiled[:4], plain[:4]):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    assert torch.equal(plain[4], tiled[4]) and bool(plain[4][0])
    torch.testing.assert_close(plain_grad, tiled_grad, rtol=1e-5, atol=1e-6)
    # what is not asked for is not computed
    none = lm_head.plain_logprobs(hidden, weight, None, targets, outputs=())
    assert none[0].shape == (37,) and all(x is None for x in none[1:])


def test_plain_head_only_for_small_logits_on_a_cpu(monkeypatch):
    from trl.trainer import utils as trl_utils
    original = trl_utils._ChunkedLogProbFunction
    calls = []

    class Tiles:
        @staticmethod
        def apply(*args):
            calls.append(args[0].shape[0])
            return original.apply(*args)
    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Tiles)
    try:
        assert lm_head.plain_head_when_small()
        head = trl_utils._ChunkedLogProbFunction
        assert lm_head.plain_head_when_small() and trl_utils._ChunkedLogProbFunction is head
        w, t = torch.randn(50, 8), torch.randint(0, 50, (10,))
        head.apply(torch.randn(10, 8), w, None, t, 1.0, 32, None, 1.0, ("entropy",))
        assert calls == []  # small: the plain path
        monkeypatch.setattr(lm_head, "PLAIN_MAX_LOGITS", 10 * 50 - 1)
        head.apply(torch.randn(10, 8), w, None, t, 1.0, 32, None, 1.0, ("entropy",))
        assert calls == [10]  # past the limit: trl's tiles
        lm_head.restore()
        assert trl_utils._ChunkedLogProbFunction is Tiles
        monkeypatch.setenv("WORKBENCH_LM_HEAD", "chunked")
        assert not lm_head.plain_head_when_small()
        assert trl_utils._ChunkedLogProbFunction is Tiles
    finally:
        lm_head.restore()
