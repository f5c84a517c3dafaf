"""LoRA arithmetic without loading weights: a model's linear layers and how many
parameters an adapter of rank r on them trains.

    >>> info = model_info("embedded:smollm2-135m-instruct")
    >>> trainable_params(info, r=8, targets="all-linear")   # (trainable, total, missing)

The model is built on the `meta` device from its config (shapes only, no memory), so the
count is instant and the same whether the base will be 4-bit, 8-bit or 16-bit: PEFT's own
count on a 4-bit model reports packed weights (two per byte) and understates the total.
"""

from __future__ import annotations

import functools

from workbench.config import ALL_LINEAR


@functools.lru_cache(maxsize=4)
def model_info(name_or_path: str, trust_remote_code: bool = False) -> dict:
    """Linear layers (leaf name, in, out, has bias) and parameter counts of a model,
    read from its config on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from workbench import models
    path = models.resolve(name_or_path)
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    output = model.get_output_embeddings()
    linears = [(q.rsplit(".", 1)[-1], mod.in_features, mod.out_features, mod.bias is not None)
               for q, mod in model.named_modules()
               if isinstance(mod, torch.nn.Linear) and mod is not output]
    return {"names": models.linear_module_names(model),
            "linears": [lin for lin in linears if lin[0] != "lm_head"],
            "total": sum(p.numel() for p in model.parameters()),
            "bias_total": sum(p.numel() for n, p in model.named_parameters()
                              if n.endswith(".bias"))}


def trainable_params(info: dict, r: int, targets, bias: str = "none",
                     use_dora: bool = False) -> tuple[int, int, list[str]]:
    """(trainable, total with the adapters, target names not in this model).

    LoRA adds r x (in + out) per adapted layer; DoRA a magnitude per output; bias
    'lora_only' trains the adapted layers' biases, 'all' every bias."""
    names = set(info["names"]) if targets == ALL_LINEAR else set(targets)
    lora = bias_n = 0
    for leaf, fan_in, fan_out, has_bias in info["linears"]:
        if leaf in names:
            lora += int(r) * (fan_in + fan_out) + (fan_out if use_dora else 0)
            bias_n += fan_out if (has_bias and bias == "lora_only") else 0
    if bias == "all":
        bias_n = info["bias_total"]
    missing = sorted(names - set(info["names"]))
    return lora + bias_n, info["total"] + lora, missing
