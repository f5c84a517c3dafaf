"""What the adapter learned: the singular-value spectrum of every LoRA update.

    python launch.py adapter inspect RUN [--json] [--base MODEL_DIR]
    >>> result = spectrum("runs/cpu-demo-20261129-101010")
    >>> result["summary"]["advice"]

For each adapted layer and module, the update is dW = scale * B @ A with scale = alpha / r
(rsLoRA: alpha / sqrt(r)). Reported per module: its singular values, the effective rank
(how many singular values hold 90% of the update's energy, sum of s^2) and |dW| / |W|
relative to the base weight (Frobenius norms; skipped when the base model is not at hand).
The summary compares the effective ranks with r: far below r means r is larger than the
data needs, at r means r may be too small.

dW is never formed: with B = Qb Rb and A^T = Qa Ra (thin QR), dW = Qb (scale Rb Ra^T) Qa^T,
and Qb, Qa have orthonormal columns, so dW has the singular values of the r x r core.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from workbench.errors import WorkbenchError

ENERGY = 0.9
_KEY = re.compile(r"\A(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])\.weight\Z")
_LAYER = re.compile(r"\.layers\.(\d+)\.")
# attention first, then the MLP, in the order data flows through a Llama block
_ORDER = {m: i for i, m in enumerate(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                       "up_proj", "down_proj"])}


class AdapterError(WorkbenchError):
    """The adapter folder is missing or not a LoRA adapter this tool can read."""


def adapter_dir(source) -> tuple[Path, Path | None]:
    """(adapter folder, run folder or None) for an adapter folder, a run name or folder."""
    path = Path(source).expanduser()
    if (path / "adapter_config.json").is_file():
        return path, None
    from workbench import runs
    run = runs.find(source)
    if not (run / "adapter" / "adapter_config.json").is_file():
        raise AdapterError(f"run {run.name} has no adapter yet: train it first")
    return run / "adapter", run


def effective_rank(s, energy: float = ENERGY) -> int:
    """Smallest k with s_1^2 + ... + s_k^2 >= energy * sum(s^2); 0 for a zero update."""
    import numpy as np
    e = np.square(np.asarray(s, dtype=np.float64))
    total = e.sum()
    if total <= 0:
        return 0
    return int(np.searchsorted(np.cumsum(e) / total, energy - 1e-9) + 1)


def lora_singular_values(a, b, scale: float):
    """Singular values of scale * b @ a (a: r x in, b: out x r) via the r x r core."""
    import numpy as np
    _, rb = np.linalg.qr(np.asarray(b, dtype=np.float64))
    _, ra = np.linalg.qr(np.asarray(a, dtype=np.float64).T)
    return np.linalg.svd(scale * rb @ ra.T, compute_uv=False)


def _pattern_value(patterns: dict, module: str, default):
    for pattern, value in (patterns or {}).items():  # PEFT matches a suffix of the name
        if re.fullmatch(rf"(.*\.)?{pattern}", module):
            return value
    return default


def _base_folder(config: dict, run: Path | None, base) -> tuple[Path | None, str]:
    if base:
        path = Path(base).expanduser()
        if not (path / "config.json").is_file():
            raise AdapterError(f"--base {base}: not a model folder (no config.json)")
        return path, "given"
    names = [config.get("base_model_name_or_path")]
    if run is not None:
        try:
            from workbench import runs
            names.insert(0, runs.load_preset(run).model.name_or_path)
        except Exception:  # noqa: BLE001 - the adapter's own record still applies
            pass
    for name in filter(None, names):
        if Path(name).is_dir() and (Path(name) / "config.json").is_file():
            return Path(name), "adapter_config.json"
        try:
            from workbench import models
            return models.resolve(name), f"resolved {name}"
        except Exception:  # noqa: BLE001 - no base: relative norms are skipped
            continue
    return None, "base model not found: relative norms skipped"


class _BaseWeights:
    """Reads single base weights lazily from a folder's safetensors files."""

    def __init__(self, folder: Path | None):
        self.folder, self.where = folder, {}
        if folder is None:
            return
        from workbench.models.weights import tensor_index
        self.where = tensor_index(folder)

    def norm(self, module: str) -> float | None:
        key = f"{module}.weight"
        if key not in self.where:
            return None
        from workbench.models.weights import read_tensor
        return float(read_tensor(self.where, key).double().norm())


