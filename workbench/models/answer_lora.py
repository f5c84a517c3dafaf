"""Answers with a LoRA adapter without PEFT's per-layer bookkeeping (chat on a CPU).

    >>> switch = lean_lora_for_answers(peft_model)   # None: not applicable, keep using PEFT
    >>> switch.rows = None          # the base answers (adapter off)
    >>> switch.rows = ALL           # the tuned model answers
    >>> switch.rows = slice(1, 2)   # a batch of two: row 0 base, row 1 tuned (Compare)
    >>> switch.adapter = "run1"     # which adapter, where several are loaded (eval)
    >>> switch.model.generate(...)
    >>> with answering(peft_model, switch, ALL, "run1") as model:   # either path
    ...     model.generate(...)

Why: generating runs every LoRA layer once per token, and PEFT's LoRA forward does a lot of
Python per call (active adapters, merge state, dtype casts, dropout, the mixed-batch
split by adapter name), which on a CPU cost about a third of each tuned token
(bench/README.md, "Answers"). After the 4-bit weights are unpacked
(`unpack_4bit_for_answers`), each LoRA layer is replaced by `LeanLoRA`: the base Linear plus
`B(A(x)) * scale` for the rows the switch names, the same arithmetic as PEFT's (same order of
operations), nothing else. It applies only where that is all the adapter is: plain LoRA on
plain Linear layers (no DoRA, no LoRA bias, no embedding adapters, no modules_to_save);
anywhere else the PEFT model answers as before.
"""

from __future__ import annotations

import contextlib
import logging

log = logging.getLogger(__name__)

ALL = "all"


class Switch:
    """Which batch rows get which adapter: rows None (no row), ALL, or a slice of rows.
    `model` is the transformers model to call generate() on."""

    def __init__(self, model, adapter: str):
        self.model = model
        self.rows = None
        self.adapter = adapter

    @contextlib.contextmanager
    def on(self, rows, adapter: str | None = None):
        """The adapter (default: the current one) on for `rows` while inside."""
        before = self.rows, self.adapter
        self.rows, self.adapter = rows, adapter or self.adapter
        try:
            yield
        finally:
            self.rows, self.adapter = before


@contextlib.contextmanager
def answering(peft_model, switch: Switch | None, rows, adapter: str | None = None):
    """The model to call with the adapter (`adapter`, default: the current one) on for
    `rows` (None: off; ALL; a slice of the batch) while inside: through the lean layers'
    switch where they replaced PEFT's, else PEFT's own switching (disable_adapter,
    set_adapter; a slice is then the caller's mixed batch, given as adapter_names)."""
    if switch is not None:
        with switch.on(rows, adapter):
            yield switch.model
    elif rows is None:
        with peft_model.disable_adapter():
            yield peft_model
    else:
        if adapter is not None:
            peft_model.set_adapter(adapter)
        yield peft_model


def _lean_class():
    import torch

    class LeanLoRA(torch.nn.Module):
        """base(x), plus B(A(x)) * scale on the rows `switch.rows` names."""

        def __init__(self, base, adapters: dict, switch: Switch):
            super().__init__()
            self.base, self.adapters, self.switch = base, adapters, switch  # name: (A, B, scale)

        def forward(self, x):
            out = self.base(x)
            rows = self.switch.rows
            if rows is None or self.switch.adapter not in self.adapters:
                return out
            a, b, scale = self.adapters[self.switch.adapter]
            f = torch.nn.functional
            if rows == ALL:
                return out + f.linear(f.linear(x, a), b) * scale
            out[rows] += f.linear(f.linear(x[rows], a), b) * scale
            return out

    return LeanLoRA


def lean_lora_for_answers(peft_model) -> Switch | None:
    """Replace the LoRA layers of `peft_model` (eval, no grad) by lean ones sharing the same
    tensors, for every adapter loaded; returns the Switch (set to the active adapter), or
    None (nothing changed) where an adapter is more than plain LoRA on plain Linear layers.
    The PeftModel must not be used afterwards."""
    import torch
    from peft.tuners.lora import LoraLayer
    configs = dict(getattr(peft_model, "peft_config", {}) or {})
    if not configs or any(getattr(c, "modules_to_save", None)
                          or getattr(c, "trainable_token_indices", None)
                          for c in configs.values()):
        return None
    found = [(parent, child_name, child) for parent in peft_model.modules()
             for child_name, child in parent.named_children() if isinstance(child, LoraLayer)]
    if not found:
        return None
    for _, _, layer in found:
        if (type(layer.base_layer) is not torch.nn.Linear or layer.lora_embedding_A
                or getattr(layer, "fan_in_fan_out", False) or layer.merged_adapters):
            return None
        for name in layer.lora_A:
            if (layer.use_dora.get(name) or getattr(layer, "lora_bias", {}).get(name)
                    or not isinstance(layer.lora_dropout[name],
                                      torch.nn.Identity | torch.nn.Dropout)
                    or {layer.lora_A[name].weight.dtype, layer.lora_B[name].weight.dtype}
                    != {layer.base_layer.weight.dtype}):
                return None
    active = peft_model.active_adapter
    switch = Switch(peft_model.get_base_model(),
                    active if isinstance(active, str) else list(configs)[0])
    lean = _lean_class()
    for parent, child_name, layer in found:
        adapters = {name: (layer.lora_A[name].weight, layer.lora_B[name].weight,
                           layer.scaling[name]) for name in layer.lora_A}
        setattr(parent, child_name, lean(layer.base_layer, adapters, switch))
    log.info("answers: %d LoRA layers (%d adapters) without PEFT's per-layer bookkeeping",
             len(found), len(configs))
    return switch
