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
    """Undo score_only_trained_positions() (tests compare both paths)."""
    from trl.trainer import utils as trl_utils
    current = trl_utils._use_triton
    if getattr(current, _MARK, False):
        trl_utils._use_triton = current.original
