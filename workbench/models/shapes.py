"""Model shapes without weights: the numbers the memory estimate needs (vocabulary, hidden
size, layers, heads), read from a config.json, a GGUF header or a named size.

    >>> shape_for("embedded:smollm2-135m-instruct")   # from the GGUF header, no import
    >>> shape_for("llama-65b").params                  # the QLoRA paper's 65B
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from workbench import paths
from workbench.errors import ModelError
from workbench.models.sources import embedded_gguf, imported_folder, resolve


@dataclass(frozen=True)
class ModelShape:
    """A LLaMA-style decoder (RMSNorm, SwiGLU MLP, grouped-query attention)."""
    name: str
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    tied: bool = False
    head_dim: int | None = None

    hd = property(lambda self: self.head_dim or self.hidden // self.heads)

    def linears(self) -> list[tuple[str, int, int]]:
        """(name, in_features, out_features) of one layer's linear modules."""
        h, i, q, kv = self.hidden, self.intermediate, self.heads * self.hd, self.kv_heads * self.hd
        return [("q_proj", h, q), ("k_proj", h, kv), ("v_proj", h, kv), ("o_proj", q, h),
                ("gate_proj", h, i), ("up_proj", h, i), ("down_proj", i, h)]

    @property
    def linear_params(self) -> int:
        return self.layers * sum(a * b for _, a, b in self.linears())

    @property
    def other_params(self) -> int:
        """Embeddings, lm_head (unless tied) and norms: never quantised by bitsandbytes."""
        return (self.vocab * self.hidden * (1 if self.tied else 2)
                + self.hidden * (2 * self.layers + 1))

    params = property(lambda self: self.linear_params + self.other_params)

    @classmethod
    def from_config(cls, config, name: str | None = None) -> "ModelShape":
        """From a transformers config object or a config.json dict."""
        get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
        text = get("text_config")
        if text is not None and get("hidden_size") is None:   # multimodal wrapper
            return cls.from_config(text, name)

        def first(*keys, default=None):
            for k in keys:
                if get(k) is not None:
                    return get(k)
            if default is None:
                raise ModelError(f"model config: no {keys[0]} (cannot estimate memory)")
            return default
        hidden = int(first("hidden_size", "n_embd", "d_model"))
        heads = int(first("num_attention_heads", "n_head"))
        return cls(name=str(name or get("_name_or_path") or get("model_type") or "model"),
                   vocab=int(first("vocab_size")), hidden=hidden,
                   intermediate=int(first("intermediate_size", "n_inner", "ffn_dim",
                                          default=4 * hidden)),
                   layers=int(first("num_hidden_layers", "n_layer", "num_layers")),
                   heads=heads, kv_heads=int(first("num_key_value_heads", default=heads)),
                   tied=bool(get("tie_word_embeddings", False)),
                   head_dim=get("head_dim"))


NAMED = {   # architecture numbers from the LLaMA and Llama 3 papers / released configs
    "llama-7b": ModelShape("llama-7b", 32000, 4096, 11008, 32, 32, 32),
    "llama-13b": ModelShape("llama-13b", 32000, 5120, 13824, 40, 40, 40),
    "llama-33b": ModelShape("llama-33b", 32000, 6656, 17920, 60, 52, 52),
    "llama-65b": ModelShape("llama-65b", 32000, 8192, 22016, 80, 64, 64),
    "llama3-8b": ModelShape("llama3-8b", 128256, 4096, 14336, 32, 32, 8),
    "llama3-70b": ModelShape("llama3-70b", 128256, 8192, 28672, 80, 64, 8),
}


def shape_for(model: str, offline_only: bool = False) -> ModelShape:
    """A named size, a folder or config.json path, a .gguf file or embedded:NAME (from the
    GGUF header: the tensors are memory-mapped, not read, and nothing is imported), or
    anything `models.resolve` accepts. offline_only: a Hub id only from a config.json
    already downloaded, never fetched."""
    key = str(model or "").strip()
    if not key:
        raise ModelError("model.name_or_path: choose a base model first")
    gguf = None
    if key.startswith("embedded:"):
        gguf = embedded_gguf(key)
    elif key.lower().endswith(".gguf"):
        gguf = paths.resolve_data_path(key)
    if gguf is not None:  # its import's config.json when there is one: reading the GGUF
        folder = imported_folder(Path(gguf), key)  # header (its vocabulary) takes ~10 s
        if folder is not None:
            try:
                config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
                return ModelShape.from_config(config, name=key)
            except (OSError, ValueError):
                pass
        return gguf_shape(Path(gguf), key)
    if offline_only and key.lower() not in NAMED:
        path = paths.resolve_data_path(key)
        if not (path.is_dir() or path.is_file()):
            try:  # a Hub id: only a config.json already downloaded, never the weights
                from huggingface_hub import hf_hub_download
                config = hf_hub_download(key, "config.json", local_files_only=True)
            except Exception:  # noqa: BLE001 - not cached, bad id, no hub library
                raise ModelError(f"model {key!r}: its config.json is not on this machine yet; "
                                 "press “Load and measure” once to fetch the model") from None
            return shape_for(config)
        model = str(path)
    key = model.strip().lower()
    if key in NAMED:
        return NAMED[key]
    path = Path(model).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        path = path / "config.json"
    if not (path.is_file() and path.name.endswith(".json")):
        path = Path(resolve(model)) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read the model config ({exc})") from None
    return ModelShape.from_config(config, name=model)


def gguf_shape(path: Path, name: str) -> ModelShape:
    """Architecture numbers from a GGUF header (the tensors are memory-mapped, not read)."""
    from gguf import GGUFReader

    from workbench.models import gguf_speed
    gguf_speed.install()
    if not path.is_file():
        raise ModelError(f"model {name!r}: no such file")
    reader = GGUFReader(str(path))
    fields = reader.fields

    def value(key, default=None):
        f = fields.get(key)
        return default if f is None else f.contents()
    arch = value("general.architecture", "llama")
    g = {k: value(f"{arch}.{k}") for k in ("embedding_length", "feed_forward_length",
                                           "block_count", "attention.head_count",
                                           "attention.head_count_kv", "vocab_size")}
    if g["vocab_size"] is None:
        g["vocab_size"] = len(fields["tokenizer.ggml.tokens"].data)
    if None in (g["embedding_length"], g["block_count"], g["attention.head_count"]):
        raise ModelError(f"model {name!r}: the GGUF header has no {arch} shape")
    heads = int(g["attention.head_count"])
    return ModelShape(
        name=name, vocab=int(g["vocab_size"]), hidden=int(g["embedding_length"]),
        intermediate=int(g["feed_forward_length"] or 4 * g["embedding_length"]),
        layers=int(g["block_count"]), heads=heads,
        kv_heads=int(g["attention.head_count_kv"] or heads),
        tied=not any(ti.name == "output.weight" for ti in reader.tensors))
