"""Loading a base model and its tokenizer, quantised as the preset says, with a CPU cache
of the packed quantised weights (quantising on a CPU takes 15-45 s; the packed result loads
in ~1 s, bit-identical)."""


from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

from workbench.errors import ModelError
from workbench.quant import bnb_config, get_field, torch_dtype

log = logging.getLogger(__name__)

from workbench.models.sources import (EMBEDDED, _clean_stale_tmp, _ensure_tokenizer,
                                      models_cache_dir, resolve)

# -- tokenizer and model ------------------------------------------------------------------

def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    """The model's tokenizer with a pad token and a chat template."""
    from transformers import AutoTokenizer
    path = resolve(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelError(f"model {name_or_path!r}: cannot load the tokenizer from {path}: "
                         f"{type(exc).__name__}: {exc}") from exc
    return _ensure_tokenizer(tokenizer)


def device() -> str:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(model_cfg, quant_cfg, *, quantize: bool = True, dtype=None):
    """AutoModelForCausalLM in eval mode, quantised as `quant_cfg` says (unless
    quantize=False, e.g. for merging), on CUDA if there is one, else on the CPU.
    `dtype` (default: the compute dtype) is the dtype of everything not quantised."""
    from transformers import AutoModelForCausalLM
    name = model_cfg if isinstance(model_cfg, (str, os.PathLike)) else get_field(
        model_cfg, "name_or_path", EMBEDDED)
    trust = False if isinstance(model_cfg, (str, os.PathLike)) else bool(
        get_field(model_cfg, "trust_remote_code", False))
    path = resolve(str(name))
    quant = bnb_config(quant_cfg) if quantize else None
    dev = device()
    from workbench.hardware import resolve_compute_dtype
    choice = resolve_compute_dtype(dtype if dtype is not None else
                                   (get_field(quant_cfg, "compute_dtype", "auto") if quant_cfg
                                    else "auto"))
    if choice.device == "cuda" and choice.warning:
        log.warning(choice.warning)
    dt = torch_dtype(choice.dtype)
    if quant is not None and getattr(quant, "load_in_8bit", False):
        _quiet_int8_cast_warning()
    # bitsandbytes quantises on the CPU in plain torch ops: 15-45 s for SmolLM2-135M on two
    # cores, at every training or chat start. Its packed result loads in ~1 s, bit-identical,
    # so CPU loads keep it (on CUDA quantising takes a moment; remote code stays uncached).
    qdir = (quantized_cache_path(path, quant, dt)
            if quant is not None and dev == "cpu" and not trust else None)
    model = None
    if qdir is not None and (qdir / QUANT_MARKER).is_file():
        try:
            model = AutoModelForCausalLM.from_pretrained(qdir, dtype=dt, use_safetensors=True,
                                                         device_map="cpu")
        except Exception as exc:  # a damaged cache: rebuild it rather than fail
            log.warning("ignoring quantised cache %s: %s", qdir, exc)
            shutil.rmtree(qdir, ignore_errors=True)
    if model is None:
        try:
            model = AutoModelForCausalLM.from_pretrained(
                path, quantization_config=quant, dtype=dt, use_safetensors=True,
                # one GPU per process under torchrun / accelerate (LOCAL_RANK)
                device_map={"": int(os.environ.get("LOCAL_RANK", "0"))} if dev == "cuda"
                else "cpu", trust_remote_code=trust)
        except Exception as exc:
            raise ModelError(f"model {name!r}: cannot load from {path}"
                             f"{' with ' + get_field(quant_cfg, 'mode') if quant else ''}: "
                             f"{type(exc).__name__}: {exc}") from exc
        if qdir is not None and os.environ.get("LOCAL_RANK", "0") == "0":  # one writer
            _save_quantized(model, qdir, path)
    # name the real source, not the quantised cache (PEFT records it in adapter_config.json)
    model.name_or_path = model.config._name_or_path = str(path)
    model.eval()
    return model


QUANT_MARKER = "workbench_quantized.json"


def is_quantized_cached(path, quant_cfg, dtype) -> bool:
    """Will load_model take this (model folder, quantisation, dtype) from its CPU cache of
    quantised weights, instead of quantising again?"""
    quant = bnb_config(quant_cfg)
    if quant is None or device() != "cpu":
        return False
    try:
        return (quantized_cache_path(Path(path), quant, torch_dtype(dtype))
                / QUANT_MARKER).is_file()
    except Exception:  # noqa: BLE001 - unknown means "not cached"
        return False


def quantized_cache_path(path: Path, quant, dt) -> Path:
    """Cache folder keyed by everything the packed weights depend on."""
    import bitsandbytes
    import transformers
    files = sorted(path.glob("*.safetensors")) + [path / "config.json"]
    key = [str(path.resolve()), str(dt), bitsandbytes.__version__, transformers.__version__,
           json.dumps(quant.to_dict(), sort_keys=True, default=str)]
    key += [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    digest = hashlib.sha1("\n".join(key).encode()).hexdigest()[:12]
    mode = "int8" if quant.load_in_8bit else quant.bnb_4bit_quant_type
    return models_cache_dir() / "quantized" / f"{path.name}-{mode}-{digest}"


def _save_quantized(model, qdir: Path, source: Path) -> None:
    """Write through a temp folder + rename; a failure only costs the speed-up."""
    tmp = qdir.with_name(f".{qdir.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        qdir.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale_tmp(qdir)
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / QUANT_MARKER).write_text(json.dumps({"source": str(source)}) + "\n")
        os.rename(tmp, qdir)
    except Exception as exc:
        log.warning("could not cache the quantised model in %s: %s", qdir, exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _quiet_int8_cast_warning():
    """bitsandbytes logs 'MatMul8bitLt: inputs will be cast ... to float16' on every forward
    of every int8 layer; once is enough."""
    logger = logging.getLogger("bitsandbytes.autograd._functions")
    if not getattr(logger, "_workbench_once", False):
        seen = set()
        logger.addFilter(lambda record: not (record.msg in seen or seen.add(record.msg)))
        logger._workbench_once = True


# -- answering on a CPU ----------------------------------------------------------------------

UNPACK_SHARE = 0.25  # unpack the 4-bit weights when that takes at most this share of free RAM


def unpack_4bit_for_answers(model, *, share: float = UNPACK_SHARE) -> int:
    """On a CPU, turn every 4-bit layer of `model` (a PeftModel too: LoRA layers keep their
    adapters, only their base layer is swapped) into a plain Linear holding its unpacked
    weights, once. Returns the bytes that added (0: nothing done).

    Why: off CUDA, bitsandbytes unpacks a 4-bit weight at every forward (its CPU matmul is
    "dequantise, then linear"), and generating touches every layer once per token, so an
    answer paid the unpacking of the whole model for each of its tokens. Unpacking once
    gives the very values that matmul used (the same dequantise op), so the answers do not
    change (tests/tiny/test_chat_pair.py); bench/README.md ("Answers") has the speed.
    The price is memory: the compute dtype's size per weight instead of about half a
    byte, so it is done only when that fits in `share` of the free RAM, and never on CUDA
    (its 4-bit kernels are fast), on a CPU where bitsandbytes has a 4-bit inference kernel
    of its own (AVX512-BF16: `has_own_cpu_kernel`; not measured against unpacking) or for
    training (the unpacked copy is frozen, no grad)."""
    import bitsandbytes as bnb
    import psutil
    import torch
    if next(model.parameters()).device.type != "cpu":
        return 0
    layers = [(parent, name, child) for parent in model.modules()
              for name, child in parent.named_children() if isinstance(child, bnb.nn.Linear4bit)]
    if not layers or any(has_own_cpu_kernel(child) for _, _, child in layers):
        return 0
    dtype = layers[0][2].compute_dtype or torch.float32
    added = sum(c.in_features * c.out_features for _, _, c in layers) * dtype.itemsize
    free = psutil.virtual_memory().available
    if added > share * free:
        log.info("4-bit weights left packed for answers: unpacking would take %.1f GB of "
                 "%.1f GB free", added / 1e9, free / 1e9)
        return 0
    for parent, name, child in layers:
        weight = bnb.functional.dequantize_4bit(child.weight.data, child.weight.quant_state)
        plain = torch.nn.Linear(child.in_features, child.out_features,
                                bias=child.bias is not None, device="meta")
        plain.weight = torch.nn.Parameter(weight.to(dtype), requires_grad=False)
        if child.bias is not None:
            plain.bias = torch.nn.Parameter(child.bias.data.to(dtype), requires_grad=False)
        setattr(parent, name, plain)
    log.info("answers: %d 4-bit layers unpacked once to %s (+%.0f MB), not at every token",
             len(layers), str(dtype).replace("torch.", ""), added / 1e6)
    return added


def has_own_cpu_kernel(layer) -> bool:
    """Does bitsandbytes answer with this 4-bit layer through its packed CPU inference kernel
    (set on AVX512-BF16 CPUs; train.keep_4bit_trainable turns it off for training)?"""
    return bool(getattr(layer, "support_avx512bf16_for_cpu", False))


# -- introspection ------------------------------------------------------------------------

def linear_module_names(model) -> list[str]:
    """Distinct leaf names of the linear layers (plain, 4-bit or 8-bit), lm_head excluded:
    the names LoRA can target, e.g. ['down_proj', 'gate_proj', 'k_proj', ...]."""
    import torch
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = set()
    for qualified, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or module is output:
            continue
        if "lora_" in qualified:  # adapters of an already wrapped PEFT model
            continue
        parts = qualified.split(".")
        if parts[-1] == "base_layer" and len(parts) > 1:  # PEFT keeps the original in here
            parts.pop()
        leaf = parts[-1]
        if leaf != "lm_head":
            names.add(leaf)
    return sorted(names)


def footprint_bytes(model) -> int:
    """Bytes the model's parameters and buffers take (quantised weights count packed)."""
    return int(model.get_memory_footprint())
