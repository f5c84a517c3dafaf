"""Base models: where they come from, how they load, and their shapes.

    >>> path = resolve("embedded:smollm2-135m-instruct")  # first call imports (~25 s), then cached
    >>> tok = load_tokenizer(str(path))                     # pad token and chat template ensured
    >>> model = load_model(preset.model, preset.quantization)   # nf4 on CPU or CUDA, eval mode
    >>> shape_for("embedded:smollm2-135m-instruct")         # shapes only, from the GGUF header

- sources.py: embedded GGUF, local folders, local .gguf files, Hub ids → a local folder;
- loading.py: tokenizer, (quantised) model, the CPU cache of quantised weights;
- answer_lora.py: LoRA layers without PEFT's per-layer bookkeeping, for answers on a CPU;
- shapes.py: vocabulary, hidden size, layers, heads without loading weights;
- gguf_speed.py: gguf's reader made ~4× faster at a file's metadata (the tokenizer).
Weights are loaded from safetensors only; model code from the Hub runs only when asked.
"""

from workbench.models.answer_lora import lean_lora_for_answers
from workbench.models.loading import (QUANT_MARKER, device, footprint_bytes,
                                      is_quantized_cached, linear_module_names, load_model,
                                      load_tokenizer, quantized_cache_path,
                                      unpack_4bit_for_answers)
from workbench.models.shapes import NAMED, ModelShape, gguf_shape, shape_for
from workbench.models.sources import (CHATML_TEMPLATE, EMBEDDED, HUB_PROBE_TIMEOUT,
                                      IMPORT_DTYPE, IMPORT_FORMAT, MARKER, embedded_gguf,
                                      gguf_slug, hub_reachable, is_ready, models_cache_dir,
                                      resolve)

__all__ = ["QUANT_MARKER", "device", "footprint_bytes", "is_quantized_cached",
           "linear_module_names", "load_model", "load_tokenizer", "quantized_cache_path",
           "unpack_4bit_for_answers", "lean_lora_for_answers",
           "NAMED", "ModelShape", "gguf_shape", "shape_for", "CHATML_TEMPLATE", "EMBEDDED",
           "HUB_PROBE_TIMEOUT", "IMPORT_DTYPE", "IMPORT_FORMAT", "MARKER", "embedded_gguf",
           "gguf_slug", "hub_reachable", "is_ready", "models_cache_dir", "resolve",
           "sources", "loading", "shapes", "weights", "answer_lora", "gguf_speed"]
