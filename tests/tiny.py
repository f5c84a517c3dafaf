"""A tiny random Llama model for tests that run the real code paths in seconds on a CPU.

    >>> from tests.tiny import make_tiny_model
    >>> make_tiny_model(tmp_path / "tiny")   # HF folder: config.json, model.safetensors, tokenizer

The tokenizer is the committed byte-level BPE in tests/assets/tiny_tokenizer/ (about 1000
tokens, SmolLM2's ChatML template, eos = pad = <|im_end|>), so prompts render exactly as for
the embedded model. Same arguments and seed give the same weights.
"""

from __future__ import annotations

from pathlib import Path

TOKENIZER_DIR = Path(__file__).resolve().parent / "assets" / "tiny_tokenizer"


def make_tiny_model(dir, *, layers: int = 2, hidden: int = 64, seed: int = 0) -> Path:
    """Write a random LlamaForCausalLM (4 heads, 2 kv heads, MLP 128) + tokenizer to `dir`."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=128,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=2048, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    # fork_rng: the seed fixes these weights without disturbing the caller's RNG stream
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(dir, safe_serialization=True)
    tokenizer.save_pretrained(dir)
    return dir
