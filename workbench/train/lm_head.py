"""Score only the trained positions in trl's fused LM head on a CPU too.

trl 1.16's SFTTrainer computes the loss through a chunked ("fused") LM head: it projects
hidden states onto the vocabulary tile by tile and keeps only per-token log-probabilities,
never the whole logits. On a Triton device (CUDA, XPU) it projects only the positions whose
label is not -100; on any other device it projects every position (prompt and padding
included) and zeroes the masked ones afterwards, because a compiler such as Neuron's would
recompile for every new number of valid positions. A CPU compiles nothing, so that only
costs time: with the loss on the answers only, most positions of a chat row are prompt or
padding, and the LM head (576 x 49,152 for SmolLM2-135M, about a fifth of the model's
matmul work) runs three matmuls per position (forward, and the backward's recompute and
input gradient).

`score_only_trained_positions()` makes trl take its compact path on the CPU as well. The
arithmetic is the same: the masked positions contribute exactly zero to the loss, its
gradient and the logged entropy and accuracy either way (tests/tiny/test_lm_head.py
checks the losses and gradients against the uncompacted path). Measured speed-up:
bench/README.md ("The whole cpu-demo on AVX2", its "What moved it" table); the environment
variable WORKBENCH_LM_HEAD=full keeps trl's own behaviour, for that comparison.

`plain_head_when_small()` replaces trl's tiled function on a CPU when the scored logits
are small (at most PLAIN_MAX_LOGITS values, 256 MB in float32): one matmul and
PyTorch's own log-softmax, autograd's backward, instead of trl's torch-op fallback for
devices without Triton. That fallback makes about ten passes over every tile forward,
recomputes the tile's matmul in the backward, and makes as many passes again. Larger logits
keep trl's function, which never holds them whole. WORKBENCH_LM_HEAD=chunked keeps the
tiles. The entropy, top-1 and other logged figures are computed without gradient (SFT
logs them only).
"""

from __future__ import annotations

import os

_MARK = "_workbench_compact_on_cpu"


def score_only_trained_positions() -> bool:
    """Patch trl's fused-LM-head switch so a CPU takes the compact path; True when the
    installed trl has that switch (and it is patched now or already was)."""
    if os.environ.get("WORKBENCH_LM_HEAD") == "full":
        return False
    try:
        from trl.trainer import utils as trl_utils
    except ImportError:
        return False
    original = getattr(trl_utils, "_use_triton", None)
    if original is None or not callable(original):
        return False
    if getattr(original, _MARK, False):
        return True

    def compact(device) -> bool:
        return bool(original(device)) or getattr(device, "type", str(device)) == "cpu"

    setattr(compact, _MARK, True)
    compact.original = original
    trl_utils._use_triton = compact
    return True


def restore() -> None:
    """Undo score_only_trained_positions() and plain_head_when_small() (tests compare)."""
    from trl.trainer import utils as trl_utils
    current = trl_utils._use_triton
    if getattr(current, _MARK, False):
        trl_utils._use_triton = current.original
    head = getattr(trl_utils, "_ChunkedLogProbFunction", None)
    if isinstance(head, PlainWhenSmall):
        trl_utils._ChunkedLogProbFunction = head.chunked


PLAIN_MAX_LOGITS = 64 * 1024 * 1024  # scored positions x vocabulary, float32: 256 MB


def plain_head_when_small() -> bool:
    """Route trl's fused LM head through plain_logprobs on a CPU when its logits are small
    (module doc); True when the installed trl has the function (patched now or before)."""
    if os.environ.get("WORKBENCH_LM_HEAD") in ("full", "chunked"):
        return False
    try:
        from trl.trainer import utils as trl_utils
    except ImportError:
        return False
    head = getattr(trl_utils, "_ChunkedLogProbFunction", None)
    if head is None or not callable(getattr(head, "apply", None)):
        return False
    if not isinstance(head, PlainWhenSmall):
        trl_utils._ChunkedLogProbFunction = PlainWhenSmall(head)
    return True


class PlainWhenSmall:
    """Stands in for trl's ChunkedLogProbFunction: the same `apply` arguments and results."""

    def __init__(self, chunked):
        self.chunked = chunked

    def apply(self, hidden, weight, bias, targets, temperature, chunk_size,
              final_logit_softcapping=None, logit_scale=1.0, outputs=()):
        if hidden.device.type != "cpu" or hidden.shape[0] * weight.shape[0] > PLAIN_MAX_LOGITS:
            return self.chunked.apply(hidden, weight, bias, targets, temperature, chunk_size,
                                      final_logit_softcapping, logit_scale, outputs)
        return plain_logprobs(hidden, weight, bias, targets, temperature,
                              final_logit_softcapping, logit_scale, outputs)


def plain_logprobs(hidden, weight, bias, targets, temperature=1.0,
                   final_logit_softcapping=None, logit_scale=1.0, outputs=()):
    """trl's per-token results from whole logits: (log-probability of each target,
    entropy, log(sum p^2), mean logit, target is the first argmax); those not in `outputs`
    are None. Only the log-probabilities carry a gradient."""
    import torch
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    z = torch.nn.functional.linear(hidden.to(dtype), weight.to(dtype),
                                   None if bias is None else bias.to(dtype)).float()
    if logit_scale != 1.0:
        z = z * logit_scale
    if final_logit_softcapping is not None:
        z = final_logit_softcapping * torch.tanh(z / final_logit_softcapping)
    if temperature != 1.0:
        z = z / temperature
    log_z = torch.logsumexp(z, dim=-1)
    logprobs = z.gather(1, targets.long().unsqueeze(1)).squeeze(1) - log_z
    entropy = log_sum_sq = mean = top1 = None
    with torch.no_grad():
        if "entropy" in outputs:
            entropy = log_z - (torch.softmax(z, dim=-1) * z).sum(-1)
        if "log_sum_sq_probs" in outputs:
            log_sum_sq = torch.logsumexp(2 * z, dim=-1) - 2 * log_z
        if "mean_logits" in outputs:
            mean = z.mean(-1)
        if "is_top1" in outputs:
            top1 = z.argmax(-1) == targets
    return logprobs, entropy, log_sum_sq, mean, top1
