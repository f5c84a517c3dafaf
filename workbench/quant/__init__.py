"""Quantisation: the bitsandbytes config a preset's `quantization` section asks for.

    >>> bnb_config(QuantizationCfg(mode="nf4"))      # BitsAndBytesConfig(load_in_4bit=...)
    >>> bnb_config(QuantizationCfg(mode="none"))     # None: load 16-bit weights
    >>> torch_dtype("bf16")                          # torch.bfloat16

bitsandbytes 0.50 runs all three modes (nf4, fp4, int8) on a CPU as well as on CUDA.

The storage arithmetic lives here once (bits per weight of each variant, block sizes); the
quality measurement that loads models and data is `workbench.quant.compare`, a layer up.
"""

from __future__ import annotations

from workbench.errors import PresetError

__all__ = ["torch_dtype", "bnb_config", "get_field", "VARIANTS", "DEFAULT_VARIANTS",
           "BLOCKSIZE", "NESTED_BLOCKSIZE", "NF4_BITS", "NF4_DQ_BITS", "variant_bits",
           "variant", "bits_per_param", "compare"]

_DTYPE_ALIASES = {
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "float32": "float32", "fp32": "float32", "float": "float32",
}


def get_field(cfg, key: str, default=None):
    """Read a field from a QuantizationCfg or a plain dict (callers hold either)."""
    if isinstance(cfg, dict):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def torch_dtype(name):
    """'bfloat16' | 'bf16' | 'float16' | 'fp16' | 'float32' | 'fp32' (or a torch.dtype);
    'auto' is what this machine computes fastest (workbench.hardware)."""
    import torch
    if isinstance(name, torch.dtype):
        return name
    key = _DTYPE_ALIASES.get(str(name).strip().lower().removeprefix("torch."))
    if str(name).strip().lower() == "auto":
        from workbench.hardware import resolve_compute_dtype
        key = resolve_compute_dtype("auto").dtype
    if key is None:
        raise PresetError(f"quantization.compute_dtype: {name!r} is not one of "
                          "auto, bfloat16, float16, float32")
    return getattr(torch, key)


def bnb_config(quant_cfg):
    """BitsAndBytesConfig for mode int8 / nf4 / fp4; None for mode none (or no cfg)."""
    mode = (get_field(quant_cfg, "mode", "none") or "none") if quant_cfg is not None else "none"
    if mode == "none":
        return None
    from transformers import BitsAndBytesConfig
    compute = torch_dtype(get_field(quant_cfg, "compute_dtype", "auto"))
    if mode == "int8":
        return BitsAndBytesConfig(load_in_8bit=True,
                                  llm_int8_threshold=float(get_field(quant_cfg, "int8_threshold", 6.0)))
    if mode in ("nf4", "fp4"):
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=mode,
            bnb_4bit_use_double_quant=bool(get_field(quant_cfg, "double_quant", True)),
            bnb_4bit_compute_dtype=compute, **_storage(quant_cfg))
    raise PresetError(f"quantization.mode: {mode!r} is not one of none, int8, nf4, fp4")


def _storage(quant_cfg) -> dict:
    """A "quant_storage" dtype (a dict key, set only for FSDP-QLoRA by train.distributed):
    4-bit weights stored in that dtype so FSDP can shard them; else uint8, the default."""
    storage = get_field(quant_cfg, "quant_storage", None)
    return {"bnb_4bit_quant_storage": torch_dtype(storage)} if storage else {}


# -- storage: bits per weight of each variant ----------------------------------------

VARIANTS = {"none": ("none", False), "int8": ("int8", False), "nf4": ("nf4", False),
            "nf4-dq": ("nf4", True), "fp4": ("fp4", False), "fp4-dq": ("fp4", True)}
DEFAULT_VARIANTS = tuple(VARIANTS)
BLOCKSIZE = 64        # transformers' BitsAndBytesConfig default, as in the QLoRA paper
NESTED_BLOCKSIZE = 256  # double quant: 8-bit constants in blocks of 256, one fp32 per block
NF4_BITS = 4 + 32 / BLOCKSIZE        # 4-bit code + one fp32 absmax per block = 4.5
NF4_DQ_BITS = 4 + 8 / BLOCKSIZE + 32 / (BLOCKSIZE * NESTED_BLOCKSIZE)  # ~4.127


def variant_bits(name: str, dtype="bfloat16", in_features: float | None = None) -> float:
    """Nominal storage bits per linear weight: 4 + 32/64 = 4.5 for 4-bit (one fp32 absmax per
    64 weights); 4 + 8/64 + 32/(64*256) ~ 4.127 with double quant; 8 + 32/in_features for
    int8 (one fp32 scale per output row); the dtype's width for none."""
    mode, dq = variant(name)
    if mode == "none":
        return float(torch_dtype(dtype).itemsize * 8)
    if mode == "int8":
        return 8.0 + (32.0 / in_features if in_features else 0.0)
    return NF4_DQ_BITS if dq else NF4_BITS


def variant(name: str) -> tuple[str, bool]:
    if name not in VARIANTS:
        raise PresetError(f"quant compare: unknown variant {name!r} (known: "
                          f"{', '.join(VARIANTS)})")
    return VARIANTS[name]


def bits_per_param(quant_type: str = "nf4", double_quant: bool = True) -> float:
    """Storage of a 4-bit weight including its share of the quantisation constants."""
    if quant_type not in ("nf4", "fp4"):
        raise PresetError(f"quantization.mode: {quant_type!r} is not a 4-bit type (nf4, fp4)")
    return NF4_DQ_BITS if double_quant else NF4_BITS
