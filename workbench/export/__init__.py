"""What a run turns into: the merged model (merge), GGUF files for llama.cpp / Ollama
(gguf, verify, modelfile), what the adapter learned (spectrum), the model card (card) and
the reproducibility bundle (bundle, with its standalone script bundle_train.py.tmpl). Each writes
its own report beside its files; none writes the run's status, metrics or adapter."""

__all__ = ["merge", "gguf", "verify", "modelfile", "spectrum", "card", "bundle"]
