"""With gradient checkpointing on a CPU, hand large freed blocks back to the system at once.

glibc's malloc serves a large block from mmap only above a threshold that it raises each
time such a block is freed (up to 32 MiB), so a training step's activations soon come from
the heap, and the heap keeps what was freed. Gradient checkpointing recomputes each layer's
forward during the backward, which frees and allocates many such blocks: the peak RSS of the
LLaMA-Factory job with checkpointing (bench/README.md, "Defaults, 8 steps") was 3.4-3.7 GB
where the live tensors peaked at 1.4 GB. A fixed 4 MiB threshold (`mallopt`) measured 2.57
GB against 3.61 GB, at 22.0/21.8 against 19.8 s/step (AVX2): a user who turned checkpointing
on asked for memory first. Without checkpointing it saved nothing, so nothing changes there.
A MALLOC_MMAP_THRESHOLD_ the user set wins; WORKBENCH_MALLOC=default turns this off.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_MMAP_THRESHOLD = -3          # glibc's mallopt parameter number
THRESHOLD = 4 * 1024 * 1024


def memory_first(gradient_checkpointing: bool, cuda: bool, log) -> bool:
    """Set the fixed threshold when it applies (module doc); True when it was set."""
    if cuda or not gradient_checkpointing or not sys.platform.startswith("linux"):
        return False
    if os.environ.get("WORKBENCH_MALLOC") == "default" or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    if mallopt(M_MMAP_THRESHOLD, THRESHOLD) != 1:  # not glibc, or refused
        return False
    log(f"memory: gradient checkpointing on, so blocks over {THRESHOLD >> 20} MiB go back to "
        "the system when freed (less peak memory, about a tenth slower; "
        "WORKBENCH_MALLOC=default keeps the allocator's own behaviour)")
    return True
