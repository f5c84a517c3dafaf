"""Memory estimate for full / LoRA / QLoRA / int8 fine-tuning, from the model's shape alone.

Pure arithmetic (no torch): `estimate(shape, method, ...)` returns an `Estimate` whose
`breakdown` is in bytes. The accounting follows what the Workbench stack really allocates
(transformers 5 + peft + TRL SFTTrainer + bitsandbytes); every rule of thumb is a named
constant below with the reason beside it, so the benchmark in bench/ can check and tune it.

    python launch.py memory cpu-demo                  # the embedded model, the preset's settings
    python launch.py memory qlora-paper --model llama-65b --set train.batch_size=1 --json

Paper check (Dettmers et al. 2023, QLoRA): LLaMA-65B needs > 780 GB for 16-bit full
fine-tuning (we count 2 + 2 + 8 = 12 bytes per parameter: 16-bit weights, 16-bit gradients,
two fp32 Adam states -> 783 GB before activations) and < 48 GB with QLoRA (NF4 + double
quant, r 64 on all linear layers, batch 1, seq 512, checkpointing, paged AdamW 32-bit).

The activation terms were measured op by op with saved_tensors_hooks. CPU check of the
totals (SmolLM2-135M shape, batch 4 x 100 tokens, AdamW steps through TRL's fused head,
no autocast, peak RSS growth with MALLOC_MMAP_THRESHOLD_=65536 so RSS follows live
tensors): LoRA bf16 1.46 GB estimated / 1.47 measured, int8 (fp32) 1.51 / 1.50, QLoRA
1.03 / 1.28, of which ~0.2 GB were pages of the mmapped 16-bit checkpoint. Without that
setting glibc keeps freed blocks and the RSS peak is about a third higher.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field

from workbench.config import ALL_LINEAR, AUTO
from workbench.config import OPTIMIZERS as OPTIMIZER_CHOICES
from workbench.errors import PresetError
from workbench.models import NAMED, ModelShape, shape_for  # noqa: F401 - memory.NAMED etc.
from workbench.quant import bits_per_param
from workbench.train.lm_head import PLAIN_MAX_LOGITS  # the trainer's own limit (no torch)

METHODS = ("full", "lora", "qlora", "int8")
LM_HEADS = ("auto", "fused", "plain", "full")
OPTIMIZERS = tuple(OPTIMIZER_CHOICES)
# the method whose memory a quantization.mode trains with
METHOD_OF_MODE = {"none": "lora", "int8": "int8", "nf4": "qlora", "fp4": "qlora"}
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# -- constants (bytes unless said otherwise) ----------------------------------------------
# 4-bit storage (4.5 bits, ~4.127 with double quant) is quant.bits_per_param
INT8_ROW_SCALE = 4               # LLM.int8 keeps one fp32 scale per output row (SCB);
                                 # outlier columns are picked per batch, not stored
FULL_STATE_BYTES = 4             # full FT: Adam states in fp32 (the paper's accounting)
FULL_MASTER_BYTES = 0            # set 4 for an fp32 master copy (AMP-style): 16 B/param
OPT8_BYTES = 1 + 4 / 256         # bnb 8-bit states: 1 byte + fp32 absmax per 256 (bnb keeps
                                 # tensors under 4096 values in fp32: ignored, so that a
                                 # larger r never lowers the estimate)
# Activations kept for backward, per token and layer, measured with saved_tensors_hooks on
# transformers 5.24 / peft 0.21 / torch 2.13 (LLaMA layer, sdpa attention):
NORM_FP32 = 4                    # RMSNorm keeps its input upcast to fp32 (x2 norms per layer)
ATTN_KEPT = 4                    # sdpa keeps q, k, v (k/v expanded to all heads) and its output
                                 # (+ fp32 logsumexp per head); flash/efficient kernels keep no
                                 # heads*seq^2 scores, only the 4D padding mask (once)
MLP_KEPT = 3                     # silu input, silu output, up_proj output
TRAINABLE_EXTRA = (2, 1, 1)      # full FT: linears keep their inputs too: +2 attention copies
                                 # (o_proj input, one reshape copy), +1 MLP (down_proj input),
                                 # +1 compute-dtype copy per norm (its normalised output)
TRANSIENT_LAYERS = 1             # backward of a layer allocates about one layer of grads
DEQUANT_COPIES = 2               # bnb dequantises a weight for the matmul (fwd and bwd)
FULL_LOGITS_EXTRA = 8            # plain HF loss: fp32 upcast + log-softmax of the logits
FUSED_TOKENS, FUSED_VOCAB = 4096, 32768   # TRL's fused LM head tile (no full logits)
FUSED_TILE_EXTRA = {"cpu": 30, "cuda": 0}  # bytes per tile element beside the tile itself:
                                 # the torch fallback (no Triton) makes ~7 fp32 tile temporaries
                                 # in backward (measured 29-30 B on CPU); the Triton kernel none
# On a CPU, train.lm_head.plain_head_when_small() computes whole fp32 logits instead while
# there are at most PLAIN_MAX_LOGITS of them: peak growth of its forward + backward (with
# the logged entropy etc.) measured 20.2-21.1 B per logit (n 256 and 1024 x 49,152, fp32 and
# bf16, VmHWM with MALLOC_MMAP_THRESHOLD_=65536); trl's tiles on the same 22.3-23.1 B.
PLAIN_LOGIT_BYTES = 21


@dataclass
class Estimate:
    model: str
    method: str
    settings: dict
    params: dict                      # total, trainable
    breakdown: dict                   # bytes: weights, quant_constants, non_quantized, lora,
    notes: list = field(default_factory=list)   # gradients, optimizer, activations, logits

    @property
    def total_bytes(self) -> int:
        return sum(self.breakdown.values())

    def to_dict(self) -> dict:
        return {**asdict(self), "total_bytes": self.total_bytes}


def _targets(shape: ModelShape, targets) -> list[tuple[str, int, int]]:
    if isinstance(targets, str) and targets == ALL_LINEAR:
        return shape.linears()   # peft's all-linear skips lm_head
    names = [targets] if isinstance(targets, str) else list(targets)
    unknown = [n for n in names if n.split(".")[-1] not in LINEARS]
    if unknown:
        raise PresetError(f"lora.target_modules: {unknown[0]!r} is not a linear layer of a "
                          f"LLaMA-style model (known: all-linear, {', '.join(LINEARS)})")
    wanted = {n.split(".")[-1] for n in names}
    return [m for m in shape.linears() if m[0] in wanted]


def _optimizer_bytes(optimizer: str, matrices: list[tuple[int, int]], state_bytes: float) -> float:
    """Optimizer state for trainable (rows, cols) matrices; state_bytes = one Adam state."""
    n = sum(a * b for a, b in matrices)
    if optimizer == "adamw_torch":       # torch keeps states in the parameter dtype
        return 2 * n * state_bytes
    if optimizer == "paged_adamw_32bit":  # bitsandbytes: fp32 states whatever the dtype
        return 2 * n * 4
    if optimizer in ("adamw_8bit", "paged_adamw_8bit"):
        return 2 * n * OPT8_BYTES
    if optimizer == "adafactor":   # factored second moment, no first moment (HF default)
        return sum(4 * (a + b) if min(a, b) > 1 else 4 * a * b for a, b in matrices)
    return 0                       # sgd without momentum keeps no state


def estimate(shape: ModelShape, method: str = "qlora", *, r: int = 8, alpha: float = 16,
             targets=ALL_LINEAR, dropout: float = 0.05, batch_size: int = 1,
             seq_len: int = 512, gradient_checkpointing: bool = False,
             optimizer: str = "adamw_torch", quant_type: str = "nf4",
             double_quant: bool = True, compute_dtype: str = "bfloat16",
             lora_dtype: str | None = None, lm_head: str = "auto",
             device: str = "cuda") -> Estimate:
    """Peak training memory in bytes. `alpha` does not change memory (kept for symmetry).

    lora_dtype: None follows what training does: bf16 adapters on a quantised base under
    bf16 compute (TRL's SFTTrainer, as the QLoRA paper did), fp32 otherwise (Workbench casts
    TRL's bf16 adapters back under fp32/fp16 compute; peft's autocast_adapter_dtype on a
    16-bit base).
    lm_head: 'fused' = TRL's chunked log-prob head, 'full' = logits materialised (HF's own
    loss), 'plain' = whole fp32 logits under autograd (Workbench's CPU head), 'auto' = what
    training does: fused on CUDA; on a CPU the larger of fused and plain, since the trainer
    goes plain when the positions it scores (the answers', unknown here) fit.
    device: 'cuda' or 'cpu' (paged optimizers fall back to adamw_torch on CPU).
    """
    if method not in METHODS:
        raise PresetError(f"--method: {method!r} is not one of {', '.join(METHODS)}")
    if optimizer not in OPTIMIZERS:
        raise PresetError(f"train.optimizer: {optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    notes = []
    if compute_dtype == "auto":
        compute_dtype, why = _resolve_auto(device)
        notes.append(f"compute dtype {why}")
    if compute_dtype not in DTYPE_BYTES:
        raise PresetError(f"quantization.compute_dtype: {compute_dtype!r} is not one of "
                          f"{', '.join(DTYPE_BYTES)}")
    for key, val in (("lora.r", r), ("train.batch_size", batch_size), ("seq_len", seq_len)):
        if int(val) < 1:
            raise PresetError(f"{key}: {val!r} must be at least 1")
    if device == "cpu" and optimizer in ("paged_adamw_32bit", "paged_adamw_8bit", "adamw_8bit"):
        notes.append(f"{optimizer} needs CUDA (bitsandbytes); on a CPU training uses "
                     "adamw_torch")
        optimizer = "adamw_torch"
    elif optimizer.startswith("paged_"):
        notes.append("paged optimizer: its states are counted here but can page out to CPU "
                     "RAM under memory pressure")
    a = DTYPE_BYTES[compute_dtype]
    quantised = method in ("qlora", "int8")
    if quantised and device == "cpu":
        notes.append("a first (uncached) quantising load on a CPU leaves the 16-bit checkpoint "
                     "memory-mapped: its pages show in RSS but are not counted here")
    # bf16 adapters only under bf16 compute: train.adapters_in_compute_dtype keeps them in
    # float32 otherwise (float32 compute: auto on a CPU without native bf16; float16)
    lora_dtype = lora_dtype or ("bfloat16" if quantised and compute_dtype == "bfloat16"
                                else "float32")
    lb = DTYPE_BYTES[lora_dtype]
    h, L, tokens = shape.hidden, shape.layers, batch_size * seq_len
    lin = shape.linear_params
    b = dict.fromkeys(("weights", "quant_constants", "non_quantized", "lora", "gradients",
                       "optimizer", "activations", "logits"), 0.0)

    # weights: bnb quantises the decoder's linear layers; everything else stays in compute dtype
    b["non_quantized"] = shape.other_params * a
    if method == "qlora":
        b["weights"] = lin * 4 / 8
        b["quant_constants"] = lin * (bits_per_param(quant_type, double_quant) - 4) / 8
    elif method == "int8":
        b["weights"] = lin * 1
        b["quant_constants"] = L * sum(o for _, _, o in shape.linears()) * INT8_ROW_SCALE
    else:
        b["weights"] = lin * a

    # trainable parameters, their gradients and optimizer states
    lora_mods = [] if method == "full" else _targets(shape, targets)
    if method == "full":
        mats = [(i, o) for _, i, o in shape.linears()] * L + [(shape.vocab, h)] * (
            1 if shape.tied else 2) + [(1, h)] * (2 * L + 1)
        trainable = shape.params
        b["gradients"] = trainable * a
        b["optimizer"] = (_optimizer_bytes(optimizer, mats, FULL_STATE_BYTES)
                          + trainable * FULL_MASTER_BYTES)
    else:
        mats = [m for _, i, o in lora_mods for m in ((r, i), (o, r))] * L
        trainable = sum(x * y for x, y in mats)
        b["lora"] = trainable * lb
        b["gradients"] = trainable * lb
        b["optimizer"] = _optimizer_bytes(optimizer, mats, lb)

    # activations kept for backward, per token and layer (see the constants above)
    q, i = shape.heads * shape.hd, shape.intermediate
    per_tok = (2 * NORM_FP32 * h + ATTN_KEPT * q * a + shape.heads * 4 + MLP_KEPT * i * a)
    if method == "full":
        x_attn, x_mlp, x_norm = TRAINABLE_EXTRA
        per_tok += (x_attn * q + x_mlp * i + 2 * x_norm * h) * a
    if method == "int8":     # bnb's int8 matmul keeps its input A for the backward pass
        per_tok += (2 * h + q + i) * a
    # peft casts x to the adapter dtype, dropout keeps its mask (in that dtype on a CPU, bool
    # on CUDA), lora_A keeps its input: in the adapter dtype, or in the compute dtype when
    # fp32 adapters run under the trainer's bf16/fp16 autocast
    mask = (lb if device == "cpu" else 1) if dropout > 0 else 0
    kept_in = min(lb, a)
    for _, fan_in, _ in lora_mods:
        per_tok += fan_in * (kept_in + mask) + r * kept_in
    layer = tokens * per_tok
    kept = tokens * h * a * L if gradient_checkpointing else layer * L
    if gradient_checkpointing:
        kept += layer                # one layer recomputed during backward
    # embedding output, final norm, LM-head input, and the 4D padding mask shared by layers
    edges = tokens * h * (a + NORM_FP32 + a) + batch_size * seq_len ** 2 * a
    workspace = 0
    if quantised:
        workspace = DEQUANT_COPIES * max(fi * fo for _, fi, fo in shape.linears()) * a
    b["activations"] = kept + TRANSIENT_LAYERS * layer + edges + workspace

    if lm_head not in LM_HEADS:
        raise PresetError(f"lm_head: {lm_head!r} is not one of {', '.join(LM_HEADS)}")
    if lm_head == "full":
        b["logits"] = tokens * shape.vocab * (a + FULL_LOGITS_EXTRA)
    else:
        tile = min(tokens, FUSED_TOKENS) * min(shape.vocab, FUSED_VOCAB)
        fused = tile * (a + FUSED_TILE_EXTRA.get(device, 0))
        plain = min(tokens * shape.vocab, PLAIN_MAX_LOGITS // shape.vocab * shape.vocab
                    ) * PLAIN_LOGIT_BYTES
        head = {"fused": fused, "plain": plain,
                "auto": max(fused, plain) if device == "cpu" else fused}[lm_head]
        b["logits"] = head + tokens * h * 4
        if method == "full":     # the fused backward accumulates the lm_head grad in fp32
            b["logits"] += shape.vocab * h * 4

    settings = {"r": r, "alpha": alpha, "targets": targets, "dropout": dropout,
                "batch_size": batch_size, "seq_len": seq_len,
                "gradient_checkpointing": gradient_checkpointing, "optimizer": optimizer,
                "quant_type": quant_type if method == "qlora" else None,
                "double_quant": double_quant if method == "qlora" else None,
                "compute_dtype": compute_dtype, "lora_dtype": None if method == "full"
                else lora_dtype, "lm_head": lm_head, "device": device}
    return Estimate(model=shape.name, method=method, settings=settings,
                    params={"total": shape.params, "trainable": trainable},
                    breakdown={k: int(round(v)) for k, v in b.items()}, notes=notes)


def compare_methods(shape: ModelShape, methods=("full", "lora", "qlora"), **kwargs) -> dict:
    """{method: Estimate} with the same settings, for side-by-side bars."""
    return {m: estimate(shape, m, **kwargs) for m in methods}


def _cuda():
    """torch when a CUDA GPU is usable; None without importing torch on GPU-less machines."""
    if "torch" not in sys.modules and not os.path.exists("/dev/nvidiactl"):
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def _resolve_auto(device: str) -> tuple[str, str]:
    """(dtype, reason) of compute_dtype auto on `device`: this machine's answer when it is
    that device; for a CUDA GPU we are not on, bfloat16 (every GPU since Ampere)."""
    from workbench.hardware import resolve_compute_dtype
    here = "cuda" if _cuda() else "cpu"
    if device == here:
        choice = resolve_compute_dtype("auto")
        return choice.dtype, choice.reason
    if device == "cuda":
        return "bfloat16", "auto → bfloat16 (assumed for a CUDA GPU with bf16 support)"
    choice = resolve_compute_dtype("auto", cuda=(False, False, ""))
    return choice.dtype, choice.reason


def estimate_for_preset(preset, shape=None, method: str | None = None, *,
                        seq_len: int | None = None, device: str | None = None,
                        gradient_checkpointing: bool | None = None) -> Estimate:
    """The estimate for a Preset (or preset name). seq_len: the real padded length of a
    batch when known (short rows pad to far less than train.max_length).
    gradient_checkpointing: instead of the preset's; its `auto` is decided here at seq_len
    as training decides it (train/checkpointing.py), and the reason is in the notes."""
    if isinstance(preset, str):
        from workbench import presets
        preset = presets.load(preset)
    if shape is None:
        shape = preset.model.name_or_path
    if isinstance(shape, str):
        shape = shape_for(shape)
    q, t = preset.quantization, preset.train
    mode_method = METHOD_OF_MODE[q.mode]
    method = method or mode_method
    assumed = seq_len is None  # then `auto` below is decided at max_length, not the data's
    seq_len = t.max_length if seq_len is None else int(seq_len)
    auto = None
    if gradient_checkpointing is None and t.gradient_checkpointing == AUTO:
        from workbench.train import checkpointing
        auto = checkpointing.decide(preset, seq_len, device=device, shape=shape, method=method)
        gradient_checkpointing = auto.on
    est = estimate(shape, method, r=preset.lora.r, alpha=preset.lora.alpha,
                    targets=preset.lora.target_modules, dropout=preset.lora.dropout,
                    batch_size=t.batch_size, seq_len=seq_len,
                    gradient_checkpointing=(t.gradient_checkpointing if gradient_checkpointing
                                            is None else gradient_checkpointing),
                    optimizer=t.optimizer,
                    quant_type=q.mode if q.mode in ("nf4", "fp4") else "nf4",
                    double_quant=q.double_quant, compute_dtype=q.compute_dtype,
                    device=device or ("cuda" if _cuda() else "cpu"))
    if auto is not None:  # the reason for the page; the note adds the CLI's advice
        est.settings["gradient_checkpointing_auto"] = auto.reason
        est.notes.append(f"gradient checkpointing {auto.reason}" + (
            "; at train.max_length: training decides at the data's longest padded batch "
            "(shorter rows: often off), which --seq-len or a dry run shows" if assumed else ""))
    return per_process(est, preset.distributed.processes)


def per_process(est: Estimate, processes: int) -> Estimate:
    """The figures are per process; with several (distributed.processes), say what that
    means for the machine: DDP keeps a whole copy in each."""
    est.settings["world_size"] = processes
    if processes > 1:
        gib = est.total_bytes / 2 ** 30
        est.notes.append(
            (f"per GPU: {processes} processes (DDP), one per GPU, each need this much"
             if est.settings["device"] == "cuda" else
             f"per process: {processes} processes (DDP) each need this much; on one CPU "
             f"they add up to about {processes} × {gib:.2f} = {processes * gib:.2f} GiB of RAM")
            + "; FSDP / DeepSpeed ZeRO-3 shard the weights and need less")
    return est


def device_memory() -> tuple[str, int, int]:
    """('gpu'|'ram', total bytes, available bytes) of where training would run."""
    torch = _cuda()
    if torch is not None:
        free, total = torch.cuda.mem_get_info()
        return "gpu", int(total), int(free)
    import psutil
    vm = psutil.virtual_memory()
    return "ram", int(vm.total), int(vm.available)