def spectrum(source, *, base=None, energy: float = ENERGY) -> dict:
    """{"adapter", "r", "alpha", "scale", "base", "table": [row per module], "summary"}."""
    import numpy as np
    from safetensors import safe_open
    folder, run = adapter_dir(source)
    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterError(f"{folder}: peft_type {config.get('peft_type')!r} is not LoRA")
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        raise AdapterError(f"{folder}: adapter_model.safetensors is missing")
    pairs: dict[str, dict] = {}
    with safe_open(str(weights), framework="pt") as fh:
        for key in fh.keys():
            m = _KEY.match(key)
            if m:
                pairs.setdefault(m["module"], {})[m["ab"]] = fh.get_tensor(key).double().numpy()
    if not pairs:
        raise AdapterError(f"{weights}: no lora_A/lora_B weights found")
    base_dir, base_note = _base_folder(config, run, base)
    base_weights = _BaseWeights(base_dir)
    r0, alpha0 = config.get("r", 8), config.get("lora_alpha", 8)
    rslora = bool(config.get("use_rslora"))
    table = []
    for module, ab in pairs.items():
        if set(ab) != {"A", "B"}:
            continue
        r = ab["A"].shape[0]
        alpha = _pattern_value(config.get("alpha_pattern"), module, alpha0)
        scale = alpha / math.sqrt(r) if rslora else alpha / r
        s = lora_singular_values(ab["A"], ab["B"], scale)
        upd = float(np.sqrt(np.square(s).sum()))
        wn = base_weights.norm(module)
        layer = _LAYER.search(module + ".")
        table.append({"layer": int(layer.group(1)) if layer else None,
                      "module": module.rsplit(".", 1)[-1], "name": module,
                      "shape": [int(ab["B"].shape[0]), int(ab["A"].shape[1])], "r": int(r),
                      "scale": scale, "singular_values": [float(x) for x in s],
                      "effective_rank": effective_rank(s, energy), "update_norm": upd,
                      "base_norm": wn, "relative_norm": upd / wn if wn else None})
    table.sort(key=lambda row: (row["layer"] if row["layer"] is not None else -1,
                                _ORDER.get(row["module"], len(_ORDER)), row["name"]))
    return {"adapter": str(folder), "run": str(run) if run else None, "r": r0,
            "alpha": alpha0, "use_rslora": rslora, "use_dora": bool(config.get("use_dora")),
            "scale": alpha0 / math.sqrt(r0) if rslora else alpha0 / r0,
            "energy": energy, "base": str(base_dir) if base_dir else None,
            "base_note": base_note, "table": table, "summary": summarize(table, energy)}


def summarize(table: list[dict], energy: float = ENERGY) -> dict:
    """Median effective rank against r, and what that suggests."""
    import numpy as np
    if not table:
        return {"modules": 0, "advice": "no LoRA modules found", "verdict": "empty"}
    eff = np.array([row["effective_rank"] for row in table])
    ranks = np.array([row["r"] for row in table])
    r = int(np.median(ranks))
    rel = [row["relative_norm"] for row in table if row["relative_norm"] is not None]
    by_module = {}
    for row in table:
        by_module.setdefault(row["module"], []).append(row["effective_rank"])
    med = float(np.median(eff))
    saturated = float(np.mean(eff >= ranks))
    pct = f"{round(energy * 100)}%"
    if not eff.any():
        verdict, advice = "untrained", "every update is zero: the adapter has not learned yet"
    elif r >= 4 and med <= r / 4:
        p90 = max(1, int(np.ceil(np.percentile(eff, 90))))
        suggest = min(r // 2, 2 ** math.ceil(math.log2(2 * p90)))
        verdict = "too_large"
        advice = (f"r may be larger than needed: half of the updates need {med:g} or fewer "
                  f"of their {r} directions for {pct} of their energy; r={suggest} would "
                  "likely learn the same with less memory")
    elif med >= 0.75 * r:
        verdict = "too_small"
        advice = (f"r may be too small: the updates use nearly all {r} directions "
                  f"({saturated:.0%} need every one for {pct} of their energy); try r={2 * r}"
                  " if the results fall short")
    else:
        verdict, advice = "ok", (f"r looks about right: updates use a median {med:g} of {r} "
                                 f"directions for {pct} of their energy")
    return {"modules": len(table), "r": r, "median_effective_rank": med,
            "mean_effective_rank": float(eff.mean()), "max_effective_rank": int(eff.max()),
            "saturated_fraction": saturated,
            "median_relative_norm": float(np.median(rel)) if rel else None,
            "by_module": {k: float(np.median(v)) for k, v in by_module.items()},
            "verdict": verdict, "advice": advice}


def matrix(result: dict, key: str = "effective_rank") -> dict:
    """Layers x modules grid of one column of the table, for a heat map or line plot."""
    layers = sorted({row["layer"] for row in result["table"] if row["layer"] is not None})
    modules = list(dict.fromkeys(row["module"] for row in result["table"]))
    cell = {(row["layer"], row["module"]): row[key] for row in result["table"]}
    return {"layers": layers, "modules": modules,
            "values": [[cell.get((layer, m)) for m in modules] for layer in layers]}


# -- CLI ----------------------------------------------------------------------------------
