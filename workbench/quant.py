"""Quantisation: the bitsandbytes config a preset's `quantization` section asks for.

    >>> bnb_config(QuantizationCfg(mode="nf4"))      # BitsAndBytesConfig(load_in_4bit=...)
    >>> bnb_config(QuantizationCfg(mode="none"))     # None: load 16-bit weights
    >>> torch_dtype("bf16")                          # torch.bfloat16

bitsandbytes 0.50 runs all three modes (nf4, fp4, int8) on a CPU as well as on CUDA.
"""

from __future__ import annotations

from workbench.errors import PresetError

_DTYPE_ALIASES = {
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "float32": "float32", "fp32": "float32", "float": "float32",
}


def _get(cfg, key: str, default=None):
    """Read a field from a QuantizationCfg or a plain dict (callers hold either)."""
    if isinstance(cfg, dict):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def torch_dtype(name):
    """'bfloat16' | 'bf16' | 'float16' | 'fp16' | 'float32' | 'fp32' (or a torch.dtype)."""
    import torch
    if isinstance(name, torch.dtype):
        return name
    key = _DTYPE_ALIASES.get(str(name).strip().lower().removeprefix("torch."))
    if key is None:
        raise PresetError(f"quantization.compute_dtype: {name!r} is not one of "
                          "bfloat16, float16, float32")
    return getattr(torch, key)


def bnb_config(quant_cfg):
    """BitsAndBytesConfig for mode int8 / nf4 / fp4; None for mode none (or no cfg)."""
    mode = (_get(quant_cfg, "mode", "none") or "none") if quant_cfg is not None else "none"
    if mode == "none":
        return None
    from transformers import BitsAndBytesConfig
    compute = torch_dtype(_get(quant_cfg, "compute_dtype", "bfloat16"))
    if mode == "int8":
        return BitsAndBytesConfig(load_in_8bit=True,
                                  llm_int8_threshold=float(_get(quant_cfg, "int8_threshold", 6.0)))
    if mode in ("nf4", "fp4"):
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=mode,
            bnb_4bit_use_double_quant=bool(_get(quant_cfg, "double_quant", True)),
            bnb_4bit_compute_dtype=compute)
    raise PresetError(f"quantization.mode: {mode!r} is not one of none, int8, nf4, fp4")
