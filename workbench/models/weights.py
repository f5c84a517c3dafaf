"""Tensors of a safetensors model folder, by name, read one at a time (never the whole
model in memory): the one index that merge verification, GGUF export, adapter inspection
and the quantisation comparison share."""

from __future__ import annotations

import json
from pathlib import Path


def tensor_index(folder: Path) -> dict[str, Path]:
    """{tensor name: file} from model.safetensors.index.json, else from the headers of
    every *.safetensors file in the folder (sorted, so a name in two files maps to the
    last)."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return {k: folder / v for k, v in weight_map.items()}
    from safetensors import safe_open
    out = {}
    for p in sorted(folder.glob("*.safetensors")):
        with safe_open(str(p), framework="pt") as fh:
            out.update({k: p for k in fh.keys()})
    return out


def read_tensor(index: dict[str, Path], name: str):
    """One tensor (torch) from a `tensor_index`."""
    from safetensors import safe_open
    with safe_open(str(index[name]), framework="pt") as fh:
        return fh.get_tensor(name)


def iter_tensors(folder: Path):
    """(name, torch tensor) for every tensor, file by file."""
    from safetensors import safe_open
    index = tensor_index(folder)
    for path in sorted(set(index.values())):
        with safe_open(str(path), framework="pt") as fh:
            for key in fh.keys():
                yield key, fh.get_tensor(key)
