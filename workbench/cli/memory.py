"""`launch.py memory [PRESET]`: the memory estimate, by component (workbench.train.memory)."""

from __future__ import annotations

import json

from workbench.config import field_path_meta
from workbench.errors import PresetError, shown
from workbench.train.memory import METHODS, NAMED, Estimate, estimate_for_preset
from workbench.units import fmt_bytes

# ------------------------------------------------------------------------------------

LABELS = {"weights": "base weights", "quant_constants": "quantisation constants",
          "non_quantized": "embeddings, norms, lm_head", "lora": "LoRA weights",
          "gradients": "gradients", "optimizer": "optimizer states",
          "activations": "activations", "logits": "logits / loss"}


def format_table(est: Estimate) -> str:
    s, p = est.settings, est.params
    kind = est.method
    if est.method == "qlora":
        kind += f" ({s['quant_type']}{', double quant' if s['double_quant'] else ''})"
    lines = [f"Memory estimate: {kind} on {est.model}",
             f"  {p['total'] / 1e6:,.1f}M parameters, {p['trainable'] / 1e6:,.2f}M trainable; "
             f"batch {s['batch_size']} x {s['seq_len']} tokens, checkpointing "
             f"{'on' if s['gradient_checkpointing'] else 'off'}, {s['optimizer']}, "
             f"{s['compute_dtype']}, {s['device']}", ""]
    for key, label in LABELS.items():
        lines.append(f"  {label:<28}{fmt_bytes(est.breakdown[key]):>12}")
    lines.append(f"  {'total':<28}{fmt_bytes(est.total_bytes):>12}")
    lines += [f"note: {n}" for n in est.notes]
    return "\n".join(lines)


def _run_cli(args) -> int:
    from workbench import presets
    if args.method is not None and args.method not in METHODS:
        raise PresetError(f"--method: {shown(args.method)} is not one of "
                          f"{', '.join(METHODS)}")
    longest = field_path_meta("train", "max_length")["max"]
    if args.seq_len is not None and not 1 <= args.seq_len <= longest:
        raise PresetError(f"--seq-len: {args.seq_len} is out of range; allowed 1 to {longest}")
    preset = presets.load(args.preset or "cpu-demo", args.set or None)
    est = estimate_for_preset(preset, shape=args.model, method=args.method,
                              seq_len=args.seq_len, device=args.device)
    print(json.dumps(est.to_dict(), indent=2) if args.json else format_table(est))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("memory", help="estimate the memory a preset needs to train",
                              description="Estimate peak training memory (bytes breakdown).")
    p.add_argument("preset", nargs="?", default="cpu-demo", help="preset name or YAML path")
    p.add_argument("--model", help="model name/path or a named size: " + ", ".join(NAMED))
    p.add_argument("--method", help="full, lora, qlora or int8 (default: from the preset)")
    p.add_argument("--set", action="append", metavar="section.key=value", help="override")
    p.add_argument("--seq-len", type=int, help="actual padded sequence length "
                   "(default: train.max_length)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: this machine")
    p.add_argument("--json", action="store_true", help="print the breakdown in bytes")
    p.set_defaults(func=_run_cli)

